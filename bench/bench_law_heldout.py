"""Held-out errors of convex laws on a nonlinear dataset file, and where the worst points sit.

``python bench/bench_law_heldout.py DATA.h5 [--split|--train] LAW [LAW ...]``: all rows of
DATA.h5 (an independent test file), or the held-out (``--split``) / trained (``--train``) rows
of ``train-law``'s default split (seed 0, 20 %). LAW: a shipped name or a law directory.
Prints mean/max/p95 of |B_pred - B|/|B| and of the tangent error (also over the SVEs that the
law calls familiar, `ConvexLaw.familiar`, and how many it does not), the 5 worst points (|H|/H_k*,
direction, volume fraction, SVE), errors by |H|/H_k* octile and vf tercile, and the SVEs whose
max B error exceeds 5 %."""

import itertools
import json
import sys

import numpy as np

from micro.dataset_nl import load_nl_dataset
from surrogate.convex_law import dataset_cells, evaluate_convex_law, load_law

path = sys.argv[1]
laws = sys.argv[2:]
ds = load_nl_dataset(path)
cells = dataset_cells(ds)
n = len(ds)
idx = np.arange(n)
if "--split" in laws:  # reproduce train-law's held-out split (seed 0, 0.2)
    laws.remove("--split")
    perm = np.random.default_rng(0).permutation(n)
    idx = np.sort(perm[: max(1, int(round(0.2 * n)))])
if "--train" in laws:
    laws.remove("--train")
    perm = np.random.default_rng(0).permutation(n)
    idx = np.sort(perm[max(1, int(round(0.2 * n))) :])
K = ds.field.shape[1]
vf = np.repeat(
    ds.base.volume_fraction[idx]
    if hasattr(ds.base, "volume_fraction")
    else np.full(len(idx), np.nan),
    K,
)
H = ds.field[idx].reshape(-1, 2)
ang = np.degrees(np.arctan2(H[:, 1], H[:, 0]))
sid = np.repeat(idx, K)
print(f"{path}: {n} rows, evaluated {len(idx)} SVEs, {len(idx) * K} points")
for lp in laws:
    law = load_law(lp)
    e = evaluate_convex_law(law, ds, idx, cells=cells)
    b, t, f = e["b"], e["tangent"], e["field"]
    fam = np.repeat(law.familiar(cells.take(idx)), K)  # the microstructure inside the training data
    out = {
        "law": lp,
        "b_mean": b.mean(),
        "b_max": b.max(),
        "b_p95": np.percentile(b, 95),
        "b_frac_gt_1pct": (b > 0.01).mean(),
        "t_mean": t.mean(),
        "t_max": t.max(),
        "unfamiliar_sves": int((~fam).sum() // K),
        "b_mean_familiar": b[fam].mean() if fam.any() else np.nan,
        "b_max_familiar": b[fam].max() if fam.any() else np.nan,
    }
    print(
        json.dumps(
            {k: (round(float(v), 5) if not isinstance(v, str) else v) for k, v in out.items()}
        )
    )
    for name, arr in (("B", b), ("tangent", t)):
        top = np.argsort(arr)[::-1][:5]
        for j in top:
            print(
                f"  max {name}: {arr[j]:.4f} at |H|/Hk={f[j]:.3f} angle={ang[j]:.0f} deg"
                f" vf={vf[j]:.3f} sve={sid[j]}"
            )
    edges = np.quantile(f, np.linspace(0, 1, 9))
    line = []
    for lo, hi in itertools.pairwise(edges):
        m = (f >= lo) & (f <= hi)
        line.append(
            f"[{lo:.2g},{hi:.2g}] B {b[m].mean() * 100:.2f}/{b[m].max() * 100:.2f}"
            f" T {t[m].mean() * 100:.1f}/{t[m].max() * 100:.1f}"
        )
    print("  by |H|/Hk (mean/max %):\n    " + "\n    ".join(line))
    # by vf tercile
    if not np.isnan(vf).all():
        q = np.quantile(vf, [0, 1 / 3, 2 / 3, 1])
        for lo, hi in itertools.pairwise(q):
            m = (vf >= lo) & (vf <= hi)
            print(
                f"    vf [{lo:.3f},{hi:.3f}]: B {b[m].mean() * 100:.2f}/{b[m].max() * 100:.2f}"
                f" T {t[m].mean() * 100:.1f}/{t[m].max() * 100:.1f}"
            )
    per = b.reshape(len(idx), K)
    mu = ds.base.mu_eff[idx]
    print(
        "  per-SVE mean/max B %: "
        + ", ".join(
            f"{i}:vf{ds.base.volume_fraction[i]:.2f},mu{np.trace(m)/2:.1f}:{p.mean()*100:.1f}/{p.max()*100:.1f}"
            for i, m, p in zip(idx, mu, per)
            if p.max() > 0.05
        )
    )
