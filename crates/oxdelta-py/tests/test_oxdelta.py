"""Tests of the oxdelta Python package (run by .ci/run after pip install)."""

import json
import os
import pathlib
import random
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import oxdelta

REPO = pathlib.Path(__file__).resolve().parents[3]
PAIR = REPO / "testdata" / "msgpack"
OLD = (PAIR / "old").read_bytes()
NEW = (PAIR / "new").read_bytes()


def cli():
    """The oxdelta binary: $OXDELTA_CLI, or one built in the repository."""
    env = os.environ.get("OXDELTA_CLI")
    if env:
        return env
    for p in (REPO / "target" / "release" / "oxdelta", REPO / "target" / "debug" / "oxdelta"):
        if p.exists():
            return str(p)
    pytest.skip("no oxdelta binary (set OXDELTA_CLI)")


@pytest.fixture
def keys(tmp_path):
    return oxdelta.keygen(tmp_path / "release")


def test_round_trip_files_with_str_and_pathlike(tmp_path):
    patch = tmp_path / "p.oxd"
    n = oxdelta.diff(str(PAIR / "old"), PAIR / "new", patch)
    assert n == patch.stat().st_size
    assert 0 < n < len(NEW) // 4
    out = tmp_path / "new"
    assert oxdelta.apply(PAIR / "old", str(patch), out, durable=False) == len(NEW)
    assert out.read_bytes() == NEW
    oxdelta.verify(patch)
    oxdelta.verify(patch, old=PAIR / "old")


def test_outputs_are_not_replaced_unless_asked(tmp_path):
    patch = tmp_path / "p.oxd"
    oxdelta.diff(PAIR / "old", PAIR / "new", patch)
    with pytest.raises(FileExistsError):
        oxdelta.diff(PAIR / "old", PAIR / "new", patch)
    assert oxdelta.diff(PAIR / "old", PAIR / "new", patch, overwrite=True) == patch.stat().st_size
    out = tmp_path / "out"
    out.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        oxdelta.apply(PAIR / "old", patch, out)
    assert out.read_bytes() == b"keep me"
    # NEW over OLD, with overwrite.
    old = tmp_path / "old"
    shutil.copy(PAIR / "old", old)
    assert oxdelta.apply(old, patch, old, overwrite=True) == len(NEW)
    assert old.read_bytes() == NEW
    # The patch is never an output, not even through a link.
    os.symlink(patch, tmp_path / "link")
    with pytest.raises(oxdelta.Error):
        oxdelta.apply(PAIR / "old", patch, tmp_path / "link", overwrite=True)
    with pytest.raises(oxdelta.Error):
        oxdelta.diff(tmp_path / "link", PAIR / "new", patch, overwrite=True)
    assert oxdelta.info(patch)["new_bytes"] == len(NEW)


def test_round_trip_bytes_and_options():
    for codec in (None, "lz4", "zstd:3", "none"):
        patch = oxdelta.diff_bytes(OLD, NEW, codec=codec, threads=1)
        assert isinstance(patch, bytes)
        assert oxdelta.apply_bytes(OLD, patch) == NEW
    streamed = oxdelta.diff_bytes(OLD, NEW, memory=16 << 20)
    assert oxdelta.apply_bytes(OLD, streamed) == NEW
    assert oxdelta.apply_bytes(b"", oxdelta.diff_bytes(b"", b"")) == b""
    with pytest.raises(ValueError):
        oxdelta.diff_bytes(OLD, NEW, codec="gzip")
    with pytest.raises(ValueError):
        oxdelta.diff_bytes(OLD, NEW, threads=0)
    with pytest.raises(TypeError):
        oxdelta.diff_bytes("not bytes", NEW)


def test_wrong_old_raises_and_leaves_no_output(tmp_path):
    patch = tmp_path / "p.oxd"
    oxdelta.diff(PAIR / "old", PAIR / "new", patch)
    bad = bytearray(OLD)
    bad[len(bad) // 2] ^= 1
    (tmp_path / "bad").write_bytes(bad)
    out = tmp_path / "out"
    with pytest.raises(oxdelta.WrongOldError) as e:
        oxdelta.apply(tmp_path / "bad", patch, out)
    assert isinstance(e.value, oxdelta.Error)
    assert "OLD" in str(e.value)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "p.oxd"]
    with pytest.raises(oxdelta.WrongOldError):
        oxdelta.apply_bytes(NEW, patch.read_bytes())
    with pytest.raises(oxdelta.WrongOldError):
        oxdelta.verify(patch, old=tmp_path / "bad")


def test_corrupt_patch_raises():
    patch = bytearray(oxdelta.diff_bytes(OLD, NEW))
    patch[-10] ^= 1  # inside the last chunk's payload
    with pytest.raises(oxdelta.CorruptPatchError):
        oxdelta.apply_bytes(OLD, bytes(patch))
    with pytest.raises(oxdelta.CorruptPatchError):
        oxdelta.apply_bytes(OLD, b"not a patch at all")
    with pytest.raises(oxdelta.CorruptPatchError):
        oxdelta.apply_bytes(OLD, bytes(patch[:-1]))


def test_io_errors_are_oserror(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        oxdelta.diff(tmp_path / "missing", PAIR / "new", tmp_path / "p")
    assert e.value.filename is not None and "missing" in str(e.value.filename)
    with pytest.raises(OSError):
        oxdelta.info(tmp_path / "missing.oxd")
    with pytest.raises(OSError):
        oxdelta.apply(PAIR / "old", tmp_path / "missing.oxd", tmp_path / "out")


def test_signatures(tmp_path, keys):
    secret, public = keys
    assert pathlib.Path(secret).name == "release.key"
    assert oct(os.stat(secret).st_mode & 0o777) == oct(0o600)
    with pytest.raises(oxdelta.Error):
        oxdelta.keygen(tmp_path / "release")  # never overwrites
    signed = tmp_path / "signed.oxd"
    oxdelta.diff(PAIR / "old", PAIR / "new", signed, sign_key=secret)
    out = tmp_path / "out"
    oxdelta.apply(PAIR / "old", signed, out, pubkey=public)
    assert out.read_bytes() == NEW
    oxdelta.verify(signed, pubkey=public)
    i = oxdelta.info(signed)
    assert i["signed"] and len(i["key_id"]) == 16

    # Unsigned patch, a key required: missing signature.
    unsigned = tmp_path / "unsigned.oxd"
    oxdelta.diff(PAIR / "old", PAIR / "new", unsigned)
    with pytest.raises(oxdelta.SignatureError):
        oxdelta.apply(PAIR / "old", unsigned, tmp_path / "x", pubkey=public)
    with pytest.raises(oxdelta.SignatureError):
        oxdelta.verify(unsigned, pubkey=public)
    # Another key: refused.
    _, other = oxdelta.keygen(tmp_path / "other")
    with pytest.raises(oxdelta.SignatureError):
        oxdelta.apply_bytes(OLD, signed.read_bytes(), pubkey=other)
    assert not (tmp_path / "x").exists()
    # A secret key where a public one is expected.
    with pytest.raises(oxdelta.Error):
        oxdelta.verify(signed, pubkey=secret)


def test_info_equals_cli_json(tmp_path, keys):
    secret, _ = keys
    for name, kw in (("plain", {}), ("signed", {"sign_key": secret}), ("lz4", {"codec": "lz4"})):
        patch = tmp_path / f"{name}.oxd"
        oxdelta.diff(PAIR / "old", PAIR / "new", patch, **kw)
        want = json.loads(
            subprocess.run(
                [cli(), "info", "--json", str(patch)], check=True, capture_output=True, text=True
            ).stdout
        )
        assert oxdelta.info(patch) == want
    assert set(want) >= {"format_version", "new_blake3", "codecs", "shared_section", "key_id"}


def test_progress_and_exceptions_in_it(tmp_path):
    seen = []
    oxdelta.diff_bytes(OLD, NEW, progress=lambda phase, done, total: seen.append((phase, done, total)))
    assert {p for p, _, _ in seen} >= {"indexing", "matching"}
    phase, done, total = seen[-1]
    assert done == total

    patch = oxdelta.diff_bytes(OLD, NEW)
    seen.clear()
    oxdelta.apply_bytes(OLD, patch, progress=lambda *a: seen.append(a))
    assert seen[-1] == ("applying", len(NEW), len(NEW))

    class Stop(Exception):
        pass

    def stop(phase, done, total):
        raise Stop(phase)

    (tmp_path / "p").write_bytes(patch)
    with pytest.raises(Stop):
        oxdelta.apply(PAIR / "old", tmp_path / "p", tmp_path / "out", progress=stop)
    assert not (tmp_path / "out").exists()
    with pytest.raises(Stop):
        oxdelta.diff_bytes(OLD, NEW, progress=stop)


def slow_pair():
    """Inputs whose diff takes about a second whatever the matcher does:
    NEW is 8 MiB of random bytes unrelated to (empty) OLD, so the time is
    zstd level 19 over 8 MiB of literals."""
    return b"", random.Random(26).randbytes(8 << 20)


def test_gil_is_released_while_rust_works():
    old, new = slow_pair()
    done = threading.Event()
    result = {}

    def work():
        t = time.perf_counter()
        result["patch"] = oxdelta.diff_bytes(old, new)
        result["secs"] = time.perf_counter() - t
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    # With the GIL held by the diff, this loop could not run until it ends.
    ticks = 0
    while not done.is_set():
        ticks += 1
        time.sleep(0.002)
    worker.join()
    assert oxdelta.apply_bytes(old, result["patch"]) == new
    secs = result["secs"]
    assert secs > 0.05, f"diff took {secs:.3f} s: too short to tell"
    # A sleep of 2 ms costs at most a few ms even on a loaded machine.
    assert ticks >= min(20, secs / 0.02), f"{ticks} ticks in {secs:.2f} s"


def test_thread_pool_makes_patches_for_several_old_versions(tmp_path):
    rnd = random.Random(7)
    base = rnd.randbytes(1 << 20)
    olds = []
    for v in range(4):
        b = bytearray(base)
        for _ in range(50 * (v + 1)):
            at = rnd.randrange(len(b) - 8)
            b[at : at + 8] = rnd.randbytes(8)
        olds.append(bytes(b))
    with ThreadPoolExecutor(max_workers=4) as pool:
        patches = list(pool.map(lambda o: oxdelta.diff_bytes(o, base), olds))
        rebuilt = list(pool.map(lambda op: oxdelta.apply_bytes(*op), zip(olds, patches)))
    assert all(r == base for r in rebuilt)
    assert len(set(patches)) == 4
