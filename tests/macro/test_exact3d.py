"""3D scalar potential against closed forms: a sphere of constant (anisotropic) mu in a
uniform field, and a constant tensor on a box."""

from __future__ import annotations

import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

import numpy as np
import pytest

from macro.coefficient import build_mu_coefficient
from macro.provider import ConstantProvider
from macro.solve import MU0, solve_scalar_potential


class Sphere:
    """Sphere of radius a and constant mu_c in air, applied field H0: the interior field is
    uniform, H_in = 3 (mu_c + 2 I)^-1 H0; outside rho = -H0.x + a^3 p.x / r^3, p = H0 - H_in."""

    def __init__(self, mu_c, a: float = 0.02, H0=(1000.0, 0.0, 0.0)):
        self.mu_c = np.asarray(mu_c, dtype=float) * (np.eye(3) if np.ndim(mu_c) == 0 else 1.0)
        self.a = a
        self.H0 = np.asarray(H0, dtype=float)
        self.H_in = 3.0 * np.linalg.solve(self.mu_c + 2 * np.eye(3), self.H0)
        self.B_in = MU0 * self.mu_c @ self.H_in
        self.p = self.H0 - self.H_in

    def rho(self, x):
        r3 = np.maximum(np.sum(x**2, axis=0), 1e-300) ** 1.5
        return (
            -np.einsum("i,i...->...", self.H0, x)
            + self.a**3 * np.einsum("i,i...->...", self.p, x) / r3
        )


@pytest.fixture(scope="module")
def sphere_mesh():
    from macro.geometry3d import shell_geometry

    cache = {}

    def make(size):
        if size not in cache:
            cache[size] = shell_geometry(r_outer=0.02, r_inner=0.0, half_width=0.05, size=size,
                                         air_factor=3.0)  # fmt: skip
        return cache[size]

    return make


def _interior_error(m, exact):
    coef = build_mu_coefficient(
        m.mesh, ConstantProvider(1.0, dim=3), None, cell_tags=m.cell_tags,
        constants={m.tag("shield"): exact.mu_c},
    )  # fmt: skip
    sol = solve_scalar_potential(coef, H0=tuple(exact.H0), boundary_value=exact.rho)
    b = np.asarray(sol.region_B[m.tag("shield")])
    assert sol.B.shape[-1] == 3
    return np.linalg.norm(b - exact.B_in) / np.linalg.norm(exact.B_in)


def test_isotropic_sphere_converges_to_exact_interior_field(sphere_mesh):
    exact = Sphere(10.0)
    assert np.allclose(exact.H_in, [3 / 12 * 1000.0, 0, 0])
    errors = np.array([_interior_error(sphere_mesh(size), exact) for size in (1.5, 3, 6)])
    # linear tetrahedra on a faceted sphere: about 29 %, 9 %, 3 % -- converging faster than h
    assert errors[-1] < 0.05
    assert np.all(errors[1:] < errors[:-1])
    assert errors[0] / errors[2] > 4


def test_anisotropic_sphere_closed_form(sphere_mesh):
    mu_c = np.array([[12.0, 5.0, 2.0], [5.0, 8.0, -3.0], [2.0, -3.0, 6.0]])
    exact = Sphere(mu_c)
    error = _interior_error(sphere_mesh(6), exact)
    assert error < 0.05
    # the off-diagonal entries matter: dropping them changes B_in by 22 %, far beyond the error
    diag = Sphere(np.diag(np.diag(mu_c)))
    assert np.linalg.norm(diag.B_in - exact.B_in) / np.linalg.norm(exact.B_in) > 4 * error


def test_constant_tensor_on_a_box_gives_linear_field():
    from dolfinx import mesh
    from mpi4py import MPI

    msh = mesh.create_box(MPI.COMM_WORLD, [[0, 0, 0], [0.02, 0.01, 0.01]], [4, 2, 2])
    mu = np.array([[30.0, -7.0, 2.0], [-7.0, 4.0, 0.5], [2.0, 0.5, 9.0]])
    coef = build_mu_coefficient(msh, ConstantProvider(mu), _NoSVE())
    h0 = np.array([300.0, -500.0, 200.0])
    sol = solve_scalar_potential(coef, H0=tuple(h0))
    assert np.allclose(sol.H, h0, rtol=1e-8, atol=1e-6)
    assert np.allclose(sol.B, MU0 * mu @ h0, rtol=1e-8)
    assert sol.energy == pytest.approx(0.5 * MU0 * h0 @ mu @ h0 * 2e-6, rel=1e-9)


def test_wrong_field_dimension_is_refused():
    from dolfinx import mesh
    from mpi4py import MPI

    from magnetohom.errors import InputError

    msh = mesh.create_box(MPI.COMM_WORLD, [[0, 0, 0], [1, 1, 1]], [1, 1, 1])
    coef = build_mu_coefficient(msh, ConstantProvider(np.eye(3)), _NoSVE())
    with pytest.raises(InputError, match="H0 must be 3"):
        solve_scalar_potential(coef, H0=(1.0, 0.0))


class _NoSVE:
    """A material stand-in for a constant provider: all-matrix 4^3 images."""

    dim = 3
    resolution = 4

    def generate(self, x, gid, *, resolution=None):
        from macro.material import SVEBatch

        n = len(x)
        return SVEBatch(np.zeros((n, 4, 4, 4), bool), np.zeros(n), np.zeros(n))
