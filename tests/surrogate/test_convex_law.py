"""The learned convex effective law (surrogate.convex_law): convexity, SPD, limits, provider."""

from __future__ import annotations

import numpy as np
import pytest

from magnetohom.errors import InputError
from micro.phase_laws import MU0, ArctanLaw, LinearLaw
from surrogate.convex_law import ConvexLaw, ConvexLawOptions, ConvexLawProvider

LAWS = (LinearLaw(1.0), ArctanLaw(1000.0, 1.6))


def _random_law(dim: int, seed: int = 0) -> ConvexLaw:
    law = ConvexLaw(dim, LAWS, 6.0, ConvexLawOptions(terms=5, hidden=(8,), seed=seed))
    rng = np.random.default_rng(seed)
    law.mlp.set_weights([rng.normal(size=w.shape) for w in law.mlp.get_weights()])
    return law


def _random_points(dim: int, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    A = rng.normal(size=(n, dim, dim))
    mu = np.eye(dim) + A @ np.swapaxes(A, 1, 2) + 0.05 * np.eye(dim)
    return mu, rng.uniform(0.1, 0.6, n)


@pytest.mark.parametrize("dim", [2, 3])
def test_convex_spd_and_small_field_limit(dim):
    rng = np.random.default_rng(1)
    law = _random_law(dim)
    mu, vf = _random_points(dim, 64, rng)
    knee = law.knee_fields(mu, vf)
    H = (
        rng.normal(size=(64, dim))
        * knee[:, None]
        * rng.choice([0.0, 1e-3, 1.0, 10.0, 1e3], 64)[:, None]
    )
    ev = law.evaluate(H, mu, vf)
    assert np.linalg.eigvalsh(ev.tangent).min() > 0
    # the tangent never drops below mu_0 (vacuum) and B . H >= mu_0 |H|^2
    assert np.linalg.eigvalsh(ev.tangent / MU0).min() > 1 - 1e-9
    zero = law.evaluate(np.zeros((64, dim)), mu, vf)
    np.testing.assert_allclose(zero.tangent / MU0, mu, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(zero.B, 0.0, atol=1e-30)
    # convex along random lines: second differences of the coenergy, monotone B
    t = np.linspace(0, 1, 21)
    for i in range(8):
        a, b = rng.normal(size=(2, dim)) * 3 * knee[i]
        Hl = a + t[:, None] * (b - a)
        e = law.evaluate(Hl, np.repeat(mu[i : i + 1], 21, 0), np.repeat(vf[i], 21))
        w = e.coenergy
        assert np.all(w[:-2] - 2 * w[1:-1] + w[2:] >= -1e-10 * np.abs(w).max())
        assert np.all(np.einsum("kd,kd->k", np.diff(e.B, axis=0), np.diff(Hl, axis=0)) >= 0)


def test_autodiff_matches_finite_differences():
    rng = np.random.default_rng(2)
    law = _random_law(2, seed=3)
    mu, vf = _random_points(2, 4, rng)
    knee = law.knee_fields(mu, vf)
    H = rng.normal(size=(4, 2)) * knee[:, None]
    ev = law.evaluate(H, mu, vf)
    for k in range(2):
        e = np.zeros((4, 2))
        e[:, k] = 1e-5 * knee
        p, m = law.evaluate(H + e, mu, vf), law.evaluate(H - e, mu, vf)
        np.testing.assert_allclose((p.coenergy - m.coenergy) / (2 * e[:, k]), ev.B[:, k], rtol=1e-6)
        np.testing.assert_allclose(
            (p.B - m.B) / (2 * e[:, k : k + 1]), ev.tangent[:, :, k], rtol=1e-5
        )


def test_save_load_and_provider_range(tmp_path):
    law = _random_law(2)
    law.save(tmp_path / "law")
    again = ConvexLaw.load(tmp_path / "law")
    rng = np.random.default_rng(4)
    mu, vf = _random_points(2, 3, rng)
    H = rng.normal(size=(3, 2)) * 1e4
    np.testing.assert_allclose(again.evaluate(H, mu, vf).B, law.evaluate(H, mu, vf).B)
    far = H.copy()
    far[1] = 100 * law.knee_fields(mu, vf)[1]
    with pytest.raises(InputError, match="beyond the learned law's range"):
        ConvexLawProvider(law, mu, vf)(far)
    flag = ConvexLawProvider(law, mu, vf, on_range="flag")
    B, T = flag(far)
    assert flag.out_of_range == 1 and B.shape == (3, 2) and T.shape == (3, 2, 2)
    with pytest.raises(InputError, match="needs the images"):
        ConvexLawProvider(law, mu, vf, on_range="fallback")
    with pytest.raises(InputError, match="positive definite"):
        ConvexLawProvider(law, np.repeat(np.eye(2)[None], 3, 0), vf)


def test_fallback_answers_from_the_cell_problem():
    from micro.nonlinear import NonlinearHomogenizer

    n = 16
    g = np.indices((n, n)) + 0.5 - n / 2
    image = (g**2).sum(0) < (0.3 * n) ** 2
    nh = NonlinearHomogenizer((n, n))
    mu = nh.solve(image, LAWS, np.zeros(2)).tangent[None] / MU0
    law = _random_law(2)
    vf = np.array([image.mean()])
    H = np.array([[50.0, 0.0]]) * law.knee_fields(mu, vf)[:, None]
    prov = ConvexLawProvider(law, mu, vf, on_range="fallback", images=image[None])
    B, T = prov(H)
    ref = nh.solve(image, LAWS, H[0])
    np.testing.assert_allclose(B[0], ref.B, rtol=1e-8)
    assert prov.fallbacks == 1
