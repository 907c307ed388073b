//! In-place planning: which OLD bytes an in-place applier must save before
//! it starts overwriting.
//!
//! An in-place apply rebuilds NEW inside OLD's own storage, running the
//! chunks in table order. OLD and NEW share one address space (byte `p` of
//! the target is OLD's byte `p` until a chunk writes NEW's byte `p` there).
//! A chunk that reads OLD bytes an *earlier* chunk has already overwritten
//! would read NEW bytes instead, so the applier first copies those OLD bytes
//! — the **stash** — into its journal, and reads them from there.
//!
//! The stash is a pure function of the patch (each chunk's NEW range and the
//! OLD bytes its ops read, in table order), so the differ and the applier
//! compute the same thing with [`StashPlanner`] and the patch needs no extra
//! field or head bytes: a differ orders the chunks (and turns reads into
//! literals where it must) to keep the stash under a bound, and the applier
//! refuses a patch whose stash is above its own bound.
//!
//! Cost: `O(R log R)` time for `R` read intervals, memory for the merged
//! written set (at most one interval per chunk) and the stash.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::head::ChunkEntry;
use crate::ops::{OpDecoder, Streams};

/// A set of disjoint byte intervals `[start, end)`, merged on insert.
#[derive(Clone, Debug, Default)]
pub struct IntervalSet {
    /// start → end, disjoint and not touching.
    map: BTreeMap<u64, u64>,
}

impl IntervalSet {
    /// An empty set.
    pub fn new() -> IntervalSet {
        IntervalSet::default()
    }

    /// Adds `[start, end)`.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        // Merge with a predecessor that reaches `start`.
        if let Some((&ps, &pe)) = self.map.range(..=s).next_back() {
            if pe >= s {
                s = ps;
                e = e.max(pe);
            }
        }
        // Swallow successors that start within `[s, e]`.
        let next: Vec<(u64, u64)> = self.map.range(s..=e).map(|(&a, &b)| (a, b)).collect();
        for (a, b) in next {
            self.map.remove(&a);
            e = e.max(b);
        }
        self.map.insert(s, e);
    }

    /// The parts of `[start, end)` inside the set, in order.
    pub fn intersect(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        let first = match self.map.range(..=start).next_back() {
            Some((&s, _)) => s,
            None => start,
        };
        for (&s, &e) in self.map.range(first..end) {
            let (a, b) = (s.max(start), e.min(end));
            if a < b {
                out.push((a, b));
            }
        }
        out
    }

    /// The intervals, in order, as `(start, end)`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.map.iter().map(|(&s, &e)| (s, e))
    }

    /// Total bytes covered.
    pub fn covered(&self) -> u64 {
        self.map.iter().map(|(s, e)| e - s).sum()
    }

    /// True when nothing is covered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Computes the stash of an in-place apply, one step at a time in table
/// order: every OLD byte a step's ops read (COPY and ADD) that the NEW range
/// of an earlier step covers.
#[derive(Clone, Debug, Default)]
pub struct StashPlanner {
    written: IntervalSet,
    stash: IntervalSet,
}

impl StashPlanner {
    /// A planner before the first step.
    pub fn new() -> StashPlanner {
        StashPlanner::default()
    }

    /// Adds the next step: the OLD intervals `[start, end)` its ops read,
    /// and the NEW range it writes.
    pub fn step(&mut self, reads: &[(u64, u64)], new_offset: u64, new_len: u64) {
        for &(s, e) in reads {
            for (a, b) in self.written.intersect(s, e) {
                self.stash.insert(a, b);
            }
        }
        self.written.insert(new_offset, new_offset + new_len);
    }

    /// Bytes stashed so far.
    pub fn stashed(&self) -> u64 {
        self.stash.covered()
    }

    /// Disjoint ranges stashed so far.
    pub fn ranges(&self) -> usize {
        self.stash.map.len()
    }

    /// The stash as sorted, disjoint, non-touching `(start, len)` ranges.
    pub fn finish(self) -> Vec<(u64, u64)> {
        self.stash.iter().map(|(s, e)| (s, e - s)).collect()
    }
}

/// The OLD intervals `[start, end)` that a chunk's ops read (COPY and ADD),
/// sorted and merged, from its decoded streams. The ops are checked as an
/// applier checks them (inside OLD and the declared ranges, streams
/// consumed exactly).
pub fn op_reads(entry: &ChunkEntry, streams: &Streams, old_len: u64) -> Result<Vec<(u64, u64)>> {
    let dec = OpDecoder::for_streams(
        streams,
        entry.new_offset,
        u64::from(entry.new_len),
        old_len,
        &entry.old_ranges,
    );
    let mut r = Vec::new();
    for op in dec {
        if let Some((s, l)) = op?.old_range() {
            r.push((s, s + l));
        }
    }
    Ok(merge(r))
}

/// Sorts `[start, end)` intervals and merges overlapping or touching ones.
pub fn merge(mut r: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    r.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(r.len());
    for (s, e) in r {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Total bytes of `ranges` (`(start, len)` pairs).
pub fn total_len(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|r| r.1).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_set_merges_and_intersects() {
        let mut s = IntervalSet::new();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(20, 25);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(10, 25), (30, 40)]);
        s.insert(5, 35);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(5, 40)]);
        assert_eq!(s.intersect(0, 7), vec![(5, 7)]);
        assert_eq!(s.intersect(39, 50), vec![(39, 40)]);
        assert!(s.intersect(40, 50).is_empty());
        assert_eq!(s.covered(), 35);
    }

    #[test]
    fn interval_set_matches_a_bitmap() {
        // Deterministic pseudo-random inserts checked against a bitmap.
        let mut x = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut s = IntervalSet::new();
        let mut bits = [false; 300];
        for _ in 0..200 {
            let a = next() % 300;
            let b = (a + next() % 20).min(300);
            s.insert(a, b);
            bits[a as usize..b as usize]
                .iter_mut()
                .for_each(|v| *v = true);
            let (qa, qb) = (next() % 300, next() % 300);
            let (qa, qb) = (qa.min(qb), qa.max(qb));
            let got: u64 = s.intersect(qa, qb).iter().map(|(a, b)| b - a).sum();
            let want = bits[qa as usize..qb as usize]
                .iter()
                .filter(|&&v| v)
                .count() as u64;
            assert_eq!(got, want);
        }
        assert_eq!(s.covered(), bits.iter().filter(|&&v| v).count() as u64);
    }
}
