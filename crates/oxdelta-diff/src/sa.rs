//! The in-memory engine: a bsdiff-style matcher over a suffix array of OLD.
//!
//! # Matching
//!
//! For each chunk of NEW the scanner walks forward keeping a current
//! *alignment* (NEW position ↦ OLD position). While bytes agree under it, it
//! runs ahead eight bytes at a time. At a disagreement it first asks whether
//! the alignment still explains most of the next bytes (a changed pointer or
//! constant in otherwise identical code); only if not does it query the
//! suffix array for the longest match at this point, and it adopts the new
//! alignment when that match beats what the current one scores there by a
//! margin. Each alignment change is a *seed*.
//!
//! Between consecutive seeds, bsdiff's approximate extension decides where
//! the old alignment's ADD region ends and where the next one's begins
//! (extending backwards), maximising agreeing bytes minus half the region;
//! what neither covers becomes literal bytes. ADD regions whose diff bytes
//! are zero over a long stretch become COPY, zero runs in NEW become ZERO.
//!
//! Work is linear in NEW plus one suffix-array query per disagreement that
//! the current alignment cannot explain; a match is always skipped over in
//! full, so runs and periodic data cost no more than other data.

use oxdelta_format::progress::Phase;
use oxdelta_format::{ChunkEncoder, Engine, Metadata, Op, encode_chunk};
use oxdelta_sa::{SuffixArray, common_prefix};
use rayon::prelude::*;

use crate::{DiffOptions, DiffOutput, chunk_ranges, default_chunk_len, hash};

/// Shortest exact match that can start a new alignment.
const MIN_SEED: usize = 20;
/// How much longer than the current alignment's score a match must be to
/// replace it.
const SEED_MARGIN: usize = 8;
/// Window (bytes) over which the current alignment is judged at a
/// disagreement, and the agreeing bytes needed to keep it.
const KEEP_WINDOW: usize = 16;
const KEEP_MIN: usize = 8;
/// Longest pattern handed to the suffix array in one query.
const MAX_QUERY: usize = 1 << 16;
/// Zero diff bytes in a row that turn part of an ADD into a COPY.
const COPY_SPLIT: usize = 64;
/// Zero NEW bytes in a row that become a ZERO op.
const ZERO_RUN: usize = 32;

/// Diffs `old` and `new` entirely in memory.
pub fn diff(old: &[u8], new: &[u8], opts: &DiffOptions) -> DiffOutput {
    let progress = &opts.progress;
    progress.start(Phase::Indexing, old.len() as u64);
    let (sa, (old_hash, new_hash)) = rayon::join(
        || SuffixArray::new(old),
        || rayon::join(|| hash(old), || hash(new)),
    );
    progress.advance(old.len() as u64);
    progress.start(Phase::Matching, new.len() as u64);
    let chunk_len = opts
        .chunk_len
        .unwrap_or_else(|| default_chunk_len(new.len() as u64));
    let ranges = chunk_ranges(new.len() as u64, chunk_len);
    let chunks = ranges
        .into_par_iter()
        .map(|r| {
            let (s, e) = (r.start as usize, r.end as usize);
            let ops = match_chunk(&sa, new, s, e);
            let mut enc = ChunkEncoder::new(old, new, r.start);
            for op in ops {
                enc.push(op);
            }
            let (streams, old_ranges) = enc.finish();
            let chunk = encode_chunk(opts.codec, &streams, old_ranges, r.start, &new[s..e]);
            progress.advance((e - s) as u64);
            chunk
        })
        .collect();
    DiffOutput {
        meta: Metadata {
            old_len: old.len() as u64,
            old_hash,
            new_len: new.len() as u64,
            new_hash,
            engine: Engine::SuffixArray,
            flags: 0,
        },
        chunks,
    }
}

/// A point where the scanner adopted a new alignment.
#[derive(Clone, Copy, Debug)]
struct Seed {
    new: usize,
    /// OLD position minus NEW position.
    off: isize,
    /// Length of the exact match that started it.
    len: usize,
}

/// Matches `new[start..end]` against the suffix array of OLD and returns
/// the ops that produce it.
pub fn match_chunk(sa: &SuffixArray<'_>, new: &[u8], start: usize, end: usize) -> Vec<Op> {
    let old = sa.text();
    let seeds = find_seeds(sa, new, start, end);
    let mut ops = Vec::new();
    // `pos` is the first NEW byte not yet given an op.
    let mut pos = start;
    for (k, seed) in seeds.iter().enumerate() {
        let next_new = seeds.get(k + 1).map_or(end, |s| s.new);
        // Backward extension of this seed into [pos, seed.new).
        let back = extend_back(old, new, pos, seed.new, seed.off);
        let add_start = seed.new - back;
        emit_literal(&mut ops, new, pos, add_start);
        // Forward extension from the end of the exact match up to the next seed.
        let exact_end = seed.new + seed.len;
        let fwd_end = if exact_end >= next_new {
            next_new
        } else {
            let fwd = extend_fwd(old, new, exact_end, next_new, seed.off);
            // The next seed may also extend backwards into this gap: split
            // where the two alignments' agreeing bytes favour each.
            match seeds.get(k + 1) {
                Some(n) => {
                    let nb = extend_back(old, new, exact_end, n.new, n.off);
                    let (a_end, b_start) = (exact_end + fwd, n.new - nb);
                    if a_end > b_start {
                        best_split(old, new, b_start, a_end, seed.off, n.off)
                    } else {
                        a_end
                    }
                }
                None => exact_end + fwd,
            }
        };
        emit_add(&mut ops, old, new, add_start, fwd_end, seed.off);
        pos = fwd_end;
        // The next seed's backward extension must not reach before `pos`.
    }
    emit_literal(&mut ops, new, pos, end);
    ops
}

#[inline]
fn old_at(off: isize, i: usize) -> usize {
    (i as isize + off) as usize
}

/// Agreeing bytes of alignment `off` over NEW `[a, b)` (bytes outside OLD disagree).
fn score(old: &[u8], new: &[u8], a: usize, b: usize, off: isize) -> usize {
    let lo = a.max((-off).max(0) as usize);
    let hi = b.min((old.len() as isize - off).max(0) as usize);
    if lo >= hi {
        return 0;
    }
    new[lo..hi]
        .iter()
        .zip(&old[old_at(off, lo)..old_at(off, hi)])
        .filter(|(x, y)| x == y)
        .count()
}

fn in_old(old: &[u8], off: isize, i: usize) -> bool {
    let o = i as isize + off;
    o >= 0 && (o as usize) < old.len()
}

fn find_seeds(sa: &SuffixArray<'_>, new: &[u8], start: usize, end: usize) -> Vec<Seed> {
    let old = sa.text();
    let mut seeds: Vec<Seed> = Vec::new();
    let mut cur: Option<isize> = None;
    let mut i = start;
    while i < end {
        if let Some(off) = cur {
            if in_old(old, off, i) && old[old_at(off, i)] == new[i] {
                let o = old_at(off, i);
                i += common_prefix(&old[o..], &new[i..end]).max(1);
                continue;
            }
            let w_end = (i + 1 + KEEP_WINDOW).min(end);
            if w_end > i + 1 && score(old, new, i + 1, w_end, off) >= KEEP_MIN.min(w_end - i - 1) {
                i += 1;
                continue;
            }
        }
        // Zero runs in NEW are handled as ZERO ops; do not seed inside them.
        if new[i] == 0 {
            let z = new[i..end].iter().take_while(|&&b| b == 0).count();
            if z >= ZERO_RUN {
                i += z;
                cur = None;
                continue;
            }
        }
        let m = sa.longest_match(&new[i..end.min(i + MAX_QUERY)]);
        if m.len >= MIN_SEED {
            let off = m.pos as isize - i as isize;
            let current = cur.map_or(0, |c| score(old, new, i, i + m.len, c));
            if cur != Some(off) && m.len >= current + SEED_MARGIN {
                seeds.push(Seed {
                    new: i,
                    off,
                    len: m.len,
                });
                cur = Some(off);
            }
            i += m.len;
        } else {
            i += 1;
        }
    }
    seeds
}

/// How far alignment `off` extends backwards from `to` (exclusive) towards
/// `from`, bsdiff's criterion: maximise `2·agreeing − length`.
fn extend_back(old: &[u8], new: &[u8], from: usize, to: usize, off: isize) -> usize {
    let (mut s, mut best, mut best_len) = (0isize, 0isize, 0usize);
    let mut i = 1;
    while i <= to - from && in_old(old, off, to - i) {
        if old[old_at(off, to - i)] == new[to - i] {
            s += 1;
        }
        if 2 * s - i as isize > 2 * best - best_len as isize {
            best = s;
            best_len = i;
        }
        // Stop once the score cannot recover.
        if (i as isize) - 2 * s > 64 + (best_len as isize - 2 * best).max(0) {
            break;
        }
        i += 1;
    }
    best_len
}

/// How far alignment `off` extends forwards from `from` towards `to`.
fn extend_fwd(old: &[u8], new: &[u8], from: usize, to: usize, off: isize) -> usize {
    let (mut s, mut best, mut best_len) = (0isize, 0isize, 0usize);
    let mut i = 0;
    while from + i < to && in_old(old, off, from + i) {
        if old[old_at(off, from + i)] == new[from + i] {
            s += 1;
        }
        i += 1;
        if 2 * s - i as isize > 2 * best - best_len as isize {
            best = s;
            best_len = i;
        }
        if (i as isize) - 2 * s > 64 + (best_len as isize - 2 * best).max(0) {
            break;
        }
    }
    best_len
}

/// Where in `[a, b)` to switch from alignment `off1` to `off2`: the point
/// that maximises the agreeing bytes on both sides.
fn best_split(old: &[u8], new: &[u8], a: usize, b: usize, off1: isize, off2: isize) -> usize {
    let (mut s, mut best, mut at) = (0isize, 0isize, a);
    for i in a..b {
        let m1 = in_old(old, off1, i) && old[old_at(off1, i)] == new[i];
        let m2 = in_old(old, off2, i) && old[old_at(off2, i)] == new[i];
        s += m1 as isize - m2 as isize;
        if s > best {
            best = s;
            at = i + 1;
        }
    }
    at
}

fn emit_literal(ops: &mut Vec<Op>, new: &[u8], a: usize, b: usize) {
    let mut i = a;
    while i < b {
        // Literal bytes up to the next long zero run, then the run as ZERO.
        let mut j = i;
        let mut zero_at = b;
        while j < b {
            if new[j] == 0 {
                let z = new[j..b].iter().take_while(|&&x| x == 0).count();
                if z >= ZERO_RUN {
                    zero_at = j;
                    break;
                }
                j += z;
            } else {
                j += 1;
            }
        }
        if zero_at > i {
            ops.push(Op::Insert {
                len: (zero_at - i) as u64,
            });
        }
        if zero_at < b {
            let z = new[zero_at..b].iter().take_while(|&&x| x == 0).count();
            ops.push(Op::Zero { len: z as u64 });
            i = zero_at + z;
        } else {
            i = b;
        }
    }
}

fn emit_add(ops: &mut Vec<Op>, old: &[u8], new: &[u8], a: usize, b: usize, off: isize) {
    // Split into COPY where OLD and NEW agree for long, ADD elsewhere.
    let mut i = a;
    let mut add_from = a;
    while i < b {
        let o = old_at(off, i);
        let same = common_prefix(&old[o..o + (b - i)], &new[i..b]);
        if same >= COPY_SPLIT {
            if i > add_from {
                ops.push(Op::Add {
                    old: old_at(off, add_from) as u64,
                    len: (i - add_from) as u64,
                });
            }
            ops.push(Op::Copy {
                old: o as u64,
                len: same as u64,
            });
            i += same;
            add_from = i;
        } else {
            i += same + 1;
        }
    }
    let i = i.min(b);
    if i > add_from {
        ops.push(Op::Add {
            old: old_at(off, add_from) as u64,
            len: (i - add_from) as u64,
        });
    }
}
