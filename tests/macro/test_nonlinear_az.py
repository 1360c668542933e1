"""Nonlinear 2D vector potential A_z (macro.nonlinear.solve_vector_potential_nl) and InverseLaw."""

from __future__ import annotations

import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

import numpy as np
import pytest

from macro.nonlinear import InverseLaw, PointLaws, solve_vector_potential_nl
from magnetohom.errors import InputError, SolverError
from micro.phase_laws import MU0, ArctanLaw


def _tags(msh, values_of):
    from dolfinx import mesh

    tdim = msh.topology.dim
    imap = msh.topology.index_map(tdim)
    n = imap.size_local + imap.num_ghosts
    mid = mesh.compute_midpoints(msh, tdim, np.arange(n, dtype=np.int32))
    return mesh.meshtags(msh, tdim, np.arange(n, dtype=np.int32), values_of(mid).astype(np.int32))


def _point_tags(msh, tags, degree=2):
    """Cell tag of every owned quadrature point (cell-major)."""
    from macro.coefficient import quadrature_points

    pts, _ = quadrature_points(msh, degree)
    n_owned, nq = pts.shape[:2]
    cell = np.full(n_owned, -1)
    keep = tags.indices < n_owned
    cell[tags.indices[keep]] = tags.values[keep]
    return np.repeat(cell, nq), pts.reshape(-1, 2)


def test_inverse_law_inverts_a_saturating_law():
    law = ArctanLaw(1000.0, 1.6)
    rng = np.random.default_rng(0)
    H = rng.normal(size=(200, 2)) * np.geomspace(1e-2, 30, 200)[:, None] * law.knee_field
    B = law.flux(H)
    inv = InverseLaw(lambda h: law.evaluate(h)[:2])
    Hs, N = inv(B)
    np.testing.assert_allclose(Hs, H, rtol=1e-8, atol=1e-9 * law.knee_field)
    np.testing.assert_allclose(N, np.linalg.inv(law.tangent(H)), rtol=1e-7)
    # warm start: a seeded inverse converges in a few steps to the same answer
    seeded = InverseLaw(lambda h: law.evaluate(h)[:2])
    seeded.seed(1.01 * H)
    np.testing.assert_allclose(seeded(B)[0], H, rtol=1e-8, atol=1e-9 * law.knee_field)
    assert seeded.iterations <= 6
    with pytest.raises(InputError):
        inv(np.full((3, 2), np.nan))


def test_linear_law_reproduces_the_linear_solver():
    """A linear point law (air, two coils, a mu_r = 50 block) = solve_vector_potential."""
    from dolfinx import mesh
    from mpi4py import MPI

    from macro.coefficient import build_mu_coefficient
    from macro.provider import ConstantProvider
    from macro.solve import solve_vector_potential

    msh = mesh.create_rectangle(MPI.COMM_WORLD, [[-0.02, -0.02], [0.02, 0.02]], [24, 24])

    def region(x):
        v = np.ones(x.shape[0])
        v[(np.abs(x[:, 0] + 0.006) < 0.003) & (np.abs(x[:, 1]) < 0.004)] = 2
        v[(np.abs(x[:, 0] - 0.006) < 0.003) & (np.abs(x[:, 1]) < 0.004)] = 3
        v[np.abs(x[:, 1] - 0.01) < 0.003] = 4
        return v

    tags = _tags(msh, region)
    coef = build_mu_coefficient(
        msh, ConstantProvider(1.0), None, cell_tags=tags, degree=2,
        constants={1: 1.0, 2: 1.0, 3: 1.0, 4: 50.0},
    )  # fmt: skip
    lin = solve_vector_potential(coef, currents={2: 10.0, 3: -10.0}, rtol=1e-12)
    ptag, _ = _point_tags(msh, tags)
    mu_r = np.where(ptag == 4, 50.0, 1.0)
    laws = PointLaws(mu_r, np.zeros(len(mu_r), bool), lambda H: None)
    nl = solve_vector_potential_nl(
        msh, laws, currents={2: 10.0, 3: -10.0}, cell_tags=tags, rtol=1e-11, linear_rtol=1e-12
    )
    a_lin, a_nl = lin.potential.x.array, nl.potential.x.array
    assert np.max(np.abs(a_nl - a_lin)) <= 1e-8 * np.max(np.abs(a_lin))
    psi = nl.region_mean_potential[2] - nl.region_mean_potential[3]
    assert 0.5 * 10.0 * psi == pytest.approx(lin.source_energy, rel=1e-8)
    assert nl.newton_iterations == 1 and nl.formulation == "vector"


def test_saturating_slab_exact_1d_and_quadratic_newton():
    """Uniform J in a saturating slab between A = 0 walls (x = 0, 1): H_y = J (x - 1/2), and the
    discrete A at the nodes is the midpoint sum of B_y(H_y) (exact for P1 in 1D); Newton from 0
    converges quadratically."""
    from dolfinx import mesh
    from mpi4py import MPI

    n = 16
    msh = mesh.create_unit_square(MPI.COMM_WORLD, n, n)
    fdim = 1
    walls = mesh.locate_entities_boundary(
        msh, fdim, lambda x: np.isclose(x[0], 0.0) | np.isclose(x[0], 1.0)
    )
    ftags = mesh.meshtags(msh, fdim, np.sort(walls).astype(np.int32),
                          np.full(len(walls), 7, dtype=np.int32))  # fmt: skip
    tags = _tags(msh, lambda x: np.ones(x.shape[0]))
    law = ArctanLaw(1000.0, 1.6)
    J = 8.0 * law.knee_field  # |H| up to 4 knee fields at the walls
    ptag, _ = _point_tags(msh, tags)
    laws = PointLaws(np.ones(len(ptag)), np.ones(len(ptag), bool), lambda H: law.evaluate(H)[:2])
    sol = solve_vector_potential_nl(
        msh,
        laws,
        currents={1: J},
        cell_tags=tags,
        facet_tags=ftags,
        boundary=7,
        rtol=1e-11,
        linear_rtol=1e-13,
    )
    # exact discrete solution: A(x_i) = h sum_{e < i} b(J |m_e - 1/2|) sign(1/2 - m_e)
    h = 1.0 / n
    m = (np.arange(n) + 0.5) * h
    hy = J * (m - 0.5)
    by = law.flux(np.stack([np.zeros(n), hy], axis=1))[:, 1]
    nodes = np.concatenate([[0.0], np.cumsum(-by * h)])
    x = sol.potential.function_space.tabulate_dof_coordinates()[:, 0]
    exact = np.interp(x, np.linspace(0, 1, n + 1), nodes)
    a = sol.potential.x.array
    assert np.max(np.abs(a - exact)) <= 1e-8 * np.max(np.abs(exact))
    # H (constant per cell) is exactly J (m - 1/2) along y, m the midpoint of the cell's column
    _, xq = _point_tags(msh, tags)
    col_mid = (np.floor(xq[:, 0] * n) + 0.5) * h
    np.testing.assert_allclose(sol.H.reshape(-1, 2)[:, 1], J * (col_mid - 0.5),
                               atol=1e-8 * J)  # fmt: skip
    # saturation: much less flux than the linear law would carry
    assert np.max(np.abs(a)) < 0.5 * MU0 * law.initial_mu * J / 8
    r = np.array(sol.residuals)
    assert r[-1] <= 1e-11 and sol.newton_iterations <= 15
    assert r[-1] < 10 * r[-2] ** 1.5  # quadratic in the last step


def test_errors():
    from dolfinx import mesh
    from mpi4py import MPI

    msh = mesh.create_unit_square(MPI.COMM_WORLD, 4, 4)
    tags = _tags(msh, lambda x: np.ones(x.shape[0]))
    ptag, _ = _point_tags(msh, tags)
    M = len(ptag)
    with pytest.raises(InputError):
        solve_vector_potential_nl(msh, lambda H: None, currents={1: np.inf}, cell_tags=tags)
    with pytest.raises(InputError, match="empty"):
        linear = PointLaws(np.ones(M), np.zeros(M, bool), lambda H: None)
        solve_vector_potential_nl(msh, linear, currents={5: 1.0}, cell_tags=tags)

    def bad(H):
        return np.full_like(H, np.nan), np.zeros((len(H), 2, 2))

    with pytest.raises(SolverError, match="NaN"):
        solve_vector_potential_nl(msh, PointLaws(np.ones(M), np.ones(M, bool), bad),
                                  currents={1: 1.0}, cell_tags=tags)  # fmt: skip
    # a law that is not monotone enough to invert within the step limit: SolverError
    with pytest.raises(SolverError):
        solve_vector_potential_nl(
            msh, InverseLaw(lambda H: (1e-9 * np.tanh(H), 1e-9 * np.eye(2)[None] *
                                       np.ones((len(H), 1, 1))), max_iter=5),
            currents={1: 1e4}, cell_tags=tags, max_newton=3,
        )  # fmt: skip
