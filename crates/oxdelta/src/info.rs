//! What a patch holds, read from its head alone: [`PatchInfo`].

use std::fs::File;
use std::io::Read;
use std::path::Path;

use oxdelta_format::{Engine, Patch, PublicKey};

use crate::io;

/// The summary of a patch that `oxdelta info` prints; its fields and their
/// names are those of `oxdelta info --json`, so the bindings (which build
/// their `info` from this struct) and the command line agree.
///
/// Made from the head only (no payload is read): cost linear in the chunk
/// count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchInfo {
    /// Format version of the patch.
    pub format_version: u16,
    /// The lowest format version whose features the patch uses
    /// ([`oxdelta_format::Head::features_version`]): from version 11 on
    /// every patch has the compact head, so this says what else it needs.
    pub features_version: u16,
    /// Bytes of the head (fixed header, metadata, chunk table, shared
    /// descriptor).
    pub head_bytes: u64,
    /// Bytes of the signature block after the head: 128, or 0 in an
    /// unsigned patch of version 11 on.
    pub signature_bytes: u64,
    /// Length of the whole patch.
    pub patch_bytes: u64,
    /// Length of OLD.
    pub old_bytes: u64,
    /// Hash of OLD, as [`PatchInfo::file_hash`] defines it.
    pub old_blake3: [u8; 32],
    /// Length of NEW.
    pub new_bytes: u64,
    /// Hash of NEW, as [`PatchInfo::file_hash`] defines it.
    pub new_blake3: [u8; 32],
    /// How the whole-file hashes are defined: `blake3` (plain) or
    /// `blake3-blocks` (format version 8's block-list hash, see
    /// [`oxdelta_format::filehash`]).
    pub file_hash: &'static str,
    /// The engine that made the patch.
    pub engine: Engine,
    /// Names of the codecs the chunks use, sorted, without repeats.
    pub codecs: Vec<&'static str>,
    /// Names of the diff filters the chunks use, sorted, without repeats.
    pub diff_filters: Vec<&'static str>,
    /// Names of the ADD modes the chunks use, sorted, without repeats.
    pub add_modes: Vec<&'static str>,
    /// Chunks whose diff operands are split by class.
    pub operand_split_chunks: usize,
    /// Chunks whose control stream is split by field.
    pub ctrl_split_chunks: usize,
    /// Chunks whose literals go through the x86 filter.
    pub x86_literal_chunks: usize,
    /// Chunks that take their streams from the shared section.
    pub shared_chunks: usize,
    /// The shared section (format v5), when the patch has one.
    pub shared_section: Option<SharedSectionInfo>,
    /// Chunks in the patch.
    pub chunks: usize,
    /// Zero chunks among them (format version 9): runs of zeros of NEW
    /// with no payload, never rebuilt. The codec, filter and mode names
    /// above are those of the other chunks.
    pub zero_chunks: usize,
    /// NEW bytes of the largest chunk that is rebuilt (not a zero chunk).
    pub largest_chunk_bytes: u32,
    /// Whether the patch was made for in-place apply.
    pub in_place: bool,
    /// The key of the signature, when the patch is signed (not verified
    /// here: see [`crate::verify_bytes`]).
    pub key: Option<PublicKey>,
}

/// Sizes of a patch's shared section (see [`oxdelta_format::shared`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedSectionInfo {
    /// Decoded bytes of the control block.
    pub ctrl_raw: u32,
    /// Stored bytes of the control block.
    pub ctrl_stored: u32,
    /// Decoded bytes of the literal block.
    pub lit_raw: u32,
    /// Stored bytes of the literal block.
    pub lit_stored: u32,
    /// Longest OLD gap taken into the literal block's context.
    pub gap_max: u32,
    /// OLD bytes taken on each side of a gap (format version 7).
    pub margin: u32,
}

impl PatchInfo {
    /// The summary of the parsed patch `p`, whose full length is
    /// `patch_bytes`.
    pub fn of(p: &Patch<'_>, patch_bytes: u64) -> PatchInfo {
        PatchInfo::from_head(&p.head, &p.signature, patch_bytes)
    }

    /// The summary of a patch from its parsed head and signature block
    /// (see [`read_head`]).
    pub fn from_head(
        h: &oxdelta_format::Head,
        signature: &oxdelta_format::SignatureBlock,
        patch_bytes: u64,
    ) -> PatchInfo {
        let names = |f: &dyn Fn(&oxdelta_format::ChunkEntry) -> &'static str| {
            let mut v: Vec<&'static str> = h.chunks.iter().filter(|c| !c.zero).map(f).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let count = |f: &dyn Fn(&oxdelta_format::ChunkEntry) -> bool| {
            h.chunks.iter().filter(|c| f(c)).count()
        };
        let sd = &h.shared;
        PatchInfo {
            format_version: h.version,
            features_version: h.features_version(),
            head_bytes: h.head_len,
            signature_bytes: h.signature_len(),
            patch_bytes,
            old_bytes: h.meta.old_len,
            old_blake3: h.meta.old_hash,
            new_bytes: h.meta.new_len,
            new_blake3: h.meta.new_hash,
            file_hash: h.file_hash().name(),
            engine: h.meta.engine,
            codecs: names(&|c| c.codec.name()),
            diff_filters: names(&|c| c.diff_filter.name()),
            add_modes: names(&|c| c.add_mode.name()),
            operand_split_chunks: count(&|c| c.operand_split),
            ctrl_split_chunks: count(&|c| c.ctrl_split),
            x86_literal_chunks: count(&|c| c.lit_x86),
            shared_chunks: count(&|c| c.shared),
            shared_section: sd.is_present().then_some(SharedSectionInfo {
                ctrl_raw: sd.ctrl.raw,
                ctrl_stored: sd.ctrl.stored,
                lit_raw: sd.lit.raw,
                lit_stored: sd.lit.stored,
                gap_max: sd.gap_max,
                margin: sd.margin,
            }),
            chunks: h.chunks.len(),
            zero_chunks: count(&|c| c.zero),
            largest_chunk_bytes: h.max_chunk_new_len,
            in_place: h.is_in_place(),
            key: signature.public_key(),
        }
    }
}

/// Parses the patch held in `patch` (head, signature block and length; no
/// payload hash is checked) and summarises it.
pub fn info_bytes(patch: &[u8]) -> crate::Result<PatchInfo> {
    let p = Patch::parse(patch)?;
    Ok(PatchInfo::of(&p, patch.len() as u64))
}

/// The head of a patch file and its signature block, read without the
/// payloads: see [`read_head`].
#[derive(Debug)]
pub struct PatchHead {
    /// The checked head.
    pub head: oxdelta_format::Head,
    /// The head's bytes (what a signature signs).
    pub head_bytes: Vec<u8>,
    /// The signature block (not verified).
    pub signature: oxdelta_format::SignatureBlock,
    /// The patch file's length, checked against the head's.
    pub patch_bytes: u64,
}

/// Reads the head and signature block of the patch file at `path`: the
/// fixed header first (16 bytes: a file that is not a patch is refused
/// there), then at most the head length it names (bounded by
/// [`oxdelta_format::limits::MAX_HEAD_LEN`]) and the signature block.
/// Checks the file's length against the head, as [`Patch::parse`] does;
/// reads no payload.
pub fn read_head(path: &Path) -> crate::Result<PatchHead> {
    let mut f = File::open(path).map_err(io("opening patch", path))?;
    let patch_bytes = f.metadata().map_err(io("reading patch", path))?.len();
    let (head_bytes, sig_bytes, head) = read_head_from(&mut f, path)?;
    let signature = oxdelta_format::parse_signature(&head, &sig_bytes, head.head_len)?;
    check_patch_len(&head, patch_bytes)?;
    Ok(PatchHead {
        head,
        head_bytes,
        signature,
        patch_bytes,
    })
}

/// The head's bytes, the signature block's bytes (not parsed; none in an
/// unsigned version-11 patch) and the parsed head, read from the start of
/// `f` in two bounded reads.
pub(crate) fn read_head_from(
    f: &mut File,
    path: &Path,
) -> crate::Result<(Vec<u8>, Vec<u8>, oxdelta_format::Head)> {
    use oxdelta_format::head::{FIXED_HEADER_LEN, peek_prefix_lens};
    let mut buf = Vec::with_capacity(FIXED_HEADER_LEN);
    (&mut *f)
        .take(FIXED_HEADER_LEN as u64)
        .read_to_end(&mut buf)
        .map_err(io("reading patch", path))?;
    let (head_len, sig_len) = peek_prefix_lens(&buf)?;
    let want = head_len + sig_len - FIXED_HEADER_LEN as u64;
    // Grows only as bytes arrive: a short file costs what it holds.
    (&mut *f)
        .take(want)
        .read_to_end(&mut buf)
        .map_err(io("reading patch", path))?;
    let head = oxdelta_format::Head::parse(&buf)?;
    let at = head.head_len as usize;
    if buf.len() < at + sig_len as usize {
        return Err(oxdelta_format::Error::at(
            oxdelta_format::ErrorKind::Truncated {
                what: "signature block",
                needed: sig_len,
                available: (buf.len() - at) as u64,
            },
            at as u64,
        )
        .into());
    }
    let sig = buf.split_off(at);
    Ok((buf, sig, head))
}

/// The patch's length against its head's: the same errors as
/// [`Patch::parse`].
pub(crate) fn check_patch_len(head: &oxdelta_format::Head, len: u64) -> crate::Result<()> {
    let expected = head.patch_len();
    if len == expected {
        return Ok(());
    }
    let kind = if len < expected {
        oxdelta_format::ErrorKind::Truncated {
            what: "payloads",
            needed: head.payload_len,
            available: len.saturating_sub(head.payload_start()),
        }
    } else {
        oxdelta_format::ErrorKind::Invalid {
            what: "patch length",
            expected: format!("{expected} bytes"),
            found: format!("{len} bytes (trailing data)"),
        }
    };
    Err(oxdelta_format::Error::at(kind, head.payload_start()).into())
}

/// [`info_bytes`] of the patch file at `path`, reading only its head and
/// signature block ([`read_head`]): memory and time bounded by the head,
/// whatever the file holds.
pub fn info_file(path: &Path) -> crate::Result<PatchInfo> {
    let h = read_head(path)?;
    Ok(PatchInfo::from_head(&h.head, &h.signature, h.patch_bytes))
}
