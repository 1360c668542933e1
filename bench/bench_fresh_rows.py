"""Is a dataset file fresh for a model? MAPE on the rows its split calls train / val / test.

A model scores its own training images better than held-out ones (a `default` network about 8 %
better, session 4). On a file whose SHA-256 differs from the one in the model's metadata,
``magnetohom evaluate`` scores every row; this benchmark says whether that file nevertheless
holds the training images (same seeds, same generator): if the rows that the model's split
calls training score no better than the others, the network has not seen them.

    python bench/bench_fresh_rows.py default runs/data_mono.h5
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("model", help="model name or directory")
    ap.add_argument("data", help="labeled dataset file (HDF5)")
    args = ap.parse_args(argv)

    import numpy as np
    import tensorflow  # noqa: F401  (before h5py/dolfinx, see README)

    from surrogate.data import held_out_rows, load_labeled
    from surrogate.provider import CNNProvider

    provider = CNNProvider(args.model, spread_threshold=None)
    split = provider.bundle.metadata["split"]
    data = load_labeled(args.data)  # the labeled rows, which the split rows index
    mu = data.mu_eff
    pred = provider(data.images)
    d = provider.dim
    diag = np.arange(d)
    err = 100.0 * np.abs(pred[:, diag, diag] - mu[:, diag, diag]) / mu[:, diag, diag]
    n = len(mu)
    held = held_out_rows(split, data.indices)  # file rows -> positions in the labeled arrays
    val = np.flatnonzero(np.isin(data.indices, held["val"]))
    test = np.flatnonzero(np.isin(data.indices, held["test"]))
    val, test = val[val < n], test[test < n]
    train = np.setdiff1d(np.arange(n), np.r_[val, test])
    print(f"{args.model} on {args.data}: MAPE % of the diagonal (± standard error)")
    for name, rows in (("train rows", train), ("val rows", val), ("test rows", test)):
        if len(rows) == 0:
            continue
        e = err[rows]
        cells = "  ".join(
            f"mu{i + 1}{i + 1} {e[:, i].mean():.3f} ± {e[:, i].std() / np.sqrt(len(rows)):.3f}"
            for i in range(d)
        )
        print(f"{name:>10} (N = {len(rows):5d}): {cells}")
    cells = "  ".join(f"mu{i + 1}{i + 1} {err[:, i].mean():.3f}" for i in range(d))
    print(f"{'all':>10} (N = {n:5d}): {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
