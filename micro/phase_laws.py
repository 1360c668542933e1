"""Isotropic, anhysteretic magnetic phase laws B(H) with a convex coenergy.

Every law is isotropic: ``B(H) = b(|H|) H / |H|`` with a scalar curve ``b(h)`` (T) of the field
magnitude ``h`` (A/m) that is zero at zero, strictly increasing, and has ``b(h) / h > 0``.  Then
the coenergy density ``w*(H) = W(|H|)``, ``W(h) = int_0^h b(s) ds`` (J/m^3), is convex in the
vector ``H`` and the tangent

    dB/dH = mu_sec I + (mu_diff - mu_sec) e e^T,   mu_sec = b(h) / h,  mu_diff = b'(h),  e = H/|H|

(H/m) is symmetric positive definite.  Permeabilities are absolute here (``mu_0 mu_r``); the
parameters of the laws are relative permeabilities and saturation polarizations.

Laws
----
* :class:`LinearLaw` -- ``b = mu_0 mu_r h``;
* :class:`ArctanLaw` -- ``b = mu_0 h + (2 J_s / pi) arctan(pi (mu_r - 1) mu_0 h / (2 J_s))``;
* :class:`FrohlichKennellyLaw` -- ``b = mu_0 h + J_s h / (h_k + h)``,
  ``h_k = J_s / (mu_0 (mu_r - 1))``;
* :class:`TableLaw` -- a measured B-H table (CSV of H, B) through a monotone piecewise-cubic
  Hermite interpolant (Fritsch-Carlson, C^1), extended beyond the table with its end slope;
  non-monotone, non-finite or otherwise non-convex tables raise :class:`InputError`.

All laws take field arrays of shape ``(..., d)`` and broadcast over the leading axes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from magnetohom.errors import InputError

__all__ = [
    "MU0",
    "ArctanLaw",
    "FrohlichKennellyLaw",
    "LinearLaw",
    "PhaseLaw",
    "TableLaw",
    "law_from_dict",
    "law_from_spec",
]

log = logging.getLogger(__name__)

#: Vacuum permeability, H/m (the exact pre-2019 value; the SI 2019 value differs by 1e-10).
MU0 = 4e-7 * np.pi


class PhaseLaw:
    """Base class: an isotropic law from its scalar curve ``b(h)``.

    Subclasses implement :meth:`curve` (``b``, ``b'`` and ``W`` for magnitudes ``h >= 0``)
    and :meth:`secant` (``b(h)/h``, finite at ``h = 0``), and set ``knee_field``.
    """

    #: Field (A/m) where the initial linear law meets the saturation; the scale of "large".
    knee_field: float = np.inf

    def curve(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``b(h)`` (T), ``b'(h)`` (H/m) and ``W(h) = int_0^h b`` (J/m^3) for ``h >= 0``."""
        raise NotImplementedError

    def secant(self, h: np.ndarray) -> np.ndarray:
        """``b(h) / h`` (H/m), its limit ``b'(0)`` at ``h = 0``."""
        raise NotImplementedError

    @property
    def polarization(self) -> float:
        """Saturation polarization ``lim (b(h) - mu_0 h)``, T (0 for a linear law)."""
        return 0.0

    def to_dict(self) -> dict:
        """JSON-able description; :func:`law_from_dict` rebuilds the law."""
        raise NotImplementedError

    @property
    def initial_mu(self) -> float:
        """Initial relative permeability ``b'(0) / mu_0``."""
        return float(self.secant(np.zeros(1))[0] / MU0)

    # -- vector laws ----------------------------------------------------------------------------
    def flux(self, H: np.ndarray) -> np.ndarray:
        """Flux density ``B(H)``.

        Parameters
        ----------
        H : ndarray, shape (..., d), float64, A/m

        Returns
        -------
        ndarray, shape (..., d), float64, T
        """
        H = np.asarray(H, dtype=np.float64)
        h = np.linalg.norm(H, axis=-1)
        return self.secant(h)[..., None] * H

    def coenergy(self, H: np.ndarray) -> np.ndarray:
        """Coenergy density ``w*(H) = W(|H|)``, shape (...), J/m^3."""
        H = np.asarray(H, dtype=np.float64)
        return self.curve(np.linalg.norm(H, axis=-1))[2]

    def tangent(self, H: np.ndarray) -> np.ndarray:
        """Differential permeability tensor ``dB/dH``, shape (..., d, d), H/m, SPD."""
        return self.evaluate(H)[1]

    def evaluate(self, H: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``B`` (..., d), ``dB/dH`` (..., d, d) and ``w*`` (...) in one pass."""
        H = np.asarray(H, dtype=np.float64)
        d = H.shape[-1]
        h = np.linalg.norm(H, axis=-1)
        _, bp, W = self.curve(h)
        sec = self.secant(h)
        B = sec[..., None] * H
        e = H / np.where(h > 0, h, 1.0)[..., None]
        T = sec[..., None, None] * np.eye(d) + (bp - sec)[..., None, None] * (
            e[..., :, None] * e[..., None, :]
        )
        return B, T, W

    def magnitude(self, h: np.ndarray) -> np.ndarray:
        """Scalar curve ``b(h)`` (T) for magnitudes ``h >= 0`` (A/m)."""
        return self.curve(np.asarray(h, dtype=np.float64))[0]

    def inverse(self, b: np.ndarray) -> np.ndarray:
        """Field magnitude ``h`` with ``b(h) = b`` (Newton with bisection safeguard), A/m."""
        b = np.atleast_1d(np.asarray(b, dtype=np.float64))
        lo = np.zeros_like(b)
        hi = np.maximum(b / self.secant(np.zeros(1))[0], 1.0)
        while np.any(self.magnitude(hi) < b):
            hi = np.where(self.magnitude(hi) < b, 2 * hi, hi)
        x = 0.5 * (lo + hi)
        for _ in range(200):
            f, fp, _ = self.curve(x)
            if np.all(np.abs(f - b) <= 1e-14 * np.maximum(np.abs(b), 1e-300)):
                break
            lo = np.where(f < b, x, lo)
            hi = np.where(f >= b, x, hi)
            step = x - (f - b) / fp
            x = np.where((step >= lo) & (step <= hi), step, 0.5 * (lo + hi))
        return x


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be finite and > 0: got {value}")
    return value


@dataclass(frozen=True)
class LinearLaw(PhaseLaw):
    """``B = mu_0 mu_r H``.

    Parameters
    ----------
    mu_r : float
        Relative permeability (> 0).
    """

    mu_r: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu_r", _positive("mu_r", self.mu_r))

    def to_dict(self) -> dict:
        return {"law": "linear", "mu_r": self.mu_r}

    def curve(self, h):
        h = np.asarray(h, dtype=np.float64)
        m = MU0 * self.mu_r
        return m * h, np.full_like(h, m), 0.5 * m * h * h

    def secant(self, h):
        return np.full_like(np.asarray(h, dtype=np.float64), MU0 * self.mu_r)


@dataclass(frozen=True)
class ArctanLaw(PhaseLaw):
    """``b(h) = mu_0 h + (2 J_s / pi) arctan(a h)``, ``a = pi (mu_r - 1) mu_0 / (2 J_s)``.

    Parameters
    ----------
    mu_r : float
        Initial relative permeability (> 1).
    saturation : float
        Saturation polarization ``J_s`` (T, > 0); ``b - mu_0 h -> J_s`` for large ``h``.
    """

    mu_r: float = 1000.0
    saturation: float = 1.5
    knee_field: float = field(init=False)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mu_r) and self.mu_r > 1):
            raise InputError(f"a saturating law needs an initial mu_r > 1: got {self.mu_r}")
        _positive("saturation", self.saturation)
        object.__setattr__(self, "knee_field", self.saturation / (MU0 * (self.mu_r - 1)))

    @property
    def polarization(self) -> float:
        return float(self.saturation)

    def to_dict(self) -> dict:
        return {"law": "arctan", "mu_r": self.mu_r, "saturation": self.saturation}

    @property
    def _a(self) -> float:
        return np.pi / (2 * self.knee_field)

    def curve(self, h):
        h = np.asarray(h, dtype=np.float64)
        a, c = self._a, 2 * self.saturation / np.pi
        x = a * h
        b = MU0 * h + c * np.arctan(x)
        bp = MU0 + c * a / (1 + x * x)
        W = 0.5 * MU0 * h * h + (c / a) * (x * np.arctan(x) - 0.5 * np.log1p(x * x))
        return b, bp, W

    def secant(self, h):
        h = np.asarray(h, dtype=np.float64)
        a, c = self._a, 2 * self.saturation / np.pi
        x = a * h
        small = x < 1e-4
        xs = np.where(small, 1.0, x)
        ratio = np.where(small, 1 - x * x / 3, np.arctan(xs) / xs)  # arctan(x)/x
        return MU0 + c * a * ratio


@dataclass(frozen=True)
class FrohlichKennellyLaw(PhaseLaw):
    """``b(h) = mu_0 h + J_s h / (h_k + h)``, ``h_k = J_s / (mu_0 (mu_r - 1))``.

    Parameters
    ----------
    mu_r : float
        Initial relative permeability (> 1).
    saturation : float
        Saturation polarization ``J_s`` (T, > 0).
    """

    mu_r: float = 1000.0
    saturation: float = 1.5
    knee_field: float = field(init=False)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mu_r) and self.mu_r > 1):
            raise InputError(f"a saturating law needs an initial mu_r > 1: got {self.mu_r}")
        _positive("saturation", self.saturation)
        object.__setattr__(self, "knee_field", self.saturation / (MU0 * (self.mu_r - 1)))

    @property
    def polarization(self) -> float:
        return float(self.saturation)

    def to_dict(self) -> dict:
        return {"law": "fk", "mu_r": self.mu_r, "saturation": self.saturation}

    def curve(self, h):
        h = np.asarray(h, dtype=np.float64)
        J, k = self.saturation, self.knee_field
        b = MU0 * h + J * h / (k + h)
        bp = MU0 + J * k / (k + h) ** 2
        W = 0.5 * MU0 * h * h + J * (h - k * np.log1p(h / k))
        return b, bp, W

    def secant(self, h):
        h = np.asarray(h, dtype=np.float64)
        return MU0 + self.saturation / (self.knee_field + h)


class TableLaw(PhaseLaw):
    """A measured anhysteretic B-H curve as a smooth monotone law with convex coenergy.

    The points ``(h_i, b_i)`` (the origin is added if missing) are joined by the monotone
    piecewise-cubic Hermite interpolant of Fritsch and Carlson (:class:`scipy.interpolate.
    PchipInterpolator`, C^1); beyond the last point the law continues linearly with the end
    slope.  ``W`` is the exact antiderivative.  The table must be finite, start at ``h >= 0``,
    and be strictly increasing in both ``h`` and ``b`` (a convex coenergy needs ``b' > 0``);
    this is checked, and the interpolant's derivative is checked to stay positive.

    Parameters
    ----------
    H : array_like, shape (m,), A/m
    B : array_like, shape (m,), T
    """

    def __init__(self, H, B) -> None:
        from scipy.interpolate import CubicHermiteSpline, PchipInterpolator

        H = np.asarray(H, dtype=np.float64).ravel()
        B = np.asarray(B, dtype=np.float64).ravel()
        if H.shape != B.shape or H.size < 2:
            raise InputError(f"a B-H table needs >= 2 (H, B) pairs: got {H.size} H, {B.size} B")
        if not (np.all(np.isfinite(H)) and np.all(np.isfinite(B))):
            raise InputError("the B-H table contains NaN or inf")
        if H[0] < 0 or B[0] < 0:
            raise InputError(f"the B-H table must start at H >= 0, B >= 0: got ({H[0]}, {B[0]})")
        if H[0] > 0:
            if B[0] <= 0:
                raise InputError("the B-H table has B = 0 at H > 0: the law would be flat")
            H, B = np.concatenate([[0.0], H]), np.concatenate([[0.0], B])
        elif B[0] != 0:
            raise InputError(f"the B-H table must have B = 0 at H = 0: got B = {B[0]}")
        for name, v in (("H", H), ("B", B)):
            bad = np.flatnonzero(np.diff(v) <= 0)
            if bad.size:
                i = int(bad[0])
                raise InputError(
                    f"the B-H table is not strictly increasing in {name} at rows {i} and "
                    f"{i + 1} ({name} = {v[i]:g}, {v[i + 1]:g}): its coenergy would not be "
                    f"convex"
                )
        self.H, self.B = H, B
        # Fritsch-Carlson slopes inside; at the ends the secant of the end interval where the
        # one-sided formula would give a vanishing slope (a flat, non-convex extrapolation)
        slopes = PchipInterpolator(H, B).derivative()(H)
        secants = np.diff(B) / np.diff(H)
        slopes[-1] = secants[-1]
        if not slopes[0] > 0:
            slopes[0] = secants[0]
        self._p = CubicHermiteSpline(H, B, slopes, extrapolate=True)
        self._dp = self._p.derivative()
        self._W = self._p.antiderivative()
        # positivity of b' (the interpolant is monotone; a flat spot would break convexity)
        fine = np.concatenate([np.linspace(H[i], H[i + 1], 33) for i in range(H.size - 1)])
        slope = self._dp(fine)
        if slope.min() <= 0:
            raise InputError("the B-H table gives a flat stretch (dB/dH = 0): refine the table")
        self._h_end, self._b_end = float(H[-1]), float(B[-1])
        self._s_end = float(self._dp(H[-1]))
        self._W_end = float(self._W(H[-1]))
        self._s0 = float(self._dp(0.0))
        if self._s_end < MU0 * (1 - 1e-6):
            log.warning(
                "B-H table ends with dB/dH = %.3g mu_0 < mu_0; extrapolated with that slope",
                self._s_end / MU0,
            )
        # knee: where the initial tangent line meets the asymptote B_end + mu_0 (h - h_end)
        j = self._b_end - MU0 * self._h_end
        self.knee_field = float(j / (self._s0 - MU0)) if self._s0 > MU0 and j > 0 else H[-1]

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> TableLaw:
        """Read a two-column CSV of H (A/m), B (T); a header line and ``#`` comments allowed."""
        try:
            rows = []
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    line = line.split("#", 1)[0].strip()
                    if not line:
                        continue
                    parts = [p for p in line.replace(";", ",").replace("\t", ",").split(",")]
                    try:
                        rows.append([float(p) for p in parts if p.strip()])
                    except ValueError:
                        if rows:
                            raise
                        continue  # header
        except OSError as exc:
            raise InputError(f"cannot read B-H table {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise InputError(f"B-H table {path}: not a number ({exc})") from None
        if not rows or any(len(r) != 2 for r in rows):
            raise InputError(f"B-H table {path} must have two columns (H in A/m, B in T)")
        arr = np.asarray(rows)
        return cls(arr[:, 0], arr[:, 1])

    @property
    def polarization(self) -> float:
        return max(self._b_end - MU0 * self._h_end, 0.0)

    def to_dict(self) -> dict:
        return {"law": "table", "H": self.H.tolist(), "B": self.B.tolist()}

    def curve(self, h):
        h = np.asarray(h, dtype=np.float64)
        inside = h <= self._h_end
        hi = np.where(inside, h, self._h_end)
        dh = np.where(inside, 0.0, h - self._h_end)
        b = np.where(inside, self._p(hi), self._b_end + self._s_end * dh)
        bp = np.where(inside, self._dp(hi), self._s_end)
        W = np.where(
            inside,
            self._W(hi),
            self._W_end + self._b_end * dh + 0.5 * self._s_end * dh * dh,
        )
        return b, bp, W

    def secant(self, h):
        h = np.asarray(h, dtype=np.float64)
        small = h < 1e-9 * self.H[1]
        hs = np.where(small, 1.0, h)
        return np.where(small, self._s0, self.curve(hs)[0] / hs)

    def __repr__(self) -> str:
        return f"TableLaw({self.H.size} points, H up to {self._h_end:g} A/m)"


def law_from_spec(spec: str) -> PhaseLaw:
    """A law from a short text spec (the command line's ``--law`` / ``--matrix-law``).

    ``"linear:MU_R"``, ``"arctan:MU_R,J_S"``, ``"fk:MU_R,J_S"`` (Frohlich-Kennelly), or
    ``"table:PATH.csv"``.  A bare number is a linear law.
    """
    spec = str(spec).strip()
    kind, _, args = spec.partition(":")
    try:
        if not args:
            return LinearLaw(float(kind))
        if kind == "table":
            return TableLaw.from_csv(args)
        values = [float(v) for v in args.split(",")]
        if kind == "linear" and len(values) == 1:
            return LinearLaw(values[0])
        if kind == "arctan" and len(values) == 2:
            return ArctanLaw(*values)
        if kind in ("fk", "frohlich-kennelly") and len(values) == 2:
            return FrohlichKennellyLaw(*values)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"bad phase law {spec!r}: {exc}") from None
    raise InputError(
        f"bad phase law {spec!r}: use linear:MU_R, arctan:MU_R,J_S, fk:MU_R,J_S or table:FILE.csv"
    )


def law_from_dict(d: dict) -> PhaseLaw:
    """The law of :meth:`PhaseLaw.to_dict`."""
    kind = d.get("law")
    if kind == "linear":
        return LinearLaw(d["mu_r"])
    if kind == "arctan":
        return ArctanLaw(d["mu_r"], d["saturation"])
    if kind == "fk":
        return FrohlichKennellyLaw(d["mu_r"], d["saturation"])
    if kind == "table":
        return TableLaw(d["H"], d["B"])
    raise InputError(f"unknown phase law description {d!r}")
