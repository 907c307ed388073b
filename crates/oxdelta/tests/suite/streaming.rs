//! The streaming engine through the facade: `DiffOptions::memory` on files
//! (payloads spilled to a temporary file, nothing left behind) and buffers.

use std::fs;
use std::path::PathBuf;

use oxdelta::{ApplyOptions, DiffOptions, Engine, Patch, apply_bytes, diff_bytes};

fn data(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Mostly text-like, with zero pages now and then.
            if (i >> 12) % 5 == 0 {
                0
            } else {
                b"abcdefgh"[(x >> 61) as usize]
            }
        })
        .collect()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oxdelta-stream-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn files_with_a_budget() {
    let d = dir("files");
    let old = data(1, 600_000);
    let mut new = old.clone();
    new.splice(1000..1000, b"inserted bytes".iter().copied());
    new[400_000..400_100].fill(7);
    let (o, n, p, out) = (d.join("old"), d.join("new"), d.join("p"), d.join("out"));
    fs::write(&o, &old).unwrap();
    fs::write(&n, &new).unwrap();
    let opts = DiffOptions {
        memory: Some(256 << 10),
        chunk_len: Some(64 << 10),
        ..DiffOptions::default()
    };
    let r = oxdelta::diff_files(&o, &n, &p, &opts).unwrap();
    assert_eq!(r.engine, Engine::Streaming);
    assert_eq!(r.patch_len, fs::metadata(&p).unwrap().len());
    let bytes = fs::read(&p).unwrap();
    assert_eq!(
        Patch::parse(&bytes).unwrap().head.meta.engine,
        Engine::Streaming
    );
    // Same bytes as the buffer path.
    assert!(diff_bytes(&old, &new, &opts) == bytes);
    oxdelta::apply_file(&o, &p, &out, &crate::overwriting()).unwrap();
    assert!(fs::read(&out).unwrap() == new);
    // Only the three inputs and the output remain: no spill or temp files.
    let mut names: Vec<String> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["new", "old", "out", "p"]);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn signed_streaming_patch() {
    let old = data(2, 200_000);
    let mut new = old.clone();
    new[5000] ^= 1;
    let key = oxdelta::SecretKey([7u8; 32]);
    let opts = DiffOptions {
        memory: Some(1 << 20),
        key: Some(key.clone()),
        ..DiffOptions::default()
    };
    let patch = diff_bytes(&old, &new, &opts);
    let trusted = ApplyOptions {
        trusted_key: Some(key.public()),
        ..crate::overwriting()
    };
    assert!(apply_bytes(&old, &patch, &trusted).unwrap() == new);
}
