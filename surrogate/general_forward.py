"""The general network's forward pass in numpy: answers without importing TensorFlow.

Starting TensorFlow costs a process 3-7 s on the project's 2-core machine, more than the
general model needs for hundreds of answers; ``magnetohom predict`` and the providers therefore
run the trained network here, from the weights in its ``.keras`` file (a zip holding the layer
graph, ``config.json``, and the weights, ``model.weights.h5``, read with h5py). Training and the
differentiable coarse solve stay in TensorFlow (:mod:`surrogate.general`); the tests check that
both give the same numbers for the shipped model and for freshly trained ones.

Layers (:func:`surrogate.general.build_general_network`): ``Dense`` / ``Conv2D`` (any kernel
size, ``valid``) with linear or exact-GELU activations, ``PeriodicPad``, ``Add``, ``Reshape``
of the global embedding, ``GlobalAveragePooling2D`` and ``Concatenate``.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from magnetohom.errors import InputError

__all__ = ["GeneralWeights", "corrected", "forward", "load_weights"]


@dataclass(frozen=True)
class GeneralWeights:
    """Weights of a general network by layer name: ``{name: (kernel, bias)}`` (float32), the
    activations by layer name, and the head's layer name (``face_logits`` or
    ``tensor_logits``)."""

    params: dict[str, tuple[np.ndarray, np.ndarray]]
    activation: dict[str, str]
    head: str
    depth: int


def _snake(name: str) -> str:
    """Keras's snake case of a class name (``Conv2D`` -> ``conv2d``)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def load_weights(path: str | Path) -> GeneralWeights:
    """Read a general network's ``.keras`` file without Keras.

    The weights file names each layer by its class in snake case, numbered in the order of the
    layer list of ``config.json`` (``conv2d``, ``conv2d_1``, ...); every kernel's shape is
    checked against the layer's configuration.
    """
    import h5py

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
            with z.open("model.weights.h5") as f, h5py.File(f, "r") as h:
                stored = {
                    name: [np.asarray(h[f"layers/{name}/vars/{i}"]) for i in range(2)]
                    for name in h["layers"]
                    if "vars" in h[f"layers/{name}"] and len(h[f"layers/{name}/vars"]) == 2
                }
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read the general network {path}: {exc}") from None
    params: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    activation: dict[str, str] = {}
    counts: dict[str, int] = {}
    for layer in config["config"]["layers"]:
        cls, cfg = layer["class_name"], layer["config"]
        if cls not in ("Dense", "Conv2D"):
            continue
        key = _snake(cls)
        k = counts.get(key, 0)
        counts[key] = k + 1
        stored_name = key if k == 0 else f"{key}_{k}"
        if stored_name not in stored:
            raise InputError(f"{path}: no weights for layer {cfg['name']!r}")
        kernel, bias = stored[stored_name]
        units = cfg["units"] if cls == "Dense" else cfg["filters"]
        if kernel.shape[-1] != units or bias.shape != (units,):
            raise InputError(f"{path}: weights of layer {cfg['name']!r} do not fit its shape")
        if cls == "Conv2D" and tuple(kernel.shape[:2]) != tuple(cfg["kernel_size"]):
            raise InputError(f"{path}: kernel of layer {cfg['name']!r} does not fit its size")
        act = cfg.get("activation", "linear")
        if act not in ("linear", "gelu"):
            raise InputError(f"{path}: layer {cfg['name']!r} has activation {act!r}")
        params[cfg["name"]] = (kernel, bias)
        activation[cfg["name"]] = act
    head = "tensor_logits" if "tensor_logits" in params else "face_logits"
    depth = sum(1 for name in params if name.startswith("conv") and name[4:].isdigit())
    needed = {"global_embed", "lift", head, "head_dense", "log_sigma", "correction"}
    if not needed <= set(params) or depth < 1:
        raise InputError(f"{path} is not a general network (layers {sorted(params)})")
    return GeneralWeights(params, activation, head, depth)


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU of a float32 array (compiled), in place when ``x`` is a C-ordered float32
    array (the fresh outputs of :func:`_dense` and :func:`_conv`)."""
    from surrogate._general_jit import gelu_inplace

    out = np.require(x, dtype=np.float32, requirements="C")
    gelu_inplace(out.reshape(-1))
    return out


def _act(w: GeneralWeights, name: str, x: np.ndarray) -> np.ndarray:
    return _gelu(x) if w.activation[name] == "gelu" else x


def _dense(w: GeneralWeights, name: str, x: np.ndarray) -> np.ndarray:
    kernel, bias = w.params[name]
    return _act(w, name, x @ kernel + bias)


def _conv(w: GeneralWeights, name: str, x: np.ndarray) -> np.ndarray:
    """``Conv2D(padding="valid")`` of ``x`` (N, m1, m2, C)."""
    kernel, bias = w.params[name]
    k1, k2, c_in, c_out = kernel.shape
    m1, m2 = x.shape[1] - k1 + 1, x.shape[2] - k2 + 1
    if k1 * k2 == 1:
        return _act(w, name, x @ kernel[0, 0] + bias)
    # one matrix product per kernel tap, summed over the shifted views: no im2col copy
    out = x[:, :m1, :m2] @ kernel[0, 0] + bias
    tap = np.empty_like(out)
    for a in range(k1):
        for b in range(k2):
            if a or b:
                np.matmul(x[:, a : a + m1, b : b + m2], kernel[a, b], out=tap)
                out += tap
    return _act(w, name, out)


def forward(
    w: GeneralWeights, grid: np.ndarray, glob: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The network's outputs for feature batches (float32 arithmetic, like Keras on a CPU).

    Parameters
    ----------
    w : GeneralWeights
    grid : ndarray, shape (N, m1, m2, 14)
    glob : ndarray, shape (N, 7)

    Returns
    -------
    logits : ndarray, shape (N, m1, m2, 2 or 3)
    log_sigma : ndarray, shape (N, 1)
    correction : ndarray, shape (N, 3)
    """
    grid = np.asarray(grid, dtype=np.float32)
    glob = np.asarray(glob, dtype=np.float32)
    g = _dense(w, "global_embed", glob)
    x = _conv(w, "lift", grid) + g[:, None, None, :]
    for j in range(w.depth):
        y = _conv(w, f"conv{j}", np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap"))
        x = x + y if j else y
    logits = _conv(w, w.head, x)
    h = _dense(w, "head_dense", np.concatenate([x.mean(axis=(1, 2)), glob], axis=1))
    return logits, _dense(w, "log_sigma", h), _dense(w, "correction", h)


def corrected(mu: np.ndarray, corr: np.ndarray) -> np.ndarray:
    """``expm(logm(mu) + C)`` for SPD ``mu`` (N, 2, 2) and corrections ``C = [c11, c22, c12]``
    (N, 3), float64: what :func:`surrogate.general._corrected` computes in TensorFlow."""
    mu = np.asarray(mu, dtype=np.float64)
    corr = np.asarray(corr, dtype=np.float64)
    w, v = np.linalg.eigh(0.5 * (mu + np.swapaxes(mu, 1, 2)))
    log_mu = np.einsum("nij,nj,nkj->nik", v, np.log(w), v)
    log_mu[:, 0, 0] += corr[:, 0]
    log_mu[:, 1, 1] += corr[:, 1]
    log_mu[:, 0, 1] += corr[:, 2]
    log_mu[:, 1, 0] += corr[:, 2]
    w, v = np.linalg.eigh(log_mu)
    return np.einsum("nij,nj,nkj->nik", v, np.exp(w), v)
