"""``magnetohom segment | rve``: micrographs as phase images, and how large a window must be.

Registered by :mod:`micro.cli` (its ``register`` finds ``_add_segment`` and ``_add_rve``); the
image options are those of :mod:`micro.phase_args`, shared with ``homogenize`` and ``bounds``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from magnetohom.errors import InputError
from micro.phase_args import add_phase_arguments, run_batch
from micro.phase_args import fractions_text as _fractions_text

__all__: list[str] = []  # command-line only: see micro.cli

_FORMAT_SUFFIX = {"npy": ".npy", "png": ".png", "tiff": ".tif"}


def _add_mu_arguments(p: argparse.ArgumentParser) -> None:
    add_phase_arguments(p, mu_pair=True)


# ----------------------------------------------------------------------------------------------
# segment


def _add_segment(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "segment",
        help="segment greyscale micrographs into phase images (Otsu / multi-level Otsu)",
        description="Segment each image into k phases (k = number of --mu values, default 2) "
        "and write the phase image (.npy: uint8 labels; .png/.tif: grey levels, brightest = "
        "label 0; for two phases the paper's 0 = inclusion, 255 = matrix) and a preview PNG "
        "with the phase boundaries (<OUT>_phases.png, or --preview DIR). Prints the phase "
        "volume fractions and thresholds.",
    )
    p.add_argument("files", nargs="+", metavar="IMAGE", help="greyscale images (.png, .tif, .npy)")
    p.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="OUT",
        help="output file (one image) or directory (<stem>_phases.npy per image; --format)",
    )
    p.add_argument(
        "--format", choices=tuple(_FORMAT_SUFFIX), default=None, help="output format (default npy)"
    )
    _add_mu_arguments(p)
    p.set_defaults(handler=_run_segment)


def _save_phases(path: Path, labels: np.ndarray, k: int) -> None:
    from micro.imageio import IMAGE_SUFFIXES

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"unsupported output format {path.suffix!r} (use .npy, .png or .tif)")
    if path.suffix.lower() == ".png" and labels.ndim != 2:
        raise InputError("PNG holds 2D images only; use .tif or .npy for 3D")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npy":
        np.save(path, labels.astype(np.uint8))
        return
    grey = np.rint(255.0 * (k - 1 - labels.astype(np.float64)) / (k - 1)).astype(np.uint8)
    if path.suffix.lower() == ".png":
        from PIL import Image

        Image.fromarray(grey, mode="L").save(path)
    else:
        import tifffile

        tifffile.imwrite(path, grey, photometric="minisblack")


def _run_segment(args: argparse.Namespace) -> int:
    from micro.imageio import IMAGE_SUFFIXES
    from micro.phase_args import phase_mu, phases_from_args
    from micro.segmentation import save_preview

    phase_mu(args)
    out = Path(args.out)
    single = out.suffix.lower() in IMAGE_SUFFIXES
    if single and len(args.files) != 1:
        raise InputError(f"-o {out} names a file; with {len(args.files)} images give a directory")
    ext = _FORMAT_SUFFIX[args.format or "npy"]

    def work(name: str) -> None:
        seg, _ = phases_from_args(name, args)
        target = out if single else out / f"{Path(name).stem}_phases{ext}"
        preview = (
            Path(args.preview) / f"{Path(name).stem}_phases.png"
            if args.preview
            else target.with_name(f"{target.stem}_preview.png")
        )
        _save_phases(target, seg.labels, seg.n_phases)
        save_preview(seg, preview)
        t = ", ".join(f"{v:g}" for v in seg.thresholds) or "-"
        print(
            f"{name}  -> {target}  phases={seg.n_phases}  method={seg.method}  thresholds={t}  "
            f"volume_fractions={_fractions_text(seg.volume_fractions)}  preview={preview}",
            flush=True,
        )

    return run_batch("segment", args.files, work)


# ----------------------------------------------------------------------------------------------
# rve


def _add_rve(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rve",
        help="how large must the window be? UNBC/PBC/UDBC tensors of growing windows",
        description="Cut square (cubic) windows of growing size at random positions of a large "
        "image, compute their UNBC, PBC and UDBC apparent tensors, and report per size the "
        "mean and scatter, the relative UDBC-UNBC gap with its fitted decay rate, and the "
        "smallest window whose mean gap is below --tol. Writes OUT/rve.png and OUT/rve.json.",
    )
    p.add_argument("image", metavar="IMAGE", help="large image (.npy, .png, .tif)")
    p.add_argument(
        "--sizes",
        default=None,
        metavar="S1,S2,...",
        help="window sides in pixels (default: powers of two from 8 up to the image side)",
    )
    p.add_argument("--windows", type=int, default=8, help="windows per size (default 8)")
    p.add_argument("--tol", type=float, default=0.05, help="tolerance on the gap (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of the window positions")
    p.add_argument("-o", "--out", required=True, metavar="OUTDIR", help="output directory")
    _add_mu_arguments(p)
    p.set_defaults(handler=_run_rve)


def _run_rve(args: argparse.Namespace) -> int:
    import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

    from micro.phase_args import parse_floats, phases_from_args, write_preview
    from micro.rve import plot_rve, rve_study

    seg, mu = phases_from_args(args.image, args)
    side = min(seg.labels.shape)
    if args.sizes:
        sizes = [int(v) for v in parse_floats(args.sizes, what="--sizes")]
    else:
        sizes = [2**k for k in range(3, 20) if 2**k <= side]
    study = rve_study(
        mu[seg.labels], sizes=sizes, windows=args.windows, tol=args.tol, rng=args.seed
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = study.as_dict()
    summary.update(
        {
            "image": str(args.image),
            "mu": mu.tolist(),
            "volume_fractions": seg.volume_fractions.tolist(),
        }
    )
    (out / "rve.json").write_text(json.dumps(summary, indent=1))
    plot_rve(study, out / "rve.png", title=f"{Path(args.image).name}: apparent tensors")
    write_preview(seg, args.image, args)
    print(f"{'size':>6} {'UNBC':>18} {'PBC':>18} {'UDBC':>18} {'width':>16} order")
    for row in summary["sizes"]:
        cols = "".join(
            f"{row[f'{bc}_mean']:>10.5g}±{row[f'{bc}_std']:<7.2g}"
            for bc in ("neumann", "periodic", "dirichlet")
        )
        order = "ok" if row["ordered"] else "VIOLATED"
        print(f"{row['size']:>6} {cols} {row['width_mean']:>8.4g}±{row['width_std']:<7.2g} {order}")
    rve = study.rve_size
    print(
        f"gap ~ size^-{study.rate:.3f}; smallest window with mean gap <= {study.tol:g}: "
        f"{rve if rve is not None else 'none of those tried'}; wrote {out / 'rve.png'}",
        flush=True,
    )
    return 0
