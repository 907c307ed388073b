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
#![deny(missing_docs)]

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

#[cfg(unix)]
pub use oxdelta_apply::inplace::{
    InPlaceOptions as InPlaceApplyOptions, InPlaceOutcome, InPlaceReport,
};
pub use oxdelta_apply::{
    self, ApplyError, ApplyOptions, ApplyReport, apply_bytes, apply_file, apply_reader,
};
pub use oxdelta_diff::inplace::{InPlaceOptions as InPlaceDiffOptions, InPlaceStats};
pub use oxdelta_diff::{self, DiffOutput};
pub use oxdelta_format::progress::{Event, Phase, Progress};
pub use oxdelta_format::{self, Codec, Engine, Patch, PublicKey, SecretKey, SignatureBlock};

use oxdelta_apply::map::ReadMap;

/// How to make a patch.
#[derive(Clone, Debug)]
pub struct DiffOptions {
    /// Codec of the chunks' streams (default zstd level 19).
    pub codec: Codec,
    /// NEW bytes per chunk; `None` picks from NEW's size.
    pub chunk_len: Option<u32>,
    /// Sign the patch with this key.
    pub key: Option<SecretKey>,
    /// Where to report progress; see [`Progress`]. Reports nothing by
    /// default.
    pub progress: Progress,
}

impl Default for DiffOptions {
    fn default() -> DiffOptions {
        let d = oxdelta_diff::DiffOptions::default();
        DiffOptions {
            codec: d.codec,
            chunk_len: d.chunk_len,
            key: None,
            progress: Progress::none(),
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

/// Makes a patch from `old` to `new`, in memory.
pub fn diff_bytes(old: &[u8], new: &[u8], opts: &DiffOptions) -> Vec<u8> {
    let out = oxdelta_diff::sa::diff(old, new, &opts.engine_options());
    oxdelta_format::assemble(&out.meta, out.chunks, opts.key.as_ref())
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
pub fn diff_files(old: &Path, new: &Path, patch: &Path, opts: &DiffOptions) -> Result<DiffReport> {
    let (om, nm) = map_pair(old, new)?;
    let out = oxdelta_diff::sa::diff(&om.1, &nm.1, &opts.engine_options());
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
    (
        oxdelta_format::assemble(&out.meta, out.chunks, opts.key.as_ref()),
        stats,
    )
}

/// Makes an in-place patch from the file `old` to the file `new` and writes
/// it to `patch` atomically.
pub fn diff_files_in_place(
    old: &Path,
    new: &Path,
    patch: &Path,
    opts: &DiffOptions,
    ip: &InPlaceDiffOptions,
) -> Result<(DiffReport, InPlaceStats)> {
    let (om, nm) = map_pair(old, new)?;
    let (out, stats) = oxdelta_diff::inplace::diff(&om.1, &nm.1, &opts.engine_options(), ip);
    Ok((write_patch(patch, &out, opts)?, stats))
}

fn map_pair(old: &Path, new: &Path) -> Result<((File, ReadMap), (File, ReadMap))> {
    let of = File::open(old).map_err(io("opening OLD", old))?;
    let om = ReadMap::new(&of).map_err(io("mapping OLD", old))?;
    let nf = File::open(new).map_err(io("opening NEW", new))?;
    let nm = ReadMap::new(&nf).map_err(io("mapping NEW", new))?;
    Ok(((of, om), (nf, nm)))
}

fn write_patch(patch: &Path, out: &DiffOutput, opts: &DiffOptions) -> Result<DiffReport> {
    let entries: Vec<_> = out.chunks.iter().map(|c| c.entry.clone()).collect();
    let head = oxdelta_format::encode_head(&out.meta, &entries, opts.key.as_ref());
    let mut len = head.len() as u64;
    write_atomically(patch, |w| {
        w.write_all(&head)?;
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
    let f = File::open(patch).map_err(io("opening patch", patch))?;
    let m = ReadMap::new(&f).map_err(io("mapping patch", patch))?;
    Ok(oxdelta_apply::inplace::apply_in_place(target, &m, opts)?)
}

/// Writes a file through `f` into a temporary file beside `path`, syncs
/// it and renames it into place; on error nothing is left behind.
pub fn write_atomically(
    path: &Path,
    f: impl FnOnce(&mut std::io::BufWriter<&File>) -> std::io::Result<()>,
) -> Result<()> {
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
    let tmp = dir.join(format!(
        ".{name}.oxdelta-{}.tmp",
        oxdelta_format::sign::hex(&rnd)
    ));
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
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io("renaming into place", path)(e)
    })
}

/// Reads a whole patch file into memory, refusing files that are not
/// patches before reading past the head.
pub fn read_patch(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(io("reading patch", path))
}

/// Signs the patch file at `path` in place (rewrites its signature block).
pub fn sign_file(path: &Path, key: &SecretKey) -> Result<()> {
    let bytes = read_patch(path)?;
    let p = Patch::parse(&bytes)?;
    let block = SignatureBlock::sign(p.head_bytes(), key);
    let at = p.head.head_len as usize;
    let mut out = bytes.clone();
    out[at..at + oxdelta_format::sign::SIGNATURE_BLOCK_LEN].copy_from_slice(&block.to_bytes());
    write_atomically(path, |w| w.write_all(&out))
}

/// Checks a patch without OLD: structure, signature (required when
/// `trusted` is given) and every payload's hash and decoding.
pub fn verify_bytes<'a>(patch: &'a [u8], trusted: Option<&PublicKey>) -> Result<Patch<'a>> {
    let p = Patch::parse(patch)?;
    p.verify_signature(trusted)?;
    for (i, e) in p.head.chunks.iter().enumerate() {
        oxdelta_format::decode_chunk(e, p.payload(i))?;
    }
    Ok(p)
}
