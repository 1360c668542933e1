"""Training data: reading a dataset file, the train/validation/test split, targets and back.

The dataset file is the HDF5 file of ``docs/ARCHITECTURE.md`` (written by :mod:`micro.dataset`).
Only samples that are finished (``done``) and have finite labels are used; a file without any is
refused. :func:`load_labeled` reads it with :func:`micro.dataset_io.load_dataset` (imported on
first use, so importing this module stays light).

Split: a permutation of the labeled samples drawn from ``split_seed``, cut 70/15/15
(:func:`split_indices`); the seed and the held-out indices are stored in the model metadata, so
``evaluate`` reproduces the test set.

Targets (:class:`TargetTransform`):

* ``"log-mandel"`` (preset ``default``): the Mandel vector of ``logm(mu_eff)``, shape ``(N, m)``.
  A squared error on it is a squared *relative* error (``|d log mu| = |d mu| / mu``), so the loss
  weighs samples with ``mu ~ 2`` and ``mu ~ 200`` alike.
* ``"standardized-diagonal"`` (preset ``paper``): ``(mu_ii - mean_i) / std_i`` over the training
  split, shape ``(N, d)``; off-diagonal components are neither learned nor predicted (zero).

Augmentation acts on the *pre-target* tensor (``logm(mu)`` or ``mu``, shape ``(N, d, d)``), which
transforms as ``Q T Q^T``; :meth:`TargetTransform.targets_from_pre` then makes the vector.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from magnetohom.errors import InputError
from surrogate.tensors import (
    clip_eigenvalues,
    from_mandel,
    mandel,
    n_components,
    sym_expm,
    sym_logm,
)

__all__ = [
    "TARGET_KINDS",
    "LabeledData",
    "Split",
    "TargetTransform",
    "concat_labeled",
    "file_sha256",
    "held_out_rows",
    "image_digests",
    "load_extra_training",
    "load_labeled",
    "rows_digest",
    "split_indices",
]

logger = logging.getLogger(__name__)

TARGET_KINDS = ("log-mandel", "standardized-diagonal")


@dataclass(frozen=True)
class LabeledData:
    """The labeled samples of a dataset file.

    Attributes
    ----------
    path
        The file read.
    images
        ``(N, n, ..., n)`` uint8, 1 = inclusion.
    mu_eff
        ``(N, d, d)`` float64 labels.
    volume_fraction
        ``(N,)`` float64, measured on the pixels.
    indices
        ``(N,)`` int64 row of each sample in the file.
    dim, resolution
        Image dimension and side length (pixels).
    mu_matrix, mu_inclusion
        Phase permeabilities of the labels.
    attrs
        The file's other attributes (``geometry`` decoded from JSON when possible).
    n_total
        Samples in the file, labeled or not.
    """

    path: Path
    images: np.ndarray
    mu_eff: np.ndarray
    volume_fraction: np.ndarray
    indices: np.ndarray
    dim: int
    resolution: int
    mu_matrix: float
    mu_inclusion: float
    attrs: dict[str, Any] = field(default_factory=dict)
    n_total: int = 0

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, idx: np.ndarray) -> LabeledData:
        """The samples at positions ``idx`` (into this object's arrays)."""
        idx = np.asarray(idx, dtype=np.int64)
        return LabeledData(
            path=self.path,
            images=self.images[idx],
            mu_eff=self.mu_eff[idx],
            volume_fraction=self.volume_fraction[idx],
            indices=self.indices[idx],
            dim=self.dim,
            resolution=self.resolution,
            mu_matrix=self.mu_matrix,
            mu_inclusion=self.mu_inclusion,
            attrs=self.attrs,
            n_total=self.n_total,
        )


def file_sha256(path: str | Path, *, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_labeled(path: str | Path, *, max_samples: int | None = None) -> LabeledData:
    """Read the labeled samples of a dataset file.

    Parameters
    ----------
    path
        HDF5 dataset file (schema in ``docs/ARCHITECTURE.md``).
    max_samples
        Keep only the first ``max_samples`` labeled samples (for quick runs).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    InputError
        If it is not an HDF5 dataset of this project, holds no finished, finite label, or has
        rectangular cells (the CNNs take square images).
    """
    path = Path(path)
    if max_samples is not None and (
        isinstance(max_samples, bool)
        or not isinstance(max_samples, int | np.integer)
        or max_samples < 1
    ):
        raise InputError(f"max_samples must be an integer >= 1, got {max_samples!r}")
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    from micro.dataset_io import load_dataset  # h5py; lazily, to keep this module light

    ds = load_dataset(path, require_labels=True)
    attrs = dict(ds.attrs)
    if len(set(ds.shape)) != 1:
        from micro.validate import format_size

        raise InputError(
            f"{path}: the CNNs take square (cubic) images; this dataset has rectangular cells "
            f"of {format_size(ds.shape)} px"
        )
    data = LabeledData(
        path=path,
        images=np.asarray(ds.images).view(np.uint8),
        mu_eff=np.asarray(ds.mu_eff, dtype=np.float64),
        volume_fraction=np.asarray(ds.volume_fraction, dtype=np.float64),
        indices=np.asarray(ds.index, dtype=np.int64),
        dim=int(attrs["dim"]),
        resolution=int(attrs["resolution"]),
        mu_matrix=float(attrs["mu_matrix"]),
        mu_inclusion=float(attrs["mu_inclusion"]),
        attrs=attrs,
        n_total=int(attrs.get("n_samples", len(ds))),
    )
    ok = np.flatnonzero(np.all(np.isfinite(data.mu_eff), axis=(1, 2)))
    if ok.size == 0:
        raise InputError(f"{path}: no labeled samples (0 of {data.n_total} with finite mu_eff)")
    if max_samples is not None:
        ok = ok[: int(max_samples)]
    if ok.size != len(data):
        data = data.subset(ok)
    logger.info("read %d labeled of %d samples from %s", len(data), data.n_total, path)
    return data


def concat_labeled(parts: Sequence[LabeledData]) -> LabeledData:
    """Join labeled samples of several files of one image class into one object.

    The description (path, dimension, phase μ, attributes) is the first part's; ``indices`` are
    each sample's row in its own file. The parts must share dimension and resolution.
    """
    if not parts:
        raise InputError("nothing to join: no labeled data given")
    first = parts[0]
    for part in parts[1:]:
        if part.images.shape[1:] != first.images.shape[1:]:
            raise InputError(
                f"{part.path}: images of shape {part.images.shape[1:]} do not join "
                f"{first.path}'s {first.images.shape[1:]}"
            )
    if len(parts) == 1:
        return first
    return dataclasses.replace(
        first,
        images=np.concatenate([p.images for p in parts]),
        mu_eff=np.concatenate([p.mu_eff for p in parts]),
        volume_fraction=np.concatenate([p.volume_fraction for p in parts]),
        indices=np.concatenate([p.indices for p in parts]),
        n_total=sum(p.n_total for p in parts),
    )


def image_digests(images: np.ndarray) -> list[bytes]:
    """A 16-byte BLAKE2 digest of each image ``(N, ...)`` (finds identical images across files)."""
    return [
        hashlib.blake2b(np.ascontiguousarray(im).tobytes(), digest_size=16).digest()
        for im in images
    ]


def load_extra_training(
    paths: Sequence[str | Path], data: LabeledData, split: Split, *, dataset_sha256: str
) -> list[tuple[LabeledData, str]]:
    """Read further labeled files for the training split of ``data``, checked against it.

    Parameters
    ----------
    paths
        Dataset files; all their labeled samples are meant for training only.
    data, split
        The dataset and its split; its validation and test images must not reappear.
    dataset_sha256
        SHA-256 of ``data``'s file (a file equal to it is refused).

    Returns
    -------
    list of (LabeledData, str)
        Each file's samples and SHA-256, in the order of ``paths``.

    Raises
    ------
    InputError
        A file is the dataset itself, differs in dimension, resolution or phase μ, or holds an
        image of the held-out splits (found by :func:`image_digests`).
    """
    if not paths:
        return []
    held = set(image_digests(data.images[np.concatenate([split.val, split.test])]))
    return [_extra_file(p, data, held, dataset_sha256) for p in paths]


def _extra_file(
    path: str | Path, data: LabeledData, held: set[bytes], sha: str
) -> tuple[LabeledData, str]:
    extra = load_labeled(path)
    extra_sha = file_sha256(path)
    if extra_sha == sha:
        raise InputError(f"extra training data {path} is the dataset itself")
    for what, mine, theirs in (
        ("dimension", extra.dim, data.dim),
        ("resolution (px)", extra.resolution, data.resolution),
    ):
        if mine != theirs:
            raise InputError(
                f"extra training data {path}: {what} {mine} does not match the dataset's {theirs}"
            )
    for what, mine, theirs in (
        ("matrix mu", extra.mu_matrix, data.mu_matrix),
        ("inclusion mu", extra.mu_inclusion, data.mu_inclusion),
    ):
        if not np.isclose(mine, theirs, rtol=1e-12, atol=0.0):
            raise InputError(
                f"extra training data {path}: {what} {mine:g} does not match the dataset's "
                f"{theirs:g}"
            )
    repeated = sum(d in held for d in image_digests(extra.images))
    if repeated:
        raise InputError(
            f"extra training data {path} holds {repeated} image(s) of the dataset's "
            "validation/test split"
        )
    if extra.attrs.get("geometry") != data.attrs.get("geometry"):
        logger.warning("extra training data %s has another geometry than %s", path, data.path)
    logger.info("%d extra training samples from %s", len(extra), path)
    return extra, extra_sha


@dataclass(frozen=True)
class Split:
    """Positions (into :class:`LabeledData` arrays) of the train/validation/test samples."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int

    def to_dict(self, indices: np.ndarray) -> dict[str, Any]:
        """JSON form: the seed, the sizes and digests of the file rows of the held-out samples
        (:func:`rows_digest`; :func:`held_out_rows` recomputes the rows from the dataset)."""
        return {
            "seed": int(self.seed),
            "n_train": int(self.train.size),
            "n_val": int(self.val.size),
            "n_test": int(self.test.size),
            "val_rows_sha256": rows_digest(indices[self.val]),
            "test_rows_sha256": rows_digest(indices[self.test]),
        }


def rows_digest(rows: Any) -> str:
    """SHA-256 of sorted file rows as little-endian int64 (what metadata records of a split)."""
    arr = np.sort(np.asarray(rows, dtype="<i8").ravel())
    return hashlib.sha256(arr.tobytes()).hexdigest()


def held_out_rows(split: dict[str, Any], indices: np.ndarray) -> dict[str, np.ndarray]:
    """The file rows of a model's validation and test samples in its training dataset.

    Parameters
    ----------
    split : dict
        ``metadata["split"]``: with ``val_rows``/``test_rows`` lists (older models) or with
        their digests (the split is recomputed from ``seed`` and the sizes, then checked).
    indices : ndarray
        File rows of the labeled samples of the training dataset, ascending (the same file:
        the caller has compared its SHA-256).

    Returns
    -------
    dict
        ``{"val": rows, "test": rows}``, int64 arrays.

    Raises
    ------
    InputError
        The recomputed rows do not match the recorded digests.
    """
    if "val_rows" in split:
        return {k: np.asarray(split[f"{k}_rows"], dtype=np.int64) for k in ("val", "test")}
    n = int(split["n_train"]) + int(split["n_val"]) + int(split["n_test"])
    if n > indices.size:
        raise InputError(
            f"the model was trained on {n} labeled samples; the file has {indices.size}"
        )
    again = split_indices(n, seed=int(split["seed"]))
    rows = {"val": indices[:n][again.val], "test": indices[:n][again.test]}
    for k, r in rows.items():
        if rows_digest(r) != split.get(f"{k}_rows_sha256"):
            raise InputError(
                f"the {k} rows recomputed from the split seed do not match the model's record"
            )
    return {k: r.astype(np.int64) for k, r in rows.items()}


def split_indices(
    n: int, *, seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
) -> Split:
    """Deterministic random split of ``n`` samples (70/15/15 by default).

    Validation and test sets get ``round(fraction * n)`` samples each (at least 1 when
    ``n >= 3``); the training set the rest. Each part is sorted.
    """
    if n < 3:
        raise InputError(f"need at least 3 labeled samples to split, got {n}")
    if not np.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise InputError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(fractions[1] * n)))
    n_test = max(1, int(round(fractions[2] * n)))
    val, test, train = perm[:n_val], perm[n_val : n_val + n_test], perm[n_val + n_test :]
    return Split(train=np.sort(train), val=np.sort(val), test=np.sort(test), seed=int(seed))


@dataclass(frozen=True)
class TargetTransform:
    """Map between tensors ``mu_eff`` ``(N, d, d)`` and network targets ``(N, m)``.

    Attributes
    ----------
    kind
        ``"log-mandel"`` or ``"standardized-diagonal"``.
    dim
        2 or 3.
    mean, std
        Per-component statistics of ``standardized-diagonal`` (length ``d``); empty otherwise.
    """

    kind: str
    dim: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @classmethod
    def fit(cls, kind: str, mu_eff: np.ndarray) -> TargetTransform:
        """Transform of ``kind`` with statistics from training labels ``(N, d, d)``."""
        mu = np.asarray(mu_eff, dtype=np.float64)
        dim = mu.shape[-1]
        if kind == "log-mandel":
            return cls(kind, dim)
        if kind == "standardized-diagonal":
            diag = np.diagonal(mu, axis1=1, axis2=2)
            std = np.maximum(diag.std(axis=0), 1e-12 * np.abs(diag).max(initial=1.0))
            return cls(kind, dim, tuple(diag.mean(axis=0).tolist()), tuple(std.tolist()))
        raise InputError(f"unknown target kind {kind!r}; choose one of {TARGET_KINDS}")

    @property
    def n_outputs(self) -> int:
        """Width of the target vector (``m``)."""
        return n_components(self.dim) if self.kind == "log-mandel" else self.dim

    @property
    def full_tensor(self) -> bool:
        """Whether off-diagonal components are predicted."""
        return self.kind == "log-mandel"

    def pre_targets(self, mu_eff: np.ndarray) -> np.ndarray:
        """Tensors ``(N, d, d)`` float64 that augmentation transforms (``logm(mu)`` or ``mu``)."""
        mu = np.asarray(mu_eff, dtype=np.float64)
        return sym_logm(mu) if self.kind == "log-mandel" else mu

    def targets_from_pre(self, pre: np.ndarray) -> np.ndarray:
        """Target vectors ``(N, m)`` float32 from pre-target tensors ``(N, d, d)``."""
        if self.kind == "log-mandel":
            return mandel(pre).astype(np.float32)
        diag = np.diagonal(np.asarray(pre), axis1=-2, axis2=-1)
        return ((diag - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)

    def to_targets(self, mu_eff: np.ndarray) -> np.ndarray:
        """Target vectors ``(N, m)`` float32 of tensors ``(N, d, d)``."""
        return self.targets_from_pre(self.pre_targets(mu_eff))

    def to_tensors(
        self,
        outputs: np.ndarray,
        *,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> np.ndarray:
        """Tensors ``(N, d, d)`` float64 from network outputs ``(N, m)``.

        For ``log-mandel`` the eigenvalues of ``logm`` are clipped to ``[log lower, log upper]``
        when the bounds ``(N,)`` are given (removes float32 round-off at the bounds), then
        exponentiated. For ``standardized-diagonal`` the result is diagonal.
        """
        y = np.asarray(outputs, dtype=np.float64)
        if y.ndim != 2 or y.shape[1] != self.n_outputs:
            raise InputError(f"network outputs of shape {y.shape}, expected (N, {self.n_outputs})")
        if self.kind == "log-mandel":
            log_mu = from_mandel(y, self.dim)
            if lower is not None and upper is not None:
                log_mu = clip_eigenvalues(log_mu, np.log(lower), np.log(upper))
            mu = sym_expm(log_mu)
            return 0.5 * (mu + np.swapaxes(mu, -1, -2))
        diag = y * np.asarray(self.std) + np.asarray(self.mean)
        out = np.zeros((y.shape[0], self.dim, self.dim))
        idx = np.arange(self.dim)
        out[:, idx, idx] = diag
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": self.kind, "dim": self.dim, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetTransform:
        """Inverse of :meth:`to_dict`."""
        if d.get("kind") not in TARGET_KINDS:
            raise InputError(f"unknown target kind {d.get('kind')!r} in model metadata")
        return cls(d["kind"], int(d["dim"]), tuple(d.get("mean", ())), tuple(d.get("std", ())))
