//! Operand words: the ADD modes `operands` and `operands-abs` (format
//! version 3).
//!
//! Moved code changes the 32-bit displacements of its calls, jumps and
//! RIP-relative operands, and byte-wise diffs code those changes poorly:
//! the change of one displacement is a constant per (caller region,
//! target region) pair, but a carry makes its bytes differ from call to
//! call. These modes store each displacement's change as one 32-bit word,
//! and *predict* it first from the chunk's own ops: the ops say where each
//! matched OLD byte went in NEW, so a displacement whose OLD target lies in
//! a matched region is predicted to follow it, and stores the difference
//! to that prediction (usually zero).
//!
//! For one ADD op reading OLD at `p` (its *source* `src`, `len` bytes)
//! into NEW at `q`, with shift `s_op = q − p`:
//!
//! * **Operands.** Walking `k` from 0: when `k + 5 ≤ len` and an operand
//!   starts after byte `k` (the operand split's trigger rule, from `src`
//!   alone, see [`crate::filter::split`]), bytes `k+1 .. k+5` are an
//!   operand word and the walk goes on at `k + 5`; otherwise at `k + 1`.
//! * **Prediction.** With `w` the OLD word (little-endian, read as a signed
//!   displacement), the OLD target is `t = p + k + 5 + w`. The *op map* is
//!   every COPY and ADD op of the chunk of at least 16 bytes, as
//!   `(OLD start, length, shift)` sorted by start then shift; `t` is mapped
//!   by the last entry whose start is ≤ `t`, when `t` is inside it. Mapped
//!   with shift `s_t`: `pred = w + s_t − s_op`; not mapped: `pred = w`
//!   (`operands`) or `w − s_op` (`operands-abs`), all modulo 2^32.
//! * **Stream.** The diff stream holds first the word `NEW word − pred`
//!   (little-endian) of every operand of every ADD, in op order, then the
//!   byte-wise diff (`NEW − OLD` modulo 256) of all other ADD bytes, in op
//!   order. It is exactly as long as the ADDs.
//!
//! Measured on the exe-rust corpus pair (zstd 19, runs layout, four chunks):
//! diff streams 1,405,004 B with the operand split against 1,231,516 B with
//! the better operand mode per chunk.
//!
//! * **Learned** (`operands-learned`, format version 9). The op map is
//!   computed from file offsets, and a displacement is a difference of
//!   addresses: where the target's section lies at another distance from
//!   the code in the address space than in the file — PE sections (file
//!   alignment 512 B, address alignment 4 KiB), lld's and link.exe's
//!   writable segments — and that distance changes between releases, every
//!   displacement into that section is mispredicted by the same amount; so
//!   are targets in data that changed (no op maps them). This mode
//!   predicts as the arm64 mode does ([`crate::arm64`]): the shift of `t`
//!   is the one *learned* for exactly `t` from an earlier operand of the
//!   chunk, else the op map's, else the one learned for the greatest
//!   target below `t`; `pred = w + s − s_op`, or `w` with none. Each
//!   operand, once its NEW word `n` is known, learns `t ↦ s_op + n − w`
//!   (`n`, `w` read as signed 32-bit), the shift that would have predicted
//!   it exactly; at most [`MAX_LEARNED`] targets, past that only known
//!   ones are updated. Operand words mispredicted on the exe-rust corpus
//!   pair (ELF, lld): 351,498 of 611,229 with the op map, 83,528 learned;
//!   on hold-pe-rust (PE DLL): 101,318 of 211,731 against 30,823.
//!
//! Bounds: the op map holds at most one entry per 16 NEW bytes of the chunk
//! (24 bytes each, and 4 bytes of lookup index: 14 MiB for an 8 MiB chunk
//! of 16-byte ops, about 0.5 MiB on the corpus executables); see
//! [`crate::predicted::op_map_bound`]. The one-pass applier (`apply_chunk`'s) also holds
//! the position of each word (at most 4 bytes per 5 ADD bytes); the
//! reference applier the byte-wise diff (one chunk's length).

use crate::Result;
use crate::filter::split;
use crate::ops::OpDecoder;
use crate::predicted::{self, Learned, OpMap, Walk, word};

/// Most targets the `operands-learned` mode learns in one chunk (their
/// count on the corpus executables' 8 MiB chunks: 22,605 to 66,569).
pub const MAX_LEARNED: usize = 1 << 17;

/// Bytes the learned table of a chunk of `new_len` bytes may hold in the
/// `operands-learned` mode: at most one entry per operand (5 bytes of
/// ADD) and [`MAX_LEARNED`], at 64 bytes per entry (as
/// [`crate::arm64::learned_bound`] counts them).
pub fn learned_bound(new_len: u64) -> u64 {
    (new_len / 5).min(MAX_LEARNED as u64) * 64
}

impl OpMap {
    /// The predicted NEW word of an operand whose OLD word is `w` and
    /// whose next byte is at OLD `after`, inside an ADD of shift `s_op`
    /// (NEW − OLD).
    #[inline]
    pub(crate) fn predict(&self, abs: bool, w: u32, after: u64, s_op: i64) -> u32 {
        let t = (after as i64).wrapping_add(i64::from(w as i32));
        match self.lookup(t) {
            Some(s_t) => w.wrapping_add(s_t.wrapping_sub(s_op) as u32),
            None if abs => w.wrapping_sub(s_op as u32),
            None => w,
        }
    }
}

/// Calls `f(k)` for every operand of an ADD source `src`: its word is
/// `src[k + 1 .. k + 5]`.
pub(crate) fn operands(src: &[u8], mut f: impl FnMut(usize)) {
    let mut k = 0;
    while k + 5 <= src.len() {
        if split::trigger(src, k) {
            f(k);
            k += 5;
        } else {
            k += 1;
        }
    }
}

/// The operand modes' walk: an ADD's operand words, each predicted from
/// the op map alone.
pub(crate) struct Operands<'m> {
    pub(crate) map: &'m OpMap,
    /// `operands-abs`: an unmapped target's word predicted as absolute.
    pub(crate) abs: bool,
}

impl Walk for Operands<'_> {
    fn count(src: &[u8], _: u64) -> usize {
        let mut n = 0;
        operands(src, |_| n += 1);
        n
    }

    #[inline]
    fn op(&mut self, src: &[u8], p: u64, q: u64, mut f: impl FnMut(usize, u32) -> u32) {
        let s_op = (q as i64).wrapping_sub(p as i64);
        operands(src, |k| {
            let w = word(&src[k + 1..]);
            let pred = self
                .map
                .predict(self.abs, w, p.wrapping_add(k as u64 + 5), s_op);
            f(k + 1, pred);
        });
    }
}

/// The `operands-learned` mode's walk (see the module docs): the operands
/// of [`Operands`], predicted from the learned shifts and the op map;
/// later predictions learn from the NEW words `f` returns.
pub(crate) struct LearnedOperands<'m> {
    map: &'m OpMap,
    learned: Learned,
}

impl<'m> LearnedOperands<'m> {
    pub(crate) fn new(map: &'m OpMap) -> LearnedOperands<'m> {
        LearnedOperands {
            map,
            learned: Learned::new(MAX_LEARNED),
        }
    }
}

impl Walk for LearnedOperands<'_> {
    fn count(src: &[u8], p: u64) -> usize {
        Operands::count(src, p)
    }

    #[inline]
    fn op(&mut self, src: &[u8], p: u64, q: u64, mut f: impl FnMut(usize, u32) -> u32) {
        let s_op = (q as i64).wrapping_sub(p as i64);
        operands(src, |k| {
            let w = word(&src[k + 1..]);
            let t = (p.wrapping_add(k as u64 + 5) as i64).wrapping_add(i64::from(w as i32));
            let known = self.learned.exact(t);
            let shift = known
                .or_else(|| self.map.lookup(t))
                .or_else(|| self.learned.below(t));
            let pred = shift.map_or(w, |s| w.wrapping_add(s.wrapping_sub(s_op) as u32));
            let nw = f(k + 1, pred);
            let s = s_op
                .wrapping_add(i64::from(nw as i32))
                .wrapping_sub(i64::from(w as i32));
            if known != Some(s) {
                self.learned.learn(t, s);
            }
        });
    }
}

/// The `operands-learned` mode's diff stream for ADDs `(OLD start,
/// length, offset in the chunk)` of a chunk of `new_chunk` at NEW offset
/// `start`, with `map` the chunk's op map.
pub(crate) fn encode_learned(
    map: &OpMap,
    adds: &[(usize, usize, usize)],
    old: &[u8],
    new_chunk: &[u8],
    start: u64,
) -> Vec<u8> {
    predicted::encode(&mut LearnedOperands::new(map), adds, old, new_chunk, start)
}

/// The byte-wise diff that the `operands-learned` mode's stream `stored`
/// stands for (as [`to_bytes`] for the other operand modes).
pub(crate) fn to_bytes_learned<'d, 'o>(
    stored: &[u8],
    dec: impl Fn() -> OpDecoder<'d>,
    new_start: u64,
    src: impl Fn(u64, usize) -> &'o [u8],
) -> Result<Vec<u8>> {
    let map = OpMap::from_ops(dec(), new_start)?;
    predicted::to_bytes(&mut LearnedOperands::new(&map), stored, dec, new_start, src)
}

/// The operand mode's diff stream for ADDs `(OLD start, length, offset in
/// the chunk)` of a chunk of `new_chunk` at NEW offset `start`, with `map`
/// the chunk's op map.
pub(crate) fn encode(
    map: &OpMap,
    abs: bool,
    adds: &[(usize, usize, usize)],
    old: &[u8],
    new_chunk: &[u8],
    start: u64,
) -> Vec<u8> {
    predicted::encode(&mut Operands { map, abs }, adds, old, new_chunk, start)
}

/// The byte-wise diff (`NEW − OLD` per byte, in op order) that an operand
/// mode's stream `stored` stands for. `dec` yields the chunk's ops (NEW at
/// `new_start`), `src(old, len)` an ADD's OLD source. A stream whose length
/// is not the ADDs' is an error.
pub(crate) fn to_bytes<'d, 'o>(
    stored: &[u8],
    abs: bool,
    dec: impl Fn() -> OpDecoder<'d>,
    new_start: u64,
    src: impl Fn(u64, usize) -> &'o [u8],
) -> Result<Vec<u8>> {
    let map = OpMap::from_ops(dec(), new_start)?;
    predicted::to_bytes(
        &mut Operands { map: &map, abs },
        stored,
        dec,
        new_start,
        src,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{ChunkEncoder, Op, Streams};
    use proptest::prelude::*;

    /// The prediction by FORMAT.md's words, with a linear search of the
    /// op map: the oracle for [`OpMap::predict`].
    fn naive_predict(
        ops: &[(u64, u64, u64)],
        abs: bool,
        src: &[u8],
        p: u64,
        q: u64,
        k: usize,
    ) -> u32 {
        let w = u32::from_le_bytes(src[k + 1..k + 5].try_into().unwrap());
        let t = p as i128 + k as i128 + 5 + i128::from(w as i32);
        let s_op = q as i128 - p as i128;
        let pred = match predicted::naive_mapped(ops, t) {
            Some(s_t) => i128::from(w) + s_t - s_op,
            None if abs => i128::from(w) - s_op,
            None => i128::from(w),
        };
        pred.rem_euclid(1 << 32) as u32
    }

    /// An operand stream by FORMAT.md's words (words, then the other
    /// bytes), from the naive prediction.
    fn naive_encode(
        ops: &[(u64, u64, u64)],
        adds: &[(usize, usize, usize)],
        abs: bool,
        old: &[u8],
        new_chunk: &[u8],
        start: u64,
    ) -> Vec<u8> {
        let (mut words, mut rest) = (Vec::new(), Vec::new());
        for &(o, l, at) in adds {
            let (src, dst) = (&old[o..o + l], &new_chunk[at..at + l]);
            let mut k = 0;
            while k < l {
                if k + 5 <= l && split::trigger(src, k) {
                    rest.push(dst[k].wrapping_sub(src[k]));
                    let nw = u32::from_le_bytes(dst[k + 1..k + 5].try_into().unwrap());
                    let pred = naive_predict(ops, abs, src, o as u64, start + at as u64, k);
                    words.extend_from_slice(&nw.wrapping_sub(pred).to_le_bytes());
                    k += 5;
                } else {
                    rest.push(dst[k].wrapping_sub(src[k]));
                    k += 1;
                }
            }
        }
        words.extend_from_slice(&rest);
        words
    }

    /// The `operands-learned` stream by FORMAT.md's words: linear
    /// searches of the op map and the learned shifts, wide integers.
    fn naive_encode_learned(
        ops: &[(u64, u64, u64)],
        adds: &[(usize, usize, usize)],
        old: &[u8],
        new_chunk: &[u8],
        start: u64,
    ) -> Vec<u8> {
        let mut learned: Vec<(i128, i128)> = Vec::new();
        let (mut words, mut rest) = (Vec::new(), Vec::new());
        for &(o, l, at) in adds {
            let (src, dst) = (&old[o..o + l], &new_chunk[at..at + l]);
            let s_op = (start + at as u64) as i128 - o as i128;
            let mut k = 0;
            while k < l {
                rest.push(dst[k].wrapping_sub(src[k]));
                if k + 5 <= l && split::trigger(src, k) {
                    let w = u32::from_le_bytes(src[k + 1..k + 5].try_into().unwrap());
                    let nw = u32::from_le_bytes(dst[k + 1..k + 5].try_into().unwrap());
                    let t = o as i128 + k as i128 + 5 + i128::from(w as i32);
                    let known = learned.iter().find(|e| e.0 == t).map(|e| e.1);
                    let below = learned
                        .iter()
                        .filter(|e| e.0 < t)
                        .max_by_key(|e| e.0)
                        .map(|e| e.1);
                    let shift = known.or(predicted::naive_mapped(ops, t)).or(below);
                    let pred = shift.map_or(i128::from(w), |s| i128::from(w) + s - s_op);
                    let pred = pred.rem_euclid(1 << 32) as u32;
                    words.extend_from_slice(&nw.wrapping_sub(pred).to_le_bytes());
                    let s = s_op + i128::from(nw as i32) - i128::from(w as i32);
                    let n = learned.len();
                    match learned.iter_mut().find(|e| e.0 == t) {
                        Some(e) => e.1 = s,
                        None if n < MAX_LEARNED => learned.push((t, s)),
                        None => {}
                    }
                    k += 5;
                } else {
                    k += 1;
                }
            }
        }
        words.extend_from_slice(&rest);
        words
    }

    /// x86-like OLD (short opcodes, calls, RIP-relative loads) and a NEW
    /// made of its pieces moved around, with call targets that follow.
    fn code(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        let mut r = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = Vec::new();
        while out.len() < len {
            match r() % 6 {
                0 => out.push(0xe8),
                1 => out.extend_from_slice(&[0x48, 0x8b, 0x05]),
                2 => out.extend_from_slice(&[0x0f, 0x84]),
                _ => out.push([0x90, 0x31, 0xc0, 0x5d][(r() % 4) as usize]),
            }
            if r() % 2 == 0 {
                let d = (r() % (len as u64)) as i64 - (len as i64) / 2;
                out.extend_from_slice(&(d as i32).to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    /// A chunk's streams and ops from `ops` (NEW made by them, with `edit`
    /// applied to some ADD bytes).
    fn chunk(
        old: &[u8],
        plan: &[(usize, usize)],
        edits: &[(usize, u8)],
    ) -> (Vec<u8>, Streams, Vec<(u64, u64, u64)>) {
        let mut new = Vec::new();
        for &(o, l) in plan {
            new.extend_from_slice(&old[o..o + l]);
        }
        for &(at, d) in edits {
            if !new.is_empty() {
                let i = at % new.len();
                new[i] = new[i].wrapping_add(d);
            }
        }
        let mut enc = ChunkEncoder::new(old, &new, 0);
        let mut at = 0;
        for &(o, l) in plan {
            enc.push(Op::Add {
                old: o as u64,
                len: l as u64,
            });
            at += l;
        }
        assert_eq!(at, new.len());
        let (streams, _) = enc.finish();
        let whole = [(0, old.len() as u64)];
        let dec = OpDecoder::for_streams(&streams, 0, new.len() as u64, old.len() as u64, &whole);
        let mut ops = Vec::new();
        let mut pos = 0;
        for op in dec {
            let op = op.unwrap();
            if let Some((o, l)) = op.old_range() {
                ops.push((o, l, pos));
            }
            pos += op.len();
        }
        (new, streams, ops)
    }

    fn adds_of(
        ops: &[(u64, u64, u64)],
        streams: &Streams,
        old: &[u8],
        new_len: u64,
    ) -> Vec<(usize, usize, usize)> {
        let _ = ops;
        let whole = [(0, old.len() as u64)];
        let mut pos = 0;
        OpDecoder::for_streams(streams, 0, new_len, old.len() as u64, &whole)
            .filter_map(|op| {
                let op = op.unwrap();
                let at = pos;
                pos += op.len() as usize;
                match op {
                    Op::Add { old, len } => Some((old as usize, len as usize, at)),
                    _ => None,
                }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// `encode` is FORMAT.md's definition (naive oracle), and
        /// `to_bytes` turns it back into the byte-wise diff, for both
        /// modes, on code with moved pieces.
        #[test]
        fn encode_is_the_definition_and_inverts(
            seed in 1u64..u64::MAX,
            plan in proptest::collection::vec((0usize..3000, 1usize..600), 1..12),
            edits in proptest::collection::vec((0usize..100_000, 1u8..=255), 0..40),
        ) {
            let old = code(seed, 4096);
            let plan: Vec<(usize, usize)> = plan.into_iter().map(|(o, l)| (o, l.min(4096 - o))).collect();
            let (new, streams, ops) = chunk(&old, &plan, &edits);
            let adds = adds_of(&ops, &streams, &old, new.len() as u64);
            let whole = [(0, old.len() as u64)];
            let dec = || OpDecoder::for_streams(&streams, 0, new.len() as u64, old.len() as u64, &whole);
            let map = OpMap::from_ops(dec(), 0).unwrap();
            for abs in [false, true] {
                let got = encode(&map, abs, &adds, &old, &new, 0);
                prop_assert_eq!(&got, &naive_encode(&ops, &adds, abs, &old, &new, 0));
                let back = to_bytes(&got, abs, dec, 0, |o, l| &old[o as usize..o as usize + l]).unwrap();
                prop_assert_eq!(&back, &streams.diff);
            }
            let got = encode_learned(&map, &adds, &old, &new, 0);
            prop_assert_eq!(&got, &naive_encode_learned(&ops, &adds, &old, &new, 0));
            let back = to_bytes_learned(&got, dec, 0, |o, l| &old[o as usize..o as usize + l]).unwrap();
            prop_assert_eq!(&back, &streams.diff);
        }

        /// Any stored stream of the right length turns into bytes without
        /// a panic; a wrong length is an error.
        #[test]
        fn any_stream_decodes_or_fails_cleanly(
            seed in 1u64..u64::MAX,
            plan in proptest::collection::vec((0usize..3000, 16usize..600), 1..8),
            noise in proptest::collection::vec(any::<u8>(), 0..64),
            cut in 0usize..3,
        ) {
            let old = code(seed, 4096);
            let plan: Vec<(usize, usize)> = plan.into_iter().map(|(o, l)| (o, l.min(4096 - o))).collect();
            let (new, streams, _) = chunk(&old, &plan, &[(7, 1)]);
            let whole = [(0, old.len() as u64)];
            let dec = || OpDecoder::for_streams(&streams, 0, new.len() as u64, old.len() as u64, &whole);
            let mut stored: Vec<u8> = (0..streams.diff.len()).map(|i| noise.get(i % noise.len().max(1)).copied().unwrap_or(0)).collect();
            let ok = to_bytes(&stored, true, dec, 0, |o, l| &old[o as usize..o as usize + l]);
            prop_assert!(ok.is_ok());
            prop_assert!(to_bytes_learned(&stored, dec, 0, |o, l| &old[o as usize..o as usize + l]).is_ok());
            stored.truncate(stored.len().saturating_sub(cut));
            stored.extend(std::iter::repeat_n(0, if cut == 0 { 1 } else { 0 }));
            prop_assert!(to_bytes(&stored, false, dec, 0, |o, l| &old[o as usize..o as usize + l]).is_err());
            prop_assert!(to_bytes_learned(&stored, dec, 0, |o, l| &old[o as usize..o as usize + l]).is_err());
        }
    }

    /// Loads from a section that moved in the address space and not in
    /// the file (no op maps their targets): the op-map modes mispredict
    /// every one, the learned mode only the first; the others take the
    /// shift learned for the target below theirs.
    #[test]
    fn learned_mode_predicts_a_moved_section_after_one_miss() {
        let mut old = vec![0x90u8; 8192];
        let mut new = old.clone();
        for i in 0..10usize {
            // mov eax, [rip + disp32] at 100·i, targets rising from 6000.
            let at = 100 * i;
            let disp = (6000 + 64 * i - (at + 6)) as i32;
            old[at..at + 2].copy_from_slice(&[0x8b, 0x05]);
            old[at + 2..at + 6].copy_from_slice(&disp.to_le_bytes());
            new[at..at + 2].copy_from_slice(&[0x8b, 0x05]);
            new[at + 2..at + 6].copy_from_slice(&(disp + 0x200).to_le_bytes());
        }
        for b in &mut new[4096..] {
            *b = 0x33;
        }
        let mut enc = ChunkEncoder::new(&old, &new, 0);
        enc.push(Op::Add { old: 0, len: 4096 });
        enc.push(Op::Insert { len: 4096 });
        let (streams, _) = enc.finish();
        let whole = [(0, old.len() as u64)];
        let dec =
            || OpDecoder::for_streams(&streams, 0, new.len() as u64, old.len() as u64, &whole);
        let map = OpMap::from_ops(dec(), 0).unwrap();
        let adds = [(0, 4096, 0)];
        let nonzero = |s: &[u8]| s[..40].chunks(4).filter(|w| w != &[0; 4]).count();
        assert_eq!(nonzero(&encode(&map, false, &adds, &old, &new, 0)), 10);
        let got = encode_learned(&map, &adds, &old, &new, 0);
        assert_eq!(nonzero(&got), 1);
        let back = to_bytes_learned(&got, dec, 0, |o, l| &old[o as usize..o as usize + l]);
        assert_eq!(back.unwrap(), streams.diff);
    }

    /// A call whose target moved with its code is predicted exactly: the
    /// stored word is zero, where the relative change is not.
    #[test]
    fn moved_target_predicts_zero() {
        // OLD: a call at 0 to 4096, filler, the callee at 4096.
        let mut old = vec![0x90u8; 8192];
        old[0] = 0xe8;
        old[1..5].copy_from_slice(&(4096i32 - 5).to_le_bytes());
        for (i, b) in old[4096..8192].iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        // NEW: the call, 100 new bytes, then the callee 100 bytes later.
        let mut new = old[..4096].to_vec();
        new.extend(std::iter::repeat_n(0x55, 100));
        new.extend_from_slice(&old[4096..]);
        new[1..5].copy_from_slice(&(4196i32 - 5).to_le_bytes());
        let mut enc = ChunkEncoder::new(&old, &new, 0);
        enc.push(Op::Add { old: 0, len: 4096 });
        enc.push(Op::Insert { len: 100 });
        enc.push(Op::Copy {
            old: 4096,
            len: 4096,
        });
        let (streams, _) = enc.finish();
        let whole = [(0, old.len() as u64)];
        let dec =
            || OpDecoder::for_streams(&streams, 0, new.len() as u64, old.len() as u64, &whole);
        let map = OpMap::from_ops(dec(), 0).unwrap();
        let got = encode(&map, false, &[(0, 4096, 0)], &old, &new, 0);
        assert_eq!(&got[..4], &[0, 0, 0, 0], "the word is predicted");
        assert!(
            streams.diff[1..5] != [0, 0, 0, 0],
            "byte-wise it is not zero"
        );
        assert!(got[4..].iter().all(|&b| b == 0));
    }
}
