"""A periodic coarse Q1 homogenization with a full 2x2 tensor per block (the general network's
``coarse="tensors"``).

Face conductances (:mod:`surrogate.coarse_solve`) give every block one number per axis: a
five-point coarse grid cannot carry the oblique anisotropy of a block crossed by thin lamellae or
fibres at an angle, whose conducting paths run diagonally. Here each block ``(i, j)`` of an
``m1 x m2`` periodic grid is a bilinear (Q1) element with its own SPD tensor ``K_ij``; the
potential lives on the block corners (``m1 x m2`` periodic nodes, node ``(i, j)`` the lower
corner of block ``(i, j)``). For each unit load ``e_a`` the fluctuation ``u_a`` minimises

.. math::  \\sum_{ij} \\int_{\\text{block}} (e_a + \\nabla u_a) \\cdot K_{ij} (e_a + \\nabla u_a),

integrated exactly by 2x2 Gauss points, and ``mu_ab`` is the mean energy form of
``e_a + grad u_a`` and ``e_b + grad u_b``. A uniform ``K`` gives ``K`` exactly; ``mu`` is
symmetric, and its eigenvalues lie between the smallest and the largest eigenvalue of the
blocks' tensors. As for the faces, ``mu_ab`` is stationary in ``u``, so ``d mu_ab / d K`` is the
Gauss-point average of ``sym(g_a g_b^T)`` with ``u`` held fixed: no gradient flows through the
iteration.

Two solvers: :func:`homogenize_tensors` (TensorFlow, preconditioned CG, differentiable; for
training) and :func:`surrogate.coarse_direct.homogenize_tensors_direct` (scipy sparse LU; for
answers).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "GAUSS",
    "gradient_rows",
    "homogenize_tensors",
    "tensor_of_logits",
    "tensor_of_logits_np",
]

_G = (0.5 - 0.5 / np.sqrt(3.0), 0.5 + 0.5 / np.sqrt(3.0))
#: The 2x2 Gauss points ``(xi, eta)`` of the unit block (weight 1/4 each).
GAUSS = tuple((xi, eta) for xi in _G for eta in _G)


def gradient_rows(xi: float, eta: float) -> np.ndarray:
    """``(2, 4)``: the gradient at ``(xi, eta)`` of the bilinear field with corner values
    ``[u00, u10, u01, u11]`` (first index along x1)."""
    return np.array(
        [
            [-(1 - eta), 1 - eta, -eta, eta],
            [-(1 - xi), -xi, 1 - xi, xi],
        ]
    )


def tensor_of_logits(z, log_c):
    """Block tensors ``(N, m1, m2, 3)`` = ``[K11, K22, K12]`` of logits ``(N, m1, m2, 3)``.

    ``K = R(phi) diag(c^sigmoid(z1), c^sigmoid(z2)) R(phi)^T`` with ``phi = z3``: SPD, both
    eigenvalues in ``[1, c]`` like the pixels' (TensorFlow, float64; ``log_c`` of shape (N,)).
    """
    import tensorflow as tf

    z = tf.cast(z, tf.float64)
    lc = tf.cast(log_c, tf.float64)[:, None, None]
    l1 = tf.exp(lc * tf.sigmoid(z[..., 0]))
    l2 = tf.exp(lc * tf.sigmoid(z[..., 1]))
    c, s = tf.cos(z[..., 2]), tf.sin(z[..., 2])
    return tf.stack([l1 * c * c + l2 * s * s, l1 * s * s + l2 * c * c, (l1 - l2) * s * c], -1)


def tensor_of_logits_np(z: np.ndarray, log_c: np.ndarray) -> np.ndarray:
    """:func:`tensor_of_logits` in numpy (answers without TensorFlow), float64."""
    z = np.asarray(z, dtype=np.float64)
    lc = np.asarray(log_c, dtype=np.float64)[:, None, None]
    l1 = np.exp(lc / (1.0 + np.exp(-z[..., 0])))
    l2 = np.exp(lc / (1.0 + np.exp(-z[..., 1])))
    c, s = np.cos(z[..., 2]), np.sin(z[..., 2])
    return np.stack([l1 * c * c + l2 * s * s, l1 * s * s + l2 * c * c, (l1 - l2) * s * c], -1)


def _gauss_gradients(tf, u):
    """Gradients ``[(g1, g2)] * 4`` at the Gauss points of every block of ``u`` (B, L, m1, m2)."""
    u10 = tf.roll(u, -1, axis=2)
    u01 = tf.roll(u, -1, axis=3)
    u11 = tf.roll(u10, -1, axis=3)
    d1_0, d1_1 = u10 - u, u11 - u01  # along x1 at eta = 0 and eta = 1
    d2_0, d2_1 = u01 - u, u11 - u10  # along x2 at xi = 0 and xi = 1
    return [((1 - eta) * d1_0 + eta * d1_1, (1 - xi) * d2_0 + xi * d2_1) for xi, eta in GAUSS]


def _gauss_transpose(tf, fluxes):
    """Adjoint of :func:`_gauss_gradients`: nodal values of ``sum_q w B_q^T f_q``."""
    c10 = c11 = c20 = c21 = 0.0
    for (xi, eta), (f1, f2) in zip(GAUSS, fluxes, strict=True):
        c10 = c10 + 0.25 * (1 - eta) * f1
        c11 = c11 + 0.25 * eta * f1
        c20 = c20 + 0.25 * (1 - xi) * f2
        c21 = c21 + 0.25 * xi * f2
    n00 = -c10 - c20
    n10 = c10 - c21
    n01 = -c11 + c20
    n11 = c11 + c21
    return n00 + tf.roll(n10, 1, axis=2) + tf.roll(n01, 1, axis=3) + tf.roll(n11, (1, 1), (2, 3))


def homogenize_tensors(
    k, *, tol: float = 1e-7, max_iterations: int = 400, solve_dtype: str = "float64"
):
    """Homogenized tensors of periodic Q1 grids of block tensors (TensorFlow, differentiable).

    Parameters
    ----------
    k
        Block tensors ``(B, m1, m2, 3)`` as ``[K11, K22, K12]`` (SPD).
    tol, max_iterations, solve_dtype
        As :func:`surrogate.coarse_solve.homogenize_faces`.

    Returns
    -------
    tf.Tensor
        ``(B, 2, 2)`` float64 ``mu_ab``, exact gradient with respect to ``k`` up to the
        solver tolerance.
    """
    import tensorflow as tf

    from surrogate.coarse_solve import _check_solve_dtype, _pcg

    k = tf.cast(k, tf.float64)
    if len(k.shape) != 4 or k.shape[-1] != 3:
        raise ValueError(f"block tensors must be (B, m1, m2, 3), got {k.shape}")
    shape = tuple(k.shape[1:3])
    if any(m is None for m in shape):
        raise ValueError("homogenize_tensors needs static grid sizes")
    _check_solve_dtype(solve_dtype)
    dt = tf.float64 if solve_dtype == "float64" else tf.float32
    ks = tf.cast(tf.stop_gradient(k), dt)[:, None]  # (B, 1, m1, m2, 3)
    k11, k22, k12 = ks[..., 0], ks[..., 1], ks[..., 2]

    def flux(g1, g2):
        return k11 * g1 + k12 * g2, k12 * g1 + k22 * g2

    def apply(u):
        return _gauss_transpose(tf, [flux(g1, g2) for g1, g2 in _gauss_gradients(tf, u)])

    # right-hand sides -B^T K e_a of the two loads (constant flux K e_a over each block)
    ones = tf.ones_like(k11)
    b = -tf.concat(
        [
            _gauss_transpose(tf, [flux(ones, 0 * ones)] * 4),
            _gauss_transpose(tf, [flux(0 * ones, ones)] * 4),
        ],
        axis=1,
    )
    m1, m2 = shape
    p1, p2 = np.meshgrid(np.arange(m1), np.arange(m2 // 2 + 1), indexing="ij")
    c1, c2 = np.cos(2 * np.pi * p1 / m1), np.cos(2 * np.pi * p2 / m2)
    lam = (8.0 - 2.0 * c1 - 2.0 * c2 - 4.0 * c1 * c2) / 3.0  # the Q1 Laplacian's symbol
    u = _pcg(apply, b, lam, shape, tol=tol, max_iterations=max_iterations)
    u = tf.stop_gradient(tf.cast(u, tf.float64))  # (B, 2, m1, m2)
    grads = _gauss_gradients(tf, u)
    kf = k[:, None]
    mu = 0.0
    for g1, g2 in grads:
        e1 = tf.constant([1.0, 0.0], tf.float64)[None, :, None, None] + g1  # (B, 2 loads, ...)
        e2 = tf.constant([0.0, 1.0], tf.float64)[None, :, None, None] + g2
        f1 = kf[..., 0] * e1 + kf[..., 2] * e2
        f2 = kf[..., 2] * e1 + kf[..., 1] * e2
        mu = mu + 0.25 * (tf.einsum("bxij,byij->bxy", e1, f1) + tf.einsum("bxij,byij->bxy", e2, f2))
    mu = mu / float(m1 * m2)
    return 0.5 * (mu + tf.transpose(mu, (0, 2, 1)))
