#!/usr/bin/env python3
"""Plots the rows of `benches/scale` (its TSV=FILE output) as an SVG.

Three panels against apparent size (log scale; "plain" is the image pair
itself, at its own size), one line per --memory budget: diff CPU seconds
(user+sys: on a shared machine wall seconds are noise), patch MB, and
apply CPU seconds. No dependencies: the SVG is written by hand.

Usage: benches/scale-plot.py ROWS.tsv OUT.svg [PLAIN_GIB]   (PLAIN_GIB: the
image's apparent size, default 0.5)
"""

import csv
import math
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def load(path, plain_gib):
    rows = []
    with open(path, encoding="utf-8") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            gib = plain_gib if r["size_gib"] == "plain" else float(r["size_gib"])
            rows.append((gib, r))
    return rows


def panel(out, x0, y0, w, h, title, series, xs, ylabel):
    """series: [(label, colour, [(x, y)])]; xs: the x ticks (GiB)."""
    ymax = max((y for _, _, pts in series for _, y in pts), default=1.0) * 1.15
    lx = [math.log2(x) for x in xs]
    xmin, xmax = min(lx) - 0.3, max(lx) + 0.3

    def px(x):
        return x0 + 50 + (math.log2(x) - xmin) / (xmax - xmin) * (w - 60)

    def py(y):
        return y0 + h - 30 - y / ymax * (h - 60)

    out.append(f'<text x="{x0 + w / 2}" y="{y0 + 16}" text-anchor="middle" font-weight="bold">{title}</text>')
    out.append(f'<line x1="{x0 + 50}" y1="{py(0)}" x2="{x0 + w - 10}" y2="{py(0)}" stroke="black"/>')
    out.append(f'<line x1="{x0 + 50}" y1="{py(0)}" x2="{x0 + 50}" y2="{y0 + 30}" stroke="black"/>')
    for x in xs:
        label = "plain" if x < 1 else f"{x:g} GiB"
        out.append(f'<text x="{px(x)}" y="{py(0) + 16}" text-anchor="middle" font-size="11">{label}</text>')
    for k in range(5):
        y = ymax / 1.15 * k / 4
        out.append(f'<text x="{x0 + 45}" y="{py(y) + 4}" text-anchor="end" font-size="11">{y:.3g}</text>')
        out.append(f'<line x1="{x0 + 50}" y1="{py(y)}" x2="{x0 + w - 10}" y2="{py(y)}" stroke="#ddd"/>')
    out.append(f'<text x="{x0 + 12}" y="{y0 + h / 2}" transform="rotate(-90 {x0 + 12} {y0 + h / 2})" text-anchor="middle" font-size="11">{ylabel}</text>')
    for i, (label, colour, pts) in enumerate(series):
        pts = sorted(pts)
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        out.append(f'<text x="{x0 + 60}" y="{y0 + 36 + 14 * i}" fill="{colour}" font-size="12">{label}</text>')


def main():
    rows = load(sys.argv[1], float(sys.argv[3]) if len(sys.argv) > 3 else 0.5)
    budgets = []
    for _, r in rows:
        if r["budget"] not in budgets:
            budgets.append(r["budget"])
    xs = sorted({g for g, _ in rows})
    def series(col, scale=1.0):
        return [
            (f"--memory {b}", COLOURS[i % len(COLOURS)],
             [(g, float(r[col]) * scale) for g, r in rows if r["budget"] == b and r[col] != "-"])
            for i, b in enumerate(budgets)
        ]

    applies = [s for s in series("apply_cpu_s") if s[2]]
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="340" font-family="sans-serif">',
           '<rect width="100%" height="100%" fill="white"/>']
    panel(out, 0, 0, 400, 340, "diff: CPU seconds", series("cpu_s"), xs, "seconds")
    panel(out, 400, 0, 400, 340, "patch: MB", series("patch", 1e-6), xs, "MB")
    panel(out, 800, 0, 400, 340, "apply: CPU seconds", applies, xs, "seconds")
    out.append("</svg>")
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
