"""Benchmark of the three boundary conditions (issue 21): seconds per image, one core.

One process per case builds a :class:`micro.homogenization.Homogenizer` per boundary condition
(periodic, uniform Dirichlet, uniform Neumann) and times them interleaved on the same random
non-overlapping monodisperse SVEs (mu = 1 / 250), so that a shared machine affects all alike.
Times are per image after the one-off set-up, all load cases included.  It also checks the
order UNBC <= PBC <= UDBC on every image.

Usage::

    .venv/bin/python bench/bench_apparent.py                  # 2D 256^2 (20 images), 3D 101^3 (1)
    .venv/bin/python bench/bench_apparent.py --case 2,256,20  # dim,size,samples

Prints one markdown table row per condition (paste into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CASES = [(2, 256, 20), (3, 101, 1)]
BCS = ("periodic", "dirichlet", "neumann")


def worker(dim: int, size: int, samples: int) -> list[dict]:
    import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

    import numpy as np

    from micro.apparent import order_margins
    from micro.generate import generate_sve
    from micro.homogenization import Homogenizer

    rng = np.random.default_rng(2024)
    images = [
        generate_sve(
            dim=dim,
            size=size,
            volume_fraction=float(rng.uniform(0.1, 0.5 if dim == 2 else 0.25)),
            rng=rng,
        ).image
        for _ in range(samples)
    ]
    homs, setup = {}, {}
    for bc in BCS:
        t0 = time.perf_counter()
        homs[bc] = Homogenizer(images[0].shape, bc=bc)
        setup[bc] = time.perf_counter() - t0
    secs = {bc: [] for bc in BCS}
    its = {bc: [] for bc in BCS}
    ordered = 0
    for k, image in enumerate(images):
        mu = np.where(image, 250.0, 1.0)
        out = {}
        order = BCS if k % 2 == 0 else BCS[::-1]
        for bc in order:
            sol = homs[bc].solve_mu(mu)
            out[bc] = sol.mu_eff
            secs[bc].append(sol.seconds)
            its[bc].append(float(np.max(sol.iterations)))
        ordered += (
            order_margins(out["neumann"], out["periodic"]) >= -1e-8
            and order_margins(out["periodic"], out["dirichlet"]) >= -1e-8
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return [
        {
            "dim": dim,
            "size": size,
            "samples": samples,
            "bc": bc,
            "solver": homs[bc].solver,
            "setup": setup[bc],
            "median": float(np.median(secs[bc])),
            "max": float(np.max(secs[bc])),
            "its": float(np.max(its[bc])),
            "ordered": f"{ordered}/{samples}",
            "rss_gib": rss,
        }
        for bc in BCS
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", default=None, help="dim,size,samples")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        d, n, s = (int(v) for v in args.worker.split(","))
        print(json.dumps(worker(d, n, s)))
        return
    cases = [tuple(int(v) for v in c.split(",")) for c in args.case] if args.case else CASES
    print(
        "| dim | size | images | bc | solver | set-up s | s per image (median) | max | "
        "CG its (max) | UNBC <= PBC <= UDBC | peak RSS GiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for d, n, s in cases:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", f"{d},{n},{s}"],
            capture_output=True,
            text=True,
            check=True,
        )
        for r in json.loads(proc.stdout.strip().splitlines()[-1]):
            print(
                f"| {r['dim']} | {r['size']} | {r['samples']} | {r['bc']} | {r['solver']} | "
                f"{r['setup']:.2f} | {r['median']:.3f} | {r['max']:.3f} | {r['its']:.0f} | "
                f"{r['ordered']} | {r['rss_gib']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
