"""Analytic bounds and estimates: orderings, limits and known closed-form values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from magnetohom.errors import InputError
from micro.analytic import (
    Estimates,
    estimates,
    hashin_shtrikman,
    maxwell_garnett,
    reuss,
    self_consistent,
    voigt,
)

FUNCS = (voigt, reuss, maxwell_garnett, self_consistent)


@pytest.mark.parametrize("dim", [2, 3])
def test_ordering_random(dim):
    rng = np.random.default_rng(dim)
    for _ in range(50):
        f = rng.random(20)
        mm, mi = 10.0 ** rng.uniform(-3, 3, size=2)  # either phase may be the stronger one
        e = estimates(f, mm, mi, dim=dim)
        eps = 1e-12 * e.voigt
        assert np.all(e.reuss <= e.hs_lower + eps)
        assert np.all(e.hs_lower <= e.self_consistent + eps)
        assert np.all(e.self_consistent <= e.hs_upper + eps)
        assert np.all(e.hs_upper <= e.voigt + eps)
        assert np.all(
            (e.maxwell_garnett >= e.hs_lower - eps) & (e.maxwell_garnett <= e.hs_upper + eps)
        )


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize(("mm", "mi"), [(1.0, 250.0), (250.0, 1.0), (2.0, 2.0)])
def test_limits(dim, mm, mi):
    e = estimates(np.array([0.0, 1.0]), mm, mi, dim=dim)
    for name, value in e.as_dict().items():
        np.testing.assert_allclose(value, [mm, mi], rtol=1e-13, err_msg=name)
    # equal phases: everything equals that phase
    if mm == mi:
        for value in estimates(np.linspace(0, 1, 7), mm, mi, dim=dim).as_dict().values():
            np.testing.assert_allclose(value, mm, rtol=1e-13)


def test_keller_dykhne_2d():
    for mm, mi in [(1.0, 250.0), (3.0, 0.5), (1e-3, 1e3)]:
        assert self_consistent(0.5, mm, mi, dim=2) == pytest.approx(np.sqrt(mm * mi), rel=1e-13)


@pytest.mark.parametrize("dim", [2, 3])
def test_self_consistent_solves_bruggeman_and_is_symmetric(dim):
    f = np.linspace(0.0, 1.0, 41)
    mm, mi = 1.0, 250.0
    mu = self_consistent(f, mm, mi, dim=dim)
    k = dim - 1
    res = f * (mi - mu) / (mi + k * mu) + (1 - f) * (mm - mu) / (mm + k * mu)
    np.testing.assert_allclose(res, 0.0, atol=1e-13)
    np.testing.assert_allclose(mu, self_consistent(1 - f, mi, mm, dim=dim), rtol=1e-13)
    # 3D percolation-like threshold of the symmetric EMA at f = 1/3 for an infinite contrast
    if dim == 3:
        assert self_consistent(0.30, 1.0, 1e9, dim=3) < 10.0
        assert self_consistent(0.36, 1.0, 1e9, dim=3) > 1e6


def test_maxwell_dilute_expansion_3d():
    mm, mi = 1.0, 250.0
    beta = (mi - mm) / (mi + 2 * mm)
    for f in (1e-2, 1e-3, 1e-4):
        mg = maxwell_garnett(f, mm, mi, dim=3)
        dilute = mm * (1 + 3 * f * beta)
        assert abs(mg - dilute) <= 10 * f**2 * mm  # O(f^2) remainder
    f = 1e-3
    assert (maxwell_garnett(f, mm, mi, dim=3) - mm) / f == pytest.approx(3 * beta * mm, rel=1e-2)


@pytest.mark.parametrize("dim", [2, 3])
def test_hashin_shtrikman_is_maxwell_garnett_with_ordered_host(dim):
    f = np.linspace(0, 1, 11)
    lo, hi = hashin_shtrikman(f, 1.0, 250.0, dim=dim)
    np.testing.assert_allclose(lo, maxwell_garnett(f, 1.0, 250.0, dim=dim), rtol=1e-14)
    np.testing.assert_allclose(hi, maxwell_garnett(1 - f, 250.0, 1.0, dim=dim), rtol=1e-14)
    lo2, hi2 = hashin_shtrikman(f, 250.0, 1.0, dim=dim)  # inclusion weaker than matrix
    np.testing.assert_allclose(hi2, maxwell_garnett(f, 250.0, 1.0, dim=dim), rtol=1e-14)
    np.testing.assert_allclose(lo2, maxwell_garnett(1 - f, 1.0, 250.0, dim=dim), rtol=1e-14)
    assert np.all(lo2 <= hi2)


def test_hs_2d_known_value():
    # 2D HS bounds, f = 1/2, mu = (1, 3): mu_1 + f_2 / (1/(mu_2 - mu_1) + f_1/(2 mu_1)) = 5/3
    lo, hi = hashin_shtrikman(0.5, 1.0, 3.0, dim=2)
    assert lo == pytest.approx(5.0 / 3.0, rel=1e-14)
    assert hi == pytest.approx(3.0 + 0.5 / (1.0 / (1.0 - 3.0) + 0.5 / 6.0), rel=1e-14)


def test_broadcasting_and_dtypes():
    f = np.linspace(0.1, 0.9, 6).reshape(2, 3)
    for fn in FUNCS:
        out = fn(f, 1.0, np.array([[2.0], [5.0]]), dim=2)
        assert out.shape == (2, 3) and out.dtype == np.float64
        scalar = fn(0.3, 1, 250, dim=3)
        assert isinstance(scalar, float) and np.ndim(scalar) == 0
    lo, hi = hashin_shtrikman(np.float32(0.3), 1.0, 250.0, dim=2)
    assert lo.dtype == np.float64 and hi.dtype == np.float64
    e = estimates([0.2, 0.4], 1.0, 250.0, dim=3)
    assert isinstance(e, Estimates) and e.voigt.shape == (2,)
    assert set(e.as_dict()) == {
        "voigt",
        "reuss",
        "hs_lower",
        "hs_upper",
        "maxwell_garnett",
        "self_consistent",
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.voigt = e.reuss  # type: ignore[misc]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((1.2, 1.0, 250.0), {}, r"volume fraction must be in \[0, 1\]"),
        ((-0.1, 1.0, 250.0), {}, r"volume fraction must be in \[0, 1\]"),
        ((np.nan, 1.0, 250.0), {}, r"volume fraction must be in \[0, 1\]"),
        ((0.3, 0.0, 250.0), {}, "mu_matrix must be finite and > 0"),
        ((0.3, 1.0, -1.0), {}, "mu_inclusion must be finite and > 0"),
        ((0.3, 1.0, np.inf), {}, "mu_inclusion"),
        ((0.3, 1.0, 250.0), {"dim": 4}, "dim must be 2 or 3"),
    ],
)
def test_bad_input(args, kwargs, match):
    for fn in (*FUNCS, hashin_shtrikman, estimates):
        with pytest.raises(InputError, match=match):
            fn(*args, **kwargs)
