"""The stem of a ``default`` model, computed outside TensorFlow.

A ``default`` model first reduces its 0/1 image by blocks of ``s`` pixels a side (its *stem*, 4 or
8 at 256²): to the block means (``stem_mode="avg"``), or to the block means plus each block's own
line and slice bounds (``stem_mode="bounds"``). Inside TensorFlow that step casts every pixel to
float32 and reads the image several times over: for the light models used at FE² quadrature
points it took about two thirds of the forward pass. :func:`block_means` and
:func:`block_bounds` compute it straight from the ``uint8`` image in one compiled pass (byte sums
and table look-ups, :mod:`surrogate._stem_jit`); :func:`line_bound_features` computes the
image's line/slice bounds from per-line pixel counts; :func:`split_stem` turns a trained model
into that host-side part plus the rest of the network (:func:`surrogate.models.build_stemless`),
with the trained weights. The results equal the full model's to float32 round-off.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import numpy as np

from surrogate import _stem_jit as _jit

__all__ = [
    "HostStem",
    "batch_forward",
    "block_bounds",
    "block_means",
    "line_bound_features",
    "pixel_counts",
    "split_stem",
]

logger = logging.getLogger(__name__)


def pixel_counts(images: np.ndarray) -> np.ndarray:
    """Inclusion pixels per image of a batch of 0/1 images.

    Parameters
    ----------
    images
        ``(N, n, ..., n)`` uint8 or bool 0/1 images.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` int64 (several times faster than ``np.count_nonzero(..., axis=1)``).
    """
    arr = _as_uint8(images)
    flat = arr.reshape(arr.shape[0], int(np.prod(arr.shape[1:])))
    if flat.shape[1] % 8 or sys.byteorder != "little":
        return np.count_nonzero(flat, axis=1).astype(np.int64)
    return _jit.pixel_counts_words(flat.view(np.uint64))


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
    # The kernels store exp(fraction), each lower bound and 1 / each upper bound (no division
    # per block: the tables below carry the means' 1/s); one logarithm of the contiguous whole
    # and a per-channel scale then give fraction, log(lower) / L and log(upper) / L.
    inv_scale = 1.0 / (abs(np.log(mu_i / mu_m)) or 1.0)
    c = np.arange(s + 1, dtype=np.float64)
    harm = s / (c / mu_i + (s - c) / mu_m)
    ef = np.exp(np.arange(s**dim + 1) / s**dim)
    if dim == 3:
        c2 = np.arange(s * s + 1, dtype=np.float64)
        inv_arith2 = 1.0 / ((mu_m + (mu_i - mu_m) * c2 / (s * s)) * s)
        out = _jit.block_bounds_3d(arr, s, harm / (s * s), inv_arith2, ef)
    else:
        tables = (harm / s, 1.0 / ((mu_m + (mu_i - mu_m) * c / s) * s), ef)
        if sys.byteorder != "little" or not (s == 4 or (s % 8 == 0 and s < 256)):
            out = _jit.block_bounds_2d(arr, s, *tables)
        else:  # rows as words: one uint32 per block row for s = 4, s / 8 uint64 otherwise
            words = arr.view(np.uint32 if s == 4 else np.uint64)
            out = _jit.block_bounds_2d_words(words, s, *tables)
    np.log(out, out=out)
    out *= np.array([1.0] + [inv_scale, -inv_scale] * dim, dtype=np.float32)
    return out


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
        rows, cols = _jit.line_counts_2d(arr)
        # axis 1: lines along x_1 are the columns, slices normal to x_1 the rows; axis 2: swapped
        pairs = [(cols.reshape(len(arr), -1), rows), (rows.reshape(len(arr), -1), cols)]
    else:
        c0, c1, c2 = _jit.line_counts_3d(arr)
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
    kernel = _jit.block_means_2d if dim == 2 else _jit.block_means_3d
    return kernel(arr, int(factor))[..., None]


def batch_forward(model: Any) -> Any:
    """``model``'s inference as a function of NumPy batches of any size, traced once.

    Keras' ``predict_on_batch`` traces a new graph for every new batch size (the last, partial
    chunk of a batch, the points of an MPI rank...) and warns once that happens often; this
    traces one graph with an unknown batch dimension. The returned function takes one array per
    model input (cast to the input's dtype) and returns the output as a NumPy array; its
    ``traced`` attribute is the ``tf.function`` (``traced.experimental_get_tracing_count()``).
    """
    import tensorflow as tf

    specs = [tf.TensorSpec((None, *t.shape[1:]), tf.as_dtype(t.dtype)) for t in model.inputs]
    dtypes = [s.dtype.as_numpy_dtype for s in specs]

    @tf.function(input_signature=specs, autograph=False)
    def traced(*xs):
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    def forward(*arrays: np.ndarray) -> np.ndarray:
        if len(arrays) != len(specs):
            raise ValueError(f"model takes {len(specs)} inputs, got {len(arrays)}")
        return traced(*(np.asarray(a, dtype=t) for a, t in zip(arrays, dtypes))).numpy()

    forward.traced = traced
    return forward


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
        self._forward = batch_forward(body)  # made here: run() may be called from threads

    @property
    def key(self) -> tuple[Any, ...]:
        """What :meth:`inputs` depends on: stems with equal keys give equal inputs."""
        return (self.factor, self.mode, self.phases, self.line_bounds)

    def inputs(self, images: np.ndarray) -> Any:
        """The body's inputs for ``(B, n, ..., n)`` uint8/bool images."""
        if self.mode == "bounds":
            stem = block_bounds(images, self.factor, *self.phases)
        else:
            stem = block_means(images, self.factor)
        if not self.line_bounds:
            return stem
        return [stem, line_bound_features(images, *self.phases)]

    def run(self, inputs: Any) -> np.ndarray:
        """The body on ``inputs`` (:meth:`inputs`), one traced graph for every batch size."""
        return self._forward(*(inputs if isinstance(inputs, list) else [inputs]))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.run(self.inputs(images))


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
