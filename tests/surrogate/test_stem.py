"""The stem outside TensorFlow: block means, and the split model equals the saved one."""

from __future__ import annotations

import numpy as np
import pytest

from surrogate.bounds import wiener
from surrogate.layers import BlockBounds, LineBounds
from surrogate.models import build_model
from surrogate.provider import CNNProvider
from surrogate.registry import available_models, is_general
from surrogate.stem import (
    HostStem,
    block_bounds,
    block_means,
    line_bound_features,
    pixel_counts,
    split_stem,
)


def _images(n_samples, n, dim, rng=0):
    rng = np.random.default_rng(rng)
    vf = rng.uniform(0.05, 0.95, size=(n_samples,) + (1,) * dim)
    return rng.random((n_samples,) + (n,) * dim) < vf


@pytest.mark.parametrize(("dim", "n", "factor"), [(2, 32, 4), (2, 24, 8), (2, 12, 3), (3, 12, 3)])
def test_block_means_are_the_means_of_the_blocks(dim, n, factor):
    x = _images(5, n, dim)
    m = n // factor
    blocks = x.reshape((5,) + (m, factor) * dim).mean(axis=tuple(range(2, 2 * dim + 1, 2)))
    got = block_means(x, factor)
    assert got.shape == (5,) + (m,) * dim + (1,) and got.dtype == np.float32
    np.testing.assert_allclose(got[..., 0], blocks, rtol=np.finfo(np.float32).eps)
    np.testing.assert_array_equal(block_means(x.astype(np.uint8), factor), got)


def test_block_means_refuses_what_it_cannot_pool():
    with pytest.raises(ValueError, match="does not divide"):
        block_means(np.zeros((1, 10, 10), bool), 4)
    with pytest.raises(TypeError, match="uint8 or bool"):
        block_means(np.zeros((1, 8, 8)), 2)


def _metadata(dim, n, options):
    return {
        "preset": "default",
        "dim": dim,
        "resolution": n,
        "mu_matrix": 1.0,
        "mu_inclusion": 250.0,
        "model_options": options,
    }


@pytest.mark.parametrize(("dim", "n"), [(2, 16), (2, 9), (3, 6)])
@pytest.mark.parametrize("phases", [(1.0, 250.0), (3.0, 0.5)])
def test_line_bound_features_equal_the_layer(dim, n, phases):
    x = _images(7, n, dim, rng=3)
    x[0] = False  # one phase only: both bounds are the phase's mu
    x[1] = True
    layer = LineBounds(dim, *phases)
    want = np.asarray(layer(x[..., None].astype(np.float32)))
    got = line_bound_features(x, *phases)
    assert got.shape == (7, 2 * dim) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.all(got[:, 0::2] <= got[:, 1::2] + 1e-6)  # lower <= upper


@pytest.mark.parametrize(("dim", "n", "stem"), [(2, 32, 4), (3, 12, 2)])
@pytest.mark.parametrize("line_bounds", [False, True])
def test_split_model_equals_the_full_model(dim, n, stem, line_bounds):
    options = {
        "stem": stem,
        "filters": [4, 8],
        "dense": [8],
        "batch_norm": True,
        "line_bounds": line_bounds,
    }
    model = build_model("default", dim=dim, resolution=n, options=options, rng=0)
    rng = np.random.default_rng(1)
    for w in model.weights:  # trained-looking weights, BN statistics included
        shift = 1.0 if "variance" in w.path else 0.0
        w.assign((0.3 * rng.normal(size=w.shape) + shift).astype(np.float32))
    split = split_stem(model, _metadata(dim, n, options))
    assert split.factor == stem and split.line_bounds == line_bounds
    x = _images(6, n, dim, rng=2).astype(np.uint8)
    full = model.predict_on_batch(x[..., None])
    np.testing.assert_allclose(split(x), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [{"stem": 1}, {"stem": 3}, {"stem": 4, "stem_mode": "space-to-depth"}],
)
def test_no_split_where_the_stem_is_not_separable(options):
    n = 32
    full = {"filters": [4, 8], "dense": [8], **options}
    model = build_model("default", dim=2, resolution=n, options=full, rng=0)
    assert split_stem(model, _metadata(2, n, full)) is None


@pytest.mark.parametrize("name", sorted(n for n in available_models() if not is_general(n)))
def test_shipped_models_answer_the_same_with_and_without_host_stem(name):
    a = CNNProvider(name, host_stem=False)
    b = CNNProvider(name)  # block-bounds stem on the host, batch norm folded
    dim, n = a.bundle.dim, a.bundle.resolution
    images = np.zeros((4,) + (n,) * dim, bool)
    images[(slice(None), slice(2 * n // 5, 11 * n // 20), slice(n // 4, 4 * n // 5))] = True
    images[1] = np.roll(images[1], 17, axis=0)
    images[2, ::2] = True
    mu = b(images)
    np.testing.assert_allclose(mu, a(images), rtol=1e-5, atol=1e-5)  # mu ~ 1-250
    assert isinstance(b._functions()[0], HostStem) and not isinstance(a._functions()[0], HostStem)
    assert b._functions()[0].factor == {"fast": 8, "spheres": 2, "overlapping": 2}.get(name, 4)
    np.testing.assert_allclose(mu, np.swapaxes(mu, 1, 2), rtol=0, atol=1e-12)
    eig = np.linalg.eigvalsh(mu)
    lower, upper = wiener(images.mean(axis=tuple(range(1, dim + 1))), 1.0, 250.0)  # Reuss / Voigt
    assert np.all(eig >= lower[:, None] * (1 - 1e-6)) and np.all(eig <= upper[:, None] * (1 + 1e-6))


@pytest.mark.parametrize(
    ("dim", "n", "factor"),
    [(2, 16, 4), (2, 32, 8), (2, 32, 16), (2, 64, 32), (2, 12, 3), (3, 8, 2), (3, 9, 3)],
)
@pytest.mark.parametrize("phases", [(1.0, 250.0), (3.0, 0.5)])
def test_block_bounds_equal_the_layer(dim, n, factor, phases):
    x = _images(5, n, dim, rng=4)
    x[0] = True  # blocks of one phase take another path in the word kernels
    x[1, : n // 2] = False
    layer = BlockBounds(factor, dim, *phases)
    want = np.asarray(layer(x[..., None].astype(np.float32)))
    got = block_bounds(x, factor, *phases)
    assert got.shape == (5,) + (n // factor,) * dim + (1 + 2 * dim,) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    eps = np.finfo(np.float32).eps  # the fraction goes through exp and log in float32
    np.testing.assert_allclose(got[..., 0], block_means(x, factor)[..., 0], rtol=0, atol=2 * eps)
    lower, upper = got[..., 1::2], got[..., 2::2]
    assert np.all(lower <= upper + 1e-6)  # line bound below slice bound, block by block
    assert np.all((got[..., 1:] >= -1e-6) & (got[..., 1:] <= 1 + 1e-6) | (phases[1] < phases[0]))


@pytest.mark.parametrize("shape", [(7, 16, 16), (3, 5, 5), (2, 6, 6, 6), (4, 256, 256)])
def test_pixel_counts_count_the_inclusion_pixels(shape):
    x = np.random.default_rng(5).random(shape) < 0.3
    want = np.count_nonzero(x.reshape(shape[0], -1), axis=1)
    np.testing.assert_array_equal(pixel_counts(x), want)
    np.testing.assert_array_equal(pixel_counts(x.astype(np.uint8)), want)
    assert pixel_counts(x[:0]).shape == (0,)


def test_block_bounds_see_a_gap_that_the_mean_does_not():
    """Two 4x4 blocks with the same fraction: a bar across x_1 vs the same pixels with a gap."""
    x = np.zeros((2, 4, 4), bool)
    x[0, :, 1:3] = True  # two full columns: a path along x_1
    x[1, :, 1:3] = True
    x[1, 2, 1:3] = False
    x[1, 0, 0] = x[1, 0, 3] = True  # same fraction, path cut by a one-pixel gap
    got = block_bounds(x, 4, 1.0, 250.0)[:, 0, 0]
    assert got[0, 0] == got[1, 0]
    assert got[0, 1] > 2 * got[1, 1]  # lower bound of mu_11: the path carries it


@pytest.mark.parametrize(
    ("dim", "n", "stem", "head"),
    [(2, 32, 4, "pool"), (3, 12, 2, "pool"), (2, 32, 4, "solve"), (3, 12, 2, "solve")],
)
def test_split_bounds_stem_equals_the_full_model(dim, n, stem, head):
    options = {"stem": stem, "stem_mode": "bounds", "filters": [4, 8], "dense": [8], "head": head}
    model = build_model("default", dim=dim, resolution=n, options=options, rng=0)
    rng = np.random.default_rng(5)
    for w in model.weights:  # batch norm included: variances stay positive
        shift = 1.0 if "variance" in w.path else 0.0
        w.assign((0.3 * rng.normal(size=w.shape) + shift).astype(np.float32))
    split = split_stem(model, _metadata(dim, n, options))
    assert split.mode == "bounds"
    x = _images(6, n, dim, rng=6).astype(np.uint8)
    np.testing.assert_allclose(split(x), model.predict_on_batch(x[..., None]), rtol=1e-5, atol=1e-5)
    for k in (1, 4):  # other batch sizes reuse the one traced graph of the body
        np.testing.assert_allclose(split(x[:k]), split(x)[:k], rtol=1e-6, atol=1e-6)
    assert split._forward.traced.experimental_get_tracing_count() == 1
