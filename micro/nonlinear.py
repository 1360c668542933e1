"""Nonlinear periodic cell problem of saturating magnetic composites (Newton, consistent tangent).

For a macroscopic field ``H_bar`` (A/m) and pixel-wise isotropic phase laws
(:mod:`micro.phase_laws`), the periodic fluctuation ``rho`` of the scalar potential solves

    find rho periodic:  int_V grad(v) . B(H_bar + grad rho) dx = 0   for all periodic v,

the stationarity condition of the convex functional ``Psi(rho) = <w*(H_bar + grad rho)>``, whose
minimum is the effective coenergy ``psi*(H_bar)`` (J/m^3).  Then ``B_bar = <B> = dpsi*/dH_bar``
(T), and the effective tangent ``dB_bar/dH_bar`` (H/m, SPD) follows from ``d`` linearized cell
problems at the converged state.

Discretization: the grid of :mod:`micro.homogenization` (one Q1 element per pixel, unit cell
``[0, 1]^d``, periodic nodes condensed), with ``2^d`` Gauss points per element, so that for a
linear law the operator is exactly the one of :class:`micro.Homogenizer`.  A Newton tangent is
the Q1 operator of a *tensor* coefficient per Gauss point (``dB/dH`` of an isotropic saturating
law is anisotropic), assembled here in the CSR structure of :func:`micro.periodic.
periodic_pattern` from element matrices; :meth:`NonlinearHomogenizer.assemble` is checked against
DOLFINx in the tests.

Solver: Newton with the consistent tangent and a backtracking (Armijo) line search on ``Psi``,
which is convex, so every step is a descent step; linear systems by the project's solvers (2D:
the periodic BoxMG multigrid of :mod:`micro.multigrid` as CG preconditioner, set up on the
tangent stencil and deflated by the clusters of the permeable pixels; 3D and grids without a
hierarchy: CG + BoomerAMG of :mod:`micro._amg`), with Eisenstat-Walker-type forcing so that the
convergence stays quadratic.  Convergence: the residual norm at most ``rtol`` times its size
without cancellation.  A Newton iteration that reaches its limit or whose line search fails
raises :class:`~magnetohom.errors.SolverError`; no unconverged answer is ever returned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from magnetohom.errors import InputError, SolverError
from micro.periodic import node_stencils, periodic_pattern
from micro.phase_laws import MU0, PhaseLaw

__all__ = [
    "CellDescriptors",
    "NonlinearCellResult",
    "NonlinearHomogenizer",
    "describe_cells",
    "phase_map",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NonlinearCellResult:
    """The converged nonlinear cell problem for one macroscopic field.

    Attributes
    ----------
    H : ndarray, shape (d,), float64, A/m
        Macroscopic field ``H_bar``.
    B : ndarray, shape (d,), float64, T
        Macroscopic flux density ``B_bar = <B>``.
    coenergy : float
        Effective coenergy density ``psi*(H_bar)``, J/m^3.
    tangent : ndarray, shape (d, d), float64, H/m
        Effective differential permeability ``dB_bar/dH_bar`` (symmetric positive definite);
        ``tangent / MU0`` is relative.
    newton_iterations : int
    linear_iterations : int
        CG iterations of all Newton steps and of the ``d`` tangent problems together.
    residuals : tuple of float
        Relative residual norm before each Newton step and at the end (the convergence history).
    steps : tuple of float
        Line-search step length of each Newton step (1 = full step).
    seconds : float
    fluctuation : ndarray, shape (n,)*d, float64
        Periodic fluctuation ``rho`` at the nodes (A/m times the cell length).
    sensitivity : ndarray, shape (d, n, ..., n), float64
        ``d rho / d H_bar_i`` (the tangent problems' solutions): a first-order predictor for a
        neighbouring field.
    """

    H: np.ndarray
    B: np.ndarray
    coenergy: float
    tangent: np.ndarray
    newton_iterations: int
    linear_iterations: int
    residuals: tuple[float, ...]
    steps: tuple[float, ...]
    seconds: float
    fluctuation: np.ndarray
    sensitivity: np.ndarray


def phase_map(image: np.ndarray, n_phases: int) -> np.ndarray:
    """Phase index per pixel: a bool image gives 0 = matrix, 1 = inclusion; ints are kept.

    Returns
    -------
    ndarray, same shape, int64, values in ``0 .. n_phases - 1``
    """
    image = np.asarray(image)
    if image.dtype == bool:
        phases = image.astype(np.int64)
    else:
        if not np.all(np.isfinite(image)) or np.any(image != np.round(image)):
            raise InputError("phase image must hold integer phase indices (or be bool)")
        phases = image.astype(np.int64)
    if phases.size and (phases.min() < 0 or phases.max() >= n_phases):
        raise InputError(
            f"phase image has indices {phases.min()}..{phases.max()} but {n_phases} laws given"
        )
    return phases


def _gauss_gradients(d: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the 2^d Q1 shape functions at the 2^d Gauss points of a pixel (size 1/n).

    Returns
    -------
    G : ndarray, shape (Q, d, A): ``G[q, k, a] = d N_a / d x_k`` at Gauss point q
    corners : ndarray, shape (A, d), int: local node offsets, C order
    """
    corners = np.indices((2,) * d).reshape(d, -1).T
    g = np.array([0.5 - 0.5 / np.sqrt(3), 0.5 + 0.5 / np.sqrt(3)])
    points = g[corners]  # same ordering for Gauss points
    Q, A = len(points), len(corners)
    G = np.empty((Q, d, A))
    for q, xi in enumerate(points):
        for a, c in enumerate(corners):
            f = np.where(c == 1, xi, 1 - xi)
            for k in range(d):
                others = np.prod(np.delete(f, k))
                G[q, k, a] = (2 * c[k] - 1) * others * n
    return G, corners


class NonlinearHomogenizer:
    """Nonlinear periodic homogenization of pixel/voxel cells with saturating phase laws.

    Parameters
    ----------
    shape : tuple of int
        ``(n, n)`` or ``(n, n, n)``, ``n >= 3``; axis k is direction x_(k+1).
    rtol : float
        Newton stops when the residual norm is at most ``rtol`` times its size without
        cancellation; ``psi*`` is then exact to about ``rtol**2``.
    max_newton : int
        Newton iteration limit (reaching it raises :class:`SolverError`).
    linear_rtol : float
        Relative CG tolerance of the tangent problems (the effective tangent).
    max_it : int
        CG iteration limit per linear solve.
    solver : {"mg", "amg"}, optional
        As for :class:`micro.Homogenizer` (default: multigrid where a 2D hierarchy exists).
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        *,
        rtol: float = 1e-9,
        max_newton: int = 60,
        linear_rtol: float = 1e-10,
        max_it: int = 2000,
        solver: str | None = None,
    ) -> None:
        from micro.homogenization import _check_shape, _choose_solver

        shape = _check_shape(shape)
        if len(set(shape)) != 1:
            raise InputError(f"the nonlinear cell problem needs a square/cubic cell: got {shape}")
        self.dim, self.n = len(shape), shape[0]
        self.shape = (self.n,) * self.dim
        for name, v in (("rtol", rtol), ("linear_rtol", linear_rtol)):
            if not (0 < v < 1):
                raise InputError(f"{name} must be in (0, 1): got {v}")
        if int(max_newton) < 1:
            raise InputError(f"max_newton must be >= 1: got {max_newton}")
        self.rtol, self.linear_rtol = float(rtol), float(linear_rtol)
        self.max_newton, self.max_it = int(max_newton), int(max_it)
        self.solver = _choose_solver(solver, self.shape)
        d, n = self.dim, self.n
        self.N = n**d
        self._G, self._corners = _gauss_gradients(d, n)
        self._Q, self._A = self._G.shape[0], self._G.shape[2]
        self._w = 1.0 / (self._Q * self.N)  # Gauss weight (unit cell volume 1)
        self._pattern = periodic_pattern(self.shape)
        self._slots = self._slot_map()
        self._absG = np.abs(self._G)
        if self.solver == "mg":
            from micro.multigrid import PeriodicMultigrid

            self._mg = PeriodicMultigrid(n)
        else:
            from mpi4py import MPI

            from micro._amg import BoomerAMGCG

            self._amg = BoomerAMGCG(
                self._pattern, comm=MPI.COMM_SELF, rtol=self.linear_rtol, max_it=self.max_it
            )

    # -- the discrete operators -------------------------------------------------------------
    def _slot_map(self) -> np.ndarray:
        """CSR slot of entry (node of corner a, node of corner b) of every element, (N, A, A)."""
        d, n, pat = self.dim, self.n, self._pattern
        g = np.stack(np.unravel_index(np.arange(self.N), self.shape), axis=1)
        weights = 3 ** np.arange(d - 1, -1, -1)
        m = pat.code.shape[1]
        slots = np.empty((self.N, self._A, self._A), dtype=np.int64)
        for a, ca in enumerate(self._corners):
            row = np.ravel_multi_index(tuple(((g + ca) % n).T), self.shape)
            for b, cb in enumerate(self._corners):
                code = int((cb - ca + 1) @ weights)
                slots[:, a, b] = row * m + pat.position[row, code]
        return slots

    def _gather(self, u: np.ndarray) -> np.ndarray:
        """Nodal values at the corners of every pixel, shape (A, N)."""
        axes = tuple(range(self.dim))
        return np.stack([np.roll(u, tuple(-c), axis=axes).ravel() for c in self._corners])

    def _scatter(self, f: np.ndarray) -> np.ndarray:
        """Sum per-corner element contributions ``f`` (A, N) onto the periodic nodes, (n,)*d."""
        axes = tuple(range(self.dim))
        out = np.zeros(self.shape)
        for a, c in enumerate(self._corners):
            out += np.roll(f[a].reshape(self.shape), tuple(c), axis=axes)
        return out

    def gradients(self, u: np.ndarray) -> np.ndarray:
        """``grad u`` at the Gauss points, shape (Q, N, d), for nodal values ``u`` (n,)*d."""
        return np.einsum("qka,aN->qNk", self._G, self._gather(u))

    def residual(self, flux: np.ndarray) -> np.ndarray:
        """``int grad v . B`` for every periodic node v, shape (n,)*d; ``flux`` (Q, N, d)."""
        return self._scatter(self._w * np.einsum("qka,qNk->aN", self._G, flux))

    def _size(self, flux: np.ndarray) -> np.ndarray:
        return self._scatter(self._w * np.einsum("qka,qNk->aN", self._absG, np.abs(flux)))

    def assemble(self, tangent: np.ndarray) -> np.ndarray:
        """CSR data of ``int grad v . D grad u`` in the periodic pattern (:mod:`micro.periodic`).

        Parameters
        ----------
        tangent : ndarray, shape (Q, N, d, d) or (N, d, d), float64
            Coefficient ``D`` per Gauss point (or per pixel), symmetric.

        Returns
        -------
        ndarray, shape (nnz,), float64
        """
        D = np.asarray(tangent, dtype=np.float64)
        if D.ndim == 3:
            D = np.broadcast_to(D, (self._Q, *D.shape))
        Ke = np.zeros((self.N, self._A, self._A))
        for q in range(self._Q):
            Gq = self._G[q]
            Ke += np.einsum("ka,Nkl,lb->Nab", Gq, D[q], Gq, optimize=True)
        Ke *= self._w
        return np.bincount(
            self._slots.ravel(), weights=Ke.ravel(), minlength=self._pattern.nnz
        ).astype(np.float64)

    # -- linear solves ----------------------------------------------------------------------
    def _prepare(self, data: np.ndarray, D: np.ndarray) -> None:
        if self.solver == "mg":
            n = self.n
            self._mg.setup(node_stencils(self._pattern, data).reshape(n, n, 9))
            mu = np.trace(D, axis1=-2, axis2=-1).mean(axis=0).reshape(self.shape)
            lo, hi = float(mu.min()), float(mu.max())
            if hi >= 10.0 * lo:
                self._mg.deflate(mu > np.sqrt(lo * hi))
            self._pdata = None
        else:
            # BoomerAMG from the isotropic part (trace / d) of the tangent: the anisotropic
            # tensor stencil has positive couplings that can make BoomerAMG indefinite
            iso = np.trace(D, axis1=-2, axis2=-1) / self.dim
            self._pdata = self.assemble(iso[..., None, None] * np.eye(self.dim))
        self._data = data

    def _solve(self, b: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
        if self.solver == "mg":
            sol = self._mg.solve(b, threshold=threshold, max_it=self.max_it)
            if not sol.converged:
                why = "iteration limit" if sol.status == 0 else "breakdown"
                raise SolverError(
                    f"CG did not converge in a Newton step on a {self.shape} cell (multigrid, "
                    f"{why}, {sol.iterations} iterations, residual {sol.residual:.3e})"
                )
            return sol.x, sol.iterations
        x, its = self._amg.solve(
            self._data, b.ravel(), threshold=threshold, preconditioner_data=self._pdata
        )
        return x.reshape(self.shape), its

    # -- the cell problem -------------------------------------------------------------------
    def _evaluate(self, phases_flat, laws, H):
        """B (Q, N, d), D (Q, N, d, d), w* (Q, N) at the Gauss point fields H (Q, N, d)."""
        Q, N, d = H.shape
        B = np.empty_like(H)
        D = np.empty((Q, N, d, d))
        W = np.empty((Q, N))
        for k, law in enumerate(laws):
            sel = phases_flat == k
            if not sel.any():
                continue
            b, t, w = law.evaluate(H[:, sel])
            B[:, sel], D[:, sel], W[:, sel] = b, t, w
        return B, D, W

    def _check(self, image, laws, H_bar) -> tuple[np.ndarray, list[PhaseLaw], np.ndarray]:
        laws = list(laws)
        if not laws or not all(isinstance(law, PhaseLaw) for law in laws):
            raise InputError("laws must be a non-empty sequence of micro.phase_laws.PhaseLaw")
        image = np.asarray(image)
        if image.shape != self.shape:
            raise InputError(f"image has shape {image.shape}, expected {self.shape}")
        phases = phase_map(image, len(laws)).ravel()
        H_bar = np.asarray(H_bar, dtype=np.float64)
        if H_bar.shape != (self.dim,) or not np.all(np.isfinite(H_bar)):
            raise InputError(f"H_bar must be {self.dim} finite numbers (A/m): got {H_bar}")
        return phases, laws, H_bar

    def solve(
        self,
        image: np.ndarray,
        laws: Sequence[PhaseLaw],
        H_bar: np.ndarray,
        *,
        initial: np.ndarray | None = None,
    ) -> NonlinearCellResult:
        """Solve the cell problem for one macroscopic field.

        Parameters
        ----------
        image : ndarray, shape ``self.shape``, bool or int
            Phase per pixel: bool (False = matrix = ``laws[0]``, True = inclusion =
            ``laws[1]``) or phase indices into ``laws``.
        laws : sequence of PhaseLaw
        H_bar : array_like, shape (d,), A/m
        initial : ndarray, shape ``self.shape``, optional
            Starting fluctuation (e.g. a neighbouring solution; see :meth:`sweep`).

        Returns
        -------
        NonlinearCellResult

        Raises
        ------
        SolverError
            Newton (or a CG inside it) did not converge.
        """
        phases, laws, H_bar = self._check(image, laws, H_bar)
        t0 = time.perf_counter()
        d = self.dim
        u = np.zeros(self.shape) if initial is None else np.array(initial, dtype=np.float64)
        if u.shape != self.shape:
            raise InputError(f"initial fluctuation has shape {u.shape}, expected {self.shape}")
        u -= u.mean()
        grad = self.gradients(u)
        B, D, W = self._evaluate(phases, laws, H_bar + grad)
        psi = self._w * W.sum()
        R = self.residual(B)
        residuals, steps = [], []
        lin_its = 0
        r0 = None
        for it in range(self.max_newton + 1):
            rnorm = float(np.linalg.norm(R))
            size = float(np.linalg.norm(self._size(B)))
            rel = rnorm / size if size > 0 else 0.0
            residuals.append(rel)
            if rel <= self.rtol:
                break
            if it == self.max_newton:
                raise SolverError(
                    f"Newton did not converge in {self.max_newton} iterations for H_bar = "
                    f"{np.array2string(H_bar, precision=4)} A/m (relative residual {rel:.2e})"
                )
            r0 = rnorm if r0 is None else r0
            data = self.assemble(D)
            self._prepare(data, D)
            eta = min(1e-2, rnorm / r0) if it > 0 else 1e-2
            threshold = max(eta * rnorm, 0.1 * self.rtol * size)
            du, its = self._solve(-R, threshold)
            lin_its += its
            slope = float(np.einsum("i,i->", R.ravel(), du.ravel()))  # dPsi/dalpha at 0 (< 0)
            if not slope < 0:
                raise SolverError(
                    f"Newton direction is not a descent direction for H_bar = "
                    f"{np.array2string(H_bar, precision=4)} A/m (slope {slope:.2e})"
                )
            dgrad = self.gradients(du)
            alpha = 1.0
            for _ in range(40):
                B1, D1, W1 = self._evaluate(phases, laws, H_bar + grad + alpha * dgrad)
                psi1 = self._w * W1.sum()
                if psi1 <= psi + 1e-4 * alpha * slope + 64 * np.finfo(float).eps * abs(psi):
                    break
                # minimizer of the quadratic through psi, slope and psi1, kept in [0.1, 0.5] alpha
                curv = psi1 - psi - slope * alpha
                trial = -slope * alpha * alpha / (2 * curv) if curv > 0 else 0.5 * alpha
                alpha = min(max(trial, 0.1 * alpha), 0.5 * alpha)
            else:
                raise SolverError(
                    f"Newton line search failed for H_bar = "
                    f"{np.array2string(H_bar, precision=4)} A/m (relative residual {rel:.2e})"
                )
            steps.append(alpha)
            u = u + alpha * du
            grad = grad + alpha * dgrad
            B, D, psi = B1, D1, psi1
            R = self.residual(B)
        n_newton = len(steps)
        # effective tangent: d linearized cell problems at the converged state
        data = self.assemble(D)
        self._prepare(data, D)
        sens = np.empty((d, *self.shape))
        F = np.empty((d, *grad.shape))
        for i in range(d):
            De = D[..., :, i]  # D e_i, (Q, N, d)
            b = -self.residual(De)
            bsize = float(np.linalg.norm(self._size(De)))
            phi, its = self._solve(b, self.linear_rtol * max(np.linalg.norm(b), 1e-3 * bsize))
            lin_its += its
            sens[i] = phi
            F[i] = self.gradients(phi)
            F[i][..., i] += 1.0
        tangent = self._w * np.einsum("iqNk,qNkl,jqNl->ij", F, D, F, optimize=True)
        tangent = 0.5 * (tangent + tangent.T)
        Bbar = self._w * B.sum(axis=(0, 1))
        if not (np.all(np.isfinite(tangent)) and np.all(np.isfinite(Bbar))):
            raise SolverError(f"non-finite effective law for H_bar = {H_bar} A/m")
        log.debug(
            "nonlinear cell: H %s, %d Newton its, residuals %s",
            H_bar,
            n_newton,
            [f"{r:.1e}" for r in residuals],
        )
        return NonlinearCellResult(
            H=H_bar.copy(),
            B=Bbar,
            coenergy=float(psi),
            tangent=tangent,
            newton_iterations=n_newton,
            linear_iterations=int(lin_its),
            residuals=tuple(residuals),
            steps=tuple(steps),
            seconds=time.perf_counter() - t0,
            fluctuation=u,
            sensitivity=sens,
        )

    def sweep(
        self,
        image: np.ndarray,
        laws: Sequence[PhaseLaw],
        fields: np.ndarray,
        *,
        start: NonlinearCellResult | None = None,
    ) -> list[NonlinearCellResult]:
        """Solve for a sequence of fields, each started from the previous one's first-order
        prediction ``rho + (d rho / d H_bar) (H_next - H)`` (a continuation along a path).

        Parameters
        ----------
        fields : ndarray, shape (K, d), A/m
        start : NonlinearCellResult, optional
            A solution to predict the first field from (e.g. the one at ``H_bar = 0``, whose
            prediction is the linear cell solution).

        Returns
        -------
        list of NonlinearCellResult, one per field
        """
        fields = np.asarray(fields, dtype=np.float64)
        if fields.ndim != 2 or fields.shape[1] != self.dim:
            raise InputError(f"fields must have shape (K, {self.dim}): got {fields.shape}")
        out: list[NonlinearCellResult] = []
        for H in fields:
            init = None
            prev = out[-1] if out else start
            if prev is not None:
                init = prev.fluctuation + np.tensordot(H - prev.H, prev.sensitivity, axes=1)
            out.append(self.solve(image, laws, H, initial=init))
        return out


@dataclass(frozen=True)
class CellDescriptors:
    """What the learned effective law (:mod:`surrogate.convex_law`) knows of a microstructure.

    From the zero-field cell problem (the linear one, with the phases' initial permeabilities).

    Attributes
    ----------
    mu_lin : ndarray, shape (N, d, d), float64
        Linear (small-field) relative permeability ``mu*``.
    volume_fraction : ndarray, shape (N,), float64
        Inclusion (phase 1) volume fraction.
    moments : ndarray, shape (N, 2, d, d), float64
        Field concentration in the inclusions: ``<G^T G>`` and ``<(G^T G)^2>`` over the inclusion
        Gauss points, ``G = dH_local/dH_bar`` (where the inclusions saturate first).
    """

    mu_lin: np.ndarray
    volume_fraction: np.ndarray
    moments: np.ndarray

    def __len__(self) -> int:
        return len(self.mu_lin)

    def take(self, index) -> CellDescriptors:
        """The descriptors of points ``index`` (an index array or slice)."""
        return CellDescriptors(self.mu_lin[index], self.volume_fraction[index], self.moments[index])


def describe_cells(
    images: np.ndarray,
    laws: Sequence[PhaseLaw],
    *,
    homogenizer: NonlinearHomogenizer | None = None,
) -> CellDescriptors:
    """:class:`CellDescriptors` of a batch of two-phase images (bool, True = inclusion).

    Parameters
    ----------
    images : ndarray, shape (N, n, ..., n) or (n, ..., n), bool
    laws : (matrix law, inclusion law)
    homogenizer : NonlinearHomogenizer, optional
        Reused when given (its shape must match).
    """
    images = np.asarray(images, dtype=bool)
    if homogenizer is None:
        cubic = images.ndim == 3 and len(set(images.shape)) == 1
        d = 2 if images.ndim == 2 or (images.ndim == 3 and not cubic) else 3
        homogenizer = NonlinearHomogenizer(images.shape[-d:])
    nh = homogenizer
    if images.shape == nh.shape:
        images = images[None]
    d = nh.dim
    mu = np.empty((len(images), d, d))
    vf = np.empty(len(images))
    mom = np.empty((len(images), 2, d, d))
    for k, image in enumerate(images):
        res = nh.solve(image, laws, np.zeros(d))
        mu[k] = res.tangent / MU0
        vf[k] = image.mean()
        G = np.stack([nh.gradients(res.sensitivity[i]) for i in range(d)], axis=-1)
        G += np.eye(d)  # (Q, N, d, d): G[..., :, i] = local field of unit H_bar e_i
        G = G[:, image.ravel()]
        GtG = np.einsum("qnki,qnkj->qnij", G, G)
        mom[k, 0] = GtG.mean(axis=(0, 1)) if G.size else np.eye(d)
        mom[k, 1] = np.einsum("qnij,qnjl->il", GtG, GtG) / max(GtG.shape[0] * GtG.shape[1], 1)
    return CellDescriptors(mu, vf, mom)
