"""k-phase images and rectangular cells in the FE homogenization; k-phase bounds."""

import numpy as np
import pytest

from magnetohom.errors import InputError
from micro.analytic import hashin_shtrikman, phase_bounds
from micro.homogenization import Homogenizer, homogenize


@pytest.mark.parametrize("shape", [(18, 12), (12, 18), (9, 6, 5)])
def test_three_phase_laminate_is_exact(shape):
    """Layers normal to x_1: harmonic mean along x_1, arithmetic mean across, to round-off."""
    mu = np.array([1.0, 50.0, 1000.0])
    rows = np.arange(shape[0]) * 3 // shape[0]  # three layers of (nearly) equal thickness
    labels = np.broadcast_to(rows.reshape((-1,) + (1,) * (len(shape) - 1)), shape).astype(int)
    f = np.bincount(labels.ravel(), minlength=3) / labels.size
    res = homogenize(labels, mu=mu, rtol=1e-10, dim=len(shape))
    expected = np.full(len(shape), np.sum(f * mu))
    expected[0] = 1.0 / np.sum(f / mu)
    np.testing.assert_allclose(res.mu_eff[0], np.diag(expected), rtol=1e-12, atol=1e-9)


def test_rectangular_tiling_equals_square_cell():
    rng = np.random.default_rng(3)
    cell = rng.random((16, 16)) < 0.4
    square = homogenize(cell, mu_inclusion=30.0, rtol=1e-10).mu_eff[0]
    for tiled in (np.tile(cell, (1, 2)), np.tile(cell, (3, 1))):
        rect = homogenize(tiled, mu_inclusion=30.0, rtol=1e-10).mu_eff[0]
        np.testing.assert_allclose(rect, square, rtol=1e-8)


@pytest.mark.parametrize("seed", range(4))
def test_random_three_phase_images_within_hashin_shtrikman(seed):
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    noise = gaussian_filter(rng.random((48, 48)), 1.5, mode="wrap")
    labels = np.digitize(noise, np.quantile(noise, [0.4, 0.7]))
    mu = np.array([1.0, 10.0, 100.0])
    mu_eff = Homogenizer(labels.shape)(labels, mu=mu).mu_eff[0]
    b = phase_bounds(np.bincount(labels.ravel(), minlength=3) / labels.size, mu, dim=2)
    eig = np.linalg.eigvalsh(mu_eff)
    assert b.wiener_lower <= eig.min() and eig.max() <= b.wiener_upper
    assert b.hs_lower <= np.trace(mu_eff) / 2 <= b.hs_upper


def test_phase_bounds_reduce_to_two_phase_hs():
    lo, hi = hashin_shtrikman(0.3, 1.0, 250.0, dim=3)
    b = phase_bounds([0.7, 0.3], [1.0, 250.0], dim=3)
    assert b.hs_lower == pytest.approx(float(lo), rel=1e-12)
    assert b.hs_upper == pytest.approx(float(hi), rel=1e-12)
    assert b.wiener_lower < b.hs_lower < b.hs_upper < b.wiener_upper


def test_label_validation():
    h = Homogenizer((8, 8))
    with pytest.raises(InputError, match="labels up to 3 but only 3 permeabilities"):
        h(np.full((8, 8), 3), mu=[1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="integers"):
        h(np.full((8, 8), 0.5), mu=[1.0, 2.0])
    with pytest.raises(InputError, match="finite and > 0"):
        h(np.zeros((8, 8), dtype=int), mu=[1.0, -2.0])
