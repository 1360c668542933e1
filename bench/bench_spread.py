"""Does the ensemble spread point at the large errors? (test split of a labelled dataset)

    python bench/bench_spread.py default --data runs/data_mono.h5
    python bench/bench_spread.py overlapping --data runs/data_overlap.h5 --tta   # one network

Predicts the test split with a model's ensemble (``CNNProvider.predict``), then prints the
distribution of the relative spread, its rank correlation with the error (largest diagonal
relative error per sample), and for the samples of largest spread (as the hybrid provider
would send them to FE with ``spread_threshold`` at that quantile): their mean error, the mean
error of the others, the share of the 5 % worst samples among them, and the MAPE per diagonal
component of the hybrid answer (the sent samples answered by FE, i.e. by their labels).
With ``--tta`` the spread is taken over the grid symmetries as well (the only spread a
one-network model has), as ``magnetohom predict --tta`` reports it.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "model", help="registry name or model directory (two or more members, or --tta)"
    )
    ap.add_argument("--data", required=True, help="labelled dataset the model was trained on")
    ap.add_argument("--json", default=None, help="write the numbers here")
    ap.add_argument("--tta", action="store_true", help="spread over the grid symmetries too")
    ap.add_argument(
        "--shares",
        type=float,
        nargs="+",
        default=[0.05, 0.1, 0.2],
        help="shares of the test split sent to FE, largest spread first",
    )
    args = ap.parse_args()

    import tensorflow  # noqa: F401  (before h5py/dolfinx, see README)
    from scipy.stats import spearmanr

    from surrogate.data import load_labeled, split_indices
    from surrogate.provider import CNNProvider

    provider = CNNProvider(args.model, spread_threshold=None, tta=args.tta)
    meta = provider.bundle.metadata
    data = load_labeled(args.data)
    test = data.subset(split_indices(len(data), seed=meta["split"]["seed"]).test)
    pred = provider.predict(test.images)
    d = pred.mu_eff.shape[-1]
    diag = np.arange(d)
    rel = np.abs(pred.mu_eff[:, diag, diag] / test.mu_eff[:, diag, diag] - 1)  # (N, d)
    err = rel.max(axis=1)
    spread = pred.relative_spread
    worst = np.argsort(-err)[: max(1, len(err) // 20)]
    order = np.argsort(-spread)
    rows = []
    for q in args.shares:
        k = max(1, int(round(q * len(err))))
        top, rest = order[:k], order[k:]
        hybrid = rel.copy()
        hybrid[top] = 0.0  # answered by the FE solver (the labels' own solver)
        rows.append(
            {
                "share_sent": q,
                "spread_threshold": float(spread[order[k - 1]]),
                "mean_error_sent_percent": 100 * float(err[top].mean()),
                "mean_error_kept_percent": 100 * float(err[rest].mean()),
                "worst_5_percent_caught": float(np.isin(worst, top).mean()),
                "hybrid_mape_percent": [100 * float(v) for v in hybrid.mean(axis=0)],
            }
        )
    out = {
        "model": args.model,
        "n_test": int(len(err)),
        "members": int(meta.get("ensemble", 1)),
        "tta": bool(args.tta),
        "spread_median": float(np.median(spread)),
        "spread_p90": float(np.quantile(spread, 0.9)),
        "spread_max": float(spread.max()),
        "spearman_spread_error": float(spearmanr(spread, err).correlation),
        "mape_percent": [100 * float(v) for v in rel.mean(axis=0)],
        "by_share": rows,
    }
    print(
        f"{args.model}: {out['members']} members{' x symmetries' if args.tta else ''}, "
        f"N = {out['n_test']}; relative spread median "
        f"{out['spread_median']:.4f}, p90 {out['spread_p90']:.4f}, max {out['spread_max']:.4f}; "
        f"Spearman(spread, error) = {out['spearman_spread_error']:.2f}; MAPE "
        + " / ".join(f"{100 * v:.2f}" for v in rel.mean(axis=0))
        + " %"
    )
    for r in rows:
        print(
            f"  largest {r['share_sent']:.0%} of spread (threshold {r['spread_threshold']:.4f}): "
            f"mean error {r['mean_error_sent_percent']:.2f} % vs {r['mean_error_kept_percent']:.2f}"
            f" % for the rest; {r['worst_5_percent_caught']:.0%} of the 5 % worst samples; "
            "hybrid MAPE " + " / ".join(f"{v:.2f}" for v in r["hybrid_mape_percent"]) + " %"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
