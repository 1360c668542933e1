"""``magnetohom generate | bounds | homogenize | segment | rve | dataset | dataset-nl``: micro CLI.

Examples::

    magnetohom generate --dim 2 --vf 0.3 --seed 1 -n 10 -o out/mono --format png
    magnetohom generate --dim 3 --vf 0.25 --radius-range 3 7 -o sve.tif
    magnetohom generate --size 256x128 --vf 0.4 --seed 1 -o out/rect.png
    magnetohom bounds out/mono/*.png --mu-inclusion 250 --json
    magnetohom homogenize out/mono/*.png --json
    magnetohom homogenize micrograph.tif --mu 1,50,1000 --bc all --preview out/prev
    magnetohom segment micrograph.png -o out/phases.png --mu 1,50,1000
    magnetohom rve big.png --sizes 16,32,64,128 -o out/rve
    mpirun -n 2 magnetohom dataset out/train.h5 -n 500 --vf-max 0.5
    magnetohom dataset-nl out/nl.h5 -n 100 --inclusion-law arctan:1000,1.6 --vf-min 0.3

``segment`` and ``rve`` live in :mod:`micro.cli_micrograph`, ``dataset-nl`` in
:mod:`micro.cli_nonlinear`.  Each command has its own
``_add_<name>(subparsers)`` function that builds its parser and sets
``handler=``; the handlers import what they need lazily.  Errors are raised as
:class:`magnetohom.errors.InputError` and reported by :mod:`magnetohom.cli` (exit code 2).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from magnetohom.errors import InputError
from magnetohom.paths import check_output_dir, check_output_file
from micro.cli_micrograph import _add_rve, _add_segment  # noqa: F401  (found by register)
from micro.cli_nonlinear import _add_dataset_nl  # noqa: F401  (found by register)
from micro.phase_args import fractions_text as _fractions_text
from micro.phase_args import run_batch

__all__ = ["cell_size", "register"]

log = logging.getLogger(__name__)

#: Commands in the order they appear in ``magnetohom --help``.  A command whose
#: ``_add_<name>`` function is not (yet) defined in this module is skipped.
_COMMANDS = ("generate", "bounds", "homogenize", "segment", "rve", "dataset", "dataset_nl")

_FORMAT_SUFFIX = {"npy": ".npy", "png": ".png", "tiff": ".tif"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the micro commands (``generate``, ``bounds``, ...) to the top-level parser."""
    for name in _COMMANDS:
        add = globals().get(f"_add_{name}")
        if add is not None:
            add(subparsers)


# ----------------------------------------------------------------------------------------------
# generate


def _add_class_arguments(p: argparse.ArgumentParser) -> None:
    """--dim, --size, --radius | --radius-range, --overlap: shared by generate and dataset.

    ``--size`` is read as text: :func:`cell_size` turns it (and ``--dim``) into the numbers.
    """
    p.add_argument(
        "--dim",
        type=int,
        choices=(2, 3),
        default=None,
        help="dimension (default: the number of sides in --size, else 2)",
    )
    p.add_argument(
        "--size",
        default=None,
        metavar="N|N1xN2[xN3]",
        help="pixels per side (default 256 in 2D, 101 in 3D), or per axis of a rectangular "
        "periodic cell, e.g. 256x128 or 64x48x32 (square pixels)",
    )
    shape = p.add_mutually_exclusive_group()
    shape.add_argument(
        "--radius", type=float, default=None, help="monodisperse radius in pixels (default 8 / 5)"
    )
    shape.add_argument(
        "--radius-range",
        type=float,
        nargs=2,
        metavar=("RMIN", "RMAX"),
        default=None,
        help="polydisperse: radii uniform in [RMIN, RMAX] pixels",
    )
    p.add_argument("--overlap", action="store_true", help="allow inclusions to overlap")


def cell_size(args: argparse.Namespace) -> tuple[int, int | tuple[int, ...] | None]:
    """``(dim, size)`` of ``--dim`` and ``--size``: ``size`` as :func:`micro.generate_sve` takes
    it (None: the default; an int for a square or cubic cell; else the shape).

    Raises
    ------
    InputError
        ``--size`` not N, N1xN2 or N1xN2xN3 with integer sides >= 2, or sides other than
        ``--dim``.
    """
    from micro.validate import check_size, compact_size, parse_size

    size = None if args.size is None else parse_size(args.size)
    sides = len(size) if isinstance(size, tuple) else None
    dim = args.dim if args.dim is not None else (sides or 2)
    if sides is not None and sides != dim:
        raise InputError(f"--size {args.size} has {sides} sides but --dim is {dim}")
    if size is None:
        return dim, None
    shape = check_size(size, dim=dim, what="--size")
    return dim, compact_size(shape)


def _add_generate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate periodic SVEs (random sequential addition of disks/spheres)",
        description="Generate N periodic SVEs of one class and write them as image files; "
        "prints one line per file with the measured volume fraction. PNG/TIFF use the paper's "
        "grey levels (0 = inclusion, 255 = matrix); .npy holds bool (True = inclusion).",
    )
    _add_class_arguments(p)
    p.add_argument(
        "--vf", type=float, required=True, help="target inclusion volume fraction in (0, 1)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="base seed; sample k uses child k of SeedSequence(seed) (default: fresh entropy)",
    )
    p.add_argument("-n", type=int, default=1, metavar="N", help="number of SVEs (default 1)")
    p.add_argument(
        "--format",
        choices=tuple(_FORMAT_SUFFIX),
        default=None,
        help="file format (default: from -o's suffix, else npy)",
    )
    p.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="OUTDIR_or_FILE",
        help="output directory (files sve_0000.<ext>, ...) or, with -n 1, a file name",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace image files that exist (else refused)"
    )
    p.set_defaults(handler=_run_generate)


def _output_paths(out: Path, n: int, fmt: str | None) -> list[Path]:
    """The files to write: ``out`` itself (one file) or ``out/sve_0000.<ext>`` ...."""
    from micro.imageio import IMAGE_SUFFIXES

    suffix = out.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        if n != 1:
            raise InputError(f"-o {out} names a file; with -n {n} give a directory")
        if fmt is not None and _FORMAT_SUFFIX[fmt] != suffix.replace(".tiff", ".tif"):
            raise InputError(f"--format {fmt} does not match the file name {out}")
        return [out]
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out} exists and is not a directory")
    ext = _FORMAT_SUFFIX[fmt or "npy"]
    return [out / f"sve_{k:04d}{ext}" for k in range(n)]


def _run_generate(args: argparse.Namespace) -> int:
    from micro.generate import generate_sve, spawn_seeds
    from micro.imageio import save_image

    args.dim, args.size = cell_size(args)
    if args.n < 1:
        raise InputError(f"-n must be >= 1: got {args.n}")
    if args.seed is not None and args.seed < 0:
        raise InputError(f"--seed must be >= 0: got {args.seed}")
    paths = _output_paths(Path(args.out), args.n, args.format)
    if args.dim == 3 and paths[0].suffix.lower() == ".png":
        raise InputError("PNG holds 2D images only; use --format tiff or npy for 3D")
    check_output_dir(paths[0].parent) if len(paths) > 1 else check_output_file(paths[0])
    existing = [p for p in paths if p.exists() or p.is_symlink()]
    if existing and not args.overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise InputError(f"{existing[0]} exists{more}; pass --overwrite to replace it")
    base = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy)
    if args.seed is None:
        log.info("base seed %d", base)
    seeds = spawn_seeds(base, args.n)
    for path, seed in zip(paths, seeds):
        sve = generate_sve(
            dim=args.dim,
            size=args.size,
            volume_fraction=args.vf,
            radius=args.radius,
            radius_range=tuple(args.radius_range) if args.radius_range else None,
            overlap=args.overlap,
            rng=int(seed),
        )
        save_image(path, sve.image)
        print(
            f"{path}  vf={sve.volume_fraction:.4f}  target={sve.target_volume_fraction:.4f}  "
            f"inclusions={sve.n_inclusions}  seed={int(seed)}",
            flush=True,
        )
    return 0


# ----------------------------------------------------------------------------------------------
# bounds


def _add_mu_arguments(p: argparse.ArgumentParser) -> None:
    from micro.phase_args import add_phase_arguments

    add_phase_arguments(p, mu_pair=True)


def _add_image_arguments(p: argparse.ArgumentParser) -> None:
    """FILE..., the phase options and --json: shared by ``bounds`` and ``homogenize``."""
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="images (.npy, .png, .tif): binary, phase labels, or 8/16-bit greyscale (segmented)",
    )
    _add_mu_arguments(p)
    p.add_argument("--json", action="store_true", help="one JSON object per file per line")


def _add_bounds(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bounds",
        help="analytic bounds/estimates of the effective permeability of image files",
        description="Measure the inclusion volume fraction of each image and print the Voigt, "
        "Reuss, Hashin-Shtrikman, Maxwell-Garnett and self-consistent estimates of the "
        "effective relative permeability. With --mu (k phases): the phase fractions and the "
        "k-phase Wiener and Hashin-Shtrikman bounds.",
    )
    _add_image_arguments(p)
    p.set_defaults(handler=_run_bounds)


_BOUND_KEYS = ("voigt", "reuss", "hs_lower", "hs_upper", "maxwell_garnett", "self_consistent")


_PHASE_KEYS = ("wiener_lower", "hs_lower", "hs_upper", "wiener_upper")


def _run_bounds(args: argparse.Namespace) -> int:
    from micro.analytic import estimates, phase_bounds
    from micro.phase_args import phase_mu, phases_from_args, write_preview

    phase_mu(args)  # bad --mu: one error for the whole command
    header: list = [None]

    def work(name: str) -> None:
        seg, mu = phases_from_args(name, args)
        d = seg.dim
        fractions = seg.volume_fractions
        if mu.size == 2 and args.mu is None:
            vf = float(fractions[1])
            est = estimates(vf, mu[0], mu[1], dim=d).as_dict()
            keys = _BOUND_KEYS
            row = {"file": str(name), "dim": d, "volume_fraction": vf}
        else:
            est = phase_bounds(fractions, mu, dim=d).as_dict()
            keys = _PHASE_KEYS
            row = {"file": str(name), "dim": d, "volume_fractions": fractions.tolist()}
            vf = None
        row.update({k: float(est[k]) for k in keys})
        write_preview(seg, name, args)
        if args.json:
            print(json.dumps(row), flush=True)
            return
        width = 8 if vf is not None else 7 * len(fractions)
        if header[0] != (keys, width):
            head = "".join(f"{key:>16}" for key in keys)
            label = "vf" if vf is not None else "phase fractions"
            print(f"{'file':<30} dim {label:>{width}}{head}")
            header[0] = (keys, width)
        vals = "".join(f"{float(est[k]):>16.6g}" for k in keys)
        vf_text = f"{vf:.4f}" if vf is not None else _fractions_text(fractions)
        print(f"{name!s:<30} {d:>3} {vf_text:>{width}}{vals}", flush=True)

    return run_batch("bounds", args.files, work)


# ----------------------------------------------------------------------------------------------
# homogenize


def _add_homogenize(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "homogenize",
        help="homogenized/apparent permeability tensor of image files (DOLFINx)",
        description="Compute the effective relative permeability tensor mu* of each image by "
        "first-order homogenization (Q1 element per pixel) under periodic (default), uniform "
        "Dirichlet or uniform Neumann conditions (--bc; 'all' also checks UNBC <= PBC <= UDBC "
        "and prints the relative UDBC-UNBC gap, the image's representativeness). Greyscale "
        "images are segmented (Otsu; --threshold, --invert), k phases with --mu. Images of one "
        "shape share one solver set-up. A bad file gets its one-line error on stderr, the "
        "others are still computed (exit code 2 if any failed). Prints a table, or with --json "
        "one JSON object per file per line.",
    )
    _add_image_arguments(p)
    p.add_argument(
        "--bc",
        choices=("periodic", "dirichlet", "neumann", "all"),
        default="periodic",
        help="boundary condition of the cell problem (default periodic)",
    )
    p.set_defaults(handler=_run_homogenize)


def _run_homogenize(args: argparse.Namespace) -> int:
    import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

    from micro.apparent import apparent_tensors
    from micro.phase_args import phase_mu, phases_from_args, write_preview

    phase_mu(args)  # bad --mu: one error for the whole command
    bcs = ("neumann", "periodic", "dirichlet") if args.bc == "all" else (args.bc,)
    state = {"dim": None}

    def work(name: str) -> None:
        seg, mu = phases_from_args(name, args)
        res = apparent_tensors(mu[seg.labels], bcs=bcs)
        fractions = seg.volume_fractions
        main_bc = "periodic" if "periodic" in res.tensors else bcs[0]
        row = {
            "file": str(name),
            "shape": list(seg.labels.shape),
            "volume_fraction": float(1.0 - fractions[0]),
            "volume_fractions": fractions.tolist(),
            "mu": mu.tolist(),
            "bc": args.bc,
            "mu_eff": res.tensors[main_bc].tolist(),
            "iterations": [int(i) for i in res.iterations[main_bc]],
            "seconds": float(sum(res.seconds.values())),
        }
        if mu.size == 2:
            row["mu_matrix"], row["mu_inclusion"] = float(mu[0]), float(mu[1])
        if len(bcs) > 1:
            row["apparent"] = {bc: t.tolist() for bc, t in res.tensors.items()}
            row["ordered"] = res.ordered
            row["width"] = res.width
        write_preview(seg, name, args)
        if args.json:
            print(json.dumps(row), flush=True)
            return
        d = seg.dim
        comps = [(i, j) for i in range(d) for j in range(i, d)]
        if state["dim"] != d:
            # a space before each 12-wide field: "-1.23457e+06" never touches its left
            head = "".join(f" {f'mu_{i + 1}{j + 1}':>12}" for i, j in comps)
            print(
                f"{'file':<30} {'shape':>12} {'phase fractions':>16} {'bc':>9}{head} "
                f"{'CG its':>10} {'s':>8}"
            )
            state["dim"] = d
        shape = "x".join(str(v) for v in seg.labels.shape)
        for bc in bcs:
            t = res.tensors[bc]
            vals = "".join(f" {t[i, j]:>12.6g}" for i, j in comps)
            its = "/".join(str(int(i)) for i in res.iterations[bc])
            print(
                f"{name!s:<30} {shape:>12} {_fractions_text(fractions):>16} {bc:>9}{vals} "
                f"{its:>10} {res.seconds[bc]:>8.3f}",
                flush=True,
            )
        if len(bcs) > 1:
            order = "UNBC <= PBC <= UDBC holds" if res.ordered else "ORDER VIOLATED"
            print(f"{name!s:<30} relative width (UDBC - UNBC) / PBC = {res.width:.4g}; {order}")

    return run_batch("homogenize", args.files, work)


# ----------------------------------------------------------------------------------------------
# dataset


def _add_dataset(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dataset",
        help="labelled HDF5 dataset: random SVEs homogenized with DOLFINx (resumable, MPI)",
        description="Generate N SVEs of one class with target volume fractions uniform in "
        "[--vf-min, --vf-max], label them with the homogenized permeability and write them to "
        "one HDF5 file (schema in docs/ARCHITECTURE.md). Rerun the same command to resume after "
        "an interruption: finished samples are kept. 'mpirun -n K magnetohom dataset ...' "
        "splits the samples over K ranks and writes the same file.",
    )
    p.add_argument("out", metavar="OUT.h5", help="dataset file (created or resumed)")
    p.add_argument("-n", type=int, required=True, metavar="N", help="number of samples")
    _add_class_arguments(p)
    p.add_argument("--vf-min", type=float, default=None, help="smallest target (default 0.05)")
    p.add_argument(
        "--vf-max",
        type=float,
        default=None,
        help="largest target (default 0.6, capped at what the class reaches)",
    )
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--mu-matrix", type=float, default=1.0, help="matrix permeability (default 1)")
    p.add_argument(
        "--mu-inclusion", type=float, default=250.0, help="inclusion permeability (default 250)"
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    p.set_defaults(handler=_run_dataset)


def _run_dataset(args: argparse.Namespace) -> int:
    import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

    from mpi4py import MPI

    from magnetohom.errors import MagnetohomError
    from micro.dataset import default_vf_range, generate_dataset

    poly = args.radius_range is not None
    rank = MPI.COMM_WORLD.rank
    try:
        args.dim, args.size = cell_size(args)
        lo, hi = default_vf_range(
            args.dim, overlap=args.overlap, polydisperse=poly, radius_range=args.radius_range
        )
        s = generate_dataset(
            args.out,
            n_samples=args.n,
            dim=args.dim,
            size=args.size,
            radius=args.radius,
            radius_range=tuple(args.radius_range) if poly else None,
            overlap=args.overlap,
            vf_range=(
                lo if args.vf_min is None else args.vf_min,
                hi if args.vf_max is None else args.vf_max,
            ),
            base_seed=args.seed,
            mu_matrix=args.mu_matrix,
            mu_inclusion=args.mu_inclusion,
            progress=args.progress,
        )
    except MagnetohomError:
        if rank != 0:  # rank 0 reports it
            return 2
        raise
    if rank == 0:
        rate = f"{s.seconds_per_sample:.3g} s per SVE" if s.n_new else "nothing new to do"
        print(
            f"{s.path}: {s.n_done}/{s.n_samples} samples done, {s.n_new} new, {rate} "
            f"({s.seconds:.1f} s on {s.ranks} rank{'s' if s.ranks > 1 else ''})",
            flush=True,
        )
    return 0
