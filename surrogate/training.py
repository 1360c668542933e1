"""Training of a surrogate (one model or a deep ensemble), with checkpoints and transfer learning.

:func:`train` reads a dataset file, splits it 70/15/15 (seeded), trains ``ensemble`` members
with different seeds and writes a model directory (:mod:`surrogate.bundle`).

Training plans (:func:`training_plan`; every field can be overridden):

* ``paper``: Adam, lr 5e-4; learning rate x0.1 after 25 epochs without validation progress;
  early stop after 100 (best weights restored); MSE on the standardized diagonal; 300 epochs; no
  augmentation -- Section 4.3 of the paper.
* ``default``: Adam, lr 1e-3 with a cosine decay to 1 % over the run; MSE on ``logm(mu)`` (a
  relative error); random square/cube symmetries and periodic shifts on every training batch;
  best validation weights kept; 200 epochs.

Each member is trained by :func:`surrogate.fit.train_member` (input pipeline, optimizer,
schedules, epoch loop).

Resuming: after every epoch each member writes ``OUT/checkpoints/member_K/`` (the compiled model
with its optimizer state, the best weights so far, and ``state.json``: epoch, history, plateau and
early-stop counters, learning rate; :mod:`surrogate.checkpoint`). Running the same command again
continues from there; a checkpoint written with other settings is refused. The epoch's shuffling
and augmentation are drawn from ``(seed, member, epoch)``, so a resumed run sees the same batches
it would have seen.

Transfer learning: ``init`` names a trained model; the new model takes its preset and options,
copies its weights (but those of the layers named in ``reinit``), and ``freeze="conv"`` keeps the
feature convolutions fixed while the head (dense layers, or a coarse-solve head's
``face_logits``) trains on the new data; ``fine_tune_epochs > 0`` then
unfreezes everything at a 10x lower learning rate.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from magnetohom import __version__
from magnetohom.errors import InputError
from surrogate.bundle import (
    ModelBundle,
    copy_layer_weights,
    read_metadata,
    save_bundle,
    why_not_moves,
)
from surrogate.checkpoint import finished_model, member_dir, remove_checkpoints
from surrogate.data import (
    LabeledData,
    TargetTransform,
    concat_labeled,
    file_sha256,
    load_extra_training,
    load_labeled,
    split_indices,
)
from surrogate.fit import EpochHook, train_member

__all__ = ["TrainResult", "TrainingPlan", "model_reference", "train", "training_plan"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPlan:
    """Optimisation settings of a training run.

    Attributes
    ----------
    epochs
        Epochs of the (head) training phase.
    batch_size
        Samples per step.
    learning_rate
        Initial Adam learning rate.
    schedule
        ``"plateau"`` (x ``plateau_factor`` after ``plateau_patience`` epochs without validation
        progress) or ``"cosine"`` (decay to 1 % at the last epoch).
    stop_patience
        Early stop after that many epochs without validation progress (``None``: never).
    augment
        Random symmetries + periodic shifts on training batches.
    target
        Target kind (:data:`surrogate.data.TARGET_KINDS`).
    fine_tune_epochs
        After the head phase of a transfer, epochs with all layers trainable at
        ``learning_rate * fine_tune_factor``.
    loss
        ``"mse"`` (the paper's) or ``"mae"``: mean absolute error of the scaled targets, which
        for the ``log-mandel`` target is close to the relative error that MAPE measures.
    """

    epochs: int
    batch_size: int = 32
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    plateau_patience: int = 25
    plateau_factor: float = 0.1
    stop_patience: int | None = None
    augment: bool = True
    target: str = "log-mandel"
    fine_tune_epochs: int = 0
    fine_tune_factor: float = 0.1
    loss: str = "mse"


#: Loss functions of :attr:`TrainingPlan.loss`.
LOSSES = ("mse", "mae")


def _plan_fingerprint(plan: TrainingPlan) -> dict[str, Any]:
    """The plan as checkpoints and finished models record it.

    ``loss`` came later than the other fields: left out while it is the original ``"mse"``, so
    that runs started before it existed still resume and finished models are still recognised.
    """
    out = dataclasses.asdict(plan)
    if out["loss"] == "mse":
        del out["loss"]
    return out


def training_plan(preset: str, **overrides: Any) -> TrainingPlan:
    """The plan of ``preset`` with ``overrides`` (``None`` values are ignored)."""
    if preset == "paper":
        base = TrainingPlan(
            epochs=300,
            learning_rate=5e-4,
            schedule="plateau",
            stop_patience=100,
            augment=False,
            target="standardized-diagonal",
        )
    elif preset == "default":
        base = TrainingPlan(epochs=200)
    else:
        raise InputError(f"unknown preset {preset!r}; choose one of default, paper")
    known = {f.name for f in dataclasses.fields(TrainingPlan)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InputError(f"unknown training setting(s) {unknown}")
    plan = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
    for name in ("epochs", "batch_size", "fine_tune_epochs"):
        value = getattr(plan, name)
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InputError(f"{name} must be an integer, got {value!r}")
    if plan.epochs < 1 or plan.batch_size < 1:
        raise InputError(
            f"epochs and batch size must be >= 1, got {plan.epochs} and {plan.batch_size}"
        )
    lr = plan.learning_rate
    if not (isinstance(lr, int | float | np.floating) and math.isfinite(lr) and lr > 0):
        raise InputError(f"learning rate must be finite and > 0, got {lr!r}")
    if plan.schedule not in ("plateau", "cosine"):
        raise InputError(f"schedule must be 'plateau' or 'cosine', got {plan.schedule!r}")
    if plan.fine_tune_epochs < 0:
        raise InputError(f"fine_tune_epochs must be >= 0, got {plan.fine_tune_epochs}")
    if plan.loss not in LOSSES:
        raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {plan.loss!r}")
    return plan


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    model_dir
        The written model directory.
    metadata
        Its ``metadata.json``.
    history
        Per member: ``{"loss", "val_loss", "lr", "seconds"}`` lists, one entry per epoch run.
    best_val_loss
        Per member, the validation loss of the kept weights.
    epochs_run
        Per member, epochs trained (early stop may end before the plan).
    seconds
        Wall time of this call.
    resumed
        Whether a checkpoint was continued.
    """

    model_dir: Path
    metadata: dict[str, Any]
    history: tuple[dict[str, list[float]], ...]
    best_val_loss: tuple[float, ...]
    epochs_run: tuple[int, ...]
    seconds: float
    resumed: bool


def train(
    dataset_path: str | Path,
    *,
    out: str | Path,
    preset: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    init: str | Path | None = None,
    freeze: str | None = None,
    reinit: Sequence[str] = (),
    fine_tune_epochs: int | None = None,
    loss: str | None = None,
    ensemble: int = 1,
    seed: int = 0,
    split_seed: int | None = None,
    augment: bool | None = None,
    options: Mapping[str, Any] | None = None,
    max_samples: int | None = None,
    extra_train: Sequence[str | Path] = (),
    progress: bool = False,
    command: str | None = None,
    on_epoch_end: EpochHook | None = None,
) -> TrainResult:
    """Train a surrogate on a dataset file and save it to ``out``.

    Parameters
    ----------
    dataset_path
        HDF5 dataset (``docs/ARCHITECTURE.md``); its labeled samples are used.
    out
        Model directory to write (created). Re-running the same call resumes from its
        checkpoints, or returns at once if the model is complete.
    preset
        ``"default"`` or ``"paper"`` (default ``"default"``; with ``init``, that model's preset).
    epochs, batch_size, learning_rate, augment, fine_tune_epochs, loss
        Override the preset's :class:`TrainingPlan`.
    init
        Model (registry name or directory) whose weights start the training (transfer learning).
    freeze
        ``"conv"``: keep the convolution layers of ``init`` fixed (requires ``init``).
    reinit
        Names of layers of ``init`` whose weights are *not* copied: they start from the fresh
        initial weights of the new model (e.g. ``"face_logits"``, the last layer of
        ``head="solve"`` models). Requires ``init``.
    ensemble
        Number of members (different initial weights and batch orders); the spread of their
        predictions is the uncertainty estimate.
    seed
        Seeds weights, shuffling and augmentation (member ``k`` uses ``(seed, k)``).
    split_seed
        Seed of the 70/15/15 split (default: ``seed``).
    options
        Model options (:func:`surrogate.models.model_options`); not allowed with ``init``.
    max_samples
        Use only the first labeled samples (quick runs).
    extra_train
        Further dataset files whose labeled samples all join the training split (never the
        validation or test split). They must match the dataset's dimension, resolution and
        phase μ and must not hold any image of its held-out splits. The held-out splits stay
        those of ``dataset_path``, so a model trained with more data is compared with the ones
        before it on the same samples.
    progress
        Show a progress bar per member (tqdm, on stderr).
    command
        Command line recorded in the metadata (default: a Python call summary).
    on_epoch_end
        ``f(member, epoch, state)`` after each epoch's checkpoint is written (an exception
        raised there stops training, e.g. ``KeyboardInterrupt``; the checkpoint stays).

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError
        Bad settings, an unreadable or unlabeled dataset, a model/data mismatch for ``init``,
        extra training data that does not match the dataset or repeats a held-out image, or an
        ``out`` directory holding a different model or checkpoint.
    SolverError
        The loss became non-finite.
    """
    t0 = time.perf_counter()
    dataset_path = Path(dataset_path)
    out = Path(out)
    if ensemble < 1:
        raise InputError(f"ensemble must be >= 1, got {ensemble}")
    if freeze not in (None, "conv"):
        raise InputError(f"freeze must be 'conv' or None, got {freeze!r}")
    if freeze and init is None:
        raise InputError("freeze='conv' needs an initial model (init / --init)")
    reinit = tuple(dict.fromkeys(str(name) for name in reinit))
    if reinit and init is None:
        raise InputError("reinit needs an initial model (init / --init)")
    if out.suffix == ".keras" or (out.exists() and not out.is_dir()):
        raise InputError(f"output {out} must be a directory (the model directory to write)")

    training_plan(  # bad numbers (epochs 0, learning rate NaN, ...) before reading any data
        preset or "default",
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        fine_tune_epochs=fine_tune_epochs,
        loss=loss,
    )
    data = load_labeled(dataset_path, max_samples=max_samples)
    sha = file_sha256(dataset_path)
    init_bundle, preset, model_opts = _resolve_init(init, preset, options, data)
    plan = training_plan(
        preset,
        epochs=epochs if epochs is not None else (100 if init is not None else None),
        batch_size=batch_size,
        learning_rate=learning_rate,
        augment=augment,
        fine_tune_epochs=fine_tune_epochs,
        loss=loss,
    )
    split = split_indices(len(data), seed=seed if split_seed is None else split_seed)
    if split.train.size < 1:
        raise InputError(f"too few labeled samples ({len(data)}) to train")
    extras = load_extra_training(extra_train, data, split, dataset_sha256=sha)
    train_data = concat_labeled([data.subset(split.train), *(x for x, _ in extras)])
    extra_info = [  # names, not machine paths: the digest identifies the file
        {"path": x.path.name, "sha256": x_sha, "n_labeled": len(x)} for x, x_sha in extras
    ]
    del extras  # their images are in train_data now
    target = TargetTransform.fit(plan.target, train_data.mu_eff)
    from surrogate.models import build_model, model_options

    model_opts_obj = model_options(preset, model_opts)
    fingerprint = {
        "dataset_sha256": sha,
        "n_labeled": len(data),
        "preset": preset,
        "model_options": _jsonable(model_opts_obj),
        "plan": _plan_fingerprint(plan),
        "init": None if init_bundle is None else model_reference(init_bundle),
        "freeze": freeze,
        "ensemble": int(ensemble),
        "seed": int(seed),
        "split_seed": split.seed,
        "max_samples": max_samples,
    }
    if extra_info:  # absent otherwise, so models trained before this option still resume
        fingerprint["extra_train_sha256"] = [e["sha256"] for e in extra_info]
    if reinit:  # likewise
        fingerprint["reinit"] = list(reinit)
    done = finished_model(out, fingerprint)
    if done is not None:
        logger.info("%s already holds this model; nothing to do", out)
        meta, hist = done
        tr = meta.get("training", {})
        return TrainResult(
            model_dir=out,
            metadata=meta,
            history=tuple(hist),
            best_val_loss=tuple(tr.get("best_val_loss", ())),
            epochs_run=tuple(tr.get("epochs_run", ())),
            seconds=0.0,
            resumed=False,
        )

    val_data = data.subset(split.val)
    info = data.subset(split.test[:0])  # the file's description, without pixels
    indices = data.indices
    del data  # free the full image array
    pre_train = target.pre_targets(train_data.mu_eff)
    y_val = target.to_targets(val_data.mu_eff)
    members, histories, best, resumed_any = [], [], [], False
    for k in range(ensemble):

        def _build(k=k):
            model = build_model(
                preset,
                dim=info.dim,
                resolution=info.resolution,
                mu_matrix=info.mu_matrix,
                mu_inclusion=info.mu_inclusion,
                options=model_opts_obj,
                rng=[seed, k, 0],
            )
            if init_bundle is not None:
                copy_layer_weights(
                    init_bundle.members[k % len(init_bundle.members)], model, skip=reinit
                )
            return model

        model, state, resumed = train_member(
            k,
            ensemble,
            _build,
            train_data.images,
            pre_train,
            val_data.images,
            y_val,
            target,
            plan,
            freeze=freeze,
            seed=seed,
            ckpt=member_dir(out, k),
            fingerprint=fingerprint,
            progress=progress,
            on_epoch_end=on_epoch_end,
        )
        resumed_any |= resumed
        members.append(model)
        histories.append(state["history"])
        best.append(float(state["best_val"]))

    vf_train = train_data.volume_fraction
    dataset_info: dict[str, Any] = {
        "path": dataset_path.name,  # its name; the digest identifies the file
        "sha256": sha,
        "n_samples": info.n_total,
        "n_labeled": int(indices.size),
    }
    if extra_info:
        dataset_info["extra_train"] = extra_info
    metadata = {
        "name": out.name,
        "preset": preset,
        "model_options": _jsonable(model_opts_obj),
        "dim": info.dim,
        "resolution": info.resolution,
        "mu_matrix": info.mu_matrix,
        "mu_inclusion": info.mu_inclusion,
        "components": _component_names(info.dim, target),
        "target": target.to_dict(),
        "vf_range": [float(vf_train.min()), float(vf_train.max())],
        "geometry": info.attrs.get("geometry"),
        "ensemble": ensemble,
        "split": split.to_dict(indices),
        "dataset": dataset_info,
        "training": {
            "plan": dataclasses.asdict(plan),
            "seed": seed,
            "freeze": freeze,
            "init": fingerprint["init"],
            "epochs_run": [len(h["loss"]) for h in histories],
            "best_val_loss": best,
            "seconds": sum(sum(h["seconds"]) for h in histories),
        },
        "fingerprint": fingerprint,
        "command": command or _call_summary(dataset_path, out, fingerprint),
        "magnetohom_version": __version__,
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    save_bundle(out, members, metadata, history={"members": histories})
    remove_checkpoints(out)
    return TrainResult(
        model_dir=out,
        metadata=read_metadata(out),
        history=tuple(histories),
        best_val_loss=tuple(best),
        epochs_run=tuple(len(h["loss"]) for h in histories),
        seconds=time.perf_counter() - t0,
        resumed=resumed_any,
    )


def model_reference(bundle: Any) -> str:
    """How metadata names an initial model: its registry name for a shipped model, else its
    directory's name and the SHA-256 of its ``metadata.json`` (no machine paths)."""
    from surrogate.registry import MODELS_DIR

    path = Path(bundle.path).resolve()
    if path.parent == MODELS_DIR.resolve():
        return path.name
    digest = file_sha256(path / "metadata.json")
    return f"{path.name} (metadata sha256 {digest[:16]})"


def _component_names(dim: int, target: TargetTransform) -> list[str]:
    from surrogate.tensors import component_names

    return component_names(dim, diagonal_only=not target.full_tensor)


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}


def _jsonable(opts: Any) -> dict[str, Any]:
    if opts is None:
        return {}
    if dataclasses.is_dataclass(opts):
        opts = dataclasses.asdict(opts)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dict(opts).items()}


def _call_summary(dataset: Path, out: Path, fingerprint: dict[str, Any]) -> str:
    return f"surrogate.train({str(dataset)!r}, out={str(out)!r}, ...) from {' '.join(sys.argv[:1])}"


def _resolve_init(
    init: str | Path | None,
    preset: str | None,
    options: Mapping[str, Any] | None,
    data: LabeledData,
) -> tuple[ModelBundle | None, str, dict[str, Any] | None]:
    if init is None:
        return None, preset or "default", dict(options) if options else None
    from surrogate.registry import load_model

    bundle = load_model(init)
    if preset is not None and preset != bundle.preset:
        raise InputError(
            f"--preset {preset} does not match the initial model's preset {bundle.preset}"
        )
    if options:
        raise InputError("model options cannot be changed when starting from an initial model")
    why = (
        "another dimension"
        if bundle.dim != data.dim
        else why_not_moves(bundle, data.resolution)
        if bundle.resolution != data.resolution
        else None
    )
    if why is not None:
        raise InputError(
            f"initial model takes {bundle.dim}D images of {bundle.resolution} px, the dataset has "
            f"{data.dim}D images of {data.resolution} px ({why})"
        )
    return bundle, bundle.preset, dict(bundle.metadata.get("model_options") or {})
