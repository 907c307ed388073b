//! The `oxdelta` Python package's extension module, `oxdelta._oxdelta`.
//!
//! Thin: each function converts its arguments, releases the GIL
//! (`Python::detach`) for the whole of the facade call, and turns the
//! facade's errors into the package's exceptions. Progress callbacks are
//! Python callables, called with the GIL re-taken from the worker threads;
//! an exception raised in one cancels an apply and is re-raised.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use oxdelta::{ApplyError, ApplyOptions, Codec, DiffOptions, Error as OxError, Event, Progress};
use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

pyo3::create_exception!(
    oxdelta,
    Error,
    PyException,
    "Base class of oxdelta's errors (I/O errors are OSError)."
);
pyo3::create_exception!(
    oxdelta,
    WrongOldError,
    Error,
    "OLD is not the file the patch was made for."
);
pyo3::create_exception!(
    oxdelta,
    CorruptPatchError,
    Error,
    "The patch is malformed, damaged, or not an oxdelta patch."
);
pyo3::create_exception!(
    oxdelta,
    SignatureError,
    Error,
    "The signature is missing (with a trusted key), from another key, or does not verify."
);

fn format_err(e: &oxdelta::oxdelta_format::Error) -> PyErr {
    match e.kind() {
        oxdelta::oxdelta_format::ErrorKind::Signature(_) => {
            SignatureError::new_err(format!("bad patch: {e}"))
        }
        _ => CorruptPatchError::new_err(format!("bad patch: {e}")),
    }
}

fn os_err(e: &std::io::Error, msg: String, path: &std::path::Path) -> PyErr {
    match e.raw_os_error() {
        // OSError(errno, strerror, filename) picks the subclass
        // (FileNotFoundError, PermissionError, ...) from errno.
        Some(code) => PyOSError::new_err((code, msg, path.to_path_buf())),
        None => PyOSError::new_err(msg),
    }
}

/// The package's exception for a facade error.
fn to_py(e: OxError) -> PyErr {
    let msg = e.to_string();
    match &e {
        OxError::Io { path, source, .. } => os_err(source, msg, path),
        OxError::Format(f) => format_err(f),
        OxError::Apply(a) => match a {
            ApplyError::Io { path, source, .. } => os_err(source, msg, path),
            ApplyError::Patch(f) => format_err(f),
            ApplyError::WrongOld { .. } => WrongOldError::new_err(msg),
            ApplyError::OutputExists { path } => {
                pyo3::exceptions::PyFileExistsError::new_err((EEXIST, msg, path.clone()))
            }
            _ => Error::new_err(msg),
        },
        _ => Error::new_err(msg),
    }
}

/// A Python progress callable as a [`Progress`]: called with
/// `(phase, done, total)`, one call at a time, the GIL taken for it. The
/// first exception it raises is kept in `raised` and sets `cancel`.
struct PyProgress {
    raised: Arc<Mutex<Option<PyErr>>>,
    cancel: Arc<AtomicBool>,
}

impl PyProgress {
    fn new(f: Option<Py<PyAny>>) -> (PyProgress, Progress) {
        let p = PyProgress {
            raised: Arc::new(Mutex::new(None)),
            cancel: Arc::new(AtomicBool::new(false)),
        };
        let Some(f) = f else {
            return (p, Progress::none());
        };
        let (raised, cancel) = (p.raised.clone(), p.cancel.clone());
        let state = Mutex::new(("", 0u64, 0u64));
        let progress = Progress::new(move |e| {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            match e {
                Event::Start { phase, total } => *s = (phase.name(), 0, total),
                Event::Advance { bytes } => s.1 = s.1.saturating_add(bytes),
            }
            if cancel.load(Ordering::Relaxed) {
                return;
            }
            Python::attach(|py| {
                if let Err(err) = f.call1(py, (s.0, s.1, s.2)) {
                    cancel.store(true, Ordering::Relaxed);
                    let mut r = raised.lock().unwrap_or_else(|p| p.into_inner());
                    r.get_or_insert(err);
                }
            });
        });
        (p, progress)
    }

    /// The callback's exception if it raised one, else `result`'s error.
    fn finish<T>(self, result: Result<T, OxError>) -> PyResult<T> {
        let raised = self.raised.lock().unwrap_or_else(|p| p.into_inner()).take();
        match (raised, result) {
            (Some(err), _) => Err(err),
            (None, r) => r.map_err(to_py),
        }
    }
}

/// Runs `f` on a pool of `threads` threads (None: the global pool, one
/// thread per core).
fn with_threads<T: Send>(threads: Option<usize>, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    match threads {
        None => Ok(f()),
        Some(0) => Err(PyValueError::new_err("threads must be at least 1")),
        Some(n) => Ok(rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| Error::new_err(format!("starting {n} threads: {e}")))?
            .install(f)),
    }
}

/// `errno` of an existing file, for `FileExistsError`.
const EEXIST: i32 = 17;

fn diff_options(
    memory: Option<u64>,
    codec: Option<&str>,
    sign_key: Option<PathBuf>,
    progress: Progress,
    overwrite: bool,
) -> PyResult<DiffOptions> {
    if let Some(m) = memory {
        let min = oxdelta::oxdelta_diff::stream::MIN_BUDGET;
        if m < min {
            return Err(PyValueError::new_err(format!(
                "memory must be at least {min} bytes"
            )));
        }
    }
    let codec = match codec {
        Some(c) => Codec::parse(c).map_err(PyValueError::new_err)?,
        None if memory.is_some() => Codec::Zstd(oxdelta::oxdelta_diff::stream::DEFAULT_ZSTD_LEVEL),
        None => DiffOptions::default().codec,
    };
    let key = sign_key
        .map(|p| oxdelta::read_secret_key(&p))
        .transpose()
        .map_err(to_py)?;
    Ok(DiffOptions {
        codec,
        key,
        memory,
        progress,
        overwrite,
        ..DiffOptions::default()
    })
}

fn apply_options(
    pubkey: Option<PathBuf>,
    durable: bool,
    overwrite: bool,
    progress: &PyProgress,
    p: Progress,
) -> PyResult<ApplyOptions> {
    let trusted_key = pubkey
        .map(|p| oxdelta::read_public_key(&p))
        .transpose()
        .map_err(to_py)?;
    Ok(ApplyOptions {
        trusted_key,
        durable,
        overwrite,
        cancel: Some(progress.cancel.clone()),
        progress: p,
        ..ApplyOptions::default()
    })
}

/// Makes a patch from the file `old` to the file `new` and writes it to
/// `patch` atomically. Returns the patch's length in bytes.
///
/// memory: use the streaming engine within this many bytes (for inputs
/// larger than RAM); by default the in-memory engine (about 5 bytes per
/// byte of OLD). codec: "lzma2" (the default without memory: zstd:19, and
/// LZMA2 for each chunk where it is 3% smaller), "zstd" (the default with
/// memory: a level chosen per chunk), "zstd:LEVEL", "lz4" or "none".
/// threads: worker threads (default: one per core). sign_key: path of a secret key file (from keygen) to sign
/// with. progress: called as progress(phase, done, total) from worker
/// threads. overwrite: replace `patch` if it exists (default False:
/// FileExistsError); `patch` is never `old` or `new` (oxdelta.Error).
#[pyfunction]
#[pyo3(signature = (old, new, patch, *, memory=None, codec=None, threads=None, sign_key=None, progress=None, overwrite=false))]
#[allow(clippy::too_many_arguments)]
fn diff(
    py: Python<'_>,
    old: PathBuf,
    new: PathBuf,
    patch: PathBuf,
    memory: Option<u64>,
    codec: Option<&str>,
    threads: Option<usize>,
    sign_key: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
    overwrite: bool,
) -> PyResult<u64> {
    let (pp, p) = PyProgress::new(progress);
    let opts = diff_options(memory, codec, sign_key, p, overwrite)?;
    let r =
        py.detach(|| with_threads(threads, || oxdelta::diff_files(&old, &new, &patch, &opts)))?;
    pp.finish(r).map(|r| r.patch_len)
}

/// Makes a patch from `old` to `new` in memory and returns it. Options as
/// for diff().
#[pyfunction]
#[pyo3(signature = (old, new, *, memory=None, codec=None, threads=None, sign_key=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn diff_bytes<'py>(
    py: Python<'py>,
    old: &[u8],
    new: &[u8],
    memory: Option<u64>,
    codec: Option<&str>,
    threads: Option<usize>,
    sign_key: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (pp, p) = PyProgress::new(progress);
    let opts = diff_options(memory, codec, sign_key, p, false)?;
    let patch = py.detach(|| with_threads(threads, || oxdelta::diff_bytes(old, new, &opts)))?;
    pp.finish(Ok(()))?;
    Ok(PyBytes::new(py, &patch))
}

/// Applies the patch file `patch` to the file `old` and writes NEW to
/// `out` atomically: on any error `out` is left as it was. Returns NEW's
/// length.
///
/// pubkey: path of a public key file; the patch must then be signed by
/// that key. durable: flush NEW to the disk before renaming it into place
/// (default True). threads: worker threads. progress: called as
/// progress(phase, done, total); an exception raised in it cancels the
/// apply and is re-raised. overwrite: replace `out` if it exists (default
/// False: FileExistsError); `out` may then be `old` itself, and is never
/// `patch` (oxdelta.Error).
#[pyfunction]
#[pyo3(signature = (old, patch, out, *, pubkey=None, durable=true, threads=None, progress=None, overwrite=false))]
#[allow(clippy::too_many_arguments)]
fn apply(
    py: Python<'_>,
    old: PathBuf,
    patch: PathBuf,
    out: PathBuf,
    pubkey: Option<PathBuf>,
    durable: bool,
    threads: Option<usize>,
    progress: Option<Py<PyAny>>,
    overwrite: bool,
) -> PyResult<u64> {
    let (pp, p) = PyProgress::new(progress);
    let opts = apply_options(pubkey, durable, overwrite, &pp, p)?;
    let r = py.detach(|| {
        with_threads(threads, || {
            oxdelta::apply_file(&old, &patch, &out, &opts).map_err(OxError::from)
        })
    })?;
    pp.finish(r).map(|r| r.new_len)
}

/// Applies `patch` to `old`, both in memory, and returns NEW. Options as
/// for apply() (durable does not apply).
#[pyfunction]
#[pyo3(signature = (old, patch, *, pubkey=None, threads=None, progress=None))]
fn apply_bytes<'py>(
    py: Python<'py>,
    old: &[u8],
    patch: &[u8],
    pubkey: Option<PathBuf>,
    threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (pp, p) = PyProgress::new(progress);
    let opts = apply_options(pubkey, true, false, &pp, p)?;
    let r = py.detach(|| {
        with_threads(threads, || {
            oxdelta::apply_bytes(old, patch, &opts).map_err(OxError::from)
        })
    })?;
    let new = pp.finish(r)?;
    Ok(PyBytes::new(py, &new))
}

/// Checks the patch file `patch`: structure, every payload hash and the
/// signature (required when pubkey, a public key file, is given). With
/// old, also rebuilds NEW from that file, writing nothing, and checks it
/// against the patch's whole-NEW hash. Raises on failure.
#[pyfunction]
#[pyo3(signature = (patch, *, pubkey=None, old=None))]
fn verify(
    py: Python<'_>,
    patch: PathBuf,
    pubkey: Option<PathBuf>,
    old: Option<PathBuf>,
) -> PyResult<()> {
    let (pp, p) = PyProgress::new(None);
    let opts = apply_options(pubkey, true, false, &pp, p)?;
    let r = py.detach(|| -> Result<(), OxError> {
        oxdelta::verify_file(&patch, opts.trusted_key.as_ref())?;
        if let Some(old) = old {
            oxdelta::check_file(&old, &patch, &opts)?;
        }
        Ok(())
    });
    pp.finish(r)
}

/// What the patch file `patch` holds, as a dict with the fields of
/// `oxdelta info --json` (read from the head; the signature is not
/// verified: see verify()).
#[pyfunction]
fn info<'py>(py: Python<'py>, patch: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let i = py.detach(|| oxdelta::info_file(&patch)).map_err(to_py)?;
    let hex = oxdelta::oxdelta_format::sign::hex;
    let d = PyDict::new(py);
    d.set_item("format_version", i.format_version)?;
    d.set_item("features_version", i.features_version)?;
    d.set_item("head_bytes", i.head_bytes)?;
    d.set_item("signature_bytes", i.signature_bytes)?;
    d.set_item("patch_bytes", i.patch_bytes)?;
    d.set_item("old_bytes", i.old_bytes)?;
    d.set_item("old_blake3", hex(&i.old_blake3))?;
    d.set_item("new_bytes", i.new_bytes)?;
    d.set_item("new_blake3", hex(&i.new_blake3))?;
    d.set_item("file_hash", i.file_hash)?;
    d.set_item("engine", i.engine.name())?;
    d.set_item("codecs", &i.codecs)?;
    d.set_item("diff_filters", &i.diff_filters)?;
    d.set_item("add_modes", &i.add_modes)?;
    d.set_item("operand_split_chunks", i.operand_split_chunks)?;
    d.set_item("ctrl_split_chunks", i.ctrl_split_chunks)?;
    d.set_item("x86_literal_chunks", i.x86_literal_chunks)?;
    d.set_item("shared_chunks", i.shared_chunks)?;
    let shared = match i.shared_section {
        None => None,
        Some(s) => {
            let sd = PyDict::new(py);
            sd.set_item("ctrl_raw", s.ctrl_raw)?;
            sd.set_item("ctrl_stored", s.ctrl_stored)?;
            sd.set_item("lit_raw", s.lit_raw)?;
            sd.set_item("lit_stored", s.lit_stored)?;
            sd.set_item("gap_max", s.gap_max)?;
            sd.set_item("margin", s.margin)?;
            Some(sd)
        }
    };
    d.set_item("shared_section", shared)?;
    d.set_item("chunks", i.chunks)?;
    d.set_item("zero_chunks", i.zero_chunks)?;
    d.set_item("largest_chunk_bytes", i.largest_chunk_bytes)?;
    d.set_item("in_place", i.in_place)?;
    d.set_item("signed", i.key.is_some())?;
    d.set_item("key_id", i.key.map(|k| k.id()))?;
    Ok(d)
}

/// Makes a signing key pair: writes NAME.key (the secret, mode 0600) and
/// NAME.pub, refusing to overwrite either. Returns the two paths
/// (pathlib.Path).
#[pyfunction]
fn keygen(name: PathBuf) -> PyResult<(PathBuf, PathBuf)> {
    let kp = oxdelta::keygen(&name).map_err(to_py)?;
    Ok((kp.secret_path, kp.public_path))
}

/// Binary diff and patch for big files (the Rust extension; import
/// `oxdelta`).
#[pymodule]
fn _oxdelta(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("Error", py.get_type::<Error>())?;
    m.add("WrongOldError", py.get_type::<WrongOldError>())?;
    m.add("CorruptPatchError", py.get_type::<CorruptPatchError>())?;
    m.add("SignatureError", py.get_type::<SignatureError>())?;
    m.add_function(wrap_pyfunction!(diff, m)?)?;
    m.add_function(wrap_pyfunction!(diff_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(apply, m)?)?;
    m.add_function(wrap_pyfunction!(apply_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(info, m)?)?;
    m.add_function(wrap_pyfunction!(keygen, m)?)?;
    Ok(())
}
