"""Data augmentation by the symmetries of the periodic pixel grid, with the label transformed.

The square (8 elements) and the cube (48 elements) map the pixel grid of the unit cell onto
itself. Each element is a *signed axis permutation*: transpose the image axes by ``perm``, then
reverse the axes marked in ``flips``. A pixel at index ``x`` moves to ``y = Q x + c`` with

    ``Q = F P``,  ``P[j, perm[j]] = 1``,  ``F = diag(-1 if flips[j] else +1)``

(``np.transpose(a, perm)`` puts input axis ``perm[j]`` at output axis ``j``; reversing axis ``j``
maps the pixel centre ``(i + 1/2)/n`` to ``1 - (i + 1/2)/n``). The transformed medium is
``mu'(y) = mu(Q^T (y - c))``, so its homogenized tensor is ``mu_eff' = Q mu_eff Q^T``; the same
holds for ``logm(mu_eff)``. ``np.rot90`` and ``np.flip`` are such elements (:func:`matrix_of`
recovers ``Q`` of any grid symmetry from its action on coordinates).

Periodic shifts (``np.roll``) move the unit cell and leave ``mu_eff`` unchanged.

:func:`random_augment` draws one symmetry and one shift per sample; the training input pipeline
(:mod:`surrogate.training`) applies it to training batches only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from magnetohom.errors import InputError

__all__ = ["SymmetryOp", "matrix_of", "random_augment", "symmetry_group"]


@dataclass(frozen=True)
class SymmetryOp:
    """One symmetry of the square/cube acting on images and tensors.

    Attributes
    ----------
    perm
        Axis permutation, applied first (``np.transpose`` order).
    flips
        Per output axis, whether it is reversed afterwards.
    """

    perm: tuple[int, ...]
    flips: tuple[bool, ...]

    @property
    def dim(self) -> int:
        """Spatial dimension."""
        return len(self.perm)

    @property
    def matrix(self) -> np.ndarray:
        """Orthogonal ``Q`` ``(d, d)`` float64 (a signed permutation matrix), see module doc."""
        d = self.dim
        q = np.zeros((d, d))
        for j, p in enumerate(self.perm):
            q[j, p] = -1.0 if self.flips[j] else 1.0
        return q

    def apply(self, images: np.ndarray) -> np.ndarray:
        """Transform a batch ``(N, n, ..., n)`` (``dim`` spatial axes after the batch axis).

        Returns a view where possible (no copy); dtype and shape are kept.
        """
        if images.ndim != self.dim + 1:
            raise InputError(f"expected a batch of {self.dim}D images, got shape {images.shape}")
        out = np.transpose(images, (0, *(p + 1 for p in self.perm)))
        axes = tuple(j + 1 for j, f in enumerate(self.flips) if f)
        return np.flip(out, axis=axes) if axes else out

    def transform(self, tensors: np.ndarray) -> np.ndarray:
        """``Q T Q^T`` for a batch of tensors ``(N, d, d)`` (the label of the transformed image)."""
        q = self.matrix
        return q @ np.asarray(tensors, dtype=np.float64) @ q.T

    def __str__(self) -> str:
        flips = "".join("-" if f else "+" for f in self.flips)
        return f"perm{self.perm}{flips}"


@cache
def symmetry_group(dim: int) -> tuple[SymmetryOp, ...]:
    """All ``2^d d!`` grid symmetries (8 in 2D, 48 in 3D); the identity comes first."""
    if dim not in (2, 3):
        raise InputError(f"dimension must be 2 or 3, got {dim!r}")
    ops = [
        SymmetryOp(tuple(perm), tuple(flips))
        for perm in itertools.permutations(range(dim))
        for flips in itertools.product((False, True), repeat=dim)
    ]
    return tuple(ops)


def matrix_of(transform: Callable[[np.ndarray], np.ndarray], dim: int, *, n: int = 4) -> np.ndarray:
    """Recover ``Q`` of a grid symmetry given as a function on one image ``(n,)*dim``.

    The function is applied to the centred pixel-coordinate fields ``x_k = i_k + 1/2 - n/2``;
    a grid symmetry returns fields ``y_k = sum_l Q_kl x_l`` in the output positions, so ``Q`` is
    read off by least squares.

    Raises
    ------
    InputError
        If the function is not a signed axis permutation of the grid.
    """
    grids = np.meshgrid(*(np.arange(n) + 0.5 - n / 2 for _ in range(dim)), indexing="ij")
    coords = np.stack([g.ravel() for g in grids], axis=1)  # output position -> coordinates
    # value carried by each pixel: its own input coordinate, pushed through the transform
    moved = np.stack([np.asarray(transform(g)).ravel() for g in grids], axis=1)
    # moved[p] = input coordinate x of the pixel now at output position y = coords[p]: y = Q x
    q, *_ = np.linalg.lstsq(moved, coords, rcond=None)
    q = q.T
    rounded = np.round(q)
    if not np.allclose(q, rounded, atol=1e-9) or not np.allclose(rounded @ rounded.T, np.eye(dim)):
        raise InputError("transform is not a symmetry of the pixel grid")
    return rounded


def random_augment(
    images: np.ndarray,
    tensors: np.ndarray,
    rng: np.random.Generator | int | None = None,
    *,
    symmetries: bool = True,
    shifts: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one random grid symmetry and one random periodic shift per sample.

    Parameters
    ----------
    images
        Batch ``(N, n, ..., n)``, any dtype.
    tensors
        Labels ``(N, d, d)`` (``mu_eff`` or ``logm(mu_eff)``).
    rng
        Random source.
    symmetries, shifts
        Which augmentations to draw.

    Returns
    -------
    (images, tensors)
        New arrays: images of the same shape/dtype, tensors ``(N, d, d)`` float64 transformed by
        ``Q T Q^T``.
    """
    rng = np.random.default_rng(rng)
    images = np.asarray(images)
    tensors = np.asarray(tensors, dtype=np.float64)
    n_samples, dim = images.shape[0], images.ndim - 1
    if tensors.shape != (n_samples, dim, dim):
        raise InputError(
            f"labels of shape {tensors.shape} do not fit images of shape {images.shape}"
        )
    group = symmetry_group(dim)
    out_img = np.empty_like(images)
    out_t = tensors.copy()
    axes = tuple(range(dim))
    for i in range(n_samples):
        img = images[i : i + 1]
        if symmetries:
            op = group[int(rng.integers(len(group)))]
            img = op.apply(img)
            out_t[i] = op.transform(tensors[i : i + 1])[0]
        img = img[0]
        if shifts:
            shift = tuple(int(s) for s in rng.integers(0, img.shape, size=dim))
            img = np.roll(img, shift, axis=axes)
        out_img[i] = img
    return out_img, out_t
