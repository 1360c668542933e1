"""Shared helpers of the micro tests (imported by module name, like surrogate_helpers)."""

from __future__ import annotations

import numpy as np

#: ``generate_sve`` options (2D, pixels) of one SVE of each of the four classes.
SVE_CLASSES = [
    {"volume_fraction": 0.35, "radius": 6},
    {"volume_fraction": 0.45, "radius_range": (3, 9)},
    {"volume_fraction": 0.6, "radius": 6, "overlap": True},
    {"volume_fraction": 0.8, "radius_range": (3, 9), "overlap": True},
]


def random_disks(n: int, count: int, radius: float, seed: int) -> np.ndarray:
    """``(n, n)`` bool image of ``count`` periodic disks at uniform centres (they may overlap);
    an independent generator, so solver tests do not depend on :mod:`micro.generate`."""
    rng = np.random.default_rng(seed)
    g = np.indices((n, n)).reshape(2, -1).T + 0.5
    img = np.zeros(n * n, bool)
    for c in rng.random((count, 2)) * n:
        dd = np.abs(g - c)
        dd = np.minimum(dd, n - dd)
        img |= (dd**2).sum(1) < radius**2
    return img.reshape(n, n)
