"""Compiled (numba) kernel of :mod:`surrogate.general_features` (internal, one file: see
:mod:`surrogate._stem_jit` on numba's per-file cache)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["gelu_inplace", "line_bounds_2d"]


@njit(cache=True, nogil=True)
def line_bounds_2d(strong, contrast, e0, e1):
    """Strong fraction and line bounds of ``mu_11`` and ``mu_22``, per block and per cell.

    Parameters
    ----------
    strong : (N, n1, n2) uint8
    contrast : (N,) float64
    e0, e1 : int64 arrays
        First index of each block along axis 0 / axis 1.

    Returns
    -------
    blocks : (N, m1, m2, 9) float64
        Fraction, lower and upper bound of ``mu_11``, lower and upper bound of ``mu_22`` (in
        units of the weak permeability) of each block; then the shares of strong-strong and of
        weak-weak pixel pairs across the block's ``+x1`` face and across its ``+x2`` face (the
        contacts that decide a face's conductance at high contrast; periodic wrap).
    cell : (N, 5) float64
        The same for the whole cell.
    """
    n_img, n1, n2 = strong.shape
    m1, m2 = e0.size, e1.size
    blocks = np.empty((n_img, m1, m2, 9))
    cell = np.empty((n_img, 5))
    rows = np.zeros((n1, m2), dtype=np.int64)  # strong pixels of row i inside block column bj
    cols = np.zeros((m1, n2), dtype=np.int64)  # strong pixels of column j inside block row bi
    bi_of = np.empty(n1, dtype=np.int64)
    bj_of = np.empty(n2, dtype=np.int64)
    for bi in range(m1):
        i1 = e0[bi + 1] if bi + 1 < m1 else n1
        bi_of[e0[bi] : i1] = bi
    for bj in range(m2):
        j1 = e1[bj + 1] if bj + 1 < m2 else n2
        bj_of[e1[bj] : j1] = bj
    for k in range(n_img):
        c = contrast[k]
        inv_c = 1.0 / c
        rows[:] = 0
        cols[:] = 0
        for i in range(n1):
            bi = bi_of[i]
            for j in range(n2):
                v = strong[k, i, j]
                rows[i, bj_of[j]] += v
                cols[bi, j] += v
        for bi in range(m1):
            i0 = e0[bi]
            i1 = e0[bi + 1] if bi + 1 < m1 else n1
            li = i1 - i0
            for bj in range(m2):
                j0 = e1[bj]
                j1 = e1[bj + 1] if bj + 1 < m2 else n2
                lj = j1 - j0
                total = 0
                harm_col = 0.0  # columns = lines along axis 0
                inv_arith_col = 0.0
                for j in range(j0, j1):
                    kk = cols[bi, j]
                    total += kk
                    harm_col += li / ((li - kk) + kk * inv_c)
                    inv_arith_col += li / ((li - kk) + kk * c)
                harm_row = 0.0  # rows = lines along axis 1
                inv_arith_row = 0.0
                for i in range(i0, i1):
                    kk = rows[i, bj]
                    harm_row += lj / ((lj - kk) + kk * inv_c)
                    inv_arith_row += lj / ((lj - kk) + kk * c)
                blocks[k, bi, bj, 0] = total / (li * lj)
                blocks[k, bi, bj, 1] = harm_col / lj
                blocks[k, bi, bj, 2] = li / inv_arith_row
                blocks[k, bi, bj, 3] = harm_row / li
                blocks[k, bi, bj, 4] = lj / inv_arith_col
                # contacts across the +x1 face (last row of the block, first row of the next)
                ia, ib = i1 - 1, i1 % n1
                ss, ww = 0, 0
                for j in range(j0, j1):
                    a, b = strong[k, ia, j], strong[k, ib, j]
                    ss += a & b
                    ww += (1 - a) & (1 - b)
                blocks[k, bi, bj, 5] = ss / lj
                blocks[k, bi, bj, 6] = ww / lj
                ja, jb = j1 - 1, j1 % n2
                ss, ww = 0, 0
                for i in range(i0, i1):
                    a, b = strong[k, i, ja], strong[k, i, jb]
                    ss += a & b
                    ww += (1 - a) & (1 - b)
                blocks[k, bi, bj, 7] = ss / li
                blocks[k, bi, bj, 8] = ww / li
        # the whole cell: full columns and rows
        total = 0
        harm_col = 0.0
        inv_arith_col = 0.0
        for j in range(n2):
            kk = 0
            for bi in range(m1):
                kk += cols[bi, j]
            total += kk
            harm_col += n1 / ((n1 - kk) + kk * inv_c)
            inv_arith_col += n1 / ((n1 - kk) + kk * c)
        harm_row = 0.0
        inv_arith_row = 0.0
        for i in range(n1):
            kk = 0
            for bj in range(m2):
                kk += rows[i, bj]
            harm_row += n2 / ((n2 - kk) + kk * inv_c)
            inv_arith_row += n2 / ((n2 - kk) + kk * c)
        cell[k, 0] = total / (n1 * n2)
        cell[k, 1] = harm_col / n2
        cell[k, 2] = n1 / inv_arith_row
        cell[k, 3] = harm_row / n1
        cell[k, 4] = n2 / inv_arith_col
    return blocks, cell


@njit(cache=True, nogil=True)
def gelu_inplace(x):
    """``x <- x Phi(x)`` (exact GELU, ``Phi`` the normal CDF through ``erf``) of a flat float32
    array, in place: what Keras's ``gelu`` computes, at a fraction of ``scipy.special.erf``'s
    cost."""
    r = np.float32(0.7071067811865476)
    for i in range(x.size):
        v = x[i]
        x[i] = np.float32(0.5) * v * (np.float32(1.0) + math.erf(v * r))
    return x
