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
training) and :func:`homogenize_tensors_direct` (scipy sparse LU; for answers).
"""

from __future__ import annotations

import numpy as np

__all__ = ["homogenize_tensors", "homogenize_tensors_direct", "tensor_of_logits"]

_G = (0.5 - 0.5 / np.sqrt(3.0), 0.5 + 0.5 / np.sqrt(3.0))
#: The 2x2 Gauss points ``(xi, eta)`` of the unit block (weight 1/4 each).
GAUSS = tuple((xi, eta) for xi in _G for eta in _G)


def _gradient_rows(xi: float, eta: float) -> np.ndarray:
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


def _element_matrices() -> tuple[np.ndarray, np.ndarray]:
    """``M (3, 4, 4)``: the element stiffness is ``sum_c K_c M_c`` for ``K = [K11, K22, K12]``;
    ``Bbar (2, 4)``: the Gauss average of the gradient rows."""
    rows = [_gradient_rows(xi, eta) for xi, eta in GAUSS]
    m11 = sum(0.25 * np.outer(r[0], r[0]) for r in rows)
    m22 = sum(0.25 * np.outer(r[1], r[1]) for r in rows)
    m12 = sum(0.25 * (np.outer(r[0], r[1]) + np.outer(r[1], r[0])) for r in rows)
    return np.stack([m11, m22, m12]), sum(0.25 * r for r in rows)


def homogenize_tensors_direct(k: np.ndarray) -> np.ndarray:
    """The same homogenization by a sparse direct solve (scipy; for answers, no gradient).

    Parameters
    ----------
    k : ndarray, shape (N, m1, m2, 3)
        Block tensors ``[K11, K22, K12]`` (SPD).

    Returns
    -------
    ndarray of float64, shape (N, 2, 2)
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 4 or k.shape[-1] != 3:
        raise ValueError(f"block tensors must be (N, m1, m2, 3), got {k.shape}")
    _, m1, m2, _ = k.shape
    n = m1 * m2
    idx = np.arange(n).reshape(m1, m2)
    corners = np.stack(  # (n, 4) nodes [00, 10, 01, 11] of every block
        [
            idx.ravel(),
            np.roll(idx, -1, 0).ravel(),
            np.roll(idx, -1, 1).ravel(),
            np.roll(np.roll(idx, -1, 0), -1, 1).ravel(),
        ],
        axis=1,
    )
    rows = np.repeat(corners, 4, axis=1).ravel()
    cols = np.tile(corners, (1, 4)).ravel()
    keep = (rows != 0) & (cols != 0)  # node 0 pinned: removes the constant null space
    m_el, bbar = _element_matrices()
    rows_k, cols_k = rows[keep] - 1, cols[keep] - 1
    out = np.empty((k.shape[0], 2, 2))
    grad_rows = np.stack([_gradient_rows(xi, eta) for xi, eta in GAUSS])  # (4, 2, 4)
    for b in range(k.shape[0]):
        kb = k[b].reshape(n, 3)
        ke = np.einsum("nc,cij->nij", kb, m_el)  # (n, 4, 4)
        a = sp.csc_matrix((ke.ravel()[keep], (rows_k, cols_k)), shape=(n - 1, n - 1))
        kt = np.stack([[kb[:, 0], kb[:, 2]], [kb[:, 2], kb[:, 1]]])  # (2, 2, n)
        rhs = np.zeros((n, 2))
        for a_ in range(2):
            # -Bbar^T (K e_a) per block, scattered to the corners
            np.add.at(rhs[:, a_], corners, -np.einsum("kj,kn->nj", bbar, kt[:, a_]))
        lu = spla.splu(  # SPD: symmetric mode, no pivoting
            a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
        )
        u = np.zeros((n, 2))
        u[1:] = lu.solve(rhs[1:])
        ue = u[corners]  # (n, 4 corners, 2 loads)
        mu = np.zeros((2, 2))
        for gq in grad_rows:
            g = np.eye(2)[None] + np.einsum("dj,njl->ndl", gq, ue)  # (n, dir, load)
            mu += 0.25 * np.einsum("ndl,den,nem->lm", g, kt, g)
        mu /= n
        out[b] = 0.5 * (mu + mu.T)
    return out
