"""How large must a window be?  Apparent tensors of growing windows cut from one large image.

For every window size ``s`` (pixels per side), :func:`rve_study` cuts ``windows`` square (cubic)
windows at random positions of the image, computes their UNBC, PBC and UDBC tensors
(:func:`micro.apparent.apparent_tensors`) and keeps their mean and scatter.  The UDBC–UNBC gap,
relative to the PBC tensor (:attr:`micro.apparent.ApparentTensors.width`), shrinks with the
window size -- for a random medium like ``s^-1`` (the boundary layer, one correlation length
thick, is a fraction ``~ 1/s`` of the window) -- and the fitted exponent is reported beside the
smallest size whose mean gap is below a tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from magnetohom.errors import InputError
from micro.apparent import apparent_tensors

__all__ = ["RVEStudy", "plot_rve", "rve_study"]

_BCS = ("neumann", "periodic", "dirichlet")


@dataclass(frozen=True)
class RVEStudy:
    """Apparent tensors of windows of growing size.

    Attributes
    ----------
    sizes : ndarray, shape (S,), int
        Window sides in pixels.
    tensors : ndarray, shape (S, W, 3, d, d), float64
        Per size, window and condition (UNBC, PBC, UDBC in that order) the apparent tensor.
    corners : ndarray, shape (S, W, d), int
        Window positions (first pixel).
    width : ndarray, shape (S, W), float64
        ``||mu_UDBC - mu_UNBC||_2 / ||mu_PBC||_2`` per window.
    ordered : ndarray, shape (S, W), bool
        UNBC <= PBC <= UDBC held.
    rate : float
        Exponent p of the fit ``mean width ~ C s^-p`` (NaN with fewer than two sizes).
    tol : float
        Tolerance on the mean width.
    rve_size : int or None
        Smallest size whose mean width is at most ``tol`` (None: none).
    """

    sizes: np.ndarray
    tensors: np.ndarray
    corners: np.ndarray
    width: np.ndarray
    ordered: np.ndarray
    rate: float
    tol: float
    rve_size: int | None

    @property
    def mean_eigenvalue(self) -> np.ndarray:
        """``tr(mu) / d`` per size, window and condition, shape (S, W, 3)."""
        d = self.tensors.shape[-1]
        return np.trace(self.tensors, axis1=-2, axis2=-1) / d

    def as_dict(self) -> dict:
        """JSON-ready summary (means and standard deviations over windows)."""
        m = self.mean_eigenvalue
        rows = []
        for k, s in enumerate(self.sizes):
            row = {"size": int(s), "windows": int(m.shape[1])}
            for c, bc in enumerate(_BCS):
                row[f"{bc}_mean"] = float(m[k, :, c].mean())
                row[f"{bc}_std"] = float(m[k, :, c].std())
            row["width_mean"] = float(self.width[k].mean())
            row["width_std"] = float(self.width[k].std())
            row["ordered"] = bool(self.ordered[k].all())
            rows.append(row)
        return {"sizes": rows, "rate": self.rate, "tol": self.tol, "rve_size": self.rve_size}


def rve_study(
    mu: np.ndarray,
    *,
    sizes: list[int],
    windows: int = 8,
    tol: float = 0.05,
    rng: np.random.Generator | int | None = None,
    rtol: float = 1e-6,
) -> RVEStudy:
    """Apparent tensors of square/cubic windows of growing size cut from ``mu``.

    Parameters
    ----------
    mu : ndarray, shape (n_1, ..., n_d), float64 > 0
        Relative permeability per pixel of the large image.
    sizes : list of int
        Window sides in pixels, each >= 3 and <= the image's smallest side.
    windows : int
        Windows per size (random positions; a window as large as the image has one position).
    tol : float
        Tolerance on the mean relative UDBC-UNBC gap for :attr:`RVEStudy.rve_size`.
    rng : numpy Generator, int or None
        Window positions.
    rtol : float
        CG tolerance.

    Returns
    -------
    RVEStudy
    """
    mu = np.asarray(mu, dtype=np.float64)
    d = mu.ndim
    sizes_arr = np.array(sorted({int(s) for s in sizes}), dtype=np.int64)
    if sizes_arr.size == 0 or sizes_arr.min() < 3 or sizes_arr.max() > min(mu.shape):
        raise InputError(
            f"window sizes must be in 3..{min(mu.shape)} (the image's smallest side): "
            f"got {sorted(int(s) for s in sizes)}"
        )
    if int(windows) < 1:
        raise InputError(f"windows must be >= 1: got {windows}")
    if not 0 < tol:
        raise InputError(f"tol must be > 0: got {tol}")
    gen = np.random.default_rng(rng)
    S, W = sizes_arr.size, int(windows)
    tensors = np.empty((S, W, 3, d, d))
    corners = np.zeros((S, W, d), dtype=np.int64)
    width = np.empty((S, W))
    ordered = np.empty((S, W), dtype=bool)
    for k, s in enumerate(sizes_arr):
        for w in range(W):
            corner = np.array([gen.integers(0, n - s + 1) for n in mu.shape])
            corners[k, w] = corner
            window = mu[tuple(slice(c, c + s) for c in corner)]
            res = apparent_tensors(window, bcs=_BCS, rtol=rtol)
            for c, bc in enumerate(_BCS):
                tensors[k, w, c] = res.tensors[bc]
            width[k, w], ordered[k, w] = res.width, bool(res.ordered)
    mean_width = width.mean(axis=1)
    rate = float("nan")
    ok = mean_width > 0
    if ok.sum() >= 2:
        rate = float(-np.polyfit(np.log(sizes_arr[ok]), np.log(mean_width[ok]), 1)[0])
    below = np.flatnonzero(mean_width <= tol)
    rve = int(sizes_arr[below[0]]) if below.size else None
    return RVEStudy(sizes_arr, tensors, corners, width, ordered, rate, float(tol), rve)


def plot_rve(study: RVEStudy, path: str | PathLike, *, title: str = "") -> Path:
    """PNG of the study: mean eigenvalue per condition with its scatter, and the gap.

    Parameters
    ----------
    study : RVEStudy
    path : str or path-like
        Output ``.png``; missing parent directories are created.
    title : str
        Figure title.

    Returns
    -------
    pathlib.Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    m = study.mean_eigenvalue
    s = study.sizes
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    labels = {"neumann": "UNBC", "periodic": "PBC", "dirichlet": "UDBC"}
    for c, bc in enumerate(_BCS):
        ax.errorbar(
            s,
            m[:, :, c].mean(axis=1),
            yerr=m[:, :, c].std(axis=1),
            marker="o",
            capsize=3,
            label=labels[bc],
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("window side (pixels)")
    ax.set_ylabel("apparent μ: tr(μ)/d (mean ± std over windows)")
    ax.legend()
    w = study.width.mean(axis=1)
    bx.loglog(s, w, "o-", base=2, label="mean (UDBC − UNBC) / PBC")
    if np.isfinite(study.rate):
        C = np.exp(np.mean(np.log(w[w > 0]) + study.rate * np.log(s[w > 0])))
        bx.loglog(s, C * s ** (-study.rate), "--", base=2, label=f"fit ∝ s^-{study.rate:.2f}")
    bx.axhline(study.tol, color="grey", lw=0.8, label=f"tol {study.tol:g}")
    bx.set_xlabel("window side (pixels)")
    bx.set_ylabel("relative width")
    bx.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
