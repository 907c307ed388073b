//! The interpreter of a chunk's op stream: the one loop that turns checked
//! ops into NEW bytes.
//!
//! Every applier runs it: the reference decoder ([`apply_ops`]), the
//! one-pass rebuild behind [`crate::apply_chunk`], and the in-place applier
//! (through [`apply_ops_from`]). It is generic over two things, both
//! monomorphised (no dynamic dispatch in the per-op loop):
//!
//! * [`OldBytes`], where OLD's bytes come from: a slice (a map or a buffer
//!   of the whole OLD), or the in-place applier's gathered reads (target,
//!   stash and scratch, back to back).
//! * `Adds`, what an ADD op does with its diff bytes: the reference adds
//!   the diff stream materialised in op order; the one-pass rebuild copies
//!   OLD and adds the stored non-zero runs after the op pass. This is the
//!   only place where the two differ, and they are checked against each
//!   other (`rebuild`'s tests, and the fuzz targets through `apply_bytes`).
//!
//! The loop itself holds COPY, INSERT (with the v4 x86 literal filter
//! undone per op when the literals are still filtered) and ZERO. Its cost
//! is one pass over the output plus the ops' reads of OLD; it allocates
//! nothing.

use crate::error::Result;
use crate::filter::AddMode;
use crate::ops::{Op, OpDecoder, Streams, diff_in_op_order};

/// Where the OLD bytes of an op stream come from.
pub trait OldBytes {
    /// OLD's length: the op decoder checks every op's range against it.
    fn old_len(&self) -> u64;

    /// The `len` bytes at OLD offset `at`. The interpreter asks only for
    /// ranges that the op decoder accepted (inside `0..self.old_len()` and
    /// inside the chunk's declared OLD ranges); an implementation holding
    /// less than OLD may panic on a range it was not built for.
    fn bytes(&self, at: u64, len: usize) -> &[u8];
}

impl OldBytes for [u8] {
    #[inline(always)]
    fn old_len(&self) -> u64 {
        self.len() as u64
    }

    #[inline(always)]
    fn bytes(&self, at: u64, len: usize) -> &[u8] {
        &self[at as usize..at as usize + len]
    }
}

/// What ADD ops do with their diff bytes (see the module docs).
pub(crate) trait Adds {
    /// A COPY op has copied its `len` OLD bytes at `old` into the output
    /// at `pos`.
    #[inline(always)]
    fn copied(&mut self, old: u64, len: usize, pos: usize) {
        let _ = (old, len, pos);
    }

    /// An ADD op: `dst` (the output at `pos`) gets its bytes from `src`,
    /// its OLD source at `old`, and the op's diff bytes (now or later).
    fn add(&mut self, dst: &mut [u8], src: &[u8], old: u64, pos: usize);
}

/// Where an op stream's bytes go, and what INSERT and ZERO write there.
pub(crate) struct Out<'o, 'l> {
    /// The chunk's output, exactly its NEW length.
    pub buf: &'o mut [u8],
    /// NEW offset of `buf[0]`.
    pub new_start: u64,
    /// The literal stream, consumed in order by INSERT.
    pub lit: &'l [u8],
    /// The literals are still x86-filtered (format v4): undone per INSERT.
    pub lit_x86: bool,
    /// `buf` starts zeroed: ZERO ops write nothing (holes stay holes).
    pub zeroed: bool,
}

/// Runs the ops of `ops` into `out`, reading OLD from `old` and handing
/// ADD ops to `adds`. The decoder's checks are the only ones: ops tile
/// `out` exactly, read inside OLD and consume the literals exactly, so no
/// index here can fail. Stops at the first op the decoder refuses.
#[inline(always)]
pub(crate) fn run<O: OldBytes + ?Sized, A: Adds>(
    ops: OpDecoder<'_>,
    old: &O,
    out: Out<'_, '_>,
    adds: &mut A,
) -> Result<()> {
    let (mut pos, mut lpos) = (0usize, 0usize);
    for op in ops {
        let op = op?;
        let len = op.len() as usize;
        let dst = &mut out.buf[pos..pos + len];
        match op {
            Op::Copy { old: o, .. } => {
                dst.copy_from_slice(old.bytes(o, len));
                adds.copied(o, len, pos);
            }
            Op::Add { old: o, .. } => adds.add(dst, old.bytes(o, len), o, pos),
            Op::Insert { .. } => {
                dst.copy_from_slice(&out.lit[lpos..lpos + len]);
                if out.lit_x86 {
                    crate::coding::lits_decode(dst, out.new_start + pos as u64);
                }
                lpos += len;
            }
            Op::Zero { .. } => {
                if !out.zeroed {
                    dst.fill(0);
                }
            }
        }
        pos += len;
    }
    Ok(())
}

/// The reference's ADD: the diff bytes in op order, added op by op.
struct InOrder<'d> {
    diff: &'d [u8],
    dpos: usize,
    mode: AddMode,
    new_start: u64,
}

impl Adds for InOrder<'_> {
    #[inline(always)]
    fn add(&mut self, dst: &mut [u8], src: &[u8], _old: u64, pos: usize) {
        let len = dst.len();
        let diff = &self.diff[self.dpos..self.dpos + len];
        self.mode.add(dst, src, diff, self.new_start + pos as u64);
        self.dpos += len;
    }
}

/// Rebuilds one chunk's NEW bytes into `out` (exactly the chunk's length)
/// from OLD and decoded streams: the reference decoder. `out` must start
/// zeroed when `zeroed` is true, in which case ZERO ops are skipped
/// (leaving holes in a sparse output); otherwise they write zeros.
///
/// Costs one pass over `out`, plus, for the operand split or an operand
/// mode, a diff stream rejoined in op order (up to the chunk's length).
pub fn apply_ops(
    old: &[u8],
    streams: &Streams,
    ranges: &[(u64, u64)],
    new_start: u64,
    out: &mut [u8],
    zeroed: bool,
) -> Result<()> {
    apply_ops_from(old, streams, ranges, new_start, out, zeroed)
}

/// [`apply_ops`] with OLD's bytes read from `old`, any [`OldBytes`].
pub fn apply_ops_from<O: OldBytes + ?Sized>(
    old: &O,
    streams: &Streams,
    ranges: &[(u64, u64)],
    new_start: u64,
    out: &mut [u8],
    zeroed: bool,
) -> Result<()> {
    let out_len = out.len() as u64;
    let dec = || OpDecoder::for_streams(streams, new_start, out_len, old.old_len(), ranges);
    let diff = diff_in_op_order(streams, dec(), |o, l| old.bytes(o, l))?;
    let mut adds = InOrder {
        diff: &diff,
        dpos: 0,
        mode: streams.add,
        new_start,
    };
    let out = Out {
        buf: out,
        new_start,
        lit: &streams.lit,
        lit_x86: false,
        zeroed,
    };
    run(dec(), old, out, &mut adds)
}
