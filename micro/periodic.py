"""Algebra of the Q1 operator on a periodic pixel/voxel grid (pure NumPy, no DOLFINx).

On the periodic ``n_1 x ... x n_d`` grid (every ``n_k >= 3``; square pixels) every node couples
with its ``3^d`` neighbours, so the condensed matrix ``P^T K P`` has exactly ``3^d`` entries per
row.  :class:`PeriodicPattern` holds that sparsity in CSR form together with, per entry, the
neighbour offset encoded in base 3
(digit k = offset along axis k, plus one).  The matrix is linear in the pixel values of ``mu``;
with the *element stencil* (``(code, corner, value)`` triples: entry ``code`` of node p gets
``value * mu[cell p + corner]``) :func:`stencil_values` fills it with ``2^d`` array shifts.
:mod:`micro.homogenization` reads the stencil off DOLFINx and checks the result against DOLFINx's
own assembly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "PeriodicPattern",
    "entry_map",
    "node_stencils",
    "offset_weights",
    "periodic_pattern",
    "pixel_size",
    "scatter_map",
    "stencil_from_scatter",
    "stencil_values",
]

Stencil = list[tuple[int, int, float]]


@dataclass(frozen=True)
class PeriodicPattern:
    """CSR sparsity of the periodic Q1 operator.

    Attributes
    ----------
    shape : tuple of int
        ``(n_1, ..., n_d)``, each ``>= 3``.
    indptr, indices : ndarray, int32
        CSR structure, ``3^d`` sorted columns per row; shape ``(n^d + 1,)`` and ``(n^d 3^d,)``.
    code : ndarray, shape (n^d, 3^d), uint8
        Offset code of the entry in each CSR slot.
    position : ndarray, shape (n^d, 3^d), uint8
        CSR slot of each offset code (the inverse permutation of ``code``).
    offsets : ndarray, shape (3^d, d), int
        Offset (in pixels, -1, 0 or 1 per axis) of each code.
    """

    shape: tuple[int, ...]
    indptr: np.ndarray
    indices: np.ndarray
    code: np.ndarray
    position: np.ndarray
    offsets: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.indices.size)


def periodic_pattern(shape: tuple[int, ...]) -> PeriodicPattern:
    """Sparsity of the periodic Q1 operator on a grid of ``shape`` (built row-block-wise).

    Parameters
    ----------
    shape : tuple of int
        ``(n_1, ..., n_d)`` with every ``n_k >= 3`` and ``d`` in {2, 3}.
    """
    d = len(shape)
    n = np.asarray(shape, dtype=np.int64)
    N, m = int(np.prod(n)), 3**d
    offsets = np.indices((3,) * d).reshape(d, -1).T - 1
    indptr = (np.arange(N + 1, dtype=np.int64) * m).astype(np.int32)
    indices = np.empty((N, m), dtype=np.int32)
    code = np.empty((N, m), dtype=np.uint8)
    position = np.empty((N, m), dtype=np.uint8)
    block = 1 << 16
    for start in range(0, N, block):
        p = np.arange(start, min(start + block, N))
        g = np.stack(np.unravel_index(p, shape), axis=1)
        q = (g[:, None, :] + offsets[None, :, :]) % n
        cols = np.ravel_multi_index(tuple(np.moveaxis(q, 2, 0)), shape)
        order = np.argsort(cols, axis=1)
        indices[p] = np.take_along_axis(cols, order, axis=1)
        code[p] = order
        pos = np.empty_like(order)
        np.put_along_axis(pos, order, np.arange(m)[None, :], axis=1)
        position[p] = pos
    return PeriodicPattern(tuple(shape), indptr, indices.ravel(), code, position, offsets)


def entry_map(
    pattern: PeriodicPattern,
    indptr: np.ndarray,
    indices: np.ndarray,
    node_ijk: np.ndarray,
    node_to_periodic: np.ndarray,
) -> np.ndarray:
    """Periodic entry index of every entry of a non-periodic CSR matrix on the node grid.

    Parameters
    ----------
    indptr, indices : ndarray
        CSR structure of the matrix on the ``(n+1)^d`` nodes (e.g. DOLFINx's).
    node_ijk : ndarray, shape (n_nodes, d), int
        Integer grid coordinates (0..n) of each node.
    node_to_periodic : ndarray, shape (n_nodes,), int
        Periodic node index of each node.

    Returns
    -------
    ndarray, shape (nnz,), int64
        For each entry, its index into ``pattern``'s CSR data (entries of nodes that are the
        same periodic node pair add up).
    """
    d, m = len(pattern.shape), pattern.code.shape[1]
    rows = np.repeat(np.arange(indptr.size - 1, dtype=np.int32), np.diff(indptr))
    out = np.empty(indices.size, dtype=np.int64)
    weights = 3 ** np.arange(d - 1, -1, -1)
    chunk = 1 << 22
    for start in range(0, indices.size, chunk):
        sl = slice(start, start + chunk)
        r, c = rows[sl], indices[sl]
        diff = node_ijk[c] - node_ijk[r]
        if np.abs(diff).max() > 1:
            raise RuntimeError("stencil wider than one pixel")
        prow = node_to_periodic[r]
        out[sl] = prow * m + pattern.position[prow, (diff + 1) @ weights]
    return out


def node_stencils(pattern: PeriodicPattern, data: np.ndarray) -> np.ndarray:
    """The CSR data of a periodic operator as one stencil per node, ordered by offset code.

    Parameters
    ----------
    data : ndarray, shape (nnz,), float64
        CSR data in ``pattern``'s structure.

    Returns
    -------
    ndarray, shape (n^d, 3^d), float64
        ``out[p, code]`` couples node p with its neighbour at ``pattern.offsets[code]``; for
        d = 2 and node ``p = i n + j`` this is the stencil ``S[i, j, 3 (di + 1) + dj + 1]`` of
        :mod:`micro.multigrid`.
    """
    N, m = pattern.code.shape
    out = np.empty((N, m))
    np.put_along_axis(out, pattern.code.astype(np.intp), data.reshape(N, m), axis=1)
    return out


def pixel_size(shape: tuple[int, ...]) -> float:
    """Pixel size ``h = 1 / max(shape)``: the longest side of the cell has length 1.

    For a square/cubic cell this is the unit cell ``[0, 1]^d``; a rectangular cell is
    ``prod_k [0, n_k h]``.
    """
    return 1.0 / max(int(s) for s in shape)


def offset_weights(pattern: PeriodicPattern, data: np.ndarray, axis: int) -> np.ndarray:
    """``data`` times each entry's periodic offset along ``axis``, in cell-length units.

    Row sums of the result are ``(K x_axis)`` on the periodic nodes, for the exact Q1
    interpolant of the coordinate ``x_axis`` (pixel size :func:`pixel_size`).

    Returns
    -------
    ndarray, shape (n^d, 3^d), float64
    """
    off = pattern.offsets[:, axis].astype(np.float64) * pixel_size(pattern.shape)
    return data.reshape(pattern.code.shape) * off[pattern.code]


def stencil_values(
    pattern: PeriodicPattern,
    mu: np.ndarray,
    stencil: Stencil,
    *,
    stencil_n: int,
    h: float | None = None,
) -> np.ndarray:
    """CSR data of the periodic operator for pixel permeabilities ``mu``.

    Parameters
    ----------
    mu : ndarray, shape ``pattern.shape``, float64
        Pixel permeabilities (>= 0; a zero layer cuts the periodic connection across it).
    stencil : list of (code, corner, value)
        Element stencil for pixel size ``1 / stencil_n`` (see :func:`stencil_from_scatter`).
    stencil_n : int
        Grid size the stencil was read at; the Laplacian's element tensors scale like
        ``h^(d-2)``.
    h : float, optional
        Pixel size (default :func:`pixel_size` of ``pattern.shape``).

    Returns
    -------
    ndarray, shape (nnz,), float64
    """
    d = len(pattern.shape)
    N, m = int(np.prod(pattern.shape)), pattern.code.shape[1]
    corners = np.indices((2,) * d).reshape(d, -1).T - 1  # cell offsets relative to a node
    shifted = [np.roll(mu, tuple(-c), axis=tuple(range(d))).ravel() for c in corners]
    h = pixel_size(pattern.shape) if h is None else float(h)
    scale = (stencil_n * h) ** (d - 2)
    D = np.zeros((m, N))
    for code, corner, value in stencil:
        D[code] += (scale * value) * shifted[corner]
    return D[pattern.code, np.arange(N)[:, None]].ravel()


def scatter_map(pattern: PeriodicPattern, assemble, K0, node_ijk, entry_to_periodic):
    """Linear map A with ``K_periodic.data = A @ mu_pixels``, read off 2^d assemblies.

    Cells of one parity colour share no node, so in the matrix assembled with mu = the
    indicator of colour c every entry (r, q) comes from at most one cell: the cell of that
    colour that contains both nodes.

    Parameters
    ----------
    assemble : callable
        ``assemble(mu_pixels) -> CSR`` on the node grid (with ``indptr``, ``indices``,
        ``data``), e.g. DOLFINx's assembly of ``mu grad u . grad v dx``.
    K0 : CSR
        ``assemble(ones)``; its structure is that of every assembly.
    node_ijk, entry_to_periodic : ndarray
        As for :func:`entry_map` and its result.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (nnz, n^d)
    """
    import scipy.sparse as sp

    shape = pattern.shape
    d, n = len(shape), np.asarray(shape, dtype=np.int64)
    rows = np.repeat(np.arange(K0.indptr.size - 1, dtype=np.int64), np.diff(K0.indptr))
    gr = node_ijk[rows].astype(np.int64)
    gq = node_ijk[K0.indices].astype(np.int64)
    lo = np.minimum(gr, gq)
    same = gr == gq
    parts_r, parts_c, parts_v = [], [], []
    for colour in np.indices((2,) * d).reshape(d, -1).T:
        indicator = np.ones(shape, dtype=bool)
        for axis in range(d):
            sl = [slice(None)] * d
            sl[axis] = np.arange(n[axis]) % 2 != colour[axis]
            indicator[tuple(sl)] = False
        Kc = assemble(indicator.astype(np.float64))
        # the candidate lower corner per axis with the colour's parity
        cell = np.where((lo % 2) == colour, lo, lo - 1)
        ok = (cell >= 0) & (cell <= n - 1) & (same | (cell == lo))
        ok = ok.all(axis=1) & (Kc.data != 0.0)
        parts_r.append(entry_to_periodic[ok])
        parts_c.append(np.ravel_multi_index(tuple(cell[ok].T), shape))
        parts_v.append(Kc.data[ok])
    A = sp.csr_matrix(
        (np.concatenate(parts_v), (np.concatenate(parts_r), np.concatenate(parts_c))),
        shape=(pattern.nnz, int(np.prod(n))),
    )
    A.sum_duplicates()
    # The map must reproduce the reference (all-ones) assembly.
    ref = np.bincount(entry_to_periodic, weights=K0.data, minlength=A.shape[0])
    err = np.abs(A @ np.ones(A.shape[1]) - ref).max()
    if err > 1e-12 * np.abs(ref).max():
        raise RuntimeError(f"scatter map inconsistent with the assembly ({err:.2e})")
    return A


def stencil_from_scatter(pattern: PeriodicPattern, A) -> Stencil:
    """Element stencil read off a scatter map ``A`` (``data = A @ mu``) of a small grid.

    Every cell of a uniform grid has the same element tensor, so each ``(code, corner)`` pair
    must carry one value at every node; this is checked.

    Parameters
    ----------
    A : scipy.sparse matrix, shape (nnz, n^d)
    """
    d, n = len(pattern.shape), np.asarray(pattern.shape, dtype=np.int64)
    A = A.tocoo()
    m = pattern.code.shape[1]
    p, slot = np.divmod(A.row, m)
    code = pattern.code[p, slot].astype(np.int64)
    gp = np.stack(np.unravel_index(p, pattern.shape), axis=1)
    gc = np.stack(np.unravel_index(A.col, pattern.shape), axis=1)
    delta = (gc - gp + 1) % n - 1  # in {-1, 0}
    if delta.max() > 0 or delta.min() < -1:
        raise RuntimeError("element stencil: a cell that does not touch its node")
    corner = np.ravel_multi_index(tuple((delta + 1).T), (2,) * d)
    key = code * 2**d + corner
    tol = 1e-12 * np.abs(A.data).max()
    values: dict[int, float] = {}
    for k in np.unique(key):
        v = A.data[key == k]
        if np.ptp(v) > tol:
            raise RuntimeError("element stencil differs between cells")
        values[int(k)] = float(v.mean())
    return [(k // 2**d, k % 2**d, v) for k, v in sorted(values.items()) if abs(v) > tol]
