"""Training of one ensemble member: input pipeline, optimizer, schedules and the epoch loop.

:func:`train_member` fits one Keras model epoch by epoch following a
:class:`surrogate.training.TrainingPlan` and writes a checkpoint after every epoch
(:mod:`surrogate.checkpoint`); called again with the same checkpoint directory, it continues from
there.

* Input pipeline: each epoch's batches are drawn from ``numpy.random.default_rng((seed, member, 1,
  epoch))`` -- a shuffle, then (if the plan augments) a random square/cube symmetry and periodic
  shift per sample (:func:`surrogate.augment.random_augment`) -- so a resumed run sees the same
  batches it would have seen. Images stay ``uint8`` up to the model.
* Optimizer: Adam on the MSE, at a constant rate (``"plateau"`` schedule: x ``plateau_factor``
  after ``plateau_patience`` epochs without validation progress) or a cosine decay to 1 % over the
  head phase (``"cosine"``).
* Early stop after ``stop_patience`` epochs without validation progress; the best validation
  weights are restored at the end.
* Transfer learning: ``freeze="conv"`` keeps the feature convolutions and batch norms fixed
  during the head phase (:func:`surrogate.models.feature_layers`: every convolution but a
  coarse-solve head's ``face_logits``); ``fine_tune_epochs`` more epochs then train every layer
  at ``learning_rate * fine_tune_factor``.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from magnetohom.errors import SolverError
from surrogate.augment import random_augment
from surrogate.checkpoint import (
    finish_checkpoint,
    new_checkpoint,
    read_checkpoint,
    write_checkpoint,
)

if TYPE_CHECKING:
    from surrogate.data import TargetTransform
    from surrogate.training import TrainingPlan

__all__ = ["EpochHook", "train_member"]

logger = logging.getLogger(__name__)

#: ``f(member, epoch, state)`` called after each epoch's checkpoint is written.
EpochHook = Callable[[int, int, dict[str, Any]], None]


def train_member(
    k: int,
    n_members: int,
    build: Callable[[], Any],
    images: np.ndarray,
    pre: np.ndarray,
    val_images: np.ndarray,
    y_val: np.ndarray,
    target: TargetTransform,
    plan: TrainingPlan,
    *,
    freeze: str | None,
    seed: int,
    ckpt: Path,
    fingerprint: dict[str, Any],
    progress: bool,
    on_epoch_end: EpochHook | None,
) -> tuple[Any, dict[str, Any], bool]:
    """Train member ``k``, resuming from the checkpoint in ``ckpt`` if there is one.

    Parameters
    ----------
    k, n_members
        Member index and ensemble size (seeds, log and progress bar).
    build
        Returns the initial (uncompiled) model of the member.
    images, pre
        Training images ``uint8 (N, n..)`` and their labels as
        :meth:`surrogate.data.TargetTransform.pre_targets`.
    val_images, y_val
        Validation images and their targets.
    target
        Target transform (targets of the augmented labels).
    plan
        Optimisation settings.
    freeze
        ``"conv"``: convolution layers fixed during the head phase.
    seed
        Seed of the run (batches of epoch ``e`` use ``(seed, k, 1, e)``).
    ckpt
        Checkpoint directory of the member.
    fingerprint
        Settings of the run, stored in (and checked against) the checkpoint.
    progress
        Show a tqdm progress bar on stderr.
    on_epoch_end
        Called after each epoch's checkpoint is written.

    Returns
    -------
    tuple
        ``(model, state, resumed)``: the model with its best validation weights, the final state
        (:func:`surrogate.checkpoint.new_checkpoint`), and whether a checkpoint was continued.

    Raises
    ------
    InputError
        A checkpoint written with other settings, or unreadable.
    SolverError
        The loss became non-finite.
    """
    import tensorflow as tf

    steps = math.ceil(images.shape[0] / plan.batch_size)
    total = plan.epochs + plan.fine_tune_epochs
    found = read_checkpoint(ckpt, fingerprint)
    resumed = found is not None
    if found is not None:
        model, state = found
        logger.info("member %d: resuming at epoch %d of %d", k, state["epoch"], total)
        if plan.schedule == "plateau" and state["epoch"] < total:
            model.optimizer.learning_rate.assign(state["lr"])
    else:
        model = build()
        _set_phase(model, freeze=freeze, fine_tune=False)
        _compile(
            model,
            lr=plan.learning_rate,
            steps_total=steps * plan.epochs if plan.schedule == "cosine" else None,
            loss=plan.loss,
        )
        state = new_checkpoint(ckpt, fingerprint, plan.learning_rate)

    val_ds = tf.data.Dataset.from_tensor_slices((val_images[..., None], y_val)).batch(
        plan.batch_size
    )
    bar = _progress_bar(progress, total, state["epoch"], k, n_members)
    try:
        while not state["done"] and state["epoch"] < total:
            epoch = state["epoch"]
            if epoch == plan.epochs and plan.fine_tune_epochs:  # phase switch after a transfer head
                _set_phase(model, freeze=freeze, fine_tune=True)
                state["lr"] = plan.learning_rate * plan.fine_tune_factor
                _compile(model, lr=state["lr"], steps_total=None, loss=plan.loss)
                state["wait_plateau"] = state["wait_stop"] = 0
            rng = np.random.default_rng([seed, k, 1, epoch])
            t = time.perf_counter()
            h = model.fit(
                _dataset(images, pre, target, plan, rng),
                validation_data=val_ds,
                epochs=1,
                shuffle=False,
                verbose=0,
            ).history
            loss, val_loss = float(h["loss"][-1]), float(h["val_loss"][-1])
            if not (math.isfinite(loss) and math.isfinite(val_loss)):
                raise SolverError(
                    f"training diverged: loss {loss}, validation loss {val_loss} "
                    f"at epoch {epoch + 1}"
                )
            _update_state(
                state, model, plan, loss, val_loss, _current_lr(model), time.perf_counter() - t
            )
            state["epoch"] = epoch + 1
            if plan.stop_patience is not None and state["wait_stop"] >= plan.stop_patience:
                logger.info("member %d: early stop at epoch %d", k, epoch + 1)
                state["done"] = True
            write_checkpoint(ckpt, model, state, best=state["best_epoch"] == epoch)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{loss:.3g}",
                    val=f"{val_loss:.3g}",
                    lr=f"{state['history']['lr'][-1]:.2g}",
                )
            else:
                logger.info(
                    "member %d epoch %d/%d: loss %.4g val %.4g", k, epoch + 1, total, loss, val_loss
                )
            if on_epoch_end is not None:
                on_epoch_end(k, epoch, state)
    finally:
        if bar is not None:
            bar.close()
    finish_checkpoint(ckpt, model, state)
    return model, state, resumed


# ----------------------------------------------------------------------------------------------
# input pipeline


def _batches(
    images: np.ndarray,
    pre: np.ndarray,
    target: TargetTransform,
    batch_size: int,
    rng: np.random.Generator,
    augment: bool,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(uint8 (B, n.., 1), float32 (B, m))`` training batches for one epoch."""
    perm = rng.permutation(images.shape[0])
    for start in range(0, perm.size, batch_size):
        idx = np.sort(perm[start : start + batch_size])
        img, t = images[idx], pre[idx]
        if augment:
            img, t = random_augment(img, t, rng)
        yield img[..., None], target.targets_from_pre(t)


def _dataset(
    images: np.ndarray,
    pre: np.ndarray,
    target: TargetTransform,
    plan: TrainingPlan,
    rng: np.random.Generator,
) -> Any:
    """The ``tf.data`` pipeline of one epoch's batches (:func:`_batches`), with prefetch."""
    import tensorflow as tf

    spatial = images.shape[1:]
    sig = (
        tf.TensorSpec((None, *spatial, 1), tf.uint8),
        tf.TensorSpec((None, target.n_outputs), tf.float32),
    )
    gen = lambda: _batches(images, pre, target, plan.batch_size, rng, plan.augment)  # noqa: E731
    steps = math.ceil(images.shape[0] / plan.batch_size)
    ds = tf.data.Dataset.from_generator(gen, output_signature=sig)
    return ds.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


# ----------------------------------------------------------------------------------------------
# optimizer, schedules, trainable layers


def _compile(model: Any, *, lr: float, steps_total: int | None, loss: str = "mse") -> None:
    """Adam on ``loss``; a cosine decay to 1 % over ``steps_total`` steps unless ``None``."""
    import keras

    if steps_total is not None:
        rate = keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=max(1, steps_total), alpha=0.01
        )
    else:
        rate = lr
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=rate), loss=loss)


def _current_lr(model: Any) -> float:
    import keras

    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _set_phase(model: Any, *, freeze: str | None, fine_tune: bool) -> None:
    """All layers trainable, but feature convolutions (and batch norms) in a frozen head phase."""
    import keras

    from surrogate.models import feature_layers

    for layer in model.layers:
        layer.trainable = True
    if freeze == "conv" and not fine_tune:
        for layer in feature_layers(model):
            layer.trainable = False
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def _update_state(
    state: dict[str, Any],
    model: Any,
    plan: TrainingPlan,
    loss: float,
    val_loss: float,
    lr: float,
    seconds: float,
) -> None:
    """Record an epoch in ``state``: history, best epoch, patience counters, plateau decay."""
    hist = state["history"]
    hist["loss"].append(loss)
    hist["val_loss"].append(val_loss)
    hist["lr"].append(lr)
    hist["seconds"].append(seconds)
    epoch = len(hist["loss"]) - 1
    if val_loss < state["best_val"]:
        state["best_val"], state["best_epoch"] = val_loss, epoch
        state["wait_plateau"] = state["wait_stop"] = 0
    else:
        state["wait_plateau"] += 1
        state["wait_stop"] += 1
    if plan.schedule == "plateau" and state["wait_plateau"] >= plan.plateau_patience:
        new_lr = lr * plan.plateau_factor
        model.optimizer.learning_rate.assign(new_lr)
        state["wait_plateau"] = 0
        logger.info("learning rate -> %.3g", new_lr)
        lr = new_lr
    state["lr"] = lr


def _progress_bar(progress: bool, total: int, initial: int, k: int, n: int) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    desc = "training" if n == 1 else f"member {k + 1}/{n}"
    return tqdm(total=total, initial=initial, desc=desc, unit="epoch", file=sys.stderr, leave=True)
