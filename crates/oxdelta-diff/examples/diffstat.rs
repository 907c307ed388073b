//! Where a patch's bytes go: per-stream raw and stored sizes and op counts.
//!
//! `cargo run --release -p oxdelta-diff --example diffstat -- OLD NEW [CODEC] [CHUNK_LEN]`
//!
//! Matcher tuning comes from environment variables named after the fields
//! of `MatchParams` in upper case (`MIN_SEED=12`, `LIT_SPLIT=24`, ...).
//! `DUMP=DIR` writes each stream of every chunk raw to `DIR/<chunk>.<stream>`
//! for experiments with other compressors, and its ops to `DIR/<chunk>.ops`.

use std::time::Instant;

use oxdelta_diff::sa::{MatchParams, diff_with};
use oxdelta_diff::{DiffOptions, DiffOutput};
use oxdelta_format::{Codec, EncodedChunk, Op, OpDecoder, Shared, decode_chunk_in};

fn env(name: &str, v: &mut usize) {
    if let Ok(s) = std::env::var(name) {
        *v = s.parse().expect("a number");
    }
}

/// Explicit tuning when FIXED=1 or any tuning variable is set; otherwise
/// the per-chunk choice of `diff`.
fn params() -> Option<MatchParams> {
    let names = [
        "FIXED",
        "MIN_SEED",
        "SEED_MARGIN",
        "COPY_SPLIT",
        "JOIN_GAP",
        "ZERO_RUN",
        "CLUSTER_GAP",
        "LIT_SPLIT",
        "EXT_NUM",
        "EXT_DEN",
        "LOCAL_SHIFT",
        "LOCAL_MARGIN",
    ];
    if !names.iter().any(|n| std::env::var(n).is_ok()) {
        return None;
    }
    let mut p = MatchParams::default();
    env("MIN_SEED", &mut p.min_seed);
    env("SEED_MARGIN", &mut p.seed_margin);
    env("COPY_SPLIT", &mut p.copy_split);
    env("JOIN_GAP", &mut p.join_gap);
    env("ZERO_RUN", &mut p.zero_run);
    env("CLUSTER_GAP", &mut p.cluster_gap);
    env("LIT_SPLIT", &mut p.lit_split);
    let (mut num, mut den) = (p.ext_num as usize, p.ext_den as usize);
    env("EXT_NUM", &mut num);
    env("EXT_DEN", &mut den);
    env("LOCAL_SHIFT", &mut p.local_shift);
    env("LOCAL_MARGIN", &mut p.local_margin);
    (p.ext_num, p.ext_den) = (num as isize, den as isize);
    Some(p)
}

/// Sizes and op counts summed over a patch's chunks.
#[derive(Default)]
struct Stats {
    /// Head bytes (fixed part, chunk entries, shared section descriptor).
    head: u64,
    /// Raw and stored bytes of the control, diff and literal streams.
    raw: [u64; 3],
    stored: [u64; 3],
    /// Ops and NEW bytes of COPY, ADD, INSERT and ZERO.
    n_ops: [u64; 4],
    bytes_by: [u64; 4],
}

impl Stats {
    fn count_op(&mut self, op: &Op) {
        let i = match op {
            Op::Copy { .. } => 0,
            Op::Add { .. } => 1,
            Op::Insert { .. } => 2,
            Op::Zero { .. } => 3,
        };
        self.n_ops[i] += 1;
        self.bytes_by[i] += op.len();
    }

    fn print(&self, chunks: usize, secs: f64) {
        let (head, raw, stored) = (self.head, self.raw, self.stored);
        let total = head + 128 + stored.iter().sum::<u64>();
        println!(
            "patch {total} B  head {head}  ctrl {}/{}  diff {}/{}  lit {}/{}  ({chunks} chunks, {secs:.2} s)",
            stored[0], raw[0], stored[1], raw[1], stored[2], raw[2],
        );
        let (n, b) = (self.n_ops, self.bytes_by);
        println!(
            "ops: copy {} ({} B)  add {} ({} B)  insert {} ({} B)  zero {} ({} B)",
            n[0], b[0], n[1], b[1], n[2], b[2], n[3], b[3]
        );
    }
}

/// With `GAPS=MAX`, writes `DIR/<chunk>.gap`: the OLD bytes skipped (at
/// most `MAX` of them) between the op before each INSERT and the next op
/// that reads OLD.
fn dump_gaps(dir: &str, k: usize, ops: &[Op], old: &[u8], new_offset: u64) {
    let Ok(g) = std::env::var("GAPS") else {
        return;
    };
    let max: u64 = g.parse().expect("a number");
    let mut gap = Vec::new();
    let mut cursor = new_offset;
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Copy { old, len } | Op::Add { old, len } => cursor = old + len,
            Op::Insert { .. } => {
                let next = ops[i + 1..].iter().find_map(|o| match *o {
                    Op::Copy { old, .. } | Op::Add { old, .. } => Some(old),
                    _ => None,
                });
                if let Some(p) = next {
                    if p > cursor && p - cursor <= max {
                        gap.extend_from_slice(&old[cursor as usize..p as usize]);
                    }
                }
            }
            Op::Zero { .. } => {}
        }
    }
    std::fs::write(format!("{dir}/{k}.gap"), &gap).expect("dump");
}

/// Writes `DIR/<chunk>.ops`: the chunk's NEW offset, then per op its kind
/// (0 COPY, 1 ADD, 2 INSERT, 3 ZERO), OLD position (0 when none) and
/// length, each a little-endian u64.
fn dump_ops(dir: &str, k: usize, ops: &[Op], new_offset: u64) {
    let mut out = new_offset.to_le_bytes().to_vec();
    for op in ops {
        let (kind, old) = match *op {
            Op::Copy { old, .. } => (0u64, old),
            Op::Add { old, .. } => (1, old),
            Op::Insert { .. } => (2, 0),
            Op::Zero { .. } => (3, 0),
        };
        for v in [kind, old, op.len()] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(format!("{dir}/{k}.ops"), &out).expect("dump");
}

/// Adds chunk `k` to `stats`; prints its ops with `SHOW_OPS` (below NEW
/// offset 3,000,000) and its INSERTs of at least `SHOW_INSERTS` bytes;
/// dumps its streams with `DUMP`.
fn chunk_stats(stats: &mut Stats, k: usize, c: &EncodedChunk, old: &[u8], shared: &Shared) {
    let e = &c.entry;
    stats.head += 104 + 16 * e.old_ranges.len() as u64;
    for (s, l) in [e.ctrl, e.diff, e.lit].iter().enumerate() {
        stats.raw[s] += u64::from(l.raw);
        stats.stored[s] += u64::from(l.stored);
    }
    let st = decode_chunk_in(e, &c.payload, shared).expect("own chunk decodes");
    let dec = OpDecoder::for_streams(
        &st,
        e.new_offset,
        u64::from(e.new_len),
        old.len() as u64,
        &e.old_ranges,
    );
    let ops: Vec<Op> = dec.map(|o| o.expect("own ops decode")).collect();
    if let Ok(d) = std::env::var("DUMP") {
        for (name, s) in [("ctrl", &st.ctrl), ("diff", &st.diff), ("lit", &st.lit)] {
            std::fs::write(format!("{d}/{k}.{name}"), s).expect("dump");
        }
        dump_gaps(&d, k, &ops, old, e.new_offset);
        dump_ops(&d, k, &ops, e.new_offset);
    }
    let show_inserts = std::env::var("SHOW_INSERTS")
        .ok()
        .map(|v| v.parse::<u64>().expect("a number"));
    let show_ops = std::env::var("SHOW_OPS").is_ok();
    let mut at = e.new_offset;
    for op in ops {
        if let Op::Insert { len } = op {
            if show_inserts.is_some_and(|min| len >= min) {
                println!("insert at {at} len {len}");
            }
        }
        if show_ops && at < 3_000_000 {
            println!("{at} {op:?}");
        }
        at += op.len();
        stats.count_op(&op);
    }
}

#[allow(clippy::field_reassign_with_default)] // other engines add options
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    assert!(
        args.len() >= 2,
        "usage: diffstat OLD NEW [CODEC] [CHUNK_LEN]"
    );
    let old = std::fs::read(&args[0]).expect("reading OLD");
    let new = std::fs::read(&args[1]).expect("reading NEW");
    let codec = args
        .get(2)
        .map_or(Ok(Codec::Zstd(19)), |c| Codec::parse(c))
        .expect("codec");
    let mut opts = DiffOptions::default();
    opts.codec = codec;
    opts.chunk_len = args.get(3).map(|c| c.parse().expect("chunk length"));
    let p = params();
    let t = Instant::now();
    let out = diff_with(&old, &new, &opts, p.as_ref());
    let secs = t.elapsed().as_secs_f64();
    // The shared section (format v5), decoded as an applier does.
    let section = out.shared.clone();
    let shared = {
        let patch =
            oxdelta_format::assemble_with(&out.meta, out.chunks.clone(), section.as_ref(), None);
        let parsed = oxdelta_format::Patch::parse(&patch).expect("own patch parses");
        parsed.decode_shared(&old).expect("own section decodes")
    };
    let DiffOutput { chunks, .. } = out;
    let mut stats = Stats {
        head: 120,
        ..Stats::default()
    };
    for (k, c) in chunks.iter().enumerate() {
        chunk_stats(&mut stats, k, c, &old, &shared);
    }
    // A shared chunk's control and literal streams are in the section.
    if let Some(s) = &section {
        stats.head += oxdelta_format::head::SHARED_DESC_LEN as u64;
        stats.stored[0] += u64::from(s.desc.ctrl.stored);
        stats.stored[2] += u64::from(s.desc.lit.stored);
    }
    println!("{p:?}");
    stats.print(chunks.len(), secs);
}
