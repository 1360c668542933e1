"""Nonlinear FE² on the shield: the learned convex law against nested FE² (issue 22), one core.

The ``shield`` demo's geometry (a composite annulus in a uniform applied field, reduced scalar
potential), with a saturating composite: matrix ``linear:1``, inclusions ``arctan:1000,1.6``,
disks of radius 2.5 px on 32^2 SVEs, volume fraction graded 0.45 (inside) to 0.25 (outside),
one SVE per quadrature point (degree 2).  For every applied field ``H0`` (in units of the mean
composite knee field) the macro Newton iteration runs with

* ``learned``: :class:`surrogate.convex_law.ConvexLawProvider` (``--law DIR``);
* ``nested``: :class:`macro.nonlinear.CellProblemLaw`, a nonlinear cell problem per point in
  every macro Newton iteration (warm-started from the point's previous solution);
* ``linear``: the linear mu* (cannot saturate).

Reports the cavity's mean B (the shielding), the composite's mean B, the macro Newton
residual histories and the times (per applied field, end to end, descriptors excluded).

Usage::

    .venv/bin/python bench/bench_fe2_nonlinear.py --law out/nl_law --fields 0.1,1,4
"""

from __future__ import annotations

import argparse
import time

import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

import numpy as np
import tensorflow as tf  # noqa: F401  (TensorFlow and h5py before DOLFINx)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--law", required=True)
    p.add_argument("--fields", default="0.1,1,4", help="H0 in mean knee fields")
    p.add_argument("--size", default="tiny")
    p.add_argument("--no-nested", action="store_true")
    args = p.parse_args()

    from macro.coefficient import quadrature_points
    from macro.material import Material, RadialGrading
    from macro.nonlinear import CellProblemLaw, PointLaws, solve_scalar_potential_nl
    from macro.problems import ShieldProblem
    from micro.nonlinear import describe_cells
    from micro.phase_laws import MU0
    from surrogate.convex_law import ConvexLaw, ConvexLawProvider

    law = ConvexLaw.load(args.law)
    prob = ShieldProblem(size=args.size)
    m = prob.mesh()
    msh = m.mesh
    pts, gid = quadrature_points(msh, 2)
    n_cells, nq = pts.shape[:2]
    tags = np.full(n_cells, -1)
    keep = m.cell_tags.indices < n_cells
    tags[m.cell_tags.indices[keep]] = m.cell_tags.values[keep]
    comp_cells = np.flatnonzero(tags == m.tag("shield"))
    cavity = np.flatnonzero(tags == m.tag("cavity"))
    composite = np.zeros((n_cells, nq), bool)
    composite[comp_cells] = True
    composite = composite.ravel()
    material = Material(
        RadialGrading(0.45, 0.25, r0=prob.r_inner, r1=prob.r_outer), radius=2.5, resolution=32
    )
    t0 = time.perf_counter()
    batch = material.generate(pts.reshape(-1, 2)[composite], gid.ravel()[composite], resolution=32)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    cells = describe_cells(batch.images, law.laws)
    t_desc = time.perf_counter() - t0
    knee = float(np.mean(law.knee_fields(cells)))
    print(
        f"shield ({args.size}): {composite.sum()} composite quadrature points of "
        f"{composite.size}; SVE generation {t_gen:.1f} s, descriptors (linear cell problems) "
        f"{t_desc:.1f} s; mean composite knee field {knee:.0f} A/m\n"
    )
    print(
        "| H0 / H_k* | provider | cavity mean B (T) | shield mean B (T) | macro Newton its | "
        "residual history | law s | total s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    ones = np.ones(composite.size)
    mu_lin = np.einsum("kii->k", cells.mu_lin) / 2

    def linear(H):
        return MU0 * mu_lin[:, None] * H, MU0 * mu_lin[:, None, None] * np.eye(2)

    results = {}
    for f in (float(x) for x in args.fields.split(",")):
        H0 = (f * knee, 0.0)
        providers = {"learned": ConvexLawProvider(law, cells, on_range="flag"), "linear": linear}
        if not args.no_nested:
            providers["nested"] = CellProblemLaw(batch.images, law.laws)
        for name, prov in providers.items():
            sol = solve_scalar_potential_nl(msh, PointLaws(ones, composite, prov), H0=H0)
            b_cav = np.linalg.norm(sol.region_mean_B(cavity))
            b_sh = np.linalg.norm(sol.region_mean_B(comp_cells))
            results[(f, name)] = (b_cav, b_sh, sol.seconds)
            hist = ", ".join(f"{r:.0e}" for r in sol.residuals)
            print(
                f"| {f:g} | {name} | {b_cav:.5g} | {b_sh:.5g} | {sol.newton_iterations} | "
                f"{hist} | {sol.law_seconds:.2f} | {sol.seconds:.2f} |"
            )
    if not args.no_nested:
        print(
            "\n| H0 / H_k* | cavity B: learned vs nested | shield B: learned vs nested | "
            "linear vs nested (cavity) | speed-up learned / nested |"
        )
        print("| --- | --- | --- | --- | --- |")
        for f in (float(x) for x in args.fields.split(",")):
            a, n_, lin = results[(f, "learned")], results[(f, "nested")], results[(f, "linear")]
            print(
                f"| {f:g} | {100 * (a[0] / n_[0] - 1):+.2f} % | {100 * (a[1] / n_[1] - 1):+.2f} %"
                f" | {100 * (lin[0] / n_[0] - 1):+.1f} % | {n_[2] / a[2]:.0f}x |"
            )


if __name__ == "__main__":
    main()
