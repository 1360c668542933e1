"""Fixtures of the surrogate tests: tiny datasets (32^2, DOLFINx labels), a tiny trained model."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow  # noqa: F401  (before anything that may load DOLFINx)

#: Small model options that keep the tests fast (stride 1 * 2^2 = 4 px).
TINY = {"filters": [4, 8, 8], "dense": [16], "stem": 1}
N_PIX = 32


def _generate(path, *, n_samples: int, radius: float, vf_range, base_seed: int):
    """A labeled 2D dataset file of N_PIX^2 RSA disks made by the real pipeline (micro)."""
    from mpi4py import MPI

    from micro.dataset import generate_dataset

    generate_dataset(
        path,
        n_samples=n_samples,
        dim=2,
        size=N_PIX,
        radius=radius,
        vf_range=vf_range,
        base_seed=base_seed,
        comm=MPI.COMM_SELF,
        progress=False,
    )
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A labeled 2D dataset file: 80 samples of 32^2 (disks of radius 2), DOLFINx labels."""
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    return _generate(path, n_samples=80, radius=2.0, vf_range=(0.05, 0.45), base_seed=1)


@pytest.fixture(scope="session")
def tiny_images(tiny_dataset) -> np.ndarray:
    """The images of ``tiny_dataset``: bool (80, 32, 32)."""
    from micro.dataset_io import load_dataset

    return load_dataset(tiny_dataset).images


@pytest.fixture(scope="session")
def other_dataset(tmp_path_factory):
    """A second labeled dataset (40 samples, larger disks), for transfer learning."""
    path = tmp_path_factory.mktemp("data2") / "other.h5"
    return _generate(path, n_samples=40, radius=2.5, vf_range=(0.1, 0.4), base_seed=2)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_dataset):
    """A default-preset model trained for a few epochs on ``tiny_dataset``: (TrainResult)."""
    from surrogate.training import train

    out = tmp_path_factory.mktemp("models") / "tiny"
    return train(
        tiny_dataset, out=out, epochs=5, batch_size=16, learning_rate=3e-3, options=TINY, seed=0
    )


@pytest.fixture(scope="session")
def mixed_dataset(tmp_path_factory):
    """A mixed dataset (every morphology class, random phases): 24 rows of 32^2, FE labels."""
    from micro.mixed_dataset import generate_mixed_dataset

    path = tmp_path_factory.mktemp("mixed") / "mixed.h5"
    generate_mixed_dataset(path, 24, shape=(N_PIX, N_PIX), seed=3)
    return path


@pytest.fixture(scope="session")
def tiny_general(tmp_path_factory, mixed_dataset):
    """A general model trained for one epoch on ``mixed_dataset`` and calibrated on it."""
    from surrogate.general import calibrate, train_general

    out = tmp_path_factory.mktemp("general") / "tiny-general"
    train_general([mixed_dataset], out, epochs=1, batch_size=8, width=4, depth=1, name="tiny")
    calibrate(out, [mixed_dataset], tta=2, coverage=0.95, contrast_edges=(), size_edges=())
    return out


@pytest.fixture(scope="session")
def tiny_general_tensors(tmp_path_factory, mixed_dataset, tiny_general):
    """``tiny_general`` carried over to the Q1 tensor coarse solve and trained one epoch."""
    from surrogate.general import calibrate, train_general

    out = tmp_path_factory.mktemp("general") / "tiny-tensors"
    train_general([mixed_dataset], out, epochs=1, batch_size=8, name="tiny-tensors",
                  init=tiny_general, coarse="tensors", loss="huber")  # fmt: skip
    calibrate(out, [mixed_dataset], tta=2, coverage=0.95, contrast_edges=(), size_edges=())
    return out
