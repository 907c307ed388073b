//! Round trips through the facade on real and edge-case inputs, and the
//! failure paths of file apply (OUT untouched, no temporary left).

use std::fs;
use std::path::{Path, PathBuf};

use oxdelta::{ApplyOptions, Codec, DiffOptions, apply_bytes, diff_bytes};
use proptest::prelude::*;

fn testdata(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(p)
}

fn rt(old: &[u8], new: &[u8]) -> Vec<u8> {
    let patch = diff_bytes(old, new, &DiffOptions::default());
    let got = apply_bytes(old, &patch, &crate::overwriting()).expect("apply");
    assert_eq!(got.len(), new.len());
    assert!(got == new, "round trip differs");
    patch
}

fn lcg(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

#[test]
fn edge_cases() {
    let r = lcg(1, 100_000);
    rt(b"", b"");
    rt(b"", b"x");
    rt(b"x", b"");
    rt(b"a", b"b");
    rt(b"a", b"a");
    rt(&r, &r);
    rt(&r, b"");
    rt(b"", &r);
    rt(&r[..10], &r); // NEW much larger than OLD
    rt(&r, &lcg(2, 100_000)); // unrelated random data
    rt(&vec![0u8; 3_000_000], &vec![0u8; 3_000_001]); // long zero runs, several chunks
    let mut z = vec![0u8; 2_000_000];
    z[1_000_000..1_000_100].copy_from_slice(&r[..100]);
    rt(&vec![0u8; 2_000_000], &z);
}

#[test]
fn identical_files_give_tiny_patches() {
    let r = lcg(3, 1 << 20);
    let p = rt(&r, &r);
    assert!(
        p.len() < 2000,
        "patch of identical 1 MiB files is {} bytes",
        p.len()
    );
}

#[test]
fn real_pair_every_codec() {
    let old = fs::read(testdata("msgpack/old")).unwrap();
    let new = fs::read(testdata("msgpack/new")).unwrap();
    let mut sizes = Vec::new();
    for codec in [Codec::None, Codec::Lz4, Codec::Zstd(3), Codec::Zstd(19)] {
        let opts = DiffOptions {
            codec,
            ..DiffOptions::default()
        };
        let patch = diff_bytes(&old, &new, &opts);
        assert_eq!(
            apply_bytes(&old, &patch, &crate::overwriting()).unwrap(),
            new
        );
        sizes.push(patch.len());
    }
    // Compression must actually help on a real pair.
    assert!(sizes[3] < sizes[1] && sizes[1] < sizes[0], "{sizes:?}");
    assert!(
        sizes[3] < new.len() / 4,
        "zstd patch {} of {} bytes",
        sizes[3],
        new.len()
    );
}

#[test]
fn chunk_sizes_do_not_change_the_result() {
    let old = fs::read(testdata("msgpack/old")).unwrap();
    let new = fs::read(testdata("msgpack/new")).unwrap();
    for chunk in [4096u32, 65536, 1 << 20] {
        let opts = DiffOptions {
            chunk_len: Some(chunk),
            ..DiffOptions::default()
        };
        let patch = diff_bytes(&old, &new, &opts);
        assert_eq!(
            apply_bytes(&old, &patch, &crate::overwriting()).unwrap(),
            new,
            "chunk {chunk}"
        );
    }
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oxdelta-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect()
}

#[test]
fn file_round_trip_and_failures_leave_out_untouched() {
    // Durable (the default) and not: `durable: false` skips the flushes,
    // not the atomic rename or the checks.
    for durable in [true, false] {
        file_round_trip_and_failures(durable);
    }
}

fn file_round_trip_and_failures(durable: bool) {
    let opts = ApplyOptions {
        durable,
        ..crate::overwriting()
    };
    let d = tmpdir(&format!("files-{durable}"));
    let (old, new, patch, out) = (
        testdata("msgpack/old"),
        testdata("msgpack/new"),
        d.join("p"),
        d.join("out"),
    );
    oxdelta::diff_files(&old, &new, &patch, &DiffOptions::default()).unwrap();
    let r = oxdelta::apply_file(&old, &patch, &out, &opts).unwrap();
    assert_eq!(r.new_len, fs::metadata(&new).unwrap().len());
    assert_eq!(fs::read(&out).unwrap(), fs::read(&new).unwrap());

    // Wrong OLD: refused, OUT as it was.
    fs::write(&out, b"previous contents").unwrap();
    let e = oxdelta::apply_file(&new, &patch, &out, &opts).unwrap_err();
    assert!(e.to_string().contains("OLD does not match"), "{e}");
    assert_eq!(fs::read(&out).unwrap(), b"previous contents");

    // Truncated patch.
    let bytes = fs::read(&patch).unwrap();
    let short = d.join("short");
    fs::write(&short, &bytes[..bytes.len() - 10]).unwrap();
    let e = oxdelta::apply_file(&old, &short, &out, &opts).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    assert_eq!(fs::read(&out).unwrap(), b"previous contents");

    // A corrupted chunk in the middle of the payloads.
    let mut bad = bytes.clone();
    let mid = bytes.len() - 1000;
    bad[mid] ^= 0x40;
    let badp = d.join("bad");
    fs::write(&badp, &bad).unwrap();
    let e = oxdelta::apply_file(&old, &badp, &out, &opts).unwrap_err();
    assert!(e.to_string().contains("hash mismatch"), "{e}");
    assert_eq!(fs::read(&out).unwrap(), b"previous contents");

    // Missing OLD.
    let e = oxdelta::apply_file(&d.join("nope"), &patch, &out, &opts).unwrap_err();
    assert!(e.to_string().contains("opening OLD"), "{e}");
    assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));

    // OUT equal to OLD: replaced atomically, the old contents were read intact.
    let target = d.join("target");
    fs::copy(&old, &target).unwrap();
    oxdelta::apply_file(&target, &patch, &target, &opts).unwrap();
    assert_eq!(fs::read(&target).unwrap(), fs::read(&new).unwrap());
    fs::remove_dir_all(&d).unwrap();
}

#[cfg(unix)]
#[test]
fn unwritable_output_directory() {
    use std::os::unix::fs::PermissionsExt;
    let d = tmpdir("ro");
    let patch = d.join("p");
    oxdelta::diff_files(
        &testdata("msgpack/old"),
        &testdata("msgpack/new"),
        &patch,
        &DiffOptions::default(),
    )
    .unwrap();
    let ro = d.join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    let r = oxdelta::apply_file(
        &testdata("msgpack/old"),
        &patch,
        &ro.join("out"),
        &crate::overwriting(),
    );
    // Root ignores directory permissions; only assert when they apply.
    if fs::write(ro.join("probe"), b"x").is_err() {
        let e = r.unwrap_err();
        assert!(e.to_string().contains("temporary output"), "{e}");
        assert!(!ro.join("out").exists());
    }
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_dir_all(&d).unwrap();
}

/// File applies hand chunks to the pool as the memory budget allows: the
/// output is NEW whatever the thread count and budget (one chunk at a time
/// up to all at once), from a file or a stream; and a damaged chunk among
/// many in flight fails the apply with OUT untouched and no temporary left.
#[test]
fn file_apply_is_the_same_whatever_the_threads_and_budget() {
    let d = tmpdir("window");
    let (old, new, patch, out) = (
        testdata("msgpack/old"),
        testdata("msgpack/new"),
        d.join("p"),
        d.join("out"),
    );
    let opts = DiffOptions {
        chunk_len: Some(16 << 10),
        ..DiffOptions::default()
    };
    oxdelta::diff_files(&old, &new, &patch, &opts).unwrap();
    let want = fs::read(&new).unwrap();
    let bytes = fs::read(&patch).unwrap();
    for threads in [1, 2, 5] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for budget in [1, 64 << 10, 48 << 20] {
            let opts = ApplyOptions {
                memory_budget: budget,
                ..crate::overwriting()
            };
            let _ = fs::remove_file(&out);
            pool.install(|| oxdelta::apply_file(&old, &patch, &out, &opts))
                .unwrap();
            assert!(
                fs::read(&out).unwrap() == want,
                "{threads} threads, budget {budget}"
            );
            let _ = fs::remove_file(&out);
            pool.install(|| oxdelta::apply_reader(&old, &bytes[..], &out, &opts))
                .unwrap();
            assert!(
                fs::read(&out).unwrap() == want,
                "stream, {threads} threads, budget {budget}"
            );
        }
    }
    let p = oxdelta::oxdelta_format::Patch::parse(&bytes).unwrap();
    assert!(p.head.chunks.len() > 8, "{} chunks", p.head.chunks.len());
    // Damage one chunk in the middle (its payload hash then fails).
    let mid = &p.head.chunks[p.head.chunks.len() / 2];
    let at = (p.head.payload_start() + mid.payload_offset) as usize;
    let mut bad = bytes.clone();
    bad[at] ^= 0x10;
    let badp = d.join("bad");
    fs::write(&badp, &bad).unwrap();
    fs::write(&out, b"before").unwrap();
    for budget in [1, 48 << 20] {
        let opts = ApplyOptions {
            memory_budget: budget,
            ..crate::overwriting()
        };
        let e = oxdelta::apply_file(&old, &badp, &out, &opts).unwrap_err();
        assert!(e.to_string().contains("hash mismatch"), "{e}");
        let e = oxdelta::apply_reader(&old, &bad[..], &out, &opts).unwrap_err();
        assert!(e.to_string().contains("hash mismatch"), "{e}");
        assert_eq!(fs::read(&out).unwrap(), b"before");
    }
    assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
    fs::remove_dir_all(&d).unwrap();
}

/// Cancelling a file apply (the CLI's Ctrl-C) before it starts or after
/// its first chunk is written stops it with `Cancelled`: OUT untouched, no
/// temporary left, the writer thread and the pool drained.
#[test]
fn cancelled_file_apply_leaves_out_untouched() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let d = tmpdir("cancel");
    let (old, new, patch, out) = (
        testdata("msgpack/old"),
        testdata("msgpack/new"),
        d.join("p"),
        d.join("out"),
    );
    let opts = DiffOptions {
        chunk_len: Some(16 << 10),
        ..DiffOptions::default()
    };
    oxdelta::diff_files(&old, &new, &patch, &opts).unwrap();
    for after_first_chunk in [false, true] {
        let cancel = Arc::new(AtomicBool::new(!after_first_chunk));
        let c = cancel.clone();
        let opts = ApplyOptions {
            cancel: Some(cancel),
            // One chunk at a time, so that chunks remain after the first.
            memory_budget: 1,
            progress: oxdelta::Progress::new(move |e| {
                if let oxdelta::Event::Advance { .. } = e {
                    c.store(true, Ordering::Relaxed);
                }
            }),
            ..crate::overwriting()
        };
        fs::write(&out, b"as it was").unwrap();
        let e = oxdelta::apply_file(&old, &patch, &out, &opts).unwrap_err();
        assert!(e.to_string().contains("cancel"), "{e}");
        assert_eq!(fs::read(&out).unwrap(), b"as it was");
        assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
    }
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn streaming_apply_matches_file_apply() {
    let d = tmpdir("stream");
    let (old, new, patch, out) = (
        testdata("msgpack/old"),
        testdata("msgpack/new"),
        d.join("p"),
        d.join("out"),
    );
    oxdelta::diff_files(
        &old,
        &new,
        &patch,
        &DiffOptions {
            chunk_len: Some(65536),
            ..DiffOptions::default()
        },
    )
    .unwrap();
    let bytes = fs::read(&patch).unwrap();
    let opts = ApplyOptions {
        memory_budget: 1 << 16,
        ..crate::overwriting()
    };
    oxdelta::apply_reader(&old, &bytes[..], &out, &opts).unwrap();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&new).unwrap());
    // Truncated stream: error, OUT untouched.
    fs::write(&out, b"keep").unwrap();
    let e = oxdelta::apply_reader(&old, &bytes[..bytes.len() / 2], &out, &opts).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    assert_eq!(fs::read(&out).unwrap(), b"keep");
    // Trailing garbage is refused too.
    let mut long = bytes.clone();
    long.push(0);
    assert!(oxdelta::apply_reader(&old, &long[..], &out, &opts).is_err());
    assert_eq!(fs::read(&out).unwrap(), b"keep");
    assert!(leftovers(&d).is_empty());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn signatures() {
    let key = oxdelta::SecretKey([7u8; 32]);
    let other = oxdelta::SecretKey([8u8; 32]);
    let old = lcg(5, 50_000);
    let mut new = old.clone();
    new[100..200].fill(9);
    let signed = diff_bytes(
        &old,
        &new,
        &DiffOptions {
            key: Some(key.clone()),
            ..DiffOptions::default()
        },
    );
    let unsigned = diff_bytes(&old, &new, &DiffOptions::default());
    let trust = |k: &oxdelta::SecretKey| ApplyOptions {
        trusted_key: Some(k.public()),
        ..crate::overwriting()
    };
    assert_eq!(apply_bytes(&old, &signed, &trust(&key)).unwrap(), new);
    let e = apply_bytes(&old, &signed, &trust(&other)).unwrap_err();
    assert!(e.to_string().contains("not by the trusted key"), "{e}");
    let e = apply_bytes(&old, &unsigned, &trust(&key)).unwrap_err();
    assert!(e.to_string().contains("unsigned"), "{e}");
    // Signing is deterministic.
    assert_eq!(
        signed,
        diff_bytes(
            &old,
            &new,
            &DiffOptions {
                key: Some(key.clone()),
                ..DiffOptions::default()
            }
        )
    );
    // A flipped bit in the head breaks the signature even without a trusted key.
    let mut t = signed.clone();
    t[40] ^= 1;
    assert!(oxdelta::verify_bytes(&t, None).is_err());
    assert!(oxdelta::verify_bytes(&signed, Some(&key.public())).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_edits_round_trip(
        seed in any::<u64>(),
        len in 0usize..20_000,
        edits in prop::collection::vec((any::<u16>(), 0u8..4, any::<u8>(), 1usize..300), 0..12),
    ) {
        let old = lcg(seed, len);
        let mut new = old.clone();
        for (at, kind, b, n) in edits {
            let at = if new.is_empty() { 0 } else { at as usize % new.len() };
            match kind {
                0 => { let e = (at + n).min(new.len()); new[at..e].fill(b); }
                1 => { new.splice(at..at, std::iter::repeat_n(b, n)); }
                2 => { let e = (at + n).min(new.len()); new.drain(at..e); }
                _ => { let e = (at + n).min(new.len()); let moved: Vec<u8> = new.drain(at..e).collect(); new.extend(moved); }
            }
        }
        let opts = DiffOptions { chunk_len: Some(4096), codec: Codec::Lz4, key: None, ..Default::default() };
        let patch = diff_bytes(&old, &new, &opts);
        prop_assert_eq!(apply_bytes(&old, &patch, &crate::overwriting()).unwrap(), new);
    }
}

/// Per phase: (phase, announced total, bytes reported).
type PhaseLog = std::sync::Arc<std::sync::Mutex<Vec<(oxdelta::Phase, u64, u64)>>>;

/// Collects progress events and sums the bytes reported per phase.
fn recorder() -> (oxdelta::Progress, PhaseLog) {
    use oxdelta::Event;
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = log.clone();
    let p = oxdelta::Progress::new(move |e| {
        let mut v = l.lock().unwrap();
        match e {
            Event::Start { phase, total } => v.push((phase, total, 0)),
            Event::Advance { bytes } => v.last_mut().expect("advance after start").2 += bytes,
        }
    });
    (p, log)
}

#[test]
fn progress_reports_add_up_to_the_announced_totals() {
    use oxdelta::Phase;
    let old = fs::read(testdata("msgpack/old")).unwrap();
    let new = fs::read(testdata("msgpack/new")).unwrap();
    let (p, log) = recorder();
    let opts = DiffOptions {
        chunk_len: Some(256 << 10),
        progress: p,
        ..Default::default()
    };
    let patch = diff_bytes(&old, &new, &opts);
    let phases: Vec<_> = log.lock().unwrap().clone();
    assert_eq!(
        phases,
        vec![
            (Phase::Indexing, old.len() as u64, old.len() as u64),
            (Phase::Matching, new.len() as u64, new.len() as u64),
        ]
    );

    let (p, log) = recorder();
    let got = apply_bytes(
        &old,
        &patch,
        &ApplyOptions {
            progress: p,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(got == new);
    let phases: Vec<_> = log.lock().unwrap().clone();
    assert_eq!(
        phases,
        vec![(Phase::Applying, new.len() as u64, new.len() as u64)]
    );

    // File applies report the same way.
    let d = tmpdir("progress");
    let (pp, out) = (d.join("p"), d.join("out"));
    fs::write(&pp, &patch).unwrap();
    let (p, log) = recorder();
    oxdelta::apply_file(
        &testdata("msgpack/old"),
        &pp,
        &out,
        &ApplyOptions {
            progress: p,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(log.lock().unwrap().last().unwrap().2, new.len() as u64);
    assert!(fs::read(&out).unwrap() == new);
    let _ = fs::remove_dir_all(&d);
}

/// The AArch64 sample (testdata/esbuild-arm64): the differ codes its code
/// chunks in the arm64 mode (format version 6), the patch rebuilds NEW from
/// memory, from a file and from a stream, and it is the same patch in a
/// 1-thread and a 3-thread pool.
#[test]
fn arm64_sample_round_trips_serial_equals_parallel() {
    let (old_path, new_path) = (testdata("esbuild-arm64/old"), testdata("esbuild-arm64/new"));
    let (old, new) = (fs::read(&old_path).unwrap(), fs::read(&new_path).unwrap());
    let opts = DiffOptions {
        chunk_len: Some(128 << 10),
        ..DiffOptions::default()
    };
    let in_pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| diff_bytes(&old, &new, &opts))
    };
    let serial = in_pool(1);
    assert!(
        serial == in_pool(3),
        "the patch depends on the thread count"
    );
    let head = oxdelta::Patch::parse(&serial).unwrap().head;
    // Version 7: by default chunks are stored as LZMA2 where it pays.
    assert_eq!(head.version, oxdelta::FORMAT_VERSION);
    assert_eq!(head.features_version(), 7);
    let arm = head
        .chunks
        .iter()
        .filter(|c| c.add_mode == oxdelta::AddMode::Arm64)
        .count();
    assert!(
        arm >= 3,
        "{arm} of {} chunks in the arm64 mode",
        head.chunks.len()
    );
    assert!(apply_bytes(&old, &serial, &crate::overwriting()).unwrap() == new);
    let dir = tmpdir("arm64-sample");
    let (p, out, streamed) = (dir.join("patch"), dir.join("out"), dir.join("streamed"));
    fs::write(&p, &serial).unwrap();
    oxdelta::apply_file(&old_path, &p, &out, &crate::overwriting()).unwrap();
    assert!(fs::read(&out).unwrap() == new, "apply_file");
    oxdelta::apply_reader(&old_path, &serial[..], &streamed, &crate::overwriting()).unwrap();
    assert!(fs::read(&streamed).unwrap() == new, "apply_reader");
    oxdelta::verify_bytes(&serial, None).unwrap();
    // The streaming engine rounds trip too, serial equal to parallel.
    let opts = DiffOptions {
        memory: Some(oxdelta::oxdelta_diff::stream::MIN_BUDGET),
        ..opts
    };
    let s1 = diff_bytes(&old, &new, &opts);
    let s3 = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap()
        .install(|| diff_bytes(&old, &new, &opts));
    assert!(s1 == s3, "the streaming patch depends on the thread count");
    assert!(apply_bytes(&old, &s1, &crate::overwriting()).unwrap() == new);
    fs::remove_dir_all(&dir).unwrap();
}

/// The RISC-V sample (testdata/esbuild-riscv64): the differ codes its
/// chunks in the riscv mode (format version 10), the patch is much smaller
/// than without it (the same code with every JAL turned into another
/// opcode, which the trigger does not take for RISC-V code), rebuilds NEW
/// from memory, from a file, from a stream and in place, and it is the
/// same patch in a 1-thread and a 3-thread pool, with either engine.
#[test]
fn riscv_sample_round_trips_serial_equals_parallel() {
    let (old_path, new_path) = (
        testdata("esbuild-riscv64/old"),
        testdata("esbuild-riscv64/new"),
    );
    let (old, new) = (fs::read(&old_path).unwrap(), fs::read(&new_path).unwrap());
    let opts = DiffOptions {
        chunk_len: Some(128 << 10),
        ..DiffOptions::default()
    };
    let in_pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| diff_bytes(&old, &new, &opts))
    };
    let serial = in_pool(1);
    assert!(
        serial == in_pool(3),
        "the patch depends on the thread count"
    );
    let head = oxdelta::Patch::parse(&serial).unwrap().head;
    assert_eq!(head.version, oxdelta::FORMAT_VERSION);
    assert_eq!(head.features_version(), 10);
    let rv = head
        .chunks
        .iter()
        .filter(|c| c.add_mode == oxdelta::AddMode::Riscv)
        .count();
    assert!(
        rv >= 3,
        "{rv} of {} chunks in the riscv mode",
        head.chunks.len()
    );
    // JAL (opcode 0x6F) turned into 0x6B in OLD and NEW alike: no trigger,
    // and the moved calls cost their diff bytes again.
    let no_jal = |b: &[u8]| {
        let mut b = b.to_vec();
        for w in b.chunks_exact_mut(4) {
            if w[0] & 0x7F == 0x6F {
                w[0] -= 4;
            }
        }
        b
    };
    let plain = diff_bytes(&no_jal(&old), &no_jal(&new), &opts);
    assert!(
        oxdelta::Patch::parse(&plain)
            .unwrap()
            .head
            .features_version()
            < 10
    );
    assert!(
        serial.len() * 3 < plain.len(),
        "{} B with the mode, {} B without",
        serial.len(),
        plain.len()
    );
    assert!(apply_bytes(&old, &serial, &crate::overwriting()).unwrap() == new);
    let dir = tmpdir("riscv-sample");
    let (p, out, streamed) = (dir.join("patch"), dir.join("out"), dir.join("streamed"));
    fs::write(&p, &serial).unwrap();
    oxdelta::apply_file(&old_path, &p, &out, &crate::overwriting()).unwrap();
    assert!(fs::read(&out).unwrap() == new, "apply_file");
    oxdelta::apply_reader(&old_path, &serial[..], &streamed, &crate::overwriting()).unwrap();
    assert!(fs::read(&streamed).unwrap() == new, "apply_reader");
    oxdelta::verify_bytes(&serial, None).unwrap();
    let (ip, _) = oxdelta::diff_bytes_in_place(&old, &new, &opts, &Default::default());
    let (ipf, ipp) = (dir.join("inplace"), dir.join("inplace.patch"));
    fs::write(&ipf, &old).unwrap();
    fs::write(&ipp, &ip).unwrap();
    oxdelta::apply_in_place(&ipf, &ipp, &Default::default()).unwrap();
    assert!(fs::read(&ipf).unwrap() == new, "in place");
    let opts = DiffOptions {
        memory: Some(oxdelta::oxdelta_diff::stream::MIN_BUDGET),
        ..opts
    };
    let s1 = diff_bytes(&old, &new, &opts);
    let s3 = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap()
        .install(|| diff_bytes(&old, &new, &opts));
    assert!(s1 == s3, "the streaming patch depends on the thread count");
    assert!(apply_bytes(&old, &s1, &crate::overwriting()).unwrap() == new);
    fs::remove_dir_all(&dir).unwrap();
}

/// The Thumb-2 sample (testdata/openssl-armhf): the differ codes its
/// chunks in the thumb2 mode (format version 11), the patch is much
/// smaller than without it (the same code with every call's `J1` bit
/// cleared, which the trigger does not take for Thumb-2 code), rebuilds
/// NEW from memory, from a file, from a stream and in place, and it is the
/// same patch in a 1-thread and a 3-thread pool, with either engine.
#[test]
fn thumb2_sample_round_trips_serial_equals_parallel() {
    let (old_path, new_path) = (testdata("openssl-armhf/old"), testdata("openssl-armhf/new"));
    let (old, new) = (fs::read(&old_path).unwrap(), fs::read(&new_path).unwrap());
    let opts = DiffOptions {
        chunk_len: Some(128 << 10),
        ..DiffOptions::default()
    };
    let in_pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| diff_bytes(&old, &new, &opts))
    };
    let serial = in_pool(1);
    assert!(
        serial == in_pool(3),
        "the patch depends on the thread count"
    );
    let head = oxdelta::Patch::parse(&serial).unwrap().head;
    assert_eq!(head.version, 11);
    let t2 = head
        .chunks
        .iter()
        .filter(|c| c.add_mode == oxdelta::AddMode::Thumb2)
        .count();
    assert!(
        t2 >= 2,
        "{t2} of {} chunks in the thumb2 mode",
        head.chunks.len()
    );
    // BL and BLX (first halfword 0b11110..., second 0b11x1... or
    // 0b11x0...) with J1 (bit 13 of the second halfword) cleared in OLD
    // and NEW alike, walked as the mode walks: no trigger, and the moved
    // calls cost their diff bytes again.
    let no_calls = |b: &[u8]| {
        let mut b = b.to_vec();
        let mut k = 0;
        while k + 4 <= b.len() {
            let h1 = u16::from_le_bytes([b[k], b[k + 1]]);
            if h1 >> 11 < 0b11101 {
                k += 2;
                continue;
            }
            if h1 >> 11 == 0b11110 && b[k + 3] & 0xC0 == 0xC0 {
                b[k + 3] &= !0x20;
            }
            k += 4;
        }
        b
    };
    let plain = diff_bytes(&no_calls(&old), &no_calls(&new), &opts);
    assert!(
        oxdelta::Patch::parse(&plain)
            .unwrap()
            .head
            .features_version()
            < 11
    );
    assert!(
        serial.len() * 3 < plain.len() * 2,
        "{} B with the mode, {} B without",
        serial.len(),
        plain.len()
    );
    assert!(apply_bytes(&old, &serial, &crate::overwriting()).unwrap() == new);
    let dir = tmpdir("thumb2-sample");
    let (p, out, streamed) = (dir.join("patch"), dir.join("out"), dir.join("streamed"));
    fs::write(&p, &serial).unwrap();
    oxdelta::apply_file(&old_path, &p, &out, &crate::overwriting()).unwrap();
    assert!(fs::read(&out).unwrap() == new, "apply_file");
    oxdelta::apply_reader(&old_path, &serial[..], &streamed, &crate::overwriting()).unwrap();
    assert!(fs::read(&streamed).unwrap() == new, "apply_reader");
    oxdelta::verify_bytes(&serial, None).unwrap();
    let (ip, _) = oxdelta::diff_bytes_in_place(&old, &new, &opts, &Default::default());
    let (ipf, ipp) = (dir.join("inplace"), dir.join("inplace.patch"));
    fs::write(&ipf, &old).unwrap();
    fs::write(&ipp, &ip).unwrap();
    oxdelta::apply_in_place(&ipf, &ipp, &Default::default()).unwrap();
    assert!(fs::read(&ipf).unwrap() == new, "in place");
    let opts = DiffOptions {
        memory: Some(oxdelta::oxdelta_diff::stream::MIN_BUDGET),
        ..opts
    };
    let s1 = diff_bytes(&old, &new, &opts);
    let s3 = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap()
        .install(|| diff_bytes(&old, &new, &opts));
    assert!(s1 == s3, "the streaming patch depends on the thread count");
    assert!(apply_bytes(&old, &s1, &crate::overwriting()).unwrap() == new);
    let h1 = oxdelta::Patch::parse(&s1).unwrap().head;
    assert!(
        h1.chunks
            .iter()
            .any(|c| c.add_mode == oxdelta::AddMode::Thumb2)
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// The WebAssembly sample (testdata/esbuild-wasm): the differ codes its
/// chunks in the wasm mode (format version 8), the patch is smaller than
/// without it, rebuilds NEW from memory, from a file and from a stream, and
/// it is the same patch in a 1-thread and a 3-thread pool.
#[test]
fn wasm_sample_round_trips_serial_equals_parallel() {
    let (old_path, new_path) = (testdata("esbuild-wasm/old"), testdata("esbuild-wasm/new"));
    let (old, new) = (fs::read(&old_path).unwrap(), fs::read(&new_path).unwrap());
    let opts = DiffOptions {
        chunk_len: Some(64 << 10),
        ..DiffOptions::default()
    };
    let in_pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| diff_bytes(&old, &new, &opts))
    };
    let serial = in_pool(1);
    assert!(
        serial == in_pool(3),
        "the patch depends on the thread count"
    );
    let head = oxdelta::Patch::parse(&serial).unwrap().head;
    assert_eq!(head.version, oxdelta::FORMAT_VERSION);
    assert_eq!(head.features_version(), 8);
    let wasm = head
        .chunks
        .iter()
        .filter(|c| c.add_mode == oxdelta::AddMode::Wasm)
        .count();
    assert!(
        wasm >= 3,
        "{wasm} of {} chunks in the wasm mode",
        head.chunks.len()
    );
    // Without the magic the mode is not tried: the same pair with its
    // first byte changed makes a larger patch, in an older version.
    let (mut old2, mut new2) = (old.clone(), new.clone());
    (old2[0], new2[0]) = (1, 1);
    let plain = diff_bytes(&old2, &new2, &opts);
    assert!(
        oxdelta::Patch::parse(&plain)
            .unwrap()
            .head
            .features_version()
            < 8
    );
    assert!(
        serial.len() * 5 < plain.len() * 4,
        "{} B with the mode, {} B without",
        serial.len(),
        plain.len()
    );
    assert!(apply_bytes(&old, &serial, &crate::overwriting()).unwrap() == new);
    let dir = tmpdir("wasm-sample");
    let (p, out, streamed) = (dir.join("patch"), dir.join("out"), dir.join("streamed"));
    fs::write(&p, &serial).unwrap();
    oxdelta::apply_file(&old_path, &p, &out, &crate::overwriting()).unwrap();
    assert!(fs::read(&out).unwrap() == new, "apply_file");
    oxdelta::apply_reader(&old_path, &serial[..], &streamed, &crate::overwriting()).unwrap();
    assert!(fs::read(&streamed).unwrap() == new, "apply_reader");
    oxdelta::verify_bytes(&serial, None).unwrap();
    // In place, and with the streaming engine (serial equal to parallel).
    let (ip, _) = oxdelta::diff_bytes_in_place(&old, &new, &opts, &Default::default());
    let head = oxdelta::Patch::parse(&ip).unwrap().head;
    assert!(
        head.chunks
            .iter()
            .any(|c| c.add_mode == oxdelta::AddMode::Wasm)
    );
    let (ipf, ipp) = (dir.join("inplace"), dir.join("inplace.patch"));
    fs::write(&ipf, &old).unwrap();
    fs::write(&ipp, &ip).unwrap();
    oxdelta::apply_in_place(&ipf, &ipp, &Default::default()).unwrap();
    assert!(fs::read(&ipf).unwrap() == new, "in place");
    let opts = DiffOptions {
        memory: Some(oxdelta::oxdelta_diff::stream::MIN_BUDGET),
        ..opts
    };
    let s1 = diff_bytes(&old, &new, &opts);
    let s3 = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap()
        .install(|| diff_bytes(&old, &new, &opts));
    assert!(s1 == s3, "the streaming patch depends on the thread count");
    assert!(apply_bytes(&old, &s1, &crate::overwriting()).unwrap() == new);
    fs::remove_dir_all(&dir).unwrap();
}

/// The output rules of the file API: an existing output is replaced only
/// with `overwrite`, even one that appears while the apply runs (the commit
/// does not replace it); an output is never an input, through links too.
#[cfg(unix)]
#[test]
fn file_outputs_are_refused_unless_overwriting() {
    use oxdelta::ApplyError;
    let d = tmpdir("outputs");
    let (old, new, patch, out) = (
        testdata("msgpack/old"),
        testdata("msgpack/new"),
        d.join("p"),
        d.join("out"),
    );
    let exists =
        |e: &oxdelta::Error| matches!(e, oxdelta::Error::Apply(ApplyError::OutputExists { .. }));
    let same = |e: &oxdelta::Error| matches!(e, oxdelta::Error::Apply(ApplyError::SameFile { .. }));
    let defaults = DiffOptions::default();
    oxdelta::diff_files(&old, &new, &patch, &defaults).unwrap();
    let e = oxdelta::diff_files(&old, &new, &patch, &defaults).unwrap_err();
    assert!(exists(&e), "{e}");
    let forced = DiffOptions {
        overwrite: true,
        ..DiffOptions::default()
    };
    oxdelta::diff_files(&old, &new, &patch, &forced).unwrap();
    let link = d.join("link");
    std::os::unix::fs::symlink(&old, &link).unwrap();
    let e = oxdelta::diff_files(&old, &new, &link, &forced).unwrap_err();
    assert!(same(&e), "{e}");
    let e = oxdelta::diff_files(&link, &new, &old, &forced).unwrap_err();
    assert!(same(&e), "{e}");

    fs::write(&out, b"before").unwrap();
    let e = oxdelta::apply_file(&old, &patch, &out, &ApplyOptions::default()).unwrap_err();
    assert!(matches!(e, ApplyError::OutputExists { .. }), "{e}");
    let e = oxdelta::apply_reader(
        &old,
        &fs::read(&patch).unwrap()[..],
        &out,
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, ApplyError::OutputExists { .. }), "{e}");
    assert_eq!(fs::read(&out).unwrap(), b"before");
    let hard = d.join("hard");
    fs::hard_link(&patch, &hard).unwrap();
    let e = oxdelta::apply_file(&old, &patch, &hard, &crate::overwriting()).unwrap_err();
    assert!(matches!(e, ApplyError::SameFile { .. }), "{e}");
    oxdelta::apply_file(&old, &patch, &out, &crate::overwriting()).unwrap();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&new).unwrap());

    // An OUT that appears during the apply (made from its progress
    // callback) is not replaced at the commit, with or without a flush,
    // and no temporary is left.
    for durable in [true, false] {
        let racer = d.join(format!("racer-{durable}"));
        let r = racer.clone();
        let opts = ApplyOptions {
            durable,
            progress: oxdelta::Progress::new(move |_| {
                if !r.exists() {
                    fs::write(&r, b"the racer's").unwrap();
                }
            }),
            ..ApplyOptions::default()
        };
        let e = oxdelta::apply_file(&old, &patch, &racer, &opts).unwrap_err();
        assert!(matches!(e, ApplyError::OutputExists { .. }), "{e}");
        assert_eq!(fs::read(&racer).unwrap(), b"the racer's");
    }
    let mut names: Vec<String> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["hard", "link", "out", "p", "racer-false", "racer-true"]
    );
    fs::remove_dir_all(&d).unwrap();
}

/// Inputs that change underneath: OLD cut short while an apply reads it
/// (from the apply's own progress callback, so mid-apply every time), NEW
/// cut short while a diff reads it, OLD while a sink apply reads it. Each
/// gives an error naming the change, not a `SIGBUS` (this test process
/// would die of it), and nothing is written.
#[cfg(target_os = "linux")]
#[test]
fn inputs_cut_short_while_read_give_errors_not_signals() {
    use oxdelta::ApplyError;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let d = tmpdir("cut-short");
    let old = lcg(7, 8 << 20);
    let mut new = old.clone();
    for i in (0..new.len()).step_by(4099) {
        new[i] ^= 0x21;
    }
    let (o, n, p, out) = (d.join("old"), d.join("new"), d.join("p"), d.join("out"));
    fs::write(&o, &old).unwrap();
    fs::write(&n, &new).unwrap();
    let small = DiffOptions {
        chunk_len: Some(256 << 10),
        codec: Codec::Lz4,
        ..DiffOptions::default()
    };
    oxdelta::diff_files(&o, &n, &p, &small).unwrap();
    fs::write(&out, b"before").unwrap();
    // Cuts `path` to a quarter at the first progress event of `phase`.
    let cutter = |path: PathBuf, phase: oxdelta::Phase| {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let progress = oxdelta::Progress::new(move |e| {
            if let oxdelta::Event::Start { phase: ph, .. } = e {
                if ph == phase && !flag.swap(true, Ordering::SeqCst) {
                    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
                    f.set_len(2 << 20).unwrap();
                }
            }
        });
        (progress, done)
    };
    let changed =
        |e: &oxdelta::Error| matches!(e, oxdelta::Error::Apply(ApplyError::InputChanged { .. }));

    for streamed in [false, true] {
        fs::write(&o, &old).unwrap();
        let (progress, done) = cutter(o.clone(), oxdelta::Phase::Applying);
        let opts = ApplyOptions {
            progress,
            ..crate::overwriting()
        };
        let r = if streamed {
            oxdelta::apply_reader(&o, &fs::read(&p).unwrap()[..], &out, &opts)
        } else {
            oxdelta::apply_file(&o, &p, &out, &opts)
        };
        assert!(done.load(Ordering::SeqCst), "the cut happened");
        let e = oxdelta::Error::from(r.unwrap_err());
        assert!(changed(&e), "streamed {streamed}: {e}");
        assert!(e.to_string().contains("changed while it was read"), "{e}");
        assert_eq!(fs::read(&out).unwrap(), b"before");
        assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
    }

    // A sink apply: refused before the sink sees a byte when OLD is cut
    // during its hash.
    fs::write(&o, &old).unwrap();
    let (progress, _) = cutter(o.clone(), oxdelta::Phase::Verifying);
    let opts = ApplyOptions {
        progress,
        ..ApplyOptions::default()
    };
    let mut sink = vec![0u8; new.len()];
    let e = oxdelta::apply_file_to_sink(&o, &p, &mut sink[..], &opts).unwrap_err();
    assert!(
        changed(&e) || e.to_string().contains("OLD does not match"),
        "{e}"
    );
    assert!(sink.iter().all(|&b| b == 0), "nothing reached the sink");

    // A diff whose NEW is cut while it is matched: no patch written.
    fs::write(&o, &old).unwrap();
    let p2 = d.join("p2");
    for memory in [None, Some(16 << 20)] {
        fs::write(&n, &new).unwrap();
        let (progress, done) = cutter(n.clone(), oxdelta::Phase::Matching);
        let opts = DiffOptions {
            progress,
            memory,
            ..small.clone()
        };
        let e = oxdelta::diff_files(&o, &n, &p2, &opts).unwrap_err();
        assert!(done.load(Ordering::SeqCst));
        assert!(changed(&e), "memory {memory:?}: {e}");
        assert!(!p2.exists());
        assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
    }
    fs::remove_dir_all(&d).unwrap();
}
