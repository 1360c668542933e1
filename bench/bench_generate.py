"""Benchmark of SVE generation: compiled engine (micro._rsa) against the former numpy one.

For each class (non-overlapping / overlapping, monodisperse / polydisperse) and grid (256^2,
101^3, 48^3) it draws target volume fractions uniformly in ``[0.05, min(0.5, limit)]`` and
times :func:`micro.generate.generate_sve` (after JIT warm-up) and, on the first samples, the
numpy reference :func:`micro._rsa_numpy.reference_sve`, interleaved sample by sample in one
process so that both see the same machine load.  ``speedup`` is the ratio of the medians over
the samples timed with both.  The batched API :func:`micro.generate.generate_images` is timed
on the 2D monodisperse class.  First-call costs are measured in fresh processes: with an empty
numba cache (compilation) and again with the cache filled (loading it).

Usage::

    .venv/bin/python bench/bench_generate.py              # full table (~1 min)
    .venv/bin/python bench/bench_generate.py --quick      # fewer samples

Prints markdown tables (paste into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLASSES = {
    "non-overlapping mono": {"overlap": False, "poly": False},
    "non-overlapping poly": {"overlap": False, "poly": True},
    "overlapping mono": {"overlap": True, "poly": False},
    "overlapping poly": {"overlap": True, "poly": True},
}
GRIDS = [(2, 256, 8.0, (4.0, 12.0)), (3, 101, 5.0, (3.0, 6.0)), (3, 48, 5.0, (3.0, 6.0))]


def _kwargs(cls: dict, dim: int, size: int, radius: float, rrange: tuple) -> dict:
    kw = {"dim": dim, "size": size, "overlap": cls["overlap"]}
    if cls["poly"]:
        kw["radius_range"] = rrange
    else:
        kw["radius"] = radius
    return kw


def first_call() -> None:
    """Child process: time the import and the first generate_sve call, print JSON."""
    t0 = time.perf_counter()
    from micro.generate import generate_sve

    t1 = time.perf_counter()
    generate_sve(volume_fraction=0.3, rng=0)
    t2 = time.perf_counter()
    generate_sve(volume_fraction=0.3, rng=1)
    t3 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "first_s": t2 - t1, "second_s": t3 - t2}))


def measure_first_call() -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        runs = []
        for _ in range(2):  # empty cache (compile), then filled cache (load)
            out = subprocess.run(
                [sys.executable, __file__, "--first-call"],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                check=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return runs[0], runs[1]


def time_case(cls: dict, grid: tuple, n_new: int, n_old: int, seed: int) -> dict:
    from micro._rsa_numpy import reference_sve
    from micro.generate import generate_sve, max_volume_fraction

    dim, size, radius, rrange = grid
    kw = _kwargs(cls, dim, size, radius, rrange)
    limit = max_volume_fraction(dim, overlap=cls["overlap"], radius_range=kw.get("radius_range"))
    vfs = np.random.default_rng(seed).uniform(0.05, min(0.5, limit), n_new)
    generate_sve(volume_fraction=0.3, rng=0, **kw)  # warm-up (compiled already, caches)
    new, old = [], []
    for i, vf in enumerate(vfs):
        t = time.perf_counter()
        sve = generate_sve(volume_fraction=vf, rng=i, **kw)
        new.append(time.perf_counter() - t)
        assert abs(sve.volume_fraction - vf) <= 0.005
        if i < n_old:
            t = time.perf_counter()
            reference_sve(volume_fraction=vf, rng=i, **kw)
            old.append(time.perf_counter() - t)
    new_ms, old_ms = 1e3 * np.array(new), 1e3 * np.array(old)
    speedup = float(np.median(old_ms) / np.median(new_ms[: len(old_ms)])) if n_old else float("nan")
    return {
        "new_ms": float(np.median(new_ms)),
        "new_p90_ms": float(np.percentile(new_ms, 90)),
        "old_ms": float(np.median(old_ms)) if n_old else float("nan"),
        "speedup": speedup,
        "n_new": n_new,
        "n_old": n_old,
    }


def time_batch(n: int, seed: int) -> tuple[float, float]:
    """ms per SVE of generate_images and of a generate_sve loop on the same targets."""
    from micro.generate import generate_images, generate_sve, spawn_seeds

    vfs = np.random.default_rng(seed).uniform(0.05, 0.5, n)
    seeds = spawn_seeds(seed, n)
    generate_images(vfs[:2], rngs=list(seeds[:2]))  # warm-up
    t = time.perf_counter()
    images = generate_images(vfs, rngs=list(seeds))
    batch = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(n):
        generate_sve(volume_fraction=vfs[i], rng=int(seeds[i]))
    loop = time.perf_counter() - t
    assert images.shape == (n, 256, 256)
    return 1e3 * batch / n, 1e3 * loop / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--first-call", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.first_call:
        first_call()
        return
    cold, warm = measure_first_call()
    scale = 0.25 if args.quick else 1.0
    counts = {256: (400, 40), 101: (40, 5), 48: (200, 20)}
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared)")
    print()
    print("| class | dim | size | new ms/SVE (median) | new p90 | old ms/SVE (median) | speedup |")
    print("|---|---|---|---|---|---|---|")
    for name, cls in CLASSES.items():
        for grid in GRIDS:
            n_new, n_old = (max(2, int(c * scale)) for c in counts[grid[1]])
            r = time_case(cls, grid, n_new, n_old, args.seed)
            print(
                f"| {name} | {grid[0]} | {grid[1]} | {r['new_ms']:.3f} | {r['new_p90_ms']:.3f} "
                f"| {r['old_ms']:.2f} | {r['speedup']:.0f}x |",
                flush=True,
            )
    batch, loop = time_batch(max(20, int(400 * scale)), args.seed)
    print()
    print("| 2D 256^2 non-overlapping mono | ms/SVE |")
    print("|---|---|")
    print(f"| generate_images (one call) | {batch:.3f} |")
    print(f"| generate_sve loop | {loop:.3f} |")
    print()
    print("| first call in a fresh process | import micro.generate s | first SVE s | next SVE s |")
    print("|---|---|---|---|")
    for label, r in (("empty numba cache (compile)", cold), ("filled numba cache", warm)):
        print(f"| {label} | {r['import_s']:.2f} | {r['first_s']:.2f} | {r['second_s']:.4f} |")


if __name__ == "__main__":
    main()
