"""Benchmark of the FE² macro demos: providers versus the FE² reference, one JSON line each.

Usage::

    python bench/bench_macro.py [--demo shield|inductor|all] [--size medium] \
        [--providers fe,cnn,analytic] [--resolution N] [-o bench_macro.json]

Run under ``mpirun -n 2`` to time the distributed FE² reference. Prints the comparison table
of ``magnetohom macro --compare`` and writes all numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging

import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

from mpi4py import MPI

from macro.cli import _table
from macro.compare import compare_providers
from macro.problems import PROBLEMS, get_problem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="all", help="shield, inductor or all")
    parser.add_argument("--size", default="medium")
    parser.add_argument("--providers", default="fe,cnn,analytic")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("-o", "--output", default=None, help="JSON file of all results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    demos = list(PROBLEMS) if args.demo == "all" else [args.demo]
    results = []
    for demo in demos:
        problem = get_problem(demo, size=args.size, resolution=args.resolution)
        summary = compare_providers(problem, tuple(args.providers.split(","))).summary()
        summary["mpi_ranks"] = MPI.COMM_WORLD.size
        results.append(summary)
        if MPI.COMM_WORLD.rank == 0:
            print(_table(summary), flush=True)
    if MPI.COMM_WORLD.rank == 0 and args.output:
        with open(args.output, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
