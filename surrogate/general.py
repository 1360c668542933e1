"""The general 2D model: any two-phase image, any phase permeabilities, an error bound per answer.

The network sees a cell in its canonical form (:mod:`surrogate.general_features`): the
strong-phase mask reduced to a grid of blocks of about 8 pixels (fraction and line bounds per
block at the cell's contrast) and whole-cell features. It is fully convolutional with global
pooling, so it takes any cell size and rectangular cells. Its output is mapped into the rigorous
bounds of the cell:

* ``log mu*_kk = log L_k + s_k (log U_k - log L_k)`` with ``s_k`` in (0, 1) and ``[L_k, U_k]``
  the line bounds of the diagonal (:func:`~surrogate.general_features.line_bounds`);
* ``mu*_12 = rho sqrt(mu*_11 mu*_22)`` with ``|rho| < 1`` (SPD);
* eigenvalues clipped into the Wiener bounds of the strong-phase fraction;
* times ``mu_low``: scaling and phase exchange hold exactly.

Every answer carries ``rel_error_bound``: the smaller of the rigorous bound the line bounds give
on the diagonal (where they are tight, e.g. laminates and aligned fibres) and a calibrated bound
``alpha * (sigma + spread) + beta``, where ``sigma`` is the network's own error estimate (a second
output trained on the magnitude of its error), ``spread`` the scatter of its answers over the
symmetries of the square, and ``alpha``, ``beta`` chosen on a calibration set that the network
did not see (:func:`calibrate`). Relative error means ``max(|d mu_11| / mu_11, |d mu_22| / mu_22,
|d mu_12| / (tr mu / 2))``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from magnetohom.errors import InputError
from surrogate.general_features import (
    GRID_FEATURES,
    MAX_LOG10_CONTRAST,
    canonical_form,
    check_contrast,
    features,
    line_bound_error,
    wiener_bounds,
)

__all__ = [
    "FE_BOUND",
    "GeneralModel",
    "GeneralPrediction",
    "GeneralProvider",
    "ProviderAnswer",
    "fall_back_to_fe",
    "build_general_network",
    "calibrate",
    "relative_error",
    "train_general",
]

logger = logging.getLogger(__name__)

BLOCK = 8
#: Fewest cells per thread of :meth:`GeneralModel.predict`.
_MIN_CHUNK = 16
N_GRID, N_GLOBAL = GRID_FEATURES, 7
#: Grid channels a :func:`_apply_symmetry` transposition swaps (x1 <-> x2 quantities).
_TRANSPOSE = [0, 3, 4, 1, 2, 7, 8, 5, 6, 9, 11, 10, 13, 12]
#: The eight symmetries of the square as (transpose, flip axis 0, flip axis 1).
D4 = [(t, a, b) for t in (False, True) for a in (False, True) for b in (False, True)]


def relative_error(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Worst-component relative error of 2x2 tensors.

    Parameters
    ----------
    pred, ref : ndarray of float64, shape (N, 2, 2)

    Returns
    -------
    ndarray of float64, shape (N,)
        ``max(|d mu_11| / mu_11, |d mu_22| / mu_22, |d mu_12| / (tr mu / 2))`` with ``mu = ref``.
    """
    d = np.abs(pred - ref)
    half_trace = 0.5 * (ref[:, 0, 0] + ref[:, 1, 1])
    return np.max(
        np.stack([d[:, 0, 0] / ref[:, 0, 0], d[:, 1, 1] / ref[:, 1, 1], d[:, 0, 1] / half_trace]),
        axis=0,
    )


# --------------------------------------------------------------------------- features / symmetry


def _apply_symmetry(grid, glob, bounds, op):
    """Features of the transformed cell; ``op = (transpose, flip0, flip1)``.

    Exact for cells whose sides the blocks divide: a flip maps blocks onto blocks, and the
    ``+x`` face of a block onto the ``+x`` face of the block before it (hence the roll).
    """
    transpose, flip0, flip1 = op
    if flip0:
        grid = grid[:, ::-1].copy()
        grid[..., [5, 6, 12]] = np.roll(grid[..., [5, 6, 12]], -1, axis=1)
    if flip1:
        grid = grid[:, :, ::-1].copy()
        grid[..., [7, 8, 13]] = np.roll(grid[..., [7, 8, 13]], -1, axis=2)
    if transpose:
        grid = np.swapaxes(grid, 1, 2)[..., _TRANSPOSE]
        glob = glob[:, [0, 3, 4, 1, 2, 5, 6]] * np.array([1, 1, 1, 1, 1, 1, -1], np.float32)
        bounds = bounds[:, ::-1]
    return np.ascontiguousarray(grid), glob, bounds


def _target_symmetry(y, op):
    """``[log mu_11, log mu_22, rho]`` of the transformed cell."""
    transpose, flip0, flip1 = op
    y = y.copy()
    if flip0 != flip1:
        y[:, 2] = -y[:, 2]
    if transpose:
        y[:, [0, 1]] = y[:, [1, 0]]
    return y


def _untransform(mu, op):
    """Tensors of the transformed cell mapped back to the original cell's axes."""
    transpose, flip0, flip1 = op
    mu = mu.copy()
    if transpose:
        mu = mu[:, ::-1, ::-1]
    if flip0 != flip1:
        mu[:, 0, 1] = -mu[:, 0, 1]
        mu[:, 1, 0] = -mu[:, 1, 0]
    return mu


def _features(strong, contrast):
    return features(strong, contrast, block=BLOCK)


def _targets(mu_norm):
    """``[log mu_11, log mu_22, rho]`` of normalized tensors ``(N, 2, 2)``."""
    d = np.sqrt(mu_norm[:, 0, 0] * mu_norm[:, 1, 1])
    return np.stack(
        [np.log(mu_norm[:, 0, 0]), np.log(mu_norm[:, 1, 1]), mu_norm[:, 0, 1] / d], axis=1
    ).astype(np.float32)


# --------------------------------------------------------------------------- network


def build_general_network(*, width: int = 24, depth: int = 4, seed: int = 0, coarse: str = "faces"):
    """The general network (Keras), fully convolutional on the block grid.

    ``[grid (N, m1, m2, 14), global (N, 7)] -> [faces (N, m1, m2, 2), log_sigma (N, 1),
    correction (N, 3)]``: the logits of the conductances of the ``+x1`` and ``+x2`` face of every
    block, the log of the network's own error estimate, and a correction of the coarse solve's
    matrix logarithm (what face conductances cannot carry: an anisotropy finer than a block).
    :func:`_answer_tf` turns them into tensors.

    Parameters
    ----------
    width : int
        Channels of the convolutions.
    depth : int
        Number of 3x3 periodic convolutions (receptive field ``2 depth + 1`` blocks), plus one
        context branch at half resolution.
    seed : int
    coarse : {"faces", "tensors"}
        What the head predicts for the coarse solve: two face conductances per block
        (:mod:`surrogate.coarse_solve`, layer ``face_logits``) or a full SPD tensor per block on
        a coarse Q1 grid (:mod:`surrogate.coarse_q1`, layer ``tensor_logits``: two log
        eigenvalues and an angle), which carries oblique anisotropy inside a block.

    Returns
    -------
    keras.Model
    """
    import keras

    _check_coarse(coarse)

    from surrogate.layers import PeriodicPad

    keras.utils.set_random_seed(seed)
    grid = keras.Input((None, None, N_GRID), name="grid")
    glob = keras.Input((N_GLOBAL,), name="global")
    g = keras.layers.Dense(width, activation="gelu", name="global_embed")(glob)
    x = keras.layers.Conv2D(width, 1, activation="gelu", name="lift")(grid)
    x = x + keras.layers.Reshape((1, 1, width), name="global_broadcast")(g)
    for j in range(depth):
        y = PeriodicPad(1, name=f"pad{j}")(x)
        y = keras.layers.Conv2D(width, 3, activation="gelu", name=f"conv{j}")(y)
        x = x + y if j else y
    head, channels = HEADS[coarse]
    faces = keras.layers.Conv2D(channels, 1, name=head)(x)
    h = keras.layers.Concatenate(name="pooled")(
        [keras.layers.GlobalAveragePooling2D(name="gap")(x), glob]
    )
    h = keras.layers.Dense(48, activation="gelu", name="head_dense")(h)
    log_sigma = keras.layers.Dense(1, name="log_sigma")(h)
    correction = keras.layers.Dense(3, kernel_initializer="zeros", name="correction")(h)
    return keras.Model([grid, glob], [faces, log_sigma, correction], name="general")


#: Band edges of ``|log10 contrast|`` of the calibrated bound (one ``alpha`` per band).
CONTRAST_EDGES = (1.0, 2.0, 3.0)
#: Class edges of the cell side ``sqrt(n1 n2)`` in pixels of the calibrated bound: small cells
#: (a grid of fewer than 14 blocks a side) err more and are calibrated on their own rows.
SIZE_EDGES = (112.0,)

#: The coarse solves of the general network: the head layer's name and its channels per block.
HEADS = {"faces": ("face_logits", 2), "tensors": ("tensor_logits", 3)}


def _check_coarse(coarse: str) -> None:
    if coarse not in HEADS:
        raise InputError(f"coarse must be one of {', '.join(HEADS)}: got {coarse!r}")


#: Fit losses of :func:`train_general`, and the Huber loss's change from squares to absolute
#: values (in ``log mu``: a 1 % error).
LOSSES, HUBER_DELTA = ("mse", "huber"), 0.01

#: CG tolerance and iteration limit of the coarse solve (answers; training uses 1e-4 in float32).
SOLVE_TOL, SOLVE_MAX_IT = 1e-7, 3000


def _mu_tf(
    logits, log_c, *, coarse: str = "faces", tol: float = SOLVE_TOL, solve_dtype: str = "float64"
):
    """Normalized tensors ``mu* / mu_low`` (N, 2, 2) float64 of the head's logits (TensorFlow).

    Faces: conductances ``c ** sigmoid(logit)``, in ``[1, c]`` like the pixels'. Tensors:
    :func:`surrogate.coarse_q1.tensor_of_logits` (eigenvalues in ``[1, c]``).
    """
    import tensorflow as tf

    if coarse == "tensors":
        from surrogate.coarse_q1 import homogenize_tensors, tensor_of_logits

        k = tensor_of_logits(logits, log_c)
        return homogenize_tensors(k, tol=tol, max_iterations=SOLVE_MAX_IT, solve_dtype=solve_dtype)
    from surrogate.coarse_solve import homogenize_faces

    z = tf.sigmoid(tf.cast(logits, tf.float64))
    k = tf.exp(tf.cast(log_c, tf.float64)[:, None, None, None] * z)
    return homogenize_faces(k, tol=tol, max_iterations=SOLVE_MAX_IT, solve_dtype=solve_dtype)


def _expm_sym2(l11, l22, l12):
    """Matrix exponential of symmetric 2x2 matrices given by their entries (TensorFlow)."""
    import tensorflow as tf

    m = 0.5 * (l11 + l22)
    c = 0.5 * (l11 - l22)
    q2 = c * c + l12 * l12
    small = q2 < 1e-12
    q = tf.sqrt(tf.where(small, tf.ones_like(q2), q2))
    sinhc = tf.where(small, 1.0 + q2 / 6.0, tf.sinh(q) / q)
    cosh = tf.where(small, 1.0 + q2 / 2.0, tf.cosh(q))
    e = tf.exp(m)
    a11 = e * (cosh + sinhc * c)
    a22 = e * (cosh - sinhc * c)
    a12 = e * sinhc * l12
    return tf.stack([tf.stack([a11, a12], -1), tf.stack([a12, a22], -1)], axis=1)


def _answer_tf(
    net,
    grid,
    glob,
    log_c,
    *,
    coarse="faces",
    training=False,
    tol=SOLVE_TOL,
    solve_dtype="float64",
):
    """Normalized tensors ``mu* / mu_low`` (N, 2, 2) float64 and log error estimates (N,)."""
    logits, log_sigma, corr = net([grid, glob], training=training)
    mu = _mu_tf(logits, log_c, coarse=coarse, tol=tol, solve_dtype=solve_dtype)
    return _corrected(mu, corr), log_sigma[:, 0]


def _corrected(mu, corr):
    """The coarse solve's tensors ``mu`` (N, 2, 2) with the network's correction of their
    matrix logarithm (N, 3) applied (TensorFlow, float64)."""
    import tensorflow as tf

    from surrogate.coarse_solve import logm_spd2

    log_mu = logm_spd2(tf.cast(mu, tf.float64))  # Mandel: L11, L22, sqrt(2) L12
    corr = tf.cast(corr, tf.float64)
    l11 = log_mu[:, 0] + corr[:, 0]
    l22 = log_mu[:, 1] + corr[:, 1]
    l12 = log_mu[:, 2] / np.sqrt(2.0) + corr[:, 2]
    return _expm_sym2(l11, l22, l12)


def _answer_np(net, grid, glob, log_c, *, coarse: str = "faces"):
    """What :func:`_answer_tf` computes, without TensorFlow: ``net(grid, glob)`` gives the
    network's outputs (e.g. :func:`surrogate.general_forward.forward`), the coarse solve is a
    sparse direct solve (exact, and on a CPU several times faster than the conjugate gradient).
    Returns numpy arrays (N, 2, 2) and (N,)."""
    from surrogate.coarse_direct import homogenize_faces_direct, homogenize_tensors_direct
    from surrogate.coarse_q1 import tensor_of_logits_np
    from surrogate.general_forward import corrected

    logits, log_sigma, corr = (np.asarray(t, dtype=np.float64) for t in net(grid, glob))
    log_c = np.asarray(log_c, dtype=np.float64)
    if coarse == "tensors":
        mu = homogenize_tensors_direct(tensor_of_logits_np(logits, log_c))
    else:
        k = np.exp(log_c[:, None, None, None] / (1.0 + np.exp(-logits)))
        mu = homogenize_faces_direct(k)
    return corrected(mu, corr), log_sigma[:, 0]


def _components_tf(mu):
    """``[log mu_11, log mu_22, rho]`` (N, 3) of SPD tensors (TensorFlow)."""
    import tensorflow as tf

    m11, m22, m12 = mu[:, 0, 0], mu[:, 1, 1], mu[:, 0, 1]
    return tf.stack([tf.math.log(m11), tf.math.log(m22), m12 / tf.sqrt(m11 * m22)], axis=1)


def _clip_eigenvalues(mu, lower, upper):
    w, v = np.linalg.eigh(mu)
    w = np.clip(w, lower[:, None], upper[:, None])
    return np.einsum("nij,nj,nkj->nik", v, w, v)


# --------------------------------------------------------------------------- prediction


@dataclass(frozen=True)
class GeneralPrediction:
    """Answers of the general model for a batch.

    Attributes
    ----------
    mu_eff : ndarray of float64, shape (N, 2, 2)
        Effective relative permeability, SPD, scaling and phase exchange exact.
    rel_error_bound : ndarray of float64, shape (N,)
        Bound on :func:`relative_error` against the FE label (fraction).
    rigorous : ndarray of bool, shape (N,)
        True where the bound is the rigorous one (line bounds), not the calibrated one.
    volume_fraction : ndarray of float64, shape (N,)
        Inclusion (``True`` pixels) fraction.
    """

    mu_eff: np.ndarray
    rel_error_bound: np.ndarray
    rigorous: np.ndarray
    volume_fraction: np.ndarray


class GeneralModel:
    """A trained general network with its calibration.

    Parameters
    ----------
    path : str or Path
        Directory with ``general.keras`` and ``metadata.json``.
    tta : int
        Number of symmetries of the square averaged over (1, 2, 4 or 8); the spread over them
        enters the bound. The calibration is tied to it: the default is the calibrated one.
    batch_size : int
    metadata : dict, optional
        Use this instead of ``path / "metadata.json"`` (which must still exist), e.g. to
        calibrate without touching the stored file.
    workers : int, optional
        Threads that answer chunks of a batch (default: the CPUs this process may use); the
        answers do not depend on it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        tta: int | None = None,
        batch_size: int = 256,
        metadata: dict[str, Any] | None = None,
        workers: int | None = None,
    ) -> None:
        from surrogate.general_forward import load_weights

        path = Path(path)
        meta_path = path / "metadata.json"
        if not meta_path.is_file():
            raise InputError(f"{path} is not a general model (no metadata.json)")
        self.metadata = json.loads(meta_path.read_text()) if metadata is None else metadata
        if self.metadata.get("kind") != "general":
            raise InputError(f"{path} is not a general model (kind {self.metadata.get('kind')!r})")
        self.name = str(self.metadata.get("name", path.name))
        self.path = path
        self.weights = load_weights(path / "general.keras")  # a truncated file: one line
        self._network = None
        cal = self.metadata.get("calibration", {})
        self.tta = int(tta if tta is not None else cal.get("tta", 2))
        if self.tta not in (1, 2, 4, 8):
            raise InputError(f"tta must be 1, 2, 4 or 8: got {self.tta}")
        # the calibration of this number of symmetries: the default one, or one of the others
        # (``calibrations``, by tta), or none (only the rigorous part of the bound)
        others = self.metadata.get("calibrations", {})
        if "tta" in cal and int(cal["tta"]) != self.tta:
            if str(self.tta) in others:
                cal = others[str(self.tta)]
            else:
                # the spread over other symmetries is another statistic: the calibrated
                # factors do not hold for it
                logger.warning(
                    "%s: its error bound is calibrated for tta %s, not %d: the answers carry "
                    "only the rigorous (line) bound",
                    self.name,
                    ", ".join(sorted({str(cal["tta"]), *others})),
                    self.tta,
                )
                cal = {"alpha": np.inf, "tta": self.tta}
        # alpha: one number, one per band of |log10 contrast| split at ``contrast_edges``, or
        # one row of those per class of cell side split at ``size_edges``
        self.contrast_edges = np.asarray(cal.get("contrast_edges", []), dtype=np.float64)
        self.size_edges = np.asarray(cal.get("size_edges", []), dtype=np.float64)
        alpha = np.asarray(cal.get("alpha", np.inf), dtype=np.float64)
        shape = (self.size_edges.size + 1, self.contrast_edges.size + 1)
        if alpha.size != shape[0] * shape[1] or alpha.ndim > 2:
            raise InputError(
                f"{meta_path}: calibration has {alpha.size} alpha values for "
                f"{shape[1]} contrast bands in {shape[0]} size classes"
            )
        self.alpha = alpha.reshape(shape)
        self.beta = float(cal.get("beta", 0.0))
        # the coarse solve the network was trained with, as its head layer says
        self.coarse = _coarse_of([self.weights.head])
        self.batch_size = int(batch_size)
        if workers is None:
            workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        if int(workers) < 1:
            raise InputError(f"workers must be >= 1: got {workers}")
        self.workers = int(workers)

    @property
    def network(self):
        """The Keras network (loaded on first use; answers do not need it)."""
        if self._network is None:
            import keras

            import surrogate.layers  # noqa: F401  (registers PeriodicPad)

            file = self.path / "general.keras"
            try:
                self._network = keras.models.load_model(file, compile=False)
            except Exception as exc:  # a truncated or foreign file
                raise InputError(f"cannot load {file}: {exc}") from None
        return self._network

    def _alpha(self, contrast: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """The calibrated factor of every answer's band of contrast and class of cell size
        (cells of ``shape``), shape (N,)."""
        band = _contrast_band(contrast, self.contrast_edges)
        return self.alpha[_size_class(shape, self.size_edges), band]

    @property
    def ops(self) -> list[tuple[bool, bool, bool]]:
        """The symmetries used (identity first)."""
        return {1: D4[:1], 2: [D4[0], D4[7]], 4: [D4[0], D4[3], D4[5], D4[6]], 8: D4}[self.tta]

    def _run(self, grid, glob, log_c):
        """Normalized tensors (N, 2, 2) and error estimates (N,) of feature batches."""
        from surrogate.general_forward import forward

        def net(g, h):
            return forward(self.weights, g, h)

        mus, sig = [], []
        for i in range(0, grid.shape[0], self.batch_size):
            sl = slice(i, i + self.batch_size)
            mu, ls = _answer_np(net, grid[sl], glob[sl], log_c[sl], coarse=self.coarse)
            mus.append(mu)
            sig.append(np.exp(ls))
        return np.concatenate(mus), np.concatenate(sig)

    def _answer_chunk(self, strong, contrast):
        """Mean normalized tensor over the symmetries (N, 2, 2), error estimate (N,), spread
        (N,) and line bounds (N, 2, 2) of canonical cells."""
        grid, glob, bounds = _features(strong, contrast)
        log_c = np.log(contrast)
        answers = []
        for op in self.ops:
            g, h, _ = _apply_symmetry(grid, glob, bounds, op)
            mu_op, sigma_op = self._run(g, h, log_c)
            answers.append((_untransform(mu_op, op), sigma_op))
        mus = np.stack([a[0] for a in answers])
        mu = mus.mean(axis=0)
        sigma = np.mean([a[1] for a in answers], axis=0)
        spread = np.max([relative_error(m, mu) for m in mus], axis=0)
        return mu, sigma, spread, bounds

    def predict(
        self,
        images: np.ndarray,
        *,
        mu_matrix: float | np.ndarray,
        mu_inclusion: float | np.ndarray,
    ) -> GeneralPrediction:
        """Effective tensors and error bounds of a batch of one image shape.

        Parameters
        ----------
        images : ndarray of bool, shape (N, n1, n2)
            True = inclusion; any ``n1, n2 >= 16``.
        mu_matrix, mu_inclusion : float or ndarray of shape (N,)
            Relative permeabilities of the phases (> 0); their contrast at most 1e4 either way.

        Returns
        -------
        GeneralPrediction
        """
        images = np.asarray(images, dtype=bool)
        if images.ndim != 3:
            raise InputError(
                f"model {self.name!r} takes 2D images (N, n1, n2): got shape {images.shape}"
            )
        if min(images.shape[1:]) < 16:
            raise InputError(
                f"model {self.name!r} takes images of at least 16 x 16 pixels: got "
                f"{images.shape[1]} x {images.shape[2]}"
            )
        strong, mu_low, contrast = canonical_form(images, mu_matrix, mu_inclusion)
        check_contrast(contrast)
        n = strong.shape[0]
        # chunks answered in threads: the compiled kernels and numpy release the GIL
        parts = max(1, min(self.workers, n // _MIN_CHUNK))
        edges = np.linspace(0, n, parts + 1).astype(int)
        chunks = [slice(a, b) for a, b in itertools.pairwise(edges)]
        if parts == 1:
            answers = [self._answer_chunk(strong, contrast)]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(parts) as pool:
                answers = list(
                    pool.map(lambda sl: self._answer_chunk(strong[sl], contrast[sl]), chunks)
                )
        mu, sigma, spread, bounds = (np.concatenate(a) for a in zip(*answers))
        f = strong.reshape(strong.shape[0], -1).mean(axis=1)
        lo_w, up_w = wiener_bounds(f, contrast)
        mu = _clip_eigenvalues(mu, lo_w, up_w)
        # the diagonal lies in its line bounds: clip it there (moving only toward the label)
        for k in (0, 1):
            mu[:, k, k] = np.clip(mu[:, k, k], bounds[:, k, 0], bounds[:, k, 1])
        cap = 0.999 * np.sqrt(mu[:, 0, 0] * mu[:, 1, 1])
        mu[:, 0, 1] = mu[:, 1, 0] = np.clip(mu[:, 0, 1], -cap, cap)
        rig = line_bound_error(mu, bounds)
        cal = self._alpha(contrast, images.shape[1:]) * (sigma + spread) + self.beta
        bound = np.minimum(rig, cal)
        vf = images.reshape(images.shape[0], -1).mean(axis=1)
        return GeneralPrediction(
            mu_eff=mu * mu_low[:, None, None],
            rel_error_bound=bound,
            rigorous=rig <= cal,
            volume_fraction=vf,
        )


# --------------------------------------------------------------------------- training


def _load_rows(paths: Sequence[str | Path]):
    from micro.mixed_dataset import load_mixed_dataset

    groups = []
    for p in paths:
        d = load_mixed_dataset(p)
        strong, mu_low, contrast = canonical_form(d.images, d.mu_phases[:, 0], d.mu_phases[:, 1])
        grid, glob, bounds = _features(strong, contrast)
        y = _targets(d.mu_eff / mu_low[:, None, None])
        groups.append(
            {
                "grid": grid,
                "glob": glob,
                "bounds": bounds,
                "logc": np.log(contrast),
                "y": y,
                "mu": d.mu_eff / mu_low[:, None, None],
                "kinds": d.kinds,
                "file": str(Path(p).name),
            }
        )
    return groups


def _subset(group: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    return {k: (v[mask] if isinstance(v, np.ndarray) else v) for k, v in group.items()}


def _batches(groups, batch_size, rng, augment=True):
    """Shuffled batches of one grid shape and similar contrasts each (the coarse solve's
    iterations grow with the largest contrast of a batch), a random symmetry per batch."""
    order = []
    for gi, g in enumerate(groups):
        noisy = g["logc"] + rng.uniform(0, 1.0, len(g["logc"]))
        idx = np.argsort(noisy, kind="stable")
        for s in range(0, idx.size, batch_size):
            order.append((gi, idx[s : s + batch_size]))
    rng.shuffle(order)
    for gi, idx in order:
        g = groups[gi]
        op = D4[int(rng.integers(8))] if augment else D4[0]
        grid, glob, _ = _apply_symmetry(g["grid"][idx], g["glob"][idx], g["bounds"][idx], op)
        yield grid, glob, g["logc"][idx], _target_symmetry(g["y"][idx], op)


def train_general(
    train_files: Sequence[str | Path],
    out: str | Path,
    *,
    val_files: Sequence[str | Path] = (),
    val_fraction: float = 0.0,
    epochs: int = 30,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    width: int | None = None,
    depth: int | None = None,
    seed: int = 0,
    name: str = "general",
    init: str | Path | None = None,
    coarse: str = "faces",
    loss: str = "mse",
    interpolate: float = 1.0,
) -> dict[str, Any]:
    """Train the general network on mixed datasets (:mod:`micro.mixed_dataset`).

    The weights of the best validation epoch are written to ``out/best.keras`` after every
    improvement; a killed run restarts from the last saved weights and epoch. At the end (also
    when a finished run is run again, with the same result) the model is made from the best
    weights: interpolated with the starting model's (``interpolate``), its error estimate
    refitted on the validation rows (:func:`_refit_error_head`), written to
    ``out/general.keras`` with ``out/metadata.json`` (without calibration; see
    :func:`calibrate`).

    Parameters
    ----------
    train_files, val_files : sequence of paths
    val_fraction : float
        Share of the rows of each training file held out for validation instead (seeded by
        ``seed``).
    out : str or Path
        Model directory.
    epochs, batch_size, learning_rate, seed
        Training options (Adam with cosine decay).
    width, depth : int, optional
        Channels and 3x3 convolutions of the network (default 24 and 4, or the ``init``
        model's own; more than the ``init`` model's widens or deepens it, see
        :func:`_network_from`). A resumed run keeps its own.
    name : str
        The model's name in messages.
    init : str or Path, optional
        A general model directory (or its ``.keras`` file) whose weights start a new run
        (fine-tuning with a fresh schedule).
        Ignored when ``out`` holds a run to resume. A ``faces`` model can start a ``tensors``
        one: every layer but the head is copied, and the head's two eigenvalue channels start
        from the face channels (angle 0).
    coarse : {"faces", "tensors"}
        The coarse solve (:func:`build_general_network`); a resumed run keeps its own.
    loss : {"mse", "huber"}
        The fit term on the errors of ``[log mu_11, log mu_22, rho]``: squared, or Huber with
        :data:`HUBER_DELTA` (linear beyond it: the mean absolute error that the MAPE measures,
        rather than the squares that a few high-contrast outliers dominate).
    interpolate : float
        In (0, 1]: the model keeps ``interpolate * best + (1 - interpolate) * init`` weights, a
        weight-space ensemble of the fine-tuned and the starting network (WiSE-FT, Wortsman et
        al. 2022: a fine-tuning run and its start lie in one basin, and the interpolation keeps
        what each does better). 1 keeps the best weights; below 1 needs ``init``.

    Returns
    -------
    dict
        History: ``loss`` and ``val_mape`` per epoch and wall time.
    """
    import keras
    import tensorflow as tf

    _check_coarse(coarse)
    if loss not in LOSSES:
        raise InputError(f"loss must be one of {', '.join(LOSSES)}: got {loss!r}")
    if not 0 < interpolate <= 1:
        raise InputError(f"interpolate must be in (0, 1]: got {interpolate}")
    if interpolate < 1 and init is None:
        raise InputError("interpolate below 1 needs init: the model to interpolate with")
    out = Path(out)
    rng = np.random.default_rng(seed)
    init_file = _init_file(init) if init is not None else None
    train = _load_rows(train_files)  # bad data: an error before anything is written
    val = _load_rows(val_files) if val_files else []
    out.mkdir(parents=True, exist_ok=True)
    if val_fraction > 0:
        split_rng = np.random.default_rng(seed + 1)
        for i, g in enumerate(train):
            held = split_rng.random(len(g["y"])) < val_fraction
            val.append(_subset(g, held))
            train[i] = _subset(g, ~held)
    n_train = sum(len(g["y"]) for g in train)
    state_path = out / "train_state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else None
    import surrogate.layers  # noqa: F401  (registers PeriodicPad for loading)

    if state is not None and (out / "last.keras").is_file():
        net = keras.models.load_model(out / "last.keras", compile=False)
        start, history = int(state["epoch"]), state["history"]
        logger.info("resuming at epoch %d", start)
    elif init_file is not None:
        net = _network_from(
            keras.models.load_model(init_file, compile=False), coarse, seed, width, depth
        )
        start, history = 0, {"loss": [], "val_mape": [], "seconds": []}
        logger.info("starting from the weights of %s", init_file)
    else:
        net = build_general_network(width=width or 24, depth=depth or 4, seed=seed, coarse=coarse)
        start, history = 0, {"loss": [], "val_mape": [], "seconds": []}
    # what a resumed or carried-over network is, whatever the arguments said
    width, depth, coarse = *_width_depth(net), _coarse_of(layer.name for layer in net.layers)
    steps = epochs * int(np.ceil(n_train / batch_size)) + 1
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.02)
    opt = keras.optimizers.Adam(schedule)
    opt.iterations.assign(start * int(np.ceil(n_train / batch_size)))
    w = tf.constant([1.0, 1.0, 1.0])
    huber = loss == "huber"

    @tf.function
    def step(grid, glob, logc, y):
        with tf.GradientTape() as tape:
            mu, u = _answer_tf(net, grid, glob, logc, coarse=coarse, training=True, tol=1e-4,
                               solve_dtype="float32")  # fmt: skip
            pred = tf.cast(_components_tf(mu), tf.float32)
            err = tf.abs(pred - y)
            if huber:
                d = HUBER_DELTA
                per = tf.where(err < d, 0.5 * err**2 / d, err - 0.5 * d)
            else:
                per = err**2
            fit = tf.reduce_mean(tf.reduce_sum(w * per, axis=1))
            size = tf.stop_gradient(tf.reduce_max(err, axis=1))
            nll = tf.reduce_mean(size * tf.exp(-u) + u)
            loss = fit + 1e-3 * nll
        grads = tape.gradient(loss, net.trainable_variables)
        opt.apply_gradients(zip(grads, net.trainable_variables))
        return fit

    best = min(history["val_mape"]) if history["val_mape"] else np.inf
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        losses = []
        for b in _batches(train, batch_size, rng):
            losses.append(float(step(*b)))
            if len(losses) % 50 == 0:
                logger.info("epoch %d: %d steps, loss %.3g", epoch + 1, len(losses),
                            np.mean(losses[-50:]))  # fmt: skip
        val_mape = _val_mape(net, val, coarse) if val else float(np.mean(losses))
        history["loss"].append(float(np.mean(losses)))
        history["val_mape"].append(val_mape)
        history["seconds"].append(time.perf_counter() - t0)
        logger.info(
            "epoch %d/%d loss %.3g val MAPE %.3f %% (%.0f s)",
            epoch + 1,
            epochs,
            history["loss"][-1],
            100 * val_mape,
            history["seconds"][-1],
        )
        if val_mape < best:
            best = val_mape
            net.save(out / "best.keras")
        net.save(out / "last.keras")
        state_path.write_text(json.dumps({"epoch": epoch + 1, "history": history}))
    # runs made before best.keras existed kept their best weights in general.keras
    best_file = out / "best.keras" if (out / "best.keras").is_file() else out / "general.keras"
    final = keras.models.load_model(best_file, compile=False)
    if interpolate < 1:
        start_net = _network_from(
            keras.models.load_model(init_file, compile=False), coarse, seed, width, depth
        )
        final.set_weights(
            [interpolate * w + (1 - interpolate) * w0
             for w, w0 in zip(final.get_weights(), start_net.get_weights())]
        )  # fmt: skip
    error_head = _refit_error_head(final, val, coarse) if val else None
    tmp = out / "general.partial.keras"
    final.save(tmp)
    tmp.replace(out / "general.keras")
    meta = {
        "kind": "general",
        "name": name,
        "width": width,
        "depth": depth,
        "block": BLOCK,
        "coarse": coarse,
        "loss": loss,
        "train_files": [Path(p).name for p in train_files],
        "val_files": [Path(p).name for p in val_files],
        "val_fraction": val_fraction,
        "n_train": n_train,
        "epochs": epochs,
        "history": history,
    }
    if interpolate < 1:
        meta["interpolate"] = interpolate
    if error_head is not None:
        meta["error_head"] = error_head
    if init_file is not None:
        named = init_file.name == "general.keras"
        meta["init"] = init_file.parent.name if named else init_file.name
    old = out / "metadata.json"
    if old.is_file():
        meta["calibration"] = json.loads(old.read_text()).get("calibration", {})
    old.write_text(json.dumps(meta, indent=1))
    return history


def _refit_error_head(net, groups, coarse: str = "faces") -> dict[str, float]:
    """Refit the network's error estimate (layer ``log_sigma``) on held-out rows, in place.

    The head is affine in the pooled features ``h`` (layer ``head_dense``): ``u = w . h + b``,
    and its training term ``mean(e exp(-u) + u)`` (``e`` the row's largest error of
    ``[log mu_11, log mu_22, rho]``, minimal at ``exp(u) = E[e | h]``) is convex in ``(w, b)``:
    a damped Newton iteration reaches its minimum. Rows the network never trained on give it
    the errors it makes on new cells; only ``log_sigma`` changes, so the answers do not.

    Returns
    -------
    dict
        ``rows``, and the term before and after (``nll_before``, ``nll_after``).
    """
    import keras
    import tensorflow as tf

    sub = keras.Model(net.inputs, [net.get_layer("head_dense").output, *net.outputs])

    def forward(grid, glob, logc):
        h, logits, _, corr = sub([grid, glob])
        return h, _components_tf(_corrected(_mu_tf(logits, logc, coarse=coarse), corr))

    feats, errs = [], []
    for g in groups:
        traced = tf.function(forward)  # one per group: the coarse solve needs static sizes
        for i in range(0, len(g["y"]), 256):
            sl = slice(i, i + 256)
            h, comp = traced(g["grid"][sl], g["glob"][sl], g["logc"][sl])
            feats.append(np.asarray(h, np.float64))
            errs.append(np.abs(comp.numpy() - g["y"][sl]).max(axis=1))
    x = np.concatenate(feats)
    x = np.c_[x, np.ones(len(x))]
    e = np.concatenate(errs).astype(np.float64)
    kernel, bias = net.get_layer("log_sigma").get_weights()
    theta = np.r_[kernel[:, 0], bias].astype(np.float64)

    def term(t):
        u = x @ t
        return float(np.mean(e * np.exp(-u) + u))

    before = term(theta)
    for _ in range(100):
        r = e * np.exp(-(x @ theta))
        grad = x.T @ (1.0 - r) / len(e)
        hess = (x * r[:, None]).T @ x / len(e) + 1e-8 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        t, now = 1.0, term(theta)
        while term(theta - t * step) > now - 1e-4 * t * (grad @ step) and t > 1e-8:
            t /= 2
        theta = theta - t * step
        if np.abs(grad).max() < 1e-10:
            break
    after = term(theta)
    if after > before:  # cannot happen but for round-off: keep the trained head
        return {"rows": int(len(e)), "nll_before": before, "nll_after": before}
    net.get_layer("log_sigma").set_weights(
        [theta[:-1, None].astype(kernel.dtype), theta[-1:].astype(bias.dtype)]
    )
    logger.info("error head refitted on %d held-out rows: %.4f -> %.4f", len(e), before, after)
    return {"rows": int(len(e)), "nll_before": before, "nll_after": after}


def _init_file(init: str | Path) -> Path:
    """The ``.keras`` file of a general model given as a directory or a file."""
    path = Path(init)
    path = path / "general.keras" if path.is_dir() else path
    if not path.is_file() or path.suffix != ".keras":
        raise InputError(f"--init: {init} is neither a general model directory nor a .keras file")
    try:
        import zipfile

        with zipfile.ZipFile(path) as z:
            if z.testzip() is not None:
                raise zipfile.BadZipFile
    except (OSError, zipfile.BadZipFile):
        raise InputError(f"--init: {path} is not a readable .keras file") from None
    return path


def _network_from(net, coarse: str, seed: int, width: int | None = None,
                  depth: int | None = None):  # fmt: skip
    """``net`` itself if its head is ``coarse``'s, it takes today's grid features and has the
    ``width`` and ``depth`` asked for (None: its own), else a new network started from it that
    gives the same answers:

    * a ``tensors`` head from a ``faces`` one (eigenvalue channels from the faces, angle 0);
    * grid features added since: zero weights;
    * more channels (``width``): the new channels start from the new network's random weights,
      and every weight from a new channel into an old one is zero (Net2WiderNet-style, Chen et
      al. 2016, without the copy of units: the old channels compute what they computed, the new
      ones learn from there);
    * more convolutions (``depth``): the new residual layers start at zero, i.e. identities.

    Every other weight is copied.
    """
    own = _coarse_of(layer.name for layer in net.layers)
    channels = int(net.get_layer("lift").get_weights()[0].shape[2])
    old_width, old_depth = _width_depth(net)
    width = old_width if width is None else int(width)
    depth = old_depth if depth is None else int(depth)
    if width < old_width or depth < old_depth:
        raise InputError(
            f"--init: a network of width {old_width} and depth {old_depth} cannot start one of "
            f"width {width} and depth {depth} (only wider and deeper)"
        )
    same_shape = (width, depth) == (old_width, old_depth)
    if own == coarse and channels == N_GRID and same_shape:
        return net
    if own != coarse and coarse != "tensors":
        raise InputError("--init: a 'tensors' model cannot start a 'faces' one")
    if channels > N_GRID:
        raise InputError(
            f"--init: a model of {channels} grid features cannot start one of {N_GRID}"
        )
    new = build_general_network(width=width, depth=depth, seed=seed, coarse=coarse)
    for layer in net.layers:
        if not layer.weights or (layer.name == HEADS[own][0] and own != coarse):
            continue
        kernel, bias = layer.get_weights()
        fresh, fresh_bias = new.get_layer(layer.name).get_weights()
        k_in, k_out = kernel.shape[-2:]
        # rows of the old inputs in the new kernel: the pooled head reads [gap(x), global]
        rows = np.arange(k_in)
        if layer.name == "head_dense":
            rows = np.r_[np.arange(old_width), width + np.arange(k_in - old_width)]
        fresh[..., :k_out] = 0.0  # inputs new to an old channel: zero weights
        fresh[..., rows, :k_out] = kernel
        fresh_bias[:k_out] = bias
        new.get_layer(layer.name).set_weights([fresh, fresh_bias])
    for j in range(old_depth, depth):  # new residual convolutions: identities at the start
        conv = new.get_layer(f"conv{j}")
        conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    if own == coarse:
        return new
    kernel, bias = net.get_layer("face_logits").get_weights()
    k3 = np.zeros(kernel.shape[:-2] + (width, 3), kernel.dtype)
    k3[..., :old_width, :2] = kernel
    new.get_layer("tensor_logits").set_weights([k3, np.r_[bias, 0.0].astype(bias.dtype)])
    return new


def _width_depth(net) -> tuple[int, int]:
    """Channels and number of 3x3 convolutions of a general network."""
    depth = sum(1 for layer in net.layers if layer.name.startswith("conv"))
    return int(net.get_layer("lift").filters), depth


def _coarse_of(layer_names) -> str:
    """The coarse solve of a network with these layer names: its head layer's (:data:`HEADS`)."""
    names = set(layer_names)
    return next((c for c, (head, _) in HEADS.items() if head in names), "faces")


def _val_mape(net, groups, coarse: str = "faces") -> float:
    import tensorflow as tf

    @tf.function
    def forward(grid, glob, logc):
        return _answer_tf(net, grid, glob, logc, coarse=coarse)[0]

    errs = []
    for g in groups:
        for i in range(0, len(g["y"]), 256):
            sl = slice(i, i + 256)
            mu = forward(g["grid"][sl], g["glob"][sl], g["logc"][sl]).numpy()
            errs.append(relative_error(mu, g["mu"][sl]))
    return float(np.mean(np.concatenate(errs)))


def calibrate(
    model_dir: str | Path,
    cal_files: Sequence[str | Path],
    *,
    tta: int = 8,
    coverage: float = 0.995,
    beta: float = 0.002,
    contrast_edges: Sequence[float] = CONTRAST_EDGES,
    size_edges: Sequence[float] = SIZE_EDGES,
    default: bool | None = None,
) -> dict[str, Any]:
    """Choose ``alpha`` per band of contrast and class of cell size so that the bound covers
    ``coverage`` of each.

    The rows of ``cal_files`` must be rows the network was not trained or validated on. The
    bound is ``alpha (sigma + spread) + beta``, with one ``alpha`` per band of
    ``|log10 contrast|`` (split at ``contrast_edges``: the network's errors grow with the
    contrast, and one factor for all would over-cover low contrasts and under-cover high
    ones). In each band ``alpha`` is the split-conformal quantile of
    ``(error - beta) / (sigma + spread)``: the ``ceil((n + 1) coverage)``-th smallest of the
    band's ``n`` ratios (so that a new exchangeable row is covered with probability at least
    ``coverage``), rounded up. The bands are also split by the cell's side ``sqrt(n1 n2)`` at
    ``size_edges`` (pixels; a conditional, "Mondrian", calibration: small cells, of few blocks,
    err more than large ones at the same estimate). The result is stored in the model's
    ``metadata.json``.

    Parameters
    ----------
    model_dir : str or Path
    cal_files : sequence of paths
    tta : int
    coverage : float
    beta : float
        Floor of the bound (fraction).
    contrast_edges : sequence of float
        Increasing band edges in ``|log10 contrast|``; every band needs calibration rows.
    size_edges : sequence of float
        Increasing class edges of the cell side in pixels; every class of every band needs
        calibration rows.
    default : bool, optional
        Make this the model's default calibration (``calibration``: its ``tta`` is the number
        of symmetries that answers use unless told otherwise), or keep it beside the default
        (``calibrations``, by ``tta``: used when answers are asked for with that ``tta``).
        By default: the default when the model has none or its default has this ``tta``.

    Returns
    -------
    dict
        ``alpha`` (list of lists: one row per size class, one value per band),
        ``contrast_edges``, ``size_edges``, ``beta``, ``tta``, ``coverage`` (reached on the
        calibration set), ``n`` and ``n_band`` (rows per class and band).
    """
    from micro.mixed_dataset import load_mixed_dataset

    edges = np.asarray(contrast_edges, dtype=np.float64)
    sizes = np.asarray(size_edges, dtype=np.float64)
    for what, e in (("contrast", edges), ("size", sizes)):
        if e.ndim != 1 or np.any(np.diff(e) <= 0) or np.any(e <= 0):
            raise InputError(f"{what} edges must be positive and increasing: got {list(e)}")
    model_dir = Path(model_dir)
    meta_path = model_dir / "metadata.json"
    meta = json.loads(meta_path.read_text())
    current = meta.pop("calibration", None)  # a broken stored calibration is replaced
    others = meta.pop("calibrations", {})
    if not isinstance(current, dict):
        default = True  # nothing to keep beside
    elif default is None:
        default = current.get("tta") == tta
    model = GeneralModel(model_dir, tta=tta, metadata=meta)
    model.alpha, model.beta = np.ones((1, 1)), 0.0
    model.contrast_edges, model.size_edges = np.zeros(0), np.zeros(0)
    ratios, bands, classes = [], [], []
    for p in cal_files:
        d = load_mixed_dataset(p)
        pred = model.predict(d.images, mu_matrix=d.mu_phases[:, 0], mu_inclusion=d.mu_phases[:, 1])
        err = relative_error(pred.mu_eff, d.mu_eff)
        scale = pred.rel_error_bound  # alpha = 1, beta = 0: sigma + spread (or rigorous)
        ratios.append(np.where(pred.rigorous, 0.0, (err - beta) / np.maximum(scale, 1e-12)))
        contrast = d.mu_phases[:, 1] / d.mu_phases[:, 0]
        bands.append(_contrast_band(contrast, edges))
        classes.append(np.full(len(contrast), _size_class(d.images.shape[1:], sizes)))
    r, band, cls = np.concatenate(ratios), np.concatenate(bands), np.concatenate(classes)
    alpha = np.empty((sizes.size + 1, edges.size + 1))
    counts = np.zeros(alpha.shape, dtype=int)
    for c in range(sizes.size + 1):
        for b in range(edges.size + 1):
            rb = np.sort(r[(band == b) & (cls == c)])
            rank = int(np.ceil((rb.size + 1) * coverage))
            if rank > rb.size:
                lo = edges[b - 1] if b else 0
                side = f" and cell side in class {c} (from {sizes[c - 1]:g} px)" if c else ""
                raise InputError(
                    f"calibration: {rb.size} rows with |log10 contrast| in band {b} "
                    f"(from {lo:g}){side} are too few for coverage {coverage}"
                )
            alpha[c, b] = np.ceil(max(rb[rank - 1], 0.0) * 100) / 100
            counts[c, b] = rb.size
    covered = r <= alpha[cls, band]
    record = {
        "alpha": alpha.tolist(),
        "contrast_edges": edges.tolist(),
        "size_edges": sizes.tolist(),
        "beta": beta,
        "tta": tta,
        "coverage": float(np.mean(covered)),
        "n": int(r.size),
        "n_band": counts.tolist(),
        "files": [Path(p).name for p in cal_files],
    }
    if default:
        meta["calibration"] = record
        others.pop(str(tta), None)
        if isinstance(current, dict) and current.get("tta") not in (None, tta):
            others[str(current["tta"])] = current  # the former default stays usable
    else:
        meta["calibration"] = current
        others[str(tta)] = record
    if others:
        meta["calibrations"] = others
    meta_path.write_text(json.dumps(meta, indent=1))
    return record


def _contrast_band(contrast: np.ndarray, contrast_edges: np.ndarray) -> np.ndarray:
    """Band of every contrast (N,) among the bands of ``|log10 contrast|`` split at
    ``contrast_edges``, shape (N,) int."""
    return np.searchsorted(contrast_edges, np.abs(np.log10(contrast)), side="right")


def _size_class(shape: Sequence[int], size_edges: np.ndarray) -> int:
    """Class of a cell of ``shape`` (n1, n2) among the side classes split at ``size_edges``."""
    return int(np.searchsorted(size_edges, np.sqrt(shape[0] * shape[1]), side="right"))


# --------------------------------------------------------------------------- provider


@dataclass(frozen=True)
class ProviderAnswer:
    """Answers of :class:`GeneralProvider` with their source.

    Attributes
    ----------
    mu_eff : ndarray of float64, shape (N, 2, 2)
    rel_error_bound : ndarray of float64, shape (N,)
        Bound on the relative error against the FE label (:func:`relative_error`); for FE
        answers the label's own tolerance.
    source : ndarray of str, shape (N,)
        ``"cnn"`` or ``"fe"``.
    volume_fraction : ndarray of float64, shape (N,)
    """

    mu_eff: np.ndarray
    rel_error_bound: np.ndarray
    source: np.ndarray
    volume_fraction: np.ndarray

    @property
    def n_fallback(self) -> int:
        """Answers that came from FE."""
        return int(np.count_nonzero(self.source == "fe"))


#: Relative error bound reported for an FE answer (the label's CG tolerance squared is far
#: below it; the number covers round-off of the energy average).
FE_BOUND = 1e-6


def fall_back_to_fe(
    images: np.ndarray,
    mu: np.ndarray,
    bound: np.ndarray,
    *,
    mu_matrix: float,
    mu_inclusion: float,
    tolerance: float,
    rtol: float = 1e-8,
) -> np.ndarray:
    """Answer from FE every image whose bound exceeds ``tolerance`` (or is not finite).

    ``mu`` (N, d, d) and ``bound`` (N,) are updated in place: the FE tensor and
    :data:`FE_BOUND` for those images.

    Parameters
    ----------
    images : ndarray of bool, shape (N, n1, ...)
    mu : ndarray of float64, shape (N, d, d)
    bound : ndarray of float64, shape (N,)
    mu_matrix, mu_inclusion : float
    tolerance : float
    rtol : float
        CG tolerance of the FE answers.

    Returns
    -------
    ndarray of str, shape (N,)
        ``"cnn"`` or ``"fe"`` per image.
    """
    source = np.full(len(mu), "cnn")
    todo = np.flatnonzero(~(bound <= tolerance))
    if todo.size:
        from micro.homogenization import homogenize

        res = homogenize(
            images[todo], mu_matrix=mu_matrix, mu_inclusion=mu_inclusion, rtol=rtol,
            dim=mu.shape[-1],
        )  # fmt: skip
        mu[todo] = res.mu_eff
        bound[todo] = FE_BOUND
        source[todo] = "fe"
    return source


class GeneralProvider:
    """Constitutive provider from the general model, with FE fallback on demand.

    Parameters
    ----------
    model : str or Path
        Registry name or directory of a general model (default ``"general"``).
    mu_matrix, mu_inclusion : float
        Relative permeabilities of the phases (> 0, contrast up to 1e4 either way; beyond it
        every sample goes to FE when ``fallback="fe"``, else an error).
    fallback : {None, "fe"}
        Answer from the FE homogenization every sample whose bound exceeds ``tolerance``.
    tolerance : float
        Relative error tolerance of the fallback (fraction).
    tta : int, optional
        Symmetries averaged over (default: the calibrated number).
    rtol : float
        CG tolerance of the FE answers.

    Attributes
    ----------
    n_fallback, n_samples : int
        Cumulative counts over all calls.
    last : ProviderAnswer or None
        The answers of the latest call.
    """

    dim = 2
    #: Any image size (the network is fully convolutional).
    resolution = None

    def __init__(
        self,
        model: str | Path = "general",
        *,
        mu_matrix: float = 1.0,
        mu_inclusion: float = 250.0,
        fallback: str | None = None,
        tolerance: float = 0.01,
        tta: int | None = None,
        rtol: float = 1e-8,
        batch_size: int = 256,
    ) -> None:
        from surrogate.registry import resolve_model

        if fallback not in (None, "fe"):
            raise InputError(f"fallback must be 'fe' or None: got {fallback!r}")
        tolerance = float(tolerance)
        if not (np.isfinite(tolerance) and tolerance > 0):
            raise InputError(f"tolerance must be a number > 0: got {tolerance!r}")
        canonical_form(np.zeros((1, 1, 1), bool), mu_matrix, mu_inclusion)  # checks the values
        self.mu_matrix, self.mu_inclusion = float(mu_matrix), float(mu_inclusion)
        self.model = GeneralModel(resolve_model(model), tta=tta, batch_size=batch_size)
        self.name = self.model.name if fallback is None else f"{self.model.name}+fe"
        self.fallback, self.tolerance, self.rtol = fallback, tolerance, float(rtol)
        self.n_fallback = 0
        self.n_samples = 0
        self.last: ProviderAnswer | None = None

    @property
    def geometry(self) -> dict[str, Any]:
        """Microstructure class of the training data: every class of :mod:`micro.morphologies`."""
        return {"class": "general"}

    @property
    def mu_phases(self) -> tuple[float, float]:
        """``(mu_matrix, mu_inclusion)`` the provider answers for."""
        return self.mu_matrix, self.mu_inclusion

    def warm_up(self, shape: tuple[int, ...] | None = None) -> float:
        """Trace the network for ``shape`` now; returns the seconds it took."""
        if shape is None:
            return 0.0
        t0 = time.perf_counter()
        self.predict(np.zeros((1, *shape), dtype=bool))
        self.n_samples -= 1
        return time.perf_counter() - t0

    def __call__(self, images: Any) -> np.ndarray:
        """``(N, 2, 2)`` float64 tensors of bool images ``(N, n1, n2)``; see :meth:`predict`."""
        return self.predict(images).mu_eff

    def predict(self, images: Any) -> ProviderAnswer:
        """Tensors, error bounds and sources of a batch of one image shape."""
        images = np.asarray(images)
        if images.ndim == 2:
            images = images[None]
        images = images.astype(bool, copy=False)
        n = images.shape[0]
        contrast = max(self.mu_matrix, self.mu_inclusion) / min(self.mu_matrix, self.mu_inclusion)
        beyond = np.log10(contrast) > MAX_LOG10_CONTRAST + 1e-9
        if beyond and self.fallback == "fe":
            mu = np.full((n, 2, 2), np.nan)
            bound = np.full(n, np.inf)
            vf = images.reshape(n, -1).mean(axis=1)
        else:
            pred = self.model.predict(
                images, mu_matrix=self.mu_matrix, mu_inclusion=self.mu_inclusion
            )
            mu, bound, vf = pred.mu_eff.copy(), pred.rel_error_bound.copy(), pred.volume_fraction
        source = np.full(n, "cnn")
        if self.fallback == "fe":
            source = fall_back_to_fe(
                images, mu, bound, mu_matrix=self.mu_matrix, mu_inclusion=self.mu_inclusion,
                tolerance=self.tolerance, rtol=self.rtol,
            )  # fmt: skip
        answer = ProviderAnswer(mu, bound, source, vf)
        self.n_fallback += answer.n_fallback
        self.n_samples += n
        self.last = answer
        return answer
