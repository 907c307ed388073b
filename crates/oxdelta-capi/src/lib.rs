//! The C API of oxdelta: `liboxdelta.so` / `liboxdelta.a` and
//! `include/oxdelta.h` (generated from this crate by cbindgen).
//!
//! Every function is a thin wrapper over the `oxdelta` facade crate: it
//! reads its C arguments, calls the facade, and turns the result into an
//! [`oxdelta_status`], keeping the message for `oxdelta_last_error`. The
//! ABI rules (sized option structs, zero meaning default, ownership) are
//! written in the header, where C programmers read them; see
//! `cbindgen.toml`.
//!
//! `unsafe` lives only in [`ffi`]: raw pointers from C and calls of C
//! callbacks. This file holds the types and the safe half of the work.
#![deny(missing_docs)]
#![allow(non_camel_case_types)]

mod ffi;

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use facade::{ApplyError, Error};

/// Result codes: 0 is success. Functions return these as `int`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum oxdelta_status {
    /// Success.
    OXDELTA_OK = 0,
    /// A NULL or malformed argument: a NULL path, an options `size` the
    /// library cannot read, a bad codec name or key text.
    OXDELTA_E_INVALID_ARGUMENT = 1,
    /// A file could not be opened, read, written or renamed, or a sink
    /// callback returned non-zero.
    OXDELTA_E_IO = 2,
    /// The patch is malformed, damaged or not an oxdelta patch.
    OXDELTA_E_BAD_PATCH = 3,
    /// The signature is missing (with a trusted key), from another key, or
    /// does not verify.
    OXDELTA_E_SIGNATURE = 4,
    /// OLD is not the file the patch was made for.
    OXDELTA_E_WRONG_OLD = 5,
    /// A progress callback returned non-zero.
    OXDELTA_E_CANCELLED = 6,
    /// The output buffer is too small; the length needed was stored.
    OXDELTA_E_BUFFER_TOO_SMALL = 7,
    /// In-place apply: the target is neither OLD, nor NEW, nor a partly
    /// patched OLD of this patch (it was not touched).
    OXDELTA_E_WRONG_TARGET = 8,
    /// In-place apply: the journal cannot be used.
    OXDELTA_E_JOURNAL = 9,
    /// In-place apply: the patch was not made for in-place apply.
    OXDELTA_E_NOT_IN_PLACE = 10,
    /// A key file is malformed, or `oxdelta_keygen` would overwrite one.
    OXDELTA_E_KEY = 11,
    /// A bug in oxdelta (a caught panic) or an error this version cannot
    /// name.
    OXDELTA_E_INTERNAL = 12,
    /// The output exists and `overwrite` is not set, or the output is one
    /// of the inputs (the same file, also through a link), which is
    /// refused even with `overwrite`.
    OXDELTA_E_OUTPUT = 13,
    /// An input changed while it was read (it shrank, or its length or
    /// modification time moved); nothing was written.
    OXDELTA_E_INPUT_CHANGED = 14,
}

/// Phases reported to an `oxdelta_progress_fn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum oxdelta_phase {
    /// Hashing OLD and NEW to identify them (diff).
    OXDELTA_PHASE_HASHING = 0,
    /// Indexing OLD (diff).
    OXDELTA_PHASE_INDEXING = 1,
    /// Matching NEW against OLD (diff).
    OXDELTA_PHASE_MATCHING = 2,
    /// Checking OLD against the patch (apply).
    OXDELTA_PHASE_VERIFYING = 3,
    /// Rebuilding NEW (apply).
    OXDELTA_PHASE_APPLYING = 4,
    /// A phase this version of the header does not name.
    OXDELTA_PHASE_OTHER = 5,
}

impl From<facade::Phase> for oxdelta_phase {
    fn from(p: facade::Phase) -> oxdelta_phase {
        use facade::Phase as P;
        match p {
            P::Hashing => oxdelta_phase::OXDELTA_PHASE_HASHING,
            P::Indexing => oxdelta_phase::OXDELTA_PHASE_INDEXING,
            P::Matching => oxdelta_phase::OXDELTA_PHASE_MATCHING,
            P::Verifying => oxdelta_phase::OXDELTA_PHASE_VERIFYING,
            P::Applying => oxdelta_phase::OXDELTA_PHASE_APPLYING,
            _ => oxdelta_phase::OXDELTA_PHASE_OTHER,
        }
    }
}

/// Progress callback: `done` of `total` bytes of `phase` are finished.
/// Called from the library's worker threads, never two calls at once.
/// Return 0 to go on; non-zero cancels an apply (which then fails with
/// `OXDELTA_E_CANCELLED`, leaving its output as it was; an in-place apply
/// can be resumed). Diffs cannot be cancelled and ignore the value.
pub type oxdelta_progress_fn = Option<
    unsafe extern "C" fn(ctx: *mut c_void, phase: oxdelta_phase, done: u64, total: u64) -> c_int,
>;

/// Sink write callback: store `len` bytes at `data` at byte `offset` of
/// the output. Return 0 on success; non-zero fails the call with
/// `OXDELTA_E_IO`. `data` is valid only during the call.
pub type oxdelta_write_fn = Option<
    unsafe extern "C" fn(ctx: *mut c_void, offset: u64, data: *const u8, len: usize) -> c_int,
>;

/// Sink flush callback: make everything written durable. Return 0 on
/// success.
pub type oxdelta_flush_fn = Option<unsafe extern "C" fn(ctx: *mut c_void) -> c_int>;

/// An output owned by the caller (a partition, a flash driver, a socket,
/// a growing buffer). Writes come one at a time, in increasing offset
/// order, tiling the output exactly, from the calling thread (with
/// `threads` set in the options: from one of the call's own threads);
/// `flush` (if not NULL) is called once after the last write.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct oxdelta_sink {
    /// `sizeof(struct oxdelta_sink)` as the caller compiled it.
    pub size: usize,
    /// Passed to the callbacks.
    pub ctx: *mut c_void,
    /// Required.
    pub write: oxdelta_write_fn,
    /// May be NULL.
    pub flush: oxdelta_flush_fn,
}

/// How to make a patch. Zero in any field means its default; NULL options
/// mean all defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct oxdelta_diff_options {
    /// `sizeof(struct oxdelta_diff_options)` as the caller compiled it.
    pub size: usize,
    /// Codec: "lzma2", "zstd", "zstd:LEVEL", "lz4" or "none". Default lzma2
    /// (zstd:19, and LZMA2 for chunks where it is 3% smaller), or with
    /// `memory` set zstd at a level chosen per chunk (18, or a fast
    /// setting where the chunk's streams are large).
    pub codec: *const c_char,
    /// Use the streaming engine within this many bytes of memory (at least
    /// 64 KiB). Default: the in-memory engine (about 5 bytes per byte of OLD).
    pub memory: u64,
    /// NEW bytes per chunk. Default: from NEW's size.
    pub chunk_size: u32,
    /// Worker threads. Default: one per core.
    pub threads: u32,
    /// Path of a secret key file (`oxdelta_keygen`'s NAME.key) to sign the
    /// patch with. Default: unsigned.
    pub sign_key_path: *const c_char,
    /// Non-zero: make a patch for `oxdelta_apply_in_place`.
    pub in_place: c_int,
    /// With `in_place`: most OLD bytes the applier may have to stash in
    /// its journal (default 16 MiB).
    pub stash_limit: u64,
    /// Progress callback. Default: none.
    pub progress: oxdelta_progress_fn,
    /// Passed to `progress`.
    pub progress_ctx: *mut c_void,
    /// Non-zero: replace `patch_path` if it exists. Default: refuse
    /// (`OXDELTA_E_OUTPUT`). The patch is never OLD or NEW.
    pub overwrite: c_int,
}

/// How to apply or verify. Zero in any field means its default; NULL
/// options mean all defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct oxdelta_apply_options {
    /// `sizeof(struct oxdelta_apply_options)` as the caller compiled it.
    pub size: usize,
    /// The trusted public key, as the text of `oxdelta_keygen`'s NAME.pub
    /// (`oxdelta-public-key-v1 <64 hex digits>`), so an updater can carry
    /// it compiled in. When set, a patch not signed by this key is refused
    /// before anything is written. Default: signatures are checked only if
    /// present.
    pub pubkey: *const c_char,
    /// Most bytes of decode buffers in flight (default 48 MiB).
    pub memory_budget: u64,
    /// Threads. Default: one per core.
    pub threads: u32,
    /// Non-zero: do not flush NEW to the disk before renaming it into
    /// place (file applies only; in-place applies always flush).
    pub no_sync: c_int,
    /// In-place apply: the journal. Default: TARGET.oxdelta-journal
    /// (required for block devices).
    pub journal_path: *const c_char,
    /// In-place apply: NEW bytes per batch (default 32 MiB).
    pub batch_size: u64,
    /// Progress callback. Default: none.
    pub progress: oxdelta_progress_fn,
    /// Passed to `progress`.
    pub progress_ctx: *mut c_void,
    /// Non-zero: `oxdelta_apply_file` may replace an existing output (which
    /// may then be OLD itself). Default: refuse (`OXDELTA_E_OUTPUT`). The
    /// output is never the patch.
    pub overwrite: c_int,
}

/// What a patch holds (`oxdelta info`). The caller sets `size`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct oxdelta_info {
    /// `sizeof(struct oxdelta_info)` as the caller compiled it.
    pub size: usize,
    /// Format version of the patch.
    pub format_version: u32,
    /// Non-zero when the patch was made for in-place apply.
    pub in_place: c_int,
    /// Length of the patch.
    pub patch_bytes: u64,
    /// Length of OLD.
    pub old_bytes: u64,
    /// Length of NEW.
    pub new_bytes: u64,
    /// Chunks in the patch.
    pub chunks: u64,
    /// NEW bytes of the largest chunk.
    pub largest_chunk_bytes: u64,
    /// Non-zero when the patch carries a signature (not verified here: see
    /// `oxdelta_verify`).
    pub is_signed: c_int,
    /// Hash of OLD, as `file_hash` defines it.
    pub old_blake3: [u8; 32],
    /// Hash of NEW, as `file_hash` defines it.
    pub new_blake3: [u8; 32],
    /// Id of the signing key (16 hex digits), "" when unsigned.
    pub key_id: [c_char; 17],
    /// Engine that made the patch: "suffix-array", "streaming", "unknown".
    pub engine: [c_char; 16],
    /// How `old_blake3` and `new_blake3` are defined: "blake3" (BLAKE3 of
    /// the whole file) or "blake3-blocks" (format version 8's block-list
    /// hash over 64 KiB blocks, which the streaming engine writes; see
    /// docs/FORMAT.md). Added after `engine`: a caller compiled with an
    /// older header, whose `size` ends at `engine`, does not receive it.
    pub file_hash: [c_char; 16],
}

/// What an in-place apply did. The caller sets `size`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct oxdelta_in_place_report {
    /// `sizeof(struct oxdelta_in_place_report)` as the caller compiled it.
    pub size: usize,
    /// Non-zero when the target already held NEW (nothing was written).
    pub already_up_to_date: c_int,
    /// Non-zero when an interrupted apply was resumed from its journal.
    pub resumed: c_int,
    /// Steps (chunks) in the patch.
    pub steps: u64,
    /// Steps found already done.
    pub steps_skipped: u64,
    /// Bytes written to the target.
    pub bytes_written: u64,
    /// OLD bytes stashed in the journal.
    pub stash_bytes: u64,
    /// NEW bytes.
    pub new_bytes: u64,
    /// Non-zero when the patch was signed (and the signature verified).
    pub is_signed: c_int,
}

/// A failed call: its status and message.
#[derive(Debug)]
struct Failure {
    status: oxdelta_status,
    message: String,
}

impl Failure {
    fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            status: oxdelta_status::OXDELTA_E_INVALID_ARGUMENT,
            message: message.into(),
        }
    }
}

fn format_status(e: &facade::oxdelta_format::Error) -> oxdelta_status {
    match e.kind() {
        facade::oxdelta_format::ErrorKind::Signature(_) => oxdelta_status::OXDELTA_E_SIGNATURE,
        _ => oxdelta_status::OXDELTA_E_BAD_PATCH,
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        use oxdelta_status as S;
        let status = match &e {
            Error::Io { .. } => S::OXDELTA_E_IO,
            Error::Format(f) => format_status(f),
            Error::Key { .. } => S::OXDELTA_E_KEY,
            Error::Apply(a) => match a {
                ApplyError::Io { .. } => S::OXDELTA_E_IO,
                ApplyError::Patch(f) => format_status(f),
                ApplyError::WrongOld { .. } => S::OXDELTA_E_WRONG_OLD,
                ApplyError::Cancelled => S::OXDELTA_E_CANCELLED,
                ApplyError::WrongTarget { .. } => S::OXDELTA_E_WRONG_TARGET,
                ApplyError::Journal { .. } => S::OXDELTA_E_JOURNAL,
                ApplyError::NotInPlace => S::OXDELTA_E_NOT_IN_PLACE,
                ApplyError::OutputExists { .. } | ApplyError::SameFile { .. } => {
                    S::OXDELTA_E_OUTPUT
                }
                ApplyError::InputChanged { .. } => S::OXDELTA_E_INPUT_CHANGED,
                _ => S::OXDELTA_E_INTERNAL,
            },
            _ => S::OXDELTA_E_INTERNAL,
        };
        Failure {
            status,
            message: e.to_string(),
        }
    }
}

thread_local! {
    /// The message of this thread's last failed call.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = c);
}

/// Pointer to this thread's last message: valid until the next failing
/// call on this thread replaces it (the thread-local owns it).
fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

/// Runs one API call: a panic becomes `OXDELTA_E_INTERNAL`, a failure its
/// status; either way the message is kept for `oxdelta_last_error`.
fn guard(f: impl FnOnce() -> Result<(), Failure>) -> c_int {
    let fail = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return oxdelta_status::OXDELTA_OK as c_int,
        Ok(Err(fail)) => fail,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Failure {
                status: oxdelta_status::OXDELTA_E_INTERNAL,
                message: format!("internal error (a bug in oxdelta, please report it): {what}"),
            }
        }
    };
    set_last_error(&fail.message);
    fail.status as c_int
}

/// Runs `f` on a pool of `threads` threads (0: the global pool, one
/// thread per core).
fn with_threads<T: Send>(
    threads: u32,
    f: impl FnOnce() -> Result<T, Failure> + Send,
) -> Result<T, Failure> {
    if threads == 0 {
        return f();
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads as usize)
        .build()
        .map_err(|e| Failure {
            status: oxdelta_status::OXDELTA_E_INTERNAL,
            message: format!("starting {threads} threads: {e}"),
        })?
        .install(f)
}

/// Copies `s` into a fixed C string field, NUL-terminated, truncated to fit.
fn fill_c_str<const N: usize>(field: &mut [c_char; N], s: &str) {
    *field = [0; N];
    for (d, &b) in field.iter_mut().zip(s.as_bytes().iter().take(N - 1)) {
        *d = b as c_char;
    }
}

impl oxdelta_info {
    fn from_info(i: &facade::PatchInfo) -> oxdelta_info {
        let mut out = oxdelta_info {
            size: size_of::<oxdelta_info>(),
            format_version: u32::from(i.format_version),
            in_place: c_int::from(i.in_place),
            patch_bytes: i.patch_bytes,
            old_bytes: i.old_bytes,
            new_bytes: i.new_bytes,
            chunks: i.chunks as u64,
            largest_chunk_bytes: u64::from(i.largest_chunk_bytes),
            is_signed: c_int::from(i.key.is_some()),
            old_blake3: i.old_blake3,
            new_blake3: i.new_blake3,
            key_id: [0; 17],
            engine: [0; 16],
            file_hash: [0; 16],
        };
        fill_c_str(&mut out.key_id, &i.key.map(|k| k.id()).unwrap_or_default());
        fill_c_str(&mut out.engine, i.engine.name());
        fill_c_str(&mut out.file_hash, i.file_hash);
        out
    }
}

impl oxdelta_in_place_report {
    fn from_report(r: &facade::InPlaceReport) -> oxdelta_in_place_report {
        oxdelta_in_place_report {
            size: size_of::<oxdelta_in_place_report>(),
            already_up_to_date: c_int::from(r.outcome == facade::InPlaceOutcome::AlreadyUpToDate),
            resumed: c_int::from(r.resumed),
            steps: r.steps as u64,
            steps_skipped: r.steps_skipped as u64,
            bytes_written: r.bytes_written,
            stash_bytes: r.stash_bytes,
            new_bytes: r.new_len,
            is_signed: c_int::from(r.signed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_internal_errors_with_a_message() {
        let code = guard(|| panic!("boom"));
        assert_eq!(code, oxdelta_status::OXDELTA_E_INTERNAL as c_int);
        let msg = LAST_ERROR.with(|l| l.borrow().to_str().unwrap().to_string());
        assert!(msg.contains("boom"), "{msg}");
        // Success leaves the message of the last failure.
        assert_eq!(guard(|| Ok(())), 0);
        assert!(LAST_ERROR.with(|l| l.borrow().to_str().unwrap().contains("boom")));
    }

    #[test]
    fn c_strings_are_truncated_and_terminated() {
        let mut f = [1 as c_char; 4];
        fill_c_str(&mut f, "abcdef");
        assert_eq!(f, [b'a' as c_char, b'b' as c_char, b'c' as c_char, 0]);
        fill_c_str(&mut f, "");
        assert_eq!(f, [0; 4]);
    }
}
