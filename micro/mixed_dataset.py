"""FE-labelled datasets of many morphologies and phase permeabilities (the general model's data).

Unlike :mod:`micro.dataset` (one class of disks/spheres, one pair of phase permeabilities per
file), every row here has its own morphology class (:mod:`micro.morphologies`) and its own
``(mu_matrix, mu_inclusion)``: the contrast ``mu_inclusion / mu_matrix`` is log-uniform in
``[10^-max_log10_contrast, 10^max_log10_contrast]`` (either phase the stronger) and
``mu_matrix`` log-uniform in ``mu_matrix_range``. The labels are the periodic FE tensors of
:class:`micro.homogenization.Homogenizer`.

File layout (HDF5, one image shape per file):

================== ======================== ===============================================
dataset            dtype / shape            meaning
================== ======================== ===============================================
``images``         uint8 ``(N, n1, n2)``    1 = inclusion (phase of ``mu_inclusion``)
``mu_phases``      float64 ``(N, 2)``       ``(mu_matrix, mu_inclusion)`` of the row
``mu_eff``         float64 ``(N, 2, 2)``    FE tensor (NaN until done)
``kind``           int16 ``(N,)``           index into the ``kinds`` attribute
``periodic``       bool ``(N,)``            False: a window of a larger periodic image
``done``           bool ``(N,)``            row finished; a rerun skips it
``solve_seconds``  float64 ``(N,)``         wall time of the label
================== ======================== ===============================================

Row ``i`` is drawn from ``SeedSequence(seed).spawn(N)[i]``, so a killed run resumes with the same
rows, and rows do not depend on which were done before.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from magnetohom.errors import InputError
from micro.morphologies import MORPHOLOGIES, random_morphology

__all__ = ["MixedData", "generate_mixed_dataset", "load_mixed_dataset"]

log = logging.getLogger(__name__)

FORMAT = "magnetohom-mixed-dataset"


@dataclass(frozen=True)
class MixedData:
    """The finished rows of a mixed dataset.

    Attributes
    ----------
    images : ndarray of bool, shape (N, n1, n2)
    mu_phases : ndarray of float64, shape (N, 2)
        ``(mu_matrix, mu_inclusion)`` per row.
    mu_eff : ndarray of float64, shape (N, 2, 2)
    kinds : ndarray of str, shape (N,)
    periodic : ndarray of bool, shape (N,)
    """

    images: np.ndarray
    mu_phases: np.ndarray
    mu_eff: np.ndarray
    kinds: np.ndarray
    periodic: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _draw_row(
    seed: np.random.SeedSequence,
    shape: tuple[int, int],
    kinds: tuple[str, ...],
    max_log10_contrast: float,
    mu_matrix_range: tuple[float, float],
    crop: float,
    min_log10_contrast: float = 0.0,
):
    rng = np.random.default_rng(seed)
    m = random_morphology(shape, rng=rng, kinds=kinds, crop=crop)
    if min_log10_contrast > 0:
        size = rng.uniform(min_log10_contrast, max_log10_contrast)
        log_c = size if rng.random() < 0.5 else -size
    else:  # the draw of the files made before min_log10_contrast existed
        log_c = rng.uniform(-max_log10_contrast, max_log10_contrast)
    lo, hi = np.log10(mu_matrix_range)
    mu_m = 10 ** rng.uniform(lo, hi)
    return m, np.array([mu_m, mu_m * 10**log_c])


def generate_mixed_dataset(
    path: str | Path,
    n_samples: int,
    *,
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    kinds: tuple[str, ...] | None = None,
    max_log10_contrast: float = 4.0,
    min_log10_contrast: float = 0.0,
    mu_matrix_range: tuple[float, float] = (1.0, 100.0),
    crop: float = 0.3,
    rtol: float = 1e-8,
    progress: bool = False,
) -> int:
    """Create or resume a mixed dataset; returns the number of rows labelled by this call.

    Parameters
    ----------
    path : str or Path
        HDF5 file; an existing file must have been made with the same arguments.
    n_samples : int
    shape : (int, int)
        Image shape ``(n1, n2)``: square or rectangular periodic cells (square pixels).
    seed : int
    kinds : tuple of str, optional
        Morphology classes (default all of :data:`micro.morphologies.MORPHOLOGIES`).
    max_log10_contrast : float
        Contrasts up to ``10**max_log10_contrast`` either way.
    min_log10_contrast : float
        Contrasts from ``10**min_log10_contrast`` (``|log10 c|`` uniform between the two; 0:
        ``log10 c`` uniform over ``[-max, max]``).
    mu_matrix_range : (float, float)
        Range of ``mu_matrix`` (log-uniform).
    crop : float
        Share of non-periodic windows.
    rtol : float
        CG tolerance of the labels.
    progress : bool
        Show a progress bar.

    Returns
    -------
    int
    """
    import h5py

    kinds = tuple(MORPHOLOGIES) if kinds is None else tuple(kinds)
    unknown = [k for k in kinds if k not in MORPHOLOGIES]
    if unknown:
        raise InputError(
            f"unknown morphology {unknown[0]!r}: choose from {', '.join(MORPHOLOGIES)}"
        )
    if n_samples < 1:
        raise InputError(f"n_samples must be >= 1: got {n_samples}")
    shape = (int(shape[0]), int(shape[1]))
    attrs = {
        "format": FORMAT,
        "shape": json.dumps(shape),
        "seed": int(seed),
        "kinds": json.dumps(kinds),
        "max_log10_contrast": float(max_log10_contrast),
        "mu_matrix_range": json.dumps([float(v) for v in mu_matrix_range]),
        "crop": float(crop),
        "n_samples": int(n_samples),
    }
    if min_log10_contrast > 0:  # files made before the option have no such attribute
        attrs["min_log10_contrast"] = float(min_log10_contrast)
    if not 0 <= min_log10_contrast <= max_log10_contrast:
        raise InputError(
            f"min_log10_contrast must be in [0, max_log10_contrast]: got {min_log10_contrast}"
        )
    path = Path(path)
    fresh = not path.exists()
    with h5py.File(path, "a") as f:
        if fresh:
            for key, value in attrs.items():
                f.attrs[key] = value
            n = n_samples
            f.create_dataset(
                "images",
                (n, *shape),
                dtype="u1",
                chunks=(1, *shape),
                compression="gzip",
                fletcher32=True,
            )
            f.create_dataset("mu_phases", (n, 2), dtype="f8", fillvalue=np.nan)
            f.create_dataset("mu_eff", (n, 2, 2), dtype="f8", fillvalue=np.nan)
            f.create_dataset("kind", (n,), dtype="i2", fillvalue=-1)
            f.create_dataset("periodic", (n,), dtype=bool)
            f.create_dataset("done", (n,), dtype=bool)
            f.create_dataset("solve_seconds", (n,), dtype="f8", fillvalue=np.nan)
        else:
            for key, value in attrs.items():
                if f.attrs.get(key) != value:
                    raise InputError(
                        f"{path} was made with {key}={f.attrs.get(key)!r}, not {value!r}: "
                        "choose another file name or the same arguments"
                    )
        done = f["done"][:]
        todo = np.flatnonzero(~done)
        if todo.size == 0:
            return 0
        from micro.homogenization import Homogenizer

        h = Homogenizer(shape, rtol=rtol)
        seeds = np.random.SeedSequence(seed).spawn(n_samples)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n_samples, initial=int(done.sum()), unit="SVE")
        for i in todo:
            m, mu = _draw_row(
                seeds[i], shape, kinds, max_log10_contrast, mu_matrix_range, crop,
                min_log10_contrast,
            )  # fmt: skip
            t0 = time.perf_counter()
            sol = h.solve_mu(np.where(m.image, mu[1], mu[0]))
            f["images"][i] = m.image.astype(np.uint8)
            f["mu_phases"][i] = mu
            f["mu_eff"][i] = sol.mu_eff
            f["kind"][i] = kinds.index(m.kind)
            f["periodic"][i] = m.periodic
            f["solve_seconds"][i] = time.perf_counter() - t0
            f["done"][i] = True
            f.flush()
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    return int(todo.size)


def load_mixed_dataset(path: str | Path) -> MixedData:
    """The finished rows of a mixed dataset file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    MixedData
    """
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r", locking=False) as f:
            if f.attrs.get("format") != FORMAT:
                raise InputError(
                    f"{path} is not a mixed dataset (format {f.attrs.get('format')!r})"
                )
            done = f["done"][:]
            idx = np.flatnonzero(done)
            kinds = np.asarray(json.loads(f.attrs["kinds"]))
            return MixedData(
                images=f["images"][idx].astype(bool),
                mu_phases=f["mu_phases"][idx],
                mu_eff=f["mu_eff"][idx],
                kinds=kinds[f["kind"][idx]],
                periodic=f["periodic"][idx],
            )
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
