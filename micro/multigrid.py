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
unpreconditioned residual norm, like PETSc's ``KSPCG`` with ``KSP_NORM_UNPRECONDITIONED``.
For high-contrast pixel fields the CG is in addition deflated by the indicators of the
clusters of the more permeable phase (:mod:`micro._mg_deflation`): their near-rigid motions
across thin gaps are what a geometric hierarchy captures worst.  On the finest level the
operator is applied matrix-free from the pixel values.  The hot loops are compiled with numba
(:mod:`micro._mg_setup`, :mod:`micro._mg_smooth`, :mod:`micro._mg_cycle`,
:mod:`micro._mg_deflation`; single thread, cached on disk).

Stencils follow :mod:`micro.periodic`: shape ``(n, n, 9)``, entry ``k = 3 (di + 1) + (dj + 1)``
of node ``(i, j)`` couples it with node ``((i + di) % n, (j + dj) % n)``.
"""

from __future__ import annotations

import logging

import numpy as np

from magnetohom.errors import InputError, SolverError
from micro import _mg_cycle as _c
from micro import _mg_deflation as _d
from micro import _mg_setup as _s
from micro import _mg_smooth as _sm

__all__ = ["MGSolve", "PeriodicMultigrid", "element_matrix", "multigrid_levels"]

log = logging.getLogger(__name__)

#: Largest coarsest level (nodes) solved with a dense pseudo-inverse.
MAX_DENSE = 1024
#: Deflation (see :class:`PeriodicMultigrid`) applies from this permeability contrast on ...
DEFLATION_CONTRAST = 10.0
#: ... with at most this many clusters (the largest).
MAX_CLUSTERS = 256


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
    x : ndarray, shape (n, n) or (4, n/2, n/2), float64
        Zero-mean solution, in the layout of the right-hand side.
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
    deflation : bool
        With :meth:`setup_from_mu` and a contrast ``max(mu) / min(mu) >=``
        :data:`DEFLATION_CONTRAST`, deflate CG by the indicators of the (periodic,
        8-connected) clusters of pixels with ``mu > sqrt(max(mu) min(mu))``, at most
        :data:`MAX_CLUSTERS` of them (see :mod:`micro._mg_deflation`): the near-rigid motions of
        highly permeable inclusions separated by thin gaps, which the geometric coarse grids
        capture worst, no longer slow CG down.
    singular : bool
        The operator is the periodic one, with the constants as null space (default).  False
        for a non-singular operator passed to :meth:`setup` (e.g. with Dirichlet rows, see
        :mod:`micro.open_multigrid`): no mean is removed and the coarsest level is inverted.

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

    def __init__(
        self,
        n: int,
        *,
        nu: int = 1,
        coarse_nodes: int = 64,
        deflation: bool = True,
        singular: bool = True,
    ) -> None:
        sizes = multigrid_levels(n, coarse_nodes=coarse_nodes)
        if sizes is None:
            raise InputError(
                f"no periodic multigrid hierarchy for a {n} x {n} grid (it must halve at least "
                f"once and down to at most {MAX_DENSE} nodes)"
            )
        if int(nu) < 1:
            raise InputError(f"nu must be >= 1: got {nu}")
        self.n, self.nu, self.deflation = int(n), int(nu), bool(deflation)
        self.singular = bool(singular)
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
        _s.to_quad(mu, self._mu)
        _s.q1_stencil(self._mu, element, self._quad_stencil(0))
        self._element[:] = element
        self._build()
        # level 0 from the pixel values on the fly where the element has the Q1 couplings
        self._use_mu = _sm.q1_sparsity_ok(element)
        lo, hi = float(mu.min()), float(mu.max())
        if self.deflation and hi >= DEFLATION_CONTRAST * lo:
            self._build_deflation(mu > np.sqrt(lo * hi))

    def setup(self, stencil: np.ndarray) -> None:
        """Set up for the level-0 stencil ``stencil`` (n, n, 9), float64 (copied).

        It must be symmetric with zero row sums and a positive centre: a periodic
        Laplacian-type operator whose null space is the constants (with ``singular=False``:
        symmetric positive definite).
        """
        stencil = np.ascontiguousarray(stencil, dtype=np.float64)
        if stencil.shape != (self.n, self.n, 9):
            raise InputError(f"stencil has shape {stencil.shape}, expected {(self.n, self.n, 9)}")
        _s.aos_to_quad(stencil, self._quad_stencil(0))
        self._build()
        self._use_mu = False

    def deflate(self, mask: np.ndarray) -> None:
        """After :meth:`setup`: deflate CG by the clusters of the pixels in ``mask`` (n, n) bool.

        As :meth:`setup_from_mu` does at high contrast (see the class docstring), e.g. for the
        tangent of a nonlinear cell problem with ``mask`` its highly permeable pixels; replaces
        any earlier deflation of this set-up.
        """
        self._check_ready()
        mask = np.ascontiguousarray(mask, dtype=bool)
        if mask.shape != (self.n, self.n):
            raise InputError(f"mask has shape {mask.shape}, expected {(self.n, self.n)}")
        self._no_deflation()
        if self.deflation and mask.any() and not mask.all():
            self._build_deflation(mask)

    def _no_deflation(self) -> None:
        self._z_labels = np.zeros((4, self.n // 2, self.n // 2), dtype=np.int64)
        self._z_node = np.zeros(0, dtype=np.int64)
        self._z_label = np.zeros(0, dtype=np.int64)
        self._z_value = np.zeros(0)
        self._einv = np.zeros((1, 1))

    @property
    def clusters(self) -> int:
        """Number of cluster indicators the current set-up deflates (0: none)."""
        return self._einv.shape[0] - 1

    def _build_deflation(self, mask: np.ndarray) -> None:
        cells, k = _d.cluster_labels(np.ascontiguousarray(mask), MAX_CLUSTERS)
        L = self._z_labels
        _d.node_labels(cells, L)
        if k > 0 and L.min() > 0:  # the indicators span the constants: drop the smallest
            L[L == k] = 0
            k -= 1
        if k == 0:
            return
        node, label, value = _d.az_entries(L, self._quad_stencil(0))
        E = _d.deflation_matrix(L, node, label, value, k)[1:, 1:]
        einv = _spd_inverse(0.5 * (E + E.T))
        if einv is None:
            log.warning("deflation skipped: Z^T A Z is not positive definite (%d clusters)", k)
            return
        self._einv = np.zeros((k + 1, k + 1))
        self._einv[1:, 1:] = einv
        self._z_node, self._z_label, self._z_value = node, label, value

    def _build(self) -> None:
        self._ready = False
        self._use_mu = False
        self._no_deflation()
        if not self._quad_stencil(0)[:, 4].min() > 0:
            raise InputError("the stencil centre must be positive")
        last = len(self.sizes) - 1
        for lev in range(last):
            S, W = self._quad_stencil(lev), self._quad_weights(lev)
            m = int(self.sizes[lev]) // 2
            _s.prolongation_weights(S, W)
            coarse = self._natural_planes(lev + 1)
            _s.galerkin(S, W, self._y_buf[: 36 * m * m].reshape(4, 9, m, m), coarse)
            _s.symmetrize(coarse)
            if lev + 1 < last:
                _s.planes_to_quad(coarse, self._quad_stencil(lev + 1))
            np.divide(1.0, S[:, 4], out=self._span(self._d_buf, 1, lev).reshape(4, m, m))
        self._binv[:] = _dense_pseudo_inverse(self._natural_planes(last), singular=self.singular)
        self._ready = True

    # -- inspection -------------------------------------------------------------------------------
    def stencil(self, level: int = 0) -> np.ndarray:
        """A copy of the operator of ``level`` as a natural stencil, shape (n_l, n_l, 9)."""
        self._check_ready()
        m = int(self.sizes[level])
        if level == 0:
            out = np.empty((9, m, m))
            for k in range(9):
                _s.from_quad(np.ascontiguousarray(self._quad_stencil(0)[:, k]), out[k])
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
            _s.from_quad(np.ascontiguousarray(self._quad_weights(level)[:, s]), W[s])
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
        _s.to_quad(x, X)
        return X, True

    def _out(self, X: np.ndarray, natural: bool) -> np.ndarray:
        if not natural:
            return X
        x = np.empty((self.n, self.n))
        _s.from_quad(X, x)
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
            _sm.apply_mu(self._mu, self._element, X, Y)
        else:
            _sm.apply_quad(self._quad_stencil(0), X, Y)
        return self._out(Y, natural)

    def precondition(self, r: np.ndarray) -> np.ndarray:
        """One V-cycle ``z = M r`` (the zero-mean part of ``r`` in, zero-mean ``z`` out)."""
        args = self._args()
        R, natural = self._in(r)
        Z = np.empty_like(R)
        work = [np.zeros(int(self._v_off[-1])) for _ in range(4)]
        _c.vcycle(R, Z, *args, *work, self.nu, self.singular)
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
        _s.coordinate_loads(self._quad_stencil(0), 1.0 / self.n, loads, norms)
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
        its, res, status = _c.pcg(
            B,
            X,
            float(threshold),
            int(max_it),
            *args,
            self.nu,
            self._z_labels,
            self._z_node,
            self._z_label,
            self._z_value,
            self._einv,
            self.singular,
        )
        return MGSolve(self._out(X, natural), int(its), float(res), int(status))

    def solve_cell_problems(
        self, *, rtol: float, max_it: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The two load cases of the homogenization cell problem, ``A phi_k = -A x_k``.

        CG stops when the residual norm is at most ``rtol ||b||`` (``b`` with its mean
        removed) or, for a load that vanishes up to round-off (laminates), ``1e-3 rtol`` times
        the size it would have without cancellation -- PETSc's ``rtol``/``atol`` test.

        Returns
        -------
        loads, phi, images : ndarray, shape (2, 4, n/2, n/2), float64
            Right-hand sides ``-A x_k``, zero-mean solutions ``phi_k`` and ``A phi_k``, in the
            quad layout (any inner product between them is layout-independent).
        iterations : ndarray, shape (2,), int64

        Raises
        ------
        SolverError
            If CG reaches ``max_it`` or breaks down.
        """
        loads, sizes = self.coordinate_loads()
        phi = np.empty_like(loads)
        images = np.empty_like(loads)
        iterations = np.zeros(2, dtype=np.int64)
        for k in range(2):
            b = loads[k]
            bnorm = np.sqrt(max(float(np.vdot(b, b)) - b.sum() ** 2 / b.size, 0.0))
            threshold = max(rtol * bnorm, 1e-3 * rtol * sizes[k])
            sol = self.solve(b, threshold=threshold, max_it=max_it)
            iterations[k] = sol.iterations
            if not sol.converged:
                why = "iteration limit" if sol.status == 0 else "breakdown"
                raise SolverError(
                    f"CG did not converge for load case {k + 1} of a {(self.n, self.n)} cell "
                    f"(multigrid, {why}, {sol.iterations} iterations, "
                    f"residual {sol.residual:.3e})"
                )
            phi[k] = sol.x
            images[k] = self.matvec(sol.x)
        return loads, phi, images, iterations


def _spd_inverse(A: np.ndarray) -> np.ndarray | None:
    """Inverse of a symmetric positive definite matrix (LAPACK potrf/potri), None if not SPD."""
    from scipy.linalg import lapack

    c, info = lapack.dpotrf(A, lower=False)
    if info != 0:
        return None
    inv, info = lapack.dpotri(c, lower=False)
    if info != 0:
        return None
    return np.triu(inv) + np.triu(inv, 1).T


def _dense_pseudo_inverse(S: np.ndarray, *, singular: bool = True) -> np.ndarray:
    """Symmetric ``B^-1`` with ``B = A + c 11^T``: on zero-mean vectors, the pseudo-inverse of A.

    ``A`` is the dense matrix of the periodic stencil planes ``S`` (9, m, m) in natural order,
    symmetric positive semi-definite with the constants as null space, so ``B`` is positive
    definite, keeps the constants as an eigenvector and maps zero-mean vectors onto zero-mean
    vectors.  With ``singular`` False, ``A`` is positive definite and ``A^-1`` is returned.
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
    B = A + np.trace(A) / N**2 if singular else A
    inv = _spd_inverse(B)
    if inv is None:
        raise SolverError("the coarsest multigrid level is not positive semi-definite")
    return inv
