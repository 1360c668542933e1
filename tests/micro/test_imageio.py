"""Image files (.npy, .png, .tif) and the binary-image / permeability checks."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from magnetohom.errors import InputError
from micro.imageio import load_image, load_images, save_image
from micro.validate import as_binary_image, check_image_shape, check_mu


def _random_image(dim: int, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n,) * dim) < 0.3


@pytest.mark.parametrize(
    ("dim", "suffix"),
    [(2, ".npy"), (2, ".png"), (2, ".tif"), (2, ".tiff"), (3, ".npy"), (3, ".tif"), (3, ".tiff")],
)
def test_round_trip(tmp_path, dim, suffix):
    image = _random_image(dim, 17 if dim == 2 else 9)
    path = save_image(tmp_path / "sub" / f"img{suffix}", image)
    assert path.is_file()
    loaded = load_image(path, dim=dim)
    assert loaded.dtype == bool and loaded.shape == image.shape
    np.testing.assert_array_equal(loaded, image)


def test_png_convention_zero_is_inclusion(tmp_path):
    image = np.zeros((8, 8), dtype=bool)
    image[2, 5] = True
    save_image(tmp_path / "a.png", image)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "L"
        grey = np.asarray(im)
    assert grey[2, 5] == 0 and grey[0, 0] == 255
    assert set(np.unique(grey).tolist()) == {0, 255}


def test_tiff_3d_is_multipage_with_page_axis_0(tmp_path):
    image = _random_image(3, 6, seed=1)
    save_image(tmp_path / "v.tif", image)
    with tifffile.TiffFile(tmp_path / "v.tif") as tif:
        assert len(tif.pages) == 6
        page2 = tif.pages[2].asarray()
    np.testing.assert_array_equal(page2 == 0, image[2])
    # a stack written page by page by other software loads the same way
    with tifffile.TiffWriter(tmp_path / "pages.tif") as w:
        for z in range(6):
            w.write(np.where(image[z], 0, 255).astype(np.uint8))
    np.testing.assert_array_equal(load_image(tmp_path / "pages.tif"), image)


def test_micrograph_like_pngs(tmp_path):
    image = _random_image(2, 12, seed=2)
    grey = np.where(image, 0, 255).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1), mode="RGB").save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.png"), image)
    Image.fromarray(grey, mode="L").convert("1").save(tmp_path / "bilevel.png")
    np.testing.assert_array_equal(load_image(tmp_path / "bilevel.png"), image)
    rgb = np.stack([grey] * 3, axis=-1)
    rgb[0, 0] = (255, 0, 0)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "colour.png")
    with pytest.raises(InputError, match="colour"):
        load_image(tmp_path / "colour.png")
    grey2 = grey.copy()
    grey2[1, 1] = 17
    Image.fromarray(grey2, mode="L").save(tmp_path / "grey.png")
    with pytest.raises(InputError, match=r"grey levels \{0, 17, 255\}"):
        load_image(tmp_path / "grey.png")


def test_npy_int_and_bool(tmp_path):
    image = _random_image(2, 10)
    np.save(tmp_path / "i.npy", image.astype(np.int64))
    np.save(tmp_path / "f.npy", image.astype(np.float32))
    for name in ("i.npy", "f.npy"):
        np.testing.assert_array_equal(load_image(tmp_path / name), image)
    images = load_images([tmp_path / "i.npy", tmp_path / "f.npy"], dim=2)
    assert len(images) == 2 and all(im.dtype == bool for im in images)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.array([[0, 3], [255, 0]]), r"not binary: found values \{0, 3, 255\}"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), "NaN"),
        (np.array([[0.0, np.inf], [1.0, 0.0]]), "infinite"),
        (np.zeros(16, dtype=bool), r"2D or 3D: got 1D"),
        (np.zeros((4, 4, 4, 4), dtype=bool), r"2D or 3D: got 4D"),
        (np.zeros((0, 0), dtype=bool), "empty"),
    ],
)
def test_bad_npy(tmp_path, array, match):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(InputError, match=match):
        load_image(tmp_path / "bad.npy")
    with pytest.raises(InputError, match=match):
        as_binary_image(array)


def test_dim_mismatch_and_formats(tmp_path):
    save_image(tmp_path / "a.npy", _random_image(3, 5))
    with pytest.raises(InputError, match="expected a 2D image: got a 3D image"):
        load_image(tmp_path / "a.npy", dim=2)
    with pytest.raises(InputError, match="PNG holds 2D images only"):
        save_image(tmp_path / "a.png", _random_image(3, 5))
    with pytest.raises(InputError, match="unsupported image format '.jpg'"):
        save_image(tmp_path / "a.jpg", _random_image(2, 5))
    with pytest.raises(InputError, match="unsupported image format"):
        load_image(tmp_path / "a.bmp")
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
    tifffile.imwrite(tmp_path / "rect.tif", np.full((6, 4), 255, np.uint8))
    assert load_image(tmp_path / "rect.tif").shape == (6, 4)  # rectangular cells are fine
    tifffile.imwrite(tmp_path / "nan.tif", np.full((4, 4), np.nan, np.float32))
    with pytest.raises(InputError, match="NaN"):
        load_image(tmp_path / "nan.tif")


def test_as_binary_image_and_shape_checks():
    src = np.array([[True, False], [False, False]])
    out = as_binary_image(src, dim=2)
    assert out.dtype == bool and out is not src
    np.testing.assert_array_equal(out, src)
    with pytest.raises(InputError, match="dtype"):
        as_binary_image(np.array([["a", "b"], ["c", "d"]]))
    assert check_image_shape((4, 4, 4), dim=3) == (4, 4, 4)
    with pytest.raises(InputError, match="dim must be 2 or 3"):
        check_image_shape((4, 4), dim=5)


@pytest.mark.parametrize(
    ("mm", "mi", "match"),
    [
        (0.0, 250.0, "mu_matrix must be finite and > 0"),
        (1.0, -3.0, "mu_inclusion must be finite and > 0"),
        (float("nan"), 1.0, "mu_matrix"),
        (1.0, float("inf"), "mu_inclusion"),
        ("abc", 1.0, "mu_matrix must be a number"),
    ],
)
def test_check_mu(mm, mi, match):
    with pytest.raises(InputError, match=match):
        check_mu(mm, mi)


def test_check_mu_ok():
    assert check_mu(1, np.float32(250.0)) == (1.0, 250.0)
