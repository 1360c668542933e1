"""Random sequential addition (RSA) engine behind :func:`micro.generate.generate_sve` (internal).

Geometry conventions (pixel units, periodic minimum image, a cell of ``shape = (n1, n2[, n3])``
pixels, each side its own period) are those of :mod:`micro.generate`. The loops run as compiled
numba kernels (:mod:`micro._rsa_jit`, imported on first use and cached on disk);
:mod:`micro._rsa_numpy` keeps the former numpy engine as an independent reference for tests and
benchmarks.

Algorithm
---------
Random sequential addition: candidates (centre uniform in the cell, radius from the class) are
proposed one at a time and added while the measured pixel volume fraction is below the target.
For non-overlapping classes a candidate is rejected if its centre distance to an existing
inclusion is below ``r1 + r2`` (minimum image; a cell list of bins of side ``>= 2 rmax`` on each
axis limits the check to neighbouring bins). Once 64 consecutive candidates have been rejected,
a *blocked map* (one bit a pixel) marks the pixels that lie entirely inside the exclusion zone
of every possible new inclusion (distance ``<= r_j + rmin - sqrt(d)/2``), kept up to date as
inclusions are added; candidates are then drawn from the unblocked pixels only (uniform within
the pixel) -- by rejection while at least 1/16 of the pixels are free, then from a list of the
free pixels with lazy removal of those blocked since. Each proposal is uniform over a superset
of the free space and the overlap test is exact, so the statistics are those of plain RSA, but
the process reaches jamming in bounded time. The pixel count is kept incrementally by painting
each inclusion's periodic bounding box.

Hitting the target: an inclusion that would take the fraction past the target is accepted
only if it ends closer to the target than stopping before it, and within ``tol``; otherwise
(polydisperse) its radius is shrunk towards the remaining deficit (not below ``rmin``), or the
candidate is rejected and another is tried.  After 500 consecutive overshooting candidates
the run starts afresh (at most 20 times, continuing the random stream).  The number of
candidates is bounded by ``max_attempts``, summed over restarts.

Randomness: each run draws four 64-bit words from the caller's
:class:`numpy.random.Generator` to seed the kernels' xoshiro256** stream, so a seed gives the
same SVE in every process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from magnetohom.errors import InputError, SampleError

__all__ = ["RSAResult", "rasterize_balls", "run_rsa", "run_rsa_batch"]

# records keep the logger name they had before the engine moved out of micro.generate
log = logging.getLogger("micro.generate")

_JAMMING = {2: 0.547, 3: 0.384}


@dataclass(frozen=True)
class RSAResult:
    """Final state of one RSA run.

    Attributes
    ----------
    image : ndarray, shape (n1, n2[, n3]), bool
    count : int
        Inclusion pixels.
    centers : ndarray, shape (m, d), float64, pixel units
    radii : ndarray, shape (m,), float64, pixels
    attempts : int
        Candidates drawn, summed over restarts.
    """

    image: np.ndarray
    count: int
    centers: np.ndarray
    radii: np.ndarray
    attempts: int


def _kernels() -> Any:
    from micro import _rsa_jit  # numba: imported on first use only

    return _rsa_jit


def _shape(shape: tuple[int, ...]) -> np.ndarray:
    """The kernels' 3D shape (3,) int64 of a cell ``(n1, n2)`` (``(1, n1, n2)``) or 3D one."""
    return np.array((1, *shape) if len(shape) == 2 else shape, dtype=np.int64)


def _seed_state(gen: np.random.Generator) -> np.ndarray:
    """xoshiro256** state (4,) uint64: the next four 64-bit words of ``gen`` (never all zero).

    ``gen.bit_generator.random_raw(4)`` equals ``gen.integers(0, 2**64, 4, np.uint64)``.
    """
    state = gen.bit_generator.random_raw(4)
    if not (int(state[0]) | int(state[1]) | int(state[2]) | int(state[3])):
        state[0] = 1
    return state


def _failure(
    status: int, count: int, attempts: int, *, total: int, dim: int, target: float, tol: float,
    what: str,
) -> InputError:  # fmt: skip
    k = _kernels()
    vf = count / total
    if status == k.JAMMED:
        return InputError(
            f"volume fraction {target:g} not reached for {what}: RSA jammed at {vf:.4f} "
            f"(RSA limit ~{_JAMMING[dim]:.2f})"
        )
    if status == k.STUCK:
        return InputError(
            f"volume fraction {target:g} not reached within tol {tol:g} for {what}: every "
            f"further inclusion overshoots from {vf:.4f} (one inclusion is too large a share "
            "of the cell; use a smaller radius, a larger size or a larger tol)"
        )
    return InputError(
        f"volume fraction {target:g} not reached for {what}: stopped at {vf:.4f} after "
        f"{attempts} candidates"
    )


def _run(
    shape: tuple[int, ...],
    dim: int,
    rmin: float,
    rmax: float,
    overlap: bool,
    gens: list[np.random.Generator] | np.ndarray,
    targets: np.ndarray,
    tol: float,
    max_attempts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Kernel call: images (N, total), out (N, 4), centers (M, 3), radii (M,).

    ``gens``: one generator per target, or the words they would give, ``(N, 4)`` uint64.
    """
    k = _kernels()
    shape3 = _shape(shape)
    if isinstance(gens, np.ndarray):
        states = np.array(gens, dtype=np.uint64)
        states[~states.any(axis=1), 0] = 1  # as _seed_state
    else:
        states = np.empty((targets.size, 4), dtype=np.uint64)
        for i, gen in enumerate(gens):
            states[i] = _seed_state(gen) if targets[i] > 0.0 else 0
    images = np.empty((targets.size, int(shape3.prod())), dtype=bool)
    out = np.zeros((targets.size, 4), dtype=np.int64)
    centers, radii = k.rsa_batch(
        states,
        shape3,
        int(dim),
        float(rmin),
        float(rmax),
        bool(overlap),
        targets,
        float(tol),
        max_attempts,
        images,
        out,
    )
    return images, out, centers, radii


def run_rsa(
    shape: tuple[int, ...],
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
) -> RSAResult:
    """Run RSA to a target pixel volume fraction, restarting when the target window is missed.

    Parameters
    ----------
    shape : tuple of int, length dim
        Pixels per side, per axis (``(n, n)``: a square cell).
    dim : {2, 3}
    rmin, rmax : float
        Radius range in pixels (equal: monodisperse).
    overlap : bool
        Allow inclusions to overlap.
    gen : numpy.random.Generator
        Randomness (four 64-bit words are drawn to seed the kernel's stream).
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
    RSAResult

    Raises
    ------
    InputError
        Target not reached within ``tol`` (jammed, ``max_attempts`` exhausted, or still
        overshooting after the last restart).
    """
    images, out, centers, radii = _run(
        shape, dim, rmin, rmax, overlap, [gen], np.array([float(target)]), tol,
        np.array([int(max_attempts)], dtype=np.int64),
    )  # fmt: skip
    status, count, attempts, _ = (int(v) for v in out[0])
    total = images.shape[1]
    if status != _kernels().OK:
        raise _failure(
            status, count, attempts, total=total, dim=dim, target=target, tol=tol, what=what
        )
    log.debug("RSA: %d inclusions, vf %.4f, %d candidates", radii.size, count / total, attempts)
    return RSAResult(
        image=images[0].reshape(shape),
        count=count,
        centers=np.ascontiguousarray(centers[:, 3 - dim :]),
        radii=radii.copy(),
        attempts=attempts,
    )


def run_rsa_batch(
    shape: tuple[int, ...],
    dim: int,
    rmin: float,
    rmax: float,
    overlap: bool,
    gens: list[np.random.Generator] | np.ndarray,
    *,
    targets: np.ndarray,
    tol: float,
    max_attempts: np.ndarray,
    what: str,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`run_rsa` for many targets in one compiled call (images only).

    Sample ``i`` equals ``run_rsa(..., gens[i], target=targets[i],
    max_attempts=max_attempts[i], ...)``; a target ``<= 0`` gives an empty image (and draws
    nothing from its generator). ``gens`` may also be the four words each generator would
    give, ``(N, 4)`` uint64 (see :func:`micro._seeding.child_raw`).

    Returns
    -------
    images : ndarray, shape (N, n1, n2[, n3]), bool
    counts : ndarray, shape (N,), int64
        Inclusion pixels per image.

    Raises
    ------
    InputError
        A sample missed its target (the message names the sample).
    """
    targets = np.ascontiguousarray(targets, dtype=np.float64)
    max_attempts = np.ascontiguousarray(max_attempts, dtype=np.int64)
    images, out, _, _ = _run(shape, dim, rmin, rmax, overlap, gens, targets, tol, max_attempts)
    bad = np.flatnonzero(out[:, 0] != _kernels().OK)
    if bad.size:
        i = int(bad[0])
        exc = _failure(
            int(out[i, 0]), int(out[i, 1]), int(out[i, 2]), total=images.shape[1], dim=dim,
            target=float(targets[i]), tol=tol, what=what,
        )  # fmt: skip
        raise SampleError(i, str(exc))
    return images.reshape((targets.size, *shape)), out[:, 1].copy()


def rasterize_balls(centers: np.ndarray, radii: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Pixelise periodic balls ``centers (m, d)`` in the cell, ``radii (m,)``: bool ``shape``."""
    dim = centers.shape[1]
    c3 = np.full((centers.shape[0], 3), 0.5)
    c3[:, 3 - dim :] = centers
    shape3 = _shape(shape)
    image = np.zeros(int(shape3.prod()), dtype=bool)
    _kernels().rasterize_balls(c3, np.ascontiguousarray(radii, dtype=np.float64), shape3, image)
    return image.reshape(shape)
