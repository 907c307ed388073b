//! The operation vocabulary: how one chunk of NEW is built from OLD.
//!
//! A chunk's payload holds three streams. The *control* stream is a list of
//! operations; ADD takes its bytes from the *diff* stream and INSERT from the
//! *literal* stream, each in order. Keeping the three apart lets each
//! compress well: controls are small integers, diff bytes are mostly zero,
//! literals are new data.
//!
//! Control encoding, per op: a varint `len << 2 | tag`, then for COPY and
//! ADD a zigzag varint `old_pos − old_cursor`. The old cursor starts at the
//! chunk's NEW offset (so data that did not move costs a zero) and after a
//! COPY or ADD points just past the OLD bytes it read.

use crate::codec::Codec;
use crate::cursor::{Cursor, put_varint, unzigzag, zigzag};
use crate::error::{Error, Result};
use crate::filter::{AddMode, split};
use crate::limits;

pub use crate::interp::{apply_ops, apply_ops_from};

/// One operation, producing `len` NEW bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// NEW bytes = OLD[old .. old+len].
    Copy {
        /// Start in OLD.
        old: u64,
        /// Bytes produced.
        len: u64,
    },
    /// NEW bytes = OLD[old .. old+len] + the next `len` diff bytes (wrapping, per byte).
    Add {
        /// Start in OLD.
        old: u64,
        /// Bytes produced.
        len: u64,
    },
    /// NEW bytes = the next `len` literal bytes.
    Insert {
        /// Bytes produced.
        len: u64,
    },
    /// NEW bytes = `len` zeros.
    Zero {
        /// Bytes produced.
        len: u64,
    },
}

impl Op {
    /// NEW bytes this op produces.
    pub fn len(&self) -> u64 {
        match *self {
            Op::Copy { len, .. } | Op::Add { len, .. } | Op::Insert { len } | Op::Zero { len } => {
                len
            }
        }
    }

    /// True when the op produces nothing (never the case for decoded ops).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The OLD range this op reads, if any.
    pub fn old_range(&self) -> Option<(u64, u64)> {
        match *self {
            Op::Copy { old, len } | Op::Add { old, len } => Some((old, len)),
            _ => None,
        }
    }
}

const TAG_COPY: u64 = 0;
const TAG_ADD: u64 = 1;
const TAG_INSERT: u64 = 2;
const TAG_ZERO: u64 = 3;

/// The three raw (uncompressed) streams of one chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Streams {
    /// Control stream.
    pub ctrl: Vec<u8>,
    /// Diff bytes consumed by ADD.
    pub diff: Vec<u8>,
    /// Literal bytes consumed by INSERT.
    pub lit: Vec<u8>,
    /// How ADD combines `diff` with OLD.
    pub add: AddMode,
    /// `diff` is stored in the operand split's order (class A, then B);
    /// see [`crate::filter::split`].
    pub split: bool,
}

/// Builds the streams of one chunk from ops and the data they need.
///
/// The encoder keeps every control stream within
/// [`limits::max_ctrl_raw_len`]: a COPY or ADD shorter than
/// [`limits::MIN_COPY_LEN`] is stored as an INSERT of the NEW bytes, and
/// adjacent ops of the same kind are merged.
#[derive(Debug)]
pub struct ChunkEncoder<'a> {
    old: &'a [u8],
    new: &'a [u8],
    start: u64,
    new_pos: u64,
    old_cursor: u64,
    pending: Option<Op>,
    streams: Streams,
    ranges: Vec<(u64, u64)>,
}

impl<'a> ChunkEncoder<'a> {
    /// An encoder for the chunk of `new` (all of NEW) starting at
    /// `new_start`; `old` is all of OLD.
    pub fn new(old: &'a [u8], new: &'a [u8], new_start: u64) -> ChunkEncoder<'a> {
        ChunkEncoder {
            old,
            new,
            start: new_start,
            new_pos: new_start,
            old_cursor: new_start,
            pending: None,
            streams: Streams::default(),
            ranges: Vec::new(),
        }
    }

    /// NEW position of the next byte to produce.
    pub fn new_pos(&self) -> u64 {
        self.new_pos
    }

    /// Appends an op producing the next `op.len()` NEW bytes. The encoder
    /// computes diff bytes and copies literals itself from OLD and NEW.
    ///
    /// # Panics
    /// If the op reads outside OLD or produces bytes past the end of NEW:
    /// that is a bug in the differ, not bad input.
    pub fn push(&mut self, op: Op) {
        let len = op.len();
        if len == 0 {
            return;
        }
        let s = self.new_pos as usize;
        let e = s + len as usize;
        assert!(e <= self.new.len(), "op past the end of NEW");
        let op = match op {
            Op::Copy { old, len } | Op::Add { old, len } if len < limits::MIN_COPY_LEN => {
                assert!(old + len <= self.old.len() as u64, "op reads past OLD");
                Op::Insert { len }
            }
            Op::Add { old, len } => {
                // An ADD whose diff bytes are all zero is a COPY.
                let o = old as usize;
                if self.old[o..o + len as usize] == self.new[s..e] {
                    Op::Copy { old, len }
                } else {
                    op
                }
            }
            other => other,
        };
        match op {
            Op::Add { old, len } => {
                let o = old as usize;
                let (ob, nb) = (&self.old[o..o + len as usize], &self.new[s..e]);
                self.streams
                    .diff
                    .extend(nb.iter().zip(ob).map(|(n, o)| n.wrapping_sub(*o)));
            }
            Op::Insert { .. } => self.streams.lit.extend_from_slice(&self.new[s..e]),
            Op::Copy { old, len } => {
                assert!(old + len <= self.old.len() as u64, "op reads past OLD")
            }
            Op::Zero { .. } => {}
        }
        self.new_pos += len;
        // Merge with the pending op when contiguous and of the same kind.
        self.pending = match (self.pending.take(), op) {
            (Some(Op::Insert { len: a }), Op::Insert { len: b }) => Some(Op::Insert { len: a + b }),
            (Some(Op::Zero { len: a }), Op::Zero { len: b }) => Some(Op::Zero { len: a + b }),
            (Some(Op::Copy { old: a, len: la }), Op::Copy { old: b, len: lb }) if a + la == b => {
                Some(Op::Copy {
                    old: a,
                    len: la + lb,
                })
            }
            (Some(Op::Add { old: a, len: la }), Op::Add { old: b, len: lb }) if a + la == b => {
                Some(Op::Add {
                    old: a,
                    len: la + lb,
                })
            }
            (Some(p), op) => {
                self.emit(p);
                Some(op)
            }
            (None, op) => Some(op),
        };
    }

    fn emit(&mut self, op: Op) {
        let (tag, old) = match op {
            Op::Copy { old, .. } => (TAG_COPY, Some(old)),
            Op::Add { old, .. } => (TAG_ADD, Some(old)),
            Op::Insert { .. } => (TAG_INSERT, None),
            Op::Zero { .. } => (TAG_ZERO, None),
        };
        put_varint(&mut self.streams.ctrl, (op.len() << 2) | tag);
        if let Some(old) = old {
            put_varint(
                &mut self.streams.ctrl,
                zigzag(old as i64 - self.old_cursor as i64),
            );
            self.old_cursor = old + op.len();
            self.ranges.push((old, op.len()));
        }
    }

    /// Finishes the chunk: its streams and the OLD ranges it reads (sorted,
    /// merged, at most [`limits::MAX_OLD_RANGES_PER_CHUNK`], possibly
    /// covering more than is read).
    pub fn finish(mut self) -> (Streams, Vec<(u64, u64)>) {
        if let Some(p) = self.pending.take() {
            self.emit(p);
        }
        let ranges = coalesce_ranges(self.ranges, limits::MAX_OLD_RANGES_PER_CHUNK as usize);
        (self.streams, ranges)
    }

    /// Finishes the chunk and encodes it with `codec` (see
    /// [`crate::encode_chunk`]), declaring at most `max_ranges` OLD ranges.
    /// With a compressing codec the diff stream is also tried in
    /// [`AddMode::Words32`] and, where it pays, in the operand split's
    /// order; both need OLD and NEW: the reason this is a method of the
    /// encoder.
    pub fn encode(self, codec: Codec, max_ranges: usize) -> crate::EncodedChunk {
        self.encode_sharing(codec, max_ranges, 0).0
    }

    /// [`ChunkEncoder::encode`] for a chunk that may go into a shared
    /// section ([`crate::shared`]): when its control and literal streams
    /// are each at most `share_max` bytes and `codec` is zstd, the literal
    /// stream is compressed at [`crate::shared::PROBE_LEVEL`] only (what
    /// [`crate::shared::finish_sharing`] compresses again, with the others,
    /// at `codec`'s level), and the flag returned is true. Otherwise as
    /// `encode`.
    pub fn encode_sharing(
        self,
        codec: Codec,
        max_ranges: usize,
        share_max: usize,
    ) -> (crate::EncodedChunk, bool) {
        let (old, new, start, end) = (self.old, self.new, self.start, self.new_pos);
        let (streams, ranges) = self.finish();
        let probe = matches!(codec, Codec::Zstd(_))
            && streams.ctrl.len() <= share_max
            && streams.lit.len() <= share_max;
        let side = if probe {
            Codec::Zstd(crate::shared::PROBE_LEVEL)
        } else {
            codec
        };
        let ranges = coalesce_ranges(ranges, max_ranges);
        let new_chunk = &new[start as usize..end as usize];
        let mut alternatives = Vec::new();
        let mut variants = None;
        if codec != Codec::None && !streams.diff.is_empty() {
            let v = DiffVariants::new(&streams, old, new_chunk, start);
            alternatives.push((AddMode::Words32, false));
            if v.split_pays {
                alternatives.push((AddMode::Bytes, true));
                alternatives.push((AddMode::Words32, true));
                alternatives.push((AddMode::Operands, false));
                alternatives.push((AddMode::OperandsAbs, false));
            }
            variants = Some(v);
        }
        let make = |add: AddMode, order_split: bool, f: &mut dyn FnMut(&[u8])| {
            variants
                .as_ref()
                .expect("alternatives only with variants")
                .feed(add, order_split, f)
        };
        let chunk = crate::encode_chunk_with(
            codec,
            side,
            &streams,
            &alternatives,
            &make,
            ranges,
            start,
            new_chunk,
        );
        (chunk, probe)
    }
}

/// `(OLD start, length, offset in the chunk)` of every ADD in
/// `streams.ctrl`, in op order, for an encoder's own chunk of `new_len`
/// bytes at `new_start`.
fn add_sources(
    streams: &Streams,
    old: &[u8],
    new_len: u64,
    new_start: u64,
) -> Vec<(usize, usize, usize)> {
    let whole = [(0, old.len() as u64)];
    let mut pos = 0usize;
    OpDecoder::for_streams(
        streams,
        new_start,
        new_len,
        old.len() as u64,
        if old.is_empty() { &[] } else { &whole },
    )
    .filter_map(|op| {
        let op = op.expect("the encoder's own ops decode");
        let at = pos;
        pos += op.len() as usize;
        match op {
            Op::Add { old, len } => Some((old as usize, len as usize, at)),
            _ => None,
        }
    })
    .collect()
}

/// Diff bytes per block of [`DiffVariants::feed`] (a multiple of 64).
const VARIANT_BLOCK: usize = 16 << 10;

/// Makes a chunk's diff stream in any add mode and order, block by block,
/// without holding it: what [`AddMode::sub`] per ADD, then (for the
/// operand split's order) [`split::split`] would make (tested).
///
/// The split's classes are computed once per chunk into a bitmap, a bit
/// per diff byte (an eighth of the diff stream), and read 64 at a time by
/// every split variant. Memory: the bitmap and two buffers of about
/// [`VARIANT_BLOCK`] bytes per [`DiffVariants::feed`].
struct DiffVariants<'a> {
    old: &'a [u8],
    new_chunk: &'a [u8],
    start: u64,
    /// See [`add_sources`].
    adds: Vec<(usize, usize, usize)>,
    /// Bit k of the words: diff byte k (op order) is of class A; one word
    /// of padding. Empty unless `split_pays`.
    class_a: Vec<u64>,
    /// Whether the operand split is worth trying (see [`split_pays`]);
    /// the operand modes are tried where it is.
    split_pays: bool,
    /// The chunk's op map, for the operand modes; empty unless
    /// `split_pays`.
    map: crate::operand::OpMap,
}

impl<'a> DiffVariants<'a> {
    fn new(streams: &Streams, old: &'a [u8], new_chunk: &'a [u8], start: u64) -> DiffVariants<'a> {
        let adds = add_sources(streams, old, new_chunk.len() as u64, start);
        let class_a = class_bitmap(&adds, old, streams.diff.len());
        let split_pays = split_pays(&class_a, &streams.diff);
        let mut map = crate::operand::OpMap::default();
        if split_pays {
            let whole = [(0, old.len() as u64)];
            let dec = OpDecoder::for_streams(
                streams,
                start,
                new_chunk.len() as u64,
                old.len() as u64,
                &whole,
            );
            map =
                crate::operand::OpMap::from_ops(dec, start).expect("the encoder's own ops decode");
        }
        DiffVariants {
            old,
            new_chunk,
            start,
            adds,
            class_a: if split_pays { class_a } else { Vec::new() },
            split_pays,
            map,
        }
    }

    /// Calls `f` with consecutive pieces of the diff stream in `add` mode
    /// and, with `order_split`, in the operand split's order.
    fn feed(&self, add: AddMode, order_split: bool, f: &mut dyn FnMut(&[u8])) {
        if add.is_operands() {
            // Made whole (one chunk's diff stream at most): the words go
            // first, so the stream is not made in op order.
            let abs = add == AddMode::OperandsAbs;
            let adds = &self.adds;
            f(&crate::operand::encode(
                &self.map,
                abs,
                adds,
                self.old,
                self.new_chunk,
                self.start,
            ));
            return;
        }
        // `diff`: one block of one ADD; `out`: what is gathered for `f`.
        let mut diff = vec![0u8; VARIANT_BLOCK + 4];
        let mut out = vec![0u8; 2 * VARIANT_BLOCK + 4];
        let mut fill = 0;
        let classes: &[bool] = if order_split {
            &[true, false]
        } else {
            &[false]
        };
        for &class in classes {
            // Offset of the current ADD in the diff stream.
            let mut d0 = 0;
            for &(o, l, at) in &self.adds {
                let (src, dst) = (&self.old[o..o + l], &self.new_chunk[at..at + l]);
                let new_pos = self.start + at as u64;
                // Blocks on the op's word grid: the first ends a multiple
                // of 4 after the op's first aligned byte, so each block is
                // an op of its own with the same words (see AddMode::split).
                let (head, _) = AddMode::split(new_pos, l);
                let mut k0 = 0;
                while k0 < l {
                    let k1 = if k0 == 0 {
                        head + VARIANT_BLOCK
                    } else {
                        k0 + VARIANT_BLOCK
                    }
                    .min(l);
                    let n = k1 - k0;
                    let (s, d) = (&src[k0..k1], &dst[k0..k1]);
                    if order_split {
                        add.sub_into(&mut diff[..n], d, s, new_pos + k0 as u64);
                        fill += gather(&mut out[fill..], &diff[..n], &self.class_a, d0 + k0, class);
                    } else {
                        add.sub_into(&mut out[fill..fill + n], d, s, new_pos + k0 as u64);
                        fill += n;
                    }
                    if fill >= VARIANT_BLOCK {
                        f(&out[..fill]);
                        fill = 0;
                    }
                    k0 = k1;
                }
                d0 += l;
            }
        }
        if fill > 0 {
            f(&out[..fill]);
        }
    }
}

/// The operand split's classes of the diff bytes of `adds` (`len` in all),
/// a bit per byte, set for class A, with one word of padding.
fn class_bitmap(adds: &[(usize, usize, usize)], old: &[u8], len: usize) -> Vec<u64> {
    let mut bits = vec![0u64; len.div_ceil(64) + 1];
    let mut g = 0;
    let mut put = |v: u64, k: usize| {
        let (w, s) = (g / 64, g % 64);
        bits[w] |= v << s;
        if s + k > 64 {
            bits[w + 1] |= v >> (64 - s);
        }
        g += k;
    };
    for &(o, l, _) in adds {
        split::masks(&old[o..o + l], |m| {
            let mut eights = m.chunks_exact(8);
            for b in &mut eights {
                // Eight 0/1 bytes to eight bits, the first lowest.
                let x = u64::from_le_bytes(b.try_into().expect("8 bytes"));
                put(x.wrapping_mul(0x0102_0408_1020_4080) >> 56, 8);
            }
            for &c in eights.remainder() {
                put(u64::from(c), 1);
            }
        });
    }
    debug_assert_eq!(g, len);
    bits
}

/// The 64 bits of `bits` from bit `g` on (`bits` padded by a word).
#[inline]
fn bits_at(bits: &[u64], g: usize) -> u64 {
    let (w, s) = (g / 64, g % 64);
    if s == 0 {
        bits[w]
    } else {
        (bits[w] >> s) | (bits[w + 1] << (64 - s))
    }
}

/// Copies to the front of `out` (at least as long as `diff`) the bytes of
/// `diff` whose class, read from `class_a` from bit `g` on, is A when
/// `want_a`, else B; returns how many.
fn gather(out: &mut [u8], diff: &[u8], class_a: &[u64], g: usize, want_a: bool) -> usize {
    let mut o = 0;
    for (i, block) in diff.chunks(64).enumerate() {
        let n = block.len();
        let mut w = bits_at(class_a, g + 64 * i);
        if !want_a {
            w = !w;
        }
        if n < 64 {
            w &= (1u64 << n) - 1;
        }
        if w == 0 {
            continue;
        }
        if w == u64::MAX {
            out[o..o + 64].copy_from_slice(block);
            o += 64;
        } else if w.count_ones() <= 16 {
            while w != 0 {
                out[o] = block[w.trailing_zeros() as usize];
                o += 1;
                w &= w - 1;
            }
        } else {
            // Branch-free: write every byte, advance past the wanted ones.
            let out = &mut out[o..o + n];
            let mut p = 0;
            for (j, &b) in block.iter().enumerate() {
                out[p] = b;
                p += ((w >> j) & 1) as usize;
            }
            o += p;
        }
    }
    o
}

/// Whether the operand split is worth trying for a chunk's ADDs, given
/// their classes `class_a` (see [`class_bitmap`]) and diff bytes `diff`:
/// their class-A diff bytes must be at least four times as often non-zero
/// as the others and hold at least a tenth of the non-zero ones. In moved
/// code the ratio is 6–70 (exe-go); in data it is about 1, and trying the
/// split there cost a fifth of the streaming engine's time on disk images.
fn split_pays(class_a: &[u64], diff: &[u8]) -> bool {
    let (mut a_len, mut a_nz, mut b_nz) = (0usize, 0usize, 0usize);
    for (block, &a) in diff.chunks(64).zip(class_a) {
        let mut nz = 0u64;
        for (j, &b) in block.iter().enumerate() {
            nz |= u64::from(b != 0) << j;
        }
        a_len += a.count_ones() as usize;
        a_nz += (nz & a).count_ones() as usize;
        b_nz += (nz & !a).count_ones() as usize;
    }
    let b_len = diff.len() - a_len;
    // a_nz / a_len >= 4 · b_nz / b_len, without division.
    a_len > 0 && a_nz * b_len >= 4 * b_nz * a_len && a_nz * 10 >= a_nz + b_nz
}

/// The diff bytes of `streams` in op order: `streams.diff` itself, or, when
/// it is stored in the operand split's order, rejoined using the ADD
/// sources that `src(old, len)` reads from OLD. The op decoder's checks run
/// first, so a malformed control stream is an error here as in
/// [`apply_ops`].
pub fn diff_in_op_order<'s, 'o>(
    streams: &'s Streams,
    dec: OpDecoder<'_>,
    src: impl Fn(u64, usize) -> &'o [u8],
) -> Result<std::borrow::Cow<'s, [u8]>> {
    if streams.add.is_operands() {
        // A fresh decoder's OLD cursor is the chunk's NEW offset.
        let start = dec.old_cursor;
        let abs = streams.add == AddMode::OperandsAbs;
        return crate::operand::to_bytes(&streams.diff, abs, || dec.clone(), start, src)
            .map(std::borrow::Cow::Owned);
    }
    if !streams.split {
        return Ok(std::borrow::Cow::Borrowed(&streams.diff));
    }
    let mut adds = Vec::new();
    for op in dec {
        if let Op::Add { old, len } = op? {
            adds.push((old, len as usize));
        }
    }
    let sources = adds.iter().map(|&(o, l)| src(o, l));
    Ok(std::borrow::Cow::Owned(split::join(&streams.diff, sources)))
}

/// Sorts and merges `(start, len)` ranges, then joins the closest
/// neighbours until at most `max` remain. The result covers every input
/// range.
pub fn coalesce_ranges(mut r: Vec<(u64, u64)>, max: usize) -> Vec<(u64, u64)> {
    r.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(r.len());
    for (s, l) in r {
        if let Some(last) = out.last_mut() {
            if s <= last.0 + last.1 {
                last.1 = last.1.max(s + l - last.0);
                continue;
            }
        }
        out.push((s, l));
    }
    while out.len() > max.max(1) {
        // Join across the smallest gaps until few enough remain.
        let mut gaps: Vec<u64> = out.windows(2).map(|w| w[1].0 - (w[0].0 + w[0].1)).collect();
        gaps.sort_unstable();
        let cut = gaps[out.len() - max.max(1) - 1];
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(max);
        let mut budget = out.len() - max.max(1);
        for (s, l) in out {
            if let Some(last) = merged.last_mut() {
                if budget > 0 && s - (last.0 + last.1) <= cut {
                    last.1 = s + l - last.0;
                    budget -= 1;
                    continue;
                }
            }
            merged.push((s, l));
        }
        out = merged;
    }
    out
}

/// Decodes and checks the control stream of one chunk.
///
/// Yields ops whose lengths sum to exactly the chunk's NEW length, whose
/// OLD ranges lie inside OLD and inside the chunk's declared ranges, and
/// whose ADD and INSERT lengths consume the diff and literal streams
/// exactly. Any departure is an error carrying the control-stream offset.
#[derive(Clone, Debug)]
pub struct OpDecoder<'a> {
    cur: Cursor<'a>,
    old_len: u64,
    ranges: &'a [(u64, u64)],
    old_cursor: u64,
    left: u64,
    diff_left: u64,
    lit_left: u64,
    failed: bool,
}

impl<'a> OpDecoder<'a> {
    /// A decoder for the ops of decoded `streams` (their diff and literal
    /// lengths are what the ops must consume); otherwise as [`OpDecoder::new`].
    pub fn for_streams(
        streams: &'a Streams,
        new_start: u64,
        new_len: u64,
        old_len: u64,
        ranges: &'a [(u64, u64)],
    ) -> OpDecoder<'a> {
        OpDecoder::new(
            &streams.ctrl,
            new_start,
            new_len,
            streams.diff.len() as u64,
            streams.lit.len() as u64,
            old_len,
            ranges,
        )
    }

    /// A decoder for `ctrl`, a chunk producing `new_len` bytes at
    /// `new_start`, with `diff_len` diff and `lit_len` literal bytes, reading
    /// only within `ranges` of an OLD of `old_len` bytes.
    pub fn new(
        ctrl: &'a [u8],
        new_start: u64,
        new_len: u64,
        diff_len: u64,
        lit_len: u64,
        old_len: u64,
        ranges: &'a [(u64, u64)],
    ) -> OpDecoder<'a> {
        OpDecoder {
            cur: Cursor::new(ctrl, 0),
            old_len,
            ranges,
            old_cursor: new_start,
            left: new_len,
            diff_left: diff_len,
            lit_left: lit_len,
            failed: false,
        }
    }

    fn next_op(&mut self) -> Result<Option<Op>> {
        if self.left == 0 {
            if !self.cur.is_empty() || self.diff_left != 0 || self.lit_left != 0 {
                return Err(Error::invalid(
                    "control stream",
                    "streams consumed exactly by the ops",
                    format!(
                        "{} control, {} diff, {} literal bytes left over",
                        self.cur.remaining(),
                        self.diff_left,
                        self.lit_left
                    ),
                    self.cur.offset(),
                ));
            }
            return Ok(None);
        }
        let at = self.cur.offset();
        let v = self.cur.varint("op")?;
        let (tag, len) = (v & 3, v >> 2);
        if len == 0 || len > self.left {
            return Err(Error::invalid(
                "op length",
                format!("1..={}", self.left),
                len,
                at,
            ));
        }
        let op = match tag {
            TAG_COPY | TAG_ADD => {
                let d = unzigzag(self.cur.varint("op old offset")?);
                let old = (self.old_cursor as i64)
                    .checked_add(d)
                    .filter(|&o| o >= 0)
                    .map(|o| o as u64);
                let Some(old) =
                    old.filter(|&o| o.checked_add(len).is_some_and(|e| e <= self.old_len))
                else {
                    return Err(Error::invalid(
                        "op old range",
                        format!("a range inside OLD (0..{})", self.old_len),
                        format!("cursor {} + delta {d}, length {len}", self.old_cursor),
                        at,
                    ));
                };
                if !self.within_ranges(old, len) {
                    return Err(Error::invalid(
                        "op old range",
                        "a range inside the chunk's declared OLD ranges",
                        format!("{old}..{}", old + len),
                        at,
                    ));
                }
                self.old_cursor = old + len;
                if tag == TAG_ADD {
                    if len > self.diff_left {
                        return Err(Error::invalid(
                            "ADD length",
                            format!("<= {} diff bytes left", self.diff_left),
                            len,
                            at,
                        ));
                    }
                    self.diff_left -= len;
                    Op::Add { old, len }
                } else {
                    Op::Copy { old, len }
                }
            }
            TAG_INSERT => {
                if len > self.lit_left {
                    return Err(Error::invalid(
                        "INSERT length",
                        format!("<= {} literal bytes left", self.lit_left),
                        len,
                        at,
                    ));
                }
                self.lit_left -= len;
                Op::Insert { len }
            }
            _ => Op::Zero { len },
        };
        self.left -= len;
        Ok(Some(op))
    }

    fn within_ranges(&self, old: u64, len: u64) -> bool {
        // Ranges are sorted and disjoint: find the last one starting at or before `old`.
        let i = self.ranges.partition_point(|r| r.0 <= old);
        i > 0 && {
            let (s, l) = self.ranges[i - 1];
            old + len <= s + l
        }
    }
}

impl Iterator for OpDecoder<'_> {
    type Item = Result<Op>;

    fn next(&mut self) -> Option<Result<Op>> {
        if self.failed {
            return None;
        }
        match self.next_op() {
            Ok(Some(op)) => Some(Ok(op)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{DiffFilter, FilterSink, tests::naive_encode};
    use proptest::prelude::*;

    /// A variant's diff stream by its definition: [`AddMode::sub`] per ADD,
    /// then [`split::split`] for the operand split's order.
    fn defined_variant(v: &DiffVariants<'_>, add: AddMode, order_split: bool) -> Vec<u8> {
        let mut plain = Vec::new();
        for &(o, l, at) in &v.adds {
            add.sub(
                &mut plain,
                &v.new_chunk[at..at + l],
                &v.old[o..o + l],
                v.start + at as u64,
            );
        }
        if !order_split {
            return plain;
        }
        split::split(&plain, v.adds.iter().map(|&(o, l, _)| &v.old[o..o + l]))
    }

    /// [`split_pays`] by its definition, from the byte-wise classes.
    fn defined_split_pays(v: &DiffVariants<'_>, diff: &[u8]) -> bool {
        let mut class_a = Vec::new();
        for &(o, l, _) in &v.adds {
            split::classify(&v.old[o..o + l], |_, a| class_a.push(a));
        }
        let (mut a_len, mut a_nz, mut b_nz) = (0, 0, 0);
        for (&a, &d) in class_a.iter().zip(diff) {
            a_len += usize::from(a);
            a_nz += usize::from(a && d != 0);
            b_nz += usize::from(!a && d != 0);
        }
        let b_len = diff.len() - a_len;
        a_len > 0 && a_nz * b_len >= 4 * b_nz * a_len && a_nz * 10 >= a_nz + b_nz
    }

    /// Encodes `ops` on a chunk of `new` at `start` and checks that every
    /// variant, and every layout of it, that [`DiffVariants`] makes equals
    /// its definition: [`AddMode::sub`], [`split::split`], then the
    /// layouts as FORMAT.md defines them.
    fn check_variants(old: &[u8], new: &[u8], start: usize, ops: &[Op]) {
        let mut enc = ChunkEncoder::new(old, new, start as u64);
        for &op in ops {
            enc.push(op);
        }
        let end = enc.new_pos() as usize;
        let (streams, _) = enc.finish();
        if streams.diff.is_empty() {
            return;
        }
        let chunk = &new[start..end];
        let v = DiffVariants::new(&streams, old, chunk, start as u64);
        assert_eq!(v.split_pays, defined_split_pays(&v, &streams.diff));
        // Every variant, whether or not the split pays here.
        let class_a = class_bitmap(&v.adds, old, streams.diff.len());
        let v = DiffVariants { class_a, ..v };
        for add in AddMode::PER_OP {
            for order_split in [false, true] {
                let want = defined_variant(&v, add, order_split);
                if (add, order_split) == (AddMode::Bytes, false) {
                    assert_eq!(want, streams.diff);
                }
                let mut got = Vec::new();
                v.feed(add, order_split, &mut |p| got.extend_from_slice(p));
                assert_eq!(got, want, "{add:?} split {order_split} at {start}");
                let mut runs = FilterSink::new(DiffFilter::Runs);
                v.feed(add, order_split, &mut |p| runs.push_slice(p));
                assert_eq!(
                    runs.counts(),
                    (want.len(), want.iter().filter(|&&b| b != 0).count())
                );
                for filter in DiffFilter::ALL {
                    let layout = naive_encode(filter, &want);
                    let mut sink = FilterSink::new(filter);
                    v.feed(add, order_split, &mut |p| sink.push_slice(p));
                    assert_eq!(sink.finish(), layout, "{add:?} {order_split} {filter:?}");
                    assert_eq!(filter.encode(&want), layout);
                    if filter != DiffFilter::None {
                        assert_eq!(runs.layout(filter), layout, "both layouts from one sink");
                    }
                }
            }
        }
    }

    /// Long ADDs over code-like bytes: blocks of [`DiffVariants::feed`]
    /// end inside ADDs, at both word alignments of the chunk.
    #[test]
    fn streamed_variants_follow_the_definition() {
        let mut x = 0x9e37_79b9u32;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        // Code-like OLD with calls, NEW with shifted call operands.
        let old: Vec<u8> = (0..5 * VARIANT_BLOCK)
            .map(|i| if i % 9 == 0 { 0xe8 } else { rnd() as u8 })
            .collect();
        let mut new = old.clone();
        for i in (1..new.len()).step_by(9) {
            new[i] = new[i].wrapping_add(0x40);
        }
        for start in [0usize, 1, 3] {
            let long = VARIANT_BLOCK as u64 + 4097;
            let ops = [
                Op::Add {
                    old: start as u64 + 1,
                    len: long,
                },
                Op::Insert { len: 7 },
                Op::Add {
                    old: long + 13,
                    len: VARIANT_BLOCK as u64 - 5,
                },
                Op::Add {
                    old: 5,
                    len: 2 * VARIANT_BLOCK as u64 + 3,
                },
            ];
            check_variants(&old, &new, start, &ops);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Random ops over OLD bytes rich in the split's trigger opcodes.
        #[test]
        fn fast_variants_equal_the_definition(
            old in proptest::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    proptest::sample::select(vec![0xe8u8, 0xe9, 0x0f, 0x85, 0x8b, 0x05, 0]),
                ],
                1..4000,
            ),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..300),
            start in 0usize..8,
            raw_ops in proptest::collection::vec((0u8..5, any::<usize>(), 1usize..700), 1..30),
        ) {
            let mut new = old.clone();
            new.extend_from_slice(&old[..old.len() / 3]);
            for &(at, d) in &edits {
                let at = at % new.len();
                new[at] = new[at].wrapping_add(d);
            }
            let start = start.min(new.len() - 1);
            let mut pos = start;
            let mut ops = Vec::new();
            for &(tag, r, len) in &raw_ops {
                let len = len.min(new.len() - pos);
                if len == 0 {
                    break;
                }
                let fits = len <= old.len();
                // Mostly ADDs, half of them where the data did not move.
                let at = if r % 2 == 0 { pos.min(old.len().saturating_sub(len)) } else {
                    r % (old.len() - len.min(old.len()) + 1)
                };
                let (old_pos, len) = (at as u64, len as u64);
                ops.push(match tag {
                    0 if fits => Op::Copy { old: old_pos, len },
                    1..=3 if fits => Op::Add { old: old_pos, len },
                    _ if tag % 2 == 0 => Op::Zero { len },
                    _ => Op::Insert { len },
                });
                pos += len as usize;
            }
            check_variants(&old, &new, start, &ops);
        }
    }
}
