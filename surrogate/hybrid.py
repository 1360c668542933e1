"""A provider that answers from the CNN and falls back to finite elements where it should not.

:class:`HybridProvider` implements the ``macro.ConstitutiveProvider`` protocol: it calls a
:class:`surrogate.provider.CNNProvider` and sends the samples it flags (see
:data:`surrogate.provider.FLAGS`; ``resolution``: the image size differs from the model's, which
the CNN refuses) or whose ensemble spread is large to a finite-element provider, counting them
in ``n_fallback``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from magnetohom.errors import InputError, SolverError
from surrogate.provider import FLAGS, CNNProvider, Prediction, as_batch

__all__ = ["HybridPrediction", "HybridProvider"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HybridPrediction:
    """Result of :meth:`HybridProvider.predict`.

    Attributes
    ----------
    mu_eff
        ``(N, d, d)`` float64: CNN answers, FE answers where ``fallback``.
    fallback
        ``(N,)`` bool, samples answered by the FE provider.
    flags
        Flag name -> ``(N,)`` bool (see module doc), the reasons for the fallbacks.
    prediction
        The CNN's :class:`Prediction` (``None`` if the CNN refused the batch's shape).
    """

    mu_eff: np.ndarray
    fallback: np.ndarray
    flags: dict[str, np.ndarray]
    prediction: Prediction | None

    @property
    def n_fallback(self) -> int:
        return int(self.fallback.sum())


class HybridProvider:
    """CNN first, finite elements for flagged or uncertain samples.

    Parameters
    ----------
    cnn
        A :class:`CNNProvider` (or anything accepted by it: name, path, bundle).
    fe_fallback
        Callable ``images (N, n, ..., n) bool -> (N, d, d)`` (or an object with ``.mu_eff``,
        e.g. ``micro.homogenization``'s result).
    spread_threshold
        Relative ensemble spread above which a sample falls back (``None``: the CNN's own
        ``spread`` flag decides).
    fallback_on
        Flags that send a sample to the FE provider.

    Attributes
    ----------
    n_fallback, n_samples, n_calls
        Cumulative counts over all calls.
    last
        The :class:`HybridPrediction` of the latest call.
    name
        Name in reports (``"hybrid"``).
    """

    name = "hybrid"

    def __init__(
        self,
        cnn: Any,
        fe_fallback: Callable[[np.ndarray], Any],
        *,
        spread_threshold: float | None = 0.05,
        fallback_on: tuple[str, ...] = FLAGS,
    ):
        self.cnn = cnn if isinstance(cnn, CNNProvider) else CNNProvider(cnn)
        unknown = set(fallback_on) - set(FLAGS)
        if unknown:
            raise InputError(f"unknown flag(s) {sorted(unknown)}; known: {', '.join(FLAGS)}")
        fe_phases = getattr(fe_fallback, "mu_phases", None)
        if fe_phases is not None and not np.allclose(fe_phases, self.cnn.mu_phases, rtol=1e-12):
            raise InputError(
                f"the FE fallback answers for mu {tuple(fe_phases)} but model "
                f"{self.cnn.bundle.name!r} for {self.cnn.mu_phases}: one pair of materials"
            )
        self.fe_fallback = fe_fallback
        self.spread_threshold = spread_threshold
        self.fallback_on = tuple(fallback_on)
        self.n_fallback = 0
        self.n_samples = 0
        self.n_calls = 0
        self.last: HybridPrediction | None = None

    @property
    def dim(self) -> int:
        """Image dimension (the CNN's)."""
        return self.cnn.dim

    @property
    def resolution(self) -> int:
        """Image side the CNN takes (others go to the FE provider entirely)."""
        return self.cnn.resolution

    @property
    def geometry(self) -> dict[str, Any]:
        """Microstructure class of the CNN's training data."""
        return self.cnn.geometry

    @property
    def mu_phases(self) -> tuple[float, float]:
        """``(mu_matrix, mu_inclusion)`` of the CNN."""
        return self.cnn.mu_phases

    def warm_up(self, shape: tuple[int, ...] | None = None) -> float:
        """Trace the CNN's forward functions now (see :meth:`CNNProvider.warm_up`)."""
        return self.cnn.warm_up(shape)

    def __call__(self, images: Any) -> np.ndarray:
        """``(N, d, d)`` float64 tensors; see :meth:`predict`."""
        return self.predict(images).mu_eff

    def predict(self, images: Any) -> HybridPrediction:
        """CNN answers with FE fallbacks; updates the counters."""
        batch = as_batch(images, self.cnn.dim)
        n, d = batch.shape[0], self.cnn.dim
        if batch.shape[1:] != self.cnn.shape:
            pred = None
            flags = {name: np.zeros(n, bool) for name in FLAGS}
            flags["resolution"][:] = True
            mu = np.full((n, d, d), np.nan)
        else:
            pred = self.cnn.predict(batch)
            flags = {**pred.flags, "resolution": np.zeros(n, bool)}
            if self.spread_threshold is not None:
                flags["spread"] = pred.relative_spread > self.spread_threshold
            mu = pred.mu_eff.copy()
        fallback = np.zeros(n, bool)
        for name in self.fallback_on:
            fallback |= flags[name]
        if fallback.any():
            mu[fallback] = self._fe(batch[fallback].astype(bool))
            logger.info("hybrid provider: %d of %d samples by FE", int(fallback.sum()), n)
        result = HybridPrediction(mu, fallback, flags, pred)
        self.n_fallback += result.n_fallback
        self.n_samples += n
        self.n_calls += 1
        self.last = result
        return result

    def _fe(self, images: np.ndarray) -> np.ndarray:
        res = self.fe_fallback(images)
        mu = np.asarray(getattr(res, "mu_eff", res), dtype=np.float64)
        d = self.cnn.dim
        if mu.shape != (images.shape[0], d, d):
            raise SolverError(
                f"FE fallback returned shape {mu.shape}, expected {(images.shape[0], d, d)}"
            )
        return mu
