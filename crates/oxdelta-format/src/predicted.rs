//! What the predicted ADD modes share: the x86 operand modes
//! ([`crate::operand`]) and the AArch64 mode ([`crate::arm64`]) both store
//! some 32-bit words of their ADDs as `NEW word − prediction`, predicted
//! from the chunk's *op map* (where each matched OLD byte went in NEW).
//!
//! * The op map (`OpMap`): every COPY and ADD op of the chunk of at
//!   least [`limits::MIN_COPY_LEN`] bytes, as `(OLD start, length, NEW −
//!   OLD)` sorted by start then shift; an OLD position `t` is mapped by the
//!   last entry whose start is ≤ `t`, when `t` is inside it.
//! * The stream: first the word `NEW word − prediction` (little-endian,
//!   modulo 2^32) of every predicted word of every ADD, in op order; then
//!   the byte-wise diff (`NEW − OLD` modulo 256) of every other ADD byte,
//!   in op order. It is exactly as long as the ADDs.
//!
//! A mode is its `Walk`: which words of an ADD it predicts, and how.
//! `encode` and `to_bytes` lay out and read back the stream of any
//! walk.

use std::collections::BTreeMap;

use crate::Result;
use crate::error::Error;
use crate::limits;
use crate::ops::{Op, OpDecoder};

/// Bytes of op map an applier may hold for a chunk of `new_len` bytes
/// whose control stream is `ctrl_raw` bytes long.
///
/// An entry is a COPY or ADD of at least [`limits::MIN_COPY_LEN`] bytes,
/// and every COPY or ADD takes at least two bytes of the `ctrl_raw`-byte
/// control stream (its length and its position), so the map has at most
/// the fewer of the two counts of entries.
pub fn op_map_bound(new_len: u64, ctrl_raw: u64) -> u64 {
    let entries = (new_len / limits::MIN_COPY_LEN).min(ctrl_raw / 2);
    // An entry and its share of the bucket index (at most one bucket per
    // entry, plus one).
    (entries + 1) * (std::mem::size_of::<Entry>() + 4) as u64
}

type Entry = (u64, u64, i64);

/// Where the matched OLD bytes of a chunk went in NEW.
#[derive(Debug, Default)]
pub(crate) struct OpMap {
    /// `(OLD start, length, NEW − OLD)`, sorted.
    entries: Vec<Entry>,
    /// The bucket index of [`OpMap::lookup`]: `first[b]` counts the
    /// entries whose start is below `base + (b << shift)`; at most one
    /// bucket per entry, so a lookup searches about one entry instead of
    /// all (the search was a quarter of an operand chunk's apply time).
    first: Vec<u32>,
    base: u64,
    shift: u32,
}

impl OpMap {
    /// Records an op reading `len` OLD bytes at `old` into NEW at `new`.
    pub(crate) fn push(&mut self, old: u64, len: u64, new: u64) {
        if len >= limits::MIN_COPY_LEN {
            self.entries
                .push((old, len, (new as i64).wrapping_sub(old as i64)));
        }
    }

    /// Sorts the entries; call once all are pushed.
    pub(crate) fn finish(&mut self) {
        self.entries.sort_unstable();
        let (Some(first), Some(last)) = (self.entries.first(), self.entries.last()) else {
            return;
        };
        let (base, span) = (first.0, last.0 - first.0);
        // The smallest bucket width that needs no more buckets than entries.
        let mut shift = 0;
        while (span >> shift) + 1 > self.entries.len() as u64 {
            shift += 1;
        }
        let buckets = (span >> shift) as usize + 1;
        self.first = Vec::with_capacity(buckets + 1);
        let mut i = 0;
        for b in 0..=buckets as u64 {
            let edge = (u128::from(base) + (u128::from(b) << shift)).min(u64::MAX.into()) as u64;
            while i < self.entries.len() && self.entries[i].0 < edge {
                i += 1;
            }
            self.first.push(i as u32);
        }
        (self.base, self.shift) = (base, shift);
    }

    /// The shift of the op that maps OLD position `t`, if one does: the
    /// last entry whose start is at most `t`, when `t` is inside it.
    pub(crate) fn lookup(&self, t: i64) -> Option<i64> {
        let t = u64::try_from(t).ok()?.checked_sub(self.base)?;
        let b = (t >> self.shift) as usize;
        // Entries before bucket `b` start at most at `t`; those from
        // bucket `b + 1` on start after it.
        let (lo, hi) = match (self.first.get(b), self.first.get(b + 1)) {
            (Some(&lo), Some(&hi)) => (lo as usize, hi as usize),
            _ => (self.entries.len(), self.entries.len()),
        };
        let t = t + self.base;
        let i = lo + self.entries[lo..hi].partition_point(|e| e.0 <= t);
        let &(start, len, shift) = self.entries.get(i.checked_sub(1)?)?;
        (t - start < len).then_some(shift)
    }

    /// The map of the COPY and ADD ops that `dec` yields (NEW positions
    /// from `new_start`).
    pub(crate) fn from_ops(dec: OpDecoder<'_>, new_start: u64) -> Result<OpMap> {
        let mut m = OpMap::default();
        let mut pos = new_start;
        for op in dec {
            let op = op?;
            if let Some((o, l)) = op.old_range() {
                m.push(o, l, pos);
            }
            pos += op.len();
        }
        m.finish();
        Ok(m)
    }
}

/// Shifts (NEW − OLD) learned from decoded words, by OLD target: the
/// learned tables of the arm64 mode ([`crate::arm64`]) and of the
/// `operands-learned` mode ([`crate::operand`]).
#[derive(Debug)]
pub(crate) struct Learned {
    map: BTreeMap<i64, i64>,
    /// Most targets held; past that only known targets are updated.
    cap: usize,
}

impl Learned {
    pub(crate) fn new(cap: usize) -> Learned {
        Learned {
            map: BTreeMap::new(),
            cap,
        }
    }

    /// The shift learned for exactly `t`.
    pub(crate) fn exact(&self, t: i64) -> Option<i64> {
        self.map.get(&t).copied()
    }

    /// The shift learned for the greatest target below `t`.
    pub(crate) fn below(&self, t: i64) -> Option<i64> {
        self.map.range(..t).next_back().map(|(_, &s)| s)
    }

    /// Learns (or replaces) the shift of `t`.
    pub(crate) fn learn(&mut self, t: i64, s: i64) {
        if self.map.len() < self.cap {
            self.map.insert(t, s);
        } else if let Some(v) = self.map.get_mut(&t) {
            *v = s;
        }
    }
}

/// The little-endian word at the start of `b`.
#[inline(always)]
pub(crate) fn word(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// A predicted ADD mode: which words of each ADD it predicts, in order,
/// and their predictions.
pub(crate) trait Walk {
    /// Predicted words in an ADD source `src` whose first byte is at OLD
    /// `p`.
    fn count(src: &[u8], p: u64) -> usize;

    /// Walks the ADD reading `src` at OLD `p` into NEW at `q`: for every
    /// predicted word (bytes `k..k + 4` of the op, in order), `f(k,
    /// prediction)` returns the NEW word, from which a walk may learn.
    fn op(&mut self, src: &[u8], p: u64, q: u64, f: impl FnMut(usize, u32) -> u32);
}

/// The stream of `walk` (see the module docs) for ADDs `(OLD start,
/// length, offset in the chunk)` of a chunk of `new_chunk` at NEW offset
/// `start`.
pub(crate) fn encode<W: Walk>(
    walk: &mut W,
    adds: &[(usize, usize, usize)],
    old: &[u8],
    new_chunk: &[u8],
    start: u64,
) -> Vec<u8> {
    let total: usize = adds.iter().map(|a| a.1).sum();
    let words: usize = adds
        .iter()
        .map(|&(o, l, _)| W::count(&old[o..o + l], o as u64))
        .sum();
    let mut out = vec![0u8; total];
    let (mut w, mut r) = (0, 4 * words);
    for &(o, l, off) in adds {
        let (src, dst) = (&old[o..o + l], &new_chunk[off..off + l]);
        let mut next = 0;
        walk.op(src, o as u64, start + off as u64, |k, pred| {
            byte_diffs(&mut out, &mut r, &dst[next..k], &src[next..k]);
            next = k + 4;
            let nw = word(&dst[k..]);
            out[w..w + 4].copy_from_slice(&nw.wrapping_sub(pred).to_le_bytes());
            w += 4;
            nw
        });
        byte_diffs(&mut out, &mut r, &dst[next..], &src[next..]);
    }
    debug_assert_eq!((w, r), (4 * words, total));
    out
}

/// The byte-wise diff (`NEW − OLD` per byte, in op order) that the stream
/// `stored` of `walk` stands for. `dec` yields the chunk's ops, `src(old,
/// len)` an ADD's OLD source. A stream whose length is not the ADDs' is an
/// error.
pub(crate) fn to_bytes<'d, 'o, W: Walk>(
    walk: &mut W,
    stored: &[u8],
    dec: impl Fn() -> OpDecoder<'d>,
    new_start: u64,
    src: impl Fn(u64, usize) -> &'o [u8],
) -> Result<Vec<u8>> {
    let (mut words, mut total) = (0usize, 0usize);
    for op in dec() {
        if let Op::Add { old, len } = op? {
            words += W::count(src(old, len as usize), old);
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
    let (mut w, mut r, mut d) = (0, 4 * words, 0);
    let mut q = new_start;
    for op in dec() {
        let op = op?;
        if let Op::Add { old: p, len } = op {
            let s = src(p, len as usize);
            let dst = &mut out[d..d + s.len()];
            let mut next = 0;
            walk.op(s, p, q, |k, pred| {
                dst[next..k].copy_from_slice(&stored[r..r + k - next]);
                r += k - next;
                next = k + 4;
                let nw = word(&stored[w..]).wrapping_add(pred);
                w += 4;
                // The NEW word as byte-wise diffs from OLD's bytes.
                for (i, b) in nw.to_le_bytes().into_iter().enumerate() {
                    dst[k + i] = b.wrapping_sub(s[k + i]);
                }
                nw
            });
            let n = s.len() - next;
            dst[next..].copy_from_slice(&stored[r..r + n]);
            r += n;
            d += s.len();
        }
        q += op.len();
    }
    debug_assert_eq!((w, r, d), (4 * words, total, total));
    Ok(out)
}

/// Appends `NEW − OLD` of the bytes `dst` (NEW) and `src` (OLD) at
/// `out[*r..]`.
#[inline(always)]
fn byte_diffs(out: &mut [u8], r: &mut usize, dst: &[u8], src: &[u8]) {
    for (o, (d, s)) in out[*r..*r + dst.len()].iter_mut().zip(dst.iter().zip(src)) {
        *o = d.wrapping_sub(*s);
    }
    *r += dst.len();
}

/// The op map by the module docs' words, for tests' oracles: the shift of
/// OLD position `t` among the chunk's COPY and ADD ops `(OLD start,
/// length, NEW offset)`, by a linear search in wide integers.
#[cfg(test)]
pub(crate) fn naive_mapped(ops: &[(u64, u64, u64)], t: i128) -> Option<i128> {
    let mut entries: Vec<(i128, i128, i128)> = ops
        .iter()
        .filter(|o| o.1 >= 16)
        .map(|&(o, l, n)| (o as i128, l as i128, n as i128 - o as i128))
        .collect();
    entries.sort();
    match entries.iter().rfind(|e| e.0 <= t) {
        Some(&(s, l, sh)) if t < s + l => Some(sh),
        _ => None,
    }
}
