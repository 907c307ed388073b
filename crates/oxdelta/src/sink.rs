//! Applying to an output the caller owns: [`Sink`] and [`apply_to_sink`].
//!
//! The file appliers write NEW to a temporary file and rename it into
//! place; a device updater writes to a partition, a flash driver or a
//! socket instead, which has no rename. So the order of checks is
//! stricter here: the signature and the *whole* of OLD (length and BLAKE3)
//! are checked before the first write, and each chunk reaches the sink
//! only once its NEW hash verified.

use std::path::Path;

use oxdelta_apply::ApplyError;
use oxdelta_apply::map::InputMap;
use oxdelta_apply::{ApplyOptions, ApplyReport};
use oxdelta_format::progress::Phase;
use oxdelta_format::{Patch, SignatureBlock};
use rayon::prelude::*;

use crate::{Result, io};

/// Where [`apply_to_sink`] writes NEW.
pub trait Sink {
    /// Writes `data` at byte `offset` of NEW. Calls come from the thread
    /// that called [`apply_to_sink`], in increasing offset order, and
    /// their ranges tile NEW exactly (zeros included: nothing is assumed
    /// about what the output held before).
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()>;

    /// Writes `len` zero bytes at byte `offset` of NEW (a zero chunk, up
    /// to 4 GiB, or a chunk that rebuilds to zeros), under the same rules
    /// as [`Sink::write_at`]. By default: [`Sink::write_at`] from a static
    /// buffer of zeros, 1 MiB at a time; a sink whose output already
    /// reads as zeros there (a fresh sparse file) may skip it, one that
    /// can punch holes may do that.
    fn write_zeros(&mut self, mut offset: u64, mut len: u64) -> std::io::Result<()> {
        while len > 0 {
            let n = len.min(ZEROS.len() as u64);
            self.write_at(offset, &ZEROS[..n as usize])?;
            (offset, len) = (offset + n, len - n);
        }
        Ok(())
    }

    /// Called once after the last write, before the apply reports success.
    fn flush(&mut self) -> std::io::Result<()>;
}

/// What [`Sink::write_zeros`] writes from (in `.bss`: reading it maps
/// the kernel's zero page, no memory of ours).
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// A caller's buffer of exactly NEW's length.
impl Sink for [u8] {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let range = usize::try_from(offset)
            .ok()
            .and_then(|s| Some(s..s.checked_add(data.len())?))
            .filter(|r| r.end <= self.len())
            .ok_or_else(|| std::io::Error::other("write past the end of the output buffer"))?;
        self[range].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Applies `patch` to `old` and writes NEW through `sink`, in NEW order.
///
/// Before anything is written the signature is checked (required when
/// [`ApplyOptions::trusted_key`] is set) and all of OLD is hashed; each
/// chunk is then rebuilt and checked against its NEW hash before it is
/// written. A sink cannot be rolled back, so if the apply fails after
/// that point (a damaged chunk, a cancel through
/// [`ApplyOptions::cancel`], a failing sink) the sink holds a prefix of
/// NEW: treat the output as invalid unless this returns `Ok`.
///
/// Memory: chunks are rebuilt in parallel batches whose decode buffers
/// and outputs stay within [`ApplyOptions::memory_budget`] (a chunk larger
/// than the budget runs alone); nothing sized by NEW is held.
/// [`ApplyOptions::durable`] and [`ApplyOptions::max_in_memory_len`] do not
/// apply: the sink decides durability in its `flush`.
pub fn apply_to_sink<S: Sink + ?Sized>(
    old: &[u8],
    patch: &[u8],
    sink: &mut S,
    opts: &ApplyOptions,
) -> Result<ApplyReport> {
    let p = Patch::parse(patch)?;
    p.verify_signature(opts.trusted_key.as_ref())?;
    opts.progress.start(Phase::Verifying, old.len() as u64);
    oxdelta_apply::check_old(&p.head, old)?;
    opts.progress.advance(old.len() as u64);
    let shared = p.decode_shared(old)?;
    opts.progress.start(Phase::Applying, p.head.meta.new_len);
    let chunks = &p.head.chunks;
    let mut order: Vec<usize> = (0..chunks.len()).collect();
    order.sort_unstable_by_key(|&i| chunks[i].new_offset);
    let budget = opts.memory_budget.saturating_sub(shared.heap_len());
    let cancelled = || {
        opts.cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    };
    let sink_path = Path::new("<sink>");
    let mut at = 0;
    while at < order.len() {
        let (mut end, mut sum) = (at, 0u64);
        while end < order.len() {
            let e = &chunks[order[end]];
            let b = e.buffer_bound() + e.rebuild_len();
            if end > at && sum + b > budget {
                break;
            }
            sum += b;
            end += 1;
        }
        if cancelled() {
            return Err(ApplyError::Cancelled.into());
        }
        // A chunk of zeros (a zero chunk of format version 9 above all,
        // up to 4 GiB) is not rebuilt: the sink writes zeros.
        let outs: Vec<Option<Vec<u8>>> = order[at..end]
            .par_iter()
            .map(|&i| {
                let e = &chunks[i];
                opts.progress.advance(u64::from(e.new_len));
                if oxdelta_format::is_zero_chunk(e, p.payload(i), old.len() as u64) {
                    return Ok(None);
                }
                let mut buf = vec![0u8; e.new_len as usize];
                p.apply_chunk_in(i, &shared, old, &mut buf, true)?;
                Ok(Some(buf))
            })
            .collect::<std::result::Result<_, oxdelta_format::Error>>()?;
        for (&i, buf) in order[at..end].iter().zip(&outs) {
            let e = &chunks[i];
            match buf {
                Some(b) => sink.write_at(e.new_offset, b),
                None => sink.write_zeros(e.new_offset, e.new_len.into()),
            }
            .map_err(io("writing NEW to", sink_path))?;
        }
        at = end;
    }
    sink.flush().map_err(io("flushing NEW to", sink_path))?;
    Ok(ApplyReport {
        old_len: p.head.meta.old_len,
        new_len: p.head.meta.new_len,
        patch_len: patch.len() as u64,
        chunks: chunks.len(),
        signed: p.signature != SignatureBlock::Unsigned,
        key: p.signature.public_key(),
    })
}

/// [`apply_to_sink`] with OLD and the patch read from files, mapped and
/// guarded ([`oxdelta_apply::map::InputMap`]).
///
/// Every byte read through the maps is checked against a hash before it
/// can reach the sink (head hash and signature, OLD's hash before the
/// first write, each chunk's payload and NEW hashes), and the files'
/// lengths and modification times are checked against those at the start
/// before each batch of writes and before the flush: a file written or
/// truncated during the apply gives an error
/// ([`ApplyError::InputChanged`] when the change is seen), never a wrong
/// output nor, on Linux, a signal. The sink may then hold a prefix of NEW,
/// as after any failure (see [`apply_to_sink`]).
pub fn apply_file_to_sink<S: Sink + ?Sized>(
    old: &Path,
    patch: &Path,
    sink: &mut S,
    opts: &ApplyOptions,
) -> Result<ApplyReport> {
    let pm = InputMap::open(patch).map_err(io("opening patch", patch))?;
    let om = InputMap::open(old).map_err(io("opening OLD", old))?;
    let unchanged = || -> std::io::Result<()> {
        let check = pm.check(patch).and_then(|()| om.check(old));
        check.map_err(|e| std::io::Error::other(e.to_string()))
    };
    let mut checked = CheckedSink {
        sink,
        unchanged: &unchanged,
    };
    apply_to_sink(&om, &pm, &mut checked, opts).map_err(|e| {
        match pm.check(patch).and(om.check(old)) {
            Err(changed) => changed.into(),
            Ok(()) => e,
        }
    })
}

/// A sink that checks the inputs before passing writes and the flush on.
struct CheckedSink<'s, S: Sink + ?Sized> {
    sink: &'s mut S,
    unchanged: &'s dyn Fn() -> std::io::Result<()>,
}

impl<S: Sink + ?Sized> Sink for CheckedSink<'_, S> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        (self.unchanged)()?;
        self.sink.write_at(offset, data)
    }

    fn write_zeros(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        (self.unchanged)()?;
        self.sink.write_zeros(offset, len)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (self.unchanged)()?;
        self.sink.flush()
    }
}
