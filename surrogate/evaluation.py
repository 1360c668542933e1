"""Accuracy of a trained surrogate on a dataset: MAPE and R^2 per component.

Definitions (paper, Eqs. 12-13), per component ``c`` over the ``N`` evaluated samples:

* ``MAPE_c = 100/N * sum |pred - true| / |true|`` (percent) for diagonal components. Off-diagonal
  components are close to zero for nearly isotropic SVEs, where that ratio is meaningless; for
  them the error is divided by the sample's mean eigenvalue ``tr(mu_true)/d`` instead (reported
  under the same name, documented in :attr:`Evaluation.mape_scale`).
* ``R2_c = 1 - sum (true - pred)^2 / sum (true - mean(true))^2``.

The samples are the model's held-out test split when the dataset file is the one the model was
trained on (same SHA-256), otherwise all labeled samples of the file. A file the model took as
extra training data (``train(..., extra_train=...)``) is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from magnetohom.errors import InputError
from surrogate.data import file_sha256, held_out_rows, load_labeled
from surrogate.tensors import component_indices, component_names, components

__all__ = ["SPLITS", "Evaluation", "evaluate", "mape", "r2_score"]

logger = logging.getLogger(__name__)

SPLITS = ("test", "val", "train", "all")


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one model on one set of samples.

    Attributes
    ----------
    components
        Names, e.g. ``["mu11", "mu22", "mu12"]``.
    y_true, y_pred, spread
        ``(N, m)`` float64 plain components (spread: ensemble standard deviation).
    mape
        ``(m,)`` percent.
    r2
        ``(m,)``.
    mape_scale
        Per component, ``"value"`` or ``"mean-eigenvalue"`` (the MAPE denominator).
    split
        ``"test"``, ``"val"``, ``"train"`` or ``"all"``.
    rows
        ``(N,)`` rows of the samples in the dataset file.
    model, dataset
        Paths.
    history
        The model's loss curves (``history.json``), if present.
    """

    components: list[str]
    y_true: np.ndarray
    y_pred: np.ndarray
    spread: np.ndarray
    mape: np.ndarray
    r2: np.ndarray
    mape_scale: list[str]
    split: str
    rows: np.ndarray
    model: str
    dataset: str
    history: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of samples evaluated."""
        return int(self.y_true.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-sample arrays)."""
        return {
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split,
            "n": self.n,
            "components": self.components,
            "mape_percent": dict(zip(self.components, map(float, self.mape))),
            "r2": dict(zip(self.components, map(float, self.r2))),
            "mape_scale": dict(zip(self.components, self.mape_scale)),
        }


def mape(y_true: np.ndarray, y_pred: np.ndarray, *, scale: np.ndarray | None = None) -> np.ndarray:
    """Mean absolute percentage error ``(m,)`` of ``(N, m)`` arrays.

    ``scale`` (``(N, m)``) replaces ``|y_true|`` as the denominator when given.
    """
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    denom = np.abs(y_true) if scale is None else np.asarray(scale, float)
    return 100.0 * np.mean(np.abs(y_pred - y_true) / denom, axis=0)


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination ``(m,)`` of ``(N, m)`` arrays (NaN for a constant column)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    ss_res = np.sum((y_true - y_pred) ** 2, axis=0)
    ss_tot = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)


def _select(meta: dict[str, Any], rows: np.ndarray, same_data: bool, split: str) -> np.ndarray:
    """Positions (into ``rows``) of the samples of ``split``."""
    if split == "all" or not same_data:
        return np.arange(rows.size)
    held = held_out_rows(meta.get("split") or {}, rows)
    if split == "train":
        return np.flatnonzero(~np.isin(rows, np.concatenate([held["val"], held["test"]])))
    return np.flatnonzero(np.isin(rows, held[split]))


def evaluate(
    model: Any,
    dataset_path: str | Path,
    *,
    split: str = "test",
    batch_size: int = 256,
    tta: bool = False,
    any_size: bool = False,
) -> Evaluation:
    """Evaluate a model on a dataset file.

    Parameters
    ----------
    model
        Registry name, model directory, :class:`~surrogate.bundle.ModelBundle` or
        :class:`~surrogate.provider.CNNProvider`.
    dataset_path
        HDF5 dataset file with labels.
    split
        Which samples (see module doc); a file other than the training file is used whole.
    batch_size, tta
        Passed to :class:`~surrogate.provider.CNNProvider`.
    any_size
        A coarse-solve model takes the dataset's cell size if it differs from its own, with
        the same weights (:func:`surrogate.bundle.at_resolution`).

    Raises
    ------
    InputError
        Unknown split, no labels, or images that do not fit the model.
    """
    import json

    from surrogate.provider import CNNProvider

    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    provider = (
        model
        if isinstance(model, CNNProvider)
        else CNNProvider(model, batch_size=batch_size, spread_threshold=None, tta=tta)
    )
    meta = provider.bundle.metadata
    data = load_labeled(dataset_path)
    if any_size and data.dim == provider.dim:
        provider = provider.for_size(data.resolution)
    if data.dim != provider.dim or data.resolution != provider.resolution:
        raise InputError(
            f"dataset has {data.dim}D images of {data.resolution} px; "
            f"model {provider.bundle.name!r} "
            f"takes {provider.dim}D images of {provider.resolution} px"
        )
    bundle = provider.bundle
    asked = (bundle.mu_matrix, bundle.mu_inclusion)
    if not np.allclose((data.mu_matrix, data.mu_inclusion), asked, rtol=1e-9, atol=0):
        raise InputError(
            f"dataset {dataset_path} is labelled for mu_matrix {data.mu_matrix:g}, mu_inclusion "
            f"{data.mu_inclusion:g}; model {bundle.name!r} predicts mu_eff for mu_matrix "
            f"{asked[0]:g}, mu_inclusion {asked[1]:g}: its errors would be meaningless"
        )
    sha = file_sha256(dataset_path)
    trained_on = meta.get("dataset") or {}
    if any(e.get("sha256") == sha for e in trained_on.get("extra_train", [])):
        raise InputError(
            f"{dataset_path} was extra training data of model {provider.bundle.name!r}; "
            f"evaluate it on {Path(trained_on.get('path', 'its dataset')).name} instead"
        )
    same = sha == trained_on.get("sha256")
    if not same and split != "all":
        logger.warning(
            "%s is not the model's training file: evaluating all its labeled samples", dataset_path
        )
    pos = _select(meta, data.indices, same, split)
    if pos.size == 0:
        raise InputError(f"no samples in split {split!r} of {dataset_path}")
    sub = data.subset(pos)
    pred = provider.predict(sub.images)
    dim = data.dim
    full = provider.target.full_tensor
    names = component_names(dim, diagonal_only=not full)
    m = len(names)
    y_true = components(sub.mu_eff)[:, :m]
    y_pred = components(pred.mu_eff)[:, :m]
    spread = components(pred.spread)[:, :m]
    scale_kind = ["value" if i == j else "mean-eigenvalue" for i, j in component_indices(dim)[:m]]
    mean_eig = np.trace(sub.mu_eff, axis1=1, axis2=2) / dim
    scale = np.where(np.array(scale_kind) == "value", np.abs(y_true), mean_eig[:, None])
    hist_file = provider.bundle.path / "history.json"
    history = json.loads(hist_file.read_text()) if hist_file.exists() else {}
    return Evaluation(
        components=names,
        y_true=y_true,
        y_pred=y_pred,
        spread=spread,
        mape=mape(y_true, y_pred, scale=scale),
        r2=r2_score(y_true, y_pred),
        mape_scale=scale_kind,
        split=split if same else "all",
        rows=sub.indices,
        model=str(provider.bundle.path),
        dataset=str(dataset_path),
        history=history,
    )
