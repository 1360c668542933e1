"""MAPE of trained models on a dataset's test split, binned by volume fraction.

    python bench/bench_accuracy_vf.py default surrogate/models/fast --data runs/data_mono.h5

Prints, per model, the MAPE over the diagonal components (percent) in each volume-fraction bin
with the bin's largest error; ``--json FILE`` writes the same numbers.
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
    args = ap.parse_args(argv)

    import numpy as np

    from surrogate.data import load_labeled
    from surrogate.evaluate import evaluate

    data = load_labeled(args.data)
    results = []
    for model in args.models:
        ev = evaluate(model, args.data, tta=args.tta)
        d = data.dim
        vf = np.asarray(data.volume_fraction)[ev.rows]
        err = 100 * np.abs(ev.y_pred[:, :d] - ev.y_true[:, :d]) / np.abs(ev.y_true[:, :d])
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
        results.append({"model": model, "mape": float(err.mean()), "bins": bins})
        print(f"{model}: MAPE {err.mean():.3f} % over the diagonal, N = {len(vf)}")
        for b in bins:
            if b["n"]:
                (lo, hi), n = b["vf"], b["n"]
                print(f"  vf {lo:.2f}-{hi:.2f}: {b['mape']:.2f} % (max {b['max']:.1f} %, N = {n})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
