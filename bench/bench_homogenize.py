"""Benchmark of the DOLFINx homogenization: seconds per SVE and peak memory, one core.

Each size runs in its own process (so that peak memory is that size's own), on random
non-overlapping monodisperse SVEs from :func:`micro.generate_sve` with volume fractions spread
over the range the generator reaches. Times are per SVE after the one-off set-up (mesh, spaces,
compiled forms, element stencil, compiled multigrid kernels), all load cases included.

With several solvers (``--solver amg,mg``) one process builds a Homogenizer per solver and
times them interleaved on the same SVEs (the order alternating from SVE to SVE), so that a
shared, noisy machine affects both alike; it also reports the largest difference between the
solvers' tensors.  The multigrid (``mg``) is 2D only: 3D sizes run the other solvers.

Usage::

    .venv/bin/python bench/bench_homogenize.py                 # 2D 256^2, 3D 32^3, 64^3, 101^3
    .venv/bin/python bench/bench_homogenize.py --quick         # small sizes only
    .venv/bin/python bench/bench_homogenize.py --dims 2 --solver amg,mg --samples 40

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
SOLVERS = ("amg", "mg")


def worker(dim: int, size: int, radius: float, samples: int, solvers: list[str]) -> list[dict]:
    import numpy as np

    from micro.generate import generate_sve
    from micro.homogenization import Homogenizer

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
    homogenizers, setup = {}, {}
    for name in solvers:
        t0 = time.perf_counter()
        homogenizers[name] = Homogenizer((size,) * dim, solver=name)
        setup[name] = time.perf_counter() - t0
    seconds = {name: [] for name in solvers}
    iterations = {name: [] for name in solvers}
    labels = {name: [] for name in solvers}
    for k, image in enumerate(images):
        mu = np.where(image, 250.0, 1.0)
        order = solvers if k % 2 == 0 else solvers[::-1]
        for name in order:
            t = time.perf_counter()
            sol = homogenizers[name].solve_mu(mu)
            seconds[name].append(time.perf_counter() - t)
            iterations[name].append(sol.iterations.mean())
            labels[name].append(sol.mu_eff)
    ref = np.array(labels[solvers[0]])
    scale = np.abs(ref).max(axis=(1, 2), keepdims=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    rows = []
    for name in solvers:
        got = np.array(labels[name])
        rows.append(
            {
                "dim": dim,
                "size": size,
                "samples": samples,
                "solver": name,
                "setup_s": setup[name],
                "median_s": float(np.median(seconds[name])),
                "max_s": float(np.max(seconds[name])),
                "cg_iterations": float(np.mean(iterations[name])),
                "cg_iterations_max": float(np.max(iterations[name])),
                "label_diff": float(np.max(np.abs(got - ref) / scale)),
                "peak_rss_gib": rss,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument(
        "--solver",
        default="amg,mg",
        help="comma-separated solvers to time side by side (amg, mg); default: amg,mg",
    )
    parser.add_argument("--dims", default="2,3", help="dimensions to run (default: 2,3)")
    parser.add_argument("--samples", type=int, help="SVEs per size (default: per case)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        dim, size, radius, samples = (int(v) for v in args.worker[:4])
        print(json.dumps(worker(dim, size, radius, samples, args.worker[4].split(","))))
        return
    solvers = [s.strip() for s in args.solver.split(",") if s.strip()]
    if not solvers or any(s not in SOLVERS for s in solvers):
        parser.error(f"--solver takes a comma-separated subset of {', '.join(SOLVERS)}")
    dims = {int(d) for d in args.dims.split(",")}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rows = []
    for dim, size, radius, samples in QUICK if args.quick else CASES:
        if dim not in dims:
            continue
        use = [s for s in solvers if dim == 2 or s != "mg"]
        if not use:
            continue
        samples = args.samples or samples
        cmd = [sys.executable, __file__, "--worker", str(dim), str(size), str(radius)]
        cmd += [str(samples), ",".join(use)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        rows.extend(json.loads(out.strip().splitlines()[-1]))
        summary = ", ".join(f"{r['solver']} {r['median_s']:.3f}" for r in rows[-len(use) :])
        print(f"# done {dim}D {size}: s/SVE {summary}", file=sys.stderr)
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, one used"
    )
    print(f"Date: {time.strftime('%Y-%m-%d')}\n")
    print(
        "| dim | size | SVEs | solver | set-up s | s per SVE (median) | max | CG its/case "
        "(max) | Δ label vs first | peak RSS GiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['dim']} | {r['size']} | {r['samples']} | {r['solver']} | {r['setup_s']:.2f} | "
            f"{r['median_s']:.3f} | {r['max_s']:.3f} | {r['cg_iterations']:.1f} "
            f"({r['cg_iterations_max']:.0f}) | {r['label_diff']:.1e} | {r['peak_rss_gib']:.2f} |"
        )


if __name__ == "__main__":
    main()
