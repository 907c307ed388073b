//! Errors of the applier.

use std::fmt;
use std::path::PathBuf;

/// Why an apply failed. In every case the output was left as it was.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApplyError {
    /// A file could not be opened, read, written or renamed.
    Io {
        /// What was being done, e.g. "opening OLD".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The patch is malformed, damaged, tampered with or wrongly signed.
    Patch(oxdelta_format::Error),
    /// OLD is not the file the patch was made for.
    WrongOld {
        /// What does not match.
        detail: String,
    },
    /// The apply was cancelled (for example by Ctrl-C).
    Cancelled,
    /// The in-place target is neither OLD, nor NEW, nor a partly patched
    /// OLD of this patch (it was left untouched), or the patch cannot be
    /// applied in place within the limits.
    WrongTarget {
        /// What does not match.
        detail: String,
    },
    /// An in-place journal cannot be used.
    Journal {
        /// The journal.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The patch was not made for in-place apply (`diff --in-place`).
    NotInPlace,
    /// The output exists and replacing it was not asked for
    /// ([`crate::ApplyOptions::overwrite`]).
    OutputExists {
        /// The output.
        path: PathBuf,
    },
    /// The output is one of the inputs (the same device and inode, also
    /// through a hard or symbolic link); refused even when overwriting.
    SameFile {
        /// The output.
        path: PathBuf,
        /// Which input it is, e.g. "the patch".
        input: &'static str,
    },
    /// An input changed while it was read: it shrank (its mapped pages
    /// were cut off), or its length or modification time moved. Nothing
    /// was written.
    InputChanged {
        /// The input.
        path: PathBuf,
        /// What changed.
        detail: String,
    },
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Io {
                action,
                path,
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
            ApplyError::Patch(e) => write!(f, "bad patch: {e}"),
            ApplyError::WrongOld { detail } => write!(f, "OLD does not match the patch: {detail}"),
            ApplyError::Cancelled => write!(f, "cancelled"),
            ApplyError::WrongTarget { detail } => write!(f, "refusing the target: {detail}"),
            ApplyError::Journal { path, detail } => {
                write!(f, "journal {}: {detail}", path.display())
            }
            ApplyError::NotInPlace => write!(
                f,
                "the patch was not made for in-place apply (make it with diff --in-place)"
            ),
            ApplyError::OutputExists { path } => write!(
                f,
                "{} exists; refusing to replace it (ask to overwrite it)",
                path.display()
            ),
            ApplyError::SameFile { path, input } => write!(
                f,
                "{} is {input} (the same file); refusing to write over it",
                path.display()
            ),
            ApplyError::InputChanged { path, detail } => write!(
                f,
                "{} changed while it was read ({detail}); nothing was written",
                path.display()
            ),
        }
    }
}

/// The message of every variant already says its cause (as the facade's
/// `Error` does), so `source` is not given too: a reporter walking the
/// chain would print the cause twice ("...: No such file or directory (os
/// error 2): No such file or directory (os error 2)").
impl std::error::Error for ApplyError {}

impl From<oxdelta_format::Error> for ApplyError {
    fn from(e: oxdelta_format::Error) -> ApplyError {
        ApplyError::Patch(e)
    }
}

pub(crate) fn io(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> ApplyError {
    let path = path.to_path_buf();
    move |source| ApplyError::Io {
        action,
        path,
        source,
    }
}
