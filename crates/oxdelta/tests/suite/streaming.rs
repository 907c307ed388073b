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

/// Sparse files: the facade hands the engine their data extents; holes
/// that moved are zeros, the patch round-trips, and it is the patch of the
/// same bytes read in full (here the holes fall where the dense scan makes
/// ZERO ops too).
#[test]
fn sparse_files_with_moved_holes() {
    use std::io::{Seek, SeekFrom, Write};
    let d = dir("sparse");
    let len = (48u64 << 20) + 12_345;
    let island = data(7, 300_000);
    let write = |path: &PathBuf, at: &[u64]| {
        let mut f = fs::File::create(path).unwrap();
        f.set_len(len).unwrap();
        for (k, &a) in at.iter().enumerate() {
            f.seek(SeekFrom::Start(a)).unwrap();
            f.write_all(&island[k * 100_000..(k + 1) * 100_000])
                .unwrap();
        }
    };
    let (o, n, p, out) = (d.join("old"), d.join("new"), d.join("p"), d.join("out"));
    write(&o, &[1 << 20, 20 << 20, 40 << 20]);
    // The second island now lies past a hole, near the end.
    write(&n, &[1 << 20, 47 << 20, 40 << 20]);
    let opts = DiffOptions {
        memory: Some(64 << 20),
        ..DiffOptions::default()
    };
    let r = oxdelta::diff_files(&o, &n, &p, &opts).unwrap();
    assert_eq!(r.engine, Engine::Streaming);
    assert!(r.patch_len < 20_000, "patch {}", r.patch_len);
    oxdelta::apply_file(&o, &p, &out, &ApplyOptions::default()).unwrap();
    let (old, new) = (fs::read(&o).unwrap(), fs::read(&n).unwrap());
    assert!(fs::read(&out).unwrap() == new);
    // The output stays sparse: the islands' 300 KB are written, the
    // zero chunks and zero pages are not.
    {
        use std::os::unix::fs::MetadataExt;
        let allocated = fs::metadata(&out).unwrap().blocks() * 512;
        assert!(allocated < 4 << 20, "{allocated} bytes allocated");
    }
    let patch = fs::read(&p).unwrap();
    let head = Patch::parse(&patch).unwrap().head;
    // The streaming engine's hashes are block-list hashes (version 8);
    // its runs of chunks of zeros are zero chunks (version 9).
    assert_eq!(head.version, oxdelta::FORMAT_VERSION);
    assert_eq!(head.features_version(), 9);
    assert!(head.chunks.iter().any(|e| e.zero));
    assert_eq!(
        head.file_hash(),
        oxdelta::oxdelta_format::filehash::FileHash::BlockList
    );
    assert_eq!(head.meta.old_hash, block_list_oracle(&old));
    assert_eq!(head.meta.new_hash, block_list_oracle(&new));
    oxdelta::check_file(&o, &p, &ApplyOptions::default()).unwrap();
    // A tampered whole-file hash, or the flag cleared (plain BLAKE3 then
    // expected), is refused.
    let tampered = d.join("tampered");
    // The compact head (format version 11): OLD's length (a varint), its
    // hash, NEW's length, its hash.
    let varint_len = |v: u64| {
        let mut b = Vec::new();
        oxdelta::oxdelta_format::cursor::put_varint(&mut b, v);
        b.len()
    };
    let old_hash_at = 16 + varint_len(head.meta.old_len);
    let new_hash_at = old_hash_at + 32 + varint_len(head.meta.new_len);
    assert_eq!(patch[old_hash_at..old_hash_at + 32], head.meta.old_hash);
    assert_eq!(patch[new_hash_at..new_hash_at + 32], head.meta.new_hash);
    for (at, bit) in [(old_hash_at, 1u8), (old_hash_at + 31, 0x80), (10, 2)] {
        let mut t = patch.clone();
        t[at] ^= bit;
        fs::write(&tampered, &t).unwrap();
        let _ = fs::remove_file(&out);
        let e = oxdelta::apply_file(&o, &tampered, &out, &ApplyOptions::default()).unwrap_err();
        assert!(
            matches!(e, oxdelta::ApplyError::WrongOld { .. }),
            "byte {at}: {e}"
        );
        assert!(!out.exists());
    }
    let mut t = patch.clone();
    t[new_hash_at] ^= 1;
    fs::write(&tampered, &t).unwrap();
    assert!(oxdelta::check_file(&o, &tampered, &ApplyOptions::default()).is_err());
    let _ = fs::remove_dir_all(&d);
}

/// The block-list hash (format version 8) from its definition in
/// docs/FORMAT.md: every 64 KiB block read and hashed, zeros included.
fn block_list_oracle(data: &[u8]) -> [u8; 32] {
    let mut outer = blake3::Hasher::new_derive_key("oxdelta 2026-12-07 block-list file hash v8");
    for b in data.chunks(1 << 16) {
        outer.update(blake3::hash(b).as_bytes());
    }
    outer.update(&(data.len() as u64).to_le_bytes());
    *outer.finalize().as_bytes()
}

/// A NEW of 9 GiB apparent size, almost all holes: each run of zeros is
/// one zero chunk of at most 2^32 − 1 bytes (three here: the last hole
/// is cut at that length), so the patch is the size of the data's; the
/// apply writes only the data (the output stays sparse), from a file or
/// a stream, and `check_file` hashes the holes as runs of zeros.
#[test]
fn gigabytes_of_holes_cost_a_few_entries() {
    use std::io::{Seek, SeekFrom, Write};
    let d = dir("gigaholes");
    let island = data(11, 200_000);
    let (o, n, p, out) = (d.join("old"), d.join("new"), d.join("p"), d.join("out"));
    fs::write(&o, &island).unwrap();
    let len = (9u64 << 30) + 777;
    {
        let mut f = fs::File::create(&n).unwrap();
        f.set_len(len).unwrap();
        // Islands at the start, past 4 GiB (not on a chunk boundary) and
        // in the last chunk.
        for (k, at) in [0, (4u64 << 30) + 12_345, len - 70_000]
            .into_iter()
            .enumerate()
        {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&island[k * 60_000..(k + 1) * 60_000]).unwrap();
        }
    }
    let opts = DiffOptions {
        memory: Some(64 << 20),
        ..DiffOptions::default()
    };
    let r = oxdelta::diff_files(&o, &n, &p, &opts).unwrap();
    assert!(r.patch_len < 10_000, "patch {}", r.patch_len);
    let patch = fs::read(&p).unwrap();
    let head = Patch::parse(&patch).unwrap().head;
    assert_eq!(head.version, oxdelta::FORMAT_VERSION);
    assert_eq!(head.features_version(), 9);
    let zeros: Vec<_> = head.chunks.iter().filter(|e| e.zero).collect();
    assert_eq!(zeros.len(), 3);
    assert!(zeros.iter().map(|e| u64::from(e.new_len)).sum::<u64>() > 8 << 30);
    assert!(zeros.iter().any(|e| e.new_len > u32::MAX - (8 << 20)));
    assert!(head.max_chunk_new_len <= oxdelta::oxdelta_format::limits::MAX_CHUNK_NEW_LEN);
    let allocated = |path: &PathBuf| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).unwrap().blocks() * 512
    };
    for from_stream in [false, true] {
        let _ = fs::remove_file(&out);
        if from_stream {
            oxdelta::apply_reader(&o, &patch[..], &out, &ApplyOptions::default()).unwrap();
        } else {
            oxdelta::apply_file(&o, &p, &out, &ApplyOptions::default()).unwrap();
        }
        assert_eq!(fs::metadata(&out).unwrap().len(), len);
        assert!(
            allocated(&out) < 16 << 20,
            "{} bytes allocated",
            allocated(&out)
        );
        // The output is NEW: its whole-file hash, holes hashed as runs
        // of zeros, unread.
        let m = oxdelta::oxdelta_apply::map::InputMap::open(&out).unwrap();
        let h = oxdelta::oxdelta_apply::sparse::hash_file(m.file(), &m, head.file_hash());
        assert_eq!(h, head.meta.new_hash, "from stream {from_stream}");
    }
    // check_file rebuilds NEW's hash from OLD and the patch the same way.
    oxdelta::check_file(&o, &p, &ApplyOptions::default()).unwrap();
    let _ = fs::remove_dir_all(&d);
}
