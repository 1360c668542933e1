"""CNN and hybrid providers: batching, validation, flags, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from magnetohom.errors import InputError, SolverError
from surrogate.bundle import load_bundle
from surrogate.hybrid import HybridProvider
from surrogate.provider import CNNProvider


@pytest.fixture(scope="module")
def provider(tiny_model):
    return CNNProvider(tiny_model.model_dir, batch_size=3)


def test_batching_equals_one_by_one(provider, tiny_images):
    batch = provider(tiny_images[:7])
    single = np.concatenate([provider(img) for img in tiny_images[:7]])  # single images accepted
    np.testing.assert_allclose(batch, single, rtol=1e-6)
    assert batch.shape == (7, 2, 2) and batch.dtype == np.float64
    np.testing.assert_allclose(batch, np.swapaxes(batch, 1, 2))
    assert np.all(np.linalg.eigvalsh(batch) > 0)
    assert provider(tiny_images[:0]).shape == (0, 2, 2)
    np.testing.assert_allclose(provider(tiny_images[:2].astype(np.uint8)), batch[:2], rtol=1e-6)


def test_one_graph_serves_every_batch_size(tiny_model, tiny_images):
    """Batches of any size (partial chunks, single images) reuse one traced graph per member
    (the whole-model path; the host-stem path is checked in test_stem.py)."""
    p = CNNProvider(tiny_model.model_dir, batch_size=4)
    p.warm_up()
    out = [p(tiny_images[:k]) for k in (1, 2, 3, 5, 7)]
    for fn in p._functions():
        assert fn.forward.traced.experimental_get_tracing_count() == 1
    for k, mu in zip((1, 2, 3, 5, 7), out):
        np.testing.assert_allclose(mu, out[-1][:k], rtol=1e-6)


@pytest.mark.parametrize("host_stem", [True, False])
def test_streams_give_the_same_tensors_in_order(tiny_model, tiny_images, host_stem):
    """Chunks computed by two threads at once come back in order, equal to one by one."""
    serial = CNNProvider(tiny_model.model_dir, batch_size=2, host_stem=host_stem)
    two = CNNProvider(tiny_model.model_dir, batch_size=2, host_stem=host_stem, streams=2)
    x = tiny_images[:7]
    np.testing.assert_allclose(two(x), serial(x), rtol=1e-6)
    np.testing.assert_allclose(two(x[:1]), serial(x[:1]), rtol=1e-6)
    with pytest.raises(InputError, match="streams"):
        CNNProvider(tiny_model.model_dir, streams=0)


def test_tta_is_symmetric(tiny_model, tiny_images):
    tta = CNNProvider(tiny_model.model_dir, tta=True, spread_threshold=None)
    img = tiny_images[:2]
    a = tta(img)
    b = tta(np.rot90(img, axes=(1, 2)))  # rotated image: mu -> Q mu Q^T, Q = [[0,-1],[1,0]]
    q = np.array([[0.0, -1.0], [1.0, 0.0]])
    np.testing.assert_allclose(b, q @ a @ q.T, rtol=1e-5, atol=1e-6)
    assert np.all(tta.predict(img).spread >= 0)


def test_bad_images_are_refused(provider, tiny_images):
    with pytest.raises(InputError, match="does not match"):
        provider(np.zeros((2, 16, 16), bool))
    with pytest.raises(InputError, match="2D images"):
        provider(np.zeros((2, 32, 32, 32), bool))
    with pytest.raises(InputError, match="binary"):
        provider(tiny_images[:2] * 3)
    for dtype in (np.uint8, np.uint16, np.float32):
        with pytest.raises(InputError, match="binary"):
            provider(tiny_images[:2].astype(dtype) * 2)
        np.testing.assert_array_equal(  # 0/1 numbers of any kind answer as the bool images do
            provider(tiny_images[:2].astype(dtype)), provider(tiny_images[:2])
        )


def test_flags(tiny_model, tiny_images):
    meta_lo, meta_hi = load_bundle(tiny_model.model_dir).vf_range
    p = CNNProvider(tiny_model.model_dir, vf_margin=0.0)
    imgs = np.concatenate(
        [np.zeros((1, 32, 32), bool), np.ones((1, 32, 32), bool), tiny_images[:1]]
    )
    pred = p.predict(imgs)
    assert list(pred.flags["volume_fraction"]) == [meta_lo > 0, meta_hi < 1, False]
    assert pred.flags_of(2) == []
    np.testing.assert_allclose(pred.mu_eff[0], np.eye(2), rtol=1e-6)  # pure matrix: exact
    np.testing.assert_allclose(pred.mu_eff[1], 250 * np.eye(2), rtol=1e-6)
    # never numbers for other materials than the model's: refused with a clear line
    with pytest.raises(InputError, match="answers only for mu_matrix 1, mu_inclusion 250"):
        CNNProvider(tiny_model.model_dir, mu_inclusion=100.0)


def test_non_finite_outputs_raise(tiny_model, tiny_images):
    p = CNNProvider(tiny_model.model_dir)
    p._fns = [lambda x: np.full((x.shape[0], 3), np.nan, np.float32)]
    with pytest.raises(SolverError, match="non-finite"):
        p(tiny_images[:2])


def test_hybrid_falls_back_for_flagged_samples(tiny_model, tiny_images):
    calls = []

    def fe(images):
        calls.append(images.shape[0])
        return np.stack([np.eye(2) * 7.0] * images.shape[0])

    cnn = CNNProvider(tiny_model.model_dir, vf_margin=0.0)
    hybrid = HybridProvider(cnn, fe, spread_threshold=None)
    imgs = np.concatenate([tiny_images[:3], np.ones((2, 32, 32), bool)])
    res = hybrid.predict(imgs)
    expected = cnn.predict(imgs).flags["volume_fraction"]
    assert expected[3:].all() and not expected[:3].any()
    assert res.n_fallback == 2 and hybrid.n_fallback == 2 and calls == [2]
    np.testing.assert_allclose(res.mu_eff[3:], np.broadcast_to(7.0 * np.eye(2), (2, 2, 2)))
    np.testing.assert_allclose(res.mu_eff[:3], cnn(imgs[:3]))
    # another resolution: all by FE
    out = hybrid(np.zeros((4, 16, 16), bool))
    assert (
        out.shape == (4, 2, 2) and hybrid.n_fallback == 6 and hybrid.last.flags["resolution"].all()
    )
    # spread threshold 0 with an ensemble of one: spread is 0, nothing more falls back
    assert HybridProvider(cnn, fe, spread_threshold=0.0).predict(tiny_images[:3]).n_fallback == 0
    bad = HybridProvider(cnn, lambda im: np.zeros((1, 2, 2)), spread_threshold=None)
    with pytest.raises(SolverError, match="FE fallback"):
        bad(np.ones((2, 32, 32), bool))


def test_providers_satisfy_the_macro_protocol(provider, tiny_images):
    macro_provider = pytest.importorskip("macro.provider")
    hybrid = HybridProvider(provider, lambda im: np.stack([np.eye(2)] * len(im)))
    for p in (provider, hybrid):
        assert isinstance(p, macro_provider.ConstitutiveProvider)
        mu = macro_provider.evaluate_provider(p, tiny_images[:3], dim=2)
        assert mu.shape == (3, 2, 2)
        assert macro_provider.provider_resolution(p) == 32
    assert (provider.name, hybrid.name) == ("cnn", "hybrid")
