//! RISC-V instruction words: the ADD mode `riscv` (format version 10).
//!
//! Moved RISC-V code changes the PC-relative immediates of its jumps
//! (`JAL`: 20 bits, in halfwords) and of its address computations
//! (`AUIPC`: the high 20 bits of an offset, and the low 12 bits in the
//! `ADDI`, `JALR`, load or store that follows it). As the AArch64 mode
//! does ([`crate::arm64`]), this mode stores each such instruction's
//! change as a 32-bit word, predicted first, so that code that only moved
//! costs zero diff bytes.
//!
//! RISC-V code may mix 4-byte instructions with 2-byte compressed ones
//! (the C extension), so instructions are 2-byte aligned and their length
//! is read from their first halfword: 4 bytes when its low two bits are
//! `11`, otherwise 2 (the longer encodings are not used by any ratified
//! extension; such a word is read as a 4-byte instruction). For one ADD
//! op reading OLD at `p` (its *source*, `len` bytes) into NEW at `q`,
//! with shift `s_op = q − p`, the walk starts at `k = p mod 2` (so that
//! `p + k` is even) and, while `k + 4 ≤ len`, looks at the instruction at
//! `k`: a 2-byte one is stepped over (`k += 2`); a 4-byte one is read as
//! the little-endian word `w` (then `k += 4`). With `pc = p + k`
//! (positions in OLD and NEW are file offsets, used as if they were
//! addresses):
//!
//! * **JAL** (`w & 0x7F = 0x6F`): OLD target `t = pc + imm`, with `imm`
//!   the J-type immediate (21 bits, sign-extended, even).
//! * **AUIPC** (`w & 0x7F = 0x17`, with `rd = (w >> 7) & 31` not 0): its
//!   *pair* is the first of the next [`LOOKAHEAD`] instructions of the op
//!   (stepping as above, 2-byte ones counted, none past the op's end) that
//!   is a 4-byte instruction with `rs1 = (x >> 15) & 31` equal to `rd` and
//!   one of: `ADDI` (`x & 0x707F = 0x13`), `JALR` (`x & 0x707F = 0x67`), a
//!   load (`x & 0x7F` is `0x03` or `0x07`), each with the I-type offset
//!   `x >> 20`; or a store (`x & 0x7F` is `0x23` or `0x27`), with the
//!   S-type offset (`x` bits 31..25 and 11..7). The pair's word is then
//!   predicted too (a later AUIPC claiming the same word replaces the
//!   earlier claim). OLD target `t = pc + hi + lo`, with `hi` the word
//!   `w & 0xFFFFF000` sign-extended and `lo` the pair's sign-extended
//!   12-bit offset (0 without a pair).
//!
//! The *shift* `s` of a target `t` (where its bytes went: NEW − OLD) is,
//! in this order: the shift learned for exactly `t` by an earlier word of
//! the same kind (JAL or AUIPC) in the chunk; the op map's (`OpMap`, as
//! for the operand modes); the shift learned for the greatest target
//! below `t`; otherwise none. Each JAL and AUIPC word, once its NEW word
//! is known (as the decoder knows it, after adding the stored
//! difference), teaches the shift of its OLD target: the NEW target read
//! from the NEW word (and from its pair's NEW word, when the pair is the
//! same instruction with another offset) minus `t`; words whose NEW
//! instruction differs from the OLD one in its low 12 bits (opcode and
//! `rd`) teach nothing. At most [`MAX_LEARNED`] targets per kind are
//! learned; past that only known targets are updated.
//!
//! * **Prediction.** JAL: with `s` known and `s − s_op` even, the
//!   immediate `imm + (s − s_op)` (modulo 2^21) in `w`'s other bits;
//!   otherwise `w`. AUIPC: with `s` known, `d = t + s − (pc + s_op)` (the
//!   NEW target from the NEW instruction), `hi = (d + 0x800) >> 12`
//!   (arithmetic shift) in bits 31..12 of `w` (modulo 2^20), and the
//!   pair's offset `d − hi · 4096` (in −2048..=2047) in its offset bits;
//!   otherwise the OLD words.
//! * **Stream.** First `NEW word − prediction` (modulo 2^32, little-endian)
//!   of every predicted word (JALs, AUIPCs, claimed pairs) of every ADD,
//!   in op order; then the byte-wise diff (`NEW − OLD` modulo 256) of
//!   every other ADD byte, in op order. It is exactly as long as the ADDs.
//!
//! Bounds: the op map as for the operand modes ([`crate::operand`]), and
//! two learned tables of at most [`MAX_LEARNED`] entries, the arm64 mode's
//! (see [`learned_bound`]).

use crate::Result;
use crate::ops::OpDecoder;
use crate::predicted::{self, Learned, OpMap, Walk, word};

/// Instructions after an AUIPC searched for its pair.
pub const LOOKAHEAD: usize = 4;

/// Most targets learned per kind (JAL, AUIPC) in one chunk: the arm64
/// mode's cap.
pub const MAX_LEARNED: usize = crate::arm64::MAX_LEARNED;

/// Bytes the learned tables of a chunk of `new_len` bytes may hold: as
/// for the arm64 mode ([`crate::arm64::learned_bound`]), two tables of at
/// most one entry per predicted 4-byte word and at most [`MAX_LEARNED`].
pub fn learned_bound(new_len: u64) -> u64 {
    crate::arm64::learned_bound(new_len)
}

const JAL: u32 = 0x6F;
const AUIPC: u32 = 0x17;

/// `v`'s low `bits` bits, sign-extended.
fn sext(v: u32, bits: u32) -> i64 {
    i64::from(((v << (32 - bits)) as i32) >> (32 - bits))
}

/// Whether the instruction whose first byte is `b` is 4 bytes long.
#[inline(always)]
fn is_long(b: u8) -> bool {
    b & 3 == 3
}

fn rd(w: u32) -> u32 {
    (w >> 7) & 31
}

/// A JAL's immediate: bits 20, 10..1, 11 and 19..12 of the offset in
/// bits 31, 30..21, 20 and 19..12 of the word.
fn jal_imm(w: u32) -> i64 {
    let v = ((w >> 31) & 1) << 20
        | ((w >> 12) & 0xFF) << 12
        | ((w >> 20) & 1) << 11
        | ((w >> 21) & 0x3FF) << 1;
    sext(v, 21)
}

/// JAL `w` with immediate `imm` (its bit 0 and bits above 20 dropped).
fn jal_with(w: u32, imm: i64) -> u32 {
    let v = imm as u32;
    (w & 0xFFF)
        | ((v >> 20) & 1) << 31
        | ((v >> 1) & 0x3FF) << 21
        | ((v >> 11) & 1) << 20
        | ((v >> 12) & 0xFF) << 12
}

/// An AUIPC's offset: its upper 20 bits, sign-extended.
fn auipc_imm(w: u32) -> i64 {
    i64::from((w & 0xFFFF_F000) as i32)
}

/// Where an AUIPC's pair keeps its 12-bit offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// Bits 31..20 (`ADDI`, `JALR`, loads).
    I,
    /// Bits 31..25 and 11..7 (stores).
    S,
}

impl Form {
    /// The bits of a word that are not its offset.
    fn not_lo(self) -> u32 {
        match self {
            Form::I => 0x000F_FFFF,
            Form::S => 0x01FF_F07F,
        }
    }

    /// The offset of `x`, sign-extended.
    fn lo(self, x: u32) -> i64 {
        match self {
            Form::I => sext(x >> 20, 12),
            Form::S => sext(((x >> 25) << 5) | ((x >> 7) & 31), 12),
        }
    }

    /// `x` with offset `lo` (its low 12 bits).
    fn with(self, x: u32, lo: i64) -> u32 {
        let v = lo as u32 & 0xFFF;
        match self {
            Form::I => (x & self.not_lo()) | v << 20,
            Form::S => (x & self.not_lo()) | (v >> 5) << 25 | (v & 31) << 7,
        }
    }
}

/// The form of `x` when it is an AUIPC's pair with base register `rs1 =
/// rd` (see the module docs).
fn pair_form(x: u32, rd: u32) -> Option<Form> {
    if (x >> 15) & 31 != rd {
        return None;
    }
    match x & 0x7F {
        0x13 | 0x67 if x & 0x7000 == 0 => Some(Form::I),
        0x03 | 0x07 => Some(Form::I),
        0x23 | 0x27 => Some(Form::S),
        _ => None,
    }
}

/// What the walk found at a word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Jal,
    /// An AUIPC, with its pair: the pair word's offset in the op and form.
    Auipc(Option<(usize, Form)>),
    /// A word claimed as an AUIPC's pair.
    Pair,
}

/// The pair of the AUIPC with register `rd` whose word ends at `k` in
/// `src`: the module docs' search.
fn find_pair(src: &[u8], mut k: usize, rd: u32) -> Option<(usize, Form)> {
    for _ in 0..LOOKAHEAD {
        if k + 2 > src.len() {
            return None;
        }
        if !is_long(src[k]) {
            k += 2;
            continue;
        }
        if k + 4 > src.len() {
            return None;
        }
        if let Some(form) = pair_form(word(&src[k..]), rd) {
            return Some((k, form));
        }
        k += 4;
    }
    None
}

/// Calls `f(k, kind)` for every predicted word of an ADD source `src`
/// whose first byte is at OLD `p`, in order: the walk of the module docs,
/// from OLD bytes alone.
fn scan(src: &[u8], p: u64, mut f: impl FnMut(usize, Kind)) {
    let mut k = (p % 2) as usize;
    // Claimed pair words ahead (at most LOOKAHEAD of them).
    let mut claimed: Vec<usize> = Vec::with_capacity(LOOKAHEAD + 1);
    while k + 4 <= src.len() {
        if !is_long(src[k]) {
            k += 2;
            continue;
        }
        let w = word(&src[k..]);
        if let Some(i) = claimed.iter().position(|&c| c == k) {
            claimed.swap_remove(i);
            f(k, Kind::Pair);
        } else if w & 0x7F == JAL {
            f(k, Kind::Jal);
        } else if w & 0x7F == AUIPC && rd(w) != 0 {
            let pair = find_pair(src, k + 4, rd(w));
            if let Some((j, _)) = pair {
                if !claimed.contains(&j) {
                    claimed.push(j);
                }
            }
            f(k, Kind::Auipc(pair));
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
    /// Its OLD word and form.
    old: u32,
    form: Form,
    /// The AUIPC's OLD target, and its NEW high part (NEW pc plus the
    /// NEW upper offset) when the NEW AUIPC is the OLD one's kind.
    t: i64,
    new_hi: Option<i64>,
}

/// The prediction state of one chunk: its op map and the learned shifts.
pub(crate) struct Predictor<'m> {
    map: &'m OpMap,
    jal: Learned,
    auipc: Learned,
}

impl<'m> Predictor<'m> {
    pub(crate) fn new(map: &'m OpMap) -> Predictor<'m> {
        Predictor {
            map,
            jal: Learned::new(MAX_LEARNED),
            auipc: Learned::new(MAX_LEARNED),
        }
    }

    /// The shift of target `t` (see the module docs), where `known` is
    /// what `learned` holds for exactly `t`.
    fn shift(map: &OpMap, learned: &Learned, known: Option<i64>, t: i64) -> Option<i64> {
        known.or_else(|| map.lookup(t)).or_else(|| learned.below(t))
    }

    /// A JAL `w` at OLD `pc` (NEW `new_pc`, op shift `s_op`): predicts
    /// it, gets its NEW word from `f` and learns from it.
    fn jal(&mut self, w: u32, pc: i64, s_op: i64, f: impl FnOnce(u32) -> u32) {
        let imm = jal_imm(w);
        let t = pc.wrapping_add(imm);
        // Learning what is known changes nothing: one search of the table
        // fewer for a jump to a known target.
        let known = self.jal.exact(t);
        let pred = match Self::shift(self.map, &self.jal, known, t) {
            Some(s) if s.wrapping_sub(s_op) % 2 == 0 => {
                jal_with(w, imm.wrapping_add(s.wrapping_sub(s_op)))
            }
            _ => w,
        };
        let nw = f(pred);
        if nw & 0xFFF == w & 0xFFF {
            let new_pc = pc.wrapping_add(s_op);
            let s = new_pc.wrapping_add(jal_imm(nw)).wrapping_sub(t);
            if known != Some(s) {
                self.jal.learn(t, s);
            }
        }
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
                Kind::Jal => self.jal(w, pc, s_op, |pred| f(k, pred)),
                Kind::Auipc(pair) => {
                    let pair = pair.map(|(j, form)| (j, word(&src[j..]), form));
                    let lo = pair.map_or(0, |(_, x, form)| form.lo(x));
                    let t = pc.wrapping_add(auipc_imm(w)).wrapping_add(lo);
                    let known = self.auipc.exact(t);
                    let shift = Self::shift(self.map, &self.auipc, known, t);
                    let (pred, pair_pred) = auipc_prediction(w, pair, t, shift, new_pc);
                    let nw = f(k, pred);
                    let new_hi =
                        (nw & 0xFFF == w & 0xFFF).then(|| new_pc.wrapping_add(auipc_imm(nw)));
                    match pair {
                        Some((at, old, form)) => {
                            let p = Pending {
                                at,
                                pred: pair_pred,
                                old,
                                form,
                                t,
                                new_hi,
                            };
                            match pending.iter_mut().find(|e| e.at == at) {
                                Some(e) => *e = p,
                                None => pending.push(p),
                            }
                        }
                        None => {
                            if let Some(nh) = new_hi {
                                let s = nh.wrapping_sub(t);
                                if known != Some(s) {
                                    self.auipc.learn(t, s);
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
                    if let Some(nh) = e.new_hi {
                        let mask = e.form.not_lo();
                        if nw & mask == e.old & mask {
                            let nt = nh.wrapping_add(e.form.lo(nw));
                            self.auipc.learn(e.t, nt.wrapping_sub(e.t));
                        }
                    }
                }
            }
        });
    }
}

/// The predicted NEW words of an AUIPC `w` at NEW `new_pc` with OLD
/// target `t` and its pair `(offset, OLD word, form)`, when the target's
/// shift is `shift`: the OLD words when it is unknown (see the module
/// docs). The pair's prediction is meaningless without a pair.
fn auipc_prediction(
    w: u32,
    pair: Option<(usize, u32, Form)>,
    t: i64,
    shift: Option<i64>,
    new_pc: i64,
) -> (u32, u32) {
    let Some(s) = shift else {
        return (w, pair.map_or(0, |(_, x, _)| x));
    };
    let d = t.wrapping_add(s).wrapping_sub(new_pc);
    let hi = d.wrapping_add(0x800) >> 12;
    let pred = (w & 0xFFF) | (hi as u32) << 12;
    let lo = d.wrapping_sub(hi.wrapping_mul(1 << 12));
    (pred, pair.map_or(0, |(_, x, form)| form.with(x, lo)))
}

/// Whether a chunk's ADD sources `(OLD start, length)` look like RISC-V
/// code, cheaply: walked as the mode walks them, at least one instruction
/// in 100 is a JAL with `rd` 0 or 1 (a jump or a call) whose target lies
/// inside OLD (1 in 28 over the whole of the hold-riscv-go executable;
/// 1 in 330 over the text of tar-src, 1 in 1,600 to 3,700 over x86-64,
/// AArch64 and wasm files). The encoder tries the mode only then; it
/// keeps it only where it compresses smaller.
pub fn looks_like_code(adds: impl Iterator<Item = (usize, usize)>, old: &[u8]) -> bool {
    let (mut insns, mut jals) = (0usize, 0usize);
    for (o, l) in adds {
        let src = &old[o..o + l];
        let mut k = o % 2;
        while k + 4 <= src.len() {
            insns += 1;
            if !is_long(src[k]) {
                k += 2;
                continue;
            }
            let w = word(&src[k..]);
            if w & 0x7F == JAL && rd(w) <= 1 {
                let t = (o + k) as i64 + jal_imm(w);
                jals += usize::from((0..old.len() as i64).contains(&t));
            }
            k += 4;
        }
    }
    insns > 0 && jals * 100 >= insns
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

    /// Sign-extends the low `bits` bits of `v`, in wide integers.
    fn se(v: u32, bits: u32) -> i128 {
        let v = i128::from(v & ((1u32 << bits) - 1));
        if v >= 1 << (bits - 1) {
            v - (1 << bits)
        } else {
            v
        }
    }

    /// A pair's offset bits by the module docs: `(offset, mask of the
    /// other bits)`, for an I-type or S-type pair with base `rd`.
    fn naive_pair(x: u32, rd: u32) -> Option<(i128, u32)> {
        if (x >> 15) & 31 != rd {
            return None;
        }
        let op = x & 0x7F;
        let i_type = (op == 0x13 || op == 0x67) && (x >> 12) & 7 == 0 || op == 3 || op == 7;
        if i_type {
            return Some((se(x >> 20, 12), 0x000F_FFFF));
        }
        if op == 0x23 || op == 0x27 {
            return Some((se(((x >> 25) << 5) | ((x >> 7) & 31), 12), 0x01FF_F07F));
        }
        None
    }

    /// `x` with the pair offset `lo` in its offset bits.
    fn naive_pair_with(x: u32, mask: u32, lo: i128) -> u32 {
        let v = lo.rem_euclid(4096) as u32;
        if mask == 0x000F_FFFF {
            (x & mask) | (v << 20)
        } else {
            (x & mask) | ((v >> 5) << 25) | ((v & 31) << 7)
        }
    }

    fn naive_jal_imm(w: u32) -> i128 {
        let bit = |i: u32| i128::from((w >> i) & 1);
        let mut v = 0i128;
        for i in 1..=10 {
            v += bit(20 + i) << i;
        }
        v += bit(20) << 11;
        for i in 12..=19 {
            v += bit(i) << i;
        }
        v - (bit(31) << 20)
    }

    fn naive_jal_with(w: u32, imm: i128) -> u32 {
        let v = imm.rem_euclid(1 << 21) as u32;
        let mut out = w & 0xFFF;
        for i in 1..=10 {
            out |= ((v >> i) & 1) << (20 + i);
        }
        out |= ((v >> 11) & 1) << 20;
        for i in 12..=19 {
            out |= ((v >> i) & 1) << i;
        }
        out | ((v >> 20) & 1) << 31
    }

    /// The instruction starts of an ADD source at OLD `p`: every
    /// position from `p mod 2` on, 2 or 4 bytes apart by the first byte's
    /// low bits, with its length, while 4 bytes remain.
    fn starts(src: &[u8], p: usize) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        let mut k = p % 2;
        while k + 4 <= src.len() {
            let n = if src[k] & 3 == 3 { 4 } else { 2 };
            v.push((k, n));
            k += n;
        }
        v
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
        let mapped = |t: i128| predicted::naive_mapped(ops, t);
        // Learned shifts per kind (0 JAL, 1 AUIPC), in learning order.
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
        let (mut words, mut rest) = (Vec::new(), Vec::new());
        for &(o, l, at) in adds {
            let (src, dst) = (&old[o..o + l], &new_chunk[at..at + l]);
            let (p, q) = (o as i128, (start + at as u64) as i128);
            let s_op = q - p;
            let insns = starts(src, o);
            // (pair offset, predicted word, OLD word, mask, t, NEW high part)
            let mut claims: Vec<(usize, u32, u32, u32, i128, Option<i128>)> = Vec::new();
            let mut is_word = vec![false; l];
            for (n, &(k, len)) in insns.iter().enumerate() {
                if len != 4 {
                    continue;
                }
                let (w, nw) = (wd(src, k), wd(dst, k));
                let pc = p + k as i128;
                let npc = pc + s_op;
                let mut put = |pred: u32| {
                    words.extend_from_slice(&nw.wrapping_sub(pred).to_le_bytes());
                    is_word[k..k + 4].fill(true);
                };
                if let Some(i) = claims.iter().position(|c| c.0 == k) {
                    let (_, pred, ow, mask, t, nh) = claims.remove(i);
                    put(pred);
                    if let Some(nh) = nh {
                        if nw & mask == ow & mask {
                            let (lo, _) = naive_pair(nw, (nw >> 15) & 31).unwrap();
                            learn(&mut learned[1], t, nh + lo - t);
                        }
                    }
                } else if w & 0x7F == 0x6F {
                    let t = pc + naive_jal_imm(w);
                    let pred = match shift(&learned[0], t) {
                        Some(s) if (s - s_op) % 2 == 0 => {
                            naive_jal_with(w, naive_jal_imm(w) + s - s_op)
                        }
                        _ => w,
                    };
                    put(pred);
                    if nw & 0xFFF == w & 0xFFF {
                        learn(&mut learned[0], t, npc + naive_jal_imm(nw) - t);
                    }
                } else if w & 0x7F == 0x17 && (w >> 7) & 31 != 0 {
                    let rd = (w >> 7) & 31;
                    let pair = insns[n + 1..]
                        .iter()
                        .take(LOOKAHEAD)
                        .filter(|&&(_, len)| len == 4)
                        .find_map(|&(j, _)| naive_pair(wd(src, j), rd).map(|(lo, m)| (j, lo, m)));
                    let hi = |w: u32| se(w >> 12, 20) << 12;
                    let t = pc + hi(w) + pair.map_or(0, |p| p.1);
                    let (pred, pp) = match shift(&learned[1], t) {
                        Some(s) => {
                            let d = t + s - npc;
                            let h = (d + 2048).div_euclid(4096);
                            let pred = (w & 0xFFF) | ((h.rem_euclid(1 << 20) as u32) << 12);
                            (
                                pred,
                                pair.map(|(j, _, m)| naive_pair_with(wd(src, j), m, d - 4096 * h)),
                            )
                        }
                        None => (w, pair.map(|(j, _, _)| wd(src, j))),
                    };
                    put(pred);
                    let nh = (nw & 0xFFF == w & 0xFFF).then(|| npc + hi(nw));
                    match pair {
                        Some((j, _, m)) => {
                            claims.retain(|c| c.0 != j);
                            claims.push((j, pp.unwrap(), wd(src, j), m, t, nh));
                        }
                        None => {
                            if let Some(nh) = nh {
                                learn(&mut learned[1], t, nh - t);
                            }
                        }
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

    /// RISC-V-like code: JALs to nearby code, AUIPCs followed (often
    /// after other instructions) by an ADDI, a load, a store or a JALR on
    /// their register, compressed halfwords, and other words, at random.
    fn code(seed: u64, len: usize) -> Vec<u8> {
        let mut r = Rng(seed | 1);
        let mut out = Vec::new();
        let mut rd = 5;
        while out.len() < len {
            let w: u32 = match r.below(11) {
                0 | 1 => {
                    let imm = (r.below(4096) as i64 - 2048) * 2;
                    jal_with(0x6F | (r.below(2) as u32) << 7, imm)
                }
                2 => {
                    rd = 5 + r.below(3) as u32;
                    let imm = (r.below(8) as u32).wrapping_sub(4) << 12;
                    0x17 | imm | rd << 7
                }
                3 => 0x13 | (r.next() as u32 & 0xFFF0_0000) | rd << 15 | 10 << 7,
                4 => {
                    let op = [0x3003u32, 0x2003, 0x4003, 0x3007, 0x67][r.below(5) as usize];
                    op | (r.next() as u32 & 0xFFF0_0000) | rd << 15 | 11 << 7
                }
                5 => {
                    let op = [0x3023u32, 0x2023, 0x3027][r.below(3) as usize];
                    op | (r.next() as u32 & 0xFE00_0F80) | rd << 15 | 12 << 20
                }
                6 | 7 => {
                    // A compressed instruction (low bits 00, 01 or 10).
                    let h = (r.next() as u16) & !3 | r.below(3) as u16;
                    out.extend_from_slice(&h.to_le_bytes());
                    continue;
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
        /// RISC-V-like code with edits, at any chunk offset and any OLD
        /// alignment.
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

        /// Random words (no code at all), any ops: the stream decodes back
        /// to the byte-wise diff.
        #[test]
        fn random_words_invert(
            old in proptest::collection::vec(any::<u8>(), 600..3000),
            plan in proptest::collection::vec((0u8..3, 0usize..3000, 1usize..400), 1..12),
            edits in proptest::collection::vec((0usize..100_000, any::<u32>()), 0..40),
            start in 0u64..5,
        ) {
            let plan: Vec<_> = plan.into_iter().map(|(k, o, l)| {
                let o = o % old.len();
                (k, o, l.min(old.len() - o))
            }).collect();
            let (new, streams, _, adds) = chunk(&old, &plan, &edits, start);
            let chunk_new = &new[start as usize..];
            let whole = [(0, old.len() as u64)];
            let dec = || OpDecoder::for_streams(&streams, start, chunk_new.len() as u64, old.len() as u64, &whole);
            let map = OpMap::from_ops(dec(), start).unwrap();
            let got = encode(&map, &adds, &old, chunk_new, start);
            prop_assert_eq!(got.len(), streams.diff.len());
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

    /// Code that moved, with its call and AUIPC + ADDI / LD / SD / JALR
    /// pairs following their targets (which moved by other amounts, one
    /// not a multiple of 4 KiB, one across a 2 KiB boundary of the low
    /// part), and compressed instructions between them, costs zero words;
    /// byte-wise it does not.
    #[test]
    fn moved_targets_predict_zero() {
        let w4 = |w: u32| w.to_le_bytes().to_vec();
        let auipc = |from: i64, to: i64, rd: u32| {
            let d = to - from;
            0x17 | (((d + 0x800) >> 12) as u32) << 12 | rd << 7
        };
        let lo = |from: i64, to: i64| {
            let d = to - from;
            d - ((d + 0x800) >> 12 << 12)
        };
        // OLD: code at `base` calling `callee`, loading from `data`.
        let code = |base: i64, callee: i64, data: i64| {
            let mut v = Vec::new();
            v.extend(0x0001u16.to_le_bytes()); // c.nop
            v.extend(w4(jal_with(0xEF, callee - (base + 2)))); // jal ra
            v.extend(w4(auipc(base + 6, data + 0x7F0, 5))); // auipc t0
            v.extend(0x4501u16.to_le_bytes()); // c.li a0, 0
            v.extend(w4(Form::I.with(0x0002_8513, lo(base + 6, data + 0x7F0)))); // addi a0, t0
            v.extend(w4(auipc(base + 16, data + 0x18, 6))); // auipc t1
            v.extend(w4(Form::I.with(0x0003_3583, lo(base + 16, data + 0x18)))); // ld a1, t1
            v.extend(w4(auipc(base + 24, data + 0x20, 7))); // auipc t2
            v.extend(w4(Form::S.with(0x00B3_B023, lo(base + 24, data + 0x20)))); // sd a1, t2
            v.extend(w4(auipc(base + 32, callee + 8, 6))); // auipc t1
            v.extend(w4(Form::I.with(0x0003_00E7, lo(base + 32, callee + 8)))); // jalr t1
            v.extend(0x8082u16.to_le_bytes()); // c.ret
            v
        };
        let len = code(0, 0, 0).len();
        assert_eq!(len, 42);
        let mut old = vec![0u8; 0x6000];
        old[..len].copy_from_slice(&code(0, 0x3000, 0x5000));
        for (i, b) in old[0x3000..].iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        // NEW: the code moved by 0x42, the callee by 0x126, the data by
        // 0x1238 (so the ADDI's low part crosses 2 KiB).
        let (dc, df, dd) = (0x42usize, 0x126usize, 0x1238usize);
        let mut new = vec![0u8; 0x6000 + dd];
        new[dc..dc + len].copy_from_slice(&code(
            dc as i64,
            0x3000 + df as i64,
            (0x5000 + dd) as i64,
        ));
        new[0x3000 + df..0x5000 + df].copy_from_slice(&old[0x3000..0x5000]);
        new[0x5000 + dd..].copy_from_slice(&old[0x5000..]);
        let mut e = ChunkEncoder::new(&old, &new, 0);
        e.push(Op::Insert { len: dc as u64 });
        e.push(Op::Add {
            old: 0,
            len: len as u64,
        });
        e.push(Op::Insert {
            len: (0x3000 + df - dc - len) as u64,
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
        assert_eq!(Predictor::count(&old[..len], 0), 9);
        let got = encode(&map, &[(0, len, dc)], &old, &new, 0);
        assert_eq!(got.len(), len);
        // Nine predicted words (JAL, four AUIPCs and their pairs) and the
        // bytes of the three compressed instructions.
        assert!(got.iter().all(|&b| b == 0), "{got:?}");
        assert!(streams.diff.iter().filter(|&&b| b != 0).count() >= 9);
        assert_eq!(
            to_bytes(&got, dec, 0, |o, l| &old[o as usize..o as usize + l]).unwrap(),
            streams.diff
        );
    }

    /// The walk steps over compressed instructions, starts on the even
    /// byte of an op at an odd OLD offset, and finds pairs past
    /// compressed instructions but not past the lookahead or the op.
    #[test]
    fn walk_steps_by_instruction_length() {
        let mut v = Vec::new();
        v.extend(0x4501u16.to_le_bytes());
        v.extend(0x0000_02EFu32.to_le_bytes()); // jal t0 at 2
        v.extend(0x0000_0297u32.to_le_bytes()); // auipc t0 at 6
        for _ in 0..3 {
            v.extend(0x4501u16.to_le_bytes());
        }
        v.extend(0x0002_8513u32.to_le_bytes()); // addi a0, t0 at 16
        v.extend(0x0000_0317u32.to_le_bytes()); // auipc t1 at 20
        for _ in 0..4 {
            v.extend(0x4501u16.to_le_bytes());
        }
        v.extend(0x0003_3583u32.to_le_bytes()); // ld a1, (t1): too far
        let mut seen = Vec::new();
        scan(&v, 0, |k, kind| seen.push((k, kind)));
        assert_eq!(
            seen,
            [
                (2, Kind::Jal),
                (6, Kind::Auipc(Some((16, Form::I)))),
                (16, Kind::Pair),
                (20, Kind::Auipc(None)),
            ]
        );
        // From OLD offset 1 the walk starts at the op's second byte.
        let mut odd = vec![0xAA];
        odd.extend(&v);
        let mut seen_odd = Vec::new();
        scan(&odd, 1, |k, kind| {
            let kind = match kind {
                Kind::Auipc(Some((j, form))) => Kind::Auipc(Some((j - 1, form))),
                kind => kind,
            };
            seen_odd.push((k - 1, kind));
        });
        assert_eq!(seen_odd, seen);
        // An AUIPC whose pair would lie past the op's end has none.
        let mut short = Vec::new();
        scan(&v[..20], 0, |k, kind| short.push((k, kind)));
        assert_eq!(short, seen[..3]);
        let mut cut = Vec::new();
        scan(&v[..18], 0, |k, kind| cut.push((k, kind)));
        assert_eq!(cut, [(2, Kind::Jal), (6, Kind::Auipc(None))]);
        // rd 0 is no AUIPC of the mode.
        let mut zero = Vec::new();
        scan(&0x0000_0017u32.to_le_bytes(), 0, |k, kind| {
            zero.push((k, kind))
        });
        assert!(zero.is_empty());
    }

    /// The field codecs: JAL immediates (even, ±1 MiB) and pair offsets
    /// round trip; the forms are those of the module docs.
    #[test]
    fn fields_round_trip() {
        for imm in [0i64, 2, -2, 0x7FE, 0x800, 0xFFFFE, -0x100000, 0x12346] {
            assert_eq!(jal_imm(jal_with(0x0EF, imm)), imm, "{imm:#x}");
            assert_eq!(jal_with(0x0EF, imm) & 0xFFF, 0x0EF);
        }
        // `jal ra, 0x800` (a known encoding: 0x0010_00EF is +0x800).
        assert_eq!(jal_imm(0x0010_00EF), 0x800);
        assert_eq!(jal_imm(0x8000_006F), -0x10_0000);
        for lo in [0i64, 1, -1, 2047, -2048, 0x5A5] {
            for (form, x) in [(Form::I, 0x0002_8513u32), (Form::S, 0x00B3_B023)] {
                let y = form.with(x, lo);
                assert_eq!(form.lo(y), lo);
                assert_eq!(y & form.not_lo(), x & form.not_lo());
            }
        }
        assert_eq!(pair_form(0x0002_8513, 5), Some(Form::I), "addi a0, t0");
        assert_eq!(pair_form(0x0002_8513, 6), None);
        assert_eq!(pair_form(0x0002_9513, 5), None, "slli is no pair");
        assert_eq!(pair_form(0x0003_00E7, 6), Some(Form::I), "jalr t1");
        assert_eq!(pair_form(0x0003_3583, 6), Some(Form::I), "ld");
        assert_eq!(pair_form(0x0003_3587, 6), Some(Form::I), "fld");
        assert_eq!(pair_form(0x00B3_B023, 7), Some(Form::S), "sd");
        assert_eq!(pair_form(0x00B3_B027, 7), Some(Form::S), "fsd");
        assert_eq!(pair_form(0x0002_851B, 5), None, "addiw");
    }

    /// The trigger: RISC-V-like code passes, AArch64-like words and text
    /// do not.
    #[test]
    fn looks_like_code_on_kinds() {
        let rv = code(7, 20_000);
        assert!(looks_like_code([(0, rv.len())].into_iter(), &rv));
        let text: Vec<u8> = b"for (int i = 0; i < n; i++) { total += 1; }\n"
            .iter()
            .copied()
            .cycle()
            .take(20_000)
            .collect();
        assert!(!looks_like_code([(0, text.len())].into_iter(), &text));
        let zeros = vec![0u8; 4096];
        assert!(!looks_like_code([(0, zeros.len())].into_iter(), &zeros));
        assert!(!looks_like_code(std::iter::empty(), &zeros));
    }
}
