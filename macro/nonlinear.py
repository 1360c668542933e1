"""Nonlinear macroscale magnetostatics (FE²) with an effective law at every quadrature point.

Two formulations, both by Newton with the consistent tangent on one shared loop
(:func:`_newton`: CG + BoomerAMG per step, backtracking on the residual norm):

**Reduced scalar potential** (:func:`solve_scalar_potential_nl`), no free currents, 2D or 3D::

    -div B(H) = 0,   H = -grad rho,   rho = -H0 . x on the outer boundary,

tangent ``int grad v . (dB/dH) grad w dx``.

**Vector potential** (:func:`solve_vector_potential_nl`), 2D with out-of-plane currents::

    int H(B(A)) . R grad v dx = int J_z v dx,   B = R grad A = (dA/dy, -dA/dx),
    R = [[0, 1], [-1, 0]],   A = 0 on the outer boundary,

tangent ``int (R grad v) . (dH/dB) (R grad w) dx`` (``R^T (dH/dB) R`` on the gradients), with
``H(B)`` and ``dH/dB = (dB/dH)^-1`` from :class:`InverseLaw`: the point law inverted at every
quadrature point by a few vectorized Newton steps, warm-started from its previous answer.

The point law, at every quadrature point: a callable ``law(H (M, d)) -> (B (M, d), dB/dH
(M, d, d))`` over the owned cells' quadrature points in the order of
:func:`macro.coefficient.quadrature_points` (cell-major).  Point laws:

* :class:`PointLaws` -- linear regions (air, constant ``mu_r``) plus, on the composite points,
  any ``H -> (B, tangent)`` provider: the learned convex law
  (``surrogate.convex_law.ConvexLawProvider``) or :class:`CellProblemLaw`;
* :class:`CellProblemLaw` -- the nested FE² reference: the nonlinear cell problem
  (:class:`micro.nonlinear.NonlinearHomogenizer`) of every point's microstructure, solved in
  every call (each started from its previous solution).

Newton stops when the residual norm is at most ``rtol`` times its size (the norm of the full
residual, boundary rows included, or of the source vector if larger) and raises
:class:`~magnetohom.errors.SolverError` otherwise.  ``macro`` imports neither ``micro`` nor
TensorFlow at import time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import magnetohom.dolfinx_compat as dfx

import numpy as np

from macro.coefficient import (
    _owned_dofs,
    point_weights,
    quadrature_metadata,
    quadrature_points,
    quadrature_space,
)
from macro.solve import MU0, _boundary_dofs, _gradient_evaluator
from magnetohom.errors import InputError, SolverError

__all__ = [
    "CellProblemLaw",
    "InverseLaw",
    "NonlinearMacroSolution",
    "PointLaws",
    "solve_scalar_potential_nl",
    "solve_vector_potential_nl",
]

log = logging.getLogger(__name__)

PointLaw = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class NonlinearMacroSolution:
    """Result of :func:`solve_scalar_potential_nl` or :func:`solve_vector_potential_nl`.

    Attributes
    ----------
    potential : dolfinx.fem.Function
        ``rho`` [A] (scalar) or ``A_z`` [Wb/m] (vector).
    B, H : ndarray, shape (n_owned_cells, n_qp, d), float64
        Flux density [T] and field [A/m] at the quadrature points.
    weights : ndarray, shape (n_owned_cells, n_qp)
        Integration weights [m^d].
    newton_iterations : int
    residuals : tuple of float
        Relative residual norm before each Newton step and at the end.
    linear_iterations : int
        CG iterations of all Newton steps.
    law_seconds, seconds : float
        Time in the point law (all calls; with :class:`InverseLaw` its inversions too) and in
        total, this rank's wall time.
    n_points : int
        Quadrature points (owned, this rank).
    formulation : {"scalar", "vector"}
    region_mean_potential : dict int -> float
        Vector potential with currents: mean ``A_z`` [Wb/m] over each current region (all
        ranks).
    law_calls : int
        Point-law evaluations (with :class:`InverseLaw`: its inner Newton steps included).
    region_mean_sensitivity : dict int -> float
        Vector potential with ``sensitivity=True``: ``d<A_z>/ds`` [Wb/m] per current region
        for all currents scaled by ``s`` (at ``s = 1``), from the converged tangent.
    """

    potential: Any
    B: np.ndarray
    H: np.ndarray
    weights: np.ndarray
    newton_iterations: int
    residuals: tuple[float, ...]
    linear_iterations: int
    law_seconds: float
    seconds: float
    n_points: int
    formulation: str = "scalar"
    region_mean_potential: dict[int, float] = field(default_factory=dict)
    law_calls: int = 0
    region_mean_sensitivity: dict[int, float] = field(default_factory=dict)

    def region_mean_B(self, cells: np.ndarray) -> np.ndarray:
        """Mean ``B`` (d,) over owned cells ``cells`` (this rank), T."""
        w = self.weights[cells]
        return np.einsum("cq,cqi->i", w, self.B[cells]) / w.sum()


class PointLaws:
    """Linear regions plus a nonlinear provider on the composite points.

    Parameters
    ----------
    mu_r : ndarray, shape (M,)
        Relative permeability of every point (used where ``composite`` is False).
    composite : ndarray, shape (M,), bool
        Points answered by ``provider``.
    provider : callable
        ``provider(H (K, d)) -> (B (K, d), dB/dH (K, d, d))`` for the ``K`` composite points,
        in their order.
    """

    def __init__(self, mu_r: np.ndarray, composite: np.ndarray, provider: PointLaw) -> None:
        self.mu_r = np.asarray(mu_r, dtype=np.float64)
        self.composite = np.asarray(composite, dtype=bool)
        if self.mu_r.shape != self.composite.shape:
            raise InputError("mu_r and composite must have one entry per quadrature point")
        self.provider = provider

    def __call__(self, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = H.shape[1]
        B = MU0 * self.mu_r[:, None] * H
        T = MU0 * self.mu_r[:, None, None] * np.eye(d)
        if self.composite.any() or getattr(self.provider, "collective", False):
            Bc, Tc = self.provider(H[self.composite])
            B[self.composite], T[self.composite] = Bc, Tc
        return B, T


class CellProblemLaw:
    """The nested FE² reference: a nonlinear cell problem per point and call.

    A point asked again at exactly its previous field answers from its previous solution
    (line searches re-evaluate the points they did not move).

    With a communicator of several ranks the call is *collective* and the cell problems are
    balanced over the ranks whatever the mesh partition gives each (the composite points of a
    component are rarely spread evenly): the fields of all ranks' points are gathered, rank
    ``r`` solves the points ``r, r + size, ...`` of the global list, and the answers are
    gathered back (a few kB per call).  Every rank must then call it equally often
    (:class:`InverseLaw` with the same ``comm`` does).

    Parameters
    ----------
    images : ndarray, shape (K, n, ..., n), bool
        Microstructure of each of this rank's points (True = inclusion).
    laws : (matrix law, inclusion law)
        :mod:`micro.phase_laws` laws.
    rtol : float
        Newton tolerance of the cell problems.
    comm : mpi4py communicator, optional
        Balance the cell problems over its ranks (collective calls).
    """

    def __init__(
        self, images: np.ndarray, laws: Sequence[Any], *, rtol: float = 1e-9, comm: Any = None
    ) -> None:
        from micro.nonlinear import NonlinearHomogenizer

        self.images = np.asarray(images, dtype=bool)
        self.laws = list(laws)
        self.comm = comm if comm is not None and comm.size > 1 else None
        self.collective = self.comm is not None
        if self.collective:
            counts = self.comm.allgather(len(self.images))
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int)
            self._local = slice(offsets[self.comm.rank], offsets[self.comm.rank + 1])
            self._all = np.concatenate(self.comm.allgather(self.images))
            self._mine = np.arange(self.comm.rank, len(self._all), self.comm.size)
        else:
            self._all = self.images
            self._mine = np.arange(len(self.images))
        self.cell = NonlinearHomogenizer(self._all.shape[1:], rtol=rtol)
        self._last: list[Any] = [None] * len(self._all)
        self.solves = 0
        self.newton_iterations = 0

    def __call__(self, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        H = np.asarray(H, dtype=np.float64)
        if len(H) != len(self.images):
            raise InputError(f"{len(H)} fields for {len(self.images)} cells")
        d = H.shape[1]
        H_all = np.concatenate(self.comm.allgather(H)) if self.collective else H
        B, T = np.empty((len(self._mine), d)), np.empty((len(self._mine), d, d))
        failure = None
        for j, k in enumerate(self._mine):
            h = H_all[k]
            prev = self._last[k]
            if prev is not None and np.array_equal(prev.H, h):  # the same field: no new solve
                B[j], T[j] = prev.B, prev.tangent
                continue
            init = None
            if prev is not None:
                init = prev.fluctuation + np.tensordot(h - prev.H, prev.sensitivity, axes=1)
            try:
                res = self.cell.solve(self._all[k], self.laws, h, initial=init)
            except SolverError as exc:
                if not self.collective:
                    raise
                failure = f"cell problem of point {k}: {exc}"
                B[j:], T[j:] = 0.0, 0.0
                break
            self._last[k] = res
            B[j], T[j] = res.B, res.tangent
            self.solves += 1
            self.newton_iterations += res.newton_iterations
        if not self.collective:
            return B, T
        failures = [f for f in self.comm.allgather(failure) if f]
        if failures:
            raise SolverError(failures[0])
        B_all, T_all = np.empty((len(self._all), d)), np.empty((len(self._all), d, d))
        for idx, b, t in self.comm.allgather((self._mine, B, T)):
            B_all[idx], T_all[idx] = b, t
        return B_all[self._local], T_all[self._local]


def _inverse(T: np.ndarray) -> np.ndarray:
    """Inverses of a batch of 2x2 or 3x3 matrices (M, d, d), in closed form (adjugate)."""
    d = T.shape[-1]
    if d == 2:
        a, b, c, e = T[:, 0, 0], T[:, 0, 1], T[:, 1, 0], T[:, 1, 1]
        det = a * e - b * c
        return np.stack([np.stack([e, -b], -1), np.stack([-c, a], -1)], -2) / det[:, None, None]
    if d == 3:
        cof = np.cross(T[:, [1, 2, 0]][:, :, None], T[:, [2, 0, 1]][:, :, None])[:, :, 0]
        det = np.einsum("ki,ki->k", T[:, 0], cof[:, 0])
        return np.swapaxes(cof, 1, 2) / det[:, None, None]
    return np.linalg.inv(T)


class InverseLaw:
    """``B -> (H, dH/dB)`` of a point law ``H -> (B, dB/dH)``, by Newton at every point.

    The law's ``B(H)`` is the gradient of a convex coenergy, so ``H(B)`` is the minimizer of
    ``psi*(H) - B . H``; Newton steps ``H <- H - alpha (dB/dH)^-1 (B(H) - B_target)`` with a
    per-point backtracking on ``|B(H) - B_target|`` (the Newton direction descends it), all
    points in one law call per step.  Each call starts from the previous answer plus the
    first-order predictor ``(dB/dH)^-1 (B_target - B_previous)`` (from ``H = 0`` the first
    time), so that inside a macroscopic Newton iteration that converges one or two steps
    suffice.  The tangent returned is ``(dB/dH)^-1`` at the converged ``H`` (consistent).

    Parameters
    ----------
    law : callable
        ``law(H (M, d)) -> (B (M, d), dB/dH (M, d, d))``, SI units.
    rtol : float
        Per point: ``|B(H) - B_target| <= rtol (|B_target| + 1e-6 max |B_target|)`` (or, where
        a line search finds no descent, within 100 times that: the law's own noise floor, e.g.
        a cell problem's tolerance).
    max_iter : int
        Newton steps per call; more raise :class:`SolverError`.
    comm : mpi4py communicator, optional
        For a collective law (:class:`CellProblemLaw` with a communicator): the ranks take
        every decision (another step, another halving, failure) together, so that they call
        the law equally often.

    Attributes
    ----------
    calls, law_calls, iterations : int
        Calls of the inverse, of the law, Newton steps (of all calls).
    """

    def __init__(
        self, law: PointLaw, *, rtol: float = 1e-11, max_iter: int = 60, comm: Any = None
    ) -> None:
        if not 0 < rtol < 1:
            raise InputError(f"rtol must be in (0, 1): got {rtol}")
        self.law, self.rtol, self.max_iter = law, float(rtol), int(max_iter)
        self.comm = comm if comm is not None and comm.size > 1 else None
        self._H: np.ndarray | None = None
        self._B: np.ndarray | None = None
        self._T: np.ndarray | None = None
        self.calls = self.law_calls = self.iterations = 0

    def _any(self, flag: bool) -> bool:
        from mpi4py import MPI

        return bool(flag) if self.comm is None else self.comm.allreduce(bool(flag), op=MPI.LOR)

    def _eval(self, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        B, T = self.law(H)
        self.law_calls += 1
        B, T = np.asarray(B, dtype=np.float64), np.asarray(T, dtype=np.float64)
        if B.shape != H.shape or T.shape != H.shape + H.shape[1:]:
            raise InputError(f"the point law returned B {B.shape} and tangent {T.shape}")
        if not (np.all(np.isfinite(B)) and np.all(np.isfinite(T))):
            raise SolverError("the point law returned NaN or inf")
        return B, T

    def __call__(self, B_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``H`` (M, d) [A/m] and ``dH/dB`` (M, d, d) [m/H] at the flux densities (M, d) [T]."""
        Bt = np.asarray(B_target, dtype=np.float64)
        if Bt.ndim != 2 or not np.all(np.isfinite(Bt)):
            raise InputError(f"B must be a finite (M, d) array: got shape {Bt.shape}")
        self.calls += 1
        M, d = Bt.shape
        if self._any(self._H is None or self._H.shape != Bt.shape):
            H = np.zeros_like(Bt)
            B, T = self._eval(H)
        else:
            H, B, T = self._H, self._B, self._T
        mag = np.linalg.norm(Bt, axis=1)
        tol = self.rtol * (mag + 1e-6 * (mag.max() if M else 0.0)) + 1e-300
        r = B - Bt
        rn = np.linalg.norm(r, axis=1)
        for k in range(self.max_iter + 1):
            todo = rn > tol
            if not self._any(todo.any()):
                break
            if k == self.max_iter:
                worst = float(np.max(rn / (mag + 1e-300), initial=0.0))
                raise SolverError(
                    f"inverting the point law H(B) did not converge in {self.max_iter} Newton "
                    f"steps at {int(todo.sum())} of {M} points (relative misfit {worst:.1e})"
                )
            self.iterations += 1
            step = np.einsum("kij,kj->ki", _inverse(T[todo]), r[todo])
            alpha = np.ones(int(todo.sum()))
            idx = np.flatnonzero(todo)
            for _ in range(20):
                trial = H.copy()
                trial[idx] = H[idx] - alpha[:, None] * step
                Bn, Tn = self._eval(trial)
                rn_new = np.linalg.norm(Bn[idx] - Bt[idx], axis=1)
                ok = rn_new < (1 - 1e-4 * alpha) * rn[idx]
                ok |= rn_new <= tol[idx]
                accept = idx[ok]
                H[accept], B[accept], T[accept] = trial[accept], Bn[accept], Tn[accept]
                if not self._any(not ok.all()):
                    break
                idx, alpha, step = idx[~ok], alpha[~ok] * 0.5, step[~ok]
            else:
                # no descent left: the law's own accuracy (a cell problem's tolerance) is
                # reached; accepted within 100 rtol, a failure otherwise
                if self._any(np.any(rn[idx] > 100 * tol[idx])):
                    worst = float(np.max(rn[idx] / (mag[idx] + 1e-300), initial=0.0))
                    raise SolverError(
                        f"inverting the point law H(B): the line search failed at {idx.size} "
                        f"points (relative misfit {worst:.1e})"
                    )
                tol = tol.copy()
                tol[idx] = rn[idx]
            r = B - Bt
            rn = np.linalg.norm(r, axis=1)
        self._H, self._B, self._T = H.copy(), B.copy(), T.copy()
        return H, _inverse(T)

    def seed(self, H: np.ndarray) -> None:
        """Start the next call's Newton at the fields ``H`` (M, d) [A/m] (one law call), e.g.
        another law's answer at a nearby state."""
        H = np.array(H, dtype=np.float64)
        self._H = H
        self._B, self._T = self._eval(H)


def _newton(
    u: Any,
    *,
    F_form: Any,
    J_form: Any,
    bc0: Any,
    update: Callable[[Any], Any],
    rtol: float,
    max_newton: int,
    linear_rtol: float,
    scale: float = 0.0,
) -> tuple[Any, list[float], int]:
    """Newton with backtracking on ``u`` (in place), the one loop of both formulations.

    ``update(u)`` evaluates the point law at ``u`` and fills the coefficients of ``F_form``
    (residual) and ``J_form`` (consistent tangent, SPD); it returns a state that is handed
    back for the final ``u``.  ``bc0`` is the homogeneous Dirichlet condition of the steps;
    ``u`` must satisfy the inhomogeneous one.  Convergence: residual norm (Dirichlet rows
    removed) ``<= rtol * max(norm of the full residual, scale)``.

    Returns
    -------
    (state, residuals, CG iterations)
    """
    from dolfinx import fem
    from dolfinx.fem import petsc
    from petsc4py import PETSc

    V = u.function_space
    ksp = PETSc.KSP().create(V.mesh.comm)
    ksp.setType("cg")
    ksp.getPC().setType("hypre")
    ksp.getPC().setHYPREType("boomeramg")
    ksp.setTolerances(rtol=linear_rtol, atol=1e-300, max_it=2000)
    du = fem.Function(V)

    def residual():
        """The residual with the Dirichlet rows zeroed, and its size (the norm of the full
        one, which carries the flux through the boundary, or ``scale`` if larger)."""
        b = petsc.assemble_vector(F_form)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        full = b.norm()
        petsc.set_bc(b, [bc0])
        return b, max(full, scale)

    state = update(u)
    b, size = residual()
    residuals: list[float] = []
    lin_its = 0
    rnorm = b.norm()
    try:
        for it in range(max_newton + 1):
            rel = rnorm / size if size > 0 else 0.0
            residuals.append(rel)
            if rel <= rtol:
                break
            if it == max_newton:
                raise SolverError(
                    f"macro Newton did not converge in {max_newton} iterations (relative "
                    f"residual {rel:.2e}, history {', '.join(f'{r:.1e}' for r in residuals)})"
                )
            A = petsc.assemble_matrix(J_form, bcs=[bc0])
            A.assemble()
            ksp.setOperators(A)
            b.scale(-1.0)
            ksp.solve(b, dfx.petsc_vector(du))
            du.x.scatter_forward()
            reason = ksp.getConvergedReason()
            lin_its += ksp.getIterationNumber()
            A.destroy()
            if reason <= 0:
                raise SolverError(f"macro CG did not converge in a Newton step (reason {reason})")
            base = u.x.array.copy()
            alpha = 1.0
            for _ in range(12):
                u.x.array[:] = base + alpha * du.x.array
                state = update(u)
                b.destroy()
                b, size = residual()
                new = b.norm()
                if new < (1 - 1e-4 * alpha) * rnorm:
                    break
                alpha *= 0.5
            else:
                raise SolverError(f"macro Newton line search failed (relative residual {rel:.2e})")
            rnorm = new
    finally:
        b.destroy()
        ksp.destroy()
    return state, residuals, lin_its


def _linear_solve(a_form: Any, L_form: Any, bc0: Any, u: Any, *, rtol: float) -> int:
    """Solve ``a u = L`` (homogeneous ``bc0``) by CG + BoomerAMG into ``u``; CG iterations."""
    from dolfinx.fem import petsc
    from petsc4py import PETSc

    A = petsc.assemble_matrix(a_form, bcs=[bc0])
    A.assemble()
    b = petsc.assemble_vector(L_form)
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    petsc.set_bc(b, [bc0])
    ksp = PETSc.KSP().create(u.function_space.mesh.comm)
    ksp.setType("cg")
    ksp.getPC().setType("hypre")
    ksp.getPC().setHYPREType("boomeramg")
    ksp.setTolerances(rtol=rtol, atol=1e-300, max_it=2000)
    ksp.setOperators(A)
    try:
        ksp.solve(b, dfx.petsc_vector(u))
        u.x.scatter_forward()
        reason, its = ksp.getConvergedReason(), ksp.getIterationNumber()
    finally:
        ksp.destroy()
        A.destroy()
        b.destroy()
    if reason <= 0:
        raise SolverError(f"macro CG did not converge (reason {reason})")
    return int(its)


def _check_tangent_shape(B: np.ndarray, T: np.ndarray, shape: tuple[int, ...]) -> None:
    if B.shape != shape or T.shape != shape + shape[1:]:
        raise InputError(f"the point law returned B {B.shape} and tangent {T.shape}")
    if not (np.all(np.isfinite(B)) and np.all(np.isfinite(T))):
        raise SolverError("the point law returned NaN or inf")


def _point_fields(mesh: Any, degree: int, quadrature_degree: int) -> tuple:
    """The unknown's space and the quadrature-point fields of a nonlinear macro solve.

    Returns ``(V, qd, vector field, tensor field, (owned cells, points per cell), vector dofs,
    tensor dofs)``: the dofs of the owned points in :func:`macro.coefficient.quadrature_points`
    order (cell-major), so that a point law's ``(M, d)`` / ``(M, d, d)`` arrays are written with
    ``field.x.array[dofs] = values.ravel()``.
    """
    from dolfinx import fem

    V = dfx.functionspace(mesh, "CG", int(degree))
    qd = int(quadrature_degree)
    vec = fem.Function(quadrature_space(mesh, qd, "vector"))
    ten = fem.Function(quadrature_space(mesh, qd, "tensor"))
    pts, _ = quadrature_points(mesh, qd)
    n_owned, nq = pts.shape[:2]
    vdofs = _owned_dofs(vec.function_space, n_owned, nq).ravel()
    dofs = _owned_dofs(ten.function_space, n_owned, nq).ravel()
    return V, qd, vec, ten, (n_owned, nq), vdofs, dofs


def solve_scalar_potential_nl(
    mesh: Any,
    law: PointLaw,
    *,
    H0: Sequence[float],
    facet_tags: Any = None,
    boundary: int | None = None,
    degree: int = 1,
    quadrature_degree: int = 2,
    rtol: float = 1e-8,
    max_newton: int = 30,
    linear_rtol: float = 1e-10,
) -> NonlinearMacroSolution:
    """Nonlinear reduced scalar potential in an applied field, by Newton (see the module doc).

    Parameters
    ----------
    mesh : dolfinx.mesh.Mesh
        2D or 3D, coordinates in metres.
    law : callable
        ``law(H (M, d)) -> (B (M, d), dB/dH (M, d, d))`` at the owned quadrature points
        (``M = n_owned_cells * n_qp``, order of :func:`macro.coefficient.quadrature_points`).
    H0 : sequence of float
        Applied field [A/m]; ``rho = -H0 . x`` on the boundary.
    facet_tags, boundary : optional
        The outer boundary (default: all exterior facets).
    degree : int
        Lagrange degree of ``rho``.
    quadrature_degree : int
        Degree of the quadrature where the law is evaluated.
    rtol : float
        Newton stops when the residual norm (Dirichlet rows removed) is at most ``rtol`` times
        the norm of the full residual vector (whose boundary rows carry the flux through the
        boundary).
    max_newton : int
    linear_rtol : float
        CG tolerance of each Newton step.

    Raises
    ------
    SolverError
        Newton or a CG did not converge; a line search failed.
    """
    import ufl
    from dolfinx import fem

    t_start = time.perf_counter()
    gdim = mesh.geometry.dim
    h0 = np.asarray(H0, dtype=np.float64)
    if h0.shape != (gdim,) or not np.all(np.isfinite(h0)):
        raise InputError(f"H0 must be {gdim} finite numbers: got {H0!r}")
    V, qd, Bq, Tq, (n_owned, nq), vdofs, dofs = _point_fields(mesh, degree, quadrature_degree)

    rho = fem.Function(V, name="rho")
    rho.interpolate(lambda x: -np.einsum("i,i...->...", h0, x[:gdim]))
    zero = fem.Function(V)
    bc0 = fem.dirichletbc(zero, _boundary_dofs(V, facet_tags, boundary))
    v, w = ufl.TestFunction(V), ufl.TrialFunction(V)
    dx = ufl.Measure("dx", domain=mesh, metadata=quadrature_metadata(qd))
    F_form = fem.form(-ufl.inner(Bq, ufl.grad(v)) * dx)
    J_form = fem.form(ufl.inner(Tq * ufl.grad(w), ufl.grad(v)) * dx)
    timer = {"law": 0.0, "calls": 0}
    gradient = _gradient_evaluator(rho, qd)  # compiled once; _newton updates rho in place

    def update(u) -> tuple[np.ndarray, np.ndarray]:
        assert u is rho
        H = -gradient().reshape(-1, gdim)
        t0 = time.perf_counter()
        B, T = law(H)
        timer["law"] += time.perf_counter() - t0
        timer["calls"] += 1
        B, T = np.asarray(B, dtype=np.float64), np.asarray(T, dtype=np.float64)
        _check_tangent_shape(B, T, H.shape)
        Bq.x.array.reshape(-1, gdim)[vdofs] = B
        Tq.x.array.reshape(-1, gdim, gdim)[dofs] = T
        Bq.x.scatter_forward()
        Tq.x.scatter_forward()
        return H, B

    (H, B), residuals, lin_its = _newton(
        rho, F_form=F_form, J_form=J_form, bc0=bc0, update=update, rtol=rtol,
        max_newton=max_newton, linear_rtol=linear_rtol,
    )  # fmt: skip
    weights = point_weights(mesh, qd)
    log.info(
        "nonlinear macro (scalar): %d Newton iterations, residuals %s",
        len(residuals) - 1,
        [f"{r:.1e}" for r in residuals],
    )
    return NonlinearMacroSolution(
        potential=rho,
        B=B.reshape(n_owned, nq, gdim),
        H=H.reshape(n_owned, nq, gdim),
        weights=weights,
        newton_iterations=len(residuals) - 1,
        residuals=tuple(residuals),
        linear_iterations=int(lin_its),
        law_seconds=timer["law"],
        seconds=time.perf_counter() - t_start,
        n_points=int(n_owned * nq),
        formulation="scalar",
        law_calls=int(timer["calls"]),
    )


def solve_vector_potential_nl(
    mesh: Any,
    law: PointLaw | InverseLaw,
    *,
    currents: Mapping[int, float],
    cell_tags: Any,
    facet_tags: Any = None,
    boundary: int | None = None,
    degree: int = 1,
    quadrature_degree: int = 2,
    rtol: float = 1e-8,
    max_newton: int = 30,
    linear_rtol: float = 1e-10,
    initial: Any = None,
    sensitivity: bool = False,
) -> NonlinearMacroSolution:
    """Nonlinear 2D vector potential ``A_z`` with out-of-plane currents, by Newton.

    Solves ``int H(B(A)) . R grad v dx = int J v dx`` with ``B = R grad A`` (module doc),
    ``A = 0`` on the outer boundary.

    Parameters
    ----------
    mesh : dolfinx.mesh.Mesh
        2D, coordinates in metres.
    law : callable or InverseLaw
        The point law ``H (M, 2) -> (B, dB/dH)`` at the owned quadrature points (inverted by a
        fresh :class:`InverseLaw`), or an :class:`InverseLaw` (keep one over a sweep of
        currents: its warm starts carry over).
    currents : dict tag -> float
        Total current [A, ampere-turns] through each tagged region; ``J = I / area`` (area
        measured on the mesh).
    cell_tags : MeshTags
        The regions of ``currents``.
    facet_tags, boundary : optional
        The outer boundary (default: all exterior facets).
    degree, quadrature_degree : int
        Lagrange degree of ``A`` and quadrature degree of the law's points.
    rtol : float
        Newton stops at residual norm ``<= rtol * max(|full residual|, |source vector|)``.
    max_newton : int
    linear_rtol : float
    initial : dolfinx.fem.Function or ndarray, optional
        Starting ``A`` (e.g. the previous current's solution, scaled); default 0.
    sensitivity : bool
        Also ``dA/ds`` for all currents scaled by ``s`` (one linear solve with the converged
        tangent; the incremental inductance): ``region_mean_sensitivity``.

    Returns
    -------
    NonlinearMacroSolution
        With ``region_mean_potential``: mean ``A`` [Wb/m] per current region.

    Raises
    ------
    InputError
        Not 2D; an empty or untagged current region; non-finite currents.
    SolverError
        Newton, a CG or the law's inversion did not converge.
    """
    import ufl
    from dolfinx import fem
    from dolfinx.fem import petsc
    from mpi4py import MPI
    from petsc4py import PETSc

    t_start = time.perf_counter()
    if mesh.geometry.dim != 2 or mesh.topology.dim != 2:
        raise InputError(f"the vector potential A_z is 2D: mesh is {mesh.geometry.dim}D")
    currents = {int(k): float(v) for k, v in currents.items()}
    if not currents or not all(np.isfinite(c) for c in currents.values()):
        raise InputError(f"currents must be finite numbers per region tag: got {currents!r}")
    if cell_tags is None:
        raise InputError("currents in regions need cell tags")
    inverse = law if isinstance(law, InverseLaw) else InverseLaw(law)
    comm = mesh.comm
    V, qd, Hq, Nq, (n_owned, nq), vdofs, dofs = _point_fields(mesh, degree, quadrature_degree)

    A = fem.Function(V, name="A_z")
    if initial is not None:
        values = getattr(getattr(initial, "x", None), "array", initial)
        A.x.array[:] = np.asarray(values, dtype=np.float64)
    bdofs = _boundary_dofs(V, facet_tags, boundary)
    A.x.array[bdofs] = 0.0
    bc0 = fem.dirichletbc(fem.Function(V), bdofs)
    v, w = ufl.TestFunction(V), ufl.TrialFunction(V)
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=cell_tags,
                     metadata=quadrature_metadata(qd))  # fmt: skip
    R = ufl.as_matrix([[0.0, 1.0], [-1.0, 0.0]])
    J: dict[int, float] = {}
    areas: dict[int, float] = {}
    source = None
    for tag, current in currents.items():
        areas[tag] = comm.allreduce(fem.assemble_scalar(fem.form(1.0 * dx(tag))), op=MPI.SUM)
        if areas[tag] <= 0:
            raise InputError(f"current region {tag} is empty")
        J[tag] = current / areas[tag]
        term = fem.Constant(mesh, J[tag]) * v * dx(tag)
        source = term if source is None else source + term
    F_form = fem.form(ufl.inner(Hq, R * ufl.grad(v)) * dx - source)
    J_form = fem.form(ufl.inner(Nq * (R * ufl.grad(w)), R * ufl.grad(v)) * dx)
    rhs = petsc.assemble_vector(fem.form(source))
    rhs.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    scale = rhs.norm()
    rhs.destroy()
    timer = {"law": 0.0, "calls": 0}
    gradient = _gradient_evaluator(A, qd)  # compiled once; _newton updates A in place

    def update(u) -> tuple[np.ndarray, np.ndarray]:
        assert u is A
        g = gradient().reshape(-1, 2)
        B = np.stack([g[:, 1], -g[:, 0]], axis=1)
        t0 = time.perf_counter()
        before = inverse.law_calls
        H, N = inverse(B)
        timer["law"] += time.perf_counter() - t0
        timer["calls"] += inverse.law_calls - before
        Hq.x.array.reshape(-1, 2)[vdofs] = H
        Nq.x.array.reshape(-1, 2, 2)[dofs] = N
        Hq.x.scatter_forward()
        Nq.x.scatter_forward()
        return H, B

    (H, B), residuals, lin_its = _newton(
        A, F_form=F_form, J_form=J_form, bc0=bc0, update=update, rtol=rtol,
        max_newton=max_newton, linear_rtol=linear_rtol, scale=scale,
    )  # fmt: skip

    def region_means(u) -> dict[int, float]:
        return {
            t: comm.allreduce(fem.assemble_scalar(fem.form(u * dx(t))), op=MPI.SUM) / areas[t]
            for t in currents
        }

    means = region_means(A)
    dmeans: dict[int, float] = {}
    if sensitivity:  # K dA/ds = dF/ds: the source vector, with the tangent at the solution
        dA = fem.Function(V)
        _linear_solve(J_form, fem.form(source), bc0, dA, rtol=linear_rtol)
        dmeans = region_means(dA)
    log.info(
        "nonlinear macro (A_z): %d Newton iterations, residuals %s",
        len(residuals) - 1,
        [f"{r:.1e}" for r in residuals],
    )
    return NonlinearMacroSolution(
        potential=A,
        B=B.reshape(n_owned, nq, 2),
        H=H.reshape(n_owned, nq, 2),
        weights=point_weights(mesh, qd),
        newton_iterations=len(residuals) - 1,
        residuals=tuple(residuals),
        linear_iterations=int(lin_its),
        law_seconds=timer["law"],
        seconds=time.perf_counter() - t_start,
        n_points=int(n_owned * nq),
        formulation="vector",
        region_mean_potential=means,
        law_calls=int(timer["calls"]),
        region_mean_sensitivity=dmeans,
    )
