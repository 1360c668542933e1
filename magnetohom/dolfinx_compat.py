"""DOLFINx 0.5 (Debian 12) and 0.9 (Debian 13) behind one small API.

Every module of magnetohom that uses DOLFINx, petsc4py or dolfinx_mpc imports this module first::

    import magnetohom.dolfinx_compat as dfx

    V = dfx.functionspace(mesh, "CG", 1)

(ruff's isort settings put this import ahead of all third-party imports). Importing it

* loads h5py before DOLFINx: h5py's wheel brings its own HDF5, and Debian's HDF5 (linked by
  DOLFINx and PETSc) must not be loaded first, or h5py fails with "Not a datatype";
* loads DOLFINx and checks its version: one that is not supported raises
  :class:`UnsupportedDolfinxError`, one line naming the version found and those supported (an
  :class:`~magnetohom.errors.InputError` and an :class:`ImportError`), instead of an
  ``AttributeError`` deep inside a solve.

The differences hidden here (0.5 -> 0.9): ``FunctionSpace``/``VectorFunctionSpace`` ->
``functionspace`` with a value shape; UFL ``FiniteElement("Quadrature", ...)`` ->
``basix.ufl.quadrature_element``; ``Expression.eval(cells)`` -> ``eval(mesh, cells)``; dofmaps
as ``AdjacencyList`` -> 2-D arrays; ``Function.vector`` -> ``Function.x.petsc_vec``;
``XDMFFile.write_meshtags(tags)`` -> ``(tags, geometry)``; ``ufl_element().degree()`` ->
``.degree``; ``Topology.original_cell_index`` as an array -> one array per cell type. No call site
tests a version itself.

Setting the environment variable ``MAGNETOHOM_ANY_DOLFINX=1`` skips the version check (to try
a version not yet supported; nothing is promised then).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import h5py  # noqa: F401  (h5py's HDF5 before DOLFINx's: the one place that orders them)
import numpy as np

from magnetohom.errors import InputError

__all__ = [
    "DOLFINX_VERSION",
    "SUPPORTED_VERSIONS",
    "UnsupportedDolfinxError",
    "as_2d",
    "cell_dofs",
    "cell_name",
    "check_version",
    "element_degree",
    "eval_expression",
    "functionspace",
    "geometry_dofs",
    "model_to_mesh",
    "original_cell_index",
    "petsc_vector",
    "quadrature_space",
    "write_meshtags",
]

logger = logging.getLogger(__name__)


def _import_dolfinx() -> Any:
    """Import DOLFINx (h5py is loaded above) and drop the root-logger handler that FFCx 0.5 adds
    at import (``logging.basicConfig()`` in its ``__init__``): it would turn a program's own later
    ``logging.basicConfig(level=...)`` into a no-op. Handlers that were there before stay."""
    root = logging.getLogger()
    before = list(root.handlers)
    import dolfinx

    for handler in [h for h in root.handlers if h not in before]:
        root.removeHandler(handler)
    return dolfinx


dolfinx = _import_dolfinx()

#: The ``major.minor`` versions of DOLFINx this project is tested on (Debian 12 and Debian 13).
SUPPORTED_VERSIONS = ("0.5", "0.9")

#: The version of the DOLFINx that was imported, e.g. ``"0.9.0"``.
DOLFINX_VERSION: str = dolfinx.__version__


class UnsupportedDolfinxError(InputError, ImportError):
    """The installed DOLFINx is not one of :data:`SUPPORTED_VERSIONS`."""


def _minor(version: str) -> tuple[int, int]:
    parts = version.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or -1)
    except (IndexError, ValueError):
        return (-1, -1)


def check_version(version: str = DOLFINX_VERSION) -> str:
    """Return ``version`` if supported, else raise :class:`UnsupportedDolfinxError`.

    Parameters
    ----------
    version : str
        A DOLFINx version string (default: the one imported).

    Raises
    ------
    UnsupportedDolfinxError
        One line naming the version found and the supported ones.
    """
    if "{}.{}".format(*_minor(version)) in SUPPORTED_VERSIONS:
        return version
    raise UnsupportedDolfinxError(
        f"DOLFINx {version} is not supported: magnetohom runs on DOLFINx "
        f"{' and '.join(v + '.x' for v in SUPPORTED_VERSIONS)} (Debian 12 and 13)"
    )


if os.environ.get("MAGNETOHOM_ANY_DOLFINX", "") not in ("", "0"):
    logger.warning("DOLFINx %s: version check skipped (MAGNETOHOM_ANY_DOLFINX)", DOLFINX_VERSION)
else:
    check_version()

_NEW = _minor(DOLFINX_VERSION) >= (0, 8)  # one API or the other; only this module reads it


def functionspace(mesh: Any, family: str, degree: int, shape: tuple[int, ...] = ()) -> Any:
    """A ``family`` space of ``degree`` (e.g. ``"CG"``, ``"DG"``) with values of ``shape``.

    Parameters
    ----------
    mesh : dolfinx.mesh.Mesh
    family : str
        Element family as DOLFINx spells it: ``"CG"``/``"Lagrange"``, ``"DG"``, ...
    degree : int
    shape : tuple of int
        ``()`` scalar, ``(n,)`` vector, ``(n, m)`` tensor values.

    Returns
    -------
    dolfinx.fem.FunctionSpace
    """
    from dolfinx import fem

    shape = tuple(int(s) for s in shape)
    if _NEW:
        return fem.functionspace(mesh, (family, int(degree), shape) if shape else (family, degree))
    if not shape:
        return fem.FunctionSpace(mesh, (family, int(degree)))
    if len(shape) == 1:
        return fem.VectorFunctionSpace(mesh, (family, int(degree)), dim=shape[0])
    return fem.TensorFunctionSpace(mesh, (family, int(degree)), shape=shape)


def quadrature_space(mesh: Any, degree: int, shape: tuple[int, ...] = ()) -> Any:
    """Quadrature space (default scheme) of ``degree`` with values of ``shape``.

    Its points are ``basix.make_quadrature(cell, degree)``, in that order in every cell.
    """
    from dolfinx import fem

    shape = tuple(int(s) for s in shape)
    if _NEW:
        import basix.ufl

        element = basix.ufl.quadrature_element(
            cell_name(mesh), value_shape=shape, scheme="default", degree=int(degree)
        )
        return fem.functionspace(mesh, element)
    import ufl

    cell, kw = mesh.ufl_cell(), {"quad_scheme": "default"}
    if not shape:
        element = ufl.FiniteElement("Quadrature", cell, int(degree), **kw)
    elif len(shape) == 1:
        element = ufl.VectorElement("Quadrature", cell, int(degree), dim=shape[0], **kw)
    else:
        element = ufl.TensorElement("Quadrature", cell, int(degree), shape=shape, **kw)
    return fem.FunctionSpace(mesh, element)


def eval_expression(expr: Any, mesh: Any, cells: np.ndarray) -> np.ndarray:
    """Values of a compiled ``dolfinx.fem.Expression`` in ``cells``: ``(n_cells, n_values)``."""
    cells = np.asarray(cells, dtype=np.int32)
    values = expr.eval(mesh, cells) if _NEW else expr.eval(cells)
    return np.asarray(values).reshape(cells.size, -1)


def as_2d(adjacency: Any) -> np.ndarray:
    """A constant-degree adjacency list (0.5) or 2-D array (0.9) as a 2-D int array."""
    if isinstance(adjacency, np.ndarray):
        return adjacency.reshape(adjacency.shape[0], -1)
    n = adjacency.num_nodes
    return adjacency.array.reshape(n, -1) if n else np.zeros((0, 0), dtype=np.int32)


def cell_dofs(space: Any) -> np.ndarray:
    """Dofs of each (local and ghost) cell of a space: ``(n_cells, dofs_per_cell)`` (blocks)."""
    return as_2d(space.dofmap.list)


def geometry_dofs(mesh: Any) -> np.ndarray:
    """Geometry nodes of each cell: ``(n_cells, nodes_per_cell)``, indices into ``geometry.x``."""
    return as_2d(mesh.geometry.dofmap)


def original_cell_index(mesh: Any) -> np.ndarray:
    """Each local cell's index in the mesh as read (before partitioning), int64."""
    oci = mesh.topology.original_cell_index
    if isinstance(oci, list | tuple):  # one array per cell type (0.9)
        oci = oci[0]
    return np.asarray(oci, dtype=np.int64)


def cell_name(mesh: Any) -> str:
    """The mesh's cell type as basix and UFL name it: ``"triangle"``, ``"hexahedron"``, ..."""
    return mesh.topology.cell_type.name


def petsc_vector(function: Any) -> Any:
    """The PETSc vector of a ``dolfinx.fem.Function`` (shares its memory)."""
    x = function.x
    return x.petsc_vec if hasattr(x, "petsc_vec") else function.vector


def element_degree(space: Any) -> int:
    """Polynomial degree of a space's element."""
    degree = space.ufl_element().degree
    return int(degree() if callable(degree) else degree)


def write_meshtags(xdmf: Any, tags: Any, mesh: Any) -> None:
    """Write mesh tags to an open ``dolfinx.io.XDMFFile`` whose mesh is ``mesh``."""
    if _NEW:
        xdmf.write_meshtags(tags, mesh.geometry)
    else:
        xdmf.write_meshtags(tags)


def model_to_mesh(model: Any, comm: Any, rank: int, *, gdim: int) -> tuple[Any, Any, Any]:
    """``dolfinx.io.gmshio.model_to_mesh``: ``(mesh, cell_tags, facet_tags)``."""
    try:
        from dolfinx.io import gmshio
    except ImportError:  # renamed dolfinx.io.gmsh in 0.10
        from dolfinx.io import gmsh as gmshio

    out = gmshio.model_to_mesh(model, comm, rank, gdim=gdim)
    if hasattr(out, "cell_tags"):  # a MeshData tuple (0.10)
        return out.mesh, out.cell_tags, out.facet_tags
    return out[0], out[1], out[2]
