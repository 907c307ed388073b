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
use crate::filter::{AddMode, DiffFilter, FilterSink, split};
use crate::limits;

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
        let (old, new, start, end) = (self.old, self.new, self.start, self.new_pos);
        let (streams, ranges) = self.finish();
        let ranges = coalesce_ranges(ranges, max_ranges);
        let new_chunk = &new[start as usize..end as usize];
        let mut alternatives = Vec::new();
        let mut adds = Vec::new();
        if codec != Codec::None && !streams.diff.is_empty() {
            adds = add_sources(&streams, old, new_chunk.len() as u64, start);
            alternatives.push((AddMode::Words32, false));
            if split_pays(&adds, old, &streams.diff) {
                alternatives.push((AddMode::Bytes, true));
                alternatives.push((AddMode::Words32, true));
            }
        }
        let make = |add: AddMode, order_split: bool, filter: DiffFilter| {
            let mut sink = FilterSink::new(filter);
            feed_variant(&mut sink, add, order_split, &adds, old, new_chunk, start);
            let (_, nonzero) = sink.counts();
            (sink.finish(), nonzero)
        };
        crate::encode_chunk_with(
            codec,
            &streams,
            &alternatives,
            &make,
            ranges,
            start,
            new_chunk,
        )
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

/// Pushes the diff bytes of the ADDs `adds` (see [`add_sources`]) to
/// `sink`, computed in `add` mode and, with `order_split`, in the operand
/// split's order: the diff stream [`AddMode::sub`] and
/// [`split::split`] would make, without holding it.
fn feed_variant(
    sink: &mut FilterSink,
    add: AddMode,
    order_split: bool,
    adds: &[(usize, usize, usize)],
    old: &[u8],
    new_chunk: &[u8],
    start: u64,
) {
    // The diff byte k of one ADD, word differences cached per word.
    struct OpDiff<'a> {
        src: &'a [u8],
        dst: &'a [u8],
        words: Option<(usize, usize)>,
        cached: (usize, [u8; 4]),
    }
    impl OpDiff<'_> {
        #[inline]
        fn byte(&mut self, k: usize) -> u8 {
            if let Some((head, body)) = self.words {
                if k >= head && k < head + body {
                    let w = k - (k - head) % 4;
                    if self.cached.0 != w {
                        let word =
                            |b: &[u8]| u32::from_le_bytes([b[w], b[w + 1], b[w + 2], b[w + 3]]);
                        let d = word(self.dst).wrapping_sub(word(self.src));
                        self.cached = (w, d.to_le_bytes());
                    }
                    return self.cached.1[k - w];
                }
            }
            self.dst[k].wrapping_sub(self.src[k])
        }
    }
    let op = |&(o, l, at): &(usize, usize, usize)| OpDiff {
        src: &old[o..o + l],
        dst: &new_chunk[at..at + l],
        words: (add == AddMode::Words32).then(|| AddMode::split(start + at as u64, l)),
        cached: (usize::MAX, [0; 4]),
    };
    if !order_split {
        for a in adds {
            let mut d = op(a);
            for k in 0..a.1 {
                sink.push(d.byte(k));
            }
        }
        return;
    }
    for class in [1u8, 0] {
        for a in adds {
            let mut d = op(a);
            let src = d.src;
            let mut base = 0;
            split::masks(src, |mask| {
                for (i, &m) in mask.iter().enumerate() {
                    if m == class {
                        sink.push(d.byte(base + i));
                    }
                }
                base += mask.len();
            });
        }
    }
}

/// Whether the operand split is worth trying for these ADDs: their class-A
/// diff bytes must be at least four times as often non-zero as the others
/// and hold at least a tenth of the non-zero ones. In moved code the ratio
/// is 6–70 (exe-go); in data it is about 1, and trying the split there cost
/// a fifth of the streaming engine's time on disk images.
fn split_pays(adds: &[(usize, usize, usize)], old: &[u8], diff: &[u8]) -> bool {
    let (mut a_len, mut a_nz, mut b_nz) = (0usize, 0usize, 0usize);
    let mut d = 0;
    for &(o, l, _) in adds {
        let mut base = d;
        split::masks(&old[o..o + l], |mask| {
            for (i, &m) in mask.iter().enumerate() {
                let nz = usize::from(diff[base + i] != 0);
                a_len += usize::from(m);
                a_nz += nz & usize::from(m);
                b_nz += nz & usize::from(m ^ 1);
            }
            base += mask.len();
        });
        d += l;
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
#[derive(Debug)]
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

/// Rebuilds one chunk's NEW bytes into `out` (exactly the chunk's length)
/// from OLD and decoded streams. `out` must start zeroed when
/// `zeroed` is true, in which case ZERO ops are skipped (leaving holes in a
/// sparse output); otherwise they write zeros.
#[allow(clippy::too_many_arguments)]
pub fn apply_ops(
    old: &[u8],
    streams: &Streams,
    ranges: &[(u64, u64)],
    new_start: u64,
    out: &mut [u8],
    zeroed: bool,
) -> Result<()> {
    let out_len = out.len() as u64;
    let dec = || OpDecoder::for_streams(streams, new_start, out_len, old.len() as u64, ranges);
    let diff = diff_in_op_order(streams, dec(), |o, l| &old[o as usize..o as usize + l])?;
    let dec = dec();
    let (mut pos, mut dpos, mut lpos) = (0usize, 0usize, 0usize);
    for op in dec {
        let op = op?;
        let len = op.len() as usize;
        let dst = &mut out[pos..pos + len];
        match op {
            Op::Copy { old: o, .. } => dst.copy_from_slice(&old[o as usize..o as usize + len]),
            Op::Add { old: o, .. } => {
                let src = &old[o as usize..o as usize + len];
                let diff = &diff[dpos..dpos + len];
                streams.add.add(dst, src, diff, new_start + pos as u64);
                dpos += len;
            }
            Op::Insert { .. } => {
                dst.copy_from_slice(&streams.lit[lpos..lpos + len]);
                lpos += len;
            }
            Op::Zero { .. } => {
                if !zeroed {
                    dst.fill(0);
                }
            }
        }
        pos += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variants the encoder streams into a sink are the diff streams
    /// their definitions give: [`AddMode::sub`] per ADD, then
    /// [`split::split`] for the split order.
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
        let old: Vec<u8> = (0..6000)
            .map(|i| if i % 9 == 0 { 0xe8 } else { rnd() as u8 })
            .collect();
        let mut new = old.clone();
        for i in (1..new.len()).step_by(9) {
            new[i] = new[i].wrapping_add(0x40);
        }
        for start in [0usize, 3] {
            let mut enc = ChunkEncoder::new(&old, &new, start as u64);
            enc.push(Op::Add {
                old: start as u64 + 1,
                len: 2001,
            });
            enc.push(Op::Insert { len: 7 });
            enc.push(Op::Add {
                old: 2013,
                len: 1500,
            });
            let end = enc.new_pos() as usize;
            let (streams, _) = enc.finish();
            let chunk = &new[start..end];
            let adds = add_sources(&streams, &old, chunk.len() as u64, start as u64);
            assert_eq!(adds.len(), 2);
            for add in AddMode::ALL {
                let mut plain = Vec::new();
                for &(o, l, at) in &adds {
                    add.sub(
                        &mut plain,
                        &chunk[at..at + l],
                        &old[o..o + l],
                        (start + at) as u64,
                    );
                }
                let split_order =
                    split::split(&plain, adds.iter().map(|&(o, l, _)| &old[o..o + l]));
                for (order_split, want) in [(false, &plain), (true, &split_order)] {
                    let mut sink = FilterSink::new(DiffFilter::None);
                    feed_variant(
                        &mut sink,
                        add,
                        order_split,
                        &adds,
                        &old,
                        chunk,
                        start as u64,
                    );
                    assert_eq!(
                        &sink.finish(),
                        want,
                        "{add:?} split {order_split} at {start}"
                    );
                }
            }
        }
    }
}
