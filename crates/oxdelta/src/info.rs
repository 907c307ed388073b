//! What a patch holds, read from its head alone: [`PatchInfo`].

use oxdelta_format::{Engine, Patch, PublicKey};

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
    /// Length of the whole patch.
    pub patch_bytes: u64,
    /// Length of OLD.
    pub old_bytes: u64,
    /// BLAKE3 of OLD.
    pub old_blake3: [u8; 32],
    /// Length of NEW.
    pub new_bytes: u64,
    /// BLAKE3 of NEW.
    pub new_blake3: [u8; 32],
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
    /// NEW bytes of the largest chunk.
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
        let h = &p.head;
        let names = |f: &dyn Fn(&oxdelta_format::ChunkEntry) -> &'static str| {
            let mut v: Vec<&'static str> = h.chunks.iter().map(f).collect();
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
            patch_bytes,
            old_bytes: h.meta.old_len,
            old_blake3: h.meta.old_hash,
            new_bytes: h.meta.new_len,
            new_blake3: h.meta.new_hash,
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
            largest_chunk_bytes: h.max_chunk_new_len,
            in_place: h.is_in_place(),
            key: p.signature.public_key(),
        }
    }
}

/// Parses the patch held in `patch` (head, signature block and length; no
/// payload hash is checked) and summarises it.
pub fn info_bytes(patch: &[u8]) -> crate::Result<PatchInfo> {
    let p = Patch::parse(patch)?;
    Ok(PatchInfo::of(&p, patch.len() as u64))
}
