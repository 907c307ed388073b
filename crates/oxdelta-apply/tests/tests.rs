//! Integration tests of the applier.

#[cfg(unix)]
mod inplace;
