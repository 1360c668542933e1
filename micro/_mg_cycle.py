"""Compiled cycle of the periodic 2D black-box multigrid (private to :mod:`micro.multigrid`):
transfers, the V-cycle and the (deflated) multigrid-preconditioned CG.

Layouts and conventions are those of :mod:`micro._mg_setup`.  A hierarchy lives in flat
buffers with per-level offsets, so that a whole CG solve with its V-cycles is one compiled
call.  Kernels are single-threaded and cached on disk (see :mod:`micro._jit_cache`).
"""

from __future__ import annotations

import numpy as np

from micro._jit_cache import group_njit
from micro._mg_deflation import az_subtract, azt_dot, small_matvec, z_add, zt_dot
from micro._mg_setup import MG_FILES, _jit, _wrap, from_quad, to_quad
from micro._mg_smooth import apply_mu, apply_quad, colour_sweep, colour_sweep_mu

__all__ = ["pcg", "vcycle"]

# reductions: reassociation lets LLVM vectorise the sums (deterministic for a given build)
_jit_sum = group_njit(
    MG_FILES, nogil=True, boundscheck=False, error_model="numpy", fastmath={"contract", "reassoc"}
)


# -- cycle, quad layout ------------------------------------------------------------------------
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
            colour_sweep_mu(MU, E, D, B, X, T, c, mode)
        else:
            colour_sweep(S, D, B, X, T, c, mode)


@_jit
def vcycle(R, Z, sizes, s_buf, d_buf, w_buf, v_off, binv, MU, E, use_mu, xb, bb, tb, nb_, nu,
           singular):  # fmt: skip
    """``Z = M R`` (quad, level 0): one V(nu, nu) cycle from a zero guess, zero-mean in and out.

    Forward four-colour Gauss-Seidel (colours 0, 1, 2, 3) before the coarse-grid correction,
    backward (3, 2, 1, 0) after, ``R = P^T``, and the coarsest level solved exactly on the
    zero-mean subspace with the symmetric ``binv``, so that ``M`` is symmetric positive
    definite on zero-mean vectors.  ``xb``, ``bb``, ``tb`` hold quad vectors per level and
    ``nb_`` natural ones (same offsets ``v_off``).  With ``use_mu`` the level-0 operator is
    the Q1 operator of the quad pixel values ``MU`` with element matrix ``E`` (formed on the
    fly).  One call site per kernel keeps the compiled code small.  With ``singular`` False
    (a non-singular operator, ``binv`` its coarsest inverse) no mean is removed anywhere.
    """
    L = sizes.size
    B0 = _vec(bb, v_off, sizes, 0)
    B0[:] = R
    if singular:
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
                if singular:
                    _remove_mean(bc)
                for p in range(Nc):
                    xc[p] = _dot(binv[p], bc)
    Z[:] = _vec(xb, v_off, sizes, 0)
    if singular:
        _remove_mean(Z)


@_jit
def pcg(b, x, threshold, max_it, sizes, s_buf, d_buf, w_buf, v_off, binv, MU, E, use_mu, nu,
        Lz, z_node, z_label, z_value, Einv, singular):  # fmt: skip
    """Multigrid-preconditioned CG for ``A x = b`` (quad, level 0), from ``x = 0``.

    Stops when the unpreconditioned residual norm is ``<= threshold``, checked before the first
    iteration and after each (like PETSc's ``KSPCG`` with ``KSP_NORM_UNPRECONDITIONED``).
    With ``Einv`` larger than 1 x 1 the iteration is deflated by the cluster indicators ``Z``
    (node labels ``Lz``, the entries of ``A Z`` in ``z_node``/``z_label``/``z_value``, ``Einv`` the
    inverse of ``Z^T A Z`` bordered by a zero row and column; see :mod:`micro._mg_deflation`);
    the deflated residual is the true one.  Returns ``(iterations, residual_norm, status)``;
    status 1 converged, 0 iteration limit, -1 breakdown (non-positive curvature or non-finite
    numbers).  ``x`` gets the zero-mean solution (with ``singular``; otherwise the solution
    of a non-singular operator, nothing projected).
    """
    S, D, W = _level(sizes, s_buf, d_buf, w_buf, v_off, 0)
    total = v_off[-1]
    xb = np.zeros(total)
    bb = np.zeros(total)
    tb = np.zeros(total)
    nb_ = np.zeros(total)
    r = b.copy()
    if singular:
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
    deflate = Einv.shape[0] > 1
    ztb = np.zeros(Einv.shape[0])
    t = np.zeros(Einv.shape[0])
    w = np.zeros(Einv.shape[0])
    if deflate:  # r = P b
        zt_dot(Lz, rf, ztb)
        small_matvec(Einv, ztb, w)
        az_subtract(z_node, z_label, z_value, w, rf)
    rz = 1.0
    it = 0
    status = 0
    while True:
        rnorm = np.sqrt(_dot(r, r))
        if not np.isfinite(rnorm):
            status = -1
            break
        if rnorm <= threshold:
            status = 1
            break
        if it == max_it:
            break
        vcycle(r, z, sizes, s_buf, d_buf, w_buf, v_off, binv, MU, E, use_mu, xb, bb, tb, nb_, nu,
               singular)  # fmt: skip
        rz_new = _dot(r, z)
        beta = rz_new / rz if it > 0 else 0.0
        rz = rz_new
        for k in range(N):
            pf[k] = zf[k] + beta * pf[k]
        if use_mu:
            apply_mu(MU, E, p, q)
        else:
            apply_quad(S, p, q)
        if deflate:  # q = P A p, with Z^T A p = (A Z)^T p
            azt_dot(z_node, z_label, z_value, pf, t)
            small_matvec(Einv, t, w)
            az_subtract(z_node, z_label, z_value, w, qf)
        pq = _dot(p, q)
        it += 1
        if not (pq > 0.0) or not np.isfinite(pq):
            status = -1
            break
        alpha = rz / pq
        for k in range(N):
            xf[k] += alpha * pf[k]
            rf[k] -= alpha * qf[k]
    if deflate:  # x = x~ + Z E^-1 (Z^T b - (A Z)^T x~)
        azt_dot(z_node, z_label, z_value, xf, t)
        for k in range(t.size):
            t[k] = ztb[k] - t[k]
        small_matvec(Einv, t, w)
        z_add(Lz, w, xf)
    if singular:
        _remove_mean(x)
    return it, rnorm, status
