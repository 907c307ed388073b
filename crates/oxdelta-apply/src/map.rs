//! Memory: read-only maps of input files, and page-aligned anonymous
//! buffers. The only module of oxdelta-apply that may use `unsafe`, for
//! the one call that maps a file.
//!
//! A memory map of a file is sound only while no one changes the file: a
//! write by another process shows through the slice (bytes already checked
//! can change), and a truncation makes reading the lost pages fault. Nothing
//! here can stop another process, so mapping a file is an `unsafe fn`
//! ([`ReadMap::new`]) whose caller takes on that contract. This crate's own
//! file appliers ([`crate::apply_file`], [`crate::apply_reader`],
//! [`crate::check_file`], and `inplace::apply_in_place_file` for its
//! patch) take it on for OLD and the patch, and state the consequence
//! instead: they check
//! every byte they read through a map against a hash from the patch (head
//! and payload hashes, OLD's hash, every chunk's NEW hash) before the
//! result is committed, so interference is reported as an error, not
//! written as a wrong output. This is the trade-off ripgrep and b3sum make;
//! callers that cannot accept it use [`crate::apply_bytes`], which maps
//! nothing.
#![allow(unsafe_code)]

use std::fs::File;
use std::ops::{Deref, DerefMut};

use memmap2::{Mmap, MmapMut};

/// A read-only view of a whole file (empty files are not mapped).
#[derive(Debug)]
pub struct ReadMap(Option<Mmap>);

impl ReadMap {
    /// Maps `file` read-only; advises the kernel to read ahead.
    ///
    /// # Safety
    ///
    /// While the returned map (or a slice borrowed from it) lives, no one
    /// may write to `file` or shorten it, in this process or another:
    /// a write changes bytes behind a shared slice, which Rust assumes
    /// immutable, and reading pages cut off by a truncation raises
    /// `SIGBUS`. Opening the file read-only does not ensure this.
    pub unsafe fn new(file: &File) -> std::io::Result<ReadMap> {
        if file.metadata()?.len() == 0 {
            return Ok(ReadMap(None));
        }
        // SAFETY: the caller guarantees that no one writes or shortens the
        // file while the map lives (this function's contract).
        let m = unsafe { Mmap::map(file)? };
        #[cfg(unix)]
        let _ = m.advise(memmap2::Advice::WillNeed);
        Ok(ReadMap(Some(m)))
    }

    /// Maps an input of an apply (OLD or a patch) whose every byte this
    /// crate checks against a hash before committing what it built from
    /// it (see the module docs); the consequence of a concurrent writer is
    /// an error, and of a truncation a `SIGBUS`.
    pub(crate) fn checked_input(file: &File) -> std::io::Result<ReadMap> {
        // SAFETY: not guaranteed by this crate, which cannot stop another
        // process: the documented trade-off of the module docs. The
        // callers (`open_old`, the patch of `apply_file`, `check_file` and
        // `apply_in_place_file`) verify the head hash and signature, the payload hashes, OLD's
        // hash and every chunk's NEW hash before anything is committed.
        unsafe { ReadMap::new(file) }
    }
}

impl Deref for ReadMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

/// Page-aligned anonymous memory (for `O_DIRECT` writes). No `unsafe`:
/// memmap2's anonymous maps are safe to create.
#[derive(Debug)]
pub struct AnonBuf(MmapMut);

impl AnonBuf {
    /// `len` bytes of zeros, page-aligned; pages are faulted in on first
    /// use, as transparent huge pages when `huge` and the system allows.
    pub fn new(len: usize, huge: bool) -> std::io::Result<AnonBuf> {
        let m = MmapMut::map_anon(len.max(1))?;
        #[cfg(target_os = "linux")]
        if huge {
            // Advice only: without huge pages the buffer works the same.
            let _ = m.advise(memmap2::Advice::HugePage);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = huge;
        Ok(AnonBuf(m))
    }
}

impl Deref for AnonBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for AnonBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}
