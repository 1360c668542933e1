"""Benchmark of the nonlinear cell problem and the learned convex law (issue 22), one core.

Cell problem (:class:`micro.nonlinear.NonlinearHomogenizer`): random non-overlapping disks /
spheres, matrix ``linear:1``, inclusions ``arctan:1000,1.6``; fields along one oblique ray at
0.01 .. 6 composite knee fields, solved cold (from zero) and by continuation
(:meth:`~micro.nonlinear.NonlinearHomogenizer.sweep`); Newton iterations, CG iterations, the
residual history of the hardest field, and seconds per field.

Learned law (``--law DIR`` from ``surrogate.convex_law``): seconds per batched evaluation
(B and tangent) of ``--points`` points, against the nonlinear cell problems of the same points
(timed on a few and scaled), i.e. what a nested FE² pays per quadrature point and Newton step.

Usage::

    .venv/bin/python bench/bench_nonlinear.py                       # cell problems
    .venv/bin/python bench/bench_nonlinear.py --law out/nl_law --dataset out/nl32.h5

Prints markdown (paste into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import time

import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

import numpy as np

CASES = [(2, 64, 4.0, 0.4), (2, 128, 6.0, 0.4), (3, 16, 3.0, 0.25)]


def bench_cells(cases) -> None:
    import micro
    from micro.dataset_nl import effective_knee_field
    from micro.nonlinear import NonlinearHomogenizer
    from micro.phase_laws import MU0, ArctanLaw, LinearLaw

    laws = [LinearLaw(1.0), ArctanLaw(1000.0, 1.6)]
    print(
        "| cell | solver | fields | Newton its cold (mean / max) | Newton its swept | "
        "CG its per field (swept) | s per field cold | s per field swept | hardest field: "
        "relative residuals |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for dim, n, r, vf in cases:
        sve = micro.generate_sve(dim=dim, size=n, volume_fraction=vf, radius=r, rng=1)
        img = sve.image
        nh = NonlinearHomogenizer(img.shape)
        zero = nh.solve(img, laws, np.zeros(dim))
        knee = effective_knee_field(zero.tangent / MU0, laws, img.mean())
        e = np.ones(dim) / np.sqrt(dim)
        e[0] *= 1.3
        e /= np.linalg.norm(e)
        mags = np.geomspace(0.01, 6.0, 12)
        fields = mags[:, None] * knee * e
        t0 = time.perf_counter()
        cold = [nh.solve(img, laws, H) for H in fields]
        t_cold = (time.perf_counter() - t0) / len(fields)
        t0 = time.perf_counter()
        swept = nh.sweep(img, laws, fields, start=zero)
        t_swept = (time.perf_counter() - t0) / len(fields)
        its_c = np.array([c.newton_iterations for c in cold])
        its_s = np.array([c.newton_iterations for c in swept])
        cg = np.mean([c.linear_iterations for c in swept])
        hard = cold[int(np.argmax(its_c))]
        hist = ", ".join(f"{x:.0e}" for x in hard.residuals[-5:])
        for a, b in zip(cold, swept, strict=True):
            assert np.allclose(a.B, b.B, rtol=1e-7, atol=1e-12)
        print(
            f"| {dim}D {n}^{dim}, vf {img.mean():.2f} | {nh.solver} | {len(fields)} "
            f"(0.01..6 H_k*) | {its_c.mean():.1f} / {its_c.max()} | {its_s.mean():.1f} / "
            f"{its_s.max()} | {cg:.0f} | {t_cold:.3f} | {t_swept:.3f} | ... {hist} |"
        )


def bench_law(law_dir: str, dataset: str, points: int) -> None:
    import tensorflow as tf  # noqa: F401  (before DOLFINx)

    from micro.dataset_nl import load_nl_dataset
    from micro.nonlinear import NonlinearHomogenizer
    from surrogate.convex_law import ConvexLaw, dataset_cells

    law = ConvexLaw.load(law_dir)
    ds = load_nl_dataset(dataset)
    cells = dataset_cells(ds)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(ds), points)
    d = ds.base.dim
    k = ds.field.shape[1]
    H = ds.field[idx, rng.integers(0, k, points)]
    sub = cells.take(idx)
    law.evaluate(H[:8], sub.take(slice(0, 8)))  # compile
    reps = []
    for _ in range(5):
        t0 = time.perf_counter()
        ev = law.evaluate(H, sub)
        reps.append(time.perf_counter() - t0)
    t_law = min(reps)
    nh = NonlinearHomogenizer(ds.base.images.shape[1:])
    m = 20
    t0 = time.perf_counter()
    for j in range(m):
        nh.solve(ds.base.images[idx[j]], list(ds.laws), H[j])
    t_cell = (time.perf_counter() - t0) / m
    spd = np.linalg.eigvalsh(ev.tangent).min() > 0
    print(
        f"| {points} points, {d}D {ds.base.images.shape[1]}^{d} cells | learned law "
        f"{t_law * 1e3:.1f} ms ({t_law / points * 1e6:.1f} us/point), tangent SPD: {spd} | "
        f"cell problems (cold) {t_cell * 1e3:.1f} ms/point, {t_cell * points:.1f} s | "
        f"speed-up {t_cell * points / t_law:.0f}x |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2D 64^2 and 3D 16^3 only")
    p.add_argument("--law", default=None, help="a saved ConvexLaw directory")
    p.add_argument("--dataset", default=None, help="a nonlinear dataset (with --law)")
    p.add_argument("--points", type=int, default=2000)
    p.add_argument("--no-cells", action="store_true")
    args = p.parse_args()
    if args.law:
        bench_law(args.law, args.dataset, args.points)
    if not args.no_cells:
        bench_cells([CASES[0], CASES[2]] if args.quick else CASES)


if __name__ == "__main__":
    main()
