"""Periodic statistical volume elements (SVEs): random sequential addition of disks/spheres.

The unit cell ``[0, 1]^d`` is an ``n^d`` pixel grid; pixel ``i`` (per axis) has its centre at
``i + 0.5`` in *pixel units* (``(i + 0.5) / n`` in cell units).  A pixel belongs to the
inclusion phase iff its centre lies strictly inside some inclusion, measured with the periodic
minimum-image distance, so inclusions that cross a face wrap around to the opposite face.

Four classes (paper, Sec. 4.1): overlapping or non-overlapping, monodisperse (``radius``) or
polydisperse (``radius_range``, radii drawn uniformly from ``[rmin, rmax]``, in pixels).

Algorithm
---------
Random sequential addition (RSA): candidates (centre uniform in the cell, radius from the
class) are proposed in vectorised batches and added one by one while the measured pixel
volume fraction is below the target.  For non-overlapping classes a candidate is rejected if
its centre distance to an existing inclusion is below ``r1 + r2`` (minimum image).  A *blocked
map* marks the pixels that lie entirely inside the exclusion zone of every possible new
inclusion (distance ``<= r_j + rmin - sqrt(d)/2``); candidates are drawn from the unblocked
pixels only (uniform within the pixel), which is exactly uniform sampling over the free space,
so the statistics are those of plain RSA but the process reaches jamming in bounded time.
The pixel count is kept incrementally by painting each inclusion's periodic bounding box.

Hitting the target: an inclusion that would take the fraction past the target is accepted
only if it ends closer to the target than stopping before it, and within ``tol``; otherwise
(polydisperse) its radius is shrunk towards the remaining deficit (not below ``rmin``), or the
candidate is rejected and another is tried.  The number of candidates is bounded.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from magnetohom.errors import InputError
from micro.validate import check_dim

__all__ = [
    "DEFAULT_RADIUS",
    "DEFAULT_SIZE",
    "SVE",
    "generate_sve",
    "max_volume_fraction",
    "rasterize",
    "spawn_seeds",
]

log = logging.getLogger(__name__)

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
_JAMMING = {2: 0.547, 3: 0.384}
_SHRINK_TRIES = 4
_STUCK = 500  # consecutive candidates that would overshoot the target window: start again
_RESTARTS = 20


class _StuckError(InputError):
    """No further inclusion lands within ``tol`` of the target (internal; triggers a restart)."""


@dataclass(frozen=True, eq=False)
class SVE:
    """One periodic two-phase microstructure.

    Attributes
    ----------
    image : ndarray, shape (n,)*d, bool
        True = inclusion; axis k is direction x_(k+1).
    centers : ndarray, shape (m, d), float64
        Inclusion centres in pixel units, in ``[0, n)`` (pixel ``i`` has its centre at
        ``i + 0.5``); column k is along image axis k.
    radii : ndarray, shape (m,), float64
        Inclusion radii in pixels.
    volume_fraction : float
        Inclusion fraction measured on the pixels.
    target_volume_fraction : float
        The fraction that was asked for.
    dim, size : int
        Dimension and pixels per side.
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
    size: int
    overlap: bool
    radius: float | None
    radius_range: tuple[float, float] | None
    seed: int | None
    attempts: int

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


def _patch(center: np.ndarray, radius: float, n: int) -> tuple[tuple, np.ndarray]:
    """Periodic bounding box of a ball: an index and squared min-image distances.

    Parameters
    ----------
    center : ndarray, shape (d,), pixel units
    radius : float, pixels
    n : int, pixels per side

    Returns
    -------
    index : tuple
        Slices (box inside the cell: a view) or an ``np.ix_`` open mesh (box wraps a face).
    dist2 : ndarray, float64, box shape
        Squared distance of each pixel centre in the box to ``center``.
    """
    d = len(center)
    slices = []
    axes = []
    sq = []
    wraps = False
    for c in center:
        lo = math.ceil(c - radius - 0.5)
        hi = math.floor(c + radius - 0.5)
        if hi - lo + 1 >= n:
            idx = np.arange(n)
            disp = (idx + 0.5 - c + 0.5 * n) % n - 0.5 * n
            wraps = True
        else:
            offs = np.arange(lo, hi + 1)
            idx = offs % n
            disp = offs + 0.5 - c
            wraps = wraps or lo < 0 or hi >= n
        slices.append(slice(lo, hi + 1))
        axes.append(idx)
        sq.append(disp * disp)
    index = np.ix_(*axes) if wraps else tuple(slices)
    shape = [1] * d
    dist2 = 0.0
    for k in range(d):
        shape[k] = -1
        dist2 = dist2 + sq[k].reshape(shape)
        shape[k] = 1
    return index, dist2


def rasterize(centers: np.ndarray, radii: np.ndarray, *, size: int) -> np.ndarray:
    """Pixelise periodic balls: a pixel is inclusion iff its centre is inside one of them.

    Parameters
    ----------
    centers : ndarray, shape (m, d), pixel units
    radii : ndarray, shape (m,), pixels (``2 r < size``)
    size : int, pixels per side

    Returns
    -------
    ndarray, shape (size,)*d, bool
    """
    centers = np.asarray(centers, dtype=float)
    radii = np.asarray(radii, dtype=float)
    if centers.ndim != 2 or centers.shape[1] not in (2, 3) or radii.shape != centers.shape[:1]:
        raise InputError(
            f"centers must have shape (m, 2|3) and radii (m,): got {centers.shape}, {radii.shape}"
        )
    image = np.zeros((int(size),) * centers.shape[1], dtype=bool)
    for c, r in zip(centers, radii):
        index, dist2 = _patch(c % size, float(r), int(size))
        image[index] |= dist2 < r * r
    return image


def _check_args(
    dim: int,
    size: int | None,
    volume_fraction: float,
    radius: float | None,
    radius_range: tuple[float, float] | None,
    tol: float,
) -> tuple[int, int, float, float, float]:
    """Validate and return ``(dim, size, vf, rmin, rmax)``."""
    dim = check_dim(dim)
    if size is None:
        size = DEFAULT_SIZE[dim]
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 2:
        raise InputError(f"size must be an integer >= 2: got {size!r}")
    size = int(size)
    try:
        vf = float(volume_fraction)
    except (TypeError, ValueError):
        raise InputError(f"volume fraction must be a number: got {volume_fraction!r}") from None
    if not 0.0 < vf < 1.0:  # also False for NaN
        raise InputError(f"volume fraction must be in (0, 1): got {volume_fraction!r}")
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
    if 2.0 * rmax >= size:
        raise InputError(
            f"radius {rmax:g} too large for a cell of {size} pixels (diameter must be < size)"
        )
    return dim, size, vf, rmin, rmax


def generate_sve(
    *,
    dim: int = 2,
    size: int | None = None,
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
    size : int, optional
        Pixels per side; default 256 (2D) / 101 (3D).
    volume_fraction : float
        Target inclusion fraction in (0, 1), measured on the pixels.
    radius : float, optional
        Monodisperse radius in pixels; default 8 (2D) / 5 (3D) when ``radius_range`` is None.
    radius_range : (float, float), optional
        Polydisperse: radii uniform in ``[rmin, rmax]`` pixels.
    overlap : bool
        Allow inclusions to overlap.
    rng : numpy.random.Generator or int or None
        Randomness; an int seed makes the result reproducible.
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
    dim, n, target, rmin, rmax = _check_args(dim, size, volume_fraction, radius, radius_range, tol)
    poly = radius_range is not None
    overlap = bool(overlap)
    limit = max_volume_fraction(dim, overlap=overlap, radius_range=(rmin, rmax) if poly else None)
    if target > limit:
        what = "RSA limit" if not overlap else "limit"
        raise InputError(
            f"volume fraction {target:g} unreachable for {_class_name(dim, overlap, poly)} "
            f"({what} ~{limit:.2f})"
        )
    seed = int(rng) if isinstance(rng, int | np.integer) and not isinstance(rng, bool) else None
    gen = np.random.default_rng(rng)
    ball = math.pi if dim == 2 else 4.0 * math.pi / 3.0
    mean_vol = ball * (0.5 * (rmin + rmax)) ** dim
    expected = target * n**dim / mean_vol * (3.0 if overlap else 1.0) + 10.0
    if max_attempts is None:
        max_attempts = max(200_000, int(200 * expected))
    elif isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise InputError(f"max_attempts must be an integer >= 1: got {max_attempts!r}")
    what = _class_name(dim, overlap, poly)
    attempts = 0
    for restart in range(_RESTARTS):
        # large inclusions in a small cell can miss the +-tol window; then start afresh
        state = _RSA(n, dim, rmin, rmax, overlap, gen)
        state.attempts = attempts
        try:
            state.run(target, tol, int(max_attempts), what)
            break
        except _StuckError as exc:
            if restart == _RESTARTS - 1 or state.attempts >= max_attempts:
                raise InputError(str(exc)) from None
            attempts = state.attempts
            log.debug("RSA restart %d: %s", restart + 1, exc)
    m = state.m
    return SVE(
        image=state.image,
        centers=state.centers[:m].copy(),
        radii=state.radii[:m].copy(),
        volume_fraction=state.count / n**dim,
        target_volume_fraction=target,
        dim=dim,
        size=n,
        overlap=overlap,
        radius=None if poly else rmin,
        radius_range=(rmin, rmax) if poly else None,
        seed=seed,
        attempts=state.attempts,
    )


class _RSA:
    """Mutable state of one RSA run (internal)."""

    def __init__(
        self, n: int, dim: int, rmin: float, rmax: float, overlap: bool, gen: np.random.Generator
    ) -> None:
        self.n, self.dim, self.rmin, self.rmax = n, dim, rmin, rmax
        self.overlap, self.gen = overlap, gen
        self.total = n**dim
        self.image = np.zeros((n,) * dim, dtype=bool)
        self.count = 0
        self.centers = np.empty((64, dim))
        self.radii = np.empty(64)
        self.m = 0
        self.attempts = 0
        if not overlap:
            self.blocked = np.zeros((n,) * dim, dtype=bool)
            self.free = self.total
            self.free_list: np.ndarray | None = None  # None: every cell (not materialised)
            # a cell is blocked if all its points are within r_j + rmin of centre j
            self.block_pad = rmin - 0.5 * math.sqrt(dim) - 1e-9
            # cell list: bins of side >= 2 rmax, so only the 3^d neighbour bins can interact
            self.nbin = int(n // (2.0 * rmax))
            if self.nbin >= 3:
                self.bin_side = n / self.nbin
                self.bin_items = np.full((self.nbin**dim, 4), -1, dtype=np.intp)
                self.bin_count = np.zeros(self.nbin**dim, dtype=np.intp)
                grids = np.meshgrid(*([np.arange(-1, 2)] * dim), indexing="ij")
                self.bin_offsets = np.stack([g.ravel() for g in grids], axis=1)

    def _bin_of(self, pos: np.ndarray) -> np.ndarray:
        """Flat bin index (k,) of positions (k, d)."""
        b = np.floor(pos / self.bin_side).astype(np.intp) % self.nbin
        return np.ravel_multi_index(tuple(b.T), (self.nbin,) * self.dim)

    def _clear_binned(self, pos: np.ndarray, rad: np.ndarray) -> np.ndarray:
        """bool (k,): candidates clear of all inclusions, checking neighbour bins only."""
        n, nb = self.n, self.nbin
        b = np.floor(pos / self.bin_side).astype(np.intp) % nb
        nbr = (b[:, None, :] + self.bin_offsets[None, :, :]) % nb
        flat = np.ravel_multi_index(tuple(np.moveaxis(nbr, -1, 0)), (nb,) * self.dim)
        idx = self.bin_items[flat].reshape(pos.shape[0], -1)  # (k, 3^d * cap)
        valid = idx >= 0
        d = pos[:, None, :] - self.centers[idx]
        d -= n * np.round(d / n)
        dist2 = np.einsum("kmd,kmd->km", d, d)
        lim = rad[:, None] + self.radii[idx]
        return ((dist2 >= lim * lim) | ~valid).all(axis=1)

    # -- candidates ------------------------------------------------------------------------
    def _draw(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``k`` candidate centres (k', d) and radii (k',), free-space filtered."""
        gen, n, dim = self.gen, self.n, self.dim
        self.attempts += k
        if self.rmin == self.rmax:
            rad = np.full(k, self.rmin)
        else:
            rad = gen.uniform(self.rmin, self.rmax, size=k)
        if self.overlap:
            return gen.random((k, dim)) * n, rad
        if self.free_list is None and self.free > 0.3 * self.total:
            pos = gen.random((k, dim)) * n
        else:
            if self.free_list is None or self.free < 0.5 * self.free_list.size:
                self.free_list = np.flatnonzero(~self.blocked)
            cells = self.free_list[gen.integers(self.free_list.size, size=k)]
            pos = np.stack(np.unravel_index(cells, self.image.shape), axis=1) + gen.random((k, dim))
        cell = np.minimum(pos.astype(np.intp), n - 1)
        keep = ~self.blocked[tuple(cell.T)]
        pos, rad = pos[keep], rad[keep]
        if self.m and pos.shape[0]:
            keep = self._clear_binned(pos, rad) if self.nbin >= 3 else self._clear(pos, rad, 0)
            pos, rad = pos[keep], rad[keep]
        return pos, rad

    def _clear(self, pos: np.ndarray, rad: np.ndarray, start: int) -> np.ndarray:
        """bool (k,): candidates at least r + r_j away from inclusions ``start:m``."""
        n = self.n
        out = np.ones(pos.shape[0], dtype=bool)
        chunk = max(1, 2**21 // max(1, (self.m - start) * self.dim))
        cen, rj = self.centers[start : self.m], self.radii[start : self.m]
        for a in range(0, pos.shape[0], chunk):
            d = pos[a : a + chunk, None, :] - cen[None, :, :]
            d -= n * np.round(d / n)
            dist2 = np.einsum("kmd,kmd->km", d, d)
            lim = rad[a : a + chunk, None] + rj[None, :]
            out[a : a + chunk] = (dist2 >= lim * lim).all(axis=1)
        return out

    # -- painting --------------------------------------------------------------------------
    def _gain(self, c: np.ndarray, r: float) -> tuple[int, tuple, np.ndarray]:
        index, dist2 = _patch(c, r, self.n)
        mask = dist2 < r * r
        new = mask & ~self.image[index]
        return int(np.count_nonzero(new)), index, new

    def _commit(self, c: np.ndarray, r: float, gain: int, index: tuple, new: np.ndarray) -> None:
        self.image[index] |= new
        self.count += gain
        if self.m == self.radii.shape[0]:
            self.centers = np.concatenate([self.centers, np.empty_like(self.centers)])
            self.radii = np.concatenate([self.radii, np.empty_like(self.radii)])
        self.centers[self.m] = c
        self.radii[self.m] = r
        self.m += 1
        if not self.overlap:
            if self.nbin >= 3:
                b = int(self._bin_of(c[None])[0])
                if self.bin_count[b] == self.bin_items.shape[1]:
                    grow = np.full_like(self.bin_items, -1)
                    self.bin_items = np.concatenate([self.bin_items, grow], axis=1)
                self.bin_items[b, self.bin_count[b]] = self.m - 1
                self.bin_count[b] += 1
            reach = r + self.block_pad
            if reach > 0.0:
                bindex, dist2 = _patch(c, reach, self.n)
                region = self.blocked[bindex]
                newly = (dist2 <= reach * reach) & ~region
                self.free -= int(np.count_nonzero(newly))
                self.blocked[bindex] = region | newly

    # -- main loop -------------------------------------------------------------------------
    def run(self, target: float, tol: float, max_attempts: int, what: str) -> None:
        total = self.total
        goal, tol_c = target * total, tol * total
        batch = 64
        overshoots = 0
        while self.count < goal:
            if self.attempts >= max_attempts:
                raise InputError(
                    f"volume fraction {target:g} not reached for {what}: stopped at "
                    f"{self.count / total:.4f} after {self.attempts} candidates"
                )
            if not self.overlap and self.free <= 0:
                raise InputError(
                    f"volume fraction {target:g} not reached for {what}: RSA jammed at "
                    f"{self.count / total:.4f} (RSA limit ~{_JAMMING[self.dim]:.2f})"
                )
            m0 = self.m
            pos, rad = self._draw(batch)
            done = False
            for c, r in zip(pos, rad):
                if self.m > m0 and not self.overlap:  # check against this batch's additions
                    cell = np.minimum(c.astype(np.intp), self.n - 1)
                    if self.blocked[tuple(cell)] or not self._clear(c[None], r[None], m0)[0]:
                        continue
                status = self._try(c, float(r), goal, tol_c)
                if status == "stop":
                    done = True
                    break
                overshoots = overshoots + 1 if status == "rejected" else 0
                if overshoots >= _STUCK:
                    raise _StuckError(
                        f"volume fraction {target:g} not reached within tol {tol:g} for {what}: "
                        f"every further inclusion overshoots from {self.count / total:.4f} (one "
                        "inclusion is too large a share of the cell; use a smaller radius, a "
                        "larger size or a larger tol)"
                    )
            if done:
                break
            batch = min(4096, batch * 2) if self.m == m0 else 64
        log.debug(
            "RSA: %d inclusions, vf %.4f, %d candidates", self.m, self.count / total, self.attempts
        )

    def _try(self, c: np.ndarray, r: float, goal: float, tol_c: float) -> str:
        """Add the candidate if it helps; returns 'added', 'rejected' or 'stop'."""
        under = goal - self.count
        for _ in range(_SHRINK_TRIES if self.rmin < self.rmax else 1):
            gain, index, new = self._gain(c, r)
            new_count = self.count + gain
            if new_count <= goal:
                self._commit(c, r, gain, index, new)
                return "stop" if new_count >= goal else "added"
            over = new_count - goal
            if over <= under and over <= tol_c:
                self._commit(c, r, gain, index, new)
                return "stop"
            if r <= self.rmin or gain == 0:
                break
            # polydisperse: shrink the radius towards the deficit
            r = max(self.rmin, r * (max(under, 1.0) / gain) ** (1.0 / self.dim))
        return "stop" if under <= tol_c else "rejected"
