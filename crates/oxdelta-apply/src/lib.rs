//! Rebuilds NEW from OLD and an oxdelta patch, fast, and loses nothing on
//! failure.
//!
//! # Design
//!
//! * **Check before writing.** The head and signature are checked first
//!   (with a trusted key, an unsigned or foreign patch is refused), then
//!   OLD's length. OLD's BLAKE3 (every byte of OLD: a large part of an
//!   apply's work on disk images) is computed on the thread pool *while*
//!   the file appliers rebuild NEW into their temporary file; the file is
//!   renamed over OUT only once OLD's hash matched, and removed (the error
//!   being [`ApplyError::WrongOld`]) when it did not. OUT is never written
//!   before OLD is verified. [`apply_bytes`] checks OLD first.
//! * **Parallel chunks.** OLD is mapped read-only and the output is a
//!   temporary file of NEW's length. Chunks are handed to the thread pool
//!   one at a time as the memory budget allows (a sliding window, no
//!   barrier between groups of chunks), rebuilt in pooled buffers, each
//!   checked against its NEW hash and written only to its own range. ZERO ops leave holes, so images stay sparse;
//!   a zero chunk (format version 9, up to 4 GiB, no payload) or a chunk
//!   that is all ZERO ops with the hash of zeros
//!   ([`oxdelta_format::is_zero_chunk`]) is not rebuilt at all, and
//!   takes no buffer.
//! * **Chunk hashes verify NEW.** The chunk table (covered by the head
//!   hash and the signature) fixes each chunk's NEW hash, and the chunks
//!   tile NEW exactly, so once every chunk verifies all of NEW does. The
//!   metadata's whole-NEW hash is what the differ computed; appliers do not
//!   recompute it (a second pass over all of NEW). Every path
//!   here — [`apply_bytes`], [`apply_file`], [`apply_reader`] — therefore
//!   accepts and refuses the same patches. [`check_file`] rebuilds NEW
//!   without writing it and also compares the whole-NEW hash, for tools
//!   that want to audit a patch's metadata.
//! * **Atomic commit.** The temporary file lives in OUT's directory; once
//!   every chunk verifies it is flushed, synced and
//!   renamed over OUT, and the directory is synced. On any error or
//!   cancellation the temporary file is removed and OUT is as it was. An
//!   existing OUT is replaced only when [`ApplyOptions::overwrite`] asks
//!   for it (OUT may then be OLD itself); OUT is never the patch (see
//!   [`output`]).
//!
//! # Bounds
//!
//! Anonymous memory is the decode buffers of the chunks in flight, at most
//! [`ApplyOptions::memory_budget`] (a single chunk larger than the budget
//! runs alone; the format caps one chunk's buffers at about 48 MiB). Mapped
//! file pages are the kernel's, not the applier's heap.
#![deny(missing_docs)]

mod error;
#[cfg(unix)]
pub mod inplace;
pub mod map;
pub mod output;
pub mod sparse;

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub use error::ApplyError;
use error::io;
use map::InputMap;
use oxdelta_format::filehash::{self, FileHasher};
use oxdelta_format::progress::{Phase, Progress};
use oxdelta_format::{ChunkEntry, Head, Patch, PublicKey, Shared, SignatureBlock, head};
use rayon::prelude::*;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ApplyError>;

/// How to apply.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// When set, the patch must carry a valid signature by this key.
    pub trusted_key: Option<PublicKey>,
    /// Most bytes of decode buffers in flight at once, a decoded shared
    /// section (format v5, held for the whole apply) included (default
    /// 48 MiB).
    pub memory_budget: u64,
    /// Set to true from elsewhere (a signal handler) to stop; the apply then
    /// fails with [`ApplyError::Cancelled`] and leaves OUT as it was.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Largest NEW that [`apply_bytes`] builds in memory (default 4 GiB). A
    /// patch naming a larger NEW is refused before anything is allocated: a
    /// few megabytes of ZERO chunks can name a terabyte. File applies write
    /// chunk by chunk and are not limited by it.
    pub max_in_memory_len: u64,
    /// Where to report progress: the applies hash OLD while they rebuild
    /// NEW, and report only `Applying` (bytes of NEW). Reports nothing by
    /// default.
    pub progress: Progress,
    /// Whether [`apply_file`] and [`apply_reader`] make NEW durable before
    /// renaming it over OUT (default true): NEW is written past the page
    /// cache where the file system allows (`O_DIRECT`), then the file and
    /// its directory are flushed with `fsync`. When false, NEW goes through
    /// the page cache and nothing is flushed: the rename is still atomic for
    /// other processes and OUT is still untouched on any error, but after a
    /// power cut OUT may be partly written. For outputs on tmpfs, or many
    /// applies followed by one `sync` of the file system. In-place applies
    /// always flush (their crash safety rests on it).
    pub durable: bool,
    /// Whether [`apply_file`] and [`apply_reader`] may replace an existing
    /// OUT (default false: [`ApplyError::OutputExists`]). OUT may be OLD
    /// itself only with this set; it is never the patch
    /// ([`ApplyError::SameFile`]). See [`output`].
    pub overwrite: bool,
}

impl Default for ApplyOptions {
    fn default() -> ApplyOptions {
        ApplyOptions {
            trusted_key: None,
            memory_budget: 48 << 20,
            cancel: None,
            max_in_memory_len: 4 << 30,
            progress: Progress::none(),
            durable: true,
            overwrite: false,
        }
    }
}

/// What an apply did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyReport {
    /// OLD bytes.
    pub old_len: u64,
    /// NEW bytes written.
    pub new_len: u64,
    /// Patch bytes read.
    pub patch_len: u64,
    /// Chunks applied.
    pub chunks: usize,
    /// Whether the patch was signed and its signature verified: against
    /// the trusted key when one was given (see `key`), else only against
    /// the key the patch itself carries, which proves the head unchanged
    /// since someone signed it, not who.
    pub signed: bool,
    /// The key that signed the patch (`None` if unsigned).
    pub key: Option<PublicKey>,
}

/// Checks the head's signature and OLD against the patch metadata.
fn check_signature_and_old(
    head_bytes: &[u8],
    sig: &SignatureBlock,
    head: &Head,
    old: &[u8],
    old_file: Option<&File>,
    opts: &ApplyOptions,
) -> Result<()> {
    sig.verify(head_bytes, opts.trusted_key.as_ref())?;
    opts.progress.start(Phase::Verifying, old.len() as u64);
    check_old_in(head, old, old_file)?;
    opts.progress.advance(old.len() as u64);
    opts.progress.start(Phase::Applying, head.meta.new_len);
    Ok(())
}

/// Checks the head's signature and OLD's length, for the file applies,
/// which hash OLD while they rebuild NEW (see [`write_atomically`]).
fn check_signature_and_old_len(
    head_bytes: &[u8],
    sig: &SignatureBlock,
    head: &Head,
    old: &[u8],
    opts: &ApplyOptions,
) -> Result<()> {
    sig.verify(head_bytes, opts.trusted_key.as_ref())?;
    check_old_len(head, old)?;
    opts.progress.start(Phase::Applying, head.meta.new_len);
    Ok(())
}

/// Checks OLD's length and BLAKE3 against the patch.
pub fn check_old(head: &Head, old: &[u8]) -> Result<()> {
    check_old_in(head, old, None)
}

/// [`check_old`], hashing through [`sparse::hash_file`] when OLD's file is
/// at hand (its holes are then not read).
fn check_old_in(head: &Head, old: &[u8], file: Option<&File>) -> Result<()> {
    check_old_len(head, old)?;
    check_old_hash(head, old, file)
}

/// The cheap half of [`check_old`]: OLD's length.
fn check_old_len(head: &Head, old: &[u8]) -> Result<()> {
    if old.len() as u64 != head.meta.old_len {
        return Err(ApplyError::WrongOld {
            detail: format!(
                "the patch expects {} bytes, OLD has {}",
                head.meta.old_len,
                old.len()
            ),
        });
    }
    Ok(())
}

/// The costly half of [`check_old`]: OLD's hash (BLAKE3, or the
/// block-list hash the patch's flags name).
fn check_old_hash(head: &Head, old: &[u8], file: Option<&File>) -> Result<()> {
    let kind = head.file_hash();
    let h = match file {
        Some(f) => sparse::hash_file(f, old, kind),
        None => filehash::hash(kind, old, &sparse::Rayon),
    };
    if h != head.meta.old_hash {
        return Err(ApplyError::WrongOld {
            detail: format!(
                "{} is {}, the patch expects {}",
                kind.name(),
                oxdelta_format::sign::hex(&h),
                oxdelta_format::sign::hex(&head.meta.old_hash)
            ),
        });
    }
    Ok(())
}

/// BLAKE3 of `data`, multi-threaded for large inputs.
pub fn hash(data: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    if data.len() >= 1 << 20 {
        h.update_rayon(data);
    } else {
        h.update(data);
    }
    *h.finalize().as_bytes()
}

fn cancelled(opts: &ApplyOptions) -> bool {
    opts.cancel
        .as_ref()
        .is_some_and(|c| c.load(Ordering::Relaxed))
}

/// Cuts `out` (all of NEW) into one slice per chunk, indexed like `chunks`.
fn split_out<'o>(chunks: &[ChunkEntry], mut out: &'o mut [u8]) -> Vec<Option<&'o mut [u8]>> {
    let mut order: Vec<usize> = (0..chunks.len()).collect();
    order.sort_unstable_by_key(|&i| chunks[i].new_offset);
    let mut slots: Vec<Option<&'o mut [u8]>> = (0..chunks.len()).map(|_| None).collect();
    for i in order {
        let (a, b) = std::mem::take(&mut out).split_at_mut(chunks[i].new_len as usize);
        slots[i] = Some(a);
        out = b;
    }
    slots
}

/// Groups chunk indices `range` into consecutive batches whose buffer
/// bounds sum to at most `budget` (a chunk over budget runs alone).
fn batches(
    chunks: &[ChunkEntry],
    range: std::ops::Range<usize>,
    budget: u64,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut sum) = (range.start, 0u64);
    for i in range.clone() {
        let b = chunks[i].buffer_bound();
        if i > start && sum + b > budget {
            out.push(start..i);
            start = i;
            sum = 0;
        }
        sum += b;
    }
    if start < range.end {
        out.push(start..range.end);
    }
    out
}

/// Applies chunks `range` whose payloads `payload(i)` yields, in parallel
/// batches under the memory budget.
#[allow(clippy::too_many_arguments)]
fn apply_chunks<'p>(
    chunks: &[ChunkEntry],
    shared: &Shared,
    range: std::ops::Range<usize>,
    payload: &(dyn Fn(usize) -> &'p [u8] + Sync),
    old: &[u8],
    slots: &mut [Option<&mut [u8]>],
    opts: &ApplyOptions,
) -> Result<()> {
    for batch in batches(chunks, range, chunk_budget(opts, shared)) {
        if cancelled(opts) {
            return Err(ApplyError::Cancelled);
        }
        let work: Vec<(usize, &mut [u8])> = batch
            .clone()
            .map(|i| (i, slots[i].take().expect("each chunk is applied once")))
            .collect();
        work.into_par_iter().try_for_each(|(i, out)| {
            if cancelled(opts) {
                return Err(ApplyError::Cancelled);
            }
            // `out` starts zeroed.
            if !oxdelta_format::is_zero_chunk(&chunks[i], payload(i), old.len() as u64) {
                oxdelta_format::apply_chunk_in(&chunks[i], payload(i), shared, old, out, true)?;
            }
            opts.progress.advance(u64::from(chunks[i].new_len));
            Ok(())
        })?;
    }
    Ok(())
}

/// Applies a patch held in memory to OLD held in memory, returning NEW.
/// Maps nothing and touches no file: the entry point for embedding and
/// fuzzing.
pub fn apply_bytes(old: &[u8], patch: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>> {
    let p = Patch::parse(patch)?;
    check_signature_and_old_len(p.head_bytes(), &p.signature, &p.head, old, opts)?;
    let too_big = || {
        ApplyError::Patch(oxdelta_format::Error::invalid(
            "NEW length",
            format!(
                "at most {} bytes to build in memory (ApplyOptions::max_in_memory_len)",
                opts.max_in_memory_len
            ),
            p.head.meta.new_len,
            56,
        ))
    };
    if p.head.meta.new_len > opts.max_in_memory_len {
        return Err(too_big());
    }
    let new_len = usize::try_from(p.head.meta.new_len).map_err(|_| too_big())?;
    // A fallible probe first, so that a NEW too large for this machine is
    // an error, not an abort; then a zeroed allocation, which for large
    // lengths is fresh zero pages from the system: no zeroing pass, the
    // first touches happen in the rebuild, spread over the threads.
    Vec::<u8>::new().try_reserve_exact(new_len).map_err(|_| {
        ApplyError::Patch(oxdelta_format::Error::invalid(
            "NEW length",
            "a length that fits in memory",
            new_len,
            56,
        ))
    })?;
    // A section that fails to decode is a wrong OLD if OLD's hash says so.
    let shared = p.decode_shared(old).or_else(|e| {
        check_old_hash(&p.head, old, None)?;
        Err(ApplyError::from(e))
    })?;
    let mut out = vec![0u8; new_len];
    let mut slots = split_out(&p.head.chunks, &mut out);
    // OLD's hash beside the rebuild, as in the file applies (see
    // [`write_atomically`]): NEW is returned only when both succeed, and a
    // wrong OLD is the error whatever else failed.
    let (old_checked, applied) = rayon::join(
        || check_old_hash(&p.head, old, None),
        || {
            apply_chunks(
                &p.head.chunks,
                &shared,
                0..p.head.chunks.len(),
                &|i| p.payload(i),
                old,
                &mut slots,
                opts,
            )
        },
    );
    old_checked?;
    applied?;
    // Every chunk's NEW hash verified and the chunks tile NEW: no whole-NEW
    // pass (see the crate docs).
    Ok(out)
}

fn new_hash_mismatch() -> ApplyError {
    ApplyError::Patch(oxdelta_format::Error::new(
        oxdelta_format::ErrorKind::HashMismatch {
            what: "the rebuilt NEW does not have the whole-NEW BLAKE3 of the patch metadata (its chunks all verify)".into(),
        },
    ))
}

/// A temporary output file in OUT's directory, removed on drop unless
/// committed.
///
/// On Linux it is created unnamed (`O_TMPFILE`) where the file system
/// allows: it gets a name (`path`, by `linkat` through `/proc/self/fd`)
/// only at commit, just before the rename, so an apply killed or cut off by
/// a power loss while writing leaves nothing behind in OUT's directory.
/// Elsewhere, and where `O_TMPFILE` or `/proc` is missing, it is a named
/// file from the start, removed on drop (a `SIGKILL` then leaves it).
struct TempOut {
    /// The file's name: its own from the start, or the one it is linked to
    /// at commit.
    path: PathBuf,
    file: Option<File>,
    /// Whether `path` names the file yet.
    named: bool,
    committed: bool,
}

impl TempOut {
    fn create(out: &Path) -> Result<TempOut> {
        let dir = parent_dir(out);
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let mut rnd = [0u8; 6];
        let _ = getrandom::fill(&mut rnd);
        let path = dir.join(format!(
            ".{name}.oxdelta-{}-{}.tmp",
            std::process::id(),
            oxdelta_format::sign::hex(&rnd)
        ));
        if let Some(file) = create_unnamed(&dir) {
            return Ok(TempOut {
                path,
                file: Some(file),
                named: false,
                committed: false,
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io("creating a temporary output file in", &dir))?;
        Ok(TempOut {
            path,
            file: Some(file),
            named: true,
            committed: false,
        })
    }

    fn file(&self) -> &File {
        self.file.as_ref().expect("open until commit")
    }

    /// A path that opens this file again (for the `O_DIRECT` descriptor).
    fn reopen_path(&self) -> PathBuf {
        if self.named {
            return self.path.clone();
        }
        fd_path(self.file())
    }

    /// Renames the file over `out` (giving it its name first if it has
    /// none), flushing it before and the directory after when `durable`.
    /// Without `overwrite`, fails with [`ApplyError::OutputExists`] rather
    /// than replace a file that appeared at `out` meanwhile: an unnamed
    /// file is then linked at `out` directly (a link never replaces), a
    /// named one renamed without replacing ([`output::rename_into_place`]).
    fn commit(mut self, out: &Path, durable: bool, overwrite: bool) -> Result<()> {
        let f = self.file.take().expect("open until commit");
        if durable {
            f.sync_all().map_err(io("syncing", &self.path))?;
        }
        let exists = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::AlreadyExists => ApplyError::OutputExists {
                path: out.to_path_buf(),
            },
            _ => io("renaming the output into place at", out)(e),
        };
        if !self.named && !overwrite {
            link_unnamed(&f, out).map_err(exists)?;
            self.committed = true;
        } else {
            // Keep the old file's permissions when replacing it.
            if let Ok(m) = fs::metadata(out) {
                let _ = f.set_permissions(m.permissions());
            }
            if !self.named {
                link_unnamed(&f, &self.path)
                    .map_err(io("naming the temporary output", &self.path))?;
                self.named = true;
            }
            drop(f);
            output::rename_into_place(&self.path, out, overwrite).map_err(exists)?;
            self.committed = true;
        }
        if durable {
            if let Ok(d) = File::open(parent_dir(out)) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for TempOut {
    fn drop(&mut self) {
        if !self.committed {
            self.file.take();
            if self.named {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// An unnamed file in `dir` (`O_TMPFILE`, Linux), if the file system
/// allows and `/proc/self/fd` is there to name it later.
fn create_unnamed(dir: &Path) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{Mode, OFlags};
        if !Path::new("/proc/self/fd").is_dir() {
            return None;
        }
        let fd = rustix::fs::openat(
            rustix::fs::CWD,
            dir,
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .ok()?;
        Some(File::from(fd))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        None
    }
}

/// The `/proc` path of `file`'s descriptor (Linux only).
fn fd_path(file: &File) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        PathBuf::new()
    }
}

/// Gives the unnamed `file` the name `path` (Linux only).
fn link_unnamed(file: &File, path: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::fs::linkat(
            rustix::fs::CWD,
            fd_path(file),
            rustix::fs::CWD,
            path,
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        )
        .map_err(std::io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, path);
        Err(std::io::Error::other("unnamed files exist only on Linux"))
    }
}

/// `path` opened for writing with `O_DIRECT`, if the file system allows.
fn open_direct(path: &Path) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(path)
            .ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// OLD, mapped and guarded (see [`map`]).
fn open_old(old: &Path) -> Result<InputMap> {
    InputMap::open(old).map_err(io("opening OLD", old))
}

/// The patch file, mapped and guarded (see [`map`]).
fn open_patch(patch: &Path) -> Result<InputMap> {
    InputMap::open(patch).map_err(io("opening patch", patch))
}

/// Where file applies put NEW: chunks are rebuilt in pooled, page-aligned
/// buffers (where their hash is checked while hot in cache) and written by
/// one writer thread ([`write_chunks`]) with positioned writes, skipping
/// 4 KiB blocks that are all zero so the fresh output stays sparse. The
/// writer lets a pool thread start its next chunk while the last one goes
/// to the disk (`O_DIRECT` writes wait for the device).
///
/// Where the file system allows, the aligned part of each write goes
/// through a second descriptor opened with `O_DIRECT` (Linux): the kernel
/// then copies NEW into no page-cache pages (first touches of fresh pages
/// are a large part of apply's CPU otherwise), and the final `fsync` has
/// no dirty data left to write. The cost: NEW is not left in the page
/// cache. Unaligned heads and tails, and any direct write the file system
/// refuses, go through the ordinary descriptor; `fsync` is per file, so it
/// covers both.
///
/// Positioned writes of whole pages, not a shared writable map: on a fresh
/// sparse file every first touch of a mapped page makes the kernel zero a
/// page.
struct FileSink<'f> {
    path: &'f Path,
    /// Output buffers not in use.
    pool: &'f std::sync::Mutex<Vec<map::AnonBuf>>,
    /// Length of each output buffer (the patch's largest chunk), and
    /// whether it is backed by huge pages.
    buf_len: usize,
    huge: bool,
    /// Set when OLD's hash has been found wrong: stop early.
    old_failed: &'f AtomicBool,
    /// The patch's decoded shared section.
    shared: &'f Shared,
    /// The temporary output, and its `O_DIRECT` descriptor if any.
    file: &'f File,
    direct: Option<&'f File>,
    /// Held during each write: one write at a time reaches the disk.
    write_lock: &'f std::sync::Mutex<()>,
}

/// Block size for hole detection.
const HOLE_BLOCK: u64 = 4096;

/// Output buffers at least this long are backed by transparent huge pages
/// where the system allows (`madvise`): a fresh 4 KiB page costs a fault
/// and its zeroing, 2 MiB pages cost the zeroing only.
const HUGE_BUF: usize = 2 << 20;

/// A rebuilt, verified chunk on its way to the file.
struct Rebuilt {
    offset: u64,
    len: usize,
    buf: map::AnonBuf,
    /// Budget the chunk holds until it is written.
    held: u64,
}

impl FileSink<'_> {
    /// Rebuilds and verifies chunk `e` from `payload` in a pooled buffer;
    /// `None` for a chunk of zeros (the temporary file reads as zeros
    /// where nothing was written).
    fn rebuild(
        &self,
        e: &ChunkEntry,
        payload: &[u8],
        old: &[u8],
        held: u64,
    ) -> Result<Option<Rebuilt>> {
        if oxdelta_format::is_zero_chunk(e, payload, old.len() as u64) {
            return Ok(None);
        }
        // A buffer goes back to the pool as soon as its chunk is written, so
        // the pool holds about one buffer per thread, not one per chunk:
        // fresh anonymous pages are costly to fault in (see above).
        let popped = self.pool.lock().map(|mut p| p.pop()).ok().flatten();
        let mut buf = match popped {
            Some(b) => b,
            None => map::AnonBuf::new(self.buf_len, self.huge)
                .map_err(io("allocating a buffer for", self.path))?,
        };
        let len = e.new_len as usize;
        let out = &mut buf[..len];
        if let Err(err) = oxdelta_format::apply_chunk_in(e, payload, self.shared, old, out, false) {
            if let Ok(mut p) = self.pool.lock() {
                p.push(buf);
            }
            return Err(err.into());
        }
        Ok(Some(Rebuilt {
            offset: e.new_offset,
            len,
            buf,
            held,
        }))
    }
}

/// Bytes of decode buffers in flight, kept under a budget: the thread
/// that hands out chunks waits while the running ones hold too much. A
/// chunk needing more than the whole budget runs alone.
struct Budget {
    total: u64,
    used: std::sync::Mutex<u64>,
    freed: std::sync::Condvar,
}

impl Budget {
    fn new(total: u64) -> Budget {
        Budget {
            total: total.max(1),
            used: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `n` bytes (at most the whole budget) fit; returns what
    /// was taken, for [`Budget::release`].
    ///
    /// A thread of the pool (an apply called from inside a pool) must not
    /// just block: the chunks holding the budget may be queued behind it,
    /// on a pool of one thread for instance. It runs pending work instead,
    /// and sleeps only when there is none (the holders then run elsewhere).
    fn acquire(&self, n: u64) -> u64 {
        let n = n.min(self.total);
        let fits = |used: u64| used == 0 || used + n <= self.total;
        let in_pool = rayon::current_thread_index().is_some();
        loop {
            let mut used = self.lock();
            if !in_pool {
                while !fits(*used) {
                    used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
                }
            }
            if fits(*used) {
                *used += n;
                return n;
            }
            drop(used);
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                let used = self.lock();
                if !fits(*used) {
                    let wait = std::time::Duration::from_millis(1);
                    let _ = self.freed.wait_timeout(used, wait);
                }
            }
        }
    }

    fn release(&self, n: u64) {
        *self.lock() -= n;
        self.freed.notify_all();
    }
}

/// A chunk's payload: borrowed from the patch's map, or read from a stream.
enum Payload<'p> {
    Borrowed(&'p [u8]),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Payload<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(v) => v,
        }
    }
}

/// Hands chunks to the thread pool one at a time, as the memory budget
/// allows: a sliding window, so that a chunk starts as soon as a thread
/// and the memory for it are free (no chunk waits for the slowest of a
/// fixed batch). Rebuilt chunks go to the writer thread, so a pool thread moves
/// on to its next chunk while the last one reaches the disk. The first
/// error stops the handing out.
struct Spawner<'s, 'scope, 'p: 'scope> {
    scope: &'s rayon::Scope<'scope>,
    sink: &'scope FileSink<'scope>,
    to_writer: &'scope std::sync::mpsc::SyncSender<Rebuilt>,
    chunks: &'scope [ChunkEntry],
    old: &'scope [u8],
    opts: &'scope ApplyOptions,
    budget: &'scope Budget,
    failure: &'scope Failure,
    /// Starts OLD's hash on the pool (once; later calls do nothing).
    start_hash: &'s dyn Fn(),
    /// The pool's threads: OLD's hash starts once this many chunks are
    /// handed out, and a chunk is written inline once fewer than this many
    /// wait to start.
    threads: usize,
    /// Chunks whose rebuild has begun on the pool.
    begun: &'scope AtomicUsize,
    _payloads: std::marker::PhantomData<&'p [u8]>,
}

/// The first error of a chunk or a write, and whether there was one.
#[derive(Default)]
struct Failure {
    first: std::sync::Mutex<Option<ApplyError>>,
    failed: AtomicBool,
}

impl Failure {
    fn set(&self, err: ApplyError) {
        self.failed.store(true, Ordering::Relaxed);
        if let Ok(mut first) = self.first.lock() {
            first.get_or_insert(err);
        }
    }

    fn is_set(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

impl<'scope, 'p: 'scope> Spawner<'_, 'scope, 'p> {
    fn stopped(&self) -> bool {
        cancelled(self.opts)
            || self.failure.is_set()
            || self.sink.old_failed.load(Ordering::Relaxed)
    }

    /// Rebuilds chunk `i` on the pool, its payload from `payload` (called
    /// once its memory is reserved). Fails with [`ApplyError::Cancelled`]
    /// once anything has failed or the apply was cancelled.
    fn apply(&self, i: usize, payload: impl FnOnce() -> Result<Payload<'p>>) -> Result<()> {
        if self.stopped() {
            return Err(ApplyError::Cancelled);
        }
        let e = &self.chunks[i];
        let held = self.budget.acquire(e.buffer_bound() + e.rebuild_len());
        let payload = match payload() {
            Ok(p) => p,
            Err(err) => {
                self.budget.release(held);
                return Err(err);
            }
        };
        let (sink, old, opts, budget, failure) =
            (self.sink, self.old, self.opts, self.budget, self.failure);
        let (begun, n_chunks, threads) = (self.begun, self.chunks.len(), self.threads);
        let to_writer = self.to_writer.clone();
        self.scope.spawn(move |_| {
            begun.fetch_add(1, Ordering::Relaxed);
            let stop =
                cancelled(opts) || failure.is_set() || sink.old_failed.load(Ordering::Relaxed);
            let done = if stop {
                Err(ApplyError::Cancelled)
            } else {
                sink.rebuild(e, &payload, old, held)
            };
            drop(payload);
            match done {
                Ok(Some(mut r)) => {
                    // The decode buffers and the payload are gone: only the
                    // output buffer waits for the writer, and only it stays
                    // counted in the budget.
                    let out_len = u64::from(e.new_len).min(r.held);
                    budget.release(r.held - out_len);
                    r.held = out_len;
                    // Near the end (fewer chunks waiting to start than
                    // threads, so blocking this thread in a write leaves no
                    // chunk unstarted) and with no write in progress, this
                    // thread writes the chunk itself, at once; otherwise the
                    // writer thread queues it (a woken writer waits for a
                    // core while the pool's threads rebuild or hash; a chunk
                    // written inline earlier would take a core from the
                    // rebuild). The rest of the budget is released once the
                    // chunk is written.
                    let waiting = n_chunks.saturating_sub(begun.load(Ordering::Relaxed));
                    let idle = waiting < threads && sink.write_lock.try_lock().is_ok();
                    if idle {
                        sink.write(r, budget, failure, opts);
                    } else if let Err(std::sync::mpsc::SendError(r)) = to_writer.send(r) {
                        budget.release(r.held);
                        failure.set(ApplyError::Cancelled);
                    }
                }
                Ok(None) => {
                    opts.progress.advance(u64::from(e.new_len));
                    budget.release(held);
                }
                Err(err) => {
                    budget.release(held);
                    failure.set(err);
                }
            }
        });
        if i + 1 >= self.threads {
            (self.start_hash)();
        }
        Ok(())
    }
}

impl FileSink<'_> {
    /// Writes rebuilt chunk `r` (unless something has failed), then gives
    /// its buffer back to the pool and its memory to the budget.
    fn write(&self, r: Rebuilt, budget: &Budget, failure: &Failure, opts: &ApplyOptions) {
        if !failure.is_set() {
            let _one_at_a_time = self.write_lock.lock();
            match write_sparse(self.file, self.direct, r.offset, &r.buf[..r.len]) {
                Ok(()) => opts.progress.advance(r.len as u64),
                Err(e) => failure.set(io("writing", self.path)(e)),
            }
        }
        if let Ok(mut p) = self.pool.lock() {
            p.push(r.buf);
        }
        budget.release(r.held);
    }
}

/// The writer thread: writes the rebuilt chunks that the pool threads
/// queued while another write was in progress (see [`Spawner::apply`]).
/// After a failure it only drains the queue.
fn write_chunks(
    rx: std::sync::mpsc::Receiver<Rebuilt>,
    sink: &FileSink<'_>,
    budget: &Budget,
    failure: &Failure,
    opts: &ApplyOptions,
) {
    for r in rx {
        sink.write(r, budget, failure, opts);
    }
}

/// Writes `buf` at `offset`, leaving aligned all-zero blocks unwritten (the
/// file was just created at its final length, so they read as zeros).
fn write_sparse(
    file: &File,
    direct: Option<&File>,
    offset: u64,
    buf: &[u8],
) -> std::io::Result<()> {
    let write_at = |b: &[u8], at: u64| write_maybe_direct(file, direct, b, at);
    // OR-fold 64 bytes at a time: vectorises, and stops at the first
    // non-zero block.
    let is_zero = |b: &[u8]| {
        let mut c = b.chunks_exact(64);
        c.all(|w| w.iter().fold(0u8, |a, &x| a | x) == 0) && c.remainder().iter().all(|&x| x == 0)
    };
    let mut i = 0usize;
    let mut run_start: Option<usize> = None;
    while i < buf.len() {
        // Blocks are aligned to file offsets, not to the buffer.
        let abs = offset + i as u64;
        let end = (((abs / HOLE_BLOCK) + 1) * HOLE_BLOCK - offset) as usize;
        let end = end.min(buf.len());
        if is_zero(&buf[i..end]) {
            if let Some(s) = run_start.take() {
                write_at(&buf[s..i], offset + s as u64)?;
            }
        } else if run_start.is_none() {
            run_start = Some(i);
        }
        i = end;
    }
    if let Some(s) = run_start {
        write_at(&buf[s..], offset + s as u64)?;
    }
    Ok(())
}

/// Writes through `direct` (`O_DIRECT`) the part of `buf` that is aligned
/// to 4 KiB in memory, file offset and length, the rest through `file`.
fn write_maybe_direct(
    file: &File,
    direct: Option<&File>,
    buf: &[u8],
    offset: u64,
) -> std::io::Result<()> {
    let body = (buf.len() as u64 / HOLE_BLOCK * HOLE_BLOCK) as usize;
    let aligned = body > 0
        && offset % HOLE_BLOCK == 0
        && (buf.as_ptr() as usize) % (HOLE_BLOCK as usize) == 0;
    if aligned && direct.is_some_and(|d| write_at(d, &buf[..body], offset).is_ok()) {
        return write_at(file, &buf[body..], offset + body as u64);
    }
    write_at(file, buf, offset)
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Writes NEW through `fill` (which hands every chunk to a [`Spawner`]:
/// rebuilt and verified on the pool, written by the writer thread) into a
/// temporary file beside `out` while `check_old_hash` runs beside it on the
/// thread pool, and renames the file over `out` only when both succeeded
/// and every write did.
///
/// OLD's hash is a fifth to a half of an apply's work on disk images
/// (every byte of OLD, holes included, while only NEW's data is rebuilt),
/// so it is not made to precede the rebuild. Nothing is lost by that: the
/// head and signature and OLD's length were checked before this is called,
/// chunks are verified by their own hashes whatever OLD is, NEW goes only
/// to the temporary file, and when OLD's hash is wrong the rebuild stops at
/// its next chunk, the temporary file is removed and the error is
/// [`ApplyError::WrongOld`] (it wins over any error of the rebuild, which a
/// wrong OLD would cause). OUT is never touched before OLD is verified.
///
/// The hash starts once the pool's first chunks are handed out (one per
/// thread), not before them: BLAKE3 splits it across the whole pool, so
/// started first it would delay the first chunks, and the writer's first
/// write, by its first milliseconds; started after them it fills the pool
/// while the writer waits for the disk.
#[allow(clippy::too_many_arguments)]
fn write_atomically<'p>(
    out: &Path,
    head: &'p Head,
    shared: &'p Shared,
    old: &'p [u8],
    opts: &'p ApplyOptions,
    check_old_hash: impl FnOnce() -> Result<()> + Send,
    fill: impl FnOnce(&Spawner<'_, '_, 'p>) -> Result<()>,
    inputs_unchanged: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let tmp = TempOut::create(out)?;
    tmp.file()
        .set_len(head.meta.new_len)
        .map_err(io("sizing the temporary output for", out))?;
    let direct = if opts.durable {
        open_direct(&tmp.reopen_path())
    } else {
        None
    };
    let (buf_len, huge) = out_buffers(head);
    let old_failed = AtomicBool::new(false);
    let pool = std::sync::Mutex::new(Vec::new());
    let write_lock = std::sync::Mutex::new(());
    let begun = AtomicUsize::new(0);
    let sink = FileSink {
        path: out,
        pool: &pool,
        buf_len,
        huge,
        old_failed: &old_failed,
        shared,
        file: tmp.file(),
        direct: direct.as_ref(),
        write_lock: &write_lock,
    };
    let budget = Budget::new(chunk_budget(opts, shared));
    let failure = Failure::default();
    let old_checked = std::sync::Mutex::new(Ok(()));
    let hash_job = std::sync::Mutex::new(Some(check_old_hash));
    // One rebuilt chunk may wait for the writer (its buffer stays
    // counted in the budget until written).
    let (to_writer, from_pool) = std::sync::mpsc::sync_channel(1);
    let filled = std::thread::scope(|threads| {
        threads.spawn(|| write_chunks(from_pool, &sink, &budget, &failure, opts));
        let filled = rayon::in_place_scope(|s| {
            let (old_checked, old_failed) = (&old_checked, &old_failed);
            let start_hash = || {
                let job = hash_job.lock().ok().and_then(|mut j| j.take());
                if let Some(job) = job {
                    s.spawn(move |_| {
                        let r = job();
                        if r.is_err() {
                            old_failed.store(true, Ordering::Relaxed);
                        }
                        if let Ok(mut c) = old_checked.lock() {
                            *c = r;
                        }
                    });
                }
            };
            let filled = fill(&Spawner {
                scope: s,
                sink: &sink,
                to_writer: &to_writer,
                chunks: &head.chunks,
                old,
                opts,
                budget: &budget,
                failure: &failure,
                start_hash: &start_hash,
                threads: rayon::current_num_threads(),
                begun: &begun,
                _payloads: std::marker::PhantomData,
            });
            start_hash();
            filled
        });
        // The writer ends once the last chunk is written.
        drop(to_writer);
        filled
    });
    drop(direct);
    // A wrong OLD explains any other failure; then a chunk's or a write's
    // own error explains the `Cancelled` that stopped the handing out.
    old_checked
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())?;
    if let Some(e) = failure
        .first
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
    {
        return Err(e);
    }
    filled?;
    inputs_unchanged()?;
    tmp.commit(out, opts.durable, opts.overwrite)
}

/// The length of the pooled output buffers (the patch's largest chunk,
/// rounded up to whole 2 MiB pages when it is at least [`HUGE_BUF`]: such
/// a length gets a 2 MiB-aligned map, huge pages throughout, and far fewer
/// page faults) and whether they ask for huge pages.
fn out_buffers(head: &Head) -> (usize, bool) {
    let largest = head
        .chunks
        .iter()
        .map(|e| e.rebuild_len() as usize)
        .max()
        .unwrap_or(0);
    if largest >= HUGE_BUF {
        (largest.next_multiple_of(HUGE_BUF), true)
    } else {
        (largest, false)
    }
}

/// Applies the patch file `patch` to `old`, writing NEW atomically to
/// `out`: an existing `out` only with [`ApplyOptions::overwrite`] (it may
/// then be `old`), never the patch itself ([`output`]).
///
/// OLD and the patch are mapped and guarded ([`map::InputMap`]): if either
/// is written or cut short during the apply, it fails with
/// [`ApplyError::InputChanged`] (never a signal on Linux) and `out` is left
/// as it was.
pub fn apply_file(
    old: &Path,
    patch: &Path,
    out: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyReport> {
    output::check_output(out, &[("the patch", patch)], opts.overwrite)?;
    let pm = open_patch(patch)?;
    let om = open_old(old)?;
    // A change to either input shows as a hash mismatch or a parse error
    // first; the check says what happened.
    let unchanged = || pm.check(patch).and_then(|()| om.check(old));
    (|| {
        let p = Patch::parse(&pm)?;
        check_signature_and_old_len(p.head_bytes(), &p.signature, &p.head, &om, opts)?;
        let n = p.head.chunks.len();
        let shared = decode_shared(&p.head, p.shared_bytes(), &om, om.file())?;
        let old_hash = || check_old_hash(&p.head, &om, Some(om.file()));
        write_atomically(
            out,
            &p.head,
            &shared,
            &om,
            opts,
            old_hash,
            |chunks| {
                for i in 0..n {
                    chunks.apply(i, || Ok(Payload::Borrowed(p.payload(i))))?;
                }
                Ok(())
            },
            unchanged,
        )?;
        Ok(p)
    })()
    .map_err(|e| unchanged().err().unwrap_or(e))
    .map(|p| ApplyReport {
        old_len: p.head.meta.old_len,
        new_len: p.head.meta.new_len,
        patch_len: pm.len() as u64,
        chunks: p.head.chunks.len(),
        signed: p.signature != SignatureBlock::Unsigned,
        key: p.signature.public_key(),
    })
}

/// Applies a patch read from `reader` (a pipe, a download) to `old`,
/// chunk by chunk in bounded memory, writing NEW atomically to `out`.
pub fn apply_reader(
    old: &Path,
    mut reader: impl Read,
    out: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyReport> {
    output::check_output(out, &[], opts.overwrite)?;
    let stdin_path = Path::new("<patch stream>");
    let mut fixed = vec![0u8; head::FIXED_HEADER_LEN];
    read_exact_or_truncated(&mut reader, &mut fixed, "fixed header", 0, stdin_path)?;
    let (head_len, sig_len) = head::peek_prefix_lens(&fixed)?;
    // Read the head and signature block, growing only as bytes arrive.
    let mut head_bytes = fixed;
    let want = head_len + sig_len - head::FIXED_HEADER_LEN as u64;
    (&mut reader)
        .take(want)
        .read_to_end(&mut head_bytes)
        .map_err(io("reading", stdin_path))?;
    let head = Head::parse(&head_bytes)?;
    let sig_at = head.head_len as usize;
    let sig = oxdelta_format::parse_signature(
        &head,
        head_bytes.get(sig_at..).unwrap_or(&[]),
        sig_at as u64,
    )?;
    let om = open_old(old)?;
    let of = om.file();
    check_signature_and_old_len(&head_bytes[..sig_at], &sig, &head, &om, opts)?;
    let mut offset = head.payload_start();
    // The shared section opens the payloads; its length is bounded by the
    // head's limits (two blocks within `shared_block_limits`).
    let mut section = vec![0u8; head.shared.stored_len() as usize];
    read_exact_or_truncated(
        &mut reader,
        &mut section,
        "shared section",
        offset,
        stdin_path,
    )?;
    offset += section.len() as u64;
    let shared = decode_shared(&head, &section, &om, of)?;
    drop(section);
    let old_hash = || check_old_hash(&head, &om, Some(of));
    let unchanged = || om.check(old);
    write_atomically(
        out,
        &head,
        &shared,
        &om,
        opts,
        old_hash,
        |chunks| {
            for i in 0..head.chunks.len() {
                chunks.apply(i, || {
                    let len = head.chunks[i].payload_len() as usize;
                    let mut b = vec![0u8; len];
                    read_exact_or_truncated(
                        &mut reader,
                        &mut b,
                        "chunk payload",
                        offset,
                        stdin_path,
                    )?;
                    offset += len as u64;
                    Ok(Payload::Owned(b))
                })?;
            }
            let mut extra = [0u8; 1];
            if reader.read(&mut extra).map_err(io("reading", stdin_path))? != 0 {
                return Err(ApplyError::Patch(oxdelta_format::Error::invalid(
                    "patch length",
                    format!("{offset} bytes"),
                    "trailing data",
                    offset,
                )));
            }
            Ok(())
        },
        unchanged,
    )
    .map_err(|e| unchanged().err().unwrap_or(e))?;
    Ok(ApplyReport {
        old_len: head.meta.old_len,
        new_len: head.meta.new_len,
        patch_len: offset,
        chunks: head.chunks.len(),
        signed: sig != SignatureBlock::Unsigned,
        key: sig.public_key(),
    })
}

/// Checks that the patch file `patch` applies to `old`, writing nothing:
/// every check an apply makes, and also that the rebuilt NEW has the
/// whole-NEW BLAKE3 of the patch metadata, which appliers do not recompute
/// (see the crate docs). Chunks are rebuilt in NEW order, in parallel
/// batches under [`ApplyOptions::memory_budget`] (plus their outputs), and
/// hashed as they complete; nothing sized by NEW is held.
pub fn check_file(old: &Path, patch: &Path, opts: &ApplyOptions) -> Result<ApplyReport> {
    let pm = open_patch(patch)?;
    let om = open_old(old)?;
    let unchanged = || pm.check(patch).and_then(|()| om.check(old));
    check_patch_against(&pm, &om, opts)
        .and_then(|r| unchanged().map(|()| r))
        .map_err(|e| unchanged().err().unwrap_or(e))
}

/// [`check_file`] on the mapped patch and OLD.
fn check_patch_against(pm: &[u8], om: &InputMap, opts: &ApplyOptions) -> Result<ApplyReport> {
    let p = Patch::parse(pm)?;
    check_signature_and_old(
        p.head_bytes(),
        &p.signature,
        &p.head,
        om,
        Some(om.file()),
        opts,
    )?;
    let shared = p.decode_shared(om)?;
    let chunks = &p.head.chunks;
    let mut order: Vec<usize> = (0..chunks.len()).collect();
    order.sort_unstable_by_key(|&i| chunks[i].new_offset);
    let mut hasher = FileHasher::new(p.head.file_hash(), &sparse::Rayon);
    let mut at = 0;
    while at < order.len() {
        let (mut end, mut sum) = (at, 0u64);
        while end < order.len() {
            let e = &chunks[order[end]];
            let b = e.buffer_bound() + e.rebuild_len();
            if end > at && sum + b > chunk_budget(opts, &shared) {
                break;
            }
            sum += b;
            end += 1;
        }
        if cancelled(opts) {
            return Err(ApplyError::Cancelled);
        }
        // A chunk of zeros (a hole of an image) is neither rebuilt nor
        // read: it reaches the hasher as a run of zeros.
        let outs: Vec<Option<Vec<u8>>> = order[at..end]
            .par_iter()
            .map(|&i| {
                let e = &chunks[i];
                opts.progress.advance(u64::from(e.new_len));
                if oxdelta_format::is_zero_chunk(e, p.payload(i), om.len() as u64) {
                    return Ok(None);
                }
                let mut buf = vec![0u8; e.new_len as usize];
                oxdelta_format::apply_chunk_in(e, p.payload(i), &shared, om, &mut buf, true)?;
                Ok(Some(buf))
            })
            .collect::<Result<_>>()?;
        for (b, &i) in outs.iter().zip(&order[at..end]) {
            match b {
                Some(b) => hasher.update(b),
                None => hasher.zeros(chunks[i].new_len.into()),
            }
        }
        at = end;
    }
    if hasher.finalize() != p.head.meta.new_hash {
        return Err(new_hash_mismatch());
    }
    Ok(ApplyReport {
        old_len: p.head.meta.old_len,
        new_len: p.head.meta.new_len,
        patch_len: pm.len() as u64,
        chunks: chunks.len(),
        signed: p.signature != SignatureBlock::Unsigned,
        key: p.signature.public_key(),
    })
}

/// What is left of [`ApplyOptions::memory_budget`] for chunks once the
/// decoded shared section (held for the whole apply) is counted.
fn chunk_budget(opts: &ApplyOptions, shared: &Shared) -> u64 {
    opts.memory_budget.saturating_sub(shared.heap_len())
}

/// Decodes the shared section before OLD's hash is known (the file
/// appliers check it beside the rebuild): when decoding fails, a wrong OLD
/// is the error reported, as for chunks.
/// The patch's shared section decoded against OLD; when it fails and OLD's
/// hash is wrong, the error is [`ApplyError::WrongOld`].
fn decode_shared(head: &Head, section: &[u8], old: &[u8], file: &File) -> Result<Shared> {
    Shared::decode(head, section, old).or_else(|e| {
        check_old_hash(head, old, Some(file))?;
        Err(e.into())
    })
}

fn read_exact_or_truncated(
    r: &mut impl Read,
    buf: &mut [u8],
    what: &'static str,
    at: u64,
    path: &Path,
) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(ApplyError::Patch(oxdelta_format::Error::at(
                    oxdelta_format::ErrorKind::Truncated {
                        what,
                        needed: buf.len() as u64,
                        available: got as u64,
                    },
                    at,
                )));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io("reading", path)(e)),
        }
    }
    Ok(())
}
