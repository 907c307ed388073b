//! The exported functions: every raw pointer from C is read here, and
//! every C callback is called from here. This is the only module of the
//! workspace besides the applier's memory maps that allows `unsafe`.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::mem::offset_of;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use facade::{ApplyOptions, Codec, DiffOptions, Event, Progress, PublicKey};

use crate::{
    Failure, guard, last_error_ptr, oxdelta_apply_options, oxdelta_diff_options,
    oxdelta_in_place_report, oxdelta_info, oxdelta_phase, oxdelta_progress_fn, oxdelta_sink,
    oxdelta_status, with_threads,
};

// ---------------------------------------------------------------------------
// Sized structs

/// A struct that starts with `size_t size` and only ever grows at its end.
trait Sized_: Copy {
    /// Bytes of the struct's first version: every caller's `size` is at
    /// least this. Spelled as the end of its last first-version field, so
    /// appending fields does not change it.
    const FIRST_SIZE: usize;
    /// The value with every field zero (NULL).
    fn zero() -> Self;
}

macro_rules! sized {
    ($t:ty, $last:ident, $last_ty:ty) => {
        impl Sized_ for $t {
            const FIRST_SIZE: usize = offset_of!($t, $last) + size_of::<$last_ty>();
            fn zero() -> Self {
                // SAFETY: every field of these `repr(C)` structs (integers,
                // raw pointers, `Option` of function pointers, arrays of
                // integers, and field-less enums only in return values, not
                // here) is valid when all its bytes are zero: 0, NULL, None.
                unsafe { std::mem::zeroed() }
            }
        }
    };
}
sized!(oxdelta_diff_options, progress_ctx, *mut c_void);
sized!(oxdelta_apply_options, progress_ctx, *mut c_void);
sized!(oxdelta_sink, flush, crate::oxdelta_flush_fn);
sized!(oxdelta_info, engine, [c_char; 16]);
sized!(oxdelta_in_place_report, is_signed, c_int);

/// Reads a caller's sized struct: NULL gives all zeros (defaults). Fields
/// beyond the caller's `size` stay zero; bytes beyond this library's own
/// struct must be zero (a newer caller asking for something this library
/// cannot do is refused, not ignored).
///
/// # Safety
/// `p` is NULL or points to at least `p->size` readable bytes.
unsafe fn read_sized<T: Sized_>(p: *const T, what: &str) -> Result<T, Failure> {
    let mut out = T::zero();
    if p.is_null() {
        return Ok(out);
    }
    // SAFETY: `p` points to a struct that starts with its `size_t size`.
    let size = unsafe { std::ptr::read_unaligned(p.cast::<usize>()) };
    let own = size_of::<T>();
    if size < T::FIRST_SIZE {
        return Err(Failure::invalid(format!(
            "{what}: size is {size}, expected sizeof(struct), at least {}",
            T::FIRST_SIZE
        )));
    }
    if size > own {
        // SAFETY: the caller's struct has `size` readable bytes.
        let extra = unsafe { std::slice::from_raw_parts(p.cast::<u8>().add(own), size - own) };
        if extra.iter().any(|&b| b != 0) {
            return Err(Failure::invalid(format!(
                "{what}: sets fields this library (oxdelta {}) does not know; \
                 it is older than the header the program was compiled with",
                env!("CARGO_PKG_VERSION")
            )));
        }
    }
    // SAFETY: both regions have at least `min(size, own)` bytes, and any
    // bytes are valid for these structs' fields (see `Sized_::zero`) once
    // `size >= FIRST_SIZE` keeps a caller's struct whole at field ends.
    unsafe {
        std::ptr::copy_nonoverlapping(p.cast::<u8>(), (&raw mut out).cast::<u8>(), size.min(own));
    }
    Ok(out)
}

/// Writes `value` into a caller's sized output struct, at most its `size`
/// bytes, keeping its `size`.
///
/// # Safety
/// `p` is NULL or points to at least `p->size` writable bytes.
unsafe fn write_sized<T: Sized_>(p: *mut T, value: &T, what: &str) -> Result<(), Failure> {
    if p.is_null() {
        return Ok(());
    }
    // SAFETY: `p` points to a struct that starts with its `size_t size`.
    let size = unsafe { std::ptr::read_unaligned(p.cast::<usize>()) };
    if size < T::FIRST_SIZE {
        return Err(Failure::invalid(format!(
            "{what}: size is {size}, expected sizeof(struct), at least {}",
            T::FIRST_SIZE
        )));
    }
    let n = size.min(size_of::<T>()) - size_of::<usize>();
    // SAFETY: the caller's struct has `size` writable bytes; the first
    // `size_of::<usize>()` (its size) are skipped on both sides.
    unsafe {
        std::ptr::copy_nonoverlapping(
            std::ptr::from_ref(value)
                .cast::<u8>()
                .add(size_of::<usize>()),
            p.cast::<u8>().add(size_of::<usize>()),
            n,
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Arguments

/// A C string argument as a path.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn path_arg(p: *const c_char, what: &str) -> Result<PathBuf, Failure> {
    // SAFETY: as the caller promises.
    let s = unsafe { str_bytes(p) }.ok_or_else(|| Failure::invalid(format!("{what} is NULL")))?;
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(s)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(s)
            .map(PathBuf::from)
            .map_err(|_| Failure::invalid(format!("{what} is not UTF-8")))
    }
}

/// An optional C string argument's bytes.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives the result.
unsafe fn str_bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: as the caller promises.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// A caller's `(pointer, length)` buffer as a slice (NULL is allowed for 0).
///
/// # Safety
/// `p` points to `len` readable bytes that outlive the result, or `len` is 0.
unsafe fn bytes_arg<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    // SAFETY: as the caller promises.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The context pointer of a C callback, handed to worker threads.
#[derive(Clone, Copy)]
struct Ctx(*mut c_void);
// SAFETY: the header tells callers that progress callbacks run on the
// library's worker threads (one call at a time, see `progress`), so their
// context must be usable from any thread.
unsafe impl Send for Ctx {}
// SAFETY: as for `Send`; calls are serialised by a mutex.
unsafe impl Sync for Ctx {}

/// A C progress callback as a [`Progress`], turning start/advance events
/// into (phase, done, total), one call at a time. A non-zero return sets
/// `cancel`.
fn progress(f: oxdelta_progress_fn, ctx: *mut c_void, cancel: &Arc<AtomicBool>) -> Progress {
    let Some(f) = f else {
        return Progress::none();
    };
    let ctx = Ctx(ctx);
    let cancel = cancel.clone();
    let state = Mutex::new((oxdelta_phase::OXDELTA_PHASE_OTHER, 0u64, 0u64));
    Progress::new(move |e| {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Start { phase, total } => *s = (oxdelta_phase::from(phase), 0, total),
            Event::Advance { bytes } => s.1 = s.1.saturating_add(bytes),
        }
        let ctx = ctx;
        // SAFETY: `f` is the caller's callback, called with its context
        // under the lock, as the header promises.
        let r = unsafe { f(ctx.0, s.0, s.1, s.2) };
        if r != 0 {
            cancel.store(true, Ordering::Relaxed);
        }
    })
}

/// A caller's [`oxdelta_sink`] as a [`facade::Sink`].
struct CSink(oxdelta_sink);

// SAFETY: the sink is used by one thread at a time, and the header tells
// callers that its callbacks may run on a library thread (with `threads`
// set, the call's work, writes included, runs on the library's pool).
unsafe impl Send for CSink {}

impl facade::Sink for CSink {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let Some(w) = self.0.write else {
            return Err(std::io::Error::other("the sink has no write callback"));
        };
        // SAFETY: the caller's callback with its context; `data` lives
        // through the call.
        let r = unsafe { w(self.0.ctx, offset, data.as_ptr(), data.len()) };
        if r != 0 {
            return Err(std::io::Error::other(format!(
                "the write callback returned {r} at offset {offset}"
            )));
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let Some(f) = self.0.flush else {
            return Ok(());
        };
        // SAFETY: the caller's callback with its context.
        let r = unsafe { f(self.0.ctx) };
        if r != 0 {
            return Err(std::io::Error::other(format!(
                "the flush callback returned {r}"
            )));
        }
        Ok(())
    }
}

/// # Safety
/// `p` is NULL or a valid `struct oxdelta_sink`.
unsafe fn sink_arg(p: *const oxdelta_sink) -> Result<CSink, Failure> {
    if p.is_null() {
        return Err(Failure::invalid("the sink is NULL"));
    }
    // SAFETY: as the caller promises.
    let s = unsafe { read_sized(p, "struct oxdelta_sink") }?;
    if s.write.is_none() {
        return Err(Failure::invalid("the sink has no write callback"));
    }
    Ok(CSink(s))
}

/// The facade's diff options from a caller's, and its thread count.
///
/// # Safety
/// `o`'s strings are NULL or NUL-terminated.
unsafe fn diff_options(o: &oxdelta_diff_options) -> Result<DiffOptions, Failure> {
    let memory = (o.memory != 0).then_some(o.memory);
    if let Some(m) = memory {
        let min = facade::oxdelta_diff::stream::MIN_BUDGET;
        if m < min {
            return Err(Failure::invalid(format!(
                "memory must be at least {min} bytes"
            )));
        }
    }
    // SAFETY: as the caller promises.
    let codec = match unsafe { str_bytes(o.codec) } {
        None if memory.is_some() => Codec::Zstd(facade::oxdelta_diff::stream::DEFAULT_ZSTD_LEVEL),
        None => DiffOptions::default().codec,
        Some(b) => std::str::from_utf8(b)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(Codec::parse)
            .map_err(|e| Failure::invalid(format!("codec: {e}")))?,
    };
    let max = facade::oxdelta_format::limits::MAX_CHUNK_NEW_LEN;
    if o.chunk_size > max {
        return Err(Failure::invalid(format!(
            "chunk_size must be at most {max} bytes"
        )));
    }
    let key = if o.sign_key_path.is_null() {
        None
    } else {
        // SAFETY: as the caller promises.
        let path = unsafe { path_arg(o.sign_key_path, "sign_key_path") }?;
        Some(facade::read_secret_key(&path)?)
    };
    Ok(DiffOptions {
        codec,
        chunk_len: (o.chunk_size != 0).then_some(o.chunk_size),
        key,
        progress: progress(
            o.progress,
            o.progress_ctx,
            &Arc::new(AtomicBool::new(false)),
        ),
        memory,
        overwrite: o.overwrite != 0,
    })
}

/// The facade's apply options from a caller's; `cancel` is set by a
/// progress callback that returns non-zero.
///
/// # Safety
/// `o`'s strings are NULL or NUL-terminated.
unsafe fn apply_options(
    o: &oxdelta_apply_options,
    cancel: &Arc<AtomicBool>,
) -> Result<ApplyOptions, Failure> {
    // SAFETY: as the caller promises.
    let trusted_key = match unsafe { str_bytes(o.pubkey) } {
        None => None,
        Some(b) => Some(
            std::str::from_utf8(b)
                .map_err(|_| "not UTF-8".to_string())
                .and_then(PublicKey::from_text)
                .map_err(|e| Failure {
                    status: oxdelta_status::OXDELTA_E_KEY,
                    message: format!("pubkey: {e}"),
                })?,
        ),
    };
    let d = ApplyOptions::default();
    Ok(ApplyOptions {
        trusted_key,
        memory_budget: if o.memory_budget == 0 {
            d.memory_budget
        } else {
            o.memory_budget
        },
        cancel: Some(cancel.clone()),
        progress: progress(o.progress, o.progress_ctx, cancel),
        durable: o.no_sync == 0,
        overwrite: o.overwrite != 0,
        ..d
    })
}

// ---------------------------------------------------------------------------
// The API

/// The library's version, e.g. "0.1.0" (a static string).
#[unsafe(no_mangle)]
pub extern "C" fn oxdelta_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The message of this thread's last failed call ("" if none failed). The
/// string belongs to the library and stays valid until the next call that
/// fails on this thread; copy it to keep it.
#[unsafe(no_mangle)]
pub extern "C" fn oxdelta_last_error() -> *const c_char {
    last_error_ptr()
}

/// Makes a patch from the file at `old_path` to the file at `new_path` and
/// writes it to `patch_path` atomically (a temporary file renamed into
/// place). `opts` may be NULL.
///
/// # Safety
/// Paths are NUL-terminated strings; `opts` is NULL or a valid struct.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxdelta_diff_file(
    old_path: *const c_char,
    new_path: *const c_char,
    patch_path: *const c_char,
    opts: *const oxdelta_diff_options,
) -> c_int {
    guard(|| {
        // SAFETY: as the caller promises, for each argument.
        let (old, new, patch, o) = unsafe {
            (
                path_arg(old_path, "old_path")?,
                path_arg(new_path, "new_path")?,
                path_arg(patch_path, "patch_path")?,
                read_sized(opts, "struct oxdelta_diff_options")?,
            )
        };
        // SAFETY: `o` came from the caller with its strings.
        let d = unsafe { diff_options(&o) }?;
        let in_place = (o.in_place != 0).then(|| in_place_diff(&o));
        with_threads(o.threads, || {
            if let Some(ip) = in_place {
                facade::diff_files_in_place(&old, &new, &patch, &d, &ip)?;
            } else {
                facade::diff_files(&old, &new, &patch, &d)?;
            }
            Ok(())
        })
    })
}

fn in_place_diff(o: &oxdelta_diff_options) -> facade::InPlaceDiffOptions {
    let mut ip = facade::InPlaceDiffOptions::default();
    if o.stash_limit != 0 {
        ip.stash_limit = o.stash_limit;
    }
    ip
}

/// Makes a patch from `old` (`old_len` bytes) to `new_data` (`new_len`
/// bytes) in memory and writes it through `out` from offset 0 (the
/// patch's length is not known before it is made; collect it in a growing
/// buffer, or write it where it goes). `opts` may be NULL.
///
/// # Safety
/// The buffers hold their lengths of readable bytes (NULL allowed for 0);
/// `out` and `opts` are valid structs (`opts` may be NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxdelta_diff_bytes(
    old: *const u8,
    old_len: usize,
    new_data: *const u8,
    new_len: usize,
    out: *const oxdelta_sink,
    opts: *const oxdelta_diff_options,
) -> c_int {
    guard(|| {
        // SAFETY: as the caller promises, for each argument.
        let (old, new, mut sink, o) = unsafe {
            (
                bytes_arg(old, old_len, "old")?,
                bytes_arg(new_data, new_len, "new_data")?,
                sink_arg(out)?,
                read_sized(opts, "struct oxdelta_diff_options")?,
            )
        };
        // SAFETY: `o` came from the caller with its strings.
        let d = unsafe { diff_options(&o) }?;
        let in_place = (o.in_place != 0).then(|| in_place_diff(&o));
        let patch = with_threads(o.threads, || {
            Ok(if let Some(ip) = in_place {
                facade::diff_bytes_in_place(old, new, &d, &ip).0
            } else {
                facade::diff_bytes(old, new, &d)
            })
        })?;
        let sink_io = |e: std::io::Error| Failure {
            status: oxdelta_status::OXDELTA_E_IO,
            message: format!("writing the patch to the sink: {e}"),
        };
        facade::Sink::write_at(&mut sink, 0, &patch).map_err(sink_io)?;
        facade::Sink::flush(&mut sink).map_err(sink_io)
    })
}

/// Applies the patch at `patch_path` to the file at `old_path` and writes
/// NEW to `out_path` (which may be `old_path`) atomically: nothing is
/// written before the patch and OLD are checked, and on any failure
/// `out_path` is left as it was. `opts` may be NULL.
///
/// # Safety
/// Paths are NUL-terminated strings; `opts` is NULL or a valid struct.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxdelta_apply_file(
    old_path: *const c_char,
    patch_path: *const c_char,
    out_path: *const c_char,
    opts: *const oxdelta_apply_options,
) -> c_int {
    guard(|| {
        let cancel = Arc::new(AtomicBool::new(false));
        // SAFETY: as the caller promises, for each argument.
        let (old, patch, out, o) = unsafe {
            (
                path_arg(old_path, "old_path")?,
                path_arg(patch_path, "patch_path")?,
                path_arg(out_path, "out_path")?,
                read_sized(opts, "struct oxdelta_apply_options")?,
            )
        };
        // SAFETY: `o` came from the caller with its strings.
        let a = unsafe { apply_options(&o, &cancel) }?;
        with_threads(o.threads, || {
            facade::apply_file(&old, &patch, &out, &a).map_err(facade::Error::from)?;
            Ok(())
        })
    })
}

/// Applies the patch in `patch` (`patch_len` bytes) to `old` (`old_len`
/// bytes) and writes NEW into the caller's buffer `out` of `out_cap`
/// bytes; stores NEW's length in `*out_len`. When `out_cap` is less than
/// NEW's length (known from the patch head, see `oxdelta_info_bytes`),
/// nothing is done but storing it, and the result is
/// `OXDELTA_E_BUFFER_TOO_SMALL`. NEW is rebuilt in bounded memory straight
/// into `out`, after OLD is checked; on failure `out` may hold part of NEW.
///
/// # Safety
/// The buffers hold their lengths of readable (`out`: writable) bytes;
/// `out_len` is NULL or writable; `opts` is NULL or a valid struct.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxdelta_apply_bytes(
    old: *const u8,
    old_len: usize,
    patch: *const u8,
    patch_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
    opts: *const oxdelta_apply_options,
) -> c_int {
    guard(|| {
        let cancel = Arc::new(AtomicBool::new(false));
        // SAFETY: as the caller promises, for each argument.
        let (old, patch, o) = unsafe {
            (
                bytes_arg(old, old_len, "old")?,
                bytes_arg(patch, patch_len, "patch")?,
                read_sized(opts, "struct oxdelta_apply_options")?,
            )
        };
        let info = facade::info_bytes(patch)?;
        let need = usize::try_from(info.new_bytes)
            .map_err(|_| Failure::invalid("NEW does not fit in memory"))?;
        if !out_len.is_null() {
            // SAFETY: a writable `size_t`, as the caller promises.
            unsafe { out_len.write(need) };
        }
        if out_cap < need {
            return Err(Failure {
                status: oxdelta_status::OXDELTA_E_BUFFER_TOO_SMALL,
                message: format!("the output buffer has {out_cap} bytes, NEW has {need}"),
            });
        }
        if need > 0 && out.is_null() {
            return Err(Failure::invalid("out is NULL"));
        }
        let buf: &mut [u8] = if need == 0 {
            &mut []
        } else {
            // SAFETY: `out` has `out_cap >= need` writable bytes, as the
            // caller promises, not aliased by `old` or `patch` (read-only).
            unsafe { std::slice::from_raw_parts_mut(out, need) }
        };
        // SAFETY: `o` came from the caller with its strings.
        let a = unsafe { apply_options(&o, &cancel) }?;
        with_threads(o.threads, || {
            facade::apply_to_sink(old, patch, buf, &a)?;
            Ok(())
        })
    })
}

/// Applies the patch at `patch_path` to the file at `old_path` and writes
/// NEW through the caller's `sink`, in offset order. The signature and all
/// of OLD are checked before the first write; each chunk is written once
/// its hash verified. A sink cannot be rolled back: if this fails after
/// writing began, the output holds part of NEW and must not be used.
///
/// # Safety
/// Paths are NUL-terminated strings; `sink` is a valid struct; `opts` is
/// NULL or a valid struct.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxdelta_apply_to_sink(
    old_path: *const c_char,
    patch_path: *const c_char,
    sink: *const oxdelta_sink,
    opts: *const oxdelta_apply_options,
) -> c_int {
    guard(|| {
        let cancel = Arc::new(AtomicBool::new(false));
        // SAFETY: as the caller promises, for each argument.
        let (old, patch, mut sink, o) = unsafe {
            (
                path_arg(old_path, "old_path")?,
                path_arg(patch_path, "patch_path")?,
                sink_arg(sink)?,
                read_sized(opts, "struct oxdelta_apply_options")?,
            )
        };
        // SAFETY: `o` came from the caller with its strings.
        let a = unsafe { apply_options(&o, &cancel) }?;
        with_threads(o.threads, || {
            facade::apply_file_to_sink(&old, &patch, &mut sink, &a)?;
            Ok(())
        })
    })
}

/// Rewrites `target_path` (a file or a block device holding OLD) into NEW
/// in place with an in-place patch (`in_place` in the diff options),
/// crash-safe through a journal: after a crash or a cancel, call it again
/// with the same arguments to resume. `opts` and `report` may be NULL.
///
/// # Safety
/// Paths are NUL-terminated strings; `opts` is NULL or a valid struct;
/// `report` is NULL or a struct whose `size` is set.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxdelta_apply_in_place(
    target_path: *const c_char,
    patch_path: *const c_char,
    opts: *const oxdelta_apply_options,
    report: *mut oxdelta_in_place_report,
) -> c_int {
    guard(|| {
        let cancel = Arc::new(AtomicBool::new(false));
        // SAFETY: as the caller promises, for each argument.
        let (target, patch, o) = unsafe {
            (
                path_arg(target_path, "target_path")?,
                path_arg(patch_path, "patch_path")?,
                read_sized(opts, "struct oxdelta_apply_options")?,
            )
        };
        // SAFETY: `o` came from the caller with its strings.
        let a = unsafe { apply_options(&o, &cancel) }?;
        let journal = if o.journal_path.is_null() {
            None
        } else {
            // SAFETY: as the caller promises.
            Some(unsafe { path_arg(o.journal_path, "journal_path") }?)
        };
        #[cfg(unix)]
        {
            let d = facade::InPlaceApplyOptions::default();
            let ip = facade::InPlaceApplyOptions {
                trusted_key: a.trusted_key,
                journal,
                cancel: a.cancel,
                batch_budget: if o.batch_size == 0 {
                    d.batch_budget
                } else {
                    o.batch_size
                },
                progress: a.progress,
                ..d
            };
            let r = with_threads(o.threads, || {
                Ok(facade::apply_in_place(&target, &patch, &ip)?)
            })?;
            // SAFETY: as the caller promises.
            unsafe {
                write_sized(
                    report,
                    &oxdelta_in_place_report::from_report(&r),
                    "struct oxdelta_in_place_report",
                )
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (target, patch, a, journal, report);
            Err(Failure {
                status: oxdelta_status::OXDELTA_E_INTERNAL,
                message: "in-place apply needs a Unix system".into(),
            })
        }
    })
}

/// Checks the patch at `patch_path`: structure, every payload hash, and
/// the signature (required when `opts->pubkey` is set). With `old_path`
/// (may be NULL), also rebuilds NEW from it, writing nothing, and checks
/// it against the patch's whole-NEW hash.
///
/// # Safety
/// `patch_path` is a NUL-terminated string, `old_path` too or NULL; `opts`
/// is NULL or a valid struct.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxdelta_verify(
    patch_path: *const c_char,
    old_path: *const c_char,
    opts: *const oxdelta_apply_options,
) -> c_int {
    guard(|| {
        let cancel = Arc::new(AtomicBool::new(false));
        // SAFETY: as the caller promises, for each argument.
        let (patch, o) = unsafe {
            (
                path_arg(patch_path, "patch_path")?,
                read_sized(opts, "struct oxdelta_apply_options")?,
            )
        };
        let old = if old_path.is_null() {
            None
        } else {
            // SAFETY: as the caller promises.
            Some(unsafe { path_arg(old_path, "old_path") }?)
        };
        // SAFETY: `o` came from the caller with its strings.
        let a = unsafe { apply_options(&o, &cancel) }?;
        with_threads(o.threads, || {
            facade::verify_file(&patch, a.trusted_key.as_ref())?;
            if let Some(old) = old {
                facade::check_file(&old, &patch, &a).map_err(facade::Error::from)?;
            }
            Ok(())
        })
    })
}

/// Fills `*info` (whose `size` the caller set) with what the patch at
/// `patch_path` holds, from its head (the signature is not verified).
///
/// # Safety
/// `patch_path` is a NUL-terminated string; `info` a struct whose `size`
/// is set.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxdelta_info(patch_path: *const c_char, info: *mut oxdelta_info) -> c_int {
    guard(|| {
        // SAFETY: as the caller promises.
        let patch = unsafe { path_arg(patch_path, "patch_path") }?;
        if info.is_null() {
            return Err(Failure::invalid("info is NULL"));
        }
        let i = facade::info_file(&patch)?;
        // SAFETY: as the caller promises.
        unsafe { write_sized(info, &oxdelta_info::from_info(&i), "struct oxdelta_info") }
    })
}

/// `oxdelta_info` for a patch held in memory (`patch_len` bytes).
///
/// # Safety
/// `patch` holds `patch_len` readable bytes; `info` is a struct whose
/// `size` is set.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxdelta_info_bytes(
    patch: *const u8,
    patch_len: usize,
    info: *mut oxdelta_info,
) -> c_int {
    guard(|| {
        // SAFETY: as the caller promises.
        let patch = unsafe { bytes_arg(patch, patch_len, "patch") }?;
        if info.is_null() {
            return Err(Failure::invalid("info is NULL"));
        }
        let i = facade::info_bytes(patch)?;
        // SAFETY: as the caller promises.
        unsafe { write_sized(info, &oxdelta_info::from_info(&i), "struct oxdelta_info") }
    })
}

/// Makes a signing key pair: writes `NAME.key` (secret, mode 0600) and
/// `NAME.pub` (its text is what `oxdelta_apply_options.pubkey` takes).
/// Refuses to overwrite either (`OXDELTA_E_KEY`).
///
/// # Safety
/// `name` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxdelta_keygen(name: *const c_char) -> c_int {
    guard(|| {
        // SAFETY: as the caller promises.
        let name = unsafe { path_arg(name, "name") }?;
        facade::keygen(&name)?;
        Ok(())
    })
}
