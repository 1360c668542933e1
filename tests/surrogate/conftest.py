"""Fixtures of the surrogate tests: tiny datasets (32^2, FV labels) and a tiny trained model."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow  # noqa: F401  (before anything that may load DOLFINx)
from surrogate_helpers import disk_images, fv_homogenize, write_dataset

#: Small model options that keep the tests fast (stride 1 * 2^2 = 4 px).
TINY = {"filters": [4, 8, 8], "dense": [16], "stem": 1}
N_PIX = 32


@pytest.fixture(scope="session")
def tiny_images() -> np.ndarray:
    return disk_images(80, N_PIX, radius=3.0, rng=1)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, tiny_images):
    """A labeled 2D dataset file: 80 samples of 32^2 with finite-volume labels."""
    mu = fv_homogenize(tiny_images)
    return write_dataset(tmp_path_factory.mktemp("data") / "tiny.h5", tiny_images, mu)


@pytest.fixture(scope="session")
def other_dataset(tmp_path_factory):
    """A second labeled dataset (larger disks), for transfer learning."""
    images = disk_images(40, N_PIX, radius=4.5, rng=2, vf_range=(0.1, 0.4))
    return write_dataset(
        tmp_path_factory.mktemp("data2") / "other.h5", images, fv_homogenize(images)
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_dataset):
    """A default-preset model trained for a few epochs on ``tiny_dataset``: (TrainResult)."""
    from surrogate.train import train

    out = tmp_path_factory.mktemp("models") / "tiny"
    return train(
        tiny_dataset, out=out, epochs=5, batch_size=16, learning_rate=3e-3, options=TINY, seed=0
    )
