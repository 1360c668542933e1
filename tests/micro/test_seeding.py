"""The compiled per-key streams equal NumPy's SeedSequence + PCG64, word for word."""

from __future__ import annotations

import numpy as np
import pytest

from magnetohom.errors import InputError
from micro._seeding import child_raw
from micro.generate import generate_images


def _numpy_words(base: int, key: int, n: int) -> np.ndarray:
    seq = np.random.SeedSequence(base, spawn_key=(int(key),))
    return np.random.default_rng(seq).bit_generator.random_raw(n)


@pytest.mark.parametrize("base", [0, 1, 7, 2**32 - 1, 2**32, 2**64 + 3, 2**130 + 99])
def test_child_raw_equals_numpy(base):
    keys = np.array([0, 1, 5, 1000, 2**31, 2**32 - 1, 2**32, 2**33 + 7, 2**63 + 1], np.uint64)
    want = np.array([_numpy_words(base, k, 6) for k in keys])
    np.testing.assert_array_equal(child_raw(base, keys, 6), want)
    assert child_raw(base, keys[:0]).shape == (0, 4)


def test_spawn_keys_give_the_images_of_point_generators():
    vf = np.array([0.2, 0.0, 0.35, 0.1])
    keys = np.array([3, 4, 10**6, 2**40])
    rngs = [np.random.default_rng(np.random.SeedSequence(9, spawn_key=(int(k),))) for k in keys]
    want = generate_images(vf, rngs=rngs, size=48, radius=3.0)
    got, counts = generate_images(
        vf, seed=9, spawn_keys=keys, size=48, radius=3.0, return_counts=True
    )
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(counts, want.reshape(4, -1).sum(axis=1))
    assert not got[1].any()


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"rngs": [0, 1], "seed": 1, "spawn_keys": [0, 1]}, {"seed": 1},
     {"seed": 1, "spawn_keys": [0, -1]}, {"seed": -1, "spawn_keys": [0, 1]},
     {"seed": 1, "spawn_keys": [0.5, 1.0]}, {"seed": 1, "spawn_keys": [0, 1, 2]}],
)  # fmt: skip
def test_bad_stream_arguments(kwargs):
    with pytest.raises(InputError):
        generate_images([0.1, 0.2], size=32, radius=3.0, **kwargs)
