//! Where a patch's bytes go: per-stream raw and stored sizes and op counts.
//!
//! `cargo run --release -p oxdelta-diff --example diffstat -- OLD NEW [CODEC] [CHUNK_LEN]`
//!
//! Matcher tuning comes from environment variables named after the fields
//! of `MatchParams` in upper case (`MIN_SEED=12`, `LIT_SPLIT=24`, ...).
//! `DUMP=DIR` writes each stream of every chunk raw to `DIR/<chunk>.<stream>`
//! for experiments with other compressors.

use std::time::Instant;

use oxdelta_diff::sa::{MatchParams, diff_with};
use oxdelta_diff::{DiffOptions, DiffOutput};
use oxdelta_format::{Codec, Op, OpDecoder, decode_chunk_in};

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
    let DiffOutput { meta, chunks, .. } = out;
    let dump = std::env::var("DUMP").ok();
    let (mut raw, mut stored) = ([0u64; 3], [0u64; 3]);
    let (mut n_ops, mut bytes_by) = ([0u64; 4], [0u64; 4]);
    let mut head = 120u64;
    for (k, c) in chunks.iter().enumerate() {
        let e = &c.entry;
        head += 104 + 16 * e.old_ranges.len() as u64;
        for (s, l) in [e.ctrl, e.diff, e.lit].iter().enumerate() {
            raw[s] += u64::from(l.raw);
            stored[s] += u64::from(l.stored);
        }
        let st = decode_chunk_in(e, &c.payload, &shared).expect("own chunk decodes");
        if let Some(d) = &dump {
            for (name, s) in [("ctrl", &st.ctrl), ("diff", &st.diff), ("lit", &st.lit)] {
                std::fs::write(format!("{d}/{k}.{name}"), s).expect("dump");
            }
        }
        let dec = OpDecoder::for_streams(
            &st,
            e.new_offset,
            u64::from(e.new_len),
            meta.old_len,
            &e.old_ranges,
        );
        let ops: Vec<Op> = dec.map(|o| o.expect("own ops decode")).collect();
        if let (Some(d), Ok(g)) = (&dump, std::env::var("GAPS")) {
            let max: u64 = g.parse().expect("a number");
            let mut gap = Vec::new();
            let mut cursor = e.new_offset;
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
            std::fs::write(format!("{d}/{k}.gap"), &gap).expect("dump");
        }
        let mut at = e.new_offset;
        for op in ops {
            if std::env::var("SHOW_INSERTS").is_ok_and(|v| op.len() >= v.parse().unwrap()) {
                if let Op::Insert { len } = op {
                    println!("insert at {at} len {len}");
                }
            }
            if std::env::var("SHOW_OPS").is_ok() && at < 3_000_000 {
                println!("{at} {op:?}");
            }
            at += op.len();
            let i = match op {
                Op::Copy { .. } => 0,
                Op::Add { .. } => 1,
                Op::Insert { .. } => 2,
                Op::Zero { .. } => 3,
            };
            n_ops[i] += 1;
            bytes_by[i] += op.len();
        }
    }
    // A shared chunk's control and literal streams are in the section.
    if let Some(s) = &section {
        head += oxdelta_format::head::SHARED_DESC_LEN as u64;
        stored[0] += u64::from(s.desc.ctrl.stored);
        stored[2] += u64::from(s.desc.lit.stored);
    }
    let total = head + 128 + stored.iter().sum::<u64>();
    println!("{p:?}");
    println!(
        "patch {total} B  head {head}  ctrl {}/{}  diff {}/{}  lit {}/{}  ({} chunks, {secs:.2} s)",
        stored[0],
        raw[0],
        stored[1],
        raw[1],
        stored[2],
        raw[2],
        chunks.len()
    );
    println!(
        "ops: copy {} ({} B)  add {} ({} B)  insert {} ({} B)  zero {} ({} B)",
        n_ops[0], bytes_by[0], n_ops[1], bytes_by[1], n_ops[2], bytes_by[2], n_ops[3], bytes_by[3]
    );
}
