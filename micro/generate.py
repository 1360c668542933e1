"""Periodic statistical volume elements (SVEs): random sequential addition of disks/spheres.

The cell is a grid of ``n^d`` square pixels (``size=n``) or, rectangular, of ``n1 x n2`` (x
``n3``) pixels (``size=(n1, n2[, n3])``), periodic with period ``n_k`` along axis k; pixel ``i``
(per axis) has its centre at ``i + 0.5`` in *pixel units* (``(i + 0.5) / n_k`` in cell units).
A pixel belongs to the inclusion phase iff its centre lies strictly inside some inclusion,
measured with the periodic minimum-image distance, so inclusions that cross a face wrap around
to the opposite face.

Four classes (paper, Sec. 4.1): overlapping or non-overlapping, monodisperse (``radius``) or
polydisperse (``radius_range``, radii drawn uniformly from ``[rmin, rmax]``, in pixels).

SVEs are built by random sequential addition (RSA) with a blocked free-space map and
an exact hit of the target pixel fraction; the engine lives in :mod:`micro._rsa` (compiled
numba kernels, cached on disk: the first call in a process loads or compiles them).
:func:`generate_images` makes many SVE images in one compiled call (e.g. one per macroscale
quadrature point), image ``i`` being that of :func:`generate_sve` with ``rng=rngs[i]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from magnetohom.errors import InputError, SampleError
from micro._rsa import rasterize_balls, run_rsa, run_rsa_batch
from micro.validate import check_dim, check_size, compact_size, format_size

__all__ = [
    "DEFAULT_RADIUS",
    "DEFAULT_SIZE",
    "SVE",
    "generate_images",
    "generate_sve",
    "max_volume_fraction",
    "sve_shape",
    "rasterize",
    "spawn_seeds",
]

#: Paper defaults: image size (pixels per side) and monodisperse radius (pixels) per dimension.
DEFAULT_SIZE = {2: 256, 3: 101}
DEFAULT_RADIUS = {2: 8.0, 3: 5.0}

# Practical upper volume fractions (measured on pixels) that generate_sve reaches reliably
# (100+ seeds in 2D, ~20 in 3D) at the default sizes/radii.  Continuous RSA jams at ~0.547
# (disks) and ~0.384 (spheres); the pixel fraction at jamming fluctuates by ~±0.01 between
# samples, and polydisperse RSA packs denser the wider the radius range (small inclusions fill
# the gaps), so the polydisperse limits are tabulated by rmax / rmin.
_MAX_VF_MONO = {2: 0.52, 3: 0.36}
_MAX_VF_POLY = {2: ((1.25, 0.56), (2.0, 0.58), (3.0, 0.60)), 3: ((1.25, 0.37), (2.0, 0.38))}
_MAX_VF_OVERLAP = 0.99


@dataclass(frozen=True, eq=False)
class SVE:
    """One periodic two-phase microstructure.

    Attributes
    ----------
    image : ndarray, shape (n1, n2) or (n1, n2, n3), bool
        True = inclusion; axis k is direction x_(k+1).
    centers : ndarray, shape (m, d), float64
        Inclusion centres in pixel units, column k in ``[0, n_k)`` (pixel ``i`` has its centre
        at ``i + 0.5``); column k is along image axis k.
    radii : ndarray, shape (m,), float64
        Inclusion radii in pixels.
    volume_fraction : float
        Inclusion fraction measured on the pixels.
    target_volume_fraction : float
        The fraction that was asked for.
    dim : int
    size : int or tuple of int
        Pixels per side (square or cubic cell), else the shape ``(n1, n2[, n3])``.
    overlap : bool
        Whether inclusions may overlap.
    radius : float or None
        Monodisperse radius (pixels), or None.
    radius_range : (float, float) or None
        Polydisperse radius range (pixels), or None.
    seed : int or None
        The integer seed when ``rng`` was an int (regenerates this SVE), else None.
    attempts : int
        Number of candidate inclusions drawn.
    """

    image: np.ndarray
    centers: np.ndarray
    radii: np.ndarray
    volume_fraction: float
    target_volume_fraction: float
    dim: int
    size: int | tuple[int, ...]
    overlap: bool
    radius: float | None
    radius_range: tuple[float, float] | None
    seed: int | None
    attempts: int

    @property
    def shape(self) -> tuple[int, ...]:
        """The image shape ``(n1, n2[, n3])``."""
        return tuple(self.image.shape)

    @property
    def n_inclusions(self) -> int:
        """Number of inclusions ``m``."""
        return int(self.radii.shape[0])


def _class_name(dim: int, overlap: bool, polydisperse: bool) -> str:
    shape = "disks" if dim == 2 else "spheres"
    return (
        f"{'overlapping' if overlap else 'non-overlapping'} "
        f"{'polydisperse' if polydisperse else 'monodisperse'} {shape}"
    )


def max_volume_fraction(
    dim: int = 2,
    *,
    overlap: bool = False,
    polydisperse: bool = False,
    radius_range: tuple[float, float] | None = None,
) -> float:
    """Largest target volume fraction that :func:`generate_sve` accepts for a class.

    For non-overlapping classes this is a practical RSA limit, measured on pixels at the
    default size and radius, that every tried seed reached: 0.52 (monodisperse disks) and 0.36
    (monodisperse spheres), against continuous RSA jamming at ~0.547 and ~0.384.  Polydisperse
    RSA packs denser the wider the range: disks 0.56 / 0.58 / 0.60 for ``rmax/rmin`` >= 1.25 /
    2 / 3, spheres 0.37 / 0.38 for ``rmax/rmin`` >= 1.25 / 2.  Overlapping classes: 0.99.
    Targets above the limit raise :class:`InputError`; targets close to it may still jam for
    very small cells or radii other than the defaults (also an :class:`InputError`).

    Parameters
    ----------
    dim : {2, 3}
    overlap : bool
    polydisperse : bool
        Without ``radius_range``: the limit for ``rmax/rmin >= 1.25`` (conservative).
    radius_range : (float, float), optional
        The polydisperse range in pixels (implies ``polydisperse``): the limit of its
        ``rmax/rmin`` (the monodisperse one below 1.25).

    Returns
    -------
    float
    """
    dim = check_dim(dim)
    if overlap:
        return _MAX_VF_OVERLAP
    if radius_range is None:
        return _MAX_VF_POLY[dim][0][1] if polydisperse else _MAX_VF_MONO[dim]
    rmin, rmax = (float(r) for r in radius_range)
    limit = _MAX_VF_MONO[dim]
    for ratio, value in _MAX_VF_POLY[dim]:
        if rmax >= ratio * rmin:
            limit = value
    return limit


def spawn_seeds(base_seed: int | None, n: int) -> np.ndarray:
    """Independent per-sample integer seeds from one base seed.

    ``np.random.SeedSequence(base_seed).spawn(n)``, each child reduced to a non-negative
    63-bit integer; ``generate_sve(rng=seed)`` regenerates sample ``k`` from ``seeds[k]``.

    Returns
    -------
    ndarray, shape (n,), int64
    """
    children = np.random.SeedSequence(base_seed).spawn(int(n))
    return np.array(
        [int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for c in children],
        dtype=np.int64,
    )


def rasterize(centers: np.ndarray, radii: np.ndarray, *, size: int | tuple[int, ...]) -> np.ndarray:
    """Pixelise periodic balls: a pixel is inclusion iff its centre is inside one of them.

    Parameters
    ----------
    centers : ndarray, shape (m, d), pixel units
    radii : ndarray, shape (m,), pixels (``2 r`` below the smallest side)
    size : int or tuple of int
        Pixels per side, or the cell shape ``(n1, n2[, n3])``.

    Returns
    -------
    ndarray, shape (n1, n2[, n3]), bool
    """
    centers = np.asarray(centers, dtype=float)
    radii = np.asarray(radii, dtype=float)
    if centers.ndim != 2 or centers.shape[1] not in (2, 3) or radii.shape != centers.shape[:1]:
        raise InputError(
            f"centers must have shape (m, 2|3) and radii (m,): got {centers.shape}, {radii.shape}"
        )
    shape = check_size(size, dim=centers.shape[1])
    return rasterize_balls(centers % np.asarray(shape, dtype=float), radii, shape)


def _check_fraction(volume_fraction: float) -> float:
    try:
        vf = float(volume_fraction)
    except (TypeError, ValueError):
        raise InputError(f"volume fraction must be a number: got {volume_fraction!r}") from None
    if not 0.0 < vf < 1.0:  # also False for NaN
        raise InputError(f"volume fraction must be in (0, 1): got {volume_fraction!r}")
    return vf


def sve_shape(dim: int, size: int | tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The image shape of SVEs of ``size`` (default :data:`DEFAULT_SIZE`).

    Parameters
    ----------
    dim : {2, 3}
    size : int or tuple of int, optional
        Pixels per side (square or cubic cell), or the shape ``(n1, n2[, n3])``.

    Returns
    -------
    tuple of int, length dim

    Raises
    ------
    InputError
        Not an integer or ``dim`` integers, or a side below 2.
    """
    dim = check_dim(dim)
    return check_size(DEFAULT_SIZE[dim] if size is None else size, dim=dim)


def _check_class(
    dim: int,
    size: int | tuple[int, ...] | None,
    radius: float | None,
    radius_range: tuple[float, float] | None,
    tol: float,
) -> tuple[int, tuple[int, ...], float, float]:
    """Validate and return ``(dim, shape, rmin, rmax)``."""
    dim = check_dim(dim)
    shape = sve_shape(dim, size)
    if not (isinstance(tol, int | float | np.floating) and math.isfinite(tol) and tol > 0.0):
        raise InputError(f"tol must be finite and > 0: got {tol!r}")
    if radius is not None and radius_range is not None:
        raise InputError("give either radius or radius_range, not both")
    if radius_range is not None:
        try:
            rmin, rmax = (float(r) for r in radius_range)
        except (TypeError, ValueError):
            raise InputError(f"radius_range must be (rmin, rmax): got {radius_range!r}") from None
        if not (math.isfinite(rmin) and math.isfinite(rmax) and 0.0 < rmin <= rmax):
            raise InputError(f"radius_range must satisfy 0 < rmin <= rmax: got {radius_range!r}")
    else:
        r = DEFAULT_RADIUS[dim] if radius is None else radius
        try:
            rmin = rmax = float(r)
        except (TypeError, ValueError):
            raise InputError(f"radius must be a number: got {radius!r}") from None
        if not (math.isfinite(rmin) and rmin > 0.0):
            raise InputError(f"radius must be finite and > 0: got {radius!r}")
    if 2.0 * rmax >= min(shape):
        if len(set(shape)) == 1:
            raise InputError(
                f"radius {rmax:g} too large for a cell of {shape[0]} pixels (diameter must be "
                "< size)"
            )
        raise InputError(
            f"radius {rmax:g} too large for a cell of {format_size(shape)} pixels (diameter "
            f"must be < the smallest side, {min(shape)})"
        )
    return dim, shape, rmin, rmax


def _check_reachable(
    target: float, dim: int, overlap: bool, rmin: float, rmax: float, poly: bool
) -> None:
    limit = max_volume_fraction(dim, overlap=overlap, radius_range=(rmin, rmax) if poly else None)
    if target > limit:
        what = "RSA limit" if not overlap else "limit"
        raise InputError(
            f"volume fraction {target:g} unreachable for {_class_name(dim, overlap, poly)} "
            f"({what} ~{limit:.2f})"
        )


def _check_max_attempts(max_attempts: int | None) -> None:
    if max_attempts is not None and (
        isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
    ):
        raise InputError(f"max_attempts must be an integer >= 1: got {max_attempts!r}")


def _default_max_attempts(
    target: float, total: int, dim: int, rmin: float, rmax: float, overlap: bool
) -> int:
    """``max(200000, 200 m)`` with ``m`` the expected number of inclusions (``total`` pixels)."""
    ball = math.pi if dim == 2 else 4.0 * math.pi / 3.0
    mean_vol = ball * (0.5 * (rmin + rmax)) ** dim
    expected = target * total / mean_vol * (3.0 if overlap else 1.0) + 10.0
    return max(200_000, int(200 * expected))


def generate_sve(
    *,
    dim: int = 2,
    size: int | tuple[int, ...] | None = None,
    volume_fraction: float,
    radius: float | None = None,
    radius_range: tuple[float, float] | None = None,
    overlap: bool = False,
    rng: np.random.Generator | int | None = None,
    tol: float = 0.005,
    max_attempts: int | None = None,
) -> SVE:
    """Generate one periodic SVE of disks (2D) or spheres (3D) by random sequential addition.

    Parameters
    ----------
    dim : {2, 3}
    size : int or tuple of int, optional
        Pixels per side (square or cubic cell; default 256 in 2D, 101 in 3D), or a rectangular
        cell's shape ``(n1, n2)`` / ``(n1, n2, n3)`` (square pixels, periodic along each axis
        with its own period; the radius must be below half the smallest side).
    volume_fraction : float
        Target inclusion fraction in (0, 1), measured on the pixels.
    radius : float, optional
        Monodisperse radius in pixels; default 8 (2D) / 5 (3D) when ``radius_range`` is None.
    radius_range : (float, float), optional
        Polydisperse: radii uniform in ``[rmin, rmax]`` pixels.
    overlap : bool
        Allow inclusions to overlap.
    rng : numpy.random.Generator or int or None
        Randomness; an int seed makes the result reproducible (in any process).  A Generator
        is advanced by four 64-bit draws, which seed the compiled engine.
    tol : float
        Required ``|measured - target|`` (absolute volume fraction).
    max_attempts : int, optional
        Bound on the number of candidate inclusions drawn; default ``max(200000, 200 m)`` with
        ``m`` the expected number of inclusions.

    Returns
    -------
    SVE

    Raises
    ------
    InputError
        Bad arguments; a target above :func:`max_volume_fraction`; or the target not reached
        within ``tol`` (jammed, or ``max_attempts`` exhausted).
    """
    dim, shape, rmin, rmax = _check_class(dim, size, radius, radius_range, tol)
    total = math.prod(shape)
    target = _check_fraction(volume_fraction)
    poly = radius_range is not None
    overlap = bool(overlap)
    _check_reachable(target, dim, overlap, rmin, rmax, poly)
    _check_max_attempts(max_attempts)
    if max_attempts is None:
        max_attempts = _default_max_attempts(target, total, dim, rmin, rmax, overlap)
    seed = int(rng) if isinstance(rng, int | np.integer) and not isinstance(rng, bool) else None
    gen = np.random.default_rng(rng)
    state = run_rsa(
        shape,
        dim,
        rmin,
        rmax,
        overlap,
        gen,
        target=target,
        tol=tol,
        max_attempts=int(max_attempts),
        what=_class_name(dim, overlap, poly),
    )
    return SVE(
        image=state.image,
        centers=state.centers,
        radii=state.radii,
        volume_fraction=state.count / total,
        target_volume_fraction=target,
        dim=dim,
        size=compact_size(shape),
        overlap=overlap,
        radius=None if poly else rmin,
        radius_range=(rmin, rmax) if poly else None,
        seed=seed,
        attempts=state.attempts,
    )


def generate_images(
    volume_fractions: Sequence[float] | np.ndarray,
    *,
    rngs: Sequence[np.random.Generator | int | None] | None = None,
    seed: int | None = None,
    spawn_keys: Sequence[int] | np.ndarray | None = None,
    dim: int = 2,
    size: int | tuple[int, ...] | None = None,
    radius: float | None = None,
    radius_range: tuple[float, float] | None = None,
    overlap: bool = False,
    tol: float = 0.005,
    max_attempts: int | None = None,
    return_counts: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Many SVE images of one class in one compiled call (no per-SVE Python overhead).

    Image ``i`` is ``generate_sve(volume_fraction=volume_fractions[i], rng=rngs[i], ...).image``
    with the same class arguments (bit for bit); a fraction of exactly 0 gives an all-matrix
    image (and draws nothing from ``rngs[i]``).

    Parameters
    ----------
    volume_fractions : sequence of float, shape (N,)
        Target inclusion fractions, each 0 or in (0, 1) and at most :func:`max_volume_fraction`.
    rngs : sequence of numpy.random.Generator or int or None, length N
        Randomness of each image (e.g. ``spawn_seeds(base, N)`` or one Generator per point).
    seed, spawn_keys : int and sequence of int, length N
        Instead of ``rngs``: image ``i`` uses ``np.random.default_rng(np.random.SeedSequence(
        seed, spawn_key=(spawn_keys[i],)))``, derived for all images in one compiled pass (the
        per-point streams of an FE² run; building the generators costs ~20 us per image).
    dim, size, radius, radius_range, overlap, tol, max_attempts
        As for :func:`generate_sve`.
    return_counts : bool
        Also return the inclusion pixels of each image (kept by the kernel as it paints: free).

    Returns
    -------
    images : ndarray, shape (N, n1, n2[, n3]), bool
        True = inclusion; axis k + 1 is direction x_(k+1).
    counts : ndarray, shape (N,), int64
        Only with ``return_counts``.

    Raises
    ------
    InputError
        Bad arguments, or an image that misses its target (the message names its index).
    """
    dim, shape, rmin, rmax = _check_class(dim, size, radius, radius_range, tol)
    total = math.prod(shape)
    poly = radius_range is not None
    overlap = bool(overlap)
    vf = np.asarray(volume_fractions, dtype=np.float64).ravel()
    if (rngs is None) == (spawn_keys is None) or (spawn_keys is None) != (seed is None):
        raise InputError("give rngs, or seed and spawn_keys")
    if spawn_keys is not None:
        keys = np.asarray(spawn_keys).ravel()
        if not np.issubdtype(keys.dtype, np.integer) or (keys.size and keys.min() < 0):
            raise InputError("spawn_keys must be non-negative integers")
        if int(seed) < 0:
            raise InputError(f"seed must be >= 0: got {seed}")
        n_streams = keys.size
    else:
        n_streams = len(rngs)
    if n_streams != vf.size:
        raise InputError(f"{vf.size} volume fractions but {n_streams} random streams")
    _check_max_attempts(max_attempts)
    attempts = np.empty(vf.size, dtype=np.int64)
    for i, target in enumerate(vf.tolist()):
        if target != 0.0:
            try:
                _check_fraction(target)
                _check_reachable(target, dim, overlap, rmin, rmax, poly)
            except InputError as exc:
                raise SampleError(i, str(exc)) from None
        attempts[i] = (
            _default_max_attempts(target, total, dim, rmin, rmax, overlap)
            if max_attempts is None
            else max_attempts
        )
    if spawn_keys is not None:
        from micro._seeding import child_raw

        gens = child_raw(int(seed), keys)
    else:
        gens = [np.random.default_rng(r) for r in rngs]
    images, counts = run_rsa_batch(
        shape,
        dim,
        rmin,
        rmax,
        overlap,
        gens,
        targets=vf,
        tol=tol,
        max_attempts=attempts,
        what=_class_name(dim, overlap, poly),
    )
    return (images, counts) if return_counts else images
