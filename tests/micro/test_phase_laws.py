"""Phase laws (micro.phase_laws): consistency of B, dB/dH and w*, convexity, bad input."""

import numpy as np
import pytest

from magnetohom.errors import InputError
from micro.phase_laws import (
    MU0,
    ArctanLaw,
    FrohlichKennellyLaw,
    LinearLaw,
    TableLaw,
    law_from_spec,
)


def _table_law() -> TableLaw:
    h = np.array([0, 50, 100, 200, 400, 800, 1600, 5000, 20000, 1e5])
    b = ArctanLaw(2000.0, 1.6).magnitude(h)
    return TableLaw(h, b)


LAWS = [LinearLaw(5.0), ArctanLaw(1000.0, 1.5), FrohlichKennellyLaw(800.0, 2.0), _table_law()]


@pytest.mark.parametrize("law", LAWS, ids=lambda law: type(law).__name__)
@pytest.mark.parametrize("d", [2, 3])
def test_flux_tangent_coenergy_consistent(law, d):
    rng = np.random.default_rng(0)
    H = rng.normal(size=(20, d)) * rng.choice([10.0, 300.0, 3000.0, 2e5], size=(20, 1))
    B, T, W = law.evaluate(H)
    step = 1e-5 * np.linalg.norm(H, axis=1)
    for k in range(d):
        e = np.zeros_like(H)
        e[:, k] = step
        fd_b = (law.coenergy(H + e) - law.coenergy(H - e)) / (2 * step)
        np.testing.assert_allclose(fd_b, B[:, k], rtol=1e-6, atol=1e-6 * np.abs(B).max())
        fd_t = (law.flux(H + e) - law.flux(H - e)) / (2 * step[:, None])
        np.testing.assert_allclose(fd_t, T[:, :, k], rtol=1e-5, atol=1e-6 * np.abs(T).max())
    np.testing.assert_allclose(T, np.swapaxes(T, -1, -2))
    assert np.linalg.eigvalsh(T).min() > 0
    # coenergy convex along random lines
    for _ in range(5):
        a, b = rng.normal(size=(2, d)) * 1e3
        t = np.linspace(0, 1, 41)[:, None]
        w = law.coenergy(a + t * (b - a))
        assert np.all(w[:-2] - 2 * w[1:-1] + w[2:] >= -1e-12 * np.abs(w).max())


def test_small_field_limit_and_saturation():
    law = ArctanLaw(1000.0, 1.5)
    np.testing.assert_allclose(law.tangent(np.zeros(2)), 1000 * MU0 * np.eye(2), rtol=1e-12)
    h = 1e3 * law.knee_field
    assert abs(law.magnitude(h) - MU0 * h - 1.5) < 2e-3  # saturated polarization
    fk = FrohlichKennellyLaw(1000.0, 1.5)
    np.testing.assert_allclose(fk.initial_mu, 1000.0)


def test_table_passes_through_points_and_inverse():
    law = _table_law()
    np.testing.assert_allclose(law.magnitude(law.H), law.B, rtol=1e-12, atol=1e-15)
    b = np.array([0.1, 1.0, 1.7])
    np.testing.assert_allclose(law.magnitude(law.inverse(b)), b, rtol=1e-12)


def test_table_csv_and_spec(tmp_path):
    p = tmp_path / "bh.csv"
    p.write_text("H,B\n0,0\n100,0.5\n300,1.1\n1000,1.4\n1e4,1.6\n")
    law = law_from_spec(f"table:{p}")
    assert isinstance(law, TableLaw) and law.knee_field > 0
    assert isinstance(law_from_spec("arctan:1000,1.5"), ArctanLaw)
    assert isinstance(law_from_spec("3"), LinearLaw)


@pytest.mark.parametrize(
    ("H", "B", "match"),
    [
        ([0, 100, 200, 300], [0, 1.0, 0.9, 1.2], "not strictly increasing in B"),
        ([0, 100, 100, 300], [0, 1.0, 1.1, 1.2], "not strictly increasing in H"),
        ([0, 100, np.nan], [0, 1.0, 1.1], "NaN"),
        ([0, 100, 200], [0.1, 1.0, 1.1], "B = 0 at H = 0"),
    ],
)
def test_bad_tables(H, B, match):
    with pytest.raises(InputError, match=match):
        TableLaw(H, B)


def test_bad_parameters():
    with pytest.raises(InputError, match="mu_r > 1"):
        ArctanLaw(0.5, 1.5)
    with pytest.raises(InputError, match="saturation"):
        FrohlichKennellyLaw(100.0, -1.0)
    with pytest.raises(InputError, match="bad phase law"):
        law_from_spec("cubic:1,2")
