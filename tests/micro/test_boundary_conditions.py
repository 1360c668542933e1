"""The paper's three boundary conditions: UDBC, PBC, UNBC (micro.dirichlet, micro.neumann)."""

import numpy as np
import pytest

from micro.apparent import apparent_tensors, order_margins
from micro.homogenization import Homogenizer

BCS = ("neumann", "periodic", "dirichlet")


def _blobs(shape, fraction, seed, sigma=2.0):
    """Random two-phase image with correlated blobs (periodic Gaussian-filtered noise)."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(np.random.default_rng(seed).random(shape), sigma, mode="wrap")
    return noise > np.quantile(noise, 1.0 - fraction)


@pytest.mark.parametrize("shape", [(12, 20), (7, 9), (5, 6, 7)])
@pytest.mark.parametrize("bc", BCS)
def test_homogeneous_image_gives_mu_exactly(shape, bc):
    h = Homogenizer(shape, bc=bc, rtol=1e-10)
    sol = h.solve_mu(np.full(shape, 37.5))
    np.testing.assert_allclose(sol.mu_eff, 37.5 * np.eye(len(shape)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("shape", "seed"), [((32, 32), 0), ((24, 40), 1), ((48, 48), 2), ((10, 12, 11), 3)]
)
def test_order_unbc_pbc_udbc(shape, seed):
    image = _blobs(shape, 0.35, seed)
    mu = np.where(image, 80.0, 1.0)
    res = apparent_tensors(mu, bcs=BCS)
    assert res.ordered
    t = res.tensors
    assert order_margins(t["neumann"], t["periodic"]) > 1e-6
    assert order_margins(t["periodic"], t["dirichlet"]) > 1e-6
    assert 0 < res.width < 10
    for bc in BCS:  # symmetric positive definite
        np.testing.assert_allclose(t[bc], t[bc].T, atol=1e-12 * abs(t[bc]).max())
        assert np.linalg.eigvalsh(t[bc]).min() > 0


def test_tiled_periodic_cell_converges_to_pbc_at_rate_one():
    """k x k tilings of one periodic cell: PBC is the cell's; UDBC and UNBC approach it ~ 1/k."""
    cell = np.where(_blobs((8, 8), 0.4, 7, sigma=1.0), 20.0, 1.0)
    ref = Homogenizer(cell.shape, rtol=1e-10).solve_mu(cell).mu_eff
    ks = np.array([1, 2, 4, 8])
    gaps = {"dirichlet": [], "neumann": []}
    for k in ks:
        mu = np.tile(cell, (k, k))
        res = apparent_tensors(mu, bcs=BCS, rtol=1e-10)
        np.testing.assert_allclose(res.tensors["periodic"], ref, rtol=1e-8)
        assert res.ordered
        for bc in gaps:
            gaps[bc].append(np.linalg.norm(res.tensors[bc] - ref, 2) / np.linalg.norm(ref, 2))
    for bc, g in gaps.items():
        g = np.array(g)
        assert np.all(np.diff(g) < 0), (bc, g)
        rate = -np.polyfit(np.log(ks[1:]), np.log(g[1:]), 1)[0]
        assert 0.8 < rate < 1.2, (bc, rate, g)


def test_flux_average_agrees_with_energy():
    mu = np.where(_blobs((24, 24), 0.3, 5), 50.0, 1.0)
    for bc in ("dirichlet", "neumann"):
        sol = Homogenizer(mu.shape, bc=bc, rtol=1e-10).solve_mu(mu)
        np.testing.assert_allclose(sol.flux_mu_eff, sol.mu_eff, rtol=1e-7)


def test_dirichlet_and_neumann_options_are_checked():
    from magnetohom.errors import InputError

    with pytest.raises(InputError, match="bc must be one of"):
        Homogenizer((8, 8), bc="robin")
    with pytest.raises(InputError, match="'mg' \\(2D\\)"):
        Homogenizer((6, 6, 6), bc="dirichlet", solver="mg")


@pytest.mark.parametrize("bc", ["dirichlet", "neumann"])
@pytest.mark.parametrize("shape", [(32, 32), (20, 28)])
def test_multigrid_and_boomeramg_agree(bc, shape):
    """The 2D default (open-grid multigrid, deflated at this contrast) against CG + BoomerAMG."""
    mu = np.where(_blobs(shape, 0.35, 11), 250.0, 1.0)
    mg = Homogenizer(shape, bc=bc, rtol=1e-10)
    amg = Homogenizer(shape, bc=bc, rtol=1e-10, solver="amg")
    assert mg.solver == "mg" and amg.solver == "amg"
    a, b = mg.solve_mu(mu).mu_eff, amg.solve_mu(mu).mu_eff
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(b).max())
