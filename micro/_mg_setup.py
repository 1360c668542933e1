"""Compiled set-up kernels of the periodic 2D black-box multigrid (private to
:mod:`micro.multigrid`): layout changes, the Q1 stencil from pixel values, Dendy's prolongation
and the Galerkin coarse operators in stencil form.

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
periodic wrap is done outside), so that LLVM vectorises them.  Kernels are single-threaded and
cached on disk (keyed on the sources of all ``_mg_*`` modules, :mod:`micro._jit_cache`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from micro._jit_cache import group_njit

__all__ = [
    "aos_to_quad",
    "coordinate_loads",
    "from_quad",
    "galerkin",
    "planes_to_quad",
    "prolongation_weights",
    "q1_stencil",
    "symmetrize",
    "to_quad",
]

#: The source files of the multigrid kernels, which call each other: their on-disk cache is
#: keyed on all of them (:mod:`micro._jit_cache`), so that an edit of one never leaves a stale
#: caller in the cache.
MG_FILES = tuple(
    Path(__file__).with_name(f"_mg_{name}.py") for name in ("setup", "smooth", "cycle", "deflation")
)

# the compile options of every multigrid kernel (the other _mg_* modules import this)
_jit = group_njit(
    MG_FILES, nogil=True, boundscheck=False, error_model="numpy", fastmath={"contract"}
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
