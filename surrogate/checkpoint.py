"""Per-epoch checkpoints of a training run, so that an interrupted run resumes where it stopped.

While :func:`surrogate.training.train` writes a model directory ``OUT``, each ensemble member ``K``
keeps ``OUT/checkpoints/member_K/`` (:func:`member_dir`) up to date after every epoch:

* ``model_E.keras`` -- the compiled model after epoch ``E``, with its optimizer state;
* ``best_E.npz`` -- the weights of the best validation epoch so far (``E``: that epoch), without
  optimizer state (:func:`save_weights`);
* ``state.json`` -- the training state (:func:`new_checkpoint`): epoch, history, plateau and
  early-stop counters, learning rate, the names of the current model and best-weights files, and
  the run's *fingerprint* (dataset hash, preset, model options, plan, seeds...).

Crash consistency: files carry the epoch in their name and ``state.json`` names the current ones;
stale files are removed only after ``state.json`` is replaced (:func:`write_checkpoint`), so a
kill at any moment leaves a consistent set. A checkpoint written with another fingerprint is
refused (:func:`read_checkpoint`).

Once every member is done the model directory is saved and the checkpoints are deleted
(:func:`remove_checkpoints`); :func:`finished_model` recognises a complete directory written with
the same fingerprint, so that running the same command again does nothing.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from magnetohom.errors import InputError
from surrogate.bundle import read_metadata, write_json

__all__ = [
    "STATE_FILE",
    "finish_checkpoint",
    "finished_model",
    "load_weights",
    "member_dir",
    "new_checkpoint",
    "read_checkpoint",
    "remove_checkpoints",
    "save_weights",
    "write_checkpoint",
]

#: Name of the training state file of a member's checkpoint directory.
STATE_FILE = "state.json"

_CHECKPOINTS = "checkpoints"


def member_dir(out: Path, k: int) -> Path:
    """The checkpoint directory of member ``k`` of the model directory ``out``."""
    return out / _CHECKPOINTS / f"member_{k}"


def remove_checkpoints(out: Path) -> None:
    """Delete all checkpoints of the model directory ``out`` (none is fine)."""
    shutil.rmtree(out / _CHECKPOINTS, ignore_errors=True)


def new_checkpoint(ckpt: Path, fingerprint: dict[str, Any], learning_rate: float) -> dict[str, Any]:
    """Create the checkpoint directory ``ckpt`` and return the state of a run before epoch 1.

    Parameters
    ----------
    ckpt
        Member checkpoint directory (created with its parents).
    fingerprint
        Settings of the run; a checkpoint is resumed only by a run with equal settings.
    learning_rate
        Initial learning rate.

    Returns
    -------
    dict
        ``fingerprint``, ``epoch`` (epochs done), ``best_val``, ``best_epoch`` (0-based, -1:
        none), ``wait_plateau``, ``wait_stop``, ``lr``, ``done``, ``model_file``, ``best_file``
        (names in ``ckpt`` or ``None``) and ``history`` (``loss``, ``val_loss``, ``lr``,
        ``seconds`` lists).
    """
    state = {
        "fingerprint": fingerprint,
        "epoch": 0,
        "best_val": math.inf,
        "best_epoch": -1,
        "wait_plateau": 0,
        "wait_stop": 0,
        "lr": learning_rate,
        "done": False,
        "model_file": None,
        "best_file": None,
        "history": {"loss": [], "val_loss": [], "lr": [], "seconds": []},
    }
    ckpt.mkdir(parents=True, exist_ok=True)
    return state


def read_checkpoint(ckpt: Path, fingerprint: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
    """The compiled model and state stored in ``ckpt``, or ``None`` if there is no checkpoint.

    Parameters
    ----------
    ckpt
        Member checkpoint directory.
    fingerprint
        Settings of the run that resumes.

    Returns
    -------
    tuple or None
        ``(model, state)``: the Keras model of the last epoch with its optimizer state, and the
        state of :func:`new_checkpoint` after that epoch.

    Raises
    ------
    InputError
        The checkpoint was written with another fingerprint, or its model file is unreadable.
    """
    state_file = ckpt / STATE_FILE
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    if state.get("fingerprint") != fingerprint:
        raise InputError(
            f"checkpoint {ckpt} was written with other settings; remove it or choose another -o"
        )
    import keras

    from surrogate import layers  # noqa: F401  (custom objects for loading checkpoints)

    model_file = ckpt / state["model_file"]
    try:
        model = keras.saving.load_model(model_file, compile=True)
    except Exception as exc:
        raise InputError(f"cannot read checkpoint {model_file}: {exc}") from None
    return model, state


def write_checkpoint(ckpt: Path, model: Any, state: dict[str, Any], *, best: bool) -> None:
    """Save the model after epoch ``state["epoch"]`` (and its weights if ``best``), then the state.

    The new files are written first, ``state.json`` is replaced next, and only then are the files
    it no longer names removed: a kill at any moment leaves a consistent checkpoint.

    Parameters
    ----------
    ckpt
        Member checkpoint directory (existing).
    model
        Compiled Keras model.
    state
        Training state, ``epoch`` counting the epoch just done; ``model_file`` (and ``best_file``
        if ``best``) are updated in place.
    best
        The epoch just done is the best so far: save its weights as well.
    """
    if best:
        state["best_file"] = f"best_{state['epoch']}.npz"
        save_weights(model, ckpt / state["best_file"])
    state["model_file"] = f"model_{state['epoch']}.keras"
    model.save(ckpt / state["model_file"])
    write_json(ckpt / STATE_FILE, state)
    _remove_stale(ckpt, state)


def finish_checkpoint(ckpt: Path, model: Any, state: dict[str, Any]) -> None:
    """Give ``model`` the best weights kept in ``ckpt`` and mark the member's state as done."""
    if state["best_file"]:
        load_weights(model, ckpt / state["best_file"])
    state["done"] = True
    write_json(ckpt / STATE_FILE, state)


def save_weights(model: Any, path: Path) -> None:
    """The model's weights (trainable and not, no optimizer state) as an ``.npz`` file."""
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, *model.get_weights())
    tmp.replace(path)


def load_weights(model: Any, path: Path) -> None:
    """Set the model's weights from a file of :func:`save_weights`."""
    with np.load(path) as f:
        model.set_weights([f[f"arr_{i}"] for i in range(len(f.files))])


def _remove_stale(ckpt: Path, state: dict[str, Any]) -> None:
    keep = {state["model_file"], state["best_file"], STATE_FILE}
    for f in ckpt.iterdir():
        if f.name not in keep and f.suffix in (".keras", ".npz"):
            f.unlink(missing_ok=True)


def finished_model(
    out: Path, fingerprint: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, list[float]]]] | None:
    """The metadata and history of the model in ``out`` if it was trained with ``fingerprint``.

    Parameters
    ----------
    out
        Model directory.
    fingerprint
        Settings of the run.

    Returns
    -------
    tuple or None
        ``(metadata, history)``: ``metadata.json`` and the per-member histories of
        ``history.json`` (empty without that file); ``None`` if ``out`` holds no complete model.

    Raises
    ------
    InputError
        ``out`` holds a model trained with other settings, or its members are unreadable.
    """
    if not (out / "metadata.json").exists():
        return None
    try:
        meta = read_metadata(out)
    except InputError:
        meta = {}
    if meta.get("fingerprint") != fingerprint:
        raise InputError(
            f"{out} already holds a model trained with other settings; "
            "remove it or choose another -o"
        )
    from surrogate.bundle import load_bundle

    load_bundle(out)  # the members must be readable
    hist_file = out / "history.json"
    hist = json.loads(hist_file.read_text())["members"] if hist_file.exists() else []
    return meta, hist
