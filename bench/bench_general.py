"""Accuracy, error-bound coverage, fallback share and speed of the general model.

Evaluates a general model (:mod:`surrogate.general`) on FE-labelled mixed datasets
(:mod:`micro.mixed_dataset`) that it was not trained on, per morphology class, and prints
markdown tables for ``BENCHMARKS.md``:

* MAPE of the diagonal, mean off-diagonal error over ``tr(mu)/2``, worst-component relative
  error (mean, 99th percentile, max);
* the bound: share of answers whose FE label lies within ``rel_error_bound`` (coverage), share of
  answers more than 5 % off that the bound does not cover, share of answers with a bound below
  1 %, 2 % and 5 % (the ones ``--fallback fe --tolerance T`` keeps);
* speed: answers per second of the model (features, network, coarse solve) beside the FE labels'
  own solve time from the file, same machine.

``--ood-cal N`` / ``--ood-test N`` first make (or resume) ``runs/ood_cal256.h5`` (spinodal,
cracks, distorted checkerboards; for ``magnetohom calibrate-general``) and ``runs/ood_test256.h5``
(two-scale fields, sandstone, dendrites; evaluated here): N rows each of morphologies of
``bench/ood_morphologies.py``, which no training set contains; the test classes are in no
calibration set either.

Usage::

    python bench/bench_general.py --model surrogate/models/general runs/mix256_test.h5 \\
        runs/mix128_test.h5 runs/mix512_test.h5 --ood 300
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow  # noqa: F401  (before DOLFINx)

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from surrogate.general import relative_error


def _table(rows, header):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _stats(name, err, diag, off, bound):
    n = err.size
    cover = np.mean(err <= bound + 1e-12)
    bad = np.mean((err > 0.05) & (err > bound))
    return [
        name,
        n,
        f"{100 * diag.mean():.2f}",
        f"{100 * off.mean():.2f}",
        f"{100 * err.mean():.2f}",
        f"{100 * np.quantile(err, 0.99):.1f}",
        f"{100 * err.max():.1f}",
        f"{100 * cover:.1f}",
        f"{100 * bad:.1f}",
        " / ".join(f"{100 * np.mean(bound <= t):.0f}" for t in (0.01, 0.02, 0.05)),
    ]


def _paper_class(model_name: str, n: int, tta: int | None) -> None:
    """The paper's class: MAPE of the model and of the specialist on N fresh FE-labelled cells."""
    from micro.generate import generate_images
    from micro.homogenization import Homogenizer
    from surrogate.general import GeneralModel
    from surrogate.provider import CNNProvider
    from surrogate.registry import resolve_model

    rng = np.random.default_rng(777)  # seeds no training file uses
    vf = rng.uniform(0.1, 0.5, n)
    images = generate_images(vf, seed=777, spawn_keys=np.arange(n), size=256, radius=8.0)
    h = Homogenizer((256, 256))
    t0 = time.perf_counter()
    ref = h(images, mu_matrix=1.0, mu_inclusion=250.0).mu_eff
    fe_s = (time.perf_counter() - t0) / n
    general = GeneralModel(resolve_model(model_name), tta=tta)
    general.predict(images[:2], mu_matrix=1.0, mu_inclusion=250.0)
    t0 = time.perf_counter()
    pred = general.predict(images, mu_matrix=1.0, mu_inclusion=250.0)
    g_s = (time.perf_counter() - t0) / n
    disks = CNNProvider("disks", mu_matrix=1.0, mu_inclusion=250.0)(images)

    def mape(mu):
        d = np.abs(np.diagonal(mu, axis1=1, axis2=2) / np.diagonal(ref, axis1=1, axis2=2) - 1)
        return 100 * d.mean()

    cover = np.mean(relative_error(pred.mu_eff, ref) <= pred.rel_error_bound)
    print(f"paper's class: {n} cells 256^2, disks r = 8 px, vf 0.1-0.5, mu 1/250 (FE {fe_s:.3f} s)")
    print("| model | MAPE diag % | covered % | ms/answer |\n|---|---|---|---|")
    print(f"| {model_name} | {mape(pred.mu_eff):.2f} | {100 * cover:.1f} | {1e3 * g_s:.1f} |")
    print(f"| disks | {mape(disks):.2f} | | |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--model", default="general")
    ap.add_argument("--tta", type=int, default=None)
    ap.add_argument("--ood-cal", type=int, default=0, help="make runs/ood_cal256.h5 (N rows)")
    ap.add_argument("--ood-test", type=int, default=0, help="make and use runs/ood_test256.h5")
    ap.add_argument("--by-contrast", action="store_true", help="also a table by contrast")
    ap.add_argument(
        "--paper-class",
        type=int,
        default=0,
        metavar="N",
        help="only this: N new cells of the paper's class (disks r = 8 px, 256^2, mu 1/250), "
        "FE-labelled here, the model beside `--model disks`",
    )
    args = ap.parse_args()
    if args.paper_class:
        _paper_class(args.model, args.paper_class, args.tta)
        return

    from micro.mixed_dataset import generate_mixed_dataset, load_mixed_dataset
    from surrogate.general import GeneralModel
    from surrogate.registry import resolve_model

    files = list(args.files)
    if args.ood_cal or args.ood_test:
        import ood_morphologies

        ood_morphologies.register()
        Path("runs").mkdir(exist_ok=True)
        for n, name, seed, kinds in (
            (args.ood_cal, "ood_cal256", 501, ("ood_spinodal", "ood_cracks", "ood_checker")),
            (args.ood_test, "ood_test256", 502,
             ("ood_multiscale", "ood_sandstone", "ood_dendrites")),
        ):  # fmt: skip
            if n:
                path = Path(f"runs/{name}.h5")
                generate_mixed_dataset(path, n, shape=(256, 256), seed=seed, kinds=kinds)
        if args.ood_test:
            files.append(Path("runs/ood_test256.h5"))
    model = GeneralModel(resolve_model(args.model), tta=args.tta)
    header = ["set", "N", "MAPE diag %", "off-diag % of tr/2", "mean err %", "p99 %", "max %",
              "covered %", ">5 % uncovered %", "bound <= 1/2/5 % (share %)"]  # fmt: skip
    rows, by_class, by_c = [], {}, {}
    speed = []
    for f in files:
        d = load_mixed_dataset(f)
        import h5py

        with h5py.File(f, "r", locking=False) as h:
            fe_seconds = h["solve_seconds"][:][h["done"][:]]
        model.predict(d.images[:2], mu_matrix=d.mu_phases[:2, 0], mu_inclusion=d.mu_phases[:2, 1])
        t0 = time.perf_counter()
        pred = model.predict(d.images, mu_matrix=d.mu_phases[:, 0], mu_inclusion=d.mu_phases[:, 1])
        dt = (time.perf_counter() - t0) / len(d)
        speed.append([f.name, f"{d.images.shape[1]}x{d.images.shape[2]}",
                      f"{1e3 * dt:.2f}", f"{1e3 * fe_seconds.mean():.1f}",
                      f"{fe_seconds.mean() / dt:.1f}"])  # fmt: skip
        ref = d.mu_eff
        err = relative_error(pred.mu_eff, ref)
        diag = 0.5 * (
            np.abs(pred.mu_eff[:, 0, 0] / ref[:, 0, 0] - 1)
            + np.abs(pred.mu_eff[:, 1, 1] / ref[:, 1, 1] - 1)
        )
        off = np.abs(pred.mu_eff[:, 0, 1] - ref[:, 0, 1]) / (0.5 * np.trace(ref, axis1=1, axis2=2))
        rows.append(_stats(f.name, err, diag, off, pred.rel_error_bound))
        logc = np.abs(np.log10(d.mu_phases[:, 1] / d.mu_phases[:, 0]))
        for k in np.unique(d.kinds):
            m = d.kinds == k
            by_class.setdefault(k, []).append((err[m], diag[m], off[m], pred.rel_error_bound[m]))
        for lo, hi in ((0, 1), (1, 2), (2, 3), (3, 4.01)):
            m = (logc >= lo) & (logc < hi)
            key = f"contrast 1e{lo}-1e{hi:.0f}"
            by_c.setdefault(key, []).append((err[m], diag[m], off[m], pred.rel_error_bound[m]))
    print(f"model {args.model} (tta {model.tta}, alpha {model.alpha}, beta {model.beta})\n")
    print(_table(rows, header), "\n")
    cls = [_stats(k, *(np.concatenate(p) for p in zip(*v))) for k, v in sorted(by_class.items())]
    print(_table(cls, ["class", *header[1:]]), "\n")
    if args.by_contrast:
        con = [_stats(k, *(np.concatenate(p) for p in zip(*v))) for k, v in by_c.items()]
        print(_table(con, ["contrast", *header[1:]]), "\n")
    print(_table(speed, ["set", "cell", "model ms/answer", "FE label ms", "speed-up"]))


if __name__ == "__main__":
    main()
