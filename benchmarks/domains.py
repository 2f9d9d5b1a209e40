"""Sizes, balance and load times of the built-in domains, and their sample grid.

    python benchmarks/domains.py

Load times are measured twice: the first load in a fresh cache directory (generation or CSV
parsing, then the .npz write) and the cached load.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import transferguard as tg
from transferguard.report.plots import sample_grid

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, write_result


def main() -> None:
    import os

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRANSFERGUARD_CACHE"] = tmp
        for name in tg.list_domains():
            t0 = time.perf_counter()
            d = tg.load_domain(name)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            tg.load_domain(name)
            cached = time.perf_counter() - t0
            counts = d.class_counts()
            rows.append((name, len(d), "x".join(map(str, d.shape)), d.num_classes,
                         int(counts.min()), int(counts.max()), first, cached))
        domains = [tg.load_domain(n) for n in tg.list_domains()]
    grid = RESULTS.parent / "images" / "domains.png"
    grid.parent.mkdir(parents=True, exist_ok=True)
    sample_grid(domains, grid)
    lines = ["# Built-in domains", "", "Command: `python benchmarks/domains.py`", "",
             "| domain | images | shape | classes | per class (min-max) | first load (s) | "
             "cached load (s) |", "|---|---:|---|---:|---|---:|---:|"]
    for n, size, shape, k, lo, hi, first, cached in rows:
        lines.append(f"| {n} | {size} | {shape} | {k} | {lo}-{hi} | {first:.2f} | {cached:.3f} |")
        print(f"{n:12s} {size:6d} {shape:8s} first {first:.2f}s cached {cached:.3f}s")
    lines += ["", "![sample grid](../images/domains.png)", ""]
    write_result("domains", "\n".join(lines))


if __name__ == "__main__":
    main()
