"""A broad family of 2D two-phase morphologies: the training and test images of the general model.

Each generator returns a bool image of any shape ``(n1, n2)`` (True = phase 1), periodic by
construction: shapes wrap across the cell faces, random fields are filtered in Fourier space and
tessellations use periodic distances. :func:`random_morphology` draws a class and its parameters
(volume fraction, feature size, elongation, orientation, ...) at random and, with probability
``crop``, cuts the image out of a larger periodic one, so that it is *not* periodic -- like a
window of a micrograph.

========================= ==================================================================
class                     what it draws
========================= ==================================================================
``disks``                 non-overlapping disks of one radius (random sequential addition)
``polydisperse``          non-overlapping disks of many radii
``overlapping``           overlapping disks, radius 4-16 px
``ellipses``              overlapping ellipses, random orientation and aspect 1-5
``fibres_aligned``        long ellipses (aspect 5-25) along one random direction
``fibres_random``         long ellipses in random directions
``rectangles``            overlapping rectangles, axis-aligned or rotated
``blobs``                 thresholded anisotropic Gaussian random field
``lamellae``              wavy periodic stripes at an angle
``voronoi``               Voronoi grains, each grain phase 1 with probability f
``grain_boundaries``      the boundaries of Voronoi grains, 1-6 px thick
========================= ==================================================================

The disks of :mod:`micro.generate` (the paper's class) are the ``disks`` class here at the
paper's sizes; this module draws its own, also for rectangular cells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from magnetohom.errors import InputError

__all__ = ["MORPHOLOGIES", "Morphology", "generate_morphology", "random_morphology"]

Generator = Callable[[tuple[int, int], np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Morphology:
    """One drawn image and how it was drawn.

    Attributes
    ----------
    image : ndarray of bool, shape (n1, n2)
        True = phase 1.
    kind : str
        Class name (a key of :data:`MORPHOLOGIES`).
    periodic : bool
        False when the image is a window cut out of a larger periodic image.
    """

    image: np.ndarray
    kind: str
    periodic: bool


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(shape[0]) + 0.5, np.arange(shape[1]) + 0.5, indexing="ij")


def _paint(
    shape: tuple[int, int],
    centers: np.ndarray,
    inside: Callable[[np.ndarray, np.ndarray, int], np.ndarray],
    reach: np.ndarray,
) -> np.ndarray:
    """Union of shapes ``inside(dx, dy, k)`` around ``centers`` with periodic wrap.

    ``reach[k]`` is a radius that contains shape k; each shape is evaluated on its wrapped
    bounding box only.
    """
    img = np.zeros(shape, dtype=bool)
    n1, n2 = shape
    for k, (cx, cy) in enumerate(centers):
        r = float(reach[k])
        i0, i1 = int(np.floor(cx - r)), int(np.ceil(cx + r)) + 1
        j0, j1 = int(np.floor(cy - r)), int(np.ceil(cy + r)) + 1
        ii = np.arange(i0, i1)
        jj = np.arange(j0, j1)
        dx, dy = np.meshgrid(ii + 0.5 - cx, jj + 0.5 - cy, indexing="ij")
        mask = inside(dx, dy, k)
        img[np.ix_(ii % n1, jj % n2)] |= mask
    return img


def _target_fraction(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _fill_to_fraction(
    shape: tuple[int, int],
    rng: np.random.Generator,
    fraction: float,
    draw: Callable[[int], tuple[np.ndarray, Callable, np.ndarray]],
) -> np.ndarray:
    """Add overlapping shapes in batches until the phase-1 fraction reaches ``fraction``."""
    img = np.zeros(shape, dtype=bool)
    for _ in range(400):
        if img.mean() >= fraction:
            break
        centers, inside, reach = draw(4)
        img |= _paint(shape, centers, inside, reach)
    return img


def _ellipse_drawer(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    size: tuple[float, float],
    aspect: tuple[float, float],
    angle: float | None,
    jitter: float = 0.0,
):
    def draw(k: int):
        centers = rng.uniform(0, 1, (k, 2)) * np.asarray(shape)
        b = rng.uniform(*size, k)  # semi-minor axis
        a = b * rng.uniform(*aspect, k)
        theta = rng.uniform(0, np.pi, k) if angle is None else angle + rng.normal(0, jitter, k)
        c, s = np.cos(theta), np.sin(theta)

        def inside(dx, dy, i):
            u = c[i] * dx + s[i] * dy
            v = -s[i] * dx + c[i] * dy
            return (u / a[i]) ** 2 + (v / b[i]) ** 2 <= 1.0

        return centers, inside, a

    return draw


def _rsa_disks(
    shape: tuple[int, int], rng: np.random.Generator, radii: Callable[[], float], fraction: float
) -> np.ndarray:
    """Non-overlapping disks by random sequential addition up to ``fraction`` (or jamming)."""
    dims = np.asarray(shape, dtype=float)
    centers: list[np.ndarray] = []
    rads: list[float] = []
    covered = 0.0
    area = float(np.prod(dims))
    misses = 0
    while covered / area < fraction and misses < 3000:
        r = radii()
        c = rng.uniform(0, 1, 2) * dims
        if centers:
            d = np.abs(np.asarray(centers) - c)
            d = np.minimum(d, dims - d)
            if np.any(np.hypot(d[:, 0], d[:, 1]) < np.asarray(rads) + r + 1.0):
                misses += 1
                continue
        centers.append(c)
        rads.append(r)
        covered += np.pi * r * r
        misses = 0
    if not centers:
        return np.zeros(shape, dtype=bool)
    rr = np.asarray(rads)
    return _paint(shape, np.asarray(centers), lambda dx, dy, i: dx * dx + dy * dy <= rr[i] ** 2, rr)


def _disks(shape, rng):
    r = float(rng.choice([4, 6, 8, 10, 12]))
    return _rsa_disks(shape, rng, lambda: r, _target_fraction(rng, 0.05, 0.5))


def _polydisperse(shape, rng):
    lo = float(rng.uniform(3, 6))
    hi = float(rng.uniform(8, 20))
    return _rsa_disks(shape, rng, lambda: float(rng.uniform(lo, hi)), rng.uniform(0.05, 0.5))


def _overlapping(shape, rng):
    f = _target_fraction(rng, 0.05, 0.9)
    lo, hi = 4.0, float(rng.uniform(4, 16))
    draw = _ellipse_drawer(shape, rng, size=(lo, max(hi, lo + 1e-9)), aspect=(1, 1), angle=0.0)
    return _fill_to_fraction(shape, rng, f, draw)


def _ellipses(shape, rng):
    f = _target_fraction(rng, 0.05, 0.8)
    draw = _ellipse_drawer(shape, rng, size=(2.5, 10), aspect=(1, 5), angle=None)
    return _fill_to_fraction(shape, rng, f, draw)


def _fibres_aligned(shape, rng):
    f = _target_fraction(rng, 0.05, 0.7)
    angle = float(rng.choice([0.0, np.pi / 2, rng.uniform(0, np.pi)]))
    draw = _ellipse_drawer(
        shape, rng, size=(1.5, 5), aspect=(5, 25), angle=angle, jitter=float(rng.uniform(0, 0.15))
    )
    return _fill_to_fraction(shape, rng, f, draw)


def _fibres_random(shape, rng):
    f = _target_fraction(rng, 0.05, 0.7)
    draw = _ellipse_drawer(shape, rng, size=(1.5, 5), aspect=(5, 25), angle=None)
    return _fill_to_fraction(shape, rng, f, draw)


def _rectangles(shape, rng):
    f = _target_fraction(rng, 0.05, 0.8)
    rotated = bool(rng.random() < 0.5)

    def draw(k: int):
        centers = rng.uniform(0, 1, (k, 2)) * np.asarray(shape)
        a = rng.uniform(2, 16, k)
        b = rng.uniform(2, 16, k)
        theta = rng.uniform(0, np.pi, k) if rotated else np.zeros(k)
        c, s = np.cos(theta), np.sin(theta)

        def inside(dx, dy, i):
            u = c[i] * dx + s[i] * dy
            v = -s[i] * dx + c[i] * dy
            return (np.abs(u) <= a[i]) & (np.abs(v) <= b[i])

        return centers, inside, np.hypot(a, b)

    return _fill_to_fraction(shape, rng, f, draw)


def _gaussian_field(
    shape: tuple[int, int], rng: np.random.Generator, length: float, aspect: float, angle: float
) -> np.ndarray:
    """Periodic Gaussian random field with an anisotropic Gaussian spectrum, unit variance."""
    k1 = np.fft.fftfreq(shape[0])[:, None]
    k2 = np.fft.rfftfreq(shape[1])[None, :]
    c, s = np.cos(angle), np.sin(angle)
    u = c * k1 + s * k2
    v = -s * k1 + c * k2
    la, lb = length * aspect, length
    spectrum = np.exp(-2 * np.pi**2 * ((u * la) ** 2 + (v * lb) ** 2))
    noise = np.fft.rfft2(rng.standard_normal(shape))
    field = np.fft.irfft2(noise * np.sqrt(spectrum), s=shape)
    return (field - field.mean()) / (field.std() + 1e-300)


def _blobs(shape, rng):
    f = _target_fraction(rng, 0.05, 0.95)
    aspect = float(rng.choice([1.0, rng.uniform(1, 4)]))
    field = _gaussian_field(shape, rng, float(rng.uniform(2, 14)), aspect, rng.uniform(0, np.pi))
    return field > np.quantile(field, 1 - f)


def _lamellae(shape, rng):
    f = _target_fraction(rng, 0.1, 0.9)
    # an integer wave vector keeps the stripes periodic in the cell
    period = float(rng.uniform(8, 48))
    theta = rng.uniform(0, np.pi)
    m1 = round(shape[0] / period * np.cos(theta))
    m2 = round(shape[1] / period * np.sin(theta))
    if m1 == 0 and m2 == 0:
        m1 = 1
    x, y = _grid(shape)
    phase = 2 * np.pi * (m1 * x / shape[0] + m2 * y / shape[1])
    wav = float(rng.uniform(0, 1.5))
    phase = phase + wav * _gaussian_field(shape, rng, float(rng.uniform(6, 20)), 1.0, 0.0)
    field = np.cos(phase)
    return field > np.quantile(field, 1 - f)


def _voronoi_distances(shape: tuple[int, int], rng: np.random.Generator, cells: int):
    from scipy.spatial import cKDTree  # here: the registry's importers need no scipy.spatial

    seeds = rng.uniform(0, 1, (cells, 2)) * np.asarray(shape)
    tree = cKDTree(seeds, boxsize=np.asarray(shape, dtype=float))
    x, y = _grid(shape)
    d, idx = tree.query(np.stack([x.ravel(), y.ravel()], axis=1), k=2)
    return d.reshape(*shape, 2), idx[:, 0].reshape(shape)


def _voronoi(shape, rng):
    cells = int(rng.integers(8, max(9, shape[0] * shape[1] // 200)))
    _, label = _voronoi_distances(shape, rng, cells)
    chosen = rng.random(cells) < rng.uniform(0.1, 0.9)
    return chosen[label]


def _grain_boundaries(shape, rng):
    cells = int(rng.integers(6, max(7, shape[0] * shape[1] // 400)))
    d, _ = _voronoi_distances(shape, rng, cells)
    width = float(rng.uniform(1.0, 6.0))
    return (d[..., 1] - d[..., 0]) < width


MORPHOLOGIES: dict[str, Generator] = {
    "disks": _disks,
    "polydisperse": _polydisperse,
    "overlapping": _overlapping,
    "ellipses": _ellipses,
    "fibres_aligned": _fibres_aligned,
    "fibres_random": _fibres_random,
    "rectangles": _rectangles,
    "blobs": _blobs,
    "lamellae": _lamellae,
    "voronoi": _voronoi,
    "grain_boundaries": _grain_boundaries,
}
"""The morphology classes: name -> ``generator(shape, rng) -> bool (n1, n2)``."""


def _check_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 8:
        raise InputError(f"morphologies are 2D images of at least 8 x 8 pixels: got {shape}")
    return shape  # type: ignore[return-value]


def generate_morphology(
    kind: str, shape: tuple[int, int], *, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """One periodic image of class ``kind``.

    Parameters
    ----------
    kind : str
        A key of :data:`MORPHOLOGIES`.
    shape : (int, int)
        Pixels along x1 and x2.
    rng : numpy.random.Generator or int or None

    Returns
    -------
    ndarray of bool, shape ``shape``
    """
    if kind not in MORPHOLOGIES:
        raise InputError(f"unknown morphology {kind!r}: choose from {', '.join(MORPHOLOGIES)}")
    return MORPHOLOGIES[kind](_check_shape(shape), np.random.default_rng(rng))


def random_morphology(
    shape: tuple[int, int],
    *,
    rng: np.random.Generator | int | None = None,
    kinds: tuple[str, ...] | None = None,
    crop: float = 0.3,
) -> Morphology:
    """A random class, random parameters, and a periodic or cropped (non-periodic) image.

    Parameters
    ----------
    shape : (int, int)
    rng : numpy.random.Generator or int or None
    kinds : tuple of str, optional
        Classes to draw from (default: all of :data:`MORPHOLOGIES`).
    crop : float
        Probability that the image is a window of a periodic image 1.25-2 times larger.

    Returns
    -------
    Morphology
    """
    rng = np.random.default_rng(rng)
    shape = _check_shape(shape)
    kinds = tuple(MORPHOLOGIES) if kinds is None else tuple(kinds)
    kind = str(kinds[int(rng.integers(len(kinds)))])
    if rng.random() < crop:
        scale = float(rng.uniform(1.25, 2.0))
        big = (int(shape[0] * scale), int(shape[1] * scale))
        full = generate_morphology(kind, big, rng=rng)
        i = int(rng.integers(big[0] - shape[0] + 1))
        j = int(rng.integers(big[1] - shape[1] + 1))
        return Morphology(full[i : i + shape[0], j : j + shape[1]].copy(), kind, False)
    return Morphology(generate_morphology(kind, shape, rng=rng), kind, True)
