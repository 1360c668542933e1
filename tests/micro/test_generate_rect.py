"""Rectangular periodic SVEs (issue 21): shape, volume fraction, no overlaps, periodic wrap
along each axis with its own period, the batched API, the numpy reference and bad sizes."""

from __future__ import annotations

import numpy as np
import pytest

from magnetohom.errors import InputError
from micro._rsa_numpy import reference_sve
from micro.generate import generate_images, generate_sve, rasterize, spawn_seeds
from micro.validate import check_size, parse_size

TOL = 0.005


def _min_image(d: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Minimum-image displacements ``d (..., dim)`` in a cell of ``shape`` (per-axis period)."""
    period = np.asarray(shape, dtype=float)
    return d - period * np.round(d / period)


def _brute_raster(centers: np.ndarray, radii: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Independent rasterisation: every pixel centre against every ball (minimum image)."""
    grids = np.meshgrid(*(np.arange(n) + 0.5 for n in shape), indexing="ij")
    pix = np.stack([g.ravel() for g in grids], axis=1)
    out = np.zeros(pix.shape[0], dtype=bool)
    for c, r in zip(centers, radii):
        d = _min_image(pix - c, shape)
        out |= (d * d).sum(axis=1) < r * r
    return out.reshape(shape)


def _separation(centers: np.ndarray, radii: np.ndarray, shape: tuple[int, ...]) -> float:
    """Smallest centre distance over the sum of the radii (>= 1: no overlap)."""
    d = _min_image(centers[:, None, :] - centers[None, :, :], shape)
    dist = np.sqrt((d * d).sum(-1))
    np.fill_diagonal(dist, np.inf)
    return float((dist / (radii[:, None] + radii[None, :])).min())


@pytest.mark.parametrize(
    ("shape", "kw", "vf"),
    [
        ((256, 128), {"radius": 8.0}, 0.45),
        ((128, 256), {"radius_range": (3.0, 9.0)}, 0.5),
        ((256, 128), {"radius": 6.0, "overlap": True}, 0.6),
        ((96, 160), {"radius_range": (2.0, 6.0), "overlap": True}, 0.3),
        ((48, 40, 32), {"radius": 4.0}, 0.3),
        ((32, 40, 48), {"radius_range": (2.0, 4.0), "overlap": True}, 0.4),
    ],
)
def test_rectangular_sve_has_its_shape_fraction_and_pixels(shape, kw, vf):
    for seed in range(3):
        sve = generate_sve(dim=len(shape), size=shape, volume_fraction=vf, rng=seed, **kw)
        assert sve.image.shape == shape and sve.shape == shape and sve.size == shape
        assert abs(sve.image.mean() - vf) <= TOL
        assert sve.volume_fraction == pytest.approx(sve.image.mean(), abs=1e-15)
        assert np.all(sve.centers >= 0) and np.all(sve.centers < np.asarray(shape))
        np.testing.assert_array_equal(_brute_raster(sve.centers, sve.radii, shape), sve.image)
        np.testing.assert_array_equal(rasterize(sve.centers, sve.radii, size=shape), sve.image)


@pytest.mark.parametrize(
    ("shape", "kw", "vf"),
    [
        ((256, 128), {"radius": 8.0}, 0.5),  # near jamming: blocked map and free list
        ((128, 256), {"radius": 8.0}, 0.5),
        ((256, 24), {"radius": 5.0}, 0.45),  # 25 x 2 bins: the short axis searched whole
        ((24, 256), {"radius": 5.0}, 0.45),
        ((200, 72), {"radius_range": (3.0, 9.0)}, 0.52),
        ((64, 24, 40), {"radius": 3.5}, 0.33),
        ((24, 64, 40), {"radius_range": (2.0, 4.0)}, 0.34),
    ],
)
def test_rectangular_non_overlapping_classes_do_not_overlap(shape, kw, vf):
    """The cell list bins each axis by its own side (it took every axis's bins from the last:
    neighbours across the short axis's wrap were missed)."""
    for seed in range(6):
        sve = generate_sve(dim=len(shape), size=shape, volume_fraction=vf, rng=seed, **kw)
        assert abs(sve.volume_fraction - vf) <= TOL
        assert _separation(sve.centers, sve.radii, shape) >= 1.0 - 1e-12


def test_inclusions_wrap_across_both_edges_with_their_own_periods():
    shape = (64, 40)
    centers = np.array([[0.7, 20.0], [30.0, 39.2]])  # crosses the x-edge, then the y-edge
    image = rasterize(centers, np.array([3.0, 3.0]), size=shape)
    np.testing.assert_array_equal(image, _brute_raster(centers, np.array([3.0, 3.0]), shape))
    assert image[0, 20] and image[63, 20] and image[62, 20] and not image[60, 20]
    assert image[30, 39] and image[30, 0] and image[30, 1] and not image[30, 3]
    assert not image[:, 21 + 3 :][:, :10].any()  # nothing else painted near x2 = 24..33
    # generated cells: some inclusion crosses each edge, and its pixels wrap
    sve = generate_sve(size=shape, volume_fraction=0.4, radius=4.0, rng=11)
    crossing = [
        np.flatnonzero((sve.centers[:, k] < sve.radii) | (sve.centers[:, k] > shape[k] - sve.radii))
        for k in range(2)
    ]
    assert crossing[0].size and crossing[1].size
    for k in range(2):
        j = int(crossing[k][0])
        alone = rasterize(sve.centers[j : j + 1], sve.radii[j : j + 1], size=shape)
        first = np.take(alone, 0, axis=k).any()
        last = np.take(alone, shape[k] - 1, axis=k).any()
        assert first and last and np.all(sve.image[alone])  # on both faces, inside the SVE
    np.testing.assert_array_equal(sve.image, _brute_raster(sve.centers, sve.radii, shape))


@pytest.mark.parametrize("dim", [2, 3])
def test_generate_images_rectangular_equals_generate_sve(dim):
    shape = (56, 32) if dim == 2 else (24, 16, 20)
    targets = np.array([0.3, 0.0, 0.2])
    seeds = spawn_seeds(5, 3)
    images = generate_images(targets, rngs=list(seeds), dim=dim, size=shape, radius=3.0)
    assert images.shape == (3, *shape)
    assert not images[1].any()
    for i in (0, 2):
        sve = generate_sve(dim=dim, size=shape, volume_fraction=targets[i], rng=int(seeds[i]),
                           radius=3.0)  # fmt: skip
        np.testing.assert_array_equal(images[i], sve.image)


def test_square_given_as_a_shape_is_the_square_cell():
    a = generate_sve(size=64, volume_fraction=0.3, radius=3.0, rng=2)
    b = generate_sve(size=(64, 64), volume_fraction=0.3, radius=3.0, rng=2)
    np.testing.assert_array_equal(a.image, b.image)
    assert b.size == 64 and b.shape == (64, 64)


def test_rectangular_statistics_match_numpy_reference():
    """Compiled and numpy engines (independent code, other random streams) agree on the mean
    number of disks and mean nearest-neighbour distance of a rectangular cell near jamming."""
    shape, vf, k = (96, 48), 0.48, 24
    new = [generate_sve(size=shape, volume_fraction=vf, radius=4.0, rng=s) for s in range(k)]
    ref = [
        reference_sve(dim=2, size=shape, volume_fraction=vf, radius=4.0, rng=500 + s)
        for s in range(k)
    ]

    def stats(centers: np.ndarray) -> tuple[int, float]:
        d = _min_image(centers[:, None, :] - centers[None, :, :], shape)
        dist = np.sqrt((d * d).sum(-1))
        np.fill_diagonal(dist, np.inf)
        return len(centers), float(dist.min(axis=1).mean())

    a = np.array([stats(s.centers) for s in new])
    b = np.array([stats(s.centers[: s.m]) for s in ref])
    for s in ref:
        assert s.image.shape == shape and abs(s.count / s.total - vf) <= TOL
        assert _separation(s.centers[: s.m], s.radii[: s.m], shape) >= 1.0 - 1e-12
    for j in range(2):
        se = np.hypot(a[:, j].std(ddof=1), b[:, j].std(ddof=1)) / np.sqrt(k)
        assert abs(a[:, j].mean() - b[:, j].mean()) <= 4.0 * se + 1e-12


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": (256, 0)}, "every side of size must be an integer >= 2: got 256x0"),
        ({"size": (64,)}, "size 64 has 1 sides but the cell is 2D"),
        ({"size": (64, 48), "dim": 3}, "size 64x48 has 2 sides but the cell is 3D"),
        ({"size": (64, 48.0)}, "size must be an integer or 2 integers"),
        ({"size": (2, 256)}, r"radius 8 too large for a cell of 2x256 pixels .*smallest side, 2"),
        ({"size": (256, 15)}, "too large for a cell of 256x15 pixels"),
    ],
)
def test_bad_rectangular_sizes(kwargs, match):
    with pytest.raises(InputError, match=match):
        generate_sve(volume_fraction=0.3, rng=0, **kwargs)


@pytest.mark.parametrize(
    ("text", "value"),
    [("256", 256), ("256x128", (256, 128)), ("64X48x32", (64, 48, 32)), (" 8x8 ", (8, 8))],
)
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["12x", "x12", "12.5", "256x128x64x2", "-4", "2e3", "", "a"])
def test_parse_size_refuses(text):
    with pytest.raises(InputError, match="must be N .*or N1xN2 or N1xN2xN3"):
        parse_size(text)


def test_check_size():
    assert check_size(8, dim=3) == (8, 8, 8)
    assert check_size((8, 6), dim=2) == (8, 6)
    with pytest.raises(InputError, match="must be an integer >= 2: got 1"):
        check_size(1, dim=2)
