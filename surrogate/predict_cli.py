"""``magnetohom predict``: effective permeability of image files by a surrogate, with error bounds.

Without ``--model`` the general model answers (:mod:`surrogate.general`): any 2D two-phase image,
any size, the phase permeabilities ``--mu-matrix`` / ``--mu-inclusion``, and a bound on the
relative error of every answer. ``--fallback fe --tolerance T`` answers from the FE
homogenization every image whose bound exceeds ``T``. A specialist model (``--model disks``,
``overlapping``, ``spheres``, ...) answers only for the materials it was trained for.

Files are read first; a file that cannot be read gets its one-line error on stderr and the others
are still answered (exit code 2 if any failed). Images of one shape are answered in one batch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from magnetohom.errors import InputError

__all__ = ["add_predict"]


def add_predict(subparsers: argparse._SubParsersAction, handler_prelude) -> None:
    """Add the ``predict`` command; ``handler_prelude(args)`` imports TensorFlow quietly (only
    specialist models need it: the general model answers in numpy)."""
    p = subparsers.add_parser(
        "predict",
        help="effective permeability of image files by a surrogate, with an error bound",
        description="Print mu_eff for each image in FILE... (8-bit images: 0 = inclusion, "
        "255 = matrix; .npy: bool/0-1, 1 = inclusion). Default model: 'general' (any 2D "
        "two-phase image and size, any phase permeabilities, an error bound per answer).",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="image files")
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help="model (default: 'general'; 'disks' = the specialist for the paper's disks)",
    )
    p.add_argument("--mu-matrix", type=float, default=1.0, help="matrix permeability (default 1)")
    p.add_argument(
        "--mu-inclusion", type=float, default=250.0, help="inclusion permeability (default 250)"
    )
    p.add_argument(
        "--fallback",
        choices=("fe",),
        default=None,
        help="answer from FE every image whose error bound exceeds --tolerance",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="relative error tolerance of --fallback (default 0.01)",
    )
    p.add_argument(
        "--tta",
        nargs="?",
        type=int,
        const=-1,
        default=None,
        metavar="N",
        help="average over N symmetries of the grid (general: 1, 2, 4, 8, default the "
        "calibrated number, 8; another one leaves only the rigorous line bound; specialists: "
        "all)",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--any-size",
        action="store_true",
        help="coarse-solve specialist models: also cells of other sides (same weights)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per image and line")
    from micro.phase_args import add_phase_arguments

    add_phase_arguments(p, mu=False)  # greyscale images: --threshold, --invert, --preview

    def handler(args: argparse.Namespace) -> int:
        return _predict(args, handler_prelude)

    p.set_defaults(handler=handler)


def _read(path: str, args: argparse.Namespace) -> np.ndarray:
    """The image(s) of one file as bool ``(N, n1, ...)`` (a ``.npy`` may hold a batch).

    Greyscale PNG/TIFF files are segmented into two phases (Otsu, or ``--threshold``; the
    darker phase is the inclusion unless ``--invert``), with a preview under ``--preview``.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{path} is a directory, not an image file")
    if not p.exists():
        raise InputError(f"{path}: no such file")
    if p.suffix.lower() != ".npy":
        from micro.phase_args import phases_from_args, write_preview

        seg, _ = phases_from_args(path, args)
        write_preview(seg, path, args)
        return np.asarray(seg.labels).astype(bool)[None]
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read image {path}: {str(exc).splitlines()[0]}") from None
    if arr.ndim not in (2, 3, 4):
        raise InputError(f"{path}: expected a 2D or 3D image or a batch, got shape {arr.shape}")
    if arr.dtype != bool:
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise InputError(f"{path}: image must be bool or 0/1 numbers, got dtype {arr.dtype}")
        if arr.size and not np.all((arr == 0) | (arr == 1)):
            raise InputError(f"{path}: image is not binary (expected bool or 0/1, 1 = inclusion)")
    if arr.size == 0:
        raise InputError(f"{path}: empty image (shape {arr.shape})")
    return arr.astype(bool)


def _as_batch(arr: np.ndarray, dim: int, path: str) -> np.ndarray:
    if arr.ndim == dim:
        return arr[None]
    if arr.ndim == dim + 1:
        return arr
    raise InputError(f"{path}: expected {dim}D image(s), got an array of shape {arr.shape}")


def _predict(args: argparse.Namespace, import_tensorflow) -> int:
    from surrogate.registry import GENERAL_MODEL, is_general

    model = args.model if args.model is not None else GENERAL_MODEL
    if not (np.isfinite(args.tolerance) and args.tolerance > 0):
        raise InputError(f"--tolerance must be a number > 0: got {args.tolerance}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1: got {args.batch_size}")
    if is_general(model):
        if args.any_size:
            raise InputError(
                "--any-size is for coarse-solve specialist models: the general "
                "model takes any size"
            )
        provider, dim = _general(args, model), 2
    else:
        import_tensorflow(args)  # before anything that may load DOLFINx
        provider, dim = _specialist(args, model), None
    dim = dim or provider.dim
    failed = 0
    groups: dict[tuple[int, ...], list[tuple[str, int, np.ndarray]]] = {}
    order: list[tuple[str, int]] = []
    for f in args.files:
        try:
            batch = _as_batch(_read(f, args), dim, f)
            if hasattr(provider, "check"):
                provider.check(batch)
        except InputError as exc:
            print(f"magnetohom predict: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        for i in range(batch.shape[0]):
            groups.setdefault(batch.shape[1:], []).append((f, i, batch[i]))
            order.append((f, i))
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for items in groups.values():
        images = np.stack([im for _, _, im in items])
        for start in range(0, len(items), 4096):
            part = items[start : start + 4096]
            try:
                answers = list(provider.rows(images[start : start + len(part)]))
            except InputError as exc:  # e.g. FE fallback of a cell it cannot take
                for f in dict.fromkeys(f for f, _, _ in part):
                    print(f"magnetohom predict: error: {f}: {exc}", file=sys.stderr)
                failed += 1
                continue
            for (f, i, _), row in zip(part, answers):
                rows[(f, i)] = {"file": f, "index": i, **row}
    order = [key for key in order if key in rows]
    counts = {f: 0 for f, _ in order}
    for f, _ in order:
        counts[f] += 1
    n_fe = 0
    for key in order:
        row = rows[key]
        n_fe += row["source"] == "fe"
        if args.json:
            print(json.dumps(row))
        else:
            f, i = key
            label = f if counts[f] == 1 else f"{f}[{i}]"
            mu = np.asarray(row["mu_eff"])
            text = "; ".join(" ".join(f"{v:.6g}" for v in r) for r in mu)
            bound = row["rel_error_bound"]
            btxt = "unbounded" if bound is None else f"{100 * bound:.2g} %"
            print(
                f"{label}: vf {row['volume_fraction']:.4f}  mu_eff [{text}]  "
                f"bound {btxt}  ({row['source']})"
            )
    if args.fallback and order:
        print(
            f"magnetohom predict: {n_fe} of {len(order)} answers from FE "
            f"(bound above tolerance {args.tolerance:g})",
            file=sys.stderr,
        )
    return 2 if failed else 0


class _GeneralRows:
    def __init__(self, provider):
        self.provider = provider
        self.dim = 2

    def check(self, batch: np.ndarray) -> None:
        if min(batch.shape[1:]) < 16:
            raise InputError(
                f"model {self.provider.model.name!r} takes 2D images of at least 16 x 16 pixels: "
                f"got {' x '.join(map(str, batch.shape[1:]))}"
            )

    def rows(self, images: np.ndarray):
        ans = self.provider.predict(images)
        for k in range(images.shape[0]):
            yield {
                "mu_eff": ans.mu_eff[k].tolist(),
                "rel_error_bound": _finite(ans.rel_error_bound[k]),
                "source": str(ans.source[k]),
                "volume_fraction": float(ans.volume_fraction[k]),
                "mu_matrix": self.provider.mu_matrix,
                "mu_inclusion": self.provider.mu_inclusion,
                "model": self.provider.model.name,
            }


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _general(args: argparse.Namespace, model: str) -> _GeneralRows:
    from surrogate.general import GeneralProvider

    tta = None if args.tta is None else (8 if args.tta == -1 else args.tta)
    provider = GeneralProvider(
        model,
        mu_matrix=args.mu_matrix,
        mu_inclusion=args.mu_inclusion,
        fallback=args.fallback,
        tolerance=args.tolerance,
        tta=tta,
        batch_size=args.batch_size,
    )
    return _GeneralRows(provider)


class _SpecialistRows:
    """A specialist CNN: its materials only; the bound is the rigorous line-bound one."""

    def __init__(self, cnn, args: argparse.Namespace, name: str):
        self.cnn = cnn
        self.dim = cnn.dim
        self.name = name
        self.args = args

    def check(self, batch: np.ndarray) -> None:
        try:
            self.cnn.check(batch)
        except InputError as exc:
            raise InputError(f"model {self.name!r}: {exc}") from None

    def rows(self, images: np.ndarray):
        pred = self.cnn.predict(images)
        mu = pred.mu_eff.copy()
        bound = _line_bound(images, mu, self.cnn.bundle.mu_matrix, self.cnn.bundle.mu_inclusion)
        source = np.full(len(mu), "cnn")
        if self.args.fallback == "fe":
            from surrogate.general import fall_back_to_fe

            source = fall_back_to_fe(
                images, mu, bound, mu_matrix=self.cnn.bundle.mu_matrix,
                mu_inclusion=self.cnn.bundle.mu_inclusion, tolerance=self.args.tolerance,
                rtol=1e-6,  # homogenize's default, as before
            )  # fmt: skip
        for k in range(len(mu)):
            yield {
                "mu_eff": mu[k].tolist(),
                "rel_error_bound": _finite(bound[k]),
                "source": str(source[k]),
                "volume_fraction": float(pred.volume_fraction[k]),
                "spread": pred.spread[k].tolist(),
                "flags": pred.flags_of(k),
                "mu_matrix": self.cnn.bundle.mu_matrix,
                "mu_inclusion": self.cnn.bundle.mu_inclusion,
                "model": self.name,
            }


def _line_bound(images, mu, mu_matrix, mu_inclusion) -> np.ndarray:
    """Rigorous relative error bound of 2D answers from the line bounds (inf for 3D)."""
    if images.ndim != 3:
        return np.full(mu.shape[0], np.inf)
    from surrogate.general_features import canonical_form, line_bound_error, line_bounds

    strong, mu_low, contrast = canonical_form(images, mu_matrix, mu_inclusion)
    return line_bound_error(mu, line_bounds(strong, contrast) * mu_low[:, None, None])


def _specialist(args: argparse.Namespace, model: str) -> _SpecialistRows:
    from surrogate.provider import CNNProvider

    tta = args.tta is not None
    cnn = CNNProvider(model, batch_size=args.batch_size, tta=tta, any_size=args.any_size)
    name = str(args.model)
    asked = (float(args.mu_matrix), float(args.mu_inclusion))
    have = (float(cnn.bundle.mu_matrix), float(cnn.bundle.mu_inclusion))
    if not np.allclose(asked, have, rtol=1e-12):
        raise InputError(
            f"model {name!r} answers only for mu_matrix {have[0]:g}, mu_inclusion {have[1]:g} "
            f"(asked: {asked[0]:g}, {asked[1]:g}); the general model (no --model) takes any "
            "materials"
        )
    return _SpecialistRows(cnn, args, name)
