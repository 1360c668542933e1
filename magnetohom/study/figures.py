"""The figures of a study report, as PNG files (matplotlib, Agg backend).

Each function takes plain arrays and writes one file; :mod:`magnetohom.study.report` feeds them
from the stage results. The paper's conventions are kept: inclusions black on a white matrix
(Figs. 6 and 13), FE labels on the red identity line of the parity plots (Figs. 10, 11, 14),
transfer learning in blue and training from scratch in green (Fig. 11).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "plot_error_vs_vf",
    "plot_estimates",
    "plot_learning_curve",
    "plot_losses",
    "plot_parity_rows",
    "plot_samples_2d",
    "plot_samples_3d",
]

_DPI = 120
#: Line colours; red is kept for the FE reference.
_COLOURS = ("C0", "C1", "C2", "C4", "C5", "C6", "C7", "C8", "C9")


def _grid(
    plt: Any, n: int, *, w: float = 4.4, h: float = 3.6, cols: int | None = None
) -> tuple[Any, np.ndarray]:
    """A figure with ``n`` panels in rows of ``cols`` (default at most 3); unused ones hidden."""
    cols = min(n, cols or 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    return fig, axes.ravel()[:n]


def _pyplot():
    from magnetohom.mpl import pyplot

    return pyplot()


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI)
    _pyplot().close(fig)
    return path


def plot_samples_2d(rows: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path) -> Path:
    """Fig. 6: one row per class ``(title, images (k, n, n) bool, vf (k,))``."""
    plt = _pyplot()
    k = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), k, figsize=(2.2 * k, 2.4 * len(rows)), squeeze=False)
    for r, (title, images, vf) in enumerate(rows):
        for c in range(k):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images):
                ax.set_axis_off()
                continue
            # axis 0 is x1 (horizontal), axis 1 is x2 (vertical, upwards)
            ax.imshow(np.asarray(images[c]).T, cmap="gray_r", origin="lower", vmin=0, vmax=1)
            ax.set_title(f"vf = {vf[c]:.2f}", fontsize=8)
        axes[r, 0].text(
            -0.08,
            0.5,
            title,
            transform=axes[r, 0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=8,
        )
    fig.tight_layout()
    return _save(fig, path)


def _cube(ax: Any, vol: np.ndarray) -> None:
    """Draw the three visible faces of a voxel cube in an oblique projection."""
    from matplotlib.transforms import Affine2D

    n = vol.shape[0]
    a, th = 0.5, np.deg2rad(35.0)
    ac, as_ = a * np.cos(th), a * np.sin(th)
    inc, mat = np.array([0.1, 0.1, 0.1]), np.array([0.93, 0.93, 0.93])

    def rgb(face: np.ndarray, shade: float) -> np.ndarray:
        # RGBA: the resampled image is transparent outside its parallelogram
        img = np.clip(np.where(face[..., None], inc, mat) * shade, 0, 1)
        return np.concatenate([img, np.ones((*face.shape, 1))], axis=-1)

    faces = (
        (vol[:, 0, :].T, 1.0, Affine2D()),  # front: y = 0, rows z, cols x
        (
            vol[:, :, -1].T,
            0.85,  # top: z = n, rows y, cols x
            Affine2D(np.array([[1.0, ac, 0.0], [0.0, as_, n], [0, 0, 1]])),
        ),
        (
            vol[-1, :, :].T,
            0.7,
            Affine2D(  # side: x = n, rows z, cols y
                np.array([[ac, 0.0, n], [as_, 1.0, 0.0], [0, 0, 1]])
            ),
        ),
    )
    for img, shade, tr in faces:
        im = ax.imshow(
            rgb(np.asarray(img, bool), shade),
            origin="lower",
            extent=(0, n, 0, n),
            interpolation="nearest",
        )
        im.set_transform(tr + ax.transData)
    ax.set_xlim(-1, n + n * ac + 1)
    ax.set_ylim(-1, n + n * as_ + 1)
    ax.set_aspect("equal")
    ax.set_axis_off()


def plot_samples_3d(images: np.ndarray, vf: np.ndarray, path: str | Path, *, title: str) -> Path:
    """Fig. 13: sphere SVEs ``(k, n, n, n)`` bool as shaded cubes (the faces at the cell sides)."""
    plt = _pyplot()
    k = len(images)
    fig, axes = plt.subplots(1, k, figsize=(3.0 * k, 3.2), squeeze=False)
    for c in range(k):
        _cube(axes[0, c], np.asarray(images[c], bool))
        axes[0, c].set_title(f"vf = {vf[c]:.2f}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_losses(
    panels: Sequence[tuple[str, Sequence[tuple[str, dict[str, list[float]], str]]]],
    path: str | Path,
    *,
    ylabel: str = "loss (MSE)",
    cols: int | None = None,
) -> Path:
    """Figs. 10b, 11b, 14a: per panel ``(title, [(label, history, colour), ...])``.

    Training loss solid, validation loss dashed, log scale; ``cols`` panels per row.
    """
    plt = _pyplot()
    fig, axes = _grid(plt, len(panels), h=3.4, cols=cols)
    for ax, (title, series) in zip(axes, panels):
        for label, hist, color in series:
            loss = np.asarray(hist.get("loss", []), float)
            ep = np.arange(1, loss.size + 1)
            ax.plot(ep, loss, color=color, lw=1.2, label=f"{label} training")
            val = np.asarray(hist.get("val_loss", []), float)
            if val.size:
                ax.plot(
                    ep[: val.size], val, color=color, lw=1.2, ls="--", label=f"{label} validation"
                )
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_parity_rows(
    rows: Sequence[Sequence[tuple[str, Sequence[tuple[str, np.ndarray, np.ndarray, str]]]]],
    path: str | Path,
) -> Path:
    """Figs. 10c-d, 11c-d, 12, 14b: a grid of parity panels, FE on the red identity line.

    ``rows[r][c] = (title, [(label, y_true (N,), y_pred (N,), colour), ...])``.
    """
    plt = _pyplot()
    m = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), m, figsize=(3.3 * m, 3.3 * len(rows)), squeeze=False)
    for r, panels in enumerate(rows):
        for c in range(m):
            ax = axes[r, c]
            if c >= len(panels):
                ax.set_axis_off()
                continue
            title, series = panels[c]
            vals = np.concatenate([np.r_[s[1], s[2]] for s in series])
            lo, hi = float(vals.min()), float(vals.max())
            pad = 0.03 * (hi - lo or 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="red", lw=1.2, label="FEM")
            for label, yt, yp, color in series:
                ax.scatter(yt, yp, s=7, alpha=0.6, color=color, edgecolors="none", label=label)
            ax.set_xlabel("FEM", fontsize=8)
            ax.set_ylabel("CNN", fontsize=8)
            ax.set_title(title, fontsize=8)
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(lo - pad, hi + pad)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def plot_learning_curve(
    n_train: Sequence[int], mape: Sequence[float], path: str | Path, *, title: str
) -> Path:
    """MAPE (diagonal mean, %) against the number of training samples, log-log."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    ax.loglog(n_train, mape, "o-", color="C0")
    for x, y in zip(n_train, mape):
        ax.annotate(f"{y:.2f} %", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("training samples")
    ax.set_ylabel("MAPE of the diagonal (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return _save(fig, path)


def plot_error_vs_vf(
    panels: Sequence[tuple[str, np.ndarray, dict[str, Sequence[float | None]]]], path: str | Path
) -> Path:
    """MAPE per volume-fraction bin; per panel ``(title, bin edges, {label: per-bin MAPE})``."""
    plt = _pyplot()
    fig, axes = _grid(plt, len(panels))
    for ax, (title, edges, lines) in zip(axes, panels):
        centers = 0.5 * (np.asarray(edges)[1:] + np.asarray(edges)[:-1])
        for k, (label, vals) in enumerate(lines.items()):
            y = np.array([np.nan if v is None else v for v in vals], float)
            style = "o-" if label.startswith("CNN") else "s--"
            ax.semilogy(centers, y, style, color=_COLOURS[k % len(_COLOURS)], label=label, ms=4)
        ax.set_xlabel("volume fraction")
        ax.set_ylabel("MAPE (%)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return _save(fig, path)


def plot_estimates(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, dict[str, np.ndarray]]], path: str | Path
) -> Path:
    """μ*_11 against volume fraction: FE labels, CNN and the analytic estimates.

    Per panel ``(title, vf (N,), mu11 FE (N,), {label: values (N,)})``; labels starting with
    ``CNN`` are drawn as points, the others as curves.
    """
    plt = _pyplot()
    fig, axes = _grid(plt, len(panels), h=3.8)
    for ax, (title, vf, fe, others) in zip(axes, panels):
        order = np.argsort(vf)
        ax.scatter(vf, fe, s=10, color="red", label="FEM", zorder=3)
        for k, (label, vals) in enumerate(others.items()):
            colour = _COLOURS[k % len(_COLOURS)]
            if label.startswith("CNN"):
                ax.scatter(vf, vals, s=8, marker="x", color=colour, label=label, zorder=4)
            else:
                ax.plot(vf[order], np.asarray(vals)[order], color=colour, lw=1, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("volume fraction")
        ax.set_ylabel(r"$\mu^*_{11}$")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return _save(fig, path)
