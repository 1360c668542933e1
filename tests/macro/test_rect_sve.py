"""Rectangular SVEs at the macro quadrature points (issue 21): generated with their shape,
homogenized by the FE provider, exact for a laminate; square-only providers refuse them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import ClassVar

import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

import numpy as np
import pytest

from macro.coefficient import build_mu_coefficient
from macro.material import Material
from macro.provider import ConstantProvider, check_resolution, get_provider
from macro.solve import MU0, solve_scalar_potential
from magnetohom.errors import InputError

SHAPE = (24, 16)
MU_M, MU_I = 1.0, 250.0


def _mesh(nx: int = 4, ny: int = 2):
    from dolfinx import mesh
    from mpi4py import MPI

    return mesh.create_rectangle(MPI.COMM_WORLD, [[0, 0], [0.02, 0.01]], [nx, ny])


def _laminate(*, dim, size, volume_fraction, rng, **_class):
    """Layers normal to x_1: the first ``vf n1`` rows of the cell are inclusion."""
    assert dim == 2 and size == SHAPE
    image = np.zeros(size, dtype=bool)
    image[: round(volume_fraction * size[0])] = True
    return SimpleNamespace(image=image)


def test_rectangular_laminate_sves_give_the_exact_anisotropic_tensor():
    """FE² with a 24x16 laminate SVE at every point: mu* = diag(harmonic, arithmetic mean)
    everywhere, and the macro field of rho = -H0.x is exact: H = H0, B = mu0 mu* H0."""
    msh = _mesh()
    material = Material(0.25, resolution=SHAPE, generator=_laminate, seed=1)
    assert material.shape() == SHAPE and material.describe()["resolution"] == list(SHAPE)
    provider = get_provider("fe", mu_matrix=MU_M, mu_inclusion=MU_I, dim=2, rtol=1e-12)
    coef = build_mu_coefficient(msh, provider, material, degree=1)
    f = 6 / 24
    exact = np.diag([1.0 / (f / MU_I + (1 - f) / MU_M), f * MU_I + (1 - f) * MU_M])
    values = coef.mu.x.array.reshape(-1, 2, 2)
    np.testing.assert_allclose(values, np.broadcast_to(exact, values.shape), rtol=1e-8,
                               atol=1e-8 * exact.max())  # fmt: skip
    np.testing.assert_allclose(coef.volume_fraction.x.array, f)
    h0 = np.array([300.0, -500.0])
    sol = solve_scalar_potential(coef, H0=tuple(h0))
    assert np.allclose(sol.H, h0, rtol=1e-8, atol=1e-6)
    assert np.allclose(sol.B, MU0 * exact @ h0, rtol=1e-7)


def test_rectangular_rsa_sves_through_the_fe_provider():
    from micro.generate import generate_images
    from micro.homogenization import Homogenizer

    material = Material(0.3, resolution=(32, 16), radius=2.0, seed=4)
    pts = np.array([[0.001, 0.002], [0.01, 0.005], [0.015, 0.008]])
    gid = np.array([3, 10, 11])
    batch = material.generate(pts, gid)
    assert batch.images.shape == (3, 32, 16)
    np.testing.assert_allclose(batch.volume_fraction, batch.images.mean(axis=(1, 2)))
    assert np.all(np.abs(batch.volume_fraction - 0.3) <= 0.005)
    same = generate_images(np.full(3, 0.3), seed=4, spawn_keys=gid, size=(32, 16), radius=2.0)
    np.testing.assert_array_equal(batch.images, same)
    # the coefficient: one FE cell problem per point, on the rectangle
    msh = _mesh(2, 1)
    provider = get_provider("fe", mu_matrix=MU_M, mu_inclusion=MU_I, dim=2)
    coef = build_mu_coefficient(msh, provider, material, degree=1)
    from macro.coefficient import quadrature_points

    points, index = quadrature_points(msh, 1)
    images = material.generate(points.reshape(-1, 2), index.ravel()).images
    direct = Homogenizer((32, 16))(images, mu_matrix=MU_M, mu_inclusion=MU_I).mu_eff
    np.testing.assert_allclose(coef.mu.x.array.reshape(-1, 2, 2), direct, rtol=1e-10)
    assert provider.n_solved == images.shape[0] and set(provider._cache) == {(32, 16)}


def test_default_radius_of_a_rectangle_is_that_of_its_smallest_side():
    assert Material(0.3).radius_for((256, 128)) == Material(0.3).radius_for(128) == 4.0
    assert Material(0.3, dim=3).radius_for((101, 202, 303)) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("resolution", "match"),
    [((64, 2), "integer >= 4 pixels or 2 of them"), ((64, 32, 16), "or 2 of them"),
     ((64.0, 32), "or 2 of them")],
)  # fmt: skip
def test_bad_rectangular_resolutions(resolution, match):
    with pytest.raises(InputError, match=match):
        Material(0.3, resolution=resolution)


class _SquareCNN:
    """A stand-in for a specialist CNN: square 32-px images only (the protocol's members)."""

    name = "cnn"
    dim = 2
    resolution = 32
    geometry: ClassVar[dict] = {}
    mu_phases = (MU_M, MU_I)
    n_fallback = 0
    bundle = SimpleNamespace(name="tiny-cnn")

    def warm_up(self, shape=None):
        return 0.0

    def __call__(self, images):
        raise AssertionError("never asked")


def test_square_only_provider_refuses_rectangular_sves_in_one_line():
    material = Material(0.3, resolution=(32, 16))
    with pytest.raises(InputError) as info:
        build_mu_coefficient(_mesh(2, 1), _SquareCNN(), material, degree=1)
    assert str(info.value) == (
        "provider 'cnn' (model 'tiny-cnn') takes square SVEs of 32 px per side only; the "
        "material asks for rectangular 32x16 SVEs (use the fe provider for rectangular cells)"
    )
    assert check_resolution(_SquareCNN(), 32) == 32 and check_resolution(_SquareCNN(), None) == 32
    assert check_resolution(ConstantProvider(2.0), (32, 16)) is None
    with pytest.raises(InputError, match="'cnn' \\(model 'tiny-cnn'\\) needs 32-pixel SVEs"):
        check_resolution(_SquareCNN(), 48)


@pytest.mark.slow
def test_shipped_cnn_refuses_rectangular_sves():
    pytest.importorskip("tensorflow")
    provider = get_provider("cnn", dim=2)
    side = provider.resolution
    with pytest.raises(InputError) as info:
        check_resolution(provider, (side, side // 2))
    text = str(info.value)
    assert text.startswith(f"provider 'cnn' (model '{provider.bundle.name}') takes square SVEs")
    assert f"of {side} px per side only" in text and len(text.splitlines()) == 1
