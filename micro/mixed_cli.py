"""``magnetohom dataset-mixed``: FE-labelled images of every morphology class and many materials.

The training data of the general model (:mod:`micro.mixed_dataset`)::

    magnetohom dataset-mixed runs/mix256.h5 -n 3000 --size 256 --seed 1
    magnetohom dataset-mixed runs/fibres.h5 -n 200 --kinds fibres_aligned,lamellae --crop 0

A rerun with the same arguments resumes; other arguments on an existing file are an error.
"""

from __future__ import annotations

import argparse

from magnetohom.errors import InputError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``dataset-mixed`` command."""
    from micro.morphologies import MORPHOLOGIES

    p = subparsers.add_parser(
        "dataset-mixed",
        help="labelled dataset of many morphologies and phase permeabilities (general model)",
        description="FE-labelled images of the morphology classes of micro.morphologies, each "
        "row with its own phase permeabilities (contrast log-uniform up to 1e4 either way). "
        "Resumable: rerun the same command.",
    )
    p.add_argument("output", help="HDF5 file")
    p.add_argument("-n", "--samples", type=int, required=True, help="number of rows")
    p.add_argument(
        "--size",
        default="256",
        metavar="N|N1xN2",
        help="pixels per side (default 256), or N1xN2 for rectangular periodic cells",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--kinds",
        default=None,
        help=f"comma-separated classes (default all: {', '.join(MORPHOLOGIES)})",
    )
    p.add_argument(
        "--max-log10-contrast", type=float, default=4.0, help="contrasts up to 10^this (default 4)"
    )
    p.add_argument(
        "--min-log10-contrast",
        type=float,
        default=0.0,
        help="contrasts from 10^this (default 0: log-uniform over the whole range)",
    )
    p.add_argument(
        "--crop", type=float, default=0.3, help="share of non-periodic windows (default 0.3)"
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from micro.mixed_dataset import generate_mixed_dataset
    from micro.validate import check_size, parse_size

    shape = check_size(parse_size(args.size), dim=2, minimum=16, what="--size")
    if not (0.0 <= args.crop <= 1.0):
        raise InputError(f"--crop must be in [0, 1]: got {args.crop}")
    if not (0.0 <= args.max_log10_contrast <= 6.0):
        raise InputError(f"--max-log10-contrast must be in [0, 6]: got {args.max_log10_contrast}")
    if not (0.0 <= args.min_log10_contrast <= args.max_log10_contrast):
        raise InputError(
            "--min-log10-contrast must be in [0, --max-log10-contrast]: "
            f"got {args.min_log10_contrast}"
        )
    kinds = None if args.kinds is None else tuple(k.strip() for k in args.kinds.split(","))
    n = generate_mixed_dataset(
        args.output,
        args.samples,
        shape=shape,
        seed=args.seed,
        kinds=kinds,
        max_log10_contrast=args.max_log10_contrast,
        min_log10_contrast=args.min_log10_contrast,
        crop=args.crop,
        progress=True,
    )
    print(f"{args.output}: {n} new rows labelled ({args.samples} in the file)")
    return 0
