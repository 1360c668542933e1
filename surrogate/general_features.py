"""Materials as inputs: the canonical form of a two-phase cell and the general model's features.

Two identities of homogenization hold for every image, every pair of phase permeabilities and
every discretization:

* scaling: ``mu*(a mu_1, a mu_2) = a mu*(mu_1, mu_2)`` for ``a > 0``;
* phase exchange: ``mu*(image, mu_1, mu_2) = mu*(~image, mu_2, mu_1)``.

:func:`canonical_form` uses both to reduce any cell to the *strong-phase mask* (True where the
permeability is the larger one), the weaker permeability ``mu_low`` and the contrast
``c = mu_high / mu_low >= 1``. The general model sees only ``(mask, c)`` and predicts
``mu* / mu_low``, so both identities hold by construction, not by learning.

:func:`line_bounds` are rigorous bounds on the diagonal of the pixel grid's tensor (the Q1 label
of :mod:`micro.homogenization` as much as the continuum one): for ``mu*_11``,

* lower: the arithmetic mean over lines along x1 of each line's harmonic mean (a flux field
  constant along each line is divergence-free, complementary-energy principle);
* upper: the harmonic mean over x1 of the arithmetic mean of each cross-section (a potential
  that depends on x1 only is a Q1 function, minimum-energy principle).

:func:`features` evaluates the same bounds on blocks of about ``block`` pixels: with the
strong-phase fraction of each block they are the input grid of the general network.
"""

from __future__ import annotations

import numpy as np

from magnetohom.errors import InputError

__all__ = [
    "GRID_FEATURES",
    "MAX_LOG10_CONTRAST",
    "canonical_form",
    "check_contrast",
    "features",
    "line_bound_error",
    "line_bounds",
    "wiener_bounds",
]

#: Largest contrast ``mu_high / mu_low`` (as log10) the general model takes.
MAX_LOG10_CONTRAST = 4.0
#: Channels per block of the grid :func:`features` returns.
GRID_FEATURES = 14


def canonical_form(
    images: np.ndarray, mu_matrix: np.ndarray | float, mu_inclusion: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strong-phase masks, weaker permeabilities and contrasts of a batch.

    Parameters
    ----------
    images : ndarray of bool, shape (N, n1, n2)
        True = inclusion.
    mu_matrix, mu_inclusion : float or ndarray of shape (N,)
        Relative permeabilities (> 0, finite) of the phases.

    Returns
    -------
    strong : ndarray of bool, shape (N, n1, n2)
        True where the permeability is ``max(mu_matrix, mu_inclusion)``.
    mu_low : ndarray of float64, shape (N,)
    contrast : ndarray of float64, shape (N,)
        ``mu_high / mu_low >= 1``.
    """
    images = np.asarray(images, dtype=bool)
    n = images.shape[0]
    mu_m = np.broadcast_to(np.asarray(mu_matrix, dtype=np.float64), (n,))
    mu_i = np.broadcast_to(np.asarray(mu_inclusion, dtype=np.float64), (n,))
    for name, mu in (("mu_matrix", mu_m), ("mu_inclusion", mu_i)):
        bad = ~np.isfinite(mu) | (mu <= 0)
        if np.any(bad):
            raise InputError(f"{name} must be a finite number > 0: got {mu[bad][0]!r}")
    flip = mu_m > mu_i  # the matrix is the strong phase
    strong = np.where(flip[:, None, None], ~images, images)
    mu_low = np.minimum(mu_m, mu_i)
    return strong, mu_low, np.maximum(mu_m, mu_i) / mu_low


def wiener_bounds(fraction: np.ndarray, contrast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic and arithmetic means of ``(1, contrast)`` at strong-phase ``fraction``.

    Parameters
    ----------
    fraction, contrast : ndarray of float64, shape (N,)

    Returns
    -------
    (lower, upper) : ndarrays of float64, shape (N,)
        Bounds (in units of ``mu_low``) on every eigenvalue of ``mu*``.
    """
    from micro.analytic import reuss, voigt

    return reuss(fraction, 1.0, contrast, dim=2), voigt(fraction, 1.0, contrast, dim=2)


def _edges(n: int, block: int) -> np.ndarray:
    m = max(1, int(round(n / block)))
    return (np.arange(m, dtype=np.int64) * n) // m


def _log_normalized(values: np.ndarray, log_c: np.ndarray) -> np.ndarray:
    """``log(values) / log(c)`` in [0, 1]; 0 where ``c = 1``."""
    safe = np.where(log_c > 0, log_c, 1.0)
    return np.where(log_c > 0, np.log(values) / safe, 0.0)


def _blocks(strong: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The masks as the compiled kernels take them (uint8, C order) and the first index of
    each block along axis 0 and axis 1."""
    s = np.ascontiguousarray(strong, dtype=np.uint8)
    if s.ndim != 3:
        raise InputError(f"expected a batch of 2D images (N, n1, n2): got shape {s.shape}")
    return s, _edges(s.shape[1], block), _edges(s.shape[2], block)


def _kernel(s: np.ndarray, contrast: np.ndarray, e0: np.ndarray, e1: np.ndarray):
    """:func:`surrogate._general_jit.line_bounds_2d` of the output of :func:`_blocks`."""
    from surrogate._general_jit import line_bounds_2d

    c = np.ascontiguousarray(np.broadcast_to(np.asarray(contrast, np.float64), (s.shape[0],)))
    return line_bounds_2d(s, c, e0, e1)


def line_bounds(strong: np.ndarray, contrast: np.ndarray) -> np.ndarray:
    """Rigorous bounds on the diagonal of ``mu* / mu_low`` of whole cells.

    Parameters
    ----------
    strong : ndarray of bool, shape (N, n1, n2)
    contrast : ndarray of float64, shape (N,)

    Returns
    -------
    ndarray of float64, shape (N, 2, 2)
        ``[:, k, 0]`` lower and ``[:, k, 1]`` upper bound of ``mu*_kk``.
    """
    s, e0, e1 = _blocks(strong, max(np.shape(strong)[1:]))
    _, cell = _kernel(s, contrast, e0, e1)
    return cell[:, 1:5].reshape(-1, 2, 2)


def features(
    strong: np.ndarray, contrast: np.ndarray, *, block: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The general network's inputs and the cells' line bounds, in one pass over the pixels.

    Parameters
    ----------
    strong : ndarray of bool, shape (N, n1, n2)
    contrast : ndarray of float64, shape (N,)
    block : int
        Block side in pixels (the grid has ``round(n_k / block)`` blocks along axis k).

    Returns
    -------
    grid : ndarray of float32, shape (N, m1, m2, 14)
        Per block: strong-phase fraction, the lower and upper line bounds of ``mu_11`` and of
        ``mu_22`` as ``log(bound) / log(c)``, the shares of strong-strong and weak-weak pixel
        pairs across the ``+x1`` and the ``+x2`` face, ``log10(c) / 4``, and the strong phase's
        connectivity (:func:`~surrogate._general_jit.crossings_2d`: the fewest weak pixels on a
        path across the block along x1 and x2, and across the ``+x1`` and ``+x2`` face windows,
        as shares of the window's length).
    cell : ndarray of float32, shape (N, 7)
        The same five numbers for the whole cell, ``log10(c) / 4`` and ``log(n1 / n2)``.
    bounds : ndarray of float64, shape (N, 2, 2)
        :func:`line_bounds`.
    """
    from surrogate._general_jit import crossings_2d

    s, e0, e1 = _blocks(strong, block)
    blocks, cell = _kernel(s, contrast, e0, e1)
    n, n1, n2 = s.shape
    log_c = np.log(np.broadcast_to(np.asarray(contrast, np.float64), (n,)))
    t = log_c / np.log(10.0) / MAX_LOG10_CONTRAST
    grid = np.empty((*blocks.shape[:3], GRID_FEATURES), dtype=np.float32)
    grid[..., 0] = blocks[..., 0]
    grid[..., 1:5] = _log_normalized(blocks[..., 1:5], log_c[:, None, None, None])
    grid[..., 5:9] = blocks[..., 5:9]
    grid[..., 9] = t[:, None, None]
    grid[..., 10:14] = crossings_2d(s, e0, e1)
    glob = np.empty((n, 7), dtype=np.float32)
    glob[:, 0] = cell[:, 0]
    glob[:, 1:5] = _log_normalized(cell[:, 1:], log_c[:, None])
    glob[:, 5] = t
    glob[:, 6] = np.log(n1 / n2)
    return grid, glob, cell[:, 1:5].reshape(-1, 2, 2)


def line_bound_error(mu: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Rigorous bound on the relative error of 2x2 answers from the line bounds.

    Every tensor whose diagonal lies in its line bounds and which is SPD is within this bound of
    ``mu``, in the metric of :func:`surrogate.general.relative_error`: for the diagonal,
    ``max(|d - L| / L, |U - d| / U)`` (the worst reference in ``[L, U]``); for the off-diagonal,
    ``(|mu_12| + sqrt(U_1 U_2)) / ((L_1 + L_2) / 2)``, since an SPD reference has
    ``|mu_12| <= sqrt(mu_11 mu_22)``.

    Parameters
    ----------
    mu : ndarray of float64, shape (N, 2, 2)
        Answers.
    bounds : ndarray of float64, shape (N, 2, 2)
        :func:`line_bounds` in the units of ``mu`` (``[:, k, 0]`` lower, ``[:, k, 1]`` upper).

    Returns
    -------
    ndarray of float64, shape (N,)
    """
    d = np.stack([mu[:, 0, 0], mu[:, 1, 1]], axis=1)
    lower, upper = bounds[:, :, 0], bounds[:, :, 1]
    diag = np.maximum(np.abs(d - lower) / lower, np.abs(upper - d) / upper).max(axis=1)
    off = (np.abs(mu[:, 0, 1]) + np.sqrt(upper[:, 0] * upper[:, 1])) / (0.5 * lower.sum(axis=1))
    return np.maximum(diag, off)


def check_contrast(contrast: np.ndarray) -> None:
    """Refuse contrasts beyond :data:`MAX_LOG10_CONTRAST`."""
    too = np.log10(contrast) > MAX_LOG10_CONTRAST + 1e-9
    if np.any(too):
        raise InputError(
            f"phase contrast {contrast[too][0]:.4g} is beyond what the general model was trained "
            f"on (up to 1e{MAX_LOG10_CONTRAST:g} either way): use --fallback fe or FE"
        )
