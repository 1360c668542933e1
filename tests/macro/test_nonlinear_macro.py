"""Nonlinear macroscale scalar potential (macro.nonlinear): exact solutions, Newton, errors."""

from __future__ import annotations

import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

import numpy as np
import pytest

from macro.nonlinear import CellProblemLaw, PointLaws, solve_scalar_potential_nl
from magnetohom.errors import SolverError
from micro.phase_laws import MU0, ArctanLaw, LinearLaw


def _square(n: int = 8):
    from dolfinx import mesh
    from mpi4py import MPI

    return mesh.create_unit_square(MPI.COMM_WORLD, n, n)


def _n_points(msh, degree=2):
    from macro.coefficient import quadrature_points

    pts, _ = quadrature_points(msh, degree)
    return pts.shape[0] * pts.shape[1]


def test_uniform_saturating_material_gives_uniform_field():
    """A homogeneous saturating body in a uniform applied field: H = H0, B = B(H0)."""
    msh = _square()
    law = ArctanLaw(1000.0, 1.6)
    M = _n_points(msh)
    laws = PointLaws(np.ones(M), np.ones(M, bool), lambda H: law.evaluate(H)[:2])
    H0 = np.array([3.0, 1.0]) * law.knee_field
    sol = solve_scalar_potential_nl(msh, laws, H0=H0)
    np.testing.assert_allclose(sol.H.reshape(-1, 2), np.broadcast_to(H0, (M, 2)), rtol=1e-8)
    np.testing.assert_allclose(sol.B.reshape(-1, 2)[0], law.flux(H0), rtol=1e-8)
    assert sol.newton_iterations <= 1  # the initial guess is the solution


def test_inclusion_newton_converges_quadratically():
    """A saturating disk in air: Newton from the linear guess converges quadratically."""
    from macro.coefficient import quadrature_points

    msh = _square(16)
    pts, _ = quadrature_points(msh, 2)
    x = pts.reshape(-1, 2)
    disk = np.linalg.norm(x - 0.5, axis=1) < 0.25
    law = ArctanLaw(500.0, 1.5)
    laws = PointLaws(np.ones(len(x)), disk, lambda H: law.evaluate(H)[:2])
    sol = solve_scalar_potential_nl(msh, laws, H0=(2 * law.knee_field, 0.0), rtol=1e-10)
    r = np.array(sol.residuals)
    assert r[-1] <= 1e-10 and sol.newton_iterations < 15
    # quadratic in the last steps: r_{k+1} <= C r_k^2 with a moderate C
    tail = r[-3:]
    assert tail[2] < 10 * tail[1] ** 1.5
    # B normal to the boundary of the disk is continuous in the weak sense: div B = 0 means
    # the total flux through the unit square's left and right sides agree; check the mean B_x
    # inside the disk is below that of a fully linear disk (saturation)
    lin = PointLaws(
        np.ones(len(x)),
        disk,
        lambda H: (MU0 * 500 * H, MU0 * 500 * np.eye(2)[None] * np.ones((len(H), 1, 1))),
    )
    sol_lin = solve_scalar_potential_nl(msh, lin, H0=(2 * law.knee_field, 0.0))
    assert sol.B.reshape(-1, 2)[disk, 0].mean() < sol_lin.B.reshape(-1, 2)[disk, 0].mean()


def test_nested_cell_problems_and_failure():
    msh = _square(2)
    M = _n_points(msh)
    n = 8
    g = np.indices((n, n)) + 0.5 - n / 2
    image = (g**2).sum(0) < (0.3 * n) ** 2
    laws = [LinearLaw(1.0), ArctanLaw(1000.0, 1.6)]
    nested = CellProblemLaw(np.repeat(image[None], M, 0), laws)
    pl = PointLaws(np.ones(M), np.ones(M, bool), nested)
    sol = solve_scalar_potential_nl(msh, pl, H0=(5e4, 0.0))
    assert nested.solves >= M and sol.residuals[-1] <= 1e-8

    def bad(H):
        return np.full_like(H, np.nan), np.zeros((len(H), 2, 2))

    with pytest.raises(SolverError, match="NaN"):
        solve_scalar_potential_nl(msh, PointLaws(np.ones(M), np.ones(M, bool), bad), H0=(1, 0))
