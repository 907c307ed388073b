"""The suite benchmark: oxdelta beside HDiffPatch -m (lzma2, run
in this process through the `hdiffpatch` package), bsdiff, xdelta3 and
`zstd --patch-from` on every non-image corpus pair, with size and time
ratios, their geometric means, the worst pair, and the targets as
PASS/MISS. Run it through `benches/suite`, which builds oxdelta and finds a
python with `hdiffpatch`; see there for the environment variables.

    python3 benches/suite.py [PAIR...]
    python3 benches/suite.py --compare BEFORE.tsv AFTER.tsv

Costs: the peers' patch sizes are deterministic, so they are cached under
CORPUS/.suite-cache/ keyed by tool, settings and the pair's SHA-256s; a
cached run costs oxdelta's diff and apply plus HDiffPatch's diff per pair
(HDiffPatch's time is the time reference, re-measured each run unless
HPATCH_TIME=cached).
"""
import hashlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

PAIRS = "exe-go exe-rust so-lib tar-src exe-arm64 exe-arm64-rust wasm text-js tar-gen zip-whl".split()
PEERS = ["hdiffpatch", "bsdiff", "xdelta3", "zstd"]
LABEL = {
    "hdiffpatch": "HDiffPatch -m",
    "bsdiff": "bsdiff",
    "xdelta3": "xdelta3",
    "zstd": "zstd",
}
# The targets (size, time, memory) every matcher change is judged by.
PEER_LIMIT = 0.95  # × the smallest peer
PEER_LIMIT_ZIP = 1.0  # compressed containers (zip) are a later issue
AARCH64_LIMIT = 0.8  # × HDiffPatch -m on AArch64 executables
GEO_SIZE_LIMIT = 0.85  # geometric mean, × HDiffPatch -m
TIME_LIMIT = 0.5  # × HDiffPatch -m's diff time, per pair and as geomean
MEM_LIMIT = 6.0  # peak anonymous memory ÷ (OLD + NEW)
WORSE_LIMIT = 0.5  # % growth of a pair's patch allowed by --compare

TSV_FIELDS = [
    "pair", "old_bytes", "new_bytes", "oxdelta", "hdiffpatch", "bsdiff", "xdelta3", "zstd",
    "best_peer", "best_peer_bytes", "x_hdiffpatch", "x_best_peer", "x_bsdiff",
    "oxdelta_s", "hdiffpatch_s", "x_time", "oxdelta_anon_mib", "x_mem",
]


def env(name, default):
    v = os.environ.get(name)
    return v if v not in (None, "") else default


def fail(msg):
    sys.exit(f"suite: {msg}")


def note(msg):
    print(msg, file=sys.stderr, flush=True)


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def commas(n):
    return f"{n:,}"


def verdict(ok):
    return "PASS" if ok else "**MISS**"


class Cache:
    """One file per entry (atomic rename), so concurrent runs never clash."""

    def __init__(self, root):
        self.root = root
        os.makedirs(os.path.join(root, "sha256"), exist_ok=True)

    def _path(self, *parts):
        return os.path.join(self.root, *parts)

    def _write(self, path, text):
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    def sha256(self, path, name):
        """SHA-256 of PATH, remembered under NAME while its size, mtime and inode hold."""
        st = os.stat(path)
        stamp = f"{st.st_size} {st.st_mtime_ns} {st.st_ino}"
        entry = self._path("sha256", name)
        try:
            with open(entry) as f:
                got_stamp, digest = f.read().rsplit(" ", 1)
            if got_stamp == stamp:
                return digest.strip()
        except (OSError, ValueError):
            pass
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
        digest = h.hexdigest()
        self._write(entry, f"{stamp} {digest}")
        return digest

    def key(self, tool_id, old_sha, new_sha):
        return hashlib.sha256(f"{tool_id}\0{old_sha}\0{new_sha}".encode()).hexdigest()[:32]

    def get(self, key):
        """(patch bytes, diff seconds) or None."""
        try:
            with open(self._path(key)) as f:
                size, secs = f.read().split()[:2]
            return int(size), float(secs)
        except (OSError, ValueError):
            return None

    def put(self, key, size, secs, what):
        self._write(self._path(key), f"{size} {secs:.3f} {what}\n")


def memwatch(memwatch_bin, cmd):
    """Runs CMD under memwatch; returns (wall seconds, peak anonymous MiB)."""
    r = subprocess.run([memwatch_bin, "--", *cmd], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    line = [x for x in r.stderr.splitlines() if x.startswith("memwatch:")]
    if r.returncode != 0 or not line:
        fail(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    fields = dict(kv.split("=") for kv in line[-1].split()[1:])
    return float(fields["wall_s"]), float(fields["peak_anon_mib"])


def run_ok(cmd):
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        fail(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")


def same_file(a, b):
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def peer_commands(tool, old, new, patch, out):
    """(diff command, apply command) of an external peer."""
    if tool == "bsdiff":
        return ["bsdiff", old, new, patch], ["bspatch", old, out, patch]
    if tool == "xdelta3":
        return (["xdelta3", "-e", "-9", "-S", "djw", "-f", "-s", old, new, patch],
                ["xdelta3", "-d", "-f", "-s", old, patch, out])
    if tool == "zstd":
        return (["zstd", "-q", "-f", "-19", "--long=31", f"--patch-from={old}", new, "-o", patch],
                ["zstd", "-q", "-f", "-d", "--long=31", f"--patch-from={old}", patch, "-o", out])
    raise ValueError(tool)


def tool_version(tool):
    """A string that changes when the peer's output may change."""
    try:
        if tool == "bsdiff":
            r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "bsdiff"], capture_output=True, text=True)
            return "bsdiff " + r.stdout.strip()
        if tool == "xdelta3":
            r = subprocess.run(["xdelta3", "-V"], capture_output=True, text=True)
            return (r.stdout + r.stderr).splitlines()[0].strip() + " -e -9 -S djw"
        if tool == "zstd":
            r = subprocess.run(["zstd", "-V"], capture_output=True, text=True)
            return r.stdout.strip() + " -19 --long=31 --patch-from"
    except (OSError, IndexError):
        pass
    return tool


def is_aarch64_elf(path):
    with open(path, "rb") as f:
        head = f.read(20)
    # e_machine (offset 18) is little-endian in a little-endian ELF (EI_DATA = 1); 183 = EM_AARCH64.
    return head[:4] == b"\x7fELF" and head[5] == 1 and int.from_bytes(head[18:20], "little") == 183


def is_zip(path):
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def fmt_ratio(x):
    return "–" if x is None or math.isnan(x) else f"{x:.3f}"


def run_suite(pairs):
    import hdiffpatch  # noqa: E402 (only the suite run needs it)
    from importlib.metadata import version

    corpus = env("CORPUS", "/work/corpus")
    if not os.path.isdir(corpus):
        corpus = "corpus"
    ox = env("OXDELTA", None) or fail("OXDELTA is not set (run benches/suite)")
    ox_args = env("OXDELTA_ARGS", "").split()
    memwatch_bin = env("MEMWATCH", "/work/shared/tools/memwatch")
    runs = int(env("RUNS", "1"))
    peers_fresh = env("PEERS", "0") == "1"
    hp_time_cached = env("HPATCH_TIME", "") == "cached"
    hp_threads = int(env("HPATCH_THREADS", "2"))
    cache = Cache(env("SUITE_CACHE", os.path.join(corpus, ".suite-cache")))
    out_tsv = env("OUT_TSV", None)
    tmp = tempfile.mkdtemp(prefix="oxdelta-suite.")

    # hdiffz -m -c-lzma2-9-16m: level 9, dictionary 2^24. The package's diff
    # passes HDiffPatch's default match score (kMinSingleMatchScore_default,
    # hdiffz -m's default) and runs the match search on one thread; `threads`
    # is the lzma2 coder's (hdiffz -p-2 gives it two; output is identical).
    hp_config = hdiffpatch.Lzma2Config(level=9, window=24, threads=hp_threads)
    hp_id = f"hdiffpatch {version('hdiffpatch')} -m lzma2-9-16m"
    ids = {t: tool_version(t) for t in PEERS if t != "hdiffpatch"}
    ids["hdiffpatch"] = hp_id

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = open("/proc/loadavg").read().split()[:3]
    ox_ver = subprocess.run([ox, "--version"], capture_output=True, text=True).stdout.strip()
    meta = [
        f"suite run {started}; {os.cpu_count()} cores; load at start {' '.join(load)}",
        f"oxdelta: {ox} ({ox_ver}) args: {' '.join(ox_args) or '(none)'}",
        f"HDiffPatch: {hp_id}, lzma2 threads {hp_threads}, match search 1 thread; "
        f"time {'from cache' if hp_time_cached else 'measured now'}; RUNS={runs}",
    ]
    for m in meta:
        note(m)
        print(m + "  ")
    print()

    rows = []
    for pair in pairs:
        old, new = os.path.join(corpus, pair, "old"), os.path.join(corpus, pair, "new")
        if not (os.path.isfile(old) and os.path.isfile(new)):
            note(f"skipping {pair}: no {old} or {new}")
            continue
        old_len, new_len = os.path.getsize(old), os.path.getsize(new)
        old_sha = cache.sha256(old, f"{pair}.old")
        new_sha = cache.sha256(new, f"{pair}.new")
        row = {"pair": pair, "old_bytes": old_len, "new_bytes": new_len,
               "aarch64": is_aarch64_elf(new), "zip": is_zip(new)}

        # External peers: sizes from the cache unless PEERS=1 or missing.
        for tool in ("bsdiff", "xdelta3", "zstd"):
            key = cache.key(ids[tool], old_sha, new_sha)
            hit = None if peers_fresh else cache.get(key)
            if hit is None:
                note(f"{pair}: running {tool}")
                patch, out = os.path.join(tmp, f"{tool}.patch"), os.path.join(tmp, f"{tool}.out")
                d, a = peer_commands(tool, old, new, patch, out)
                t = time.monotonic()
                run_ok(d)
                secs = time.monotonic() - t
                run_ok(a)
                if not same_file(out, new):
                    fail(f"{tool}'s patch of {pair} does not rebuild NEW")
                hit = (os.path.getsize(patch), secs)
                cache.put(key, hit[0], secs, f"{ids[tool]} {pair}")
                os.remove(patch)
                os.remove(out)
            row[tool] = hit[0]

        # HDiffPatch: in this process, only the diff call timed.
        key = cache.key(ids["hdiffpatch"], old_sha, new_sha)
        hit = cache.get(key)
        if hit is not None and hp_time_cached and not peers_fresh:
            row["hdiffpatch"], row["hdiffpatch_s"] = hit
        else:
            with open(old, "rb") as f:
                old_data = f.read()
            with open(new, "rb") as f:
                new_data = f.read()
            times, size = [], None
            for k in range(runs):
                note(f"{pair}: HDiffPatch -m run {k + 1}/{runs}")
                t = time.perf_counter()
                patch = hdiffpatch.diff(old_data, new_data, hp_config, validate=False)
                times.append(time.perf_counter() - t)
                if size is not None and len(patch) != size:
                    fail(f"HDiffPatch's patch of {pair} changed size between runs")
                size = len(patch)
            if hdiffpatch.apply(old_data, patch) != new_data:
                fail(f"HDiffPatch's patch of {pair} does not rebuild NEW")
            del patch, old_data, new_data
            row["hdiffpatch"], row["hdiffpatch_s"] = size, statistics.median(times)
            cache.put(key, size, row["hdiffpatch_s"], f"{hp_id} {pair}")

        # oxdelta: the whole CLI command, under memwatch; then apply and compare.
        patch, out = os.path.join(tmp, "ox.patch"), os.path.join(tmp, "ox.out")
        times, mems, size = [], [], None
        for k in range(runs):
            note(f"{pair}: oxdelta run {k + 1}/{runs}")
            if os.path.exists(patch):
                os.remove(patch)  # diff replaces an existing patch only with -f
            secs, mib = memwatch(memwatch_bin, [ox, "-q", "diff", *ox_args, old, new, patch])
            times.append(secs)
            mems.append(mib)
            if size is not None and os.path.getsize(patch) != size:
                fail(f"oxdelta's patch of {pair} changed size between runs")
            size = os.path.getsize(patch)
        if os.path.exists(out):
            os.remove(out)
        run_ok([ox, "-q", "apply", old, patch, out])
        if not same_file(out, new):
            fail(f"oxdelta's patch of {pair} does not rebuild NEW")
        os.remove(patch)
        os.remove(out)
        row["oxdelta"], row["oxdelta_s"] = size, statistics.median(times)
        row["oxdelta_anon_mib"] = max(mems)

        best = min(PEERS, key=lambda t: row[t])
        row["best_peer"], row["best_peer_bytes"] = best, row[best]
        row["x_hdiffpatch"] = size / row["hdiffpatch"]
        row["x_best_peer"] = size / row[best]
        row["x_bsdiff"] = size / row["bsdiff"]
        row["x_time"] = row["oxdelta_s"] / row["hdiffpatch_s"]
        row["x_mem"] = row["oxdelta_anon_mib"] * 1048576 / (old_len + new_len)
        rows.append(row)
        note(f"{pair}: oxdelta {size} B ({row['x_hdiffpatch']:.3f} × HDiffPatch, "
             f"{row['x_best_peer']:.3f} × {LABEL[best]}), {row['oxdelta_s']:.2f} s vs {row['hdiffpatch_s']:.2f} s")
    os.rmdir(tmp)
    if not rows:
        fail("no pair ran")
    report(rows, meta)
    if out_tsv:
        write_tsv(out_tsv, rows, meta)
        note(f"wrote {out_tsv}")


TARGETS = [
    ("peer", f"≤ {PEER_LIMIT} × smallest peer (zip ≤ {PEER_LIMIT_ZIP})"),
    ("bsdiff", "≤ bsdiff"),
    ("aarch64", f"≤ {AARCH64_LIMIT} × HDiffPatch -m (AArch64 ELF)"),
    ("time", f"time ≤ {TIME_LIMIT} × HDiffPatch -m"),
    ("mem", f"memory ≤ {MEM_LIMIT:g} × (OLD+NEW)"),
]


def targets(row):
    """{target key: met?} of the per-pair targets that apply to ROW."""
    t = {
        "peer": row["x_best_peer"] <= (PEER_LIMIT_ZIP if row["zip"] else PEER_LIMIT),
        "bsdiff": row["oxdelta"] <= row["bsdiff"],
        "time": row["x_time"] <= TIME_LIMIT,
        "mem": row["x_mem"] <= MEM_LIMIT,
    }
    if row["aarch64"]:
        t["aarch64"] = row["x_hdiffpatch"] <= AARCH64_LIMIT
    return t


def report(rows, meta):
    p = print
    p("| pair | OLD+NEW MiB | oxdelta B | HDiffPatch -m B | bsdiff B | xdelta3 B | zstd B "
      "| ÷ HDiffPatch | ÷ smallest peer | ÷ bsdiff | oxdelta s | HDiffPatch s | time ÷ HDiffPatch "
      "| anon MiB | ÷ (OLD+NEW) | targets |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        missed = [key for key, _ in TARGETS if targets(r).get(key) is False]
        peers = {t: commas(r[t]) for t in PEERS}
        peers[r["best_peer"]] = f"*{peers[r['best_peer']]}*"
        p(f"| {r['pair']} | {(r['old_bytes'] + r['new_bytes']) / 1048576:.0f} | **{commas(r['oxdelta'])}** "
          f"| {peers['hdiffpatch']} | {peers['bsdiff']} | {peers['xdelta3']} | {peers['zstd']} "
          f"| {r['x_hdiffpatch']:.3f} | {r['x_best_peer']:.3f} ({LABEL[r['best_peer']]}) | {r['x_bsdiff']:.3f} "
          f"| {r['oxdelta_s']:.2f} | {r['hdiffpatch_s']:.2f} | {r['x_time']:.2f} "
          f"| {r['oxdelta_anon_mib']:.0f} | {r['x_mem']:.2f} "
          f"| {'PASS' if not missed else 'MISS ' + ', '.join(missed)} |")
    p()
    p("Italic: the smallest peer. Time: wall seconds of the diff (oxdelta: the whole CLI command; "
      "HDiffPatch: the in-process diff call only), median of RUNS; memory: oxdelta's peak anonymous RSS.")
    p()

    def worst(field):
        r = max(rows, key=lambda r: r[field])
        return f"worst {r['pair']} {r[field]:.3f}"

    g_hp = geomean([r["x_hdiffpatch"] for r in rows])
    g_peer = geomean([r["x_best_peer"] for r in rows])
    g_bs = geomean([r["x_bsdiff"] for r in rows])
    g_time = geomean([r["x_time"] for r in rows])
    p(f"- geomean size ÷ HDiffPatch -m: **{g_hp:.3f}** ({worst('x_hdiffpatch')}); "
      f"target ≤ {GEO_SIZE_LIMIT}: {verdict(g_hp <= GEO_SIZE_LIMIT)}")
    p(f"- geomean size ÷ smallest peer: **{g_peer:.3f}** ({worst('x_best_peer')})")
    p(f"- geomean size ÷ bsdiff: {g_bs:.3f} ({worst('x_bsdiff')})")
    p(f"- geomean time ÷ HDiffPatch -m: **{g_time:.3f}** ({worst('x_time')}); "
      f"target ≤ {TIME_LIMIT}: {verdict(g_time <= TIME_LIMIT)}")
    p(f"- peak memory ÷ (OLD+NEW): {worst('x_mem')}")
    p()
    p("Targets per pair:")
    p()
    p("| target | " + " | ".join(r["pair"] for r in rows) + " |")
    p("|---|" + "---|" * len(rows))
    met = total = 0
    for key, label in TARGETS:
        cells = []
        for r in rows:
            ok = targets(r).get(key)
            cells.append("–" if ok is None else verdict(ok))
            met += bool(ok)
            total += ok is not None
        p(f"| {label} | " + " | ".join(cells) + " |")
    p()
    p(f"Per-pair targets met: {met} of {total}; geomean targets: "
      f"size {verdict(g_hp <= GEO_SIZE_LIMIT)}, time {verdict(g_time <= TIME_LIMIT)}.")


def write_tsv(path, rows, meta):
    with open(path, "w") as f:
        for m in meta:
            f.write(f"# {m}\n")
        f.write("\t".join(TSV_FIELDS) + "\n")
        for r in rows:
            cells = []
            for k in TSV_FIELDS:
                v = r[k]
                cells.append(f"{v:.4f}" if isinstance(v, float) else str(v))
            f.write("\t".join(cells) + "\n")


def read_tsv(path):
    rows, header = {}, None
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            cells = line.rstrip("\n").split("\t")
            if header is None:
                header = cells
                continue
            rows[cells[0]] = dict(zip(header, cells))
    return rows


def compare(a_path, b_path):
    a, b = read_tsv(a_path), read_tsv(b_path)
    common = [p for p in a if p in b]
    if not common:
        fail("the two TSVs have no pair in common")
    print(f"before: {a_path}\nafter:  {b_path}\n")
    print("| pair | before B | after B | size change | after ÷ HDiffPatch | before s | after s | time change |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    size_q, time_q, worse = [], [], []
    for p in common:
        sa, sb = int(a[p]["oxdelta"]), int(b[p]["oxdelta"])
        ta, tb = float(a[p]["oxdelta_s"]), float(b[p]["oxdelta_s"])
        size_q.append(sb / sa)
        time_q.append(tb / ta)
        change = (sb / sa - 1) * 100
        if change > WORSE_LIMIT:
            worse.append(f"{p} {change:+.2f}%")
        print(f"| {p} | {commas(sa)} | {commas(sb)} | {change:+.2f}% | {float(b[p]['x_hdiffpatch']):.3f} "
              f"| {ta:.2f} | {tb:.2f} | {(tb / ta - 1) * 100:+.1f}% |")
    print()
    print(f"- geomean size change: {(geomean(size_q) - 1) * 100:+.2f}%; "
          f"geomean time change: {(geomean(time_q) - 1) * 100:+.1f}% (times are noisy on a shared machine)")
    for label, field in (("size ÷ HDiffPatch -m", "x_hdiffpatch"), ("size ÷ smallest peer", "x_best_peer"),
                         ("time ÷ HDiffPatch -m", "x_time")):
        ga = geomean([float(a[p][field]) for p in common])
        gb = geomean([float(b[p][field]) for p in common])
        print(f"- geomean {label}: {ga:.3f} → {gb:.3f}")
    print(f"- no pair worse by more than {WORSE_LIMIT}%: "
          + (verdict(True) if not worse else verdict(False) + " (" + ", ".join(worse) + ")"))
    only = sorted(set(a) ^ set(b))
    if only:
        print(f"- in one file only: {' '.join(only)}")
    return 0 if not worse else 1


def main(argv):
    if argv and argv[0] == "--compare":
        if len(argv) != 3:
            fail("usage: --compare BEFORE.tsv AFTER.tsv")
        return compare(argv[1], argv[2])
    if any(a.startswith("-") for a in argv):
        print(__doc__, file=sys.stderr)
        return 2
    run_suite(argv or PAIRS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
