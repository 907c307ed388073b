//! Errors of the format layer.

use std::fmt;

/// What went wrong while decoding or checking a patch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended before a field was complete.
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes that were left.
        available: u64,
    },
    /// A field had a value the format does not allow.
    Invalid {
        /// The field.
        what: &'static str,
        /// What the format expects, in words.
        expected: String,
        /// What was found.
        found: String,
    },
    /// The first bytes are not an oxdelta patch.
    BadMagic,
    /// The patch uses a format version this build cannot read.
    UnsupportedVersion(u16),
    /// A hash did not match the bytes it covers.
    HashMismatch {
        /// What the hash covers.
        what: String,
    },
    /// The signature is missing, does not verify, or is from another key.
    Signature(String),
    /// A codec failed to decode a stream.
    Codec(String),
}

/// An error with the byte offset (into the patch, or into a chunk's stream)
/// at which it was detected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    offset: Option<u64>,
}

impl Error {
    /// An error of `kind` detected at byte `offset`.
    pub fn at(kind: ErrorKind, offset: u64) -> Error {
        Error {
            kind,
            offset: Some(offset),
        }
    }

    /// An error of `kind` with no meaningful offset.
    pub fn new(kind: ErrorKind) -> Error {
        Error { kind, offset: None }
    }

    /// Shorthand for [`ErrorKind::Invalid`].
    pub fn invalid(
        what: &'static str,
        expected: impl Into<String>,
        found: impl fmt::Display,
        offset: u64,
    ) -> Error {
        Error::at(
            ErrorKind::Invalid {
                what,
                expected: expected.into(),
                found: found.to_string(),
            },
            offset,
        )
    }

    /// The kind of error.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The byte offset at which it was detected, when there is one.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The same error, re-based by `base` bytes (used when a sub-parser's
    /// offsets are relative to a section).
    pub fn rebase(mut self, base: u64) -> Error {
        self.offset = self.offset.map(|o| o.saturating_add(base));
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Truncated {
                what,
                needed,
                available,
            } => write!(
                f,
                "patch truncated: {what} needs {needed} bytes, {available} left"
            )?,
            ErrorKind::Invalid {
                what,
                expected,
                found,
            } => write!(f, "invalid {what}: expected {expected}, found {found}")?,
            ErrorKind::BadMagic => write!(f, "not an oxdelta patch (bad magic bytes)")?,
            ErrorKind::UnsupportedVersion(v) => write!(
                f,
                "unsupported patch format version {v} (this build reads versions 1 to {}; \
                 a newer oxdelta made this patch)",
                crate::FORMAT_VERSION
            )?,
            ErrorKind::HashMismatch { what } => write!(f, "hash mismatch: {what}")?,
            ErrorKind::Signature(m) => write!(f, "signature: {m}")?,
            ErrorKind::Codec(m) => write!(f, "codec: {m}")?,
        }
        if let Some(o) = self.offset {
            write!(f, " (at byte {o})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
