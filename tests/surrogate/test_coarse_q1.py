"""The coarse Q1 homogenization with a tensor per block (surrogate.coarse_q1)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from surrogate.coarse_direct import homogenize_tensors_direct  # noqa: E402
from surrogate.coarse_q1 import homogenize_tensors, tensor_of_logits  # noqa: E402


def _random_tensors(shape, log_c, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, (*shape, 3))
    return tensor_of_logits(tf.constant(z), tf.constant(log_c)).numpy()


def test_uniform_tensor_is_exact_and_laminates_give_their_means():
    k = np.broadcast_to(np.array([3.0, 2.0, 0.7]), (2, 6, 8, 3)).copy()
    for mu in (homogenize_tensors_direct(k), homogenize_tensors(tf.constant(k), tol=1e-12)):
        np.testing.assert_allclose(np.asarray(mu), [[[3.0, 0.7], [0.7, 2.0]]] * 2, rtol=1e-12)
    # isotropic layers normal to x1: harmonic mean along x1, arithmetic along x2, exactly
    layers = np.where(np.arange(8)[:, None] % 2 == 0, 1.0, 1e4) * np.ones((8, 6))
    k = np.stack([layers, layers, 0 * layers], axis=-1)[None]
    mu = homogenize_tensors_direct(k)[0]
    expected = np.diag([2 / (1 + 1e-4), (1 + 1e4) / 2])
    np.testing.assert_allclose(mu, expected, rtol=1e-12, atol=1e-12 * mu.max())


def test_iteration_matches_the_direct_solve_spd_within_the_block_eigenvalues():
    log_c = np.log([10.0, 1e3, 1e4])
    k = _random_tensors((3, 10, 14), log_c, seed=4)  # rectangular on purpose
    ref = homogenize_tensors_direct(k)
    got = homogenize_tensors(tf.constant(k), tol=1e-12, max_iterations=5000).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    w = np.linalg.eigvalsh(ref)
    assert np.all(w >= 1.0) and np.all(w <= np.exp(log_c)[:, None])
    f32 = homogenize_tensors(tf.constant(k), tol=1e-4, solve_dtype="float32").numpy()
    np.testing.assert_allclose(f32, ref, rtol=1e-3)


def test_rotation_by_a_quarter_turn_and_shift_invariance():
    """Transposing the grid and the tensors (x1 <-> x2) transposes mu; a periodic shift of the
    grid leaves mu unchanged."""
    k = _random_tensors((1, 8, 12), np.log([300.0]), seed=7)
    mu = homogenize_tensors_direct(k)[0]
    kt = np.swapaxes(k, 1, 2)[..., [1, 0, 2]]
    np.testing.assert_allclose(homogenize_tensors_direct(kt)[0], mu[::-1, ::-1], rtol=1e-10)
    shifted = homogenize_tensors_direct(np.roll(k, (3, 5), axis=(1, 2)))[0]
    np.testing.assert_allclose(shifted, mu, rtol=1e-10)


def test_gradient_is_exact():
    k0 = _random_tensors((1, 6, 6), np.log([50.0]), seed=2)
    weights = tf.constant([[1.0, 0.3], [0.3, 2.0]], tf.float64)

    def f(v):
        return tf.reduce_sum(homogenize_tensors(v, tol=1e-12, max_iterations=4000)[0] * weights)

    var = tf.Variable(k0)
    with tf.GradientTape() as tape:
        y = f(var)
    grad = tape.gradient(y, var).numpy()
    d = np.random.default_rng(0).normal(size=k0.shape)
    d[..., 2] *= 0.1  # keep the tensors SPD
    eps = 1e-6
    fd = (float(f(tf.constant(k0 + eps * d))) - float(f(tf.constant(k0 - eps * d)))) / (2 * eps)
    assert abs((grad * d).sum() - fd) <= 1e-6 * abs(fd)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="block tensors"):
        homogenize_tensors_direct(np.ones((1, 4, 4, 2)))
    with pytest.raises(ValueError, match="block tensors"):
        homogenize_tensors(tf.ones((1, 4, 4, 2)))
