//! Hashing sparse files without reading their holes.
//!
//! Disk images are mostly holes. Reading a hole through a map makes the
//! kernel allocate and zero a page-cache page for every 4 KiB of it.
//! [`hash_file`] asks the file system where the data is
//! (`SEEK_DATA`/`SEEK_HOLE`) and hands holes to the hasher as runs of
//! zeros ([`filehash::FileHasher::zeros`]): the hash is the same as
//! hashing every byte, and with the block-list hash (format version 8) a
//! hole costs 32 bytes of hashing per 64 KiB. Where the file system cannot
//! tell, the whole file counts as data.

use std::fs::File;
use std::ops::Range;

use oxdelta_format::filehash::{self, FileHash};

/// The data segments of `file`'s first `len` bytes, in order; everything
/// else reads as zeros. Falls back to one segment covering everything.
pub fn data_segments(file: &File, len: u64) -> Vec<Range<u64>> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        use rustix::fs::{SeekFrom, seek};
        let mut out = Vec::new();
        let mut pos = 0u64;
        while pos < len {
            let start = match seek(file, SeekFrom::Data(pos)) {
                Ok(s) => s,
                // ENXIO: no data at or after `pos`.
                Err(rustix::io::Errno::NXIO) => break,
                Err(_) => return whole(len),
            };
            if start >= len {
                break;
            }
            let end = match seek(file, SeekFrom::Hole(start)) {
                Ok(e) => e.min(len),
                Err(_) => return whole(len),
            };
            if end <= start {
                return whole(len);
            }
            out.push(start..end);
            pos = end;
        }
        out
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        let _ = file;
        whole(len)
    }
}

/// One segment covering the whole file.
fn whole(len: u64) -> Vec<Range<u64>> {
    std::iter::once(0..len).collect()
}

/// The whole-file hash of definition `kind` of `map` (the contents of
/// `file`), reading only its data segments ([`filehash::hash_sparse`]).
pub fn hash_file(file: &File, map: &[u8], kind: FileHash) -> [u8; 32] {
    filehash::hash_sparse(kind, map, &data_segments(file, map.len() as u64), &Rayon)
}

/// [`filehash::Parallel`] on the rayon pool: block hashes side by side,
/// plain BLAKE3 split by `update_rayon` from 1 MiB.
pub struct Rayon;

impl filehash::Parallel for Rayon {
    fn block_hashes(&self, data: &[u8], out: &mut [[u8; 32]]) {
        use rayon::prelude::*;
        out.par_iter_mut()
            .zip(data.par_chunks_exact(filehash::HASH_BLOCK))
            .for_each(|(o, b)| *o = filehash::block_hash(b));
    }

    fn update(&self, h: &mut blake3::Hasher, data: &[u8]) {
        if data.len() >= 1 << 20 {
            h.update_rayon(data);
        } else {
            h.update(data);
        }
    }
}
