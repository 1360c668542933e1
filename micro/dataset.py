"""Labelled datasets: random SVEs of one class homogenized with DOLFINx, in one HDF5 file.

:func:`generate_dataset` fills the file of ``docs/ARCHITECTURE.md`` (layout and crash safety in
:mod:`micro.dataset_io`); :func:`load_dataset` reads its finished samples back.

Reproducibility
---------------
Sample ``i`` depends only on ``base_seed`` and ``i``: ``seed[i]`` is child ``i`` of
``SeedSequence(base_seed).spawn`` (:func:`micro.generate.spawn_seeds`), and
``rng = np.random.default_rng(seed[i])`` first draws the target volume fraction uniformly in
``vf_range``, then generates the SVE (:func:`micro.generate.generate_sve` with that ``rng`` and
the window :func:`vf_tolerance`, +-0.005 unless one inclusion is a large share of the cell,
called again with the same, advanced ``rng`` if the random sequential addition misses the target,
up to 5 times). The file therefore does not depend on the number of ranks or on restarts.

Resume
------
A sample is finished when its image and label are written and ``done[i]`` is flushed after
them. Run the same call again after a kill: finished samples are kept and not recomputed, the
others are done. Other parameters than the file's raise :class:`InputError` naming them.

Parallel runs
-------------
Under ``mpirun -n K`` (``comm`` = ``COMM_WORLD`` by default) the not-done indices are dealt
round-robin over the ranks; each rank generates and homogenizes its samples on ``COMM_SELF``.
Rank 0 owns the file (Debian's h5py is serial): it computes its own share and, between its own
samples, writes the samples the other ranks send it (:mod:`micro.dataset_parallel`). A kill of
any rank loses only the samples in flight or in transit; the rest is on disk, and the file is
the same as a serial run's.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from magnetohom.errors import InputError, SolverError
from micro.dataset_io import Dataset, DatasetFile, DatasetSpec, load_dataset
from micro.dataset_parallel import Progress, run_worker, run_writer
from micro.generate import (
    DEFAULT_RADIUS,
    SVE,
    generate_sve,
    max_volume_fraction,
    spawn_seeds,
    sve_shape,
)
from micro.validate import check_contrast, check_dim, check_mu, compact_size, format_size

__all__ = [
    "Dataset",
    "DatasetSummary",
    "default_vf_range",
    "generate_dataset",
    "load_dataset",
    "run_dataset",
    "sample_rng",
    "vf_tolerance",
]

log = logging.getLogger(__name__)

_GENERATE_TRIES = 5
_VF_DEFAULT = (0.05, 0.6)
#: Volume-fraction window of the samples: +-0.005 of the target (generate_sve's default), or
#: 0.6 of the share of the smallest inclusion in the cell where that is wider (a non-overlapping
#: class's pixel fractions come in steps of about that share), at most _VF_TOL_MAX.
_VF_TOL = 0.005
_VF_TOL_MAX = 0.03


@dataclass(frozen=True)
class DatasetSummary:
    """What a :func:`generate_dataset` call did.

    Attributes
    ----------
    path : Path
    n_samples : int
        Samples in the file.
    n_done : int
        Finished samples in the file after this call.
    n_new : int
        Samples finished by this call.
    seconds : float
        Wall time of this call (set-up included), seconds.
    seconds_per_sample : float
        ``seconds / n_new`` (all ranks together: the throughput); NaN when nothing was new.
    ranks : int
        MPI ranks that worked on it.
    """

    path: Path
    n_samples: int
    n_done: int
    n_new: int
    seconds: float
    seconds_per_sample: float
    ranks: int


def default_vf_range(
    dim: int = 2,
    *,
    overlap: bool = False,
    polydisperse: bool = False,
    radius_range: tuple[float, float] | None = None,
):
    """The default target range: ``(0.05, 0.6)`` capped at what the generator reaches.

    Returns
    -------
    (float, float)
        ``(0.05, min(0.6, micro.generate.max_volume_fraction(dim, ...)))``; the limit of a
        polydisperse class depends on its ``radius_range``.
    """
    limit = max_volume_fraction(
        dim, overlap=overlap, polydisperse=polydisperse, radius_range=radius_range
    )
    return (_VF_DEFAULT[0], min(_VF_DEFAULT[1], limit))


def sample_rng(seed: int, vf_range: tuple[float, float]) -> tuple[np.random.Generator, float]:
    """The generator of one sample and its target volume fraction (its first draw).

    Parameters
    ----------
    seed : int
        The sample's seed (``seed[i]`` of the file).
    vf_range : (float, float)

    Returns
    -------
    rng : numpy.random.Generator
        Advanced past the target draw; pass it to :func:`micro.generate.generate_sve`.
    target : float
    """
    rng = np.random.default_rng(int(seed))
    return rng, float(rng.uniform(vf_range[0], vf_range[1]))


def vf_tolerance(dim: int, size: int | tuple[int, ...], rmin: float) -> float:
    """The ``tol`` of :func:`micro.generate.generate_sve` for the samples of a dataset.

    With inclusions of radius ``rmin`` on ``N`` pixels (``size**dim``, or ``n1 n2 [n3]``),
    adding one changes the fraction by about its share ``s = ball(rmin) / N`` (201 px of 128^2
    for r = 8: 0.0123). A window of ``+-0.005`` misses every target between two steps whatever
    the seed, so the window is ``max(0.005, 0.6 s)``: every target is reachable.

    Parameters
    ----------
    dim : {2, 3}
    size : int or tuple of int
        Pixels per side, or the shape ``(n1, n2[, n3])`` of a rectangular cell.
    rmin : float
        Smallest radius, pixels.

    Returns
    -------
    float

    Raises
    ------
    InputError
        One inclusion is so large a share of the cell that the window would exceed
        +-0.03: such a cell cannot hold samples near their targets.
    """
    ball = math.pi * rmin**2 if dim == 2 else 4.0 / 3.0 * math.pi * rmin**3
    square = isinstance(size, int | np.integer)
    share = ball / (float(size) ** dim if square else float(math.prod(size)))
    tol = max(_VF_TOL, 0.6 * share)
    if tol > _VF_TOL_MAX:
        kind = "disk" if dim == 2 else "sphere"
        least = ball * 0.6 / _VF_TOL_MAX
        cell, bigger = (
            (f"{size} pixels per side", f"size of at least {math.ceil(least ** (1 / dim))}")
            if square
            else (f"{format_size(size)} pixels", f"cell of at least {math.ceil(least)} pixels")
        )
        raise InputError(
            f"one {kind} of radius {rmin:g} is {share:.3f} of a cell of {cell}: volume "
            f"fractions come in steps of about that, too coarse for a dataset; use a {bigger} "
            "or a smaller radius"
        )
    return tol


class _Sampler:
    """Makes and labels sample ``i`` (one per rank; the Homogenizer is built on first use)."""

    def __init__(self, opts: dict[str, Any], seeds: np.ndarray) -> None:
        self.opts, self.seeds = opts, seeds
        self._hom = None

    def sve(self, i: int) -> SVE:
        o = self.opts
        rng, target = sample_rng(self.seeds[i], o["vf_range"])
        for attempt in range(_GENERATE_TRIES):
            try:
                return generate_sve(
                    dim=o["dim"],
                    size=o["size"],
                    volume_fraction=target,
                    radius=o["radius"],
                    radius_range=o["radius_range"],
                    overlap=o["overlap"],
                    rng=rng,
                    tol=o["vf_tol"],
                )
            except InputError as exc:
                if "not reached" not in str(exc) or attempt == _GENERATE_TRIES - 1:
                    raise
                log.debug("sample %d: %s; drawing again", i, exc)
        raise AssertionError("unreachable")

    def label(self, i: int, sve: SVE | None = None) -> tuple:
        """``("ok", i, image uint8, mu_eff (d,d), iterations (d,), seconds, vf)``: the message
        format of :mod:`micro.dataset_parallel`."""
        from micro.homogenization import Homogenizer

        sve = self.sve(i) if sve is None else sve
        image = np.asarray(sve.image, dtype=bool)
        if self._hom is None:
            self._hom = Homogenizer(image.shape, rtol=self.opts["rtol"])
        res = self._hom(
            image[None], mu_matrix=self.opts["mu_matrix"], mu_inclusion=self.opts["mu_inclusion"]
        )
        out = (image.astype(np.uint8), res.mu_eff[0], res.iterations[0], float(res.seconds[0]))
        return ("ok", int(i), *out, float(image.mean()))


def _default_rtol() -> float:
    from micro.homogenization import Homogenizer

    return float(inspect.signature(Homogenizer).parameters["rtol"].default)


def _check_options(**o: Any) -> dict[str, Any]:
    n = o["n_samples"]
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InputError(f"n_samples must be an integer >= 1: got {n!r}")
    o["dim"] = check_dim(o["dim"])
    o["overlap"] = bool(o["overlap"])
    cls = {
        "overlap": o["overlap"],
        "polydisperse": o["radius_range"] is not None,
        "radius_range": None if o["radius_range"] is None else tuple(o["radius_range"]),
    }
    limit = max_volume_fraction(o["dim"], **cls)
    if o["vf_range"] is None:
        o["vf_range"] = default_vf_range(o["dim"], **cls)
    try:
        lo, hi = (float(v) for v in o["vf_range"])
    except (TypeError, ValueError):
        raise InputError(f"vf_range must be (min, max): got {o['vf_range']!r}") from None
    if not 0.0 < lo <= hi < 1.0:
        raise InputError(f"vf_range must satisfy 0 < min <= max < 1: got {o['vf_range']!r}")
    if hi > limit:
        raise InputError(
            f"vf_range max {hi:g} is above the largest volume fraction the generator reaches "
            f"for this class ({limit:g})"
        )
    o["vf_range"] = (lo, hi)
    o["mu_matrix"], o["mu_inclusion"] = check_mu(o["mu_matrix"], o["mu_inclusion"])
    check_contrast(o["mu_matrix"], o["mu_inclusion"])
    seed = o["base_seed"]
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"base_seed must be an integer >= 0: got {seed!r}")
    o["rtol"] = _default_rtol() if o["rtol"] is None else float(o["rtol"])
    if not 0.0 < o["rtol"] < 1.0:
        raise InputError(f"rtol must be in (0, 1): got {o['rtol']!r}")
    if int(o["log_every"]) < 1:
        raise InputError(f"log_every must be >= 1: got {o['log_every']!r}")
    shape = sve_shape(o["dim"], o["size"])
    # the file's resolution: pixels per side of a square (cubic) cell, else its shape
    o["resolution"] = compact_size(shape)
    if o["radius"] is not None and o["radius_range"] is not None:
        raise InputError("give either radius or radius_range, not both")
    radius, rr = o["radius"], o["radius_range"]
    try:
        o["radius"] = None if radius is None else float(radius)
        o["radius_range"] = None if rr is None else tuple(float(r) for r in rr)
        if o["radius_range"] is not None and len(o["radius_range"]) != 2:
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(
            f"radius must be a number and radius_range (rmin, rmax): got {radius!r}, {rr!r}"
        ) from None
    rmin = (
        o["radius_range"][0]
        if o["radius_range"] is not None
        else DEFAULT_RADIUS[o["dim"]]
        if o["radius"] is None
        else o["radius"]
    )
    if 0 < 2 * rmin < min(shape):  # else generate_sve names the bad value
        o["vf_tol"] = vf_tolerance(o["dim"], o["resolution"], rmin)
    else:
        o["vf_tol"] = _VF_TOL
    return o


def _spec_fields(opts: dict[str, Any]) -> dict[str, Any]:
    """The :class:`DatasetSpec` fields of a dataset's options (shared with its subclasses)."""
    return {
        "n_samples": int(opts["n_samples"]),
        "dim": opts["dim"],
        "resolution": opts["resolution"],
        "geometry": _geometry(opts),
        "vf_range": opts["vf_range"],
        "base_seed": int(opts["base_seed"]),
        "mu_matrix": opts["mu_matrix"],
        "mu_inclusion": opts["mu_inclusion"],
        "solver_rtol": opts["rtol"],
    }


def _geometry(o: dict[str, Any]) -> dict[str, Any]:
    """The ``geometry`` attribute: class name, radius or radius_range (pixels), overlap."""
    poly = o["radius_range"] is not None
    radius = (
        None if poly else float(DEFAULT_RADIUS[o["dim"]] if o["radius"] is None else o["radius"])
    )
    return {
        "class": " ".join(
            (
                "overlapping" if o["overlap"] else "non-overlapping",
                "polydisperse" if poly else "monodisperse",
                "disks" if o["dim"] == 2 else "spheres",
            )
        ),
        "radius": radius,
        "radius_range": [float(r) for r in o["radius_range"]] if poly else None,
        "overlap": o["overlap"],
    }


def _open(path: Path, opts: dict[str, Any], sampler: _Sampler) -> tuple[DatasetFile, SVE | None]:
    """Rank 0: reopen the file (checking its parameters) or create it.

    Before creating, sample 0 is generated as a dry run (it validates the generator options,
    so no file is left behind by a bad call); it is returned for reuse, else None.
    """
    spec = DatasetSpec(**_spec_fields(opts))
    first = None
    if not path.exists():
        first = sampler.sve(0)
        if first.image.shape != spec.shape:
            raise RuntimeError(f"generator made shape {first.image.shape}, not {spec.shape}")
    targets = np.array([sample_rng(s, opts["vf_range"])[1] for s in sampler.seeds])
    writer = DatasetFile.open(path, spec, seeds=sampler.seeds, target_volume_fraction=targets)
    return writer, first


def generate_dataset(
    path: str | os.PathLike,
    *,
    n_samples: int,
    dim: int = 2,
    size: int | tuple[int, ...] | None = None,
    radius: float | None = None,
    radius_range: tuple[float, float] | None = None,
    overlap: bool = False,
    vf_range: tuple[float, float] | None = None,
    base_seed: int = 0,
    mu_matrix: float = 1.0,
    mu_inclusion: float = 250.0,
    rtol: float | None = None,
    comm=None,
    progress: bool | None = None,
    log_every: int = 10,
) -> DatasetSummary:
    """Generate (or resume) a labelled dataset of ``n_samples`` SVEs of one class.

    Parameters
    ----------
    path : path-like
        HDF5 file; created, or resumed if it exists (with the same parameters).
    n_samples : int
    dim : {2, 3}
    size : int or tuple of int, optional
        Pixels per side (generator default: 256 in 2D, 101 in 3D), or the shape
        ``(n1, n2[, n3])`` of rectangular periodic cells (square pixels); the file keeps it
        (``resolution`` attribute: the int, or the shape).
    radius : float, optional
        Monodisperse radius, pixels (generator default: 8 in 2D, 5 in 3D).
    radius_range : (float, float), optional
        Polydisperse radii, pixels.
    overlap : bool
        Overlapping inclusions.
    vf_range : (float, float), optional
        Target volume fractions are uniform in this range; default ``(0.05, 0.6)`` capped at
        :func:`micro.generate.max_volume_fraction` of the class.
    base_seed : int
        Non-negative; sample ``i`` depends only on it and ``i``.
    mu_matrix, mu_inclusion : float
        Relative permeabilities of the phases.
    rtol : float, optional
        CG tolerance of the labels (default: the :class:`micro.homogenization.Homogenizer` one).
    comm : mpi4py communicator, optional
        Ranks that share the samples (default ``MPI.COMM_WORLD``; one rank when not under
        ``mpirun``). Every rank must call this function with the same arguments.
    progress : bool, optional
        tqdm bar on rank 0; default: when stderr is a terminal.
    log_every : int
        An INFO log line every this many finished samples.

    Returns
    -------
    DatasetSummary
        The same on every rank.

    Raises
    ------
    InputError
        Bad options, an unreadable file or one made with other parameters, or samples whose
        SVE cannot be generated (those stay unfinished; the others are written).
    SolverError
        Samples whose homogenization failed (they stay unfinished; the others are written).
    """
    from mpi4py import MPI

    t0 = time.perf_counter()
    comm = MPI.COMM_WORLD if comm is None else comm
    path = Path(path)
    opts = _check_options(
        n_samples=n_samples,
        dim=dim,
        size=size,
        radius=radius,
        radius_range=radius_range,
        overlap=overlap,
        vf_range=vf_range,
        base_seed=base_seed,
        mu_matrix=mu_matrix,
        mu_inclusion=mu_inclusion,
        rtol=rtol,
        log_every=log_every,
    )
    sampler = _Sampler(opts, spawn_seeds(int(base_seed), int(n_samples)))
    return run_dataset(path, opts, sampler, _open, comm=comm, progress=progress, t0=t0)


def run_dataset(path: Path, opts: dict[str, Any], sampler, open_file, *, comm, progress, t0):
    """Create or resume ``path`` and label its unfinished samples on the ranks of ``comm``.

    The driver shared by :func:`generate_dataset` and :func:`micro.dataset_nl.
    generate_nl_dataset`: ``open_file(path, opts, sampler) -> (writer, first SVE or None)``
    on rank 0, ``sampler.label(i, sve=None)`` -> the message of :mod:`micro.dataset_parallel`.
    ``opts`` needs ``n_samples`` and ``log_every``.
    """
    n_samples, log_every = int(opts["n_samples"]), int(opts["log_every"])
    writer = first = todo = None
    error: BaseException | None = None
    if comm.rank == 0:
        try:
            writer, first = open_file(path, opts, sampler)
            todo = np.flatnonzero(~writer.done)
        except Exception as exc:
            error = exc
    if comm.size > 1:
        todo, shared_error = comm.bcast((todo, error), root=0)
        error = error or shared_error
    if error is not None:
        raise error
    mine = todo[comm.rank :: comm.size]
    n_before = int(sampler.seeds.size - todo.size)
    result: Any = None
    if comm.rank == 0:
        bar = Progress(path, int(n_samples), n_before, todo.size, show=progress, every=log_every)

        def label(i: int) -> tuple:
            return sampler.label(i, first if i == 0 else None)

        try:
            with writer:
                failures = run_writer(comm, writer, label, mine, todo.size, bar)
                writer.update_statistics(ranks=comm.size)
                n_done = int(writer.done.sum())
        except BaseException:
            if comm.size > 1:
                log.critical("rank 0 failed while writing %s; aborting all ranks", path)
                comm.Abort(1)
            raise
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        n_new = n_done - n_before
        result = DatasetSummary(
            path=path,
            n_samples=int(n_samples),
            n_done=n_done,
            n_new=n_new,
            seconds=seconds,
            seconds_per_sample=seconds / n_new if n_new else math.nan,
            ranks=comm.size,
        )
        log.info("dataset %s: %s", path, result)
        if failures:
            failures.sort()
            i, is_input, text = failures[0]
            kind = InputError if all(f[1] for f in failures) else SolverError
            result = kind(
                f"{len(failures)} of {todo.size} samples failed and stay unfinished "
                f"({n_new} new written; rerun to retry); first: sample {i}: {text}"
            )
    else:
        run_worker(comm, sampler.label, mine)
    if comm.size > 1:
        result = comm.bcast(result, root=0)
    if isinstance(result, BaseException):
        raise result
    return result
