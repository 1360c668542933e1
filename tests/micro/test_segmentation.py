"""Segmentation of greyscale micrographs (micro.segmentation) and the CLI batches around it."""

import json

import numpy as np
import pytest
from PIL import Image

from magnetohom.cli import main
from magnetohom.errors import InputError
from micro.imageio import load_image, save_image
from micro.segmentation import load_phases, segment


def _two_phase(shape=(40, 56), seed=0, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    truth = rng.random(shape) < 0.3  # inclusion = dark
    top = np.iinfo(dtype).max
    grey = np.where(truth, 0.2 * top, 0.8 * top) + rng.normal(0, 0.03 * top, shape)
    return truth, np.clip(grey, 0, top).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_otsu_recovers_two_phases_8_and_16_bit(tmp_path, dtype):
    truth, grey = _two_phase(dtype=dtype)
    Image.fromarray(grey).save(tmp_path / "g.png")
    seg = load_phases(tmp_path / "g.png")
    assert seg.method == "otsu" and seg.labels.shape == (40, 56)
    np.testing.assert_array_equal(seg.labels, truth)  # dark = label 1 = inclusion
    inv = load_phases(tmp_path / "g.png", invert=True)
    np.testing.assert_array_equal(inv.labels, ~truth)
    assert seg.volume_fractions.sum() == pytest.approx(1.0)


def test_multi_otsu_three_phases_and_tiff_stack(tmp_path):
    import tifffile

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, (6, 10, 12))
    grey = (60000 - 25000 * truth + rng.normal(0, 1000, truth.shape)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", grey, photometric="minisblack")
    seg = load_phases(tmp_path / "s.tif", n_phases=3)
    assert seg.method == "multi-otsu"
    np.testing.assert_array_equal(seg.labels, truth)  # brightest = label 0


def test_binary_inputs_unchanged(tmp_path):
    image = np.random.default_rng(2).random((20, 20)) < 0.4
    for name in ("b.png", "b.npy", "b.tif"):
        save_image(tmp_path / name, image)
        seg = load_phases(tmp_path / name)
        np.testing.assert_array_equal(seg.labels.astype(bool), load_image(tmp_path / name))


@pytest.mark.parametrize(
    ("grey", "kwargs", "match"),
    [
        (np.full((8, 8), 7, np.uint8), {}, "constant"),
        (np.arange(64, dtype=np.uint8).reshape(8, 8), {"threshold": 300}, "outside"),
        (
            np.arange(64, dtype=np.uint8).reshape(8, 8),
            {"threshold": [10, 5], "n_phases": 3},
            "increase",
        ),
        (np.repeat([0, 100], 32).astype(np.uint8).reshape(8, 8), {"n_phases": 3}, "fewer than"),
        (np.zeros((0, 4), np.uint8), {}, "empty"),
    ],
)
def test_bad_segmentations(grey, kwargs, match):
    with pytest.raises(InputError, match=match):
        segment(grey, **kwargs)


def test_phase_without_pixels_is_an_error():
    grey = np.arange(64, dtype=np.float64).reshape(8, 8)
    grey[grey > 50] = 200.0  # a gap in the grey levels between 50 and 200
    with pytest.raises(InputError, match="phase 1 without pixels"):
        segment(grey, n_phases=3, threshold=[100, 150])


def test_homogenize_batch_keeps_going(tmp_path, capsys):
    truth, grey = _two_phase(shape=(24, 32))
    Image.fromarray(grey).save(tmp_path / "a.png")
    np.save(tmp_path / "thin.npy", np.zeros((24, 2), dtype=bool))
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(tmp_path / "const.png")
    np.save(tmp_path / "b.npy", truth)
    files = [tmp_path / n for n in ("a.png", "thin.npy", "const.png", "missing.png", "b.npy")]
    prev = tmp_path / "prev"
    rc = main(["homogenize", *map(str, files), "--json", "--preview", str(prev)])
    out, err = capsys.readouterr()
    assert rc == 2
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["file"] for r in rows] == [str(files[0]), str(files[4])]
    np.testing.assert_allclose(rows[0]["mu_eff"], rows[1]["mu_eff"], rtol=1e-12)  # same phases
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(
        line.startswith("magnetohom homogenize: error: ") for line in lines
    )
    assert "thin.npy: image must have at least 3 pixels" in lines[0]
    assert "const.png: image is constant" in lines[1] and "no such file" in lines[2]
    assert sorted(p.name for p in prev.iterdir()) == ["a_phases.png", "b_phases.png"]


def test_homogenize_bc_all_and_k_phases(tmp_path, capsys):
    labels = np.random.default_rng(4).integers(0, 3, (16, 20))
    np.save(tmp_path / "l.npy", labels)
    assert (
        main(["homogenize", str(tmp_path / "l.npy"), "--mu", "1,50,1000", "--bc", "all", "--json"])
        == 0
    )
    row = json.loads(capsys.readouterr().out)
    assert row["ordered"] is True and row["width"] > 0
    assert set(row["apparent"]) == {"neumann", "periodic", "dirichlet"}
    assert len(row["volume_fractions"]) == 3 and row["mu"] == [1.0, 50.0, 1000.0]


def test_segment_command_writes_phases_and_preview(tmp_path, capsys):
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 3, (30, 40))
    grey = (230 - 100 * truth + rng.normal(0, 5, truth.shape)).clip(0, 255).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "m.png")
    out = tmp_path / "o" / "m_phases.png"
    assert main(["segment", str(tmp_path / "m.png"), "-o", str(out), "--mu", "1,2,3"]) == 0
    text = capsys.readouterr().out
    assert "phases=3" in text and "volume_fractions=" in text
    assert (tmp_path / "o" / "m_phases_preview.png").is_file()
    again = load_phases(out, n_phases=3)  # the written grey levels read back as the same phases
    np.testing.assert_array_equal(again.labels, truth)


def test_three_phase_micrograph_end_to_end_is_the_laminate(tmp_path, capsys):
    """A noisy 16-bit rectangular micrograph of three layers: segmented, then exact means."""
    rng = np.random.default_rng(6)
    layer = np.repeat([2, 1, 0], [10, 14, 12])  # darkest first: labels 2, 1, 0 along x_1
    grey = 50000 - 20000 * layer[:, None] + rng.normal(0, 800, (36, 44))
    Image.fromarray(grey.clip(0, 65535).astype(np.uint16)).save(tmp_path / "lam.png")
    assert main(["homogenize", str(tmp_path / "lam.png"), "--mu", "1,50,1000", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    f = np.array([12, 14, 10]) / 36
    mu = np.array([1.0, 50.0, 1000.0])
    np.testing.assert_allclose(row["volume_fractions"], f, rtol=1e-12)
    expected = np.diag([1.0 / np.sum(f / mu), np.sum(f * mu)])
    np.testing.assert_allclose(row["mu_eff"], expected, rtol=1e-9, atol=1e-9)
