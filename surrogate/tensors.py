"""Symmetric tensors as vectors: component order, Mandel notation, matrix log and exp (numpy).

Component order (also the order of every table, JSON field and plot):

* 2D: ``mu11, mu22, mu12``
* 3D: ``mu11, mu22, mu33, mu23, mu13, mu12`` (Voigt order)

*Mandel* vectors hold the diagonal entries as they are and ``sqrt(2) * A_ij`` for the off-diagonal
ones, so that the Euclidean norm of the vector equals the Frobenius norm of the matrix; the default
model predicts the Mandel vector of ``logm(mu_eff)``.
"""

from __future__ import annotations

import numpy as np

from magnetohom.errors import InputError

__all__ = [
    "clip_eigenvalues",
    "component_indices",
    "component_names",
    "components",
    "from_components",
    "from_mandel",
    "mandel",
    "mandel_matrix",
    "n_components",
    "sym_expm",
    "sym_logm",
]


def _check_dim(dim: int) -> int:
    if dim not in (2, 3):
        raise InputError(f"dimension must be 2 or 3, got {dim!r}")
    return int(dim)


def component_indices(dim: int) -> tuple[tuple[int, int], ...]:
    """Index pairs ``(i, j)`` (0-based) of the independent components, diagonal first."""
    if _check_dim(dim) == 2:
        return ((0, 0), (1, 1), (0, 1))
    return ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def n_components(dim: int) -> int:
    """Number of independent components of a symmetric ``dim x dim`` tensor (3 or 6)."""
    return len(component_indices(dim))


def component_names(dim: int, *, diagonal_only: bool = False) -> list[str]:
    """Names ``"mu11"``, ``"mu22"``, ``"mu12"``, ... in the package's component order."""
    pairs = component_indices(dim)
    if diagonal_only:
        pairs = pairs[:dim]
    return [f"mu{i + 1}{j + 1}" for i, j in pairs]


def mandel_matrix(dim: int) -> np.ndarray:
    """Orthonormal map between Mandel vectors and flattened matrices.

    Returns
    -------
    numpy.ndarray
        ``M`` of shape ``(m, dim*dim)`` float64 with ``M @ M.T = I``: ``A.reshape(d*d) @ M.T`` is
        the Mandel vector of a symmetric ``A`` and ``v @ M`` the flattened matrix of vector ``v``.
    """
    pairs = component_indices(dim)
    m = np.zeros((len(pairs), dim * dim))
    for k, (i, j) in enumerate(pairs):
        if i == j:
            m[k, i * dim + i] = 1.0
        else:
            m[k, i * dim + j] = m[k, j * dim + i] = 1.0 / np.sqrt(2.0)
    return m


def _check_matrices(a: np.ndarray, name: str = "tensor") -> tuple[np.ndarray, int]:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or a.shape[-1] not in (2, 3):
        raise InputError(f"{name} must have shape (..., d, d) with d = 2 or 3, got {a.shape}")
    return a, a.shape[-1]


def mandel(a: np.ndarray) -> np.ndarray:
    """Mandel vectors ``(..., m)`` float64 of symmetric matrices ``(..., d, d)``."""
    a, d = _check_matrices(a)
    return a.reshape(*a.shape[:-2], d * d) @ mandel_matrix(d).T


def from_mandel(v: np.ndarray, dim: int) -> np.ndarray:
    """Symmetric matrices ``(..., d, d)`` float64 of Mandel vectors ``(..., m)``."""
    v = np.asarray(v, dtype=np.float64)
    if v.shape[-1] != n_components(dim):
        raise InputError(f"expected {n_components(dim)} Mandel components, got shape {v.shape}")
    return (v @ mandel_matrix(dim)).reshape(*v.shape[:-1], dim, dim)


def components(a: np.ndarray) -> np.ndarray:
    """Plain components ``(..., m)`` float64 (``mu11, mu22, mu12, ...``) of ``(..., d, d)``."""
    a, d = _check_matrices(a)
    return np.stack([a[..., i, j] for i, j in component_indices(d)], axis=-1)


def from_components(c: np.ndarray, dim: int) -> np.ndarray:
    """Symmetric matrices ``(..., d, d)`` float64 from plain components ``(..., m)``."""
    c = np.asarray(c, dtype=np.float64)
    if c.shape[-1] != n_components(dim):
        raise InputError(f"expected {n_components(dim)} components, got shape {c.shape}")
    out = np.zeros((*c.shape[:-1], dim, dim))
    for k, (i, j) in enumerate(component_indices(dim)):
        out[..., i, j] = out[..., j, i] = c[..., k]
    return out


def sym_logm(a: np.ndarray) -> np.ndarray:
    """Matrix logarithm ``(..., d, d)`` float64 of symmetric positive definite matrices.

    Raises
    ------
    InputError
        If a matrix is not finite or has an eigenvalue <= 0.
    """
    a, _ = _check_matrices(a)
    if not np.all(np.isfinite(a)):
        raise InputError("tensor has non-finite entries")
    sym = 0.5 * (a + np.swapaxes(a, -1, -2))
    w, v = np.linalg.eigh(sym)
    if np.any(w <= 0):
        raise InputError(f"tensor is not positive definite: smallest eigenvalue {w.min():.3g}")
    return (v * np.log(w)[..., None, :]) @ np.swapaxes(v, -1, -2)


def sym_expm(a: np.ndarray) -> np.ndarray:
    """Matrix exponential ``(..., d, d)`` float64 of symmetric matrices (via ``eigh``)."""
    a, _ = _check_matrices(a)
    sym = 0.5 * (a + np.swapaxes(a, -1, -2))
    w, v = np.linalg.eigh(sym)
    return (v * np.exp(w)[..., None, :]) @ np.swapaxes(v, -1, -2)


def clip_eigenvalues(a: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Project symmetric matrices onto ``lower * I <= A <= upper * I`` (eigenvalue clipping).

    Parameters
    ----------
    a
        Symmetric matrices ``(N, d, d)``.
    lower, upper
        Per-matrix bounds ``(N,)``.

    Returns
    -------
    numpy.ndarray
        ``(N, d, d)`` float64, symmetric, eigenvalues inside ``[lower, upper]``.
    """
    a, _ = _check_matrices(a)
    sym = 0.5 * (a + np.swapaxes(a, -1, -2))
    w, v = np.linalg.eigh(sym)
    lo = np.asarray(lower, dtype=np.float64)[..., None]
    hi = np.asarray(upper, dtype=np.float64)[..., None]
    w = np.clip(w, lo, hi)
    out = (v * w[..., None, :]) @ np.swapaxes(v, -1, -2)
    return 0.5 * (out + np.swapaxes(out, -1, -2))
