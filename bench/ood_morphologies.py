"""Morphologies the general model never saw in training (for honest held-out benchmarks).

None of these generators is in :data:`micro.morphologies.MORPHOLOGIES`, which the training data
come from; :func:`register` adds them under ``ood_*`` names to that registry *in the benchmark's
process only*, so that :func:`micro.mixed_dataset.generate_mixed_dataset` can label them.

* ``ood_spinodal``: a Gaussian random field with a ring spectrum (spinodal decomposition);
* ``ood_multiscale``: the sum of a coarse and a fine random field (two length scales);
* ``ood_cracks``: thin random line segments, 1-2 px wide (crack networks);
* ``ood_sandstone``: overlapping grains of random shape, morphologically opened (porous rock);
* ``ood_checker``: a distorted checkerboard (a regular two-phase pattern with wavy edges);
* ``ood_dendrites``: a thresholded random field along a random direction with side branches.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from micro.morphologies import MORPHOLOGIES


def _field(shape, rng, spectrum):
    k1 = np.fft.fftfreq(shape[0])[:, None]
    k2 = np.fft.rfftfreq(shape[1])[None, :]
    amp = spectrum(np.hypot(k1, k2), k1, k2)
    f = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * np.sqrt(amp), s=shape)
    return (f - f.mean()) / (f.std() + 1e-300)


def _threshold(field, rng, lo=0.1, hi=0.9):
    frac = rng.uniform(lo, hi)
    return field > np.quantile(field, 1 - frac)


def spinodal(shape, rng):
    k0 = rng.uniform(0.02, 0.12)
    w = k0 * rng.uniform(0.1, 0.3)
    return _threshold(
        _field(shape, rng, lambda k, a, b: np.exp(-((k - k0) ** 2) / (2 * w * w))), rng
    )


def multiscale(shape, rng):
    l1, l2 = rng.uniform(12, 30), rng.uniform(1.5, 4)
    a = _field(shape, rng, lambda k, *_: np.exp(-2 * (np.pi * k * l1) ** 2))
    b = _field(shape, rng, lambda k, *_: np.exp(-2 * (np.pi * k * l2) ** 2))
    return _threshold(a + rng.uniform(0.3, 1.0) * b, rng)


def cracks(shape, rng):
    img = np.zeros(shape, bool)
    n = int(rng.integers(5, 40))
    for _ in range(n):
        p = rng.uniform(0, 1, 2) * shape
        theta = rng.uniform(0, np.pi)
        length = rng.uniform(20, max(shape))
        t = np.linspace(0, length, int(length * 2))
        x = (p[0] + t * np.cos(theta)).astype(int) % shape[0]
        y = (p[1] + t * np.sin(theta)).astype(int) % shape[1]
        img[x, y] = True
    width = int(rng.integers(0, 2))
    if width:
        img = ndimage.binary_dilation(img, iterations=width, border_value=0)
    return img


def sandstone(shape, rng):
    f = _field(shape, rng, lambda k, *_: np.exp(-2 * (np.pi * k * rng.uniform(3, 8)) ** 2))
    img = _threshold(f, rng, 0.4, 0.85)
    return ndimage.binary_opening(img, iterations=int(rng.integers(1, 3)))


def checker(shape, rng):
    p = int(rng.integers(4, 16))
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    amp = rng.uniform(0, 3)
    xs = x + amp * np.sin(2 * np.pi * y / shape[1] * rng.integers(1, 4))
    ys = y + amp * np.sin(2 * np.pi * x / shape[0] * rng.integers(1, 4))
    return ((np.floor(xs / shape[0] * p) + np.floor(ys / shape[1] * p)) % 2).astype(bool)


def dendrites(shape, rng):
    theta = rng.uniform(0, np.pi)
    la, lb = rng.uniform(10, 30), rng.uniform(1.5, 4)
    c, s = np.cos(theta), np.sin(theta)

    def spectrum(k, k1, k2):
        u, v = c * k1 + s * k2, -s * k1 + c * k2
        return np.exp(-2 * np.pi**2 * ((u * la) ** 2 + (v * lb) ** 2)) + 0.3 * np.exp(
            -2 * np.pi**2 * ((u * lb) ** 2 + (v * la) ** 2)
        )

    return _threshold(_field(shape, rng, spectrum), rng, 0.2, 0.6)


OOD = {
    "ood_spinodal": spinodal,
    "ood_multiscale": multiscale,
    "ood_cracks": cracks,
    "ood_sandstone": sandstone,
    "ood_checker": checker,
    "ood_dendrites": dendrites,
}


def register() -> tuple[str, ...]:
    """Add the ``ood_*`` generators to the registry (this process only); returns their names."""
    MORPHOLOGIES.update(OOD)
    return tuple(OOD)
