"""Type stubs of the oxdelta package (the functions live in oxdelta._oxdelta)."""

import os
import pathlib
from typing import Callable, Optional, TypedDict, Union

StrPath = Union[str, "os.PathLike[str]"]
"""A path: str or os.PathLike."""

Progress = Callable[[str, int, int], object]
"""progress(phase, done, total): phase is "hashing", "indexing", "matching",
"verifying" or "applying"; called from worker threads, one call at a time."""

__version__: str

class Error(Exception):
    """Base class of oxdelta's errors (I/O errors are OSError)."""

class WrongOldError(Error):
    """OLD is not the file the patch was made for."""

class CorruptPatchError(Error):
    """The patch is malformed, damaged, or not an oxdelta patch."""

class SignatureError(Error):
    """The signature is missing (with a trusted key), from another key, or does not verify."""

class SharedSection(TypedDict):
    ctrl_raw: int
    ctrl_stored: int
    lit_raw: int
    lit_stored: int
    gap_max: int
    margin: int

class Info(TypedDict):
    """The fields of `oxdelta info --json`."""

    format_version: int
    features_version: int
    head_bytes: int
    signature_bytes: int
    patch_bytes: int
    old_bytes: int
    old_blake3: str
    new_bytes: int
    new_blake3: str
    file_hash: str
    engine: str
    codecs: list[str]
    diff_filters: list[str]
    add_modes: list[str]
    operand_split_chunks: int
    ctrl_split_chunks: int
    x86_literal_chunks: int
    shared_chunks: int
    shared_section: Optional[SharedSection]
    chunks: int
    zero_chunks: int
    largest_chunk_bytes: int
    in_place: bool
    signed: bool
    key_id: Optional[str]

def diff(
    old: StrPath,
    new: StrPath,
    patch: StrPath,
    *,
    memory: Optional[int] = None,
    codec: Optional[str] = None,
    threads: Optional[int] = None,
    sign_key: Optional[StrPath] = None,
    progress: Optional[Progress] = None,
    overwrite: bool = False,
) -> int:
    """Make a patch from file old to file new, written to patch atomically.

    Returns the patch's length. memory: streaming engine within this many
    bytes; codec: "lzma2" (default: zstd:19, and LZMA2 for chunks where it
    is 3% smaller), "zstd", "zstd:LEVEL", "lz4" or "none"; sign_key:
    secret key file from keygen(). overwrite: replace an existing patch
    (else FileExistsError); patch is never old or new (oxdelta.Error).
    """

def diff_bytes(
    old: bytes,
    new: bytes,
    *,
    memory: Optional[int] = None,
    codec: Optional[str] = None,
    threads: Optional[int] = None,
    sign_key: Optional[StrPath] = None,
    progress: Optional[Progress] = None,
) -> bytes:
    """Make a patch from old to new in memory and return it."""

def apply(
    old: StrPath,
    patch: StrPath,
    out: StrPath,
    *,
    pubkey: Optional[StrPath] = None,
    durable: bool = True,
    threads: Optional[int] = None,
    progress: Optional[Progress] = None,
    overwrite: bool = False,
) -> int:
    """Apply patch to file old, writing NEW to out atomically; returns NEW's length.

    pubkey: public key file; the patch must be signed by that key.
    overwrite: replace an existing out (else FileExistsError), which may then
    be old itself; out is never patch (oxdelta.Error).
    """

def apply_bytes(
    old: bytes,
    patch: bytes,
    *,
    pubkey: Optional[StrPath] = None,
    threads: Optional[int] = None,
    progress: Optional[Progress] = None,
) -> bytes:
    """Apply patch to old in memory and return NEW."""

def verify(
    patch: StrPath,
    *,
    pubkey: Optional[StrPath] = None,
    old: Optional[StrPath] = None,
) -> None:
    """Check a patch (and with old, that it rebuilds the NEW it names); raise on failure."""

def info(patch: StrPath) -> Info:
    """What a patch holds: the fields of `oxdelta info --json`."""

def keygen(name: StrPath) -> tuple[pathlib.Path, pathlib.Path]:
    """Write NAME.key (secret, mode 0600) and NAME.pub; return their paths."""
