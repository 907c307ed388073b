//! File mapping: the only place in oxdelta with `unsafe`.
//!
//! A memory map of a file is only sound while no one else changes the file.
//! oxdelta maps OLD read-only and its own freshly created temporary output
//! file; it cannot stop another process from modifying OLD concurrently, so
//! it hashes OLD before use and checks every chunk's output hash, which
//! turns such interference into an error rather than a wrong result. This is
//! the same trade-off ripgrep and b3sum make; callers that cannot accept it
//! use [`crate::apply_bytes`], which maps nothing.

use std::fs::File;
use std::ops::{Deref, DerefMut};

use memmap2::{Mmap, MmapMut};

/// A read-only view of a whole file (empty files are not mapped).
#[derive(Debug)]
pub struct ReadMap(Option<Mmap>);

impl ReadMap {
    /// Maps `file` read-only.
    pub fn new(file: &File) -> std::io::Result<ReadMap> {
        if file.metadata()?.len() == 0 {
            return Ok(ReadMap(None));
        }
        // SAFETY: the file is opened read-only by us; concurrent modification
        // by another process is the documented risk above, detected by the
        // OLD hash and per-chunk output hashes rather than prevented.
        let m = unsafe { Mmap::map(file)? };
        #[cfg(unix)]
        let _ = m.advise(memmap2::Advice::WillNeed);
        Ok(ReadMap(Some(m)))
    }
}

impl Deref for ReadMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

/// A writable view of a whole file that this process created.
#[derive(Debug)]
pub struct WriteMap(Option<MmapMut>);

impl WriteMap {
    /// Maps `file` read-write; `file` must already have its final length.
    pub fn new(file: &File) -> std::io::Result<WriteMap> {
        if file.metadata()?.len() == 0 {
            return Ok(WriteMap(None));
        }
        // SAFETY: `file` is a temporary file this process just created with a
        // unique name in a directory it writes to, and nothing else opens it
        // until it is renamed into place after the map is dropped.
        let m = unsafe { MmapMut::map_mut(file)? };
        Ok(WriteMap(Some(m)))
    }

    /// Writes dirty pages back to the file and waits for them.
    pub fn flush(&self) -> std::io::Result<()> {
        match &self.0 {
            Some(m) => m.flush(),
            None => Ok(()),
        }
    }
}

impl Deref for WriteMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl DerefMut for WriteMap {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or(&mut [])
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
