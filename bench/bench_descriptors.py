"""How much of mu* do cheap global descriptors of an image explain? (a dataset's test split)

    python bench/bench_descriptors.py runs/data_overlap.h5 --coarse 64 32 --bins 9
    python bench/bench_descriptors.py runs/data_sphere48.h5 --coarse 24 16 --bins 6

A diagnostic for the CNNs, not a model: for each family of per-image descriptors it fits
``log mu_kk`` (k = 1, 2) by linear least squares on the training split (split seed 0, the
CNNs' split) and prints the MAPE on the test split, overall and per volume-fraction bin.
Families, each added to a polynomial of degree 4 in the volume fraction:

* ``vf``: nothing else (the volume fraction alone);
* ``connectivity``: the share of the inclusion phase in the largest cluster and in clusters
  that span the image along each axis, the same for the matrix phase, and the number of
  clusters of each phase (``scipy.ndimage.label``, face-connected), each times 1, vf, vf^2;
* ``coarse-M``: the homogenized tensor of the image coarsened to ``M^d`` blocks, each block
  given the harmonic and (separately) the geometric mean of its pixels' permeability, solved by
  :class:`micro.homogenization.Homogenizer` (``log mu_kk`` of both solves, times 1, vf, vf^2, and
  squared). The seconds per image of these solves are printed.

If a descriptor family explains much more than a CNN reaches on the same split, the network
does not extract that information from the image. ``--model NAME`` adds the CNN's own test
MAPE (``cnn``) and, for each coarse size, the same least squares with and without the CNN's
``log mu_kk`` (times 1 and vf) among the columns, both fitted on the *validation* split (the
network has seen the training split): if the CNN column does not lower the error, the network
knows nothing the coarse solve does not.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def connectivity(images):
    """``(N, 2 (d + 2))`` float: cluster statistics of both phases (see the module docstring)."""
    import numpy as np
    from scipy import ndimage

    def phase(im):
        lab, n = ndimage.label(im)
        total = max(int(im.sum()), 1)
        if n == 0:
            return [0.0] * (im.ndim + 2)
        largest = np.bincount(lab.ravel())[1:].max() / total
        span = []
        for axis in range(im.ndim):
            a, b = np.take(lab, 0, axis=axis), np.take(lab, -1, axis=axis)
            ids = np.intersect1d(a[a > 0], b[b > 0])
            span.append(np.isin(lab, ids).sum() / total)
        return [largest, *span, n / 100.0]

    return np.array([phase(im) + phase(~im) for im in images])


def coarse_solves(images, m, mu_matrix, mu_inclusion):
    """``(N, 2, d)`` log diagonal of the harmonic- and geometric-block solves; seconds/image."""
    import numpy as np

    from micro.analytic import reuss
    from micro.homogenization import Homogenizer

    n = images.shape[-1]
    if n % m:
        raise SystemExit(f"error: coarse size {m} does not divide the image side {n}")
    s = n // m
    d = images.ndim - 1
    solver = Homogenizer((m,) * d)
    out = np.empty((len(images), 2, d))
    t0 = time.perf_counter()
    for i, im in enumerate(images):
        f = im.reshape((m, s) * d).mean(axis=tuple(range(1, 2 * d, 2)))
        harm = reuss(f, mu_matrix, mu_inclusion, dim=d)
        geo = np.exp((1.0 - f) * np.log(mu_matrix) + f * np.log(mu_inclusion))
        for j, field in enumerate((harm, geo)):
            out[i, j] = np.log(np.diag(solver.solve_mu(field).mu_eff))
    return out, (time.perf_counter() - t0) / len(images)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("data", help="labelled 2D dataset (HDF5)")
    ap.add_argument("--coarse", type=int, nargs="*", default=[64, 32], help="coarse grid sides")
    ap.add_argument("--bins", type=int, default=9)
    ap.add_argument("--model", default=None, help="a trained model of this data to compare")
    ap.add_argument("--json", default=None, help="write the numbers here")
    args = ap.parse_args(argv)

    import numpy as np

    if args.model:
        import tensorflow  # noqa: F401  (before h5py/dolfinx, see README)

    from surrogate.data import load_labeled, split_indices

    data = load_labeled(args.data)
    d = data.dim
    images = np.asarray(data.images).astype(bool)
    vf = np.asarray(data.volume_fraction, dtype=float)
    y = np.log(np.stack([data.mu_eff[:, k, k] for k in range(d)], axis=1))
    split = split_indices(len(vf), seed=0)
    base = [vf**k for k in range(5)]
    # name -> (columns for each diagonal component, rows the least squares is fitted on,
    # seconds per image of the descriptors' solves); columns None: the CNN's own answer
    families = {"vf": ([base] * d, split.train, None)}
    conn = connectivity(images)
    extra = [conn[:, j] * vf**k for j in range(conn.shape[1]) for k in range(3)]
    families["connectivity"] = ([base + extra] * d, split.train, None)
    cnn = None
    if args.model:
        from surrogate.provider import CNNProvider

        mu = CNNProvider(args.model, spread_threshold=None)(images)
        cnn = np.log(np.stack([mu[:, k, k] for k in range(d)], axis=1))
        families = {"cnn": (None, None, None), **families}
    for m in args.coarse:
        logs, seconds = coarse_solves(images, m, data.mu_matrix, data.mu_inclusion)
        terms = [  # per component: both solves' log mu_kk, times 1, vf, vf^2, and squared
            [t for p in logs[:, :, k].T for t in (p, p * vf, p * vf**2, p**2)] for k in range(d)
        ]
        families[f"coarse-{m}"] = ([base + t for t in terms], split.train, seconds)
        if cnn is not None:  # a quadratic in vf only: 15 % of the rows
            small = [base[:3] + t for t in terms]
            families[f"coarse-{m}, val"] = (small, split.val, None)
            with_cnn = [[*c, cnn[:, k], cnn[:, k] * vf] for k, c in enumerate(small)]
            families[f"cnn+coarse-{m}, val"] = (with_cnn, split.val, None)

    edges = np.linspace(vf.min(), vf.max() + 1e-12, args.bins + 1)
    which = np.clip(np.digitize(vf[split.test], edges) - 1, 0, args.bins - 1)
    results = []
    for name, (cols, rows, seconds) in families.items():
        err = np.empty((split.test.size, d))
        for k in range(d):
            if cols is None:  # the CNN's own answer
                err[:, k] = np.abs(np.exp(cnn[split.test, k] - y[split.test, k]) - 1)
                continue
            X = np.stack(cols[k], axis=1)
            coef, *_ = np.linalg.lstsq(X[rows], y[rows, k], rcond=None)
            err[:, k] = np.abs(np.exp(X[split.test] @ coef - y[split.test, k]) - 1)
        bins = [
            100 * float(err[which == b].mean()) if np.any(which == b) else None
            for b in range(args.bins)
        ]
        row = {
            "descriptors": name,
            "mape": [100 * float(v) for v in err.mean(axis=0)],
            "bins": bins,
            "fitted_on": None if rows is None else ("train" if rows is split.train else "val"),
            "seconds_per_image": seconds,
        }
        results.append(row)
        cost = (
            f", {1e3 * row['seconds_per_image']:.1f} ms per image"
            if row["seconds_per_image"]
            else ""
        )
        comps = " / ".join(f"mu{k + 1}{k + 1}" for k in range(d))
        values = " / ".join(f"{v:.2f}" for v in row["mape"])
        print(f"{name:>20}: MAPE {comps} {values} %{cost}")
        per_bin = " ".join("-" if b is None else f"{b:.1f}" for b in bins)
        print(f"{'per bin':>29} {per_bin}")
    print("bins: " + " ".join(f"{a:.2f}-{b:.2f}" for a, b in itertools.pairwise(edges)))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "data": args.data,
                    "n_test": int(split.test.size),
                    "edges": edges.tolist(),
                    "results": results,
                },
                fh,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
