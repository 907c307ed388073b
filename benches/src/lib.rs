//! Benchmark inputs shared by the criterion benches: real binary data.
#![deny(missing_docs)]

use std::path::Path;

/// Up to `len` bytes of real binary data: the file named by
/// `OXDELTA_BENCH_FILE` if set, else the system's shared libraries
/// concatenated in name order (repeated if there are too few).
pub fn binary_data(len: usize) -> Vec<u8> {
    if let Ok(p) = std::env::var("OXDELTA_BENCH_FILE") {
        let mut v = std::fs::read(p).expect("read OXDELTA_BENCH_FILE");
        v.truncate(len);
        return v;
    }
    let mut files: Vec<_> = ["/usr/lib/x86_64-linux-gnu", "/usr/lib", "/usr/bin"]
        .iter()
        .filter_map(|d| std::fs::read_dir(Path::new(d)).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut out = Vec::with_capacity(len);
    for f in files.iter().cycle().take(files.len() * 4) {
        if out.len() >= len {
            break;
        }
        if let Ok(b) = std::fs::read(f) {
            let take = b.len().min(len - out.len());
            out.extend_from_slice(&b[..take]);
        }
    }
    out
}
