"""Benchmark of dataset generation: seconds per SVE, serial and under ``mpirun -n K``.

Each rank count writes its own fresh dataset file (same parameters, same base seed) in its own
process tree; the files must hold the same images and labels, which is checked. Seconds per SVE
are wall time over all ranks divided by the samples (generation, homogenization, HDF5 writes and
the one-off set-up included), so ``speedup`` is the throughput gain.

Usage::

    .venv/bin/python bench/bench_dataset.py                    # 2D 256^2, 40 SVEs, 1 and 2 ranks
    .venv/bin/python bench/bench_dataset.py --n 8 --size 32    # a quick check

Prints a markdown table (paste into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> None:
    """Run under (or without) mpirun: generate one file, print the summary as JSON on rank 0."""
    import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

    import numpy as np

    from micro.dataset import generate_dataset, load_dataset

    summary = generate_dataset(
        args.worker,
        n_samples=args.n,
        dim=args.dim,
        size=args.size,
        radius=args.radius,
        base_seed=args.seed,
    )
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        data = load_dataset(args.worker)
        out = {
            "ranks": summary.ranks,
            "samples": summary.n_new,
            "wall_s": summary.seconds,
            "s_per_sve": summary.seconds_per_sample,
            "label_s": float(np.median(data.solve_seconds)),
            "cg_iterations": float(data.iterations.mean()),
        }
        print("RESULT " + json.dumps(out), flush=True)


def run(ranks: int, args: argparse.Namespace, path: Path) -> dict:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMPI_MCA_rmaps_base_oversubscribe="1",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    cmd = [sys.executable, __file__, "--worker", str(path)]
    cmd += ["--n", str(args.n), "--size", str(args.size), "--dim", str(args.dim)]
    cmd += ["--seed", str(args.seed)] + (["--radius", str(args.radius)] if args.radius else [])
    if ranks > 1:
        cmd = ["mpirun", "-n", str(ranks), "--oversubscribe", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def same_files(a: Path, b: Path) -> bool:
    import h5py
    import numpy as np

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        if not np.array_equal(fa["images"][...], fb["images"][...]):
            return False
        return bool(np.allclose(fa["mu_eff"][...], fb["mu_eff"][...], rtol=1e-8, atol=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="SVEs per run (default 40)")
    parser.add_argument("--size", type=int, default=256, help="pixels per side (default 256)")
    parser.add_argument("--dim", type=int, default=2, choices=(2, 3))
    parser.add_argument("--radius", type=float, default=None, help="pixels (generator default)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--ranks", default="1,2", help="comma-separated rank counts (1,2)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    rank_counts = [int(k) for k in args.ranks.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_dataset_") as tmp:
        rows, files = [], []
        for ranks in rank_counts:
            path = Path(tmp) / f"ranks{ranks}.h5"
            print(f"running {ranks} rank(s): {args.n} SVEs of {args.size}^{args.dim} ...",
                  file=sys.stderr)  # fmt: skip
            rows.append(run(ranks, args, path))
            files.append(path)
        equal = all(same_files(files[0], f) for f in files[1:])
    base = rows[0]["s_per_sve"]
    print(f"\nDataset generation, {args.dim}D {args.size}^{args.dim}, {args.n} SVEs, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")  # fmt: skip
    print("\n| ranks | SVEs | wall s | s per SVE | speedup | median label s | CG its |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['ranks']} | {r['samples']} | {r['wall_s']:.2f} | {r['s_per_sve']:.3f} "
            f"| {base / r['s_per_sve']:.2f} | {r['label_s']:.3f} | {r['cg_iterations']:.1f} |"
        )
    print(f"\nfiles of all rank counts equal (images, labels to 1e-8): {'yes' if equal else 'NO'}")


if __name__ == "__main__":
    main()
