"""Command-line options for reading micrographs as phase images, shared by every command.

``magnetohom homogenize``, ``bounds``, ``segment`` and ``rve`` (and ``predict``, which takes
binary images) read their image files through these two functions, so every command segments a
greyscale micrograph the same way::

    from micro.phase_args import add_phase_arguments, phases_from_args

    add_phase_arguments(parser)                 # --mu, --threshold, --invert, --preview
    add_phase_arguments(parser, mu=False)       # two phases only (e.g. the CNN's binary input)
    ...
    seg, mu = phases_from_args(path, args, dim=2)   # Segmentation, (k,) permeabilities

:func:`phases_from_args` prints and writes nothing: once a file has been processed the caller
writes its preview with :func:`write_preview` (``--preview DIR``; nothing for a failed file) and
prints the volume fractions (``seg.volume_fractions``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from magnetohom.errors import InputError

__all__ = [
    "add_phase_arguments",
    "parse_floats",
    "phase_mu",
    "phases_from_args",
    "preview_path",
    "write_preview",
]


def parse_floats(text: str, *, what: str) -> list[float]:
    """``"1,50,1000"`` -> ``[1.0, 50.0, 1000.0]``; one-line :class:`InputError` otherwise."""
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{what} must be comma-separated numbers: got {text!r}") from None
    if not values:
        raise InputError(f"{what} is empty")
    return values


def add_phase_arguments(p: argparse.ArgumentParser, *, mu: bool = True) -> None:
    """Add ``--mu`` (if ``mu``), ``--threshold``, ``--invert`` and ``--preview`` to a parser.

    Parameters
    ----------
    p : argparse.ArgumentParser
    mu : bool
        Offer ``--mu MU0,MU1,...`` (k phases); without it images are segmented into two phases.
    """
    if mu:
        p.add_argument(
            "--mu",
            default=None,
            metavar="MU0,MU1,...",
            help="one relative permeability per phase label (k phases; label 0 = brightest "
            "grey class, see --invert); overrides --mu-matrix/--mu-inclusion",
        )
    p.add_argument(
        "--threshold",
        default=None,
        metavar="T[,T2,...]",
        help="grey-level threshold(s) of greyscale images, k-1 of them (default: Otsu, "
        "multi-level Otsu for k > 2)",
    )
    p.add_argument(
        "--invert",
        action="store_true",
        help="reverse the phase order: the darkest class is label 0 (default: the brightest, "
        "so dark = inclusion as in the paper's 8-bit images)",
    )
    p.add_argument(
        "--preview",
        default=None,
        metavar="DIR",
        help="write DIR/<name>_phases.png: the image with the phase boundaries drawn",
    )


def phase_mu(args: argparse.Namespace) -> np.ndarray:
    """The permeability of every phase: ``--mu``, else ``(--mu-matrix, --mu-inclusion)``.

    Returns
    -------
    ndarray, shape (k,), float64
    """
    from micro.validate import check_mu, check_phase_mu

    if getattr(args, "mu", None) is not None:
        return check_phase_mu(parse_floats(args.mu, what="--mu"))
    if hasattr(args, "mu_matrix"):
        return np.array(check_mu(args.mu_matrix, args.mu_inclusion))
    return np.array([1.0, 2.0])  # two phases; the values are not used


def preview_path(directory: str | Path, image_path: str | Path) -> Path:
    """``DIR/<stem>_phases.png`` for an image file."""
    return Path(directory) / f"{Path(image_path).stem}_phases.png"


def phases_from_args(path: str | Path, args: argparse.Namespace, *, dim: int | None = None):
    """Read ``path`` as a phase image with the options of :func:`add_phase_arguments`.

    Parameters
    ----------
    path : str or path-like
        Image file.
    args : argparse.Namespace
        Parsed options (``mu``/``mu_matrix``/``mu_inclusion``, ``threshold``, ``invert``,
        ``preview``).
    dim : {2, 3}, optional
        Required dimension.

    Returns
    -------
    seg : micro.segmentation.Segmentation
    mu : ndarray, shape (k,), float64
        Permeability per phase label.
    """
    from micro.segmentation import load_phases

    mu = phase_mu(args)
    threshold = None
    if getattr(args, "threshold", None) is not None:
        threshold = parse_floats(args.threshold, what="--threshold")
    seg = load_phases(
        path,
        n_phases=mu.size,
        threshold=threshold,
        invert=bool(getattr(args, "invert", False)),
        dim=dim,
    )
    return seg, mu


def write_preview(seg, path: str | Path, args: argparse.Namespace) -> Path | None:
    """With ``--preview DIR``, write ``DIR/<stem>_phases.png`` for the image ``path``."""
    from micro.segmentation import save_preview

    if not getattr(args, "preview", None):
        return None
    return save_preview(seg, preview_path(args.preview, path))
