"""The choke demo's L(I): learned law vs nested FE² vs linear mu*, one run (issue 22).

The ``choke`` demo (:mod:`macro.choke`: E-I core of a saturating composite, 0.5 mm gap,
``--turns`` turns) at ``--size`` / ``--degree``; every provider sweeps ``--currents`` (each
current warm-started from the previous one), the nested FE² reference only ``--nested-currents``
(a subset: it is slow), started from the learned law's solution at the current below (so that
the nested Newton needs the same few steps as within a sweep).  Prints per current and provider
the flux linkage, L = Psi/I, dPsi/dI, the macro Newton residual history, law calls and times
(end to end per current; the learned law's one-off set-up -- loading, its constants at the
points -- is reported separately),
then learned-vs-nested differences and speed-ups; ``--json`` writes everything.

Usage::

    .venv/bin/python bench/bench_choke.py --size small --degree 2 --nested-currents 10
    mpirun -n 2 .venv/bin/python bench/bench_choke.py --size tiny --providers nested ...
"""

from __future__ import annotations

import argparse
import json
import time

import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="small")
    p.add_argument("--degree", type=int, default=2)
    p.add_argument("--currents", default="1,2,5,10,15,20,25")
    p.add_argument("--nested-currents", default="10", help="'' for none")
    p.add_argument("--providers", default="learned,linear,nested")
    p.add_argument("--law", default=None)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    names = [n for n in args.providers.split(",") if n]
    from mpi4py import MPI

    from macro.choke import ChokeProblem, parse_currents

    comm = MPI.COMM_WORLD
    say = print if comm.rank == 0 else (lambda *a, **k: None)
    currents = parse_currents(args.currents)
    nested_cur = parse_currents(args.nested_currents) if args.nested_currents else []
    prob = ChokeProblem(size=args.size, degree=args.degree)
    t0 = time.perf_counter()
    prob.points()
    t_points = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    say(
        f"choke ({args.size}, quadrature degree {args.degree}): "
        f"{prob.n_composite_points()} composite points, {comm.size} rank(s); mean knee field "
        f"{prob.knee_field():.4g} A/m; SVEs + descriptors {t_points:.1f} s "
        f"({', '.join(f'{k} {v:.1f} s' for k, v in prob.timings.items())})\n"
    )
    out: dict = {"n_composite_points": prob.n_composite_points(), "ranks": comm.size,
                 "knee": prob.knee_field(), "timings": prob.timings, "sweeps": {}}  # fmt: skip
    say("| provider | I (A) | Ψ (Wb) | L = Ψ/I (mH) | dΨ/dI (mH) | core ⟨|B|⟩ (T) "
        "| ⟨|H|/H_k*⟩ / max | Newton its | residual history | law calls | law s "
        "| total s | CPU s |")  # fmt: skip
    say("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    sweeps = {}
    for name in names:
        if name == "nested":
            if not len(nested_cur):
                continue
            sw = _nested(prob, currents, nested_cur, args.law)
        else:
            sw = prob.sweep(name, currents, law=args.law)
        sweeps[name] = sw
        out["sweeps"][name] = sw.summary()
        for s in sw.steps:
            hist = ", ".join(f"{r:.0e}" for r in s.residuals)
            say(f"| {name} | {s.current:g} | {s.flux_linkage:.5g} | {1e3 * s.inductance:.5g} | "
                f"{1e3 * s.incremental_inductance:.5g} | {s.core_mean_B:.3g} | "
                f"{s.core_mean_field:.2f} / {s.core_max_field:.2f} | {s.newton_iterations} | "
                f"{hist} | {s.law_calls} | "
                f"{s.law_seconds:.3g} | {s.seconds:.3g} | {s.cpu_seconds:.3g} |")  # fmt: skip
        if sw.setup_seconds:
            say(f"| {name} | set-up (law load + per-point constants) | | | | | | | | | | "
                f"{sw.setup_seconds:.2f} |")  # fmt: skip
    if "nested" in sweeps:
        say("\n| I (A) | L learned vs nested | L linear vs nested | dΨ/dI learned vs nested | "
            "nested s (CPU s) | learned s (CPU s) | speed-up wall (CPU) |")  # fmt: skip
        say("| --- | --- | --- | --- | --- | --- | --- |")
        by = {n: {s.current: s for s in sw.steps} for n, sw in sweeps.items()}
        for c, n_ in by["nested"].items():
            a = by.get("learned", {}).get(c)
            lin = by.get("linear", {}).get(c)
            if a is None:
                continue
            say(f"| {c:g} | {_rel(a, n_)} | {_rel(lin, n_)} | "
                f"{_rel(a, n_, 'incremental_inductance')} | {n_.seconds:.1f} "
                f"({n_.cpu_seconds:.1f}) | {a.seconds:.3g} ({a.cpu_seconds:.3g}) | "
                f"{n_.seconds / a.seconds:.0f}x "
                f"({n_.cpu_seconds / a.cpu_seconds:.0f}x) |")  # fmt: skip
    if args.json and comm.rank == 0:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


def _rel(a, b, attr: str = "inductance") -> str:
    if a is None:
        return "-"
    return f"{100 * (getattr(a, attr) / getattr(b, attr) - 1):+.2f} %"


def _nested(prob, currents, nested_cur, law):
    """Nested FE² at ``nested_cur``: each from the learned solution at the current below
    (scaled), or from 0."""
    from macro.choke import ChokeSweep

    result = None
    for c in nested_cur:
        below = [x for x in currents if x < c]
        if below:
            ref = prob.sweep("learned", currents[currents <= below[-1]], law=law,
                             keep=[below[-1]])  # fmt: skip
            sw = prob.sweep("nested", [c], start=(below[-1], ref.solutions[below[-1]]))
        else:
            sw = prob.sweep("nested", [c], law=law)
        if result is None:
            result = ChokeSweep("nested", setup_seconds=sw.setup_seconds)
        result.steps.append(sw.steps[-1])
    return result


if __name__ == "__main__":
    main()
