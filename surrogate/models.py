"""Keras 3 model builders: the paper's CNN (``paper``) and the admissible CNN (``default``).

Every model takes a ``uint8`` image ``(B, n, ..., n, 1)`` with 1 = inclusion (``dim`` spatial
axes; axis ``k`` is direction ``x_(k+1)``) and returns float32 *targets* (see
:mod:`surrogate.data`):

``paper`` -- Section 4.3 of the paper, the baseline:
    Conv 3x3 (32) - Conv 3x3 (32) - Conv 5x5 (64) - Conv 7x7 (64), ReLU, ``same`` (zero)
    padding, stride 1, a 2x2 max-pooling after each convolution; flatten; dense 64 and 32 ReLU;
    linear output of the ``dim`` diagonal components (standardized); L2 1e-3 on every kernel.
    The paper gives no filter counts; 32/32/64/64 is our choice. In 3D the same with cubes.

``default`` -- beyond the paper, designed for accuracy per CPU cycle:
    * a parameter-free *stem* (factor ``stem``; 4 at 256^2 -> 64^2) that turns each block into
      its inclusion fraction and the directional line/slice bounds of the block
      (:class:`~surrogate.layers.BlockBounds`): disks of radius 8 px keep their shape, and a
      path across a block differs from a one-pixel gap (average pooling loses that);
    * convolutions with *periodic* padding (:class:`~surrogate.layers.PeriodicPad`, then
      ``valid``), 16/32/64/64 filters of 3x3, batch normalization and ReLU, 2x2 max-pooling
      between them (batch normalization made the difference in small trials: the training loss
      halved, the off-diagonal R^2 went from ~0 to ~0.6);
    * global average pooling, so the output is exactly invariant under periodic shifts by
      multiples of ``stem * 2**(len(filters) - 1)`` pixels (and nearly so for others);
    * a dense head (64, 32, ReLU) on the pooled features and the volume fraction;
    * :class:`~surrogate.layers.AdmissibleLogTensor`: the full symmetric tensor (3 components in
      2D, 6 in 3D) as ``logm(mu_eff)``, SPD and inside the bounds of the image's volume fraction by
      construction, the untrained model predicting the Maxwell Garnett estimate.

``head="solve"``: the convolutions predict face conductances of the stem's coarse grid, and
a periodic solve inside the network homogenizes it (:mod:`surrogate.coarse_solve`).

Further options of ``default`` for benchmark sweeps: ``stem_mode="space-to-depth"`` (lossless
stem), ``stem_mode="avg"`` (plain average pooling, the default before session 3),
``convs_per_stage=2`` (better in small trials, about half the speed), ``line_bounds=True``
(directional line/slice bounds of the whole image as head features). Inference runs the stem
(and the line bounds) outside TensorFlow, with batch normalization folded into the convolutions
(:mod:`surrogate.stem`).

Options of a preset are a frozen dataclass (:class:`DefaultOptions`, :class:`PaperOptions`);
:func:`model_options` builds one from a mapping (e.g. read back from a model's metadata).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from magnetohom.errors import InputError
from surrogate import bounds as _bounds
from surrogate.coarse_solve import FACE_LOGITS, solve_head
from surrogate.layers import (
    AdmissibleLogTensor,
    BlockBounds,
    LineBounds,
    PeriodicPad,
    SpaceToDepth,
    ToFloat,
    VolumeFraction,
)
from surrogate.tensors import n_components

__all__ = [
    "PRESETS",
    "DefaultOptions",
    "PaperOptions",
    "auto_stem",
    "build_model",
    "build_stemless",
    "conv_layers",
    "feature_layers",
    "model_options",
    "total_stride",
]

logger = logging.getLogger(__name__)

PRESETS = ("default", "paper")
STEM_MODES = ("avg", "space-to-depth", "bounds")
HEADS = ("pool", "solve")


@dataclass(frozen=True)
class DefaultOptions:
    """Hyper-parameters of the ``default`` preset.

    Attributes
    ----------
    stem
        Downsampling factor applied first (``None``: :func:`auto_stem`). If it does not divide
        the resolution, the image is periodically extended to the next multiple first.
    stem_mode
        ``"bounds"`` (default): each block's fraction plus its directional line/slice bounds
        (:class:`~surrogate.layers.BlockBounds`, ``1 + 2 d`` channels: a path across the block
        and a one-pixel gap differ where the fraction is the same; on the same data as the
        shipped ``default``, MAPE 0.64 % against 0.73 % with ``"avg"``, see BENCHMARKS.md);
        ``"avg"``: parameter-free average pooling (grey values = local volume fraction);
        ``"space-to-depth"``: lossless, each ``stem^d`` block becomes channels (keeps one-pixel
        gaps between inclusions exactly; the first convolution then costs ``stem^d`` times more).
    filters
        Filters of the convolution stages; a 2x2 pooling separates consecutive stages.
    kernel_size
        Side of every convolution kernel (odd).
    pool
        ``"max"`` or ``"avg"``: the pooling between stages.
    convs_per_stage
        Convolutions (each with periodic padding and ReLU) per stage.
    batch_norm
        Batch normalization after every convolution.
    line_bounds
        Feed the head the directional line/slice bounds of the image
        (:class:`~surrogate.layers.LineBounds`), computed at full resolution.
    dense
        Widths of the hidden dense layers (ReLU).
    bounds, prior, clip
        Of :class:`~surrogate.layers.AdmissibleLogTensor`.
    l2
        L2 factor on the kernels (0 = none).
    head
        ``"pool"`` (default): global average pooling, dense layers and the admissible output.
        ``"solve"``: the convolutions (``filters``, no pooling between them) predict the face
        conductances of the stem's coarse grid and :class:`~surrogate.coarse_solve.
        CoarseHomogenization` homogenizes it by a periodic solve inside the network (for
        percolating microstructures; ``dense``, ``pool``, ``bounds``, ``prior`` and ``clip`` are
        unused; SPD with eigenvalues between the phase permeabilities).
    solve_tol
        Relative residual at which the coarse solve of ``head="solve"`` stops.
    """

    stem: int | None = None
    stem_mode: str = "bounds"
    filters: tuple[int, ...] = (16, 32, 64, 64)
    kernel_size: int = 3
    pool: str = "max"
    convs_per_stage: int = 1
    batch_norm: bool = True
    line_bounds: bool = False
    dense: tuple[int, ...] = (64, 32)
    bounds: str = "wiener"
    prior: str | None = "maxwell-garnett"
    clip: float = 8.0
    l2: float = 0.0
    head: str = "pool"
    solve_tol: float = 1e-4


@dataclass(frozen=True)
class PaperOptions:
    """Hyper-parameters of the ``paper`` preset (Section 4.3; filter counts are our choice)."""

    filters: tuple[int, ...] = (32, 32, 64, 64)
    kernel_sizes: tuple[int, ...] = (3, 3, 5, 7)
    dense: tuple[int, ...] = (64, 32)
    l2: float = 1e-3


def model_options(
    preset: str, options: Mapping[str, Any] | DefaultOptions | PaperOptions | None = None
) -> DefaultOptions | PaperOptions:
    """Options dataclass of ``preset`` from a mapping of overrides.

    Raises
    ------
    InputError
        Unknown preset, unknown option name, or an invalid value.
    """
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cls = DefaultOptions if preset == "default" else PaperOptions
    if isinstance(options, cls):
        return options
    if isinstance(options, DefaultOptions | PaperOptions):
        raise InputError(f"options of type {type(options).__name__} do not fit preset {preset!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    values = dict(options or {})
    unknown = sorted(set(values) - fields)
    if unknown:
        raise InputError(
            f"unknown option(s) {unknown} for preset {preset!r}; known: {sorted(fields)}"
        )
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    for key, value in values.items():
        values[key] = _option_value(key, value, types[key])
    opts = cls(**values)
    _validate(opts)
    return opts


def _option_value(key: str, value: Any, annotation: str) -> Any:
    """``value`` checked against the option's annotation (``int | None``, ``tuple[int, ...]``,
    ``float``, ``str``, ``bool``); tuples from lists. Raises :class:`InputError` naming it."""
    if value is None and "None" in annotation:
        return None
    if annotation.startswith("tuple"):
        if isinstance(value, list | tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return tuple(int(v) for v in value)
        raise InputError(f"option {key} must be a list of integers, e.g. [16, 32]: got {value!r}")
    if annotation.startswith("bool"):
        if isinstance(value, bool):
            return value
        raise InputError(f"option {key} must be true or false: got {value!r}")
    if annotation.startswith("int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise InputError(f"option {key} must be an integer: got {value!r}")
    if annotation.startswith("float"):
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise InputError(f"option {key} must be a finite number: got {value!r}")
    if annotation.startswith("str"):
        if isinstance(value, str):
            return value
        raise InputError(f"option {key} must be a string: got {value!r}")
    return value


def _validate(opts: DefaultOptions | PaperOptions) -> None:
    if not opts.filters or any(f < 1 for f in opts.filters):
        raise InputError(f"filters must be positive integers, got {opts.filters}")
    if any(w < 1 for w in opts.dense):
        raise InputError(f"dense widths must be positive integers, got {opts.dense}")
    if opts.l2 < 0:
        raise InputError(f"l2 must be >= 0, got {opts.l2}")
    if isinstance(opts, PaperOptions):
        if len(opts.kernel_sizes) != len(opts.filters):
            raise InputError("paper preset: kernel_sizes and filters must have the same length")
        return
    if opts.stem is not None and opts.stem < 1:
        raise InputError(f"stem must be >= 1, got {opts.stem}")
    if opts.convs_per_stage < 1:
        raise InputError(f"convs_per_stage must be >= 1, got {opts.convs_per_stage}")
    if opts.stem_mode not in STEM_MODES:
        raise InputError(f"stem_mode must be one of {STEM_MODES}, got {opts.stem_mode!r}")
    if opts.kernel_size < 1 or opts.kernel_size % 2 == 0:
        raise InputError(f"kernel_size must be odd and positive, got {opts.kernel_size}")
    if opts.pool not in ("max", "avg"):
        raise InputError(f"pool must be 'max' or 'avg', got {opts.pool!r}")
    if opts.bounds not in _bounds.BOUNDS:
        raise InputError(f"bounds must be one of {_bounds.BOUNDS}, got {opts.bounds!r}")
    if opts.prior is not None and opts.prior not in _bounds.PRIORS:
        raise InputError(f"prior must be one of {_bounds.PRIORS} or None, got {opts.prior!r}")
    if opts.head not in HEADS:
        raise InputError(f"head must be one of {HEADS}, got {opts.head!r}")
    if not 0 < opts.solve_tol < 1:
        raise InputError(f"solve_tol must be in (0, 1), got {opts.solve_tol}")


def auto_stem(resolution: int, dim: int) -> int:
    """Default stem factor: about ``resolution / 64`` in 2D, ``resolution / 48`` in 3D (>= 1).

    256^2 -> 4 (64^2), 128^2 -> 2, 64^2 and below -> 1; 101^3 -> 2 (51^3).
    """
    target = 64 if dim == 2 else 48
    return max(1, int(round(resolution / target)))


def total_stride(options: DefaultOptions, resolution: int, dim: int) -> int:
    """Input pixels per final feature-map pixel: ``stem * 2**(len(filters) - 1)``.

    A periodic shift of the input by a multiple of it (when it divides the resolution) shifts the
    final feature map by whole pixels, which the global average pooling ignores.
    """
    stem = options.stem if options.stem is not None else auto_stem(resolution, dim)
    return stem * 2 ** (len(options.filters) - 1)


def conv_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The convolution layers of a model, in order."""
    return [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Conv3D)
    ]


def feature_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The convolution layers that make features (what ``freeze='conv'`` freezes).

    Every convolution but the coarse-solve head's ``face_logits``: that one *is* the head of a
    ``head="solve"`` model (the dense layers are the head of the others), so a frozen transfer
    still trains it.
    """
    return [layer for layer in conv_layers(model) if layer.name != FACE_LOGITS]


class _Seeds:
    """Distinct integer seeds for the initializers, drawn from one generator (no global state)."""

    def __init__(self, rng: np.random.Generator | int | None):
        self._rng = np.random.default_rng(rng)

    def glorot(self) -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=int(self._rng.integers(2**31 - 1)))


def build_model(
    preset: str = "default",
    *,
    dim: int = 2,
    resolution: int = 256,
    mu_matrix: float = 1.0,
    mu_inclusion: float = 250.0,
    options: Mapping[str, Any] | DefaultOptions | PaperOptions | None = None,
    rng: np.random.Generator | int | None = None,
) -> keras.Model:
    """Build an uncompiled model of ``preset``.

    Parameters
    ----------
    preset
        ``"default"`` or ``"paper"``.
    dim, resolution
        Input image ``(resolution,)*dim``.
    mu_matrix, mu_inclusion
        Phase permeabilities (used by the admissible output layer of ``default``).
    options
        Overrides of :class:`DefaultOptions` / :class:`PaperOptions`.
    rng
        Seeds the weight initializers (reproducible models without global seeds).

    Returns
    -------
    keras.Model
        Input ``uint8 (B, n, ..., n, 1)``; output float32 ``(B, m)``: for ``default`` the Mandel
        vector of ``logm(mu_eff)`` (``m = 3`` in 2D, 6 in 3D), for ``paper`` the standardized
        diagonal (``m = dim``).
    """
    if dim not in (2, 3):
        raise InputError(f"dimension must be 2 or 3, got {dim!r}")
    if resolution < 4:
        raise InputError(f"resolution must be >= 4, got {resolution}")
    opts = model_options(preset, options)
    seeds = _Seeds(rng)
    inp = keras.Input(shape=(resolution,) * dim + (1,), dtype="uint8", name="image")
    x = ToFloat(name="to_float")(inp)
    if preset == "paper":
        out = _paper_body(x, opts, dim, seeds)
    else:
        out = _default_body(x, opts, dim, resolution, mu_matrix, mu_inclusion, seeds)
    model = keras.Model(inp, out, name=f"magnetohom_{preset}_{dim}d")
    logger.debug("built %s model: %d parameters", preset, model.count_params())
    return model


def build_stemless(
    *,
    dim: int,
    resolution: int,
    mu_matrix: float,
    mu_inclusion: float,
    options: Mapping[str, Any] | DefaultOptions,
) -> keras.Model | None:
    """The layers of a ``default`` model after its stem, as a model of its own.

    It takes the stem's output with ``m = resolution / stem``, which a caller can compute faster
    outside TensorFlow from the 0/1 image: the float32 block means ``(B, m, ..., m, 1)``
    (:func:`surrogate.stem.block_means`), or for ``stem_mode="bounds"`` the ``1 + 2 d``
    channels of :func:`surrogate.stem.block_bounds`; with ``line_bounds`` also the ``(B, 2 dim)``
    float32 features of :class:`~surrogate.layers.LineBounds`, computed from the full image
    (:func:`surrogate.stem.line_bound_features`). Its layer names are the full model's, so the
    trained weights copy over by name. ``None`` when the model has no separable stem: the
    ``paper`` preset, no stem, a space-to-depth stem, or a stem that does not divide the
    resolution.
    """
    opts = options if isinstance(options, DefaultOptions) else model_options("default", options)
    stem = opts.stem if opts.stem is not None else auto_stem(resolution, dim)
    if stem <= 1 or resolution % stem or opts.stem_mode not in ("avg", "bounds"):
        return None
    m = resolution // stem
    body = dataclasses.replace(opts, stem=1)
    channels = 1 + 2 * dim if opts.stem_mode == "bounds" else 1
    inp = keras.Input(shape=(m,) * dim + (channels,), dtype="float32", name="block_means")
    lines = (
        keras.Input(shape=(2 * dim,), dtype="float32", name="line_bound_features")
        if opts.line_bounds
        else None
    )
    out = _default_body(
        inp,
        body,
        dim,
        m,
        mu_matrix,
        mu_inclusion,
        _Seeds(0),
        lines=lines,
        stem_channels=channels > 1,
    )
    inputs = inp if lines is None else [inp, lines]
    return keras.Model(inputs, out, name=f"magnetohom_default_{dim}d_stemless")


def _layers(dim: int):
    if dim == 2:
        return keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D
    return keras.layers.Conv3D, keras.layers.MaxPooling3D, keras.layers.AveragePooling3D


def _paper_body(x, opts: PaperOptions, dim: int, seeds: _Seeds):
    conv, maxpool, _ = _layers(dim)
    reg = keras.regularizers.L2(opts.l2) if opts.l2 else None
    for k, (f, ks) in enumerate(zip(opts.filters, opts.kernel_sizes), start=1):
        x = conv(
            f,
            ks,
            padding="same",
            activation="relu",
            kernel_regularizer=reg,
            kernel_initializer=seeds.glorot(),
            name=f"conv{k}",
        )(x)
        if all(s is None or s >= 2 for s in x.shape[1:-1]):
            x = maxpool(2, name=f"pool{k}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for k, w in enumerate(opts.dense, start=1):
        x = keras.layers.Dense(
            w,
            activation="relu",
            kernel_regularizer=reg,
            kernel_initializer=seeds.glorot(),
            name=f"dense{k}",
        )(x)
    return keras.layers.Dense(
        dim, kernel_regularizer=reg, kernel_initializer=seeds.glorot(), name="output"
    )(x)


def _periodic_pool(x, pool_layer, factor: int, name: str):
    """Pool by ``factor``, extending odd/indivisible axes periodically first (keeps periodicity)."""
    n = x.shape[1]
    if n % factor:
        x = PeriodicPad((0, factor - n % factor), name=f"{name}_wrap")(x)
    return pool_layer(factor, name=name)(x)


def _default_body(
    x,
    opts: DefaultOptions,
    dim,
    resolution,
    mu_matrix,
    mu_inclusion,
    seeds,
    lines=None,
    stem_channels: bool = False,
):
    conv, maxpool, avgpool = _layers(dim)
    pool = maxpool if opts.pool == "max" else avgpool
    reg = keras.regularizers.L2(opts.l2) if opts.l2 else None
    stem = opts.stem if opts.stem is not None else auto_stem(resolution, dim)
    if stem > resolution:
        raise InputError(f"stem {stem} is larger than the resolution {resolution}")
    if opts.line_bounds and lines is None:
        lines = LineBounds(dim, mu_matrix, mu_inclusion, name="line_bounds")(x)
    if resolution % stem:  # the stem extends the image: measure the fraction on the original
        vf = VolumeFraction(name="volume_fraction")(x)
    if stem > 1 and opts.stem_mode == "avg":
        x = _periodic_pool(x, avgpool, stem, "stem")
    elif stem > 1 and opts.stem_mode == "bounds":
        if resolution % stem:
            x = PeriodicPad((0, stem - resolution % stem), name="stem_wrap")(x)
        x = BlockBounds(stem, dim, mu_matrix, mu_inclusion, name="stem")(x)
    elif stem > 1:
        if resolution % stem:
            x = PeriodicPad((0, stem - resolution % stem), name="stem_wrap")(x)
        x = SpaceToDepth(stem, name="stem")(x)
    if resolution % stem == 0:  # the mean of the block means is the mean (reads 1/stem^d less)
        first = stem_channels or (stem > 1 and opts.stem_mode == "bounds")
        vf = VolumeFraction(first_channel=first, name="volume_fraction")(x)
    half = opts.kernel_size // 2
    if opts.head == "solve":
        if half > x.shape[1]:
            raise InputError(f"kernel {opts.kernel_size} exceeds feature map size {x.shape[1]}")
        return solve_head(
            x,
            filters=opts.filters,
            kernel_size=opts.kernel_size,
            batch_norm=opts.batch_norm,
            mu_matrix=mu_matrix,
            mu_inclusion=mu_inclusion,
            tol=opts.solve_tol,
            regularizer=reg,
            initializer=seeds.glorot,
        )
    for k, f in enumerate(opts.filters, start=1):
        if k > 1:
            if x.shape[1] < 2:
                raise InputError(
                    f"resolution {resolution} is too small for stem {stem} and "
                    f"{len(opts.filters)} stages"
                )
            x = _periodic_pool(x, pool, 2, f"pool{k - 1}")
        if half > x.shape[1]:
            raise InputError(f"kernel {opts.kernel_size} exceeds feature map size {x.shape[1]}")
        for j in range(opts.convs_per_stage):
            suffix = "" if j == 0 else f"_{j + 1}"
            x = PeriodicPad(half, name=f"wrap{k}{suffix}")(x)
            x = conv(
                f,
                opts.kernel_size,
                padding="valid",
                activation=None if opts.batch_norm else "relu",
                kernel_regularizer=reg,
                kernel_initializer=seeds.glorot(),
                name=f"conv{k}{suffix}",
            )(x)
            if opts.batch_norm:
                x = keras.layers.BatchNormalization(name=f"bn{k}{suffix}")(x)
                x = keras.layers.ReLU(name=f"relu{k}{suffix}")(x)
    gap = keras.layers.GlobalAveragePooling2D if dim == 2 else keras.layers.GlobalAveragePooling3D
    x = gap(name="global_pool")(x)
    x = keras.layers.Concatenate(name="features")([x, vf] if lines is None else [x, vf, lines])
    for k, w in enumerate(opts.dense, start=1):
        x = keras.layers.Dense(
            w,
            activation="relu",
            kernel_regularizer=reg,
            kernel_initializer=seeds.glorot(),
            name=f"dense{k}",
        )(x)
    raw = keras.layers.Dense(n_components(dim), kernel_initializer="zeros", name="raw")(x)
    return AdmissibleLogTensor(
        dim=dim,
        mu_matrix=mu_matrix,
        mu_inclusion=mu_inclusion,
        bounds=opts.bounds,
        prior=opts.prior,
        clip=opts.clip,
        name="log_mu",
    )([raw, vf])
