//! The oxdelta patch format.
//!
//! This crate is the contract between whoever builds patches and the
//! devices that apply them. It owns the operation vocabulary ([`Op`]), the
//! chunk table ([`Head`]), the stream codecs ([`Codec`]), the reversible
//! stream transforms and their decoders, the hashes and the signature
//! block ([`SignatureBlock`]). It does no file I/O: it reads and writes
//! byte slices, so it can be fuzzed, embedded and reasoned about on its
//! own.
//!
//! It encodes each transform for a named choice ([`ChunkCoding`],
//! [`encode_chunk_as`]) but never chooses: trying codings and keeping the
//! smallest is the differ's search (`oxdelta-diff`'s `encode` module).
//!
//! # Design
//!
//! A patch is `head ‖ signature block ‖ payloads`. The head (fixed header,
//! metadata, chunk table) says everything an applier needs to size and plan
//! its work — OLD and NEW lengths and BLAKE3 hashes, and for every chunk the
//! NEW range it produces, the OLD ranges it reads, its stream sizes and the
//! BLAKE3 of its payload and of its output. The signature signs the head,
//! and the head holds the payload hashes, so one signature covers the whole
//! patch and is checked before any payload is decoded. Chunks decode on
//! their own, so they can be applied in parallel, from a pipe, or resumed.
//!
//! # Hostile input
//!
//! Parsing goes through a bounds-checked [`cursor::Cursor`]; every count and
//! length is checked against [`limits`] and against the bytes present before
//! it is used. Errors say what was expected, what was found and at which
//! byte. No input makes the parser panic, loop or allocate more than the
//! limits allow.
//!
//! # Example
//!
//! ```
//! use oxdelta_format::{encode_chunk_as, ChunkCoding, Codec, Engine, Metadata, Op, ChunkEncoder, Patch, assemble};
//!
//! let old = b"hello, old world".to_vec();
//! let new = b"hello, new world".to_vec();
//! let mut enc = ChunkEncoder::new(&old, &new, 0);
//! enc.push(Op::Add { old: 0, len: new.len() as u64 });
//! let (streams, ranges) = enc.finish();
//! let coding = ChunkCoding::plain(Codec::Zstd(3));
//! let chunk = encode_chunk_as(&old, &streams, &coding, ranges, 0, &new);
//! let meta = Metadata {
//!     old_len: old.len() as u64,
//!     old_hash: *blake3::hash(&old).as_bytes(),
//!     new_len: new.len() as u64,
//!     new_hash: *blake3::hash(&new).as_bytes(),
//!     engine: Engine::SuffixArray,
//!     flags: 0,
//! };
//! let bytes = assemble(&meta, vec![chunk], None);
//! let patch = Patch::parse(&bytes).unwrap();
//! let mut out = vec![0u8; new.len()];
//! patch.apply_chunk(0, &old, &mut out, false).unwrap();
//! assert_eq!(out, new);
//! ```
#![deny(missing_docs)]

pub mod arm64;
pub mod armv7;
mod chunk;
pub mod codec;
pub mod coding;
pub mod compact;
pub mod cursor;
pub mod error;
pub mod filehash;
pub mod filter;
pub mod head;
pub mod inplace;
pub mod interp;
pub mod limits;
pub mod operand;
pub mod ops;
pub mod predicted;
pub mod progress;
mod rebuild;
pub mod riscv;
pub mod shared;
pub mod sign;
pub mod thumb2;
pub mod wasm;

pub use chunk::{ChunkCoding, EncodedChunk, StoredStream, encode_chunk_as};
pub use codec::Codec;
pub use error::{Error, ErrorKind, Result};
pub use filter::{AddMode, DiffFilter};
pub use head::{ChunkEntry, Engine, Head, Metadata, SharedDesc, StreamLen};
pub use interp::OldBytes;
pub use ops::{AddSources, ChunkEncoder, Op, OpDecoder, Streams};
pub use shared::{NO_SHARED, Shared, SharedControl, SharedSection};
pub use sign::{PublicKey, SecretKey, SignatureBlock};

/// The newest format version this crate writes and reads. It reads every
/// version from 1 up. It writes version 11, whose compact head
/// ([`compact`]) every patch gains from; a feature of a later version
/// raises it. ([`Head::encode_fixed_with`] writes the fixed layout of
/// versions 1 to 10 at the lowest version that expresses a patch, for
/// tests and tools.)
pub const FORMAT_VERSION: u16 = 11;

/// Builds the head and signature block for `chunks` (in apply order), signed
/// with `key` when given. The patch is the returned bytes followed by each
/// chunk's payload in the same order.
pub fn encode_head(meta: &Metadata, entries: &[ChunkEntry], key: Option<&SecretKey>) -> Vec<u8> {
    encode_head_with(meta, entries, &SharedDesc::default(), key)
}

/// [`encode_head`] for a patch with the shared section `shared` describes
/// (its bytes follow the returned ones, before the chunks' payloads).
pub fn encode_head_with(
    meta: &Metadata,
    entries: &[ChunkEntry],
    shared: &SharedDesc,
    key: Option<&SecretKey>,
) -> Vec<u8> {
    // The signed flag says whether a block follows; the signature covers
    // the head with it set.
    let mut meta = meta.clone();
    meta.flags &= !head::FLAG_SIGNED;
    if key.is_some() {
        meta.flags |= head::FLAG_SIGNED;
    }
    let mut out = Head::encode_with(&meta, entries, shared);
    if let Some(k) = key {
        let block = SignatureBlock::sign(&out, k);
        out.extend_from_slice(&block.to_bytes());
    }
    out
}

/// The signature block of a patch whose head is `head`, from `after` (the
/// patch's bytes from the end of the head on; `base`: their offset): the
/// block's [`Head::signature_len`] bytes, or [`SignatureBlock::Unsigned`]
/// when the head says there is none (an unsigned version-11 patch). A
/// version-11 head with the signed flag needs an Ed25519 block.
pub fn parse_signature(head: &Head, after: &[u8], base: u64) -> Result<SignatureBlock> {
    let len = head.signature_len() as usize;
    if len == 0 {
        return Ok(SignatureBlock::Unsigned);
    }
    let bytes = after.get(..len).ok_or_else(|| {
        Error::at(
            ErrorKind::Truncated {
                what: "signature block",
                needed: len as u64,
                available: after.len() as u64,
            },
            base,
        )
    })?;
    let block = SignatureBlock::parse(bytes, base)?;
    if head.version >= head::COMPACT_VERSION && block == SignatureBlock::Unsigned {
        return Err(Error::invalid(
            "signature kind",
            "1 (Ed25519): the head's signed flag is set",
            0,
            base,
        ));
    }
    Ok(block)
}

/// A whole patch in memory: head, signature block and payloads.
pub fn assemble(meta: &Metadata, chunks: Vec<EncodedChunk>, key: Option<&SecretKey>) -> Vec<u8> {
    assemble_with(meta, chunks, None, key)
}

/// [`assemble`] with a shared section (see [`shared::SharedBlocks`]).
pub fn assemble_with(
    meta: &Metadata,
    chunks: Vec<EncodedChunk>,
    shared: Option<&SharedSection>,
    key: Option<&SecretKey>,
) -> Vec<u8> {
    let entries: Vec<ChunkEntry> = chunks.iter().map(|c| c.entry.clone()).collect();
    let desc = shared.map(|s| s.desc).unwrap_or_default();
    let mut out = encode_head_with(meta, &entries, &desc, key);
    if let Some(s) = shared {
        out.extend_from_slice(&s.bytes);
    }
    for c in chunks {
        out.extend_from_slice(&c.payload);
    }
    out
}

/// Decompresses one chunk's payload into its raw streams, after checking
/// the payload's hash. A chunk of a version-5 patch whose streams are in
/// the shared section needs [`decode_chunk_in`].
pub fn decode_chunk(entry: &ChunkEntry, payload: &[u8]) -> Result<Streams> {
    decode_chunk_in(entry, payload, &NO_SHARED)
}

/// [`decode_chunk`] for a patch whose decoded shared section is `shared`.
///
/// A zero chunk (format version 9, [`ChunkEntry::zero`]) has no streams:
/// it decodes to three empty ones, and no ops. Its bytes are zeros,
/// which [`apply_chunk`] writes; appliers leave its range as it is when
/// the output already reads as zeros ([`is_zero_chunk`]).
pub fn decode_chunk_in(entry: &ChunkEntry, payload: &[u8], shared: &Shared) -> Result<Streams> {
    if payload.len() as u64 != entry.payload_len() {
        return Err(Error::invalid(
            "chunk payload",
            format!("{} bytes", entry.payload_len()),
            payload.len(),
            entry.payload_offset,
        ));
    }
    if entry.zero {
        return Ok(Streams::default());
    }
    if blake3::hash(payload).as_bytes() != &entry.payload_hash {
        return Err(Error::new(ErrorKind::HashMismatch {
            what: format!(
                "payload of the chunk at NEW offset {} (damaged or tampered patch)",
                entry.new_offset
            ),
        }));
    }
    let (c, rest) = payload.split_at(entry.ctrl.stored as usize);
    let (d, l) = rest.split_at(entry.diff.stored as usize);
    let (ctrl, lit) = shared.streams(entry, c, l)?;
    let ctrl = if entry.ctrl_split {
        coding::join(&ctrl)?
    } else {
        ctrl.into_owned()
    };
    let mut lit = lit.into_owned();
    if entry.lit_x86 {
        coding::unfilter_literals(&ctrl, entry.new_offset, &mut lit);
    }
    Ok(Streams {
        ctrl,
        diff: {
            let filtered = entry
                .codec
                .decompress(d, entry.diff.raw as usize, "diff stream")?;
            match entry.diff_filter {
                DiffFilter::None => filtered,
                f => f.decode(&filtered, entry.new_len as usize - entry.lit.raw as usize)?,
            }
        },
        lit,
        add: entry.add_mode,
        split: entry.operand_split,
    })
}

/// A parsed patch over a byte slice holding all of it (a buffer or a map).
#[derive(Debug)]
pub struct Patch<'a> {
    /// The checked head.
    pub head: Head,
    /// The signature block.
    pub signature: SignatureBlock,
    bytes: &'a [u8],
}

impl<'a> Patch<'a> {
    /// Parses and checks the head and signature block, and that the
    /// payloads fill the rest of `bytes` exactly. Does not check
    /// signatures or payload hashes: see [`Patch::verify_signature`] and
    /// [`decode_chunk`].
    pub fn parse(bytes: &'a [u8]) -> Result<Patch<'a>> {
        let head = Head::parse(bytes)?;
        let sig_start = head.head_len as usize;
        let signature = parse_signature(&head, &bytes[sig_start..], sig_start as u64)?;
        let expected = head.patch_len();
        if bytes.len() as u64 != expected {
            let kind = if (bytes.len() as u64) < expected {
                ErrorKind::Truncated {
                    what: "payloads",
                    needed: head.payload_len,
                    available: bytes.len() as u64 - head.payload_start(),
                }
            } else {
                ErrorKind::Invalid {
                    what: "patch length",
                    expected: format!("{expected} bytes"),
                    found: format!("{} bytes (trailing data)", bytes.len()),
                }
            };
            return Err(Error::at(kind, head.payload_start()));
        }
        Ok(Patch {
            head,
            signature,
            bytes,
        })
    }

    /// The head's bytes (what the signature signs).
    pub fn head_bytes(&self) -> &'a [u8] {
        &self.bytes[..self.head.head_len as usize]
    }

    /// Checks the signature; see [`SignatureBlock::verify`].
    pub fn verify_signature(&self, trusted: Option<&PublicKey>) -> Result<()> {
        self.signature.verify(self.head_bytes(), trusted)
    }

    /// The payload of chunk `i`.
    pub fn payload(&self, i: usize) -> &'a [u8] {
        let e = &self.head.chunks[i];
        let s = (self.head.payload_start() + e.payload_offset) as usize;
        &self.bytes[s..s + e.payload_len() as usize]
    }

    /// Decodes chunk `i` and writes its NEW bytes into `out` (exactly the
    /// chunk's length), checking its payload and output hashes. See
    /// [`ops::apply_ops`] for `zeroed`. A patch with a shared section needs
    /// [`Patch::apply_chunk_in`].
    pub fn apply_chunk(&self, i: usize, old: &[u8], out: &mut [u8], zeroed: bool) -> Result<()> {
        self.apply_chunk_in(i, &NO_SHARED, old, out, zeroed)
    }

    /// [`Patch::apply_chunk`] with the decoded shared section (see
    /// [`Patch::decode_shared`]).
    pub fn apply_chunk_in(
        &self,
        i: usize,
        shared: &Shared,
        old: &[u8],
        out: &mut [u8],
        zeroed: bool,
    ) -> Result<()> {
        apply_chunk_in(
            &self.head.chunks[i],
            self.payload(i),
            shared,
            old,
            out,
            zeroed,
        )
    }

    /// The shared section's stored bytes (empty when there is none).
    pub fn shared_bytes(&self) -> &'a [u8] {
        let s = self.head.payload_start() as usize;
        &self.bytes[s..s + self.head.shared.stored_len() as usize]
    }

    /// Decodes the shared section, reading its OLD context from `old`
    /// (see [`Shared::decode`]).
    pub fn decode_shared(&self, old: &[u8]) -> Result<Shared> {
        Shared::decode(&self.head, self.shared_bytes(), old)
    }
}

/// BLAKE3 of a chunk's NEW bytes. Disk images are mostly zeros (three
/// quarters of the 8 MiB chunks of the corpus images), so an all-zero chunk
/// — found by a scan that stops at the first non-zero byte — takes its hash
/// from a small cache keyed by length instead of hashing again.
fn chunk_hash(out: &[u8]) -> [u8; 32] {
    let all_zero = {
        let mut blocks = out.chunks_exact(64);
        blocks.all(|b| b.iter().fold(0u8, |a, &x| a | x) == 0)
            && blocks.remainder().iter().all(|&x| x == 0)
    };
    if !all_zero || out.len() < 1 << 16 {
        return *blake3::hash(out).as_bytes();
    }
    zeros_hash(out.len())
}

/// BLAKE3 of `len` zero bytes, from a small cache keyed by length.
fn zeros_hash(len: usize) -> [u8; 32] {
    use std::sync::Mutex;
    /// (length, hash of that many zeros); a few lengths at most, since
    /// every chunk but the last of a patch usually has the same length.
    static ZERO_HASHES: Mutex<Vec<(usize, [u8; 32])>> = Mutex::new(Vec::new());
    const CACHED_LENGTHS: usize = 8;
    // (No let-chains: the crate builds on Rust 1.85.)
    let cached = ZERO_HASHES
        .lock()
        .ok()
        .and_then(|cache| cache.iter().find(|(n, _)| *n == len).map(|&(_, h)| h));
    if let Some(h) = cached {
        return h;
    }
    static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
    let mut hasher = blake3::Hasher::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(ZEROS.len());
        hasher.update(&ZEROS[..n]);
        left -= n;
    }
    let h = *hasher.finalize().as_bytes();
    if let Ok(mut cache) = ZERO_HASHES.lock() {
        if cache.len() < CACHED_LENGTHS {
            cache.push((len, h));
        }
    }
    h
}

/// Whether chunk `entry` rebuilds to all zeros, known without rebuilding
/// it: a zero chunk (format version 9) does, with its empty payload; an
/// ordinary chunk does when it has no diff or literal bytes and a short control stream, its
/// payload hash verifies, its ops are all ZERO (checked by [`OpDecoder`] as
/// [`apply_chunk`] checks them), and its NEW hash is that of zeros. Then
/// [`apply_chunk`] would succeed with zeros, so an applier whose output
/// already reads as zeros (a fresh sparse file) has nothing to do. Any
/// other chunk, or any error, gives `false`: the chunk then goes through
/// [`apply_chunk`], which reports the error. Costs at most one small
/// decode and a hash of the chunk's length in zeros, once per length.
pub fn is_zero_chunk(entry: &ChunkEntry, payload: &[u8], old_len: u64) -> bool {
    /// Longest control stream considered: a few ZERO ops.
    const MAX_CTRL: u32 = 64;
    if entry.zero {
        return payload.is_empty();
    }
    if entry.diff.raw != 0
        || entry.shared
        || entry.lit.raw != 0
        || entry.ctrl.raw > MAX_CTRL
        || old_len > limits::MAX_FILE_LEN
    {
        return false;
    }
    let Ok(streams) = decode_chunk(entry, payload) else {
        return false;
    };
    let mut ops = OpDecoder::for_streams(
        &streams,
        entry.new_offset,
        entry.new_len.into(),
        old_len,
        &entry.old_ranges,
    );
    ops.all(|op| matches!(op, Ok(Op::Zero { .. })))
        && zeros_hash(entry.new_len as usize) == entry.new_hash
}

/// Decodes one chunk from its payload and writes its NEW bytes into `out`,
/// checking the payload hash before decoding and the output hash after.
pub fn apply_chunk(
    entry: &ChunkEntry,
    payload: &[u8],
    old: &[u8],
    out: &mut [u8],
    zeroed: bool,
) -> Result<()> {
    apply_chunk_in(entry, payload, &NO_SHARED, old, out, zeroed)
}

/// [`apply_chunk`] for a patch whose decoded shared section is `shared`.
pub fn apply_chunk_in(
    entry: &ChunkEntry,
    payload: &[u8],
    shared: &Shared,
    old: &[u8],
    out: &mut [u8],
    zeroed: bool,
) -> Result<()> {
    if out.len() != entry.new_len as usize || old.len() as u64 > limits::MAX_FILE_LEN {
        return Err(Error::invalid(
            "output buffer",
            format!("{} bytes", entry.new_len),
            out.len(),
            entry.new_offset,
        ));
    }
    if entry.zero {
        // Its bytes are fixed by the entry, which the head hash covers.
        if !payload.is_empty() {
            return Err(Error::invalid(
                "chunk payload",
                "0 bytes (a zero chunk)",
                payload.len(),
                entry.payload_offset,
            ));
        }
        if !zeroed {
            out.fill(0);
        }
        return Ok(());
    }
    // The one-pass rebuild does not know the wasm mode (format version 8):
    // the reference decodes it.
    if entry.add_mode == AddMode::Wasm
        || rebuild::rebuild(entry, payload, shared, old, out, zeroed).is_err()
    {
        // The one-pass rebuild refuses whatever the reference refuses (and
        // nothing else, tested): the reference reports the error.
        if zeroed {
            out.fill(0);
        }
        let streams = decode_chunk_in(entry, payload, shared)?;
        ops::apply_ops(
            old,
            &streams,
            &entry.old_ranges,
            entry.new_offset,
            out,
            zeroed,
        )?;
    }
    if chunk_hash(out) != entry.new_hash {
        return Err(Error::new(ErrorKind::HashMismatch {
            what: format!(
                "NEW bytes {}..{} (the OLD file is not the one the patch was made for, or the patch is damaged)",
                entry.new_offset,
                entry.new_offset + u64::from(entry.new_len)
            ),
        }));
    }
    Ok(())
}

#[cfg(test)]
mod chunk_hash_tests {
    use super::chunk_hash;

    #[test]
    fn cached_zero_hashes_equal_real_ones() {
        for _ in 0..2 {
            for n in [0usize, 1, 64, 65_535, 65_536, 100_000, 1 << 20] {
                let mut v = vec![0u8; n];
                assert_eq!(chunk_hash(&v), *blake3::hash(&v).as_bytes(), "{n} zeros");
                if n > 0 {
                    // A single non-zero byte anywhere, including the tail
                    // past the last 64-byte block, is not a zero chunk.
                    for at in [0, n / 2, n - 1] {
                        v[at] = 1;
                        assert_eq!(chunk_hash(&v), *blake3::hash(&v).as_bytes());
                        v[at] = 0;
                    }
                }
            }
        }
    }
}
