//! The head of a patch: fixed header, metadata and chunk table.
//!
//! See `docs/FORMAT.md` for the byte layout; this module is its reference
//! implementation. [`Head::parse`] checks every field and every relation
//! between fields before it returns, so an applier that holds a `Head` can
//! size its work from it without further checks.

use crate::chunk::ChunkCoding;
use crate::codec::Codec;
use crate::cursor::Cursor;
use crate::error::{Error, ErrorKind, Result};
use crate::filter::{self, AddMode, DiffFilter};
use crate::limits;

/// The eight magic bytes that open every patch.
pub const MAGIC: [u8; 8] = *b"\x8fOXDELTA";
/// Bytes of the fixed header (magic, version, flags, head length).
pub const FIXED_HEADER_LEN: usize = 16;
/// Bytes of the fixed header plus the metadata; the chunk table follows.
pub const TABLE_START: usize = 120;
/// Bytes of one chunk-table entry before its OLD ranges.
pub const ENTRY_FIXED_LEN: usize = 104;
/// Bytes of one OLD range in a chunk-table entry.
pub const RANGE_LEN: usize = 16;

/// Header flag: the chunk table is in the order an in-place applier runs
/// the chunks; OLD bytes a chunk reads after an earlier chunk overwrote
/// them are stashed first ([`crate::inplace::StashPlanner`]).
pub const FLAG_IN_PLACE: u16 = 1;
/// Header flag (format version 8): the metadata's `old_hash` and
/// `new_hash` are block-list hashes ([`crate::filehash::FileHash::BlockList`]),
/// which skip holes, instead of plain BLAKE3.
pub const FLAG_BLOCK_HASH: u16 = 2;
/// Header flag (format version 11): a signature block follows the head.
/// Without it a version-11 patch has none (its payloads follow the head);
/// before version 11 the block is always there, all zeros when unsigned.
pub const FLAG_SIGNED: u16 = 4;
const KNOWN_FLAGS: u16 = FLAG_IN_PLACE | FLAG_BLOCK_HASH | FLAG_SIGNED;
/// The first format version with [`FLAG_BLOCK_HASH`].
pub const BLOCK_HASH_VERSION: u16 = 8;

/// The first format version with the compact head ([`crate::compact`]):
/// varint fields, no hash a reader can derive, and no signature block in
/// an unsigned patch ([`FLAG_SIGNED`]). Every patch this crate writes is
/// of this version.
pub const COMPACT_VERSION: u16 = 11;

/// The first format version with zero chunks ([`ChunkEntry::zero`]): a
/// table entry with codec byte [`ZERO_CHUNK_CODEC`] produces up to
/// [`limits::MAX_ZERO_CHUNK_LEN`] zero bytes and has no payload.
pub const ZERO_CHUNK_VERSION: u16 = 9;
/// The codec byte (entry byte 12) of a zero chunk: bit 7 alone.
pub const ZERO_CHUNK_CODEC: u8 = 0x80;

/// The first format version in which an in-place patch may carry a shared
/// section (8): an in-place applier decodes the section before it writes,
/// while OLD (the literal block's context) is intact, and keeps the
/// decoded literal block in its journal for a resumed run. Version 5 to 7
/// readers refuse a section in an in-place patch.
pub const IN_PLACE_SHARED_VERSION: u16 = 8;

/// The first format version whose shared blocks may pass
/// [`limits::MAX_SHARED_BLOCK`] in a normal patch, up to
/// [`limits::BlockLimits::WIDE`] (10). Readers of versions 5 to 9
/// refuse such a block; in-place patches keep the smaller limit.
pub const WIDE_SHARED_VERSION: u16 = 10;

/// Which engine made a patch (informational).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Not recorded.
    Unknown,
    /// The in-memory suffix-array matcher.
    SuffixArray,
    /// The bounded-memory streaming differ.
    Streaming,
}

impl Engine {
    pub(crate) fn id(self) -> u8 {
        match self {
            Engine::Unknown => 0,
            Engine::SuffixArray => 1,
            Engine::Streaming => 2,
        }
    }

    pub(crate) fn from_id(id: u8) -> Option<Engine> {
        [Engine::Unknown, Engine::SuffixArray, Engine::Streaming]
            .get(id as usize)
            .copied()
    }

    /// A short name: `unknown`, `suffix-array`, `streaming`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Unknown => "unknown",
            Engine::SuffixArray => "suffix-array",
            Engine::Streaming => "streaming",
        }
    }
}

/// What the applier needs to know about OLD and NEW.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Length of OLD.
    pub old_len: u64,
    /// Hash of OLD: BLAKE3, or the block-list hash with [`FLAG_BLOCK_HASH`]
    /// ([`crate::filehash`]).
    pub old_hash: [u8; 32],
    /// Length of NEW.
    pub new_len: u64,
    /// Hash of NEW, as `old_hash`.
    pub new_hash: [u8; 32],
    /// Engine that made the patch.
    pub engine: Engine,
    /// Header flags ([`FLAG_IN_PLACE`], [`FLAG_BLOCK_HASH`]).
    pub flags: u16,
}

/// Raw and stored length of one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamLen {
    /// Decoded length.
    pub raw: u32,
    /// Length in the payload.
    pub stored: u32,
}

/// One chunk-table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    /// First NEW byte this chunk produces.
    pub new_offset: u64,
    /// NEW bytes it produces.
    pub new_len: u32,
    /// Codec of its three streams.
    pub codec: Codec,
    /// Layout of its diff stream before compression (format version 2;
    /// always [`DiffFilter::None`] in version 1).
    pub diff_filter: DiffFilter,
    /// How ADD combines its diff bytes with OLD (format version 2; always
    /// [`AddMode::Bytes`] in version 1).
    pub add_mode: AddMode,
    /// The diff stream is stored in the operand split's order (format
    /// version 2; see [`crate::filter::split`]).
    pub operand_split: bool,
    /// The control stream is stored split by field (format version 4; see
    /// [`crate::coding`]).
    pub ctrl_split: bool,
    /// The literal stream is stored with the x86 literal filter (format
    /// version 4; see [`crate::coding`]).
    pub lit_x86: bool,
    /// The control and literal streams live in the patch's shared section
    /// (format version 5; see [`crate::shared`]): their stored lengths are
    /// zero and the payload holds the diff stream only.
    pub shared: bool,
    /// Where this chunk's control stream starts in the shared section's
    /// decoded control block (derived: shared chunks' streams follow each
    /// other in table order; zero for other chunks).
    pub shared_ctrl_at: u64,
    /// Where its literal stream starts in the decoded literal block.
    pub shared_lit_at: u64,
    /// Control stream lengths.
    pub ctrl: StreamLen,
    /// Diff stream lengths.
    pub diff: StreamLen,
    /// Literal stream lengths.
    pub lit: StreamLen,
    /// BLAKE3 of the payload (the three stored streams, in order).
    pub payload_hash: [u8; 32],
    /// BLAKE3 of the NEW bytes produced.
    pub new_hash: [u8; 32],
    /// OLD ranges `(start, len)` read by the chunk: sorted, disjoint.
    pub old_ranges: Vec<(u64, u64)>,
    /// A zero chunk (format version 9): its `new_len` NEW bytes (up to
    /// [`limits::MAX_ZERO_CHUNK_LEN`]) are zeros, fixed by the entry
    /// alone. It has no payload, no streams, no OLD ranges, codec none,
    /// and both hashes are zero; it is never rebuilt, so it needs no
    /// buffer ([`ChunkEntry::buffer_bound`] and [`ChunkEntry::rebuild_len`]
    /// are 0).
    pub zero: bool,
    /// Offset of its payload from the start of the payload section
    /// (derived: payloads follow each other in table order).
    pub payload_offset: u64,
}

impl ChunkEntry {
    /// Stored payload length.
    pub fn payload_len(&self) -> u64 {
        u64::from(self.ctrl.stored) + u64::from(self.diff.stored) + u64::from(self.lit.stored)
    }

    /// Most bytes decoding this chunk holds in memory (see
    /// [`limits::chunk_buffer_bound`]).
    pub fn buffer_bound(&self) -> u64 {
        let unfiltered = match self.diff_filter {
            DiffFilter::None => 0,
            _ => u64::from(self.new_len),
        };
        // An operand mode also holds the op map and the byte-wise diff (at
        // most the chunk's bytes that are not literals; the one-pass
        // rebuild holds the words' positions instead, fewer bytes).
        let operands = if self.add_mode.is_predicted() {
            let learned = match self.add_mode {
                AddMode::Arm64 => crate::arm64::learned_bound(self.new_len.into()),
                AddMode::Wasm => crate::wasm::learned_bound(self.new_len.into()),
                AddMode::OperandsLearned => crate::operand::learned_bound(self.new_len.into()),
                AddMode::Riscv => crate::riscv::learned_bound(self.new_len.into()),
                AddMode::Armv7 => crate::armv7::learned_bound(self.new_len.into()),
                AddMode::Thumb2 => crate::thumb2::learned_bound(self.new_len.into()),
                _ => 0,
            };
            crate::predicted::op_map_bound(self.new_len.into(), self.ctrl.raw.into())
                + u64::from(self.new_len.saturating_sub(self.lit.raw))
                + learned
        } else {
            0
        };
        // A split control stream is joined into a second buffer.
        let joined = if self.ctrl_split {
            u64::from(self.ctrl.raw)
        } else {
            0
        };
        // An LZMA2 decoder holds a dictionary of the stream it decodes
        // (one at a time), beside that stream's output.
        let dictionary = if self.codec == Codec::Lzma2 {
            let largest = self.ctrl.raw.max(self.diff.raw).max(self.lit.raw);
            crate::codec::lzma2_dict_size(largest as usize) as u64
        } else {
            0
        };
        limits::chunk_buffer_bound(
            self.payload_len(),
            u64::from(self.ctrl.raw) + joined,
            u64::from(self.diff.raw) + unfiltered,
            self.lit.raw.into(),
        ) + operands
            + dictionary
    }

    /// NEW bytes an applier rebuilds in a buffer for this chunk: its
    /// length, or 0 for a zero chunk (never rebuilt: its range is left
    /// as zeros, or written from a static buffer of zeros).
    pub fn rebuild_len(&self) -> u64 {
        if self.zero {
            0
        } else {
            u64::from(self.new_len)
        }
    }

    /// A zero chunk (format version 9) of `new_len` bytes at `new_offset`.
    pub fn zeros(new_offset: u64, new_len: u32) -> ChunkEntry {
        let none = StreamLen::default();
        ChunkEntry {
            new_offset,
            new_len,
            codec: Codec::None,
            diff_filter: DiffFilter::None,
            add_mode: AddMode::Bytes,
            operand_split: false,
            ctrl_split: false,
            lit_x86: false,
            shared: false,
            shared_ctrl_at: 0,
            shared_lit_at: 0,
            ctrl: none,
            diff: none,
            lit: none,
            payload_hash: [0; 32],
            new_hash: [0; 32],
            old_ranges: Vec::new(),
            zero: true,
            payload_offset: 0,
        }
    }

    /// NEW range `start..end`.
    pub fn new_range(&self) -> std::ops::Range<u64> {
        self.new_offset..self.new_offset + u64::from(self.new_len)
    }
}

/// A parsed and checked head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Format version.
    pub version: u16,
    /// OLD/NEW metadata.
    pub meta: Metadata,
    /// Chunk table, in apply order.
    pub chunks: Vec<ChunkEntry>,
    /// Length of the head in bytes (where the signature block starts).
    pub head_len: u64,
    /// Length of the payload section.
    pub payload_len: u64,
    /// Largest chunk NEW length.
    pub max_chunk_new_len: u32,
    /// The shared section (format version 5; all zero when absent).
    pub shared: SharedDesc,
}

/// The shared section's descriptor: the last [`SHARED_DESC_LEN`] bytes of a
/// version-5 head. See [`crate::shared`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SharedDesc {
    /// The control block: every shared chunk's control stream, in table
    /// order, as one zstd frame.
    pub ctrl: StreamLen,
    /// The literal block, one zstd frame whose prefix is the OLD context.
    pub lit: StreamLen,
    /// Longest OLD gap taken into the literal block's OLD context.
    pub gap_max: u32,
    /// OLD bytes taken on each side of a gap into the context (format
    /// version 7; zero before, which keeps version 5's rule).
    pub margin: u32,
    /// BLAKE3 of the section's stored bytes (control then literal block).
    pub hash: [u8; 32],
    /// Both blocks are LZMA2 streams instead of zstd frames (format
    /// version 7), the literal block with the OLD context as its preset
    /// dictionary.
    pub lzma2: bool,
}

impl SharedDesc {
    /// Stored bytes of the section (it opens the payload section).
    pub fn stored_len(&self) -> u64 {
        u64::from(self.ctrl.stored) + u64::from(self.lit.stored)
    }

    /// True when the patch has a shared section.
    pub fn is_present(&self) -> bool {
        self.ctrl.raw != 0
    }

    /// The codec of both blocks.
    pub fn codec(&self) -> Codec {
        if self.lzma2 {
            Codec::Lzma2
        } else {
            Codec::Zstd(0)
        }
    }

    /// The lowest format version that has this descriptor's section (5;
    /// 7 with a context margin or LZMA2 blocks; 10 with a block past
    /// [`limits::MAX_SHARED_BLOCK`]); 1 without a section.
    pub fn min_version(&self) -> u16 {
        let wide = [self.ctrl.raw, self.lit.raw]
            .iter()
            .any(|&r| u64::from(r) > limits::MAX_SHARED_BLOCK);
        match (self.is_present(), self.lzma2 || self.margin != 0) {
            (false, _) => 1,
            _ if wide => WIDE_SHARED_VERSION,
            (true, false) => 5,
            (true, true) => 7,
        }
    }

    /// [`SharedDesc::min_version`] in a patch with header `flags`: an
    /// in-place patch ([`FLAG_IN_PLACE`]) carries a section from version
    /// [`IN_PLACE_SHARED_VERSION`].
    pub fn min_version_with(&self, flags: u16) -> u16 {
        let v = self.min_version();
        if self.is_present() && flags & FLAG_IN_PLACE != 0 {
            v.max(IN_PLACE_SHARED_VERSION)
        } else {
            v
        }
    }
}

/// Bytes of the shared-section descriptor that ends a version-5 head.
pub const SHARED_DESC_LEN: usize = 64;

/// Reads the fixed header's head length, so a streaming reader knows how
/// many bytes to gather before calling [`Head::parse`]. `buf` needs only
/// [`FIXED_HEADER_LEN`] bytes.
pub fn peek_head_len(buf: &[u8]) -> Result<u64> {
    let mut c = Cursor::new(buf, 0);
    let (_, _, head_len) = fixed_header(&mut c)?;
    Ok(head_len)
}

/// Reads the fixed header's head length and the length of the signature
/// block after the head ([`signature_len`]): the bytes a streaming reader
/// gathers before the payloads are `head_len + signature_len`. `buf`
/// needs only [`FIXED_HEADER_LEN`] bytes.
pub fn peek_prefix_lens(buf: &[u8]) -> Result<(u64, u64)> {
    let mut c = Cursor::new(buf, 0);
    let (version, flags, head_len) = fixed_header(&mut c)?;
    Ok((head_len, signature_len(version, flags)))
}

/// Bytes of the signature block of a patch of `version` with header
/// `flags`: [`crate::sign::SIGNATURE_BLOCK_LEN`] before version 11 (all
/// zeros when unsigned) and in a version-11 patch with [`FLAG_SIGNED`];
/// 0 in an unsigned version-11 patch.
pub fn signature_len(version: u16, flags: u16) -> u64 {
    if version < COMPACT_VERSION || flags & FLAG_SIGNED != 0 {
        crate::sign::SIGNATURE_BLOCK_LEN as u64
    } else {
        0
    }
}

fn fixed_header(c: &mut Cursor<'_>) -> Result<(u16, u16, u64)> {
    let magic: [u8; 8] = c.array("magic")?;
    if magic != MAGIC {
        return Err(Error::at(ErrorKind::BadMagic, 0));
    }
    let version = c.u16("format version")?;
    if !(1..=crate::FORMAT_VERSION).contains(&version) {
        return Err(Error::at(ErrorKind::UnsupportedVersion(version), 8));
    }
    let flags = c.u16("flags")?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(Error::invalid(
            "flags",
            format!("only known flags ({KNOWN_FLAGS:#x})"),
            format!("{flags:#x}"),
            10,
        ));
    }
    if flags & FLAG_BLOCK_HASH != 0 && version < BLOCK_HASH_VERSION {
        return Err(Error::invalid(
            "flags",
            format!("no block-list hash flag before version {BLOCK_HASH_VERSION}"),
            format!("{flags:#x} in version {version}"),
            10,
        ));
    }
    if flags & FLAG_SIGNED != 0 && version < COMPACT_VERSION {
        return Err(Error::invalid(
            "flags",
            format!("no signed flag before version {COMPACT_VERSION}"),
            format!("{flags:#x} in version {version}"),
            10,
        ));
    }
    let head_len = u64::from(c.u32("head length")?);
    let min = if version >= COMPACT_VERSION {
        crate::compact::MIN_HEAD_LEN
    } else {
        TABLE_START
    };
    if head_len < min as u64 || head_len > limits::MAX_HEAD_LEN {
        return Err(Error::invalid(
            "head length",
            format!("{min}..={}", limits::MAX_HEAD_LEN),
            head_len,
            12,
        ));
    }
    Ok((version, flags, head_len))
}

impl Head {
    /// Parses and checks the head at the start of `buf`. `buf` may hold
    /// more than the head (the signature block and payloads); only the head
    /// is read.
    pub fn parse(buf: &[u8]) -> Result<Head> {
        let mut c = Cursor::new(buf, 0);
        let (version, flags, head_len) = fixed_header(&mut c)?;
        if head_len > buf.len() as u64 {
            return Err(Error::at(
                ErrorKind::Truncated {
                    what: "head",
                    needed: head_len,
                    available: buf.len() as u64,
                },
                0,
            ));
        }
        let buf = &buf[..head_len as usize];
        if version >= COMPACT_VERSION {
            return crate::compact::parse(buf, version, flags);
        }
        let m = parse_meta(buf, head_len, version)?;
        // The shared section's descriptor ends a version-5 head; it is read
        // first (from its fixed place) because the section's stored bytes
        // open the payload section, before the first chunk's payload.
        let (shared, table_end) = if version >= 5 {
            let desc_at = head_len
                .checked_sub(SHARED_DESC_LEN as u64)
                .filter(|&a| a >= TABLE_START as u64)
                .ok_or_else(|| {
                    Error::invalid(
                        "head length",
                        format!("room for the {SHARED_DESC_LEN}-byte shared-section descriptor"),
                        head_len,
                        12,
                    )
                })?;
            let mut d = Cursor::new(&buf[desc_at as usize..], desc_at);
            (parse_shared_desc(&mut d, version, flags)?, desc_at)
        } else {
            (SharedDesc::default(), head_len)
        };
        let chunks = parse_table(&buf[..table_end as usize], version, &m, &shared)?;
        check_chunks(&chunks, m.new_len, flags, TABLE_START as u64)?;
        Ok(Head {
            version,
            meta: Metadata {
                old_len: m.old_len,
                old_hash: m.old_hash,
                new_len: m.new_len,
                new_hash: m.new_hash,
                engine: m.engine,
                flags,
            },
            chunks,
            head_len,
            payload_len: m.payload_len,
            max_chunk_new_len: m.max_chunk_new_len,
            shared,
        })
    }

    /// Serializes a head for `meta` and `chunks` (whose `payload_offset`s
    /// are ignored and recomputed on parse), in format version 11's
    /// compact layout ([`crate::compact`]): every patch this crate writes
    /// has it. `meta.flags` has [`FLAG_SIGNED`] when a signature block
    /// will follow.
    pub fn encode(meta: &Metadata, chunks: &[ChunkEntry]) -> Vec<u8> {
        Head::encode_with(meta, chunks, &SharedDesc::default())
    }

    /// [`Head::encode`] with a shared section.
    pub fn encode_with(meta: &Metadata, chunks: &[ChunkEntry], shared: &SharedDesc) -> Vec<u8> {
        crate::compact::encode(meta, chunks, shared)
    }

    /// The head in the fixed layout of format versions 1 to 10, at the
    /// lowest of them that expresses the chunks and the section (version 5
    /// when a section is present). For tests and tools that need a patch
    /// older appliers read; a patch in this layout always carries its
    /// signature block, so `meta.flags` must not have [`FLAG_SIGNED`], and
    /// no chunk may use a feature of version 11 or later (both panic).
    pub fn encode_fixed_with(
        meta: &Metadata,
        chunks: &[ChunkEntry],
        shared: &SharedDesc,
    ) -> Vec<u8> {
        assert!(
            meta.flags & FLAG_SIGNED == 0,
            "the fixed layout has no signed flag"
        );
        let table_len: usize = chunks
            .iter()
            .map(|e| ENTRY_FIXED_LEN + RANGE_LEN * e.old_ranges.len())
            .sum();
        let version = features_version(meta, chunks, shared);
        assert!(
            version < COMPACT_VERSION,
            "a feature of version {version} has no fixed layout"
        );
        let desc_len = if version >= 5 { SHARED_DESC_LEN } else { 0 };
        let head_len = TABLE_START + table_len + desc_len;
        let mut out = Vec::with_capacity(head_len);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&meta.flags.to_le_bytes());
        out.extend_from_slice(
            &u32::try_from(head_len)
                .expect("head fits in u32")
                .to_le_bytes(),
        );
        out.extend_from_slice(&meta.old_len.to_le_bytes());
        out.extend_from_slice(&meta.old_hash);
        out.extend_from_slice(&meta.new_len.to_le_bytes());
        out.extend_from_slice(&meta.new_hash);
        out.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
        out.push(meta.engine.id());
        out.extend_from_slice(&[0; 3]);
        let payload_len: u64 =
            shared.stored_len() + chunks.iter().map(ChunkEntry::payload_len).sum::<u64>();
        out.extend_from_slice(&payload_len.to_le_bytes());
        // The largest chunk an applier rebuilds: zero chunks are not.
        let max = chunks
            .iter()
            .filter(|e| !e.zero)
            .map(|e| e.new_len)
            .max()
            .unwrap_or(0);
        out.extend_from_slice(&max.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        for e in chunks {
            out.extend_from_slice(&e.new_offset.to_le_bytes());
            out.extend_from_slice(&e.new_len.to_le_bytes());
            if e.zero {
                out.extend_from_slice(&[ZERO_CHUNK_CODEC, 0]);
            } else {
                e.coding().write(&mut out);
            }
            out.extend_from_slice(&(e.old_ranges.len() as u16).to_le_bytes());
            for s in [e.ctrl, e.diff, e.lit] {
                out.extend_from_slice(&s.raw.to_le_bytes());
                out.extend_from_slice(&s.stored.to_le_bytes());
            }
            out.extend_from_slice(&e.payload_hash);
            out.extend_from_slice(&e.new_hash);
            for &(s, l) in &e.old_ranges {
                out.extend_from_slice(&s.to_le_bytes());
                out.extend_from_slice(&l.to_le_bytes());
            }
        }
        if desc_len != 0 {
            for s in [shared.ctrl, shared.lit] {
                out.extend_from_slice(&s.raw.to_le_bytes());
                out.extend_from_slice(&s.stored.to_le_bytes());
            }
            out.extend_from_slice(&shared.gap_max.to_le_bytes());
            out.extend_from_slice(&shared.margin.to_le_bytes());
            out.extend_from_slice(&shared.hash);
            out.push(u8::from(shared.lzma2));
            out.extend_from_slice(&[0; 7]);
        }
        debug_assert_eq!(out.len(), head_len);
        out
    }

    /// True when the patch's chunk order is safe for in-place apply.
    pub fn is_in_place(&self) -> bool {
        self.meta.flags & FLAG_IN_PLACE != 0
    }

    /// How the metadata's whole-file hashes are defined (the
    /// [`FLAG_BLOCK_HASH`] flag).
    pub fn file_hash(&self) -> crate::filehash::FileHash {
        crate::filehash::FileHash::of_flags(self.meta.flags)
    }

    /// The lowest format version whose features this patch uses, whatever
    /// its head's layout: what a fixed-layout head would say
    /// ([`Head::encode_fixed_with`]); a version-11 patch that needs only
    /// version 1's features says 1.
    pub fn features_version(&self) -> u16 {
        features_version(&self.meta, &self.chunks, &self.shared)
    }

    /// Bytes of the signature block after the head ([`signature_len`]).
    pub fn signature_len(&self) -> u64 {
        signature_len(self.version, self.meta.flags)
    }

    /// Offset of the payload section from the start of the patch.
    pub fn payload_start(&self) -> u64 {
        self.head_len + self.signature_len()
    }

    /// Total patch length: head, signature block and payloads.
    pub fn patch_len(&self) -> u64 {
        self.payload_start() + self.payload_len
    }
}

/// The metadata of a head as read, with where the fields checked
/// against the table are.
struct MetaFields {
    old_len: u64,
    old_hash: [u8; 32],
    new_len: u64,
    new_hash: [u8; 32],
    chunk_count: u32,
    engine: Engine,
    payload_len: u64,
    payload_len_at: u64,
    max_chunk_new_len: u32,
    max_at: u64,
}

/// Reads and checks the metadata of a head of `head_len` bytes (`head`)
/// of format `version`.
fn parse_meta(head: &[u8], head_len: u64, version: u16) -> Result<MetaFields> {
    let mut c = Cursor::new(head, 0);
    c.bytes(FIXED_HEADER_LEN, "fixed header")?;
    let at = c.offset();
    let old_len = c.u64("OLD length")?;
    check_file_len("OLD length", old_len, at)?;
    let old_hash = c.array("OLD hash")?;
    let at = c.offset();
    let new_len = c.u64("NEW length")?;
    check_file_len("NEW length", new_len, at)?;
    let new_hash = c.array("NEW hash")?;
    let at = c.offset();
    let chunk_count = c.u32("chunk count")?;
    let table_room = (head_len - TABLE_START as u64) / ENTRY_FIXED_LEN as u64;
    check_chunk_count(chunk_count.into(), table_room, new_len, version, at)?;
    let at = c.offset();
    let engine_id = c.u8("engine")?;
    let engine = Engine::from_id(engine_id)
        .ok_or_else(|| Error::invalid("engine", "0, 1 or 2", engine_id, at))?;
    c.reserved_zero(3, "reserved metadata bytes")?;
    let payload_len_at = c.offset();
    let payload_len = c.u64("payload length")?;
    let max_at = c.offset();
    let max_chunk_new_len = c.u32("largest chunk length")?;
    c.reserved_zero(4, "reserved metadata bytes")?;
    debug_assert_eq!(c.offset(), TABLE_START as u64);
    Ok(MetaFields {
        old_len,
        old_hash,
        new_len,
        new_hash,
        chunk_count,
        engine,
        payload_len,
        payload_len_at,
        max_chunk_new_len,
        max_at,
    })
}

/// The lowest format version whose features express `chunks` and
/// `shared` with header flags `meta.flags`, whatever the head's layout:
/// the version of a fixed-layout head, so patches that need no version-2
/// feature apply on version-1 appliers.
pub(crate) fn features_version(meta: &Metadata, chunks: &[ChunkEntry], shared: &SharedDesc) -> u16 {
    chunks
        .iter()
        .map(|e| {
            if e.zero {
                ZERO_CHUNK_VERSION
            } else {
                e.coding().min_version()
            }
        })
        .max()
        .unwrap_or(1)
        .max(shared.min_version_with(meta.flags))
        .max(if meta.flags & FLAG_BLOCK_HASH != 0 {
            BLOCK_HASH_VERSION
        } else {
            1
        })
}

/// What a table's entries add up to, entry by entry in table order: where
/// the next payload starts (after the shared section), where the next
/// shared chunk's streams start in the section's blocks, and the largest
/// chunk that is rebuilt.
pub(crate) struct TableSums {
    /// Offset of the next entry's payload in the payload section; after
    /// the last entry, the payload section's length.
    pub payload_offset: u64,
    ctrl_at: u64,
    lit_at: u64,
    /// The largest `new_len` of a chunk that is not a zero chunk.
    pub max_chunk_new_len: u32,
}

impl TableSums {
    pub(crate) fn new(shared: &SharedDesc) -> TableSums {
        TableSums {
            payload_offset: shared.stored_len(),
            ctrl_at: 0,
            lit_at: 0,
            max_chunk_new_len: 0,
        }
    }

    /// Adds entry `e` (read with `payload_offset` as its payload's
    /// offset) and sets its derived offsets in the shared blocks.
    pub(crate) fn add(&mut self, e: &mut ChunkEntry) {
        if e.shared {
            (e.shared_ctrl_at, e.shared_lit_at) = (self.ctrl_at, self.lit_at);
            self.ctrl_at += u64::from(e.ctrl.raw);
            self.lit_at += u64::from(e.lit.raw);
        }
        self.payload_offset += e.payload_len();
        if !e.zero {
            self.max_chunk_new_len = self.max_chunk_new_len.max(e.new_len);
        }
    }

    /// After the last entry: the shared chunks' streams fill the section's
    /// blocks exactly (`at`: where the table ends).
    pub(crate) fn check_shared(&self, shared: &SharedDesc, at: u64) -> Result<()> {
        let (ctrl_at, lit_at) = (self.ctrl_at, self.lit_at);
        if (ctrl_at, lit_at) == (shared.ctrl.raw.into(), shared.lit.raw.into()) {
            return Ok(());
        }
        Err(Error::invalid(
            "shared section",
            format!(
                "blocks as long as the shared chunks' streams ({ctrl_at} control, \
                 {lit_at} literal bytes)"
            ),
            format!("{} and {}", shared.ctrl.raw, shared.lit.raw),
            at,
        ))
    }
}

/// Reads the chunk table, which ends `head` (the head up to the shared
/// descriptor), and checks it against the metadata `m` and the shared
/// section's descriptor.
fn parse_table(
    head: &[u8],
    version: u16,
    m: &MetaFields,
    shared: &SharedDesc,
) -> Result<Vec<ChunkEntry>> {
    let table_end = head.len() as u64;
    let mut c = Cursor::new(&head[TABLE_START..], TABLE_START as u64);
    let mut chunks = Vec::with_capacity(m.chunk_count as usize);
    let mut sums = TableSums::new(shared);
    for i in 0..m.chunk_count {
        let mut e = parse_entry(&mut c, i, version, m.old_len, sums.payload_offset)?;
        sums.add(&mut e);
        chunks.push(e);
    }
    sums.check_shared(shared, table_end)?;
    let (payload_offset, seen_max) = (sums.payload_offset, sums.max_chunk_new_len);
    if !c.is_empty() {
        return Err(Error::invalid(
            "head length",
            format!("the chunk table to end at byte {table_end}"),
            format!("it ends at byte {}", c.offset()),
            c.offset(),
        ));
    }
    if payload_offset != m.payload_len {
        return Err(Error::invalid(
            "payload length",
            format!("the shared section's and the chunks' stored lengths, {payload_offset}"),
            m.payload_len,
            m.payload_len_at,
        ));
    }
    if seen_max != m.max_chunk_new_len {
        return Err(Error::invalid(
            "largest chunk length",
            seen_max.to_string(),
            m.max_chunk_new_len,
            m.max_at,
        ));
    }
    Ok(chunks)
}

/// A chunk count read at `at`: at most [`limits::MAX_CHUNKS`] and
/// `table_room` (entries the rest of the head can hold), at least what
/// `new_len` bytes need in chunks of the longest length `version`
/// allows, and 0 exactly when NEW is empty.
pub(crate) fn check_chunk_count(
    chunk_count: u64,
    table_room: u64,
    new_len: u64,
    version: u16,
    at: u64,
) -> Result<()> {
    if chunk_count > u64::from(limits::MAX_CHUNKS) || chunk_count > table_room {
        return Err(Error::invalid(
            "chunk count",
            format!(
                "at most {} (limit) and {table_room} (room in the head)",
                limits::MAX_CHUNKS
            ),
            chunk_count,
            at,
        ));
    }
    // The longest chunk the version allows: from version 9 a zero chunk.
    let longest = if version >= ZERO_CHUNK_VERSION {
        limits::MAX_ZERO_CHUNK_LEN
    } else {
        limits::MAX_CHUNK_NEW_LEN
    };
    let min_chunks = new_len.div_ceil(u64::from(longest));
    if chunk_count < min_chunks || (new_len == 0) != (chunk_count == 0) {
        return Err(Error::invalid(
            "chunk count",
            format!(
                "at least {min_chunks} chunks for {new_len} NEW bytes (and none for an empty NEW)"
            ),
            chunk_count,
            at,
        ));
    }
    Ok(())
}

pub(crate) fn check_file_len(what: &'static str, v: u64, at: u64) -> Result<()> {
    if v > limits::MAX_FILE_LEN {
        return Err(Error::invalid(
            what,
            format!("at most {}", limits::MAX_FILE_LEN),
            v,
            at,
        ));
    }
    Ok(())
}

fn parse_entry(
    c: &mut Cursor<'_>,
    i: u32,
    version: u16,
    old_len: u64,
    payload_offset: u64,
) -> Result<ChunkEntry> {
    let start = c.offset();
    let new_offset = c.u64("chunk NEW offset")?;
    check_file_len("chunk NEW offset", new_offset, start)?;
    let at = c.offset();
    let new_len = c.u32("chunk NEW length")?;
    // The codec byte says whether the entry is a zero chunk (version 9),
    // whose length has its own limit; a cut entry is reported below.
    let codec_byte = c.clone().u8("chunk codec").ok();
    if version >= ZERO_CHUNK_VERSION && codec_byte.is_some_and(|b| b & ZERO_CHUNK_CODEC != 0) {
        return parse_zero_entry(c, i, new_offset, new_len, payload_offset);
    }
    if new_len == 0 || new_len > limits::MAX_CHUNK_NEW_LEN {
        return Err(Error::invalid(
            "chunk NEW length",
            format!("1..={} (chunk {i})", limits::MAX_CHUNK_NEW_LEN),
            new_len,
            at,
        ));
    }
    let coding = ChunkCoding::read(c, i, version)?;
    let at = c.offset();
    let range_count = c.u16("OLD range count")?;
    if u32::from(range_count) > limits::MAX_OLD_RANGES_PER_CHUNK {
        return Err(Error::invalid(
            "OLD range count",
            format!("at most {}", limits::MAX_OLD_RANGES_PER_CHUNK),
            range_count,
            at,
        ));
    }
    let [ctrl, diff, lit] = parse_stream_lens(c, i, &coding, new_len, start)?;
    let payload_hash = c.array("payload hash")?;
    let new_hash = c.array("chunk NEW hash")?;
    let old_ranges = parse_old_ranges(c, range_count, old_len)?;
    Ok(ChunkEntry {
        new_offset,
        new_len,
        codec: coding.codec,
        diff_filter: coding.diff_filter,
        add_mode: coding.add_mode,
        operand_split: coding.operand_split,
        ctrl_split: coding.ctrl_split,
        lit_x86: coding.lit_x86,
        shared: coding.shared,
        shared_ctrl_at: 0,
        shared_lit_at: 0,
        ctrl,
        diff,
        lit,
        payload_hash,
        new_hash,
        old_ranges,
        zero: false,
        payload_offset,
    })
}

/// The rest of entry `i`, a zero chunk (format version 9) of `new_len`
/// bytes at `new_offset`, from its codec byte on: every field but the
/// NEW range is fixed (codec byte [`ZERO_CHUNK_CODEC`], then zeros).
fn parse_zero_entry(
    c: &mut Cursor<'_>,
    i: u32,
    new_offset: u64,
    new_len: u32,
    payload_offset: u64,
) -> Result<ChunkEntry> {
    if new_len == 0 {
        return Err(Error::invalid(
            "chunk NEW length",
            format!("1..={} (zero chunk {i})", limits::MAX_ZERO_CHUNK_LEN),
            new_len,
            c.offset() - 4,
        ));
    }
    let at = c.offset();
    let codec = c.u8("chunk codec")?;
    if codec != ZERO_CHUNK_CODEC {
        return Err(Error::invalid(
            "chunk codec",
            format!("{ZERO_CHUNK_CODEC:#x} alone for a zero chunk (chunk {i})"),
            codec,
            at,
        ));
    }
    // Diff coding, OLD range count, six stream lengths, payload and NEW
    // hashes: a zero chunk has none of them.
    c.reserved_zero(1, "zero chunk's diff coding")?;
    c.reserved_zero(2, "zero chunk's OLD range count")?;
    c.reserved_zero(24, "zero chunk's stream lengths")?;
    c.reserved_zero(32, "zero chunk's payload hash")?;
    c.reserved_zero(32, "zero chunk's NEW hash")?;
    Ok(ChunkEntry {
        payload_offset,
        ..ChunkEntry::zeros(new_offset, new_len)
    })
}

/// The control, diff and literal lengths of entry `i` (which starts at
/// byte `start` and produces `new_len` bytes), checked against its coding
/// and the limits.
fn parse_stream_lens(
    c: &mut Cursor<'_>,
    i: u32,
    coding: &ChunkCoding,
    new_len: u32,
    start: u64,
) -> Result<[StreamLen; 3]> {
    let mut lens = [StreamLen::default(); 3];
    for (k, len) in lens.iter_mut().enumerate() {
        let at = c.offset();
        let raw = c.u32("stream raw length")?;
        let stored = c.u32("stream stored length")?;
        *len = StreamLen { raw, stored };
        check_stored_len(i, coding, k, *len, at + 4)?;
    }
    check_stream_lens(i, coding, new_len, &lens, start + 16, start + 24)?;
    Ok(lens)
}

/// The names of a chunk's three streams, in table order.
const STREAM_NAMES: [&str; 3] = ["control", "diff", "literal"];

/// Whether stream `k` (0 control, 1 diff, 2 literal) of entry `i` has a
/// stored length its coding can give: 0 for an empty stream and for a
/// shared chunk's control and literal streams, the raw length with codec
/// none, otherwise `1..=`[`limits::max_stored_len`]. `at`: the stored
/// length's offset.
pub(crate) fn check_stored_len(
    i: u32,
    coding: &ChunkCoding,
    k: usize,
    s: StreamLen,
    at: u64,
) -> Result<()> {
    let (codec, shared, name) = (coding.codec, coding.shared, STREAM_NAMES[k]);
    let StreamLen { raw, stored } = s;
    let ok = match codec {
        _ if raw == 0 || (shared && k != 1) => stored == 0,
        Codec::None => stored == raw,
        _ => stored > 0 && u64::from(stored) <= limits::max_stored_len(raw.into()),
    };
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        "stream stored length",
        if shared && k != 1 {
            format!("0: the {name} stream is in the shared section (chunk {i})")
        } else {
            format!(
                "a length the {} codec can produce for {raw} {name} bytes (chunk {i})",
                codec.name()
            )
        },
        stored,
        at,
    ))
}

/// The raw lengths of entry `i`'s streams against its `new_len` and
/// coding (control at `ctrl_at`, diff and literal at `diff_at`).
pub(crate) fn check_stream_lens(
    i: u32,
    coding: &ChunkCoding,
    new_len: u32,
    lens: &[StreamLen; 3],
    ctrl_at: u64,
    diff_at: u64,
) -> Result<()> {
    let [ctrl, diff, lit] = *lens;
    if ctrl.raw == 0 || u64::from(ctrl.raw) > limits::max_ctrl_raw_len(new_len) {
        return Err(Error::invalid(
            "control stream length",
            format!(
                "1..={} for a chunk of {new_len} bytes (chunk {i})",
                limits::max_ctrl_raw_len(new_len)
            ),
            ctrl.raw,
            ctrl_at,
        ));
    }
    let diff_ok = match coding.diff_filter {
        DiffFilter::None => u64::from(diff.raw) + u64::from(lit.raw) <= u64::from(new_len),
        _ => u64::from(diff.raw) <= filter::max_filtered_len(new_len.into()) && lit.raw <= new_len,
    };
    if !diff_ok {
        return Err(Error::invalid(
            "diff and literal lengths",
            format!(
                "at most the chunk's {new_len} NEW bytes together, or with a diff filter \
                 at most {} filtered diff bytes and {new_len} literal bytes (chunk {i})",
                filter::max_filtered_len(new_len.into())
            ),
            format!("{} + {}", diff.raw, lit.raw),
            diff_at,
        ));
    }
    Ok(())
}

/// `count` OLD ranges: non-empty, inside OLD, sorted and not touching.
fn parse_old_ranges(c: &mut Cursor<'_>, count: u16, old_len: u64) -> Result<Vec<(u64, u64)>> {
    let mut old_ranges = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let at = c.offset();
        let s = c.u64("OLD range start")?;
        let l = c.u64("OLD range length")?;
        push_old_range(&mut old_ranges, s, l, old_len, at)?;
    }
    Ok(old_ranges)
}

/// Appends the OLD range `(s, l)` read at `at` to `ranges` when it is
/// non-empty, inside OLD, after the previous one and not touching it.
pub(crate) fn push_old_range(
    ranges: &mut Vec<(u64, u64)>,
    s: u64,
    l: u64,
    old_len: u64,
    at: u64,
) -> Result<()> {
    let after = ranges.last().is_none_or(|&(ps, pl)| s > ps + pl);
    let end = s.checked_add(l).filter(|&e| e <= old_len && l > 0 && after);
    if end.is_none() {
        return Err(Error::invalid(
            "OLD range",
            format!(
                "a non-empty range inside OLD (0..{old_len}), after the previous one, not touching it"
            ),
            format!("{s} + {l}"),
            at,
        ));
    }
    ranges.push((s, l));
    Ok(())
}

/// Reads a fixed-layout shared descriptor (the last 64 bytes of a head of
/// versions 5 to 10) and checks it ([`check_shared_desc`]).
fn parse_shared_desc(d: &mut Cursor<'_>, version: u16, flags: u16) -> Result<SharedDesc> {
    let at = d.offset();
    let mut lens = [StreamLen::default(); 2];
    for len in &mut lens {
        let raw = d.u32("shared block raw length")?;
        let stored = d.u32("shared block stored length")?;
        *len = StreamLen { raw, stored };
    }
    let gap_max = d.u32("shared gap length")?;
    let margin = d.u32("shared context margin")?;
    let hash = d.array("shared section hash")?;
    let at_codec = d.offset();
    let codec = d.u8("shared section codec")?;
    d.reserved_zero(7, "reserved shared-section bytes")?;
    let desc = SharedDesc {
        ctrl: lens[0],
        lit: lens[1],
        gap_max,
        margin,
        hash,
        lzma2: codec == 1,
    };
    let fields = DescOffsets {
        lens: [at, at + 8],
        stored: [at + 4, at + 12],
        gap_max: at + 16,
        margin: at + 20,
        codec: at_codec,
    };
    check_shared_desc(&desc, codec, version, flags, &fields)?;
    Ok(desc)
}

/// Where a shared descriptor's fields were read, for error messages.
#[derive(Default)]
pub(crate) struct DescOffsets {
    /// The control and literal blocks' raw lengths.
    pub lens: [u64; 2],
    /// Their stored lengths.
    pub stored: [u64; 2],
    pub gap_max: u64,
    pub margin: u64,
    pub codec: u64,
}

/// The shared descriptor's rules in a patch of `version` with header
/// `flags`: each block within [`limits::shared_block_limits`] with a
/// stored length a codec can give; gap and margin (version 7) within
/// their limits; `codec` 0, or 1 (LZMA2) from version 7; all zero when
/// there is no control block; no section in an in-place patch before
/// version [`IN_PLACE_SHARED_VERSION`].
pub(crate) fn check_shared_desc(
    desc: &SharedDesc,
    codec: u8,
    version: u16,
    flags: u16,
    at: &DescOffsets,
) -> Result<()> {
    let limits = limits::shared_block_limits(version, flags & FLAG_IN_PLACE != 0);
    for (k, s) in [desc.ctrl, desc.lit].into_iter().enumerate() {
        let (max, name) = [(limits.ctrl, "control"), (limits.lit, "literal")][k];
        if u64::from(s.raw) > max {
            return Err(Error::invalid(
                "shared block raw length",
                format!("at most {max} ({name} block, format version {version})"),
                s.raw,
                at.lens[k],
            ));
        }
        let ok = if s.raw == 0 {
            s.stored == 0
        } else {
            s.stored > 0 && u64::from(s.stored) <= limits::max_stored_len(s.raw.into())
        };
        if !ok {
            return Err(Error::invalid(
                "shared block stored length",
                format!(
                    "a length a codec can produce for {} bytes ({name} block)",
                    s.raw
                ),
                s.stored,
                at.stored[k],
            ));
        }
    }
    if desc.gap_max > limits::MAX_SHARED_GAP {
        return Err(Error::invalid(
            "shared gap length",
            format!("at most {}", limits::MAX_SHARED_GAP),
            desc.gap_max,
            at.gap_max,
        ));
    }
    let margin_max = if version >= 7 {
        limits::MAX_SHARED_MARGIN
    } else {
        0
    };
    if desc.margin > margin_max {
        return Err(Error::invalid(
            "shared context margin",
            format!("at most {margin_max} in format version {version}"),
            desc.margin,
            at.margin,
        ));
    }
    if codec > 1 || (codec == 1 && version < 7) {
        return Err(Error::invalid(
            "shared section codec",
            if version >= 7 {
                "0 (zstd) or 1 (LZMA2)"
            } else {
                "0"
            },
            codec,
            at.codec,
        ));
    }
    check_section_presence(desc, version, flags, at.lens[0])
}

/// A descriptor without a control block is all zero, and an in-place
/// patch has a section from version [`IN_PLACE_SHARED_VERSION`] only.
fn check_section_presence(desc: &SharedDesc, version: u16, flags: u16, at: u64) -> Result<()> {
    let SharedDesc {
        ctrl,
        lit,
        gap_max,
        margin,
        hash,
        lzma2,
    } = *desc;
    if ctrl.raw == 0 && (lit.raw != 0 || gap_max != 0 || margin != 0 || hash != [0; 32] || lzma2) {
        return Err(Error::invalid(
            "shared section",
            "an all-zero descriptor when there is no control block",
            "other bytes",
            at,
        ));
    }
    if desc.is_present() && flags & FLAG_IN_PLACE != 0 && version < IN_PLACE_SHARED_VERSION {
        return Err(Error::invalid(
            "shared section",
            format!(
                "none in an in-place patch of format version {version} (in-place patches \
                 carry one from version {IN_PLACE_SHARED_VERSION})"
            ),
            "a shared section",
            at,
        ));
    }
    Ok(())
}

/// The checks of a whole table whose entries start at byte `table_at`:
/// the chunks tile `0..new_len`, and an in-place patch (`flags`) has no
/// zero chunk.
pub(crate) fn check_chunks(
    chunks: &[ChunkEntry],
    new_len: u64,
    flags: u16,
    table_at: u64,
) -> Result<()> {
    check_tiling(chunks, new_len, table_at)?;
    if flags & FLAG_IN_PLACE != 0 {
        if let Some(i) = chunks.iter().position(|e| e.zero) {
            return Err(Error::invalid(
                "chunk codec",
                format!("no zero chunk in an in-place patch (chunk {i})"),
                ZERO_CHUNK_CODEC,
                table_at,
            ));
        }
    }
    Ok(())
}

fn check_tiling(chunks: &[ChunkEntry], new_len: u64, table_at: u64) -> Result<()> {
    let mut order: Vec<(u64, u32)> = chunks.iter().map(|e| (e.new_offset, e.new_len)).collect();
    order.sort_unstable();
    let mut end = 0u64;
    for (off, len) in order {
        if off != end {
            return Err(Error::invalid(
                "chunk table",
                format!("chunks that tile NEW exactly (next chunk at NEW offset {end})"),
                format!("a chunk at NEW offset {off}"),
                table_at,
            ));
        }
        end = off + u64::from(len);
    }
    if end != new_len {
        return Err(Error::invalid(
            "chunk table",
            format!("chunks that cover NEW's {new_len} bytes"),
            format!("chunks that cover {end}"),
            table_at,
        ));
    }
    Ok(())
}
