"""Nonlinear macroscale magnetostatics (FE²) with an effective law at every quadrature point.

Reduced scalar potential, no free currents, in 2D or 3D::

    -div B(H) = 0,   H = -grad rho,   rho = -H0 . x on the outer boundary,

where ``B(H)`` and its tangent ``dB/dH`` come, at every quadrature point, from a *point law*:
a callable ``law(H (M, d)) -> (B (M, d), dB/dH (M, d, d))`` over the owned cells' quadrature
points in the order of :func:`macro.coefficient.quadrature_points` (cell-major).  Point laws:

* :class:`PointLaws` -- linear regions (air, constant ``mu_r``) plus, on the composite points,
  any ``H -> (B, tangent)`` provider: the learned convex law
  (``surrogate.convex_law.ConvexLawProvider``) or :class:`CellProblemLaw`;
* :class:`CellProblemLaw` -- the nested FE² reference: the nonlinear cell problem
  (:class:`micro.nonlinear.NonlinearHomogenizer`) of every point's microstructure, solved in
  every macroscopic Newton iteration (each started from its previous solution).

Newton on ``rho`` with the consistent tangent ``int grad v . (dB/dH) grad w dx`` (SPD), CG +
BoomerAMG for the linear systems, and backtracking on the residual norm; it stops when the
residual norm is at most ``rtol`` times its size (the norm of the full residual, boundary
rows included) and raises
:class:`~magnetohom.errors.SolverError` otherwise.  ``macro`` imports neither ``micro`` nor
TensorFlow at import time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from macro.solve import MU0, _boundary_dofs, _gradient_at_points
from magnetohom.errors import InputError, SolverError

__all__ = [
    "CellProblemLaw",
    "NonlinearMacroSolution",
    "PointLaws",
    "solve_scalar_potential_nl",
]

log = logging.getLogger(__name__)

PointLaw = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class NonlinearMacroSolution:
    """Result of :func:`solve_scalar_potential_nl`.

    Attributes
    ----------
    potential : dolfinx.fem.Function
        ``rho`` [A].
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
        Time in the point law (all calls) and in total.
    n_points : int
        Quadrature points (owned, this rank).
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
        if self.composite.any():
            Bc, Tc = self.provider(H[self.composite])
            B[self.composite], T[self.composite] = Bc, Tc
        return B, T


class CellProblemLaw:
    """The nested FE² reference: a nonlinear cell problem per point and call.

    Parameters
    ----------
    images : ndarray, shape (K, n, ..., n), bool
        Microstructure of each point (True = inclusion).
    laws : (matrix law, inclusion law)
        :mod:`micro.phase_laws` laws.
    rtol : float
        Newton tolerance of the cell problems.
    """

    def __init__(self, images: np.ndarray, laws: Sequence[Any], *, rtol: float = 1e-9) -> None:
        from micro.nonlinear import NonlinearHomogenizer

        self.images = np.asarray(images, dtype=bool)
        self.laws = list(laws)
        self.cell = NonlinearHomogenizer(self.images.shape[1:], rtol=rtol)
        self._last: list[Any] = [None] * len(self.images)
        self.solves = 0
        self.newton_iterations = 0

    def __call__(self, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        H = np.asarray(H, dtype=np.float64)
        if len(H) != len(self.images):
            raise InputError(f"{len(H)} fields for {len(self.images)} cells")
        d = H.shape[1]
        B, T = np.empty((len(H), d)), np.empty((len(H), d, d))
        for k, (image, h) in enumerate(zip(self.images, H, strict=True)):
            prev = self._last[k]
            init = None
            if prev is not None:
                init = prev.fluctuation + np.tensordot(h - prev.H, prev.sensitivity, axes=1)
            res = self.cell.solve(image, self.laws, h, initial=init)
            self._last[k] = res
            B[k], T[k] = res.B, res.tangent
            self.solves += 1
            self.newton_iterations += res.newton_iterations
        return B, T


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
    from dolfinx.fem import petsc
    from petsc4py import PETSc

    t_start = time.perf_counter()
    gdim = mesh.geometry.dim
    h0 = np.asarray(H0, dtype=np.float64)
    if h0.shape != (gdim,) or not np.all(np.isfinite(h0)):
        raise InputError(f"H0 must be {gdim} finite numbers: got {H0!r}")
    V = dfx.functionspace(mesh, "CG", int(degree))
    qd = int(quadrature_degree)
    Bq = fem.Function(quadrature_space(mesh, qd, "vector"))
    Tq = fem.Function(quadrature_space(mesh, qd, "tensor"))
    pts, _ = quadrature_points(mesh, qd)
    n_owned, nq = pts.shape[:2]
    dofs = _owned_dofs(Tq.function_space, n_owned, nq).ravel()
    vdofs = _owned_dofs(Bq.function_space, n_owned, nq).ravel()

    rho = fem.Function(V, name="rho")
    rho.interpolate(lambda x: -np.einsum("i,i...->...", h0, x[:gdim]))
    zero = fem.Function(V)
    bc0 = fem.dirichletbc(zero, _boundary_dofs(V, facet_tags, boundary))
    v, w = ufl.TestFunction(V), ufl.TrialFunction(V)
    dx = ufl.Measure("dx", domain=mesh, metadata=quadrature_metadata(qd))
    F_form = fem.form(-ufl.inner(Bq, ufl.grad(v)) * dx)
    J_form = fem.form(ufl.inner(Tq * ufl.grad(w), ufl.grad(v)) * dx)
    ksp = PETSc.KSP().create(mesh.comm)
    ksp.setType("cg")
    ksp.getPC().setType("hypre")
    ksp.getPC().setHYPREType("boomeramg")
    ksp.setTolerances(rtol=linear_rtol, atol=1e-300, max_it=2000)
    du = fem.Function(V)
    law_seconds = 0.0

    def update(u) -> tuple[np.ndarray, np.ndarray]:
        nonlocal law_seconds
        H = -_gradient_at_points(u, qd).reshape(-1, gdim)
        t0 = time.perf_counter()
        B, T = law(H)
        law_seconds += time.perf_counter() - t0
        B, T = np.asarray(B, dtype=np.float64), np.asarray(T, dtype=np.float64)
        if B.shape != H.shape or T.shape != (len(H), gdim, gdim):
            raise InputError(f"the point law returned B {B.shape} and tangent {T.shape}")
        if not (np.all(np.isfinite(B)) and np.all(np.isfinite(T))):
            raise SolverError("the point law returned NaN or inf")
        Bq.x.array.reshape(-1, gdim)[vdofs] = B
        Tq.x.array.reshape(-1, gdim, gdim)[dofs] = T
        Bq.x.scatter_forward()
        Tq.x.scatter_forward()
        return H, B

    def residual():
        """The residual with the Dirichlet rows zeroed, and the norm of the full one (which
        carries the flux through the boundary: the size of the residual without
        cancellation)."""
        b = petsc.assemble_vector(F_form)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        full = b.norm()
        petsc.set_bc(b, [bc0])
        return b, full

    H, B = update(rho)
    b, size = residual()
    residuals: list[float] = []
    lin_its = 0
    rnorm = b.norm()
    for it in range(max_newton + 1):
        rel = rnorm / size if size > 0 else 0.0
        residuals.append(rel)
        if rel <= rtol:
            break
        if it == max_newton:
            raise SolverError(
                f"macro Newton did not converge in {max_newton} iterations (relative residual "
                f"{rel:.2e})"
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
        base = rho.x.array.copy()
        alpha = 1.0
        for _ in range(12):
            rho.x.array[:] = base + alpha * du.x.array
            H, B = update(rho)
            b.destroy()
            b, size = residual()
            new = b.norm()
            if new < (1 - 1e-4 * alpha) * rnorm:
                break
            alpha *= 0.5
        else:
            raise SolverError(f"macro Newton line search failed (relative residual {rel:.2e})")
        rnorm = new
    b.destroy()
    ksp.destroy()
    weights = point_weights(mesh, qd)
    log.info(
        "nonlinear macro: %d Newton iterations, residuals %s",
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
        law_seconds=law_seconds,
        seconds=time.perf_counter() - t_start,
        n_points=int(n_owned * nq),
    )
