"""Test helpers: random disk images, a finite-volume homogenizer and hand-made dataset files.

The finite-volume (two-point flux, cell-centred) homogenizer is independent of :mod:`micro`: on the
pixel grid it is exactly equivariant under the grid symmetries, symmetric, and gives non-zero
off-diagonal components for tilted/stretched inclusions, so it checks the tensor transformation
rules of the augmentation with a real solve, independently of the project's solver.

:func:`write_dataset` writes files by hand for edge cases the real pipeline never produces (NaN
labels, unfinished rows); the shared datasets of ``conftest.py`` come from
:func:`micro.dataset.generate_dataset`.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["disk_images", "fv_homogenize", "write_dataset"]


def disk_images(
    n_samples: int, n: int, *, dim: int = 2, radius: float = 3.0, rng=None, vf_range=(0.05, 0.5)
) -> np.ndarray:
    """Random periodic (possibly overlapping) disks/spheres: bool (N, n, ..., n)."""
    rng = np.random.default_rng(rng)
    grids = np.meshgrid(*(np.arange(n) + 0.5 for _ in range(dim)), indexing="ij")
    out = np.zeros((n_samples,) + (n,) * dim, dtype=bool)
    ball = (np.pi * radius**2) if dim == 2 else (4 / 3 * np.pi * radius**3)
    for s in range(n_samples):
        vf = rng.uniform(*vf_range)
        count = max(1, int(round(-np.log(1 - vf) * n**dim / ball)))
        img = np.zeros((n,) * dim, dtype=bool)
        for _ in range(count):
            c = rng.uniform(0, n, size=dim)
            d2 = sum(np.minimum(np.abs(g - ci), n - np.abs(g - ci)) ** 2 for g, ci in zip(grids, c))
            img |= d2 <= radius**2
        out[s] = img
    return out


def _diff(n: int, dim: int, axis: int) -> sp.csr_matrix:
    idx = np.arange(n**dim).reshape((n,) * dim)
    nxt = np.roll(idx, -1, axis=axis).ravel()
    rows = np.arange(n**dim)
    return sp.csr_matrix(
        (np.r_[np.ones(rows.size), -np.ones(rows.size)], (np.r_[rows, rows], np.r_[nxt, rows])),
        shape=(rows.size, rows.size),
    )


def fv_homogenize(images, *, mu_matrix: float = 1.0, mu_inclusion: float = 250.0) -> np.ndarray:
    """Homogenized tensors (N, d, d) of images (N, n, ..., n) by two-point-flux finite volumes."""
    images = np.asarray(images, dtype=bool)
    dim, n = images.ndim - 1, images.shape[1]
    diffs = [_diff(n, dim, k) for k in range(dim)]
    out = np.empty((images.shape[0], dim, dim))
    for s, img in enumerate(images):
        mu = np.where(img, mu_inclusion, mu_matrix).astype(float)
        faces = []
        for k in range(dim):
            nb = np.roll(mu, -1, axis=k)
            faces.append((2 * mu * nb / (mu + nb)).ravel())
        stiff = sum(d.T @ sp.diags(m) @ d for d, m in zip(diffs, faces)).tocsc()
        inner = stiff[1:, 1:]
        grads = []
        for i in range(dim):
            rhs = -(diffs[i].T @ faces[i])
            phi = np.zeros(n**dim)
            phi[1:] = spla.spsolve(inner, rhs[1:])
            grads.append([diffs[k] @ phi + (1.0 if k == i else 0.0) for k in range(dim)])
        for i in range(dim):
            for j in range(dim):
                out[s, i, j] = (
                    sum(grads[i][k] @ (faces[k] * grads[j][k]) for k in range(dim)) / n**dim
                )
    return 0.5 * (out + np.swapaxes(out, 1, 2))


def write_dataset(
    path: Path,
    images: np.ndarray,
    mu_eff: np.ndarray | None,
    *,
    mu_matrix: float = 1.0,
    mu_inclusion: float = 250.0,
    done: np.ndarray | None = None,
    geometry: dict | None = None,
) -> Path:
    """Write a dataset file in the documented schema (ARCHITECTURE.md)."""
    images = np.asarray(images)
    n_samples, dim, n = images.shape[0], images.ndim - 1, images.shape[1]
    if mu_eff is None:
        mu_eff = np.full((n_samples, dim, dim), np.nan)
    if done is None:
        done = np.all(np.isfinite(mu_eff), axis=(1, 2))
    vf = images.reshape(n_samples, -1).mean(axis=1)
    with h5py.File(path, "w") as fh:
        fh.create_dataset(
            "images", data=images.astype(np.uint8), chunks=(1,) + (n,) * dim, compression="gzip"
        )
        fh["mu_eff"] = np.asarray(mu_eff, dtype=np.float64)
        fh["volume_fraction"] = vf
        fh["target_volume_fraction"] = vf
        fh["seed"] = np.arange(n_samples, dtype=np.int64)
        fh["done"] = np.asarray(done, dtype=bool)
        fh["iterations"] = np.zeros((n_samples, dim), dtype=np.int32)
        fh["solve_seconds"] = np.zeros(n_samples)
        attrs = {
            "format": "magnetohom-dataset",
            "format_version": 1,
            "dim": dim,
            "resolution": n,
            "mu_matrix": mu_matrix,
            "mu_inclusion": mu_inclusion,
            "geometry": json.dumps(geometry or {"class": "test-disks", "overlap": True}),
            "vf_range": [0.05, 0.5],
            "base_seed": 0,
            "n_samples": n_samples,
            "magnetohom_version": "test",
            "created": "now",
        }
        fh.attrs.update(attrs)
    return path
