"""``magnetohom generate | bounds`` (and later ``homogenize | dataset``): the micro command line.

Examples::

    magnetohom generate --dim 2 --vf 0.3 --seed 1 -n 10 -o out/mono --format png
    magnetohom generate --dim 3 --vf 0.25 --radius-range 3 7 -o sve.tif
    magnetohom bounds out/mono/*.png --mu-inclusion 250 --json

Each command has its own ``_add_<name>(subparsers)`` function that builds its parser and sets
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

__all__ = ["register"]

log = logging.getLogger(__name__)

#: Commands in the order they appear in ``magnetohom --help``.  A command whose
#: ``_add_<name>`` function is not (yet) defined in this module is skipped.
_COMMANDS = ("generate", "bounds", "homogenize", "dataset")

_FORMAT_SUFFIX = {"npy": ".npy", "png": ".png", "tiff": ".tif"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the micro commands (``generate``, ``bounds``, ...) to the top-level parser."""
    for name in _COMMANDS:
        add = globals().get(f"_add_{name}")
        if add is not None:
            add(subparsers)


# ----------------------------------------------------------------------------------------------
# generate


def _add_generate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate periodic SVEs (random sequential addition of disks/spheres)",
        description="Generate N periodic SVEs of one class and write them as image files; "
        "prints one line per file with the measured volume fraction. PNG/TIFF use the paper's "
        "grey levels (0 = inclusion, 255 = matrix); .npy holds bool (True = inclusion).",
    )
    p.add_argument("--dim", type=int, choices=(2, 3), default=2, help="dimension (default 2)")
    p.add_argument(
        "--size", type=int, default=None, help="pixels per side (default 256 in 2D, 101 in 3D)"
    )
    p.add_argument(
        "--vf", type=float, required=True, help="target inclusion volume fraction in (0, 1)"
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

    if args.n < 1:
        raise InputError(f"-n must be >= 1: got {args.n}")
    if args.seed is not None and args.seed < 0:
        raise InputError(f"--seed must be >= 0: got {args.seed}")
    paths = _output_paths(Path(args.out), args.n, args.format)
    if args.dim == 3 and paths[0].suffix.lower() == ".png":
        raise InputError("PNG holds 2D images only; use --format tiff or npy for 3D")
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


def _add_bounds(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bounds",
        help="analytic bounds/estimates of the effective permeability of image files",
        description="Measure the inclusion volume fraction of each image and print the Voigt, "
        "Reuss, Hashin-Shtrikman, Maxwell-Garnett and self-consistent estimates of the "
        "effective relative permeability.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="images (.npy, .png, .tif)")
    p.add_argument("--mu-matrix", type=float, default=1.0, help="matrix permeability (default 1)")
    p.add_argument(
        "--mu-inclusion", type=float, default=250.0, help="inclusion permeability (default 250)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per file per line")
    p.set_defaults(handler=_run_bounds)


_BOUND_KEYS = ("voigt", "reuss", "hs_lower", "hs_upper", "maxwell_garnett", "self_consistent")


def _run_bounds(args: argparse.Namespace) -> int:
    from micro.analytic import estimates
    from micro.imageio import load_image
    from micro.validate import check_mu

    mu_m, mu_i = check_mu(args.mu_matrix, args.mu_inclusion)
    for k, name in enumerate(args.files):
        image = load_image(name)
        vf = float(np.count_nonzero(image)) / image.size
        est = estimates(vf, mu_m, mu_i, dim=image.ndim).as_dict()
        if args.json:
            row = {"file": str(name), "dim": image.ndim, "volume_fraction": vf}
            row.update({k: float(est[k]) for k in _BOUND_KEYS})
            print(json.dumps(row), flush=True)
        else:
            if k == 0:
                head = "".join(f"{key:>16}" for key in _BOUND_KEYS)
                print(f"{'file':<30} dim {'vf':>8}{head}")
            vals = "".join(f"{float(est[k]):>16.6g}" for k in _BOUND_KEYS)
            print(f"{name!s:<30} {image.ndim:>3} {vf:>8.4f}{vals}", flush=True)
    return 0


# ----------------------------------------------------------------------------------------------
# homogenize, dataset: reserved for their owner -- define ``_add_homogenize(subparsers)`` and
# ``_add_dataset(subparsers)`` below (each setting ``handler=``); ``register`` picks them up.
