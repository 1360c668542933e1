"""Picture of a 3D macroscale solve: |B| and in-plane field lines on the mid-plane z = 0.

:func:`plot_midplane` gathers, on rank 0, the cells that the plane z = 0 cuts (their centroids
and cell-averaged B), triangulates the centroids' (x, y), and draws |B| (log colour scale) with
streamlines of (B_x, B_y) interpolated linearly on that triangulation. It is called by
:func:`macro.output.plot_field` for 3D meshes; collective, rank 0 writes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import magnetohom.dolfinx_compat as dfx

import numpy as np

__all__ = ["midplane_cells", "plot_midplane"]

logger = logging.getLogger(__name__)


def midplane_cells(solution: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Centroids ``(m, 3)`` [m] and mean B ``(m, 3)`` [T] of all cells cut by z = 0, on rank 0.

    Collective; ``None`` on the other ranks.
    """
    from macro.output import cell_average

    mesh = solution.potential.function_space.mesh
    n_owned = solution.B.shape[0]
    geom = dfx.geometry_dofs(mesh)[:n_owned] if n_owned else np.zeros((0, 4), dtype=np.int32)
    xyz = mesh.geometry.x[geom]  # (n_owned, nv, 3)
    z = xyz[:, :, 2]
    cut = (z.min(axis=1) <= 0.0) & (z.max(axis=1) >= 0.0)
    centroids = xyz[cut].mean(axis=1)
    B = cell_average(solution.B, solution.weights)[cut] if n_owned else np.zeros((0, 3))
    parts = mesh.comm.gather((centroids, B), root=0)
    if mesh.comm.rank != 0:
        return None
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def plot_midplane(
    solution: Any,
    path: str | Path,
    *,
    extent: tuple[float, float, float, float] | None = None,
    title: str = "",
    grid: int = 200,
) -> Path | None:
    """PNG of |B| on the plane z = 0 with streamlines of the in-plane flux (collective).

    Parameters
    ----------
    extent : (xmin, xmax, ymin, ymax), optional
        Region shown [m]; default: all cut cells.
    grid : int
        Points per side of the streamline grid.
    """
    data = midplane_cells(solution)
    if data is None:
        return None
    centroids, B = data
    if centroids.shape[0] < 3:
        logger.warning("fewer than 3 cells cut the mid-plane; no picture")
        return None
    from magnetohom.mpl import pyplot

    plt = pyplot()  # before any other matplotlib import: the backend and a silenced warning
    from matplotlib.tri import LinearTriInterpolator, Triangulation

    from macro.output import finish_figure, log_colours

    tri = Triangulation(centroids[:, 0], centroids[:, 1])
    mag, norm = log_colours(np.linalg.norm(B, axis=1))
    fig, ax = plt.subplots(figsize=(6.4, 5.4), dpi=120)
    pc = ax.tripcolor(tri, mag, shading="gouraud", cmap="viridis", norm=norm)
    fig.colorbar(pc, ax=ax, label="|B| [T] on z = 0")
    if extent is None:
        extent = (centroids[:, 0].min(), centroids[:, 0].max(),
                  centroids[:, 1].min(), centroids[:, 1].max())  # fmt: skip
    gx = np.linspace(extent[0], extent[1], grid)
    gy = np.linspace(extent[2], extent[3], grid)
    X, Y = np.meshgrid(gx, gy)
    U = np.ma.filled(LinearTriInterpolator(tri, B[:, 0])(X, Y), np.nan)
    V = np.ma.filled(LinearTriInterpolator(tri, B[:, 1])(X, Y), np.nan)
    ax.streamplot(gx, gy, U, V, color="w", linewidth=0.6, density=1.4, arrowsize=0.6)
    return finish_figure(fig, ax, path, extent, title or f"|B| on z = 0 ({solution.provider})")
