"""MAPE of trained models on a dataset's test split, binned by volume fraction.

    python bench/bench_accuracy_vf.py default surrogate/models/fast --data runs/data_mono.h5

Prints, per model, the MAPE over the diagonal components (percent) in each volume-fraction bin
with the bin's largest error; ``--json FILE`` writes the same numbers.

``--rows-from MODEL`` evaluates every model on the held-out rows (``--split``) recorded by MODEL:
for a dataset file regenerated with the same command and seed (same images and labels, other
bytes), which ``magnetohom evaluate`` does not recognise as the models' training file.

    python bench/bench_accuracy_vf.py overlapping runs/models/ov_solve_a \
        --data runs/data_overlap.h5 --rows-from runs/models/ov_solve_a

``--any-size`` runs coarse-solve models on the dataset's cell size with their own weights
(``magnetohom evaluate --any-size``), e.g. the 48^3 ``spheres`` network on 100^3 cells:

    python bench/bench_accuracy_vf.py spheres --data runs/data_sphere100.h5 --any-size
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("models", nargs="+", help="registry names or model directories")
    ap.add_argument("--data", required=True, help="labelled dataset (HDF5)")
    ap.add_argument("--bins", type=int, default=6)
    ap.add_argument("--tta", action="store_true", help="test-time augmentation")
    ap.add_argument("--json", default=None, help="write results here")
    ap.add_argument("--rows-from", default=None, help="use the split rows recorded by this model")
    ap.add_argument("--split", choices=("test", "val"), default="test")
    ap.add_argument(
        "--any-size", action="store_true", help="coarse-solve models on the data's cell size"
    )
    args = ap.parse_args(argv)

    import numpy as np

    from surrogate.data import load_labeled
    from surrogate.evaluation import evaluate, r2_score

    data = load_labeled(args.data)
    keep = None
    if args.rows_from:
        from surrogate.registry import load_model

        split = load_model(args.rows_from).metadata.get("split") or {}
        keep = np.asarray(split.get(f"{args.split}_rows", []), dtype=int)
        if keep.size == 0 or not np.isin(keep, data.indices).all():
            raise SystemExit(
                f"error: {args.rows_from} records no {args.split} rows for {args.data}"
            )
    results = []
    for model in args.models:
        ev = evaluate(
            model,
            args.data,
            tta=args.tta,
            split="all" if keep is not None else "test",
            any_size=args.any_size,
        )
        pick = np.isin(ev.rows, keep) if keep is not None else np.ones(len(ev.rows), bool)
        d = data.dim
        rows = ev.rows[pick]
        vf = np.asarray(data.volume_fraction)[rows]
        true, pred = ev.y_true[pick], ev.y_pred[pick]
        err = 100 * np.abs(pred[:, :d] - true[:, :d]) / np.abs(true[:, :d])
        r2 = r2_score(true, pred)
        edges = np.linspace(vf.min(), vf.max() + 1e-12, args.bins + 1)
        which = np.clip(np.digitize(vf, edges) - 1, 0, args.bins - 1)
        bins = [
            {
                "vf": [float(edges[b]), float(edges[b + 1])],
                "n": int(np.sum(which == b)),
                "mape": float(err[which == b].mean()) if np.any(which == b) else None,
                "max": float(err[which == b].max()) if np.any(which == b) else None,
            }
            for b in range(args.bins)
        ]
        per = ", ".join(
            f"{name} {m:.2f} % (R2 {r:.4f})"
            for name, m, r in zip(ev.components[:d], err.mean(0), r2[:d], strict=True)
        )
        results.append(
            {"model": model, "mape": float(err.mean()), "per_component": per, "bins": bins}
        )
        print(f"{model}: MAPE {err.mean():.3f} % over the diagonal, N = {len(vf)}: {per}")
        for b in bins:
            if b["n"]:
                (lo, hi), n = b["vf"], b["n"]
                print(f"  vf {lo:.2f}-{hi:.2f}: {b['mape']:.2f} % (max {b['max']:.1f} %, N = {n})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
