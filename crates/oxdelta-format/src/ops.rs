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

    /// All of OLD, as given to [`ChunkEncoder::new`].
    pub fn old(&self) -> &'a [u8] {
        self.old
    }

    /// The NEW bytes of the chunk so far (from its start to
    /// [`ChunkEncoder::new_pos`]).
    pub fn new_chunk(&self) -> &'a [u8] {
        &self.new[self.start as usize..self.new_pos as usize]
    }

    /// NEW offset of the chunk's first byte.
    pub fn start(&self) -> u64 {
        self.start
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

/// The ADDs of an encoder's own chunk, with what the ADD modes' encoders
/// read: the definition of a chunk's diff stream in every ADD mode and
/// order ([`AddSources::encode`]). The chunk's op map (for the operand
/// modes) is made on first use, once.
#[derive(Debug)]
pub struct AddSources<'a> {
    streams: &'a Streams,
    old: &'a [u8],
    new_chunk: &'a [u8],
    start: u64,
    adds: Vec<(usize, usize, usize)>,
    map: std::sync::OnceLock<crate::predicted::OpMap>,
}

impl<'a> AddSources<'a> {
    /// The ADDs of `streams`, made by a [`ChunkEncoder`] for the chunk
    /// `new_chunk` at NEW offset `start` from all of OLD, `old`.
    ///
    /// # Panics
    /// If the streams do not decode against OLD and the chunk (they are
    /// not an encoder's own).
    pub fn new(
        streams: &'a Streams,
        old: &'a [u8],
        new_chunk: &'a [u8],
        start: u64,
    ) -> AddSources<'a> {
        AddSources {
            streams,
            old,
            new_chunk,
            start,
            adds: add_sources(streams, old, new_chunk.len() as u64, start),
            map: std::sync::OnceLock::new(),
        }
    }

    /// `(OLD start, length, offset in the chunk)` of every ADD, in op order.
    pub fn adds(&self) -> &[(usize, usize, usize)] {
        &self.adds
    }

    /// All of OLD.
    pub fn old(&self) -> &'a [u8] {
        self.old
    }

    /// The chunk's NEW bytes.
    pub fn new_chunk(&self) -> &'a [u8] {
        self.new_chunk
    }

    /// NEW offset of the chunk.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The diff stream in `add` mode and, with `order_split`, in the
    /// operand split's order, by the definitions: [`AddMode::sub`] per ADD
    /// then [`split::split`], or the operand mode's encoder
    /// ([`crate::operand`]). Holds the whole stream.
    ///
    /// # Panics
    /// With `order_split` and an operand mode (no such coding).
    pub fn encode(&self, add: AddMode, order_split: bool) -> Vec<u8> {
        let (old, new) = (self.old, self.new_chunk);
        if add == AddMode::Wasm {
            assert!(!order_split, "no operand split with the wasm mode");
            return crate::wasm::encode(&self.adds, old, new);
        }
        if add == AddMode::Arm64 {
            assert!(!order_split, "no operand split with the arm64 mode");
            return crate::arm64::encode(self.map(), &self.adds, old, new, self.start);
        }
        if add == AddMode::Armv7 {
            assert!(!order_split, "no operand split with the armv7 mode");
            return crate::armv7::encode(self.map(), &self.adds, old, new, self.start);
        }
        if add == AddMode::Thumb2 {
            assert!(!order_split, "no operand split with the thumb2 mode");
            return crate::thumb2::encode(self.map(), &self.adds, old, new, self.start);
        }
        if add == AddMode::Riscv {
            assert!(!order_split, "no operand split with the riscv mode");
            return crate::riscv::encode(self.map(), &self.adds, old, new, self.start);
        }
        if add == AddMode::OperandsLearned {
            assert!(!order_split, "no operand split with an operand mode");
            return crate::operand::encode_learned(self.map(), &self.adds, old, new, self.start);
        }
        if add.is_operands() {
            assert!(!order_split, "no operand split with an operand mode");
            let abs = add == AddMode::OperandsAbs;
            return crate::operand::encode(self.map(), abs, &self.adds, old, new, self.start);
        }
        let mut plain = Vec::with_capacity(self.adds.iter().map(|a| a.1).sum());
        for &(o, l, at) in &self.adds {
            add.sub(
                &mut plain,
                &new[at..at + l],
                &old[o..o + l],
                self.start + at as u64,
            );
        }
        if !order_split {
            return plain;
        }
        split::split(&plain, self.adds.iter().map(|&(o, l, _)| &old[o..o + l]))
    }

    /// The chunk's op map (made on the first call).
    fn map(&self) -> &crate::predicted::OpMap {
        self.map.get_or_init(|| {
            let whole = [(0, self.old.len() as u64)];
            let dec = OpDecoder::for_streams(
                self.streams,
                self.start,
                self.new_chunk.len() as u64,
                self.old.len() as u64,
                &whole,
            );
            crate::predicted::OpMap::from_ops(dec, self.start)
                .expect("the encoder's own ops decode")
        })
    }
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
    if streams.add == AddMode::Wasm {
        return crate::wasm::to_bytes(&streams.diff, || dec.clone(), src)
            .map(std::borrow::Cow::Owned);
    }
    if streams.add == AddMode::Arm64 {
        let start = dec.old_cursor;
        return crate::arm64::to_bytes(&streams.diff, || dec.clone(), start, src)
            .map(std::borrow::Cow::Owned);
    }
    if streams.add == AddMode::Armv7 {
        let start = dec.old_cursor;
        return crate::armv7::to_bytes(&streams.diff, || dec.clone(), start, src)
            .map(std::borrow::Cow::Owned);
    }
    if streams.add == AddMode::Thumb2 {
        let start = dec.old_cursor;
        return crate::thumb2::to_bytes(&streams.diff, || dec.clone(), start, src)
            .map(std::borrow::Cow::Owned);
    }
    if streams.add == AddMode::Riscv {
        let start = dec.old_cursor;
        return crate::riscv::to_bytes(&streams.diff, || dec.clone(), start, src)
            .map(std::borrow::Cow::Owned);
    }
    if streams.add == AddMode::OperandsLearned {
        let start = dec.old_cursor;
        return crate::operand::to_bytes_learned(&streams.diff, || dec.clone(), start, src)
            .map(std::borrow::Cow::Owned);
    }
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
