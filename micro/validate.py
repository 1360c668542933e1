"""Validation of microstructure images and phase permeabilities (pure numerics, no file I/O).

Every public entry point of :mod:`micro` that takes an image or a pair of permeabilities checks
it here, so the error messages are the same everywhere.  A bad value raises
:class:`magnetohom.errors.InputError` with one line that names the problem and the value.
"""

from __future__ import annotations

import math

import numpy as np

from magnetohom.errors import InputError

__all__ = [
    "MAX_CONTRAST",
    "as_binary_image",
    "check_contrast",
    "check_dim",
    "check_image_shape",
    "check_mu",
    "format_values",
]

_MAX_LISTED = 8

#: Largest permeability contrast (max / min) that the FE homogenization resolves: the energy
#: average cancels terms of the size of the mean permeability, so in double precision its
#: round-off grows with the contrast (about 1e-4 of the tensor at 1e10, 1e-3 at 1e11, 100 %
#: at 1e15). Non-percolating inclusions reach their high-contrast limit long before 1e10.
MAX_CONTRAST = 1e10


def format_values(values: np.ndarray) -> str:
    """Format sorted distinct values as ``{0, 3, 255}`` for error messages (at most 8 shown)."""
    shown = [f"{v:g}" if isinstance(v, float) else str(v) for v in values[:_MAX_LISTED].tolist()]
    if values.size > _MAX_LISTED:
        shown.append(f"... ({values.size} distinct values)")
    return "{" + ", ".join(shown) + "}"


def check_dim(dim: int) -> int:
    """Return ``dim`` as an int if it is 2 or 3, else raise :class:`InputError`."""
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or int(dim) not in (2, 3):
        raise InputError(f"dim must be 2 or 3: got {dim!r}")
    return int(dim)


def check_image_shape(shape: tuple[int, ...], *, dim: int | None = None) -> tuple[int, ...]:
    """Check that ``shape`` is ``(n, n)`` or ``(n, n, n)`` with ``n >= 1`` (and ``len == dim``).

    Returns
    -------
    tuple of int
        ``shape`` unchanged.

    Raises
    ------
    InputError
        Not 2D/3D, dimension other than ``dim``, empty, or non-square/non-cubic.
    """
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    if dim is not None:
        dim = check_dim(dim)
    if ndim not in (2, 3):
        raise InputError(f"image must be 2D or 3D: got {ndim}D array of shape {shape}")
    if dim is not None and ndim != dim:
        raise InputError(f"expected a {dim}D image: got a {ndim}D image of shape {shape}")
    if min(shape) == 0:
        raise InputError(f"image is empty: got shape {shape}")
    if len(set(shape)) != 1:
        kind = "square" if ndim == 2 else "cubic"
        raise InputError(
            f"image must be {kind} (one pixel per element of the periodic unit cell): "
            f"got shape {shape}"
        )
    return shape


def as_binary_image(array: object, *, dim: int | None = None) -> np.ndarray:
    """Check that ``array`` is a binary square/cubic image and return it as a bool array.

    Parameters
    ----------
    array : array_like, shape (n, n) or (n, n, n)
        bool, or numbers that are all 0 or 1 (1 = inclusion).  8-bit files with the paper's
        0 = inclusion / 255 = matrix convention are converted by :func:`micro.load_image`
        before they get here.
    dim : {2, 3}, optional
        Required dimension; ``None`` accepts both.

    Returns
    -------
    ndarray, shape (n,)*d, bool
        A new C-contiguous array, True = inclusion.

    Raises
    ------
    InputError
        NaN or infinite entries, values other than 0/1, not 2D/3D, dimension other than
        ``dim``, an empty image, or a non-square/non-cubic shape.
    """
    if dim is not None:
        dim = check_dim(dim)
    try:
        arr = np.asarray(array)
    except (TypeError, ValueError) as exc:
        raise InputError(f"image is not a numeric array: {exc}") from None
    if arr.dtype == object or not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)):
        raise InputError(f"image must be a bool or numeric array: got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise InputError(f"image must be real: got dtype {arr.dtype}")
    check_image_shape(arr.shape, dim=dim)
    if arr.dtype == bool:
        return np.ascontiguousarray(arr, dtype=bool).copy()
    if np.issubdtype(arr.dtype, np.floating):
        if np.isnan(arr).any():
            raise InputError(f"image contains NaN ({int(np.isnan(arr).sum())} pixels)")
        if np.isinf(arr).any():
            raise InputError(f"image contains infinite values ({int(np.isinf(arr).sum())} pixels)")
    values = np.unique(arr)
    if not np.isin(values, (0, 1)).all():
        hint = ""
        if np.isin(values, (0, 255)).all():
            hint = " (8-bit files with 0 = inclusion, 255 = matrix are read by load_image)"
        raise InputError(
            f"image is not binary: found values {format_values(values)}, expected 0/1{hint}"
        )
    return np.ascontiguousarray(arr != 0)


def check_mu(mu_matrix: float, mu_inclusion: float) -> tuple[float, float]:
    """Check the phase permeabilities: finite and > 0.

    Parameters
    ----------
    mu_matrix, mu_inclusion : float
        Relative permeabilities μ_r of matrix and inclusion (dimensionless).

    Returns
    -------
    (float, float)
        ``(mu_matrix, mu_inclusion)`` as Python floats.

    Raises
    ------
    InputError
        A value that is not a real number, not finite, or <= 0.
    """
    out = []
    for name, value in (("mu_matrix", mu_matrix), ("mu_inclusion", mu_inclusion)):
        try:
            v = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a number: got {value!r}") from None
        if not math.isfinite(v) or v <= 0.0:
            raise InputError(f"{name} must be finite and > 0: got {value!r}")
        out.append(v)
    return out[0], out[1]


def check_contrast(mu_min: float, mu_max: float) -> float:
    """Check that the contrast ``mu_max / mu_min`` is at most :data:`MAX_CONTRAST`.

    Parameters
    ----------
    mu_min, mu_max : float
        Smallest and largest permeability (> 0), in any order.

    Returns
    -------
    float
        The contrast (>= 1).

    Raises
    ------
    InputError
        A contrast above :data:`MAX_CONTRAST`, which the FE homogenization cannot resolve in
        double precision (its labels would be wrong, not just inaccurate).
    """
    lo, hi = sorted((float(mu_min), float(mu_max)))
    contrast = hi / lo
    if contrast > MAX_CONTRAST:
        raise InputError(
            f"permeability contrast {contrast:.3g} (mu {lo:g} to {hi:g}) is above "
            f"{MAX_CONTRAST:.0e}, beyond what the FE homogenization resolves in double "
            "precision; use a smaller contrast"
        )
    return contrast
