//! Crash-safe in-place apply: rewrite a file or block device from OLD to
//! NEW inside its own storage, resumable after a kill or power loss at any
//! instant.
//!
//! # Design
//!
//! The patch must carry [`oxdelta_format::head::FLAG_IN_PLACE`]: its chunks (*steps*) are in apply
//! order. OLD and NEW share the target's address space.
//!
//! * **Stash.** Before writing anything the applier copies into a journal
//!   every OLD byte that a step reads after an earlier step has overwritten
//!   it ([`oxdelta_format::inplace::StashPlanner`], computed from the
//!   patch alone — the OLD bytes each step's ops read — and bounded by
//!   [`InPlaceOptions::max_stash`]).
//! * **Shared section** (format version 8). Its literal block was
//!   compressed with OLD bytes as context, which the apply overwrites. It
//!   is decoded once, from the patch and the target while the target is
//!   still OLD (checked by hash), and the decoded literal block (at most
//!   4 MiB) is written into the journal with its BLAKE3 before anything
//!   else is; a resumed run takes it from there (checked by that hash)
//!   and decodes only the control block again, from the patch. The section
//!   is read from OLD once, before the first step, so it adds nothing to
//!   the ordering or the stash.
//! * **Batches.** Steps run in batches of consecutive steps (bounded by
//!   [`InPlaceOptions::batch_budget`]). A batch's steps read their inputs
//!   and rebuild their outputs in parallel, then the outputs are written.
//!   Only 4 KiB blocks whose bytes change are written.
//! * **Scratch.** A torn write could destroy OLD bytes that a step of the
//!   same batch still has to read on a re-run (its own input, when data did
//!   not move). Those bytes — reads of the batch's ops that fall inside
//!   blocks the batch writes — are saved in the journal's scratch area
//!   first, and the batch is marked *staged*.
//! * **Progress slots.** Two slots, written alternately, each with a
//!   sequence number and a BLAKE3 checksum: a torn slot write leaves the
//!   other, older slot valid. A slot says how many steps are done and
//!   whether the next batch is staged.
//!
//! Durability order (every arrow is an fsync):
//!
//! 1. journal header + stash (+ the shared literal block) written to a
//!    temporary file → renamed to the journal path → directory synced;
//!    only then is the target touched;
//! 2. a growing file is extended → synced;
//! 3. per batch: scratch → staged slot → target writes → done slot;
//! 4. a shrinking file is cut → synced; NEW is read back and every step's
//!    range checked against its NEW hash; the journal is removed →
//!    directory synced.
//!
//! On a re-run the journal is matched to the patch (its id is BLAKE3 of the
//! head and signature block), the done steps are recognised by their NEW
//! hashes, and every remaining step's input (read from the target through
//! the stash and scratch) is checked against the BLAKE3 recorded when the
//! journal was made — before a byte is written. A target that is neither
//! OLD, nor NEW, nor a partly patched OLD of this patch is refused and left
//! untouched.
//!
//! # Bounds
//!
//! Memory: the stash (≤ `max_stash`), the decoded shared section (≤ 8
//! MiB; its OLD context, ≤ 8 MiB, only while it decodes), plus per batch
//! its outputs, inputs, current target bytes, decoded streams and scratch
//! (about 5 × `batch_budget`; a step reads at most as many OLD bytes as it
//! writes, and one step alone may exceed the budget by at most the
//! format's 8 MiB).
//! Journal size: a header of 32 bytes per step, the stash, the shared
//! literal block, 8 KiB of slots and one batch's scratch.
//!
//! # Assumptions
//!
//! A write interrupted by power loss changes at most the bytes it
//! addresses, and fsync makes earlier writes durable. Writes are 4 KiB
//! aligned blocks of the target.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use oxdelta_format::filehash::{FileHash, FileHasher};
use oxdelta_format::inplace::{IntervalSet, StashPlanner, op_reads, total_len};
use oxdelta_format::ops::apply_ops_from;
use oxdelta_format::progress::{Phase, Progress};
use oxdelta_format::sign::hex;
use oxdelta_format::{
    ChunkEntry, OldBytes, Patch, PublicKey, Shared, SharedControl, Streams, decode_chunk_in,
};
use rayon::prelude::*;

use crate::error::io;
use crate::{ApplyError, Result};

/// Block size of target writes and change detection.
const BLOCK: u64 = 4096;

/// The journal path used when none is given: `TARGET.oxdelta-journal`.
pub fn default_journal_path(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(".oxdelta-journal");
    PathBuf::from(s)
}

/// How to apply in place.
#[derive(Clone, Debug)]
pub struct InPlaceOptions {
    /// When set, the patch must carry a valid signature by this key.
    pub trusted_key: Option<PublicKey>,
    /// The journal; `None` means [`default_journal_path`] (required for
    /// block devices, whose directory is not durable storage).
    pub journal: Option<PathBuf>,
    /// Set to true from elsewhere to stop between batches; the apply then
    /// fails with [`ApplyError::Cancelled`] and can be resumed.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Most stash bytes accepted (default 64 MiB).
    pub max_stash: u64,
    /// NEW bytes per batch (default 32 MiB).
    pub batch_budget: u64,
    /// Test hook: fail after this many writes (target and journal writes,
    /// syncs, renames and length changes each count one). The failing write is
    /// torn: only its first half reaches the file.
    pub fail_after_writes: Option<u64>,
    /// Test hook, with `fail_after_writes`: the fault is a simulated power
    /// loss — each write not yet synced is kept or undone at random from
    /// this seed (undone writes restore the bytes they replaced), which
    /// checks that every ordering point really has its sync.
    pub crash_seed: Option<u64>,
    /// Where to report progress: [`Phase::Verifying`] while the target and
    /// the patch are checked, [`Phase::Applying`] as batches are written.
    pub progress: Progress,
    /// Sync (fsync) at every ordering point (default true). Without it a
    /// power loss can lose the journal's guarantees; only tests that
    /// simulate crashes inside one process turn it off, for speed.
    pub durable: bool,
}

impl Default for InPlaceOptions {
    fn default() -> InPlaceOptions {
        InPlaceOptions {
            trusted_key: None,
            journal: None,
            cancel: None,
            max_stash: 64 << 20,
            batch_budget: 32 << 20,
            fail_after_writes: None,
            crash_seed: None,
            progress: Progress::none(),
            durable: true,
        }
    }
}

/// How an in-place apply ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InPlaceOutcome {
    /// The target now holds NEW.
    Patched,
    /// The target already held NEW; nothing was written.
    AlreadyUpToDate,
}

/// What an in-place apply did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InPlaceReport {
    /// How it ended.
    pub outcome: InPlaceOutcome,
    /// Whether an interrupted apply was resumed from its journal.
    pub resumed: bool,
    /// Steps (chunks) in the patch.
    pub steps: usize,
    /// Steps found already done (by hash) or skipped as resumed.
    pub steps_skipped: usize,
    /// Bytes written to the target.
    pub bytes_written: u64,
    /// OLD bytes stashed in the journal.
    pub stash_bytes: u64,
    /// Batches run.
    pub batches: usize,
    /// Whether the patch was signed and its signature verified: against
    /// the trusted key when one was given (see `key`), else only against
    /// the key the patch itself carries, which proves the head unchanged
    /// since someone signed it, not who.
    pub signed: bool,
    /// The key that signed the patch (`None` if unsigned).
    pub key: Option<PublicKey>,
    /// NEW bytes.
    pub new_len: u64,
}

// ---------------------------------------------------------------------------
// Fault hook

struct Faults {
    left: Option<AtomicU64>,
    /// With [`InPlaceOptions::crash_seed`]: writes not yet synced, oldest
    /// first, with the bytes each replaced.
    unsynced: Option<std::sync::Mutex<Vec<Unsynced>>>,
    seed: u64,
}

/// A write that a power loss could still undo.
struct Unsynced {
    file: File,
    key: (u64, u64),
    at: u64,
    old: Vec<u8>,
}

fn file_key(f: &File) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    f.metadata().map_or((0, 0), |m| (m.dev(), m.ino()))
}

impl Faults {
    /// Before a write: remembers what it replaces.
    fn before_write(&self, f: &File, buf_len: usize, at: u64) {
        let Some(log) = &self.unsynced else { return };
        let mut old = vec![0u8; buf_len];
        let mut got = 0;
        while got < buf_len {
            match f.read_at(&mut old[got..], at + got as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        if let (Ok(file), Ok(mut log)) = (f.try_clone(), log.lock()) {
            log.push(Unsynced {
                file,
                key: file_key(f),
                at,
                old,
            });
        }
    }

    /// After a sync of `f`: its writes are durable.
    fn synced(&self, f: &File) {
        if let Some(log) = &self.unsynced {
            let key = file_key(f);
            if let Ok(mut log) = log.lock() {
                log.retain(|u| u.key != key);
            }
        }
    }

    /// The simulated power loss: each unsynced write is kept or undone at
    /// random (seeded); an undone write restores only bytes that no kept
    /// later write covers.
    fn lose_unsynced(&self) {
        let Some(log) = &self.unsynced else { return };
        let Ok(mut log) = log.lock() else { return };
        let mut x = self.seed | 1;
        let mut kept: Vec<((u64, u64), IntervalSet)> = Vec::new();
        for u in log.drain(..).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let end = u.at + u.old.len() as u64;
            let pos = match kept.iter().position(|k| k.0 == u.key) {
                Some(p) => p,
                None => {
                    kept.push((u.key, IntervalSet::new()));
                    kept.len() - 1
                }
            };
            if x % 2 == 0 {
                kept[pos].1.insert(u.at, end);
                continue;
            }
            let mut free = vec![(u.at, end)];
            for (a, b) in kept[pos].1.intersect(u.at, end) {
                free = free
                    .into_iter()
                    .flat_map(|(s, e)| [(s, e.min(a)), (s.max(b), e)])
                    .filter(|(s, e)| s < e)
                    .collect();
            }
            for (s, e) in free {
                let o = (s - u.at) as usize;
                let _ = u.file.write_all_at(&u.old[o..o + (e - s) as usize], s);
            }
        }
    }

    /// Accounts one write of `len` bytes: `Ok(None)` to write it all,
    /// `Ok(Some(n))` to write only `n` bytes and then fail.
    fn tick(&self, len: usize) -> Option<usize> {
        let left = self.left.as_ref()?;
        let was = left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
            .unwrap_or(0);
        (was == 0).then_some(len / 2)
    }
}

fn injected() -> std::io::Error {
    std::io::Error::other("injected fault (test hook)")
}

// ---------------------------------------------------------------------------
// Journal layout

const JOURNAL_MAGIC: [u8; 8] = *b"OXDJRNL\x01";
const SLOT_MAGIC: [u8; 8] = *b"OXDSLOT\x01";
/// Bytes of a version-1 journal's fixed header.
const JOURNAL_FIXED: usize = 120;
/// Bytes a version-2 journal adds to the fixed header: the shared literal
/// block's length and BLAKE3.
const JOURNAL_SHARED: usize = 40;
const SLOT_LEN: usize = 96;
const SLOT_SPACING: u64 = 4096;
/// Most steps a journal header records (the format's chunk limit).
const MAX_JOURNAL_STEPS: u64 = oxdelta_format::limits::MAX_CHUNKS as u64;
const MAX_STASH_RANGES: u64 = 1 << 24;

fn align_up(v: u64) -> u64 {
    v.div_ceil(SLOT_SPACING) * SLOT_SPACING
}

/// The journal's header: what it was made for and what it holds.
///
/// Version 1 is the journal of a patch without a shared section; version 2
/// (format-8 in-place patches with a section) also holds the section's
/// decoded literal block, which was decoded with OLD as its context and so
/// cannot be decoded again once OLD is overwritten. A patch without a
/// section still gets a version-1 journal, byte for byte what earlier
/// releases wrote, so either release resumes the other's.
#[derive(Clone, Debug, PartialEq, Eq)]
struct JournalHead {
    patch_id: [u8; 32],
    old_len: u64,
    new_len: u64,
    start_len: u64,
    stash: Vec<(u64, u64)>,
    stash_hash: [u8; 32],
    read_hashes: Vec<[u8; 32]>,
    /// Version 2: the decoded shared literal block's length (at most
    /// [`oxdelta_format::limits::MAX_SHARED_BLOCK`]) and BLAKE3.
    shared_lit: Option<(u64, [u8; 32])>,
}

impl JournalHead {
    fn version(&self) -> u32 {
        if self.shared_lit.is_some() { 2 } else { 1 }
    }

    fn fixed_len(&self) -> usize {
        JOURNAL_FIXED + self.shared_lit.map_or(0, |_| JOURNAL_SHARED)
    }

    fn encoded_len(&self) -> u64 {
        self.fixed_len() as u64
            + 16 * self.stash.len() as u64
            + 32 * self.read_hashes.len() as u64
            + 32
    }
    fn stash_len(&self) -> u64 {
        self.stash
            .iter()
            .fold(0u64, |a, r| a.saturating_add(r.1))
            .min(u64::MAX >> 2)
    }
    fn data_off(&self) -> u64 {
        align_up(self.encoded_len())
    }
    /// Where the shared literal block is (version 2): right after the stash.
    fn lit_off(&self) -> u64 {
        self.data_off() + self.stash_len()
    }
    fn lit_len(&self) -> u64 {
        self.shared_lit.map_or(0, |(l, _)| l)
    }
    fn slots_off(&self) -> u64 {
        align_up(self.lit_off() + self.lit_len())
    }
    fn scratch_off(&self) -> u64 {
        self.slots_off() + 2 * SLOT_SPACING
    }

    fn encode(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(self.encoded_len() as usize);
        o.extend_from_slice(&JOURNAL_MAGIC);
        o.extend_from_slice(&self.version().to_le_bytes());
        o.extend_from_slice(&0u32.to_le_bytes());
        o.extend_from_slice(&self.patch_id);
        o.extend_from_slice(&self.old_len.to_le_bytes());
        o.extend_from_slice(&self.new_len.to_le_bytes());
        o.extend_from_slice(&self.start_len.to_le_bytes());
        o.extend_from_slice(&(self.read_hashes.len() as u32).to_le_bytes());
        o.extend_from_slice(&(self.stash.len() as u32).to_le_bytes());
        o.extend_from_slice(&self.stash_len().to_le_bytes());
        o.extend_from_slice(&self.stash_hash);
        if let Some((len, hash)) = &self.shared_lit {
            o.extend_from_slice(&len.to_le_bytes());
            o.extend_from_slice(hash);
        }
        debug_assert_eq!(o.len(), self.fixed_len());
        for &(s, l) in &self.stash {
            o.extend_from_slice(&s.to_le_bytes());
            o.extend_from_slice(&l.to_le_bytes());
        }
        for h in &self.read_hashes {
            o.extend_from_slice(h);
        }
        let sum = *blake3::hash(&o).as_bytes();
        o.extend_from_slice(&sum);
        o
    }

    /// Parses a journal header from the start of `f`; `None` when it is
    /// not a complete, intact journal of version 1 or 2.
    fn read(f: &File, file_len: u64) -> Option<JournalHead> {
        let mut fixed = [0u8; JOURNAL_FIXED];
        f.read_exact_at(&mut fixed, 0).ok()?;
        let version = u32_at(&fixed, 8);
        if fixed[..8] != JOURNAL_MAGIC || !(1..=2).contains(&version) || u32_at(&fixed, 12) != 0 {
            return None;
        }
        let fixed_len = JOURNAL_FIXED + if version == 2 { JOURNAL_SHARED } else { 0 };
        let steps = u64::from(u32_at(&fixed, 72));
        let ranges = u64::from(u32_at(&fixed, 76));
        if steps > MAX_JOURNAL_STEPS || ranges > MAX_STASH_RANGES {
            return None;
        }
        let len = fixed_len as u64 + 16 * ranges + 32 * steps + 32;
        if len > file_len {
            return None;
        }
        let mut all = vec![0u8; len as usize];
        f.read_exact_at(&mut all, 0).ok()?;
        let (body, sum) = all.split_at(all.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return None;
        }
        let shared_lit = if version == 2 {
            let len = u64_at(body, JOURNAL_FIXED);
            if len > oxdelta_format::limits::MAX_SHARED_BLOCK {
                return None;
            }
            Some((len, body[JOURNAL_FIXED + 8..fixed_len].try_into().ok()?))
        } else {
            None
        };
        let mut p = fixed_len;
        let mut stash = Vec::with_capacity(ranges as usize);
        for _ in 0..ranges {
            stash.push((u64_at(body, p), u64_at(body, p + 8)));
            p += 16;
        }
        let mut read_hashes = Vec::with_capacity(steps as usize);
        for _ in 0..steps {
            read_hashes.push(body[p..p + 32].try_into().ok()?);
            p += 32;
        }
        let head = JournalHead {
            patch_id: body[16..48].try_into().ok()?,
            old_len: u64_at(body, 48),
            new_len: u64_at(body, 56),
            start_len: u64_at(body, 64),
            stash,
            stash_hash: body[88..120].try_into().ok()?,
            read_hashes,
            shared_lit,
        };
        (head.stash_len() == u64_at(body, 80)).then_some(head)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// One progress slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    seq: u64,
    /// Steps `0..next` are done.
    next: u32,
    /// When greater than `next`, steps `next..batch_end` are staged: their
    /// scratch (`scratch_len` bytes, BLAKE3 `scratch_hash`) is durable.
    batch_end: u32,
    scratch_len: u64,
    scratch_hash: [u8; 32],
}

impl Slot {
    fn encode(&self) -> [u8; SLOT_LEN] {
        let mut o = [0u8; SLOT_LEN];
        o[..8].copy_from_slice(&SLOT_MAGIC);
        o[8..16].copy_from_slice(&self.seq.to_le_bytes());
        o[16..20].copy_from_slice(&self.next.to_le_bytes());
        o[20..24].copy_from_slice(&self.batch_end.to_le_bytes());
        o[24..32].copy_from_slice(&self.scratch_len.to_le_bytes());
        o[32..64].copy_from_slice(&self.scratch_hash);
        let sum = *blake3::hash(&o[..64]).as_bytes();
        o[64..].copy_from_slice(&sum);
        o
    }

    fn decode(b: &[u8; SLOT_LEN]) -> Option<Slot> {
        if b[..8] != SLOT_MAGIC || blake3::hash(&b[..64]).as_bytes() != &b[64..] {
            return None;
        }
        Some(Slot {
            seq: u64_at(b, 8),
            next: u32_at(b, 16),
            batch_end: u32_at(b, 20),
            scratch_len: u64_at(b, 24),
            scratch_hash: b[32..64].try_into().ok()?,
        })
    }

    fn staged(&self) -> bool {
        self.batch_end > self.next
    }
}

/// Saved OLD bytes: sorted, disjoint ranges and their data, back to back.
#[derive(Clone, Debug, Default)]
struct Saved {
    ranges: Vec<(u64, u64)>,
    /// Offset of each range's data in `data`.
    offs: Vec<usize>,
    data: Vec<u8>,
}

impl Saved {
    fn new(ranges: Vec<(u64, u64)>, data: Vec<u8>) -> Saved {
        let mut offs = Vec::with_capacity(ranges.len());
        let mut o = 0usize;
        for r in &ranges {
            offs.push(o);
            o += r.1 as usize;
        }
        debug_assert_eq!(o, data.len());
        Saved { ranges, offs, data }
    }

    /// Copies the saved bytes inside `[at, at + buf.len())` into `buf`.
    fn overlay(&self, at: u64, buf: &mut [u8]) {
        let end = at + buf.len() as u64;
        let first = self.ranges.partition_point(|&(s, l)| s + l <= at);
        for (k, &(s, l)) in self.ranges.iter().enumerate().skip(first) {
            if s >= end {
                break;
            }
            let (a, b) = (s.max(at), (s + l).min(end));
            let src = self.offs[k] + (a - s) as usize;
            buf[(a - at) as usize..(b - at) as usize]
                .copy_from_slice(&self.data[src..src + (b - a) as usize]);
        }
    }

    /// The scratch blob: count, ranges, data.
    fn blob(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(4 + 16 * self.ranges.len() + self.data.len());
        o.extend_from_slice(&(self.ranges.len() as u32).to_le_bytes());
        for &(s, l) in &self.ranges {
            o.extend_from_slice(&s.to_le_bytes());
            o.extend_from_slice(&l.to_le_bytes());
        }
        o.extend_from_slice(&self.data);
        o
    }

    fn from_blob(b: &[u8]) -> Option<Saved> {
        let n = u32_at(b.get(..4)?, 0) as usize;
        let table = b.get(4..4usize.checked_add(n.checked_mul(16)?)?)?;
        let ranges: Vec<(u64, u64)> = table
            .chunks_exact(16)
            .map(|r| (u64_at(r, 0), u64_at(r, 8)))
            .collect();
        let data = b[4 + 16 * n..].to_vec();
        (total_len(&ranges) == data.len() as u64).then(|| Saved::new(ranges, data))
    }
}

// ---------------------------------------------------------------------------
// The target and the journal

struct Target {
    file: File,
    path: PathBuf,
    block_device: bool,
}

impl Target {
    fn len(&self) -> Result<u64> {
        if self.block_device {
            use std::io::{Seek, SeekFrom};
            let mut f = &self.file;
            f.seek(SeekFrom::End(0))
                .map_err(io("finding the size of", &self.path))
        } else {
            Ok(self
                .file
                .metadata()
                .map_err(io("reading the size of", &self.path))?
                .len())
        }
    }

    fn read(&self, buf: &mut [u8], at: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, at)
            .map_err(io("reading", &self.path))
    }

    /// The whole-file hash `kind` of bytes `0..len`, read in 4 MiB pieces.
    fn hash_prefix(&self, len: u64, kind: FileHash) -> Result<[u8; 32]> {
        let mut h = FileHasher::new(kind, &crate::sparse::Rayon);
        let mut buf = vec![0u8; 4 << 20];
        let mut at = 0;
        while at < len {
            let n = (len - at).min(buf.len() as u64) as usize;
            self.read(&mut buf[..n], at)?;
            h.update(&buf[..n]);
            at += n as u64;
        }
        Ok(h.finalize())
    }
}

struct Run<'a> {
    target: Target,
    journal_path: PathBuf,
    faults: Faults,
    opts: &'a InPlaceOptions,
}

impl Run<'_> {
    fn write(&self, file: &File, path: &Path, buf: &[u8], at: u64) -> Result<()> {
        self.faults.before_write(file, buf.len(), at);
        match self.faults.tick(buf.len()) {
            None => file.write_all_at(buf, at).map_err(io("writing", path)),
            Some(n) => {
                let _ = file.write_all_at(&buf[..n], at);
                Err(self.crash("writing", path))
            }
        }
    }

    /// The injected fault: with a crash seed, unsynced writes are partly
    /// lost too.
    fn crash(&self, action: &'static str, path: &Path) -> ApplyError {
        self.faults.lose_unsynced();
        io(action, path)(injected())
    }

    fn write_target(&self, buf: &[u8], at: u64) -> Result<()> {
        self.write(&self.target.file, &self.target.path, buf, at)
    }

    fn sync_target(&self) -> Result<()> {
        self.sync(&self.target.file, &self.target.path)
    }

    fn sync(&self, f: &File, path: &Path) -> Result<()> {
        // A crash while syncing: any part of the unsynced writes may be lost.
        if self.faults.tick(0).is_some() {
            return Err(self.crash("syncing", path));
        }
        if self.opts.durable {
            f.sync_data().map_err(io("syncing", path))?;
        }
        self.faults.synced(f);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        if self.opts.durable {
            sync_dir(path)?;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<()> {
        if self.faults.tick(0).is_some() {
            return Err(self.crash("resizing", &self.target.path));
        }
        self.target
            .file
            .set_len(len)
            .map_err(io("resizing", &self.target.path))?;
        if self.opts.durable {
            self.target
                .file
                .sync_all()
                .map_err(io("syncing", &self.target.path))?;
        }
        self.faults.synced(&self.target.file);
        Ok(())
    }

    fn cancelled(&self) -> bool {
        self.opts
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing directory", &dir))
}

struct Journal {
    file: File,
    head: JournalHead,
    stash: Saved,
    slots: [Option<Slot>; 2],
    /// The patch's decoded shared section (empty without one): decoded
    /// from the patch and OLD before the first write, and on a resumed run
    /// from the patch and the journal's copy of the literal block.
    shared: Shared,
}

impl Journal {
    fn current(&self) -> Option<Slot> {
        self.slots.iter().flatten().max_by_key(|s| s.seq).copied()
    }

    /// Writes `slot` over the older of the two slots and syncs.
    fn put_slot(&mut self, run: &Run<'_>, mut slot: Slot) -> Result<()> {
        let cur = self.current();
        slot.seq = cur.map_or(1, |c| c.seq + 1);
        let idx = match (self.slots[0], self.slots[1]) {
            (Some(a), Some(b)) => usize::from(a.seq > b.seq),
            (Some(_), None) => 1,
            _ => 0,
        };
        let at = self.head.slots_off() + idx as u64 * SLOT_SPACING;
        run.write(&self.file, &run.journal_path, &slot.encode(), at)?;
        run.sync(&self.file, &run.journal_path)?;
        self.slots[idx] = Some(slot);
        Ok(())
    }

    /// Opens the journal at `path` of the patch `p` (whose id is
    /// `patch_id`), checking its header, stash and shared literal block;
    /// `None` when there is none.
    fn open(path: &Path, p: &Patch<'_>, patch_id: &[u8; 32]) -> Result<Option<Journal>> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("opening journal", path)(e)),
        };
        let len = file.metadata().map_err(io("reading journal", path))?.len();
        let Some(head) = JournalHead::read(&file, len) else {
            return Err(ApplyError::Journal {
                path: path.to_path_buf(),
                detail: "it is damaged or not an oxdelta journal; remove it only if the target is untouched OLD".into(),
            });
        };
        if &head.patch_id != patch_id {
            return Err(ApplyError::Journal {
                path: path.to_path_buf(),
                detail: format!(
                    "it belongs to another patch (id {}…); finish that patch first or remove the journal",
                    &hex(&head.patch_id)[..16]
                ),
            });
        }
        let stash_len = head.stash_len();
        let desc = &p.head.shared;
        if head.shared_lit.is_some() != desc.is_present()
            || head.lit_len() != u64::from(desc.lit.raw)
        {
            return Err(ApplyError::Journal {
                path: path.to_path_buf(),
                detail: "its shared literal block does not match the patch's shared section".into(),
            });
        }
        if stash_len > len || head.slots_off() + SLOT_SPACING + SLOT_LEN as u64 > len {
            return Err(ApplyError::Journal {
                path: path.to_path_buf(),
                detail: "it is truncated".into(),
            });
        }
        let mut data = vec![0u8; stash_len as usize];
        file.read_exact_at(&mut data, head.data_off())
            .map_err(io("reading journal", path))?;
        if blake3::hash(&data).as_bytes() != &head.stash_hash {
            return Err(ApplyError::Journal {
                path: path.to_path_buf(),
                detail: "its stashed OLD data is damaged".into(),
            });
        }
        let shared = match (
            head.shared_lit,
            SharedControl::decode(&p.head, p.shared_bytes())?,
        ) {
            (Some((lit_len, lit_hash)), Some(control)) => {
                let mut lit = vec![0u8; lit_len as usize];
                file.read_exact_at(&mut lit, head.lit_off())
                    .map_err(io("reading journal", path))?;
                if blake3::hash(&lit).as_bytes() != &lit_hash {
                    return Err(ApplyError::Journal {
                        path: path.to_path_buf(),
                        detail: "its copy of the shared literal block is damaged".into(),
                    });
                }
                control.with_literal_block(&p.head, lit)?
            }
            _ => Shared::default(),
        };
        let mut slots = [None, None];
        for (i, s) in slots.iter_mut().enumerate() {
            let mut b = [0u8; SLOT_LEN];
            file.read_exact_at(&mut b, head.slots_off() + i as u64 * SLOT_SPACING)
                .map_err(io("reading journal", path))?;
            *s = Slot::decode(&b);
        }
        let stash = Saved::new(head.stash.clone(), data);
        Ok(Some(Journal {
            file,
            head,
            stash,
            slots,
            shared,
        }))
    }

    fn read_scratch(&self, run: &Run<'_>, slot: &Slot) -> Result<Saved> {
        let damaged = || ApplyError::Journal {
            path: run.journal_path.clone(),
            detail: "its scratch area is damaged".into(),
        };
        let len = self
            .file
            .metadata()
            .map_err(io("reading journal", &run.journal_path))?
            .len();
        if self.head.scratch_off() + slot.scratch_len > len {
            return Err(damaged());
        }
        let mut b = vec![0u8; slot.scratch_len as usize];
        self.file
            .read_exact_at(&mut b, self.head.scratch_off())
            .map_err(io("reading journal", &run.journal_path))?;
        if blake3::hash(&b).as_bytes() != &slot.scratch_hash {
            return Err(damaged());
        }
        Saved::from_blob(&b).ok_or_else(damaged)
    }
}

// ---------------------------------------------------------------------------
// Steps

/// A step's decoded streams and the OLD intervals `[start, end)` its ops
/// read (sorted, merged; at most the step's NEW length in all).
struct StepInput {
    streams: Streams,
    reads: Vec<(u64, u64)>,
}

/// Decodes step `i` (payload hash checked first) and its ops' reads;
/// `shared` is the patch's decoded shared section.
fn decode_step(p: &Patch<'_>, shared: &Shared, i: usize) -> Result<StepInput> {
    let e = &p.head.chunks[i];
    let streams = decode_chunk_in(e, p.payload(i), shared)?;
    let reads = op_reads(e, &streams, p.head.meta.old_len)?;
    Ok(StepInput { streams, reads })
}

/// A step's OLD as its ops read it: the bytes of its read intervals,
/// gathered back to back from the target under the saved layers.
struct Gathered {
    /// Each read interval's OLD start and its offset in `buf`, sorted.
    starts: Vec<(u64, usize)>,
    buf: Vec<u8>,
    old_len: u64,
}

impl Gathered {
    /// `buf` holds the bytes of `reads` back to back (see [`gather`]), of
    /// an OLD of `old_len` bytes.
    fn new(reads: &[(u64, u64)], buf: Vec<u8>, old_len: u64) -> Gathered {
        let mut starts = Vec::with_capacity(reads.len());
        let mut o = 0usize;
        for &(s, e) in reads {
            starts.push((s, o));
            o += (e - s) as usize;
        }
        Gathered {
            starts,
            buf,
            old_len,
        }
    }
}

impl OldBytes for Gathered {
    fn old_len(&self) -> u64 {
        self.old_len
    }

    /// Every op read lies inside one merged read interval (the intervals
    /// are the ops' own reads, from the same streams), so `at` is at or
    /// after the first start and `at + len` within its interval.
    fn bytes(&self, at: u64, len: usize) -> &[u8] {
        let k = self.starts.partition_point(|&(s, _)| s <= at) - 1;
        let o = self.starts[k].1 + (at - self.starts[k].0) as usize;
        &self.buf[o..o + len]
    }
}

/// Reads `reads` back to back through the saved layers (stash, then
/// scratch) over the target.
fn gather(
    target: &Target,
    reads: &[(u64, u64)],
    stash: &Saved,
    scratch: Option<&Saved>,
) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; reads.iter().map(|r| r.1 - r.0).sum::<u64>() as usize];
    let mut o = 0usize;
    for &(s, e) in reads {
        let dst = &mut buf[o..o + (e - s) as usize];
        target.read(dst, s)?;
        if let Some(sc) = scratch {
            sc.overlay(s, dst);
        }
        stash.overlay(s, dst);
        o += (e - s) as usize;
    }
    Ok(buf)
}

/// Rebuilds a step's NEW bytes from its streams and gathered OLD (the
/// reference interpreter, [`apply_ops_from`]), checking the NEW hash.
fn build(e: &ChunkEntry, st: &StepInput, old: &Gathered) -> Result<Vec<u8>> {
    let mut out = vec![0u8; e.new_len as usize];
    apply_ops_from(
        old,
        &st.streams,
        &e.old_ranges,
        e.new_offset,
        &mut out,
        true,
    )?;
    if blake3::hash(&out).as_bytes() != &e.new_hash {
        return Err(ApplyError::WrongTarget {
            detail: format!(
                "NEW bytes {}..{} do not hash as the patch says (damaged patch or target)",
                e.new_offset,
                e.new_offset + u64::from(e.new_len)
            ),
        });
    }
    Ok(out)
}

/// The end of the batch that starts at step `from`: consecutive steps of
/// at most `budget` NEW bytes (at least one step).
fn batch_end(chunks: &[ChunkEntry], from: usize, budget: u64) -> usize {
    let mut e = from;
    let mut bytes = 0u64;
    while e < chunks.len() && (e == from || bytes + u64::from(chunks[e].new_len) <= budget) {
        bytes += u64::from(chunks[e].new_len);
        e += 1;
    }
    e
}

/// The `[start, end)` runs of 4 KiB blocks (clipped to the step) where
/// `want` differs from `have`; both start at target offset `at`.
fn changed_runs(at: u64, want: &[u8], have: &[u8]) -> Vec<(u64, u64)> {
    let end = at + want.len() as u64;
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut b = at;
    while b < end {
        let be = ((b / BLOCK + 1) * BLOCK).min(end);
        let (i, j) = ((b - at) as usize, (be - at) as usize);
        if want[i..j] != have[i..j] {
            match runs.last_mut() {
                Some(r) if r.1 == b => r.1 = be,
                _ => runs.push((b, be)),
            }
        }
        b = be;
    }
    runs
}

// ---------------------------------------------------------------------------
// The apply

/// [`apply_in_place`] with the patch read from the file `patch`, mapped
/// and guarded ([`crate::map::InputMap`]): every byte of it is checked
/// (head hash and signature, each step's payload hash) before the step
/// built from it is written, and a patch that changes during the apply
/// fails it with [`ApplyError::InputChanged`], not a signal.
pub fn apply_in_place_file(
    target: &Path,
    patch: &Path,
    opts: &InPlaceOptions,
) -> Result<InPlaceReport> {
    let m = crate::map::InputMap::open(patch).map_err(io("opening patch", patch))?;
    apply_in_place(target, &m, opts).or_else(|e| {
        m.check(patch)?;
        Err(e)
    })
}

/// Applies the in-place `patch` to `target` (a regular file or a block
/// device), resuming from its journal if an earlier run was interrupted.
pub fn apply_in_place(target: &Path, patch: &[u8], opts: &InPlaceOptions) -> Result<InPlaceReport> {
    let p = Patch::parse(patch)?;
    p.verify_signature(opts.trusted_key.as_ref())?;
    let head = &p.head;
    if !head.is_in_place() {
        return Err(ApplyError::NotInPlace);
    }
    let patch_id = *blake3::hash(&patch[..head.payload_start() as usize]).as_bytes();
    let run = Run::open(target, opts)?;
    let block_device = run.target.block_device;
    let mut report = InPlaceReport {
        outcome: InPlaceOutcome::Patched,
        resumed: false,
        steps: head.chunks.len(),
        steps_skipped: 0,
        bytes_written: 0,
        stash_bytes: 0,
        batches: 0,
        signed: p.signature.public_key().is_some(),
        key: p.signature.public_key(),
        new_len: head.meta.new_len,
    };
    let Some(mut journal) = resume_or_start(&run, &p, patch_id, &mut report)? else {
        return Ok(report);
    };
    report.stash_bytes = journal.head.stash_len();
    if !block_device && run.target.len()? < head.meta.new_len {
        run.set_len(head.meta.new_len)?;
    }
    run_batches(&run, &p, &mut journal, &mut report)?;
    if !block_device && run.target.len()? > head.meta.new_len {
        run.set_len(head.meta.new_len)?;
    }
    check_written(&run, head)?;
    drop(journal);
    if run.faults.tick(0).is_some() {
        return Err(run.crash("removing journal", &run.journal_path));
    }
    fs::remove_file(&run.journal_path).map_err(io("removing journal", &run.journal_path))?;
    run.sync_dir(&run.journal_path)?;
    Ok(report)
}

impl<'a> Run<'a> {
    /// Opens `target` for an in-place apply and picks its journal's path.
    fn open(target: &Path, opts: &'a InPlaceOptions) -> Result<Run<'a>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(target)
            .map_err(io("opening target", target))?;
        let block_device = file
            .metadata()
            .map_err(io("reading", target))?
            .file_type()
            .is_block_device();
        let journal_path = match (&opts.journal, block_device) {
            (Some(j), _) => j.clone(),
            (None, false) => default_journal_path(target),
            (None, true) => {
                return Err(ApplyError::Journal {
                    path: target.to_path_buf(),
                    detail: "a block device needs --journal PATH on durable storage".into(),
                });
            }
        };
        Ok(Run {
            target: Target {
                file,
                path: target.to_path_buf(),
                block_device,
            },
            journal_path,
            faults: Faults {
                left: opts.fail_after_writes.map(AtomicU64::new),
                unsynced: opts
                    .crash_seed
                    .filter(|_| opts.fail_after_writes.is_some())
                    .map(|_| std::sync::Mutex::new(Vec::new())),
                seed: opts.crash_seed.unwrap_or(0),
            },
            opts,
        })
    }
}

/// The journal to go on with: the interrupted apply's (checked), or a new
/// one once the target is found to be OLD; `None` when the target is
/// already NEW (`report` says so).
fn resume_or_start(
    run: &Run<'_>,
    p: &Patch<'_>,
    patch_id: [u8; 32],
    report: &mut InPlaceReport,
) -> Result<Option<Journal>> {
    let head = &p.head;
    let len = run.target.len()?;
    if let Some(j) = Journal::open(&run.journal_path, p, &patch_id)? {
        report.resumed = true;
        check_resume(run, p, &j)?;
        return Ok(Some(j));
    }
    let (old_len, new_len) = (head.meta.old_len, head.meta.new_len);
    let fits = |l: u64| {
        if run.target.block_device {
            l <= len
        } else {
            l == len
        }
    };
    let new_h = fits(new_len)
        .then(|| run.target.hash_prefix(new_len, head.file_hash()))
        .transpose()?;
    if new_h == Some(head.meta.new_hash) {
        report.outcome = InPlaceOutcome::AlreadyUpToDate;
        report.steps_skipped = report.steps;
        return Ok(None);
    }
    let old_h = match (fits(old_len), new_h) {
        (true, Some(h)) if old_len == new_len => Some(h),
        (true, _) => Some(run.target.hash_prefix(old_len, head.file_hash())?),
        (false, _) => None,
    };
    if old_h != Some(head.meta.old_hash) {
        return Err(ApplyError::WrongTarget {
            detail: format!(
                "{} is neither OLD ({old_len} bytes, BLAKE3 {}…) nor NEW, and there is no journal {} of an interrupted apply",
                run.target.path.display(),
                &hex(&head.meta.old_hash)[..16],
                run.journal_path.display()
            ),
        });
    }
    create_journal(run, p, patch_id, len).map(Some)
}

/// Reads NEW back from the target and checks every step's range against
/// its NEW hash: the writes reached storage as planned. Per chunk, not the
/// metadata's whole-NEW hash, so that this applier accepts exactly the
/// patches the others accept (see the crate docs); the chunks tile NEW, so
/// this checks all of it. Memory: one chunk buffer per rayon thread.
fn check_written(run: &Run<'_>, head: &oxdelta_format::Head) -> Result<()> {
    head.chunks.par_iter().try_for_each(|e| -> Result<()> {
        let mut b = vec![0u8; e.new_len as usize];
        run.target.read(&mut b, e.new_offset)?;
        if blake3::hash(&b).as_bytes() != &e.new_hash {
            return Err(ApplyError::WrongTarget {
                detail: format!(
                    "NEW {}..{} does not read back as the patch says after applying",
                    e.new_offset,
                    e.new_offset + u64::from(e.new_len)
                ),
            });
        }
        Ok(())
    })
}

/// Every payload checked intact and every step's ops valid against the
/// target (OLD), before anything is written: the OLD ranges to stash and
/// the hash of what each step reads.
#[allow(clippy::type_complexity)]
fn plan_stash(
    run: &Run<'_>,
    p: &Patch<'_>,
    shared: &Shared,
) -> Result<(Vec<(u64, u64)>, Vec<[u8; 32]>)> {
    let head = &p.head;
    let chunks = &head.chunks;
    // Every payload must be intact and every step's ops valid before
    // anything is written; plan the stash and record what each step reads.
    let mut planner = StashPlanner::new();
    let mut read_hashes = Vec::with_capacity(chunks.len());
    run.opts.progress.start(Phase::Verifying, head.meta.new_len);
    let mut from = 0;
    while from < chunks.len() {
        let end = batch_end(chunks, from, run.opts.batch_budget);
        let steps = (from..end)
            .into_par_iter()
            .map(|i| {
                let st = decode_step(p, shared, i)?;
                let input = gather(&run.target, &st.reads, &Saved::default(), None)?;
                Ok((st.reads, *blake3::hash(&input).as_bytes()))
            })
            .collect::<Result<Vec<_>>>()?;
        for ((reads, h), e) in steps.into_iter().zip(&chunks[from..end]) {
            planner.step(&reads, e.new_offset, u64::from(e.new_len));
            read_hashes.push(h);
            run.opts.progress.advance(u64::from(e.new_len));
        }
        if planner.stashed() > run.opts.max_stash || planner.ranges() as u64 > MAX_STASH_RANGES {
            return Err(ApplyError::WrongTarget {
                detail: format!(
                    "the patch needs more than {} bytes (or {MAX_STASH_RANGES} ranges) of OLD stashed; \
                     make it with a lower --stash-limit",
                    run.opts.max_stash
                ),
            });
        }
        from = end;
    }
    Ok((planner.finish(), read_hashes))
}

/// Validates the patch against OLD (payload hashes, every step's input),
/// stashes, and durably creates the journal. Writes nothing to the target.
fn create_journal(run: &Run<'_>, p: &Patch<'_>, patch_id: [u8; 32], len: u64) -> Result<Journal> {
    let head = &p.head;
    // The target is OLD (checked by hash): the shared section's context
    // is read now, before anything is written, and the decoded literal
    // block goes into the journal for a resumed run.
    let shared = decode_shared(run, p)?;
    let (stash, read_hashes) = plan_stash(run, p, &shared)?;
    let mut data = vec![0u8; total_len(&stash) as usize];
    let mut o = 0usize;
    for &(s, l) in &stash {
        run.target.read(&mut data[o..o + l as usize], s)?;
        o += l as usize;
    }
    let stash_copy = stash.clone();
    let jh = JournalHead {
        patch_id,
        old_len: head.meta.old_len,
        new_len: head.meta.new_len,
        start_len: len,
        stash_hash: *blake3::hash(&data).as_bytes(),
        stash,
        read_hashes,
        shared_lit: head.shared.is_present().then(|| {
            let lit = shared.literal_block();
            (lit.len() as u64, *blake3::hash(lit).as_bytes())
        }),
    };
    let tmp = {
        let mut s = run.journal_path.as_os_str().to_owned();
        s.push(".tmp");
        PathBuf::from(s)
    };
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io("creating journal", &tmp))?;
    let first = Slot {
        seq: 1,
        next: 0,
        batch_end: 0,
        scratch_len: 0,
        scratch_hash: [0; 32],
    };
    let mut body = jh.encode();
    body.resize(jh.data_off() as usize, 0);
    body.extend_from_slice(&data);
    if jh.shared_lit.is_some() {
        body.extend_from_slice(shared.literal_block());
    }
    body.resize(jh.slots_off() as usize, 0);
    body.extend_from_slice(&first.encode());
    body.resize((jh.slots_off() + 2 * SLOT_SPACING) as usize, 0);
    run.write(&f, &tmp, &body, 0)?;
    if run.opts.durable {
        f.sync_all().map_err(io("syncing journal", &tmp))?;
    }
    run.faults.synced(&f);
    if run.faults.tick(0).is_some() {
        return Err(run.crash("renaming journal", &tmp));
    }
    fs::rename(&tmp, &run.journal_path).map_err(io("renaming journal", &run.journal_path))?;
    run.sync_dir(&run.journal_path)?;
    Ok(Journal {
        file: f,
        head: jh,
        stash: Saved::new(stash_copy, data),
        slots: [Some(first), None],
        shared,
    })
}

/// The patch's shared section decoded with its OLD context read from the
/// target, which must still be OLD (an empty section without one). Memory:
/// the context (at most 8 MiB) while the literal block decodes.
fn decode_shared(run: &Run<'_>, p: &Patch<'_>) -> Result<Shared> {
    let Some(control) = SharedControl::decode(&p.head, p.shared_bytes())? else {
        return Ok(Shared::default());
    };
    let mut context = vec![0u8; control.context_len() as usize];
    let mut o = 0usize;
    for &(a, b) in control.context_ranges() {
        let n = (b - a) as usize;
        run.target.read(&mut context[o..o + n], a)?;
        o += n;
    }
    Ok(control.finish(&p.head, p.shared_bytes(), &context)?)
}

/// Checks that the target is a partly patched OLD of this patch, as the
/// journal describes, before anything is written.
fn check_resume(run: &Run<'_>, p: &Patch<'_>, j: &Journal) -> Result<()> {
    let head = &p.head;
    let bad = |detail: String| ApplyError::WrongTarget { detail };
    if j.head.old_len != head.meta.old_len
        || j.head.new_len != head.meta.new_len
        || j.head.read_hashes.len() != head.chunks.len()
    {
        return Err(ApplyError::Journal {
            path: run.journal_path.clone(),
            detail: "it does not describe this patch".into(),
        });
    }
    let Some(slot) = j.current() else {
        return Err(ApplyError::Journal {
            path: run.journal_path.clone(),
            detail: "both progress slots are damaged".into(),
        });
    };
    let n = head.chunks.len();
    if slot.next as usize > n || slot.batch_end as usize > n {
        return Err(ApplyError::Journal {
            path: run.journal_path.clone(),
            detail: "its progress slot points past the last step".into(),
        });
    }
    let len = run.target.len()?;
    // A file is cut to NEW's length only once every step is done.
    let min_len = if (slot.next as usize) < n {
        head.meta.old_len
    } else {
        head.meta.new_len
    };
    if len < min_len {
        return Err(bad(format!(
            "{} is shorter ({len} bytes) than the partly patched OLD can be",
            run.target.path.display()
        )));
    }
    let scratch = slot
        .staged()
        .then(|| j.read_scratch(run, &slot))
        .transpose()?;
    (0..n)
        .into_par_iter()
        .try_for_each(|i| -> Result<()> {
            let e = &head.chunks[i];
            if i < slot.next as usize {
                let mut b = vec![0u8; e.new_len as usize];
                run.target.read(&mut b, e.new_offset)?;
                if blake3::hash(&b).as_bytes() != &e.new_hash {
                    return Err(bad(format!(
                        "step {i} (NEW {}..{}) is recorded as done but its bytes differ; the target was changed since the interrupted apply",
                        e.new_offset,
                        e.new_offset + u64::from(e.new_len)
                    )));
                }
            } else {
                let sc = if (i as u32) < slot.batch_end {
                    scratch.as_ref()
                } else {
                    None
                };
                let st = decode_step(p, &j.shared, i)?;
                let input = gather(&run.target, &st.reads, &j.stash, sc)?;
                if blake3::hash(&input).as_bytes() != &j.head.read_hashes[i] {
                    return Err(bad(format!(
                        "the OLD input of step {i} changed; {} is not a partly patched OLD of this patch",
                        run.target.path.display()
                    )));
                }
            }
            Ok(())
        })
}

/// One step's rebuilt NEW bytes and the block runs where they differ
/// from the target.
struct Built {
    out: Vec<u8>,
    runs: Vec<(u64, u64)>,
    reads: Vec<(u64, u64)>,
}

/// Runs the batches from the journal's current slot to the end: each is
/// built in parallel, staged (what a torn write could destroy is saved to
/// the scratch area first), written, and recorded as done.
fn run_batches(
    run: &Run<'_>,
    p: &Patch<'_>,
    j: &mut Journal,
    report: &mut InPlaceReport,
) -> Result<()> {
    let head = &p.head;
    let chunks = &head.chunks;
    let cur = j.current().expect("a journal has a valid slot");
    report.steps_skipped += cur.next as usize;
    let mut scratch = cur
        .staged()
        .then(|| j.read_scratch(run, &cur))
        .transpose()?;
    let mut next = cur.next as usize;
    let mut staged_end = cur.staged().then_some(cur.batch_end as usize);
    let done: u64 = chunks[..next].iter().map(|c| u64::from(c.new_len)).sum();
    run.opts
        .progress
        .start(Phase::Applying, head.meta.new_len - done);
    while next < chunks.len() {
        if run.cancelled() {
            return Err(ApplyError::Cancelled);
        }
        let end = staged_end.unwrap_or_else(|| batch_end(chunks, next, run.opts.batch_budget));
        let built = build_batch(run, p, j, scratch.as_ref(), next..end)?;
        if staged_end.is_none() {
            stage_batch(run, j, &built, next..end)?;
        }
        write_batch(run, &built, &chunks[next..end], report)?;
        j.put_slot(
            run,
            Slot {
                seq: 0,
                next: end as u32,
                batch_end: end as u32,
                scratch_len: 0,
                scratch_hash: [0; 32],
            },
        )?;
        report.batches += 1;
        run.opts
            .progress
            .advance(chunks[next..end].iter().map(|c| u64::from(c.new_len)).sum());
        scratch = None;
        staged_end = None;
        next = end;
    }
    Ok(())
}

/// Builds steps `steps` in parallel: each reads its OLD through the stash
/// and `scratch` (a staged batch's saved bytes) over the target.
fn build_batch(
    run: &Run<'_>,
    p: &Patch<'_>,
    j: &Journal,
    scratch: Option<&Saved>,
    steps: std::ops::Range<usize>,
) -> Result<Vec<Built>> {
    steps
        .into_par_iter()
        .map(|i| {
            let e = &p.head.chunks[i];
            let st = decode_step(p, &j.shared, i)?;
            let input = gather(&run.target, &st.reads, &j.stash, scratch)?;
            let old = Gathered::new(&st.reads, input, p.head.meta.old_len);
            let out = build(e, &st, &old)?;
            let mut have = vec![0u8; out.len()];
            run.target.read(&mut have, e.new_offset)?;
            let runs = changed_runs(e.new_offset, &out, &have);
            Ok(Built {
                out,
                runs,
                reads: st.reads,
            })
        })
        .collect()
}

/// Saves to the scratch area, and records in a slot, what a torn write of
/// batch `steps` could destroy and a re-run would still read: the bytes
/// of its reads that its writes overlap (taken from the stash where it
/// holds them). Costs a write of those bytes to the journal and a sync.
fn stage_batch(
    run: &Run<'_>,
    j: &mut Journal,
    built: &[Built],
    steps: std::ops::Range<usize>,
) -> Result<()> {
    let mut writes = IntervalSet::new();
    for b in built {
        for &(a, b) in &b.runs {
            writes.insert(a, b);
        }
    }
    let mut need = IntervalSet::new();
    for b in built {
        for &(s, e) in &b.reads {
            for (a, b) in writes.intersect(s, e) {
                need.insert(a, b);
            }
        }
    }
    let mut ranges = Vec::new();
    let mut data = Vec::new();
    for (a, b) in need.iter() {
        let mut buf = vec![0u8; (b - a) as usize];
        run.target.read(&mut buf, a)?;
        j.stash.overlay(a, &mut buf);
        ranges.push((a, b - a));
        data.extend_from_slice(&buf);
    }
    if ranges.is_empty() {
        return Ok(());
    }
    let blob = Saved::new(ranges, data).blob();
    run.write(&j.file, &run.journal_path, &blob, j.head.scratch_off())?;
    run.sync(&j.file, &run.journal_path)?;
    j.put_slot(
        run,
        Slot {
            seq: 0,
            next: steps.start as u32,
            batch_end: steps.end as u32,
            scratch_len: blob.len() as u64,
            scratch_hash: *blake3::hash(&blob).as_bytes(),
        },
    )
}

/// Writes the changed blocks of a built batch to the target and syncs it.
fn write_batch(
    run: &Run<'_>,
    built: &[Built],
    chunks: &[ChunkEntry],
    report: &mut InPlaceReport,
) -> Result<()> {
    let mut wrote_any = false;
    for (b, e) in built.iter().zip(chunks) {
        if b.runs.is_empty() {
            report.steps_skipped += 1;
        }
        for &(from, to) in &b.runs {
            let s = (from - e.new_offset) as usize;
            run.write_target(&b.out[s..s + (to - from) as usize], from)?;
            report.bytes_written += to - from;
            wrote_any = true;
        }
    }
    if wrote_any {
        run.sync_target()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_and_detect_damage() {
        let s = Slot {
            seq: 7,
            next: 3,
            batch_end: 5,
            scratch_len: 99,
            scratch_hash: [4; 32],
        };
        let mut b = s.encode();
        assert_eq!(Slot::decode(&b), Some(s));
        b[17] ^= 1;
        assert_eq!(Slot::decode(&b), None);
    }

    #[test]
    fn saved_overlay_and_blob() {
        let s = Saved::new(vec![(10, 4), (20, 2)], vec![1, 2, 3, 4, 5, 6]);
        let mut buf = [0u8; 16];
        s.overlay(8, &mut buf);
        assert_eq!(&buf[..], &[0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 5, 6, 0, 0]);
        let t = Saved::from_blob(&s.blob()).unwrap();
        assert_eq!((t.ranges, t.data), (s.ranges, s.data));
        assert!(Saved::from_blob(&[9, 0, 0, 0]).is_none());
    }

    #[test]
    fn changed_runs_are_block_aligned() {
        let have = vec![0u8; 10000];
        let mut want = have.clone();
        want[5000] = 1;
        want[9999] = 1;
        // The step starts at target offset 100: blocks are aligned to the target.
        assert_eq!(changed_runs(100, &want, &have), vec![(4096, 10100)]);
        want[0] = 1;
        assert_eq!(changed_runs(100, &want, &have), vec![(100, 10100)]);
        want[5000] = 0;
        assert_eq!(
            changed_runs(100, &want, &have),
            vec![(100, 4096), (8192, 10100)]
        );
    }
}
