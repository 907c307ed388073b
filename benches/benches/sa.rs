//! Suffix-array construction (this crate vs divsufsort vs the `suffix`
//! crate) and longest-match queries per second, on real binary data.
//!
//! Size: `OXDELTA_BENCH_MIB` (default 16). For 64 and 256 MiB with memory
//! per byte, use `benches/sa-compare`, which runs the `sa_build` example.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn size() -> usize {
    std::env::var("OXDELTA_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
        << 20
}

fn construction(c: &mut Criterion) {
    let text = oxdelta_benches::binary_data(size());
    let mut g = c.benchmark_group("sa-construction");
    g.sample_size(10)
        .throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("oxdelta-sa (libsais)", |b| {
        b.iter(|| black_box(oxdelta_sa::SuffixArray::new(&text).len()))
    });
    g.bench_function("divsufsort", |b| {
        b.iter(|| {
            let mut sa = vec![0i32; text.len()];
            divsufsort::sort_in_place(&text, &mut sa);
            black_box(sa[0])
        })
    });
    let s = String::from_utf8_lossy(&text).into_owned();
    g.bench_function("suffix (lossy str)", |b| {
        b.iter(|| black_box(suffix::SuffixTable::new(s.as_str()).len()))
    });
    g.finish();
}

fn queries(c: &mut Criterion) {
    let text = oxdelta_benches::binary_data(size());
    let sa = oxdelta_sa::SuffixArray::new(&text);
    // Patterns: slices of the text with one byte changed after 64 bytes, as
    // the differ sees after an edit.
    let pats: Vec<Vec<u8>> = (0..1000usize)
        .map(|i| {
            let at = (i * 7919 * 131) % (text.len() - 300);
            let mut p = text[at..at + 256].to_vec();
            p[64] ^= 0x55;
            p
        })
        .collect();
    let mut g = c.benchmark_group("sa-longest-match");
    g.throughput(Throughput::Elements(pats.len() as u64));
    g.bench_function("1000 queries", |b| {
        b.iter(|| pats.iter().map(|p| sa.longest_match(p).len).sum::<usize>())
    });
    g.finish();
}

criterion_group!(benches, construction, queries);
criterion_main!(benches);
