//! Whole-file hashes: the metadata's `old_hash` and `new_hash`.
//!
//! Two definitions, chosen by the header flag [`FLAG_BLOCK_HASH`]
//! (format version 8; see `docs/FORMAT.md`, "Block-list hash"):
//!
//! * [`FileHash::Plain`]: BLAKE3 of the file, as in versions 1 to 7. It has
//!   no shortcut for zeros (every 1 KiB leaf is compressed with its own
//!   counter), so a 64 GiB disk image that is mostly holes costs 64 GiB of
//!   hashing even when the holes are never read.
//! * [`FileHash::BlockList`]: the file is cut into [`HASH_BLOCK`]-byte
//!   blocks; each block's BLAKE3 is taken, and the result is BLAKE3 in
//!   `derive_key` mode (context [`BLOCK_LIST_CONTEXT`]) of the list of block
//!   hashes followed by the file's length. Every all-zero block has the same
//!   hash ([`zero_block_hash`], computed once), so a hole costs 32 bytes of
//!   hashing per 64 KiB and no read; blocks hash independently, so the
//!   work spreads over threads.
//!
//! The crate does no I/O and starts no threads: [`FileHasher`] takes bytes
//! (and runs of zeros: [`FileHasher::zeros`]) in file order and spreads
//! its work through a [`Parallel`] the caller supplies ([`Serial`] runs it
//! on the calling thread). [`hash_sparse`] is the one place that hashes a
//! mapped file whose holes are known, for the differs and the appliers.
//!
//! Memory: one partial block (64 KiB) and a batch of [`BATCH`] block hashes
//! (8 KiB) per hasher, whatever the file's length.

use std::ops::Range;
use std::sync::OnceLock;

use crate::head::FLAG_BLOCK_HASH;

/// Bytes of a block of the block-list hash (the last block of a file may be
/// shorter).
pub const HASH_BLOCK: usize = 1 << 16;

/// The `derive_key` context of the block-list hash's outer BLAKE3: it keeps
/// the block-list hash of a file apart from the plain BLAKE3 of any file.
pub const BLOCK_LIST_CONTEXT: &str = "oxdelta 2026-12-07 block-list file hash v8";

/// Blocks whose hashes are computed in one go (one [`Parallel::block_hashes`]
/// call: 16 MiB of input at most).
pub const BATCH: usize = 256;

/// Which definition a patch's whole-file hashes follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileHash {
    /// BLAKE3 of the whole file (versions 1 to 7; version 8 without
    /// [`FLAG_BLOCK_HASH`]).
    Plain,
    /// BLAKE3 (`derive_key`) of the BLAKE3s of the file's 64 KiB blocks and
    /// its length (version 8 with [`FLAG_BLOCK_HASH`]).
    BlockList,
}

impl FileHash {
    /// The definition the header flags `flags` name.
    pub fn of_flags(flags: u16) -> FileHash {
        if flags & FLAG_BLOCK_HASH != 0 {
            FileHash::BlockList
        } else {
            FileHash::Plain
        }
    }

    /// The header flag that names this definition (0 for [`FileHash::Plain`]).
    pub fn flag(self) -> u16 {
        match self {
            FileHash::Plain => 0,
            FileHash::BlockList => FLAG_BLOCK_HASH,
        }
    }

    /// A short name: `blake3` or `blake3-blocks`.
    pub fn name(self) -> &'static str {
        match self {
            FileHash::Plain => "blake3",
            FileHash::BlockList => "blake3-blocks",
        }
    }
}

/// How a [`FileHasher`] spreads its work over threads. The format crate
/// has none; the differs and appliers implement this with their pool.
pub trait Parallel: Sync {
    /// Sets `out[i]` to [`block_hash`] of the `i`-th [`HASH_BLOCK`]-byte
    /// block of `data` (`data.len() == out.len() * HASH_BLOCK`).
    fn block_hashes(&self, data: &[u8], out: &mut [[u8; 32]]);
    /// Feeds `data` to the plain hasher `h`.
    fn update(&self, h: &mut blake3::Hasher, data: &[u8]);
}

/// [`Parallel`] on the calling thread.
pub struct Serial;

impl Parallel for Serial {
    fn block_hashes(&self, data: &[u8], out: &mut [[u8; 32]]) {
        for (o, b) in out.iter_mut().zip(data.chunks_exact(HASH_BLOCK)) {
            *o = block_hash(b);
        }
    }

    fn update(&self, h: &mut blake3::Hasher, data: &[u8]) {
        h.update(data);
    }
}

/// BLAKE3 of [`HASH_BLOCK`] zero bytes (computed once).
pub fn zero_block_hash() -> [u8; 32] {
    static H: OnceLock<[u8; 32]> = OnceLock::new();
    *H.get_or_init(|| *blake3::hash(&ZEROS[..HASH_BLOCK]).as_bytes())
}

/// BLAKE3 of one block; an all-zero full block takes [`zero_block_hash`]
/// (a scan that stops at the first non-zero byte, ~20 × faster than the
/// hash it saves).
pub fn block_hash(block: &[u8]) -> [u8; 32] {
    if block.len() == HASH_BLOCK && is_zero(block) {
        zero_block_hash()
    } else {
        *blake3::hash(block).as_bytes()
    }
}

/// True when every byte of `b` is zero (OR-folded 64 bytes at a time,
/// which vectorises, stopping at the first non-zero 64 bytes).
fn is_zero(b: &[u8]) -> bool {
    let mut c = b.chunks_exact(64);
    c.all(|w| w.iter().fold(0u8, |a, &x| a | x) == 0) && c.remainder().iter().all(|&x| x == 0)
}

/// Zeros fed to a plain hasher for runs of zeros (in `.bss`: reading it
/// maps the kernel's zero page, no memory of ours).
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// A whole-file hash computed from the file's bytes in order.
pub struct FileHasher<'p> {
    kind: FileHash,
    par: &'p dyn Parallel,
    /// The plain hash, or the block-list hash's outer hash.
    outer: blake3::Hasher,
    /// Bytes of the current, incomplete block (block-list hash only).
    partial: Vec<u8>,
    /// Bytes taken so far.
    len: u64,
    /// Block hashes of one batch.
    hashes: Vec<[u8; 32]>,
}

impl<'p> FileHasher<'p> {
    /// A hasher of definition `kind`, spreading its work through `par`.
    pub fn new(kind: FileHash, par: &'p dyn Parallel) -> FileHasher<'p> {
        let outer = match kind {
            FileHash::Plain => blake3::Hasher::new(),
            FileHash::BlockList => blake3::Hasher::new_derive_key(BLOCK_LIST_CONTEXT),
        };
        FileHasher {
            kind,
            par,
            outer,
            partial: Vec::new(),
            len: 0,
            hashes: Vec::new(),
        }
    }

    /// Takes the next `data.len()` bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.kind == FileHash::Plain {
            self.par.update(&mut self.outer, data);
            return;
        }
        if !self.partial.is_empty() {
            let n = (HASH_BLOCK - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.flush_partial();
        }
        let whole = data.len() / HASH_BLOCK * HASH_BLOCK;
        for batch in data[..whole].chunks(BATCH * HASH_BLOCK) {
            let n = batch.len() / HASH_BLOCK;
            self.hashes.resize(n, [0; 32]);
            self.par.block_hashes(batch, &mut self.hashes);
            for h in &self.hashes {
                self.outer.update(h);
            }
        }
        self.partial.extend_from_slice(&data[whole..]);
    }

    /// Takes the next `n` bytes of the file, all zero, without reading
    /// them from anywhere: the block-list hash costs 32 bytes of hashing
    /// per whole zero block.
    pub fn zeros(&mut self, mut n: u64) {
        if self.kind == FileHash::Plain {
            self.len += n;
            while n > 0 {
                let k = n.min(ZEROS.len() as u64) as usize;
                self.par.update(&mut self.outer, &ZEROS[..k]);
                n -= k as u64;
            }
            return;
        }
        if !self.partial.is_empty() {
            let k = ((HASH_BLOCK - self.partial.len()) as u64).min(n);
            self.update(&ZEROS[..k as usize]);
            n -= k;
        }
        let whole = n / HASH_BLOCK as u64;
        self.len += whole * HASH_BLOCK as u64;
        // A batch of the zero block's hash, fed in one call.
        let z = [zero_block_hash(); BATCH];
        let mut left = whole;
        while left > 0 {
            let k = left.min(BATCH as u64) as usize;
            self.outer.update(z[..k].as_flattened());
            left -= k as u64;
        }
        self.update(&ZEROS[..(n % HASH_BLOCK as u64) as usize]);
    }

    /// Hashes the partial block once it is whole.
    fn flush_partial(&mut self) {
        if self.partial.len() == HASH_BLOCK {
            self.outer.update(&block_hash(&self.partial));
            self.partial.clear();
        }
    }

    /// The hash of the bytes taken.
    pub fn finalize(mut self) -> [u8; 32] {
        if self.kind == FileHash::BlockList {
            if !self.partial.is_empty() {
                self.outer.update(&block_hash(&self.partial));
            }
            self.outer.update(&self.len.to_le_bytes());
        }
        *self.outer.finalize().as_bytes()
    }
}

/// The hash of definition `kind` of `data`.
pub fn hash(kind: FileHash, data: &[u8], par: &dyn Parallel) -> [u8; 32] {
    let mut h = FileHasher::new(kind, par);
    h.update(data);
    h.finalize()
}

/// The hash of definition `kind` of a file read through `map`, whose data
/// lies in `data` (sorted, disjoint ranges inside the map); everything else
/// is a hole, taken as zeros without being read. The same hash as
/// [`hash`] of the whole map when the holes read as zeros.
pub fn hash_sparse(
    kind: FileHash,
    map: &[u8],
    data: &[Range<u64>],
    par: &dyn Parallel,
) -> [u8; 32] {
    let mut h = FileHasher::new(kind, par);
    let mut pos = 0u64;
    for r in data {
        let (start, end) = (r.start.max(pos), r.end.min(map.len() as u64));
        if start >= end {
            continue;
        }
        h.zeros(start - pos);
        h.update(&map[start as usize..end as usize]);
        pos = end;
    }
    h.zeros(map.len() as u64 - pos);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block-list hash straight from its definition: every block
    /// hashed, zeros included.
    fn naive(data: &[u8]) -> [u8; 32] {
        let mut outer = blake3::Hasher::new_derive_key(BLOCK_LIST_CONTEXT);
        for b in data.chunks(HASH_BLOCK) {
            outer.update(blake3::hash(b).as_bytes());
        }
        outer.update(&(data.len() as u64).to_le_bytes());
        *outer.finalize().as_bytes()
    }

    #[test]
    fn pieces_and_zeros_match_the_definition() {
        for len in [
            0,
            1,
            HASH_BLOCK - 1,
            HASH_BLOCK,
            HASH_BLOCK + 1,
            3 * HASH_BLOCK + 77,
        ] {
            let mut data = vec![0u8; len];
            for (i, b) in data.iter_mut().enumerate().skip(len / 3).take(100) {
                *b = i as u8 | 1;
            }
            let want = naive(&data);
            assert_eq!(hash(FileHash::BlockList, &data, &Serial), want, "{len}");
            // Fed in uneven pieces, the zero runs as zeros.
            let mut h = FileHasher::new(FileHash::BlockList, &Serial);
            let mut i = 0;
            for step in [7usize, HASH_BLOCK + 3, 1, 2 * HASH_BLOCK].iter().cycle() {
                if i >= len {
                    break;
                }
                let e = (i + step).min(len);
                if data[i..e].iter().all(|&b| b == 0) {
                    h.zeros((e - i) as u64);
                } else {
                    h.update(&data[i..e]);
                }
                i = e;
            }
            assert_eq!(h.finalize(), want, "{len} in pieces");
            assert_eq!(
                hash(FileHash::Plain, &data, &Serial),
                *blake3::hash(&data).as_bytes()
            );
        }
    }

    #[test]
    fn random_sparse_layouts_match_the_definition() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        for _ in 0..40 {
            let len = next(6 * HASH_BLOCK as u64) as usize;
            let mut map = vec![0u8; len];
            // Data ranges at any alignment, some of them zero bytes
            // (allocated zeros), some touching.
            let mut ranges = Vec::new();
            let mut at = next(HASH_BLOCK as u64 / 2);
            while at < len as u64 {
                let end = (at + 1 + next(HASH_BLOCK as u64 + 5000)).min(len as u64);
                if next(4) != 0 {
                    for i in at..end {
                        map[i as usize] = (i * 31 + 7) as u8;
                    }
                }
                ranges.push(at..end);
                at = end + next(2 * HASH_BLOCK as u64);
            }
            for kind in [FileHash::BlockList, FileHash::Plain] {
                let want = match kind {
                    FileHash::BlockList => naive(&map),
                    FileHash::Plain => *blake3::hash(&map).as_bytes(),
                };
                assert_eq!(hash_sparse(kind, &map, &ranges, &Serial), want);
            }
        }
    }

    /// The test vectors of docs/FORMAT.md ("Block-list hash").
    #[test]
    fn test_vectors() {
        let hex = |h: [u8; 32]| crate::sign::hex(&h);
        let vector = |data: &[u8], want: &str| {
            assert_eq!(hex(hash(FileHash::BlockList, data, &Serial)), want);
            assert_eq!(hex(naive(data)), want);
        };
        vector(
            &[],
            "c04a4af1163d4a9c75aec31a8a1ab793ea53fc25d6b7b33c1467b1a8835f97d3",
        );
        let ramp: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        vector(
            &ramp,
            "7af85c1f25a04587802e74a1824bdeabac8f3738ce1a921a9d532d7e71370baa",
        );
        let mut z = vec![0u8; 3 * HASH_BLOCK];
        z.push(1);
        vector(
            &z,
            "2eb6e2745a213b1103355c9fb91ca910592a86c7c5563b2ebde40a9e49c33998",
        );
        assert_eq!(
            hex(zero_block_hash()),
            "3bdeaf8f8e98780b318106aafdc3ca257f73df123d97b69112b26044c91a7d56"
        );
    }

    #[test]
    fn the_two_definitions_differ() {
        let data = vec![1u8; 1000];
        assert_ne!(
            hash(FileHash::BlockList, &data, &Serial),
            hash(FileHash::Plain, &data, &Serial)
        );
        assert_eq!(
            zero_block_hash(),
            *blake3::hash(&vec![0u8; HASH_BLOCK]).as_bytes()
        );
    }
}
