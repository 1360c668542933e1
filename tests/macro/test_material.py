"""Volume-fraction fields and deterministic per-point SVEs."""

from __future__ import annotations

import numpy as np
import pytest

from macro.material import (
    CallableFraction,
    LinearGrading,
    Material,
    MirroredFraction,
    RadialGrading,
    as_fraction_field,
    point_rng,
)
from magnetohom.errors import InputError

X = np.array([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [2.0, 1.0]])


def test_fields():
    assert np.allclose(as_fraction_field(0.3)(X), 0.3)
    assert np.allclose(LinearGrading(0.1, 0.5)(X), [0.1, 0.3, 0.5, 0.5])
    assert np.allclose(RadialGrading(0.4, 0.2, r0=0.0, r1=1.0)(X), [0.4, 0.3, 0.2, 0.2])
    mirrored = MirroredFraction(LinearGrading(0.1, 0.5))
    assert np.allclose(mirrored(-X), mirrored(X * [1, -1]))
    assert np.allclose(as_fraction_field(lambda x: 0.1 + 0.1 * x[:, 0])(X[:2]), [0.1, 0.15])


@pytest.mark.parametrize(
    "bad",
    [lambda: as_fraction_field(1.5), lambda: LinearGrading(0.1, 0.2, (0, 0), (0, 0)),
     lambda: CallableFraction(lambda x: 2.0 + 0 * x[:, 0])(X), lambda: as_fraction_field("x"),
     lambda: Material(0.3, radius=2.0, radius_range=(1, 2))],
)  # fmt: skip
def test_bad_fields(bad):
    with pytest.raises(InputError):
        bad()


def test_sves_depend_only_on_seed_and_global_index():
    mat = Material(LinearGrading(0.1, 0.4), resolution=32, seed=7)
    x = np.array([[0.2, 0.0], [0.8, 0.0], [0.5, 0.0]])
    a = mat.generate(x, [10, 11, 12])
    b = mat.generate(x[[2, 0]], [12, 10])  # another order, another "rank"
    assert np.array_equal(a.images[2], b.images[0]) and np.array_equal(a.images[0], b.images[1])
    assert not np.array_equal(a.images[0], a.images[1])
    assert np.allclose(a.volume_fraction, a.target_volume_fraction, atol=0.01)
    c = Material(LinearGrading(0.1, 0.4), resolution=32, seed=8).generate(x, [10, 11, 12])
    assert not np.array_equal(a.images[0], c.images[0])
    assert point_rng(7, 10).random() == point_rng(7, 10).random()


def test_zero_fraction_gives_matrix_only():
    mat = Material(0.0, resolution=16)
    batch = mat.generate(np.zeros((3, 2)), [0, 1, 2])
    assert batch.images.shape == (3, 16, 16) and not batch.images.any()


def test_matched_to_adopts_size_and_training_radius():
    mat = Material(0.2, dim=3)
    m = mat.matched_to(48, {"radius": 5.0, "overlap": False})
    assert m.resolution == 48 and m.radius_for(48) == 5.0
    # an explicit radius, another class, or no geometry keep the material's own rule
    assert Material(0.2, radius=3.0).matched_to(48, {"radius": 5.0}).radius == 3.0
    assert Material(0.2, overlap=True).matched_to(48, {"radius": 5.0}).radius is None
    assert mat.matched_to(None, {}).resolution is None
    assert mat.matched_to(101, None).radius_for(101) == 5.0


def test_batched_generation_equals_one_call_per_point():
    from micro.generate import generate_sve

    x = np.array([[0.2, 0.0], [0.8, 0.0], [0.5, 0.0], [0.0, 0.0]])
    field = LinearGrading(0.0, 0.45, p0=(0.1, 0.0), p1=(0.9, 0.0))
    batched = Material(field, resolution=48, seed=3).generate(x, [5, 6, 7, 8])
    looped = Material(field, resolution=48, seed=3, generator=generate_sve).generate(
        x, [5, 6, 7, 8]
    )
    assert np.array_equal(batched.images, looped.images)
    assert not batched.images[3].any()  # vf = 0 at x = 0: all matrix
    # an unreachable fraction names the global point index
    with pytest.raises(InputError, match="SVE of point 42"):
        Material(0.9, resolution=32, seed=0).generate(np.zeros((1, 2)), [42])
