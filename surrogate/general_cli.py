"""``magnetohom train-general`` and ``magnetohom calibrate-general``: the general model's training.

::

    magnetohom dataset-mixed runs/mix256_a.h5 -n 3000 --size 256 --seed 1      # data (micro)
    magnetohom train-general runs/general runs/mix256_a.h5 runs/mix128_a.h5 --epochs 14
    magnetohom calibrate-general runs/general runs/mix256_cal.h5 runs/ood_cal256.h5

Training resumes from ``OUT/last.keras`` when killed (rerun the same command; a larger
``--epochs`` continues a finished run). Calibration rows must not be training rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from magnetohom.errors import InputError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train-general`` and ``calibrate-general`` commands."""
    from surrogate.general import CONTRAST_EDGES, HEADS, LOSSES, SIZE_EDGES

    p = subparsers.add_parser(
        "train-general",
        help="train the general model on mixed datasets (resumable)",
        description="Train the general 2D model (surrogate.general) on datasets made by "
        "`magnetohom dataset-mixed`.",
    )
    p.add_argument("output", help="model directory")
    p.add_argument("data", nargs="+", help="mixed dataset files")
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--val-fraction", type=float, default=0.06)
    p.add_argument(
        "--width",
        type=int,
        default=None,
        help="channels (default 24, or --init's own; more than --init's widens it)",
    )
    p.add_argument(
        "--depth",
        type=int,
        default=None,
        help="3x3 convolutions (default 4, or --init's own; more than --init's deepens it)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="start from this general model's weights (fine-tuning; a fresh schedule)",
    )
    p.add_argument(
        "--coarse",
        choices=tuple(HEADS),
        default="faces",
        help="coarse solve: face conductances, or a full tensor per block on a Q1 grid",
    )
    p.add_argument(
        "--loss",
        choices=LOSSES,
        default="mse",
        help="fit loss on the log-components: squares, or Huber (absolute beyond a 1 %% error)",
    )
    p.add_argument(
        "--interpolate",
        type=float,
        default=1.0,
        metavar="T",
        help="keep T x the best weights + (1 - T) x the --init model's (weight-space ensemble "
        "of the fine-tuned and the starting network; default 1: the best weights)",
    )
    p.set_defaults(handler=_train)
    c = subparsers.add_parser(
        "calibrate-general",
        help="calibrate the general model's error bound on held-out mixed datasets",
    )
    c.add_argument("model", help="model directory")
    c.add_argument("data", nargs="+", help="mixed dataset files the model was not trained on")
    c.add_argument(
        "--tta", type=int, default=8, choices=(1, 2, 4, 8), help="symmetries averaged (default 8)"
    )
    c.add_argument("--coverage", type=float, default=0.995, help="per band (default 0.995)")
    c.add_argument("--beta", type=float, default=0.002)
    c.add_argument(
        "--contrast-edges",
        default=_joined(CONTRAST_EDGES),
        help="band edges of |log10 contrast|, one alpha per band (default %(default)s; '' for "
        "one)",
    )
    c.add_argument(
        "--size-edges",
        default=_joined(SIZE_EDGES),
        help="class edges of the cell side sqrt(n1 n2) in pixels, one alpha per class and band "
        "(default %(default)s; '' for one class)",
    )
    which = c.add_mutually_exclusive_group()
    which.add_argument(
        "--default",
        dest="default",
        action="store_const",
        const=True,
        default=None,
        help="make this calibration (and its --tta) the model's default",
    )
    which.add_argument(
        "--keep-default",
        dest="default",
        action="store_const",
        const=False,
        help="keep the model's default calibration; store this one beside it, used by answers "
        "asked for with this --tta (default: replace the default when it has this --tta or "
        "there is none, else keep it)",
    )
    c.set_defaults(handler=_calibrate)


def _import_tensorflow() -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow  # noqa: F401  (before anything that may load DOLFINx)


def _train(args: argparse.Namespace) -> int:
    for name in ("epochs", "batch_size", "width", "depth"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1: got {getattr(args, name)}")
    if not (args.learning_rate > 0 and args.learning_rate < 1):
        raise InputError(f"--learning-rate must be in (0, 1): got {args.learning_rate}")
    if not (0 <= args.val_fraction < 0.5):
        raise InputError(f"--val-fraction must be in [0, 0.5): got {args.val_fraction}")
    if not (0 < args.interpolate <= 1):
        raise InputError(f"--interpolate must be in (0, 1]: got {args.interpolate}")
    if args.interpolate < 1 and args.init is None:
        raise InputError("--interpolate below 1 needs --init: the model to interpolate with")
    _import_tensorflow()
    from surrogate.general import train_general

    history = train_general(
        args.data,
        args.output,
        val_fraction=args.val_fraction,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        width=args.width,
        depth=args.depth,
        seed=args.seed,
        init=args.init,
        coarse=args.coarse,
        loss=args.loss,
        interpolate=args.interpolate,
    )
    print(f"{args.output}: best validation error {100 * min(history['val_mape']):.2f} %")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    if not (0.5 <= args.coverage < 1):
        raise InputError(f"--coverage must be in [0.5, 1): got {args.coverage}")
    if not (0 <= args.beta < 1):
        raise InputError(f"--beta must be in [0, 1): got {args.beta}")
    from surrogate.general import calibrate  # answers run in numpy: no TensorFlow needed

    edges = _numbers(args.contrast_edges, "--contrast-edges")
    sizes = _numbers(args.size_edges, "--size-edges")
    cal = calibrate(
        args.model,
        args.data,
        tta=args.tta,
        coverage=args.coverage,
        beta=args.beta,
        contrast_edges=edges,
        size_edges=sizes,
        default=args.default,
    )
    print(
        f"{args.model}: alpha {cal['alpha']} (|log10 contrast| bands split at "
        f"{cal['contrast_edges']}, cell sides split at {cal['size_edges']} px), beta "
        f"{cal['beta']}, tta {cal['tta']}: the bound covers "
        f"{100 * cal['coverage']:.1f} % of {cal['n']} calibration rows"
    )
    default = json.loads((Path(args.model) / "metadata.json").read_text())["calibration"]
    if default["tta"] != cal["tta"]:
        print(f"{args.model}: kept beside the default calibration (tta {default['tta']})")
    return 0


def _numbers(text: str, option: str) -> list[float]:
    """``"1,2,3"`` -> ``[1.0, 2.0, 3.0]`` (``""`` -> ``[]``); anything else a clear error."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{option} must be numbers separated by commas: got {text!r}") from None


def _joined(numbers) -> str:
    """``(1.0, 2.0, 3.0)`` -> ``"1,2,3"`` (what :func:`_numbers` reads back)."""
    return ",".join(f"{v:g}" for v in numbers)
