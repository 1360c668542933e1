"""Analytic bounds and estimates of the effective permeability of a two-phase isotropic medium.

All functions take the inclusion volume fraction ``f`` (scalar or array, broadcast), the phase
permeabilities ``mu_matrix`` and ``mu_inclusion`` (relative, > 0, may also be arrays) and the
dimension ``dim`` (2 or 3), and return float64 arrays of the broadcast shape (0-d for scalars).

* Voigt (arithmetic) and Reuss (harmonic) means: the Wiener bounds, valid for any geometry.
* Hashin–Shtrikman bounds for isotropic composites; the lower bound is the Maxwell–Garnett
  formula with the lower-μ phase as matrix, the upper one with the higher-μ phase as matrix.
* Maxwell–Garnett (Clausius–Mossotti): dilute-to-moderate inclusions in the matrix,
  ``mu_m (mu_i + (d-1) mu_m + (d-1) f (mu_i - mu_m)) / (mu_i + (d-1) mu_m - f (mu_i - mu_m))``.
* Self-consistent (symmetric Bruggeman effective medium):
  ``f (mu_i - mu)/(mu_i + (d-1) mu) + (1-f) (mu_m - mu)/(mu_m + (d-1) mu) = 0``, the positive
  root of ``(d-1) mu^2 - b mu - mu_i mu_m = 0`` with
  ``b = f ((d-1) mu_i - mu_m) + (1-f) ((d-1) mu_m - mu_i)``.  In 2D at ``f = 1/2`` it gives
  Keller–Dykhne's ``sqrt(mu_m mu_i)``.

The ``*_formula`` functions are the same formulas without validation, in plain arithmetic:
they also evaluate TensorFlow tensors, and :mod:`surrogate.bounds` is made of them.

For k phases, :func:`phase_bounds` gives the Wiener and Hashin–Shtrikman bounds from the phase
fractions and permeabilities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from magnetohom.errors import InputError
from micro.validate import check_dim

__all__ = [
    "Estimates",
    "PhaseBounds",
    "estimates",
    "hashin_shtrikman",
    "hashin_shtrikman_formula",
    "maxwell_garnett",
    "maxwell_garnett_formula",
    "phase_bounds",
    "reuss",
    "self_consistent",
    "self_consistent_formula",
    "voigt",
    "wiener_formula",
]


def _args(f, mu_matrix, mu_inclusion, dim) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Validate and broadcast the common arguments; float64 arrays."""
    dim = check_dim(dim)
    try:
        f = np.asarray(f, dtype=np.float64)
        mm = np.asarray(mu_matrix, dtype=np.float64)
        mi = np.asarray(mu_inclusion, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"volume fraction and mu must be real numbers: {exc}") from None
    if np.isnan(f).any() or (f < 0.0).any() or (f > 1.0).any():
        bad = f[np.isnan(f) | (f < 0.0) | (f > 1.0)].ravel()[0]
        raise InputError(f"volume fraction must be in [0, 1]: got {bad!r}")
    for name, mu in (("mu_matrix", mm), ("mu_inclusion", mi)):
        ok = np.isfinite(mu) & (mu > 0.0)
        if not ok.all():
            raise InputError(f"{name} must be finite and > 0: got {mu[~ok].ravel()[0]!r}")
    f, mm, mi = np.broadcast_arrays(f, mm, mi)
    return f, mm, mi, dim


def _out(x: np.ndarray) -> np.ndarray:
    """float64 array; a 0-d result becomes a ``np.float64`` scalar."""
    return np.asarray(x, dtype=np.float64)[()]


# -- the formulas, once ---------------------------------------------------------------------
# Plain arithmetic (+ - * / and ** 0.5) without validation: they evaluate numpy arrays and
# TensorFlow tensors alike (``f`` of any shape, the phase permeabilities scalars), so that the
# surrogate's output layer (``surrogate.bounds``) uses these very formulas inside its graph.


def wiener_formula(f: Any, mu_matrix: Any, mu_inclusion: Any) -> tuple[Any, Any]:
    """Reuss (harmonic) and Voigt (arithmetic) means ``(lower, upper)``; no validation."""
    lower = 1.0 / (f / mu_inclusion + (1.0 - f) / mu_matrix)
    upper = f * mu_inclusion + (1.0 - f) * mu_matrix
    return lower, upper


def maxwell_garnett_formula(f: Any, mu_matrix: Any, mu_inclusion: Any, *, dim: int) -> Any:
    """Maxwell–Garnett (inclusions in the matrix); no validation.

    ``mu_m (mu_i + (d-1) mu_m + (d-1) f (mu_i - mu_m)) / (mu_i + (d-1) mu_m - f (mu_i - mu_m))``.
    """
    k = dim - 1
    d_mu = mu_inclusion - mu_matrix
    return (
        mu_matrix
        * (mu_inclusion + k * mu_matrix + k * f * d_mu)
        / (mu_inclusion + k * mu_matrix - f * d_mu)
    )


def hashin_shtrikman_formula(
    f: Any, mu_matrix: float, mu_inclusion: float, *, dim: int
) -> tuple[Any, Any]:
    """Hashin–Shtrikman bounds ``(lower, upper)`` for scalar phase permeabilities; no
    validation: Maxwell–Garnett with the lower-μ (lower bound) or higher-μ phase as host."""
    as_matrix = maxwell_garnett_formula(f, mu_matrix, mu_inclusion, dim=dim)
    as_inclusion = maxwell_garnett_formula(1.0 - f, mu_inclusion, mu_matrix, dim=dim)
    if mu_matrix <= mu_inclusion:
        return as_matrix, as_inclusion
    return as_inclusion, as_matrix


def _sc_terms(f: Any, mu_matrix: Any, mu_inclusion: Any, k: float) -> tuple[Any, Any]:
    """``b`` and ``sqrt(b^2 + 4 k mu_i mu_m)`` of the self-consistent quadratic."""
    b = f * (k * mu_inclusion - mu_matrix) + (1.0 - f) * (k * mu_matrix - mu_inclusion)
    return b, (b * b + 4.0 * k * mu_inclusion * mu_matrix) ** 0.5


def self_consistent_formula(f: Any, mu_matrix: Any, mu_inclusion: Any, *, dim: int) -> Any:
    """Self-consistent (Bruggeman) estimate ``(b + sqrt(b^2 + 4 (d-1) mu_i mu_m)) / (2 (d-1))``;
    no validation (:func:`self_consistent` avoids its cancellation for ``b < 0``)."""
    k = float(dim - 1)
    b, root = _sc_terms(f, mu_matrix, mu_inclusion, k)
    return (b + root) / (2.0 * k)


def _mg(f: np.ndarray, mm: np.ndarray, mi: np.ndarray, k: int) -> np.ndarray:
    """Maxwell–Garnett with ``k = d - 1`` (no validation)."""
    return maxwell_garnett_formula(f, mm, mi, dim=k + 1)


def voigt(f, mu_matrix, mu_inclusion, *, dim: int = 2) -> np.ndarray:
    """Voigt (arithmetic mean, upper Wiener bound) ``(1-f) mu_m + f mu_i``.

    Parameters
    ----------
    f : array_like, inclusion volume fraction in [0, 1]
    mu_matrix, mu_inclusion : array_like, relative permeabilities > 0
    dim : {2, 3}
        Checked only (the mean does not depend on it).

    Returns
    -------
    ndarray, float64, broadcast shape of the arguments (``np.float64`` for scalar arguments)
    """
    f, mm, mi, _ = _args(f, mu_matrix, mu_inclusion, dim)
    return _out(wiener_formula(f, mm, mi)[1])


def reuss(f, mu_matrix, mu_inclusion, *, dim: int = 2) -> np.ndarray:
    """Reuss (harmonic mean, lower Wiener bound) ``1 / ((1-f)/mu_m + f/mu_i)``.

    Arguments and result as in :func:`voigt`.
    """
    f, mm, mi, _ = _args(f, mu_matrix, mu_inclusion, dim)
    return _out(wiener_formula(f, mm, mi)[0])


def maxwell_garnett(f, mu_matrix, mu_inclusion, *, dim: int = 2) -> np.ndarray:
    """Maxwell–Garnett estimate for inclusions (fraction ``f``) in the matrix.

    ``mu_m (mu_i + (d-1) mu_m + (d-1) f (mu_i - mu_m)) / (mu_i + (d-1) mu_m - f (mu_i - mu_m))``;
    arguments and result as in :func:`voigt`.  It is the Hashin–Shtrikman lower bound when
    ``mu_inclusion > mu_matrix`` and the upper one otherwise.
    """
    f, mm, mi, dim = _args(f, mu_matrix, mu_inclusion, dim)
    return _out(_mg(f, mm, mi, dim - 1))


def hashin_shtrikman(f, mu_matrix, mu_inclusion, *, dim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Hashin–Shtrikman bounds ``(lower, upper)`` for isotropic two-phase composites.

    The lower bound is Maxwell–Garnett with the lower-μ phase as matrix, the upper bound with
    the higher-μ phase as matrix; either order of ``mu_matrix`` and ``mu_inclusion`` works.
    Arguments as in :func:`voigt`.

    Returns
    -------
    lower, upper : ndarray, float64
    """
    f, mm, mi, dim = _args(f, mu_matrix, mu_inclusion, dim)
    k = dim - 1
    as_matrix = _mg(f, mm, mi, k)  # the given matrix phase is the host
    as_inclusion = _mg(1.0 - f, mi, mm, k)  # the inclusion phase is the host
    low_matrix = mm <= mi
    lower = np.where(low_matrix, as_matrix, as_inclusion)
    upper = np.where(low_matrix, as_inclusion, as_matrix)
    return _out(lower), _out(upper)


def self_consistent(f, mu_matrix, mu_inclusion, *, dim: int = 2) -> np.ndarray:
    """Symmetric self-consistent (Bruggeman) estimate, closed form; see the module docstring.

    Arguments and result as in :func:`voigt`.  Lies between the Hashin–Shtrikman bounds.
    """
    f, mm, mi, dim = _args(f, mu_matrix, mu_inclusion, dim)
    k = float(dim - 1)
    b, root = _sc_terms(f, mm, mi, k)
    # positive root (b + root) / (2k), written without cancellation for b < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = (b + root) / (2.0 * k)
        neg = 2.0 * mi * mm / (root - b)
    return _out(np.where(b >= 0.0, pos, neg))


@dataclass(frozen=True, eq=False)
class Estimates:
    """All analytic estimates at once (float64 arrays of the broadcast shape of the inputs).

    Attributes
    ----------
    voigt, reuss : ndarray
        Wiener bounds (upper, lower).
    hs_lower, hs_upper : ndarray
        Hashin–Shtrikman bounds.
    maxwell_garnett : ndarray
        Maxwell–Garnett with the given matrix as host.
    self_consistent : ndarray
        Symmetric Bruggeman estimate.
    """

    voigt: np.ndarray
    reuss: np.ndarray
    hs_lower: np.ndarray
    hs_upper: np.ndarray
    maxwell_garnett: np.ndarray
    self_consistent: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        """The fields as a dict (name -> array)."""
        return asdict(self)


def estimates(f, mu_matrix, mu_inclusion, *, dim: int = 2) -> Estimates:
    """Evaluate every estimate of this module; arguments as in :func:`voigt`."""
    lower, upper = hashin_shtrikman(f, mu_matrix, mu_inclusion, dim=dim)
    return Estimates(
        voigt=voigt(f, mu_matrix, mu_inclusion, dim=dim),
        reuss=reuss(f, mu_matrix, mu_inclusion, dim=dim),
        hs_lower=lower,
        hs_upper=upper,
        maxwell_garnett=maxwell_garnett(f, mu_matrix, mu_inclusion, dim=dim),
        self_consistent=self_consistent(f, mu_matrix, mu_inclusion, dim=dim),
    )


@dataclass(frozen=True)
class PhaseBounds:
    """Bounds on the effective permeability of a k-phase composite.

    Attributes
    ----------
    wiener_lower, wiener_upper : float
        Harmonic and arithmetic means (any geometry, any direction).
    hs_lower, hs_upper : float
        Hashin–Shtrikman bounds of statistically isotropic k-phase composites, with the least
        and the most permeable phase as the reference medium.
    """

    wiener_lower: float
    hs_lower: float
    hs_upper: float
    wiener_upper: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def phase_bounds(fractions, mu, *, dim: int = 2) -> PhaseBounds:
    """Wiener and Hashin–Shtrikman bounds for k phases.

    ``HS(mu_0) = [sum_i f_i / (mu_i + (d-1) mu_0)]^-1 - (d-1) mu_0`` with ``mu_0 = min mu`` (lower)
    and ``mu_0 = max mu`` (upper); for two phases these are :func:`hashin_shtrikman`.

    Parameters
    ----------
    fractions : array_like, shape (k,)
        Volume fraction of every phase, >= 0, summing to 1.
    mu : array_like, shape (k,)
        Relative permeability of every phase, finite and > 0.
    dim : {2, 3}

    Returns
    -------
    PhaseBounds
    """
    dim = check_dim(dim)
    try:
        f = np.asarray(fractions, dtype=np.float64).ravel()
        m = np.asarray(mu, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise InputError(f"volume fractions and mu must be real numbers: {exc}") from None
    if f.size != m.size or f.size < 1:
        raise InputError(f"one volume fraction per phase: got {f.size} fractions, {m.size} mu")
    if not np.isfinite(f).all() or (f < 0).any() or abs(f.sum() - 1.0) > 1e-9:
        raise InputError(f"volume fractions must be >= 0 and sum to 1: got {f.tolist()}")
    if not np.isfinite(m).all() or (m <= 0).any():
        raise InputError(f"mu must be finite and > 0: got {m.tolist()}")
    k = dim - 1

    def hs(mu0: float) -> float:
        return float(1.0 / np.sum(f / (m + k * mu0)) - k * mu0)

    present = m[f > 0]
    return PhaseBounds(
        wiener_lower=float(1.0 / np.sum(f / m)),
        hs_lower=hs(float(present.min())),
        hs_upper=hs(float(present.max())),
        wiener_upper=float(np.sum(f * m)),
    )
