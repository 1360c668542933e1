"""Model builders: shapes, admissibility by construction, periodicity, serialization."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import TINY
from surrogate_helpers import fv_homogenize

from magnetohom.errors import InputError
from surrogate import bounds
from surrogate.layers import AdmissibleLogTensor, LineBounds, PeriodicPad, SpaceToDepth
from surrogate.models import build_model, conv_layers, model_options, total_stride
from surrogate.tensors import from_mandel, sym_expm


def _random_images(n_samples, n, dim, rng=0):
    rng = np.random.default_rng(rng)
    vf = rng.uniform(0.02, 0.98, size=(n_samples,) + (1,) * dim)
    return (rng.random((n_samples,) + (n,) * dim) < vf).astype(np.uint8)


def _scramble(model, scale, rng=0):
    """Large random trainable weights everywhere (stress the output layer)."""
    rng = np.random.default_rng(rng)
    for w in model.trainable_weights:
        w.assign(scale * rng.normal(size=w.shape).astype(np.float32))


@pytest.mark.parametrize("dim", [2, 3])
def test_output_shapes(dim):
    n = 16 if dim == 2 else 8
    x = _random_images(3, n, dim)[..., None]
    default = build_model("default", dim=dim, resolution=n, options=TINY, rng=0)
    paper = build_model("paper", dim=dim, resolution=n, options={"filters": [2, 2, 4, 4]}, rng=0)
    assert default(x).shape == (3, 3 if dim == 2 else 6)
    assert paper(x).shape == (3, dim)
    assert len(conv_layers(default)) == 3 and len(conv_layers(paper)) == 4
    assert [layer.kernel_size for layer in conv_layers(paper)] == [(k,) * dim for k in (3, 3, 5, 7)]


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("bound", ["wiener", "hashin-shtrikman"])
def test_default_output_is_admissible(dim, bound):
    """SPD, symmetric, eigenvalues inside the bounds, for random images and wild weights."""
    n = 16 if dim == 2 else 8
    x = _random_images(64, n, dim, rng=1)
    vf = x.reshape(64, -1).mean(axis=1)
    model = build_model("default", dim=dim, resolution=n, options={**TINY, "bounds": bound}, rng=0)
    if bound == "wiener":
        lo, hi = bounds.wiener(vf, 1.0, 250.0)
    else:
        lo, hi = bounds.hashin_shtrikman(vf, 1.0, 250.0, dim=dim)
    for scale in (0.3, 3.0, 30.0):
        _scramble(model, scale, rng=int(scale * 10))
        out = np.asarray(model(x[..., None]), dtype=np.float64)
        assert np.all(np.isfinite(out))
        mu = sym_expm(from_mandel(out, dim))
        np.testing.assert_allclose(mu, np.swapaxes(mu, 1, 2))
        w = np.linalg.eigvalsh(mu)
        assert np.all(w > 0)
        assert np.all(w >= lo[:, None] * (1 - 1e-5)) and np.all(w <= hi[:, None] * (1 + 1e-5))


def test_untrained_default_predicts_the_prior():
    x = _random_images(8, 16, 2, rng=2)
    vf = x.reshape(8, -1).mean(axis=1)
    for prior, fn in [("maxwell-garnett", bounds.maxwell_garnett), ("bruggeman", bounds.bruggeman)]:
        model = build_model("default", resolution=16, options={**TINY, "prior": prior}, rng=0)
        mu = sym_expm(from_mandel(np.asarray(model(x[..., None]), np.float64), 2))
        est = np.clip(fn(vf, 1.0, 250.0, dim=2), *bounds.wiener(vf, 1.0, 250.0))
        np.testing.assert_allclose(mu[:, 0, 0], est, rtol=1e-5)
        np.testing.assert_allclose(mu[:, 0, 1], 0.0, atol=1e-5)


def test_admissible_layer_extremes_and_gradients():
    import tensorflow as tf

    layer = AdmissibleLogTensor(dim=3)
    raw = tf.constant(
        np.array([[1e4, -1e4, 0, 1e4, -1e4, 1e4], [0] * 6, [-50, 3, 7, 0.1, 0, -2]], np.float32)
    )
    vf = tf.constant([[0.3], [0.0], [1.0]], dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(raw)
        out = layer([raw, vf])
    grad = tape.gradient(out, raw)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(grad))
    mu = sym_expm(from_mandel(np.asarray(out, np.float64), 3))
    np.testing.assert_allclose(mu[1], np.eye(3), rtol=1e-5)  # vf = 0: the matrix
    np.testing.assert_allclose(mu[2], 250.0 * np.eye(3), rtol=1e-5)  # vf = 1: the inclusion


def test_periodic_pad_matches_numpy_wrap():
    x = np.arange(2 * 5 * 4 * 3, dtype=np.float32).reshape(2, 5, 4, 3)
    out = PeriodicPad(2)(x)
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="wrap"))
    out = PeriodicPad((0, 1))(x)
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)), mode="wrap"))


@pytest.mark.parametrize("stem_mode", ["avg", "space-to-depth"])
@pytest.mark.parametrize("dim", [2, 3])
def test_default_model_is_invariant_to_periodic_shifts(dim, stem_mode):
    """np.roll by multiples of the total stride leaves the output unchanged (float32)."""
    n = 32 if dim == 2 else 16
    opts = {**TINY, "stem": 2, "stem_mode": stem_mode}
    stride = total_stride(model_options("default", opts), n, dim)
    assert stride == 8
    model = build_model("default", dim=dim, resolution=n, options=opts, rng=0)
    _scramble(model, 0.5)
    x = _random_images(4, n, dim, rng=3)
    ref = np.asarray(model(x[..., None]))
    for shift in [(stride, 0, 2 * stride)[:dim], (3 * stride,) * dim]:
        rolled = np.roll(x, shift, axis=tuple(range(1, dim + 1)))
        np.testing.assert_allclose(np.asarray(model(rolled[..., None])), ref, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dim", [2, 3])
def test_space_to_depth_is_lossless(dim):
    x = np.random.default_rng(0).random((2,) + (6,) * dim + (3,)).astype(np.float32)
    y = np.asarray(SpaceToDepth(2)(x))
    assert y.shape == (2,) + (3,) * dim + (3 * 2**dim,)
    assert np.array_equal(np.sort(y.ravel()), np.sort(x.ravel()))
    # block (0, ..., 0) of channel c sits at channel c; block offsets vary slowest
    np.testing.assert_array_equal(y[..., :3], x[(slice(None), *([slice(0, None, 2)] * dim))])
    np.testing.assert_array_equal(y[..., -3:], x[(slice(None), *([slice(1, None, 2)] * dim))])


@pytest.mark.parametrize("dim", [2, 3])
def test_line_bounds_of_a_laminate_are_exact(dim):
    """Layers normal to x_1: mu_11 = Reuss (both bounds), the others = Voigt (both bounds)."""
    n = 8
    img = np.zeros((1,) + (n,) * dim + (1,), np.float32)
    img[:, : n // 4] = 1.0  # f = 1/4
    f, mm, mi = 0.25, 1.0, 250.0
    reuss, voigt = 1 / (f / mi + (1 - f) / mm), f * mi + (1 - f) * mm
    out = np.asarray(LineBounds(dim, mm, mi)(img))[0] * np.log(mi / mm)
    expected = [reuss, reuss] + [voigt, voigt] * (dim - 1)
    np.testing.assert_allclose(np.exp(out), expected, rtol=1e-5)
    rng = np.random.default_rng(0)
    x = (rng.random((4,) + (n,) * dim + (1,)) < 0.4).astype(np.float32)
    b = np.exp(np.asarray(LineBounds(dim, mm, mi)(x)) * np.log(mi / mm)).reshape(4, dim, 2)
    lo, hi = bounds.wiener(x.reshape(4, -1).mean(axis=1), mm, mi)
    assert np.all(b[..., 0] <= b[..., 1] * (1 + 1e-6))
    assert np.all(b[..., 0] >= lo[:, None] * (1 - 1e-6))
    assert np.all(b[..., 1] <= hi[:, None] * (1 + 1e-6))
    # and they bound the solved tensor (finite volumes, harmonic face means)
    mu = np.diagonal(fv_homogenize(x[..., 0].astype(bool)), axis1=1, axis2=2)
    assert np.all(b[..., 0] <= mu * (1 + 1e-6)) and np.all(mu <= b[..., 1] * (1 + 1e-6))


def test_zero_padding_is_not_periodic():
    """Sanity check of the test above: the paper's zero padding does see the shift."""
    model = build_model("paper", resolution=32, options={"filters": [4, 4, 4, 4]}, rng=0)
    x = _random_images(4, 32, 2, rng=4)
    rolled = np.roll(x, (8, 8), axis=(1, 2))
    assert not np.allclose(model(x[..., None]), model(rolled[..., None]), rtol=1e-4)


def test_save_and_load_round_trip(tmp_path):
    model = build_model("default", resolution=16, options=TINY, rng=0)
    _scramble(model, 0.5)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = _random_images(3, 16, 2)[..., None]
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)


def test_reproducible_initialisation():
    a = build_model("default", resolution=16, options=TINY, rng=5).get_weights()
    b = build_model("default", resolution=16, options=TINY, rng=5).get_weights()
    c = build_model("default", resolution=16, options=TINY, rng=6).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_bad_options():
    with pytest.raises(InputError, match="unknown preset"):
        build_model("resnet", resolution=16)
    with pytest.raises(InputError, match="unknown option"):
        build_model("default", resolution=16, options={"widht": 3})
    with pytest.raises(InputError, match="kernel_size"):
        build_model("default", resolution=16, options={"kernel_size": 4})
    with pytest.raises(InputError, match="too small"):
        build_model("default", resolution=8, options={"stem": 4, "filters": [2, 2, 2, 2]})
    with pytest.raises(InputError, match="dimension"):
        build_model("default", dim=4, resolution=16)
