"""Benchmark of the DOLFINx homogenization: seconds per SVE and peak memory, one core.

Each size runs in its own process (so that peak memory is that size's own), on random
non-overlapping monodisperse SVEs from :func:`micro.generate_sve` with volume fractions spread
over the range the generator reaches. Times are per SVE after the one-off set-up (mesh, spaces,
compiled forms, element stencil), all load cases included.

Usage::

    .venv/bin/python bench/bench_homogenize.py                 # 2D 256^2, 3D 32^3, 64^3, 101^3
    .venv/bin/python bench/bench_homogenize.py --quick         # small sizes only

Prints a markdown table (paste into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

CASES = [  # (dim, size, radius, samples)
    (2, 256, 8, 20),
    (3, 32, 3, 3),
    (3, 64, 5, 2),
    (3, 101, 5, 2),
]
QUICK = [(2, 256, 8, 5), (3, 32, 3, 2)]


def worker(dim: int, size: int, radius: float, samples: int) -> dict:
    import numpy as np

    from micro.generate import generate_sve
    from micro.homogenize import Homogenizer

    rng = np.random.default_rng(2024)
    vf_max = 0.5 if dim == 2 else 0.25
    images = [
        generate_sve(
            dim=dim,
            size=size,
            radius=radius,
            volume_fraction=float(rng.uniform(0.1, vf_max)),
            rng=rng,
        ).image
        for _ in range(samples)
    ]
    t0 = time.perf_counter()
    h = Homogenizer((size,) * dim)
    setup = time.perf_counter() - t0
    seconds, iterations = [], []
    for image in images:
        t = time.perf_counter()
        sol = h.solve_mu(np.where(image, 250.0, 1.0))
        seconds.append(time.perf_counter() - t)
        iterations.append(int(sol.iterations.mean()))
    return {
        "dim": dim,
        "size": size,
        "samples": samples,
        "setup_s": setup,
        "median_s": float(np.median(seconds)),
        "max_s": float(np.max(seconds)),
        "cg_iterations": float(np.mean(iterations)),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--worker", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rows = []
    for dim, size, radius, samples in QUICK if args.quick else CASES:
        cmd = [sys.executable, __file__, "--worker", str(dim), str(size), str(radius), str(samples)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"# done {dim}D {size}: {rows[-1]['median_s']:.3f} s/SVE", file=sys.stderr)
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, one used"
    )
    print(f"Date: {time.strftime('%Y-%m-%d')}\n")
    print(
        "| dim | size | SVEs | set-up s | s per SVE (median) | max | CG its/case | peak RSS GiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['dim']} | {r['size']} | {r['samples']} | {r['setup_s']:.2f} | "
            f"{r['median_s']:.3f} | {r['max_s']:.3f} | {r['cg_iterations']:.0f} | "
            f"{r['peak_rss_gib']:.2f} |"
        )


if __name__ == "__main__":
    main()
