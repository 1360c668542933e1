"""The average-pooling stem of a ``default`` model, computed outside TensorFlow.

A ``default`` model first average-pools its 0/1 image by a factor ``s`` (its *stem*, 4 or 8 at
256²). Inside TensorFlow that step casts every pixel to float32 and reads the image four times
over: for the light models used at FE² quadrature points it took about two thirds of the
forward pass. :func:`block_means` computes the same block means straight from the ``uint8``
image in one compiled pass (byte sums, then one division per block), and :func:`split_stem`
turns a trained model into that pooling plus the rest of the network
(:func:`surrogate.models.build_stemless`), with the trained weights. The results equal the full
model's to float32 round-off.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numba import njit

__all__ = ["block_means", "split_stem"]

logger = logging.getLogger(__name__)


@njit(cache=True)
def _block_means_2d(images, s):  # pragma: no cover - compiled
    n_img, n, _ = images.shape
    m = n // s
    out = np.empty((n_img, m, m), dtype=np.float32)
    acc = np.empty(n, dtype=np.int32)
    inv = np.float32(1.0 / (s * s))
    for k in range(n_img):
        for bi in range(m):
            acc[:] = 0
            for i in range(bi * s, (bi + 1) * s):
                for j in range(n):
                    acc[j] += images[k, i, j]
            for bj in range(m):
                t = 0
                for j in range(bj * s, (bj + 1) * s):
                    t += acc[j]
                out[k, bi, bj] = np.float32(t) * inv
    return out


@njit(cache=True)
def _block_means_3d(images, s):  # pragma: no cover - compiled
    n_img, n, _, _ = images.shape
    m = n // s
    out = np.empty((n_img, m, m, m), dtype=np.float32)
    acc = np.empty((n, n), dtype=np.int32)
    inv = np.float32(1.0 / (s * s * s))
    for k in range(n_img):
        for bi in range(m):
            acc[:, :] = 0
            for i in range(bi * s, (bi + 1) * s):
                for j in range(n):
                    for q in range(n):
                        acc[j, q] += images[k, i, j, q]
            for bj in range(m):
                for bq in range(m):
                    t = 0
                    for j in range(bj * s, (bj + 1) * s):
                        for q in range(bq * s, (bq + 1) * s):
                            t += acc[j, q]
                    out[k, bi, bj, bq] = np.float32(t) * inv
    return out


def block_means(images: np.ndarray, factor: int) -> np.ndarray:
    """Means of the ``factor^d`` blocks of a batch of 0/1 images.

    Parameters
    ----------
    images
        ``(N, n, ..., n)`` uint8 (or bool) 0/1 images, ``d = images.ndim - 1`` in {2, 3}.
    factor
        Block side in pixels; must divide ``n``.

    Returns
    -------
    numpy.ndarray
        ``(N, n/factor, ..., n/factor, 1)`` float32: the inclusion fraction of each block, the
        input of :func:`surrogate.models.build_stemless`.
    """
    arr = np.ascontiguousarray(images)
    if arr.dtype == bool:
        arr = arr.view(np.uint8)
    if arr.dtype != np.uint8:
        raise TypeError(f"block_means takes uint8 or bool images, got {arr.dtype}")
    dim = arr.ndim - 1
    if dim not in (2, 3) or any(k != arr.shape[1] for k in arr.shape[1:]):
        raise ValueError(f"expected (N, n, n) or (N, n, n, n) images, got shape {arr.shape}")
    if factor < 1 or arr.shape[1] % factor:
        raise ValueError(f"block factor {factor} does not divide the side {arr.shape[1]}")
    kernel = _block_means_2d if dim == 2 else _block_means_3d
    return kernel(arr, int(factor))[..., None]


def split_stem(member: Any, metadata: dict[str, Any]) -> tuple[int, Any] | None:
    """``(factor, body)`` of a trained ``default`` model whose stem can run outside it.

    ``body`` is :func:`surrogate.models.build_stemless` with ``member``'s weights, so that
    ``body(block_means(x, factor))`` equals ``member(x)``. ``None`` when the model has no
    separable stem (see :func:`~surrogate.models.build_stemless`).
    """
    from surrogate.models import auto_stem, build_stemless, model_options

    if metadata.get("preset") != "default":
        return None
    options = model_options("default", metadata.get("model_options") or {})
    dim, resolution = int(metadata["dim"]), int(metadata["resolution"])
    body = build_stemless(
        dim=dim,
        resolution=resolution,
        mu_matrix=float(metadata["mu_matrix"]),
        mu_inclusion=float(metadata["mu_inclusion"]),
        options=options,
    )
    if body is None:
        return None
    for layer in body.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        try:
            source = member.get_layer(layer.name).get_weights()
        except ValueError:
            return None
        if [w.shape for w in source] != [w.shape for w in weights]:
            logger.debug("layer %s differs from the trained model; stem kept inside", layer.name)
            return None
        layer.set_weights(source)
    factor = options.stem if options.stem is not None else auto_stem(resolution, dim)
    return int(factor), body
