"""Benchmark: SVE generation on rectangular cells beside the square one (issue 21).

Times :func:`micro.generate.generate_sve` (after JIT warm-up) per SVE for 256x256, 256x128 and
128x256 cells, interleaved sample by sample on the same targets (uniform in [0.05, 0.5]) so
that all shapes see the same machine load, for the monodisperse classes (radius 8 px).

Usage::

    .venv/bin/python bench/bench_generate_rect.py            # 200 SVEs per shape and class
    .venv/bin/python bench/bench_generate_rect.py -n 50

Prints a markdown table (paste into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

__all__ = ["main"]

SHAPES = ((256, 256), (256, 128), (128, 256))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    from micro.generate import generate_sve

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=200, help="SVEs per shape and class (default 200)")
    args = p.parse_args(argv)
    generate_sve(size=(64, 32), volume_fraction=0.3, rng=0)  # load the compiled kernels
    targets = np.random.default_rng(21).uniform(0.05, 0.5, args.n)
    print(f"load average {os.getloadavg()[0]:.1f}, {args.n} SVEs per row, radius 8 px\n")
    print("| class | cell | pixels | ms per SVE (median) | p90 | ms per 10^4 px (median) |")
    print("|---|---|---|---|---|---|")
    for overlap in (False, True):
        times = {shape: [] for shape in SHAPES}
        for i, target in enumerate(targets):
            for shape in SHAPES:
                t0 = time.perf_counter()
                generate_sve(size=shape, volume_fraction=target, overlap=overlap, rng=i)
                times[shape].append(time.perf_counter() - t0)
        name = "overlapping mono" if overlap else "non-overlapping mono"
        for shape, t in times.items():
            ms = 1e3 * np.asarray(t)
            pixels = shape[0] * shape[1]
            print(
                f"| {name} | {shape[0]}x{shape[1]} | {pixels} | {np.median(ms):.3f} | "
                f"{np.percentile(ms, 90):.3f} | {np.median(ms) / pixels * 1e4:.4f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
