"""Gmsh geometry of the 3D demo: a composite spherical shell in a cubic air box.

:func:`shell_geometry` builds a spherical shell of radii ``r_inner < r_outer`` (with
``r_inner = 0`` a solid sphere, a flux concentrator) centred in the cube ``[-L, L]^3`` of air.
Regions ``shield``, ``cavity`` (if any), ``air``; boundary ``outer`` (the six faces of the
cube). Tetrahedra have the size ``(r_outer - r_inner) / size`` in the shell and grow to
``air_factor`` times that towards the box. The model is built on rank 0 and distributed by
:func:`dolfinx.io.gmshio.model_to_mesh`, as the 2D geometries of :mod:`macro.geometry`.

The closed form that the tests check it against: a shell of constant permeability mu in a
uniform field H0 has a uniform cavity field and the shielding factor
``S = 1 + 2 (mu - 1)^2 / (9 mu) (1 - (r_inner / r_outer)^3)`` (relative to the applied field),
a solid sphere the interior field ``H_in = 3 H0 / (mu + 2)``.
"""

from __future__ import annotations

import logging
from typing import Any

from macro.geometry import (
    SIZES,
    MacroMesh,
    _check_shell,
    _fragment_and_name,
    _gmsh_session,
    _to_dolfinx,
    resolve_size,
)

__all__ = ["shell_geometry"]

logger = logging.getLogger(__name__)


def _tag_volumes(gmsh: Any, pieces: dict[str, list[tuple[int, int]]], half_width: float) -> None:
    """Fragment the volumes, name the physical groups (later pieces win overlaps), tag the box."""
    _fragment_and_name(gmsh, pieces, 3)
    eps = 1e-4 * half_width
    outer = []
    for _, tag in gmsh.model.getEntities(2):
        x0, y0, z0, x1, y1, z1 = gmsh.model.getBoundingBox(2, tag)
        for lo, hi in ((x0, x1), (y0, y1), (z0, z1)):
            if abs(hi - lo) < eps and abs(abs(lo) - half_width) < eps:
                outer.append(tag)
                break
    gmsh.model.addPhysicalGroup(2, outer, 100)
    gmsh.model.setPhysicalName(2, 100, "outer")


def _size_field(gmsh: Any, shell_surfaces: list[int], fine: float, coarse: float) -> None:
    fields = gmsh.model.mesh.field
    dist = fields.add("Distance")
    fields.setNumbers(dist, "FacesList", shell_surfaces)
    thr = fields.add("Threshold")
    fields.setNumber(thr, "InField", dist)
    fields.setNumber(thr, "SizeMin", fine)
    fields.setNumber(thr, "SizeMax", coarse)
    fields.setNumber(thr, "DistMin", fine)
    fields.setNumber(thr, "DistMax", 3 * coarse)
    fields.setAsBackgroundMesh(thr)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)


def shell_geometry(
    comm: Any = None,
    *,
    r_outer: float = 0.02,
    r_inner: float = 0.012,
    half_width: float = 0.06,
    size: str | float = "small",
    air_factor: float = 4.0,
) -> MacroMesh:
    """A composite spherical shell (or solid sphere) in a cubic air box (tetrahedra).

    Parameters
    ----------
    comm : mpi4py communicator, optional
        Default ``MPI.COMM_WORLD``.
    r_outer, r_inner : float
        Shell radii [m] (``0 <= r_inner < r_outer < half_width``).
    half_width : float
        Half the side of the air cube [m].
    size : str or float
        Elements across the shell wall (across the radius of a solid sphere); the names of
        :data:`macro.geometry.SIZES` count half as many, since halving h costs 8x the points,
        a number (or numeric string) is used as is.
    air_factor : float
        Element size at the box relative to the size in the shell.

    Returns
    -------
    MacroMesh
        Tetrahedral mesh with regions ``shield``, ``cavity`` (if ``r_inner > 0``), ``air`` and
        the boundary ``outer``.
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    # a named size is halved; a number (also given as a string, as the CLI does) is taken as is
    n = resolve_size(size) / 2.0 if size in SIZES else resolve_size(size)
    required = _check_shell(r_inner, r_outer, half_width)
    h = (r_outer - r_inner) / n
    info = {"demo": "shield3d", "r_outer": r_outer, "r_inner": r_inner,
            "half_width": half_width, "size": n, "h": h}  # fmt: skip
    if comm.rank != 0:
        return _to_dolfinx(comm, None, required_regions=required,
                           required_boundaries=["outer"], info=info)  # fmt: skip
    with _gmsh_session() as gmsh:
        gmsh.model.add("shield3d")
        occ = gmsh.model.occ
        L = half_width
        box = occ.addBox(-L, -L, -L, 2 * L, 2 * L, 2 * L)
        pieces = {"air": [(3, box)], "shield": [(3, occ.addSphere(0, 0, 0, r_outer))]}
        if r_inner > 0:
            pieces["cavity"] = [(3, occ.addSphere(0, 0, 0, r_inner))]
        _tag_volumes(gmsh, pieces, L)
        spheres = [
            tag
            for _, tag in gmsh.model.getEntities(2)
            if max(abs(v) for v in gmsh.model.getBoundingBox(2, tag)) < L * (1 - 1e-3)
        ]
        _size_field(gmsh, spheres, h, h * air_factor)
        gmsh.model.mesh.generate(3)
        logger.info("shield3d mesh: h = %.3g m in the shell", h)
        return _to_dolfinx(comm, gmsh, required_regions=required,
                           required_boundaries=["outer"], info=info)  # fmt: skip
