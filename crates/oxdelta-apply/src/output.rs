//! The rules every file output of oxdelta follows (a rebuilt NEW, a
//! patch): an existing file is replaced only when the caller asked for it,
//! and an output is never one of the inputs it is made from.
//!
//! "The same file" means the same device and inode, so a hard link or a
//! symbolic link to an input is that input. The check is made twice: up
//! front by [`check_output`], before any work, for a clear error; and at
//! the commit by [`rename_into_place`], which does not replace a file that
//! appeared meanwhile (`renameat2(RENAME_NOREPLACE)` on Linux, a hard link
//! elsewhere), so no race can turn a refusal into an overwrite.

use std::fs;
use std::io;
use std::path::Path;

use crate::{ApplyError, Result};

/// Whether `a` and `b` name the same file: same device and inode, symbolic
/// links followed (where there is no inode, the same canonical path).
/// False when either does not exist.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (fs::metadata(a), fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (fs::canonicalize(a), fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

/// Refuses `out` when it is the same file as one of `inputs` (named for
/// the message, e.g. `("the patch", path)`), whatever `overwrite` says,
/// and when it exists and `overwrite` is false. A dangling symbolic link
/// counts as existing.
pub fn check_output(out: &Path, inputs: &[(&'static str, &Path)], overwrite: bool) -> Result<()> {
    for &(what, input) in inputs {
        if same_file(out, input) {
            return Err(ApplyError::SameFile {
                path: out.to_path_buf(),
                input: what,
            });
        }
    }
    if !overwrite && fs::symlink_metadata(out).is_ok() {
        return Err(ApplyError::OutputExists {
            path: out.to_path_buf(),
        });
    }
    Ok(())
}

/// Renames `from` to `to`; when `overwrite` is false, fails with
/// [`io::ErrorKind::AlreadyExists`] rather than replace a file at `to`,
/// atomically where the system allows (Linux's `RENAME_NOREPLACE`, else a
/// hard link then the removal of `from`; on file systems with neither, a
/// check then a rename).
pub fn rename_into_place(from: &Path, to: &Path, overwrite: bool) -> io::Result<()> {
    if overwrite {
        return fs::rename(from, to);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match fs::hard_link(from, to) {
        Ok(()) => {
            let _ = fs::remove_file(from);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            fs::rename(from, to)
        }
    }
}
