"""Compiled smoothers and operators of the periodic 2D multigrid (private to micro.multigrid).

Four-colour Gauss-Seidel sweeps, residuals and operator applications in the quad layout of
:mod:`micro._mg_setup`, for a stencil level (nine coefficient planes) and, on the finest level,
matrix-free for the Q1 operator of the pixel values (the couplings formed from the four cells
around each node, one value per pixel read instead of nine).
"""

from __future__ import annotations

import numpy as np

from micro._mg_setup import _jit, _wrap

__all__ = ["apply_mu", "apply_quad", "colour_sweep", "colour_sweep_mu", "q1_sparsity_ok"]


# -- cycle, quad layout ------------------------------------------------------------------------
@_jit
def _edge(Sc, dI, bI, tI, I, J, jl, jh, xa0, xa1, xb0, xb1, xc0, xc1, mode):
    """One node of :func:`colour_sweep`, with explicit (wrapped) neighbour columns."""
    off = (
        Sc[0, I, J] * xa0[jl]
        + Sc[1, I, J] * xa1[J]
        + Sc[2, I, J] * xa0[jh]
        + Sc[3, I, J] * xb0[jl]
        + Sc[5, I, J] * xb0[jh]
        + Sc[6, I, J] * xc0[jl]
        + Sc[7, I, J] * xc1[J]
        + Sc[8, I, J] * xc0[jh]
    )
    if mode == 0:
        xb1[J] = dI[J] * (bI[J] - off)
    elif mode == 1:
        tI[J] = bI[J] - off - Sc[4, I, J] * xb1[J]
    else:
        tI[J] = off + Sc[4, I, J] * xb1[J]


@_jit
def colour_sweep(S, D, B, X, T, c, mode):
    """One colour ``c`` of the quad layout, row by row.

    mode 0: Gauss-Seidel update of ``X[c]`` (``D`` the inverse diagonal); mode 1:
    ``T[c] = B[c] - (A X)[c]``; mode 2: ``T[c] = (A X)[c]``.
    """
    m = X.shape[1]
    ci = c >> 1
    cj = c & 1
    r_lo = -1 if ci == 0 else 0  # quad row shift of the di = -1 neighbours
    r_hi = 0 if ci == 0 else 1  # ... of the di = +1 neighbours
    s_lo = -1 if cj == 0 else 0
    s_hi = 0 if cj == 0 else 1
    p_d = 2 * (1 - ci) + 1 - cj  # colour of the diagonal neighbours
    p_v = 2 * (1 - ci) + cj  # of (-1, 0) and (+1, 0)
    p_h = 2 * ci + 1 - cj  # of (0, -1) and (0, +1)
    Sc = S[c]
    for I in range(m):
        Ilo = _wrap(I + r_lo, m)
        Ihi = _wrap(I + r_hi, m)
        xa0 = X[p_d, Ilo]
        xa1 = X[p_v, Ilo]
        xb0 = X[p_h, I]
        xb1 = X[c, I]
        xc0 = X[p_d, Ihi]
        xc1 = X[p_v, Ihi]
        bI = B[c, I]
        tI = T[c, I]
        dI = D[c, I]
        # views: index J - 1 is column J + s_lo, index J is column J + s_hi (1 <= J <= m - 2)
        a0l = xa0[s_lo + 1 :]
        a0h = xa0[s_hi:]
        b0l = xb0[s_lo + 1 :]
        b0h = xb0[s_hi:]
        c0l = xc0[s_lo + 1 :]
        c0h = xc0[s_hi:]
        s0 = Sc[0, I]
        s1 = Sc[1, I]
        s2 = Sc[2, I]
        s3 = Sc[3, I]
        s4 = Sc[4, I]
        s5 = Sc[5, I]
        s6 = Sc[6, I]
        s7 = Sc[7, I]
        s8 = Sc[8, I]
        if mode == 0:
            for J in range(1, m - 1):
                xb1[J] = dI[J] * (
                    bI[J]
                    - s0[J] * a0l[J - 1]
                    - s1[J] * xa1[J]
                    - s2[J] * a0h[J]
                    - s3[J] * b0l[J - 1]
                    - s5[J] * b0h[J]
                    - s6[J] * c0l[J - 1]
                    - s7[J] * xc1[J]
                    - s8[J] * c0h[J]
                )
        else:
            for J in range(1, m - 1):
                tI[J] = (
                    s0[J] * a0l[J - 1]
                    + s1[J] * xa1[J]
                    + s2[J] * a0h[J]
                    + s3[J] * b0l[J - 1]
                    + s4[J] * xb1[J]
                    + s5[J] * b0h[J]
                    + s6[J] * c0l[J - 1]
                    + s7[J] * xc1[J]
                    + s8[J] * c0h[J]
                )
            if mode == 1:
                for J in range(1, m - 1):
                    tI[J] = bI[J] - tI[J]
        for J in (0, m - 1):
            jl = _wrap(J + s_lo, m)
            jh = _wrap(J + s_hi, m)
            _edge(Sc, dI, bI, tI, I, J, jl, jh, xa0, xa1, xb0, xb1, xc0, xc1, mode)


@_jit
def _q1_coefficients(E):
    """The 17 entries of the element matrix ``E`` (9, 4) used by :func:`_q1_point`, as a tuple
    (kept in registers by the sweeps)."""
    return (
        E[0, 0], E[1, 0], E[1, 1], E[2, 1], E[3, 0], E[3, 2], E[5, 1], E[5, 3], E[6, 2],
        E[7, 2], E[7, 3], E[8, 3], E[4, 0], E[4, 1], E[4, 2], E[4, 3],
    )  # fmt: skip


@_jit
def _q1_point(e, m0, m1, m2, m3, x0, x1, x2, x3, x5, x6, x7, x8):
    """Off-centre part of ``(A x)`` at a node and its centre coefficient, from the pixel values
    ``m0..m3`` of its cells (numbered as in :func:`q1_stencil`), its neighbours' values ``x_k``
    (offset codes k) and ``e = _q1_coefficients(E)``.  Only the Q1 couplings are used: a
    diagonal neighbour shares one cell with the node, an edge neighbour two
    (:func:`q1_sparsity_ok`)."""
    off = (
        e[0] * m0 * x0
        + (e[1] * m0 + e[2] * m1) * x1
        + e[3] * m1 * x2
        + (e[4] * m0 + e[5] * m2) * x3
        + (e[6] * m1 + e[7] * m3) * x5
        + e[8] * m2 * x6
        + (e[9] * m2 + e[10] * m3) * x7
        + e[11] * m3 * x8
    )
    centre = e[12] * m0 + e[13] * m1 + e[14] * m2 + e[15] * m3
    return off, centre


def q1_sparsity_ok(E: np.ndarray) -> bool:
    """Whether the element matrix ``E`` (9, 4) couples only through shared cells (Q1)."""
    touch = np.zeros((9, 4), dtype=bool)
    for k in range(9):
        di, dj = k // 3 - 1, k % 3 - 1
        for t in range(4):
            ci, cj = t // 2 - 1, t % 2 - 1  # cell offset: the cell spans nodes c .. c + 1
            touch[k, t] = ci <= di <= ci + 1 and cj <= dj <= cj + 1
    return bool(np.all(E[~touch] == 0.0))


@_jit
def colour_sweep_mu(MU, E, D, B, X, T, c, mode):
    """:func:`colour_sweep` for the Q1 operator of quad pixel values ``MU`` (4, m, m).

    The couplings are formed on the fly from the four cells around each node (``E`` as in
    :func:`q1_stencil`), so the sweep reads one value per pixel instead of nine stencil planes.
    """
    m = X.shape[1]
    ci = c >> 1
    cj = c & 1
    r_lo = -1 if ci == 0 else 0
    r_hi = 0 if ci == 0 else 1
    s_lo = -1 if cj == 0 else 0
    s_hi = 0 if cj == 0 else 1
    p_d = 2 * (1 - ci) + 1 - cj
    p_v = 2 * (1 - ci) + cj
    p_h = 2 * ci + 1 - cj
    e = _q1_coefficients(E)
    for I in range(m):
        Ilo = _wrap(I + r_lo, m)
        Ihi = _wrap(I + r_hi, m)
        up = _wrap(I - 1 + ci, m)  # quad row of the cells above the node
        r_nw = MU[2 * (1 - ci) + 1 - cj, up]  # cell (-1, -1): column J + cj - 1
        r_n = MU[2 * (1 - ci) + cj, up]  # cell (-1, 0): column J
        r_w = MU[2 * ci + 1 - cj, I]  # cell (0, -1): column J + cj - 1
        r_c = MU[2 * ci + cj, I]  # cell (0, 0): column J
        v_nw = r_nw[cj:]
        v_w = r_w[cj:]
        xa0 = X[p_d, Ilo]
        xa1 = X[p_v, Ilo]
        xb0 = X[p_h, I]
        xb1 = X[c, I]
        xc0 = X[p_d, Ihi]
        xc1 = X[p_v, Ihi]
        a0l = xa0[s_lo + 1 :]
        a0h = xa0[s_hi:]
        b0l = xb0[s_lo + 1 :]
        b0h = xb0[s_hi:]
        c0l = xc0[s_lo + 1 :]
        c0h = xc0[s_hi:]
        bI = B[c, I]
        tI = T[c, I]
        dI = D[c, I]
        if mode == 0:
            for J in range(1, m - 1):
                off, _ = _q1_point(
                    e, v_nw[J - 1], r_n[J], v_w[J - 1], r_c[J], a0l[J - 1], xa1[J], a0h[J],
                    b0l[J - 1], b0h[J], c0l[J - 1], xc1[J], c0h[J],
                )  # fmt: skip
                xb1[J] = dI[J] * (bI[J] - off)
        else:
            for J in range(1, m - 1):
                off, centre = _q1_point(
                    e, v_nw[J - 1], r_n[J], v_w[J - 1], r_c[J], a0l[J - 1], xa1[J], a0h[J],
                    b0l[J - 1], b0h[J], c0l[J - 1], xc1[J], c0h[J],
                )  # fmt: skip
                tI[J] = off + centre * xb1[J]
            if mode == 1:
                for J in range(1, m - 1):
                    tI[J] = bI[J] - tI[J]
        for J in (0, m - 1):
            jl = _wrap(J + s_lo, m)
            jh = _wrap(J + s_hi, m)
            jc = _wrap(J + cj - 1, m)
            off, centre = _q1_point(
                e, r_nw[jc], r_n[J], r_w[jc], r_c[J], xa0[jl], xa1[J], xa0[jh], xb0[jl], xb0[jh],
                xc0[jl], xc1[J], xc0[jh],
            )  # fmt: skip
            if mode == 0:
                xb1[J] = dI[J] * (bI[J] - off)
            elif mode == 1:
                tI[J] = bI[J] - (off + centre * xb1[J])
            else:
                tI[J] = off + centre * xb1[J]


@_jit
def apply_mu(MU, E, X, Y):
    """``Y = A X`` in the quad layout for the Q1 operator of quad pixel values ``MU``."""
    for c in range(4):
        colour_sweep_mu(MU, E, MU, X, X, Y, c, 2)


@_jit
def apply_quad(S, X, Y):
    """``Y = A X`` in the quad layout."""
    for c in range(4):
        colour_sweep(S, S[0], X, X, Y, c, 2)
