"""oxdelta: binary diff and patch for big files.

Small, signed, chunked patches, applied atomically. The work runs in Rust
with the GIL released, so Python threads (and thread pools) make and apply
patches in parallel.

    import oxdelta
    oxdelta.diff("app-1.0", "app-1.1", "app.oxd", sign_key="release.key")
    oxdelta.apply("app-1.0", "app.oxd", "app-1.1", pubkey="release.pub")

Errors: oxdelta.Error and its subclasses WrongOldError, CorruptPatchError
and SignatureError; I/O errors are OSError.
"""

from ._oxdelta import (
    CorruptPatchError,
    Error,
    SignatureError,
    WrongOldError,
    __version__,
    apply,
    apply_bytes,
    diff,
    diff_bytes,
    info,
    keygen,
    verify,
)

__all__ = [
    "CorruptPatchError",
    "Error",
    "SignatureError",
    "WrongOldError",
    "__version__",
    "apply",
    "apply_bytes",
    "diff",
    "diff_bytes",
    "info",
    "keygen",
    "verify",
]
