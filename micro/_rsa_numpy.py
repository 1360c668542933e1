"""Former numpy RSA engine, kept as an independent reference for tests and benchmarks (internal).

:func:`micro.generate.generate_sve` runs the compiled engine of :mod:`micro._rsa`; this module
is the vectorised numpy implementation it replaced (same algorithm and target-window rules,
another random stream, ~10-50x slower).  :func:`reference_sve` calls it with the defaults of
:func:`micro.generate.generate_sve`.  Geometry conventions (pixel units, periodic minimum
image) are those of :mod:`micro.generate`.

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

import numpy as np

from magnetohom.errors import InputError

__all__ = ["RSA", "ball_patch", "reference_sve", "run_rsa"]

# records keep the logger name they had before the engine moved out of micro.generate
log = logging.getLogger("micro.generate")

_JAMMING = {2: 0.547, 3: 0.384}
_SHRINK_TRIES = 4
_STUCK = 500  # consecutive candidates that would overshoot the target window: start again
_RESTARTS = 20


class _StuckError(InputError):
    """No further inclusion lands within ``tol`` of the target (internal; triggers a restart)."""


def ball_patch(
    center: np.ndarray, radius: float, n: int | tuple[int, ...]
) -> tuple[tuple, np.ndarray]:
    """Periodic bounding box of a ball: an index and squared min-image distances.

    Parameters
    ----------
    center : ndarray, shape (d,), pixel units
    radius : float, pixels
    n : int or tuple of int
        Pixels per side, or per axis (a rectangular cell).

    Returns
    -------
    index : tuple
        Slices (box inside the cell: a view) or an ``np.ix_`` open mesh (box wraps a face).
    dist2 : ndarray, float64, box shape
        Squared distance of each pixel centre in the box to ``center``.
    """
    d = len(center)
    sides = (int(n),) * d if np.ndim(n) == 0 else tuple(int(v) for v in n)
    slices = []
    axes = []
    sq = []
    wraps = False
    for c, side in zip(center, sides):
        lo = math.ceil(c - radius - 0.5)
        hi = math.floor(c + radius - 0.5)
        if hi - lo + 1 >= side:
            idx = np.arange(side)
            disp = (idx + 0.5 - c + 0.5 * side) % side - 0.5 * side
            wraps = True
        else:
            offs = np.arange(lo, hi + 1)
            idx = offs % side
            disp = offs + 0.5 - c
            wraps = wraps or lo < 0 or hi >= side
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


def run_rsa(
    n: int | tuple[int, ...],
    dim: int,
    rmin: float,
    rmax: float,
    overlap: bool,
    gen: np.random.Generator,
    *,
    target: float,
    tol: float,
    max_attempts: int,
    what: str,
) -> RSA:
    """Run RSA to a target pixel volume fraction, restarting when the target window is missed.

    Parameters
    ----------
    n : int or tuple of int
        Pixels per side, or the cell shape ``(n1, n2[, n3])``.
    dim : {2, 3}
    rmin, rmax : float
        Radius range in pixels (equal: monodisperse).
    overlap : bool
        Allow inclusions to overlap.
    gen : numpy.random.Generator
        Randomness (consumed; restarts continue the same stream).
    target : float
        Target inclusion fraction, measured on the pixels.
    tol : float
        Required ``|measured - target|``.
    max_attempts : int
        Bound on the candidates drawn, summed over restarts.
    what : str
        Class description for error messages.

    Returns
    -------
    RSA
        The final state (``image``, ``count``, ``centers[:m]``, ``radii[:m]``, ``attempts``).

    Raises
    ------
    InputError
        Target not reached within ``tol`` (jammed, ``max_attempts`` exhausted, or still
        overshooting after the last restart).
    """
    attempts = 0
    for restart in range(_RESTARTS):
        # large inclusions in a small cell can miss the +-tol window; then start afresh
        state = RSA(n, dim, rmin, rmax, overlap, gen)
        state.attempts = attempts
        try:
            state.run(target, tol, max_attempts, what)
            break
        except _StuckError as exc:
            if restart == _RESTARTS - 1 or state.attempts >= max_attempts:
                raise InputError(str(exc)) from None
            attempts = state.attempts
            log.debug("RSA restart %d: %s", restart + 1, exc)
    return state


def reference_sve(
    *,
    dim: int,
    size: int | tuple[int, ...],
    volume_fraction: float,
    radius: float | None = None,
    radius_range: tuple[float, float] | None = None,
    overlap: bool = False,
    rng: np.random.Generator | int | None = None,
    tol: float = 0.005,
) -> RSA:
    """One SVE from the numpy engine (no argument checks; ``max_attempts`` as generate_sve).

    Returns
    -------
    RSA
        ``image`` (n1, n2[, n3]) bool, ``count``, ``centers[:m]`` (m, dim), ``radii[:m]``.
    """
    rmin, rmax = (float(radius), float(radius)) if radius_range is None else radius_range
    ball = math.pi if dim == 2 else 4.0 * math.pi / 3.0
    total = int(size) ** dim if np.ndim(size) == 0 else math.prod(size)
    expected = volume_fraction * total / (ball * (0.5 * (rmin + rmax)) ** dim)
    expected = expected * (3.0 if overlap else 1.0) + 10.0
    return run_rsa(
        size if np.ndim(size) == 0 else tuple(size),
        int(dim),
        float(rmin),
        float(rmax),
        bool(overlap),
        np.random.default_rng(rng),
        target=float(volume_fraction),
        tol=tol,
        max_attempts=max(200_000, int(200 * expected)),
        what="reference",
    )


class RSA:
    """Mutable state of one RSA run: image, pixel count, inclusions, blocked map, cell list.

    Parameters
    ----------
    n : int or tuple of int
        Pixels per side, or the cell shape ``(n1, n2[, n3])`` (each axis its own period).
    dim : {2, 3}
    rmin, rmax : float
        Radius range in pixels (equal: monodisperse).
    overlap : bool
        Allow inclusions to overlap.
    gen : numpy.random.Generator
        Randomness (consumed).
    """

    def __init__(
        self,
        n: int | tuple[int, ...],
        dim: int,
        rmin: float,
        rmax: float,
        overlap: bool,
        gen: np.random.Generator,
    ) -> None:
        self.shape = (int(n),) * dim if np.ndim(n) == 0 else tuple(int(v) for v in n)
        self.n = np.array(self.shape, dtype=float)  # periods (d,), broadcast over positions
        self.dim, self.rmin, self.rmax = dim, rmin, rmax
        self.overlap, self.gen = overlap, gen
        self.total = math.prod(self.shape)
        self.image = np.zeros(self.shape, dtype=bool)
        self.count = 0
        self.centers = np.empty((64, dim))
        self.radii = np.empty(64)
        self.m = 0
        self.attempts = 0
        if not overlap:
            self.blocked = np.zeros(self.shape, dtype=bool)
            self.free = self.total
            self.free_list: np.ndarray | None = None  # None: every cell (not materialised)
            # a cell is blocked if all its points are within r_j + rmin of centre j
            self.block_pad = rmin - 0.5 * math.sqrt(dim) - 1e-9
            # cell list: bins of side >= 2 rmax per axis, so only the 3^d neighbour bins can
            # interact (used when every axis holds at least 3)
            self.nbin = np.array([int(v // (2.0 * rmax)) for v in self.shape], dtype=np.intp)
            self.binned = bool(self.nbin.min() >= 3)
            if self.binned:
                self.bin_side = self.n / self.nbin
                self.bin_items = np.full((int(self.nbin.prod()), 4), -1, dtype=np.intp)
                self.bin_count = np.zeros(int(self.nbin.prod()), dtype=np.intp)
                grids = np.meshgrid(*([np.arange(-1, 2)] * dim), indexing="ij")
                self.bin_offsets = np.stack([g.ravel() for g in grids], axis=1)

    def _bin_of(self, pos: np.ndarray) -> np.ndarray:
        """Flat bin index (k,) of positions (k, d)."""
        b = np.floor(pos / self.bin_side).astype(np.intp) % self.nbin
        return np.ravel_multi_index(tuple(b.T), tuple(self.nbin))

    def _clear_binned(self, pos: np.ndarray, rad: np.ndarray) -> np.ndarray:
        """bool (k,): candidates clear of all inclusions, checking neighbour bins only."""
        n, nb = self.n, self.nbin
        b = np.floor(pos / self.bin_side).astype(np.intp) % nb
        nbr = (b[:, None, :] + self.bin_offsets[None, :, :]) % nb
        flat = np.ravel_multi_index(tuple(np.moveaxis(nbr, -1, 0)), tuple(nb))
        idx = self.bin_items[flat].reshape(pos.shape[0], -1)  # (k, 3^d * cap)
        valid = idx >= 0
        idx = np.where(valid, idx, 0)  # empty slots (-1) would read unset memory
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
        cell = np.minimum(pos.astype(np.intp), np.array(self.shape) - 1)
        keep = ~self.blocked[tuple(cell.T)]
        pos, rad = pos[keep], rad[keep]
        if self.m and pos.shape[0]:
            keep = self._clear_binned(pos, rad) if self.binned else self._clear(pos, rad, 0)
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
        index, dist2 = ball_patch(c, r, self.shape)
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
            if self.binned:
                b = int(self._bin_of(c[None])[0])
                if self.bin_count[b] == self.bin_items.shape[1]:
                    grow = np.full_like(self.bin_items, -1)
                    self.bin_items = np.concatenate([self.bin_items, grow], axis=1)
                self.bin_items[b, self.bin_count[b]] = self.m - 1
                self.bin_count[b] += 1
            reach = r + self.block_pad
            if reach > 0.0:
                bindex, dist2 = ball_patch(c, reach, self.shape)
                region = self.blocked[bindex]
                newly = (dist2 <= reach * reach) & ~region
                self.free -= int(np.count_nonzero(newly))
                self.blocked[bindex] = region | newly

    # -- main loop -------------------------------------------------------------------------
    def run(self, target: float, tol: float, max_attempts: int, what: str) -> None:
        """Add inclusions until the pixel count reaches ``target`` (within ``tol``).

        Raises
        ------
        InputError
            ``max_attempts`` candidates drawn, or jammed (no free space left).
        _StuckError
            Every further inclusion overshoots the target window.
        """
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
                    cell = np.minimum(c.astype(np.intp), np.array(self.shape) - 1)
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
