"""Datasets of the nonlinear effective law: (image, H_bar, B_bar, tangent, psi*) in one HDF5 file.

The file is a :mod:`micro.dataset` file (same arrays, attributes, resume, MPI split, crash
safety: :func:`micro.dataset.run_dataset` drives both), whose ``mu_eff`` is the small-field limit
of the nonlinear law (``dB_bar/dH_bar`` at ``H_bar = 0`` over ``mu_0``, so
:func:`micro.load_dataset` and the linear tools read it too), with more labels per sample:

| dataset | dtype / shape | meaning |
| --- | --- | --- |
| ``field`` | float64 ``(N, K, d)`` | macroscopic fields ``H_bar``, A/m |
| ``flux`` | float64 ``(N, K, d)`` | ``B_bar(H_bar)``, T |
| ``tangent`` | float64 ``(N, K, d, d)`` | ``dB_bar/dH_bar``, H/m (SPD) |
| ``coenergy`` | float64 ``(N, K)`` | ``psi*(H_bar)``, J/m^3 |
| ``newton_iterations`` | int32 ``(N, K)`` | Newton iterations per field |
| ``knee_field`` | float64 ``(N,)`` | the composite's knee field ``H_k*``, A/m |

and the attributes ``matrix_law`` / ``inclusion_law`` (JSON of :meth:`PhaseLaw.to_dict`),
``n_directions``, ``n_magnitudes``, ``max_field`` (in units of ``H_k*``), ``spacing``.

Fields: ``K = n_directions * n_magnitudes`` per sample.  Directions are stratified random on the
circle (2D: angle ``2 pi (k + U) / n_directions``) or uniform random on the sphere (3D);
magnitudes stratified in ``log |H|`` from 0.01 to ``max_field`` knee fields (``spacing="log"``,
stratum ``j`` of ``n_magnitudes``) or in ``|H|`` from 0 (``"linear"``), so every sample covers
the whole curve (the exact zero-field law is ``mu_eff``), each along its ray solved by continuation
(:meth:`NonlinearHomogenizer.sweep`).  The knee field of the composite is where its initial
linear law meets its saturation: ``H_k* = <J_s> / (mu_0 (tr(mu*)/d - 1))`` with ``<J_s>`` the
volume average of the phases' saturation polarizations.  The fields draw from
``default_rng([seed[i], 1])``, a stream apart from the SVE's, so the images are those of a
linear dataset with the same class and ``base_seed``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from magnetohom.errors import InputError
from micro.dataset import DatasetSummary, _check_options, _Sampler, run_dataset, sample_rng
from micro.dataset_io import DatasetFile, DatasetSpec, _open_h5, load_dataset
from micro.generate import spawn_seeds
from micro.phase_laws import MU0, PhaseLaw, law_from_dict
from micro.validate import format_size

__all__ = [
    "NLDataset",
    "NLDatasetFile",
    "NLDatasetSpec",
    "effective_knee_field",
    "generate_nl_dataset",
    "load_nl_dataset",
]

log = logging.getLogger(__name__)

_EXTRA = ("field", "flux", "tangent", "coenergy", "newton_iterations", "knee_field")


def effective_knee_field(mu_eff: np.ndarray, laws: tuple[PhaseLaw, PhaseLaw], vf: float) -> float:
    """Knee field ``H_k* = <J_s> / (mu_0 (tr(mu*)/d - 1))`` of a two-phase composite, A/m.

    Parameters
    ----------
    mu_eff : ndarray, shape (d, d)
        Linear (small-field) relative permeability.
    laws : (matrix law, inclusion law)
    vf : float
        Inclusion volume fraction.
    """
    js = (1 - vf) * laws[0].polarization + vf * laws[1].polarization
    chi = float(np.trace(mu_eff)) / len(mu_eff) - 1.0
    if js <= 0 or chi <= 0:
        raise InputError(
            "the composite does not saturate: give at least one saturating phase law with an "
            f"initial mu_r > 1 (mean polarization {js:g} T, susceptibility {chi:g})"
        )
    return js / (MU0 * chi)


@dataclass(frozen=True)
class NLDatasetSpec(DatasetSpec):
    """:class:`DatasetSpec` plus what defines the nonlinear labels.

    Attributes
    ----------
    matrix_law, inclusion_law : dict
        :meth:`PhaseLaw.to_dict` (stored as JSON).
    n_directions, n_magnitudes : int
    max_field : float
        Largest field magnitude in units of the composite's knee field.
    spacing : {"log", "linear"}
        Stratification of the magnitudes.
    """

    matrix_law: dict
    inclusion_law: dict
    n_directions: int
    n_magnitudes: int
    max_field: float
    spacing: str

    def attrs(self) -> dict[str, Any]:
        out = super().attrs()
        for name in ("matrix_law", "inclusion_law"):
            out[name] = json.dumps(getattr(self, name), sort_keys=True)
        return out


class NLDatasetFile(DatasetFile):
    """A nonlinear dataset file open for writing (one writer process)."""

    @staticmethod
    def _create_extra(f: h5py.File, spec: DatasetSpec) -> None:
        n, d = spec.n_samples, spec.dim
        K = spec.n_directions * spec.n_magnitudes
        f.create_dataset("field", data=np.full((n, K, d), np.nan))
        f.create_dataset("flux", data=np.full((n, K, d), np.nan))
        f.create_dataset("tangent", data=np.full((n, K, d, d), np.nan))
        f.create_dataset("coenergy", data=np.full((n, K), np.nan))
        f.create_dataset("newton_iterations", data=np.zeros((n, K), dtype=np.int32))
        f.create_dataset("knee_field", data=np.full(n, np.nan))

    def write_sample(self, index: int, **labels: Any) -> None:
        """Write the nonlinear labels, then the sample as :meth:`DatasetFile.write_sample`
        (which flushes and marks it done), so ``done`` never precedes a label."""
        f = self._f
        for name in _EXTRA:
            f[name][index] = labels.pop(name)
        super().write_sample(index, **labels)


class _NLSampler(_Sampler):
    """Makes sample ``i`` like :mod:`micro.dataset` and labels it with the nonlinear law."""

    def __init__(self, opts: dict[str, Any], seeds: np.ndarray) -> None:
        super().__init__(opts, seeds)
        self._nh = None

    def fields(self, i: int, knee: float) -> np.ndarray:
        """The ``(n_directions, n_magnitudes, d)`` fields of sample ``i``, A/m."""
        o = self.opts
        rng = np.random.default_rng([int(self.seeds[i]), 1])
        nd, nm, d = o["n_directions"], o["n_magnitudes"], o["dim"]
        if d == 2:
            theta = 2 * np.pi * (np.arange(nd) + rng.random(nd)) / nd
            dirs = np.stack([np.cos(theta), np.sin(theta)], axis=1)
        else:
            dirs = rng.normal(size=(nd, 3))
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        u = (np.arange(nm)[None, :] + rng.random((nd, nm))) / nm  # stratified in [0, 1)
        top = o["max_field"]
        if o["spacing"] == "log":
            t = MIN_FIELD * (top / MIN_FIELD) ** u
        else:
            t = top * u
        return knee * t[:, :, None] * dirs[:, None, :]

    def label(self, i: int, sve=None) -> tuple:
        from micro.nonlinear import NonlinearHomogenizer

        t0 = time.perf_counter()
        sve = self.sve(i) if sve is None else sve
        image = np.asarray(sve.image, dtype=bool)
        laws = self.opts["laws"]
        if self._nh is None:
            self._nh = NonlinearHomogenizer(image.shape, rtol=self.opts["rtol"])
        d = image.ndim
        zero = self._nh.solve(image, laws, np.zeros(d))
        mu = zero.tangent / MU0
        vf = float(image.mean())
        knee = effective_knee_field(mu, laws, vf)
        fields = self.fields(i, knee)
        res = []
        for ray in fields:
            res.extend(self._nh.sweep(image, laws, ray, start=zero))
        extra = {
            "field": np.array([r.H for r in res]),
            "flux": np.array([r.B for r in res]),
            "tangent": np.array([r.tangent for r in res]),
            "coenergy": np.array([r.coenergy for r in res]),
            "newton_iterations": np.array([r.newton_iterations for r in res], dtype=np.int32),
            "knee_field": knee,
        }
        its = np.full(d, zero.linear_iterations // d)
        seconds = time.perf_counter() - t0
        return ("ok", int(i), image.astype(np.uint8), mu, its, seconds, vf, extra)


def _open_nl(path: Path, opts: dict[str, Any], sampler: _NLSampler):
    from micro.dataset import _spec_fields

    laws = opts["laws"]
    spec = NLDatasetSpec(
        **_spec_fields(opts),
        matrix_law=laws[0].to_dict(),
        inclusion_law=laws[1].to_dict(),
        n_directions=int(opts["n_directions"]),
        n_magnitudes=int(opts["n_magnitudes"]),
        max_field=float(opts["max_field"]),
        spacing=opts["spacing"],
    )
    first = None
    if not path.exists():
        first = sampler.sve(0)
    targets = np.array([sample_rng(s, opts["vf_range"])[1] for s in sampler.seeds])
    writer = NLDatasetFile.open(path, spec, seeds=sampler.seeds, target_volume_fraction=targets)
    return writer, first


#: Smallest field of ``spacing="log"``, in knee fields.
MIN_FIELD = 0.01

#: Default cell sizes (pixels per side) and radii of the nonlinear datasets, per dimension.
NL_DEFAULT_SIZE = {2: 48, 3: 24}
NL_DEFAULT_RADIUS = {2: 3.0, 3: 3.0}


def generate_nl_dataset(
    path: str | os.PathLike,
    *,
    n_samples: int,
    matrix_law: PhaseLaw,
    inclusion_law: PhaseLaw,
    dim: int = 2,
    size: int | None = None,
    radius: float | None = None,
    radius_range: tuple[float, float] | None = None,
    overlap: bool = False,
    vf_range: tuple[float, float] | None = None,
    base_seed: int = 0,
    n_directions: int = 8,
    n_magnitudes: int = 6,
    max_field: float = 6.0,
    spacing: str = "log",
    rtol: float = 1e-9,
    comm=None,
    progress: bool | None = None,
    log_every: int = 10,
) -> DatasetSummary:
    """Generate (or resume) a nonlinear dataset (see the module docstring).

    Parameters
    ----------
    path : path-like
    n_samples : int
    matrix_law, inclusion_law : PhaseLaw
        Laws of the phases (:mod:`micro.phase_laws`); at least one saturating.
    dim, size, radius, radius_range, overlap, vf_range, base_seed, comm, progress, log_every
        As for :func:`micro.generate_dataset`; defaults ``size`` 48 (2D) / 24 (3D) pixels and
        ``radius`` 3 pixels.
    n_directions, n_magnitudes : int
        Field directions per sample and magnitudes per direction (>= 1).
    max_field : float
        Largest magnitude in units of the composite's knee field (> 0).
    spacing : {"log", "linear"}
        Magnitudes stratified uniformly in ``log |H|`` from ``MIN_FIELD`` (0.01) to
        ``max_field`` knee fields (default: composites saturate gradually, from far below
        their knee, where inclusions nearly touch), or uniformly from 0.
    rtol : float
        Newton tolerance of :class:`micro.nonlinear.NonlinearHomogenizer`.

    Returns
    -------
    DatasetSummary

    Raises
    ------
    InputError
        Bad options or a file made with other parameters.
    SolverError
        Samples whose Newton iteration failed (they stay unfinished; the others are written).
    """
    from mpi4py import MPI

    t0 = time.perf_counter()
    comm = MPI.COMM_WORLD if comm is None else comm
    for name, law in (("matrix_law", matrix_law), ("inclusion_law", inclusion_law)):
        if not isinstance(law, PhaseLaw):
            raise InputError(f"{name} must be a micro.phase_laws.PhaseLaw: got {law!r}")
    for name, v in (("n_directions", n_directions), ("n_magnitudes", n_magnitudes)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise InputError(f"{name} must be an integer >= 1: got {v!r}")
    if not (np.isfinite(max_field) and max_field > MIN_FIELD):
        raise InputError(f"max_field must be > {MIN_FIELD} (knee fields): got {max_field!r}")
    if spacing not in ("log", "linear"):
        raise InputError(f"spacing must be 'log' or 'linear': got {spacing!r}")
    if matrix_law.polarization <= 0 and inclusion_law.polarization <= 0:
        raise InputError("both phase laws are linear: give a saturating law for a nonlinear set")
    dim_ = int(dim) if dim in (2, 3) else dim
    if size is None and dim_ in NL_DEFAULT_SIZE:
        size = NL_DEFAULT_SIZE[dim_]
    if radius is None and radius_range is None and dim_ in NL_DEFAULT_RADIUS:
        radius = NL_DEFAULT_RADIUS[dim_]
    opts = _check_options(
        n_samples=n_samples,
        dim=dim,
        size=size,
        radius=radius,
        radius_range=radius_range,
        overlap=overlap,
        vf_range=vf_range,
        base_seed=base_seed,
        mu_matrix=matrix_law.initial_mu,
        mu_inclusion=inclusion_law.initial_mu,
        rtol=rtol,
        log_every=log_every,
    )
    if isinstance(opts["resolution"], tuple):  # before any file is made
        raise InputError(
            "the nonlinear cell problem needs a square/cubic cell: got size "
            f"{format_size(opts['resolution'])}"
        )
    opts.update(
        laws=(matrix_law, inclusion_law),
        n_directions=int(n_directions),
        n_magnitudes=int(n_magnitudes),
        max_field=float(max_field),
        spacing=spacing,
    )
    sampler = _NLSampler(opts, spawn_seeds(int(base_seed), int(n_samples)))
    return run_dataset(Path(path), opts, sampler, _open_nl, comm=comm, progress=progress, t0=t0)


@dataclass(frozen=True)
class NLDataset:
    """The finished samples of a nonlinear dataset file (:func:`load_nl_dataset`).

    Attributes
    ----------
    base : micro.dataset_io.Dataset
        Images, the small-field ``mu_eff`` (M, d, d), volume fractions, seeds, attributes.
    field, flux : ndarray, shape (M, K, d), float64
        ``H_bar`` (A/m) and ``B_bar`` (T).
    tangent : ndarray, shape (M, K, d, d), float64, H/m
    coenergy : ndarray, shape (M, K), float64, J/m^3
    newton_iterations : ndarray, shape (M, K), int32
    knee_field : ndarray, shape (M,), float64, A/m
    laws : (PhaseLaw, PhaseLaw)
        Matrix and inclusion laws.
    """

    base: Any
    field: np.ndarray
    flux: np.ndarray
    tangent: np.ndarray
    coenergy: np.ndarray
    newton_iterations: np.ndarray
    knee_field: np.ndarray
    laws: tuple

    def __len__(self) -> int:
        return len(self.base)


def load_nl_dataset(path: str | os.PathLike | Sequence[str | os.PathLike]) -> NLDataset:
    """Read the finished samples of a nonlinear dataset file, or of several files of one
    composite (their samples in the order of the files).

    Several files must share the phase laws, the cell shape and the field sampling
    (directions, magnitudes, range, spacing) and hold no sample twice (the same SVE seed); the
    result's ``base.path`` and ``base.attrs`` are the first file's, ``base.index`` the rows in
    each sample's own file.

    Raises
    ------
    InputError
        Not a nonlinear dataset (no ``field`` labels), unreadable, or no sample done; files
        that do not fit together.
    """
    if isinstance(path, str | os.PathLike):
        return _load_nl_file(path)
    parts = [_load_nl_file(p) for p in path]
    if not parts:
        raise InputError("no nonlinear dataset file given")
    first = parts[0]
    keys = ("n_directions", "n_magnitudes", "max_field", "spacing")
    seen: dict[int, Path] = {}
    for part in parts:
        here = part.base.path
        if part.base.images.shape[1:] != first.base.images.shape[1:]:
            raise InputError(
                f"{here}: cells of {part.base.images.shape[1:]} pixels, "
                f"{first.base.path} has {first.base.images.shape[1:]}"
            )
        for k in ("matrix_law", "inclusion_law", *keys):
            if part.base.attrs.get(k) != first.base.attrs.get(k):
                raise InputError(
                    f"{here}: {k} {part.base.attrs.get(k)!r} differs from "
                    f"{first.base.path}'s {first.base.attrs.get(k)!r}"
                )
        for seed in part.base.seeds.tolist():
            if seed in seen:
                raise InputError(f"{here} repeats samples of {seen[seed]} (the same SVE seeds)")
            seen[seed] = here
    if len(parts) == 1:
        return first

    def cat(get):
        return np.concatenate([get(p) for p in parts])

    base = dataclasses.replace(
        first.base,
        **{
            name: cat(lambda p, name=name: getattr(p.base, name))
            for name in ("images", "mu_eff", "volume_fraction", "target_volume_fraction",
                         "seeds", "index", "iterations", "solve_seconds")
        },
    )  # fmt: skip
    arrays = {name: cat(lambda p, name=name: getattr(p, name)) for name in _EXTRA}
    return NLDataset(base=base, laws=first.laws, **arrays)


def _load_nl_file(path: str | os.PathLike) -> NLDataset:
    base = load_dataset(path)
    path = Path(path)
    with _open_h5(path, "r") as f:
        missing = [name for name in _EXTRA if name not in f]
        if missing:
            raise InputError(f"{path} is not a nonlinear dataset (arrays {missing} missing)")
        arrays = {name: np.asarray(f[name][...])[base.index] for name in _EXTRA}
    laws = tuple(law_from_dict(base.attrs[k]) for k in ("matrix_law", "inclusion_law"))
    return NLDataset(base=base, laws=laws, **arrays)
