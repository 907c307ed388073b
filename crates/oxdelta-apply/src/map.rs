//! Memory: read-only maps of input files, and page-aligned anonymous
//! buffers. The only module of oxdelta-apply, and of the library, that may
//! use `unsafe` (the C API's boundary aside).
//!
//! A memory map of a file is sound only while no one changes the file: a
//! write by another process shows through the slice (bytes already checked
//! can change), and reading pages cut off by a truncation faults with
//! `SIGBUS`, which kills the process, and a daemon embedding the library
//! with it. Nothing here can stop another process, so mapping a file raw
//! is an `unsafe fn` ([`ReadMap::new`]) whose caller takes on that
//! contract.
//!
//! Inputs are mapped through [`InputMap`] instead, which makes the
//! consequence of a change an error, never a signal nor a wrong output:
//!
//! * **Truncation.** On Linux, a process-wide `SIGBUS` handler (installed
//!   once, the first time an input is mapped) knows the address ranges of
//!   the live input maps. A fault inside one of them gets a page of zeros
//!   mapped over the lost page, the map is marked, and the read goes on;
//!   any other `SIGBUS` goes to the handler that was there before (Rust's
//!   own, which restores the default action: the process dies as it would
//!   have). [`InputMap::check`] then reports the change.
//! * **Writes and truncations alike** move the file's length or
//!   modification time, which [`InputMap::check`] compares with those at
//!   mapping time. Callers check before they commit anything built from
//!   the map: the appliers before the rename of OUT, the differ before it
//!   writes the patch.
//! * **Meanwhile** every byte an apply reads through a map is checked
//!   against a hash from the patch (head and payload hashes, OLD's hash,
//!   every chunk's NEW hash), so bytes that changed between the check and
//!   the read cannot reach OUT either.
//!
//! Why guarded maps rather than positional reads: they cost nothing on the
//! normal path (an `fstat` per input at the end; the handler runs only on a
//! fault), the rebuild keeps reading OLD in place at random offsets without
//! a copy, and the streaming differ, which must see OLD and NEW whole
//! within a fixed memory budget, gets the same protection. The price is a
//! process-wide signal handler: a program that installs its own `SIGBUS`
//! handler after oxdelta's takes that job over (ours then never runs).
//! Elsewhere than Linux the length and time check remains, and a
//! truncation during a read still raises `SIGBUS`.
#![allow(unsafe_code)]

use std::fs::File;
use std::ops::{Deref, DerefMut};
use std::path::Path;

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

/// A read-only map of an input file (OLD, NEW, a patch) that survives the
/// file changing under it: see the module docs. Reading it never raises a
/// signal on Linux; [`InputMap::check`] says whether the file changed since
/// it was mapped.
#[derive(Debug)]
pub struct InputMap {
    /// Declared first: the slot is released before the map is unmapped.
    guard: Guard,
    map: ReadMap,
    file: File,
    stamp: Stamp,
}

/// What [`InputMap::check`] compares: the length and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Stamp {
    fn of(file: &File) -> std::io::Result<Stamp> {
        let m = file.metadata()?;
        Ok(Stamp {
            len: m.len(),
            modified: m.modified().ok(),
        })
    }
}

impl InputMap {
    /// Maps `file` read-only, guarded (see the module docs).
    pub fn new(file: File) -> std::io::Result<InputMap> {
        let stamp = Stamp::of(&file)?;
        // SAFETY: not guaranteed, and not needed for soundness of what
        // follows in practice: a truncation's faults are turned into zero
        // pages by the guard registered below (Linux) before the slice is
        // handed out, and every use of the bytes is checked by hash or by
        // `check` before anything built from them is committed (module
        // docs). A concurrent writer can still change bytes behind the
        // slice, which the hashes and `check` report.
        let map = unsafe { ReadMap::new(&file)? };
        let guard = Guard::register(&map);
        Ok(InputMap {
            guard,
            map,
            file,
            stamp,
        })
    }

    /// Opens and maps the file at `path`.
    pub fn open(path: &Path) -> std::io::Result<InputMap> {
        InputMap::new(File::open(path)?)
    }

    /// The mapped file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Fails with [`crate::ApplyError::InputChanged`] (naming `path`) if a
    /// read through the map hit a page cut off by a truncation, or if the
    /// file's length or modification time is not what it was when mapped.
    pub fn check(&self, path: &Path) -> crate::Result<()> {
        let changed = |detail: String| crate::ApplyError::InputChanged {
            path: path.to_path_buf(),
            detail,
        };
        if self.guard.faulted() {
            return Err(changed(
                "it was cut short while mapped; the lost pages read as zeros".into(),
            ));
        }
        let now = Stamp::of(&self.file).map_err(crate::error::io("checking", path))?;
        if now.len != self.stamp.len {
            return Err(changed(format!(
                "{} bytes when opened, {} now",
                self.stamp.len, now.len
            )));
        }
        if now.modified != self.stamp.modified {
            return Err(changed("modified since it was opened".into()));
        }
        Ok(())
    }
}

impl Deref for InputMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

/// The registration of a map's address range with the `SIGBUS` handler
/// (a no-op where there is none).
#[derive(Debug)]
struct Guard {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    slot: Option<usize>,
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Guard {
    fn register(_: &ReadMap) -> Guard {
        Guard {}
    }
    fn faulted(&self) -> bool {
        false
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Guard {
    fn register(map: &ReadMap) -> Guard {
        let start = map.as_ptr() as usize;
        let slot = (!map.is_empty())
            .then(|| bus::register(start, start + map.len()))
            .flatten();
        Guard { slot }
    }

    fn faulted(&self) -> bool {
        self.slot.is_some_and(bus::faulted)
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(s) = self.slot {
            bus::release(s);
        }
    }
}

/// The `SIGBUS` handler and its table of guarded ranges. The table is a
/// fixed array of atomics (the handler may not lock or allocate); a map
/// beyond [`bus::SLOTS`] live ones is unguarded, keeping only the length
/// and time check.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod bus {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// Live input maps that can be guarded at once.
    pub(super) const SLOTS: usize = 256;

    struct Slot {
        used: AtomicBool,
        start: AtomicUsize,
        end: AtomicUsize,
        faulted: AtomicBool,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Slot = Slot {
        used: AtomicBool::new(false),
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        faulted: AtomicBool::new(false),
    };
    static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
    static PAGE: AtomicUsize = AtomicUsize::new(4096);
    /// The disposition before ours, to pass other faults on to; set once,
    /// before ours is installed.
    static PREVIOUS: OnceLock<Previous> = OnceLock::new();

    struct Previous(libc::sigaction);
    // SAFETY: a plain C struct of integers and a function address, written
    // once before the handler that reads it is installed, never after.
    unsafe impl Sync for Previous {}
    // SAFETY: as for `Sync`.
    unsafe impl Send for Previous {}

    /// Installs the handler (once) and registers `start..end`; `None`
    /// when the table is full or the handler could not be installed.
    pub(super) fn register(start: usize, end: usize) -> Option<usize> {
        let _ = PREVIOUS.get_or_init(install);
        if !INSTALLED.load(Ordering::Acquire) {
            return None;
        }
        let i = TABLE.iter().position(|s| {
            s.used
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        let s = &TABLE[i];
        s.faulted.store(false, Ordering::Relaxed);
        s.start.store(start, Ordering::Release);
        s.end.store(end, Ordering::Release);
        Some(i)
    }

    pub(super) fn faulted(i: usize) -> bool {
        TABLE[i].faulted.load(Ordering::Acquire)
    }

    pub(super) fn release(i: usize) {
        let s = &TABLE[i];
        s.end.store(0, Ordering::Release);
        s.start.store(0, Ordering::Release);
        s.used.store(false, Ordering::Release);
    }

    static INSTALLED: AtomicBool = AtomicBool::new(false);

    /// Installs [`on_sigbus`]; returns the disposition it replaced.
    fn install() -> Previous {
        // SAFETY: `sysconf` has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: `sigaction` structs are plain data, valid when zeroed;
        // the first call only reads the current disposition, and the
        // second installs a handler that is async-signal-safe (atomics and
        // `mmap` only) with an emptied mask.
        unsafe {
            let mut prev: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut prev) != 0 {
                return Previous(prev);
            }
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = on_sigbus as *const () as usize;
            ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut ours.sa_mask);
            let mut replaced: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &ours, &mut replaced) == 0 {
                INSTALLED.store(true, Ordering::Release);
                return Previous(replaced);
            }
            Previous(prev)
        }
    }

    /// The handler: a fault inside a guarded range gets a zero page mapped
    /// over it (the read is retried and succeeds) and marks the range;
    /// anything else goes to the previous disposition.
    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid `siginfo_t` to SA_SIGINFO
        // handlers; `si_addr` is the faulting address for SIGBUS.
        let (addr, code) = unsafe { ((*info).si_addr() as usize, (*info).si_code) };
        // Only faults the kernel raised (si_code > 0), not kill(2)'s.
        if code > 0 {
            let page = PAGE.load(Ordering::Relaxed);
            for s in &TABLE {
                let (start, end) = (
                    s.start.load(Ordering::Acquire),
                    s.end.load(Ordering::Acquire),
                );
                if start <= addr && addr < end {
                    let at = addr & !(page - 1);
                    // SAFETY: `at..at + page` lies in a live read-only map
                    // of this crate (registered in the table until just
                    // before it is unmapped); replacing its page with an
                    // anonymous zero page changes only what later reads of
                    // that page see, which `InputMap::check` reports.
                    let p = unsafe {
                        libc::mmap(
                            at as *mut libc::c_void,
                            page,
                            libc::PROT_READ,
                            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                            -1,
                            0,
                        )
                    };
                    if p != libc::MAP_FAILED {
                        s.faulted.store(true, Ordering::Release);
                        return;
                    }
                }
            }
        }
        forward(sig, info, ctx);
    }

    /// Passes a signal that is not ours to the disposition we replaced; for
    /// the default one, restores it and returns, so the faulting access
    /// repeats and the process ends as it would have without us.
    fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        let prev = PREVIOUS.get().map(|p| p.0);
        match prev {
            Some(p) if p.sa_sigaction != libc::SIG_DFL && p.sa_sigaction != libc::SIG_IGN => {
                // SAFETY: `sa_sigaction` is the address of the previous
                // handler, of the type its flags say.
                unsafe {
                    if p.sa_flags & libc::SA_SIGINFO != 0 {
                        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                            std::mem::transmute(p.sa_sigaction);
                        f(sig, info, ctx);
                    } else {
                        let f: extern "C" fn(libc::c_int) = std::mem::transmute(p.sa_sigaction);
                        f(sig);
                    }
                }
            }
            _ => {
                // SAFETY: restoring the default disposition with a zeroed
                // (empty-mask) struct.
                unsafe {
                    let mut dfl: libc::sigaction = std::mem::zeroed();
                    dfl.sa_sigaction = libc::SIG_DFL;
                    libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
                }
            }
        }
    }
}
