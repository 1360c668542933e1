"""Gmsh geometries of the demos, read into DOLFINx with named regions.

* :func:`shield_geometry` -- a composite ring (a magnetic shield; with ``r_inner = 0`` a solid
  cylinder, i.e. a flux concentrator) centred in a square air box, for the reduced scalar
  potential with a uniform applied field. Regions ``shield``, ``cavity`` (if any), ``air``;
  boundary ``outer``.
* :func:`inductor_geometry` -- an E-I core of soft-magnetic composite with an air gap and a
  coil in the two windows (``coil_pos`` carries +J, ``coil_neg`` -J) in an air box, for the
  vector potential. Regions ``core``, ``coil_pos``, ``coil_neg``, ``air``; boundary ``outer``.

Lengths are in metres. The model is built on rank 0 of the communicator and distributed by
:func:`dolfinx.io.gmshio.model_to_mesh`; the physical-group names are broadcast. ``size`` is
the number of elements across the thinnest composite part (ring wall or core leg), or one of
:data:`SIZES`. :func:`load_msh` reads a ``.msh`` file and checks its physical groups.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import magnetohom.dolfinx_compat as dfx

from magnetohom.errors import InputError

__all__ = [
    "SIZES",
    "MacroMesh",
    "inductor_geometry",
    "load_msh",
    "resolve_size",
    "shield_geometry",
]

logger = logging.getLogger(__name__)

#: Named mesh densities: elements across the thinnest composite part.
SIZES = {"tiny": 2.0, "small": 4.0, "medium": 8.0, "large": 16.0}


def resolve_size(size: str | float | int) -> float:
    """Elements across the thinnest composite part, from a name in :data:`SIZES` or a number."""
    if isinstance(size, str):
        if size in SIZES:
            return SIZES[size]
        try:
            size = float(size)
        except ValueError:
            known = ", ".join(SIZES)
            raise InputError(f"unknown size {size!r}; use a number or one of {known}") from None
    value = float(size)
    if not (math.isfinite(value) and 0.5 <= value <= 1000):
        raise InputError(f"size must be a number of elements in [0.5, 1000]: got {size!r}")
    return value


@dataclass(frozen=True)
class MacroMesh:
    """A distributed mesh with named regions.

    Attributes
    ----------
    mesh : dolfinx.mesh.Mesh
    cell_tags, facet_tags : dolfinx.mesh.MeshTags
    regions : dict str -> int
        Physical-group name -> cell tag.
    boundaries : dict str -> int
        Physical-group name -> facet tag.
    info : dict
        Geometry parameters (JSON-able), e.g. dimensions and the coil area.
    """

    mesh: Any
    cell_tags: Any
    facet_tags: Any
    regions: dict[str, int]
    boundaries: dict[str, int]
    info: dict[str, Any] = field(default_factory=dict)

    def tag(self, name: str) -> int:
        """Cell tag of a region (InputError naming the known ones if absent)."""
        if name not in self.regions:
            raise InputError(f"mesh has no region {name!r}; regions: {', '.join(self.regions)}")
        return self.regions[name]

    def boundary(self, name: str) -> int:
        """Facet tag of a boundary."""
        if name not in self.boundaries:
            raise InputError(
                f"mesh has no boundary {name!r}; boundaries: {', '.join(self.boundaries) or 'none'}"
            )
        return self.boundaries[name]


_SESSION_DEPTH = 0


@contextlib.contextmanager
def _gmsh_session() -> Iterator[Any]:
    """Initialise gmsh on entry and finalise it on exit (nested uses share one session).

    gmsh 4.8 cannot tell whether it is initialised, so a caller that holds its own gmsh
    session must not call these builders inside it.
    """
    import gmsh

    global _SESSION_DEPTH
    if _SESSION_DEPTH == 0:
        gmsh.initialize()
    _SESSION_DEPTH += 1
    gmsh.option.setNumber("General.Terminal", 0)
    try:
        yield gmsh
    finally:
        _SESSION_DEPTH -= 1
        if _SESSION_DEPTH == 0:
            gmsh.finalize()


def _physical_names(gmsh: Any) -> tuple[dict[str, int], dict[str, int], int]:
    """Cell and facet physical groups by name, and the cell dimension (the highest present)."""
    groups = gmsh.model.getPhysicalGroups()
    tdim = max((dim for dim, _ in groups), default=2)
    cells, facets = {}, {}
    for dim, tag in groups:
        name = gmsh.model.getPhysicalName(dim, tag) or str(tag)
        (cells if dim == tdim else facets if dim == tdim - 1 else {})[name] = int(tag)
    return cells, facets, tdim


def _to_dolfinx(
    comm: Any,
    gmsh: Any | None,
    *,
    required_regions: Sequence[str],
    required_boundaries: Sequence[str],
    info: dict[str, Any],
) -> MacroMesh:
    """Distribute the current gmsh model of rank 0; check the physical groups on all ranks."""
    names = _physical_names(gmsh) if comm.rank == 0 else None
    names = comm.bcast(names, root=0)
    regions, boundaries, tdim = names
    missing = [r for r in required_regions if r not in regions]
    missing += [b for b in required_boundaries if b not in boundaries]
    if missing:
        have = ", ".join([*regions, *boundaries]) or "none"
        raise InputError(f"mesh lacks physical group(s) {', '.join(missing)} (has: {have})")
    model = gmsh.model if comm.rank == 0 else None
    mesh, cell_tags, facet_tags = dfx.model_to_mesh(model, comm, 0, gdim=tdim)
    mesh.name = "mesh"
    cell_tags.name = "regions"
    facet_tags.name = "boundaries"
    return MacroMesh(mesh, cell_tags, facet_tags, dict(regions), dict(boundaries), dict(info))


def load_msh(
    path: str | Path,
    comm: Any = None,
    *,
    required_regions: Sequence[str] = (),
    required_boundaries: Sequence[str] = (),
) -> MacroMesh:
    """Read a 2D or 3D gmsh ``.msh`` file with named physical groups.

    Raises
    ------
    InputError
        The file does not exist or lacks a required physical group (checked before any mesh is
        built).
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such mesh file: {path}")
    if comm.rank != 0:
        return _to_dolfinx(
            comm, None, required_regions=required_regions,
            required_boundaries=required_boundaries, info={"source": str(path)},
        )  # fmt: skip
    with _gmsh_session() as gmsh:
        gmsh.model.add("loaded")
        gmsh.merge(str(path))
        return _to_dolfinx(
            comm, gmsh, required_regions=required_regions,
            required_boundaries=required_boundaries, info={"source": str(path)},
        )  # fmt: skip


def _fragment_and_name(gmsh: Any, pieces: dict[str, list[tuple[int, int]]], dim: int) -> dict:
    """Fragment the entities of ``pieces`` (name -> [(dim, tag)]) into a conforming model and
    name one physical group of dimension ``dim`` per piece (tags 1, 2, ... in order).

    Later pieces win overlaps (list the air box first). Returns entity tag -> piece name.
    """
    occ = gmsh.model.occ
    flat = [(name, dt) for name in pieces for dt in pieces[name]]
    objects = [dt for _, dt in flat]
    _, mapping = occ.fragment(objects[:1], objects[1:])
    occ.synchronize()
    owner: dict[int, str] = {}
    for (name, _), children in zip(flat, mapping):
        for d, tag in children:
            if d == dim:
                owner[tag] = name
    for k, name in enumerate(pieces, start=1):
        tags = sorted(t for t, n in owner.items() if n == name)
        if tags:
            gmsh.model.addPhysicalGroup(dim, tags, k)
            gmsh.model.setPhysicalName(dim, k, name)
    return owner


def _check_shell(r_inner: float, r_outer: float, half_width: float) -> list[str]:
    """Check ``0 <= r_inner < r_outer < half_width``; the regions a shell model must have."""
    if not (0 <= r_inner < r_outer < half_width):
        raise InputError(
            f"need 0 <= r_inner < r_outer < half_width: got {r_inner}, {r_outer}, {half_width}"
        )
    return ["shield", "air"] + (["cavity"] if r_inner > 0 else [])


def _fragment_and_tag(
    gmsh: Any,
    pieces: dict[str, list[tuple[int, int]]],
    sizes: dict[str, float],
    box: tuple[float, float, float, float],
) -> None:
    """Fragment all surfaces, name the physical groups, set point sizes, mesh."""
    owner = _fragment_and_name(gmsh, pieces, 2)
    # the outer boundary: curves of the bounding box
    xmin, ymin, xmax, ymax = box
    eps = 1e-5 * max(xmax - xmin, ymax - ymin)
    outer = [
        tag
        for _, tag in gmsh.model.getEntities(1)
        if _on_box(gmsh.model.getBoundingBox(1, tag), xmin, ymin, xmax, ymax, eps)
    ]
    gmsh.model.addPhysicalGroup(1, outer, 100)
    gmsh.model.setPhysicalName(1, 100, "outer")
    # element size: h_min inside and near the composite, growing to h_max in the air
    fine = min(sizes.values())
    coarse = max(sizes.values())
    comp = [t for t, n in owner.items() if sizes[n] == fine]
    curves = sorted(
        {abs(c) for _, c in gmsh.model.getBoundary([(2, t) for t in comp], combined=False)}
    )
    fields = gmsh.model.mesh.field
    dist = fields.add("Distance")
    fields.setNumbers(dist, "EdgesList", curves)
    fields.setNumber(dist, "NumPointsPerCurve", 200)
    thr = fields.add("Threshold")
    fields.setNumber(thr, "InField", dist)
    fields.setNumber(thr, "SizeMin", fine)
    fields.setNumber(thr, "SizeMax", coarse)
    fields.setNumber(thr, "DistMin", fine)
    fields.setNumber(thr, "DistMax", coarse * 4)
    inside = fields.add("Restrict")
    const = fields.add("MathEval")
    fields.setString(const, "F", repr(float(fine)))
    fields.setNumber(inside, "InField", const)
    fields.setNumbers(inside, "FacesList", comp)
    both = fields.add("Min")
    fields.setNumbers(both, "FieldsList", [thr, inside])
    fields.setAsBackgroundMesh(both)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    gmsh.option.setNumber("Mesh.Algorithm", 6)
    gmsh.model.mesh.generate(2)


def _on_box(bb: Sequence[float], xmin: float, ymin: float, xmax: float, ymax: float, eps: float):
    x0, y0, _, x1, y1, _ = bb
    vertical = abs(x1 - x0) < eps and (abs(x0 - xmin) < eps or abs(x0 - xmax) < eps)
    horizontal = abs(y1 - y0) < eps and (abs(y0 - ymin) < eps or abs(y0 - ymax) < eps)
    return vertical or horizontal


def shield_geometry(
    comm: Any = None,
    *,
    r_outer: float = 0.02,
    r_inner: float = 0.016,
    half_width: float = 0.06,
    size: str | float = "small",
    air_factor: float = 8.0,
) -> MacroMesh:
    """A composite ring (or, with ``r_inner = 0``, a solid cylinder) in a square air box.

    Parameters
    ----------
    comm : mpi4py communicator, optional
        Default ``MPI.COMM_WORLD``.
    r_outer, r_inner : float
        Ring radii in metres (``0 <= r_inner < r_outer < half_width``).
    half_width : float
        Half the side of the air box, centred on the ring.
    size : str or float
        Elements across the ring wall (or across the radius of a solid cylinder).
    air_factor : float
        Element size on the box boundary relative to the size in the ring.
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    n = resolve_size(size)
    required = _check_shell(r_inner, r_outer, half_width)
    wall = r_outer - r_inner
    h = wall / n
    info = {"demo": "shield", "r_outer": r_outer, "r_inner": r_inner, "half_width": half_width,
            "size": n, "h": h}  # fmt: skip
    if comm.rank != 0:
        return _to_dolfinx(comm, None, required_regions=required,
                           required_boundaries=["outer"], info=info)  # fmt: skip
    with _gmsh_session() as gmsh:
        gmsh.model.add("shield")
        occ = gmsh.model.occ
        L = half_width
        box = occ.addRectangle(-L, -L, 0, 2 * L, 2 * L)
        disk = occ.addDisk(0, 0, 0, r_outer, r_outer)
        pieces = {"air": [(2, box)], "shield": [(2, disk)]}
        if r_inner > 0:
            pieces["cavity"] = [(2, occ.addDisk(0, 0, 0, r_inner, r_inner))]
        sizes = {"air": h * air_factor, "shield": h, "cavity": h * air_factor}
        _fragment_and_tag(gmsh, pieces, sizes, (-L, -L, L, L))
        return _to_dolfinx(comm, gmsh, required_regions=required,
                           required_boundaries=["outer"], info=info)  # fmt: skip


def inductor_geometry(
    comm: Any = None,
    *,
    leg: float = 0.005,
    window_width: float = 0.0075,
    window_height: float = 0.015,
    gap: float = 0.0005,
    clearance: float = 0.0005,
    half_width: float = 0.06,
    size: str | float = "small",
    air_factor: float = 8.0,
) -> MacroMesh:
    """An E-I core with an air gap and a two-sided coil in an air box.

    The E has outer legs and yoke of width ``leg`` and a centre leg of ``2 leg``; its legs point
    down to ``y = gap / 2``; the I bar (thickness ``leg``) lies below ``y = -gap / 2``. The coil
    fills each window less ``clearance``: ``coil_pos`` (x < 0) carries +J, ``coil_neg`` -J.

    Parameters
    ----------
    size : str or float
        Elements across a leg of width ``leg``.
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    n = resolve_size(size)
    if min(leg, window_width, window_height, gap) <= 0 or clearance < 0:
        raise InputError("inductor dimensions must be > 0")
    if 2 * clearance >= min(window_width, window_height):
        raise InputError(f"clearance {clearance} leaves no room for the coil")
    outer_x = 2 * leg + window_width
    top = gap / 2 + window_height + leg
    if half_width <= max(outer_x, top, gap / 2 + leg):
        raise InputError(f"air box half width {half_width} does not contain the core")
    h = leg / n
    coil_w, coil_h = window_width - 2 * clearance, window_height - 2 * clearance
    info = {"demo": "inductor", "leg": leg, "window_width": window_width,
            "window_height": window_height, "gap": gap, "clearance": clearance,
            "half_width": half_width, "size": n, "h": h, "coil_area": coil_w * coil_h}  # fmt: skip
    required = ["core", "coil_pos", "coil_neg", "air"]
    if comm.rank != 0:
        return _to_dolfinx(comm, None, required_regions=required,
                           required_boundaries=["outer"], info=info)  # fmt: skip
    with _gmsh_session() as gmsh:
        gmsh.model.add("inductor")
        occ = gmsh.model.occ
        L = half_width
        box = occ.addRectangle(-L, -L, 0, 2 * L, 2 * L)
        e_block = occ.addRectangle(-outer_x, gap / 2, 0, 2 * outer_x, window_height + leg)
        win_l = occ.addRectangle(-outer_x + leg, gap / 2, 0, window_width, window_height)
        win_r = occ.addRectangle(leg, gap / 2, 0, window_width, window_height)
        e_core, _ = occ.cut([(2, e_block)], [(2, win_l), (2, win_r)])
        i_bar = occ.addRectangle(-outer_x, -gap / 2 - leg, 0, 2 * outer_x, leg)
        y0 = gap / 2 + clearance
        coil_l = occ.addRectangle(-outer_x + leg + clearance, y0, 0, coil_w, coil_h)
        coil_r = occ.addRectangle(leg + clearance, y0, 0, coil_w, coil_h)
        pieces = {
            "air": [(2, box)],
            "core": [*e_core, (2, i_bar)],
            "coil_pos": [(2, coil_l)],
            "coil_neg": [(2, coil_r)],
        }
        sizes = {"air": h * air_factor, "core": h, "coil_pos": 2 * h, "coil_neg": 2 * h}
        sizes = {k: min(v, h * air_factor) for k, v in sizes.items()}
        _fragment_and_tag(gmsh, pieces, sizes, (-L, -L, L, L))
        return _to_dolfinx(comm, gmsh, required_regions=required,
                           required_boundaries=["outer"], info=info)  # fmt: skip
