"""``magnetohom macro``: run a demo problem with a provider, or compare providers.

Examples::

    magnetohom macro --demo shield --size small --provider fe -o out/shield
    magnetohom macro --demo choke --currents 2,5,10,20,40 --providers learned,linear -o out/choke
    magnetohom macro --demo inductor --compare --json
    mpirun -n 2 magnetohom macro --demo inductor --provider fe

DOLFINx, gmsh and the providers are imported inside the handler. Under MPI every rank runs
the handler; only rank 0 prints.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)

_DEMOS = ("shield", "inductor", "shield3d", "choke")


def register(subparsers: Any) -> None:
    """Add the ``macro`` sub-command."""
    p = subparsers.add_parser(
        "macro",
        help="FE² macroscale magnetostatics demos (shield, inductor, shield3d, choke); "
        "comparisons",
        description="Solve a demo component with mu* from a provider at every quadrature "
        "point, or compare providers against the full FE² reference. The choke demo is "
        "nonlinear (saturating composite core, A_z by Newton): it sweeps --currents with the "
        "nonlinear providers learned (the learned convex law), nested (nested FE²) and linear "
        "(linear mu*) and writes L(I).",
    )
    p.add_argument("--demo", required=True, help=f"demo problem: {', '.join(_DEMOS)}")
    p.add_argument("--size", default=None,
                   help="mesh density: tiny, small, medium, large or elements across the "
                   "thinnest composite part (default small; choke: tiny)")  # fmt: skip
    p.add_argument(
        "--provider",
        default=None,
        help="a provider of macro.provider's registry: fe (default), analytic, cnn (a "
        "specialist), general (any microstructure and phases), hybrid (general + FE where its "
        "bound exceeds --tolerance); choke: learned, nested or linear",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="hybrid: relative error tolerance above which FE answers (default 0.01)",
    )
    p.add_argument(
        "--providers",
        default=None,
        help="with --compare: comma-separated providers (default fe,cnn,analytic); choke: "
        "side by side (default learned,nested,linear)",
    )
    p.add_argument(
        "--currents",
        default=None,
        help="choke: increasing currents in A, comma-separated (default "
        "1,2,5,10,15,20,25: linear through the knee into saturation at 1000 turns)",
    )
    p.add_argument("--turns", type=int, default=1000, help="choke: coil turns (default 1000)")
    p.add_argument(
        "--law",
        default=None,
        help="choke: the learned law, a shipped name or a directory written by "
        "`magnetohom train-law` (default: the shipped saturating-disks32)",
    )
    p.add_argument("--compare", action="store_true", help="compare providers against fe")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--resolution",
        default=None,
        metavar="N|N1xN2[xN3]",
        help="SVE pixels per side (default: the CNN's input size, else 64), or per axis of "
        "rectangular periodic SVEs, e.g. 64x32 (fe and analytic providers)",
    )
    p.add_argument("--seed", type=int, default=0, help="base seed of the SVEs")
    p.add_argument("--degree", type=int, default=1, help="quadrature degree (1: 1 point/cell)")
    p.add_argument("--model", default=None, help="CNN model name or directory (cnn, hybrid)")
    p.add_argument("-o", "--outdir", default=None, help="write XDMF, PNG and JSON here")
    p.set_defaults(handler=run)


def _share_cores(comm: Any) -> None:
    """Size TensorFlow's thread pools to this rank's share of the node's cores.

    By default every rank's TensorFlow runs as many threads as the node has cores, so ``n``
    ranks oversubscribe it ``n`` times during the CNN's evaluation (the FE² reference solves
    are single-threaded per rank). Set before TensorFlow starts; variables already in the
    environment win.
    """
    import os

    from mpi4py import MPI

    local = comm.Split_type(MPI.COMM_TYPE_SHARED).size
    if local <= 1:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, (cores or 1) // local)))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


def run(args: argparse.Namespace) -> int:
    """Handler of ``magnetohom macro``."""
    from magnetohom.errors import InputError

    if args.demo not in _DEMOS:
        raise InputError(f"unknown demo {args.demo!r}; valid demos: {', '.join(_DEMOS)}")
    if args.demo == "choke":
        return _run_choke(args)
    args.size = args.size or "small"
    args.provider = args.provider or "fe"
    args.providers = args.providers or "fe,cnn,analytic"
    from macro.provider import available_providers

    if not args.compare and args.provider not in available_providers():
        known = ", ".join(available_providers())
        raise InputError(f"unknown provider {args.provider!r}; known: {known}")
    text = args.resolution
    if text is not None:
        from micro.validate import compact_size, parse_size

        size = parse_size(text, what="--resolution")
        sides = size if isinstance(size, tuple) else (size,)
        if min(sides) < 4:
            raise InputError(f"--resolution must be >= 4: got {text}")
        args.resolution = compact_size(sides)
    if args.outdir:
        from magnetohom.paths import check_output_dir

        check_output_dir(args.outdir)
    wanted = args.providers.split(",") if args.compare else [args.provider]
    if {n.strip() for n in wanted} - {"fe", "analytic", ""}:  # surrogate providers: TensorFlow
        from magnetohom.quiet import import_tensorflow

        import_tensorflow(getattr(args, "verbose", 0))  # before DOLFINx, its start-up lines gone
    import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

    from mpi4py import MPI

    from macro.geometry import resolve_size
    from macro.problems import get_problem

    _share_cores(MPI.COMM_WORLD)
    resolve_size(args.size)
    size = args.size
    problem = get_problem(
        args.demo, size=size, degree=args.degree, seed=args.seed, resolution=args.resolution
    )
    rank = MPI.COMM_WORLD.rank
    model_opts = {"model": args.model} if args.model else {}
    per_provider = {
        "cnn": model_opts,
        "general": model_opts,
        "hybrid": {**model_opts, "tolerance": args.tolerance},
    }
    known = available_providers()
    if args.compare:
        from macro.compare import compare_providers

        names = tuple(n.strip() for n in args.providers.split(",") if n.strip())
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InputError(f"unknown provider(s) {unknown}; known: {', '.join(known)}")
        opts = per_provider
        cmp = compare_providers(problem, names, provider_options=opts)
        summary = cmp.summary()
        summary["mpi_ranks"] = MPI.COMM_WORLD.size
        if args.outdir:
            _write_compare(cmp, problem, args.outdir, summary)
        if rank == 0:
            print(json.dumps(summary, indent=None if args.json else 2, default=_num)
                  if args.json else _table(summary))  # fmt: skip
        return 0
    from macro.provider import (
        get_provider,
        provider_geometry,
        provider_model,
        provider_resolution,
    )

    mat = problem.material
    opts: dict[str, Any] = {"dim": mat.dim, "mu_matrix": mat.mu_matrix,
                            "mu_inclusion": mat.mu_inclusion}  # fmt: skip
    opts.update(per_provider.get(args.provider, {}))
    provider = get_provider(args.provider, **opts)
    res = provider_resolution(provider)
    if isinstance(args.resolution, tuple) and res is not None:
        model = provider_model(provider)
        raise InputError(
            f"--resolution {text} does not fit provider {args.provider}: its model"
            f"{f' {model!r}' if model else ''} takes square SVEs of {res} px per side only; "
            "rectangular SVEs need the fe or analytic provider"
        )
    if args.resolution is not None and res is not None and res != args.resolution:
        raise InputError(
            f"--resolution {args.resolution} does not fit provider {args.provider}: its model "
            f"takes SVEs of {res} px per side; leave --resolution out or choose a model of "
            f"that size"
        )
    if res is not None:
        problem.material = problem.material.matched_to(res, provider_geometry(provider))
    result = problem.solve(provider)
    summary = result.summary()
    summary["mpi_ranks"] = MPI.COMM_WORLD.size
    summary["mesh_seconds"] = problem.mesh_seconds
    if args.outdir:
        from macro.output import write_outputs

        summary["files"] = write_outputs(result, args.outdir, extent=problem.extent)
    if rank == 0:
        if args.json:
            print(json.dumps(summary, default=_num))
        else:
            _print_result(summary, result.qoi_name)
    return 0


#: Default currents of the choke demo [A] (1000 turns).
CHOKE_CURRENTS = "1,2,5,10,15,20,25"


def _run_choke(args: argparse.Namespace) -> int:
    """The nonlinear choke demo: an L(I) sweep per provider, side by side."""
    import numpy as np

    from macro.choke import NONLINEAR_PROVIDERS, parse_currents
    from magnetohom.errors import InputError

    if args.compare:
        raise InputError("--compare is for the linear demos; the choke compares --providers")
    spec = args.providers or args.provider or "learned,nested,linear"
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in NONLINEAR_PROVIDERS]
    if not names or unknown:
        known = ", ".join(NONLINEAR_PROVIDERS)
        raise InputError(f"unknown provider(s) {unknown or spec!r} for the choke; known: {known}")
    currents = parse_currents(args.currents or CHOKE_CURRENTS)
    if args.resolution is not None and args.resolution != 32:
        raise InputError("the choke's SVEs are 32^2 (the learned law's); leave --resolution out")
    if args.turns < 1:
        raise InputError(f"--turns must be >= 1: got {args.turns}")
    if args.outdir:
        from magnetohom.paths import check_output_dir

        check_output_dir(args.outdir)
    # the learned law loads and evaluates in numpy (h5py ordered first below): no TensorFlow
    import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

    from mpi4py import MPI

    from macro.choke import ChokeProblem, write_choke_outputs
    from macro.geometry import resolve_size

    _share_cores(MPI.COMM_WORLD)
    size = args.size or "tiny"
    resolve_size(size)
    problem = ChokeProblem(size=size, turns=args.turns, degree=args.degree, seed=args.seed)
    mid = currents[np.argmin(np.abs(np.log(currents) - np.log(currents).mean()))]
    keep = sorted({float(currents[0]), float(mid), float(currents[-1])})
    sweeps = {}
    for name in names:
        sweeps[name] = problem.sweep(name, currents, law=args.law, keep=keep if args.outdir
                                     else ())  # fmt: skip
    summary = {
        "problem": "choke",
        "turns": problem.turns,
        "depth_m": problem.depth,
        "n_composite_points": problem.n_composite_points(),
        "mean_knee_field_A_per_m": problem.knee_field(),
        "mpi_ranks": MPI.COMM_WORLD.size,
        "timings_s": dict(problem.timings),
        "providers": {n: sw.summary() for n, sw in sweeps.items()},
    }
    if args.outdir:
        summary["files"] = write_choke_outputs(problem, sweeps, args.outdir, summary=summary)
    if MPI.COMM_WORLD.rank == 0:
        if args.json:
            print(json.dumps(summary, default=_num))
        else:
            print(_choke_table(summary))
    return 0


def _choke_table(summary: dict[str, Any]) -> str:
    lines = [
        f"choke: {summary['turns']} turns, {summary['n_composite_points']} composite "
        f"quadrature points, mean knee field {summary['mean_knee_field_A_per_m']:.3g} A/m, "
        f"{summary['mpi_ranks']} rank(s)",
        f"{'provider':<9s}{'I [A]':>8s}{'Psi [Wb]':>11s}{'L [mH]':>10s}{'dPsi/dI [mH]':>14s}"
        f"{'<|B|> core':>11s}{'<H/Hk>':>8s}{'max H/Hk':>9s}{'Newton':>7s}{'s':>8s}",
    ]
    for name, sw in summary["providers"].items():
        for s in sw["steps"]:
            lines.append(
                f"{name:<9s}{s['current_A']:8.3g}{s['flux_linkage_Wb']:11.4g}"
                f"{1e3 * s['inductance_H']:10.4g}{1e3 * s['incremental_inductance_H']:14.4g}"
                f"{s['core_mean_B_T']:11.3g}{s['core_mean_field_knees']:8.2f}"
                f"{s['core_max_field_knees']:9.2f}"
                f"{s['newton_iterations']:7d}{s['total_s']:8.2f}"
            )
        if sw["out_of_range"]:
            lines.append(f"{name:<9s}{sw['out_of_range']} evaluations beyond the trained range")
        if sw.get("unfamiliar_points"):
            lines.append(
                f"{name:<9s}{sw['unfamiliar_points']} points with microstructures outside "
                "the learned law's training data"
            )
    for kind, path in (summary.get("files") or {}).items():
        if isinstance(path, str):
            lines.append(f"wrote {kind}: {path}")
    return "\n".join(lines)


def _write_compare(cmp: Any, problem: Any, outdir: str, summary: dict[str, Any]) -> None:
    from pathlib import Path

    from mpi4py import MPI

    from macro.output import write_json, write_outputs

    files = {}
    for name, result in cmp.results.items():
        files[name] = write_outputs(result, outdir, extent=problem.extent)
    summary["files"] = files
    if MPI.COMM_WORLD.rank == 0:
        write_json(summary, Path(outdir) / f"{problem.name}_compare.json")


def _num(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(type(obj).__name__)


def _fmt(x: Any, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def _print_result(summary: dict[str, Any], qoi: str) -> None:
    out = sys.stdout
    out.write(f"{summary['problem']} with provider {summary['provider']}: "
              f"{summary['n_quadrature_points']} quadrature points, "
              f"{summary['mesh']['n_cells']} cells, {summary['mpi_ranks']} rank(s)\n")  # fmt: skip
    out.write(f"  energy  {summary['energy_J_per_m']:.6g} J/m\n")
    out.write(f"  {qoi}  {summary[qoi]:.6g}\n")
    for k, v in summary["timings_s"].items():
        out.write(f"  {k:<18s}{v:9.3f} s\n")
    if summary.get("n_fallback"):
        out.write(f"  FE fallbacks      {summary['n_fallback']}\n")
    for kind, path in (summary.get("files") or {}).items():
        out.write(f"  wrote {kind}: {path}\n")


def _resolution_text(resolution: Any, dim: int) -> str:
    """``64^2`` (square or cubic SVEs) or ``64x32`` (rectangular)."""
    from micro.validate import format_size

    if isinstance(resolution, list | tuple):
        return format_size(tuple(resolution))
    return f"{resolution}^{dim}"


def _table(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['problem']}: {summary['n_quadrature_points']} quadrature points, "
        f"{_resolution_text(summary['sve_resolution'], summary.get('dim', 2))} SVEs, "
        f"reference {summary['reference']}",
        f"{'provider':<10s}{'energy err':>11s}{summary['qoi_name'][:12] + ' err':>17s}"
        f"{'L2(B) err':>11s}{'SVE gen s':>11s}{'mu* s':>9s}{'solve s':>9s}{'total s':>9s}"
        f"{'speedup':>9s}",
    ]
    for name, m in summary["providers"].items():
        t = m["timings_s"]
        solve = t["assembly"] + t["solve"] + t["postprocess"] + t["coefficient_fill"]
        lines.append(
            f"{name:<10s}{_fmt(m['energy_rel_error'], '.2%'):>11s}"
            f"{_fmt(m['qoi_rel_error'], '.2%'):>17s}{_fmt(m['l2_B_rel_error'], '.2%'):>11s}"
            f"{t['sve_generation']:11.2f}{t['mu_evaluation']:9.2f}{solve:9.2f}"
            f"{m['total_s']:9.2f}{_fmt(m['speedup'], '.1f'):>9s}"
        )
    for name, why in summary.get("unavailable", {}).items():
        lines.append(f"{name:<10s}unavailable: {why}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO)
