//! Builds the suffix array (and optionally the LCP array) of a file and
//! prints its length, the seconds taken and the bytes of memory per input
//! byte.
//!
//! `cargo run --release -p oxdelta-sa --example sa_build -- FILE [--lcp] [--threads N] [--impl NAME]`
//!
//! `--impl` picks the builder to measure: `oxdelta` (this crate, default),
//! `divsufsort` (pure-Rust port of libdivsufsort) or `suffix` (the `suffix`
//! crate; it only sorts `str`, so it is given the file decoded as lossy
//! UTF-8, about the same length — a speed comparison, not a usable index of
//! binary data).
//!
//! With `--threads N` the example builds N arrays of the file at once, which
//! shows how construction scales across cores (each build on one). With
//! `--omp N` a single build uses N OpenMP threads inside libsais (build the
//! example with `--features oxdelta-sa/openmp`; without it N is ignored).

use std::time::Instant;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let (mut lcp, mut threads, mut imp) = (false, 1usize, String::from("oxdelta"));
    let mut omp = 1usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--lcp" => lcp = true,
            "--impl" => imp = args.next().expect("--impl NAME"),
            "--omp" => omp = args.next().and_then(|v| v.parse().ok()).expect("--omp N"),
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--threads N")
            }
            _ => file = Some(a),
        }
    }
    let file = file.expect("usage: sa_build FILE [--lcp] [--threads N]");
    let text = std::fs::read(&file).expect("read FILE");
    let n = text.len().max(1) as f64;
    let base = peak_rss_kib();
    let t = Instant::now();
    let heap: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads.max(1))
            .map(|_| s.spawn(|| build(&imp, &text, omp)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let sa_s = t.elapsed().as_secs_f64();
    println!("builder     {imp}");
    println!("file        {file}");
    println!("length      {} bytes", text.len());
    println!(
        "suffix array {:.2} s ({:.1} MiB/s per build, {} build(s) at once)",
        sa_s,
        n / 1048576.0 / sa_s,
        threads
    );
    println!(
        "heap        {:.2} bytes per input byte (array + bucket table), text {:.2}",
        heap as f64 / threads as f64 / n,
        1.0
    );
    let peak = peak_rss_kib().saturating_sub(base) as f64 * 1024.0;
    println!(
        "peak RSS    {:.2} bytes per input byte, text included",
        (peak + n) / n / threads as f64
    );
    if lcp {
        let sa = oxdelta_sa::SuffixArray::new(&text);
        let t = Instant::now();
        let l = sa.lcp();
        println!(
            "LCP         {:.2} s, max {} mean {:.1}",
            t.elapsed().as_secs_f64(),
            l.iter().max().unwrap_or(&0),
            l.iter().sum::<u64>() as f64 / n
        );
    }
}

/// Builds with the named implementation; returns the heap bytes it holds.
fn build(imp: &str, text: &[u8], omp: usize) -> usize {
    match imp {
        "oxdelta" => {
            let sa = oxdelta_sa::SuffixArray::with_threads(text, omp);
            std::hint::black_box(sa.len());
            sa.heap_bytes()
        }
        "divsufsort" => {
            let mut sa = vec![0i32; text.len()];
            divsufsort::sort_in_place(text, &mut sa);
            std::hint::black_box(&sa);
            sa.len() * 4
        }
        "suffix" => {
            let s = String::from_utf8_lossy(text);
            let t = suffix::SuffixTable::new(s.as_ref());
            std::hint::black_box(t.len());
            t.len() * 4
        }
        other => panic!("unknown --impl {other}: oxdelta, divsufsort or suffix"),
    }
}
