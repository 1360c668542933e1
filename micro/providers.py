"""Constitutive providers of :mod:`micro` for the macroscale solver (``macro``'s protocol).

Both classes are callables ``provider(images: bool (N, n1, ..., nd)) -> float64 (N, d, d)`` with
an attribute ``dim`` and a ``name``, the structure :class:`macro.provider.ConstitutiveProvider`
asks for (this module does not import :mod:`macro`):

* :class:`FEProvider` (``"fe"``) -- the FE² reference: a DOLFINx periodic homogenization
  (:class:`micro.homogenization.Homogenizer`) of every image, square or rectangular periodic
  cells, one reusable homogenizer per image shape, always on ``MPI.COMM_SELF`` (macro ranks
  split the images, never one cell);
* :class:`AnalyticProvider` (``"analytic"``) -- a closed-form estimate (Maxwell-Garnett,
  Hashin-Shtrikman bounds, self-consistent) of the volume fraction measured on each image;
  isotropic by construction.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from magnetohom.errors import InputError

__all__ = ["ESTIMATES", "AnalyticProvider", "FEProvider"]

logger = logging.getLogger(__name__)

#: Estimates known to :class:`AnalyticProvider`.
ESTIMATES = ("maxwell-garnett", "hs-lower", "hs-upper", "self-consistent")


def _check_phases(mu_matrix: float, mu_inclusion: float) -> tuple[float, float]:
    mu_m, mu_i = float(mu_matrix), float(mu_inclusion)
    if not (np.isfinite(mu_m) and np.isfinite(mu_i) and mu_m > 0 and mu_i > 0):
        raise InputError(f"permeabilities must be finite and > 0: got {mu_m:g}, {mu_i:g}")
    return mu_m, mu_i


def _as_batch(images: Any, dim: int) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == dim:
        arr = arr[None]
    if arr.ndim != dim + 1:
        sides = ", ".join(f"n{k + 1}" for k in range(dim))
        raise InputError(f"expected a batch of {dim}D images (N, {sides}): got {arr.shape}")
    if arr.dtype != bool:
        if arr.size and not np.all((arr == 0) | (arr == 1)):
            raise InputError("images must be binary (bool or 0/1, 1 = inclusion)")
        arr = arr.astype(bool)
    return arr


class FEProvider:
    """Homogenized permeability of every image by the DOLFINx FE homogenization.

    Parameters
    ----------
    dim : {2, 3}
        Image dimension.
    mu_matrix, mu_inclusion : float
        Relative permeabilities of the phases (> 0).
    rtol : float, optional
        CG tolerance of the cell problems (``None``: the homogenizer's default).
    **homogenizer_options
        Further keyword arguments of :class:`micro.homogenization.Homogenizer`.

    Attributes
    ----------
    n_solved : int
        Images homogenized so far.
    solve_seconds : float
        Cumulative wall time of the cell solves (set-up excluded).
    setup_seconds : float
        Cumulative set-up time of the homogenizers (one per image shape).
    """

    name = "fe"

    def __init__(
        self,
        *,
        dim: int = 2,
        mu_matrix: float = 1.0,
        mu_inclusion: float = 250.0,
        rtol: float | None = None,
        **homogenizer_options: Any,
    ) -> None:
        if dim not in (2, 3):
            raise InputError(f"dim must be 2 or 3: got {dim!r}")
        self.dim = int(dim)
        self.mu_matrix, self.mu_inclusion = _check_phases(mu_matrix, mu_inclusion)
        self._options = dict(homogenizer_options)
        if rtol is not None:
            self._options["rtol"] = float(rtol)
        self._cache: dict[tuple[int, ...], Any] = {}
        self.resolution: int | None = None
        self.geometry: dict[str, Any] = {}
        self.n_fallback = 0
        self.n_solved = 0
        self.solve_seconds = 0.0
        self.setup_seconds = 0.0

    @property
    def mu_phases(self) -> tuple[float, float]:
        """``(mu_matrix, mu_inclusion)``."""
        return self.mu_matrix, self.mu_inclusion

    def homogenizer(self, shape: tuple[int, ...]) -> Any:
        """The cached :class:`micro.homogenization.Homogenizer` of an image shape."""
        shape = tuple(int(s) for s in shape)
        if shape not in self._cache:
            from mpi4py import MPI

            from micro.homogenization import Homogenizer

            t0 = time.perf_counter()
            self._cache[shape] = Homogenizer(shape, comm=MPI.COMM_SELF, **self._options)
            self.setup_seconds += time.perf_counter() - t0
        return self._cache[shape]

    def warm_up(self, shape: tuple[int, ...] | None = None) -> float:
        """Build the homogenizer of ``shape`` now (DOLFINx set-up, stencil check, first use of
        the compiled solver), outside any timed evaluation; returns the seconds it took."""
        if shape is None:
            return 0.0
        t0 = time.perf_counter()
        hom = self.homogenizer(shape)
        hom(np.ones(tuple(int(s) for s in shape)))  # loads the solver's compiled kernels
        return time.perf_counter() - t0

    def __call__(self, images: Any) -> np.ndarray:
        """``(N, d, d)`` float64 homogenized tensors of bool images ``(N, n1, ..., nd)``
        (rectangular cells too)."""
        batch = _as_batch(images, self.dim)
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim, self.dim))
        hom = self.homogenizer(batch.shape[1:])
        t0 = time.perf_counter()
        res = hom(batch, mu_matrix=self.mu_matrix, mu_inclusion=self.mu_inclusion)
        self.solve_seconds += time.perf_counter() - t0
        self.n_solved += batch.shape[0]
        return np.asarray(res.mu_eff, dtype=np.float64)


class AnalyticProvider:
    """Isotropic closed-form estimate from the volume fraction measured on each image.

    Parameters
    ----------
    estimate : {"maxwell-garnett", "hs-lower", "hs-upper", "self-consistent"}
        Which formula of :mod:`micro.analytic`. For inclusions more permeable than the matrix
        Maxwell-Garnett equals the Hashin-Shtrikman lower bound (isolated inclusions).
    dim : {2, 3}
    mu_matrix, mu_inclusion : float
        Relative permeabilities of the phases (> 0).
    """

    name = "analytic"

    def __init__(
        self,
        *,
        estimate: str = "maxwell-garnett",
        dim: int = 2,
        mu_matrix: float = 1.0,
        mu_inclusion: float = 250.0,
        **_ignored: Any,
    ) -> None:
        if estimate not in ESTIMATES:
            raise InputError(
                f"unknown analytic estimate {estimate!r}; known: {', '.join(ESTIMATES)}"
            )
        if dim not in (2, 3):
            raise InputError(f"dim must be 2 or 3: got {dim!r}")
        self.estimate = estimate
        self.dim = int(dim)
        self.mu_matrix, self.mu_inclusion = _check_phases(mu_matrix, mu_inclusion)
        self.resolution: int | None = None
        self.geometry: dict[str, Any] = {}
        self.n_fallback = 0

    @property
    def mu_phases(self) -> tuple[float, float]:
        """``(mu_matrix, mu_inclusion)``."""
        return self.mu_matrix, self.mu_inclusion

    def warm_up(self, shape: tuple[int, ...] | None = None) -> float:
        """Nothing to set up."""
        return 0.0

    def scalar(self, volume_fraction: Any) -> np.ndarray:
        """Scalar estimate ``(N,)`` float64 of volume fractions ``(N,)`` in [0, 1]."""
        from micro import analytic

        f = np.asarray(volume_fraction, dtype=np.float64)
        args = (f, self.mu_matrix, self.mu_inclusion)
        if self.estimate == "maxwell-garnett":
            out = analytic.maxwell_garnett(*args, dim=self.dim)
        elif self.estimate == "self-consistent":
            out = analytic.self_consistent(*args, dim=self.dim)
        else:
            lower, upper = analytic.hashin_shtrikman(*args, dim=self.dim)
            out = lower if self.estimate == "hs-lower" else upper
        return np.asarray(out, dtype=np.float64)

    def __call__(self, images: Any) -> np.ndarray:
        """``(N, d, d)`` float64 isotropic tensors ``mu(f) I`` of bool images."""
        batch = _as_batch(images, self.dim)
        f = batch.reshape(batch.shape[0], -1).mean(axis=1, dtype=np.float64)
        return self.scalar(f)[:, None, None] * np.eye(self.dim)
