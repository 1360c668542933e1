"""Datasets of rectangular periodic cells (issue 21): the shape in the file and back, labels
equal to the Homogenizer's, resume and mismatch, the CLI, and exact laminate labels."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from magnetohom.cli import main
from magnetohom.errors import InputError
from micro.dataset import (
    _check_options,
    _Sampler,
    generate_dataset,
    load_dataset,
    sample_rng,
    vf_tolerance,
)
from micro.generate import generate_sve, spawn_seeds
from micro.homogenization import Homogenizer

N, SHAPE, RADIUS = 6, (40, 24), 2.0
OPTS = dict(n_samples=N, dim=2, size=SHAPE, radius=RADIUS, vf_range=(0.1, 0.4), base_seed=3)
MU_M, MU_I = 1.0, 250.0


@pytest.fixture(scope="module")
def rect(tmp_path_factory):
    path = tmp_path_factory.mktemp("rect") / "rect.h5"
    summary = generate_dataset(path, **OPTS)
    assert (summary.n_done, summary.n_new) == (N, N)
    return path


def test_file_keeps_the_shape(rect):
    with h5py.File(rect, "r") as f:
        assert f["images"].shape == (N, *SHAPE) and f["images"].chunks == (1, *SHAPE)
        np.testing.assert_array_equal(f.attrs["resolution"], SHAPE)
        assert f["mu_eff"].shape == (N, 2, 2)
    data = load_dataset(rect)
    assert data.shape == SHAPE and data.images.shape == (N, *SHAPE) and data.dim == 2
    assert data.attrs["resolution"] == list(SHAPE)
    np.testing.assert_allclose(data.volume_fraction, data.images.mean(axis=(1, 2)))
    tol = vf_tolerance(2, SHAPE, RADIUS)  # one disk is 13 px of 960: the window is wider
    assert tol == pytest.approx(0.6 * np.pi * RADIUS**2 / (40 * 24))
    assert np.all(np.abs(data.volume_fraction - data.target_volume_fraction) <= tol + 1e-12)
    for i in (0, 4):  # each sample regenerates from its seed alone
        rng, target = sample_rng(data.seeds[i], OPTS["vf_range"])
        sve = generate_sve(size=SHAPE, radius=RADIUS, volume_fraction=target, rng=rng)
        np.testing.assert_array_equal(sve.image, data.images[i])


def test_labels_equal_homogenizer_of_the_same_images(rect):
    data = load_dataset(rect)
    direct = Homogenizer(SHAPE)(data.images, mu_matrix=MU_M, mu_inclusion=MU_I)
    np.testing.assert_allclose(data.mu_eff, direct.mu_eff, rtol=1e-10)
    np.testing.assert_array_equal(data.iterations, direct.iterations)
    # a rectangle of disks is no square: its tensor is anisotropic only by chance, but the
    # transposed images give the transposed tensors (axis 1 <-> axis 2)
    turned = Homogenizer(SHAPE[::-1])(
        np.swapaxes(data.images, 1, 2), mu_matrix=MU_M, mu_inclusion=MU_I
    )
    np.testing.assert_allclose(turned.mu_eff, data.mu_eff[:, ::-1, ::-1], rtol=1e-6)


def test_resume_after_interruption_and_mismatches(rect, tmp_path):
    path = tmp_path / "copy.h5"
    shutil.copy(rect, path)
    with h5py.File(path, "r+") as f:  # as if killed after sample 1
        f["done"][2:] = False
    summary = generate_dataset(path, **OPTS)
    assert (summary.n_done, summary.n_new) == (N, N - 2)
    a, b = load_dataset(rect), load_dataset(path)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_allclose(a.mu_eff, b.mu_eff, rtol=1e-12)
    for size, named in [
        ((24, 40), "resolution [40, 24] (asked [24, 40])"),
        (40, "resolution [40, 24] (asked 40)"),
    ]:
        with pytest.raises(InputError, match="other parameters") as info:
            generate_dataset(path, **{**OPTS, "size": size})
        assert named in str(info.value)


def test_square_file_keeps_an_integer_resolution(tmp_path):
    generate_dataset(tmp_path / "sq.h5", **{**OPTS, "n_samples": 1, "size": (24, 24)})
    with h5py.File(tmp_path / "sq.h5", "r") as f:
        assert int(f.attrs["resolution"]) == 24 and np.ndim(f.attrs["resolution"]) == 0


def test_cli_rectangular_dataset_and_resume(rect, tmp_path, capsys):
    path = tmp_path / "cli.h5"
    argv = ["dataset", str(path), "-n", str(N), "--size", "40x24", "--radius", "2",
            "--vf-min", "0.1", "--vf-max", "0.4", "--seed", "3"]  # fmt: skip
    assert main(argv) == 0
    assert f"{N}/{N} samples done, {N} new" in capsys.readouterr().out
    np.testing.assert_array_equal(load_dataset(path).images, load_dataset(rect).images)
    assert main(argv) == 0
    assert f"{N}/{N} samples done, 0 new" in capsys.readouterr().out


@pytest.mark.parametrize("size", ["40x0", "12x", "4x4x4x4", "40.5x24"])
def test_cli_bad_size_writes_nothing(tmp_path, capsys, size):
    path = tmp_path / "bad.h5"
    assert main(["dataset", str(path), "-n", "2", "--size", size]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("magnetohom dataset: error: ") and "--size" in err[0]
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("axis", [0, 1])
def test_laminate_labels_on_a_rectangular_cell_are_the_exact_means(axis):
    """Stripes normal to axis ``axis`` of a 40x24 cell, labelled by the dataset's own code:
    the harmonic mean across the layers, the arithmetic mean along them, no off-diagonal."""
    opts = _check_options(
        **OPTS,
        radius_range=None,
        overlap=False,
        mu_matrix=2.0,
        mu_inclusion=50.0,
        rtol=1e-10,
        log_every=10,
    )
    sampler = _Sampler(opts, spawn_seeds(3, 1))
    image = np.zeros(SHAPE, dtype=bool)
    index = [slice(None)] * 2
    index[axis] = slice(5, 5 + SHAPE[axis] // 4 * 3 // 2)  # 15 of 40 rows, 9 of 24 columns
    image[tuple(index)] = True
    status, _, stored, mu, _, _, vf = sampler.label(0, SimpleNamespace(image=image))
    assert status == "ok" and stored.shape == SHAPE
    f = image.mean()
    assert vf == f and f == pytest.approx(0.375)
    harmonic = 1.0 / (f / 50.0 + (1.0 - f) / 2.0)
    arithmetic = f * 50.0 + (1.0 - f) * 2.0
    expected = np.diag([harmonic, arithmetic] if axis == 0 else [arithmetic, harmonic])
    np.testing.assert_allclose(mu, expected, rtol=1e-8, atol=1e-8 * arithmetic)


def test_cnn_training_data_refuses_rectangular_cells(rect):
    from surrogate.data import load_labeled

    with pytest.raises(InputError, match="CNNs take square .*rectangular cells of 40x24 px"):
        load_labeled(rect)


def test_nonlinear_dataset_refuses_rectangular_cells_before_writing(tmp_path, capsys):
    assert main(["dataset-nl", str(tmp_path / "nl.h5"), "-n", "2", "--size", "32x20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "magnetohom dataset-nl: error: the nonlinear cell problem needs a square/cubic cell: "
        "got size 32x20"
    ]
    assert not any(tmp_path.iterdir())


def test_mixed_dataset_of_rectangular_cells(tmp_path, capsys):
    path = tmp_path / "mix.h5"
    argv = ["dataset-mixed", str(path), "-n", "2", "--size", "48x32", "--seed", "1",
            "--kinds", "disks,lamellae", "--crop", "0"]  # fmt: skip
    assert main(argv) == 0
    with h5py.File(path, "r") as f:
        images, mu_phases, mu_eff = f["images"][...], f["mu_phases"][...], f["mu_eff"][...]
    assert images.shape == (2, 48, 32)
    hom = Homogenizer((48, 32), rtol=1e-8)
    for image, (mu_m, mu_i), label in zip(images, mu_phases, mu_eff):
        direct = hom(image[None].astype(bool), mu_matrix=mu_m, mu_inclusion=mu_i).mu_eff[0]
        np.testing.assert_allclose(label, direct, rtol=1e-6)
    assert main([*argv[:5], "16x8"]) == 2  # a side below 16
    assert "every side of --size must be an integer >= 16: got 16x8" in capsys.readouterr().err


def test_mixed_dataset_contrast_band(tmp_path, capsys):
    """``--min-log10-contrast``: every row's contrast in the band, either phase the stronger;
    a band below 0 or above the maximum is a one-line error that writes nothing."""
    path = tmp_path / "hc.h5"
    argv = ["dataset-mixed", str(path), "-n", "12", "--size", "16", "--seed", "2",
            "--min-log10-contrast", "2", "--max-log10-contrast", "3"]  # fmt: skip
    assert main(argv) == 0
    with h5py.File(path, "r") as f:
        mu = f["mu_phases"][...]
    log_c = np.log10(mu[:, 1] / mu[:, 0])
    assert np.all((np.abs(log_c) >= 2) & (np.abs(log_c) <= 3))
    assert np.any(log_c > 0) and np.any(log_c < 0)
    assert main(argv) == 0  # resumed: same arguments, nothing new
    bad = tmp_path / "bad.h5"
    assert main(["dataset-mixed", str(bad), "-n", "2", "--min-log10-contrast", "5"]) == 2
    assert "--min-log10-contrast must be in [0, --max-log10-contrast]" in capsys.readouterr().err
    assert not bad.exists()
