"""Files of a macroscale solve: XDMF for ParaView, a PNG of |B| with field lines, JSON.

* :func:`write_xdmf` -- the mesh with its region tags, the potential (Lagrange), and as cell
  data (DG0, the average over each cell's quadrature points) ``B`` [T], ``H`` [A/m],
  the components ``mu_xx``, ``mu_xy``, ... of mu* and ``volume_fraction``;
* :func:`plot_field` -- |B| per cell (log colour scale) with field lines: contour lines of A_z
  for the vector potential, streamlines of B on a grid otherwise (matplotlib, Agg); in 3D the
  mid-plane z = 0 (:mod:`macro.output3d`);
* :func:`write_json` -- a summary dict (atomic write).

These functions consume :class:`macro.solve.MacroSolution`; nothing in the numerics imports
this module. All ranks must call :func:`write_xdmf` and :func:`plot_field` (collective); only
rank 0 writes the PNG and the JSON.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import magnetohom.dolfinx_compat as dfx

import numpy as np

__all__ = [
    "cell_average",
    "finish_figure",
    "log_colours",
    "plot_field",
    "write_json",
    "write_outputs",
    "write_xdmf",
]

logger = logging.getLogger(__name__)


def cell_average(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean over each cell's points: ``(n_cells, n_qp, ...) -> (n_cells, ...)``."""
    w = weights / weights.sum(axis=1, keepdims=True)
    return np.einsum("cq,cq...->c...", w, values)


def _dg0(mesh: Any, values: np.ndarray, name: str) -> Any:
    """A DG0 scalar or vector Function from owned-cell values ``(n_owned,)`` / ``(n_owned, d)``."""
    from dolfinx import fem

    n_owned = values.shape[0]
    bs = 1 if values.ndim == 1 else values.shape[1]
    V = dfx.functionspace(mesh, "DG", 0, values.shape[1:])
    f = fem.Function(V, name=name)
    dofs = dfx.cell_dofs(V)[:n_owned, 0]
    f.x.array.reshape(-1, bs)[dofs] = values.reshape(n_owned, bs)
    f.x.scatter_forward()
    return f


def write_xdmf(solution: Any, path: str | Path, *, cell_tags: Any = None) -> Path:
    """Write mesh, tags, potential and cell-averaged fields to one XDMF file (collective)."""
    from dolfinx.io import XDMFFile

    path = Path(path)
    coef = solution.coefficient
    mesh = coef.mu.function_space.mesh
    w = solution.weights
    d = mesh.geometry.dim
    mu = cell_average(coef.tensors(), w)
    vf_q = coef.volume_fraction.x.array
    space = coef.volume_fraction.function_space
    dofs = dfx.cell_dofs(space)[: w.shape[0]]
    fields = [
        _dg0(mesh, cell_average(solution.B, w), "B"),
        _dg0(mesh, cell_average(solution.H, w), "H"),
        _dg0(mesh, cell_average(vf_q[dofs], w), "volume_fraction"),
    ]
    axes = "xyz"[:d]
    for i in range(d):
        for j in range(i, d):
            fields.append(_dg0(mesh, mu[:, i, j], f"mu_{axes[i]}{axes[j]}"))
    if mesh.comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    mesh.comm.barrier()
    with XDMFFile(mesh.comm, str(path), "w") as xdmf:
        xdmf.write_mesh(mesh)
        tags = cell_tags if cell_tags is not None else coef.cell_tags
        if tags is not None:
            dfx.write_meshtags(xdmf, tags, mesh)
        xdmf.write_function(solution.potential)
        for f in fields:
            xdmf.write_function(f)
    return path


def _gather_triangles(solution: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Vertex coordinates ``(n, 3, 2)``, cell |B|-vectors ``(n, 2)`` and vertex potentials
    ``(n, 3)`` of all cells on rank 0 (``None`` elsewhere)."""
    mesh = solution.potential.function_space.mesh
    n_owned = solution.B.shape[0]
    geom = dfx.geometry_dofs(mesh)[:n_owned] if n_owned else np.zeros((0, 3), int)
    xy = mesh.geometry.x[geom][:, :, :2]
    B = cell_average(solution.B, solution.weights) if n_owned else np.zeros((0, 2))
    u = solution.potential
    cell_dofs = dfx.cell_dofs(u.function_space)[:n_owned]
    pot = u.x.array[cell_dofs] if n_owned else np.zeros((0, 3))
    parts = mesh.comm.gather((xy, B, pot), root=0)
    if mesh.comm.rank != 0:
        return None
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))  # type: ignore[return-value]


def plot_field(
    solution: Any,
    path: str | Path,
    *,
    extent: tuple[float, float, float, float] | None = None,
    title: str = "",
    grid: int = 200,
) -> Path | None:
    """PNG of |B| per cell with field lines (collective; rank 0 writes).

    Parameters
    ----------
    extent : (xmin, xmax, ymin, ymax), optional
        Region shown [m]; default: the whole mesh.
    grid : int
        Points per side of the streamline grid (scalar potential).
    """
    if dfx.element_degree(solution.potential.function_space) != 1:
        logger.warning("plot_field shows degree-1 potentials only; skipped")
        return None
    if solution.potential.function_space.mesh.geometry.dim == 3:
        from macro.output3d import plot_midplane

        return plot_midplane(solution, path, extent=extent, title=title, grid=grid)
    data = _gather_triangles(solution)
    if data is None:
        return None
    from magnetohom.mpl import pyplot

    plt = pyplot()  # before any other matplotlib import: the backend and a silenced warning
    from matplotlib.tri import Triangulation

    xy, B, pot = data
    n = xy.shape[0]
    pts, inverse = np.unique(xy.reshape(-1, 2), axis=0, return_inverse=True)
    vertex_pot = np.empty(pts.shape[0])
    vertex_pot[inverse] = pot.ravel()
    tri = Triangulation(pts[:, 0], pts[:, 1], inverse.reshape(n, 3))
    mag, norm = log_colours(np.linalg.norm(B, axis=1))
    fig, ax = plt.subplots(figsize=(6.4, 5.4), dpi=120)
    pc = ax.tripcolor(tri, facecolors=mag, cmap="viridis", norm=norm)
    fig.colorbar(pc, ax=ax, label="|B| [T]")
    if extent is None:
        extent = (xy[..., 0].min(), xy[..., 0].max(), xy[..., 1].min(), xy[..., 1].max())
    if solution.formulation == "vector":
        levels = np.linspace(pot.min(), pot.max(), 32)[1:-1]
        ax.tricontour(tri, vertex_pot, levels=levels, colors="w", linewidths=0.6,
                      linestyles="solid")  # fmt: skip
    else:
        gx = np.linspace(extent[0], extent[1], grid)
        gy = np.linspace(extent[2], extent[3], grid)
        X, Y = np.meshgrid(gx, gy)
        finder = tri.get_trifinder()
        cell = finder(X, Y)
        inside = cell >= 0
        U = np.where(inside, B[np.maximum(cell, 0), 0], np.nan)
        V = np.where(inside, B[np.maximum(cell, 0), 1], np.nan)
        ax.streamplot(gx, gy, U, V, color="w", linewidth=0.6, density=1.4, arrowsize=0.6)
    return finish_figure(fig, ax, path, extent, title or f"|B| ({solution.provider})")


def log_colours(mag: np.ndarray) -> tuple[np.ndarray, Any]:
    """|B| values floored at 1e-3 of the largest, and the log colour scale for them."""
    from matplotlib.colors import LogNorm

    positive = mag[mag > 0]
    vmin = max(positive.min(), positive.max() * 1e-3) if positive.size else 1e-12
    return np.maximum(mag, vmin), LogNorm(vmin=vmin, vmax=max(mag.max(), vmin * 10))


def finish_figure(fig: Any, ax: Any, path: str | Path, extent: Any, title: str) -> Path:
    """Limits, equal aspect, axis labels in metres and title; save the PNG and close."""
    import matplotlib.pyplot as plt

    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write ``data`` as indented JSON (atomically: a temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)
    return path


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_outputs(result: Any, outdir: str | Path, *, extent: Any = None) -> dict[str, str]:
    """XDMF, PNG and JSON of a :class:`macro.problems.DemoResult` into ``outdir``."""
    outdir = Path(outdir)
    sol = result.solution
    stem = f"{result.problem}_{sol.provider}"
    files = {"xdmf": str(write_xdmf(sol, outdir / f"{stem}.xdmf"))}
    png = plot_field(sol, outdir / f"{stem}.png", extent=extent,
                     title=f"{result.problem}: |B| with field lines ({sol.provider})")  # fmt: skip
    if png is not None:
        files["png"] = str(png)
    comm = sol.potential.function_space.mesh.comm
    if comm.rank == 0:
        files["json"] = str(write_json(result.summary(), outdir / f"{stem}.json"))
    return files
