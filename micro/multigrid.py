"""Geometric black-box multigrid for the periodic 2D nodal Q1 (9-point) operator.

The hierarchy is Dendy's black-box multigrid (BoxMG) on a periodic ``n x n`` node grid:

* standard coarsening (coarse nodes are the fine nodes ``(2I, 2J)``), while the side is even
  and the level has more than ``coarse_nodes`` nodes;
* operator-dependent prolongation from the 9-point stencil (weights collapse the stencil onto
  the interpolation direction, so they follow jumps of the coefficient), restriction
  ``R = P^T`` and Galerkin coarse operators ``P^T A P``, all computed in stencil form;
* four-colour Gauss-Seidel smoothing, forward before and backward after the coarse-grid
  correction, so that the V-cycle is a symmetric preconditioner;
* the constant null space of the periodic operator: every prolongation reproduces constants,
  vectors are kept zero-mean, and the coarsest level is solved exactly on the zero-mean
  subspace (dense pseudo-inverse).

:class:`PeriodicMultigrid` uses the cycle to precondition a CG that stops on the
unpreconditioned residual norm, like PETSc's ``KSPCG`` with
``KSP_NORM_UNPRECONDITIONED``.  The hot loops are compiled with numba
(:mod:`micro._mg_kernels`, single thread, cached on disk).

Stencils follow :mod:`micro.periodic`: shape ``(n, n, 9)``, entry ``k = 3 (di + 1) + (dj + 1)``
of node ``(i, j)`` couples it with node ``((i + di) % n, (j + dj) % n)``.
"""

from __future__ import annotations

import logging

import numpy as np

from magnetohom.errors import InputError
from micro import _mg_kernels as _k

__all__ = ["MGSolve", "PeriodicMultigrid", "element_matrix", "multigrid_levels"]

log = logging.getLogger(__name__)

#: Largest coarsest level (nodes) solved with a dense pseudo-inverse.
MAX_DENSE = 1024


def multigrid_levels(n: int, *, coarse_nodes: int = 64) -> tuple[int, ...] | None:
    """Grid sides of the hierarchy for an ``n x n`` periodic grid, finest first.

    Halves the side while it is even, the coarse side is at least 3, and the level has more
    than ``coarse_nodes`` nodes (at least once).  Returns None where no hierarchy exists: a
    grid that cannot be halved once (``n`` odd or below 6), or one whose coarsest level would
    have more than :data:`MAX_DENSE` nodes (e.g. ``n = 2 x 101``).
    """
    n = int(n)
    sizes = [n]
    while (
        sizes[-1] % 2 == 0
        and sizes[-1] // 2 >= 3
        and (sizes[-1] ** 2 > coarse_nodes or len(sizes) == 1)
    ):
        sizes.append(sizes[-1] // 2)
    if len(sizes) == 1 or sizes[-1] ** 2 > MAX_DENSE:
        return None
    return tuple(sizes)


def element_matrix(stencil: list[tuple[int, int, float]], *, scale: float = 1.0) -> np.ndarray:
    """The 2D element stencil ``(code, corner, value)`` of :mod:`micro.periodic` as a matrix.

    Returns
    -------
    ndarray, shape (9, 4), float64
        ``M[code, corner]``: entry ``code`` of a node's stencil is ``sum_c M[code, c] mu_c`` over
        the cells ``c`` around the node, numbered like :func:`micro.periodic.stencil_values`'s
        corners (0: pixel offset (-1, -1), 1: (-1, 0), 2: (0, -1), 3: (0, 0)).
    """
    M = np.zeros((9, 4))
    for code, corner, value in stencil:
        M[code, corner] += scale * value
    return M


class MGSolve:
    """Outcome of :meth:`PeriodicMultigrid.solve`.

    Attributes
    ----------
    x : ndarray, shape (n, n), float64
        Zero-mean solution.
    iterations : int
    residual : float
        Final unpreconditioned residual norm.
    status : int
        1 converged, 0 iteration limit reached, -1 breakdown.
    """

    __slots__ = ("iterations", "residual", "status", "x")

    def __init__(self, x: np.ndarray, iterations: int, residual: float, status: int) -> None:
        self.x, self.iterations, self.residual, self.status = x, iterations, residual, status

    @property
    def converged(self) -> bool:
        return self.status == 1


class PeriodicMultigrid:
    """BoxMG hierarchy and multigrid-preconditioned CG for one periodic grid size.

    Parameters
    ----------
    n : int
        Nodes per side of the periodic grid (``n^2`` unknowns); see :func:`multigrid_levels`.
    nu : int
        Gauss-Seidel sweeps before and after the coarse-grid correction.
    coarse_nodes : int
        Coarsening stops at or below this many nodes.

    Notes
    -----
    Call :meth:`setup` (or :meth:`setup_from_mu`) once per operator, then :meth:`solve` for
    any number of right-hand sides.  Buffers are reused between set-ups, so one instance serves
    a stream of samples; it is not thread-safe.

    Vectors are ``(n, n)`` arrays (node ``(i, j)`` at ``[i, j]``) or, without the cost of a
    reordering, ``(4, n/2, n/2)`` arrays in the colour-blocked "quad" layout of the kernels
    (node ``(2I + ci, 2J + cj)`` at ``[2 ci + cj, I, J]``); every method returns the layout it
    was given.
    """

    def __init__(self, n: int, *, nu: int = 1, coarse_nodes: int = 64) -> None:
        sizes = multigrid_levels(n, coarse_nodes=coarse_nodes)
        if sizes is None:
            raise InputError(
                f"no periodic multigrid hierarchy for a {n} x {n} grid (it must halve at least "
                f"once and down to at most {MAX_DENSE} nodes)"
            )
        if int(nu) < 1:
            raise InputError(f"nu must be >= 1: got {nu}")
        self.n, self.nu = int(n), int(nu)
        self.sizes = np.array(sizes, dtype=np.int64)
        self._v_off = np.concatenate([[0], np.cumsum(self.sizes**2)]).astype(np.int64)
        total = int(self._v_off[-1])
        self._s_buf = np.zeros(9 * total)  # quad stencils of all but the coarsest level
        self._sn_buf = np.zeros(9 * total)  # natural stencil planes of the coarse levels
        self._w_buf = np.zeros(4 * total)  # quad prolongation weights
        self._d_buf = np.zeros(total)  # quad inverse diagonals
        self._y_buf = np.zeros(9 * self.n**2)  # work space of the Galerkin product
        self._mu = np.zeros((4, self.n // 2, self.n // 2))  # quad pixel values (mu mode)
        self._element = np.zeros((9, 4))
        self._use_mu = False
        nc = int(self.sizes[-1]) ** 2
        self._binv = np.zeros((nc, nc))
        self._ready = False
        log.debug("periodic multigrid %d^2: levels %s", n, sizes)

    @property
    def levels(self) -> tuple[int, ...]:
        """Grid sides, finest first."""
        return tuple(int(s) for s in self.sizes)

    # -- buffers ----------------------------------------------------------------------------------
    def _span(self, buf: np.ndarray, width: int, level: int) -> np.ndarray:
        lo, hi = int(self._v_off[level]), int(self._v_off[level + 1])
        return buf[width * lo : width * hi]

    def _quad_stencil(self, level: int) -> np.ndarray:
        m = int(self.sizes[level]) // 2
        return self._span(self._s_buf, 9, level).reshape(4, 9, m, m)

    def _quad_weights(self, level: int) -> np.ndarray:
        m = int(self.sizes[level]) // 2
        return self._span(self._w_buf, 4, level).reshape(4, 4, m, m)

    def _natural_planes(self, level: int) -> np.ndarray:
        m = int(self.sizes[level])
        return self._span(self._sn_buf, 9, level).reshape(9, m, m)

    # -- set-up -----------------------------------------------------------------------------------
    def setup_from_mu(self, mu: np.ndarray, element: np.ndarray) -> None:
        """Set up for the Q1 operator of the pixel field ``mu`` (n, n), float64 > 0.

        ``element`` is :func:`element_matrix` of the element stencil, shape (9, 4).
        """
        mu = np.ascontiguousarray(mu, dtype=np.float64)
        if mu.shape != (self.n, self.n):
            raise InputError(f"mu has shape {mu.shape}, expected {(self.n, self.n)}")
        element = np.ascontiguousarray(element, dtype=np.float64)
        if element.shape != (9, 4):
            raise InputError(f"element matrix has shape {element.shape}, expected (9, 4)")
        _k.to_quad(mu, self._mu)
        _k.q1_stencil(self._mu, element, self._quad_stencil(0))
        self._element[:] = element
        self._build()
        # level 0 from the pixel values on the fly where the element has the Q1 couplings
        self._use_mu = _k.q1_sparsity_ok(element)

    def setup(self, stencil: np.ndarray) -> None:
        """Set up for the level-0 stencil ``stencil`` (n, n, 9), float64 (copied).

        It must be symmetric with zero row sums and a positive centre: a periodic
        Laplacian-type operator whose null space is the constants.
        """
        stencil = np.ascontiguousarray(stencil, dtype=np.float64)
        if stencil.shape != (self.n, self.n, 9):
            raise InputError(f"stencil has shape {stencil.shape}, expected {(self.n, self.n, 9)}")
        _k.aos_to_quad(stencil, self._quad_stencil(0))
        self._build()
        self._use_mu = False

    def _build(self) -> None:
        self._ready = False
        self._use_mu = False
        if not self._quad_stencil(0)[:, 4].min() > 0:
            raise InputError("the stencil centre must be positive")
        last = len(self.sizes) - 1
        for lev in range(last):
            S, W = self._quad_stencil(lev), self._quad_weights(lev)
            m = int(self.sizes[lev]) // 2
            _k.prolongation_weights(S, W)
            coarse = self._natural_planes(lev + 1)
            _k.galerkin(S, W, self._y_buf[: 36 * m * m].reshape(4, 9, m, m), coarse)
            _k.symmetrize(coarse)
            if lev + 1 < last:
                _k.planes_to_quad(coarse, self._quad_stencil(lev + 1))
            np.divide(1.0, S[:, 4], out=self._span(self._d_buf, 1, lev).reshape(4, m, m))
        self._binv[:] = _dense_pseudo_inverse(self._natural_planes(last))
        self._ready = True

    # -- inspection -------------------------------------------------------------------------------
    def stencil(self, level: int = 0) -> np.ndarray:
        """A copy of the operator of ``level`` as a natural stencil, shape (n_l, n_l, 9)."""
        self._check_ready()
        m = int(self.sizes[level])
        if level == 0:
            out = np.empty((9, m, m))
            for k in range(9):
                _k.from_quad(np.ascontiguousarray(self._quad_stencil(0)[:, k]), out[k])
        else:
            out = self._natural_planes(level)
        return np.ascontiguousarray(np.moveaxis(out, 0, -1))

    def prolongation(self, level: int):
        """The prolongation from ``level + 1`` to ``level`` as scipy CSR, natural node order.

        Shape ``(n_l^2, n_(l+1)^2)``; row ``i n_l + j`` is fine node ``(i, j)``.
        """
        import scipy.sparse as sp

        self._check_ready()
        n = int(self.sizes[level])
        m = n // 2
        W = np.empty((4, n, n))
        for s in range(4):
            _k.from_quad(np.ascontiguousarray(self._quad_weights(level)[:, s]), W[s])
        i, j = np.indices((n, n))
        rows, cols, vals = [], [], []
        for a in range(2):
            for b in range(2):
                keep = W[2 * a + b] != 0
                rows.append((i * n + j)[keep])
                cols.append((((i // 2 + a) % m) * m + (j // 2 + b) % m)[keep])
                vals.append(W[2 * a + b][keep])
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n * n, m * m),
        )

    # -- vectors ----------------------------------------------------------------------------------
    def _check_ready(self) -> None:
        if not self._ready:
            raise RuntimeError("PeriodicMultigrid: call setup() first")

    def _in(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        """``x`` in the quad layout, and whether it came in the natural one."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        m = self.n // 2
        if x.shape == (4, m, m):
            return x, False
        if x.shape != (self.n, self.n):
            raise InputError(f"vector has shape {x.shape}, expected {(self.n, self.n)}")
        X = np.empty((4, m, m))
        _k.to_quad(x, X)
        return X, True

    def _out(self, X: np.ndarray, natural: bool) -> np.ndarray:
        if not natural:
            return X
        x = np.empty((self.n, self.n))
        _k.from_quad(X, x)
        return x

    def _args(self) -> tuple:
        self._check_ready()
        return (
            self.sizes,
            self._s_buf,
            self._d_buf,
            self._w_buf,
            self._v_off,
            self._binv,
            self._mu,
            self._element,
            self._use_mu,
        )

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """``A x`` for the level-0 operator."""
        self._check_ready()
        X, natural = self._in(x)
        Y = np.empty_like(X)
        if self._use_mu:
            _k.apply_mu(self._mu, self._element, X, Y)
        else:
            _k.apply_quad(self._quad_stencil(0), X, Y)
        return self._out(Y, natural)

    def precondition(self, r: np.ndarray) -> np.ndarray:
        """One V-cycle ``z = M r`` (the zero-mean part of ``r`` in, zero-mean ``z`` out)."""
        args = self._args()
        R, natural = self._in(r)
        Z = np.empty_like(R)
        work = [np.zeros(int(self._v_off[-1])) for _ in range(4)]
        _k.vcycle(R, Z, *args, *work, self.nu)
        return self._out(Z, natural)

    def coordinate_loads(self) -> tuple[np.ndarray, np.ndarray]:
        """Right-hand sides ``-A x_k`` of the coordinates ``x_k`` (unit cell, spacing ``1/n``).

        Returns
        -------
        loads : ndarray, shape (2, 4, n/2, n/2), float64
            Quad layout; ``loads[k]`` is exact for the Q1 interpolant of ``x_k`` through the
            periodic offsets (the same as :func:`micro.periodic.offset_weights` row sums).
        sizes : ndarray, shape (2,), float64
            2-norms the loads would have without cancellation (a scale for tolerances).
        """
        self._check_ready()
        m = self.n // 2
        loads = np.empty((2, 4, m, m))
        norms = np.empty(2)
        _k.coordinate_loads(self._quad_stencil(0), 1.0 / self.n, loads, norms)
        return loads, norms

    def solve(self, b: np.ndarray, *, threshold: float, max_it: int) -> MGSolve:
        """Multigrid-preconditioned CG for ``A x = b``, from a zero guess.

        Parameters
        ----------
        b : ndarray, shape (n, n) or (4, n/2, n/2), float64
            Right-hand side; its mean (the null-space component) is removed.
        threshold : float
            Stop when the unpreconditioned residual norm is at most this.
        max_it : int
            Iteration limit.
        """
        args = self._args()
        B, natural = self._in(b)
        X = np.empty_like(B)
        its, res, status = _k.pcg(B, X, float(threshold), int(max_it), *args, self.nu)
        return MGSolve(self._out(X, natural), int(its), float(res), int(status))


def _dense_pseudo_inverse(S: np.ndarray) -> np.ndarray:
    """Symmetric ``B^-1`` with ``B = A + c 11^T``: on zero-mean vectors, the pseudo-inverse of A.

    ``A`` is the dense matrix of the periodic stencil planes ``S`` (9, m, m) in natural order,
    symmetric positive semi-definite with the constants as null space, so ``B`` is positive
    definite, keeps the constants as an eigenvector and maps zero-mean vectors onto zero-mean
    vectors.
    """
    m = S.shape[1]
    N = m * m
    idx = np.arange(N).reshape(m, m)
    A = np.zeros((N, N))
    for k in range(9):
        di, dj = k // 3 - 1, k % 3 - 1
        cols = np.roll(idx, (-di, -dj), axis=(0, 1)).ravel()
        np.add.at(A, (idx.ravel(), cols), S[k].ravel())
    A = 0.5 * (A + A.T)
    B = A + np.trace(A) / N**2
    L = np.linalg.cholesky(B)
    Linv = np.linalg.solve(L, np.eye(N))
    return Linv.T @ Linv
