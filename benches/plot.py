#!/usr/bin/env python3
"""Plots patch size against diff time from docs/BENCHMARKS.md.

One panel per corpus pair; each tool is a point (log-log), oxdelta in bold.
Reads the per-pair tables that `benches/compare` writes (sections headed
`## PAIR: ...` with rows `| tool | patch bytes | diff s | ...`) and writes a
PNG (default docs/BENCHMARKS.png).

Usage: benches/plot.py [BENCHMARKS.md] [OUT.png]     (needs matplotlib)
"""

import math
import re
import sys


def parse(path):
    """Returns {pair: [(tool, patch_bytes, diff_seconds), ...]}."""
    pairs, pair, cols = {}, None, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^## ([\w.-]+):", line)
            if m:
                pair, cols = m.group(1), None
                pairs.setdefault(pair, [])
                continue
            if line.startswith("#"):
                # Any other heading ends the pair's section (e.g. the
                # streaming engine's, which has tables of its own).
                pair, cols = None, None
                continue
            if pair is None or not line.startswith("|"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cols is None:
                if "tool" in cells and "patch bytes" in cells:
                    cols = cells
                continue
            if set(cells[0]) <= set("-: "):
                continue
            row = dict(zip(cols, cells))
            try:
                size = int(row["patch bytes"].replace(",", ""))
                secs = float(row.get("diff s", "nan"))
            except (KeyError, ValueError):
                continue
            tool = row["tool"].replace("*", "")
            pairs[pair].append((tool, size, secs))
    return {p: rows for p, rows in pairs.items() if rows}


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "docs/BENCHMARKS.md"
    out = sys.argv[2] if len(sys.argv) > 2 else "docs/BENCHMARKS.png"
    data = parse(src)
    if not data:
        sys.exit(f"no benchmark tables found in {src}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    n = len(data)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
    for ax, (pair, points) in zip(axes.flat, data.items()):
        for tool, size, secs in points:
            ours = tool.startswith("oxdelta")
            ax.scatter(
                secs,
                size / 1e6,
                s=90 if ours else 40,
                marker="*" if ours else "o",
                color="tab:red" if ours else "tab:blue",
                zorder=3,
            )
            ax.annotate(
                tool,
                (secs, size / 1e6),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=8,
                fontweight="bold" if ours else "normal",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.margins(0.3)
        ax.set_title(pair)
        ax.set_xlabel("diff time, s (log)")
        ax.set_ylabel("patch size, MB (log)")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Patch size against diff time (lower left is better)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
