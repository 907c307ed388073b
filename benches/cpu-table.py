"""Patch sizes and diff CPU time of oxdelta and the suite's peers on some
pairs, as a Markdown table: for pairs not in the suite (the platform
hold-out pairs of benches/holdout-platforms) and for a loaded machine,
where CPU time (user + sys of the diff process and its threads) means
something and wall time does not.

    python3 benches/cpu-table.py DIR PAIR...      (pairs as DIR/PAIR/{old,new})

Environment: OXDELTA (binary, default target/release/oxdelta), OXDELTA_ARGS
(extra `diff` arguments), TOOLS (default "oxdelta hdiffpatch bsdiff xdelta3
zstd"). Peers as in benches/suite.py: HDiffPatch -m lzma2 level 9, 16 MiB
dictionary (python `hdiffpatch`, in this process, its CPU time from
`time.process_time`), bsdiff, `xdelta3 -e -9 -S djw`, `zstd -19 --long=31
--patch-from`. Every patch is applied and compared with NEW.
"""
import filecmp
import os
import subprocess
import sys
import tempfile
import time


def cpu_run(cmd):
    """Runs cmd; returns its user + sys seconds (children included)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    if p.returncode != 0:
        sys.exit(f"cpu-table: {cmd[0]} failed ({p.returncode}): {err}")
    return ru.ru_utime + ru.ru_stime


def commands(tool, old, new, patch, out, ox, ox_args):
    if tool == "oxdelta":
        return [ox, "-q", "diff", *ox_args, old, new, patch], [ox, "-q", "apply", old, patch, out]
    if tool == "bsdiff":
        return ["bsdiff", old, new, patch], ["bspatch", old, out, patch]
    if tool == "xdelta3":
        return (["xdelta3", "-e", "-9", "-S", "djw", "-f", "-s", old, new, patch],
                ["xdelta3", "-d", "-f", "-s", old, patch, out])
    if tool == "zstd":
        return (["zstd", "-q", "-f", "-19", "--long=31", f"--patch-from={old}", new, "-o", patch],
                ["zstd", "-q", "-f", "-d", "--long=31", f"--patch-from={old}", patch, "-o", out])
    raise ValueError(tool)


def hdiffpatch_run(old, new):
    import hdiffpatch

    cfg = hdiffpatch.Lzma2Config(level=9, window=24, threads=1)
    old_data, new_data = open(old, "rb").read(), open(new, "rb").read()
    t = time.process_time()
    patch = hdiffpatch.diff(old_data, new_data, cfg, validate=False)
    secs = time.process_time() - t
    if hdiffpatch.apply(old_data, patch) != new_data:
        sys.exit(f"cpu-table: HDiffPatch's patch of {new} does not rebuild it")
    return len(patch), secs


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    base, pairs = sys.argv[1], sys.argv[2:]
    ox = os.environ.get("OXDELTA") or "target/release/oxdelta"
    ox_args = os.environ.get("OXDELTA_ARGS", "").split()
    tools = os.environ.get("TOOLS", "oxdelta hdiffpatch bsdiff xdelta3 zstd").split()
    tmp = tempfile.mkdtemp(prefix="oxdelta-cpu-table.")
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print(f"oxdelta {ox} {' '.join(ox_args)}; load at start {load}\n")
    head = "| pair | old B | " + " | ".join(f"{t} B (CPU s)" for t in tools)
    print(head + " | oxdelta ÷ best peer |")
    print("|---|---:|" + "---:|" * len(tools) + "---:|")
    for pair in pairs:
        old, new = os.path.join(base, pair, "old"), os.path.join(base, pair, "new")
        res = {}
        for tool in tools:
            print(f"{pair}: {tool}", file=sys.stderr, flush=True)
            if tool == "hdiffpatch":
                res[tool] = hdiffpatch_run(old, new)
                continue
            patch, out = os.path.join(tmp, "p"), os.path.join(tmp, "o")
            for f in (patch, out):
                if os.path.exists(f):
                    os.remove(f)
            d, a = commands(tool, old, new, patch, out, ox, ox_args)
            secs = cpu_run(d)
            cpu_run(a)
            if not filecmp.cmp(out, new, shallow=False):
                sys.exit(f"cpu-table: {tool}'s patch of {pair} does not rebuild NEW")
            res[tool] = (os.path.getsize(patch), secs)
        cells = " | ".join(f"{res[t][0]:,} ({res[t][1]:.1f})" for t in tools)
        peers = [res[t][0] for t in tools if t != "oxdelta"]
        ratio = f"{res['oxdelta'][0] / min(peers):.3f}" if "oxdelta" in res and peers else "–"
        print(f"| {pair} | {os.path.getsize(old):,} | {cells} | {ratio} |", flush=True)
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
