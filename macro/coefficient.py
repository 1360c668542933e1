"""A quadrature-space permeability tensor filled from a constitutive provider.

:func:`build_mu_coefficient` builds a DOLFINx ``Quadrature`` tensor space on a mesh, finds the
physical coordinates of the quadrature points of the locally owned cells, generates an SVE at
every point of the microstructured cells (:class:`macro.material.Material`), asks a provider for
``mu*`` and fills the Function. The result plugs into any DOLFINx form::

    coef = build_mu_coefficient(mesh, provider, material, degree=2)
    a = ufl.inner(coef.mu * ufl.grad(u), ufl.grad(v)) * coef.dx()

Cells outside the microstructured region (air, coil, solid iron) get a constant tensor through
their cell tags.

Global point index and MPI
--------------------------
The point ``q`` of a cell has the global index ``g = original_cell_index * n_qp + q``, where
``original_cell_index`` is the cell's position in the mesh as read (gmsh or the built-in
generators), independent of the partition. With ``balance=True`` the microstructured points of
all ranks are dealt out round-robin in the order of ``g`` (rank ``r`` takes every ``size``-th,
so each rank gets the same number of points and a share of every region: the cost per SVE
varies with the local volume fraction, and a contiguous split gave one rank the dense part of
a graded core) and the tensors are sent back; providers are always called on
one rank's own points (FE solves on ``COMM_SELF``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import magnetohom.dolfinx_compat as dfx

import numpy as np

from macro.material import Material
from macro.provider import (
    ConstitutiveProvider,
    check_materials,
    check_provider,
    check_resolution,
    evaluate_provider,
    provider_name,
)
from magnetohom.errors import InputError

__all__ = [
    "TensorCoefficient",
    "build_mu_coefficient",
    "constant_tensor",
    "inverse_tensor_function",
    "point_weights",
    "quadrature_metadata",
    "quadrature_points",
    "quadrature_space",
]

logger = logging.getLogger(__name__)

STAGES = ("sve_generation", "mu_evaluation", "coefficient_fill")


def quadrature_metadata(degree: int) -> dict[str, Any]:
    """``dx`` metadata matching a quadrature space of this degree."""
    return {"quadrature_degree": int(degree), "quadrature_scheme": "default"}


def quadrature_space(mesh: Any, degree: int, shape: str = "tensor") -> Any:
    """Quadrature function space of ``shape`` in {"scalar", "vector", "tensor"}."""
    d = mesh.geometry.dim
    shapes = {"scalar": (), "vector": (d,), "tensor": (d, d)}
    if shape not in shapes:
        raise InputError(f"unknown quadrature space shape {shape!r}")
    return dfx.quadrature_space(mesh, degree, shapes[shape])


def _reference_points(mesh: Any, degree: int) -> tuple[np.ndarray, np.ndarray]:
    import basix

    celltype = getattr(basix.CellType, dfx.cell_name(mesh))
    return basix.make_quadrature(celltype, int(degree))


def quadrature_points(mesh: Any, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Physical quadrature points of the owned cells and their global indices.

    Returns
    -------
    points : ndarray, shape (n_owned_cells, n_qp, gdim), float64
        Coordinates in mesh units, in the order of the quadrature space's dofs.
    global_index : ndarray, shape (n_owned_cells, n_qp), int64
        ``original_cell_index * n_qp + q``, the same in serial and parallel runs.
    """
    import ufl
    from dolfinx import fem

    ref, _ = _reference_points(mesh, degree)
    tdim, gdim = mesh.topology.dim, mesh.geometry.dim
    n_owned = mesh.topology.index_map(tdim).size_local
    nq = ref.shape[0]
    cells = np.arange(n_owned, dtype=np.int32)
    if n_owned:
        expr = fem.Expression(ufl.SpatialCoordinate(mesh), ref)
        pts = dfx.eval_expression(expr, mesh, cells).reshape(n_owned, nq, gdim)
    else:
        pts = np.zeros((0, nq, gdim))
    orig = dfx.original_cell_index(mesh)[:n_owned]
    gid = orig[:, None] * nq + np.arange(nq, dtype=np.int64)[None, :]
    return np.ascontiguousarray(pts), gid


def point_weights(mesh: Any, degree: int) -> np.ndarray:
    """Integration weights of the owned cells' quadrature points, ``(n_owned_cells, n_qp)``.

    ``sum(w * f)`` over all ranks integrates f over the mesh (weights include ``|det J|``,
    units of area in 2D).
    """
    import ufl
    from dolfinx import fem

    ref, w = _reference_points(mesh, degree)
    n_owned = mesh.topology.index_map(mesh.topology.dim).size_local
    if n_owned == 0:
        return np.zeros((0, w.size))
    expr = fem.Expression(abs(ufl.JacobianDeterminant(mesh)), ref)
    det = dfx.eval_expression(expr, mesh, np.arange(n_owned)).reshape(n_owned, w.size)
    return det * w[None, :]


def _owned_dofs(space: Any, n_owned: int, nq: int) -> np.ndarray:
    return dfx.cell_dofs(space)[:n_owned]


def constant_tensor(mu: Any, dim: int) -> np.ndarray:
    """``(d, d)`` float64 SPD tensor from a scalar or a matrix."""
    from macro.provider import check_tensors

    arr = np.asarray(mu, dtype=np.float64)
    if arr.ndim == 0:
        arr = float(arr) * np.eye(dim)
    return check_tensors(arr[None], dim=dim, provider="constant region")[0]


@dataclass(frozen=True)
class TensorCoefficient:
    """A permeability tensor held at the quadrature points of a mesh.

    Attributes
    ----------
    mu : dolfinx.fem.Function
        Quadrature tensor function, relative permeability (dimensionless), shape (d, d).
    degree : int
        Quadrature degree; forms must use :meth:`dx` (or :attr:`metadata`).
    volume_fraction : dolfinx.fem.Function
        Quadrature scalar: measured inclusion fraction of each SVE (0 outside the composite).
    provider : str
        Name of the provider.
    n_quadrature_points : int
        Microstructured points on all ranks (= SVEs evaluated).
    n_local_points : int
        Microstructured points in this rank's owned cells.
    n_fallback : int
        Samples a hybrid provider sent to FE (all ranks).
    timings : dict
        Seconds per stage (``sve_generation``, ``mu_evaluation``, ``coefficient_fill``), the
        maximum over ranks.
    cell_tags : dolfinx.mesh.MeshTags or None
        The tags used to pick the regions (for :meth:`dx` subdomains).
    """

    mu: Any
    degree: int
    volume_fraction: Any
    provider: str
    n_quadrature_points: int
    n_local_points: int
    n_fallback: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    cell_tags: Any = None

    @property
    def metadata(self) -> dict[str, Any]:
        return quadrature_metadata(self.degree)

    def dx(self, subdomain: int | tuple[int, ...] | None = None) -> Any:
        """The cell measure with matching quadrature (optionally restricted to tags)."""
        import ufl

        mesh = self.mu.function_space.mesh
        measure = ufl.Measure(
            "dx", domain=mesh, subdomain_data=self.cell_tags, metadata=self.metadata
        )
        return measure if subdomain is None else measure(subdomain)

    def tensors(self) -> np.ndarray:
        """``(n_owned_cells, n_qp, d, d)`` values at the owned cells' points."""
        space = self.mu.function_space
        mesh = space.mesh
        d = mesh.geometry.dim
        n_owned = mesh.topology.index_map(mesh.topology.dim).size_local
        nq = _reference_points(mesh, self.degree)[1].size
        dofs = _owned_dofs(space, n_owned, nq)
        return self.mu.x.array.reshape(-1, d, d)[dofs]


def _region_cells(
    mesh: Any, cell_tags: Any, composite: Any, constants: Mapping[int, Any]
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Owned cells of the composite and of each constant region."""
    tdim = mesh.topology.dim
    n_owned = mesh.topology.index_map(tdim).size_local
    if cell_tags is None:
        if constants:
            raise InputError("constant regions need cell tags")
        return np.arange(n_owned, dtype=np.int32), {}
    tags = np.full(n_owned, -1, dtype=np.int64)
    idx = np.asarray(cell_tags.indices)
    vals = np.asarray(cell_tags.values)
    keep = idx < n_owned
    tags[idx[keep]] = vals[keep]
    comp_tags = () if composite is None else np.atleast_1d(composite).astype(np.int64)
    comp = np.flatnonzero(np.isin(tags, comp_tags)).astype(np.int32)
    regions = {int(t): np.flatnonzero(tags == int(t)).astype(np.int32) for t in constants}
    return comp, regions


def _balanced_evaluate(
    comm: Any,
    points: np.ndarray,
    gid: np.ndarray,
    evaluate: Any,
    balance: bool,
) -> np.ndarray:
    """Evaluate ``evaluate(points, gid) -> (n, d, d)`` with the work split evenly over ranks."""
    if comm.size == 1 or not balance:
        return evaluate(points, gid)
    all_gid = np.concatenate(comm.allgather(gid))
    all_pts = np.concatenate(comm.allgather(points))
    order = np.argsort(all_gid, kind="stable")
    # every size-th point in global order: neighbouring points (similar volume fraction, so
    # similar cost per SVE) go to different ranks, and each rank gets a share of every region
    mine = order[comm.rank :: comm.size]
    mu_mine = evaluate(all_pts[mine], all_gid[mine])
    d = mu_mine.shape[-1] if mu_mine.ndim == 3 else points.shape[-1]
    parts = comm.allgather(mu_mine.reshape(-1, d, d))
    mu_sorted = np.empty((all_gid.size, d, d))
    for r, part in enumerate(parts):
        mu_sorted[r :: comm.size] = part
    sorted_gid = all_gid[order]
    pos = np.searchsorted(sorted_gid, gid)
    return mu_sorted[pos]


def build_mu_coefficient(
    mesh: Any,
    provider: ConstitutiveProvider,
    material: Material | None,
    *,
    degree: int = 1,
    cell_tags: Any = None,
    composite: int | tuple[int, ...] | None = None,
    constants: Mapping[int, Any] | None = None,
    batch_size: int = 256,
    balance: bool = True,
) -> TensorCoefficient:
    """Fill a quadrature tensor coefficient ``mu*(x)`` from a provider.

    Parameters
    ----------
    mesh : dolfinx.mesh.Mesh
        Macro mesh (any cell type; coordinates in metres).
    provider : ConstitutiveProvider
        ``provider(images (N, n, ..., n) bool) -> (N, d, d)``; its ``dim`` must equal the
        mesh's geometric dimension.
    material : Material or None
        Microstructure description; ``None`` only if there is no composite region.
    degree : int
        Quadrature degree (1: one point per triangle; 2: three).
    cell_tags : dolfinx.mesh.MeshTags, optional
        Cell tags; ``None`` makes the whole mesh composite.
    composite : int or tuple of int, optional
        Tag(s) of the microstructured cells (with ``cell_tags``; ``None``: no composite).
    constants : dict tag -> float or (d, d)
        Constant relative permeability of other tagged regions. Cells neither composite nor
        listed get ``mu = 1`` (air).
    batch_size : int
        SVEs generated and evaluated per provider call (bounds memory).
    balance : bool
        Split the microstructured points evenly over MPI ranks (see the module docstring).

    Returns
    -------
    TensorCoefficient

    Raises
    ------
    InputError
        Provider dimension differs from the mesh, non-SPD provider output (naming the provider
        and sample), bad region tags.
    """
    from dolfinx import fem
    from mpi4py import MPI

    comm = mesh.comm
    gdim = mesh.geometry.dim
    provider = check_provider(provider)
    name = provider_name(provider)
    if int(provider.dim) != gdim:
        raise InputError(f"provider {name!r} is {provider.dim}D but the mesh is {gdim}D")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1: got {batch_size}")
    constants = dict(constants or {})
    const_mu = {int(t): constant_tensor(m, gdim) for t, m in constants.items()}
    comp_cells, regions = _region_cells(mesh, cell_tags, composite, const_mu)

    t0 = time.perf_counter()
    space = quadrature_space(mesh, degree, "tensor")
    vf_space = quadrature_space(mesh, degree, "scalar")
    points, gid = quadrature_points(mesh, degree)
    nq = points.shape[1]
    n_owned = points.shape[0]
    dofs = _owned_dofs(space, n_owned, nq)
    mu_fn = fem.Function(space, name="mu")
    vf_fn = fem.Function(vf_space, name="volume_fraction")
    values = mu_fn.x.array.reshape(-1, gdim, gdim)
    values[:] = np.eye(gdim)
    for tag, cells in regions.items():
        values[dofs[cells].ravel()] = const_mu[tag]
    setup = time.perf_counter() - t0

    n_local = int(comp_cells.size * nq)
    n_global = comm.allreduce(n_local, op=MPI.SUM)
    if n_global and material is None:
        raise InputError("a composite region needs a material")
    if material is not None and material.dim != gdim:
        raise InputError(f"material is {material.dim}D but the mesh is {gdim}D")
    if material is not None:
        check_materials(provider, material)
    resolution = None
    if material is not None:
        resolution = check_resolution(provider, material.resolution) or material.resolution or 64
    timing = {"sve_generation": 0.0, "mu_evaluation": 0.0}
    measured: list[np.ndarray] = []
    fallback_before = int(provider.n_fallback)

    def evaluate(pts: np.ndarray, ids: np.ndarray) -> np.ndarray:
        out = np.empty((pts.shape[0], gdim, gdim))
        vfs = np.empty(pts.shape[0])
        for start in range(0, pts.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            t1 = time.perf_counter()
            batch = material.generate(pts[sl], ids[sl], resolution=resolution)
            t2 = time.perf_counter()
            out[sl] = evaluate_provider(provider, batch.images, dim=gdim)
            t3 = time.perf_counter()
            vfs[sl] = batch.volume_fraction
            timing["sve_generation"] += t2 - t1
            timing["mu_evaluation"] += t3 - t2
        measured.append(np.column_stack([ids.astype(np.float64), vfs]))
        return out

    comp_pts = points[comp_cells].reshape(-1, gdim)
    comp_gid = gid[comp_cells].ravel()
    t4 = time.perf_counter()
    if n_global:
        mu_comp = _balanced_evaluate(comm, comp_pts, comp_gid, evaluate, balance)
        vf_pairs = measured[0] if measured else np.zeros((0, 2))
        if comm.size > 1 and balance:
            vf_pairs = np.concatenate(comm.allgather(vf_pairs))
            vf_pairs = vf_pairs[np.argsort(vf_pairs[:, 0], kind="stable")]
            pos = np.searchsorted(vf_pairs[:, 0], comp_gid.astype(np.float64))
            vf_comp = vf_pairs[pos, 1]
        else:
            vf_comp = vf_pairs[:, 1]
        comp_dofs = dofs[comp_cells].ravel()
        values[comp_dofs] = mu_comp
        vf_fn.x.array[comp_dofs] = vf_comp
    mu_fn.x.scatter_forward()
    vf_fn.x.scatter_forward()
    t5 = time.perf_counter()
    fill = setup + (t5 - t4) - timing["sve_generation"] - timing["mu_evaluation"]
    timing["coefficient_fill"] = max(fill, 0.0)
    timing = {k: comm.allreduce(v, op=MPI.MAX) for k, v in timing.items()}
    n_fb = int(provider.n_fallback) - fallback_before
    n_fb = comm.allreduce(n_fb, op=MPI.SUM)
    logger.info(
        "mu* from %s at %d points (%d per cell): generation %.2f s, evaluation %.2f s",
        name, n_global, nq, timing["sve_generation"], timing["mu_evaluation"],
    )  # fmt: skip
    return TensorCoefficient(
        mu=mu_fn,
        degree=int(degree),
        volume_fraction=vf_fn,
        provider=name,
        n_quadrature_points=int(n_global),
        n_local_points=n_local,
        n_fallback=n_fb,
        timings=timing,
        cell_tags=cell_tags,
    )


def inverse_tensor_function(coef: TensorCoefficient, name: str = "nu") -> Any:
    """Quadrature function of ``mu^-1`` at every point (the reluctivity, relative units)."""
    from dolfinx import fem

    space = coef.mu.function_space
    d = space.mesh.geometry.dim
    nu = fem.Function(space, name=name)
    nu.x.array[:] = np.linalg.inv(coef.mu.x.array.reshape(-1, d, d)).ravel()
    return nu
