//! ARMv7 (A32) instruction words: the ADD mode `armv7` (format version 10).
//!
//! Moved 32-bit ARM code changes the PC-relative immediates of its
//! branches (`B`, `BL` and their conditional forms: 24 bits, in words,
//! relative to the instruction's address plus 8). As the AArch64 mode does
//! for its branches ([`crate::arm64`]), this mode stores each branch's
//! change as a 32-bit word, predicted first, so that code that only moved
//! costs zero diff bytes.
//!
//! A32 instructions are 4-byte aligned in the file (as in the AArch64
//! mode, file offsets are used as if they were addresses), so for one ADD
//! op reading OLD at `p` (its *source*, `len` bytes) into NEW at `q`, with
//! shift `s_op = q − p`, the walk looks at the words at `k` with `p + k ≡ 0
//! (mod 4)` and `k + 4 ≤ len`, in order. With `w` the OLD word at `k` and
//! `pc = p + k`:
//!
//! * **Branch** (`w & 0x0E000000 = 0x0A000000` and condition `w >> 28` not
//!   `0xF`): OLD target `t = pc + 8 + 4·imm24`, with `imm24` the low 24
//!   bits, signed.
//!
//! The *shift* `s` of a target `t` (where its bytes went: NEW − OLD) is,
//! in this order: the shift learned for exactly `t` by an earlier branch
//! of the chunk; the op map's (`OpMap`, as for the operand modes); the
//! shift learned for the greatest target below `t`; otherwise none. Each
//! branch, once its NEW word `n` is known (as the decoder knows it, after
//! adding the stored difference), teaches the shift of its OLD target when
//! `n` has `w`'s top 8 bits (condition, opcode and link bit): `pc + s_op +
//! 8 + 4·imm24(n) − t`. At most [`MAX_LEARNED`] targets are learned; past
//! that only known targets are updated.
//!
//! * **Prediction.** With `s` known and `s − s_op` a multiple of 4, `imm24
//!   + (s − s_op)/4` (modulo 2^24) in `w`'s low 24 bits; otherwise `w`.
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

/// `v`'s low 24 bits, sign-extended.
fn imm24(v: u32) -> i64 {
    i64::from(((v << 8) as i32) >> 8)
}

fn is_branch(w: u32) -> bool {
    w & 0x0E00_0000 == 0x0A00_0000 && w >> 28 != 0xF
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

/// Calls `f(k)` for every branch word of an ADD source `src` whose first
/// byte is at OLD `p`, in order.
fn scan(src: &[u8], p: u64, mut f: impl FnMut(usize, u32)) {
    let mut k = ((4 - p % 4) % 4) as usize;
    while k + 4 <= src.len() {
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
            let t = pc.wrapping_add(8).wrapping_add(imm24(w).wrapping_mul(4));
            // Learning what is known changes nothing: one search of the
            // table fewer for a branch to a known target.
            let known = self.learned.exact(t);
            let shift = known
                .or_else(|| self.map.lookup(t))
                .or_else(|| self.learned.below(t));
            let pred = match shift {
                Some(s) if s.wrapping_sub(s_op) % 4 == 0 => {
                    let imm = imm24(w).wrapping_add(s.wrapping_sub(s_op) / 4);
                    (w & 0xFF00_0000) | (imm as u32 & 0xFF_FFFF)
                }
                _ => w,
            };
            let nw = f(k, pred);
            if nw & 0xFF00_0000 == w & 0xFF00_0000 {
                let nt = pc
                    .wrapping_add(s_op)
                    .wrapping_add(8)
                    .wrapping_add(imm24(nw).wrapping_mul(4));
                let s = nt.wrapping_sub(t);
                if known != Some(s) {
                    self.learned.learn(t, s);
                }
            }
        });
    }
}

/// Whether a chunk's ADD sources `(OLD start, length)` look like A32
/// code, cheaply: of their aligned words, at least 2 in 5 have the
/// condition "always" (top four bits `0xE`; 0.4 to 0.99 in the 64 KiB
/// windows of hold-armv7-go's text, at most 0.17 in AArch64 and x86-64
/// files), and at least one in 40 is a `BL` with that condition whose
/// target lies inside OLD (top byte `0xEB`, which AArch64's `SUBS` shares:
/// hence the first rule). The encoder tries the mode only then; it keeps
/// it only where it compresses smaller.
pub fn looks_like_code(adds: impl Iterator<Item = (usize, usize)>, old: &[u8]) -> bool {
    let (mut words, mut always, mut calls) = (0usize, 0usize, 0usize);
    for (o, l) in adds {
        let src = &old[o..o + l];
        let k0 = (4 - o % 4) % 4;
        for (i, c) in src.get(k0..).unwrap_or(&[]).chunks_exact(4).enumerate() {
            let w = word(c);
            words += 1;
            always += usize::from(w >> 28 == 0xE);
            if w >> 24 == 0xEB {
                let t = (o + k0 + 4 * i) as i64 + 8 + 4 * imm24(w);
                calls += usize::from((0..old.len() as i64).contains(&t));
            }
        }
    }
    words > 0 && always * 5 >= words * 2 && calls * 40 >= words
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
        let se = |v: u32| {
            let v = i128::from(v & 0xFF_FFFF);
            if v >= 1 << 23 { v - (1 << 24) } else { v }
        };
        let (mut words, mut rest) = (Vec::new(), Vec::new());
        for &(o, l, at) in adds {
            let (src, dst) = (&old[o..o + l], &new_chunk[at..at + l]);
            let (p, q) = (o as i128, (start + at as u64) as i128);
            let s_op = q - p;
            let mut is_word = vec![false; l];
            for k in 0..l {
                if (p + k as i128) % 4 != 0 || k + 4 > l {
                    continue;
                }
                let (w, nw) = (wd(src, k), wd(dst, k));
                let cond = w >> 28;
                if (w >> 25) & 7 != 5 || cond == 15 {
                    continue;
                }
                let pc = p + k as i128;
                let t = pc + 8 + 4 * se(w);
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
                let pred = match shift {
                    Some(s) if (s - s_op) % 4 == 0 => {
                        let imm = (se(w) + (s - s_op) / 4).rem_euclid(1 << 24) as u32;
                        (w & 0xFF00_0000) | imm
                    }
                    _ => w,
                };
                words.extend_from_slice(&nw.wrapping_sub(pred).to_le_bytes());
                is_word[k..k + 4].fill(true);
                if nw >> 24 == w >> 24 {
                    let s = pc + s_op + 8 + 4 * se(nw) - t;
                    if let Some(e) = learned.iter_mut().find(|e| e.0 == t) {
                        e.1 = s;
                    } else if learned.len() < MAX_LEARNED {
                        learned.push((t, s));
                    }
                }
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

    /// A32-like words: calls and branches (some conditional) to nearby
    /// words, other words with condition "always", random words.
    fn code(seed: u64, len: usize) -> Vec<u8> {
        let mut r = Rng(seed | 1);
        let mut out = Vec::new();
        while out.len() < len {
            let w: u32 = match r.below(8) {
                0 | 1 => {
                    let imm = (r.below(2048) as i64 - 1024) as u32 & 0xFF_FFFF;
                    [0xEB00_0000, 0xEA00_0000, 0x1A00_0000, 0xFB00_0000][r.below(4) as usize] | imm
                }
                2..=5 => 0xE000_0000 | (r.next() as u32 & 0x0FFF_FFFF),
                _ => r.next() as u32,
            };
            out.extend_from_slice(&w.to_le_bytes());
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
        /// A32-like code with edits, at any chunk offset.
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
    }

    /// Code that moved, calling a function that moved by another amount,
    /// costs zero words (the BL and a conditional branch to it); the
    /// unconditional-space word (condition 0xF) is not a branch.
    #[test]
    fn moved_targets_predict_zero() {
        let b = |op: u32, from: i64, to: i64| op | ((to - from - 8) / 4) as u32 & 0xFF_FFFF;
        let code = |base: i64, callee: i64| {
            [
                0xE1A0_0000u32,
                b(0xEB00_0000, base + 4, callee),
                b(0x1A00_0000, base + 8, callee),
                0xFB00_0010,
                0xE12F_FF1E,
            ]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect::<Vec<u8>>()
        };
        let mut old = vec![0u8; 0x4000];
        old[..20].copy_from_slice(&code(0, 0x3000));
        for (i, x) in old[0x3000..].iter_mut().enumerate() {
            *x = (i * 7 % 251) as u8;
        }
        let (dc, df) = (0x40usize, 0x128usize);
        let mut new = vec![0u8; 0x4000 + df];
        new[dc..dc + 20].copy_from_slice(&code(dc as i64, 0x3000 + df as i64));
        new[0x3000 + df..].copy_from_slice(&old[0x3000..]);
        let mut e = ChunkEncoder::new(&old, &new, 0);
        e.push(Op::Insert { len: dc as u64 });
        e.push(Op::Add { old: 0, len: 20 });
        e.push(Op::Insert {
            len: (0x3000 + df - dc - 20) as u64,
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
        assert_eq!(Predictor::count(&old[..20], 0), 2);
        let got = encode(&map, &[(0, 20, dc)], &old, &new, 0);
        assert!(got.iter().all(|&x| x == 0), "{got:?}");
        assert!(streams.diff.iter().filter(|&&x| x != 0).count() >= 2);
        assert_eq!(
            to_bytes(&got, dec, 0, |o, l| &old[o as usize..o as usize + l]).unwrap(),
            streams.diff
        );
    }

    /// The trigger: A32-like code passes; AArch64 words whose top byte is
    /// `0xEB` (SUBS) without the condition "always" elsewhere do not.
    #[test]
    fn looks_like_code_on_kinds() {
        let a32 = code(7, 20_000);
        assert!(looks_like_code([(0, a32.len())].into_iter(), &a32));
        let arm64: Vec<u8> = (0..5000u32)
            .flat_map(|i| {
                let w = if i % 4 == 0 {
                    0xEB00_0000 | (i & 0xFF)
                } else {
                    0x9100_0000 | i
                };
                w.to_le_bytes()
            })
            .collect();
        assert!(!looks_like_code([(0, arm64.len())].into_iter(), &arm64));
        assert!(!looks_like_code(std::iter::empty(), &arm64));
    }
}
