"""Linear macroscale magnetostatics with a quadrature-point permeability tensor.

Two formulations, both with Lagrange elements and the permeability of a
:class:`macro.coefficient.TensorCoefficient` (relative units; mu0 applied here):

**Reduced scalar potential** (:func:`solve_scalar_potential`), no free currents::

    -div(mu0 mu* grad rho) = 0,   rho = -H0 . x on the outer boundary (or a given function),
    H = -grad rho,  B = mu0 mu* H.

**Vector potential** (:func:`solve_vector_potential`), out-of-plane currents ``J_z``::

    div(R nu* R^T grad A_z / mu0) = -J_z,  nu* = mu*^-1,  R = [[0, 1], [-1, 0]],
    A_z = 0 on the outer boundary (or a given function),
    B = curl A = (dA/dy, -dA/dx) = R grad A,  H = nu* B / mu0.

The scalar potential works on 2D and 3D meshes, the vector potential A_z on 2D ones. Energies
are ``W = 1/2 int B . H dx``, per unit depth in 2D [J/m] and in joules in 3D; with currents
the inductance per unit depth is ``L = 2 W / I^2`` [H/m] (I in ampere-turns per coil side).
Linear systems are solved by PETSc CG with BoomerAMG (hypre; ``pc="gamg"`` for PETSc's own
AMG); a solve that does not converge raises :class:`magnetohom.errors.SolverError`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import magnetohom.dolfinx_compat as dfx

import numpy as np

from macro.coefficient import TensorCoefficient, point_weights, quadrature_metadata
from magnetohom.errors import InputError, SolverError

__all__ = ["MU0", "MacroSolution", "solve_scalar_potential", "solve_vector_potential"]

logger = logging.getLogger(__name__)

#: Vacuum permeability [H/m].
MU0 = 4e-7 * math.pi


@dataclass(frozen=True)
class MacroSolution:
    """Result of a macroscale solve.

    Attributes
    ----------
    formulation : {"scalar", "vector"}
    potential : dolfinx.fem.Function
        rho [A] (scalar) or A_z [Wb/m] (vector), Lagrange.
    B, H : ndarray, shape (n_owned_cells, n_qp, gdim), float64
        Flux density [T] and field [A/m] at the owned cells' quadrature points.
    weights : ndarray, shape (n_owned_cells, n_qp), float64
        Integration weights [m^gdim] of those points.
    energy : float
        ``1/2 int B . H dx`` over the whole mesh [J/m in 2D, J in 3D].
    region_energy : dict int -> float
        The same per cell tag.
    region_B : dict int -> list of float
        Mean B per cell tag [T].
    current : float or None
        Ampere-turns per coil side (vector potential with currents).
    inductance : float or None
        ``2 W / I^2`` [H/m].
    source_energy : float or None
        ``1/2 int J A dx`` [J/m]; equals ``energy`` up to the solver tolerance.
    iterations : int
        CG iterations.
    timings : dict str -> float
        Seconds per stage: the coefficient's (``sve_generation``, ``mu_evaluation``,
        ``coefficient_fill``) and ``assembly``, ``solve``, ``postprocess`` (max over ranks).
    n_quadrature_points : int
        Microstructured points (= SVEs) on all ranks.
    n_fallback : int
        Points a hybrid provider sent to FE.
    provider : str
    coefficient : TensorCoefficient
    """

    formulation: str
    potential: Any
    B: np.ndarray
    H: np.ndarray
    weights: np.ndarray
    energy: float
    region_energy: dict[int, float]
    region_B: dict[int, list[float]]
    current: float | None
    inductance: float | None
    source_energy: float | None
    iterations: int
    timings: dict[str, float]
    n_quadrature_points: int
    n_fallback: int
    provider: str
    coefficient: TensorCoefficient = field(repr=False)

    @property
    def total_seconds(self) -> float:
        """Sum of the stage times."""
        return float(sum(self.timings.values()))

    def summary(self) -> dict[str, Any]:
        """JSON-able numbers (no arrays)."""
        return {
            "formulation": self.formulation,
            "provider": self.provider,
            "energy_J_per_m": self.energy,
            "region_energy_J_per_m": {str(k): v for k, v in self.region_energy.items()},
            "region_mean_B_T": {str(k): v for k, v in self.region_B.items()},
            "current_A": self.current,
            "inductance_H_per_m": self.inductance,
            "source_energy_J_per_m": self.source_energy,
            "iterations": self.iterations,
            "n_quadrature_points": self.n_quadrature_points,
            "n_fallback": self.n_fallback,
            "timings_s": dict(self.timings),
            "total_s": self.total_seconds,
        }


def _boundary_dofs(V: Any, facet_tags: Any, boundary: int | None) -> np.ndarray:
    from dolfinx import fem, mesh

    msh = V.mesh
    fdim = msh.topology.dim - 1
    msh.topology.create_connectivity(fdim, msh.topology.dim)
    if boundary is None:
        facets = mesh.exterior_facet_indices(msh.topology)
    else:
        if facet_tags is None:
            raise InputError("a boundary tag needs facet tags")
        facets = facet_tags.indices[facet_tags.values == int(boundary)]
    n = msh.comm.allreduce(len(facets))
    if n == 0:
        raise InputError(f"no facets on the outer boundary (tag {boundary})")
    return fem.locate_dofs_topological(V, fdim, facets)


def _bc(V: Any, dofs: np.ndarray, value: Callable[[np.ndarray], np.ndarray]) -> Any:
    from dolfinx import fem

    g = fem.Function(V)
    g.interpolate(value)
    return fem.dirichletbc(g, dofs)


def _solve(a: Any, L: Any, bcs: list[Any], V: Any, *, rtol: float, pc: str, max_it: int):
    """Assemble and solve with CG + AMG; returns (solution, iterations, t_assembly, t_solve)."""
    from dolfinx import fem
    from dolfinx.fem import petsc
    from petsc4py import PETSc

    t0 = time.perf_counter()
    a_form, L_form = fem.form(a), fem.form(L)
    A = petsc.assemble_matrix(a_form, bcs=bcs)
    A.assemble()
    b = petsc.assemble_vector(L_form)
    petsc.apply_lifting(b, [a_form], [bcs])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    petsc.set_bc(b, bcs)
    t1 = time.perf_counter()
    ksp = PETSc.KSP().create(V.mesh.comm)
    ksp.setOperators(A)
    ksp.setType("cg")
    ksp.getPC().setType(pc)
    if pc == "hypre":
        ksp.getPC().setHYPREType("boomeramg")
    ksp.setTolerances(rtol=rtol, atol=1e-50, max_it=max_it)
    ksp.setFromOptions()
    u = fem.Function(V)
    ksp.solve(b, dfx.petsc_vector(u))
    u.x.scatter_forward()
    reason, its = ksp.getConvergedReason(), ksp.getIterationNumber()
    res = ksp.getResidualNorm()
    ksp.destroy()
    A.destroy()
    b.destroy()
    if reason <= 0:
        raise SolverError(
            f"macro CG did not converge (PETSc reason {reason}, {its} iterations, "
            f"residual {res:.3e})"
        )
    return u, its, t1 - t0, time.perf_counter() - t1


def _gradient_at_points(u: Any, degree: int) -> np.ndarray:
    """``grad u`` at the owned cells' quadrature points, ``(n_owned, n_qp, gdim)``."""
    return _gradient_evaluator(u, degree)()


def _gradient_evaluator(u: Any, degree: int) -> Callable[[], np.ndarray]:
    """A function of no arguments giving :func:`_gradient_at_points` of ``u``'s current values:
    the expression is compiled once (a Newton loop evaluates it at every iterate)."""
    import ufl
    from dolfinx import fem

    from macro.coefficient import _reference_points

    msh = u.function_space.mesh
    ref, _ = _reference_points(msh, degree)
    n_owned = msh.topology.index_map(msh.topology.dim).size_local
    gdim = msh.geometry.dim
    if n_owned == 0:
        return lambda: np.zeros((0, ref.shape[0], gdim))
    expr = fem.Expression(ufl.grad(u), ref)
    cells = np.arange(n_owned)

    def evaluate() -> np.ndarray:
        values = dfx.eval_expression(expr, msh, cells)
        return values.reshape(n_owned, ref.shape[0], gdim)

    return evaluate


def _region_sums(
    coef: TensorCoefficient, weights: np.ndarray, density: np.ndarray, B: np.ndarray
) -> tuple[float, dict[int, float], dict[int, list[float]]]:
    """Total and per-tag integrals of an energy density, and per-tag mean B."""
    from mpi4py import MPI

    comm = coef.mu.function_space.mesh.comm
    total = comm.allreduce(float(np.sum(weights * density)), op=MPI.SUM)
    energies: dict[int, float] = {}
    means: dict[int, list[float]] = {}
    tags = coef.cell_tags
    if tags is not None:
        n_owned = weights.shape[0]
        cell_tag = np.full(n_owned, -1, dtype=np.int64)
        keep = tags.indices < n_owned
        cell_tag[tags.indices[keep]] = tags.values[keep]
        all_tags = sorted(set(comm.allreduce(set(np.unique(tags.values).tolist()), op=MPI.BOR)))
        for t in all_tags:
            sel = cell_tag == t
            w = weights[sel]
            e = comm.allreduce(float(np.sum(w * density[sel])), op=MPI.SUM)
            area = comm.allreduce(float(np.sum(w)), op=MPI.SUM)
            flux = comm.allreduce(np.einsum("cq,cqi->i", w, B[sel]), op=MPI.SUM)
            energies[int(t)] = e
            means[int(t)] = (flux / area).tolist() if area > 0 else [0.0] * B.shape[-1]
    return total, energies, means


def _check_2d(coef: TensorCoefficient) -> Any:
    msh = coef.mu.function_space.mesh
    if msh.geometry.dim != 2 or msh.topology.dim != 2:
        raise InputError(f"the vector potential A_z is 2D: mesh is {msh.geometry.dim}D")
    return msh


def solve_scalar_potential(
    coef: TensorCoefficient,
    *,
    H0: tuple[float, ...] = (1000.0, 0.0),
    facet_tags: Any = None,
    boundary: int | None = None,
    boundary_value: Callable[[np.ndarray], np.ndarray] | None = None,
    degree: int = 1,
    rtol: float = 1e-10,
    pc: str = "hypre",
    max_it: int = 1000,
) -> MacroSolution:
    """Reduced scalar potential in an applied field, in 2D or 3D.

    Parameters
    ----------
    coef : TensorCoefficient
        mu* at the quadrature points (relative permeability).
    H0 : tuple of float, length gdim
        Applied field [A/m]; the boundary value is ``rho = -H0 . x`` unless ``boundary_value``.
    facet_tags, boundary : optional
        Facet tags and the tag of the outer boundary (default: all exterior facets).
    boundary_value : callable, optional
        ``rho(x)`` on the boundary, x of shape (3, N) [m] -> (N,) [A].
    degree : int
        Lagrange degree of rho.
    rtol : float
        CG relative tolerance.
    pc : {"hypre", "gamg"}
    """
    import ufl
    from dolfinx import fem

    msh = coef.mu.function_space.mesh
    gdim = msh.geometry.dim
    if gdim not in (2, 3) or msh.topology.dim != gdim:
        raise InputError(f"the scalar potential needs a 2D or 3D volume mesh: mesh is {gdim}D")
    timings = dict(coef.timings)
    h0 = np.asarray(H0, dtype=np.float64)
    if h0.shape != (gdim,) or not np.all(np.isfinite(h0)):
        raise InputError(f"H0 must be {gdim} finite numbers on a {gdim}D mesh: got {H0!r}")
    V = dfx.functionspace(msh, "CG", int(degree))
    value = boundary_value or (lambda x: -np.einsum("i,i...->...", h0, x[:gdim]))
    bcs = [_bc(V, _boundary_dofs(V, facet_tags, boundary), value)]
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    dx = ufl.Measure("dx", domain=msh, metadata=quadrature_metadata(coef.degree))
    a = ufl.inner(coef.mu * ufl.grad(u), ufl.grad(v)) * dx
    L = fem.Constant(msh, 0.0) * v * dx
    rho, its, t_asm, t_solve = _solve(a, L, bcs, V, rtol=rtol, pc=pc, max_it=max_it)
    t0 = time.perf_counter()
    H = -_gradient_at_points(rho, coef.degree)
    mu = coef.tensors()
    B = MU0 * np.einsum("cqij,cqj->cqi", mu, H)
    weights = point_weights(msh, coef.degree)
    density = 0.5 * np.einsum("cqi,cqi->cq", B, H)
    energy, region_energy, region_B = _region_sums(coef, weights, density, B)
    timings.update(assembly=t_asm, solve=t_solve, postprocess=time.perf_counter() - t0)
    timings = _max_over_ranks(msh.comm, timings)
    rho.name = "rho"
    return MacroSolution(
        "scalar", rho, B, H, weights, energy, region_energy, region_B, None, None, None, its,
        timings, coef.n_quadrature_points, coef.n_fallback, coef.provider, coef,
    )  # fmt: skip


def solve_vector_potential(
    coef: TensorCoefficient,
    *,
    currents: Mapping[int, float] | None = None,
    cell_tags: Any = None,
    facet_tags: Any = None,
    boundary: int | None = None,
    boundary_value: Callable[[np.ndarray], np.ndarray] | None = None,
    degree: int = 1,
    rtol: float = 1e-10,
    pc: str = "hypre",
    max_it: int = 1000,
) -> MacroSolution:
    """2D vector potential A_z with out-of-plane currents.

    Parameters
    ----------
    coef : TensorCoefficient
        mu* at the quadrature points; nu* = mu*^-1 is formed point by point.
    currents : dict tag -> float
        Total current [A, ampere-turns] through each tagged region (uniform J = I / area, the
        area measured on the mesh). The inductance uses ``I = max |I_tag|``.
    cell_tags : MeshTags, optional
        Defaults to ``coef.cell_tags``.
    facet_tags, boundary : optional
        Facet tags and the tag of the outer boundary (default: all exterior facets).
    boundary_value : callable, optional
        ``A_z(x)`` on the boundary [Wb/m]; default 0.
    """
    import ufl
    from dolfinx import fem
    from mpi4py import MPI

    from macro.coefficient import inverse_tensor_function

    msh = _check_2d(coef)
    timings = dict(coef.timings)
    comm = msh.comm
    currents = {int(k): float(v) for k, v in (currents or {}).items()}
    tags = coef.cell_tags if cell_tags is None else cell_tags
    if currents and tags is None:
        raise InputError("currents in regions need cell tags")
    V = dfx.functionspace(msh, "CG", int(degree))
    # solve for A / mu0 (O(1) entries), scale back afterwards
    if boundary_value is None:
        value = lambda x: np.zeros(x.shape[1])  # noqa: E731
    else:
        value = lambda x: boundary_value(x) / MU0  # noqa: E731
    bcs = [_bc(V, _boundary_dofs(V, facet_tags, boundary), value)]
    nu = inverse_tensor_function(coef)
    R = ufl.as_matrix([[0.0, 1.0], [-1.0, 0.0]])
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    md = quadrature_metadata(coef.degree)
    dx = ufl.Measure("dx", domain=msh, subdomain_data=tags, metadata=md)
    a = ufl.inner(nu * (R * ufl.grad(u)), R * ufl.grad(v)) * dx
    L = fem.Constant(msh, 0.0) * v * dx
    J: dict[int, float] = {}
    for tag, current in currents.items():
        area = comm.allreduce(fem.assemble_scalar(fem.form(1.0 * dx(tag))), op=MPI.SUM)
        if area <= 0:
            raise InputError(f"current region {tag} is empty")
        J[tag] = current / area
        L = L + fem.Constant(msh, J[tag]) * v * dx(tag)
    a_tilde, its, t_asm, t_solve = _solve(a, L, bcs, V, rtol=rtol, pc=pc, max_it=max_it)
    t0 = time.perf_counter()
    A = fem.Function(V, name="A_z")
    A.x.array[:] = MU0 * a_tilde.x.array
    grad = _gradient_at_points(A, coef.degree)
    B = np.stack([grad[..., 1], -grad[..., 0]], axis=-1)
    nu_pts = np.linalg.inv(coef.tensors())
    H = np.einsum("cqij,cqj->cqi", nu_pts, B) / MU0
    weights = point_weights(msh, coef.degree)
    density = 0.5 * np.einsum("cqi,cqi->cq", B, H)
    energy, region_energy, region_B = _region_sums(coef, weights, density, B)
    source = None
    current = None
    inductance = None
    if currents:
        src = sum(fem.Constant(msh, j) * A * dx(t) for t, j in J.items())
        source = 0.5 * comm.allreduce(fem.assemble_scalar(fem.form(src)), op=MPI.SUM)
        current = max(abs(c) for c in currents.values())
        inductance = 2.0 * energy / current**2 if current > 0 else None
    timings.update(assembly=t_asm, solve=t_solve, postprocess=time.perf_counter() - t0)
    timings = _max_over_ranks(comm, timings)
    return MacroSolution(
        "vector", A, B, H, weights, energy, region_energy, region_B, current, inductance,
        source, its, timings, coef.n_quadrature_points, coef.n_fallback, coef.provider, coef,
    )  # fmt: skip


def _max_over_ranks(comm: Any, timings: dict[str, float]) -> dict[str, float]:
    from mpi4py import MPI

    return {k: comm.allreduce(float(v), op=MPI.MAX) for k, v in timings.items()}
