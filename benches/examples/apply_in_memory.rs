//! Times `oxdelta::apply_bytes` in one process: OLD and the patch read
//! once, then `RUNS` applies (after `WARMUP` untimed ones), each timed
//! alone; prints the median and the fastest in milliseconds. The in-memory
//! half of `benches/hpatch-compare`, which times HDiffPatch's in-memory
//! apply the same way: no process start, no file I/O, no flush.
//!
//! `cargo run --release -p oxdelta-benches --example apply_in_memory -- OLD PATCH NEW [RUNS] [WARMUP]`

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: apply_in_memory OLD PATCH NEW [RUNS] [WARMUP]");
        std::process::exit(2);
    }
    let read = |p: &str| std::fs::read(p).unwrap_or_else(|e| panic!("reading {p}: {e}"));
    let (old, patch, new) = (read(&args[0]), read(&args[1]), read(&args[2]));
    let runs: usize = args.get(3).map_or(20, |s| s.parse().expect("RUNS"));
    let warmup: usize = args.get(4).map_or(3, |s| s.parse().expect("WARMUP"));
    let opts = oxdelta::ApplyOptions::default();
    let mut times = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let t = Instant::now();
        let out = oxdelta::apply_bytes(&old, &patch, &opts).expect("apply");
        let dt = t.elapsed().as_secs_f64() * 1e3;
        assert!(out == new, "the rebuilt NEW differs");
        if i >= warmup {
            times.push(dt);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "median_ms={:.2} min_ms={:.2} runs={runs} threads={}",
        times[times.len() / 2],
        times[0],
        rayon::current_num_threads()
    );
}
