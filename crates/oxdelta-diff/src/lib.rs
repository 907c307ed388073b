//! oxdelta's differs: they turn OLD and NEW into patch chunks.
//!
//! A differ only produces operations ([`oxdelta_format::Op`]) per chunk of
//! NEW; the format crate turns them into streams, compresses and hashes
//! them. Two engines share that seam:
//!
//! * [`sa`]: the in-memory, bsdiff-style matcher over a suffix array of OLD.
//!   Best patches; memory at most about 5 bytes per byte of OLD (the text
//!   plus 32-bit suffix indices) plus NEW and the patch. [`anchor`] first
//!   finds long exact matches by sampled hashing, so the suffix array only
//!   indexes what they leave of OLD.
//! * [`stream`]: the bounded-memory engine for inputs larger than RAM (disk
//!   images). Its own allocations stay within a budget the caller sets
//!   (see [`stream::Plan`]); it indexes OLD by a rolling hash over blocks,
//!   and refines what lies between long matches with the suffix-array
//!   matcher over small windows of OLD. Encoded chunks go to a sink in
//!   order instead of being collected.
//!
//! NEW is cut into chunks whose size depends only on NEW's length, and the
//! chunks are matched and compressed in parallel with rayon. The patch
//! bytes never depend on the number of threads.
#![deny(missing_docs)]

pub mod anchor;
pub mod encode;
pub mod inplace;
pub mod sa;
pub mod stream;

use oxdelta_format::filehash::{self, FileHash};
use oxdelta_format::{Codec, EncodedChunk, Metadata};

/// Options common to the engines.
#[derive(Clone, Debug)]
pub struct DiffOptions {
    /// Codec for every chunk's streams; [`Codec::Lzma2`] (the default)
    /// means zstd at its default level, and LZMA2 for the chunks (and the
    /// shared section) where it is [`encode::LZMA2_MARGIN_PERMILLE`]
    /// smaller.
    pub codec: Codec,
    /// NEW bytes per chunk; `None` picks from NEW's length
    /// (see [`default_chunk_len`]).
    pub chunk_len: Option<u32>,
    /// Where to report progress (`Hashing`/`Indexing`, then `Matching` in
    /// bytes of NEW). Reports nothing by default.
    pub progress: oxdelta_format::progress::Progress,
}

impl Default for DiffOptions {
    fn default() -> DiffOptions {
        DiffOptions {
            codec: Codec::Lzma2,
            chunk_len: None,
            progress: Default::default(),
        }
    }
}

/// What a differ returns: the metadata, the encoded chunks in apply order
/// and the shared section they use, if any. [`DiffOutput::assemble`] makes
/// a patch of them.
#[derive(Debug)]
pub struct DiffOutput {
    /// Metadata for the head.
    pub meta: Metadata,
    /// Encoded chunks.
    pub chunks: Vec<EncodedChunk>,
    /// The shared section (format version 5) holding some chunks' control
    /// and literal streams: a patch made of `chunks` needs it.
    pub shared: Option<oxdelta_format::SharedSection>,
}

impl DiffOutput {
    /// The whole patch in memory, signed with `key` when given.
    pub fn assemble(self, key: Option<&oxdelta_format::SecretKey>) -> Vec<u8> {
        oxdelta_format::assemble_with(&self.meta, self.chunks, self.shared.as_ref(), key)
    }
}

/// The chunk length used for a NEW of `new_len` bytes: NEW split into equal
/// chunks as large as the format allows (8 MiB), since a codec compresses a
/// big stream better than several small ones, but at least two chunks above
/// 1 MiB so both cores get work; rounded up to 64 KiB.
pub fn default_chunk_len(new_len: u64) -> u32 {
    let max = u64::from(oxdelta_format::limits::MAX_CHUNK_NEW_LEN);
    let mut n = new_len.div_ceil(max).max(1);
    if new_len > 1 << 20 {
        n = n.max(2);
    }
    let want = new_len.div_ceil(n).div_ceil(1 << 16) << 16;
    want.clamp(1 << 16, max) as u32
}

/// Splits `0..new_len` into chunk ranges of `chunk_len`.
pub fn chunk_ranges(new_len: u64, chunk_len: u32) -> Vec<std::ops::Range<u64>> {
    let c = u64::from(chunk_len.max(1));
    (0..new_len.div_ceil(c))
        .map(|i| i * c..((i + 1) * c).min(new_len))
        .collect()
}

/// BLAKE3 of `data`, multi-threaded for large inputs.
pub fn hash(data: &[u8]) -> [u8; 32] {
    filehash::hash(FileHash::Plain, data, &Rayon)
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
