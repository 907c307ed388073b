//! Format version 11's compact head: the fields of versions 1 to 10 as
//! canonical varints, without what a reader derives, and no signature
//! block in an unsigned patch.
//!
//! See docs/FORMAT.md, "Compact head (version 11)". On small edits the
//! fixed costs of a patch were most of it: a few edits of a 15 MB JSON
//! file made a 1,074-byte patch of which 648 bytes were head and an
//! all-zero signature block. Every check of [`Head::parse`] holds here too
//! (the rules are shared with the fixed layout's reader in [`crate::head`]);
//! what is new is only how the values are stored:
//!
//! * lengths, offsets and counts are unsigned LEB128 varints in their
//!   shortest encoding ([`Cursor::varint_max`]), each bounded before use;
//! * a stored length that the coding fixes (0 for an empty or shared
//!   stream, the raw length with codec none) is not stored;
//! * the payload hash of an empty payload (BLAKE3 of nothing) is not
//!   stored, nor the NEW hash of a patch's only chunk when the whole-file
//!   hash is plain BLAKE3 (it is the metadata's `new_hash`);
//! * `payload_len` and `max_chunk_len` are computed from the table, as
//!   every reader checked them before.
//!
//! Every value has one encoding, so a parsed head encodes to its bytes.

use crate::chunk::ChunkCoding;
use crate::codec::Codec;
use crate::cursor::{Cursor, put_varint, unzigzag, zigzag};
use crate::error::{Error, ErrorKind, Result};
use crate::filehash::FileHash;
use crate::head::{
    self, COMPACT_VERSION, ChunkEntry, DescOffsets, Engine, FIXED_HEADER_LEN, Head, MAGIC,
    Metadata, SharedDesc, StreamLen, TableSums, ZERO_CHUNK_CODEC,
};
use crate::limits;

/// Fewest bytes of a version-11 head: the fixed header, the metadata of
/// an empty NEW (one-byte lengths and count, two hashes, the engine) and
/// the one byte of an absent shared section.
pub const MIN_HEAD_LEN: usize = FIXED_HEADER_LEN + 1 + 32 + 1 + 32 + 1 + 1 + 1;

/// Fewest bytes of a chunk-table entry (a zero chunk: NEW offset, length
/// and codec byte). A head of `h` bytes names at most `h / 3` chunks, which
/// bounds the table an applier allocates before reading it.
pub const MIN_ENTRY_LEN: u64 = 3;

/// Fewest bytes of one OLD range (two one-byte varints).
const MIN_RANGE_LEN: u64 = 2;

/// Parses the version-11 head `buf` (exactly `head_len` bytes, whose
/// fixed header says `version` and `flags`).
pub(crate) fn parse(buf: &[u8], version: u16, flags: u16) -> Result<Head> {
    let mut c = Cursor::new(&buf[FIXED_HEADER_LEN..], FIXED_HEADER_LEN as u64);
    let (meta, chunk_count) = read_meta(&mut c, version, flags)?;
    let shared = read_shared(&mut c, version, flags)?;
    let table_at = c.offset();
    let (chunks, sums) = read_table(&mut c, version, &meta, chunk_count, &shared)?;
    if !c.is_empty() {
        return Err(Error::invalid(
            "head length",
            format!("the chunk table to end at byte {}", buf.len()),
            format!("it ends at byte {}", c.offset()),
            c.offset(),
        ));
    }
    head::check_chunks(&chunks, meta.new_len, flags, table_at)?;
    Ok(Head {
        version,
        meta,
        chunks,
        head_len: buf.len() as u64,
        payload_len: sums.payload_offset,
        max_chunk_new_len: sums.max_chunk_new_len,
        shared,
    })
}

/// The metadata and the chunk count.
fn read_meta(c: &mut Cursor<'_>, version: u16, flags: u16) -> Result<(Metadata, u32)> {
    let old_len = c.varint_max("OLD length", limits::MAX_FILE_LEN)?;
    let old_hash = c.array("OLD hash")?;
    let new_len = c.varint_max("NEW length", limits::MAX_FILE_LEN)?;
    let new_hash = c.array("NEW hash")?;
    let at = c.offset();
    let chunk_count = c.varint_max("chunk count", u64::from(u32::MAX))?;
    // What the rest of the head can hold after the engine byte and the
    // shared descriptor's first byte.
    let room = (c.remaining() as u64).saturating_sub(2) / MIN_ENTRY_LEN;
    head::check_chunk_count(chunk_count, room, new_len, version, at)?;
    let at = c.offset();
    let engine_id = c.u8("engine")?;
    let engine = Engine::from_id(engine_id)
        .ok_or_else(|| Error::invalid("engine", "0, 1 or 2", engine_id, at))?;
    let meta = Metadata {
        old_len,
        old_hash,
        new_len,
        new_hash,
        engine,
        flags,
    };
    Ok((meta, chunk_count as u32))
}

/// The shared descriptor: one byte 0 when there is no section.
fn read_shared(c: &mut Cursor<'_>, version: u16, flags: u16) -> Result<SharedDesc> {
    let mut lens = [StreamLen::default(); 2];
    let mut at = DescOffsets::default();
    for (k, len) in lens.iter_mut().enumerate() {
        at.lens[k] = c.offset();
        let raw = c.varint_u32("shared block raw length")?;
        if raw == 0 && k == 0 {
            return Ok(SharedDesc::default());
        }
        at.stored[k] = c.offset();
        let stored = c.varint_u32("shared block stored length")?;
        *len = StreamLen { raw, stored };
    }
    at.gap_max = c.offset();
    let gap_max = c.varint_u32("shared gap length")?;
    at.margin = c.offset();
    let margin = c.varint_u32("shared context margin")?;
    at.codec = c.offset();
    let codec = c.u8("shared section codec")?;
    let hash = c.array("shared section hash")?;
    let desc = SharedDesc {
        ctrl: lens[0],
        lit: lens[1],
        gap_max,
        margin,
        hash,
        lzma2: codec == 1,
    };
    head::check_shared_desc(&desc, codec, version, flags, &at)?;
    Ok(desc)
}

/// The NEW hash every entry of a table of `count` chunks takes from the
/// metadata instead of storing it: a patch's only chunk covers all of NEW
/// (the tiling), so with plain BLAKE3 whole-file hashes its NEW hash is
/// the metadata's `new_hash`.
fn implied_new_hash(meta: &Metadata, count: usize) -> Option<[u8; 32]> {
    (count == 1 && FileHash::of_flags(meta.flags) == FileHash::Plain).then_some(meta.new_hash)
}

fn read_table(
    c: &mut Cursor<'_>,
    version: u16,
    meta: &Metadata,
    count: u32,
    shared: &SharedDesc,
) -> Result<(Vec<ChunkEntry>, TableSums)> {
    let mut chunks = Vec::with_capacity(count as usize);
    let mut sums = TableSums::new(shared);
    let implied = implied_new_hash(meta, count as usize);
    let mut prev_end = 0u64;
    for i in 0..count {
        let mut e = read_entry(c, i, version, meta.old_len, prev_end, implied)?;
        e.payload_offset = sums.payload_offset;
        prev_end = e.new_range().end;
        sums.add(&mut e);
        chunks.push(e);
    }
    sums.check_shared(shared, c.offset())?;
    Ok((chunks, sums))
}

/// Whether stream `k` of a chunk coded as `coding` stores its stored
/// length: not when the coding fixes it (an empty stream, a shared
/// chunk's control and literal streams: 0; codec none: the raw length).
fn stores_len(coding: &ChunkCoding, k: usize, raw: u32) -> bool {
    raw != 0 && coding.codec != Codec::None && !(coding.shared && k != 1)
}

/// Entry `i`, whose predecessor's NEW range ends at `prev_end` (0 for the
/// first); `implied`: its NEW hash when the table does not store it.
fn read_entry(
    c: &mut Cursor<'_>,
    i: u32,
    version: u16,
    old_len: u64,
    prev_end: u64,
    implied: Option<[u8; 32]>,
) -> Result<ChunkEntry> {
    let at = c.offset();
    let delta = unzigzag(c.varint_max("chunk NEW offset", u64::MAX)?);
    let new_offset = prev_end
        .checked_add_signed(delta)
        .filter(|&o| o <= limits::MAX_FILE_LEN)
        .ok_or_else(|| {
            Error::invalid(
                "chunk NEW offset",
                format!("at most {} (chunk {i})", limits::MAX_FILE_LEN),
                format!("{prev_end} + ({delta})"),
                at,
            )
        })?;
    let at = c.offset();
    let new_len = c.varint_u32("chunk NEW length")?;
    if c.clone()
        .u8("chunk codec")
        .is_ok_and(|b| b & ZERO_CHUNK_CODEC != 0)
    {
        return read_zero_entry(c, i, new_offset, new_len, at);
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
    let range_count = c.varint_max(
        "OLD range count",
        u64::from(limits::MAX_OLD_RANGES_PER_CHUNK),
    )?;
    let at = c.offset();
    let mut lens = [StreamLen::default(); 3];
    for (k, len) in lens.iter_mut().enumerate() {
        let raw = c.varint_u32("stream raw length")?;
        let stored_at = c.offset();
        let stored = if stores_len(&coding, k, raw) {
            c.varint_u32("stream stored length")?
        } else if coding.codec == Codec::None && !(coding.shared && k != 1) {
            raw
        } else {
            0
        };
        *len = StreamLen { raw, stored };
        head::check_stored_len(i, &coding, k, *len, stored_at)?;
    }
    head::check_stream_lens(i, &coding, new_len, &lens, at, at)?;
    let [ctrl, diff, lit] = lens;
    let mut e = ChunkEntry {
        new_offset,
        new_len,
        codec: coding.codec,
        diff_filter: coding.diff_filter,
        add_mode: coding.add_mode,
        operand_split: coding.operand_split,
        ctrl_split: coding.ctrl_split,
        lit_x86: coding.lit_x86,
        shared: coding.shared,
        ctrl,
        diff,
        lit,
        ..ChunkEntry::zeros(new_offset, new_len)
    };
    e.zero = false;
    e.payload_hash = if e.payload_len() > 0 {
        c.array("payload hash")?
    } else {
        *blake3::hash(&[]).as_bytes()
    };
    e.new_hash = match implied {
        Some(h) => h,
        None => c.array("chunk NEW hash")?,
    };
    e.old_ranges = read_old_ranges(c, range_count, old_len, new_offset)?;
    Ok(e)
}

/// The rest of entry `i`, a zero chunk: its codec byte, `0x80` alone, and
/// nothing after it. `at`: where its length was read.
fn read_zero_entry(
    c: &mut Cursor<'_>,
    i: u32,
    new_offset: u64,
    new_len: u32,
    at: u64,
) -> Result<ChunkEntry> {
    if new_len == 0 {
        return Err(Error::invalid(
            "chunk NEW length",
            format!("1..={} (zero chunk {i})", limits::MAX_ZERO_CHUNK_LEN),
            new_len,
            at,
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
    Ok(ChunkEntry::zeros(new_offset, new_len))
}

/// `count` OLD ranges: the first's start relative to the chunk's
/// `new_offset` (zigzag), each later one's as the gap after the previous
/// range's end, then each length; checked as in every version
/// ([`head::push_old_range`]).
fn read_old_ranges(
    c: &mut Cursor<'_>,
    count: u64,
    old_len: u64,
    new_offset: u64,
) -> Result<Vec<(u64, u64)>> {
    // Each range takes at least two bytes: the count is checked against
    // the bytes present before it sizes the vector.
    if count * MIN_RANGE_LEN > c.remaining() as u64 {
        return Err(Error::at(
            ErrorKind::Truncated {
                what: "OLD ranges",
                needed: count * MIN_RANGE_LEN,
                available: c.remaining() as u64,
            },
            c.offset(),
        ));
    }
    let mut ranges: Vec<(u64, u64)> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let at = c.offset();
        let start = match ranges.last() {
            None => {
                let d = unzigzag(c.varint_max("OLD range start", u64::MAX)?);
                new_offset.checked_add_signed(d)
            }
            Some(&(s, l)) => {
                let gap = c.varint_max("OLD range start", limits::MAX_FILE_LEN)?;
                (s + l).checked_add(gap)
            }
        };
        let len = c.varint_max("OLD range length", limits::MAX_FILE_LEN)?;
        let Some(start) = start else {
            return Err(Error::invalid(
                "OLD range",
                format!("a range inside OLD (0..{old_len})"),
                "a start outside 0..2^64",
                at,
            ));
        };
        head::push_old_range(&mut ranges, start, len, old_len, at)?;
    }
    Ok(ranges)
}

/// The version-11 head of `meta`, `chunks` (in table order) and `shared`.
/// The version is 11, or a later one when a feature needs it.
pub(crate) fn encode(meta: &Metadata, chunks: &[ChunkEntry], shared: &SharedDesc) -> Vec<u8> {
    let version = head::features_version(meta, chunks, shared).max(COMPACT_VERSION);
    let mut out = Vec::with_capacity(MIN_HEAD_LEN + 100 * chunks.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&meta.flags.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    put_varint(&mut out, meta.old_len);
    out.extend_from_slice(&meta.old_hash);
    put_varint(&mut out, meta.new_len);
    out.extend_from_slice(&meta.new_hash);
    put_varint(&mut out, chunks.len() as u64);
    out.push(meta.engine.id());
    write_shared(&mut out, shared);
    let implied = implied_new_hash(meta, chunks.len()).is_some();
    let mut prev_end = 0u64;
    for e in chunks {
        write_entry(&mut out, e, prev_end, implied);
        prev_end = e.new_range().end;
    }
    let head_len = u32::try_from(out.len()).expect("head fits in u32");
    out[12..16].copy_from_slice(&head_len.to_le_bytes());
    out
}

fn write_shared(out: &mut Vec<u8>, shared: &SharedDesc) {
    if !shared.is_present() {
        out.push(0);
        return;
    }
    for v in [
        shared.ctrl.raw,
        shared.ctrl.stored,
        shared.lit.raw,
        shared.lit.stored,
        shared.gap_max,
        shared.margin,
    ] {
        put_varint(out, v.into());
    }
    out.push(u8::from(shared.lzma2));
    out.extend_from_slice(&shared.hash);
}

/// Entry `e`, after an entry whose NEW range ends at `prev_end`;
/// `implied`: its NEW hash is the metadata's, not stored.
fn write_entry(out: &mut Vec<u8>, e: &ChunkEntry, prev_end: u64, implied: bool) {
    // Both offsets are at most 2^62 + 2^32: the difference fits an i64.
    put_varint(out, zigzag(e.new_offset as i64 - prev_end as i64));
    put_varint(out, e.new_len.into());
    if e.zero {
        out.push(ZERO_CHUNK_CODEC);
        return;
    }
    let coding = e.coding();
    coding.write(out);
    put_varint(out, e.old_ranges.len() as u64);
    for (k, s) in [e.ctrl, e.diff, e.lit].into_iter().enumerate() {
        put_varint(out, s.raw.into());
        if stores_len(&coding, k, s.raw) {
            put_varint(out, s.stored.into());
        }
    }
    if e.payload_len() > 0 {
        out.extend_from_slice(&e.payload_hash);
    }
    if !implied {
        out.extend_from_slice(&e.new_hash);
    }
    // Ranges are sorted and apart, as the parser requires (what the
    // differ makes). Ranges out of order (an entry no parser accepted)
    // encode to a gap past 2^63 that the parser refuses, never a panic.
    let mut prev: Option<u64> = None;
    for &(s, l) in &e.old_ranges {
        match prev {
            None => put_varint(out, zigzag((s as i64).wrapping_sub(e.new_offset as i64))),
            Some(end) => put_varint(out, s.wrapping_sub(end)),
        }
        put_varint(out, l);
        prev = Some(s.wrapping_add(l));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{AddMode, DiffFilter};
    use crate::head::{FLAG_BLOCK_HASH, FLAG_IN_PLACE, FLAG_SIGNED};

    fn sl(raw: u32, stored: u32) -> StreamLen {
        StreamLen { raw, stored }
    }

    /// A head of three chunks: a shared zstd chunk with two OLD ranges,
    /// a zero chunk, and a chunk stored with codec none; a shared section.
    fn sample() -> (Metadata, Vec<ChunkEntry>, SharedDesc) {
        let meta = Metadata {
            old_len: 10_000,
            old_hash: [1; 32],
            new_len: 9_000,
            new_hash: [2; 32],
            engine: Engine::SuffixArray,
            flags: 0,
        };
        let base = ChunkEntry {
            zero: false,
            ..ChunkEntry::zeros(0, 4096)
        };
        let a = ChunkEntry {
            codec: Codec::Zstd(0),
            diff_filter: DiffFilter::Runs,
            add_mode: AddMode::Words32,
            shared: true,
            ctrl: sl(40, 0),
            diff: sl(300, 25),
            lit: sl(70, 0),
            payload_hash: [3; 32],
            new_hash: [4; 32],
            old_ranges: vec![(0, 100), (200, 3000)],
            ..base.clone()
        };
        let c = ChunkEntry {
            new_offset: 8192,
            new_len: 808,
            ctrl: sl(5, 5),
            lit: sl(800, 800),
            payload_hash: [5; 32],
            new_hash: [6; 32],
            old_ranges: vec![(8000, 500)],
            ..base
        };
        let shared = SharedDesc {
            ctrl: sl(40, 30),
            lit: sl(70, 50),
            gap_max: 4096,
            margin: 1024,
            hash: [7; 32],
            lzma2: true,
        };
        (meta, vec![a, ChunkEntry::zeros(4096, 4096), c], shared)
    }

    fn sample_head() -> Vec<u8> {
        let (meta, chunks, shared) = sample();
        Head::encode_with(&meta, &chunks, &shared)
    }

    /// `head` with its head length set to its length.
    fn fix_len(mut head: Vec<u8>) -> Vec<u8> {
        let len = head.len() as u32;
        head[12..16].copy_from_slice(&len.to_le_bytes());
        head
    }

    #[test]
    fn round_trips_and_derives() {
        let (meta, chunks, shared) = sample();
        let bytes = sample_head();
        let h = Head::parse(&bytes).unwrap();
        assert_eq!(h.version, COMPACT_VERSION);
        assert_eq!(h.features_version(), 9, "a zero chunk");
        assert_eq!(h.meta, meta);
        assert_eq!(h.shared, shared);
        assert_eq!(h.head_len, bytes.len() as u64);
        assert_eq!(h.payload_len, 30 + 50 + 25 + 805);
        assert_eq!(h.max_chunk_new_len, 4096);
        for (got, want) in h.chunks.iter().zip(&chunks) {
            assert_eq!(
                (got.new_range(), got.zero, &got.old_ranges, got.new_hash),
                (want.new_range(), want.zero, &want.old_ranges, want.new_hash)
            );
            assert_eq!(
                (got.ctrl, got.diff, got.lit),
                (want.ctrl, want.diff, want.lit)
            );
        }
        assert_eq!(h.chunks[2].payload_offset, 30 + 50 + 25);
        assert_eq!(Head::encode_with(&h.meta, &h.chunks, &h.shared), bytes);
        // The fixed layout of the same head: 544 bytes instead of 289, of
        // which 256 are hashes.
        let fixed = Head::encode_fixed_with(&meta, &chunks, &shared);
        assert_eq!(Head::parse(&fixed).unwrap().chunks, h.chunks);
        assert_eq!((bytes.len(), fixed.len()), (289, 544));
    }

    #[test]
    fn derived_hashes_are_not_stored() {
        let (mut meta, chunks, _) = sample();
        // One chunk of all NEW: its NEW hash is the metadata's.
        let mut one = chunks[2].clone();
        one.new_offset = 0;
        meta.new_len = one.new_len.into();
        one.new_hash = meta.new_hash;
        let with = Head::encode(&meta, std::slice::from_ref(&one));
        let h = Head::parse(&with).unwrap();
        assert_eq!(h.chunks[0].new_hash, meta.new_hash);
        // Two chunks, or block-list hashes: stored.
        meta.flags = FLAG_BLOCK_HASH;
        let block = Head::encode(&meta, std::slice::from_ref(&one));
        assert_eq!(block.len(), with.len() + 32);
        // An empty payload's hash is BLAKE3 of nothing, not stored.
        let mut empty = one.clone();
        (empty.ctrl, empty.lit) = (sl(5, 5), sl(0, 0));
        empty.codec = Codec::Zstd(0);
        empty.shared = true;
        empty.ctrl.stored = 0;
        let shared = SharedDesc {
            ctrl: sl(5, 5),
            ..SharedDesc::default()
        };
        let h = Head::parse(&Head::encode_with(&meta, &[empty], &shared)).unwrap();
        assert_eq!(h.chunks[0].payload_hash, *blake3::hash(&[]).as_bytes());
    }

    /// OLD ranges out of order or touching (an entry the parser never
    /// accepts; the fuzz harness builds such entries) encode without a
    /// panic to a head the parser refuses.
    #[test]
    fn ranges_out_of_order_encode_to_a_refused_head() {
        let (meta, chunks, shared) = sample();
        let i = chunks.iter().position(|e| e.old_ranges.len() == 2).unwrap();
        let (a, b) = (chunks[i].old_ranges[0], chunks[i].old_ranges[1]);
        for ranges in [vec![b, a], vec![a, a], vec![a, (a.0 + a.1, 1)]] {
            let mut bad = chunks.clone();
            bad[i].old_ranges = ranges.clone();
            let bytes = Head::encode_with(&meta, &bad, &shared);
            assert!(Head::parse(&bytes).is_err(), "{ranges:?}");
        }
    }

    /// Every prefix of a head is refused, whether the head length names
    /// the whole head or the prefix; never a panic.
    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample_head();
        for len in 0..bytes.len() {
            assert!(Head::parse(&bytes[..len]).is_err(), "cut at {len}");
            if len >= FIXED_HEADER_LEN {
                let cut = fix_len(bytes[..len].to_vec());
                assert!(Head::parse(&cut).is_err(), "head of {len} bytes");
            }
        }
        // A byte more is refused too (the table must end the head).
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Head::parse(&fix_len(longer)).is_err());
    }

    /// Every bit flip of the head is refused or gives a head that encodes
    /// to the flipped bytes (one encoding per value).
    #[test]
    fn bit_flips_parse_canonically_or_fail() {
        let bytes = sample_head();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                if let Ok(h) = Head::parse(&b) {
                    assert_eq!(Head::encode_with(&h.meta, &h.chunks, &h.shared), b);
                }
            }
        }
    }

    /// The offset of the first varint after the fixed header (OLD length).
    const OLD_LEN_AT: usize = FIXED_HEADER_LEN;

    #[test]
    fn overlong_and_overflowing_varints_are_refused() {
        let bytes = sample_head();
        let at = OLD_LEN_AT;
        // OLD length 10,000 is `90 4E`: written in three bytes instead.
        assert_eq!(bytes[at..at + 2], [0x90, 0x4E]);
        let mut long = bytes[..at].to_vec();
        long.extend_from_slice(&[0x90, 0xCE, 0x00]);
        long.extend_from_slice(&bytes[at + 2..]);
        let e = Head::parse(&fix_len(long)).unwrap_err().to_string();
        assert!(e.contains("shortest encoding"), "{e}");
        // Eleven bytes, and ten whose last overflows 64 bits.
        for v in [vec![0xFF; 10], [vec![0xFF; 9], vec![0x02]].concat()] {
            let mut over = bytes[..at].to_vec();
            over.extend_from_slice(&v);
            over.extend_from_slice(&bytes[at + 2..]);
            let e = Head::parse(&fix_len(over)).unwrap_err().to_string();
            assert!(e.contains("OLD length"), "{e}");
        }
        // A length past 2^62.
        let mut big = bytes[..at].to_vec();
        put_varint(&mut big, limits::MAX_FILE_LEN + 1);
        big.extend_from_slice(&bytes[at + 2..]);
        let e = Head::parse(&fix_len(big)).unwrap_err().to_string();
        assert!(e.contains("OLD length"), "{e}");
    }

    /// Counts are checked against the bytes present before anything is
    /// allocated for them.
    #[test]
    fn counts_are_bounded_by_the_head() {
        let (meta, _, _) = sample();
        // Four million chunks named by a head of a hundred bytes.
        let mut h = Head::encode(&meta, &[]);
        let count_at = FIXED_HEADER_LEN + 2 + 32 + 2 + 32;
        assert_eq!(h[count_at], 0);
        let mut b = h[..count_at].to_vec();
        put_varint(&mut b, u64::from(limits::MAX_CHUNKS));
        b.extend_from_slice(&h[count_at + 1..]);
        let e = Head::parse(&fix_len(b)).unwrap_err().to_string();
        assert!(e.contains("chunk count"), "{e}");
        // 4,096 OLD ranges named by an entry that holds one.
        let (meta, chunks, _) = sample();
        let mut one = chunks[2].clone();
        (one.new_offset, one.new_hash) = (0, [9; 32]);
        let meta = Metadata {
            new_len: one.new_len.into(),
            ..meta
        };
        h = Head::encode(&meta, &[one]);
        // Fixed header, lengths of two bytes and hashes, count, engine,
        // section, NEW offset, length, coding bytes.
        let range_count_at = FIXED_HEADER_LEN + 2 + 32 + 2 + 32 + 3 + 1 + 2 + 2;
        assert_eq!(h[range_count_at], 1);
        h[range_count_at] = 0x80;
        h.insert(range_count_at + 1, 0x20);
        let e = Head::parse(&fix_len(h)).unwrap_err().to_string();
        assert!(e.contains("OLD ranges"), "{e}");
    }

    #[test]
    fn signed_flag_and_block() {
        let (meta, chunks, shared) = sample();
        let key = crate::SecretKey([3; 32]);
        let signed = crate::encode_head_with(&meta, &chunks, &shared, Some(&key));
        let unsigned = crate::encode_head_with(&meta, &chunks, &shared, None);
        let h = Head::parse(&signed).unwrap();
        assert_eq!(h.meta.flags, FLAG_SIGNED);
        assert_eq!(h.signature_len(), 128);
        assert_eq!(signed.len(), unsigned.len() + 128);
        assert_eq!(Head::parse(&unsigned).unwrap().signature_len(), 0);
        let at = h.head_len as usize;
        let block = crate::parse_signature(&h, &signed[at..], at as u64).unwrap();
        block.verify(&signed[..at], Some(&key.public())).unwrap();
        // The flag without a block, and with an all-zero one.
        assert!(crate::parse_signature(&h, &signed[at..at + 127], 0).is_err());
        let zeros = [0u8; 128];
        assert!(crate::parse_signature(&h, &zeros, 0).is_err());
        // The signature covers the flag: a patch stripped of its block
        // and flag is another, unsigned patch.
        assert_ne!(signed[..10], [0; 10]);
        assert_eq!(signed[..10], unsigned[..10]);
        assert_ne!(signed[10..12], unsigned[10..12]);
        assert_eq!(signed[12..at], unsigned[12..]);
    }

    #[test]
    fn rules_of_every_version_hold() {
        let (meta, chunks, shared) = sample();
        let refused = |meta: &Metadata, chunks: &[ChunkEntry], shared: &SharedDesc, want: &str| {
            let e = Head::parse(&Head::encode_with(meta, chunks, shared))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{want}: {e}");
        };
        // No zero chunk in an in-place patch.
        let ip = Metadata {
            flags: FLAG_IN_PLACE,
            ..meta.clone()
        };
        refused(&ip, &chunks, &shared, "no zero chunk in an in-place patch");
        // The tiling.
        let mut gap = chunks.clone();
        gap[2].new_offset += 1;
        refused(&meta, &gap, &shared, "tile NEW");
        // Touching OLD ranges, ranges past OLD.
        let mut touch = chunks.clone();
        touch[0].old_ranges = vec![(0, 100), (100, 5)];
        refused(&meta, &touch, &shared, "OLD range");
        let mut past = chunks.clone();
        past[2].old_ranges = vec![(9_999, 2)];
        refused(&meta, &past, &shared, "OLD range");
        // The shared blocks' lengths add up, within their limits.
        let mut s = shared;
        s.lit.raw += 1;
        refused(&meta, &chunks, &s, "shared section");
        s.lit.raw = (32 << 20) + 1;
        refused(&meta, &chunks, &s, "shared block raw length");
        // A stored length a codec cannot give.
        let mut bomb = chunks.clone();
        bomb[0].diff.stored = 300 + 300 / 64 + 1025;
        refused(&meta, &bomb, &shared, "stream stored length");
        // A zero chunk of no bytes.
        let mut empty = chunks;
        empty[1].new_len = 0;
        refused(&meta, &empty, &shared, "chunk NEW length");
    }
}
