//! WebAssembly code: the ADD mode `wasm` (format version 8).
//!
//! When a WebAssembly module changes, the constants its code loads change
//! with it: Go's compiler, for one, writes every address into linear
//! memory and every return address (a function index times 2^16 plus a
//! block number) as an `i64.const`, so a function inserted before them
//! shifts thousands of constants by the same amount, and data that grew
//! shifts the addresses after it. Byte-wise, each shifted LEB128 is a
//! varying pattern; here each constant is predicted from what the
//! constants decoded before it in the chunk learned, so that a constant
//! whose target moved like the targets near it costs zero diff bytes. (On
//! the esbuild-wasm 0.21.4 → 0.21.5 module, the i64 constants are 22% of
//! the changed ADD bytes and half of the compressed diff stream.)
//!
//! **The walk.** Each ADD's OLD bytes (its *source*, `len` bytes) are read
//! as WebAssembly instructions from its first byte on, without knowing
//! where the function or the instruction around it starts (a chunk must
//! decode with what the patch and the ADD sources give it; a walk that
//! starts inside an instruction finds its footing again within a few
//! bytes). At offset `k`, the opcode `b = src[k]` has immediates:
//!
//! * one LEB128: `0x02`–`0x04` (block type), `0x0C`, `0x0D`, `0x10`,
//!   `0x20`–`0x26`, `0x41`, `0x42`, `0xD2`;
//! * two LEB128s: `0x11`, `0x28`–`0x3E`;
//! * `0x0E`: a LEB128 `n`, then at most `n + 1` LEB128s: the instruction
//!   ends before the first of them that is not wholly in the source (so
//!   the walk reads every byte a bounded number of times: a list that
//!   fails after many LEB128s is not read again from each of its bytes);
//! * `0x1C`: a LEB128 `n`, then `n` bytes;
//! * one byte: `0x3F`, `0x40`, `0xD0`; four bytes: `0x43`; eight: `0x44`;
//! * `0xFC`: a LEB128 `s`, then for `s` = 8 a LEB128 and a byte; 9, 13,
//!   15, 16, 17 a LEB128; 10 two bytes; 11 a byte; 12, 14 two LEB128s;
//!   nothing for other `s`;
//! * none for every other byte.
//!
//! A LEB128 is the bytes up to and including the first byte below `0x80`,
//! at most [`MAX_LEB`] of them. When an immediate (other than in the list
//! of `0x0E`) is not wholly in the source (it runs past its end, or a
//! LEB128 has no last byte within [`MAX_LEB`]), the instruction is taken
//! as its opcode alone; otherwise
//! the next instruction starts after its immediates. The *fields* are the
//! LEB128 immediates of `0x42` (`i64.const`), in order.
//!
//! **Values.** A field of `n` bytes `b_0 … b_{n-1}` has the value `Σ (b_i &
//! 0x7F) · 2^(7i)` modulo 2^64, sign-extended from bit `7n − 1` when `7n <
//! 64` (two's complement, 64 bits). The *n-byte form* of a value `x` fits
//! when `n ≥ 10` or `−2^(7n−1) ≤ x < 2^(7n−1)`; it is the bytes `(x >> 7i)
//! & 0x7F` (arithmetic shift, by at most 63), with `0x80` added to every
//! byte but the last. NEW bytes are *valid* where the first `n − 1` have
//! bit 7 set and the last has it clear.
//!
//! **Prediction.** The chunk keeps a table of *learned* deltas keyed by
//! OLD value. For a field of OLD value `v`, the delta `d` is the one
//! learned for exactly `v`, else the one learned for the greatest key
//! below `v`, else 0; the prediction is the `n`-byte form of `v + d`
//! (modulo 2^64) when it fits, otherwise the field's OLD bytes. Once the
//! field's NEW bytes are known (as the decoder knows them, after adding
//! the stored differences), and when they are valid, the table learns
//! `NEW value − v` for `v` (replacing an earlier delta). At most
//! [`MAX_LEARNED`] keys are learned; past that only known keys are
//! updated.
//!
//! **Stream.** First, for every field of every ADD in op order, its `n`
//! bytes `NEW byte − predicted byte` (modulo 256); then the byte-wise diff
//! (`NEW − OLD` modulo 256) of every other ADD byte, in op order. It is
//! exactly as long as the ADDs.
//!
//! Bounds: the learned table (see [`learned_bound`]) and the byte-wise
//! diff (one chunk's length). The walk reads each source byte a bounded
//! number of times (an immediate is at most [`MAX_LEB`] bytes, and a
//! count only repeats immediates that each consume bytes).

use std::collections::BTreeMap;

use crate::Result;
use crate::error::Error;
use crate::ops::{Op, OpDecoder};

/// Most bytes of a LEB128 immediate.
pub const MAX_LEB: usize = 10;

/// Most keys learned in one chunk.
pub const MAX_LEARNED: usize = 1 << 16;

/// Bytes the learned table of a chunk of `new_len` bytes may hold: at most
/// one key per field (a field and its opcode are at least two bytes) and
/// at most [`MAX_LEARNED`], at 64 bytes per entry (a B-tree entry is 16
/// bytes, nodes are at least half full, plus the inner nodes).
pub fn learned_bound(new_len: u64) -> u64 {
    (new_len / 2).min(MAX_LEARNED as u64) * 64
}

/// Whether OLD looks like a WebAssembly module (its magic and version 1):
/// the encoder tries the mode only then.
pub fn looks_like_wasm(old: &[u8]) -> bool {
    old.starts_with(b"\0asm\x01\0\0\0")
}

/// Length of the LEB128 at the start of `b`, if its last byte is within
/// [`MAX_LEB`] bytes and within `b`.
#[inline(always)]
fn leb_len(b: &[u8]) -> Option<usize> {
    match b.first() {
        // Most immediates are one byte.
        Some(&x) if x < 0x80 => Some(1),
        _ => b
            .iter()
            .take(MAX_LEB)
            .position(|&x| x < 0x80)
            .map(|i| i + 1),
    }
}

/// How the walk reads what follows an opcode (module docs).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Imm {
    None,
    Leb,
    Leb2,
    /// Read by [`other_len`].
    Other,
}

/// [`Imm`] by opcode: the walk's one look-up per instruction (a match
/// over the opcodes was a third of a wasm chunk's apply time).
const IMM: [Imm; 256] = {
    let mut t = [Imm::None; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            0x02..=0x04 | 0x0C | 0x0D | 0x10 | 0x20..=0x26 | 0x41 | 0x42 | 0xD2 => Imm::Leb,
            0x11 | 0x28..=0x3E => Imm::Leb2,
            0x0E | 0x1C | 0x3F | 0x40 | 0x43 | 0x44 | 0xD0 | 0xFC => Imm::Other,
            _ => Imm::None,
        };
        b += 1;
    }
    t
};

/// The LEB128 at the start of `b` as a number (its low 64 bits), and its
/// length.
#[inline(always)]
fn leb_value(b: &[u8]) -> Option<(u64, usize)> {
    let n = leb_len(b)?;
    let mut v = 0u64;
    for (i, &x) in b[..n].iter().enumerate() {
        v |= u64::from(x & 0x7F).wrapping_shl(7 * i as u32);
    }
    Some((v, n))
}

/// The length of the instruction at the start of `b` (module docs), or
/// `None` when an immediate is not wholly in `b`. `b` is not empty.
#[inline(always)]
fn instr_len(b: &[u8]) -> Option<usize> {
    match IMM[usize::from(b[0])] {
        Imm::None => Some(1),
        Imm::Leb => leb_len(&b[1..]).map(|n| 1 + n),
        Imm::Leb2 => {
            let n = leb_len(&b[1..])?;
            leb_len(&b[1 + n..]).map(|m| 1 + n + m)
        }
        Imm::Other => other_len(b),
    }
}

/// [`instr_len`] of the opcodes of [`Imm::Other`].
fn other_len(b: &[u8]) -> Option<usize> {
    let at = |k: usize| b.get(k..).unwrap_or(&[]);
    let leb = |k: usize| leb_len(at(k)).map(|n| k + n);
    // (A count read from the source may be near 2^64.)
    let bytes = |k: usize, n: usize| k.checked_add(n).filter(|&e| e <= b.len());
    match b[0] {
        0x0E => {
            let (n, l) = leb_value(at(1))?;
            let mut k = 1 + l;
            // Each LEB128 takes a byte at least: the count is bounded by
            // the bytes left.
            for _ in 0..=n.min(b.len() as u64) {
                match leb(k) {
                    Some(e) => k = e,
                    None => break,
                }
            }
            Some(k)
        }
        0x1C => {
            let (n, l) = leb_value(at(1))?;
            bytes(1 + l, usize::try_from(n).ok()?)
        }
        0x3F | 0x40 | 0xD0 => bytes(1, 1),
        0x43 => bytes(1, 4),
        0x44 => bytes(1, 8),
        0xFC => {
            let (s, l) = leb_value(at(1))?;
            let k = 1 + l;
            match s {
                8 => leb(k).and_then(|k| bytes(k, 1)),
                9 | 13 | 15 | 16 | 17 => leb(k),
                10 => bytes(k, 2),
                11 => bytes(k, 1),
                12 | 14 => leb(k).and_then(leb),
                _ => Some(k),
            }
        }
        _ => Some(1),
    }
}

/// Calls `f(k, n)` for every field (the `n`-byte immediate at `k` of an
/// `i64.const`) of an ADD source `src`, in order: the walk of the module
/// docs.
fn scan(src: &[u8], mut f: impl FnMut(usize, usize)) {
    let mut k = 0;
    while k < src.len() {
        match instr_len(&src[k..]) {
            Some(n) => {
                if src[k] == 0x42 {
                    f(k + 1, n - 1);
                }
                k += n;
            }
            None => k += 1,
        }
    }
}

/// The value of an `n`-byte field (module docs).
#[inline(always)]
fn value(b: &[u8]) -> i64 {
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate() {
        v |= u64::from(x & 0x7F).wrapping_shl(7 * i as u32);
    }
    let bits = 7 * b.len() as u32;
    if bits < 64 {
        let s = 64 - bits;
        ((v << s) as i64) >> s
    } else {
        v as i64
    }
}

/// Whether `b` is a valid field's bytes: bit 7 set on all but the last.
#[inline(always)]
fn valid(b: &[u8]) -> bool {
    let (last, init) = b.split_last().expect("a field has a byte");
    last & 0x80 == 0 && init.iter().all(|&x| x & 0x80 != 0)
}

/// Writes the `out.len()`-byte form of `x` into `out`, if it fits.
#[inline(always)]
fn form(x: i64, out: &mut [u8]) -> bool {
    let n = out.len();
    if n < MAX_LEB {
        let half = 1i64 << (7 * n - 1);
        if !(-half..half).contains(&x) {
            return false;
        }
    }
    for (i, o) in out.iter_mut().enumerate() {
        let b = ((x >> (7 * i).min(63)) & 0x7F) as u8;
        *o = if i + 1 < n { b | 0x80 } else { b };
    }
    true
}

/// The prediction state of one chunk: the learned deltas.
#[derive(Debug, Default)]
pub(crate) struct Predictor {
    learned: BTreeMap<i64, i64>,
}

impl Predictor {
    /// Number of fields in an ADD source `src`, and their bytes in all.
    pub(crate) fn count(src: &[u8]) -> (usize, usize) {
        let (mut fields, mut bytes) = (0, 0);
        scan(src, |_, n| {
            fields += 1;
            bytes += n;
        });
        (fields, bytes)
    }

    /// Walks the ADD reading `src`: for every field (bytes `k..k + n` of
    /// the op), `f(k, buf)` gets the predicted bytes in `buf` (`n` bytes)
    /// and leaves the NEW bytes there, from which the table learns.
    pub(crate) fn op(&mut self, src: &[u8], mut f: impl FnMut(usize, &mut [u8])) {
        let mut buf = [0u8; MAX_LEB];
        scan(src, |k, n| {
            let old = &src[k..k + n];
            let v = value(old);
            let known = self.learned.get(&v).copied();
            let d = known
                .or_else(|| self.learned.range(..v).next_back().map(|(_, &d)| d))
                .unwrap_or(0);
            let buf = &mut buf[..n];
            if !form(v.wrapping_add(d), buf) {
                buf.copy_from_slice(old);
            }
            f(k, buf);
            if valid(buf) {
                let d = value(buf).wrapping_sub(v);
                if known != Some(d) {
                    if self.learned.len() < MAX_LEARNED {
                        self.learned.insert(v, d);
                    } else if let Some(e) = self.learned.get_mut(&v) {
                        *e = d;
                    }
                }
            }
        });
    }
}

/// The mode's diff stream for ADDs `(OLD start, length, offset in the
/// chunk)` of a chunk whose NEW bytes are `new_chunk`.
pub(crate) fn encode(adds: &[(usize, usize, usize)], old: &[u8], new_chunk: &[u8]) -> Vec<u8> {
    let total: usize = adds.iter().map(|a| a.1).sum();
    let fields: usize = adds
        .iter()
        .map(|&(o, l, _)| Predictor::count(&old[o..o + l]).1)
        .sum();
    let mut out = vec![0u8; total];
    let (mut w, mut r) = (0, fields);
    let mut pr = Predictor::default();
    for &(o, l, at) in adds {
        let (src, dst) = (&old[o..o + l], &new_chunk[at..at + l]);
        let mut next = 0;
        pr.op(src, |k, buf| {
            for ((o, d), s) in out[r..r + k - next]
                .iter_mut()
                .zip(&dst[next..k])
                .zip(&src[next..k])
            {
                *o = d.wrapping_sub(*s);
            }
            r += k - next;
            let n = buf.len();
            for ((o, d), p) in out[w..w + n].iter_mut().zip(&dst[k..k + n]).zip(&*buf) {
                *o = d.wrapping_sub(*p);
            }
            w += n;
            buf.copy_from_slice(&dst[k..k + n]);
            next = k + n;
        });
        for ((o, d), s) in out[r..r + l - next]
            .iter_mut()
            .zip(&dst[next..])
            .zip(&src[next..])
        {
            *o = d.wrapping_sub(*s);
        }
        r += l - next;
    }
    debug_assert_eq!((w, r), (fields, total));
    out
}

/// The byte-wise diff (`NEW − OLD` per byte, in op order) that the mode's
/// stream `stored` stands for. `dec` yields the chunk's ops, `src(old,
/// len)` an ADD's OLD source. A stream whose length is not the ADDs' is an
/// error.
pub(crate) fn to_bytes<'d, 'o>(
    stored: &[u8],
    dec: impl Fn() -> OpDecoder<'d>,
    src: impl Fn(u64, usize) -> &'o [u8],
) -> Result<Vec<u8>> {
    let (mut fields, mut total) = (0usize, 0usize);
    for op in dec() {
        if let Op::Add { old, len } = op? {
            fields += Predictor::count(src(old, len as usize)).1;
            total += len as usize;
        }
    }
    if total != stored.len() {
        return Err(Error::invalid(
            "diff stream",
            format!("{total} bytes (the ADDs' length)"),
            stored.len(),
            0,
        ));
    }
    let mut out = vec![0u8; total];
    let (mut w, mut r, mut d) = (0, fields, 0);
    let mut pr = Predictor::default();
    for op in dec() {
        if let Op::Add { old: p, len } = op? {
            let s = src(p, len as usize);
            let dst = &mut out[d..d + s.len()];
            let mut next = 0;
            pr.op(s, |k, buf| {
                dst[next..k].copy_from_slice(&stored[r..r + k - next]);
                r += k - next;
                let n = buf.len();
                for (b, x) in buf.iter_mut().zip(&stored[w..w + n]) {
                    *b = b.wrapping_add(*x);
                }
                w += n;
                // The NEW bytes as byte-wise diffs from OLD's bytes.
                for ((o, b), s) in dst[k..k + n].iter_mut().zip(&*buf).zip(&s[k..k + n]) {
                    *o = b.wrapping_sub(*s);
                }
                next = k + n;
            });
            let n = s.len() - next;
            dst[next..].copy_from_slice(&stored[r..r + n]);
            r += n;
            d += s.len();
        }
    }
    debug_assert_eq!((w, r, d), (fields, total, total));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{ChunkEncoder, Op, Streams};
    use proptest::prelude::*;

    /// A LEB128 of `v` (signed), as short as it goes.
    fn sleb(mut v: i64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7F) as u8;
            v >>= 7;
            if (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0) {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    /// The field value and form by the module docs' words, in 128-bit
    /// arithmetic: the oracle for `value` and `form`.
    fn naive_value(b: &[u8]) -> i64 {
        let mut v: i128 = 0;
        for (i, &x) in b.iter().enumerate() {
            v += i128::from(x & 0x7F) << (7 * i);
        }
        let bits = 7 * b.len();
        let mut v = v.rem_euclid(1 << 64);
        if bits < 64 && v >= 1 << (bits - 1) {
            v = v.rem_euclid(1 << bits) - (1 << bits);
        }
        v as u64 as i64
    }

    fn naive_form(x: i64, n: usize) -> Option<Vec<u8>> {
        let x = i128::from(x);
        if n < 10 && !(-(1i128 << (7 * n - 1))..(1i128 << (7 * n - 1))).contains(&x) {
            return None;
        }
        Some(
            (0..n)
                .map(|i| {
                    let b = ((x >> (7 * i).min(63)) & 0x7F) as u8;
                    if i + 1 < n { b | 0x80 } else { b }
                })
                .collect(),
        )
    }

    /// The walk by the module docs, with every opcode spelled out: the
    /// oracle for `scan`.
    fn naive_fields(src: &[u8]) -> Vec<(usize, usize)> {
        let lebl = |k: usize| -> Option<usize> {
            (0..10)
                .find(|&i| k + i < src.len() && src[k + i] < 0x80)
                .filter(|&i| (k..=k + i).all(|j| j < src.len()))
                .map(|i| i + 1)
        };
        let lebv = |k: usize| -> Option<(u128, usize)> {
            let n = lebl(k)?;
            let v = (0..n).fold(0u128, |v, i| v | (u128::from(src[k + i] & 0x7F) << (7 * i)));
            Some((v, n))
        };
        let mut out = Vec::new();
        let mut k = 0;
        while k < src.len() {
            let b = src[k];
            let one = |k: usize| lebl(k + 1).map(|n| 1 + n);
            let len = match b {
                0x02 | 0x03 | 0x04 | 0x0C | 0x0D | 0x10 | 0xD2 | 0x41 | 0x42 => one(k),
                0x20..=0x26 => one(k),
                0x11 | 0x28..=0x3E => lebl(k + 1).and_then(|a| lebl(k + 1 + a).map(|c| 1 + a + c)),
                0x0E => lebv(k + 1).map(|(n, l)| {
                    let mut j = k + 1 + l;
                    let mut i = 0u128;
                    while i <= n {
                        let Some(l) = lebl(j) else { break };
                        j += l;
                        i += 1;
                    }
                    j - k
                }),
                0x1C => lebv(k + 1).and_then(|(n, l)| {
                    let end = (k + 1 + l) as u128 + n;
                    (end <= src.len() as u128).then(|| end as usize - k)
                }),
                0x3F | 0x40 | 0xD0 => (k + 2 <= src.len()).then_some(2),
                0x43 => (k + 5 <= src.len()).then_some(5),
                0x44 => (k + 9 <= src.len()).then_some(9),
                0xFC => lebv(k + 1).and_then(|(s, l)| {
                    let j = k + 1 + l;
                    let fixed = |c: usize| (j + c <= src.len()).then_some(j + c - k);
                    match s {
                        8 => lebl(j).and_then(|a| (j + a < src.len()).then_some(j + a + 1 - k)),
                        9 | 13 | 15 | 16 | 17 => lebl(j).map(|a| j + a - k),
                        10 => fixed(2),
                        11 => fixed(1),
                        12 | 14 => lebl(j).and_then(|a| lebl(j + a).map(|c| j + a + c - k)),
                        _ => Some(j - k),
                    }
                }),
                _ => Some(1),
            };
            match len {
                Some(n) => {
                    if b == 0x42 {
                        out.push((k + 1, n - 1));
                    }
                    k += n;
                }
                None => k += 1,
            }
        }
        out
    }

    /// The mode's stream by the module docs' words, with a list of learned
    /// deltas searched linearly: the oracle for [`encode`].
    fn naive_encode(adds: &[(usize, usize, usize)], old: &[u8], new_chunk: &[u8]) -> Vec<u8> {
        let mut learned: Vec<(i64, i64)> = Vec::new();
        let (mut fields, mut rest) = (Vec::new(), Vec::new());
        for &(o, l, at) in adds {
            let (src, dst) = (&old[o..o + l], &new_chunk[at..at + l]);
            let mut is_field = vec![false; l];
            for (k, n) in naive_fields(src) {
                let v = naive_value(&src[k..k + n]);
                let d = learned
                    .iter()
                    .find(|e| e.0 == v)
                    .or_else(|| learned.iter().filter(|e| e.0 < v).max_by_key(|e| e.0))
                    .map_or(0, |e| e.1);
                let pred =
                    naive_form(v.wrapping_add(d), n).unwrap_or_else(|| src[k..k + n].to_vec());
                let nb = &dst[k..k + n];
                fields.extend(nb.iter().zip(&pred).map(|(a, b)| a.wrapping_sub(*b)));
                is_field[k..k + n].fill(true);
                let ok = nb[..n - 1].iter().all(|&x| x >= 0x80) && nb[n - 1] < 0x80;
                if ok {
                    let d = naive_value(nb).wrapping_sub(v);
                    if let Some(e) = learned.iter_mut().find(|e| e.0 == v) {
                        e.1 = d;
                    } else if learned.len() < MAX_LEARNED {
                        learned.push((v, d));
                    }
                }
            }
            for i in 0..l {
                if !is_field[i] {
                    rest.push(dst[i].wrapping_sub(src[i]));
                }
            }
        }
        fields.extend_from_slice(&rest);
        fields
    }

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// WebAssembly-like code: `i64.const` of addresses and return
    /// addresses, locals, loads and stores, other instructions, and now
    /// and then a random byte.
    fn code(seed: u64, len: usize) -> Vec<u8> {
        let mut r = Rng(seed | 1);
        let mut out = Vec::new();
        while out.len() < len {
            match r.below(12) {
                0..=2 => {
                    out.push(0x42);
                    let v = match r.below(3) {
                        0 => 0x10000 + r.below(1 << 22) as i64,
                        1 => ((0x1000 + r.below(64) as i64) << 16) | r.below(40) as i64,
                        _ => r.next() as i64 >> r.below(64),
                    };
                    sleb(v, &mut out);
                }
                3 | 4 => out.extend_from_slice(&[0x20, r.below(200) as u8 & 0x7F]),
                5 => out.extend_from_slice(&[0x37, 0x03, r.below(128) as u8]),
                6 => {
                    out.push(0x41);
                    sleb(r.below(1 << 20) as i64, &mut out);
                }
                7 => out.extend_from_slice(&[0x0E, 2, 0, 1, 2]),
                8 => out.push([0x0B, 0xA7, 0xAD, 0x7C, 0x50][r.below(5) as usize]),
                9 => out.extend_from_slice(&[0xFC, r.below(18) as u8, 0, 0, 0]),
                10 => out.extend_from_slice(&[0x44, 1, 2, 3, 4, 5, 6, 7, 8]),
                _ => out.push(r.next() as u8),
            }
        }
        out.truncate(len);
        out
    }

    /// NEW from OLD: every `i64.const` of OLD (found by [`naive_fields`]
    /// on the whole of it) shifted by `shift(value)` when the shifted value
    /// keeps its length, and `edits` random bytes changed.
    fn shifted(old: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
        let mut new = old.to_vec();
        for (k, n) in naive_fields(old) {
            let v = naive_value(&old[k..k + n]);
            let d = if v >= 0x1000_0000 {
                1 << 16
            } else {
                4096 + 8 * (v >> 20)
            };
            if let Some(f) = naive_form(v.wrapping_add(d), n) {
                new[k..k + n].copy_from_slice(&f);
            }
        }
        for &(at, x) in edits {
            let i = at % new.len();
            new[i] = new[i].wrapping_add(x);
        }
        new
    }

    /// A chunk of ops `plan` (`kind` 0 ADD, 1 COPY, 2 INSERT; OLD start,
    /// length) over `old` into `target` (NEW, same positions as OLD for
    /// ADD and COPY): NEW, its streams, its ADDs.
    #[allow(clippy::type_complexity)]
    fn chunk(
        old: &[u8],
        target: &[u8],
        plan: &[(u8, usize, usize)],
    ) -> (Vec<u8>, Streams, Vec<(usize, usize, usize)>) {
        let mut new = Vec::new();
        for &(kind, o, l) in plan {
            match kind {
                0 => new.extend_from_slice(&target[o..o + l]),
                1 => new.extend_from_slice(&old[o..o + l]),
                _ => new.extend((0..l).map(|i| (i * 31 + o) as u8)),
            }
        }
        let mut enc = ChunkEncoder::new(old, &new, 0);
        for &(kind, o, l) in plan {
            let (old, len) = (o as u64, l as u64);
            enc.push(match kind {
                0 => Op::Add { old, len },
                1 => Op::Copy { old, len },
                _ => Op::Insert { len },
            });
        }
        let (streams, _) = enc.finish();
        let whole = [(0, old.len() as u64)];
        let dec = OpDecoder::for_streams(&streams, 0, new.len() as u64, old.len() as u64, &whole);
        let (mut adds, mut pos) = (Vec::new(), 0);
        for op in dec {
            let op = op.unwrap();
            if let Op::Add { old, len } = op {
                adds.push((old as usize, len as usize, pos as usize));
            }
            pos += op.len();
        }
        (new, streams, adds)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// `value` and `form` are the definitions, and a form reads back
        /// as its value.
        #[test]
        fn values_and_forms(x in any::<i64>(), n in 1usize..=10, bytes in proptest::collection::vec(any::<u8>(), 1..=10)) {
            prop_assert_eq!(value(&bytes), naive_value(&bytes));
            let mut buf = vec![0u8; n];
            let fits = form(x, &mut buf);
            prop_assert_eq!(fits.then(|| buf.clone()), naive_form(x, n));
            if fits {
                prop_assert!(valid(&buf));
                prop_assert_eq!(value(&buf), x);
            }
        }

        /// The walk is the definition on code and on random bytes.
        #[test]
        fn scan_is_the_definition(seed in 1u64..u64::MAX, len in 0usize..600, random in any::<bool>()) {
            let src: Vec<u8> = if random {
                let mut r = Rng(seed | 1);
                (0..len).map(|_| r.next() as u8).collect()
            } else {
                code(seed, len)
            };
            let mut got = Vec::new();
            scan(&src, |k, n| got.push((k, n)));
            prop_assert_eq!(got, naive_fields(&src));
        }

        /// `encode` is the definition (naive oracle), and `to_bytes` turns
        /// it back into the byte-wise diff, for any ops over WebAssembly-like
        /// code whose constants shifted, with edits.
        #[test]
        fn encode_is_the_definition_and_inverts(
            seed in 1u64..u64::MAX,
            plan in proptest::collection::vec((0u8..3, 0usize..3500, 1usize..600), 1..14),
            edits in proptest::collection::vec((0usize..100_000, any::<u8>()), 0..40),
        ) {
            let old = code(seed, 4099);
            let target = shifted(&old, &edits);
            let plan: Vec<_> = plan.into_iter().map(|(k, o, l)| (k, o, l.min(old.len() - o))).collect();
            let (new, streams, adds) = chunk(&old, &target, &plan);
            let whole = [(0, old.len() as u64)];
            let dec = || OpDecoder::for_streams(&streams, 0, new.len() as u64, old.len() as u64, &whole);
            let got = encode(&adds, &old, &new);
            prop_assert_eq!(&got, &naive_encode(&adds, &old, &new));
            let back = to_bytes(&got, dec, |o, l| &old[o as usize..o as usize + l]).unwrap();
            prop_assert_eq!(&back, &streams.diff);
        }

        /// Any stored stream of the right length decodes without a panic
        /// (whatever it predicts); a wrong length is an error.
        #[test]
        fn any_stream_decodes_or_fails_cleanly(
            seed in 1u64..u64::MAX,
            plan in proptest::collection::vec((0u8..2, 0usize..3500, 16usize..600), 1..8),
            noise in proptest::collection::vec(any::<u8>(), 1..64),
            cut in 0usize..3,
        ) {
            let old = code(seed, 4096);
            // The first op an ADD, whose first byte changed.
            let plan: Vec<_> = plan.into_iter().enumerate().map(|(i, (k, o, l))| (if i == 0 { 0 } else { k }, o, l.min(old.len() - o))).collect();
            let target = shifted(&old, &[(plan[0].1, 1)]);
            let (new, streams, _) = chunk(&old, &target, &plan);
            prop_assert!(!streams.diff.is_empty());
            let whole = [(0, old.len() as u64)];
            let dec = || OpDecoder::for_streams(&streams, 0, new.len() as u64, old.len() as u64, &whole);
            let mut stored: Vec<u8> = (0..streams.diff.len()).map(|i| noise[i % noise.len()]).collect();
            prop_assert!(to_bytes(&stored, dec, |o, l| &old[o as usize..o as usize + l]).is_ok());
            stored.truncate(stored.len().saturating_sub(cut));
            stored.extend(std::iter::repeat_n(0, if cut == 0 { 1 } else { 0 }));
            prop_assert!(to_bytes(&stored, dec, |o, l| &old[o as usize..o as usize + l]).is_err());
        }
    }

    /// Constants that all moved by the amounts their neighbours moved cost
    /// zero diff bytes after the first of each run; byte-wise they do not.
    #[test]
    fn shifted_constants_predict_zero() {
        let mut old = Vec::new();
        // Addresses 0x40000.. in steps of 8, and return addresses of
        // functions 0x1200.. (index << 16 | block).
        for i in 0..200i64 {
            old.extend_from_slice(&[0x23, 0x00]);
            old.push(0x42);
            sleb(0x40000 + 8 * i, &mut old);
            old.extend_from_slice(&[0x37, 0x03, 0x00]);
            old.push(0x42);
            sleb(((0x1200 + i / 10) << 16) | (i % 10), &mut old);
            old.extend_from_slice(&[0x10, 0x85, 0x20]);
        }
        let new = shifted(&old, &[]);
        let (new, streams, adds) = chunk(&old, &new, &[(0, 0, old.len())]);
        let got = encode(&adds, &old, &new);
        assert_eq!(got.len(), old.len());
        let nonzero = got.iter().filter(|&&b| b != 0).count();
        // Two runs (addresses, return addresses) to learn, each needing a
        // nonzero difference in its first constant only (2 or 3 bytes).
        assert!(nonzero <= 6, "{nonzero} nonzero bytes");
        assert!(streams.diff.iter().filter(|&&b| b != 0).count() > 300);
        let whole = [(0, old.len() as u64)];
        let dec =
            || OpDecoder::for_streams(&streams, 0, new.len() as u64, old.len() as u64, &whole);
        assert_eq!(
            to_bytes(&got, dec, |o, l| &old[o as usize..o as usize + l]).unwrap(),
            streams.diff
        );
    }

    /// `br_table`s whose lists never end (a huge count, then LEB128s up
    /// to the end of the source) are read once: with the list refused and
    /// the walk going on at the next byte, each of these 64 KiB would read
    /// the rest of the source again (minutes here). The instruction ends
    /// before the LEB128 the source cuts.
    #[test]
    fn endless_lists_are_read_once() {
        let mut src = Vec::new();
        while src.len() < 1 << 16 {
            src.extend_from_slice(&[0x0E, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x42, 0x05]);
        }
        src.push(0x80);
        let start = std::time::Instant::now();
        let mut n = 0;
        scan(&src, |_, _| n += 1);
        // The first list takes everything, up to the cut LEB128 at the
        // end: no field is found.
        assert_eq!(n, 0);
        assert_eq!(instr_len(&src), Some(src.len() - 1));
        assert!(start.elapsed().as_secs() < 5);
    }

    /// A `select` (0x1C) whose count is near 2^64 is cut by the source:
    /// the opcode alone.
    #[test]
    fn huge_counts_are_cut() {
        let mut src = vec![0x1C];
        src.extend_from_slice(&[0xFF; 9]);
        src.push(0x01);
        src.extend_from_slice(&[0x42, 0x07]);
        assert_eq!(instr_len(&src), None);
        let mut got = Vec::new();
        scan(&src, |k, n| got.push((k, n)));
        assert_eq!(got, naive_fields(&src));
        assert_eq!(got, vec![(12, 1)]);
    }

    /// Detection: the magic and version 1.
    #[test]
    fn detects_modules() {
        assert!(looks_like_wasm(b"\0asm\x01\0\0\0\x01\x05"));
        assert!(!looks_like_wasm(b"\0asm\x02\0\0\0"));
        assert!(!looks_like_wasm(b"\x7fELF"));
    }
}
