"""Figures of the paper for a trained surrogate, as PNG files (matplotlib, Agg backend).

* :func:`plot_parity` -- CNN prediction against the FE label per component, with the identity
  line in red (paper Fig. 10c-d);
* :func:`plot_history` -- training and validation loss against the epoch (Fig. 10b);
* :func:`write_figures` -- both, into a directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from surrogate.evaluation import Evaluation

__all__ = ["plot_history", "plot_parity", "write_figures"]


def _pyplot():
    from magnetohom.mpl import pyplot

    return pyplot()


def plot_parity(evaluation: Evaluation, path: str | Path, *, dpi: int = 150) -> Path:
    """Parity plot, one panel per component, with MAPE and R^2 in each title.

    Returns the written path.
    """
    plt = _pyplot()
    m = len(evaluation.components)
    fig, axes = plt.subplots(1, m, figsize=(4.0 * m, 4.0), squeeze=False)
    for c, ax in enumerate(axes[0]):
        t, p = evaluation.y_true[:, c], evaluation.y_pred[:, c]
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        pad = 0.03 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="red", lw=1.2, label="FEM")
        ax.scatter(t, p, s=8, alpha=0.6, edgecolors="none", label="CNN")
        name = evaluation.components[c]
        label = rf"$\mu^*_{{{name[2:]}}}$"
        ax.set_xlabel(f"{label} (FEM)")
        ax.set_ylabel(f"{label} (CNN)")
        ax.set_title(
            f"{label}: MAPE {evaluation.mape[c]:.2f} %, $R^2$ {evaluation.r2[c]:.4f}", fontsize=10
        )
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{evaluation.split} set, N = {evaluation.n}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_history(history: dict[str, Any], path: str | Path, *, dpi: int = 150) -> Path:
    """Training (solid) and validation (dashed) loss per epoch, one colour per ensemble member.

    ``history`` is the content of ``history.json`` (``{"members": [{"loss", "val_loss"}, ...]}``)
    or one member's dict. Returns the written path.
    """
    plt = _pyplot()
    members = history.get("members", [history])
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for k, h in enumerate(members):
        color = f"C{k % 10}"
        epochs = np.arange(1, len(h.get("loss", [])) + 1)
        suffix = "" if len(members) == 1 else f" ({k})"
        ax.plot(epochs, h.get("loss", []), color=color, label=f"training{suffix}")
        if h.get("val_loss"):
            ax.plot(epochs, h["val_loss"], color=color, ls="--", label=f"validation{suffix}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def write_figures(evaluation: Evaluation, outdir: str | Path) -> list[Path]:
    """Write ``parity.png`` and (when the model has a history) ``loss.png`` into ``outdir``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [plot_parity(evaluation, outdir / "parity.png")]
    if evaluation.history:
        paths.append(plot_history(evaluation.history, outdir / "loss.png"))
    return paths
