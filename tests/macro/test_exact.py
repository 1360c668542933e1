"""Macro solvers against closed forms: cylinder in a uniform field, anisotropic tensors."""

from __future__ import annotations

import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

import numpy as np
import pytest
from conftest import Cylinder

from macro.coefficient import build_mu_coefficient
from macro.provider import ConstantProvider
from macro.solve import MU0, solve_scalar_potential, solve_vector_potential


def _coef(m, mu_c, degree=1):
    return build_mu_coefficient(
        m.mesh, ConstantProvider(1.0), None, degree=degree, cell_tags=m.cell_tags,
        constants={m.tag("shield"): mu_c},
    )  # fmt: skip


def _solve_both(m, exact):
    coef = _coef(m, exact.mu_c)
    s = solve_scalar_potential(coef, H0=tuple(exact.H0), boundary_value=exact.rho)
    v = solve_vector_potential(coef, boundary_value=exact.A)
    return s, v


def _interior_error(sol, m, exact):
    b = np.asarray(sol.region_B[m.tag("shield")])
    return np.linalg.norm(b - exact.B_in) / np.linalg.norm(exact.B_in)


def test_isotropic_cylinder_converges_to_exact_interior_field(cylinder_mesh):
    exact = Cylinder(10.0)
    assert np.allclose(exact.H_in, [2 / 11 * 1000.0, 0.0])
    errors = []
    for size in (2, 4, 8):
        m = cylinder_mesh(size)
        s, v = _solve_both(m, exact)
        errors.append((_interior_error(s, m, exact), _interior_error(v, m, exact)))
    errors = np.array(errors)
    assert errors[-1].max() < 0.01
    # both formulations converge (first order or better in h for the mean field)
    assert np.all(errors[1:] < errors[:-1])
    assert np.all(errors[0] / errors[2] > 2.5)


def test_anisotropic_cylinder_closed_form(cylinder_mesh):
    mu_c = np.array([[12.0, 4.0], [4.0, 5.0]])
    exact = Cylinder(mu_c, H0=(600.0, 800.0))
    m = cylinder_mesh(8)
    s, v = _solve_both(m, exact)
    assert _interior_error(s, m, exact) < 0.01
    assert _interior_error(v, m, exact) < 0.01
    # the off-diagonal entry matters: flipping its sign gives a clearly different field
    flipped = Cylinder(mu_c * np.array([[1, -1], [-1, 1]]), H0=(600.0, 800.0))
    assert np.linalg.norm(flipped.B_in - exact.B_in) / np.linalg.norm(exact.B_in) > 0.1


def test_energies_of_the_two_formulations_agree(cylinder_mesh):
    exact = Cylinder(np.array([[8.0, -2.0], [-2.0, 3.0]]))
    gaps = []
    for size in (4, 8):
        s, v = _solve_both(cylinder_mesh(size), exact)
        gaps.append(abs(s.energy - v.energy) / s.energy)
        assert v.inductance is None and s.current is None
    assert gaps[-1] < 2e-3
    assert gaps[1] < gaps[0]


@pytest.mark.parametrize("degree", [1, 2])
def test_constant_anisotropic_tensor_linear_field(degree):
    """Whole domain with constant mu, rho = -H0.x on the boundary: H = H0, B = mu0 mu H0."""
    from dolfinx import mesh
    from mpi4py import MPI

    msh = mesh.create_rectangle(MPI.COMM_WORLD, [[0, 0], [0.02, 0.01]], [8, 4])
    mu = np.array([[30.0, -7.0], [-7.0, 4.0]])
    coef = build_mu_coefficient(msh, ConstantProvider(mu), _NoSVE(), degree=degree)
    assert coef.n_quadrature_points == msh.topology.index_map(2).size_global * (
        3 if degree == 2 else 1
    )
    h0 = np.array([300.0, -500.0])
    sol = solve_scalar_potential(coef, H0=tuple(h0))
    assert np.allclose(sol.H, h0, rtol=1e-8, atol=1e-6)
    assert np.allclose(sol.B, MU0 * mu @ h0, rtol=1e-8)
    area = 0.02 * 0.01
    assert sol.energy == pytest.approx(0.5 * MU0 * h0 @ mu @ h0 * area, rel=1e-9)


def test_vector_potential_inductance_equals_source_energy():
    """With currents: W = 1/2 int B.H = 1/2 int J A, and L = 2 W / I^2."""
    from dolfinx import mesh
    from mpi4py import MPI

    msh = mesh.create_rectangle(MPI.COMM_WORLD, [[-0.02, -0.02], [0.02, 0.02]], [24, 24])
    tdim = 2
    msh.topology.create_connectivity(tdim, 0)
    left = mesh.locate_entities(
        msh, tdim, lambda x: (np.abs(x[0] + 0.006) < 0.003) & (np.abs(x[1]) < 0.004)
    )
    right = mesh.locate_entities(
        msh, tdim, lambda x: (np.abs(x[0] - 0.006) < 0.003) & (np.abs(x[1]) < 0.004)
    )
    n = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
    values = np.ones(n, dtype=np.int32)
    values[left], values[right] = 2, 3
    tags = mesh.meshtags(msh, tdim, np.arange(n, dtype=np.int32), values)
    coef = build_mu_coefficient(
        msh, ConstantProvider(1.0), None, cell_tags=tags, constants={1: 1.0, 2: 1.0, 3: 1.0}
    )
    sol = solve_vector_potential(coef, currents={2: 10.0, 3: -10.0})
    assert sol.current == 10.0
    assert sol.energy > 0
    assert sol.source_energy == pytest.approx(sol.energy, rel=1e-7)
    assert sol.inductance == pytest.approx(2 * sol.energy / 100.0)


class _NoSVE:
    """A material stand-in for a constant provider: all-matrix 8^2 images."""

    dim = 2
    resolution = 8

    def generate(self, x, gid, *, resolution=None):
        from macro.material import SVEBatch

        n = len(x)
        return SVEBatch(np.zeros((n, 8, 8), bool), np.zeros(n), np.zeros(n))
