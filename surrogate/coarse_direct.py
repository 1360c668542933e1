"""Sparse direct coarse solves for answers (numpy/scipy, no TensorFlow).

The general network's coarse problems (:mod:`surrogate.coarse_solve`: face conductances on a
periodic five-point grid; :mod:`surrogate.coarse_q1`: a tensor per block on a periodic Q1 grid)
are solved in training by a differentiable conjugate gradient in TensorFlow, whose iterations
grow with the square root of the contrast. Answers need no gradient: here one sparse LU per grid
(one cell pinned, which removes the constant null space) solves both loads exactly, and on a CPU
several times faster.
"""

from __future__ import annotations

import functools

import numpy as np

from surrogate.coarse_q1 import GAUSS, gradient_rows

__all__ = ["homogenize_faces_direct", "homogenize_faces_reference", "homogenize_tensors_direct"]


def _splu(a):
    import scipy.sparse.linalg as spla

    return spla.splu(  # SPD: symmetric mode, no pivoting
        a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
    )


def homogenize_faces_reference(*k: np.ndarray) -> np.ndarray:
    """:func:`homogenize_faces_direct` of one grid given by its ``d`` face arrays.

    Parameters
    ----------
    *k
        ``d`` arrays of shape ``(m1, ..., md)``: the conductances of the ``+x1``, ..., ``+xd``
        faces (``d`` = 2 or 3).

    Returns
    -------
    numpy.ndarray
        ``(d, d)`` float64.
    """
    return homogenize_faces_direct(np.stack(k, axis=-1)[None])[0]


def homogenize_faces_direct(k: np.ndarray) -> np.ndarray:
    """:func:`surrogate.coarse_solve.homogenize_faces` by a sparse direct solve (no gradient).

    One sparse Cholesky factorization per grid, compiled, with the ordering and the symbolic
    factorization shared by all grids of one shape (:func:`_face_plan`).

    Parameters
    ----------
    k : ndarray, shape (N, m1, m2, 2) or (N, m1, m2, m3, 3)
        Face conductances (> 0): channel ``c`` holds the ``+x(c+1)`` face of each cell.

    Returns
    -------
    ndarray of float64, shape (N, d, d)
        ``mu_ab`` of every grid, symmetric.
    """
    from surrogate._cholesky_jit import homogenize_faces

    k = np.asarray(k, dtype=np.float64)
    dim = k.ndim - 2
    if dim not in (2, 3) or k.shape[-1] != dim:
        raise ValueError(
            f"face conductances must be (N, m1, m2, 2) or (N, m1, m2, m3, 3), got {k.shape}"
        )
    if not np.all(k > 0) or not np.all(np.isfinite(k)):
        raise ValueError("face conductances must be positive and finite")
    shape = k.shape[1:-1]
    plan = _face_plan(tuple(int(s) for s in shape))
    flat = np.ascontiguousarray(k.reshape(k.shape[0], -1, dim))
    mu, ok = homogenize_faces(flat, *plan)
    if not np.all(ok):  # positive conductances give an SPD matrix: only round-off breaks it
        raise ValueError(f"coarse solve: {np.count_nonzero(~ok)} grids are not positive definite")
    return mu


@functools.lru_cache(maxsize=16)
def _face_plan(shape: tuple[int, ...]) -> tuple:
    """Everything :func:`surrogate._cholesky_jit.homogenize_faces` needs besides the
    conductances, for grids of ``shape``: the triplets, a fill-reducing order (SuperLU's
    minimum degree on the unit-conductance matrix), the structure of the permuted upper
    triangle and its symbolic factorization, and the periodic neighbours."""
    import scipy.sparse as sp

    from surrogate._cholesky_jit import symbolic

    dim = len(shape)
    n = int(np.prod(shape))
    m = n - 1
    rows, cols, face, sign = _face_pattern(shape)
    unit = sp.csc_matrix((sign, (rows, cols)), shape=(m, m))
    new = np.asarray(_splu(unit).perm_c, dtype=np.int64)  # cell i + 1 -> its place
    r, c = new[rows], new[cols]
    upper = r <= c
    key = c[upper] * m + r[upper]  # column-major: sorted by column, then row
    uniq, inverse = np.unique(key, return_inverse=True)
    slot = np.full(rows.size, -1, np.int64)
    slot[upper] = inverse
    indptr = np.searchsorted(uniq // m, np.arange(m + 1)).astype(np.int64)
    indices = (uniq % m).astype(np.int64)
    lp, li, rp, ri, rpos = symbolic(indptr, indices, m)
    idx = np.arange(n).reshape(shape)
    nxt = np.stack([np.roll(idx, -1, axis=a).ravel() for a in range(dim)]).astype(np.int64)
    prv = np.stack([np.roll(idx, 1, axis=a).ravel() for a in range(dim)]).astype(np.int64)
    return (face.astype(np.int64), sign.astype(np.float64), slot, int(uniq.size), indptr,
            indices, lp, li, rp, ri, rpos, new, nxt, prv)  # fmt: skip


def _face_pattern(shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Triplets of ``sum_c D_c^T diag(k_c) D_c`` without the row and column of cell 0.

    Entry ``t`` of the matrix is ``sign[t] * k.ravel()[face[t]]`` at ``(rows[t], cols[t])``
    (duplicates summed), with ``k`` of shape ``(n, d)`` and cells shifted down by one.
    """
    dim = len(shape)
    n = int(np.prod(shape))
    idx = np.arange(n).reshape(shape)
    r, c, f, s = [], [], [], []
    for axis in range(dim):
        i = idx.ravel()
        j = np.roll(idx, -1, axis=axis).ravel()
        fid = i * dim + axis
        for a, bb, sg in ((i, i, 1.0), (j, j, 1.0), (i, j, -1.0), (j, i, -1.0)):
            r.append(a)
            c.append(bb)
            f.append(fid)
            s.append(np.full(n, sg))
    rows, cols, face, sign = (np.concatenate(v) for v in (r, c, f, s))
    keep = (rows != 0) & (cols != 0)
    return rows[keep] - 1, cols[keep] - 1, face[keep], sign[keep]


def _element_matrices() -> tuple[np.ndarray, np.ndarray]:
    """``M (3, 4, 4)``: the element stiffness is ``sum_c K_c M_c`` for ``K = [K11, K22, K12]``;
    ``Bbar (2, 4)``: the Gauss average of the gradient rows."""
    rows = [gradient_rows(xi, eta) for xi, eta in GAUSS]
    m11 = sum(0.25 * np.outer(r[0], r[0]) for r in rows)
    m22 = sum(0.25 * np.outer(r[1], r[1]) for r in rows)
    m12 = sum(0.25 * (np.outer(r[0], r[1]) + np.outer(r[1], r[0])) for r in rows)
    return np.stack([m11, m22, m12]), sum(0.25 * r for r in rows)


def homogenize_tensors_direct(k: np.ndarray) -> np.ndarray:
    """:func:`surrogate.coarse_q1.homogenize_tensors` by a sparse direct solve (no gradient).

    Parameters
    ----------
    k : ndarray, shape (N, m1, m2, 3)
        Block tensors ``[K11, K22, K12]`` (SPD).

    Returns
    -------
    ndarray of float64, shape (N, 2, 2)
    """
    import scipy.sparse as sp

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
    grad_rows = np.stack([gradient_rows(xi, eta) for xi, eta in GAUSS])  # (4, 2, 4)
    for b in range(k.shape[0]):
        kb = k[b].reshape(n, 3)
        ke = np.einsum("nc,cij->nij", kb, m_el)  # (n, 4, 4)
        a = sp.csc_matrix((ke.ravel()[keep], (rows_k, cols_k)), shape=(n - 1, n - 1))
        kt = np.stack([[kb[:, 0], kb[:, 2]], [kb[:, 2], kb[:, 1]]])  # (2, 2, n)
        rhs = np.zeros((n, 2))
        for a_ in range(2):
            # -Bbar^T (K e_a) per block, scattered to the corners
            np.add.at(rhs[:, a_], corners, -np.einsum("kj,kn->nj", bbar, kt[:, a_]))
        u = np.zeros((n, 2))
        u[1:] = _splu(a).solve(rhs[1:])
        ue = u[corners]  # (n, 4 corners, 2 loads)
        mu = np.zeros((2, 2))
        for gq in grad_rows:
            g = np.eye(2)[None] + np.einsum("dj,njl->ndl", gq, ue)  # (n, dir, load)
            mu += 0.25 * np.einsum("ndl,den,nem->lm", g, kt, g)
        mu /= n
        out[b] = 0.5 * (mu + mu.T)
    return out
