//! Thumb-2 branch instructions: the ADD mode `thumb2` (format version 11).
//!
//! Most 32-bit ARM code of current devices (armhf Linux distributions,
//! Cortex-M firmware) is Thumb-2: 16-bit instructions mixed with 32-bit
//! ones made of two little-endian halfwords. Moved Thumb-2 code changes
//! the PC-relative immediates of its calls and long branches (`BL`, `BLX`
//! to A32 code, `B.W`: 24 bits split over the two halfwords, in the `S`,
//! `J1`, `J2`, `imm10` and `imm11` fields). As the A32 mode does for its
//! branches ([`crate::armv7`]), this mode stores each such instruction's
//! change as a 32-bit word, predicted first, so that code that only moved
//! costs zero diff bytes.
//!
//! Instructions are 2-byte aligned, and a first halfword whose top five
//! bits are `0b11101`, `0b11110` or `0b11111` starts a 32-bit
//! instruction; every other halfword is a 16-bit instruction. For one ADD
//! op reading OLD at `p` (its *source*, `len` bytes) into NEW at `q`, with
//! shift `s_op = q − p`, the walk starts at `k = p mod 2` (so that `p + k`
//! is even) and, while `k + 4 ≤ len`, looks at the instruction at `k`: a
//! 16-bit one is stepped over (`k += 2`); a 32-bit one is read as the
//! little-endian word `w` (its first halfword in the low 16 bits; then `k
//! += 4`). Positions in OLD and NEW are file offsets, used as if they were
//! addresses. With `pc = p + k`, `w` is a *branch* when `w & 0xD000F800`
//! is:
//!
//! * `0xD000F000` (`BL`) or `0x9000F000` (`B.W`, encoding T4): OLD target
//!   `t = pc + 4 + imm`;
//! * `0xC000F000` with bit 16 clear (`BLX`, to A32 code): `t = (pc + 4) &
//!   !3 + imm`,
//!
//! with `imm` the 25-bit signed offset `S:I1:I2:imm10:imm11:0` (`S` bit
//! 10, `imm10` bits 9..0, `J1` bit 29, `J2` bit 27, `imm11` bits 26..16,
//! `I1 = !(J1 ^ S)`, `I2 = !(J2 ^ S)`).
//!
//! The *shift* `s` of a target `t` (where its bytes went: NEW − OLD) is,
//! in this order: the shift learned for exactly `t` by an earlier branch
//! of the chunk; the op map's (`OpMap`, as for the operand modes); the
//! shift learned for the greatest target below `t`; otherwise none. Each
//! branch, once its NEW word `n` is known (as the decoder knows it, after
//! adding the stored difference), teaches the shift of its OLD target when
//! `n & 0xD000F800` is `w`'s: `base' + imm(n) − t`, with `base'` the NEW
//! instruction's `pc + s_op + 4` (`&` `!3` for `BLX`). At most
//! [`MAX_LEARNED`] targets are learned; past that only known targets are
//! updated.
//!
//! * **Prediction.** With `s` known, `d = t + s − base'`; when `d` is even
//!   (`BL`, `B.W`) or a multiple of 4 (`BLX`), `w` with the offset `d`
//!   (modulo 2^25) in its offset fields; otherwise `w`.
//! * **Stream.** First `NEW word − prediction` (modulo 2^32, little-endian)
//!   of every branch of every ADD, in op order; then the byte-wise diff
//!   (`NEW − OLD` modulo 256) of every other ADD byte, in op order. It is
//!   exactly as long as the ADDs.
//!
//! Bounds: the op map as for the operand modes ([`crate::operand`]), and
//! one learned table of at most [`MAX_LEARNED`] entries (counted within
//! the arm64 mode's bound, [`learned_bound`]).

use crate::Result;
use crate::ops::OpDecoder;
use crate::predicted::{self, Learned, OpMap, Walk, word};

/// Most targets learned in one chunk: the arm64 mode's cap per kind.
pub const MAX_LEARNED: usize = crate::arm64::MAX_LEARNED;

/// Bytes the learned table of a chunk of `new_len` bytes may hold: at most
/// one entry per 4 NEW bytes and [`MAX_LEARNED`]; counted as the arm64
/// mode's two tables ([`crate::arm64::learned_bound`]), twice what it
/// needs.
pub fn learned_bound(new_len: u64) -> u64 {
    crate::arm64::learned_bound(new_len)
}

/// The bits that name a branch's kind: the first halfword's top five bits
/// and bits 15, 14 and 12 of the second.
const KIND: u32 = 0xD000_F800;
const BL: u32 = 0xD000_F000;
const BW: u32 = 0x9000_F000;
const BLX: u32 = 0xC000_F000;

/// Whether the halfword `h` starts a 32-bit instruction.
#[inline(always)]
fn is_wide(h: u16) -> bool {
    h >> 11 >= 0b11101
}

/// The halfword at the start of `b`.
#[inline(always)]
fn half(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

/// Whether `w` is a branch the mode predicts.
#[inline(always)]
fn is_branch(w: u32) -> bool {
    let k = w & KIND;
    k == BL || k == BW || (k == BLX && w & 0x1_0000 == 0)
}

/// The offset `S:I1:I2:imm10:imm11:0` of a branch word, sign-extended.
fn imm(w: u32) -> i64 {
    let s = (w >> 10) & 1;
    let i1 = !((w >> 29) ^ s) & 1;
    let i2 = !((w >> 27) ^ s) & 1;
    let v = s << 24 | i1 << 23 | i2 << 22 | (w & 0x3FF) << 12 | ((w >> 16) & 0x7FF) << 1;
    i64::from(((v << 7) as i32) >> 7)
}

/// Branch `w` with offset `d` (its bit 0 and bits above 24 dropped).
fn with_imm(w: u32, d: i64) -> u32 {
    let v = d as u32;
    let s = (v >> 24) & 1;
    let j1 = !((v >> 23) ^ s) & 1;
    let j2 = !((v >> 22) ^ s) & 1;
    (w & KIND) | s << 10 | (v >> 12) & 0x3FF | j1 << 29 | j2 << 27 | ((v >> 1) & 0x7FF) << 16
}

/// The address a branch of kind `w` at `pc` adds its offset to, and the
/// alignment its offset must have.
fn base(w: u32, pc: i64) -> (i64, i64) {
    if w & KIND == BLX {
        (pc.wrapping_add(4) & !3, 4)
    } else {
        (pc.wrapping_add(4), 2)
    }
}

/// The prediction state of one chunk: its op map and the learned shifts.
pub(crate) struct Predictor<'m> {
    map: &'m OpMap,
    learned: Learned,
}

impl<'m> Predictor<'m> {
    pub(crate) fn new(map: &'m OpMap) -> Predictor<'m> {
        Predictor {
            map,
            learned: Learned::new(MAX_LEARNED),
        }
    }
}

/// Calls `f(k, w)` for every branch word `w` of an ADD source `src` whose
/// first byte is at OLD `p`, in order: the walk of the module docs.
fn scan(src: &[u8], p: u64, mut f: impl FnMut(usize, u32)) {
    let mut k = (p % 2) as usize;
    while k + 4 <= src.len() {
        if !is_wide(half(&src[k..])) {
            k += 2;
            continue;
        }
        let w = word(&src[k..]);
        if is_branch(w) {
            f(k, w);
        }
        k += 4;
    }
}

/// The walk of the module docs: later predictions learn from the NEW
/// words `f` returns.
impl Walk for Predictor<'_> {
    fn count(src: &[u8], p: u64) -> usize {
        let mut n = 0;
        scan(src, p, |_, _| n += 1);
        n
    }

    fn op(&mut self, src: &[u8], p: u64, q: u64, mut f: impl FnMut(usize, u32) -> u32) {
        let s_op = (q as i64).wrapping_sub(p as i64);
        scan(src, p, |k, w| {
            let pc = (p as i64).wrapping_add(k as i64);
            let t = base(w, pc).0.wrapping_add(imm(w));
            let (new_base, align) = base(w, pc.wrapping_add(s_op));
            // Learning what is known changes nothing: one search of the
            // table fewer for a branch to a known target.
            let known = self.learned.exact(t);
            let shift = known
                .or_else(|| self.map.lookup(t))
                .or_else(|| self.learned.below(t));
            let pred = match shift {
                Some(s) => {
                    let d = t.wrapping_add(s).wrapping_sub(new_base);
                    if d & (align - 1) == 0 {
                        with_imm(w, d)
                    } else {
                        w
                    }
                }
                None => w,
            };
            let nw = f(k, pred);
            if nw & KIND == w & KIND {
                let s = new_base.wrapping_add(imm(nw)).wrapping_sub(t);
                if known != Some(s) {
                    self.learned.learn(t, s);
                }
            }
        });
    }
}

/// Whether a chunk's ADD sources `(OLD start, length)` look like Thumb-2
/// code, cheaply: walked as the mode walks them, at least one instruction
/// in 50 is a `BL` or `BLX` whose target lies inside OLD and within 4 MiB
/// (`J1` and `J2` set). See FORMAT.md ("Thumb-2 branches") for the
/// figures. The encoder tries the mode only then; it keeps it only where
/// it compresses smaller.
pub fn looks_like_code(adds: impl Iterator<Item = (usize, usize)>, old: &[u8]) -> bool {
    let (mut insns, mut calls) = (0usize, 0usize);
    for (o, l) in adds {
        let src = &old[o..o + l];
        let mut k = o % 2;
        while k + 4 <= src.len() {
            insns += 1;
            if !is_wide(half(&src[k..])) {
                k += 2;
                continue;
            }
            let w = word(&src[k..]);
            let kind = w & KIND;
            if (kind == BL || kind == BLX) && w & 0x2800_0000 == 0x2800_0000 {
                let t = base(w, (o + k) as i64).0 + imm(w);
                calls += usize::from((0..old.len() as i64).contains(&t));
            }
            k += 4;
        }
    }
    insns > 0 && calls * 50 >= insns
}

/// The mode's diff stream for ADDs `(OLD start, length, offset in the
/// chunk)` of a chunk of `new_chunk` at NEW offset `start`, with `map` the
/// chunk's op map.
pub(crate) fn encode(
    map: &OpMap,
    adds: &[(usize, usize, usize)],
    old: &[u8],
    new_chunk: &[u8],
    start: u64,
) -> Vec<u8> {
    predicted::encode(&mut Predictor::new(map), adds, old, new_chunk, start)
}

/// The byte-wise diff (`NEW − OLD` per byte, in op order) that the mode's
/// stream `stored` stands for. `dec` yields the chunk's ops (NEW at
/// `new_start`), `src(old, len)` an ADD's OLD source. A stream whose length
/// is not the ADDs' is an error.
pub(crate) fn to_bytes<'d, 'o>(
    stored: &[u8],
    dec: impl Fn() -> OpDecoder<'d>,
    new_start: u64,
    src: impl Fn(u64, usize) -> &'o [u8],
) -> Result<Vec<u8>> {
    let map = OpMap::from_ops(dec(), new_start)?;
    predicted::to_bytes(&mut Predictor::new(&map), stored, dec, new_start, src)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{ChunkEncoder, Op, Streams};
    use proptest::prelude::*;

    /// A branch's offset by the Arm manual's words, bit by bit, in wide
    /// integers: `S:I1:I2:imm10:imm11:0`.
    fn naive_imm(w: u32) -> i128 {
        let (h1, h2) = (w & 0xFFFF, w >> 16);
        let bit = |h: u32, i: u32| i128::from((h >> i) & 1);
        let s = bit(h1, 10);
        let i1 = 1 - (bit(h2, 13) ^ s);
        let i2 = 1 - (bit(h2, 11) ^ s);
        let mut v = 0i128;
        for i in 0..11 {
            v += bit(h2, i) << (i + 1);
        }
        for i in 0..10 {
            v += bit(h1, i) << (i + 12);
        }
        v + (i2 << 22) + (i1 << 23) - (s << 24)
    }

    /// `w` with offset `d` written back field by field.
    fn naive_with(w: u32, d: i128) -> u32 {
        let v = d.rem_euclid(1 << 25) as u32;
        let s = v >> 24;
        let (i1, i2) = ((v >> 23) & 1, (v >> 22) & 1);
        let h1 = (w & 0xF800) | s << 10 | (v >> 12) & 0x3FF;
        let h2 =
            (w >> 16) & 0xD000 | (1 - (i1 ^ s)) << 13 | (1 - (i2 ^ s)) << 11 | (v >> 1) & 0x7FF;
        h1 | h2 << 16
    }

    /// The mode's stream by the module docs' words, with linear searches
    /// and 128-bit arithmetic: the oracle for [`encode`]. `ops` are the
    /// chunk's `(OLD start, length, NEW offset)` of COPY and ADD, `adds`
    /// its ADDs as `(OLD start, length, offset in the chunk)`.
    fn naive_encode(
        ops: &[(u64, u64, u64)],
        adds: &[(usize, usize, usize)],
        old: &[u8],
        new_chunk: &[u8],
        start: u64,
    ) -> Vec<u8> {
        let mut learned: Vec<(i128, i128)> = Vec::new();
        let wd = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let (mut words, mut rest) = (Vec::new(), Vec::new());
        for &(o, l, at) in adds {
            let (src, dst) = (&old[o..o + l], &new_chunk[at..at + l]);
            let (p, q) = (o as i128, (start + at as u64) as i128);
            let s_op = q - p;
            let mut is_word = vec![false; l];
            let mut k = o % 2;
            while k + 4 <= l {
                let h1 = u32::from(src[k]) | u32::from(src[k + 1]) << 8;
                if h1 >> 11 < 29 {
                    k += 2;
                    continue;
                }
                let (w, nw) = (wd(src, k), wd(dst, k));
                let h2 = w >> 16;
                let blx = h2 & 0xD001 == 0xC000;
                let branch = h1 >> 11 == 30 && (h2 & 0x9000 == 0x9000 || blx);
                if !branch {
                    k += 4;
                    continue;
                }
                let pc = p + k as i128;
                let base = |pc: i128| if blx { (pc + 4) / 4 * 4 } else { pc + 4 };
                let t = base(pc) + naive_imm(w);
                let new_base = base(pc + s_op);
                let shift = learned
                    .iter()
                    .find(|e| e.0 == t)
                    .map(|e| e.1)
                    .or_else(|| predicted::naive_mapped(ops, t))
                    .or_else(|| {
                        learned
                            .iter()
                            .filter(|e| e.0 < t)
                            .max_by_key(|e| e.0)
                            .map(|e| e.1)
                    });
                let align = if blx { 4 } else { 2 };
                let pred = match shift {
                    Some(s) if (t + s - new_base) % align == 0 => naive_with(w, t + s - new_base),
                    _ => w,
                };
                words.extend_from_slice(&nw.wrapping_sub(pred).to_le_bytes());
                is_word[k..k + 4].fill(true);
                if nw & 0xD000_F800 == w & 0xD000_F800 {
                    let s = new_base + naive_imm(nw) - t;
                    if let Some(e) = learned.iter_mut().find(|e| e.0 == t) {
                        e.1 = s;
                    } else if learned.len() < MAX_LEARNED {
                        learned.push((t, s));
                    }
                }
                k += 4;
            }
            for i in 0..l {
                if !is_word[i] {
                    rest.push(dst[i].wrapping_sub(src[i]));
                }
            }
        }
        words.extend_from_slice(&rest);
        words
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

    /// A Thumb-2 branch of kind `op` (`BL`, `BW` or `BLX`) at `pc` to
    /// `to`, by the Arm manual's rule.
    fn branch(op: u32, pc: i64, to: i64) -> u32 {
        let base = if op == BLX { (pc + 4) & !3 } else { pc + 4 };
        naive_with(op, i128::from(to - base))
    }

    /// Thumb-2-like halfwords: 16-bit instructions, calls and branches
    /// (BL, BLX, B.W) to nearby targets, other 32-bit instructions,
    /// random halfwords.
    fn code(seed: u64, len: usize) -> Vec<u8> {
        let mut r = Rng(seed | 1);
        let mut out: Vec<u8> = Vec::new();
        while out.len() < len {
            let pc = out.len() as i64;
            match r.below(8) {
                0 | 1 => {
                    let op = [BL, BL, BW, BLX][r.below(4) as usize];
                    let to = pc + 2 * (r.below(2048) as i64 - 1024);
                    out.extend_from_slice(&branch(op, pc, to).to_le_bytes());
                }
                2 => out.extend_from_slice(
                    &(0xF8D0_E92D ^ (r.next() as u32 & 0x0FFF_000F)).to_le_bytes(),
                ),
                3 => out.extend_from_slice(&(r.next() as u16).to_le_bytes()),
                _ => out.extend_from_slice(&((r.next() as u16) % 0xE800).to_le_bytes()),
            }
        }
        out.truncate(len);
        out
    }
    /// A chunk of ops `plan` (`kind` 0 ADD, 1 COPY, 2 INSERT; OLD start,
    /// length) over `old`, NEW made by them with `edits` applied: NEW, its
    /// streams, its COPY/ADD `(OLD, length, NEW)` and its ADDs.
    #[allow(clippy::type_complexity)]
    fn chunk(
        old: &[u8],
        plan: &[(u8, usize, usize)],
        edits: &[(usize, u32)],
        start: u64,
    ) -> (
        Vec<u8>,
        Streams,
        Vec<(u64, u64, u64)>,
        Vec<(usize, usize, usize)>,
    ) {
        let mut new = vec![0u8; start as usize];
        for &(kind, o, l) in plan {
            match kind {
                2 => new.extend((0..l).map(|i| (i * 31 + o) as u8)),
                _ => new.extend_from_slice(&old[o..o + l]),
            }
        }
        let n = new.len() - start as usize;
        for &(at, d) in edits {
            if n >= 4 {
                let i = start as usize + at % (n - 3);
                let w = u32::from_le_bytes(new[i..i + 4].try_into().unwrap()).wrapping_add(d);
                new[i..i + 4].copy_from_slice(&w.to_le_bytes());
            }
        }
        let mut enc = ChunkEncoder::new(old, &new, start);
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
        let dec = OpDecoder::for_streams(&streams, start, n as u64, old.len() as u64, &whole);
        let (mut ops, mut adds) = (Vec::new(), Vec::new());
        let mut pos = 0;
        for op in dec {
            let op = op.unwrap();
            if let Some((o, l)) = op.old_range() {
                ops.push((o, l, start + pos));
            }
            if let Op::Add { old, len } = op {
                adds.push((old as usize, len as usize, pos as usize));
            }
            pos += op.len();
        }
        (new, streams, ops, adds)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// `encode` is the definition (naive oracle), and `to_bytes`
        /// turns it back into the byte-wise diff, for any ops over
        /// Thumb-2-like code with edits, at any chunk offset.
        #[test]
        fn encode_is_the_definition_and_inverts(
            seed in 1u64..u64::MAX,
            plan in proptest::collection::vec((0u8..3, 0usize..3500, 1usize..600), 1..14),
            edits in proptest::collection::vec((0usize..100_000, any::<u32>()), 0..40),
            start in 0u64..9,
        ) {
            let old = code(seed, 4099);
            let plan: Vec<_> = plan.into_iter().map(|(k, o, l)| (k, o, l.min(old.len() - o))).collect();
            let (new, streams, ops, adds) = chunk(&old, &plan, &edits, start);
            let chunk_new = &new[start as usize..];
            let whole = [(0, old.len() as u64)];
            let dec = || OpDecoder::for_streams(&streams, start, chunk_new.len() as u64, old.len() as u64, &whole);
            let map = OpMap::from_ops(dec(), start).unwrap();
            let got = encode(&map, &adds, &old, chunk_new, start);
            prop_assert_eq!(&got, &naive_encode(&ops, &adds, &old, chunk_new, start));
            let back = to_bytes(&got, dec, start, |o, l| &old[o as usize..o as usize + l]).unwrap();
            prop_assert_eq!(&back, &streams.diff);
        }

        /// Random halfword streams (every bit pattern, so every kind of
        /// branch and every offset) under any op map: the stream inverts.
        #[test]
        fn random_halfwords_invert(
            old in proptest::collection::vec(any::<u8>(), 64..2000),
            plan in proptest::collection::vec((0u8..3, 0usize..2000, 1usize..400), 1..10),
            edits in proptest::collection::vec((0usize..100_000, any::<u32>()), 0..20),
            start in 0u64..5,
        ) {
            let plan: Vec<_> = plan.into_iter().map(|(k, o, l)| {
                let o = o % old.len();
                (k, o, l.min(old.len() - o))
            }).collect();
            let (new, streams, ops, adds) = chunk(&old, &plan, &edits, start);
            let chunk_new = &new[start as usize..];
            let whole = [(0, old.len() as u64)];
            let dec = || OpDecoder::for_streams(&streams, start, chunk_new.len() as u64, old.len() as u64, &whole);
            let map = OpMap::from_ops(dec(), start).unwrap();
            let got = encode(&map, &adds, &old, chunk_new, start);
            prop_assert_eq!(&got, &naive_encode(&ops, &adds, &old, chunk_new, start));
            let back = to_bytes(&got, dec, start, |o, l| &old[o as usize..o as usize + l]).unwrap();
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
            let plan: Vec<_> = plan.into_iter().enumerate().map(|(i, (k, o, l))| (if i == 0 { 0 } else { k }, o, l.min(old.len() - o))).collect();
            let (new, streams, _, _) = chunk(&old, &plan, &[(7, 1)], 0);
            prop_assert!(!streams.diff.is_empty());
            let whole = [(0, old.len() as u64)];
            let dec = || OpDecoder::for_streams(&streams, 0, new.len() as u64, old.len() as u64, &whole);
            let mut stored: Vec<u8> = (0..streams.diff.len()).map(|i| noise[i % noise.len()]).collect();
            prop_assert!(to_bytes(&stored, dec, 0, |o, l| &old[o as usize..o as usize + l]).is_ok());
            stored.truncate(stored.len().saturating_sub(cut));
            stored.extend(std::iter::repeat_n(0, if cut == 0 { 1 } else { 0 }));
            prop_assert!(to_bytes(&stored, dec, 0, |o, l| &old[o as usize..o as usize + l]).is_err());
        }

        /// The offset fields read back what was written, for every kind
        /// and every even offset in range (multiples of 4 for BLX).
        #[test]
        fn offsets_round_trip(raw in any::<u32>(), d in -(1i64 << 23)..(1i64 << 23), kind in 0usize..3) {
            let op = [BL, BW, BLX][kind];
            let w = (raw & !(KIND | 1 << 16)) | op;
            let d = if op == BLX { d & !3 } else { d & !1 };
            prop_assert!(is_branch(w));
            prop_assert_eq!(i128::from(imm(w)), naive_imm(w));
            prop_assert_eq!(with_imm(w, imm(w)), w);
            prop_assert_eq!(imm(with_imm(w, d)), d);
            prop_assert_eq!(with_imm(w, d), naive_with(w, i128::from(d)));
        }
    }

    /// Code that moved, calling (BL), branching (B.W) to and calling into
    /// A32 (BLX) functions that moved by other amounts, costs zero words;
    /// 16-bit instructions between them are stepped over, and a 32-bit
    /// instruction that is no branch is not predicted.
    #[test]
    fn moved_targets_predict_zero() {
        let code = |base: i64, callee: i64, a32: i64| {
            let mut out = Vec::new();
            out.extend_from_slice(&0xB580u16.to_le_bytes()); // push {r7, lr}
            out.extend_from_slice(&branch(BL, base + 2, callee).to_le_bytes());
            out.extend_from_slice(&0x4608u16.to_le_bytes()); // mov r0, r1
            out.extend_from_slice(&branch(BLX, base + 8, a32).to_le_bytes());
            out.extend_from_slice(&0x1004_F8D0u32.to_le_bytes()); // ldr.w r1, [r0, #4]
            out.extend_from_slice(&branch(BW, base + 16, callee + 2).to_le_bytes());
            out.extend_from_slice(&0xBD80u16.to_le_bytes()); // pop {r7, pc}
            out
        };
        let n = code(0, 0, 0).len();
        let mut old = vec![0u8; 0x4000];
        old[..n].copy_from_slice(&code(0, 0x3000, 0x3800));
        for (i, x) in old[0x3000..].iter_mut().enumerate() {
            *x = (i * 7 % 251) as u8;
        }
        let (dc, df) = (0x42usize, 0x12Cusize);
        let mut new = vec![0u8; 0x4000 + df];
        new[dc..dc + n].copy_from_slice(&code(dc as i64, 0x3000 + df as i64, 0x3800 + df as i64));
        new[0x3000 + df..].copy_from_slice(&old[0x3000..]);
        let mut e = ChunkEncoder::new(&old, &new, 0);
        e.push(Op::Insert { len: dc as u64 });
        e.push(Op::Add {
            old: 0,
            len: n as u64,
        });
        e.push(Op::Insert {
            len: (0x3000 + df - dc - n) as u64,
        });
        e.push(Op::Copy {
            old: 0x3000,
            len: 0x1000,
        });
        let (streams, _) = e.finish();
        let whole = [(0, old.len() as u64)];
        let dec =
            || OpDecoder::for_streams(&streams, 0, new.len() as u64, old.len() as u64, &whole);
        let map = OpMap::from_ops(dec(), 0).unwrap();
        assert_eq!(Predictor::count(&old[..n], 0), 3);
        let got = encode(&map, &[(0, n, dc)], &old, &new, 0);
        assert!(got.iter().all(|&x| x == 0), "{got:?}");
        assert!(streams.diff.iter().filter(|&&x| x != 0).count() >= 3);
        assert_eq!(
            to_bytes(&got, dec, 0, |o, l| &old[o as usize..o as usize + l]).unwrap(),
            streams.diff
        );
    }

    /// The trigger: Thumb-2-like code passes; A32 code (calls with the
    /// condition "always") and bytes with random calls far away do not.
    #[test]
    fn looks_like_code_on_kinds() {
        let t32 = code(7, 20_000);
        assert!(looks_like_code([(0, t32.len())].into_iter(), &t32));
        let a32: Vec<u8> = (0..5000u32)
            .flat_map(|i| {
                let w = if i % 8 == 0 {
                    0xEB00_0000 | (i & 0xFF)
                } else {
                    0xE1A0_0000 | i
                };
                w.to_le_bytes()
            })
            .collect();
        assert!(!looks_like_code([(0, a32.len())].into_iter(), &a32));
        let mut r = Rng(99);
        let noise: Vec<u8> = (0..20_000).map(|_| r.next() as u8).collect();
        assert!(!looks_like_code([(0, noise.len())].into_iter(), &noise));
        assert!(!looks_like_code(std::iter::empty(), &t32));
    }
}
