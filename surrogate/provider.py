"""The CNN as a constitutive provider: ``provider(images) -> mu_eff (N, d, d)``.

:class:`CNNProvider` implements the ``macro.ConstitutiveProvider`` protocol by structure
(``__call__`` on a bool batch ``(N, n, ..., n)`` returning float64 SPD tensors ``(N, d, d)``):
the ensemble's mean tensor, batched; :meth:`CNNProvider.predict` also returns the ensemble
spread and out-of-distribution flags (:class:`Prediction`). :mod:`surrogate.hybrid` adds the
provider that falls back to finite elements for flagged samples.

Flags (per sample, :data:`FLAGS`):

``volume_fraction``  outside the training range widened by ``vf_margin``;
``contrast``         never raised: other phase permeabilities than the model's are refused at
                     construction (kept for the layout of the flags);
``spread``           ensemble relative spread above ``spread_threshold``;
``resolution``       (hybrid only) the image size differs from the model's -- the CNN refuses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from magnetohom.errors import InputError, SolverError
from surrogate import bounds as _bounds

__all__ = ["FLAGS", "CNNProvider", "Prediction", "as_batch"]

logger = logging.getLogger(__name__)

FLAGS = ("volume_fraction", "contrast", "spread", "resolution")


@dataclass(frozen=True)
class Prediction:
    """CNN prediction for a batch.

    Attributes
    ----------
    mu_eff
        ``(N, d, d)`` float64, the ensemble mean (SPD, inside the bounds for the default preset).
    spread
        ``(N, d, d)`` float64, standard deviation over members (and symmetry copies with
        ``tta``); zeros for a single member.
    volume_fraction
        ``(N,)`` float64 of the images.
    flags
        Flag name -> ``(N,)`` bool.
    """

    mu_eff: np.ndarray
    spread: np.ndarray
    volume_fraction: np.ndarray
    flags: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def flagged(self) -> np.ndarray:
        """``(N,)`` bool: any flag raised."""
        out = np.zeros(self.mu_eff.shape[0], dtype=bool)
        for mask in self.flags.values():
            out |= mask
        return out

    @property
    def relative_spread(self) -> np.ndarray:
        """``(N,)`` float64: largest component spread over the mean eigenvalue ``tr(mu)/d``."""
        scale = np.trace(self.mu_eff, axis1=1, axis2=2) / self.mu_eff.shape[-1]
        return np.abs(self.spread).max(axis=(1, 2)) / scale

    def flags_of(self, i: int) -> list[str]:
        """Names of the flags raised for sample ``i``."""
        return [name for name, mask in self.flags.items() if mask[i]]


def as_batch(images: Any, dim: int) -> np.ndarray:
    """A ``(N, n, ..., n)`` uint8 0/1 batch (a single image gets a batch axis)."""
    arr = np.asarray(images)
    if arr.ndim == dim:
        arr = arr[None]
    if arr.ndim != dim + 1:
        raise InputError(f"expected {dim}D images (N, n{', n' * (dim - 1)}), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"images must be bool or 0/1 numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.unsignedinteger):  # one pass, no copy for uint8
        if arr.size and arr.max() > 1:
            raise InputError("images must be binary (0/1 or bool, 1 = inclusion)")
        return arr if arr.dtype == np.uint8 else arr.astype(np.uint8)
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise InputError("images must be binary (0/1 or bool, 1 = inclusion)")
    return arr.astype(np.uint8)


class CNNProvider:
    """Homogenized permeability from a trained CNN (or ensemble).

    Parameters
    ----------
    model
        Registry name, model directory, or a loaded :class:`surrogate.bundle.ModelBundle`
        (``None``: the pretrained ``default``).
    batch_size
        Images per forward pass.
    vf_margin
        Volume fractions within the training range widened by this margin are not flagged.
    spread_threshold
        Flag samples whose relative ensemble spread exceeds it (``None``: never).
    mu_matrix, mu_inclusion
        The caller's phase permeabilities; a mismatch with the model raises the ``contrast``
        flag on every sample (the CNN cannot change contrast).
    tta
        Test-time augmentation: average over the grid symmetries (8 in 2D, 48 in 3D), mapping
        each prediction back; costs that many forward passes, adds their scatter to ``spread``.
    host_stem
        Run the stem (and line bounds) of ``default`` models outside TensorFlow, with batch
        normalization folded (:mod:`surrogate.stem`): same numbers to float32 round-off, 20-50 %
        faster. ``False`` runs the saved model as it is.
    streams
        Chunks of a batch computed at once by this many threads (TensorFlow and the compiled
        stem release the GIL; a call of N images is cut into chunks of at most
        ``ceil(N / streams)``). Small networks, whose operations are too short to keep every
        core busy one at a time, gain most; results do not depend on it.
    any_size
        A coarse-solve model (``head="solve"``) also takes cells of other sides that its stem
        divides, with the same weights (:func:`surrogate.bundle.at_resolution`; the inclusions
        keep their size in pixels, the cell holds more of them). Off: such images are refused.

    Attributes
    ----------
    dim, resolution
        Image dimension and side the model takes (``macro`` reads both).
    name
        Name in reports (``"cnn"``).
    n_predicted
        Images predicted so far.
    """

    name = "cnn"

    def __init__(
        self,
        model: Any = None,
        *,
        batch_size: int = 256,
        vf_margin: float = 0.02,
        spread_threshold: float | None = 0.05,
        mu_matrix: float | None = None,
        mu_inclusion: float | None = None,
        tta: bool = False,
        host_stem: bool = True,
        streams: int = 1,
        any_size: bool = False,
    ):
        from surrogate.bundle import ModelBundle
        from surrogate.registry import load_model

        self.bundle = model if isinstance(model, ModelBundle) else load_model(model)
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        if streams < 1:
            raise InputError(f"streams must be >= 1, got {streams}")
        self.streams = int(streams)
        self.any_size = bool(any_size)
        self._sized: dict[int, CNNProvider] = {}
        self.vf_margin = float(vf_margin)
        self.spread_threshold = spread_threshold
        self.tta = bool(tta)
        self.host_stem = bool(host_stem)
        self.target = self.bundle.target
        if _differs(mu_matrix, self.bundle.mu_matrix) or _differs(
            mu_inclusion, self.bundle.mu_inclusion
        ):
            asked = (
                self.bundle.mu_matrix if mu_matrix is None else mu_matrix,
                self.bundle.mu_inclusion if mu_inclusion is None else mu_inclusion,
            )
            raise InputError(
                f"model {self.bundle.name!r} answers only for mu_matrix {self.bundle.mu_matrix:g}, "
                f"mu_inclusion {self.bundle.mu_inclusion:g} (asked: {asked[0]:g}, {asked[1]:g}); "
                "the general model takes any materials"
            )
        self.contrast_mismatch = False
        self.n_fallback = 0
        self._fns: list[Callable] | None = None
        self._pool: Any = None
        self.n_predicted = 0

    def warm_up(self, shape: tuple[int, ...] | None = None) -> float:
        """Trace the members' forward functions now (one graph per member serves every batch
        size), so that the first real call does not pay TensorFlow's tracing (about 0.3 s).

        Returns the seconds it took. Callers that time providers (``macro.compare``) call it
        with the provider's set-up, outside the timed mu* stage. ``shape`` is ignored (the
        model's own input shape is used); it is there for the common provider signature.
        """
        import time

        t0 = time.perf_counter()
        self._run(np.zeros((1, *self.shape), dtype=np.uint8))
        return time.perf_counter() - t0

    @property
    def dim(self) -> int:
        return self.bundle.dim

    @property
    def resolution(self) -> int:
        return self.bundle.resolution

    @property
    def mu_phases(self) -> tuple[float, float]:
        """``(mu_matrix, mu_inclusion)`` the model was trained for (the only ones it takes)."""
        return float(self.bundle.mu_matrix), float(self.bundle.mu_inclusion)

    @property
    def geometry(self) -> dict[str, Any]:
        """Microstructure class of the training data (``class``, ``radius``, ``overlap``, ...)."""
        return dict(self.bundle.metadata.get("geometry") or {})

    @property
    def shape(self) -> tuple[int, ...]:
        """Image shape the model takes."""
        return (self.resolution,) * self.dim

    def check(self, images: Any) -> np.ndarray:
        """Validate a batch against the model; returns it as uint8 ``(N, n, ..., n)``."""
        batch = as_batch(images, self.dim)
        if batch.shape[1:] != self.shape and self.any_size and len(set(batch.shape[1:])) == 1:
            return self.for_size(batch.shape[1]).check(batch)
        if batch.shape[1:] != self.shape:
            raise InputError(
                f"image shape {batch.shape[1:]} does not match model {self.bundle.name!r} "
                f"({self.dim}D, {self.resolution} px per side)"
            )
        return batch

    def __call__(self, images: Any) -> np.ndarray:
        """``(N, d, d)`` float64 homogenized tensors of a bool batch ``(N, n, ..., n)``."""
        return self.predict(images).mu_eff

    def predict(self, images: Any) -> Prediction:
        """Mean tensor, spread and flags for a batch; see :class:`Prediction`.

        Raises
        ------
        InputError
            Wrong dimension or shape, non-binary images.
        SolverError
            Non-finite network output.
        """
        from surrogate.stem import pixel_counts

        batch = self.check(images)
        if batch.shape[1:] != self.shape:  # another cell size, accepted by check (any_size)
            pred = self.for_size(batch.shape[1]).predict(batch)
            self.n_predicted += batch.shape[0]
            return pred
        n, d = batch.shape[0], self.dim
        vf = pixel_counts(batch) / float(np.prod(self.shape)) if n else np.zeros(0)
        if n == 0:
            empty = np.zeros((0, d, d))
            return Prediction(empty, empty.copy(), vf, {k: np.zeros(0, bool) for k in FLAGS[:3]})
        lower, upper = self._bounds(vf)
        samples = []
        ops = self._symmetries()
        for op in ops:
            x = batch if op is None else np.ascontiguousarray(op.apply(batch))
            for out in self._run(x):
                mu = self.target.to_tensors(out, lower=lower, upper=upper)
                samples.append(mu if op is None else op.matrix.T @ mu @ op.matrix)
        stack = np.stack(samples)  # (S, N, d, d)
        mu_eff = stack.mean(axis=0)
        spread = stack.std(axis=0) if len(samples) > 1 else np.zeros_like(mu_eff)
        if not np.all(np.isfinite(mu_eff)):
            bad = int(np.sum(~np.all(np.isfinite(mu_eff), axis=(1, 2))))
            raise SolverError(
                f"model {self.bundle.name!r} produced non-finite mu_eff for {bad} of {n} images"
            )
        self.n_predicted += n
        pred = Prediction(mu_eff, spread, vf)
        lo, hi = self.bundle.vf_range
        flags = {
            "volume_fraction": (vf < lo - self.vf_margin) | (vf > hi + self.vf_margin),
            "contrast": np.full(n, self.contrast_mismatch),
            "spread": (
                pred.relative_spread > self.spread_threshold
                if self.spread_threshold is not None
                else np.zeros(n, bool)
            ),
        }
        return Prediction(mu_eff, spread, vf, flags)

    def for_size(self, resolution: int) -> CNNProvider:
        """This provider for cells of side ``resolution``: itself, or its twin with the same
        weights and options (built once; :func:`surrogate.bundle.at_resolution`).

        Raises
        ------
        InputError
            The model does not move to that side (only coarse-solve models do).
        """
        if resolution == self.resolution:
            return self
        if resolution not in self._sized:
            from surrogate.bundle import at_resolution

            twin = CNNProvider(
                at_resolution(self.bundle, resolution),
                batch_size=self.batch_size,
                vf_margin=self.vf_margin,
                spread_threshold=self.spread_threshold,
                tta=self.tta,
                host_stem=self.host_stem,
                streams=self.streams,
            )
            twin.contrast_mismatch = self.contrast_mismatch
            self._sized[resolution] = twin
        return self._sized[resolution]

    def _bounds(self, vf: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        if not self.target.full_tensor:
            return None, None
        opts = self.bundle.metadata.get("model_options") or {}
        b = self.bundle
        if opts.get("bounds", "wiener") == "hashin-shtrikman":
            return _bounds.hashin_shtrikman(vf, b.mu_matrix, b.mu_inclusion, dim=b.dim)
        return _bounds.wiener(vf, b.mu_matrix, b.mu_inclusion)

    def _symmetries(self) -> list[Any]:
        if not self.tta:
            return [None]
        from surrogate.augment import symmetry_group

        return list(symmetry_group(self.dim))

    def _functions(self) -> list[Callable]:
        """One forward function per member, taking ``(B, n, ..., n)`` uint8 images: a
        :class:`surrogate.stem.HostStem`, or the saved model given the images with a channel
        axis (:func:`surrogate.stem.batch_forward`: one graph for every batch size)."""
        if self._fns is None:
            from surrogate.stem import batch_forward, split_stem

            self._fns = []
            for m in self.bundle.members:
                split = split_stem(m, self.bundle.metadata) if self.host_stem else None
                self._fns.append(split or _WholeModel(batch_forward(m)))
        return self._fns

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Every member's raw output ``(N, m)`` float64 for a uint8 batch, in chunks of at most
        ``batch_size`` (``streams`` of them at once); members with the same host stem share its
        computation."""
        import math

        fns = self._functions()
        n = batch.shape[0]
        size = max(1, min(self.batch_size, math.ceil(n / self.streams)))
        starts = range(0, n, size)
        if self.streams > 1 and len(starts) > 1:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="cnn")
            chunks = list(self._pool.map(lambda s: _chunk(fns, batch[s : s + size]), starts))
        else:
            chunks = [_chunk(fns, batch[s : s + size]) for s in starts]
        result = [np.concatenate([c[k] for c in chunks]) for k in range(len(fns))]
        if not all(np.all(np.isfinite(o)) for o in result):
            raise SolverError(f"model {self.bundle.name!r} produced non-finite outputs")
        return result


def _chunk(fns: list[Callable], chunk: np.ndarray) -> list[np.ndarray]:
    """Each member's raw output ``(B, m)`` float64 for one uint8 chunk; members with the same
    :class:`surrogate.stem.HostStem` key share its inputs."""
    from surrogate.stem import HostStem

    stems: dict[Any, Any] = {}
    outs = []
    for fn in fns:
        if isinstance(fn, HostStem):
            if fn.key not in stems:
                stems[fn.key] = fn.inputs(chunk)
            raw = fn.run(stems[fn.key])
        else:
            raw = fn(chunk)
        outs.append(np.asarray(raw, dtype=np.float64))
    return outs


class _WholeModel:
    """A saved model's forward function on ``(B, n, ..., n)`` images (adds the channel axis)."""

    def __init__(self, forward: Callable[[np.ndarray], np.ndarray]):
        self.forward = forward

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.forward(images[..., None])


def _differs(value: float | None, reference: float) -> bool:
    return value is not None and not np.isclose(float(value), reference, rtol=1e-9, atol=0.0)
