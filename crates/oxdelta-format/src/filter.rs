//! How a chunk's diff stream is coded (format version 2): the arithmetic
//! ADD uses ([`AddMode`]), the order of the diff bytes ([`split`]) and their
//! run layout ([`DiffFilter`]).
//!
//! **Arithmetic.** Version 1's ADD adds each diff byte to its OLD byte.
//! When code or data moves, stored addresses and offsets change by the same
//! amount, but per byte that constant becomes a varying pattern (a carry
//! reaches the next byte in some words and not in others). With
//! [`AddMode::Words32`] ADD adds 32-bit little-endian words aligned on NEW
//! offsets, so a table of shifted pointers yields one repeated word. On the
//! so-lib corpus pair (a shared library) this made the compressed diff
//! stream 11% smaller; on executables' code bytes it is larger, so the
//! differ chooses per chunk.
//!
//! **Layout.**
//! ADD's diff bytes are mostly zero with sparse changes (relocated addresses
//! in moved code, shifted offsets in tables). A general-purpose compressor
//! spends most of its time and a good part of its output on the zero runs:
//! zstd level 19 took 2.9 s and 102.6 kB on one 3.7 MB chunk of the exe-go
//! pair's diff bytes, while the same bytes written as run lengths plus the
//! non-zero bytes took 0.1 s and 88.0 kB. So before compression the diff
//! stream is rewritten as runs, in one of two layouts:
//!
//! * [`DiffFilter::Runs`]: `varint a ‖ varint b ‖ A ‖ B ‖ N`, where `A` is
//!   the varints of every zero-run length, `B` the varints of every
//!   non-zero-run length (`a` and `b` are their byte lengths) and `N` the
//!   non-zero bytes. Best where the zero runs have their own statistics
//!   (executables).
//! * [`DiffFilter::Tokens`]: one token per run pair, `varint zeros ‖ varint
//!   n ‖ n bytes`, back to back. Best on tables with a fixed stride, where a
//!   run length and the bytes after it repeat together (shared libraries).
//!
//! The differ compresses each layout and keeps the smallest (including the
//! unfiltered stream when the diff bytes are dense). Decoding is one pass
//! that writes at most the chunk's NEW length of bytes, so a filter adds a
//! buffer of at most [`crate::limits::MAX_CHUNK_NEW_LEN`] to a chunk's decode
//! memory; a filtered stream is at most [`max_filtered_len`] bytes.

use crate::cursor::{Cursor, put_varint};
use crate::error::{Error, ErrorKind, Result};

/// How ADD combines OLD bytes with diff bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AddMode {
    /// Byte by byte, modulo 256 (the only mode of format version 1).
    #[default]
    Bytes,
    /// 32-bit little-endian words modulo 2^32, for every word that lies
    /// wholly inside the op and starts at a NEW offset that is a multiple of
    /// 4; the op's other bytes (at most 3 at each end) byte by byte.
    Words32,
    /// Operand words predicted from the chunk's ops, misses relative to
    /// the OLD word (format version 3; [`crate::operand`]). Per op, once
    /// [`crate::ops::diff_in_op_order`] has turned the stream into
    /// byte-wise diffs, it adds byte by byte.
    Operands,
    /// As [`AddMode::Operands`], misses relative to the OLD word moved by
    /// the op's shift (absolute targets).
    OperandsAbs,
    /// AArch64 instruction words (branches, ADRP and the low parts paired
    /// with it) predicted from the chunk's ops and from the words already
    /// decoded (format version 6; [`crate::arm64`]). Like the operand
    /// modes, its stream is turned into byte-wise diffs first.
    Arm64,
    /// WebAssembly `i64.const` operands predicted from the constants
    /// already decoded (format version 8; [`crate::wasm`]). Like the
    /// operand modes, its stream is turned into byte-wise diffs first.
    Wasm,
    /// The operands of [`AddMode::Operands`], predicted from shifts
    /// learned from the words already decoded before the op map (format
    /// version 9; [`crate::operand`]).
    OperandsLearned,
    /// RISC-V instruction words (JAL, AUIPC and the low parts paired with
    /// it) predicted from the chunk's ops and from the words already
    /// decoded (format version 10; [`crate::riscv`]). Like the operand
    /// modes, its stream is turned into byte-wise diffs first.
    Riscv,
    /// ARMv7 (A32) branch words (B, BL) predicted from the chunk's ops and
    /// from the words already decoded (format version 10;
    /// [`crate::armv7`]). Like the operand modes, its stream is turned
    /// into byte-wise diffs first.
    Armv7,
    /// Thumb-2 branch instructions (BL, BLX, B.W) predicted from the
    /// chunk's ops and from the instructions already decoded (format
    /// version 11; [`crate::thumb2`]). Like the operand modes, its stream
    /// is turned into byte-wise diffs first.
    Thumb2,
}

impl AddMode {
    /// Every mode, in id order.
    pub const ALL: [AddMode; 10] = [
        AddMode::Bytes,
        AddMode::Words32,
        AddMode::Operands,
        AddMode::OperandsAbs,
        AddMode::Arm64,
        AddMode::Wasm,
        AddMode::OperandsLearned,
        AddMode::Riscv,
        AddMode::Armv7,
        AddMode::Thumb2,
    ];

    /// The modes whose stream is word-wise per op (format version 2).
    pub const PER_OP: [AddMode; 2] = [AddMode::Bytes, AddMode::Words32];

    /// Whether this is an operand mode (format version 3), whose stream
    /// [`crate::ops::diff_in_op_order`] turns into byte-wise diffs.
    pub fn is_operands(self) -> bool {
        matches!(self, AddMode::Operands | AddMode::OperandsAbs)
    }

    /// Whether the mode predicts words or fields (the operand modes,
    /// [`AddMode::Arm64`], [`AddMode::Wasm`], [`AddMode::OperandsLearned`],
    /// [`AddMode::Riscv`], [`AddMode::Armv7`] and [`AddMode::Thumb2`]): its
    /// stream is not in op order, the
    /// operand split may not accompany it, and an applier holds the
    /// prediction's state (the op map, learned shifts).
    pub fn is_predicted(self) -> bool {
        self.is_operands()
            || matches!(
                self,
                AddMode::Arm64
                    | AddMode::Wasm
                    | AddMode::OperandsLearned
                    | AddMode::Riscv
                    | AddMode::Armv7
                    | AddMode::Thumb2
            )
    }

    /// The lowest format version that has this mode.
    pub fn min_version(self) -> u16 {
        match self {
            AddMode::Bytes => 1,
            AddMode::Words32 => 2,
            AddMode::Operands | AddMode::OperandsAbs => 3,
            AddMode::Arm64 => 6,
            AddMode::Wasm => 8,
            AddMode::OperandsLearned => 9,
            AddMode::Riscv | AddMode::Armv7 => 10,
            AddMode::Thumb2 => 11,
        }
    }

    /// The mode's id (the high four bits of the chunk table's byte 13).
    pub fn id(self) -> u8 {
        match self {
            AddMode::Bytes => 0,
            AddMode::Words32 => 1,
            AddMode::Operands => 2,
            AddMode::OperandsAbs => 3,
            AddMode::Arm64 => 4,
            AddMode::Wasm => 5,
            AddMode::OperandsLearned => 6,
            AddMode::Riscv => 7,
            AddMode::Armv7 => 8,
            AddMode::Thumb2 => 9,
        }
    }

    /// The mode with id `id`.
    pub fn from_id(id: u8) -> Option<AddMode> {
        AddMode::ALL.into_iter().find(|m| m.id() == id)
    }

    /// Name, as shown by tools.
    pub fn name(self) -> &'static str {
        match self {
            AddMode::Bytes => "bytes",
            AddMode::Words32 => "words32",
            AddMode::Operands => "operands",
            AddMode::OperandsAbs => "operands-abs",
            AddMode::Arm64 => "arm64",
            AddMode::Wasm => "wasm",
            AddMode::OperandsLearned => "operands-learned",
            AddMode::Riscv => "riscv",
            AddMode::Armv7 => "armv7",
            AddMode::Thumb2 => "thumb2",
        }
    }

    /// Where the word-aligned middle of an op of `len` bytes starting at
    /// NEW offset `new_pos` lies: `(head, body)` bytes. [`AddMode::Words32`]
    /// adds the body word by word; an encoder that makes an op's diff in
    /// blocks cuts them on this grid.
    pub fn split(new_pos: u64, len: usize) -> (usize, usize) {
        let head = ((4 - new_pos % 4) % 4) as usize;
        let head = head.min(len);
        (head, (len - head) / 4 * 4)
    }

    /// `dst = src + diff` for an ADD whose first NEW byte is at `new_pos`.
    /// The three slices have the same length.
    pub fn add(self, dst: &mut [u8], src: &[u8], diff: &[u8], new_pos: u64) {
        let bytes = |dst: &mut [u8], src: &[u8], diff: &[u8]| {
            for ((d, s), x) in dst.iter_mut().zip(src).zip(diff) {
                *d = s.wrapping_add(*x);
            }
        };
        match self {
            AddMode::Bytes
            | AddMode::Operands
            | AddMode::OperandsAbs
            | AddMode::Arm64
            | AddMode::Wasm
            | AddMode::OperandsLearned
            | AddMode::Riscv
            | AddMode::Armv7
            | AddMode::Thumb2 => bytes(dst, src, diff),
            AddMode::Words32 => {
                let (head, body) = Self::split(new_pos, dst.len());
                let (dh, rest) = dst.split_at_mut(head);
                let (db, dt) = rest.split_at_mut(body);
                bytes(dh, &src[..head], &diff[..head]);
                let (sb, xb) = (&src[head..head + body], &diff[head..head + body]);
                for ((d, s), x) in db
                    .chunks_exact_mut(4)
                    .zip(sb.chunks_exact(4))
                    .zip(xb.chunks_exact(4))
                {
                    let w = u32::from_le_bytes([s[0], s[1], s[2], s[3]])
                        .wrapping_add(u32::from_le_bytes([x[0], x[1], x[2], x[3]]));
                    d.copy_from_slice(&w.to_le_bytes());
                }
                bytes(dt, &src[head + body..], &diff[head + body..]);
            }
        }
    }

    /// [`AddMode::sub`] written into `out` (the length of `new` and `old`)
    /// instead of appended: the encoder's block-wise form, in loops over
    /// slices that the compiler vectorises (tested equal to `sub`).
    pub fn sub_into(self, out: &mut [u8], new: &[u8], old: &[u8], new_pos: u64) {
        let bytes = |out: &mut [u8], new: &[u8], old: &[u8]| {
            for ((d, n), o) in out.iter_mut().zip(new).zip(old) {
                *d = n.wrapping_sub(*o);
            }
        };
        match self {
            AddMode::Bytes
            | AddMode::Operands
            | AddMode::OperandsAbs
            | AddMode::Arm64
            | AddMode::Wasm
            | AddMode::OperandsLearned
            | AddMode::Riscv
            | AddMode::Armv7
            | AddMode::Thumb2 => bytes(out, new, old),
            AddMode::Words32 => {
                let (head, body) = Self::split(new_pos, new.len());
                let (oh, rest) = out.split_at_mut(head);
                let (ob, ot) = rest.split_at_mut(body);
                bytes(oh, &new[..head], &old[..head]);
                let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                for ((d, n), o) in ob
                    .chunks_exact_mut(4)
                    .zip(new[head..head + body].chunks_exact(4))
                    .zip(old[head..head + body].chunks_exact(4))
                {
                    d.copy_from_slice(&word(n).wrapping_sub(word(o)).to_le_bytes());
                }
                bytes(ot, &new[head + body..], &old[head + body..]);
            }
        }
    }

    /// Appends the diff bytes that make `new` from `old` (same length) for
    /// an ADD whose first NEW byte is at `new_pos`: the inverse of
    /// [`AddMode::add`].
    pub fn sub(self, out: &mut Vec<u8>, new: &[u8], old: &[u8], new_pos: u64) {
        let bytes = |out: &mut Vec<u8>, new: &[u8], old: &[u8]| {
            out.extend(new.iter().zip(old).map(|(n, o)| n.wrapping_sub(*o)));
        };
        match self {
            AddMode::Bytes
            | AddMode::Operands
            | AddMode::OperandsAbs
            | AddMode::Arm64
            | AddMode::Wasm
            | AddMode::OperandsLearned
            | AddMode::Riscv
            | AddMode::Armv7
            | AddMode::Thumb2 => bytes(out, new, old),
            AddMode::Words32 => {
                let (head, body) = Self::split(new_pos, new.len());
                bytes(out, &new[..head], &old[..head]);
                for (n, o) in new[head..head + body]
                    .chunks_exact(4)
                    .zip(old[head..head + body].chunks_exact(4))
                {
                    let w = u32::from_le_bytes([n[0], n[1], n[2], n[3]])
                        .wrapping_sub(u32::from_le_bytes([o[0], o[1], o[2], o[3]]));
                    out.extend_from_slice(&w.to_le_bytes());
                }
                bytes(out, &new[head + body..], &old[head + body..]);
            }
        }
    }
}

/// How a chunk's diff stream is laid out before compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DiffFilter {
    /// The diff bytes as they are (the only layout of format version 1).
    #[default]
    None,
    /// Zero-run lengths, non-zero-run lengths and non-zero bytes, each
    /// gathered into its own section.
    Runs,
    /// `(zero run, non-zero run, bytes)` tokens, interleaved.
    Tokens,
}

/// Most bytes a filtered diff stream may hold for a chunk of `new_len`
/// bytes. A run pair of `z ≥ 1` zeros and `n ≥ 1` bytes costs at most
/// `n + 2` bytes below 128-byte runs (at most 1.5 bytes per diff byte), and
/// longer runs cost less per byte; the sections' two length varints and a
/// leading run pair add at most 40.
pub const fn max_filtered_len(new_len: u64) -> u64 {
    2 * new_len + 64
}

impl DiffFilter {
    /// All layouts, in id order.
    pub const ALL: [DiffFilter; 3] = [DiffFilter::None, DiffFilter::Runs, DiffFilter::Tokens];

    /// The filter's id byte in the chunk table.
    pub fn id(self) -> u8 {
        match self {
            DiffFilter::None => 0,
            DiffFilter::Runs => 1,
            DiffFilter::Tokens => 2,
        }
    }

    /// The filter with id `id`.
    pub fn from_id(id: u8) -> Option<DiffFilter> {
        DiffFilter::ALL.into_iter().find(|f| f.id() == id)
    }

    /// Name, as shown by tools.
    pub fn name(self) -> &'static str {
        match self {
            DiffFilter::None => "none",
            DiffFilter::Runs => "runs",
            DiffFilter::Tokens => "tokens",
        }
    }

    /// Rewrites diff bytes in this layout (through a [`FilterSink`], the
    /// one encoder of the layouts).
    pub fn encode(self, diff: &[u8]) -> Vec<u8> {
        if self == DiffFilter::None {
            return diff.to_vec();
        }
        let mut sink = FilterSink::new(self);
        sink.push_slice(diff);
        sink.finish()
    }

    /// Restores diff bytes from `filtered`, refusing to produce more than
    /// `max_out` bytes. Every byte of `filtered` must be used.
    pub fn decode(self, filtered: &[u8], max_out: usize) -> Result<Vec<u8>> {
        let err = |m: String| Error::new(ErrorKind::Codec(format!("diff stream filter: {m}")));
        let mut out = Vec::new();
        let push = |out: &mut Vec<u8>, zeros: u64, bytes: &[u8]| -> Result<()> {
            let total = (out.len() as u64)
                .checked_add(zeros)
                .and_then(|t| t.checked_add(bytes.len() as u64));
            match total {
                Some(t) if t <= max_out as u64 => {
                    out.resize(out.len() + zeros as usize, 0);
                    out.extend_from_slice(bytes);
                    Ok(())
                }
                _ => Err(err(format!("decodes to more than {max_out} bytes"))),
            }
        };
        match self {
            DiffFilter::None => {
                push(&mut out, 0, filtered)?;
            }
            DiffFilter::Tokens => {
                let mut c = Cursor::new(filtered, 0);
                while !c.is_empty() {
                    let z = c.varint("zero run")?;
                    let n = c.varint("byte run")?;
                    let n = usize::try_from(n)
                        .ok()
                        .filter(|&n| n <= c.remaining())
                        .ok_or_else(|| err(format!("byte run of {n} past the stream's end")))?;
                    let bytes = c.bytes(n, "run bytes")?;
                    push(&mut out, z, bytes)?;
                }
            }
            DiffFilter::Runs => {
                let mut c = Cursor::new(filtered, 0);
                let a = c.varint("zero-run section length")?;
                let b = c.varint("byte-run section length")?;
                let section = |c: &mut Cursor<'_>, len: u64, what| -> Result<Vec<u8>> {
                    let len = usize::try_from(len)
                        .ok()
                        .filter(|&l| l <= c.remaining())
                        .ok_or_else(|| err(format!("{what} of {len} bytes past the end")))?;
                    Ok(c.bytes(len, what)?.to_vec())
                };
                let zeros = section(&mut c, a, "zero-run section")?;
                let lens = section(&mut c, b, "byte-run section")?;
                let mut bytes = c;
                let (mut zc, mut lc) = (Cursor::new(&zeros, 0), Cursor::new(&lens, 0));
                while !zc.is_empty() {
                    let z = zc.varint("zero run")?;
                    let n = lc
                        .varint("byte run")
                        .map_err(|_| err("fewer byte runs than zero runs".into()))?;
                    let n = usize::try_from(n)
                        .ok()
                        .filter(|&n| n <= bytes.remaining())
                        .ok_or_else(|| err(format!("byte run of {n} past the stream's end")))?;
                    push(&mut out, z, bytes.bytes(n, "run bytes")?)?;
                }
                if !lc.is_empty() || !bytes.is_empty() {
                    return Err(err("sections not used up by the runs".into()));
                }
            }
        }
        Ok(out)
    }
}

/// The operand split (format version 2, bit 3 of the chunk's diff coding).
///
/// In moved x86 code the diff bytes that are not zero are mostly the 32-bit
/// displacements of calls, jumps and RIP-relative operands whose targets
/// moved. Where those sit can be read from OLD, which the applier has: the
/// four bytes after an `E8`/`E9` opcode, a `0F 8x` conditional jump, or a
/// ModRM byte `mod=00 r/m=101` after a common memory opcode. With the split,
/// the chunk's diff bytes are stored in two groups, first every byte whose
/// OLD source is in such an operand position (class A, dense), then all
/// others (class B, almost all zero), each group in op order. On the exe-go
/// corpus pair this shrank the compressed diff stream of the code chunk by
/// 36%. The classes depend only on OLD bytes inside each ADD's own source
/// range, so an in-place applier that sees OLD only through its reads can
/// undo the split too.
pub mod split {
    /// Per byte value, as the byte an operand follows: bit 0 an `E8`/`E9`
    /// opcode, bit 1 the second byte of a `0F 8x` jump, bit 2 a ModRM
    /// byte `mod=00 r/m=101`.
    const AS_LAST: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut b = 0;
        while b < 256 {
            let v = b as u8;
            if v == 0xe8 || v == 0xe9 {
                t[b] |= 1;
            }
            if v >= 0x80 && v <= 0x8f {
                t[b] |= 2;
            }
            if v & 0xc7 == 0x05 {
                t[b] |= 4;
            }
            b += 1;
        }
        t
    };

    /// Per byte value, as the byte before [`AS_LAST`]'s: bit 1 the `0F`
    /// escape, bit 2 one of the common memory opcodes.
    const AS_FIRST: [u8; 256] = {
        let mut t = [0u8; 256];
        t[0x0f] = 2;
        let mem = [0x89, 0x8b, 0x8d, 0x39, 0x3b, 0x81, 0x83, 0xc7, 0xff];
        let mut i = 0;
        while i < mem.len() {
            t[mem[i]] = 4;
            i += 1;
        }
        t
    };

    /// True when an operand starts after byte `j` of `src`: an `E8`/`E9`
    /// opcode, a `0F 8x` conditional jump, or a ModRM byte `mod=00 r/m=101`
    /// after a common memory opcode (two table reads, no data-dependent
    /// branch but `j == 0`). The same rule as `trigger_flag`, which the
    /// applier's vectorised [`masks`] needs; this form was faster in the
    /// byte-at-a-time walks (exe-go diff 293 against 248 ms, hyperfine).
    #[inline]
    pub fn trigger(src: &[u8], j: usize) -> bool {
        let last = AS_LAST[usize::from(src[j])];
        let first = if j == 0 {
            0
        } else {
            AS_FIRST[usize::from(src[j - 1])]
        };
        (last & (first | 1)) != 0
    }

    /// Calls `f(k, in_a)` for each byte `k` of one ADD's OLD source `src`.
    pub fn classify(src: &[u8], mut f: impl FnMut(usize, bool)) {
        // Bit i: a trigger at byte k − 1 − i.
        let mut recent = 0u8;
        for k in 0..src.len() {
            f(k, recent & 0x0f != 0);
            recent = (recent << 1) | u8::from(trigger(src, k));
        }
    }

    /// Class-A bytes in one ADD's OLD source.
    pub fn count_a(src: &[u8]) -> usize {
        let mut n = 0;
        masks(src, |m| {
            n += m.iter().map(|&c| usize::from(c)).sum::<usize>()
        });
        n
    }

    /// Bytes per block of [`masks`] (two stack buffers of about this size).
    const BLOCK: usize = 4096;

    /// [`trigger`] without branches, from byte `b` and the byte `p` before
    /// it (0 for the first byte, which triggers no two-byte pattern).
    #[inline(always)]
    pub(crate) fn trigger_flag(b: u8, p: u8) -> u8 {
        let call = (b == 0xe8) | (b == 0xe9);
        let jcc = (p == 0x0f) & (b & 0xf0 == 0x80);
        let mem_op = (p == 0x89)
            | (p == 0x8b)
            | (p == 0x8d)
            | (p == 0x39)
            | (p == 0x3b)
            | (p == 0x81)
            | (p == 0x83)
            | (p == 0xc7)
            | (p == 0xff);
        u8::from(call | jcc | (mem_op & (b & 0xc7 == 0x05)))
    }

    /// [`classify`] for the applier's hot path: calls `f(mask)` for
    /// consecutive blocks of `src`, `mask[i]` being 1 when the block's byte
    /// `i` is class A, else 0. Branch-free loops over fixed stack buffers,
    /// which the compiler vectorises; the result equals [`classify`]'s
    /// (tested).
    pub fn masks(src: &[u8], mut f: impl FnMut(&[u8])) {
        // trig[d] = trigger after byte s − 4 + d (0 before the start).
        let mut trig = [0u8; BLOCK + 4];
        let mut mask = [0u8; BLOCK];
        let mut s = 0;
        while s < src.len() {
            let e = (s + BLOCK).min(src.len());
            let n = e - s;
            if s == 0 {
                trig[..4].fill(0);
                trig[4] = trigger_flag(src[0], 0);
                for ((t, &b), &p) in trig[5..4 + n].iter_mut().zip(&src[1..e]).zip(&src[..e - 1]) {
                    *t = trigger_flag(b, p);
                }
            } else {
                // The last four triggers of the previous block.
                trig.copy_within(BLOCK..BLOCK + 4, 0);
                for ((t, &b), &p) in trig[4..4 + n]
                    .iter_mut()
                    .zip(&src[s..e])
                    .zip(&src[s - 1..e - 1])
                {
                    *t = trigger_flag(b, p);
                }
            }
            // Byte k is class A when a trigger sits at k − 1 ..= k − 4.
            for (i, m) in mask[..n].iter_mut().enumerate() {
                *m = (trig[i] | trig[i + 1] | trig[i + 2] | trig[i + 3]) & 1;
            }
            f(&mask[..n]);
            s = e;
        }
    }

    /// Reorders `diff` (in op order; `sources` yields each ADD's OLD
    /// source, in op order, covering `diff` exactly) into class A then B.
    pub fn split<'o>(diff: &[u8], sources: impl Iterator<Item = &'o [u8]> + Clone) -> Vec<u8> {
        let n_a: usize = sources.clone().map(count_a).sum();
        let mut out = vec![0u8; diff.len()];
        let (mut a, mut b, mut d) = (0, n_a, 0);
        for src in sources {
            classify(src, |k, in_a| {
                let slot = if in_a { &mut a } else { &mut b };
                out[*slot] = diff[d + k];
                *slot += 1;
            });
            d += src.len();
        }
        out
    }

    /// Undoes [`split`]: `stored` holds class A then B. The sources must
    /// cover exactly `stored.len()` bytes (the op decoder checks that ADD
    /// lengths sum to the diff stream's length).
    pub fn join<'o>(stored: &[u8], sources: impl Iterator<Item = &'o [u8]> + Clone) -> Vec<u8> {
        // One classification pass into a bitmap (a bit per diff byte, an
        // eighth of the stream), then the gather, 64 bytes per word.
        let mut bits = Bits::default();
        for src in sources {
            masks(src, |m| {
                let mut w = m.chunks_exact(8);
                for b in &mut w {
                    // Eight 0/1 bytes to eight bits, the first lowest.
                    let x = u64::from_le_bytes(b.try_into().expect("8 bytes"));
                    bits.push((x.wrapping_mul(0x0102_0408_1020_4080) >> 56) & 0xff, 8);
                }
                for &c in w.remainder() {
                    bits.push(u64::from(c), 1);
                }
            });
        }
        let (words, len) = bits.finish();
        let n_a: usize = words.iter().map(|w| w.count_ones() as usize).sum();
        let mut out = Vec::with_capacity(stored.len());
        let (mut a, mut b) = (0, n_a);
        let mut take = |slot: &mut usize, n: usize| {
            out.extend_from_slice(&stored[*slot..*slot + n]);
            *slot += n;
        };
        for (k, &w) in words.iter().enumerate() {
            let n = (len - 64 * k).min(64) as u32;
            let w = if n == 64 { w } else { w & ((1u64 << n) - 1) };
            // Runs of one class: trailing zeros are B, trailing ones A.
            let mut rest = w;
            let mut done = 0u32;
            while done < n {
                let run = if rest & 1 == 0 {
                    let r = rest.trailing_zeros().min(n - done);
                    take(&mut b, r as usize);
                    r
                } else {
                    let r = rest.trailing_ones();
                    take(&mut a, r as usize);
                    r
                };
                done += run;
                rest = if run >= 64 { 0 } else { rest >> run };
            }
        }
        out
    }

    /// Bits appended in order, packed into words (the first bit lowest):
    /// the class bitmaps of the split's decoders.
    #[derive(Debug, Default)]
    pub(crate) struct Bits {
        words: Vec<u64>,
        acc: u64,
        n: u32,
        len: usize,
    }

    impl Bits {
        /// An empty bitmap with room for `words` words.
        pub(crate) fn with_capacity(words: usize) -> Bits {
            Bits {
                words: Vec::with_capacity(words),
                ..Bits::default()
            }
        }

        /// Appends the low `k` (1..=64) bits of `v` (the rest zero).
        #[inline]
        pub(crate) fn push(&mut self, v: u64, k: u32) {
            self.len += k as usize;
            self.acc |= v << self.n;
            if self.n + k >= 64 {
                self.words.push(self.acc);
                self.acc = if self.n == 0 { 0 } else { v >> (64 - self.n) };
                self.n = self.n + k - 64;
            } else {
                self.n += k;
            }
        }

        /// The number of bits appended.
        #[cfg(test)]
        pub(crate) fn len(&self) -> usize {
            self.len
        }

        /// The words (the last one partial) and the number of bits.
        pub(crate) fn finish(mut self) -> (Vec<u64>, usize) {
            if self.n > 0 {
                self.words.push(self.acc);
            }
            debug_assert_eq!(self.words.len(), self.len.div_ceil(64));
            (self.words, self.len)
        }
    }
}

/// Builds a filtered diff stream from diff bytes pushed in pieces:
/// [`DiffFilter::encode`] without holding the unfiltered stream, so an
/// encoder can try a diff variant (another add mode or order) while
/// holding only its much smaller run layout.
///
/// A sink for [`DiffFilter::Runs`] or [`DiffFilter::Tokens`] records the
/// runs once (the sections of the runs layout) and can write either layout
/// from them ([`FilterSink::layout`]); a sink for [`DiffFilter::None`]
/// keeps the bytes as they are. Zero runs are skipped 32 bytes at a time.
/// Memory: the recorded sections, at most [`max_filtered_len`] of the
/// bytes pushed, plus the layout being written.
#[derive(Debug)]
pub struct FilterSink {
    filter: DiffFilter,
    len: usize,
    /// Zeros, then non-zero bytes (the tail of `bs`), of the open run pair.
    zeros: u64,
    run: u64,
    /// None: the bytes as they are.
    plain: Vec<u8>,
    /// Runs and Tokens: the zero-run and byte-run varints and the non-zero
    /// bytes (the runs layout's three sections).
    zs: Vec<u8>,
    ns: Vec<u8>,
    bs: Vec<u8>,
    closed: bool,
}

/// Length of the run of zero bytes at the start of `s`.
#[inline]
fn zero_prefix(s: &[u8]) -> usize {
    let word = |c: &[u8]| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    let mut i = 0;
    while let Some(c) = s.get(i..i + 32) {
        if word(c) | word(&c[8..]) | word(&c[16..]) | word(&c[24..]) != 0 {
            break;
        }
        i += 32;
    }
    while let Some(c) = s.get(i..i + 8) {
        let w = word(c);
        if w != 0 {
            return i + (w.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + s[i..].iter().take_while(|&&b| b == 0).count()
}

impl FilterSink {
    /// An empty stream in layout `filter`.
    pub fn new(filter: DiffFilter) -> FilterSink {
        FilterSink {
            filter,
            len: 0,
            zeros: 0,
            run: 0,
            plain: Vec::new(),
            zs: Vec::new(),
            ns: Vec::new(),
            bs: Vec::new(),
            closed: false,
        }
    }

    /// Appends one diff byte.
    pub fn push(&mut self, b: u8) {
        self.push_slice(&[b]);
    }

    /// Appends diff bytes.
    pub fn push_slice(&mut self, s: &[u8]) {
        assert!(!self.closed, "FilterSink: bytes pushed after a layout");
        self.len += s.len();
        if self.filter == DiffFilter::None {
            self.plain.extend_from_slice(s);
            return;
        }
        let mut i = 0;
        while i < s.len() {
            if self.run == 0 {
                let z = zero_prefix(&s[i..]);
                self.zeros += z as u64;
                i += z;
            }
            let rest = &s[i..];
            let n = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            self.bs.extend_from_slice(&rest[..n]);
            self.run += n as u64;
            i += n;
            if i < s.len() && self.run > 0 {
                // A zero ends the open pair's byte run.
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        put_varint(&mut self.zs, self.zeros);
        put_varint(&mut self.ns, self.run);
        self.zeros = 0;
        self.run = 0;
    }

    /// Bytes pushed so far, and how many of them were not zero.
    pub fn counts(&self) -> (usize, usize) {
        let nonzero = match self.filter {
            DiffFilter::None => self.plain.iter().filter(|&&b| b != 0).count(),
            _ => self.bs.len(),
        };
        (self.len, nonzero)
    }

    /// The stream in layout `filter`, which must be the sink's own, or
    /// either run layout when the sink's is one of them. Ends the stream:
    /// no bytes may be pushed after.
    pub fn layout(&mut self, filter: DiffFilter) -> Vec<u8> {
        if !self.closed && (self.zeros > 0 || self.run > 0) {
            self.flush();
        }
        self.closed = true;
        match (self.filter, filter) {
            (DiffFilter::None, DiffFilter::None) => self.plain.clone(),
            (DiffFilter::Runs | DiffFilter::Tokens, DiffFilter::Runs) => {
                let mut out =
                    Vec::with_capacity(self.zs.len() + self.ns.len() + self.bs.len() + 20);
                put_varint(&mut out, self.zs.len() as u64);
                put_varint(&mut out, self.ns.len() as u64);
                out.extend_from_slice(&self.zs);
                out.extend_from_slice(&self.ns);
                out.extend_from_slice(&self.bs);
                out
            }
            (DiffFilter::Runs | DiffFilter::Tokens, DiffFilter::Tokens) => {
                let mut out = Vec::with_capacity(self.zs.len() + self.ns.len() + self.bs.len());
                // The sections hold this sink's own varints, one per run
                // pair in each: a varint is copied as its bytes, and only
                // the byte-run lengths are decoded.
                let varint_end = |s: &[u8], at: usize| {
                    at + 1 + s[at..].iter().take_while(|&&x| x & 0x80 != 0).count()
                };
                let (mut z, mut k, mut b) = (0, 0, 0);
                while z < self.zs.len() {
                    let z_end = varint_end(&self.zs, z);
                    let k_end = varint_end(&self.ns, k);
                    let n = self.ns[k..k_end]
                        .iter()
                        .rev()
                        .fold(0usize, |v, &x| (v << 7) | usize::from(x & 0x7f));
                    out.extend_from_slice(&self.zs[z..z_end]);
                    out.extend_from_slice(&self.ns[k..k_end]);
                    out.extend_from_slice(&self.bs[b..b + n]);
                    (z, k, b) = (z_end, k_end, b + n);
                }
                out
            }
            (own, asked) => panic!("FilterSink for {own:?} asked for {asked:?}"),
        }
    }

    /// The filtered stream, in the sink's layout.
    pub fn finish(mut self) -> Vec<u8> {
        if self.filter == DiffFilter::None {
            return self.plain;
        }
        self.layout(self.filter)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Splits `diff` into (zero run, non-zero run) pairs covering it in order.
    /// Only the last pair may have an empty non-zero run.
    fn runs(diff: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut rest = diff;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let z = rest.iter().position(|&b| b != 0).unwrap_or(rest.len());
            let n = rest[z..]
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(rest.len() - z);
            let (zeros, tail) = rest.split_at(z);
            let (bytes, tail) = tail.split_at(n);
            rest = tail;
            Some((zeros, bytes))
        })
    }

    /// The layouts written out from their definition in FORMAT.md: the
    /// oracle for [`FilterSink`].
    pub(crate) fn naive_encode(f: DiffFilter, diff: &[u8]) -> Vec<u8> {
        let (mut zs, mut ns, mut bs, mut tokens) = (vec![], vec![], vec![], vec![]);
        for (z, n) in runs(diff) {
            put_varint(&mut zs, z.len() as u64);
            put_varint(&mut ns, n.len() as u64);
            bs.extend_from_slice(n);
            put_varint(&mut tokens, z.len() as u64);
            put_varint(&mut tokens, n.len() as u64);
            tokens.extend_from_slice(n);
        }
        match f {
            DiffFilter::None => diff.to_vec(),
            DiffFilter::Tokens => tokens,
            DiffFilter::Runs => {
                let mut out = Vec::new();
                put_varint(&mut out, zs.len() as u64);
                put_varint(&mut out, ns.len() as u64);
                [out, zs, ns, bs].concat()
            }
        }
    }

    /// The table-driven trigger equals the branch-free one, for every pair
    /// of bytes and for a first byte (0 stands for no byte before).
    #[test]
    fn trigger_tables_equal_the_rule() {
        let mut hits = 0;
        for p in 0..=255u8 {
            for b in 0..=255u8 {
                let src = [p, b];
                assert_eq!(
                    split::trigger(&src, 1),
                    split::trigger_flag(b, p) != 0,
                    "{p:#x} {b:#x}"
                );
                hits += usize::from(split::trigger(&src, 1));
            }
            assert_eq!(
                split::trigger(&[p], 0),
                split::trigger_flag(p, 0) != 0,
                "{p:#x}"
            );
        }
        // E8/E9 after anything, 16 jumps after 0F, 8 ModRM bytes after
        // each of 9 opcodes (none of them E8/E9 or 8x after 0F).
        assert_eq!(hits, 2 * 256 + 16 + 9 * 8);
    }

    /// The block-wise, branch-free masks equal the byte-wise
    /// classification, across block boundaries and at every length.
    #[test]
    fn operand_split_masks_equal_classify() {
        let mut x = 0x9e37_79b9u32;
        // Bytes drawn mostly from trigger opcodes, so classes change often.
        let pool = [0xe8, 0xe9, 0x0f, 0x85, 0x8b, 0x05, 0x15, 0x90, 0x00, 0xff];
        let src: Vec<u8> = (0..3 * 4096 + 77)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if x % 4 == 0 {
                    x as u8
                } else {
                    pool[(x >> 8) as usize % pool.len()]
                }
            })
            .collect();
        for len in [
            0,
            1,
            2,
            3,
            4,
            5,
            9,
            4095,
            4096,
            4097,
            4100,
            8192,
            8195,
            src.len(),
        ] {
            let src = &src[..len];
            let mut want = Vec::new();
            split::classify(src, |_, a| want.push(u8::from(a)));
            let mut got = Vec::new();
            split::masks(src, |m| got.extend_from_slice(m));
            assert_eq!(got, want, "length {len}");
            assert_eq!(
                split::count_a(src),
                want.iter().filter(|&&c| c == 1).count()
            );
            let diff: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let parts = [&src[..len / 3], &src[len / 3..]];
            let stored = split::split(&diff, parts.iter().copied());
            assert_eq!(
                split::join(&stored, parts.iter().copied()),
                diff,
                "length {len}"
            );
        }
    }

    #[test]
    fn operand_split_groups_displacements_and_inverts() {
        // call rel32; mov eax,[rip+disp32]; plain bytes.
        let src = [
            0xe8, 1, 2, 3, 4, 0x90, 0x8b, 0x05, 5, 6, 7, 8, 0x90, 0x90, 0x90,
        ];
        let mut a = Vec::new();
        split::classify(&src, |k, in_a| {
            if in_a {
                a.push(k)
            }
        });
        assert_eq!(a, [1, 2, 3, 4, 8, 9, 10, 11]);
        let diff: Vec<u8> = (100..115).collect();
        let srcs = [&src[..5], &src[5..]];
        let s = split::split(&diff, srcs.iter().copied());
        // The second op's source starts at 0x90: its first bytes see no
        // trigger from the first op (classes look inside each op only).
        assert_eq!(&s[..8], &[101, 102, 103, 104, 108, 109, 110, 111]);
        assert_eq!(split::join(&s, srcs.iter().copied()), diff);
    }

    #[test]
    fn add_inverts_sub_at_every_alignment() {
        let old: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
        let new: Vec<u8> = (0..64u32).map(|i| (i * 91 + 200) as u8).collect();
        for mode in AddMode::ALL {
            for pos in 0..8u64 {
                for len in 0..20usize {
                    let mut d = Vec::new();
                    mode.sub(&mut d, &new[..len], &old[..len], pos);
                    assert_eq!(d.len(), len);
                    let mut out = vec![0u8; len];
                    mode.add(&mut out, &old[..len], &d, pos);
                    assert_eq!(out, new[..len], "{mode:?} pos {pos} len {len}");
                }
            }
        }
        // A pointer shifted by 0x20 is one repeated word in Words32 mode.
        let old: Vec<u8> = [0x1000_00f0u32, 0x1000_0100, 0x1000_01f8]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let new: Vec<u8> = [0x1000_0110u32, 0x1000_0120, 0x1000_0218]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let mut d = Vec::new();
        AddMode::Words32.sub(&mut d, &new, &old, 8);
        assert_eq!(d, [0x20, 0, 0, 0].repeat(3));
        let mut b = Vec::new();
        AddMode::Bytes.sub(&mut b, &new, &old, 8);
        assert_ne!(b, d, "bytewise, carries make the pattern vary");
    }

    fn samples() -> Vec<Vec<u8>> {
        let mut v = vec![
            vec![],
            vec![0],
            vec![7],
            vec![0, 0, 0],
            vec![1, 0, 2, 0, 3],
            vec![0, 1, 0, 1, 0],
            (0..=255).collect(),
        ];
        let mut s = 0x1234_5678u32;
        for density in [2u32, 10, 100] {
            let d: Vec<u8> = (0..5000)
                .map(|_| {
                    s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    if (s >> 8) % density == 0 {
                        (s >> 24) as u8
                    } else {
                        0
                    }
                })
                .collect();
            v.push(d);
        }
        v.push(vec![0; 1000]);
        v.push(vec![9; 1000]);
        v
    }

    #[test]
    fn round_trips_within_the_bound() {
        for d in samples() {
            for f in DiffFilter::ALL {
                let e = f.encode(&d);
                assert!(
                    e.len() as u64 <= max_filtered_len(d.len() as u64),
                    "{f:?} {}",
                    d.len()
                );
                assert_eq!(f.decode(&e, d.len()).unwrap(), d, "{f:?}");
                if !d.is_empty() {
                    assert!(f.decode(&e, d.len() - 1).is_err(), "{f:?} over max_out");
                }
            }
        }
    }

    #[test]
    fn sink_and_encode_follow_the_definition() {
        for d in samples() {
            for f in DiffFilter::ALL {
                let mut sink = FilterSink::new(f);
                for &b in &d {
                    sink.push(b);
                }
                assert_eq!(sink.counts().0, d.len());
                let want = naive_encode(f, &d);
                assert_eq!(sink.finish(), want, "{f:?} {}", d.len());
                assert_eq!(f.encode(&d), want, "{f:?} {}", d.len());
            }
        }
    }

    #[test]
    fn worst_case_alternation_fits_the_bound() {
        let d: Vec<u8> = (0..10_000).map(|i| (i % 2) as u8).collect();
        for f in DiffFilter::ALL {
            assert!(f.encode(&d).len() as u64 <= max_filtered_len(d.len() as u64));
        }
    }

    #[test]
    fn damaged_streams_are_refused_not_misread() {
        let d = samples().pop().unwrap();
        for f in [DiffFilter::Runs, DiffFilter::Tokens] {
            let e = f.encode(&d);
            for cut in 0..e.len() {
                // A truncated stream either fails or yields fewer bytes.
                if let Ok(out) = f.decode(&e[..cut], d.len()) {
                    assert_ne!(out, d);
                }
            }
            let mut longer = e.clone();
            longer.push(5);
            assert!(f.decode(&longer, 1 << 20).is_err(), "{f:?} trailing byte");
        }
        // A zero run claiming 2^63 bytes stops at max_out, not in allocation.
        let mut huge = Vec::new();
        put_varint(&mut huge, 1 << 63);
        put_varint(&mut huge, 0);
        assert!(DiffFilter::Tokens.decode(&huge, 1 << 20).is_err());
    }
}
