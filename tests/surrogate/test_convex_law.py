"""The learned convex effective law (surrogate.convex_law): convexity, SPD, limits, provider."""

from __future__ import annotations

import numpy as np
import pytest

from magnetohom.errors import InputError
from micro.nonlinear import CellDescriptors
from micro.phase_laws import MU0, ArctanLaw, LinearLaw
from surrogate.convex_law import ConvexLaw, ConvexLawOptions, ConvexLawProvider

LAWS = (LinearLaw(1.0), ArctanLaw(1000.0, 1.6))


def _random_law(dim: int, seed: int = 0) -> ConvexLaw:
    law = ConvexLaw(dim, LAWS, 6.0, ConvexLawOptions(terms=5, hidden=(8,), seed=seed))
    rng = np.random.default_rng(seed)
    law.mlp.set_weights([rng.normal(size=w.shape) for w in law.mlp.get_weights()])
    return law


def _random_points(dim: int, n: int, rng) -> CellDescriptors:
    A = rng.normal(size=(n, dim, dim))
    mu = np.eye(dim) + A @ np.swapaxes(A, 1, 2) + 0.05 * np.eye(dim)
    G = rng.normal(size=(n, 2, dim, dim))
    mom = G @ np.swapaxes(G, -1, -2) + 0.01 * np.eye(dim)
    return CellDescriptors(mu, rng.uniform(0.1, 0.6, n), mom)


@pytest.mark.parametrize("dim", [2, 3])
def test_convex_spd_and_small_field_limit(dim):
    rng = np.random.default_rng(1)
    law = _random_law(dim)
    cells = _random_points(dim, 64, rng)
    knee = law.knee_fields(cells)
    H = (
        rng.normal(size=(64, dim))
        * knee[:, None]
        * rng.choice([0.0, 1e-3, 1.0, 10.0, 1e3], 64)[:, None]
    )
    ev = law.evaluate(H, cells)
    assert np.linalg.eigvalsh(ev.tangent).min() > 0
    # the tangent never drops below mu_0 (vacuum) and B . H >= mu_0 |H|^2
    assert np.linalg.eigvalsh(ev.tangent / MU0).min() > 1 - 1e-9
    zero = law.evaluate(np.zeros((64, dim)), cells)
    np.testing.assert_allclose(zero.tangent / MU0, cells.mu_lin, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(zero.B, 0.0, atol=1e-30)
    # convex along random lines: second differences of the coenergy, monotone B
    t = np.linspace(0, 1, 21)
    for i in range(8):
        a, b = rng.normal(size=(2, dim)) * 3 * knee[i]
        Hl = a + t[:, None] * (b - a)
        e = law.evaluate(Hl, cells.take(np.full(21, i)))
        w = e.coenergy
        assert np.all(w[:-2] - 2 * w[1:-1] + w[2:] >= -1e-10 * np.abs(w).max())
        assert np.all(np.einsum("kd,kd->k", np.diff(e.B, axis=0), np.diff(Hl, axis=0)) >= 0)


def test_autodiff_matches_finite_differences():
    rng = np.random.default_rng(2)
    law = _random_law(2, seed=3)
    cells = _random_points(2, 4, rng)
    knee = law.knee_fields(cells)
    H = rng.normal(size=(4, 2)) * knee[:, None]
    ev = law.evaluate(H, cells)
    for k in range(2):
        e = np.zeros((4, 2))
        e[:, k] = 1e-5 * knee
        p, m = law.evaluate(H + e, cells), law.evaluate(H - e, cells)
        np.testing.assert_allclose((p.coenergy - m.coenergy) / (2 * e[:, k]), ev.B[:, k], rtol=1e-6)
        np.testing.assert_allclose(
            (p.B - m.B) / (2 * e[:, k : k + 1]), ev.tangent[:, :, k], rtol=1e-5
        )


def test_save_load_and_provider_range(tmp_path):
    law = _random_law(2)
    law.save(tmp_path / "law")
    again = ConvexLaw.load(tmp_path / "law")
    rng = np.random.default_rng(4)
    cells = _random_points(2, 3, rng)
    H = rng.normal(size=(3, 2)) * 1e4
    np.testing.assert_allclose(again.evaluate(H, cells).B, law.evaluate(H, cells).B)
    far = H.copy()
    far[1] = 100 * law.knee_fields(cells)[1]
    with pytest.raises(InputError, match="beyond the learned law's range"):
        ConvexLawProvider(law, cells)(far)
    flag = ConvexLawProvider(law, cells, on_range="flag")
    B, T = flag(far)
    assert flag.out_of_range == 1 and B.shape == (3, 2) and T.shape == (3, 2, 2)
    with pytest.raises(InputError, match="needs the images"):
        ConvexLawProvider(law, cells, on_range="fallback")
    with pytest.raises(InputError, match="positive definite"):
        eye = np.repeat(np.eye(2)[None], 3, 0)
        ConvexLawProvider(law, CellDescriptors(eye, cells.volume_fraction, cells.moments))


def test_fallback_answers_from_the_cell_problem():
    from micro.nonlinear import NonlinearHomogenizer, describe_cells

    n = 16
    g = np.indices((n, n)) + 0.5 - n / 2
    image = (g**2).sum(0) < (0.3 * n) ** 2
    nh = NonlinearHomogenizer((n, n))
    cells = describe_cells(image[None], LAWS, homogenizer=nh)
    np.testing.assert_allclose(
        cells.mu_lin[0], nh.solve(image, LAWS, np.zeros(2)).tangent / MU0, rtol=1e-12
    )
    law = _random_law(2)
    H = np.array([[50.0, 0.0]]) * law.knee_fields(cells)[:, None]
    prov = ConvexLawProvider(law, cells, on_range="fallback", images=image[None])
    B, T = prov(H)
    ref = nh.solve(image, LAWS, H[0])
    np.testing.assert_allclose(B[0], ref.B, rtol=1e-8)
    assert prov.fallbacks == 1


def test_unfamiliar_microstructures_are_flagged_refused_or_answered_by_the_cell_problem(tmp_path):
    """A law knows the range of its training data's features: a microstructure outside it is
    counted (and survives save/load), refused, or answered by the cell problem."""
    from micro.nonlinear import NonlinearHomogenizer, describe_cells
    from surrogate.convex_law import law_features

    n = 16
    g = np.indices((n, n)) + 0.5 - n / 2
    disk = (g**2).sum(0) < (0.3 * n) ** 2
    stripe = np.zeros((n, n), dtype=bool)
    stripe[:, : n // 2] = True  # a laminate: far from any disk's features
    images = np.stack([disk, stripe])
    nh = NonlinearHomogenizer((n, n))
    cells = describe_cells(images, LAWS, homogenizer=nh)
    law = _random_law(2)
    assert law.familiar(cells).all()  # no recorded range: nothing is flagged
    feats = law_features(cells.take([0]))
    law._feat_min, law._feat_max = feats[0] - 1e-3, feats[0] + 1e-3
    law.save(tmp_path / "law")
    law = ConvexLaw.load(tmp_path / "law")
    np.testing.assert_array_equal(law.familiar(cells), [True, False])
    H = np.array([[0.7, 0.2], [0.7, 0.2]]) * law.knee_fields(cells)[:, None]
    np.testing.assert_array_equal(law.evaluate(H, cells).familiar, [True, False])
    flag = ConvexLawProvider(law, cells)
    B, _ = flag(H)
    assert flag.unfamiliar == 1 and flag.fallbacks == 0
    with pytest.raises(InputError, match=r"point 1 .*outside the learned law's training data"):
        ConvexLawProvider(law, cells, on_unfamiliar="raise")
    with pytest.raises(InputError, match="needs the images"):
        ConvexLawProvider(law, cells, on_unfamiliar="fallback")
    fb = ConvexLawProvider(law, cells, on_unfamiliar="fallback", images=images)
    B2, T2 = fb(H)
    np.testing.assert_array_equal(B2[0], B[0])  # the familiar point: the law's answer
    ref = nh.solve(stripe, LAWS, H[1])
    np.testing.assert_allclose(B2[1], ref.B, rtol=1e-8)
    np.testing.assert_allclose(T2[1], ref.tangent, rtol=1e-6)
    assert fb.fallbacks == 1


def test_training_smoke(tmp_path, capsys):
    from micro.dataset_nl import generate_nl_dataset, load_nl_dataset
    from surrogate.convex_law import train_convex_law

    path = tmp_path / "nl.h5"
    generate_nl_dataset(
        path,
        n_samples=3,
        matrix_law=LAWS[0],
        inclusion_law=LAWS[1],
        size=32,
        radius=2.5,
        vf_range=(0.3, 0.4),
        n_directions=2,
        n_magnitudes=3,
    )
    ds = load_nl_dataset(path)
    law, summary = train_convex_law(
        ds, options=ConvexLawOptions(terms=4, hidden=(8,), epochs=2), test_fraction=0.34
    )
    assert summary.n_test == 1 and summary.n_train == 2
    assert np.isfinite(summary.b_error_mean) and law.max_field == 6.0
    from magnetohom.cli import main

    out = tmp_path / "law"
    args = ["train-law", str(path), "-o", str(out), "--epochs", "1", "--terms", "2"]
    assert main([*args, "--test-fraction", "0.34"]) == 0
    assert "held-out B error" in capsys.readouterr().out
    trained = ConvexLaw.load(out)
    assert trained.options.terms == 2
    # the training data's feature range is recorded: its own microstructures are familiar
    from surrogate.convex_law import dataset_cells

    assert trained._feat_min is not None and trained.familiar(dataset_cells(ds)).sum() >= 2
    assert main([*args, "--test-fraction", "2"]) == 2
    assert main(["train-law", str(path), str(path), "-o", str(tmp_path / "twice")]) == 2
    assert "repeats samples of" in capsys.readouterr().err
    assert not (tmp_path / "twice").exists()


def _fields(law: ConvexLaw, cells: CellDescriptors, rng) -> np.ndarray:
    """Random directions, |h| uniform up to the trained range, with h = 0, |h| = max_field
    and tiny fields among them."""
    n, d = len(cells), law.dim
    u = rng.normal(size=(n, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    mag = rng.uniform(0.0, law.max_field, n)
    mag[: n // 8], mag[n // 8 : n // 4], mag[n // 4 : n // 3] = 0.0, law.max_field, 1e-9
    return u * (mag * law.knee_fields(cells))[:, None]


def _shipped_cells(n: int, rng) -> CellDescriptors:
    """Descriptors of a few real 32^2 SVEs (the shipped law's kind), repeated to ``n``."""
    from micro.generate import generate_sve
    from micro.nonlinear import describe_cells

    vfs = rng.uniform(0.22, 0.43, 4)
    images = np.stack([generate_sve(dim=2, size=32, volume_fraction=float(v), radius=2.5,
                                    rng=rng).image for v in vfs])  # fmt: skip
    return describe_cells(images, LAWS).take(rng.integers(0, 4, n))


@pytest.mark.parametrize("which", ["shipped-2d", "random-3d", "random-2d"])
def test_numpy_evaluation_matches_tensorflow(which):
    from surrogate.convex_law import load_law

    rng = np.random.default_rng(11)
    if which == "shipped-2d":
        law = load_law()
        cells = _shipped_cells(96, rng)
        mixed = _random_points(2, 32, rng)  # beyond the training cells: the same algebra
        cells = CellDescriptors(
            np.concatenate([cells.mu_lin, mixed.mu_lin]),
            np.concatenate([cells.volume_fraction, mixed.volume_fraction]),
            np.concatenate([cells.moments, mixed.moments]),
        )
    else:
        dim = int(which[-2])
        law = _random_law(dim, seed=5)
        cells = _random_points(dim, 128, rng)
    H = _fields(law, cells, rng)
    ev, ref = law.evaluate(H, cells), law._evaluate_tf(H, cells)
    scale_b = np.linalg.norm(ref.B, axis=1).max()
    np.testing.assert_allclose(ev.B, ref.B, rtol=1e-12, atol=1e-12 * scale_b)
    np.testing.assert_allclose(ev.tangent, ref.tangent, rtol=1e-12, atol=1e-12 * MU0)
    np.testing.assert_allclose(ev.coenergy, ref.coenergy, rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(ev.in_range, ref.in_range)
    # the provider answers the same (its per-point constants cached over calls)
    prov = ConvexLawProvider(law, cells, on_range="flag")
    for _ in range(2):
        B, T = prov(H)
        np.testing.assert_allclose(B, ev.B, rtol=1e-14, atol=1e-14 * scale_b)
        np.testing.assert_allclose(T, ev.tangent, rtol=1e-14)


@pytest.mark.parametrize("dim", [2, 3])
def test_closed_form_tangent_spd_and_finite_differences(dim):
    rng = np.random.default_rng(12)
    law = _random_law(dim, seed=7)
    cells = _random_points(dim, 48, rng)
    H = _fields(law, cells, rng)
    ev = law.evaluate(H, cells)
    np.testing.assert_array_equal(ev.tangent, np.swapaxes(ev.tangent, 1, 2))
    assert np.linalg.eigvalsh(ev.tangent / MU0).min() > 1 - 1e-9
    knee = law.knee_fields(cells)
    eps = 1e-6 * knee
    for k in range(dim):
        e = np.zeros_like(H)
        e[:, k] = eps
        fd = (law.evaluate(H + e, cells).B - law.evaluate(H - e, cells).B) / (2 * eps[:, None])
        np.testing.assert_allclose(fd, ev.tangent[:, :, k], rtol=1e-6, atol=1e-6 * MU0)


def test_weights_set_through_mlp_are_seen_and_loading_needs_no_keras(tmp_path):
    rng = np.random.default_rng(13)
    law = _random_law(2, seed=1)
    cells = _random_points(2, 8, rng)
    H = _fields(law, cells, rng)
    prov = ConvexLawProvider(law, cells, on_range="flag")
    before = prov(H)[0]
    law.mlp.set_weights([0.5 * w for w in law.mlp.get_weights()])
    after = prov(H)[0]
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, law._evaluate_tf(H, cells).B, rtol=1e-12)
    law.save(tmp_path / "law")
    again = ConvexLaw.load(tmp_path / "law")
    assert again._mlp is None  # read with h5py: no Keras model (no TensorFlow) needed
    np.testing.assert_allclose(again.evaluate(H, cells).B, after, rtol=1e-14)
    np.testing.assert_allclose(again._evaluate_tf(H, cells).B, after, rtol=1e-12)
