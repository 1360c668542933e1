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
    "as_label_image",
    "check_contrast",
    "check_dim",
    "check_image_shape",
    "check_mu",
    "check_phase_mu",
    "check_size",
    "compact_size",
    "format_size",
    "format_values",
    "parse_size",
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


def check_image_shape(
    shape: tuple[int, ...], *, dim: int | None = None, square: bool = False
) -> tuple[int, ...]:
    """Check that ``shape`` is ``(n_1, n_2)`` or ``(n_1, n_2, n_3)``, every ``n_k >= 1``.

    Rectangular cells (square pixels) are accepted unless ``square=True``.

    Returns
    -------
    tuple of int
        ``shape`` unchanged.

    Raises
    ------
    InputError
        Not 2D/3D, dimension other than ``dim``, empty, or (``square=True``) non-square.
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
    if square and len(set(shape)) != 1:
        kind = "square" if ndim == 2 else "cubic"
        raise InputError(
            f"image must be {kind} (one pixel per element of the periodic unit cell): "
            f"got shape {shape}"
        )
    return shape


def compact_size(shape: tuple[int, ...]) -> int | tuple[int, ...]:
    """A cell shape as sizes are kept (files, options): ``n`` for a square (cubic) cell,
    else the shape itself; the inverse of :func:`check_size`."""
    return shape[0] if len(set(shape)) == 1 else shape


def format_size(size: int | tuple[int, ...]) -> str:
    """A cell size as written on the command line: ``256`` or ``256x128`` (``64x48x32``)."""
    if isinstance(size, int | np.integer):
        return str(int(size))
    return "x".join(str(int(v)) for v in size)


def parse_size(text: str, *, what: str = "--size") -> int | tuple[int, ...]:
    """A cell size from the command line: ``"256"`` -> 256 (square or cubic cell),
    ``"256x128"`` -> (256, 128), ``"64x48x32"`` -> (64, 48, 32) (rectangular cells).

    Only the form is checked here; :func:`check_size` checks the sides against a dimension.

    Raises
    ------
    InputError
        Anything but 1 to 3 unsigned integers joined by ``x``.
    """
    parts = str(text).strip().lower().split("x")
    if not 1 <= len(parts) <= 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise InputError(
            f"{what} must be N (square/cubic cell) or N1xN2 or N1xN2xN3 in pixels, integers "
            f"(e.g. 256 or 256x128): got {text!r}"
        )
    sides = tuple(int(p) for p in parts)
    return sides[0] if len(sides) == 1 else sides


def check_size(size: object, *, dim: int, minimum: int = 2, what: str = "size") -> tuple[int, ...]:
    """The cell shape of a size: an integer ``n`` (``(n,) * dim``) or ``dim`` integers.

    Parameters
    ----------
    size : int or sequence of int, length dim
        Pixels per side: one number for a square (cubic) cell, else one per axis (axis k is
        direction x_(k+1)); pixels are square either way.
    dim : {2, 3}
    minimum : int
        Smallest side.
    what : str
        How the message names it.

    Returns
    -------
    tuple of int, length dim

    Raises
    ------
    InputError
        Not an integer or ``dim`` integers, or a side below ``minimum``.
    """
    dim = check_dim(dim)
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        if size < minimum:
            raise InputError(f"{what} must be an integer >= {minimum}: got {size!r}")
        return (int(size),) * dim
    try:
        sides = tuple(size)  # type: ignore[arg-type]
    except TypeError:
        sides = ()
    if not sides or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in sides
    ):
        raise InputError(
            f"{what} must be an integer or {dim} integers (pixels per axis): got {size!r}"
        )
    text = format_size(sides)
    if len(sides) != dim:
        raise InputError(f"{what} {text} has {len(sides)} sides but the cell is {dim}D")
    if min(sides) < minimum:
        raise InputError(f"every side of {what} must be an integer >= {minimum}: got {text}")
    return tuple(int(v) for v in sides)


def _numeric_array(array: object) -> np.ndarray:
    """``array`` as a real, finite numeric ndarray (bool allowed), else :class:`InputError`."""
    try:
        arr = np.asarray(array)
    except (TypeError, ValueError) as exc:
        raise InputError(f"image is not a numeric array: {exc}") from None
    if arr.dtype == object or not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)):
        raise InputError(f"image must be a bool or numeric array: got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise InputError(f"image must be real: got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if np.isnan(arr).any():
            raise InputError(f"image contains NaN ({int(np.isnan(arr).sum())} pixels)")
        if np.isinf(arr).any():
            raise InputError(f"image contains infinite values ({int(np.isinf(arr).sum())} pixels)")
    return arr


def as_label_image(
    array: object, *, n_phases: int, dim: int | None = None, square: bool = False
) -> np.ndarray:
    """Check a phase-label image (labels ``0 .. n_phases-1``) and return it as uint8.

    Parameters
    ----------
    array : array_like, shape (n_1, n_2) or (n_1, n_2, n_3)
        bool (False = phase 0, True = phase 1) or integer-valued numbers.
    n_phases : int
        Number of phases ``k >= 2`` (one permeability each).
    dim : {2, 3}, optional
        Required dimension.
    square : bool
        Require a square/cubic shape.

    Returns
    -------
    ndarray, uint8, the shape of ``array``
        A new C-contiguous array.

    Raises
    ------
    InputError
        NaN/inf, non-integer or negative labels, a label ``>= n_phases`` (more phases in the
        image than permeabilities), or a bad shape.
    """
    if dim is not None:
        dim = check_dim(dim)
    k = int(n_phases)
    if k < 2 or k > 255:
        raise InputError(f"number of phases must be in 2..255: got {n_phases!r}")
    arr = _numeric_array(array)
    check_image_shape(arr.shape, dim=dim, square=square)
    if arr.dtype == bool:
        return np.ascontiguousarray(arr, dtype=np.uint8)
    values = np.unique(arr)
    if not np.array_equal(values, np.round(values)) or values.min() < 0:
        raise InputError(
            f"phase labels must be integers 0..{k - 1}: found values {format_values(values)}"
        )
    if values.max() >= k:
        raise InputError(
            f"image has phase labels up to {values.max():g} but only {k} permeabilities "
            f"were given (labels must be 0..{k - 1})"
        )
    return np.ascontiguousarray(arr, dtype=np.uint8)


def check_phase_mu(mu: object) -> np.ndarray:
    """Check one permeability per phase: at least two values, finite and > 0.

    Parameters
    ----------
    mu : sequence of float, shape (k,)
        Relative permeability of phase (label) ``0 .. k-1``.

    Returns
    -------
    ndarray, shape (k,), float64
    """
    try:
        arr = np.asarray(mu, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise InputError(f"permeabilities must be numbers: got {mu!r}") from None
    if arr.size < 2:
        raise InputError(f"give one permeability per phase, at least two: got {arr.tolist()}")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        raise InputError(f"permeabilities must be finite and > 0: got {arr[bad][0]:g}")
    return arr


def as_binary_image(array: object, *, dim: int | None = None) -> np.ndarray:
    """Check that ``array`` is a binary image and return it as a bool array.

    Parameters
    ----------
    array : array_like, shape (n_1, n_2) or (n_1, n_2, n_3)
        bool, or numbers that are all 0 or 1 (1 = inclusion).  8-bit files with the paper's
        0 = inclusion / 255 = matrix convention are converted by :func:`micro.load_image`
        before they get here.
    dim : {2, 3}, optional
        Required dimension; ``None`` accepts both.

    Returns
    -------
    ndarray, shape (n_1, ..., n_d), bool
        A new C-contiguous array, True = inclusion.

    Raises
    ------
    InputError
        NaN or infinite entries, values other than 0/1, not 2D/3D, dimension other than
        ``dim`` or an empty image.
    """
    if dim is not None:
        dim = check_dim(dim)
    arr = _numeric_array(array)
    check_image_shape(arr.shape, dim=dim)
    if arr.dtype == bool:
        return np.ascontiguousarray(arr, dtype=bool).copy()
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
