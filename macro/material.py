"""Spatial description of a composite: microstructure class, volume-fraction field, SVE seeds.

Every macro quadrature point owns a statistical volume element (SVE) generated from

* the *class* of the microstructure (disks of one radius or a radius range, overlapping or not,
  the image resolution ``n`` or a rectangular cell's shape ``(n1, n2[, n3])``, the phase
  permeabilities), a :class:`Material`;
* the local target volume fraction ``vf(x)`` of a :class:`FractionField` evaluated at the point;
* a seed derived from the material's base seed and the point's **global** index
  ``g = original_cell_index * n_qp + q`` (see :mod:`macro.coefficient`), through
  ``np.random.SeedSequence(base_seed, spawn_key=(g,))``.

The global index does not depend on how the mesh is partitioned, so serial and MPI runs see the
same microstructure at the same point. Pure numerics: nothing here imports DOLFINx.

Fields (all map coordinates ``(N, gdim)`` float64 in metres to ``(N,)`` float64 in [0, 1]):
:class:`ConstantFraction`, :class:`LinearGrading`, :class:`RadialGrading`,
:class:`CallableFraction`; :func:`as_fraction_field` turns a float or a callable into one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from magnetohom.errors import InputError, SampleError

__all__ = [
    "CallableFraction",
    "ConstantFraction",
    "FractionField",
    "LinearGrading",
    "Material",
    "MirroredFraction",
    "RadialGrading",
    "SVEBatch",
    "as_fraction_field",
    "point_rng",
]

logger = logging.getLogger(__name__)


def _check_fraction(value: float, what: str) -> float:
    v = float(value)
    if not (np.isfinite(v) and 0.0 <= v <= 1.0):
        raise InputError(f"{what} must be a volume fraction in [0, 1]: got {value!r}")
    return v


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _positive(value: Any, what: str) -> float:
    """``value`` as a finite float > 0, else :class:`InputError` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InputError(f"{what} must be a number: got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise InputError(f"{what} must be finite and > 0: got {value!r}")
    return v


def _points(x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (1, 2, 3):
        raise InputError(f"points must have shape (N, gdim): got {arr.shape}")
    return arr


class FractionField:
    """Base of the volume-fraction fields: ``field(x (N, gdim)) -> (N,)`` in [0, 1]."""

    def __call__(self, x: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-able description (for reports)."""
        return {"type": type(self).__name__}


@dataclass(frozen=True)
class ConstantFraction(FractionField):
    """The same volume fraction everywhere."""

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _check_fraction(self.value, "volume fraction"))

    def __call__(self, x: Any) -> np.ndarray:
        return np.full(_points(x).shape[0], self.value)

    def describe(self) -> dict[str, Any]:
        return {"type": "constant", "value": self.value}


@dataclass(frozen=True)
class LinearGrading(FractionField):
    """Linear grading from ``start`` at point ``p0`` to ``end`` at ``p1``, constant beyond.

    The fraction depends on the projection of x onto the segment ``p0 -> p1``.
    """

    start: float
    end: float
    p0: tuple[float, ...] = (0.0, 0.0)
    p1: tuple[float, ...] = (1.0, 0.0)

    def __post_init__(self) -> None:
        _check_fraction(self.start, "start")
        _check_fraction(self.end, "end")
        if len(self.p0) != len(self.p1) or np.allclose(self.p0, self.p1):
            raise InputError(f"grading needs two distinct points: got {self.p0}, {self.p1}")

    def __call__(self, x: Any) -> np.ndarray:
        pts = _points(x)
        p0 = np.asarray(self.p0, dtype=np.float64)
        t = np.asarray(self.p1, dtype=np.float64) - p0
        g = pts[:, : t.size] - p0
        s = np.clip(g @ t / (t @ t), 0.0, 1.0)
        return self.start + (self.end - self.start) * s

    def describe(self) -> dict[str, Any]:
        return {"type": "linear", "start": self.start, "end": self.end, "p0": list(self.p0),
                "p1": list(self.p1)}  # fmt: skip


@dataclass(frozen=True)
class RadialGrading(FractionField):
    """Grading with the distance r from ``center``: ``inner`` at ``r0``, ``outer`` at ``r1``."""

    inner: float
    outer: float
    r0: float
    r1: float
    center: tuple[float, ...] = (0.0, 0.0)

    def __post_init__(self) -> None:
        _check_fraction(self.inner, "inner")
        _check_fraction(self.outer, "outer")
        if not (0 <= self.r0 < self.r1):
            raise InputError(f"radial grading needs 0 <= r0 < r1: got {self.r0}, {self.r1}")

    def __call__(self, x: Any) -> np.ndarray:
        pts = _points(x)
        c = np.asarray(self.center, dtype=np.float64)
        r = np.linalg.norm(pts[:, : c.size] - c, axis=1)
        s = np.clip((r - self.r0) / (self.r1 - self.r0), 0.0, 1.0)
        return self.inner + (self.outer - self.inner) * s

    def describe(self) -> dict[str, Any]:
        return {"type": "radial", "inner": self.inner, "outer": self.outer, "r0": self.r0,
                "r1": self.r1, "center": list(self.center)}  # fmt: skip


@dataclass(frozen=True)
class MirroredFraction(FractionField):
    """``inner`` evaluated at ``|x_axis|``: a field mirrored about the plane ``x_axis = 0``."""

    inner: FractionField
    axis: int = 0

    def __call__(self, x: Any) -> np.ndarray:
        pts = np.array(_points(x), copy=True)
        pts[:, self.axis] = np.abs(pts[:, self.axis])
        return self.inner(pts)

    def describe(self) -> dict[str, Any]:
        return {"type": "mirrored", "axis": self.axis, "of": self.inner.describe()}


@dataclass(frozen=True)
class CallableFraction(FractionField):
    """A user function ``f(x (N, gdim)) -> (N,)``; values are checked to lie in [0, 1]."""

    func: Callable[[np.ndarray], Any]
    name: str = "callable"

    def __call__(self, x: Any) -> np.ndarray:
        pts = _points(x)
        out = np.asarray(self.func(pts), dtype=np.float64)
        out = np.broadcast_to(out, (pts.shape[0],)).copy() if out.ndim == 0 else out
        if out.shape != (pts.shape[0],):
            raise InputError(f"volume-fraction function {self.name!r} returned shape {out.shape}")
        if out.size and not (np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1):
            raise InputError(
                f"volume-fraction function {self.name!r} returned values outside [0, 1]: "
                f"[{np.nanmin(out):g}, {np.nanmax(out):g}]"
            )
        return out

    def describe(self) -> dict[str, Any]:
        return {"type": "callable", "name": self.name}


def as_fraction_field(spec: Any) -> FractionField:
    """A :class:`FractionField` from a field, a number or a callable."""
    if isinstance(spec, FractionField):
        return spec
    if callable(spec):
        return CallableFraction(spec, getattr(spec, "__name__", "callable"))
    if isinstance(spec, int | float | np.floating | np.integer):
        return ConstantFraction(float(spec))
    raise InputError(f"volume fraction must be a number, a callable or a field: got {spec!r}")


def _point_error(
    k: int, gid: np.ndarray, vf: np.ndarray, kwargs: dict[str, Any], reason: str
) -> InputError:
    """The error of the k-th SVE of a batch, named by its global point index and class."""
    from micro.validate import format_size  # lazily: importing macro does not import micro

    radius = kwargs.get("radius", kwargs.get("radius_range"))
    return InputError(
        f"SVE of point {gid[k]} (vf {vf[k]:.3f}, {format_size(kwargs['size'])} px, radius "
        f"{radius}): {reason}"
    )


def point_rng(base_seed: int, global_index: int) -> np.random.Generator:
    """The generator of the SVE at one global quadrature-point index."""
    seq = np.random.SeedSequence(int(base_seed), spawn_key=(int(global_index),))
    return np.random.default_rng(seq)


@dataclass(frozen=True)
class SVEBatch:
    """SVEs of a set of quadrature points.

    Attributes
    ----------
    images : ndarray, shape (N, n1, n2[, n3]), bool
        True = inclusion.
    target_volume_fraction : ndarray, shape (N,), float64
        ``vf(x)`` asked for.
    volume_fraction : ndarray, shape (N,), float64
        Measured on the pixels.
    """

    images: np.ndarray
    target_volume_fraction: np.ndarray
    volume_fraction: np.ndarray


@dataclass(frozen=True)
class Material:
    """A two-phase composite whose microstructure varies in space.

    Parameters
    ----------
    volume_fraction : FractionField, float or callable
        Target inclusion fraction vf(x) (see :func:`as_fraction_field`).
    radius : float, optional
        Disk radius in pixels of the SVE (``None``: ``max(2, n / 32)``, the paper's ratio of
        8 px at 256^2, whatever the resolution; spheres ``max(1.5, 5 n / 101)``, the paper's
        5 voxels at 101^3; ``n`` the smallest side of a rectangular cell).
    radius_range : (float, float), optional
        Polydisperse radii in pixels, instead of ``radius``.
    overlap : bool
        Whether disks may overlap.
    resolution : int or tuple of int
        SVE size n in pixels per side (``None``: taken from the provider, e.g. a CNN's input
        size, else 64), or the shape ``(n1, n2[, n3])`` of rectangular periodic SVEs (square
        pixels; providers that take any shape only, e.g. ``fe``). The cell is the SVE's
        periodic unit cell, its aspect ratio that of the shape.
    dim : {2, 3}
        Dimension of the SVEs (= of the macro problem).
    mu_matrix, mu_inclusion : float
        Relative phase permeabilities (documentation for reports; the providers hold their own).
    seed : int
        Base seed; the SVE at global point index g uses :func:`point_rng` ``(seed, g)``.
    generator : callable, optional
        ``generator(*, dim, size, volume_fraction, radius, radius_range, overlap, rng)`` returning
        an object with ``.image``; ``None``: :func:`micro.generate.generate_sve` (imported when
        first used).
    """

    volume_fraction: Any
    radius: float | None = None
    radius_range: tuple[float, float] | None = None
    overlap: bool = False
    resolution: int | tuple[int, ...] | None = None
    dim: int = 2
    mu_matrix: float = 1.0
    mu_inclusion: float = 250.0
    seed: int = 0
    generator: Callable[..., Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "volume_fraction", as_fraction_field(self.volume_fraction))
        if isinstance(self.dim, bool) or self.dim not in (2, 3):
            raise InputError(f"dim must be 2 or 3: got {self.dim!r}")
        if self.resolution is not None:
            object.__setattr__(self, "resolution", self._checked_resolution(self.resolution))
        if self.radius is not None and self.radius_range is not None:
            raise InputError("give radius or radius_range, not both")
        if not _is_int(self.seed) or int(self.seed) < 0:
            raise InputError(f"seed must be an integer >= 0: got {self.seed!r}")
        if not isinstance(self.overlap, bool | np.bool_):
            raise InputError(f"overlap must be True or False: got {self.overlap!r}")
        for name in ("mu_matrix", "mu_inclusion"):
            object.__setattr__(self, name, _positive(getattr(self, name), name))
        if self.radius is not None:
            object.__setattr__(self, "radius", _positive(self.radius, "radius"))
        if self.radius_range is not None:
            try:
                lo, hi = self.radius_range
            except (TypeError, ValueError):
                raise InputError(
                    f"radius_range must be (rmin, rmax): got {self.radius_range!r}"
                ) from None
            lo, hi = _positive(lo, "radius_range"), _positive(hi, "radius_range")
            if lo > hi:
                raise InputError(f"radius_range must have rmin <= rmax: got {self.radius_range!r}")
            object.__setattr__(self, "radius_range", (lo, hi))

    def _checked_resolution(self, resolution: Any) -> int | tuple[int, ...]:
        """``resolution`` as an int (square or cubic SVEs) or a tuple of ``dim`` sides."""
        if _is_int(resolution):
            if int(resolution) < 4:
                raise InputError(
                    f"SVE resolution must be an integer >= 4 pixels: got {resolution!r}"
                )
            return int(resolution)
        try:
            sides = tuple(resolution)
        except TypeError:
            sides = ()
        if len(sides) != self.dim or not all(_is_int(v) and int(v) >= 4 for v in sides):
            raise InputError(
                f"SVE resolution must be an integer >= 4 pixels or {self.dim} of them (a "
                f"rectangular cell): got {resolution!r}"
            )
        sides = tuple(int(v) for v in sides)
        from micro.validate import compact_size

        return compact_size(sides)

    def shape(self, resolution: int | tuple[int, ...] | None = None) -> tuple[int, ...]:
        """The SVE image shape at ``resolution`` (default: the material's, else 64)."""
        res = self._checked_resolution(resolution or self.resolution or 64)
        return (res,) * self.dim if _is_int(res) else res

    def with_resolution(self, resolution: int | tuple[int, ...]) -> Material:
        """A copy with another SVE size (an int, or the shape of rectangular SVEs)."""
        from dataclasses import replace

        return replace(self, resolution=self._checked_resolution(resolution))

    def matched_to(self, resolution: int | None, geometry: dict[str, Any] | None) -> Material:
        """A copy with a provider's SVE size and, if this material leaves the radius open, the
        inclusion radius of the provider's training class (a CNN trained on radius-5 spheres
        at 48^3 gets radius-5 spheres; same overlap flag and monodisperse only)."""
        from dataclasses import replace

        out = self if resolution is None else self.with_resolution(resolution)
        geom = geometry or {}
        radius = geom.get("radius")
        if (
            radius is not None
            and self.radius is None
            and self.radius_range is None
            and bool(geom.get("overlap", False)) == self.overlap
        ):
            out = replace(out, radius=float(radius))
        return out

    def radius_for(self, resolution: int | tuple[int, ...]) -> float:
        """Disk radius in pixels used at a resolution (monodisperse classes); a rectangular
        cell's is that of its smallest side."""
        if self.radius is not None:
            return float(self.radius)
        resolution = min(self.shape(resolution))
        if self.dim == 3:
            return max(1.5, resolution * 5.0 / 101.0)
        return max(2.0, resolution / 32.0)

    def fractions(self, x: Any) -> np.ndarray:
        """Target volume fractions ``(N,)`` at points ``(N, gdim)``."""
        return self.volume_fraction(x)

    def describe(self) -> dict[str, Any]:
        """JSON-able description (for reports)."""
        return {
            "volume_fraction": self.volume_fraction.describe(),
            "radius": self.radius,
            "radius_range": None if self.radius_range is None else list(self.radius_range),
            "overlap": self.overlap,
            "resolution": (
                list(self.resolution) if isinstance(self.resolution, tuple) else self.resolution
            ),
            "dim": self.dim,
            "mu_matrix": self.mu_matrix,
            "mu_inclusion": self.mu_inclusion,
            "seed": int(self.seed),
        }

    def _generate_batch(
        self, vf: np.ndarray, gid: np.ndarray, kwargs: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        """All SVEs in one call of :func:`micro.generate.generate_images` (compiled RSA),
        bit-identical to one :func:`~micro.generate.generate_sve` call per point, and their
        inclusion pixel counts."""
        from micro.generate import generate_images

        try:  # the streams of point_rng(seed, g), derived in one compiled pass
            return generate_images(
                np.maximum(vf, 0.0), seed=self.seed, spawn_keys=gid, return_counts=True, **kwargs
            )
        except SampleError as exc:
            raise _point_error(exc.index, gid, vf, kwargs, exc.reason) from None

    def _generator(self) -> Callable[..., Any]:
        if self.generator is not None:
            return self.generator
        from micro.generate import generate_sve

        return generate_sve

    def generate(
        self,
        x: Any,
        global_index: Sequence[int] | np.ndarray,
        *,
        resolution: int | tuple[int, ...] | None = None,
    ) -> SVEBatch:
        """SVEs at points ``x (N, gdim)`` with global point indices ``(N,)``.

        Each SVE depends only on ``(seed, global_index[k], vf(x[k]))`` and the material class.
        A target fraction of 0 gives an all-matrix image without calling the generator.
        ``resolution`` (default: the material's, else 64) is an int or a rectangular shape;
        the images are ``(N, *shape)``.
        """
        pts = _points(x)
        gid = np.asarray(global_index, dtype=np.int64).ravel()
        if gid.shape[0] != pts.shape[0]:
            raise InputError(f"{pts.shape[0]} points but {gid.shape[0]} global indices")
        from micro.validate import compact_size

        shape = self.shape(resolution)
        size = compact_size(shape)
        vf = self.fractions(pts)
        kwargs: dict[str, Any] = {"dim": self.dim, "size": size, "overlap": self.overlap}
        if self.radius_range is not None:
            kwargs["radius_range"] = tuple(self.radius_range)
        else:
            kwargs["radius"] = self.radius_for(shape)
        if self.generator is None and pts.shape[0]:
            images, counts = self._generate_batch(vf, gid, kwargs)
            return SVEBatch(images, vf, counts / float(math.prod(shape)))
        images = np.zeros((pts.shape[0], *shape), dtype=bool)
        gen = self._generator() if np.any(vf > 0) else None
        for k in range(pts.shape[0]):
            if vf[k] <= 0:
                continue
            try:
                sve = gen(volume_fraction=float(vf[k]), rng=point_rng(self.seed, gid[k]), **kwargs)
            except InputError as exc:
                raise _point_error(k, gid, vf, kwargs, str(exc)) from exc
            img = np.asarray(getattr(sve, "image", sve), dtype=bool)
            if img.shape != images.shape[1:]:
                raise InputError(f"SVE generator returned shape {img.shape}, expected {shape}")
            images[k] = img
        measured = images.reshape(images.shape[0], -1).mean(axis=1, dtype=np.float64)
        return SVEBatch(images, vf, measured)
