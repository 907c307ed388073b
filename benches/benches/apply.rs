//! Apply throughput (NEW bytes per second) of an in-memory patch, LZ4 and
//! zstd, serial and parallel. For the corpus pairs and peers, see
//! `benches/apply-bench`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oxdelta::{ApplyOptions, Codec, DiffOptions};

fn apply(c: &mut Criterion) {
    let old = oxdelta_benches::binary_data(32 << 20);
    // NEW: OLD with scattered small edits and an inserted block.
    let mut new = old.clone();
    for i in (0..new.len()).step_by(4099) {
        new[i] = new[i].wrapping_add(1);
    }
    new.splice(1 << 20..1 << 20, old[5 << 20..6 << 20].iter().copied());
    let mut g = c.benchmark_group("apply");
    g.sample_size(10)
        .throughput(Throughput::Bytes(new.len() as u64));
    for codec in [Codec::Lz4, Codec::Zstd(3)] {
        let patch = oxdelta::diff_bytes(
            &old,
            &new,
            &DiffOptions {
                codec,
                ..DiffOptions::default()
            },
        );
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            g.bench_function(format!("{} {threads} thread(s)", codec.name()), |b| {
                b.iter(|| {
                    pool.install(|| {
                        oxdelta::apply_bytes(&old, &patch, &ApplyOptions::default())
                            .unwrap()
                            .len()
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
