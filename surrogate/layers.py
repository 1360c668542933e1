"""Custom Keras 3 layers of the surrogate models (serializable, registered as ``magnetohom>...``).

* :class:`PeriodicPad` -- circular padding of the spatial axes, so that a following ``"valid"``
  convolution sees the periodic unit cell as it is (no zero border).
* :class:`SpaceToDepth` -- lossless stem: blocks of pixels become channels.
* :class:`VolumeFraction` -- the mean of the input image, i.e. the inclusion volume fraction.
* :class:`LineBounds` -- directional line/slice bounds of the diagonal components (features).
* :class:`BlockBounds` -- a stem: per block of pixels, its inclusion fraction and the
  directional line/slice bounds of the block (keeps what average pooling loses: whether a
  block is crossed by a connected path or by a one-pixel gap).
* :class:`AdmissibleLogTensor` -- the output layer of the default model: maps unconstrained network
  outputs to ``logm(mu_eff)`` such that ``mu_eff`` is symmetric positive definite with every
  eigenvalue strictly inside the bounds (Wiener or Hashin-Shtrikman) of the image's volume fraction.

Construction of the admissible output (per sample, ``d x d``, computed in float64):

1. ``raw`` (``m`` numbers) is read as the Mandel vector of a symmetric matrix ``A``; a
   physics prior is added on the diagonal, ``A += logit(s0(f)) I``, where ``s0`` places the prior
   estimate (Maxwell Garnett by default) between the bounds; every entry is soft-clipped,
   ``a -> c tanh(a / c)`` with ``c = clip``, which keeps ``||A||`` finite (the prior enters
   inside the ``tanh`` as ``c atanh(a0 / c)``, so ``raw = 0`` gives the prior exactly).
2. ``S = sigma(A) = I - (I + expm(A))^-1`` -- the matrix sigmoid, a smooth bijection from the
   symmetric matrices onto ``{0 < S < I}``; it needs no eigen decomposition (whose gradient is
   singular at the many nearly isotropic samples) and commutes with rotations.
3. ``log mu = log(lower) I + log(upper / lower) S`` so the eigenvalues of ``mu = expm(log mu)``
   lie in ``(lower, upper)``.

The layer returns the Mandel vector of ``log mu`` (what the loss compares with the target
``logm(mu_true)``); the exponential is taken outside the graph, in float64
(:meth:`surrogate.data.TargetTransform.to_tensors`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from surrogate import bounds as _bounds
from surrogate.tensors import mandel_matrix, n_components

__all__ = [
    "AdmissibleLogTensor",
    "BlockBounds",
    "LineBounds",
    "PeriodicPad",
    "SpaceToDepth",
    "ToFloat",
    "VolumeFraction",
]

_PACKAGE = "magnetohom"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ToFloat(keras.layers.Layer):
    """Cast a ``uint8``/``bool`` 0/1 image ``(B, n, ..., n, 1)`` to float32 (1 = inclusion)."""

    def call(self, x):
        return ops.cast(x, "float32")

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PeriodicPad(keras.layers.Layer):
    """Wrap-around padding of all spatial axes of a ``(B, n1, ..., nd, C)`` tensor.

    Parameters
    ----------
    pad
        Pixels added before and after on every spatial axis: an int (same on both sides) or a
        pair ``(before, after)``. Each must be <= the axis length.
    """

    def __init__(self, pad: int | Sequence[int] = 1, **kwargs):
        super().__init__(**kwargs)
        before, after = (pad, pad) if isinstance(pad, int | np.integer) else tuple(pad)
        if before < 0 or after < 0:
            raise ValueError(f"padding must be >= 0, got {pad!r}")
        self.pad = (int(before), int(after))

    def call(self, x):
        before, after = self.pad
        rank = len(x.shape)
        for axis in range(1, rank - 1):
            parts = []
            lead = (slice(None),) * axis
            if before:
                parts.append(x[(*lead, slice(-before, None))])
            parts.append(x)
            if after:
                parts.append(x[(*lead, slice(0, after))])
            if len(parts) > 1:
                x = ops.concatenate(parts, axis=axis)
        return x

    def compute_output_shape(self, input_shape):
        extra = sum(self.pad)
        spatial = [None if s is None else s + extra for s in input_shape[1:-1]]
        return (input_shape[0], *spatial, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "pad": list(self.pad)}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpaceToDepth(keras.layers.Layer):
    """Lossless downsampling: each ``block^d`` cube of pixels becomes ``block^d`` channels.

    ``(B, n, ..., n, C)`` -> ``(B, n/block, ..., n/block, C * block^d)``; ``n`` must be a
    multiple of ``block``. Channel order: the offsets within the block (C order), then ``C``.
    """

    def __init__(self, block: int = 2, **kwargs):
        super().__init__(**kwargs)
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        self.block = int(block)

    def call(self, x):
        b = self.block
        spatial = x.shape[1:-1]
        dim, c = len(spatial), x.shape[-1]
        split = []
        for n in spatial:
            split += [n // b, b]
        y = ops.reshape(x, (-1, *split, c))
        # (B, n1/b, b, n2/b, b, ..., C) -> (B, n1/b, n2/b, ..., b, b, ..., C)
        order = [0, *(1 + 2 * k for k in range(dim)), *(2 + 2 * k for k in range(dim)), 2 * dim + 1]
        y = ops.transpose(y, order)
        return ops.reshape(y, (-1, *(n // b for n in spatial), c * b**dim))

    def compute_output_shape(self, input_shape):
        b = self.block
        spatial = [None if s is None else s // b for s in input_shape[1:-1]]
        return (input_shape[0], *spatial, input_shape[-1] * b ** len(spatial))

    def get_config(self):
        return {**super().get_config(), "block": self.block}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BlockBounds(keras.layers.Layer):
    """Stem: blocks of ``block^d`` pixels -> their fraction and directional bounds.

    ``(B, n, ..., n, 1)`` 0/1 float -> ``(B, n/block, ..., n/block, 1 + 2 d)`` float32; ``n``
    must be a multiple of ``block``. Channel 0 is the block's inclusion fraction (the average
    pooling stem); channels ``1 + 2k`` and ``2 + 2k`` are the lower and upper bound of the
    block's ``mu_kk`` (:class:`LineBounds` applied to the block alone, lines and slices inside
    the block), as ``log(bound) / |log(mu_i / mu_m)|`` in ``[0, 1]``.
    """

    def __init__(
        self,
        block: int = 4,
        dim: int = 2,
        mu_matrix: float = 1.0,
        mu_inclusion: float = 250.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.block = int(block)
        self.dim = int(dim)
        self.mu_matrix = float(mu_matrix)
        self.mu_inclusion = float(mu_inclusion)

    def call(self, x):
        b, d = self.block, self.dim
        spatial = x.shape[1:-1]
        split = []
        for n in spatial:
            split += [n // b, b]
        f = ops.reshape(ops.cast(x, "float32"), (-1, *split))  # (B, m, b, m, b, ...)
        mu = self.mu_matrix + (self.mu_inclusion - self.mu_matrix) * f
        inner = tuple(2 + 2 * k for k in range(d))
        scale = abs(np.log(self.mu_inclusion / self.mu_matrix)) or 1.0
        feats = [ops.mean(f, axis=inner)]
        for k in range(d):
            along = inner[k]
            others = tuple(a for a in inner if a != along)
            line = 1.0 / ops.mean(1.0 / mu, axis=along, keepdims=True)
            lower = ops.mean(line, axis=inner)
            slab = ops.mean(mu, axis=others, keepdims=True)
            upper = 1.0 / ops.mean(1.0 / slab, axis=inner)
            feats += [ops.log(lower) / scale, ops.log(upper) / scale]
        return ops.stack(feats, axis=-1)

    def compute_output_shape(self, input_shape):
        b = self.block
        spatial = [None if s is None else s // b for s in input_shape[1:-1]]
        return (input_shape[0], *spatial, 1 + 2 * self.dim)

    def get_config(self):
        return {
            **super().get_config(),
            "block": self.block,
            "dim": self.dim,
            "mu_matrix": self.mu_matrix,
            "mu_inclusion": self.mu_inclusion,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class VolumeFraction(keras.layers.Layer):
    """Mean over spatial and channel axes: ``(B, n, ..., n, 1)`` -> ``(B, 1)`` float32.

    ``first_channel=True`` averages channel 0 only (the fraction channel of
    :class:`BlockBounds`).
    """

    def __init__(self, first_channel: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.first_channel = bool(first_channel)

    def call(self, x):
        if self.first_channel:
            x = x[..., :1]
        axes = tuple(range(1, len(x.shape)))
        return ops.reshape(ops.mean(ops.cast(x, "float32"), axis=axes), (-1, 1))

    def get_config(self):
        return {**super().get_config(), "first_channel": self.first_channel}

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LineBounds(keras.layers.Layer):
    """Directional (line/slice) bounds of the diagonal components, as scaled logs.

    For each axis ``k`` of a 0/1 image ``(B, n, ..., n, 1)`` with ``mu = mu_m + (mu_i - mu_m) x``:

    * lower bound of ``mu_kk``: harmonic mean along every line parallel to ``x_k``, then the
      arithmetic mean over the lines (lines in parallel; a divergence-free trial flux along
      ``x_k`` that is constant on each line);
    * upper bound of ``mu_kk``: arithmetic mean over every slice normal to ``x_k``, then the
      harmonic mean over the slices (slices in series; a trial potential of ``x_k`` only).

    Both are rigorous and much tighter than the
    Voigt/Reuss means for aligned structures; they are cheap morphology features that see
    straight percolation paths and near-contacts at full resolution. Output ``(B, 2 dim)``
    float32: ``log(bound) / log(contrast)`` as ``[lower_1, upper_1, lower_2, ...]``.
    """

    def __init__(self, dim: int = 2, mu_matrix: float = 1.0, mu_inclusion: float = 250.0, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.mu_matrix = float(mu_matrix)
        self.mu_inclusion = float(mu_inclusion)

    def call(self, x):
        mu = self.mu_matrix + (self.mu_inclusion - self.mu_matrix) * ops.cast(x, "float32")[..., 0]
        scale = abs(np.log(self.mu_inclusion / self.mu_matrix)) or 1.0
        feats = []
        for k in range(self.dim):
            axis = k + 1
            others = tuple(j + 1 for j in range(self.dim) if j != k)
            line = 1.0 / ops.mean(1.0 / mu, axis=axis, keepdims=True)  # harmonic along x_k
            lower = ops.reshape(ops.mean(line, axis=others, keepdims=True), (-1,))
            slab = ops.mean(mu, axis=others, keepdims=True)  # arithmetic over each slice
            upper = ops.reshape(1.0 / ops.mean(1.0 / slab, axis=axis, keepdims=True), (-1,))
            feats += [ops.log(lower), ops.log(upper)]
        return ops.stack(feats, axis=-1) / scale

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * self.dim)

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "mu_matrix": self.mu_matrix,
            "mu_inclusion": self.mu_inclusion,
        }


def _expm(a, *, squarings: int = 6, order: int = 12):
    """Matrix exponential of a batch ``(B, d, d)`` of small matrices with ``||a|| <~ 30``.

    Scaling and squaring with a fixed number of steps (no data-dependent control flow, so it
    compiles with XLA and differentiates plainly): ``expm(a) = T(a / 2^s)^(2^s)`` with ``T`` the
    Taylor polynomial of degree ``order``. For ``||a|| <= 30`` the scaled norm is below 0.5 and the
    truncation error below 1e-14 (float64).
    """
    d = a.shape[-1]
    x = a / float(2**squarings)
    result = ops.eye(d, dtype=a.dtype) + x
    term = x
    for k in range(2, order + 1):
        term = ops.matmul(term, x) / float(k)
        result = result + term
    for _ in range(squarings):
        result = ops.matmul(result, result)
    return result


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AdmissibleLogTensor(keras.layers.Layer):
    """Map ``[raw (B, m), vf (B, 1)]`` to the Mandel vector ``(B, m)`` of admissible ``logm(mu)``.

    Parameters
    ----------
    dim
        2 or 3; ``m = 3`` or ``6``.
    mu_matrix, mu_inclusion
        Phase permeabilities the bounds are computed with (model constants).
    bounds
        ``"wiener"`` (Voigt/Reuss, valid for every microstructure; default) or
        ``"hashin-shtrikman"`` (tighter, statistically isotropic media only).
    prior
        Estimate the network corrects (``raw = 0`` predicts it): ``"maxwell-garnett"``,
        ``"bruggeman"`` or ``None`` (the log-midpoint of the bounds).
    clip
        Soft clip ``c`` of the entries of ``A``; eigenvalues of ``S`` stay within
        ``sigmoid(+-c)`` of 0 and 1.
    """

    def __init__(
        self,
        dim: int = 2,
        mu_matrix: float = 1.0,
        mu_inclusion: float = 250.0,
        bounds: str = "wiener",
        prior: str | None = "maxwell-garnett",
        clip: float = 8.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim!r}")
        if bounds not in _bounds.BOUNDS:
            raise ValueError(f"bounds must be one of {_bounds.BOUNDS}, got {bounds!r}")
        if prior is not None and prior not in _bounds.PRIORS:
            raise ValueError(f"prior must be one of {_bounds.PRIORS} or None, got {prior!r}")
        if not (mu_matrix > 0 and mu_inclusion > 0):
            raise ValueError(f"phase permeabilities must be > 0, got {mu_matrix}, {mu_inclusion}")
        self.dim = int(dim)
        self.mu_matrix = float(mu_matrix)
        self.mu_inclusion = float(mu_inclusion)
        self.bounds = bounds
        self.prior = prior
        self.clip = float(clip)
        self._mandel = mandel_matrix(self.dim)  # (m, d*d) float64

    def bounds_of(self, f):
        """``(lower, upper)`` eigenvalue bounds for volume fraction ``f`` (numpy or tensor)."""
        if self.bounds == "wiener":
            return _bounds.wiener(f, self.mu_matrix, self.mu_inclusion)
        return _bounds.hashin_shtrikman(f, self.mu_matrix, self.mu_inclusion, dim=self.dim)

    def call(self, inputs):
        raw, vf = inputs
        d = self.dim
        m = ops.convert_to_tensor(self._mandel, dtype="float64")
        raw = ops.cast(raw, "float64")
        f = ops.clip(ops.cast(vf, "float64"), 0.0, 1.0)  # (B, 1)
        lower, upper = self.bounds_of(f)
        log_lo = ops.log(lower)
        width = ops.log(upper) - log_lo  # (B, 1), >= 0
        if self.prior is None:
            a0 = ops.zeros_like(f)
        else:
            est = (
                _bounds.maxwell_garnett if self.prior == "maxwell-garnett" else _bounds.bruggeman
            )(f, self.mu_matrix, self.mu_inclusion, dim=d)
            s0 = (ops.log(est) - log_lo) / ops.maximum(width, 1e-12)
            s0 = ops.clip(s0, 1e-3, 1.0 - 1e-3)
            a0 = ops.log(s0) - ops.log(1.0 - s0)
        # raw + prior on the diagonal (Mandel diagonal entries come first), soft-clipped so that
        # raw = 0 reproduces the prior exactly: z = c tanh(raw / c + atanh(a0 / c))
        c = self.clip
        u = ops.clip(a0 / c, -0.95, 0.95)
        pre = 0.5 * ops.log((1.0 + u) / (1.0 - u))
        diag_mask = ops.convert_to_tensor(
            np.r_[np.ones(d), np.zeros(len(self._mandel) - d)], "float64"
        )
        z = c * ops.tanh(raw / c + pre * diag_mask)
        a = ops.reshape(ops.matmul(z, m), (-1, d, d))
        eye = ops.eye(d, dtype="float64")
        e = _expm(a)
        s = eye - ops.linalg.inv(eye + e)
        s = 0.5 * (s + ops.transpose(s, (0, 2, 1)))
        log_mu = log_lo[:, :, None] * eye + width[:, :, None] * s
        out = ops.matmul(ops.reshape(log_mu, (-1, d * d)), ops.transpose(m))
        return ops.cast(out, "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], n_components(self.dim))

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "mu_matrix": self.mu_matrix,
            "mu_inclusion": self.mu_inclusion,
            "bounds": self.bounds,
            "prior": self.prior,
            "clip": self.clip,
        }
