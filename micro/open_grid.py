"""The Q1 operator on the non-periodic node grid of a pixel/voxel image (pure NumPy).

The uniform-Dirichlet and uniform-Neumann cell problems (:mod:`micro.dirichlet`,
:mod:`micro.neumann`) live on all ``(n_1 + 1) x ... x (n_d + 1)`` nodes of the image, without
periodic identification.  That operator is the periodic one of :mod:`micro.periodic` on a grid
of ``n_k + 1`` nodes per axis whose extra layer of pixels has zero permeability: the layer cuts
every coupling across the periodic seam.  So the same element stencil, read off DOLFINx and
checked in :mod:`micro.homogenization`, fills it with the same ``2^d`` array shifts; the seam
entries (structurally zero) are dropped once.  :meth:`OpenGrid.verify` compares the result with
DOLFINx's own assembly on the image's mesh.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from micro.periodic import Stencil, periodic_pattern, pixel_size, stencil_values

__all__ = ["OpenGrid", "open_grid_solver"]


class OpenGrid:
    """Sparsity, assembly and node data of the Q1 operator on an image's full node grid.

    Parameters
    ----------
    shape : tuple of int
        Pixels per axis ``(n_1, ..., n_d)``; square pixels of side ``h = 1 / max(shape)``.
    stencil : list of (code, corner, value)
        Element stencil of :func:`micro.periodic.stencil_from_scatter`.
    stencil_n : int
        Grid size the stencil was read at.

    Attributes
    ----------
    node_shape : tuple of int
        ``(n_1 + 1, ..., n_d + 1)``; node ``p`` is ``np.unravel_index(p, node_shape)``.
    indptr, indices : ndarray, int32
        CSR structure of the operator (up to ``3^d`` entries per row).
    coordinates : ndarray, shape (N, d), float64
        Node coordinates ``(i_1 h, ..., i_d h)``, ``N = prod(node_shape)``.
    boundary : ndarray, shape (N,), bool
        Nodes on the boundary of the cell.
    volume : float
        ``|V| = prod(n_k) h^d``.
    """

    def __init__(self, shape: tuple[int, ...], *, stencil: Stencil, stencil_n: int) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dim = len(self.shape)
        self.node_shape = tuple(s + 1 for s in self.shape)
        self.h = pixel_size(self.shape)
        self.volume = float(np.prod(self.shape)) * self.h**self.dim
        self._stencil, self._stencil_n = stencil, int(stencil_n)
        pat = periodic_pattern(self.node_shape)
        N, m = pat.code.shape
        grid = np.indices(self.node_shape, dtype=np.int32).reshape(self.dim, -1)  # (d, N)
        keep = np.ones((N, m), dtype=bool)
        for axis in range(self.dim):
            step = pat.offsets[:, axis].astype(np.int32)[pat.code]  # offset of each CSR slot
            target = grid[axis][:, None] + step
            keep &= (target >= 0) & (target <= self.shape[axis])
        self._pattern, self._keep = pat, keep.ravel()
        self.indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int32)
        self.indices = pat.indices[self._keep]
        self.coordinates = np.ascontiguousarray(grid.T, dtype=np.float64) * self.h
        top = np.array(self.shape, dtype=np.int32)[:, None]
        self.boundary = ((grid == 0) | (grid == top)).any(axis=0)

    @property
    def n_nodes(self) -> int:
        """Number of nodes ``prod(n_k + 1)``."""
        return int(self.indptr.size - 1)

    def rows(self) -> np.ndarray:
        """Row index of every CSR entry, shape (nnz,), int64."""
        return np.repeat(np.arange(self.n_nodes, dtype=np.int64), np.diff(self.indptr))

    def data(self, mu: np.ndarray) -> np.ndarray:
        """CSR data of the operator for pixel permeabilities ``mu`` (shape ``self.shape``)."""
        padded = np.zeros(self.node_shape)
        padded[tuple(slice(0, s) for s in self.shape)] = mu
        full = stencil_values(
            self._pattern, padded, self._stencil, stencil_n=self._stencil_n, h=self.h
        )
        return full[self._keep]

    def assemble(self, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CSR data and node stencils of the operator for pixel permeabilities ``mu``.

        Returns
        -------
        data : ndarray, shape (nnz,), float64
            As :meth:`data`.
        stencils : ndarray, shape (N, 3^d), float64
            One stencil per node ordered by offset code ``sum_k 3^(d-1-k) (offset_k + 1)``
            (for d = 2: ``3 (di + 1) + dj + 1``, the layout of :mod:`micro.multigrid`);
            couplings across the window's edges are zero.
        """
        from micro.periodic import node_stencils

        padded = np.zeros(self.node_shape)
        padded[tuple(slice(0, s) for s in self.shape)] = mu
        full = stencil_values(
            self._pattern, padded, self._stencil, stencil_n=self._stencil_n, h=self.h
        )
        return full[self._keep], node_stencils(self._pattern, full)

    def matrix(self, mu: np.ndarray, data: np.ndarray | None = None) -> sp.csr_matrix:
        """The operator as scipy CSR, shape (N, N) (``data`` if already computed)."""
        if data is None:
            data = self.data(mu)
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(self.n_nodes,) * 2)

    def verify(self, assemble, node_ijk: np.ndarray) -> None:
        """Compare with a reference assembly on the same node grid, for a random ``mu``.

        Parameters
        ----------
        assemble : callable
            ``assemble(mu) -> CSR`` over the mesh's dofs (DOLFINx's assembly).
        node_ijk : ndarray, shape (n_dofs, d), int
            Integer grid coordinates of each dof.

        Raises
        ------
        RuntimeError
            If the two differ by more than round-off.
        """
        mu = 1.0 + np.random.default_rng(2024).random(self.shape)
        K = assemble(mu)  # CSR-like: indptr, indices, data
        rows = np.repeat(np.arange(K.indptr.size - 1), np.diff(K.indptr))
        node = np.ravel_multi_index(tuple(np.asarray(node_ijk).T), self.node_shape)
        ref = sp.csr_matrix((K.data, (node[rows], node[K.indices])), shape=(self.n_nodes,) * 2)
        diff = abs(ref - self.matrix(mu)).max()
        scale = abs(ref).max()
        if diff > 1e-12 * scale:
            raise RuntimeError(f"open-grid assembly differs from the reference ({diff:.2e})")


def open_grid_solver(
    grid: OpenGrid,
    constrained: np.ndarray | None,
    *,
    solver: str | None,
    rtol: float,
    max_it: int,
    comm,
    options: dict[str, str] | None = None,
):
    """The linear solver of a non-periodic cell problem: ``"mg"`` (2D) or ``"amg"``.

    ``"mg"`` (the 2D default) is :class:`micro.open_multigrid.OpenMultigridCG` with the
    ``constrained`` nodes fixed; ``"amg"`` (3D) is :class:`micro._amg.SparseCG`, singular with
    the constants as null space when ``constrained`` is None.  Both have
    ``set_operator(...)`` and ``solve(b, atol=, what=) -> (x, iterations)``.
    """
    from magnetohom.errors import InputError

    if solver is None:
        solver = "mg" if grid.dim == 2 else "amg"
    if solver not in ("mg", "amg") or (solver == "mg" and grid.dim != 2):
        raise InputError(f"solver must be 'mg' (2D) or 'amg': got {solver!r} in {grid.dim}D")
    if solver == "mg":
        from micro.open_multigrid import OpenMultigridCG

        fixed = np.zeros(grid.n_nodes, dtype=bool) if constrained is None else constrained
        if constrained is None:
            fixed[0] = True  # pin one node: the Neumann problem's solution up to a constant
        return OpenMultigridCG(grid.node_shape, fixed, rtol=rtol, max_it=max_it)
    from micro._amg import SparseCG

    return SparseCG(
        grid.indptr,
        grid.indices,
        dim=grid.dim,
        comm=comm,
        rtol=rtol,
        max_it=max_it,
        constant_null_space=constrained is None,
        options=options,
    )
