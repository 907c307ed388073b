//! Integration tests of the applier.

#[cfg(unix)]
mod inplace;

/// Hashing a sparse file through its data segments gives the same hash as
/// hashing every byte (plain BLAKE3, and the block-list hash against its
/// definition), with holes at the start, middle and end, and for a file
/// that is all hole or all data.
#[test]
fn sparse_hash_equals_plain_hash() {
    use oxdelta_format::filehash::{self, FileHash};
    use std::io::{Seek, SeekFrom, Write};
    let dir = std::env::temp_dir().join(format!("oxdelta-sparse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: Vec<(u64, Vec<(u64, usize)>)> = vec![
        (0, vec![]),
        (3 << 20, vec![]),
        (3 << 20, vec![(0, 5000)]),
        (5 << 20, vec![(1 << 20, 70_000), (4 << 20, 4096)]),
        (2 << 20, vec![((2 << 20) - 10, 10)]),
        (100_000, vec![(0, 100_000)]),
    ];
    for (k, (len, writes)) in cases.into_iter().enumerate() {
        let p = dir.join(format!("f{k}"));
        let mut f = std::fs::File::create(&p).unwrap();
        f.set_len(len).unwrap();
        for (at, n) in writes {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&vec![(at % 251) as u8 | 1; n]).unwrap();
        }
        drop(f);
        let f = std::fs::File::open(&p).unwrap();
        let data = std::fs::read(&p).unwrap();
        let segs = oxdelta_apply::sparse::data_segments(&f, len);
        for s in &segs {
            assert!(s.start < s.end && s.end <= len, "case {k}: {segs:?}");
        }
        // Everything outside the segments reads as zeros.
        let mut pos = 0u64;
        for s in segs.iter().chain(std::iter::once(&(len..len))) {
            assert!(data[pos as usize..s.start as usize].iter().all(|&b| b == 0));
            pos = s.end;
        }
        assert_eq!(
            oxdelta_apply::sparse::hash_file(&f, &data, FileHash::Plain),
            *blake3::hash(&data).as_bytes(),
            "case {k}"
        );
        // The block-list hash (format version 8) from its definition:
        // every 64 KiB block read and hashed.
        let mut outer = blake3::Hasher::new_derive_key(filehash::BLOCK_LIST_CONTEXT);
        for b in data.chunks(filehash::HASH_BLOCK) {
            outer.update(blake3::hash(b).as_bytes());
        }
        outer.update(&len.to_le_bytes());
        assert_eq!(
            oxdelta_apply::sparse::hash_file(&f, &data, FileHash::BlockList),
            *outer.finalize().as_bytes(),
            "case {k}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
