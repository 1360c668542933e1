"""The average-pooling stem of a ``default`` model, computed outside TensorFlow.

A ``default`` model first average-pools its 0/1 image by a factor ``s`` (its *stem*, 4 or 8 at
256²). Inside TensorFlow that step casts every pixel to float32 and reads the image four times
over: for the light models used at FE² quadrature points it took about two thirds of the
forward pass. :func:`block_means` computes the same block means straight from the ``uint8``
image in one compiled pass (byte sums, then one division per block);
:func:`line_bound_features` computes the model's line/slice bounds from per-line pixel counts;
:func:`split_stem` turns a trained model into that host-side part plus the rest of the network
(:func:`surrogate.models.build_stemless`), with the trained weights. The results equal the full
model's to float32 round-off.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import numpy as np
from numba import njit

__all__ = ["HostStem", "block_bounds", "block_means", "line_bound_features", "split_stem"]

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


@njit(cache=True, inline="always")
def _store_2d(cell, s, total, lo1, inv1, lo2, inv2):  # pragma: no cover - compiled
    # fraction; lower and upper bound of mu_11; of mu_22 (as mu, the log is taken later)
    cell[0] = total / (s * s)
    cell[1] = lo1 / s
    cell[2] = s / inv1
    cell[3] = lo2 / s
    cell[4] = s / inv2


@njit(cache=True)
def _block_bounds_2d(images, s, harm, inv_arith):  # pragma: no cover - compiled
    # harm[c]: harmonic mean of mu along s pixels with c inclusion pixels;
    # inv_arith[c]: 1 / arithmetic mean of mu over s pixels with c inclusion pixels.
    # One band of s rows at a time: column-segment counts by contiguous adds (vectorized),
    # row-segment counts by short sums; then per block 4 s table look-ups.
    n_img, n, _ = images.shape
    m = n // s
    out = np.empty((n_img, m, m, 5), dtype=np.float32)
    cseg = np.empty(n, dtype=np.int32)
    rseg = np.empty((s, m), dtype=np.int32)
    for k in range(n_img):
        for bi in range(m):
            for col in range(n):
                cseg[col] = 0
            for i in range(s):
                row = bi * s + i
                for col in range(n):
                    cseg[col] += images[k, row, col]
                for bj in range(m):
                    t = 0
                    for j in range(bj * s, bj * s + s):
                        t += images[k, row, j]
                    rseg[i, bj] = t
            for bj in range(m):
                lo1 = 0.0  # lines along x_1 are the columns of the block
                lo2 = 0.0
                inv1 = 0.0  # slices normal to x_1 are its rows
                inv2 = 0.0
                total = 0
                for q in range(s):
                    cc = cseg[bj * s + q]
                    rr = rseg[q, bj]
                    lo1 += harm[cc]
                    inv2 += inv_arith[cc]
                    lo2 += harm[rr]
                    inv1 += inv_arith[rr]
                    total += rr
                _store_2d(out[k, bi, bj], s, total, lo1, inv1, lo2, inv2)
    return out


@njit(cache=True)
def _block_bounds_2d_words(words, s, harm, inv_arith):  # pragma: no cover - compiled
    # The image rows as words of s bytes (uint32 for s = 4, uint64 for s = 8): one word is one
    # row of one block. Its byte sum (a multiply by 0x0101..01) is the row count; the sum of the
    # block's s words holds the s column counts in its bytes (each <= s, no carry).
    n_img, n, m = words.shape
    mul = np.uint64(0x0101010101010101)
    top = np.uint64(8 * s - 8)
    byte = np.uint64(0xFF)
    eight = np.uint64(8)
    out = np.empty((n_img, m, m, 5), dtype=np.float32)
    for k in range(n_img):
        for bi in range(m):
            for bj in range(m):
                acc = np.uint64(0)
                lo2 = 0.0
                inv1 = 0.0
                total = 0
                for i in range(s):
                    w = np.uint64(words[k, bi * s + i, bj])
                    acc += w
                    rr = np.int64(((w * mul) >> top) & byte)
                    lo2 += harm[rr]
                    inv1 += inv_arith[rr]
                    total += rr
                lo1 = 0.0
                inv2 = 0.0
                for q in range(s):
                    cc = np.int64((acc >> (eight * np.uint64(q))) & byte)
                    lo1 += harm[cc]
                    inv2 += inv_arith[cc]
                _store_2d(out[k, bi, bj], s, total, lo1, inv1, lo2, inv2)
    return out


@njit(cache=True)
def _block_bounds_3d(images, s, harm, arith2):  # pragma: no cover - compiled
    # harm[c]: harmonic mean along s voxels; arith2[c]: arithmetic mean over s*s voxels
    n_img, n, _, _ = images.shape
    m = n // s
    out = np.empty((n_img, m, m, m, 7), dtype=np.float32)
    c0 = np.empty((s, s), dtype=np.int64)  # line counts along x_1, indexed (j, l)
    c1 = np.empty((s, s), dtype=np.int64)  # along x_2, indexed (i, l)
    c2 = np.empty((s, s), dtype=np.int64)  # along x_3, indexed (i, j)
    for k in range(n_img):
        for bi in range(m):
            for bj in range(m):
                for bl in range(m):
                    c0[:, :] = 0
                    c1[:, :] = 0
                    total = 0
                    for i in range(s):
                        for j in range(s):
                            t = 0
                            for q in range(s):
                                v = images[k, bi * s + i, bj * s + j, bl * s + q]
                                t += v
                                c0[j, q] += v
                                c1[i, q] += v
                            c2[i, j] = t
                            total += t
                    out[k, bi, bj, bl, 0] = total / (s * s * s)
                    for axis in range(3):
                        lo = 0.0
                        for a in range(s):
                            for b in range(s):
                                if axis == 0:
                                    lo += harm[c0[a, b]]
                                elif axis == 1:
                                    lo += harm[c1[a, b]]
                                else:
                                    lo += harm[c2[a, b]]
                        inv = 0.0
                        for a in range(s):  # slice a normal to the axis
                            t = 0
                            for b in range(s):
                                if axis == 0:
                                    t += c2[a, b]  # slice i = a: sum over j of c2[a, j]
                                elif axis == 1:
                                    t += c2[b, a]  # slice j = a
                                else:
                                    t += c1[b, a]  # slice l = a
                            inv += 1.0 / arith2[t]
                        out[k, bi, bj, bl, 1 + 2 * axis] = lo / (s * s)
                        out[k, bi, bj, bl, 2 + 2 * axis] = s / inv
    return out


def block_bounds(
    images: np.ndarray, factor: int, mu_matrix: float, mu_inclusion: float
) -> np.ndarray:
    """The ``stem_mode="bounds"`` stem (:class:`surrogate.layers.BlockBounds`) on the host.

    Parameters
    ----------
    images
        ``(N, n, ..., n)`` uint8 or bool 0/1 images, ``d`` = 2 or 3.
    factor
        Block side in pixels; must divide ``n``.
    mu_matrix, mu_inclusion
        Phase permeabilities (relative, > 0).

    Returns
    -------
    numpy.ndarray
        ``(N, n/factor, ..., n/factor, 1 + 2 d)`` float32: per block its inclusion fraction,
        then ``log(lower_k) / L`` and ``log(upper_k) / L`` for each axis ``k``, the block's
        line (harmonic along, arithmetic across) and slice bounds, ``L = |log(mu_i / mu_m)|``.
    """
    s = int(factor)
    arr = _as_uint8(images, s)
    dim = arr.ndim - 1
    mu_m, mu_i = float(mu_matrix), float(mu_inclusion)
    scale = abs(np.log(mu_i / mu_m)) or 1.0
    c = np.arange(s + 1, dtype=np.float64)
    harm = s / (c / mu_i + (s - c) / mu_m)
    if dim == 2:
        inv_arith = 1.0 / (mu_m + (mu_i - mu_m) * c / s)
        word = {4: np.uint32, 8: np.uint64}.get(s)
        if word is not None and sys.byteorder == "little":
            out = _block_bounds_2d_words(arr.view(word), s, harm, inv_arith)
        else:
            out = _block_bounds_2d(arr, s, harm, inv_arith)
    else:
        c2 = np.arange(s * s + 1, dtype=np.float64)
        arith2 = mu_m + (mu_i - mu_m) * c2 / (s * s)
        out = _block_bounds_3d(arr, s, harm, arith2)
    bounds = out[..., 1:]  # the kernels leave the bounds as mu; one vectorized log here
    np.log(bounds, out=bounds)
    bounds *= np.float32(1.0 / scale)
    return out


@njit(cache=True)
def _line_counts_2d(images):  # pragma: no cover - compiled
    n_img, n, _ = images.shape
    rows = np.zeros((n_img, n), dtype=np.int32)  # rows[k, i] = sum_j x[i, j]
    cols = np.zeros((n_img, n), dtype=np.int32)  # cols[k, j] = sum_i x[i, j]
    for k in range(n_img):
        for i in range(n):
            t = 0
            for j in range(n):
                v = images[k, i, j]
                t += v
                cols[k, j] += v
            rows[k, i] = t
    return rows, cols


@njit(cache=True)
def _line_counts_3d(images):  # pragma: no cover - compiled
    n_img, n, _, _ = images.shape
    c0 = np.zeros((n_img, n, n), dtype=np.int32)  # c0[k, j, l] = sum_i x[i, j, l]
    c1 = np.zeros((n_img, n, n), dtype=np.int32)  # c1[k, i, l] = sum_j x[i, j, l]
    c2 = np.zeros((n_img, n, n), dtype=np.int32)  # c2[k, i, j] = sum_l x[i, j, l]
    for k in range(n_img):
        for i in range(n):
            for j in range(n):
                t = 0
                for q in range(n):
                    v = images[k, i, j, q]
                    t += v
                    c0[k, j, q] += v
                    c1[k, i, q] += v
                c2[k, i, j] = t
    return c0, c1, c2


def _as_uint8(images: np.ndarray, factor: int | None = None) -> np.ndarray:
    """Contiguous uint8 ``(N, n, n[, n])`` view of 0/1 images; ``factor`` must divide ``n``."""
    arr = np.ascontiguousarray(images)
    if arr.dtype == bool:
        arr = arr.view(np.uint8)
    if arr.dtype != np.uint8:
        raise TypeError(f"takes uint8 or bool images, got {arr.dtype}")
    dim = arr.ndim - 1
    if dim not in (2, 3) or any(k != arr.shape[1] for k in arr.shape[1:]):
        raise ValueError(f"expected (N, n, n) or (N, n, n, n) images, got shape {arr.shape}")
    if factor is not None and (factor < 1 or arr.shape[1] % factor):
        raise ValueError(f"block factor {factor} does not divide the side {arr.shape[1]}")
    return arr


def line_bound_features(images: np.ndarray, mu_matrix: float, mu_inclusion: float) -> np.ndarray:
    """The features of :class:`surrogate.layers.LineBounds`, from per-line pixel counts.

    Along a line of ``n`` pixels with ``c`` inclusion pixels the harmonic mean of ``mu`` is
    ``n / (c / mu_i + (n - c) / mu_m)``, and the mean over a slice depends on its count only, so
    the line and slice bounds need the image's line counts along each axis and nothing else.

    Parameters
    ----------
    images
        ``(N, n, ..., n)`` uint8 or bool 0/1 images, ``d`` = 2 or 3.
    mu_matrix, mu_inclusion
        Phase permeabilities (relative, > 0).

    Returns
    -------
    numpy.ndarray
        ``(N, 2 d)`` float32: ``log(bound) / |log(mu_i / mu_m)|`` as
        ``[lower_1, upper_1, lower_2, ...]``.
    """
    arr = _as_uint8(images)
    dim, n = arr.ndim - 1, arr.shape[1]
    mu_m, mu_i = float(mu_matrix), float(mu_inclusion)
    if dim == 2:
        rows, cols = _line_counts_2d(arr)
        # axis 1: lines along x_1 are the columns, slices normal to x_1 the rows; axis 2: swapped
        pairs = [(cols.reshape(len(arr), -1), rows), (rows.reshape(len(arr), -1), cols)]
    else:
        c0, c1, c2 = _line_counts_3d(arr)
        n_img = len(arr)
        slices = [c2.sum(axis=2), c2.sum(axis=1), c1.sum(axis=1)]  # S_k[i] = pixels of slice i
        pairs = [(c.reshape(n_img, -1), s) for c, s in zip((c0, c1, c2), slices)]
    scale = abs(np.log(mu_i / mu_m)) or 1.0
    feats = []
    area = float(n ** (dim - 1))
    for lines, slices in pairs:
        c = lines.astype(np.float64)
        lower = np.mean(n / (c / mu_i + (n - c) / mu_m), axis=1)
        slab = mu_m + (mu_i - mu_m) * slices.astype(np.float64) / area
        upper = 1.0 / np.mean(1.0 / slab, axis=1)
        feats += [np.log(lower), np.log(upper)]
    return (np.stack(feats, axis=-1) / scale).astype(np.float32)


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
    arr = _as_uint8(images, factor)
    dim = arr.ndim - 1
    kernel = _block_means_2d if dim == 2 else _block_means_3d
    return kernel(arr, int(factor))[..., None]


class HostStem:
    """A ``default`` model split into its stem, computed here, and the rest (``body``).

    ``HostStem(...)(x)`` equals ``member.predict_on_batch(x[..., None])`` for a batch ``x`` of
    0/1 images ``(B, n, ..., n)`` to float32 round-off.
    """

    def __init__(
        self,
        factor: int,
        body: Any,
        *,
        phases: tuple[float, float],
        mode: str = "avg",
        line_bounds: bool = False,
    ):
        self.factor = int(factor)
        self.body = body
        self.phases = phases
        self.mode = mode
        self.line_bounds = bool(line_bounds)

    def inputs(self, images: np.ndarray) -> Any:
        """The body's inputs for ``(B, n, ..., n)`` uint8/bool images."""
        if self.mode == "bounds":
            stem = block_bounds(images, self.factor, *self.phases)
        else:
            stem = block_means(images, self.factor)
        if not self.line_bounds:
            return stem
        return [stem, line_bound_features(images, *self.phases)]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.body.predict_on_batch(self.inputs(images))


def _fold_batch_norm(conv: list[np.ndarray], bn: Any) -> list[np.ndarray]:
    """``[kernel, bias]`` of a convolution followed by ``bn`` (inference mode), as one."""
    kernel = conv[0].astype(np.float64)
    bias = conv[1].astype(np.float64) if len(conv) > 1 else np.zeros(kernel.shape[-1])
    gamma, beta, mean, var = (w.astype(np.float64) for w in bn.get_weights())
    scale = gamma / np.sqrt(var + float(bn.epsilon))
    return [(kernel * scale).astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)]


def split_stem(member: Any, metadata: dict[str, Any]) -> HostStem | None:
    """The :class:`HostStem` of a trained ``default`` model whose stem can run outside it.

    Its ``body`` is :func:`surrogate.models.build_stemless` with ``member``'s weights, and with
    each batch normalization folded into the convolution before it (inference statistics:
    ``W' = W g / sqrt(v + eps)``, ``b' = (b - m) g / sqrt(v + eps) + beta``), which saves the
    separate normalization pass over every feature map. ``None`` when the model has no separable
    stem (see :func:`~surrogate.models.build_stemless`).
    """
    import dataclasses

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
        options=dataclasses.replace(options, batch_norm=False),
    )
    if body is None:
        return None
    for layer in body.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        try:
            source = member.get_layer(layer.name).get_weights()
            if options.batch_norm and layer.name.startswith("conv"):
                bn = member.get_layer("bn" + layer.name[len("conv") :])
                source = _fold_batch_norm(source, bn)
        except ValueError:
            return None
        if [w.shape for w in source] != [w.shape for w in weights]:
            logger.debug("layer %s differs from the trained model; stem kept inside", layer.name)
            return None
        layer.set_weights(source)
    factor = options.stem if options.stem is not None else auto_stem(resolution, dim)
    phases = (float(metadata["mu_matrix"]), float(metadata["mu_inclusion"]))
    return HostStem(
        factor, body, phases=phases, mode=options.stem_mode, line_bounds=options.line_bounds
    )
