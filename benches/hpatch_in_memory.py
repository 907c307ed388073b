"""Times HDiffPatch's in-memory apply (the `hdiffpatch` package from PyPI,
a wrapper of the HDiffPatch C++ library) the way
`benches/examples/apply_in_memory.rs` times oxdelta's: inputs read once,
then RUNS applies after WARMUP untimed ones, each timed alone around the
call only; prints the median and the fastest in milliseconds. With --diff,
first makes the patch (`hdiffz -m`-style in-memory diff, zstd level 21,
window 2^24, as REFERENCE.md's `-c-zstd-21-24`).

python3 hpatch_in_memory.py OLD PATCH NEW [RUNS] [WARMUP] [--diff]
"""
import statistics
import sys
import time

import hdiffpatch


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    old_p, patch_p, new_p = args[:3]
    runs = int(args[3]) if len(args) > 3 else 20
    warmup = int(args[4]) if len(args) > 4 else 3
    old = open(old_p, "rb").read()
    new = open(new_p, "rb").read()
    if "--diff" in sys.argv:
        t = time.perf_counter()
        patch = hdiffpatch.diff(old, new, hdiffpatch.ZStdConfig(level=21, window=24), validate=False)
        print(f"diff_s={time.perf_counter() - t:.2f} patch_bytes={len(patch)}", file=sys.stderr)
        open(patch_p, "wb").write(patch)
    patch = open(patch_p, "rb").read()
    times = []
    for i in range(warmup + runs):
        t = time.perf_counter()
        out = hdiffpatch.apply(old, patch)
        dt = (time.perf_counter() - t) * 1e3
        if out != new:
            sys.exit("the rebuilt NEW differs")
        if i >= warmup:
            times.append(dt)
    print(f"median_ms={statistics.median(times):.2f} min_ms={min(times):.2f} runs={runs}")


if __name__ == "__main__":
    main()
