"""Analytic bounds/estimates and the tensor helpers."""

from __future__ import annotations

import numpy as np
import pytest

from magnetohom.errors import InputError
from surrogate import bounds
from surrogate.tensors import (
    clip_eigenvalues,
    component_names,
    components,
    from_components,
    from_mandel,
    mandel,
    sym_expm,
    sym_logm,
)

F = np.linspace(0.0, 1.0, 21)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize(("mm", "mi"), [(1.0, 250.0), (5.0, 0.5)])
def test_bounds_are_nested(dim, mm, mi):
    lo_w, hi_w = bounds.wiener(F, mm, mi)
    lo_hs, hi_hs = bounds.hashin_shtrikman(F, mm, mi, dim=dim)
    eps = 1e-12 * max(mm, mi)
    assert (
        np.all(lo_w <= lo_hs + eps) and np.all(lo_hs <= hi_hs + eps) and np.all(hi_hs <= hi_w + eps)
    )
    for est in (bounds.maxwell_garnett(F, mm, mi, dim=dim), bounds.bruggeman(F, mm, mi, dim=dim)):
        assert np.all(lo_w - eps <= est) and np.all(est <= hi_w + eps)
    # end points: pure phases
    np.testing.assert_allclose([lo_w[0], hi_w[0], lo_hs[0], hi_hs[0]], mm)
    np.testing.assert_allclose([lo_w[-1], hi_w[-1], lo_hs[-1], hi_hs[-1]], mi)


@pytest.mark.parametrize("dim", [2, 3])
def test_bruggeman_solves_its_equation(dim):
    m = bounds.bruggeman(F, 1.0, 250.0, dim=dim)
    res = F * (250.0 - m) / (250.0 + (dim - 1) * m) + (1 - F) * (1.0 - m) / (1.0 + (dim - 1) * m)
    np.testing.assert_allclose(res, 0.0, atol=1e-12)


def test_bounds_agree_with_micro_analytic():
    analytic = pytest.importorskip("micro.analytic")
    for dim in (2, 3):
        np.testing.assert_allclose(
            analytic.voigt(F, 1.0, 250.0, dim=dim), bounds.wiener(F, 1.0, 250.0)[1]
        )
        np.testing.assert_allclose(
            analytic.reuss(F, 1.0, 250.0, dim=dim), bounds.wiener(F, 1.0, 250.0)[0]
        )
        np.testing.assert_allclose(
            np.asarray(analytic.hashin_shtrikman(F, 1.0, 250.0, dim=dim)),
            np.asarray(bounds.hashin_shtrikman(F, 1.0, 250.0, dim=dim)),
        )


@pytest.mark.parametrize("dim", [2, 3])
def test_mandel_and_components_round_trip(dim):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, dim, dim))
    a = a + np.swapaxes(a, 1, 2)
    np.testing.assert_allclose(from_mandel(mandel(a), dim), a)
    np.testing.assert_allclose(from_components(components(a), dim), a)
    np.testing.assert_allclose(np.linalg.norm(mandel(a), axis=1), np.linalg.norm(a, axis=(1, 2)))
    assert len(component_names(dim)) == mandel(a).shape[1]
    assert component_names(2) == ["mu11", "mu22", "mu12"]
    assert component_names(3)[3:] == ["mu23", "mu13", "mu12"]


def test_logm_expm_and_clipping():
    rng = np.random.default_rng(1)
    b = rng.normal(size=(4, 3, 3))
    spd = b @ np.swapaxes(b, 1, 2) + 0.5 * np.eye(3)
    np.testing.assert_allclose(sym_expm(sym_logm(spd)), spd, rtol=1e-10, atol=1e-12)
    clipped = clip_eigenvalues(spd, np.full(4, 1.0), np.full(4, 2.0))
    w = np.linalg.eigvalsh(clipped)
    assert np.all(w >= 1.0 - 1e-12) and np.all(w <= 2.0 + 1e-12)
    with pytest.raises(InputError, match="positive definite"):
        sym_logm(-spd)
    with pytest.raises(InputError, match="shape"):
        mandel(np.zeros((3, 4, 4)))
