//! AArch64 instruction words: the ADD mode `arm64` (format version 6).
//!
//! Moved AArch64 code changes the PC-relative immediates of its branches
//! (`B`, `BL`: 26 bits, in words) and of its address computations (`ADRP`:
//! 21 bits, in 4 KiB pages, and the low 12 bits of the address in the
//! `ADD` or load/store that follows it). As with the x86 operand modes
//! ([`crate::operand`]), this mode stores each such instruction's change as
//! a 32-bit word, predicted first, so that code that only moved costs zero
//! diff bytes.
//!
//! Instructions are 4-byte aligned in the file (an ELF loadable segment's
//! file offset is congruent to its address modulo the page size, at least
//! 4 KiB), so for one ADD op reading OLD at `p` (its *source* `src`, `len`
//! bytes) into NEW at `q`, with shift `s_op = q − p`, the walk looks at the
//! words at `k` with `p + k ≡ 0 (mod 4)` and `k + 4 ≤ len`, in order. With
//! `w` the OLD word at `k` and `pc = p + k` (positions in OLD and NEW are
//! file offsets, used as if they were addresses):
//!
//! * **Branch** (`w & 0x7C000000 = 0x14000000`: `B`, `BL`): OLD target
//!   `t = pc + 4·imm26`.
//! * **ADRP** (`w & 0x9F000000 = 0x90000000`): its register `rd` and page
//!   offset `imm21`; its *pair* is the first of the next [`LOOKAHEAD`]
//!   words of the op (OLD) that is an `ADD Xd, Xn, #imm12` (`x & 0xFFC00000
//!   = 0x91000000`) or a load/store with an unsigned offset (`x &
//!   0x3B000000 = 0x39000000`, scaled by its access size) whose base `Xn` is
//!   `rd`; the pair's word is then predicted too (a later ADRP claiming the
//!   same word replaces the earlier claim). OLD target `t = (pc & ~0xFFF) +
//!   (imm21 << 12) + lo`, with `lo` the pair's byte offset (0 without a
//!   pair). Pages are computed from file offsets: when the target is in a
//!   segment whose address minus file offset differs from the code's (lld
//!   puts the writable segment 64 KiB further), `t` is not where the target
//!   lies in the file, and the op-map lookup may miss or mislead; the
//!   learned shifts below are exact in either case.
//!
//! The *shift* `s` of a target `t` (where its bytes went: NEW − OLD) is,
//! in this order: the shift learned for exactly `t` by an earlier word of
//! the same kind (branch or ADRP) in the chunk; the op map's
//! (`OpMap`, as for the operand modes); the shift learned for the
//! greatest target below `t`; otherwise none. Each branch and ADRP word,
//! once its NEW word is known (as the decoder knows it, after adding the
//! stored difference), teaches the shift of its OLD target: the NEW target
//! read from the NEW word (and from its pair's NEW word, when the pair is
//! the same instruction with another offset) minus `t`; words whose NEW
//! instruction is not of the OLD one's kind teach nothing. At most
//! [`MAX_LEARNED`] targets per kind are learned; past that only known
//! targets are updated.
//!
//! * **Prediction.** Branch: with `s` known and `s − s_op` a multiple of 4,
//!   `imm26 + (s − s_op)/4` (modulo 2^26) in `w`'s other bits; otherwise
//!   `w`. ADRP: with `s` known, NEW target `t' = t + s`, `imm21' = (t' >>
//!   12) − ((pc + s_op) >> 12)` (modulo 2^21) in `w`'s other bits, and the
//!   pair's offset `(t' mod 4096) >> scale` when divisible; otherwise the
//!   OLD words.
//! * **Stream.** First `NEW word − prediction` (modulo 2^32, little-endian)
//!   of every predicted word (branches, ADRPs, claimed pairs) of every ADD,
//!   in op order; then the byte-wise diff (`NEW − OLD` modulo 256) of every
//!   other ADD byte, in op order. It is exactly as long as the ADDs.
//!
//! Bounds: the op map as for the operand modes ([`crate::operand`]), two
//! learned tables of at most [`MAX_LEARNED`] entries (see
//! [`learned_bound`]), and the byte-wise diff (one chunk's length).

use crate::Result;
use crate::ops::OpDecoder;
use crate::predicted::{self, Learned, OpMap, Walk, word};

/// Words after an ADRP searched for its pair.
pub const LOOKAHEAD: usize = 4;

/// Most targets learned per kind (branch, ADRP) in one chunk.
pub const MAX_LEARNED: usize = 1 << 16;

/// Bytes the learned tables of a chunk of `new_len` bytes may hold: two
/// tables of at most one entry per predicted word, and at most
/// [`MAX_LEARNED`], at 64 bytes per entry (a B-tree entry is 16 bytes,
/// nodes are at least half full, plus the inner nodes).
pub fn learned_bound(new_len: u64) -> u64 {
    2 * (new_len / 4).min(MAX_LEARNED as u64) * 64
}

/// `v`'s low `bits` bits, sign-extended.
fn sext(v: u32, bits: u32) -> i64 {
    i64::from(((v << (32 - bits)) as i32) >> (32 - bits))
}

fn is_branch(w: u32) -> bool {
    w & 0x7C00_0000 == 0x1400_0000
}

fn is_adrp(w: u32) -> bool {
    w & 0x9F00_0000 == 0x9000_0000
}

/// An ADRP's page offset.
fn adrp_imm(w: u32) -> i64 {
    sext((((w >> 5) & 0x7_FFFF) << 2) | ((w >> 29) & 3), 21)
}

/// The bits of an instruction word that are not its 12-bit offset.
const NOT_LO12: u32 = !(0xFFF << 10);

/// The scale (log2 of the bytes per unit of its 12-bit offset) of `x`
/// when it is an ADRP's pair: `ADD Xd, Xn, #imm12` or a load/store with an
/// unsigned offset, with base register `Xn = rd`.
fn pair_scale(x: u32, rd: u32) -> Option<u32> {
    if (x >> 5) & 31 != rd {
        return None;
    }
    if x & 0xFFC0_0000 == 0x9100_0000 {
        return Some(0);
    }
    if x & 0x3B00_0000 == 0x3900_0000 {
        let size = x >> 30;
        // A 128-bit SIMD&FP access: V = 1, size = 0, opc ≥ 2.
        let q = (x >> 26) & 1 == 1 && size == 0 && (x >> 23) & 1 == 1;
        return Some(if q { 4 } else { size });
    }
    None
}

/// What the walk found at a word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Branch,
    /// An ADRP, with its pair: the pair word's offset in the op and scale.
    Adrp(Option<(usize, u32)>),
    /// A word claimed as an ADRP's pair.
    Pair,
}

/// Calls `f(k, kind)` for every predicted word of an ADD source `src`
/// whose first byte is at OLD `p`, in order: the walk of the module docs,
/// from OLD bytes alone.
fn scan(src: &[u8], p: u64, mut f: impl FnMut(usize, Kind)) {
    let mut k = ((4 - p % 4) % 4) as usize;
    // Claimed pair words ahead (at most LOOKAHEAD of them).
    let mut claimed: Vec<usize> = Vec::with_capacity(LOOKAHEAD + 1);
    while k + 4 <= src.len() {
        let w = word(&src[k..]);
        if let Some(i) = claimed.iter().position(|&c| c == k) {
            claimed.swap_remove(i);
            f(k, Kind::Pair);
        } else if is_branch(w) {
            f(k, Kind::Branch);
        } else if is_adrp(w) {
            let rd = w & 31;
            let pair = (1..=LOOKAHEAD)
                .map(|i| k + 4 * i)
                .take_while(|&j| j + 4 <= src.len())
                .find_map(|j| pair_scale(word(&src[j..]), rd).map(|s| (j, s)));
            if let Some((j, _)) = pair {
                if !claimed.contains(&j) {
                    claimed.push(j);
                }
            }
            f(k, Kind::Adrp(pair));
        }
        k += 4;
    }
}

/// A claimed pair's prediction and what it teaches once decoded.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// Offset of the pair word in the op.
    at: usize,
    /// Its predicted NEW word.
    pred: u32,
    /// Its OLD word and scale.
    old: u32,
    scale: u32,
    /// The ADRP's OLD target, and its NEW page when the NEW ADRP is one.
    t: i64,
    new_page: Option<i64>,
}

/// The prediction state of one chunk: its op map and the learned shifts.
pub(crate) struct Predictor<'m> {
    map: &'m OpMap,
    branch: Learned,
    page: Learned,
}

impl<'m> Predictor<'m> {
    pub(crate) fn new(map: &'m OpMap) -> Predictor<'m> {
        Predictor {
            map,
            branch: Learned::new(MAX_LEARNED),
            page: Learned::new(MAX_LEARNED),
        }
    }

    /// The shift of target `t` (see the module docs), where `known` is
    /// what `learned` holds for exactly `t`.
    fn shift(map: &OpMap, learned: &Learned, known: Option<i64>, t: i64) -> Option<i64> {
        known.or_else(|| map.lookup(t)).or_else(|| learned.below(t))
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
        let mut pending: Vec<Pending> = Vec::with_capacity(LOOKAHEAD + 1);
        scan(src, p, |k, kind| {
            let w = word(&src[k..]);
            let pc = (p as i64).wrapping_add(k as i64);
            let new_pc = pc.wrapping_add(s_op);
            match kind {
                Kind::Branch => {
                    let imm = sext(w, 26);
                    let t = pc.wrapping_add(imm.wrapping_mul(4));
                    // Learning what is known changes nothing: one search
                    // of the table fewer for a branch to a known target.
                    let known = self.branch.exact(t);
                    let pred = match Self::shift(self.map, &self.branch, known, t) {
                        Some(s) if s.wrapping_sub(s_op) % 4 == 0 => {
                            let imm = imm.wrapping_add(s.wrapping_sub(s_op) / 4);
                            (w & 0xFC00_0000) | (imm as u32 & 0x3FF_FFFF)
                        }
                        _ => w,
                    };
                    let nw = f(k, pred);
                    if nw & 0xFC00_0000 == w & 0xFC00_0000 {
                        let nt = new_pc.wrapping_add(sext(nw, 26).wrapping_mul(4));
                        let s = nt.wrapping_sub(t);
                        if known != Some(s) {
                            self.branch.learn(t, s);
                        }
                    }
                }
                Kind::Adrp(pair) => {
                    let page = (pc & !0xFFF).wrapping_add(adrp_imm(w).wrapping_mul(1 << 12));
                    let pair = pair.map(|(j, scale)| (j, word(&src[j..]), scale));
                    let lo = pair.map_or(0, |(_, x, scale)| i64::from((x >> 10) & 0xFFF) << scale);
                    let t = page.wrapping_add(lo);
                    let known = self.page.exact(t);
                    let shift = Self::shift(self.map, &self.page, known, t);
                    let (pred, pair_pred) = adrp_prediction(w, pair, t, shift, new_pc);
                    let nw = f(k, pred);
                    let new_page = is_adrp(nw).then(|| {
                        (new_pc & !0xFFF).wrapping_add(adrp_imm(nw).wrapping_mul(1 << 12))
                    });
                    match (pair, pair_pred) {
                        (Some((at, old, scale)), Some(pred)) => {
                            let p = Pending {
                                at,
                                pred,
                                old,
                                scale,
                                t,
                                new_page,
                            };
                            match pending.iter_mut().find(|e| e.at == at) {
                                Some(e) => *e = p,
                                None => pending.push(p),
                            }
                        }
                        _ => {
                            if let Some(np) = new_page {
                                let s = np.wrapping_sub(t);
                                if known != Some(s) {
                                    self.page.learn(t, s);
                                }
                            }
                        }
                    }
                }
                Kind::Pair => {
                    let i = pending
                        .iter()
                        .position(|e| e.at == k)
                        .expect("a claimed word has a pending prediction");
                    let e = pending.swap_remove(i);
                    let nw = f(k, e.pred);
                    if let Some(np) = e.new_page {
                        if nw & NOT_LO12 == e.old & NOT_LO12 {
                            let nt = np.wrapping_add(i64::from((nw >> 10) & 0xFFF) << e.scale);
                            self.page.learn(e.t, nt.wrapping_sub(e.t));
                        }
                    }
                }
            }
        });
    }
}

/// The predicted NEW words of an ADRP `w` at NEW `new_pc` with OLD target
/// `t` and its pair `(offset, OLD word, scale)`, when the target's shift
/// is `shift`: the OLD words when it is unknown (see the module docs).
fn adrp_prediction(
    w: u32,
    pair: Option<(usize, u32, u32)>,
    t: i64,
    shift: Option<i64>,
    new_pc: i64,
) -> (u32, Option<u32>) {
    let Some(s) = shift else {
        return (w, pair.map(|(_, x, _)| x));
    };
    let nt = t.wrapping_add(s);
    let imm = (nt >> 12).wrapping_sub(new_pc >> 12);
    let pred = (w & 0x9F00_001F) | ((imm as u32 & 3) << 29) | (((imm >> 2) as u32 & 0x7_FFFF) << 5);
    let pair_pred = pair.map(|(_, x, scale)| {
        let lo = nt & 0xFFF;
        if lo & ((1 << scale) - 1) == 0 {
            (x & NOT_LO12) | (((lo >> scale) as u32) << 10)
        } else {
            x
        }
    });
    (pred, pair_pred)
}

/// Whether a chunk's ADD sources `(OLD start, length)` look like AArch64
/// code, cheaply: at least one aligned word in 40 is a branch whose target
/// lies inside OLD (7% on the text of the exe-arm64 corpus pair; random
/// bytes make about 3% × OLD length / 256 MiB). The encoder tries the mode
/// only then; it keeps it only where it compresses smaller.
pub fn looks_like_code(adds: impl Iterator<Item = (usize, usize)>, old: &[u8]) -> bool {
    let (mut words, mut branches) = (0usize, 0usize);
    for (o, l) in adds {
        let src = &old[o..o + l];
        let k0 = (4 - o % 4) % 4;
        for (i, c) in src.get(k0..).unwrap_or(&[]).chunks_exact(4).enumerate() {
            let w = word(c);
            words += 1;
            if is_branch(w) {
                let t = (o + k0 + 4 * i) as i64 + 4 * sext(w, 26);
                branches += usize::from((0..old.len() as i64).contains(&t));
            }
        }
    }
    words > 0 && branches * 40 >= words
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
        let mapped = |t: i128| predicted::naive_mapped(ops, t);
        // Learned shifts per kind (0 branch, 1 ADRP), in learning order.
        let mut learned: [Vec<(i128, i128)>; 2] = [Vec::new(), Vec::new()];
        let shift = |learned: &Vec<(i128, i128)>, t: i128| {
            learned
                .iter()
                .find(|e| e.0 == t)
                .map(|e| e.1)
                .or_else(|| mapped(t))
                .or_else(|| {
                    learned
                        .iter()
                        .filter(|e| e.0 < t)
                        .max_by_key(|e| e.0)
                        .map(|e| e.1)
                })
        };
        let learn = |learned: &mut Vec<(i128, i128)>, t: i128, s: i128| {
            if let Some(e) = learned.iter_mut().find(|e| e.0 == t) {
                e.1 = s;
            } else if learned.len() < MAX_LEARNED {
                learned.push((t, s));
            }
        };
        let wd = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let se = |v: u32, bits: u32| {
            let v = i128::from(v & ((1u32 << bits) - 1));
            if v >= 1 << (bits - 1) {
                v - (1 << bits)
            } else {
                v
            }
        };
        let (mut words, mut rest) = (Vec::new(), Vec::new());
        for &(o, l, at) in adds {
            let (src, dst) = (&old[o..o + l], &new_chunk[at..at + l]);
            let (p, q) = (o as i128, (start + at as u64) as i128);
            let s_op = q - p;
            // (pair offset, predicted word, OLD word, scale, t, NEW page)
            let mut claims: Vec<(usize, u32, u32, u32, i128, Option<i128>)> = Vec::new();
            let mut is_word = vec![false; l];
            let mut k = 0;
            while k < l {
                if (p + k as i128) % 4 != 0 || k + 4 > l {
                    k += 1;
                    continue;
                }
                let w = wd(src, k);
                let nw = wd(dst, k);
                let pc = p + k as i128;
                let npc = pc + s_op;
                let mut put = |pred: u32, is_word: &mut Vec<bool>| {
                    words.extend_from_slice(&nw.wrapping_sub(pred).to_le_bytes());
                    is_word[k..k + 4].fill(true);
                };
                if let Some(i) = claims.iter().position(|c| c.0 == k) {
                    let (_, pred, ow, scale, t, np) = claims.remove(i);
                    put(pred, &mut is_word);
                    if let Some(np) = np {
                        if nw & !(0xFFF << 10) == ow & !(0xFFF << 10) {
                            let nt = np + (i128::from((nw >> 10) & 0xFFF) << scale);
                            learn(&mut learned[1], t, nt - t);
                        }
                    }
                } else if w & 0x7C00_0000 == 0x1400_0000 {
                    let t = pc + 4 * se(w, 26);
                    let pred = match shift(&learned[0], t) {
                        Some(s) if (s - s_op) % 4 == 0 => {
                            let imm = (se(w, 26) + (s - s_op) / 4).rem_euclid(1 << 26) as u32;
                            (w & 0xFC00_0000) | imm
                        }
                        _ => w,
                    };
                    put(pred, &mut is_word);
                    if nw >> 26 == w >> 26 {
                        let nt = npc + 4 * se(nw, 26);
                        learn(&mut learned[0], t, nt - t);
                    }
                } else if w & 0x9F00_0000 == 0x9000_0000 {
                    let rd = w & 31;
                    let imm = |w: u32| se((((w >> 5) & 0x7_FFFF) << 2) | ((w >> 29) & 3), 21);
                    let mut pair = None;
                    for i in 1..=LOOKAHEAD {
                        let j = k + 4 * i;
                        if j + 4 > l {
                            break;
                        }
                        let x = wd(src, j);
                        if (x >> 5) & 31 != rd {
                            continue;
                        }
                        if x >> 22 == 0x244 {
                            pair = Some((j, x, 0));
                            break;
                        }
                        if (x >> 24) & 0x3B == 0x39 {
                            let q = x >> 30 == 0 && (x >> 26) & 1 == 1 && (x >> 23) & 1 == 1;
                            pair = Some((j, x, if q { 4 } else { x >> 30 }));
                            break;
                        }
                    }
                    let lo = pair.map_or(0, |(_, x, sc): (usize, u32, u32)| {
                        i128::from((x >> 10) & 0xFFF) << sc
                    });
                    let t = pc.div_euclid(4096) * 4096 + imm(w) * 4096 + lo;
                    let s = shift(&learned[1], t);
                    let (pred, pair_pred) = match s {
                        Some(s) => {
                            let nt = t + s;
                            let im = (nt.div_euclid(4096) - npc.div_euclid(4096))
                                .rem_euclid(1 << 21) as u32;
                            let pred = (w & 0x9F00_001F) | ((im & 3) << 29) | ((im >> 2) << 5);
                            let pp = pair.map(|(_, x, sc)| {
                                let lo = nt.rem_euclid(4096);
                                if lo % (1 << sc) == 0 {
                                    (x & !(0xFFF << 10)) | (((lo >> sc) as u32) << 10)
                                } else {
                                    x
                                }
                            });
                            (pred, pp)
                        }
                        None => (w, pair.map(|p| p.1)),
                    };
                    put(pred, &mut is_word);
                    let np = (nw & 0x9F00_0000 == 0x9000_0000)
                        .then(|| npc.div_euclid(4096) * 4096 + imm(nw) * 4096);
                    match (pair, pair_pred) {
                        (Some((j, x, sc)), Some(pp)) => {
                            claims.retain(|c| c.0 != j);
                            claims.push((j, pp, x, sc, t, np));
                        }
                        _ => {
                            if let Some(np) = np {
                                learn(&mut learned[1], t, np - t);
                            }
                        }
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

    /// AArch64-like words: branches to nearby words, ADRPs to nearby
    /// pages followed by an ADD or load/store on their register, and other
    /// words, at random.
    fn code(seed: u64, len: usize) -> Vec<u8> {
        let mut r = Rng(seed | 1);
        let mut out = Vec::new();
        let mut last_rd = 0;
        while out.len() < len {
            let w: u32 = match r.below(10) {
                0 | 1 => {
                    let imm = (r.below(4096) as i64 - 2048) as u32 & 0x3FF_FFFF;
                    [0x9400_0000, 0x1400_0000][r.below(2) as usize] | imm
                }
                2 => {
                    last_rd = r.below(31) as u32;
                    let imm = (r.below(8) as i64 - 4) as u32 & 0x1F_FFFF;
                    0x9000_0000 | ((imm & 3) << 29) | ((imm >> 2) << 5) | last_rd
                }
                3 => 0x9100_0000 | ((r.below(4096) as u32) << 10) | (last_rd << 5) | 1,
                4 => {
                    let op = [
                        0xF940_0000u32,
                        0xB940_0000,
                        0x3940_0000,
                        0x3DC0_0000,
                        0xF900_0000,
                    ][r.below(5) as usize];
                    op | ((r.below(4096) as u32) << 10) | (last_rd << 5) | 2
                }
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
        /// AArch64-like code with edits, at any chunk offset.
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
            // The first op an ADD, which the edit keeps one.
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

    /// Code that moved, with its calls and ADRP + ADD / LDR pairs
    /// following their targets (which moved by another amount, not a
    /// multiple of a page), costs zero words; byte-wise it does not.
    #[test]
    fn moved_targets_predict_zero() {
        let enc = |ws: &[u32]| ws.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
        // OLD: code at 0 (a BL to 0x3000, ADRP x1 + ADD x1 to 0x5010,
        // ADRP x2 + LDR x3, [x2, #0x18] to 0x5018), filler, a callee at
        // 0x3000, data at 0x5000.
        let bl = |from: i64, to: i64| 0x9400_0000 | ((to - from) / 4) as u32 & 0x3FF_FFFF;
        let adrp = |from: i64, to: i64, rd: u32| {
            let imm = ((to >> 12) - (from >> 12)) as u32 & 0x1F_FFFF;
            0x9000_0000 | ((imm & 3) << 29) | ((imm >> 2) << 5) | rd
        };
        let add = |lo: i64| 0x9100_0000 | ((lo as u32 & 0xFFF) << 10) | (1 << 5) | 1;
        let ldr = |lo: i64| 0xF940_0000 | (((lo as u32 & 0xFFF) / 8) << 10) | (2 << 5) | 3;
        let code = |base: i64, callee: i64, data: i64| {
            enc(&[
                0xD503_201F,
                bl(base + 4, callee),
                adrp(base + 8, data + 0x10, 1),
                add(data + 0x10),
                adrp(base + 16, data + 0x18, 2),
                0xD503_201F,
                ldr(data + 0x18),
                0xD65F_03C0,
            ])
        };
        let mut old = vec![0u8; 0x6000];
        old[..32].copy_from_slice(&code(0, 0x3000, 0x5000));
        for (i, b) in old[0x3000..].iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        // NEW: the code moved by 0x40, the callee by 0x128, the data by
        // 0x1238.
        let (dc, df, dd) = (0x40usize, 0x128usize, 0x1238usize);
        let mut new = vec![0u8; 0x6000 + dd];
        new[dc..dc + 32].copy_from_slice(&code(
            dc as i64,
            0x3000 + df as i64,
            (0x5000 + dd) as i64,
        ));
        new[0x3000 + df..0x5000 + df].copy_from_slice(&old[0x3000..0x5000]);
        new[0x5000 + dd..].copy_from_slice(&old[0x5000..]);
        let mut e = ChunkEncoder::new(&old, &new, 0);
        e.push(Op::Insert { len: dc as u64 });
        e.push(Op::Add { old: 0, len: 32 });
        e.push(Op::Insert {
            len: (0x3000 + df - dc - 32) as u64,
        });
        e.push(Op::Copy {
            old: 0x3000,
            len: 0x2000,
        });
        e.push(Op::Insert {
            len: (dd - df) as u64,
        });
        e.push(Op::Copy {
            old: 0x5000,
            len: 0x1000,
        });
        let (streams, _) = e.finish();
        let whole = [(0, old.len() as u64)];
        let dec =
            || OpDecoder::for_streams(&streams, 0, new.len() as u64, old.len() as u64, &whole);
        let map = OpMap::from_ops(dec(), 0).unwrap();
        let got = encode(&map, &[(0, 32, dc)], &old, &new, 0);
        assert_eq!(got.len(), 32);
        // Five predicted words (BL, ADRP, ADD, ADRP, LDR) and the bytes of
        // the other three words.
        assert!(got.iter().all(|&b| b == 0), "{got:?}");
        assert!(streams.diff.iter().filter(|&&b| b != 0).count() >= 5);
        assert_eq!(
            to_bytes(&got, dec, 0, |o, l| &old[o as usize..o as usize + l]).unwrap(),
            streams.diff
        );
    }

    /// Pair scales: ADD 1, X loads 8, W loads 4, bytes 1, Q loads 16.
    #[test]
    fn pair_scales() {
        assert_eq!(pair_scale(0x9100_0000 | (3 << 5), 3), Some(0));
        assert_eq!(pair_scale(0x9100_0000 | (3 << 5), 4), None);
        assert_eq!(pair_scale(0xF940_0000 | (3 << 5), 3), Some(3));
        assert_eq!(pair_scale(0xB940_0000 | (3 << 5), 3), Some(2));
        assert_eq!(pair_scale(0x3940_0000 | (3 << 5), 3), Some(0));
        assert_eq!(pair_scale(0x3DC0_0000 | (3 << 5), 3), Some(4));
        assert_eq!(pair_scale(0xFD40_0000 | (3 << 5), 3), Some(3), "LDR D");
        // ADD (32-bit) and ADDS are not pairs.
        assert_eq!(pair_scale(0x1100_0000 | (3 << 5), 3), None);
        assert_eq!(pair_scale(0xB100_0000 | (3 << 5), 3), None);
    }
}
