"""Compiled (numba) kernel of :mod:`surrogate.general_features` (internal, one file: see
:mod:`surrogate._stem_jit` on numba's per-file cache)."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["crossings_2d", "gelu_inplace", "line_bounds_2d"]


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


@njit(cache=True, nogil=True, fastmath=True)
def gelu_inplace(x):
    """``x <- x Phi(x)`` (GELU, ``Phi`` the normal CDF through ``erf``) of a flat float32 array,
    in place: what Keras's exact ``gelu`` computes. ``erf`` is the rational approximation of
    Eigen (which TensorFlow's CPU kernels use) on [-4, 4], +-1 beyond: within 4e-7 of the exact
    function, float32 round-off, and branch-free, so the loop vectorizes."""
    r = np.float32(0.7071067811865476)
    lo, hi = np.float32(-4.0), np.float32(4.0)
    for i in range(x.size):
        v = x[i]
        z = min(max(v * r, lo), hi)
        z2 = z * z
        p = z2 * np.float32(-2.72614225801306e-10) + np.float32(2.77068142495902e-08)
        p = z2 * p + np.float32(-2.10102402082508e-06)
        p = z2 * p + np.float32(-5.69250639462346e-05)
        p = z2 * p + np.float32(-7.34990630326855e-04)
        p = z2 * p + np.float32(-2.95459980854025e-03)
        p = z2 * p + np.float32(-1.60960333262415e-02)
        q = z2 * np.float32(-1.45660718464996e-05) + np.float32(-2.13374055278905e-04)
        q = z2 * q + np.float32(-1.68282697438203e-03)
        q = z2 * q + np.float32(-7.37332916720468e-03)
        q = z2 * q + np.float32(-1.42647390514189e-02)
        x[i] = np.float32(0.5) * v * (np.float32(1.0) + z * p / q)
    return x


@njit(cache=True, nogil=True)
def _min_crossing(s, k, rows, cols, along0, w, dist, cur, nxt):
    """Fewest weak pixels on an 8-connected pixel path through a window of image ``k``.

    The window is ``rows x cols`` (index arrays, periodic wrap already applied); the path runs
    from the window's first to its last line along axis 0 (``along0``) or axis 1. A
    breadth-first search by levels of cost (a pixel costs 1 if weak: zero-cost steps stay in
    the level); ``w``, ``dist`` (2D) and ``cur``, ``nxt`` (1D) are scratch arrays at least the
    window's size.
    """
    if along0:
        h, b = rows.size, cols.size
        for a in range(h):
            for j in range(b):
                w[a, j] = 1 - s[k, rows[a], cols[j]]
    else:
        h, b = cols.size, rows.size
        for a in range(h):
            for j in range(b):
                w[a, j] = 1 - s[k, rows[j], cols[a]]
    n_strong = 0
    full_line = False  # a straight line of strong pixels along the path
    for j in range(b):
        run = 0
        for a in range(h):
            run += 1 - w[a, j]
        n_strong += run
        full_line = full_line or run == h
    if n_strong == 0:
        return 1.0
    if full_line:
        return 0.0
    big = 1 << 30
    for a in range(h):
        for j in range(b):
            dist[a, j] = big
    n_cur = 0
    n_nxt = 0
    for j in range(b):  # sources: the first line
        dist[0, j] = w[0, j]
        if w[0, j] == 0:
            cur[n_cur] = j
            n_cur += 1
        else:
            nxt[n_nxt] = j
            n_nxt += 1
    level = 0
    while n_cur + n_nxt > 0:
        while n_cur > 0:
            n_cur -= 1
            node = cur[n_cur]
            a, j = node // b, node % b
            if dist[a, j] < level:
                continue  # settled at a lower level already
            if a == h - 1:
                return level / h
            dist[a, j] = level - 1  # mark settled (below every level still to come)
            for aa in range(max(a - 1, 0), min(a + 2, h)):
                for jj in range(max(j - 1, 0), min(j + 2, b)):
                    v = level + w[aa, jj]
                    if v < dist[aa, jj]:
                        dist[aa, jj] = v
                        if v == level:
                            cur[n_cur] = aa * b + jj
                            n_cur += 1
                        else:
                            nxt[n_nxt] = aa * b + jj
                            n_nxt += 1
        level += 1
        for t in range(n_nxt):
            cur[t] = nxt[t]
        n_cur = n_nxt
        n_nxt = 0
    return 1.0


@njit(cache=True, nogil=True)
def crossings_2d(strong, e0, e1):
    """Connectivity of the strong phase at high contrast, per block: the fewest weak pixels on a
    path across a window, as a share of the window's length.

    A path steps to any of the 8 neighbours of a pixel: on the Q1 grid of the labels two strong
    pixels that share only a node conduct at the strong permeability's order, which the line
    bounds (whole lines of pixels) do not see. 0 means a strong path crosses the window.

    Parameters
    ----------
    strong : (N, n1, n2) uint8
    e0, e1 : int64 arrays
        First index of each block along axis 0 / axis 1.

    Returns
    -------
    (N, m1, m2, 4) float64
        Across the block along axis 0 and along axis 1; across the window from the block's
        centre to the next block's centre along axis 0 (the ``+x1`` face) and along axis 1
        (the ``+x2`` face), periodic wrap.
    """
    n_img, n1, n2 = strong.shape
    m1, m2 = e0.size, e1.size
    out = np.empty((n_img, m1, m2, 4))
    blk0, len0, win0, wlen0 = _windows(e0, n1)
    blk1, len1, win1, wlen1 = _windows(e1, n2)
    size = max(blk0.shape[1], win0.shape[1], blk1.shape[1], win1.shape[1])
    w = np.empty((size, size), dtype=np.int32)
    dist = np.empty((size, size), dtype=np.int32)
    cur = np.empty(4 * size * size, dtype=np.int32)
    nxt = np.empty(4 * size * size, dtype=np.int32)
    for k in range(n_img):
        for bi in range(m1):
            r = blk0[bi, : len0[bi]]
            rf = win0[bi, : wlen0[bi]]
            for bj in range(m2):
                c = blk1[bj, : len1[bj]]
                cf = win1[bj, : wlen1[bj]]
                out[k, bi, bj, 0] = _min_crossing(strong, k, r, c, True, w, dist, cur, nxt)
                out[k, bi, bj, 1] = _min_crossing(strong, k, r, c, False, w, dist, cur, nxt)
                out[k, bi, bj, 2] = _min_crossing(strong, k, rf, c, True, w, dist, cur, nxt)
                out[k, bi, bj, 3] = _min_crossing(strong, k, r, cf, False, w, dist, cur, nxt)
    return out


@njit(cache=True, nogil=True)
def _windows(e, n):
    """Pixel indices of each block along one axis, and of the window from its centre to the
    next block's centre (periodic): padded arrays and their lengths."""
    m = e.size
    start = np.empty(m + 1, dtype=np.int64)
    start[:m] = e
    start[m] = n
    centre = (start[:m] + start[1:]) // 2
    lens = start[1:] - start[:m]
    wlens = np.empty(m, dtype=np.int64)
    for b in range(m):
        span = (centre[(b + 1) % m] - centre[b]) % n
        wlens[b] = span if span > 0 else n
    blk = np.zeros((m, lens.max()), dtype=np.int64)
    win = np.zeros((m, wlens.max()), dtype=np.int64)
    for b in range(m):
        for t in range(lens[b]):
            blk[b, t] = start[b] + t
        for t in range(wlens[b]):
            win[b, t] = (centre[b] + t) % n
    return blk, lens, win, wlens
