"""Command-line options for reading micrographs as phase images, shared by every command.

``magnetohom homogenize``, ``bounds``, ``segment`` and ``rve`` (and ``predict``, which takes
binary images) read their image files through these two functions, so every command segments a
greyscale micrograph the same way::

    from micro.phase_args import add_phase_arguments, phases_from_args

    add_phase_arguments(parser)                 # --mu, --threshold, --invert, --preview
    add_phase_arguments(parser, mu=False)       # two phases only (e.g. the CNN's binary input)
    ...
    def work(path):                             # one file: read, compute, then print/write
        seg, mu = phases_from_args(path, args, dim=2)   # Segmentation, (k,) permeabilities
        ...
        write_preview(seg, path, args)
    return run_batch("predict", args.files, work)   # bad files reported, the others go on

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
    "fractions_text",
    "parse_floats",
    "phase_mu",
    "phases_from_args",
    "preview_path",
    "run_batch",
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


def add_phase_arguments(
    p: argparse.ArgumentParser, *, mu: bool = True, mu_pair: bool = False
) -> None:
    """Add ``--mu`` (if ``mu``), ``--threshold``, ``--invert`` and ``--preview`` to a parser.

    Parameters
    ----------
    p : argparse.ArgumentParser
    mu : bool
        Offer ``--mu MU0,MU1,...`` (k phases); without it images are segmented into two phases.
    mu_pair : bool
        Also offer ``--mu-matrix`` (default 1) and ``--mu-inclusion`` (default 250), the two
        phases' permeabilities when ``--mu`` is not given.
    """
    if mu_pair:
        p.add_argument(
            "--mu-matrix", type=float, default=1.0, help="matrix permeability (default 1)"
        )
        p.add_argument(
            "--mu-inclusion",
            type=float,
            default=250.0,
            help="inclusion permeability (default 250)",
        )
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


def fractions_text(fractions) -> str:
    """Phase fractions as ``0.7000/0.3000``."""
    return "/".join(f"{f:.4f}" for f in fractions)


def run_batch(command: str, files: list, work) -> int:
    """Run ``work(path)`` for every file; a bad file is reported and the others go on.

    A :class:`~magnetohom.errors.MagnetohomError` or a missing file gives one line
    ``magnetohom COMMAND: error: PATH: ...`` on stderr.  ``work`` must print and write its
    results only once they are all computed, so nothing appears for a failed file.

    Returns
    -------
    int
        0, or 2 when any file failed (the CLI's exit code).
    """
    import sys

    from magnetohom.errors import MagnetohomError

    failed = 0
    for path in files:
        try:
            work(path)
        except FileNotFoundError as exc:
            msg = f"no such file: {exc.filename}"
        except MagnetohomError as exc:
            msg = str(exc)
            msg = msg if msg.startswith(str(path)) else f"{path}: {msg}"
        else:
            continue
        print(f"magnetohom {command}: error: {msg}", file=sys.stderr, flush=True)
        failed += 1
    return 2 if failed else 0
