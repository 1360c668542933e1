"""End-to-end speed of ``magnetohom predict`` against ``magnetohom homogenize`` on the same files.

Writes ``N`` images (``.npy``, one per file) of the morphology classes of
:mod:`micro.morphologies` (or of ``bench/ood_morphologies.py`` with ``--ood``) and times, in one
run on this machine:

* ``magnetohom homogenize FILES --json`` (FE for every file: the reference),
* ``magnetohom predict FILES --json`` (the general model, no fallback),
* ``magnetohom predict FILES --json --fallback fe --tolerance T``,

each as a whole process (start-up, reading, answers), and reports the wall times, the speed-ups,
the share of answers from FE, and the largest error of the fallback run against the FE labels.

Usage::

    python bench/bench_predict_cli.py -n 400 --size 256 --mu-inclusion 250 [--tta 1 4]

``--tta N ...`` also times ``predict --tta N`` (fewer symmetries of the square: fewer network
passes, and the bound of that number's own calibration).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _run(cmd):
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed: {res.stderr[-2000:]}")
    return dt, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=400)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--mu-matrix", type=float, default=1.0)
    ap.add_argument("--mu-inclusion", type=float, default=250.0)
    ap.add_argument("--tolerance", type=float, default=0.01)
    ap.add_argument("--ood", action="store_true", help="images of bench/ood_morphologies.py")
    ap.add_argument("--model", default=None)
    ap.add_argument(
        "--tta",
        type=int,
        nargs="*",
        default=[],
        help="also time `predict --tta N` for each N (fewer symmetries: faster, looser bound)",
    )
    args = ap.parse_args()

    from micro.morphologies import random_morphology

    kinds = None
    if args.ood:
        import ood_morphologies

        kinds = ood_morphologies.register()
    tmp = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    files = []
    rng = np.random.default_rng(2026)
    for i in range(args.n):
        m = random_morphology((args.size, args.size), rng=rng, kinds=kinds)
        files.append(str(tmp / f"img{i:04d}.npy"))
        np.save(files[-1], m.image)
    mats = ["--mu-matrix", str(args.mu_matrix), "--mu-inclusion", str(args.mu_inclusion)]
    exe = [sys.executable, "-m", "magnetohom.cli"]
    model = ["--model", args.model] if args.model else []
    t_fe, res_fe = _run([*exe, "homogenize", *files, *mats, "--json"])
    fe_rows = [json.loads(line) for line in res_fe.stdout.splitlines()]
    fe_mu = {r["file"]: np.asarray(r["mu_eff"]) for r in fe_rows}
    t_cnn, res_cnn = _run([*exe, "predict", *files, *mats, *model, "--json"])
    t_fb, res_fb = _run([*exe, "predict", *files, *mats, *model, "--json", "--fallback", "fe",
                         "--tolerance", str(args.tolerance)])  # fmt: skip
    from surrogate.general import relative_error

    def errors(res):
        rows = [json.loads(line) for line in res.stdout.splitlines()]
        mu = np.stack([np.asarray(r["mu_eff"]) for r in rows])
        ref = np.stack([fe_mu[r["file"]] for r in rows])
        return rows, relative_error(mu, ref)

    by_tta = []
    for tta in args.tta:
        t, res = _run([*exe, "predict", *files, *mats, *model, "--json", "--tta", str(tta)])
        by_tta.append((tta, t, *errors(res)))
    rows_cnn, err_cnn = errors(res_cnn)
    rows_fb, err_fb = errors(res_fb)
    bound = np.array([r["rel_error_bound"] or np.inf for r in rows_cnn])
    n_fe = sum(r["source"] == "fe" for r in rows_fb)
    print(f"{args.n} images {args.size}^2, mu {args.mu_matrix:g}/{args.mu_inclusion:g}, "
          f"{'OOD' if args.ood else 'training'} morphologies\n")  # fmt: skip
    print("| run | wall s | per image ms | speed-up vs FE | from FE | mean err % | max err % |")
    print("|---|---|---|---|---|---|---|")
    print(f"| homogenize (FE) | {t_fe:.1f} | {1e3 * t_fe / args.n:.1f} | 1 | all | 0 | 0 |")
    print(f"| predict | {t_cnn:.1f} | {1e3 * t_cnn / args.n:.1f} | {t_fe / t_cnn:.1f} | 0 | "
          f"{100 * err_cnn.mean():.2f} | {100 * err_cnn.max():.1f} |")  # fmt: skip
    for tta, t, rows, err in by_tta:
        b = np.array([r["rel_error_bound"] or np.inf for r in rows])
        print(f"| predict --tta {tta} (covered {100 * np.mean(err <= b):.1f} %) | {t:.1f} | "
              f"{1e3 * t / args.n:.1f} | {t_fe / t:.1f} | 0 | {100 * err.mean():.2f} | "
              f"{100 * err.max():.1f} |")  # fmt: skip
    print(f"| predict --fallback fe --tolerance {args.tolerance:g} | {t_fb:.1f} | "
          f"{1e3 * t_fb / args.n:.1f} | {t_fe / t_fb:.1f} | {n_fe} | {100 * err_fb.mean():.2f} | "
          f"{100 * err_fb.max():.1f} |")  # fmt: skip
    print(
        f"\nbound covers the error in {100 * np.mean(err_cnn <= bound):.1f} % of answers; "
        f"answers > 5 % off and not covered: {int(np.sum((err_cnn > 0.05) & (err_cnn > bound)))}"
    )


if __name__ == "__main__":
    main()
