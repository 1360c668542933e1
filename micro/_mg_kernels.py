"""Compiled kernels of the periodic 2D black-box multigrid (private to :mod:`micro.multigrid`).

Layouts
-------
*Natural*: node ``(i, j)`` of an ``n x n`` periodic grid is entry ``[i, j]``.  A stencil
couples node ``(i, j)`` with node ``((i + di) % n, (j + dj) % n)`` through entry
``k = 3 (di + 1) + (dj + 1)`` -- the offset code of :class:`micro.periodic.PeriodicPattern`
(axis 0 the most significant digit; centre ``k = 4``, mirror ``8 - k``).  Natural stencils are
held as planes ``(9, n, n)``.

*Quad* (n even, ``m = n / 2``): node ``(2I + ci, 2J + cj)`` is entry ``[2 ci + cj, I, J]`` of a
``(4, m, m)`` array.  The four colours are the Gauss-Seidel colours (nodes of one colour do not
couple) and colour 0 holds the coarse nodes ``(2I, 2J)``.  Stencils are ``(4, 9, m, m)``;
prolongation weights ``(4, 4, m, m)``, slot ``2 a + b`` being the weight of coarse parent
``(I + a, J + b)`` (zero unless ``a <= ci`` and ``b <= cj``).  Neighbour ``(di, dj)`` of a
colour-``(ci, cj)`` node has colour ``((ci + di) & 1, (cj + dj) & 1)`` at quad shift
``((ci + di) >> 1, (cj + dj) >> 1)``.

Inner loops run over ``J`` with unit stride and index row views only by ``J`` or ``J - 1`` (the
periodic wrap is done outside), so that LLVM vectorises them.  A hierarchy lives in flat
buffers with per-level offsets, so that a whole CG solve with its V-cycles is one compiled
call.  Kernels are single-threaded and cached on disk.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = [
    "aos_to_quad",
    "apply_mu",
    "apply_quad",
    "coordinate_loads",
    "from_quad",
    "galerkin",
    "pcg",
    "planes_to_quad",
    "prolongation_weights",
    "q1_sparsity_ok",
    "q1_stencil",
    "symmetrize",
    "to_quad",
    "vcycle",
]

_jit = nb.njit(
    cache=True, nogil=True, boundscheck=False, error_model="numpy", fastmath={"contract"}
)
# reductions: reassociation lets LLVM vectorise the sums (deterministic for a given build)
_jit_sum = nb.njit(
    cache=True, nogil=True, boundscheck=False, error_model="numpy", fastmath={"contract", "reassoc"}
)


@_jit
def _wrap(i, m):
    return i + m if i < 0 else (i - m if i >= m else i)


# -- layout changes ----------------------------------------------------------------------------
@_jit
def to_quad(x, X):
    """Natural ``x`` (n, n) to quad ``X`` (4, m, m)."""
    m = X.shape[1]
    for I in range(m):
        for ci in range(2):
            row = x[2 * I + ci]
            for cj in range(2):
                out = X[2 * ci + cj, I]
                for J in range(m):
                    out[J] = row[2 * J + cj]


@_jit
def from_quad(X, x):
    """Quad ``X`` (4, m, m) to natural ``x`` (n, n)."""
    m = X.shape[1]
    for I in range(m):
        for ci in range(2):
            row = x[2 * I + ci]
            for cj in range(2):
                src = X[2 * ci + cj, I]
                for J in range(m):
                    row[2 * J + cj] = src[J]


@_jit
def planes_to_quad(A, Q):
    """Natural planes ``A`` (p, n, n) to quad planes ``Q`` (4, p, m, m)."""
    for k in range(A.shape[0]):
        to_quad(A[k], Q[:, k])


@_jit
def aos_to_quad(A, Q):
    """Natural ``A`` (n, n, p) (one stencil per node) to quad planes ``Q`` (4, p, m, m)."""
    m = Q.shape[2]
    p = A.shape[2]
    for I in range(m):
        for ci in range(2):
            row = A[2 * I + ci]
            for cj in range(2):
                c = 2 * ci + cj
                for k in range(p):
                    out = Q[c, k, I]
                    for J in range(m):
                        out[J] = row[2 * J + cj, k]


# -- set-up, quad layout -----------------------------------------------------------------------
@_jit
def q1_stencil(MU, E, S):
    """Quad stencil ``S`` (4, 9, m, m) of the Q1 operator of quad pixel values ``MU`` (4, m, m).

    Pixel ``(i, j)`` is the cell with lower corner node ``(i, j)``; node ``(i, j)`` touches the
    cells ``(i + dci, j + dcj)``, ``dci, dcj`` in {-1, 0}, numbered ``t = 2 (dci + 1) + dcj +
    1``, and ``S[k] = sum_t E[k, t] mu_t``.
    """
    m = MU.shape[1]
    for c in range(4):
        ci = c >> 1
        cj = c & 1
        for I in range(m):
            up = _wrap(I - 1 + ci, m)  # quad row of the cells with dci = -1
            r_nw = MU[2 * (1 - ci) + 1 - cj, up]  # (-1, -1): column shift cj - 1
            r_n = MU[2 * (1 - ci) + cj, up]  # (-1, 0)
            r_w = MU[2 * ci + 1 - cj, I]  # (0, -1)
            r_c = MU[2 * ci + cj, I]  # (0, 0)
            v_nw = r_nw[cj:]
            v_w = r_w[cj:]
            jl = _wrap(cj - 1, m)
            for k in range(9):
                e0 = E[k, 0]
                e1 = E[k, 1]
                e2 = E[k, 2]
                e3 = E[k, 3]
                out = S[c, k, I]
                for J in range(1, m):
                    out[J] = e0 * v_nw[J - 1] + e1 * r_n[J] + e2 * v_w[J - 1] + e3 * r_c[J]
                out[0] = e0 * r_nw[jl] + e1 * r_n[0] + e2 * r_w[jl] + e3 * r_c[0]


@_jit
def coordinate_loads(S, scale, out, norms):
    """Loads ``-A x_k`` of the coordinates on the periodic nodes, quad layout.

    ``out[k]`` (4, m, m) gets ``-sum_q S[q] off_k(q) * scale`` (``off_k`` the neighbour offset
    along axis k, ``scale`` the node spacing), the exact right-hand side of load case k; and
    ``norms[k]`` the 2-norm of ``sum_q |S[q] off_k(q)| * scale``, the size the right-hand side
    would have without cancellation.
    """
    m = S.shape[2]
    n0 = 0.0
    n1 = 0.0
    for c in range(4):
        s = S[c]
        for I in range(m):
            for J in range(m):
                lo0 = s[0, I, J] + s[1, I, J] + s[2, I, J]
                hi0 = s[6, I, J] + s[7, I, J] + s[8, I, J]
                lo1 = s[0, I, J] + s[3, I, J] + s[6, I, J]
                hi1 = s[2, I, J] + s[5, I, J] + s[8, I, J]
                out[0, c, I, J] = (lo0 - hi0) * scale
                out[1, c, I, J] = (lo1 - hi1) * scale
                a0 = abs(s[0, I, J]) + abs(s[1, I, J]) + abs(s[2, I, J])
                a0 += abs(s[6, I, J]) + abs(s[7, I, J]) + abs(s[8, I, J])
                a1 = abs(s[0, I, J]) + abs(s[3, I, J]) + abs(s[6, I, J])
                a1 += abs(s[2, I, J]) + abs(s[5, I, J]) + abs(s[8, I, J])
                n0 += (a0 * scale) ** 2
                n1 += (a1 * scale) ** 2
    norms[0] = np.sqrt(n0)
    norms[1] = np.sqrt(n1)


@_jit
def prolongation_weights(S, W):
    """Dendy's operator-dependent (BoxMG) prolongation weights ``W`` (4, 4, m, m) of ``S``.

    Coarse nodes (colour 0) inject; a node between two coarse nodes along one axis uses its
    stencil collapsed onto that axis; a cell-centre node (colour 3) solves its own equation
    with its four edge neighbours replaced by their interpolants.  With zero row sums every
    row sums to one, so constants are interpolated exactly.
    """
    m = S.shape[2]
    W[:] = 0.0
    W[0, 0] = 1.0
    for I in range(m):
        s = S[1, :, I]  # node (2I, 2J + 1): between coarse (I, J) and (I, J + 1)
        w0 = W[1, 0, I]
        w1 = W[1, 1, I]
        for J in range(m):
            den = s[1, J] + s[4, J] + s[7, J]
            w0[J] = -(s[0, J] + s[3, J] + s[6, J]) / den
            w1[J] = -(s[2, J] + s[5, J] + s[8, J]) / den
        s = S[2, :, I]  # node (2I + 1, 2J): between coarse (I, J) and (I + 1, J)
        w0 = W[2, 0, I]
        w2 = W[2, 2, I]
        for J in range(m):
            den = s[3, J] + s[4, J] + s[5, J]
            w0[J] = -(s[0, J] + s[1, J] + s[2, J]) / den
            w2[J] = -(s[6, J] + s[7, J] + s[8, J]) / den
    for I in range(m):
        s = S[3, :, I]  # node (2I + 1, 2J + 1)
        for a in range(2):
            di = 2 * a - 1
            # edge node (i + di, j): colour 1 at (I + a, J); its weight towards j + dj is slot b
            e_v = W[1, :, _wrap(I + a, m)]
            # edge node (i, j + dj): colour 2 at (I, J + b); towards i + di, slot 2a
            e_h = W[2, 2 * a, I]
            for b in range(2):
                dj = 2 * b - 1
                e_hv = e_h[b:]
                corner = s[3 * (di + 1) + dj + 1]
                s_v = s[3 * (di + 1) + 1]
                s_h = s[3 + dj + 1]
                e_vb = e_v[b]
                out = W[3, 2 * a + b, I]
                for J in range(m - 1):
                    out[J] = -(corner[J] + s_v[J] * e_vb[J] + s_h[J] * e_hv[J]) / s[4, J]
                J = m - 1
                out[J] = -(corner[J] + s_v[J] * e_vb[J] + s_h[J] * e_h[_wrap(J + b, m)]) / s[4, J]


@_jit
def _axpy_shift(out, s, w, sh, m):
    """``out[J] += s[J] * w[J + sh]`` (periodic in J), ``sh`` in {-1, 0, 1}."""
    v = w[sh + 1 :]
    for J in range(1, m - 1):
        out[J] += s[J] * v[J - 1]
    out[0] += s[0] * w[_wrap(sh, m)]
    out[m - 1] += s[m - 1] * w[_wrap(m - 1 + sh, m)]


@_jit
def galerkin(S, W, Y, Sc):
    """Coarse operator ``P^T A P`` as natural stencil planes ``Sc`` (9, m, m).

    ``S`` (4, 9, m, m) and ``W`` (4, 4, m, m) are the fine operator and prolongation in the
    quad layout; ``Y`` (4, 9, m, m) is work space for ``A P``: entry ``[c, 3 (p + 1) + q + 1,
    I, J]`` couples fine node ``[c, I, J]`` with coarse node ``(I + p, J + q)``.
    """
    m = S.shape[2]
    for I in range(m):  # Y = A P, row by row
        for c in range(4):
            ci = c >> 1
            cj = c & 1
            for k in range(9):
                Y[c, k, I] = 0.0
            for ei in range(-1, 2):
                cgi = (ci + ei) & 1
                shi = (ci + ei) >> 1
                row = _wrap(I + shi, m)
                for ej in range(-1, 2):
                    cgj = (cj + ej) & 1
                    shj = (cj + ej) >> 1
                    s = S[c, 3 * (ei + 1) + ej + 1, I]
                    wg = W[2 * cgi + cgj, :, row]
                    for a in range(cgi + 1):
                        for b in range(cgj + 1):
                            y = Y[c, 3 * (shi + a + 1) + shj + b + 1, I]
                            _axpy_shift(y, s, wg[2 * a + b], shj, m)
    for I in range(m):  # Sc = P^T Y: fine node [cf, I - a, J - b] has parent (I, J) in slot 2a+b
        for k in range(9):
            Sc[k, I] = 0.0
        for cf in range(4):
            for a in range((cf >> 1) + 1):
                row = _wrap(I - a, m)
                for b in range((cf & 1) + 1):
                    w = W[cf, 2 * a + b, row]
                    wv = w[1 - b :]
                    Jb = _wrap(-b, m)
                    for p in range(-1, 2 - a):
                        for q in range(-1, 2 - b):
                            y = Y[cf, 3 * (p + a + 1) + q + b + 1, row]
                            yv = y[1 - b :]
                            out = Sc[3 * (p + 1) + q + 1, I]
                            for J in range(1, m):
                                out[J] += wv[J - 1] * yv[J - 1]
                            out[0] += w[Jb] * y[Jb]


@_jit
def symmetrize(S):
    """Average every coupling of natural planes ``S`` (9, m, m) with its mirror."""
    m = S.shape[1]
    for k in range(4):
        di = k // 3 - 1
        dj = k % 3 - 1
        for i in range(m):
            ra = S[k, i]
            rb = S[8 - k, _wrap(i + di, m)]
            for j in range(m):
                j2 = _wrap(j + dj, m)
                v = 0.5 * (ra[j] + rb[j2])
                ra[j] = v
                rb[j2] = v


# -- cycle, quad layout ------------------------------------------------------------------------
@_jit
def _edge(Sc, dI, bI, tI, I, J, jl, jh, xa0, xa1, xb0, xb1, xc0, xc1, mode):
    """One node of :func:`_colour_sweep`, with explicit (wrapped) neighbour columns."""
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
def _colour_sweep(S, D, B, X, T, c, mode):
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
def _colour_sweep_mu(MU, E, D, B, X, T, c, mode):
    """:func:`_colour_sweep` for the Q1 operator of quad pixel values ``MU`` (4, m, m).

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
        _colour_sweep_mu(MU, E, MU, X, X, Y, c, 2)


@_jit
def apply_quad(S, X, Y):
    """``Y = A X`` in the quad layout."""
    for c in range(4):
        _colour_sweep(S, S[0], X, X, Y, c, 2)


@_jit
def _restrict(W, T, bc):
    """Natural ``bc`` (m, m) ``= P^T T`` for quad ``T`` whose colour 3 is zero.

    After a forward four-colour sweep the residual vanishes on colour 3 (updated last), so it
    is neither computed nor restricted.
    """
    m = T.shape[1]
    for I in range(m):
        Im = _wrap(I - 1, m)
        t0 = T[0, I]
        t1 = T[1, I]
        t2 = T[2, I]
        t2m = T[2, Im]
        w10 = W[1, 0, I]
        w11 = W[1, 1, I]
        w20 = W[2, 0, I]
        w22 = W[2, 2, Im]
        out = bc[I]
        for J in range(1, m):
            out[J] = (
                t0[J] + w10[J] * t1[J] + w11[J - 1] * t1[J - 1] + w20[J] * t2[J] + w22[J] * t2m[J]
            )
        J = m - 1
        out[0] = t0[0] + w10[0] * t1[0] + w11[J] * t1[J] + w20[0] * t2[0] + w22[0] * t2m[0]


@_jit
def _prolong_add(W, xc, X):
    """Quad ``X += P xc`` for natural ``xc`` (m, m)."""
    m = X.shape[1]
    for I in range(m):
        r0 = xc[I]
        r1 = xc[_wrap(I + 1, m)]
        r0p = r0[1:]
        r1p = r1[1:]
        x0 = X[0, I]
        x1 = X[1, I]
        x2 = X[2, I]
        x3 = X[3, I]
        w10 = W[1, 0, I]
        w11 = W[1, 1, I]
        w20 = W[2, 0, I]
        w22 = W[2, 2, I]
        w30 = W[3, 0, I]
        w31 = W[3, 1, I]
        w32 = W[3, 2, I]
        w33 = W[3, 3, I]
        for J in range(m - 1):
            x0[J] += r0[J]
            x1[J] += w10[J] * r0[J] + w11[J] * r0p[J]
            x2[J] += w20[J] * r0[J] + w22[J] * r1[J]
            x3[J] += w30[J] * r0[J] + w31[J] * r0p[J] + w32[J] * r1[J] + w33[J] * r1p[J]
        J = m - 1
        x0[J] += r0[J]
        x1[J] += w10[J] * r0[J] + w11[J] * r0[0]
        x2[J] += w20[J] * r0[J] + w22[J] * r1[J]
        x3[J] += w30[J] * r0[J] + w31[J] * r0[0] + w32[J] * r1[J] + w33[J] * r1[0]


@_jit
def _level(sizes, s_buf, d_buf, w_buf, v_off, lev):
    n = sizes[lev]
    m = n // 2
    N = n * n
    o = v_off[lev]
    S = s_buf[9 * o : 9 * o + 9 * N].reshape((4, 9, m, m))
    D = d_buf[o : o + N].reshape((4, m, m))
    W = w_buf[4 * o : 4 * o + 4 * N].reshape((4, 4, m, m))
    return S, D, W


@_jit
def _vec(buf, v_off, sizes, lev):
    m = sizes[lev] // 2
    o = v_off[lev]
    return buf[o : o + 4 * m * m].reshape((4, m, m))


@_jit
def _nat(buf, v_off, sizes, lev):
    n = sizes[lev]
    o = v_off[lev]
    return buf[o : o + n * n].reshape((n, n))


@_jit_sum
def _remove_mean(x):
    v = x.reshape(x.size)
    acc = 0.0
    for k in range(v.size):
        acc += v[k]
    mean = acc / v.size
    for k in range(v.size):
        v[k] -= mean


@_jit_sum
def _dot(x, y):
    a = x.reshape(x.size)
    b = y.reshape(y.size)
    acc = 0.0
    for k in range(a.size):
        acc += a[k] * b[k]
    return acc


@_jit
def _smooth(S, D, B, X, T, nu, down, MU, E, use_mu):
    """``nu`` four-colour Gauss-Seidel sweeps on one level, then (``down``) the residual.

    Down the V: colours 0, 1, 2, 3, then ``T = B - A X`` on colours 0-2 (colour 3, updated
    last, has zero residual); up the V: colours 3, 2, 1, 0 -- the adjoint sweep.  With
    ``use_mu`` the operator is the Q1 operator of the quad pixel values ``MU`` (level 0).
    """
    steps = 4 * nu + (3 if down else 0)
    for step in range(steps):
        if step < 4 * nu:
            c = step % 4 if down else 3 - step % 4
            mode = 0
        else:
            c = step - 4 * nu
            mode = 1
        if use_mu:
            _colour_sweep_mu(MU, E, D, B, X, T, c, mode)
        else:
            _colour_sweep(S, D, B, X, T, c, mode)


@_jit
def vcycle(R, Z, sizes, s_buf, d_buf, w_buf, v_off, binv, MU, E, use_mu, xb, bb, tb, nb_, nu):
    """``Z = M R`` (quad, level 0): one V(nu, nu) cycle from a zero guess, zero-mean in and out.

    Forward four-colour Gauss-Seidel (colours 0, 1, 2, 3) before the coarse-grid correction,
    backward (3, 2, 1, 0) after, ``R = P^T``, and the coarsest level solved exactly on the
    zero-mean subspace with the symmetric ``binv``, so that ``M`` is symmetric positive
    definite on zero-mean vectors.  ``xb``, ``bb``, ``tb`` hold quad vectors per level and
    ``nb_`` natural ones (same offsets ``v_off``).  With ``use_mu`` the level-0 operator is
    the Q1 operator of the quad pixel values ``MU`` with element matrix ``E`` (formed on the
    fly).  One call site per kernel keeps the compiled code small.
    """
    L = sizes.size
    B0 = _vec(bb, v_off, sizes, 0)
    B0[:] = R
    _remove_mean(B0)
    for phase in range(2 * (L - 1)):
        down = phase < L - 1
        lev = phase if down else 2 * (L - 1) - 1 - phase
        S, D, W = _level(sizes, s_buf, d_buf, w_buf, v_off, lev)
        B = _vec(bb, v_off, sizes, lev)
        X = _vec(xb, v_off, sizes, lev)
        T = _vec(tb, v_off, sizes, lev)
        coarse_nat = _nat(nb_, v_off, sizes, lev + 1)
        if down:
            X[:] = 0.0
        else:
            if lev + 1 < L - 1:
                from_quad(_vec(xb, v_off, sizes, lev + 1), coarse_nat)
            else:
                coarse_nat = _nat(xb, v_off, sizes, lev + 1)
            _prolong_add(W, coarse_nat, X)
        _smooth(S, D, B, X, T, nu, down, MU, E, use_mu and lev == 0)
        if down:
            _restrict(W, T, coarse_nat)
            if lev + 1 < L - 1:
                to_quad(coarse_nat, _vec(bb, v_off, sizes, lev + 1))
            else:  # the coarsest level: exact solve on the zero-mean subspace
                Nc = sizes[L - 1] * sizes[L - 1]
                bc = coarse_nat.reshape(Nc)
                xc = _nat(xb, v_off, sizes, L - 1).reshape(Nc)
                _remove_mean(bc)
                for p in range(Nc):
                    xc[p] = _dot(binv[p], bc)
    Z[:] = _vec(xb, v_off, sizes, 0)
    _remove_mean(Z)


@_jit
def pcg(b, x, threshold, max_it, sizes, s_buf, d_buf, w_buf, v_off, binv, MU, E, use_mu, nu):
    """Multigrid-preconditioned CG for ``A x = b`` (quad, level 0), from ``x = 0``.

    Stops when the unpreconditioned residual norm is ``<= threshold``, checked before the first
    iteration and after each (like PETSc's ``KSPCG`` with ``KSP_NORM_UNPRECONDITIONED``).
    Returns ``(iterations, residual_norm, status)``; status 1 converged, 0 iteration limit, -1
    breakdown (non-positive curvature or non-finite numbers).
    """
    S, D, W = _level(sizes, s_buf, d_buf, w_buf, v_off, 0)
    total = v_off[-1]
    xb = np.zeros(total)
    bb = np.zeros(total)
    tb = np.zeros(total)
    nb_ = np.zeros(total)
    r = b.copy()
    _remove_mean(r)
    x[:] = 0.0
    z = np.empty_like(r)
    q = np.empty_like(r)
    p = np.zeros_like(r)
    N = r.size
    rf = r.reshape(N)
    xf = x.reshape(N)
    zf = z.reshape(N)
    qf = q.reshape(N)
    pf = p.reshape(N)
    rz = 1.0
    it = 0
    while True:
        rnorm = np.sqrt(_dot(r, r))
        if not np.isfinite(rnorm):
            return it, rnorm, -1
        if rnorm <= threshold:
            return it, rnorm, 1
        if it == max_it:
            return it, rnorm, 0
        vcycle(r, z, sizes, s_buf, d_buf, w_buf, v_off, binv, MU, E, use_mu, xb, bb, tb, nb_, nu)
        rz_new = _dot(r, z)
        beta = rz_new / rz if it > 0 else 0.0
        rz = rz_new
        for k in range(N):
            pf[k] = zf[k] + beta * pf[k]
        if use_mu:
            apply_mu(MU, E, p, q)
        else:
            apply_quad(S, p, q)
        pq = _dot(p, q)
        it += 1
        if not (pq > 0.0) or not np.isfinite(pq):
            return it, rnorm, -1
        alpha = rz / pq
        for k in range(N):
            xf[k] += alpha * pf[k]
            rf[k] -= alpha * qf[k]
