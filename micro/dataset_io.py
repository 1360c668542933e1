"""The HDF5 dataset file: creating it, checking it on resume, writing samples, reading it back.

The schema is the one of ``docs/ARCHITECTURE.md`` (``format = "magnetohom-dataset"``, version 1):
``images`` (uint8, one gzip chunk per sample), ``mu_eff``, ``volume_fraction``,
``target_volume_fraction``, ``seed``, ``done``, ``iterations`` and ``solve_seconds``, plus the
attributes that define the dataset (:class:`DatasetSpec`) and, after each run, solver statistics.

Crash safety (a writer may be SIGKILLed at any moment):

* a new file is built under a temporary name and renamed into place, so ``path`` is either
  absent or a complete skeleton;
* every per-sample array except ``images`` is contiguous and fully written at creation, so
  later writes overwrite bytes in place and never touch HDF5 metadata;
* a sample is written as image and labels, ``flush``, then ``done[i] = True``, ``flush``: a
  kill loses at most the sample in flight, never marks an unfinished sample as done.

Corruption: the image chunks carry HDF5's fletcher32 checksum and every row a CRC-32 of its
image and labels (``checksum``; files made since issue 23), and every finished row is verified
when a file is resumed or read (checksums; image decodes, is binary and matches its volume
fraction; label finite, symmetric, within the Wiener bounds).
A resume recomputes the rows that fail; :func:`load_dataset` refuses them.

Only one process may write a file (HDF5 file locking refuses a second one); in MPI runs rank 0
owns it (see :mod:`micro.dataset`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from magnetohom import __version__
from magnetohom.errors import InputError, os_reason

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Dataset",
    "DatasetFile",
    "DatasetSpec",
    "load_dataset",
]

log = logging.getLogger(__name__)

FORMAT = "magnetohom-dataset"
FORMAT_VERSION = 1
_SOLVER = "DOLFINx Q1 periodic homogenization, CG + BoomerAMG (micro.homogenization)"
_ARRAYS = (
    "images",
    "mu_eff",
    "volume_fraction",
    "target_volume_fraction",
    "seed",
    "done",
    "iterations",
    "solve_seconds",
)


@dataclass(frozen=True)
class DatasetSpec:
    """What defines a dataset file; a resume must ask for exactly the same.

    Attributes
    ----------
    n_samples : int
    dim : int
        2 or 3.
    resolution : int or tuple of int
        Pixels per side of every image (square or cubic cells), or the shape
        ``(n1, n2[, n3])`` of rectangular ones (stored as an integer array attribute).
    geometry : dict
        JSON-able description of the SVE class (``class``, ``radius``, ``radius_range``,
        ``overlap``).
    vf_range : tuple of float
        Target volume fractions are uniform in ``[vf_range[0], vf_range[1]]``.
    base_seed : int
    mu_matrix, mu_inclusion : float
        Relative permeabilities of the phases.
    solver_rtol : float
        Relative CG tolerance of the labels.
    """

    n_samples: int
    dim: int
    resolution: int | tuple[int, ...]
    geometry: dict
    vf_range: tuple[float, float]
    base_seed: int
    mu_matrix: float
    mu_inclusion: float
    solver_rtol: float

    @property
    def shape(self) -> tuple[int, ...]:
        """The image shape ``(n1, n2[, n3])`` of every sample."""
        if isinstance(self.resolution, int | np.integer):
            return (int(self.resolution),) * int(self.dim)
        return tuple(int(v) for v in self.resolution)

    def attrs(self) -> dict[str, Any]:
        """The HDF5 attributes of a new file with this spec."""
        out = asdict(self)
        out["geometry"] = json.dumps(self.geometry, sort_keys=True)
        out["vf_range"] = np.asarray(self.vf_range, dtype=np.float64)
        out.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            magnetohom_version=__version__,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            solver=_SOLVER,
        )
        return out

    def mismatches(self, attrs: Any) -> list[str]:
        """``"name stored (asked value)"`` for every field that differs from ``attrs``."""
        out = []
        for name, asked in asdict(self).items():
            asked = list(asked) if isinstance(asked, tuple) else asked
            if name not in attrs:
                out.append(f"{name} missing (asked {asked})")
                continue
            stored = _decode(attrs[name])
            if name == "geometry":
                stored = stored if isinstance(stored, dict) else {}
                for key in sorted(set(stored) | set(asked)):
                    if _norm(stored.get(key)) != _norm(asked.get(key)):
                        out.append(f"{key} {stored.get(key)} (asked {asked.get(key)})")
            elif _norm(stored) != _norm(asked):
                out.append(f"{name} {stored} (asked {asked})")
        return out


def _norm(value: Any) -> Any:
    """Comparable form of an attribute value: tuples/arrays as lists, numbers as float."""
    if isinstance(value, np.ndarray | list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, bool | np.bool_) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | np.number):
        return float(value)
    return value


def _decode(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (JSON strings parsed)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _open_h5(path: Path, mode: str) -> h5py.File:
    """``h5py.File(path, mode)``; every failure as an :class:`InputError` that names its cause."""
    if path.is_dir():
        raise InputError(f"dataset {path} is a directory, not a file")
    try:
        return h5py.File(path, mode)
    except OSError as exc:
        text = str(exc)
        if "errno = 13" in text or "errno = 30" in text or isinstance(exc, PermissionError):
            how = "for writing" if mode != "r" else "for reading"
            raise InputError(
                f"dataset {path} cannot be opened {how}: permission denied or read-only "
                "file system"
            ) from None
        if "truncated file" in text:
            raise InputError(
                f"dataset {path} is truncated ({path.stat().st_size} bytes; an interrupted "
                "copy?): move it away to start a new one"
            ) from None
        if "unable to lock file" in text or "errno = 11" in text:
            raise InputError(f"dataset {path} is open in another process ({text})") from None
        raise InputError(
            f"dataset {path} is unreadable: corrupt or not an HDF5 file ({text}); "
            "move it away to start a new one"
        ) from None


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn what HDF5 raises on a damaged file (anywhere: metadata, attributes, chunks) into
    ``InputError("dataset PATH is damaged: ...")``; our own InputErrors pass unchanged."""
    try:
        yield
    except InputError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise InputError(
            f"dataset {path} is damaged: {_first_line(exc)}; move it away to start a new one"
        ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _row_crc(
    image: np.ndarray, mu: np.ndarray, vf: float, iterations: np.ndarray, seconds: float
) -> int:
    """CRC-32 of one finished row as stored (image uint8, mu_eff, vf, iterations, seconds)."""
    crc = zlib.crc32(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
    crc = zlib.crc32(np.ascontiguousarray(mu, dtype=np.float64).tobytes(), crc)
    crc = zlib.crc32(np.float64(vf).tobytes(), crc)
    crc = zlib.crc32(np.ascontiguousarray(iterations, dtype=np.int32).tobytes(), crc)
    return zlib.crc32(np.float64(seconds).tobytes(), crc)


def _row_problem(
    images: h5py.Dataset, row: int, mu: np.ndarray, vf: float, mu_m: float, mu_i: float
) -> tuple[str | None, np.ndarray | None]:
    """Why finished row ``row`` cannot be trusted (None if it can), and its image.

    The image must decode (gzip, and the fletcher32 checksum of files made since it was
    added), hold only 0/1 and match the stored volume fraction; the label must be finite,
    symmetric and, like any homogenized tensor, have its eigenvalues within the Wiener bounds
    (harmonic and arithmetic means of the pixels' permeabilities).
    """
    try:
        image = images[row]
    except (OSError, ValueError, RuntimeError) as exc:
        return f"image unreadable ({_first_line(exc)})", None
    if image.size and int(image.max()) > 1:
        return "image holds values other than 0 and 1", None
    f = float(np.count_nonzero(image)) / image.size
    if not math.isfinite(vf) or abs(f - vf) > 1e-9:
        return f"image ({f:.6f}) does not match its stored volume fraction ({vf:.6g})", None
    if not np.all(np.isfinite(mu)):
        return "label mu_eff is not finite", None
    scale = float(np.abs(mu).max())
    if float(np.abs(mu - mu.T).max()) > 1e-8 * scale:
        return "label mu_eff is not symmetric", None
    ev = np.linalg.eigvalsh(mu)
    lower = 1.0 / (f / mu_i + (1.0 - f) / mu_m)
    upper = f * mu_i + (1.0 - f) * mu_m
    if ev.min() < lower * (1 - 1e-6) or ev.max() > upper * (1 + 1e-6):
        return (
            f"label mu_eff (eigenvalues {ev.min():.6g} .. {ev.max():.6g}) outside the Wiener "
            f"bounds [{lower:.6g}, {upper:.6g}]"
        ), None
    return None, image


def _verify_rows(
    f: h5py.File, rows: np.ndarray, *, keep: bool = False
) -> tuple[dict[int, str], np.ndarray | None]:
    """Check finished rows (:func:`_row_problem`): ``{row: reason}`` of the bad ones and, with
    ``keep``, the images of all rows (uint8, bad rows zero)."""
    mu_m = float(_decode(f.attrs.get("mu_matrix", math.nan)))
    mu_i = float(_decode(f.attrs.get("mu_inclusion", math.nan)))
    images = f["images"]
    mu = np.asarray(f["mu_eff"][...])
    vf = np.asarray(f["volume_fraction"][...])
    crc = np.asarray(f["checksum"][...]) if "checksum" in f else None  # files since issue 23
    its = np.asarray(f["iterations"][...])
    secs = np.asarray(f["solve_seconds"][...])
    out = np.zeros((rows.size, *images.shape[1:]), dtype=np.uint8) if keep else None
    bad: dict[int, str] = {}
    for k, row in enumerate(rows.tolist()):
        reason, image = _row_problem(images, row, mu[row], float(vf[row]), mu_m, mu_i)
        if reason is None and crc is not None:
            if _row_crc(image, mu[row], vf[row], its[row], secs[row]) != int(crc[row]):
                reason = "row checksum mismatch (image or labels changed on disk)"
        if reason is not None:
            bad[row] = reason
        elif out is not None:
            out[k] = image
    return bad, out


def _describe(bad: dict[int, str], n_done: int) -> str:
    first = min(bad)
    return f"{len(bad)} of {n_done} finished samples fail verification (first: row {first}: " + (
        f"{bad[first]})"
    )


def _check_layout(f: h5py.File, path: Path) -> tuple[int, int]:
    """Format attributes and array shapes; returns ``(n_samples, dim)``."""
    fmt = _decode(f.attrs.get("format", ""))
    if fmt != FORMAT:
        raise InputError(f"{path} is not a magnetohom dataset (format attribute {fmt!r})")
    version = _decode(f.attrs.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise InputError(f"dataset {path} has format_version {version}, expected {FORMAT_VERSION}")
    missing = [name for name in _ARRAYS if name not in f]
    if missing:
        raise InputError(f"dataset {path} is damaged: arrays {missing} missing")
    n, *shape = f["images"].shape
    dim = len(shape)
    expected = {
        "mu_eff": (n, dim, dim),
        "volume_fraction": (n,),
        "target_volume_fraction": (n,),
        "seed": (n,),
        "done": (n,),
        "iterations": (n, dim),
        "solve_seconds": (n,),
    }
    for name, want in expected.items():
        if f[name].shape != want:
            raise InputError(
                f"dataset {path} is damaged: {name} has shape {f[name].shape}, expected {want}"
            )
    return n, dim


class DatasetFile:
    """A dataset file open for writing samples (one writer process).

    Use :meth:`open`, which creates the file or checks that an existing one was made with the
    same :class:`DatasetSpec`; then :meth:`write_sample` per finished sample and
    :meth:`close` (or a ``with`` block).

    Attributes
    ----------
    path : Path
    spec : DatasetSpec
    done : ndarray, shape (n_samples,), bool
        Finished samples (kept in step with the file by :meth:`write_sample`).
    """

    def __init__(
        self, path: Path, f: h5py.File | None, spec: DatasetSpec, done: np.ndarray
    ) -> None:
        self.path, self.spec, self.done = path, spec, done
        self._f = f

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        spec: DatasetSpec,
        *,
        seeds: np.ndarray,
        target_volume_fraction: np.ndarray,
    ) -> DatasetFile:
        """Create ``path`` for ``spec`` or reopen it to resume.

        Parameters
        ----------
        path : path-like
        spec : DatasetSpec
        seeds : ndarray, shape (n_samples,), int64
            Per-sample seeds (:func:`micro.generate.spawn_seeds`); checked on resume.
        target_volume_fraction : ndarray, shape (n_samples,), float64

        Finished rows of an existing file are verified (image checksum and decoding, image vs
        volume fraction, label finite and within the Wiener bounds); rows that fail are marked
        unfinished (a warning names them) and so recomputed. A finished, verified file is only
        read (so it may be read-only).

        Raises
        ------
        InputError
            The file exists but is unreadable, truncated, locked, not a dataset, not writable
            when there is work to do, or was made with other parameters (the message names
            each difference).
        """
        path = Path(path)
        if not path.exists() and not path.is_symlink():
            cls._create(path, spec, seeds, target_volume_fraction)
            return cls(path, _open_h5(path, "r+"), spec, np.zeros(spec.n_samples, dtype=bool))
        with (
            _open_h5(path, "r") as f,
            _reading(path),
        ):  # read-only: a finished file needs no writing
            _check_layout(f, path)
            diff = spec.mismatches(f.attrs)
            if diff:
                raise InputError(
                    f"dataset {path} was made with other parameters: {', '.join(diff)}; "
                    "resume with the same ones or write a new file"
                )
            if not np.array_equal(f["seed"][...], seeds):
                raise InputError(f"dataset {path} holds other per-sample seeds than base_seed")
            done = np.asarray(f["done"][...], dtype=bool)
            bad, _ = _verify_rows(f, np.flatnonzero(done))
        log.info("dataset %s: %d of %d samples done", path, done.sum(), done.size)
        if done.all() and not bad:
            return cls(path, None, spec, done)
        f = _open_h5(path, "r+")
        if bad:
            log.warning("dataset %s: %s; recomputing them", path, _describe(bad, int(done.sum())))
            rows = np.array(sorted(bad))
            done[rows] = False
            f["done"][rows] = False
            f.flush()
        return cls(path, f, spec, done)

    @classmethod
    def _create(cls, path: Path, spec: DatasetSpec, seeds: np.ndarray, targets: np.ndarray) -> None:
        n, d, shape = spec.n_samples, spec.dim, spec.shape
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create dataset {path}: {os_reason(exc)}") from None
        try:
            try:
                f = h5py.File(tmp, "w")
            except OSError as exc:
                raise InputError(f"cannot create dataset {path}: {os_reason(exc)}") from None
            with f:
                f.create_dataset(
                    "images",
                    shape=(n, *shape),
                    dtype=np.uint8,
                    chunks=(1, *shape),
                    compression="gzip",
                    compression_opts=4,
                    shuffle=True,
                    fletcher32=True,  # a checksum per chunk: corruption is detected on read
                    fillvalue=0,
                )
                # contiguous and written in full now: later writes are in place
                f.create_dataset("mu_eff", data=np.full((n, d, d), np.nan))
                f.create_dataset("volume_fraction", data=np.full(n, np.nan))
                f.create_dataset("target_volume_fraction", data=np.asarray(targets, np.float64))
                f.create_dataset("seed", data=np.asarray(seeds, np.int64))
                f.create_dataset("done", data=np.zeros(n, dtype=bool))
                f.create_dataset("iterations", data=np.zeros((n, d), dtype=np.int32))
                f.create_dataset("solve_seconds", data=np.full(n, np.nan))
                f.create_dataset("checksum", data=np.zeros(n, dtype=np.uint32))
                cls._create_extra(f, spec)
                f.attrs.update(spec.attrs())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("dataset %s: created for %d samples of %s", path, n, shape)

    @staticmethod
    def _create_extra(f: h5py.File, spec: DatasetSpec) -> None:
        """Hook for files with more labels (:mod:`micro.dataset_nl`): create their arrays,
        contiguous and written in full, in the temporary file before it is renamed."""

    def write_sample(
        self,
        index: int,
        *,
        image: np.ndarray,
        mu_eff: np.ndarray,
        iterations: np.ndarray,
        seconds: float,
        volume_fraction: float,
    ) -> None:
        """Write one finished sample and mark it done (two flushes, in that order).

        Parameters
        ----------
        index : int
        image : ndarray, shape (n1, n2[, n3]), bool or 0/1
        mu_eff : ndarray, shape (d, d), float64
        iterations : ndarray, shape (d,), int
        seconds : float
            Wall time of the label.
        volume_fraction : float
            Measured on the pixels.
        """
        f = self._f
        if f is None:
            raise RuntimeError(f"dataset {self.path} is complete and was opened read-only")
        image = np.asarray(image, dtype=np.uint8)
        mu_eff = np.asarray(mu_eff, dtype=np.float64)
        iterations = np.asarray(iterations, dtype=np.int32)
        f["images"][index] = image
        f["mu_eff"][index] = mu_eff
        f["iterations"][index] = iterations
        f["solve_seconds"][index] = seconds
        f["volume_fraction"][index] = volume_fraction
        if "checksum" in f:
            f["checksum"][index] = _row_crc(image, mu_eff, volume_fraction, iterations, seconds)
        f.flush()
        f["done"][index] = True
        f.flush()
        self.done[index] = True

    def update_statistics(self, *, ranks: int) -> None:
        """Store solver statistics over the done samples as attributes."""
        f, done = self._f, self.done
        if f is None:  # opened read-only: finished and verified, nothing was written
            return
        attrs: dict[str, Any] = {"n_done": int(done.sum()), "ranks_last_run": int(ranks)}
        if done.any():
            seconds = f["solve_seconds"][...][done]
            its = f["iterations"][...][done]
            attrs.update(
                solve_seconds_total=float(seconds.sum()),
                solve_seconds_mean=float(seconds.mean()),
                solve_seconds_max=float(seconds.max()),
                iterations_mean=float(its.mean()),
                iterations_max=int(its.max()),
            )
        f.attrs.update(attrs)
        f.flush()

    def close(self) -> None:
        """Flush and close the file."""
        if self._f is not None and self._f.id.valid:
            self._f.close()

    def __enter__(self) -> DatasetFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Dataset:
    """The finished samples of a dataset file (:func:`load_dataset`).

    Attributes
    ----------
    path : Path
    images : ndarray, shape (M, n1, n2[, n3]), bool
        True = inclusion (rectangular cells keep their shape).
    mu_eff : ndarray, shape (M, d, d), float64
    volume_fraction : ndarray, shape (M,), float64
        Measured on the pixels.
    target_volume_fraction : ndarray, shape (M,), float64
    seeds : ndarray, shape (M,), int64
        ``np.random.default_rng(seeds[k])`` regenerates sample k.
    index : ndarray, shape (M,), int64
        Row of each sample in the file.
    iterations : ndarray, shape (M, d), int32
    solve_seconds : ndarray, shape (M,), float64
    attrs : dict
        File attributes as plain Python values (``geometry`` as a dict).
    """

    path: Path
    images: np.ndarray
    mu_eff: np.ndarray
    volume_fraction: np.ndarray
    target_volume_fraction: np.ndarray
    seeds: np.ndarray
    index: np.ndarray
    iterations: np.ndarray
    solve_seconds: np.ndarray
    attrs: dict

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def dim(self) -> int:
        return int(self.images.ndim - 1)

    @property
    def shape(self) -> tuple[int, ...]:
        """The image shape ``(n1, n2[, n3])`` of the file's samples."""
        return tuple(int(v) for v in self.images.shape[1:])

    @property
    def n_samples(self) -> int:
        """Samples in the file, finished or not."""
        return int(self.attrs["n_samples"])


def load_dataset(path: str | os.PathLike, *, require_labels: bool = True) -> Dataset:
    """Read the finished samples of a dataset file.

    Parameters
    ----------
    path : path-like
    require_labels : bool
        Raise when no sample is done (otherwise return empty arrays).

    Returns
    -------
    Dataset

    Raises
    ------
    FileNotFoundError
        No such file.
    InputError
        Unreadable, truncated, locked by a writer, not a dataset, damaged (a finished row whose
        image does not decode or match its volume fraction, or whose label is not finite or
        outside the Wiener bounds), or (``require_labels``) no labels.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    with _open_h5(path, "r") as f, _reading(path):
        _check_layout(f, path)
        done = np.asarray(f["done"][...], dtype=bool)
        idx = np.flatnonzero(done)
        if require_labels and idx.size == 0:
            raise InputError(f"dataset {path} has no labels (0 of {done.size} samples done)")
        arrays = {name: np.asarray(f[name][...])[idx] for name in _ARRAYS[1:] if name != "done"}
        bad, rows = _verify_rows(f, idx, keep=True)
        if bad:
            raise InputError(
                f"dataset {path} is damaged: {_describe(bad, idx.size)}; rerun 'magnetohom "
                "dataset' with its parameters to recompute them"
            )
        images = rows.astype(bool)
        attrs = {k: _decode(v) for k, v in f.attrs.items()}
    log.info("dataset %s: read %d of %d samples", path, idx.size, done.size)
    return Dataset(
        path=path,
        images=images,
        mu_eff=arrays["mu_eff"].astype(np.float64),
        volume_fraction=arrays["volume_fraction"].astype(np.float64),
        target_volume_fraction=arrays["target_volume_fraction"].astype(np.float64),
        seeds=arrays["seed"].astype(np.int64),
        index=idx.astype(np.int64),
        iterations=arrays["iterations"],
        solve_seconds=arrays["solve_seconds"].astype(np.float64),
        attrs=attrs,
    )
