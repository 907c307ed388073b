//! The shared section (format version 5): control and literal streams of
//! several chunks compressed together, with OLD as context.
//!
//! # Why
//!
//! Each chunk's streams are compressed on their own so chunks decode
//! independently. When a patch is small that costs what matters most: new
//! text in one chunk often repeats new text of another (two copies of one
//! library in a source tarball get the same edits), and the literals of an
//! edit resemble the OLD bytes they replace, which no chunk stream sees. On
//! the tar-src corpus pair the four literal streams took 60.8 KB compressed
//! apart, 54.0 KB as one stream and 50.5 KB as one stream with the OLD gaps
//! below as its prefix.
//!
//! # What it is
//!
//! A version-5 patch may open its payload section with two zstd frames:
//! the *control block*, every shared chunk's control stream (in its stored
//! form) back to back in table order, and the *literal block*, likewise
//! their literal streams, compressed with the *OLD context* as a zstd
//! prefix. A shared chunk (codec bit 6) stores neither stream in its
//! payload; it finds them in the blocks at offsets that follow from the
//! table ([`ChunkEntry::shared_ctrl_at`]).
//!
//! The OLD context is made from the ops of the shared chunks, in table
//! order ([`OldContext`]): for each run of INSERT ops, the OLD bytes from
//! the OLD cursor before the run to the OLD offset of the next COPY or ADD
//! of the same chunk — what the inserted bytes replaced — when that gap is
//! 1 to `gap_max` bytes long and still fits in
//! [`limits::MAX_SHARED_CONTEXT`]. So the control block is decoded first,
//! then the context read from OLD, then the literal block.
//!
//! Version 7 adds a *margin*: each gap (now 0 to `gap_max` bytes, backwards
//! too) widened by `margin` OLD bytes on each side, the ranges sorted and
//! merged, within [`limits::MAX_SHARED_CONTEXT_WIDE`]. New text
//! resembles the OLD text around an edit, not only the bytes it replaced:
//! on a JavaScript bundle and a source tarball a 1 KiB margin made the
//! literal block 10–17% smaller.
//!
//! # Bounds
//!
//! An applier decodes the section once, before any chunk, and holds the
//! two blocks (at most [`limits::MAX_SHARED_BLOCK`] each, or
//! [`limits::BlockLimits::WIDE`], 40 MiB together, in a normal patch from
//! version 10) for the whole apply; the context ([`limits::MAX_SHARED_CONTEXT`]) only while the
//! literal block decodes. Chunks then decode independently as before, so
//! parallel and streaming apply are unchanged.
//!
//! In-place patches carry a section from version 8 on
//! ([`crate::head::IN_PLACE_SHARED_VERSION`]): the context reads OLD, which
//! an in-place apply overwrites, so the in-place applier decodes the
//! section before its first write ([`SharedControl`] says which OLD ranges
//! to read) and keeps the decoded literal block in its journal, from which
//! a resumed apply takes it. The section adds no ordering constraint: it is
//! read from OLD once, before any chunk runs.

use std::borrow::Cow;

use crate::codec::Codec;
use crate::error::{Error, ErrorKind, Result};
use crate::head::{ChunkEntry, Head, SharedDesc, StreamLen};
use crate::ops::{Op, OpDecoder};
use crate::{EncodedChunk, coding, limits};

/// A decoded shared section: the control and literal blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shared {
    ctrl: Vec<u8>,
    lit: Vec<u8>,
}

/// No shared section: what patches before version 5 (and version-5 patches
/// without one) decode with.
pub static NO_SHARED: Shared = Shared {
    ctrl: Vec::new(),
    lit: Vec::new(),
};

/// An encoded shared section, ready to be written after the signature
/// block: its descriptor (for the head) and its stored bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedSection {
    /// The head's descriptor.
    pub desc: SharedDesc,
    /// The control block's then the literal block's stored bytes.
    pub bytes: Vec<u8>,
}

impl Shared {
    /// Decodes the section of a patch with `head` from its stored bytes
    /// (`section`, the first [`SharedDesc::stored_len`] bytes of the
    /// payload section), reading the OLD context from `old`. A head
    /// without a section gives an empty one.
    pub fn decode(head: &Head, section: &[u8], old: &[u8]) -> Result<Shared> {
        let Some(control) = SharedControl::decode(head, section)? else {
            return Ok(Shared::default());
        };
        if old.len() as u64 != head.meta.old_len {
            return Err(Error::invalid(
                "OLD length",
                head.meta.old_len.to_string(),
                old.len(),
                16,
            ));
        }
        let mut context = Vec::with_capacity(control.context_len() as usize);
        for &(a, b) in control.context_ranges() {
            context.extend_from_slice(&old[a as usize..b as usize]);
        }
        control.finish(head, section, &context)
    }

    /// Bytes of the decoded blocks (what an applier holds for the whole
    /// apply).
    pub fn heap_len(&self) -> u64 {
        (self.ctrl.len() + self.lit.len()) as u64
    }

    /// What can be checked of the section without OLD: its hash and its
    /// control block. The literal block needs OLD's context, so the result
    /// holds zeros in its place (as many as the block's raw length), which
    /// lets [`crate::decode_chunk_in`] check every shared chunk's structure.
    pub fn decode_without_old(head: &Head, section: &[u8]) -> Result<Shared> {
        Ok(match control_block(head, section)? {
            Some(ctrl) => Shared {
                ctrl,
                lit: vec![0; head.shared.lit.raw as usize],
            },
            None => Shared::default(),
        })
    }

    /// Chunk `e`'s control and literal streams, decompressed but in their
    /// stored form: from the section for a shared chunk, else decompressed
    /// from `c` and `l` (its payload's parts) with its codec.
    pub(crate) fn streams<'s>(&'s self, e: &ChunkEntry, c: &[u8], l: &[u8]) -> Result<CtrlLit<'s>> {
        if e.shared {
            return Ok((
                Cow::Borrowed(slice(&self.ctrl, e.shared_ctrl_at, e.ctrl.raw, "control")?),
                Cow::Borrowed(slice(&self.lit, e.shared_lit_at, e.lit.raw, "literal")?),
            ));
        }
        let ctrl = e
            .codec
            .decompress(c, e.ctrl.raw as usize, "control stream")?;
        let lit = e
            .codec
            .decompress(l, e.lit.raw as usize, "literal stream")?;
        Ok((Cow::Owned(ctrl), Cow::Owned(lit)))
    }
}

/// A chunk's control and literal streams in stored form, borrowed from the
/// section or decompressed.
pub(crate) type CtrlLit<'s> = (Cow<'s, [u8]>, Cow<'s, [u8]>);

/// A shared section half decoded: its hash checked, its control block
/// decoded and the OLD ranges of its literal block's context found — all
/// from the patch alone. [`Shared::decode`] reads those ranges from an OLD
/// in memory; an applier that holds OLD elsewhere (the in-place applier,
/// which reads a file or device) reads them itself and calls
/// [`SharedControl::finish`], or takes a literal block it decoded before
/// ([`SharedControl::with_literal_block`]).
#[derive(Clone, Debug)]
pub struct SharedControl {
    ctrl: Vec<u8>,
    /// `[start, end)` OLD ranges whose bytes, back to back in this order,
    /// are the context.
    context: Vec<(u64, u64)>,
}

impl SharedControl {
    /// The section of a patch with `head` (its stored bytes `section`)
    /// checked against its hash, its control block decoded and the
    /// context's OLD ranges found; `None` when the patch has no section.
    pub fn decode(head: &Head, section: &[u8]) -> Result<Option<SharedControl>> {
        let Some(ctrl) = control_block(head, section)? else {
            return Ok(None);
        };
        let desc = &head.shared;
        let mut context = OldContext::new(desc.gap_max, desc.margin);
        for e in head.chunks.iter().filter(|e| e.shared) {
            let s = slice(&ctrl, e.shared_ctrl_at, e.ctrl.raw, "control")?;
            context.add_chunk(e, s, head.meta.old_len)?;
        }
        Ok(Some(SharedControl {
            ctrl,
            context: context.finish_ranges(),
        }))
    }

    /// The OLD ranges `[start, end)` of the literal block's context, in
    /// the order their bytes are concatenated (inside OLD, at most
    /// [`limits::MAX_SHARED_CONTEXT_WIDE`] bytes in all).
    pub fn context_ranges(&self) -> &[(u64, u64)] {
        &self.context
    }

    /// Bytes of the context.
    pub fn context_len(&self) -> u64 {
        self.context.iter().map(|&(a, b)| b - a).sum()
    }

    /// The decoded section: the literal block decoded (to exactly its
    /// declared raw length) with `context`, the bytes of
    /// [`SharedControl::context_ranges`] back to back.
    pub fn finish(self, head: &Head, section: &[u8], context: &[u8]) -> Result<Shared> {
        let desc = &head.shared;
        if context.len() as u64 != self.context_len() {
            return Err(Error::new(ErrorKind::Codec(format!(
                "shared literal block: a context of {} bytes, not {}",
                context.len(),
                self.context_len()
            ))));
        }
        let (stored, raw) = (&section[desc.ctrl.stored as usize..], desc.lit.raw as usize);
        let what = "shared literal block";
        let lit = if desc.lzma2 {
            crate::codec::lzma2_decompress_with_prefix(stored, raw, context, what)?
        } else {
            crate::codec::zstd_decompress_with_prefix(stored, raw, context, what)?
        };
        Ok(Shared {
            ctrl: self.ctrl,
            lit,
        })
    }

    /// The decoded section with `lit` as its literal block, decoded
    /// earlier from the same section (an in-place applier keeps it in its
    /// journal, since the OLD it was decoded with is overwritten). Only
    /// its length is checked here; the caller vouches for its bytes (by a
    /// hash of its own), and every chunk built from them is checked by its
    /// NEW hash anyway.
    pub fn with_literal_block(self, head: &Head, lit: Vec<u8>) -> Result<Shared> {
        if lit.len() as u64 != u64::from(head.shared.lit.raw) {
            return Err(Error::new(ErrorKind::Codec(format!(
                "shared literal block: {} bytes, not the declared {}",
                lit.len(),
                head.shared.lit.raw
            ))));
        }
        Ok(Shared {
            ctrl: self.ctrl,
            lit,
        })
    }
}

impl Shared {
    /// The decoded literal block (what an in-place applier keeps in its
    /// journal: see [`SharedControl::with_literal_block`]).
    pub fn literal_block(&self) -> &[u8] {
        &self.lit
    }
}

/// The section's length and hash checked and its control block decoded;
/// `None` when the patch has no section.
fn control_block(head: &Head, section: &[u8]) -> Result<Option<Vec<u8>>> {
    let desc = &head.shared;
    if section.len() as u64 != desc.stored_len() {
        return Err(Error::invalid(
            "shared section",
            format!("{} bytes", desc.stored_len()),
            section.len(),
            head.payload_start(),
        ));
    }
    if !desc.is_present() {
        return Ok(None);
    }
    if blake3::hash(section).as_bytes() != &desc.hash {
        return Err(Error::new(ErrorKind::HashMismatch {
            what: "the shared section (damaged or tampered patch)".into(),
        }));
    }
    let c = &section[..desc.ctrl.stored as usize];
    desc.codec()
        .decompress(c, desc.ctrl.raw as usize, "shared control block")
        .map(Some)
}

fn slice<'s>(block: &'s [u8], at: u64, len: u32, what: &str) -> Result<&'s [u8]> {
    usize::try_from(at)
        .ok()
        .and_then(|a| block.get(a..a.checked_add(len as usize)?))
        .ok_or_else(|| {
            Error::new(ErrorKind::Codec(format!(
                "shared {what} block: {len} bytes at {at} are not in the decoded section \
                 ({} bytes; was the section decoded?)",
                block.len()
            )))
        })
}

/// The OLD context of a shared literal block, built chunk by chunk in
/// table order (see the module docs): the rule of version 5 when `margin`
/// is zero, version 7's widened gaps otherwise. It records OLD ranges,
/// not bytes, so it needs only OLD's length; [`OldContext::finish`] reads
/// the bytes. Memory: without a margin at most one range per context byte
/// (touching ranges are joined), with one at most
/// [`limits::MAX_CONTEXT_RANGES`].
#[derive(Clone, Debug)]
pub struct OldContext {
    gap_max: u32,
    margin: u32,
    /// Without a margin: the context's ranges in op order, `len` bytes in
    /// all. With one: the widened gaps in op order, which
    /// [`OldContext::finish_ranges`] sorts and merges.
    ranges: Vec<(u64, u64)>,
    len: u64,
    old_len: u64,
    /// A gap of the rule was left out for a limit (the context's length
    /// or its number of ranges).
    cut: bool,
}

impl OldContext {
    /// An empty context for a section with `gap_max` and `margin`.
    pub fn new(gap_max: u32, margin: u32) -> OldContext {
        OldContext {
            gap_max,
            margin,
            ranges: Vec::new(),
            len: 0,
            old_len: 0,
            cut: false,
        }
    }

    /// Appends chunk `e`'s part of the context, from its control stream
    /// `ctrl` in stored form, for an OLD of `old_len` bytes. Ops are read
    /// while they decode; a control stream that does not decode fails when
    /// its chunk is applied.
    pub fn add_chunk(&mut self, e: &ChunkEntry, ctrl: &[u8], old_len: u64) -> Result<()> {
        self.old_len = old_len;
        let joined;
        let ctrl = if e.ctrl_split {
            joined = coding::join(ctrl)?;
            &joined[..]
        } else {
            ctrl
        };
        // The diff length a filter decodes to is not known here: bound it
        // by the chunk, which every valid patch meets.
        let ops = OpDecoder::new(
            ctrl,
            e.new_offset,
            e.new_len.into(),
            e.new_len.into(),
            e.lit.raw.into(),
            old_len,
            &e.old_ranges,
        );
        let mut cursor = e.new_offset;
        let mut pending: Option<u64> = None;
        for op in ops.map_while(|o| o.ok()) {
            match op {
                Op::Copy { old: p, len } | Op::Add { old: p, len } => {
                    if let Some(c) = pending.take() {
                        self.gap(c, p);
                    }
                    cursor = p + len;
                }
                Op::Insert { .. } => {
                    pending.get_or_insert(cursor);
                }
                Op::Zero { .. } => {}
            }
        }
        Ok(())
    }

    /// The gap from OLD offset `c` (the cursor before a run of INSERTs) to
    /// `p` (the next COPY or ADD).
    fn gap(&mut self, c: u64, p: u64) {
        if self.margin == 0 {
            let gap = p.wrapping_sub(c);
            if c < p && gap <= u64::from(self.gap_max) {
                if self.len + gap > limits::MAX_SHARED_CONTEXT as u64 {
                    self.cut = true;
                    return;
                }
                self.len += gap;
                match self.ranges.last_mut() {
                    Some(last) if last.1 == c => last.1 = p,
                    _ => self.ranges.push((c, p)),
                }
            }
            return;
        }
        let (lo, hi) = (c.min(p), c.max(p));
        if hi - lo > u64::from(self.gap_max) {
            return;
        }
        if self.ranges.len() >= limits::MAX_CONTEXT_RANGES {
            self.cut = true;
            return;
        }
        let m = u64::from(self.margin);
        let a = lo.saturating_sub(m);
        let b = hi.saturating_add(m).min(self.old_len);
        if a < b {
            self.ranges.push((a, b));
        }
    }

    /// The finished context as OLD ranges `[start, end)`, in the order
    /// their bytes are concatenated: without a margin the gaps in op
    /// order; with one, the widened gaps sorted by their start,
    /// overlapping or touching ones merged, each kept whole while the
    /// context stays within its limit.
    pub fn finish_ranges(self) -> Vec<(u64, u64)> {
        self.finish_ranges_cut().0
    }

    /// [`OldContext::finish_ranges`], and whether a gap of the rule was
    /// left out for a limit.
    fn finish_ranges_cut(mut self) -> (Vec<(u64, u64)>, bool) {
        if self.margin == 0 {
            return (self.ranges, self.cut);
        }
        let limit = limits::max_shared_context(self.margin) as u64;
        self.ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.ranges.len());
        for &(a, b) in &self.ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        let mut len = 0u64;
        let before = merged.len();
        merged.retain(|&(a, b)| {
            let keep = len + (b - a) <= limit;
            if keep {
                len += b - a;
            }
            keep
        });
        let cut = self.cut || merged.len() < before;
        (merged, cut)
    }

    /// The finished context's bytes, read from `old` (the OLD whose length
    /// the chunks were added with).
    pub fn finish(self, old: &[u8]) -> Vec<u8> {
        self.finish_cut(old).0
    }

    /// [`OldContext::finish`], and whether a gap of the rule was left out
    /// for a limit.
    fn finish_cut(self, old: &[u8]) -> (Vec<u8>, bool) {
        let (ranges, cut) = self.finish_ranges_cut();
        let mut bytes = Vec::with_capacity(ranges.iter().map(|&(a, b)| (b - a) as usize).sum());
        for (a, b) in ranges {
            bytes.extend_from_slice(&old[a as usize..b as usize]);
        }
        (bytes, cut)
    }
}

/// The uncompressed blocks of a shared section for some chunks, and the
/// OLD context of its literal block: the section's encoder. It moves
/// every chunk it is made from into the section; whether that pays is
/// the differ's choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedBlocks {
    ctrl: Vec<u8>,
    lit: Vec<u8>,
    context: Vec<u8>,
    /// The context rule took a gap that a limit then left out.
    context_cut: bool,
    gap_max: u32,
    margin: u32,
}

impl SharedBlocks {
    /// The blocks of `chunks` (in table order, none shared, made from
    /// `old`), with OLD gaps of at most `gap_max` bytes, widened by
    /// `margin` bytes on each side, in the context. `None` when a block
    /// would pass its limit in `max` (at most [`limits::BlockLimits::WIDE`];
    /// a patch whose blocks pass [`limits::MAX_SHARED_BLOCK`] is written in
    /// format version 10, see [`limits::shared_block_limits`]), `gap_max`
    /// [`limits::MAX_SHARED_GAP`] or `margin` [`limits::MAX_SHARED_MARGIN`],
    /// or a chunk is shared already or does not decode.
    pub fn gather(
        old: &[u8],
        chunks: &[EncodedChunk],
        gap_max: u32,
        margin: u32,
        max: limits::BlockLimits,
    ) -> Option<SharedBlocks> {
        let wide = limits::BlockLimits::WIDE;
        let total = |f: fn(&ChunkEntry) -> StreamLen| -> u64 {
            chunks.iter().map(|c| u64::from(f(&c.entry).raw)).sum()
        };
        let (ctrl_raw, lit_raw) = (total(|e| e.ctrl), total(|e| e.lit));
        if chunks.is_empty()
            || ctrl_raw > max.ctrl.min(wide.ctrl)
            || lit_raw > max.lit.min(wide.lit)
            || gap_max > limits::MAX_SHARED_GAP
            || margin > limits::MAX_SHARED_MARGIN
            || chunks.iter().any(|c| c.entry.shared)
        {
            return None;
        }
        let mut ctrl = Vec::with_capacity(ctrl_raw as usize);
        let mut lit = Vec::with_capacity(lit_raw as usize);
        let mut context = OldContext::new(gap_max, margin);
        for c in chunks {
            let e = &c.entry;
            let (cs, rest) = c.payload.split_at(e.ctrl.stored as usize);
            let ls = &rest[e.diff.stored as usize..];
            let (cr, lr) = NO_SHARED.streams(e, cs, ls).ok()?;
            context.add_chunk(e, &cr, old.len() as u64).ok()?;
            ctrl.extend_from_slice(&cr);
            lit.extend_from_slice(&lr);
        }
        let (context, context_cut) = context.finish_cut(old);
        Some(SharedBlocks {
            ctrl,
            lit,
            context,
            context_cut,
            gap_max,
            margin,
        })
    }

    /// These blocks with the context of another `margin` (the same gap
    /// rule), built from the control block already gathered from
    /// `chunks`: no stream is decompressed again. `None` where
    /// [`SharedBlocks::gather`] would refuse the margin.
    pub fn with_margin(
        &self,
        old: &[u8],
        chunks: &[EncodedChunk],
        margin: u32,
    ) -> Option<SharedBlocks> {
        if margin > limits::MAX_SHARED_MARGIN {
            return None;
        }
        let mut context = OldContext::new(self.gap_max, margin);
        let mut at = 0usize;
        for c in chunks {
            let n = c.entry.ctrl.raw as usize;
            context
                .add_chunk(&c.entry, self.ctrl.get(at..at + n)?, old.len() as u64)
                .ok()?;
            at += n;
        }
        let (context, context_cut) = context.finish_cut(old);
        Some(SharedBlocks {
            ctrl: self.ctrl.clone(),
            lit: self.lit.clone(),
            context,
            context_cut,
            gap_max: self.gap_max,
            margin,
        })
    }

    /// True when the context's rule took a gap that a limit (the context's
    /// length, or its number of ranges) then left out. When it is false, a
    /// context with a margin holds every byte of the context of the same
    /// blocks without one (each gap is inside its widened range).
    pub fn context_cut(&self) -> bool {
        self.context_cut
    }

    /// The control block compressed with `codec` (zstd at some level, or
    /// LZMA2).
    pub fn compress_ctrl(&self, codec: Codec) -> Vec<u8> {
        codec.compress(&self.ctrl)
    }

    /// The literal block compressed with `codec` (zstd at some level, or
    /// LZMA2), with the OLD context as its prefix.
    ///
    /// # Panics
    /// With codec none or lz4.
    pub fn compress_lit(&self, codec: Codec) -> Vec<u8> {
        match codec {
            Codec::Zstd(level) => {
                crate::codec::zstd_compress_with_prefix(level, &self.lit, &self.context)
            }
            Codec::Lzma2 => crate::codec::lzma2_compress_with_prefix(&self.lit, &self.context),
            c => panic!("no shared section with codec {}", c.name()),
        }
    }

    /// Lengths of the literal block and of its OLD context.
    pub fn lit_and_context_len(&self) -> (usize, usize) {
        (self.lit.len(), self.context.len())
    }

    /// Bytes `part` of the literal block as one part of an LZMA2 stream
    /// in the context ([`crate::codec::lzma2_compress_part`], matches
    /// reaching at most `window` bytes back): the parts of consecutive
    /// ranges, joined by [`crate::codec::lzma2_join_parts`], are the
    /// literal block compressed with LZMA2 ([`Codec::Lzma2`] in the
    /// descriptor).
    pub fn compress_lit_part(&self, part: std::ops::Range<usize>, window: usize) -> Vec<u8> {
        crate::codec::lzma2_compress_part(&self.lit, &self.context, part, window)
    }

    /// The section whose blocks, compressed with `codec` (zstd or LZMA2),
    /// are `ctrl_stored` and `lit_stored` ([`SharedBlocks::compress_ctrl`],
    /// [`SharedBlocks::compress_lit`]), and the `chunks` it was gathered
    /// from made shared: their control and literal streams leave their
    /// payloads, their entries get the offsets a parser derives.
    pub fn finish(
        self,
        chunks: &mut [EncodedChunk],
        codec: Codec,
        ctrl_stored: Vec<u8>,
        lit_stored: Vec<u8>,
    ) -> SharedSection {
        let (mut ctrl_at, mut lit_at) = (0u64, 0u64);
        for c in chunks.iter_mut() {
            let e = &mut c.entry;
            let d = e.ctrl.stored as usize..e.ctrl.stored as usize + e.diff.stored as usize;
            c.payload = c.payload[d].to_vec();
            e.ctrl.stored = 0;
            e.lit.stored = 0;
            e.shared = true;
            (e.shared_ctrl_at, e.shared_lit_at) = (ctrl_at, lit_at);
            ctrl_at += u64::from(e.ctrl.raw);
            lit_at += u64::from(e.lit.raw);
            e.payload_hash = *blake3::hash(&c.payload).as_bytes();
        }
        debug_assert_eq!(
            (ctrl_at, lit_at),
            (self.ctrl.len() as u64, self.lit.len() as u64),
            "the chunks the blocks were gathered from"
        );
        let ctrl_len = ctrl_stored.len();
        let mut bytes = ctrl_stored;
        bytes.extend_from_slice(&lit_stored);
        let desc = SharedDesc {
            ctrl: StreamLen {
                raw: self.ctrl.len() as u32,
                stored: ctrl_len as u32,
            },
            lit: StreamLen {
                raw: self.lit.len() as u32,
                stored: lit_stored.len() as u32,
            },
            gap_max: self.gap_max,
            margin: self.margin,
            hash: *blake3::hash(&bytes).as_bytes(),
            lzma2: codec == Codec::Lzma2,
        };
        SharedSection { desc, bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChunkEncoder;

    fn bytes(seed: u32, n: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                b"etaoin shrdlu\n{};()"[(x % 19) as usize]
            })
            .collect()
    }

    fn chunk(old: &[u8], new: &[u8], start: u64, ops: &[Op], codec: Codec) -> EncodedChunk {
        let mut enc = ChunkEncoder::new(old, new, start);
        for &op in ops {
            enc.push(op);
        }
        let chunk = enc.new_chunk();
        let (streams, ranges) = enc.finish();
        let coding = crate::ChunkCoding::plain(codec);
        crate::encode_chunk_as(old, &streams, &coding, ranges, start, chunk)
    }

    /// The context is the OLD bytes between the cursor before a run of
    /// INSERTs (ZERO ops inside the run do not end it) and the next COPY or
    /// ADD, when that gap is short and moves forward.
    #[test]
    fn context_follows_the_rule() {
        let old = bytes(1, 4000);
        let mut new = Vec::new();
        new.extend_from_slice(&old[0..100]); // COPY 0..100
        new.extend_from_slice(b"inserted text"); // INSERT 13
        new.extend_from_slice(&old[150..250]); // COPY 150..250: gap 100..150
        new.extend_from_slice(b"more new text here"); // INSERT 18
        new.extend_from_slice(&[0; 40]); // ZERO 40
        new.extend_from_slice(b"and then some"); // INSERT 13
        let add_at = new.len();
        new.extend(old[300..350].iter().map(|b| b.wrapping_add(1))); // ADD 300..350: gap 250..300
        new.extend_from_slice(b"backwards!"); // INSERT 10
        new.extend_from_slice(&old[200..260]); // COPY 200..260: no gap (backwards)
        new.extend_from_slice(b"far jump"); // INSERT 8
        new.extend_from_slice(&old[3000..3100]); // COPY 3000..3100: gap 2740 > max
        let ops = [
            Op::Copy { old: 0, len: 100 },
            Op::Insert { len: 13 },
            Op::Copy { old: 150, len: 100 },
            Op::Insert { len: 18 },
            Op::Zero { len: 40 },
            Op::Insert { len: 13 },
            Op::Add { old: 300, len: 50 },
            Op::Insert { len: 10 },
            Op::Copy { old: 200, len: 60 },
            Op::Insert { len: 8 },
            Op::Copy {
                old: 3000,
                len: 100,
            },
        ];
        assert_eq!(add_at, 100 + 13 + 100 + 18 + 40 + 13);
        let c = chunk(&old, &new, 0, &ops, Codec::None);
        let ctrl = &c.payload[..c.entry.ctrl.stored as usize];
        let context = |gap_max, margin| {
            let mut b = OldContext::new(gap_max, margin);
            b.add_chunk(&c.entry, ctrl, old.len() as u64).unwrap();
            b.finish(&old)
        };
        let want = [&old[100..150], &old[250..300]].concat();
        assert_eq!(context(1000, 0), want);
        // A smaller gap_max leaves out the 50-byte gaps.
        assert!(context(49, 0).is_empty());
        // With a margin of 10 each gap widens by 10 bytes on each side, a
        // backwards one too (cursor 350 after the ADD, next COPY at 200),
        // sorted by start and merged: 90..160, 190..360 (from 190..360 and
        // 240..310). The far one (2740 > 1000) stays out.
        let want = [&old[90..160], &old[190..360]].concat();
        assert_eq!(context(1000, 10), want);
        // A margin of 40 makes all three overlap: one range, 60..390.
        assert_eq!(context(1000, 40), &old[60..390]);
        // The 160-byte backwards gap stays out with gap_max 100.
        let want = [&old[90..160], &old[240..310]].concat();
        assert_eq!(context(100, 10), want);
    }

    /// A gap the rule takes but a limit leaves out marks the context as
    /// cut (the differ then tries the narrow context too); one that fits
    /// does not.
    #[test]
    fn a_context_cut_by_its_limit_says_so() {
        const K: u64 = 1 << 10;
        let mut narrow = OldContext::new(64 << 10, 0);
        narrow.old_len = 64 << 20;
        for k in 0..16 {
            narrow.gap(k * 128 * K, k * 128 * K + 64 * K);
        }
        let (ranges, cut) = narrow.clone().finish_ranges_cut();
        assert_eq!((ranges.len(), cut), (16, false), "1 MiB exactly fits");
        narrow.gap(40 << 20, (40 << 20) + 1);
        let (ranges, cut) = narrow.finish_ranges_cut();
        assert_eq!((ranges.len(), cut), (16, true));
        // With a margin each gap is 192 KiB of context (the first 128):
        // 40 of them fit in 8 MiB, 50 do not.
        let mut wide = OldContext::new(64 << 10, 64 << 10);
        wide.old_len = 64 << 20;
        for k in 0..40 {
            wide.gap(k << 20, (k << 20) + 64 * K);
        }
        assert!(!wide.clone().finish_ranges_cut().1);
        for k in 40..50 {
            wide.gap(k << 20, (k << 20) + 64 * K);
        }
        let (ranges, cut) = wide.finish_ranges_cut();
        assert!(cut);
        assert_eq!(ranges.len(), 43, "kept while within 8 MiB");
    }
}
