//! oxdelta: binary diff and patch for big files.
//!
//! This is the facade for programs: make a patch between two files or
//! buffers, inspect, sign and verify patches, and apply them. The work is
//! done by the crates it re-exports — [`oxdelta_diff`] (the differs),
//! [`oxdelta_format`] (the patch format, no I/O) and [`oxdelta_apply`]
//! (mmap-based, parallel, atomic apply).
//!
//! # Example
//!
//! ```
//! let old = b"The quick brown fox jumps over the lazy dog. ".repeat(100);
//! let mut new = old.clone();
//! new[1000..1004].copy_from_slice(b"CAT!");
//! let patch = oxdelta::diff_bytes(&old, &new, &oxdelta::DiffOptions::default());
//! let rebuilt = oxdelta::apply_bytes(&old, &patch, &oxdelta::ApplyOptions::default()).unwrap();
//! assert_eq!(rebuilt, new);
//! ```
//!
//! # Entry points
//!
//! | between | diff | apply |
//! |---|---|---|
//! | slices | [`diff_bytes`] | [`apply_bytes`] |
//! | files (mapped, written atomically) | [`diff_files`] | [`apply_file`] |
//! | readers and writers | [`diff_readers`] | [`apply_to_writer`]; [`apply_reader`] streams a patch into a file in bounded memory |
//! | a caller's output (a partition, a flash driver, a socket) | | [`apply_to_sink`], [`apply_file_to_sink`]: only verified chunks, in NEW order, after OLD is checked |
//!
//! Around them: [`info_bytes`] and [`info_file`] ([`PatchInfo`], what
//! `oxdelta info` shows; the file's head alone is read, [`read_head`]),
//! [`verify_bytes`] and [`verify_file`] (a payload at a time),
//! [`check_file`], [`sign_file`] (the signature block rewritten in place),
//! and key files ([`keygen`], [`read_secret_key`], [`read_public_key`]).
//!
//! File outputs are never replaced unless asked ([`DiffOptions::overwrite`],
//! [`ApplyOptions::overwrite`]) and are never one of their inputs
//! ([`oxdelta_apply::output`]).
//!
//! Options have defaults ([`DiffOptions::default`], [`ApplyOptions::default`]);
//! errors are typed ([`Error`], [`ApplyError`], [`oxdelta_format::Error`]
//! with the byte offset of a fault in a patch). Long work reports through a
//! [`Progress`] callback:
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//! let done = Arc::new(AtomicU64::new(0));
//! let d = done.clone();
//! let opts = oxdelta::DiffOptions {
//!     progress: oxdelta::Progress::new(move |e| {
//!         if let oxdelta::Event::Advance { bytes } = e {
//!             d.fetch_add(bytes, Ordering::Relaxed);
//!         }
//!     }),
//!     ..Default::default()
//! };
//! let old = vec![1u8; 10_000];
//! oxdelta::diff_bytes(&old, &old, &opts);
//! assert_eq!(done.load(Ordering::Relaxed), 20_000); // OLD indexed, NEW matched
//! ```
#![deny(missing_docs)]

mod info;
mod keys;
mod sink;

pub use info::{PatchHead, PatchInfo, SharedSectionInfo, info_bytes, info_file, read_head};
pub use keys::{
    KeyPair, MAX_KEYS_FILE, TRUSTED_KEYS_ENV, default_trusted_keys, keygen, read_public_key,
    read_public_keys, read_secret_key,
};
pub use sink::{Sink, apply_file_to_sink, apply_to_sink};

use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

#[cfg(unix)]
pub use oxdelta_apply::inplace::{
    InPlaceOptions as InPlaceApplyOptions, InPlaceOutcome, InPlaceReport,
};
pub use oxdelta_apply::{
    self, ApplyError, ApplyOptions, ApplyReport, apply_bytes, apply_file, apply_reader, check_file,
};
pub use oxdelta_diff::inplace::{InPlaceOptions as InPlaceDiffOptions, InPlaceStats};
pub use oxdelta_diff::{self, DiffOutput};
pub use oxdelta_format::progress::{Event, Phase, Progress};
pub use oxdelta_format::{
    self, AddMode, Codec, DiffFilter, Engine, FORMAT_VERSION, Patch, PublicKey, SecretKey,
    SignatureBlock,
};

use oxdelta_apply::map::InputMap;

/// How to make a patch.
#[derive(Clone, Debug)]
pub struct DiffOptions {
    /// Codec of the chunks' streams (default [`Codec::Lzma2`]: zstd level
    /// 19, and LZMA2 where it is 3% smaller; see
    /// [`oxdelta_diff::DiffOptions::codec`]). With [`DiffOptions::memory`]
    /// set, the CLI, the C API and the Python package default instead to
    /// `Codec::Zstd(oxdelta_diff::stream::DEFAULT_ZSTD_LEVEL)` (a level
    /// chosen per chunk), several times faster on disk images; set it so
    /// here too.
    pub codec: Codec,
    /// NEW bytes per chunk; `None` picks from NEW's size.
    pub chunk_len: Option<u32>,
    /// Sign the patch with this key.
    pub key: Option<SecretKey>,
    /// Where to report progress; see [`Progress`]. Reports nothing by
    /// default.
    pub progress: Progress,
    /// Use the streaming engine with this memory budget in bytes (its own
    /// allocations stay within it whatever the input sizes; see
    /// [`oxdelta_diff::stream`]). `None` uses the in-memory suffix-array
    /// engine, which needs about 5 bytes per byte of OLD plus NEW. In-place
    /// patches are always made by the in-memory engine.
    pub memory: Option<u64>,
    /// Whether [`diff_files`] may replace an existing patch file (default
    /// false: [`ApplyError::OutputExists`]). The patch is never OLD or NEW
    /// ([`ApplyError::SameFile`]); see [`oxdelta_apply::output`].
    pub overwrite: bool,
}

impl Default for DiffOptions {
    fn default() -> DiffOptions {
        let d = oxdelta_diff::DiffOptions::default();
        DiffOptions {
            codec: d.codec,
            chunk_len: d.chunk_len,
            key: None,
            progress: Progress::none(),
            memory: None,
            overwrite: false,
        }
    }
}

impl DiffOptions {
    fn engine_options(&self) -> oxdelta_diff::DiffOptions {
        oxdelta_diff::DiffOptions {
            codec: self.codec,
            chunk_len: self.chunk_len,
            progress: self.progress.clone(),
        }
    }
}

/// Errors of the facade.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A file operation failed.
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A patch was malformed, damaged or wrongly signed.
    Format(oxdelta_format::Error),
    /// Applying failed.
    Apply(ApplyError),
    /// A key file is not an oxdelta key of the expected kind, or would be
    /// overwritten.
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io {
                action,
                path,
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
            Error::Format(e) => write!(f, "bad patch: {e}"),
            Error::Apply(e) => e.fmt(f),
            Error::Key { path, detail } => write!(f, "key {}: {detail}", path.display()),
        }
    }
}

impl std::error::Error for Error {}

impl From<oxdelta_format::Error> for Error {
    fn from(e: oxdelta_format::Error) -> Error {
        Error::Format(e)
    }
}

impl From<ApplyError> for Error {
    fn from(e: ApplyError) -> Error {
        Error::Apply(e)
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Makes a patch from `old` to `new`, in memory (with
/// [`DiffOptions::memory`] set, the streaming engine makes it and only the
/// patch itself is held beyond the budget).
pub fn diff_bytes(old: &[u8], new: &[u8], opts: &DiffOptions) -> Vec<u8> {
    if let Some(budget) = opts.memory {
        let mut chunks = Vec::new();
        let meta = oxdelta_diff::stream::diff(old, new, &opts.engine_options(), budget, |c| {
            chunks.push(c);
            Ok::<(), std::convert::Infallible>(())
        });
        let Ok(meta) = meta;
        return oxdelta_format::assemble(&meta, chunks, opts.key.as_ref());
    }
    oxdelta_diff::sa::diff(old, new, &opts.engine_options()).assemble(opts.key.as_ref())
}

/// Makes a patch from two readers (sockets, decompressors, anything that
/// yields bytes) and writes it to `out`; returns the patch length.
///
/// Both inputs are read whole into memory, since the in-memory engine
/// needs random access to OLD and NEW; for files prefer [`diff_files`],
/// which maps them instead.
///
/// ```
/// let old = vec![7u8; 50_000];
/// let mut new = old.clone();
/// new[25_000..25_010].copy_from_slice(b"0123456789");
/// let mut patch = Vec::new();
/// let n = oxdelta::diff_readers(&old[..], &new[..], &mut patch, &Default::default()).unwrap();
/// assert_eq!(n, patch.len() as u64);
/// let mut rebuilt = Vec::new();
/// oxdelta::apply_to_writer(&old, &patch[..], &mut rebuilt, &Default::default()).unwrap();
/// assert_eq!(rebuilt, new);
/// ```
pub fn diff_readers(
    mut old: impl Read,
    mut new: impl Read,
    mut out: impl Write,
    opts: &DiffOptions,
) -> Result<u64> {
    let (mut o, mut n) = (Vec::new(), Vec::new());
    old.read_to_end(&mut o)
        .map_err(io("reading OLD from", Path::new("<reader>")))?;
    new.read_to_end(&mut n)
        .map_err(io("reading NEW from", Path::new("<reader>")))?;
    let patch = diff_bytes(&o, &n, opts);
    out.write_all(&patch)
        .and_then(|()| out.flush())
        .map_err(io("writing the patch to", Path::new("<writer>")))?;
    Ok(patch.len() as u64)
}

/// Applies a patch read from `patch` to OLD held in memory and writes NEW
/// to `out`; returns NEW's length.
///
/// NEW is rebuilt and every chunk checked against its hash in the patch
/// before the first byte goes to `out`, so a writer never receives
/// unverified data. (The chunks tile NEW, so this verifies all of it; the
/// metadata's whole-NEW hash is not recomputed — [`check_file`] does that.)
/// The patch is read whole (refused beyond
/// [`ApplyOptions::max_in_memory_len`]); to apply a patch as it arrives and
/// write a file, use [`apply_reader`].
pub fn apply_to_writer(
    old: &[u8],
    patch: impl Read,
    mut out: impl Write,
    opts: &ApplyOptions,
) -> Result<u64> {
    let mut p = Vec::new();
    let limit = opts.max_in_memory_len;
    patch
        .take(limit.saturating_add(1))
        .read_to_end(&mut p)
        .map_err(io("reading the patch from", Path::new("<reader>")))?;
    if p.len() as u64 > limit {
        return Err(Error::Format(oxdelta_format::Error::invalid(
            "patch length",
            format!("at most {limit} bytes to read into memory (ApplyOptions::max_in_memory_len)"),
            "more",
            0,
        )));
    }
    let new = apply_bytes(old, &p, opts)?;
    out.write_all(&new)
        .and_then(|()| out.flush())
        .map_err(io("writing NEW to", Path::new("<writer>")))?;
    Ok(new.len() as u64)
}

/// What [`diff_files`] did.
#[derive(Clone, Debug)]
pub struct DiffReport {
    /// OLD bytes.
    pub old_len: u64,
    /// NEW bytes.
    pub new_len: u64,
    /// Patch bytes written.
    pub patch_len: u64,
    /// Chunks in the patch.
    pub chunks: usize,
    /// Engine used.
    pub engine: Engine,
}

/// Makes a patch from the file `old` to the file `new` and writes it to
/// `patch` atomically (a temporary file renamed into place).
///
/// OLD and NEW are mapped, guarded ([`oxdelta_apply::map::InputMap`]): if
/// either is written or truncated while the diff reads it, the diff fails
/// with [`ApplyError::InputChanged`] before the patch is written (their
/// lengths and modification times are compared with those at the start),
/// and a truncation raises no signal on Linux.
pub fn diff_files(old: &Path, new: &Path, patch: &Path, opts: &DiffOptions) -> Result<DiffReport> {
    check_patch_output(old, new, patch, opts)?;
    let inputs = Inputs::open(old, new)?;
    if let Some(budget) = opts.memory {
        return diff_streaming(&inputs, patch, opts, budget);
    }
    let out = oxdelta_diff::sa::diff(&inputs.old, &inputs.new, &opts.engine_options());
    inputs.unchanged()?;
    write_patch(patch, &out, opts)
}

/// Makes an in-place patch (see [`oxdelta_diff::inplace`]) from `old` to
/// `new`, in memory. Returns the patch and what the planning did.
pub fn diff_bytes_in_place(
    old: &[u8],
    new: &[u8],
    opts: &DiffOptions,
    ip: &InPlaceDiffOptions,
) -> (Vec<u8>, InPlaceStats) {
    let (out, stats) = oxdelta_diff::inplace::diff(old, new, &opts.engine_options(), ip);
    (out.assemble(opts.key.as_ref()), stats)
}

/// Makes an in-place patch from the file `old` to the file `new` and writes
/// it to `patch` atomically. OLD and NEW are mapped as in [`diff_files`].
pub fn diff_files_in_place(
    old: &Path,
    new: &Path,
    patch: &Path,
    opts: &DiffOptions,
    ip: &InPlaceDiffOptions,
) -> Result<(DiffReport, InPlaceStats)> {
    check_patch_output(old, new, patch, opts)?;
    let inputs = Inputs::open(old, new)?;
    let (out, stats) =
        oxdelta_diff::inplace::diff(&inputs.old, &inputs.new, &opts.engine_options(), ip);
    inputs.unchanged()?;
    Ok((write_patch(patch, &out, opts)?, stats))
}

/// The output rules of [`diff_files`]: the patch is neither OLD nor NEW,
/// and replaces an existing file only with [`DiffOptions::overwrite`].
fn check_patch_output(old: &Path, new: &Path, patch: &Path, opts: &DiffOptions) -> Result<()> {
    oxdelta_apply::output::check_output(patch, &[("OLD", old), ("NEW", new)], opts.overwrite)?;
    Ok(())
}

/// The diff's inputs, mapped and guarded.
struct Inputs<'p> {
    old: InputMap,
    new: InputMap,
    paths: (&'p Path, &'p Path),
}

impl<'p> Inputs<'p> {
    fn open(old: &'p Path, new: &'p Path) -> Result<Inputs<'p>> {
        Ok(Inputs {
            old: InputMap::open(old).map_err(io("opening OLD", old))?,
            new: InputMap::open(new).map_err(io("opening NEW", new))?,
            paths: (old, new),
        })
    }

    /// Whether OLD and NEW are as they were when mapped (see
    /// [`InputMap::check`]).
    fn unchanged(&self) -> Result<()> {
        self.old.check(self.paths.0)?;
        self.new.check(self.paths.1)?;
        Ok(())
    }
}

fn write_patch(patch: &Path, out: &DiffOutput, opts: &DiffOptions) -> Result<DiffReport> {
    let entries: Vec<_> = out.chunks.iter().map(|c| c.entry.clone()).collect();
    let head = oxdelta_format::encode_head_with(
        &out.meta,
        &entries,
        &out.shared.as_ref().map(|s| s.desc).unwrap_or_default(),
        opts.key.as_ref(),
    );
    let section: &[u8] = out.shared.as_ref().map_or(&[], |s| &s.bytes);
    let mut len = (head.len() + section.len()) as u64;
    write_atomically(patch, opts.overwrite, |w| {
        w.write_all(&head)?;
        w.write_all(section)?;
        for c in &out.chunks {
            w.write_all(&c.payload)?;
            len += c.payload.len() as u64;
        }
        Ok(())
    })?;
    Ok(DiffReport {
        old_len: out.meta.old_len,
        new_len: out.meta.new_len,
        patch_len: len,
        chunks: out.chunks.len(),
        engine: out.meta.engine,
    })
}

/// Rewrites `target` (a regular file or a block device) from OLD to NEW in
/// place with the in-place patch at `patch`, resuming an interrupted apply
/// from its journal. See [`oxdelta_apply::inplace`].
#[cfg(unix)]
pub fn apply_in_place(
    target: &Path,
    patch: &Path,
    opts: &InPlaceApplyOptions,
) -> Result<InPlaceReport> {
    Ok(oxdelta_apply::inplace::apply_in_place_file(
        target, patch, opts,
    )?)
}

/// The streaming engine's path of [`diff_files`]: encoded chunks are
/// spilled to an unlinked temporary file beside `patch` as they are made
/// (only the chunk table stays in memory), then the head and the spilled
/// payloads are written to `patch` atomically.
fn diff_streaming(
    inputs: &Inputs<'_>,
    patch: &Path,
    opts: &DiffOptions,
    budget: u64,
) -> Result<DiffReport> {
    let (old, new) = (&*inputs.old, &*inputs.new);
    // Holes of sparse files (disk images) are neither read nor indexed:
    // the engine is told where the data is.
    let data = |m: &oxdelta_apply::map::InputMap| {
        let len = m.len() as u64;
        oxdelta_diff::stream::Extents::new(oxdelta_apply::sparse::data_segments(m.file(), len), len)
    };
    let layout = &oxdelta_diff::stream::Layout {
        old: data(&inputs.old),
        new: data(&inputs.new),
    };
    let spill_path = temp_beside(patch, "spill");
    let spill = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&spill_path)
        .map_err(io("creating", &spill_path))?;
    // Unlinked at once where the system allows it, so nothing is left
    // behind even if the process dies; otherwise removed at the end.
    let unlinked = fs::remove_file(&spill_path).is_ok();
    let result = (|| {
        let mut entries = Vec::new();
        let mut payload_len = 0u64;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &spill);
        let engine = opts.engine_options();
        let meta = oxdelta_diff::stream::diff_sparse(old, new, layout, &engine, budget, |c| {
            w.write_all(&c.payload)?;
            payload_len += c.payload.len() as u64;
            entries.push(c.entry);
            Ok(())
        })
        .and_then(|m| w.flush().map(|()| m))
        .map_err(io("writing", &spill_path))?;
        drop(w);
        inputs.unchanged()?;
        let head = oxdelta_format::encode_head(&meta, &entries, opts.key.as_ref());
        let mut reader = &spill;
        reader
            .seek(std::io::SeekFrom::Start(0))
            .map_err(io("reading", &spill_path))?;
        write_atomically(patch, opts.overwrite, |w| {
            w.write_all(&head)?;
            let copied = std::io::copy(&mut reader.take(payload_len), w)?;
            if copied != payload_len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "temporary payload file is short",
                ));
            }
            Ok(())
        })?;
        Ok(DiffReport {
            old_len: meta.old_len,
            new_len: meta.new_len,
            patch_len: head.len() as u64 + payload_len,
            chunks: entries.len(),
            engine: meta.engine,
        })
    })();
    if !unlinked {
        drop(spill);
        let _ = fs::remove_file(&spill_path);
    }
    result
}

/// A fresh temporary name in `path`'s directory.
fn temp_beside(path: &Path, what: &str) -> PathBuf {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut rnd = [0u8; 6];
    let _ = getrandom::fill(&mut rnd);
    dir.join(format!(
        ".{name}.oxdelta-{}.{what}",
        oxdelta_format::sign::hex(&rnd)
    ))
}

/// Writes a file through `f` into a temporary file beside `path`, syncs
/// it and renames it into place; on error nothing is left behind. Without
/// `overwrite`, an existing `path` (even one that appears while `f` runs)
/// is not replaced: the error is [`ApplyError::OutputExists`].
pub fn write_atomically(
    path: &Path,
    overwrite: bool,
    f: impl FnOnce(&mut std::io::BufWriter<&File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_beside(path, "tmp");
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io("creating", &tmp))?;
    let result = (|| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
        f(&mut w)?;
        w.flush()?;
        drop(w);
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io("writing", path)(e));
    }
    drop(file);
    oxdelta_apply::output::rename_into_place(&tmp, path, overwrite).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Apply(ApplyError::OutputExists {
                path: path.to_path_buf(),
            }),
            _ => io("renaming into place", path)(e),
        }
    })
}

/// Reads a whole patch file into memory, refusing files that are not
/// patches (or whose length is not the one their head names) from the
/// head alone, before reading past it ([`read_head`]).
pub fn read_patch(path: &Path) -> Result<Vec<u8>> {
    read_head(path)?;
    fs::read(path).map_err(io("reading patch", path))
}

/// Signs the patch file at `path`. A patch with a signature block (every
/// patch of format versions 1 to 10, and a signed version-11 patch) is
/// signed in place: only its block
/// ([`oxdelta_format::sign::SIGNATURE_BLOCK_LEN`] bytes after the head) is
/// written, then flushed to the disk; the head is read and checked, the
/// payloads are not read. An unsigned version-11 patch has no block: its
/// head gains the signed flag and the block is inserted after it, so the
/// file is rewritten beside itself and renamed over it
/// ([`write_atomically`]), its payloads copied as they are.
///
/// Crash safety: in place, the old block is not read, so a crash while the
/// new one is written leaves at worst a block that does not verify
/// (appliers refuse the patch as damaged or wrongly signed, never as
/// unsigned with a trusted key), and signing again repairs it; a rewrite
/// leaves the unsigned patch or the signed one.
pub fn sign_file(path: &Path, key: &SecretKey) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("opening patch", path))?;
    let len = f.metadata().map_err(io("reading patch", path))?.len();
    let (head_bytes, _, head) = info::read_head_from(&mut f, path)?;
    info::check_patch_len(&head, len)?;
    if head.signature_len() == 0 {
        return sign_by_rewrite(path, &f, &head, key);
    }
    let block = SignatureBlock::sign(&head_bytes, key).to_bytes();
    f.seek(std::io::SeekFrom::Start(head.head_len))
        .and_then(|_| f.write_all(&block))
        .and_then(|()| f.sync_data())
        .map_err(io("writing the signature block of", path))
}

/// [`sign_file`] of an unsigned version-11 patch `f` at `path` with head
/// `head`: the head encoded again with the signed flag (the head has one
/// encoding, so only the flag changes), its block, then the payloads.
fn sign_by_rewrite(
    path: &Path,
    f: &File,
    head: &oxdelta_format::Head,
    key: &SecretKey,
) -> Result<()> {
    let signed =
        oxdelta_format::encode_head_with(&head.meta, &head.chunks, &head.shared, Some(key));
    let mut payloads = f;
    payloads
        .seek(std::io::SeekFrom::Start(head.payload_start()))
        .map_err(io("reading patch", path))?;
    write_atomically(path, true, |w| {
        w.write_all(&signed)?;
        let copied = std::io::copy(&mut payloads.take(head.payload_len), w)?;
        if copied != head.payload_len {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    })
}

/// Checks the patch file at `path` without OLD, as [`verify_bytes`] does,
/// reading it in order a piece at a time: the head first (a file that is
/// not a patch is refused from its first 16 bytes), then the shared section
/// and one chunk payload at a time. Memory: the head, the shared section
/// and one chunk's payload and decode buffers, whatever the file's length.
/// Returns the patch's [`PatchInfo`].
pub fn verify_file(path: &Path, trusted: Option<&PublicKey>) -> Result<PatchInfo> {
    let mut f = File::open(path).map_err(io("opening patch", path))?;
    let len = f.metadata().map_err(io("reading patch", path))?.len();
    let (head_bytes, sig_bytes, head) = info::read_head_from(&mut f, path)?;
    let signature = oxdelta_format::parse_signature(&head, &sig_bytes, head.head_len)?;
    info::check_patch_len(&head, len)?;
    signature.verify(&head_bytes, trusted)?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, f);
    let mut read = |n: u64| -> Result<Vec<u8>> {
        let mut b = Vec::new();
        (&mut r)
            .take(n)
            .read_to_end(&mut b)
            .map_err(io("reading patch", path))?;
        if (b.len() as u64) < n {
            return Err(io("reading patch", path)(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        Ok(b)
    };
    let section = read(head.shared.stored_len())?;
    let shared = oxdelta_format::Shared::decode_without_old(&head, &section)?;
    drop(section);
    for e in &head.chunks {
        let payload = read(e.payload_len())?;
        oxdelta_format::decode_chunk_in(e, &payload, &shared)?;
    }
    Ok(PatchInfo::from_head(&head, &signature, len))
}

/// Checks a patch without OLD: structure, signature (required when
/// `trusted` is given) and every payload's hash and decoding.
pub fn verify_bytes<'a>(patch: &'a [u8], trusted: Option<&PublicKey>) -> Result<Patch<'a>> {
    let p = Patch::parse(patch)?;
    p.verify_signature(trusted)?;
    let shared = oxdelta_format::Shared::decode_without_old(&p.head, p.shared_bytes())?;
    for (i, e) in p.head.chunks.iter().enumerate() {
        oxdelta_format::decode_chunk_in(e, p.payload(i), &shared)?;
    }
    Ok(p)
}
