"""Compiled (numba) sparse Cholesky of many SPD matrices of one sparsity pattern (internal).

The coarse problems of the general network (:mod:`surrogate.coarse_direct`) have the same
pattern for every image of one grid shape: the ordering and the symbolic factorization are
done once per shape (:func:`symbolic`), and every matrix is then factorized by the up-looking
algorithm of CSparse (Davis, *Direct Methods for Sparse Linear Systems*, 2006, ``cs_chol``)
with the positions of every entry of ``L`` known in advance, so the numeric work is arithmetic
on fixed index arrays (:func:`factor_solve`), in no Python loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["factor_solve", "homogenize_faces", "symbolic"]


@njit(cache=True, nogil=True)
def symbolic(indptr, indices, n):
    """Elimination tree and structure of ``L`` of a symmetric matrix (upper part given).

    Parameters
    ----------
    indptr, indices : int64 arrays
        CSC structure of the upper triangle (row <= column) of the permuted matrix, rows
        sorted within each column, the diagonal present.
    n : int

    Returns
    -------
    lp : int64 (n + 1,)
        Column pointers of ``L`` (the diagonal first in each column).
    li : int64 (nnz(L),)
        Row indices of ``L`` (increasing within each column).
    rp : int64 (n + 1,)
        Row pointers of the off-diagonal pattern of each row ``k`` of ``L``.
    ri, rpos : int64 (nnz(L) - n,)
        For row ``k``: the columns ``i < k`` with ``L[k, i] != 0`` in a topological order of the
        elimination tree (the order the numeric phase must visit them), and the position of
        ``L[k, i]`` in ``li``.
    """
    parent = np.full(n, -1, np.int64)
    ancestor = np.full(n, -1, np.int64)
    for k in range(n):  # cs_etree with path compression
        for p in range(indptr[k], indptr[k + 1]):
            i = indices[p]
            while i != -1 and i < k:
                nxt = ancestor[i]
                ancestor[i] = k
                if nxt == -1:
                    parent[i] = k
                i = nxt
    # row patterns by cs_ereach: columns of row k in topological order
    mark = np.full(n, -1, np.int64)
    stack = np.empty(n, np.int64)
    rows_of = []
    count = np.ones(n, np.int64)  # entries per column of L (the diagonal)
    rp = np.zeros(n + 1, np.int64)
    for k in range(n):
        top = n
        mark[k] = k
        for p in range(indptr[k], indptr[k + 1]):
            i = indices[p]
            if i > k:
                continue
            length = 0
            while mark[i] != k:
                stack[length] = i
                length += 1
                mark[i] = k
                i = parent[i]
            while length > 0:
                length -= 1
                top -= 1
                stack[top] = stack[length]
        row = stack[top:n].copy()
        rows_of.append(row)
        rp[k + 1] = rp[k] + row.size
        for i in row:
            count[i] += 1
    lp = np.zeros(n + 1, np.int64)
    for j in range(n):
        lp[j + 1] = lp[j] + count[j]
    li = np.empty(lp[n], np.int64)
    ri = np.empty(rp[n], np.int64)
    rpos = np.empty(rp[n], np.int64)
    li[lp[:-1]] = np.arange(n)  # the diagonal first in each column
    nxt = lp[:-1] + 1
    for k in range(n):  # rows in increasing order: each column's rows come out sorted
        row = rows_of[k]
        for t in range(row.size):
            i = row[t]
            ri[rp[k] + t] = i
            rpos[rp[k] + t] = nxt[i]
            li[nxt[i]] = k
            nxt[i] += 1
    return lp, li, rp, ri, rpos


@njit(cache=True, nogil=True)
def factor_solve(indptr, indices, values, lp, li, rp, ri, rpos, rhs, lx, work):
    """Factorize ``A = L L^T`` and solve ``A X = rhs`` in place.

    Parameters
    ----------
    indptr, indices : int64 arrays
        As for :func:`symbolic`; ``values`` (float64) the entries of that upper triangle.
    lp, li, rp, ri, rpos
        From :func:`symbolic` of the same structure.
    rhs : float64 (n, m)
        Overwritten by the solution.
    lx : float64 (nnz(L),), work : float64 (n,)
        Scratch (``work`` must be zero on entry; it is zero on exit).

    Returns
    -------
    bool
        False if a pivot was not positive (the matrix is not SPD); ``rhs`` is then garbage.
    """
    n = lp.size - 1
    for k in range(n):
        d = 0.0
        for p in range(indptr[k], indptr[k + 1]):
            i = indices[p]
            if i < k:
                work[i] = values[p]
            elif i == k:
                d = values[p]
        for t in range(rp[k], rp[k + 1]):
            i = ri[t]
            lki = work[i] / lx[lp[i]]
            work[i] = 0.0
            for p in range(lp[i] + 1, rpos[t]):
                work[li[p]] -= lx[p] * lki
            d -= lki * lki
            lx[rpos[t]] = lki
        if not d > 0.0:
            for t in range(rp[k], rp[k + 1]):
                work[ri[t]] = 0.0
            return False
        lx[lp[k]] = np.sqrt(d)
    m = rhs.shape[1]
    for j in range(n):  # L y = b (column oriented)
        for c in range(m):
            rhs[j, c] /= lx[lp[j]]
        for p in range(lp[j] + 1, lp[j + 1]):
            i = li[p]
            for c in range(m):
                rhs[i, c] -= lx[p] * rhs[j, c]
    for j in range(n - 1, -1, -1):  # L^T x = y
        for p in range(lp[j] + 1, lp[j + 1]):
            i = li[p]
            for c in range(m):
                rhs[j, c] -= lx[p] * rhs[i, c]
        for c in range(m):
            rhs[j, c] /= lx[lp[j]]
    return True


@njit(cache=True, nogil=True)
def homogenize_faces(k, face, sign, slot, nnz, indptr, indices, lp, li, rp, ri, rpos, new,
                     nxt, prv):  # fmt: skip
    """Effective tensors of periodic face-conductance grids (see
    :func:`surrogate.coarse_direct.homogenize_faces_direct`).

    Parameters
    ----------
    k : float64 (N, n, d)
        Conductances of the ``+x_c`` face of every cell (cells flattened).
    face, sign, slot : arrays over the triplets of the matrix without cell 0
        Triplet ``t`` adds ``sign[t] * k.ravel()[face[t]]`` to entry ``slot[t]`` of the upper
        triangle of the permuted matrix (``slot = -1``: a lower-triangle triplet, skipped).
    nnz, indptr, indices, lp, li, rp, ri, rpos
        That triangle's structure and :func:`symbolic` of it.
    new : int64 (n - 1,)
        Position in the permuted order of cell ``i + 1``.
    nxt, prv : int64 (d, n)
        The cell after / before each cell along ``x_c`` (periodic).

    Returns
    -------
    mu : float64 (N, d, d)
    ok : bool (N,)
        False where a pivot was not positive.
    """
    nb, n, d = k.shape
    m = n - 1
    mu = np.zeros((nb, d, d))
    ok = np.ones(nb, np.bool_)
    values = np.empty(nnz)
    lx = np.empty(lp[m])
    work = np.zeros(m)
    rhs = np.empty((m, d))
    u = np.zeros((n, d))
    for b in range(nb):
        kb = k[b].ravel()
        values[:] = 0.0
        for t in range(face.size):
            if slot[t] >= 0:
                values[slot[t]] += sign[t] * kb[face[t]]
        for i in range(1, n):
            for c in range(d):
                rhs[new[i - 1], c] = k[b, i, c] - k[b, prv[c, i], c]
        if not factor_solve(indptr, indices, values, lp, li, rp, ri, rpos, rhs, lx, work):
            ok[b] = False
            continue
        for i in range(1, n):
            for c in range(d):
                u[i, c] = rhs[new[i - 1], c]
        for c in range(d):
            for i in range(n):
                kc = k[b, i, c]
                j = nxt[c, i]
                for a in range(d):
                    ga = (1.0 if a == c else 0.0) + u[j, a] - u[i, a]
                    for e in range(d):
                        ge = (1.0 if e == c else 0.0) + u[j, e] - u[i, e]
                        mu[b, a, e] += kc * ga * ge
        for a in range(d):
            for e in range(d):
                mu[b, a, e] /= n
    return mu, ok
