//! Hashing sparse files without reading their holes.
//!
//! Disk images are mostly holes. Reading a hole through a map makes the
//! kernel allocate and zero a page-cache page for every 4 KiB of it.
//! [`hash_file`] asks the file system where the data is
//! (`SEEK_DATA`/`SEEK_HOLE`) and feeds holes to BLAKE3 from a static zero
//! buffer instead; the hash is the same as hashing every byte. Where the
//! file system cannot tell, the whole file counts as data.

use std::fs::File;
use std::ops::Range;

/// Zeros fed to the hasher for holes (in `.bss`: reading it costs no
/// allocation).
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

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

/// BLAKE3 of `map` (the contents of `file`), reading only its data
/// segments.
pub fn hash_file(file: &File, map: &[u8]) -> [u8; 32] {
    let len = map.len() as u64;
    let mut h = blake3::Hasher::new();
    let zeros = |h: &mut blake3::Hasher, mut n: u64| {
        while n > 0 {
            let k = n.min(ZEROS.len() as u64) as usize;
            update(h, &ZEROS[..k]);
            n -= k as u64;
        }
    };
    let mut pos = 0u64;
    for seg in data_segments(file, len) {
        zeros(&mut h, seg.start - pos);
        update(&mut h, &map[seg.start as usize..seg.end as usize]);
        pos = seg.end;
    }
    zeros(&mut h, len - pos);
    *h.finalize().as_bytes()
}

fn update(h: &mut blake3::Hasher, data: &[u8]) {
    if data.len() >= 1 << 20 {
        h.update_rayon(data);
    } else {
        h.update(data);
    }
}
