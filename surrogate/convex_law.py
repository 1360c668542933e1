"""A learned effective law of saturating composites, convex in the field by construction.

The network gives the effective coenergy density of a microstructure as a function of the
macroscopic field, in units of the composite's knee field ``H_k*`` (:func:`micro.dataset_nl.
effective_knee_field`): with ``h = H_bar / H_k*``,

    psi*(H_bar) / (mu_0 H_k*^2) = 1/2 |h|^2 + sum_k beta_k phi_k(|A_k h|^2),
    phi_k'(q) = 1/2 (1 + q^p_k)^(-1/(2 p_k)),   phi_k(0) = 0,

the vacuum part plus ``K`` saturating terms along learned projections; their magnetization
``m(s) = s (1 + s^(2p))^(-1/(2p))`` (``s = |A_k h|``) saturates gradually (``p = 1``) or with a
sharp knee (``p = 2``; composites whose nearly touching inclusions saturate together bend
faster than any mix of ``p = 1`` terms).  ``phi_k`` is convex and increasing in ``s >= 0`` with
unit curvature at 0 and bounded slope, so every term is convex in ``h`` (a convex increasing
function of a norm),
the magnetization ``B/mu_0 - H`` stays bounded (saturation), and the Hessian at ``h = 0`` is
``I + sum_k beta_k A_k^T A_k``.  The weights ``beta_k > 0`` (softplus) and raw matrices ``Â_k``
come from a small MLP of image features (volume fraction and the linear ``mu*``); the
projections are normalized as ``A_k = Â_k L^-T R^T`` with ``L L^T = sum_k beta_k Â_k^T Â_k``
and ``R R^T = mu* - I`` (Cholesky), so that

    d^2 psi* / dH_bar^2 (0) = mu_0 mu*     exactly, for every set of weights:

the small-field limit is the linear law.  ``B_bar = dpsi*/dH_bar`` is the closed-form gradient
(``sum_k 2 beta_k phi_k'(q_k) A_k^T A_k h``), the tangent ``d^2 psi*/dH_bar^2`` its closed-form
derivative (:meth:`ConvexLaw._respond`); the tangent is symmetric positive definite for every
input (``mu_0 I`` plus positive semidefinite terms), and ``psi*`` itself is evaluated with
``phi_k(q) = q/2 2F1(1/(2p), 1/p; 1 + 1/p; -q^p)`` (scipy).  Evaluation runs in numpy (the MLP
from a cached float64 copy of its weights, read with h5py at load): neither loading nor
evaluating a law starts TensorFlow.  Keras/TensorFlow train the network; the same law in
TensorFlow, its tangent a gradient tape's batch Jacobian (``ConvexLaw._evaluate_tf``), is the
reference the tests hold the numpy evaluation to.

:class:`ConvexLaw` holds the network, trains on :func:`micro.dataset_nl.load_nl_dataset` data
(:func:`train_convex_law`), saves and loads itself; :class:`ConvexLawProvider` binds it to the
microstructures of a set of points (quadrature points) and answers ``H -> (B, tangent)``,
batched, flagging (or refusing, or answering from the cell problem) fields beyond the trained
range.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from magnetohom.errors import InputError
from micro.phase_laws import MU0

__all__ = [
    "DEFAULT_LAW",
    "LAWS_DIR",
    "ConvexLaw",
    "ConvexLawOptions",
    "ConvexLawProvider",
    "LawEvaluation",
    "TrainSummary",
    "available_laws",
    "dataset_cells",
    "evaluate_convex_law",
    "law_features",
    "load_law",
    "train_convex_law",
]

log = logging.getLogger(__name__)

#: Directory of the shipped learned laws (``surrogate/laws/<name>/``: ``config.json``,
#: ``weights.weights.h5``, ``metadata.json``, ``PROVENANCE.md``).
LAWS_DIR = Path(__file__).resolve().parent / "laws"
#: The shipped law of the ``choke`` demo (disks on 32^2 SVEs, ``linear:1`` / ``arctan:1000,1.6``).
DEFAULT_LAW = "saturating-disks32"


def available_laws() -> dict[str, Path]:
    """Shipped learned laws: name -> directory (those holding a ``config.json``)."""
    if not LAWS_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(LAWS_DIR.iterdir()) if (p / "config.json").is_file()}


def load_law(name_or_path: str | os.PathLike | None = None) -> ConvexLaw:
    """A learned law by shipped name (:func:`available_laws`) or directory (``None``:
    :data:`DEFAULT_LAW`).  A directory wins over a name; neither is an :class:`InputError`."""
    name_or_path = DEFAULT_LAW if name_or_path is None else name_or_path
    path = Path(name_or_path)
    if not path.is_dir():
        shipped = available_laws()
        if str(name_or_path) not in shipped:
            raise InputError(
                f"no learned law {str(name_or_path)!r}: not a directory, and the shipped laws "
                f"are {', '.join(shipped) or 'none'} (train one with `magnetohom train-law`)"
            )
        path = shipped[str(name_or_path)]
    return ConvexLaw.load(path)


@dataclass(frozen=True)
class ConvexLawOptions:
    """Architecture and training options.

    Attributes
    ----------
    terms : int
        Number ``K`` of saturating terms.
    hidden : tuple of int
        Widths of the feature MLP.
    epochs, batch_size : int
    learning_rate : float
        Adam, decayed by cosine to 1 % over the epochs.
    tangent_weight : float
        Weight of the relative tangent error in the loss (the flux error has weight 1).
    seed : int
    """

    terms: int = 16
    hidden: tuple[int, ...] = (32, 32)
    epochs: int = 200
    batch_size: int = 256
    learning_rate: float = 5e-3
    tangent_weight: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class LawEvaluation:
    """The learned law at a batch of points.

    Attributes
    ----------
    B : ndarray, shape (N, d), float64, T
    tangent : ndarray, shape (N, d, d), float64, H/m (SPD)
    coenergy : ndarray, shape (N,), float64, J/m^3
    in_range : ndarray, shape (N,), bool
        ``|H| <= max_field * H_k*`` (inside the trained range).
    familiar : ndarray, shape (N,), bool
        The microstructure's features inside the range of the training data
        (:meth:`ConvexLaw.familiar`): False where the law extrapolates in the microstructure.
    """

    B: np.ndarray
    tangent: np.ndarray
    coenergy: np.ndarray
    in_range: np.ndarray
    familiar: np.ndarray


@dataclass(frozen=True)
class TrainSummary:
    """Accuracy of a trained law on held-out samples.

    Attributes
    ----------
    b_error_max, b_error_mean : float
        ``|B_pred - B| / |B|`` over the held-out points (relative to each point's ``|B_bar|``).
    tangent_error_max, tangent_error_mean : float
        ``||T_pred - T||_F / ||T||_F``.
    n_train, n_test : int
        Samples (microstructures) in each part.
    seconds : float
        Training wall time.
    """

    b_error_max: float
    b_error_mean: float
    tangent_error_max: float
    tangent_error_mean: float
    n_train: int
    n_test: int
    seconds: float


def law_features(cells) -> np.ndarray:
    """Image features of the network, from :class:`micro.nonlinear.CellDescriptors`.

    Returns
    -------
    ndarray, shape (N, 4 + 3 d (d + 1) / 2), float64
        ``[f, log(tr(M)/d), upper triangle of M / (tr(M)/d)]`` for ``M = mu* - I`` and the
        same (log of the mean eigenvalue, normalized upper triangle) of the two field
        concentration moments.
    """
    mu = np.asarray(cells.mu_lin, dtype=np.float64)
    d = mu.shape[-1]
    iu = np.triu_indices(d)
    parts = [np.asarray(cells.volume_fraction, dtype=np.float64).reshape(-1, 1)]
    for T in (mu - np.eye(d), cells.moments[:, 0], cells.moments[:, 1]):
        t = np.maximum(np.trace(T, axis1=-2, axis2=-1) / d, 1e-300)
        parts += [np.log(t)[:, None], (T / t[:, None, None])[:, iu[0], iu[1]]]
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class _Bound:
    """A law's constants at a set of points (:meth:`ConvexLaw._bind`): the weights' version
    they were computed with, knee fields (N,), ``beta`` (N, K), ``Â`` and ``Â^T Â`` (N, K, d, d)
    and ``C`` (N, d, d)."""

    version: int
    knee: np.ndarray
    beta: np.ndarray
    Ahat: np.ndarray
    AtA: np.ndarray
    C: np.ndarray
    familiar: np.ndarray


def _check_mu(mu_lin: np.ndarray, d: int) -> np.ndarray:
    mu = np.asarray(mu_lin, dtype=np.float64)
    if mu.ndim != 3 or mu.shape[1:] != (d, d):
        raise InputError(f"mu_lin must have shape (N, {d}, {d}): got {mu.shape}")
    try:
        np.linalg.cholesky(mu - np.eye(d))
    except np.linalg.LinAlgError:
        raise InputError(
            "mu_lin - I must be positive definite (a composite that magnetizes)"
        ) from None
    return mu


class ConvexLaw:
    """The input-convex effective coenergy network (see the module docstring).

    Parameters
    ----------
    dim : {2, 3}
    laws : (PhaseLaw, PhaseLaw)
        Matrix and inclusion laws of the training data (they define ``H_k*``).
    max_field : float
        Trained range of ``|H_bar| / H_k*``.
    options : ConvexLawOptions, optional
    """

    def __init__(self, dim: int, laws, max_field: float, options: ConvexLawOptions | None = None):
        if dim not in (2, 3):
            raise InputError(f"dim must be 2 or 3: got {dim}")
        self.dim, self.laws, self.max_field = int(dim), tuple(laws), float(max_field)
        self.options = options or ConvexLawOptions()
        o, d = self.options, self.dim
        rng = np.random.default_rng(o.seed)
        # fixed offsets of the raw projections: terms with spread scales and orientations
        # (onsets of saturation over 2.5 decades of field), each term starting with an equal
        # share of the small-field Hessian (beta_k ~ 1 / scale_k^2)
        # ridge-like projections u u^T + 0.1 I: saturation that depends on the direction
        # (chains of nearly touching inclusions saturate first along their axis)
        scales = np.geomspace(0.1, 30.0, o.terms)
        rng.shuffle(scales)
        if d == 2:
            theta = np.pi * (np.arange(o.terms) + rng.random(o.terms)) / o.terms
            u = np.stack([np.cos(theta), np.sin(theta)], axis=1)
        else:
            u = rng.normal(size=(o.terms, 3))
            u /= np.linalg.norm(u, axis=1, keepdims=True)
        self._A0 = scales[:, None, None] * (u[:, :, None] * u[:, None, :] + 0.1 * np.eye(d))
        self._b0 = np.log(np.expm1(1.0 / scales**2))
        # knee sharpness of each term: 1 (gradual) and 2 (sharp), alternating
        self._sharp = np.where(np.arange(o.terms) % 2 == 0, 1.0, 2.0)
        n_feat = self._layer_shapes()[0][0]
        self._feat_mean = np.zeros(n_feat)
        self._feat_std = np.ones(n_feat)
        # range of the training data's features (None: not known, every microstructure familiar)
        self._feat_min: np.ndarray | None = None
        self._feat_max: np.ndarray | None = None
        # the Keras MLP (built on first use: training, saving, the TensorFlow reference) and
        # its weights in numpy, [(kernel, bias), ...] (what evaluation runs on); _version
        # counts the changes of the weights (a provider's per-point constants follow it)
        self._mlp: Any = None
        self._weights: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._version = 0

    # -- the feature MLP: Keras for training, numpy for evaluation -----------------------------
    def _layer_shapes(self) -> list[tuple[int, int]]:
        """(inputs, outputs) of the MLP's dense layers."""
        o, d = self.options, self.dim
        widths = [4 + 3 * (d * (d + 1) // 2), *o.hidden, o.terms * (1 + d * d)]
        return list(itertools.pairwise(widths))

    def _keras_mlp(self) -> Any:
        """The Keras MLP, built (seeded by ``options.seed``) on first use; holding numpy
        weights (a law loaded without Keras), it takes them."""
        if self._mlp is None:
            import keras

            o = self.options
            keras.utils.set_random_seed(int(o.seed))
            shapes = self._layer_shapes()
            layers = [keras.Input((shapes[0][0],), dtype="float64")]
            for width in o.hidden:
                layers.append(keras.layers.Dense(width, activation="softplus", dtype="float64"))
            layers.append(
                keras.layers.Dense(
                    shapes[-1][1],
                    dtype="float64",
                    kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                )
            )
            self._mlp = keras.Sequential(layers)
            if self._weights is not None:
                self._mlp.set_weights([a for wb in self._weights for a in wb])
        return self._mlp

    @property
    def mlp(self) -> Any:
        """The Keras feature MLP (``keras.Sequential``; built on first access, which imports
        TensorFlow).  Evaluation runs on a numpy copy of its weights; every access through this
        attribute drops that copy (it is read again at the next evaluation), so that weights
        set through it (``set_weights``, ``load_weights``, training) are seen.  Variables kept
        from an earlier access and changed later need :meth:`weights_changed`."""
        mlp = self._keras_mlp()
        self.weights_changed()
        return mlp

    def weights_changed(self) -> None:
        """Drop the numpy copy of the MLP's weights and the per-point constants that
        providers hold (read again from :attr:`mlp` at the next evaluation)."""
        if self._mlp is not None:
            self._weights = None
            self._version += 1

    def _numpy_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(kernel, bias), ...]`` of the MLP, float64 (read once from Keras and cached)."""
        if self._weights is None:
            flat = [np.array(w, dtype=np.float64) for w in self._keras_mlp().get_weights()]
            self._weights = list(zip(flat[::2], flat[1::2], strict=True))
        return self._weights

    def _mlp_numpy(self, feats: np.ndarray) -> np.ndarray:
        """The MLP's output (N, K (1 + d^2)) in numpy float64: softplus hidden layers, a
        linear last one (as Keras's ``Dense``: ``act(x W + b)``)."""
        x = (feats - self._feat_mean) / self._feat_std
        weights = self._numpy_weights()
        for i, (W, b) in enumerate(weights):
            x = x @ W + b
            if i < len(weights) - 1:
                x = np.logaddexp(0.0, x)  # softplus
        return x

    # -- the network in TensorFlow (training; the reference of the numpy evaluation) -------
    def _flux(self, h, feats, R):
        """Normalized ``b = dpsi/dh`` (B, d) and the terms' ``beta`` and ``q`` (B, K), from
        ``h`` (B, d), features (B, F) and ``R = chol(mu* - I)`` (B, d, d)."""
        import tensorflow as tf

        K, d = self.options.terms, self.dim
        out = self._keras_mlp()((feats - self._feat_mean) / self._feat_std)
        beta = tf.nn.softplus(out[:, :K] + tf.constant(self._b0)) + 1e-12
        Ahat = tf.reshape(out[:, K:], (-1, K, d, d)) + tf.constant(self._A0)
        S = tf.einsum("bk,bkij,bkil->bjl", beta, Ahat, Ahat) + 1e-10 * tf.eye(d, dtype=tf.float64)
        L = tf.linalg.cholesky(S)
        C = tf.linalg.triangular_solve(L, tf.linalg.matrix_transpose(R), lower=True, adjoint=True)
        z = tf.einsum("bij,bj->bi", C, h)
        y = tf.einsum("bkij,bj->bki", Ahat, z)
        q = tf.reduce_sum(y * y, axis=-1)
        sharp = tf.constant(self._sharp == 2)
        qp = tf.where(sharp, q * q, q)
        dphi = 0.5 * tf.pow(1.0 + qp, tf.constant(-0.5 / self._sharp))  # phi'(q), (B, K)
        # d/dh sum_k beta_k phi(|Ahat_k C h|^2) = sum_k 2 beta_k phi'(q_k) C^T Ahat_k^T y_k
        g = tf.einsum("bk,bkji,bkj->bi", 2.0 * beta * dphi, Ahat, y)
        return h + tf.einsum("bji,bj->bi", C, g), beta, q

    def _derivatives(self, h, feats, R, *, tangent: bool = True):
        """``beta``, ``q``, ``b`` and (autodiff) the tangent ``db/dh`` (B, d, d)."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(h)
            b, beta, q = self._flux(h, feats, R)
        t = tape.batch_jacobian(b, h) if tangent else None
        return beta, q, b, t

    def _coenergy(self, h: np.ndarray, beta: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Normalized ``psi`` (N,): ``|h|^2 / 2 + sum_k beta_k phi_k(q_k)``."""
        from scipy.special import hyp2f1

        p = self._sharp[None, :]
        phi = 0.5 * q * hyp2f1(0.5 / p, 1.0 / p, 1.0 + 1.0 / p, -(q**p))
        return 0.5 * np.einsum("bi,bi->b", h, h) + np.einsum("bk,bk->b", beta, phi)

    def _check_field(self, H, n: int) -> np.ndarray:
        d = self.dim
        H = np.asarray(H, dtype=np.float64)
        if H.ndim != 2 or H.shape[1] != d or len(H) != n:
            raise InputError(
                f"H must have shape (N, {d}) for N = {n} described cells: got {H.shape}"
            )
        if not np.all(np.isfinite(H)):
            raise InputError("H contains NaN or inf")
        return H

    def _inputs(self, H, cells):
        d = self.dim
        mu = _check_mu(cells.mu_lin, d)
        H = self._check_field(H, len(mu))
        knee = self.knee_fields(cells)
        R = np.linalg.cholesky(mu - np.eye(d))
        return H / knee[:, None], law_features(cells), R, knee

    def knee_fields(self, cells) -> np.ndarray:
        """``H_k*`` per point, A/m, shape (N,), of :class:`micro.nonlinear.CellDescriptors`."""
        from micro.dataset_nl import effective_knee_field

        return np.array(
            [
                effective_knee_field(m, self.laws, f)
                for m, f in zip(cells.mu_lin, cells.volume_fraction, strict=True)
            ]
        )

    #: Margin of :meth:`familiar`, as a share of each feature's training range.
    FAMILIAR_MARGIN = 0.05

    def familiar(self, cells, *, feats: np.ndarray | None = None) -> np.ndarray:
        """Whether each microstructure lies inside the training data's features, shape (N,),
        bool: every feature of :func:`law_features` within its training range widened by
        :attr:`FAMILIAR_MARGIN` of that range on each side (a box, not a hull: a point inside
        it can still be an unusual combination).  All True for a law saved before the range
        was recorded."""
        if feats is None:
            feats = law_features(cells)
        if self._feat_min is None or self._feat_max is None:
            return np.ones(len(feats), dtype=bool)
        pad = self.FAMILIAR_MARGIN * (self._feat_max - self._feat_min)
        inside = (feats >= self._feat_min - pad) & (feats <= self._feat_max + pad)
        return np.all(inside, axis=1)

    # -- the network in numpy (evaluation) -----------------------------------------------------
    def _bind(self, cells) -> _Bound:
        """What the law needs of the points besides the field: knee fields, ``beta`` and
        ``Â`` (the MLP of the cells' features) and ``C = L^-T R^T`` (as :meth:`_flux`)."""
        d, K = self.dim, self.options.terms
        mu = _check_mu(cells.mu_lin, d)
        R = np.linalg.cholesky(mu - np.eye(d))
        feats = law_features(cells)
        out = self._mlp_numpy(feats)
        beta = np.logaddexp(0.0, out[:, :K] + self._b0) + 1e-12
        Ahat = out[:, K:].reshape(-1, K, d, d) + self._A0
        S = np.einsum("bk,bkij,bkil->bjl", beta, Ahat, Ahat) + 1e-10 * np.eye(d)
        L = np.linalg.cholesky(S)
        C = np.linalg.solve(np.swapaxes(L, 1, 2), np.swapaxes(R, 1, 2))  # L^T C = R^T
        AtA = np.swapaxes(Ahat, 2, 3) @ Ahat
        return _Bound(
            self._version,
            self.knee_fields(cells),
            beta,
            Ahat,
            AtA,
            C,
            self.familiar(cells, feats=feats),
        )

    def _respond(
        self, H: np.ndarray, bound: _Bound, *, coenergy: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """``B`` (N, d), tangent (N, d, d), in range (N,) and (optionally) coenergy (N,) at
        the checked fields ``H`` (N, d), A/m, of bound points; the flux as :meth:`_flux`
        computes it, the tangent in closed form: with ``y_k = Â_k C h``, ``q_k = |y_k|^2``,

            db/dh = I + C^T [sum_k 2 beta_k (phi'(q_k) Â_k^T Â_k
                                             + 2 phi''(q_k) Â_k^T y_k y_k^T Â_k)] C,

        ``phi''(q) = -1/4 q^(p-1) (1 + q^p)^(-1/(2p) - 1) = -1/2 q^(p-1) phi'(q) / (1 + q^p)``
        (``q^0 = 1`` for ``p = 1``, also at ``q = 0``)."""
        beta, Ahat, C = bound.beta, bound.Ahat, bound.C
        n, K, d = Ahat.shape[:3]
        Ct = np.swapaxes(C, 1, 2)
        h = H / bound.knee[:, None]
        # batched matrix products (einsum of three operands is several times slower here)
        z = (C @ h[:, :, None])[:, None]  # C h, (B, 1, d, 1)
        y = (Ahat @ z)[..., 0]  # y_k = Â_k C h, (B, K, d)
        q = np.einsum("bki,bki->bk", y, y)
        sharp = self._sharp == 2
        qp = np.where(sharp, q * q, q)
        dphi = 0.5 * (1.0 + qp) ** (-0.5 / self._sharp)  # phi'(q), (B, K)
        ddphi = -0.5 * np.where(sharp, q, 1.0) * dphi / (1.0 + qp)  # phi''(q)
        w = 2.0 * beta * dphi
        u = (np.swapaxes(Ahat, 2, 3) @ y[..., None])[..., 0]  # Â_k^T y_k, (B, K, d)
        g = w[:, None, :] @ u  # sum_k 2 beta_k phi'(q_k) Â_k^T y_k, (B, 1, d)
        b = h + (Ct @ np.swapaxes(g, 1, 2))[..., 0]
        M = (w[:, None, :] @ bound.AtA.reshape(n, K, d * d)).reshape(n, d, d)
        M += np.swapaxes((4.0 * beta * ddphi)[:, :, None] * u, 1, 2) @ u
        t = Ct @ M @ C
        t += np.eye(d)
        scale = MU0 * bound.knee
        psi = self._coenergy(h, beta, q) * scale * bound.knee if coenergy else None
        return (
            b * scale[:, None],
            0.5 * (t + np.swapaxes(t, 1, 2)) * MU0,
            np.linalg.norm(h, axis=1) <= self.max_field * (1 + 1e-12),
            psi,
        )

    def evaluate(self, H: np.ndarray, cells) -> LawEvaluation:
        """``B``, tangent and coenergy at fields ``H`` (N, d), A/m, of the microstructures
        described by ``cells`` (:class:`micro.nonlinear.CellDescriptors`, N of them).

        In numpy (no TensorFlow): the MLP from a cached copy of its weights, the flux and the
        tangent in closed form (:meth:`_respond`)."""
        bound = self._bind(cells)
        H = self._check_field(H, len(bound.knee))
        B, T, in_range, psi = self._respond(H, bound, coenergy=True)
        return LawEvaluation(
            B=B, tangent=T, coenergy=psi, in_range=in_range, familiar=bound.familiar
        )

    def _evaluate_tf(self, H: np.ndarray, cells) -> LawEvaluation:
        """:meth:`evaluate` in TensorFlow, the tangent a gradient tape's batch Jacobian (the
        reference that the tests hold the numpy evaluation to)."""
        import tensorflow as tf

        h, feats, R, knee = self._inputs(H, cells)
        self._keras_mlp()  # built (and given its weights) here, not inside the trace
        if getattr(self, "_compiled", None) is None:
            d, F = self.dim, feats.shape[1]
            spec = [
                tf.TensorSpec((None, d), tf.float64),
                tf.TensorSpec((None, F), tf.float64),
                tf.TensorSpec((None, d, d), tf.float64),
            ]
            self._compiled = tf.function(self._derivatives, input_signature=spec)
        beta, q, b, t = self._compiled(tf.constant(h), tf.constant(feats), tf.constant(R))
        psi = self._coenergy(h, beta.numpy(), q.numpy())
        scale = MU0 * knee
        return LawEvaluation(
            B=b.numpy() * scale[:, None],
            tangent=0.5 * (t.numpy() + np.swapaxes(t.numpy(), 1, 2)) * MU0,
            coenergy=psi * scale * knee,
            in_range=np.linalg.norm(h, axis=1) <= self.max_field * (1 + 1e-12),
            familiar=self.familiar(cells, feats=feats),
        )

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``weights.weights.h5`` into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        config = {
            "dim": self.dim,
            "laws": [law.to_dict() for law in self.laws],
            "max_field": self.max_field,
            "options": asdict(self.options),
            "A0": self._A0.tolist(),
            "b0": self._b0.tolist(),
            "sharp": self._sharp.tolist(),
            "feat_mean": self._feat_mean.tolist(),
            "feat_std": self._feat_std.tolist(),
        }
        if self._feat_min is not None and self._feat_max is not None:
            config["feat_min"] = self._feat_min.tolist()
            config["feat_max"] = self._feat_max.tolist()
        (out / "config.json").write_text(json.dumps(config, indent=1))
        self._keras_mlp().save_weights(str(out / "weights.weights.h5"))
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ConvexLaw:
        """A law written by :meth:`save`.

        The weights are read with h5py (the layout of Keras 3's ``.weights.h5``:
        ``layers/dense[_i]/vars/{0,1}``, kernel and bias, every shape checked), so that loading
        and evaluating do not start TensorFlow; a file of another layout is read by Keras."""
        from micro.phase_laws import law_from_dict

        path = Path(directory)
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"not a convex-law directory: {path} ({exc})") from None
        opts = config["options"]
        opts["hidden"] = tuple(opts["hidden"])
        law = cls(
            config["dim"],
            [law_from_dict(x) for x in config["laws"]],
            config["max_field"],
            ConvexLawOptions(**opts),
        )
        law._A0 = np.asarray(config["A0"])
        law._b0 = np.asarray(config["b0"])
        law._sharp = np.asarray(config["sharp"])
        law._feat_mean = np.asarray(config["feat_mean"])
        law._feat_std = np.asarray(config["feat_std"])
        if "feat_min" in config and "feat_max" in config:
            law._feat_min = np.asarray(config["feat_min"], dtype=np.float64)
            law._feat_max = np.asarray(config["feat_max"], dtype=np.float64)
        weights = path / "weights.weights.h5"
        try:
            law._weights = _read_dense_weights(weights, law._layer_shapes())
        except (KeyError, ValueError) as exc:
            log.debug("convex law: %s read by Keras (%s)", weights, exc)
            law.mlp.load_weights(str(weights))
        except OSError as exc:
            raise InputError(f"not a convex-law directory: {path} ({exc})") from None
        return law


def _read_dense_weights(
    path: Path, shapes: list[tuple[int, int]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(kernel, bias), ...]`` of a Keras 3 ``.weights.h5`` of a ``Sequential`` of dense
    layers (``layers/dense``, ``layers/dense_1``, ...) of the given (inputs, outputs) shapes;
    ``KeyError`` / ``ValueError`` where the file has another layout."""
    import h5py

    out = []
    with h5py.File(path, "r") as f:
        layers = f["layers"]
        names = [f"dense_{i}" if i else "dense" for i in range(len(shapes))]
        if set(layers) != set(names):
            raise ValueError(f"layers {sorted(layers)}, expected {names}")
        for name, (n_in, n_out) in zip(names, shapes, strict=True):
            var = layers[name]["vars"]
            W, b = np.array(var["0"], dtype=np.float64), np.array(var["1"], dtype=np.float64)
            if len(var) != 2 or W.shape != (n_in, n_out) or b.shape != (n_out,):
                raise ValueError(f"{name}: kernel {W.shape}, bias {b.shape}")
            out.append((W, b))
    return out


def _arrays(ds, cells, idx):
    """Normalized training arrays of samples ``idx`` of an NLDataset, flattened over fields."""
    K = ds.field.shape[1]
    knee = ds.knee_field[idx]
    h = ds.field[idx] / knee[:, None, None]
    b = ds.flux[idx] / (MU0 * knee[:, None, None])
    t = ds.tangent[idx] / MU0
    sub = cells.take(idx)
    d = sub.mu_lin.shape[-1]
    feats = np.repeat(law_features(sub), K, axis=0)
    R = np.repeat(np.linalg.cholesky(sub.mu_lin - np.eye(d)), K, axis=0)
    return h.reshape(-1, d), feats, R, b.reshape(-1, d), t.reshape(-1, d, d)


def dataset_cells(ds):
    """:class:`micro.nonlinear.CellDescriptors` of every sample of an NLDataset."""
    from micro.nonlinear import describe_cells

    return describe_cells(ds.base.images, ds.laws)


def train_convex_law(
    dataset,
    *,
    test_fraction: float = 0.2,
    options: ConvexLawOptions | None = None,
    rng: np.random.Generator | int | None = 0,
) -> tuple[ConvexLaw, TrainSummary]:
    """Train a :class:`ConvexLaw` on a nonlinear dataset; report held-out accuracy.

    Parameters
    ----------
    dataset : micro.dataset_nl.NLDataset, path-like, or sequence of path-like
        A dataset, or the file(s) :func:`micro.dataset_nl.load_nl_dataset` reads.
    test_fraction : float
        Share of the microstructures held out (never trained on).
    options : ConvexLawOptions, optional
    rng : numpy Generator, int or None
        Split of the samples.

    Returns
    -------
    (ConvexLaw, TrainSummary)
    """
    import tensorflow as tf

    from micro.dataset_nl import load_nl_dataset

    ds = dataset if hasattr(dataset, "field") else load_nl_dataset(dataset)
    options = options or ConvexLawOptions()
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must be in (0, 1): got {test_fraction}")
    n = len(ds)
    if n < 2:
        raise InputError(f"need at least 2 finished samples to train and test: got {n}")
    perm = np.random.default_rng(rng).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    max_field = float(ds.base.attrs["max_field"])
    law = ConvexLaw(ds.base.dim, ds.laws, max_field, options)
    cells = dataset_cells(ds)
    h, feats, R, b, t = _arrays(ds, cells, train)
    law._feat_mean = feats.mean(axis=0)
    law._feat_std = np.maximum(feats.std(axis=0), 1e-3)
    law._feat_min, law._feat_max = feats.min(axis=0), feats.max(axis=0)
    m = len(h)
    steps = options.epochs * int(np.ceil(m / options.batch_size))
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(options.learning_rate, steps, alpha=0.01)
    opt = keras.optimizers.Adam(schedule)
    variables = law.mlp.trainable_variables
    tw = float(options.tangent_weight)

    @tf.function(reduce_retracing=True)
    def step(hb, fb, Rb, bb, tb):
        with tf.GradientTape() as tape:
            _, _, bp, tp = law._derivatives(hb, fb, Rb, tangent=tw > 0)
            lb = tf.reduce_sum((bp - bb) ** 2, -1) / tf.reduce_sum(bb**2, -1)
            loss = tf.reduce_mean(lb)
            if tw > 0:
                lt = tf.reduce_sum((tp - tb) ** 2, (-2, -1)) / tf.reduce_sum(tb**2, (-2, -1))
                loss = loss + tw * tf.reduce_mean(lt)
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables, strict=True))
        return loss

    order_rng = np.random.default_rng(options.seed)
    t0 = time.perf_counter()
    for epoch in range(options.epochs):
        order = order_rng.permutation(m)
        losses = []
        for s in range(0, m, options.batch_size):
            j = order[s : s + options.batch_size]
            losses.append(float(step(h[j], feats[j], R[j], b[j], t[j])))
        if epoch % 20 == 0 or epoch == options.epochs - 1:
            log.info("convex law: epoch %d, loss %.3e", epoch, np.mean(losses))
    seconds = time.perf_counter() - t0
    law.weights_changed()  # the numpy evaluation reads the trained weights
    errors = evaluate_convex_law(law, ds, test, cells=cells)
    summary = TrainSummary(
        b_error_max=float(errors["b"].max()),
        b_error_mean=float(errors["b"].mean()),
        tangent_error_max=float(errors["tangent"].max()),
        tangent_error_mean=float(errors["tangent"].mean()),
        n_train=int(train.size),
        n_test=int(test.size),
        seconds=seconds,
    )
    log.info("convex law: %s", summary)
    return law, summary


def evaluate_convex_law(law: ConvexLaw, ds, idx=None, *, cells=None) -> dict[str, np.ndarray]:
    """Relative errors of ``law`` on samples ``idx`` (default all) of an NLDataset.

    Parameters
    ----------
    cells : micro.nonlinear.CellDescriptors, optional
        Of all samples of ``ds`` (computed when not given).

    Returns
    -------
    dict
        ``"b"``: ``|B_pred - B| / |B|`` per point, shape (M K,); ``"tangent"``: relative
        Frobenius error per point; ``"field"``: ``|H| / H_k*`` per point.
    """
    idx = np.arange(len(ds)) if idx is None else np.asarray(idx)
    cells = dataset_cells(ds) if cells is None else cells
    K, d = ds.field.shape[1], ds.base.dim
    H = ds.field[idx].reshape(-1, d)
    ev = law.evaluate(H, cells.take(np.repeat(idx, K)))
    B = ds.flux[idx].reshape(-1, d)
    T = ds.tangent[idx].reshape(-1, d, d)
    return {
        "b": np.linalg.norm(ev.B - B, axis=1) / np.linalg.norm(B, axis=1),
        "tangent": np.linalg.norm(ev.tangent - T, axis=(1, 2)) / np.linalg.norm(T, axis=(1, 2)),
        "field": np.linalg.norm(H, axis=1) / np.repeat(ds.knee_field[idx], K),
    }


class ConvexLawProvider:
    """The learned law bound to the microstructures of ``N`` points: ``H -> (B, tangent)``.

    Parameters
    ----------
    law : ConvexLaw
    cells : micro.nonlinear.CellDescriptors
        The points' microstructures (:func:`micro.nonlinear.describe_cells`: the linear cell
        problem once per microstructure).
    on_range : {"raise", "flag", "fallback"}
        Fields beyond ``law.max_field`` knee fields: raise :class:`InputError`, answer and
        count them in :attr:`out_of_range`, or answer from the nonlinear cell problem
        (needs ``images``).
    images : ndarray, shape (N, n, ..., n), bool, optional
        The microstructures, for ``on_range="fallback"`` or ``on_unfamiliar="fallback"``.
    on_unfamiliar : {"flag", "raise", "fallback"}
        Points whose microstructure lies outside the training data's features
        (:meth:`ConvexLaw.familiar`: the law extrapolates there): count them in
        :attr:`unfamiliar` and log a warning, raise :class:`InputError`, or answer them from
        the nonlinear cell problem at every call (needs ``images``).

    Attributes
    ----------
    out_of_range : int
        Point evaluations beyond the trained field range so far.
    unfamiliar : int
        Points whose microstructure is outside the training data (fixed at construction).
    fallbacks : int
        Point evaluations answered by the cell problem so far.
    """

    def __init__(
        self,
        law: ConvexLaw,
        cells,
        *,
        on_range: str = "raise",
        images: np.ndarray | None = None,
        on_unfamiliar: str = "flag",
    ) -> None:
        for name, value in (("on_range", on_range), ("on_unfamiliar", on_unfamiliar)):
            if value not in ("raise", "flag", "fallback"):
                raise InputError(f"{name} must be 'raise', 'flag' or 'fallback': got {value!r}")
            if value == "fallback" and images is None:
                raise InputError(f"{name}='fallback' needs the images")
        _check_mu(cells.mu_lin, law.dim)
        self.law, self.cells, self.on_range = law, cells, on_range
        self.on_unfamiliar = on_unfamiliar
        self.images = None if images is None else np.asarray(images, dtype=bool)
        self.out_of_range = 0
        self.fallbacks = 0
        strange = np.flatnonzero(~law.familiar(cells))
        self.unfamiliar = int(strange.size)
        if strange.size and on_unfamiliar == "raise":
            raise InputError(
                f"point {int(strange[0])} (and {strange.size - 1} more): its microstructure lies "
                "outside the learned law's training data; use on_unfamiliar='fallback'"
            )
        if strange.size:
            log.warning(
                "learned law: %d of %d points have microstructures outside its training data%s",
                strange.size,
                len(cells),
                " (answered by the cell problem)" if on_unfamiliar == "fallback" else "",
            )
        self._cell: Any = None
        self._bound: _Bound | None = None

    def _constants(self) -> _Bound:
        """The law's per-point constants (knee fields, the MLP of the features, ``C``):
        computed at the first call and again only when the law's weights change."""
        if self._bound is None or self._bound.version != self.law._version:
            self._bound = self.law._bind(self.cells)
        return self._bound

    def __len__(self) -> int:
        return len(self.cells)

    def __call__(self, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``B`` (N, d) in T and ``dB/dH`` (N, d, d) in H/m at the fields ``H`` (N, d), A/m."""
        bound = self._constants()
        H = self.law._check_field(H, len(bound.knee))
        B, T, in_range, _ = self.law._respond(H, bound)
        bad = np.flatnonzero(~in_range)
        if bad.size and self.on_range == "raise":
            i = int(bad[0])
            knee = bound.knee[i]
            raise InputError(
                f"point {i}: |H| = {np.linalg.norm(H[i]) / knee:.3g} knee fields is beyond "
                f"the learned law's range ({self.law.max_field:g}); use on_range='fallback'"
            )
        self.out_of_range += int(bad.size)
        redo = bad if self.on_range == "fallback" else np.empty(0, dtype=int)
        if self.on_unfamiliar == "fallback":
            redo = np.union1d(redo, np.flatnonzero(~bound.familiar))
        if redo.size == 0:
            return B, T
        from micro.nonlinear import NonlinearHomogenizer

        for i in redo:
            image = self.images[i]
            if self._cell is None or self._cell.shape != image.shape:
                self._cell = NonlinearHomogenizer(image.shape)
            res = self._cell.solve(image, self.law.laws, np.asarray(H[i], dtype=np.float64))
            B[i], T[i] = res.B, res.tangent
            self.fallbacks += 1
        return B, T
