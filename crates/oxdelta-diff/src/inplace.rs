//! In-place patches: a chunk order that lets NEW be rebuilt inside OLD's
//! own storage.
//!
//! # Design
//!
//! Each chunk (a *step*) writes one NEW range of the target and reads some
//! OLD ranges of it. When step `a` reads OLD bytes that step `b` writes,
//! `a` should run before `b` (the write-before-read conflict graph of Burns
//! and Long), with the overlap in bytes as the edge's weight. Self-overlap
//! needs no ordering: an applier reads a step's whole input before it
//! writes (and saves what a torn write could destroy in its journal).
//!
//! Chunks are matched as [`crate::sa::diff`] matches them, through the
//! same index (anchors first, then the suffix arrays of what they leave of
//! OLD) with the same tuning, so before ordering an in-place patch has the
//! ops of the normal patch.
//!
//! The differ orders the steps to minimise the weight of the edges it has
//! to break (steps that run after the step that overwrote what they read):
//!
//! * strongly connected components of the graph, in topological order, so
//!   acyclic parts (an insertion shifting data forward makes a chain that
//!   runs from the end backwards) cost nothing;
//! * inside a cyclic component of at most [`EXACT_MAX`] steps, the exact
//!   minimum-weight order by dynamic programming over subsets;
//! * inside bigger components, a weighted Eades–Lin–Smyth greedy order
//!   improved by moving single steps to their best position.
//!
//! A broken edge costs no patch bytes: the applier stashes those OLD bytes
//! in its journal before it writes anything ([`oxdelta_format::inplace`]
//! computes the stash from the patch alone, and the chunks declare their
//! OLD ranges as coarsely as normal patches do, so the head is no bigger).
//! Only when the stash would exceed [`InPlaceOptions::stash_limit`] does the
//! differ rewrite the overlapping parts of conflicting COPY/ADD ops, largest
//! pieces first, until it fits: their NEW bytes are looked for again (suffix
//! array) in OLD that no earlier step has overwritten, and become literal
//! bytes only where they are not found there.
//!
//! The chunks share their control and literal streams in a shared section
//! where that pays, by the rule of normal patches
//! ([`crate::encode::share`]): the section's literal block reads OLD as its
//! context, but an in-place applier decodes it before its first write and
//! keeps it in its journal (format version 8), so it is no COPY source and
//! adds no edge to the graph.
//!
//! Cost over [`crate::sa::diff`]: the conflict graph (one entry per pair of
//! steps that overlap), the ordering (`O(2^k·k²)` for an exact component of
//! `k ≤ 16` steps, `O(k²)` otherwise) and, when the limit bites, slightly
//! bigger chunks. Memory: the ops of every chunk are held until they are
//! encoded (at most about 3 ops per 16 NEW bytes, usually far fewer).

use std::collections::HashMap;

use oxdelta_format::inplace::{IntervalSet, StashPlanner, merge};
use oxdelta_format::progress::Phase;
use oxdelta_format::{ChunkEncoder, Engine, Metadata, Op, head::FLAG_IN_PLACE};
use oxdelta_sa::SuffixArray;
use rayon::prelude::*;

use crate::{DiffOptions, DiffOutput, sa};

/// Largest cyclic component ordered exactly.
pub const EXACT_MAX: usize = 16;

/// Options of in-place diffing.
#[derive(Clone, Debug)]
pub struct InPlaceOptions {
    /// Most OLD bytes an applier will have to stash in its journal (default
    /// 16 MiB). Conflicts above it become literal bytes in the patch.
    pub stash_limit: u64,
}

impl Default for InPlaceOptions {
    fn default() -> InPlaceOptions {
        InPlaceOptions {
            stash_limit: 16 << 20,
        }
    }
}

/// What the in-place planning found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InPlaceStats {
    /// Steps (chunks).
    pub steps: usize,
    /// Edges of the conflict graph (pairs of distinct steps).
    pub edges: usize,
    /// Cyclic components (strongly connected, more than one step).
    pub cyclic_components: usize,
    /// Steps in the largest cyclic component.
    pub largest_component: usize,
    /// Conflicting bytes of the chosen order before any conversion.
    pub conflict_bytes: u64,
    /// OLD bytes read by ops that were turned into literals.
    pub converted_bytes: u64,
    /// Bytes an applier stashes for the final patch (from its table).
    pub stash_bytes: u64,
}

/// Diffs `old` and `new` into an in-place patch: chunks in a safe apply
/// order, [`FLAG_IN_PLACE`] set.
pub fn diff(
    old: &[u8],
    new: &[u8],
    opts: &DiffOptions,
    ip: &InPlaceOptions,
) -> (DiffOutput, InPlaceStats) {
    sa::with_index(old, new, opts, None, |index, prep| {
        diff_indexed(old, new, opts, ip, index, prep)
    })
}

/// [`diff`] once OLD's index is built: the chunks matched as
/// [`sa::diff`] matches them (the same index and tuning, so the same ops),
/// then ordered, converted where the stash limit requires, and encoded.
fn diff_indexed(
    old: &[u8],
    new: &[u8],
    opts: &DiffOptions,
    ip: &InPlaceOptions,
    index: &sa::OldIndex<'_>,
    prep: sa::Prepared,
) -> (DiffOutput, InPlaceStats) {
    let progress = &opts.progress;
    progress.start(Phase::Matching, 2 * new.len() as u64);
    let ranges = prep.ranges;
    let chunk_len = ranges.first().map_or(1, |r| r.end - r.start);
    let mut ops: Vec<Vec<Op>> = ranges
        .par_iter()
        .zip(&prep.tuning)
        .map(|(r, p)| {
            let ops = sa::match_chunk_indexed(index, new, r.start as usize, r.end as usize, p);
            progress.advance(r.end - r.start);
            ops
        })
        .collect();
    let writes: Vec<(u64, u64)> = ranges.iter().map(|r| (r.start, r.end)).collect();
    let reads: Vec<Vec<(u64, u64)>> = ops.iter().map(|o| op_reads(o)).collect();
    let adj = conflict_graph(&writes, &reads, chunk_len);
    let mut stats = InPlaceStats {
        steps: writes.len(),
        edges: adj.iter().map(Vec::len).sum(),
        ..InPlaceStats::default()
    };
    let order = order_steps(&adj, &mut stats);

    let (pieces, conflict_bytes) = conflict_pieces(&order, &writes, &reads);
    stats.conflict_bytes = conflict_bytes;
    if stats.conflict_bytes > ip.stash_limit {
        // The index leaves anchored OLD out of its suffix arrays; looking
        // converted bytes up again wants all of OLD (built only here).
        let sa = SuffixArray::new(old);
        let mut avoid = pieces_to_convert(pieces, writes.len(), ip.stash_limit, &mut stats);
        // Convert in apply order, so each step knows what is still intact:
        // converted bytes are first looked for again in OLD that no
        // earlier step has overwritten, and only what is not found there
        // becomes literal bytes.
        let mut written = IntervalSet::new();
        for &i in &order {
            let mut av = std::mem::take(&mut avoid[i]);
            if !av.is_empty() {
                av.sort_unstable();
                let fill = |npos: u64, len: u64| refind(&sa, new, npos, len, &written);
                ops[i] = convert_to_literals(&ops[i], &av, ranges[i].start, fill);
            }
            written.insert(writes[i].0, writes[i].1);
        }
    }

    let mut planner = StashPlanner::new();
    for &i in &order {
        planner.step(&op_reads(&ops[i]), writes[i].0, writes[i].1 - writes[i].0);
    }
    stats.stash_bytes = planner.stashed();
    // As in `sa::diff`: each chunk may defer its control and literal
    // streams to a shared section, decided per chunk and then for all of
    // them in table (apply) order. The section's context reads OLD only
    // when an applier decodes the section, before its first write (format
    // version 8), so it constrains neither the order nor the stash.
    // The in-place applier journals the literal block: version 5's limit
    // for the blocks, which take the first chunks whose streams fit.
    let max_block = oxdelta_format::limits::BlockLimits::NARROW;
    let share_max = max_block;
    let chunks: Vec<_> = order
        .par_iter()
        .map(|&i| {
            let r = &ranges[i];
            let mut enc = ChunkEncoder::new(old, new, r.start);
            for &op in &ops[i] {
                enc.push(op);
            }
            let chunk = crate::encode::encode_sharing(enc, opts.codec, sa::MAX_RANGES, share_max);
            progress.advance(r.end - r.start);
            chunk
        })
        .collect();
    let (mut chunks, probed): (Vec<_>, Vec<_>) = chunks.into_iter().unzip();
    let shared =
        crate::encode::share::finish_sharing(old, &mut chunks, probed, opts.codec, max_block);
    (
        DiffOutput {
            meta: Metadata {
                old_len: old.len() as u64,
                old_hash: prep.old_hash,
                new_len: new.len() as u64,
                new_hash: prep.new_hash,
                engine: Engine::SuffixArray,
                flags: FLAG_IN_PLACE,
            },
            chunks,
            shared,
        },
        stats,
    )
}

/// The conflicting pieces of apply order `order`, as (step, OLD start,
/// end): OLD bytes a step reads after an earlier step has overwritten
/// them. Also returns the OLD bytes they cover (overlaps counted once).
fn conflict_pieces(
    order: &[usize],
    writes: &[(u64, u64)],
    reads: &[Vec<(u64, u64)>],
) -> (Vec<(usize, u64, u64)>, u64) {
    let mut written = IntervalSet::new();
    let mut pieces: Vec<(usize, u64, u64)> = Vec::new();
    let mut conflict = IntervalSet::new();
    for &i in order {
        for &(a, b) in &reads[i] {
            for (s, e) in written.intersect(a, b) {
                pieces.push((i, s, e));
                conflict.insert(s, e);
            }
        }
        written.insert(writes[i].0, writes[i].1);
    }
    (pieces, conflict.covered())
}

/// The OLD intervals each of `steps` steps must stop reading so that the
/// conflicting bytes left fit in `limit`: the largest pieces first, until
/// what is left certainly fits. Adds their bytes to
/// `stats.converted_bytes`.
fn pieces_to_convert(
    mut pieces: Vec<(usize, u64, u64)>,
    steps: usize,
    limit: u64,
    stats: &mut InPlaceStats,
) -> Vec<Vec<(u64, u64)>> {
    pieces.sort_by_key(|&(i, s, e)| (std::cmp::Reverse(e - s), i, s));
    let mut left: u64 = pieces.iter().map(|p| p.2 - p.1).sum();
    let mut avoid: Vec<Vec<(u64, u64)>> = vec![Vec::new(); steps];
    for &(i, s, e) in &pieces {
        if left <= limit {
            break;
        }
        avoid[i].push((s, e));
        left -= e - s;
        stats.converted_bytes += e - s;
    }
    avoid
}

/// The OLD intervals `[start, end)` the ops read, sorted and merged.
fn op_reads(ops: &[Op]) -> Vec<(u64, u64)> {
    merge(
        ops.iter()
            .filter_map(|op| op.old_range())
            .map(|(s, l)| (s, s + l))
            .collect(),
    )
}

/// Edges `a → (b, bytes)`: step `a` reads `bytes` OLD bytes that step `b`
/// writes. Steps write `[k·step_len, (k+1)·step_len)` in index order.
fn conflict_graph(
    writes: &[(u64, u64)],
    reads: &[Vec<(u64, u64)>],
    step_len: u64,
) -> Vec<Vec<(usize, u64)>> {
    let new_len = writes.last().map_or(0, |w| w.1);
    reads
        .iter()
        .enumerate()
        .map(|(a, rs)| {
            let mut w: HashMap<usize, u64> = HashMap::new();
            for &(s, e) in rs {
                let e = e.min(new_len);
                if s >= e {
                    continue;
                }
                let (first, last) = ((s / step_len) as usize, ((e - 1) / step_len) as usize);
                for (b, &(ws, we)) in writes.iter().enumerate().take(last + 1).skip(first) {
                    let o = e.min(we).saturating_sub(s.max(ws));
                    if b != a && o > 0 {
                        *w.entry(b).or_default() += o;
                    }
                }
            }
            let mut v: Vec<(usize, u64)> = w.into_iter().collect();
            v.sort_unstable();
            v
        })
        .collect()
}

/// Orders steps so that the total weight of edges `a → b` with `b` before
/// `a` is small (zero when the graph has no cycle).
fn order_steps(adj: &[Vec<(usize, u64)>], stats: &mut InPlaceStats) -> Vec<usize> {
    let mut order = Vec::with_capacity(adj.len());
    for comp in components(adj) {
        if comp.len() == 1 {
            order.push(comp[0]);
            continue;
        }
        stats.cyclic_components += 1;
        stats.largest_component = stats.largest_component.max(comp.len());
        let local = if comp.len() <= EXACT_MAX {
            exact_order(adj, &comp)
        } else {
            let g = greedy_order(adj, &comp);
            improve(adj, g)
        };
        order.extend(local);
    }
    order
}

/// Strongly connected components in topological order of the condensation
/// (Kosaraju, iterative), each sorted by step index.
fn components(adj: &[Vec<(usize, u64)>]) -> Vec<Vec<usize>> {
    let n = adj.len();
    let mut seen = vec![false; n];
    let mut finish = Vec::with_capacity(n);
    for root in 0..n {
        if seen[root] {
            continue;
        }
        seen[root] = true;
        let mut stack = vec![(root, 0usize)];
        while let Some(top) = stack.last_mut() {
            let (v, k) = *top;
            if let Some(&(w, _)) = adj[v].get(k) {
                top.1 += 1;
                if !seen[w] {
                    seen[w] = true;
                    stack.push((w, 0));
                }
            } else {
                finish.push(v);
                stack.pop();
            }
        }
    }
    let mut radj = vec![Vec::new(); n];
    for (v, es) in adj.iter().enumerate() {
        for &(w, _) in es {
            radj[w].push(v);
        }
    }
    let mut comp_of = vec![usize::MAX; n];
    let mut comps = Vec::new();
    for &root in finish.iter().rev() {
        if comp_of[root] != usize::MAX {
            continue;
        }
        let id = comps.len();
        let mut members = vec![root];
        comp_of[root] = id;
        let mut stack = vec![root];
        while let Some(v) = stack.pop() {
            for &w in &radj[v] {
                if comp_of[w] == usize::MAX {
                    comp_of[w] = id;
                    members.push(w);
                    stack.push(w);
                }
            }
        }
        members.sort_unstable();
        comps.push(members);
    }
    comps
}

/// Weight matrix of a component: `w[x][y]` = bytes `comp[x]` reads that
/// `comp[y]` writes.
fn local_weights(adj: &[Vec<(usize, u64)>], comp: &[usize]) -> Vec<Vec<u64>> {
    let index: HashMap<usize, usize> = comp.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    let mut w = vec![vec![0u64; comp.len()]; comp.len()];
    for (x, &v) in comp.iter().enumerate() {
        for &(t, bytes) in &adj[v] {
            if let Some(&y) = index.get(&t) {
                w[x][y] = bytes;
            }
        }
    }
    w
}

/// The total weight of broken edges of `order` (indices into `w`).
fn order_cost(w: &[Vec<u64>], order: &[usize]) -> u64 {
    let mut cost = 0;
    for (p, &x) in order.iter().enumerate() {
        for &y in &order[..p] {
            cost += w[x][y];
        }
    }
    cost
}

/// The minimum-cost order of a small component, by dynamic programming
/// over the set of steps already placed.
fn exact_order(adj: &[Vec<(usize, u64)>], comp: &[usize]) -> Vec<usize> {
    let k = comp.len();
    let w = local_weights(adj, comp);
    let full = (1usize << k) - 1;
    let mut best = vec![u64::MAX; 1 << k];
    let mut choice = vec![0u8; 1 << k];
    best[0] = 0;
    for mask in 0..full {
        let base = best[mask];
        if base == u64::MAX {
            continue;
        }
        for (v, wv) in w.iter().enumerate() {
            if mask & (1 << v) != 0 {
                continue;
            }
            // v runs next: it breaks its edges to steps already run.
            let mut add = 0;
            let mut m = mask;
            while m != 0 {
                let u = m.trailing_zeros() as usize;
                add += wv[u];
                m &= m - 1;
            }
            let next = mask | (1 << v);
            if base + add < best[next] {
                best[next] = base + add;
                choice[next] = v as u8;
            }
        }
    }
    let mut order = Vec::with_capacity(k);
    let mut mask = full;
    while mask != 0 {
        let v = choice[mask] as usize;
        order.push(v);
        mask &= !(1 << v);
    }
    order.reverse();
    order.into_iter().map(|x| comp[x]).collect()
}

/// Weighted Eades–Lin–Smyth: steps with nothing left to wait for go to the
/// front, steps nothing waits for go to the back, otherwise the step whose
/// outgoing weight most exceeds its incoming weight goes to the front.
fn greedy_order(adj: &[Vec<(usize, u64)>], comp: &[usize]) -> Vec<usize> {
    let k = comp.len();
    let w = local_weights(adj, comp);
    let mut out_w: Vec<u64> = (0..k).map(|x| w[x].iter().sum()).collect();
    let mut in_w: Vec<u64> = (0..k).map(|y| (0..k).map(|x| w[x][y]).sum()).collect();
    let mut alive = vec![true; k];
    let (mut front, mut back) = (Vec::with_capacity(k), Vec::new());
    let remove = |v: usize, alive: &mut [bool], out_w: &mut [u64], in_w: &mut [u64]| {
        alive[v] = false;
        for u in 0..k {
            if alive[u] {
                out_w[u] -= w[u][v];
                in_w[u] -= w[v][u];
            }
        }
    };
    for _ in 0..k {
        // Edge a → b means a runs before b: a step with no outgoing weight
        // left can run last; one with no incoming weight can run first.
        let pick = (0..k)
            .filter(|&v| alive[v])
            .map(|v| {
                let key = if out_w[v] == 0 {
                    (2, 0i128)
                } else if in_w[v] == 0 {
                    (1, 0)
                } else {
                    (0, i128::from(out_w[v]) - i128::from(in_w[v]))
                };
                (key, std::cmp::Reverse(v))
            })
            .max()
            .map(|(key, std::cmp::Reverse(v))| (key.0, v));
        let Some((kind, v)) = pick else { break };
        if kind == 2 {
            back.push(v);
        } else {
            front.push(v);
        }
        remove(v, &mut alive, &mut out_w, &mut in_w);
    }
    back.reverse();
    front.extend(back);
    front.into_iter().map(|x| comp[x]).collect()
}

/// Moves single steps to the position that lowers the broken weight most,
/// until a pass finds nothing (at most a few passes).
fn improve(adj: &[Vec<(usize, u64)>], order: Vec<usize>) -> Vec<usize> {
    let comp: Vec<usize> = order.clone();
    let w = local_weights(adj, &comp);
    let k = comp.len();
    let mut ord: Vec<usize> = (0..k).collect();
    for _ in 0..4 {
        let mut improved = false;
        for p in 0..k {
            let v = ord[p];
            // Moving v left past u: edge u→v stops being broken... Scan both ways.
            let (mut best_gain, mut best_q) = (0i128, p);
            let mut gain = 0i128;
            for q in (0..p).rev() {
                let u = ord[q];
                // v now before u: edge v→u was broken (+), edge u→v becomes broken (−).
                gain += i128::from(w[v][u]) - i128::from(w[u][v]);
                if gain > best_gain {
                    best_gain = gain;
                    best_q = q;
                }
            }
            gain = 0;
            for (q, &u) in ord.iter().enumerate().skip(p + 1) {
                // v now after u: edge u→v was broken (+), edge v→u becomes broken (−).
                gain += i128::from(w[u][v]) - i128::from(w[v][u]);
                if gain > best_gain {
                    best_gain = gain;
                    best_q = q;
                }
            }
            if best_q != p {
                let v = ord.remove(p);
                ord.insert(best_q, v);
                improved = true;
            }
        }
        if !improved {
            break;
        }
    }
    debug_assert!(order_cost(&w, &ord) <= order_cost(&w, &(0..k).collect::<Vec<_>>()));
    ord.into_iter().map(|x| comp[x]).collect()
}

/// `ops` (of the chunk starting at NEW offset `start`) with every OLD byte
/// inside `avoid` (sorted, disjoint `[s, e)`) no longer read: the NEW bytes
/// it produced come from `fill(new_pos, len)` instead.
fn convert_to_literals(
    ops: &[Op],
    avoid: &[(u64, u64)],
    start: u64,
    fill: impl Fn(u64, u64) -> Vec<Op>,
) -> Vec<Op> {
    let mut out = Vec::with_capacity(ops.len());
    let mut npos = start;
    for &op in ops {
        let at = npos;
        npos += op.len();
        let (o, len, add) = match op {
            Op::Copy { old, len } => (old, len, false),
            Op::Add { old, len } => (old, len, true),
            other => {
                out.push(other);
                continue;
            }
        };
        let end = o + len;
        let mut pos = o;
        let first = avoid.partition_point(|&(_, e)| e <= o);
        for &(s, e) in &avoid[first..] {
            if s >= end {
                break;
            }
            let (s, e) = (s.max(pos), e.min(end));
            if s > pos {
                out.push(read_op(add, pos, s - pos));
            }
            if e > s {
                out.extend(fill(at + (s - o), e - s));
            }
            pos = pos.max(e);
        }
        if pos < end {
            out.push(read_op(add, pos, end - pos));
        }
    }
    out
}

/// Ops producing NEW `[npos, npos + len)` from OLD bytes outside `written`
/// where the suffix array finds them (COPY of at least 32 bytes), literal
/// bytes elsewhere.
fn refind(sa: &SuffixArray<'_>, new: &[u8], npos: u64, len: u64, written: &IntervalSet) -> Vec<Op> {
    const MIN: u64 = 32;
    let mut out = Vec::new();
    let (mut p, end) = (npos as usize, (npos + len) as usize);
    let mut lit = 0u64;
    while p < end {
        let m = sa.longest_match(&new[p..end]);
        let (o, l) = (m.pos as u64, m.len as u64);
        // Use the part of the match before the first overwritten byte.
        let usable = written
            .intersect(o, o + l)
            .first()
            .map_or(l, |&(a, _)| a - o);
        if usable >= MIN {
            if lit > 0 {
                out.push(Op::Insert { len: lit });
                lit = 0;
            }
            out.push(Op::Copy {
                old: o,
                len: usable,
            });
            p += usable as usize;
        } else {
            let step = (end - p).min(16) as u64;
            lit += step;
            p += step as usize;
        }
    }
    if lit > 0 {
        out.push(Op::Insert { len: lit });
    }
    out
}

fn read_op(add: bool, old: u64, len: u64) -> Op {
    if add {
        Op::Add { old, len }
    } else {
        Op::Copy { old, len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_best(w: &[Vec<u64>]) -> u64 {
        fn perms(k: usize) -> Vec<Vec<usize>> {
            if k == 0 {
                return vec![vec![]];
            }
            let mut out = Vec::new();
            for p in perms(k - 1) {
                for i in 0..=p.len() {
                    let mut q = p.clone();
                    q.insert(i, k - 1);
                    out.push(q);
                }
            }
            out
        }
        perms(w.len())
            .iter()
            .map(|p| order_cost(w, p))
            .min()
            .unwrap()
    }

    #[test]
    fn exact_order_is_optimal_on_small_graphs() {
        let mut x = 0x2545f4914f6cdd1du64;
        for round in 0..40 {
            let k = 2 + round % 5;
            let mut w = vec![vec![0u64; k]; k];
            for (a, row) in w.iter_mut().enumerate() {
                for (b, cell) in row.iter_mut().enumerate() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if a != b && x % 3 == 0 {
                        *cell = x % 1000 + 1;
                    }
                }
            }
            let adj: Vec<Vec<(usize, u64)>> = w
                .iter()
                .map(|row| {
                    row.iter()
                        .enumerate()
                        .filter(|&(_, &c)| c > 0)
                        .map(|(b, &c)| (b, c))
                        .collect()
                })
                .collect();
            let comp: Vec<usize> = (0..k).collect();
            let got = exact_order(&adj, &comp);
            assert_eq!(order_cost(&w, &got), brute_best(&w), "round {round}");
            let greedy = improve(&adj, greedy_order(&adj, &comp));
            assert!(order_cost(&w, &greedy) >= brute_best(&w));
        }
    }

    #[test]
    fn components_come_in_topological_order() {
        // 0 → 1 → 2 → 1, 2 → 3.
        let adj = vec![vec![(1, 5)], vec![(2, 5)], vec![(1, 5), (3, 1)], vec![]];
        let c = components(&adj);
        assert_eq!(c, vec![vec![0], vec![1, 2], vec![3]]);
    }

    #[test]
    fn conversion_splits_only_the_overlap() {
        let ops = vec![Op::Copy { old: 100, len: 50 }, Op::Add { old: 10, len: 20 }];
        let got = convert_to_literals(&ops, &[(110, 120), (140, 200)], 0, |_, len| {
            vec![Op::Insert { len }]
        });
        assert_eq!(
            got,
            vec![
                Op::Copy { old: 100, len: 10 },
                Op::Insert { len: 10 },
                Op::Copy { old: 120, len: 20 },
                Op::Insert { len: 10 },
                Op::Add { old: 10, len: 20 },
            ]
        );
    }
}
