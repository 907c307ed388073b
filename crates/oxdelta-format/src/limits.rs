//! Bounds that every patch must respect.
//!
//! The parser checks each count and length it reads against these limits
//! (and against the number of bytes actually present) *before* it allocates
//! or reads anything on the strength of that value. They also bound the
//! memory an applier needs: at most one chunk's buffers per worker, and a
//! chunk's buffers are bounded by [`chunk_buffer_bound`].

/// Largest number of NEW bytes one chunk may produce (8 MiB).
///
/// Together with the stream bounds below this caps what one chunk can make
/// an applier allocate at about 6 × 8 MiB, or 11 × 8 MiB with a diff filter
/// (format version 2; see [`crate::filter::max_filtered_len`]).
pub const MAX_CHUNK_NEW_LEN: u32 = 8 << 20;

/// Largest number of NEW bytes one zero chunk may produce (format version
/// 9): `2^32 − 1`, the table's length field. A zero chunk is never
/// rebuilt (no payload, no buffer), so this bounds nothing an applier
/// holds; it lets a 64 GiB hole cost 16 table entries instead of 8,192.
pub const MAX_ZERO_CHUNK_LEN: u32 = u32::MAX;

/// Largest decoded block of the shared section (format version 5): 4 MiB
/// each for the control and the literal block. An applier holds both for
/// the whole apply, beside [`MAX_SHARED_CONTEXT`] bytes of OLD context
/// while the literal block decodes.
pub const MAX_SHARED_BLOCK: u64 = 4 << 20;

/// Largest decoded literal block of the shared section of a normal (not
/// in-place) patch from format version 10: 32 MiB. A big NEW of text
/// makes literal streams far past [`MAX_SHARED_BLOCK`] (a 62 MB
/// generated-source tarball: 23 MB), which compress a seventh smaller as
/// one stream than chunk by chunk. In-place patches keep
/// [`MAX_SHARED_BLOCK`]: their applier journals the decoded literal block.
pub const MAX_SHARED_LIT_WIDE: u64 = 32 << 20;

/// Largest decoded control block of the shared section of a normal patch
/// from format version 10: 8 MiB. Control streams are a small part of a
/// text pair's streams (the 62 MB tarball: 1.35 MB beside 23 MB of
/// literals), and this keeps the two blocks an applier holds for the
/// whole apply at 40 MiB, within its default 48 MiB budget.
pub const MAX_SHARED_CTRL_WIDE: u64 = 8 << 20;

/// The largest decoded control and literal blocks of one shared section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLimits {
    /// Largest control block.
    pub ctrl: u64,
    /// Largest literal block.
    pub lit: u64,
}

impl BlockLimits {
    /// Version 5's limits, [`MAX_SHARED_BLOCK`] each.
    pub const NARROW: BlockLimits = BlockLimits {
        ctrl: MAX_SHARED_BLOCK,
        lit: MAX_SHARED_BLOCK,
    };

    /// Version 10's limits for normal patches, [`MAX_SHARED_CTRL_WIDE`] and
    /// [`MAX_SHARED_LIT_WIDE`].
    pub const WIDE: BlockLimits = BlockLimits {
        ctrl: MAX_SHARED_CTRL_WIDE,
        lit: MAX_SHARED_LIT_WIDE,
    };

    /// Both blocks together: what an applier holds for the whole apply.
    pub const fn total(self) -> u64 {
        self.ctrl + self.lit
    }
}

/// The block limits of a shared section in a patch of format `version`,
/// in-place or not: [`BlockLimits::WIDE`] for a normal patch from version
/// 10, [`BlockLimits::NARROW`] otherwise.
pub const fn shared_block_limits(version: u16, in_place: bool) -> BlockLimits {
    if version >= 10 && !in_place {
        BlockLimits::WIDE
    } else {
        BlockLimits::NARROW
    }
}

/// Longest OLD gap a shared section may take into its OLD context (64 KiB).
pub const MAX_SHARED_GAP: u32 = 64 << 10;

/// Most bytes of OLD context for the shared literal block (1 MiB) when the
/// context has no margin (format version 5's rule): gaps past it are left
/// out.
pub const MAX_SHARED_CONTEXT: usize = 1 << 20;

/// Most bytes of OLD context for the shared literal block when the context
/// has a margin (format version 7): 8 MiB, what one chunk's buffers cost.
pub const MAX_SHARED_CONTEXT_WIDE: usize = 8 << 20;

/// Largest margin of OLD bytes on each side of a gap in the shared
/// section's context (format version 7; 64 KiB).
pub const MAX_SHARED_MARGIN: u32 = 64 << 10;

/// Most gaps a shared section with a margin takes into its context (format
/// version 7): the ones after it are left out. Bounds what an applier holds
/// to sort them (16 bytes each, 1 MiB).
pub const MAX_CONTEXT_RANGES: usize = 1 << 16;

/// The context limit for a shared section with `margin`: version 5's
/// 1 MiB without one, [`MAX_SHARED_CONTEXT_WIDE`] with one.
pub const fn max_shared_context(margin: u32) -> usize {
    if margin == 0 {
        MAX_SHARED_CONTEXT
    } else {
        MAX_SHARED_CONTEXT_WIDE
    }
}

/// Largest number of chunks in one patch.
///
/// 2^22 chunks of 8 MiB cover 32 TiB of NEW.
pub const MAX_CHUNKS: u32 = 1 << 22;

/// Largest number of OLD ranges one chunk may declare.
pub const MAX_OLD_RANGES_PER_CHUNK: u32 = 4096;

/// Largest head (fixed header, metadata and chunk table): 1 GiB.
///
/// Derived from [`MAX_CHUNKS`] and [`MAX_OLD_RANGES_PER_CHUNK`] in the
/// common case; the parser additionally never reads past the input it holds.
pub const MAX_HEAD_LEN: u64 = 1 << 30;

/// Largest OLD or NEW length: 2^62 bytes.
pub const MAX_FILE_LEN: u64 = 1 << 62;

/// Largest raw control stream for a chunk producing `new_len` bytes.
///
/// Encoders keep within it by emitting copies and adds of at least
/// [`MIN_COPY_LEN`] bytes (shorter ones become literals), so every op costs
/// at most two control bytes per NEW byte it produces.
pub const fn max_ctrl_raw_len(new_len: u32) -> u64 {
    2 * new_len as u64 + 64
}

/// Shortest COPY or ADD an encoder emits; shorter matches are stored as
/// literal bytes. Decoders accept any length of at least one.
pub const MIN_COPY_LEN: u64 = 16;

/// Largest stored (compressed) size allowed for a stream of `raw` bytes.
///
/// Every codec's worst-case expansion is below this, so a stored stream
/// larger than it is malformed.
pub const fn max_stored_len(raw: u64) -> u64 {
    raw + raw / 64 + 1024
}

/// The most bytes an applier must hold in memory at once to decode one
/// chunk with the given table entry's sizes: its stored payload plus its
/// three decoded streams.
pub const fn chunk_buffer_bound(
    payload_len: u64,
    ctrl_raw: u64,
    diff_raw: u64,
    lit_raw: u64,
) -> u64 {
    payload_len + ctrl_raw + diff_raw + lit_raw
}
