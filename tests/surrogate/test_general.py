"""The general model: identities by construction, rigorous bounds, error bounds, fallback, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from magnetohom.errors import InputError
from micro.morphologies import MORPHOLOGIES, generate_morphology
from surrogate.general import GeneralModel, GeneralProvider, relative_error
from surrogate.general_features import canonical_form, features, line_bounds


def _images(n=6, shape=(32, 32), seed=0):
    kinds = list(MORPHOLOGIES)
    return np.stack(
        [generate_morphology(kinds[i % len(kinds)], shape, rng=seed + i) for i in range(n)]
    )


def _reference_line_bounds(strong, contrast):
    """Line bounds of whole cells straight from their definition (NumPy)."""
    mu = np.where(strong, contrast[:, None, None], 1.0)
    out = np.empty((len(mu), 2, 2))
    for k in (0, 1):
        m = np.moveaxis(mu, 1 + k, 1)  # axis 1 = direction k
        harmonic_lines = 1.0 / np.mean(1.0 / m, axis=1)  # lines along k
        out[:, k, 0] = harmonic_lines.mean(axis=1)
        arithmetic_sections = m.mean(axis=2)  # cross-sections normal to k
        out[:, k, 1] = 1.0 / np.mean(1.0 / arithmetic_sections, axis=1)
    return out


def test_line_bounds_match_definition_and_bracket_fe():
    from micro.homogenization import homogenize

    images = _images(8, (32, 40 - 8))
    contrast = np.array([1.0, 3.0, 10.0, 250.0, 1e3, 5e3, 1e4, 42.0])
    b = line_bounds(images, contrast)
    np.testing.assert_allclose(b, _reference_line_bounds(images, contrast), rtol=1e-12)
    for img, c, bb in zip(images, contrast, b):
        mu = homogenize(img, mu_matrix=1.0, mu_inclusion=c).mu_eff[0]
        for k in (0, 1):  # rigorous for the Q1 label: both bounds are variational
            assert bb[k, 0] * (1 - 1e-9) <= mu[k, k] <= bb[k, 1] * (1 + 1e-9)


def test_line_bounds_exact_for_laminates():
    lam = np.zeros((1, 16, 16), bool)
    lam[:, :, :5] = True  # layers normal to x2: mu_11 parallel, mu_22 series
    b = line_bounds(lam, np.array([100.0]))[0]
    f = 5 / 16
    np.testing.assert_allclose(b[0], [(1 - f) + 100 * f] * 2, rtol=1e-12)
    np.testing.assert_allclose(b[1], [1 / ((1 - f) + f / 100)] * 2, rtol=1e-12)


def test_features_any_size_and_rectangular():
    images = _images(3, (40, 72))
    grid, glob, bounds = features(images, np.array([2.0, 50.0, 1e4]))
    assert grid.shape == (3, 5, 9, 14) and glob.shape == (3, 7) and bounds.shape == (3, 2, 2)
    assert np.all((grid[..., 1:5] >= 0) & (grid[..., 1:5] <= 1 + 1e-6))
    np.testing.assert_allclose(grid[..., 0].mean(axis=(1, 2)), images.mean(axis=(1, 2)), atol=0.02)


def _reference_crossing(window):
    """Fewest weak pixels on an 8-connected path from the first to the last row (Dijkstra)."""
    import heapq

    h, b = window.shape
    cost = 1 - window.astype(int)
    dist = np.full((h, b), np.inf)
    heap = [(cost[0, j], 0, j) for j in range(b)]
    for d, _, j in heap:
        dist[0, j] = d
    heapq.heapify(heap)
    while heap:
        d, a, j = heapq.heappop(heap)
        if d > dist[a, j]:
            continue
        for aa in range(max(a - 1, 0), min(a + 2, h)):
            for jj in range(max(j - 1, 0), min(j + 2, b)):
                if d + cost[aa, jj] < dist[aa, jj]:
                    dist[aa, jj] = d + cost[aa, jj]
                    heapq.heappush(heap, (dist[aa, jj], aa, jj))
    return dist[-1].min() / h


@pytest.mark.parametrize("shape", [(32, 32), (40, 27)])
def test_crossing_features_match_shortest_paths(shape):
    """The connectivity channels equal a plain Dijkstra over each window (block and face)."""
    from surrogate._general_jit import crossings_2d
    from surrogate.general_features import _edges

    images = _images(4, shape, seed=11).astype(np.uint8)
    e0, e1 = _edges(shape[0], 8), _edges(shape[1], 8)
    got = crossings_2d(images, e0, e1)
    s0, s1 = np.r_[e0, shape[0]], np.r_[e1, shape[1]]
    c0, c1 = (s0[:-1] + s0[1:]) // 2, (s1[:-1] + s1[1:]) // 2
    for k in range(len(images)):
        for i in range(e0.size):
            rows = np.arange(s0[i], s0[i + 1])
            face_rows = (c0[i] + np.arange((c0[(i + 1) % e0.size] - c0[i]) % shape[0])) % shape[0]
            for j in range(e1.size):
                cols = np.arange(s1[j], s1[j + 1])
                face_cols = c1[j] + np.arange((c1[(j + 1) % e1.size] - c1[j]) % shape[1])
                face_cols %= shape[1]
                img = images[k]
                want = [
                    _reference_crossing(img[np.ix_(rows, cols)]),
                    _reference_crossing(img[np.ix_(rows, cols)].T),
                    _reference_crossing(img[np.ix_(face_rows, cols)]),
                    _reference_crossing(img[np.ix_(rows, face_cols)].T),
                ]
                np.testing.assert_allclose(got[k, i, j], want, atol=1e-12)


def test_corner_contacts_conduct_on_the_q1_grid():
    """Why the connectivity channels step diagonally: a staircase of strong pixels touching only
    at corners carries the strong phase's permeability across the Q1 cell (FE), while every
    straight line of pixels crosses the weak phase (the line bounds' lower bound stays ~1)."""
    from micro.homogenization import homogenize

    n, contrast = 32, 1e4
    image = np.zeros((n, n), bool)
    for i in range(n):
        image[i, i] = True  # a periodic diagonal line, one pixel wide
    mu = np.asarray(homogenize(image, mu_matrix=1.0, mu_inclusion=contrast, rtol=1e-10).mu_eff)
    mu = mu.reshape(-1, 2, 2)[0]
    lower = line_bounds(image[None], np.array([contrast]))[0, 0, 0]
    assert lower < 1.1
    assert mu[0, 0] > 0.05 * contrast / n  # O(c / n): the line conducts, not O(1)
    grid = features(image[None], np.array([contrast]))[0]
    assert np.all(grid[0, ..., 10][np.diag_indices(n // 8)] == 0)  # blocks on the diagonal


@pytest.mark.parametrize("op", [(t, a, b) for t in (0, 1) for a in (0, 1) for b in (0, 1)])
def test_feature_symmetry_matches_transformed_image(op):
    """Features of a flipped/transposed image = the transformed features (training's D4)."""
    from surrogate.general import _apply_symmetry

    images = _images(4, (32, 48), seed=5)
    contrast = np.array([3.0, 30.0, 300.0, 3000.0])
    t, a, b = op
    moved = images[:, ::-1] if a else images
    moved = moved[:, :, ::-1] if b else moved
    moved = np.swapaxes(moved, 1, 2) if t else moved
    direct = features(np.ascontiguousarray(moved), contrast)
    mapped = _apply_symmetry(*features(images, contrast), tuple(map(bool, op)))
    for x, y in zip(direct, mapped):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_line_bound_error_covers_every_admissible_reference():
    """The worst SPD reference with its diagonal in the line bounds stays within the bound."""
    from surrogate.general import relative_error
    from surrogate.general_features import line_bound_error

    rng = np.random.default_rng(4)
    lower = rng.uniform(1, 5, (200, 2))
    upper = lower * rng.uniform(1, 20, (200, 2))
    bounds = np.stack([lower, upper], axis=-1)
    d = lower + rng.uniform(0, 1, (200, 2)) * (upper - lower)
    rho = rng.uniform(-0.99, 0.99, 200)
    mu = np.zeros((200, 2, 2))
    mu[:, 0, 0], mu[:, 1, 1] = d[:, 0], d[:, 1]
    mu[:, 0, 1] = mu[:, 1, 0] = rho * np.sqrt(d[:, 0] * d[:, 1])
    bound = line_bound_error(mu, bounds)
    for t0 in (0.0, 1.0):  # references at the corners of the box, extreme off-diagonals
        for t1 in (0.0, 1.0):
            for r in (-1.0, 1.0):
                ref = np.zeros_like(mu)
                ref[:, 0, 0] = lower[:, 0] + t0 * (upper[:, 0] - lower[:, 0])
                ref[:, 1, 1] = lower[:, 1] + t1 * (upper[:, 1] - lower[:, 1])
                ref[:, 0, 1] = ref[:, 1, 0] = r * np.sqrt(ref[:, 0, 0] * ref[:, 1, 1])
                assert np.all(relative_error(mu, ref) <= bound * (1 + 1e-12))


def test_canonical_form_refuses_bad_materials():
    img = np.zeros((1, 16, 16), bool)
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(InputError, match="finite number > 0"):
            canonical_form(img, bad, 1.0)


@pytest.mark.parametrize("coarse", ["faces", "tensors"])
def test_identities_hold_by_construction(coarse, request):
    """Scaling, phase exchange, SPD, Wiener bounds and mu I for one phase: any weights."""
    path = request.getfixturevalue("tiny_general" if coarse == "faces" else "tiny_general_tensors")
    model = GeneralModel(path)
    assert model.coarse == coarse
    images = _images(5, (32, 32), seed=7)
    a = model.predict(images, mu_matrix=2.0, mu_inclusion=300.0).mu_eff
    scaled = model.predict(images, mu_matrix=2.0 * 7.5, mu_inclusion=300.0 * 7.5).mu_eff
    np.testing.assert_allclose(scaled, 7.5 * a, rtol=1e-10)
    swapped = model.predict(~images, mu_matrix=300.0, mu_inclusion=2.0).mu_eff
    np.testing.assert_allclose(swapped, a, rtol=1e-10)
    assert np.all(np.linalg.eigvalsh(a) > 0)
    f = images.mean(axis=(1, 2))
    lower = 1 / ((1 - f) / 2.0 + f / 300.0)
    upper = (1 - f) * 2.0 + f * 300.0
    w = np.linalg.eigvalsh(a)
    assert np.all(w >= lower[:, None] * (1 - 1e-9)) and np.all(w <= upper[:, None] * (1 + 1e-9))
    same = model.predict(images, mu_matrix=3.0, mu_inclusion=3.0).mu_eff
    np.testing.assert_allclose(same, 3.0 * np.eye(2)[None].repeat(5, 0), rtol=1e-12, atol=1e-12)


def test_answers_do_not_depend_on_the_threads(tiny_general):
    """Chunks answered in parallel threads give the answers of one thread, bit for bit."""
    images = _images(40, (32, 32), seed=21)
    mu_i = np.geomspace(0.01, 3e3, 40)
    one = GeneralModel(tiny_general, workers=1).predict(images, mu_matrix=1.0, mu_inclusion=mu_i)
    three = GeneralModel(tiny_general, workers=3).predict(images, mu_matrix=1.0, mu_inclusion=mu_i)
    np.testing.assert_array_equal(one.mu_eff, three.mu_eff)
    np.testing.assert_array_equal(one.rel_error_bound, three.rel_error_bound)
    with pytest.raises(InputError, match="workers must be >= 1"):
        GeneralModel(tiny_general, workers=0)


def test_contrast_beyond_training_is_refused_or_goes_to_fe(tiny_general):
    model = GeneralModel(tiny_general)
    img = _images(1)
    with pytest.raises(InputError, match="beyond what the general model was trained on"):
        model.predict(img, mu_matrix=1.0, mu_inclusion=1e5)
    from micro.homogenization import homogenize

    p = GeneralProvider(tiny_general, mu_matrix=1.0, mu_inclusion=1e5, fallback="fe")
    ans = p.predict(img)
    assert list(ans.source) == ["fe"] and p.n_fallback == 1
    np.testing.assert_allclose(
        ans.mu_eff, homogenize(img, mu_matrix=1.0, mu_inclusion=1e5, rtol=1e-8).mu_eff, rtol=1e-9
    )


def test_fallback_keeps_every_answer_within_tolerance(tiny_general):
    from micro.homogenization import homogenize

    images = _images(6, seed=11)
    p = GeneralProvider(tiny_general, mu_matrix=1.0, mu_inclusion=80.0, fallback="fe",
                        tolerance=0.02)  # fmt: skip
    ans = p.predict(images)
    ref = homogenize(images, mu_matrix=1.0, mu_inclusion=80.0, rtol=1e-8).mu_eff
    err = relative_error(ans.mu_eff, ref)
    cnn = ans.source == "cnn"
    assert np.all(ans.rel_error_bound[cnn] <= 0.02)
    # an answer is within the tolerance wherever the bound is right; FE answers exactly
    assert np.all(err[~cnn] < 1e-6)
    assert p.n_fallback == int((~cnn).sum())


def test_rigorous_bound_covers_fe_where_claimed(tiny_general, mixed_dataset):
    from micro.mixed_dataset import load_mixed_dataset

    d = load_mixed_dataset(mixed_dataset)
    model = GeneralModel(tiny_general)
    pred = model.predict(d.images, mu_matrix=d.mu_phases[:, 0], mu_inclusion=d.mu_phases[:, 1])
    err = relative_error(pred.mu_eff, d.mu_eff)
    # where the bound is the rigorous one it must hold for every sample
    assert np.all(err[pred.rigorous] <= pred.rel_error_bound[pred.rigorous] * (1 + 1e-9))
    # the calibration reached its coverage on its own set
    assert np.mean(err <= pred.rel_error_bound + 1e-12) >= 0.95


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "magnetohom.cli", "predict", *map(str, args)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_predict_cli_general(tiny_general, tmp_path):
    from micro.homogenization import homogenize

    images = _images(3, (32, 32), seed=21)
    files = []
    for i, img in enumerate(images):
        files.append(tmp_path / f"img{i}.npy")
        np.save(files[-1], img)
    rect = tmp_path / "rect.npy"  # rectangular cells: the model and the FE fallback take them
    np.save(rect, _images(1, (32, 48), seed=3)[0])
    images = [*images, np.load(rect)]
    files.append(rect)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((32, 32), 0.5))
    res = _cli(*files, bad, "--model", tiny_general, "--mu-matrix", 5, "--mu-inclusion",
               0.5, "--json", "--fallback", "fe", "--tolerance", 0.05)  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "bad.npy: image is not binary" in res.stderr and "Traceback" not in res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["file"] for r in rows] == [str(f) for f in files]
    for r in rows:
        assert set(r) >= {"mu_eff", "rel_error_bound", "source", "volume_fraction"}
        assert r["source"] in ("cnn", "fe") and r["mu_matrix"] == 5 and r["mu_inclusion"] == 0.5
    for r, img in zip(rows, images):
        ref = homogenize(img, mu_matrix=5.0, mu_inclusion=0.5, rtol=1e-8).mu_eff
        err = relative_error(np.asarray(r["mu_eff"])[None], ref)[0]
        if r["source"] == "fe":
            assert err < 1e-6
        else:
            assert r["rel_error_bound"] <= 0.05
    assert "answers from FE" in res.stderr


def test_predict_cli_rectangular_cells(tiny_general, tmp_path):
    rect = tmp_path / "rect.npy"
    np.save(rect, _images(1, (32, 48), seed=3)[0])
    res = _cli(rect, "--model", tiny_general, "--json")
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout)
    mu = np.asarray(row["mu_eff"])
    assert mu.shape == (2, 2) and np.all(np.linalg.eigvalsh(mu) > 0) and row["source"] == "cnn"


def test_predict_cli_segments_greyscale_micrographs(tiny_general, tmp_path):
    """A noisy 8-bit greyscale image is segmented (Otsu) and answered like its binary image."""
    from PIL import Image

    binary = _images(1, (48, 48), seed=9)[0]
    rng = np.random.default_rng(0)
    grey = np.where(binary, 60.0, 200.0) + rng.normal(0, 8, binary.shape)  # dark = inclusion
    Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).save(tmp_path / "micro.png")
    np.save(tmp_path / "binary.npy", binary)
    res = _cli(tmp_path / "micro.png", tmp_path / "binary.npy", "--model", tiny_general, "--json",
               "--preview", tmp_path / "prev")  # fmt: skip
    assert res.returncode == 0, res.stderr
    a, b = (json.loads(line) for line in res.stdout.splitlines())
    np.testing.assert_allclose(a["mu_eff"], b["mu_eff"], rtol=1e-12)
    assert (tmp_path / "prev" / "micro_phases.png").is_file()


def test_predict_cli_refuses_other_materials_for_a_specialist(tiny_model, tmp_path):
    f = tmp_path / "a.npy"
    np.save(f, np.zeros((32, 32), bool))
    res = _cli(f, "--model", tiny_model.model_dir, "--mu-inclusion", 50)
    assert res.returncode == 2
    assert "answers only for mu_matrix 1, mu_inclusion 250" in res.stderr
    assert "Traceback" not in res.stderr


def test_calibration_per_contrast_band_covers_each_band(tiny_general, mixed_dataset, tmp_path):
    """Split-conformal alpha per band of contrast: every band covered on its own rows; a
    band without enough rows for the coverage, or alphas that do not match the bands, raise."""
    import shutil

    from micro.mixed_dataset import load_mixed_dataset
    from surrogate.general import calibrate

    model_dir = tmp_path / "banded"
    shutil.copytree(tiny_general, model_dir)
    cal = calibrate(model_dir, [mixed_dataset], tta=1, coverage=0.8, contrast_edges=(2.0,),
                    size_edges=(), default=True)  # fmt: skip
    assert np.shape(cal["alpha"]) == (1, 2) and np.sum(cal["n_band"]) == cal["n"] == 24
    d = load_mixed_dataset(mixed_dataset)
    model = GeneralModel(model_dir)
    pred = model.predict(d.images, mu_matrix=d.mu_phases[:, 0], mu_inclusion=d.mu_phases[:, 1])
    covered = relative_error(pred.mu_eff, d.mu_eff) <= pred.rel_error_bound + 1e-12
    band = np.abs(np.log10(d.mu_phases[:, 1] / d.mu_phases[:, 0])) >= 2.0
    for b in (False, True):
        assert covered[band == b].mean() >= 0.8
    # the fixture's default (tta 2) is kept beside the new one; a number of symmetries
    # without a calibration keeps only the rigorous bound
    assert set(json.loads((model_dir / "metadata.json").read_text())["calibrations"]) == {"2"}
    other = GeneralModel(model_dir, tta=4)
    assert np.all(np.isinf(other.alpha))
    other_pred = other.predict(
        d.images, mu_matrix=d.mu_phases[:, 0], mu_inclusion=d.mu_phases[:, 1]
    )
    assert np.all(other_pred.rigorous) and not np.all(pred.rigorous)
    # a calibration of 2 symmetries kept beside the default (tta 1): used when asked for
    cal2 = calibrate(model_dir, [mixed_dataset], tta=2, coverage=0.8, contrast_edges=(2.0,),
                     size_edges=())  # fmt: skip
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert meta["calibration"] == cal and meta["calibrations"] == {"2": cal2}
    assert GeneralModel(model_dir).tta == 1
    two = GeneralModel(model_dir, tta=2)
    np.testing.assert_array_equal(two.alpha, cal2["alpha"])
    p2 = two.predict(d.images, mu_matrix=d.mu_phases[:, 0], mu_inclusion=d.mu_phases[:, 1])
    assert np.mean(relative_error(p2.mu_eff, d.mu_eff) <= p2.rel_error_bound + 1e-12) >= 0.8
    assert np.all(np.isinf(GeneralModel(model_dir, tta=4).alpha))
    # made the default: the former default (tta 1) is kept beside it
    cal2d = calibrate(model_dir, [mixed_dataset], tta=2, coverage=0.8, contrast_edges=(2.0,),
                      size_edges=(), default=True)  # fmt: skip
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert meta["calibration"] == cal2d and meta["calibrations"] == {"1": cal}
    assert GeneralModel(model_dir).tta == 2
    np.testing.assert_array_equal(GeneralModel(model_dir, tta=1).alpha, cal["alpha"])
    cal = calibrate(model_dir, [mixed_dataset], tta=1, coverage=0.8, contrast_edges=(2.0,),
                    size_edges=(), default=True)  # fmt: skip
    before = (model_dir / "metadata.json").read_text()
    with pytest.raises(InputError, match="too few"):
        calibrate(model_dir, [mixed_dataset], tta=1, coverage=0.999, size_edges=())
    with pytest.raises(InputError, match=r"in class 1 \(from 112 px\) are too few"):
        calibrate(model_dir, [mixed_dataset], tta=1, coverage=0.8, contrast_edges=())
    assert (model_dir / "metadata.json").read_text() == before  # a failed run changes nothing
    meta = json.loads(before)
    meta["calibration"] = {"alpha": [1.0, 2.0], "contrast_edges": [], "beta": 0.0, "tta": 1}
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="2 alpha values for 1 contrast bands in 1 size"):
        GeneralModel(model_dir)


def test_tensor_coarse_answers_equal_the_training_graph(tiny_general_tensors, tiny_general):
    """Answers (sparse LU) equal the differentiable TensorFlow path; the carried-over network
    keeps every layer but the head, whose eigenvalue channels start from the face channels."""
    import keras

    from surrogate.general import _answer_np, _answer_tf, _features, _network_from

    model = GeneralModel(tiny_general_tensors)
    strong, _, contrast = canonical_form(_images(4, (32, 48), seed=3), 1.0, 400.0)
    grid, glob, _ = _features(strong, contrast)
    ref, _ = _answer_tf(model.network, grid, glob, np.log(contrast), coarse="tensors")
    got, _ = _answer_np(lambda g, h: model.network([g, h]), grid, glob, np.log(contrast),
                        coarse="tensors")  # fmt: skip
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-6)
    faces = keras.models.load_model(tiny_general / "general.keras", compile=False)
    new = _network_from(faces, "tensors", 0)
    k2, b2 = faces.get_layer("face_logits").get_weights()
    k3, b3 = new.get_layer("tensor_logits").get_weights()
    np.testing.assert_array_equal(k3[..., :2], k2)
    assert not k3[..., 2].any() and b3[2] == 0
    np.testing.assert_array_equal(new.get_layer("conv0").get_weights()[0],
                                  faces.get_layer("conv0").get_weights()[0])  # fmt: skip
    with pytest.raises(InputError, match="cannot start"):
        _network_from(new, "faces", 0)


def test_huber_loss_is_recorded_and_an_unknown_loss_refused(tiny_general_tensors, tmp_path):
    """The loss a model was fitted with is in its metadata; an unknown one is a clear error
    before anything is written."""
    from surrogate.general import train_general

    meta = json.loads((tiny_general_tensors / "metadata.json").read_text())
    assert meta["loss"] == "huber"
    with pytest.raises(InputError, match="loss must be one of mse, huber"):
        train_general([], tmp_path / "bad", loss="l3")
    assert not (tmp_path / "bad").exists()


def test_calibration_by_cell_size_covers_each_class(tiny_general, mixed_dataset, tmp_path):
    """Mondrian calibration: one alpha per class of cell side, each class covered on its own
    rows, and answers take their own class's alpha."""
    import shutil

    from micro.mixed_dataset import generate_mixed_dataset, load_mixed_dataset
    from surrogate.general import calibrate

    model_dir = tmp_path / "sized"
    shutil.copytree(tiny_general, model_dir)
    larger = tmp_path / "mixed48.h5"
    generate_mixed_dataset(larger, 24, shape=(48, 40), seed=5)
    cal = calibrate(model_dir, [mixed_dataset, larger], tta=1, coverage=0.8, contrast_edges=(),
                    size_edges=(40.0,), default=True)  # fmt: skip
    assert np.shape(cal["alpha"]) == (2, 1) and cal["n_band"] == [[24], [24]]
    model = GeneralModel(model_dir)
    for c, path in enumerate((mixed_dataset, larger)):
        d = load_mixed_dataset(path)
        pred = model.predict(d.images, mu_matrix=d.mu_phases[:, 0], mu_inclusion=d.mu_phases[:, 1])
        err = relative_error(pred.mu_eff, d.mu_eff)
        assert np.mean(err <= pred.rel_error_bound + 1e-12) >= 0.8
        got = model._alpha(d.mu_phases[:, 1] / d.mu_phases[:, 0], d.images.shape[1:])
        np.testing.assert_array_equal(got, cal["alpha"][c][0])


def test_init_from_a_model_of_fewer_features_keeps_its_answers(monkeypatch):
    """``train-general --init`` from a network of an older feature set: the channels added since
    start with zero weights, so the new network answers exactly as the old one did."""
    import surrogate.general as general

    n_new = general.N_GRID
    monkeypatch.setattr(general, "N_GRID", n_new - 4)
    old = general.build_general_network(width=8, depth=2, seed=1)
    monkeypatch.setattr(general, "N_GRID", n_new)
    new = general._network_from(old, "faces", 0)
    grid, glob, _ = features(_images(3, (32, 40), seed=2), np.array([3.0, 300.0, 3e3]))
    before = old([grid[..., : n_new - 4], glob])
    after = new([grid, glob])
    for a, b in zip(before, after):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    with pytest.raises(InputError, match="grid features cannot start"):
        monkeypatch.setattr(general, "N_GRID", n_new - 8)
        general._network_from(new, "faces", 0)


@pytest.mark.parametrize("coarse", ["faces", "tensors"])
def test_a_wider_and_deeper_network_started_from_one_keeps_its_answers(coarse):
    """``train-general --init M --width W --depth D``: the new channels never reach an old one
    and the new convolutions start as identities, so the network answers as ``M`` did; the
    new channels' weights are not all zero (they can learn); a narrower one is refused."""
    import surrogate.general as general

    old = general.build_general_network(width=8, depth=2, seed=1)
    # weights that are not the initializer's zeros, so a slip in the copy would show
    for layer in old.layers:
        if layer.weights:
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights([0.3 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    new = general._network_from(old, coarse, 0, width=12, depth=4)
    assert general._width_depth(new) == (12, 4)
    grid, glob, _ = features(_images(3, (32, 40), seed=2), np.array([3.0, 300.0, 3e3]))
    before, after = old([grid, glob]), new([grid, glob])
    head = new.get_layer(general.HEADS[coarse][0]).get_weights()[0]
    assert head.shape[-2] == 12
    if coarse == "faces":
        np.testing.assert_allclose(np.asarray(after[0]), np.asarray(before[0]), rtol=1e-5,
                                   atol=1e-6)  # fmt: skip
    for a, b in zip(before[1:], after[1:]):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    assert np.abs(new.get_layer("conv0").get_weights()[0][..., 8:]).max() > 0
    with pytest.raises(InputError, match="only wider and deeper"):
        general._network_from(new, coarse, 0, width=8)


def test_error_head_refit_minimizes_its_term_and_keeps_the_answers(tiny_general, mixed_dataset):
    """The refit of ``log_sigma`` (a convex problem) reaches its minimum on the rows given,
    and changes the error estimate only: the tensors answered stay the same."""
    import keras

    import surrogate.layers  # noqa: F401
    from surrogate.general import _answer_tf, _load_rows, _refit_error_head

    net = keras.models.load_model(tiny_general / "general.keras", compile=False)
    rows = _load_rows([mixed_dataset])
    g = rows[0]
    mu0, u0 = (np.asarray(t) for t in _answer_tf(net, g["grid"], g["glob"], g["logc"]))
    info = _refit_error_head(net, rows)
    mu1, u1 = (np.asarray(t) for t in _answer_tf(net, g["grid"], g["glob"], g["logc"]))
    np.testing.assert_array_equal(mu0, mu1)
    assert info["rows"] == len(g["y"]) and info["nll_after"] <= info["nll_before"]
    assert not np.allclose(u0, u1)
    # a minimum: every small move of the head's weights raises the term
    kernel, bias = net.get_layer("log_sigma").get_weights()
    e = np.abs(
        np.stack([np.log(mu1[:, 0, 0]), np.log(mu1[:, 1, 1]),
                  mu1[:, 0, 1] / np.sqrt(mu1[:, 0, 0] * mu1[:, 1, 1])], axis=1) - g["y"]
    ).max(axis=1)  # fmt: skip
    np.testing.assert_allclose(np.mean(e * np.exp(-u1) + u1), info["nll_after"], rtol=1e-5)
    rng = np.random.default_rng(0)
    for _ in range(5):
        net.get_layer("log_sigma").set_weights([kernel, bias + rng.normal(0, 0.05, bias.shape)])
        u = np.asarray(_answer_tf(net, g["grid"], g["glob"], g["logc"])[1])
        assert np.mean(e * np.exp(-u) + u) >= info["nll_after"] - 1e-6


def test_interpolated_fine_tuning(tiny_general, mixed_dataset, tmp_path):
    """``interpolate``: the model is the mean of the best and the starting weights (all but the
    refitted error head), and a finished run run again gives the same model."""
    import json

    import keras

    import surrogate.layers  # noqa: F401
    from surrogate.general import train_general

    out = tmp_path / "wise"
    kwargs = dict(epochs=1, batch_size=8, init=tiny_general, val_fraction=0.3, interpolate=0.5)
    train_general([mixed_dataset], out, **kwargs)
    load = lambda p: keras.models.load_model(p, compile=False)  # noqa: E731
    final, best, start = (
        load(out / "general.keras"),
        load(out / "best.keras"),
        load(tiny_general / "general.keras"),
    )
    for layer in final.layers:
        if layer.weights and layer.name != "log_sigma":
            for w, b, s in zip(layer.get_weights(), best.get_layer(layer.name).get_weights(),
                               start.get_layer(layer.name).get_weights()):  # fmt: skip
                np.testing.assert_allclose(w, 0.5 * b + 0.5 * s, rtol=1e-6, atol=1e-7)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["interpolate"] == 0.5 and meta["error_head"]["rows"] > 0
    train_general([mixed_dataset], out, **kwargs)  # finished: only the final step again
    again = load(out / "general.keras")
    for a, b in zip(again.get_weights(), final.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_calibrate_cli_keeps_or_replaces_the_default(tiny_general, mixed_dataset, tmp_path, capsys):
    """`calibrate-general --tta N` on a model calibrated for another number keeps that default
    and stores N's beside it; `--default` makes N the default."""
    import shutil

    from magnetohom.cli import main

    model_dir = tmp_path / "cli"
    shutil.copytree(tiny_general, model_dir)
    args = ["calibrate-general", str(model_dir), str(mixed_dataset), "--tta", "1"]
    args += ["--coverage", "0.8", "--contrast-edges", "", "--size-edges", ""]
    assert main(args) == 0
    assert "kept beside the default calibration (tta 2)" in capsys.readouterr().out
    assert (
        GeneralModel(model_dir).tta == 2 and np.isfinite(GeneralModel(model_dir, tta=1).alpha).all()
    )
    assert main([*args, "--default"]) == 0
    assert "kept beside" not in capsys.readouterr().out
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert meta["calibration"]["tta"] == 1 and set(meta["calibrations"]) == {"2"}
