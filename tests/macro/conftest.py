"""Shared helpers of the macro tests: small meshes and exact solutions."""

from __future__ import annotations

import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

import numpy as np
import pytest

from macro.solve import MU0


class Cylinder:
    """Exact solution: a cylinder of constant (possibly anisotropic) mu_c, radius a, in air
    (mu = 1) with the applied field H0. The interior field is uniform,
    H_in = 2 (mu_c + I)^-1 H0, the exterior potential rho = -H0.x + a^2 p.x / r^2 with
    p = H0 - H_in."""

    def __init__(self, mu_c, a: float = 0.02, H0=(1000.0, 0.0)):
        self.mu_c = np.asarray(mu_c, dtype=float) * (np.eye(2) if np.ndim(mu_c) == 0 else 1.0)
        self.a = a
        self.H0 = np.asarray(H0, dtype=float)
        self.H_in = 2.0 * np.linalg.solve(self.mu_c + np.eye(2), self.H0)
        self.B_in = MU0 * self.mu_c @ self.H_in
        self.p = self.H0 - self.H_in

    def rho(self, x):
        r2 = np.maximum(x[0] ** 2 + x[1] ** 2, 1e-300)
        h0x = self.H0[0] * x[0] + self.H0[1] * x[1]
        px = self.p[0] * x[0] + self.p[1] * x[1]
        return -h0x + self.a**2 * px / r2

    def A(self, x):
        r2 = np.maximum(x[0] ** 2 + x[1] ** 2, 1e-300)
        h0, p, a2 = self.H0, self.p, self.a**2
        return MU0 * (h0[0] * x[1] - h0[1] * x[0] - a2 * (p[1] * x[0] - p[0] * x[1]) / r2)


@pytest.fixture(scope="session")
def cylinder_mesh():
    """Solid cylinder (region 'shield') of radius 20 mm in a 120 mm box, by size."""
    from macro.geometry import shield_geometry

    cache = {}

    def make(size):
        if size not in cache:
            cache[size] = shield_geometry(r_outer=0.02, r_inner=0.0, half_width=0.06, size=size)
        return cache[size]

    return make
