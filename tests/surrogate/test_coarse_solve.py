"""The periodic coarse solve inside ``head="solve"`` models: exact means, reference, gradients."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from surrogate_helpers import disk_images, fv_homogenize

from magnetohom.errors import InputError
from surrogate.coarse_direct import homogenize_faces_direct, homogenize_faces_reference
from surrogate.coarse_solve import CoarseHomogenization, homogenize_faces, logm_spd2, logm_spd3
from surrogate.models import build_model, model_options
from surrogate.tensors import mandel, sym_logm

MU_M, MU_I = 1.0, 250.0


def _faces_of(images):
    """Two-point-flux face conductances ``(N, n, n, 2)`` (harmonic means) of 0/1 images."""
    mu = np.where(images, MU_I, MU_M).astype(np.float64)
    faces = []
    for axis in (1, 2):
        nb = np.roll(mu, -1, axis=axis)
        faces.append(2 * mu * nb / (mu + nb))
    return np.stack(faces, axis=-1)


@pytest.mark.parametrize("axis", [0, 1])
def test_laminate_gives_the_arithmetic_and_harmonic_means(axis):
    rng = np.random.default_rng(0)
    m = 16
    c = np.exp(rng.uniform(0.0, np.log(250.0), m))
    k = np.broadcast_to(c[:, None, None] if axis == 0 else c[None, :, None], (m, m, 2))
    mu = homogenize_faces(tf.constant(k[None]), tol=1e-10).numpy()[0]
    harmonic, arithmetic = 1.0 / np.mean(1.0 / c), np.mean(c)
    expected = np.diag([harmonic, arithmetic] if axis == 0 else [arithmetic, harmonic])
    np.testing.assert_allclose(mu, expected, rtol=1e-10, atol=1e-10 * arithmetic)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_3d_laminate_gives_the_arithmetic_and_harmonic_means(axis):
    rng = np.random.default_rng(10)
    m = 6
    c = np.exp(rng.uniform(0.0, np.log(250.0), m))
    shape = [1, 1, 1]
    shape[axis] = m
    k = np.broadcast_to(c.reshape(shape)[..., None], (m, m, m, 3))
    mu = homogenize_faces(tf.constant(k[None]), tol=1e-10).numpy()[0]
    harmonic, arithmetic = 1.0 / np.mean(1.0 / c), np.mean(c)
    expected = np.full(3, arithmetic)
    expected[axis] = harmonic
    np.testing.assert_allclose(mu, np.diag(expected), rtol=1e-10, atol=1e-10 * arithmetic)


def test_3d_matches_a_sparse_direct_solve_and_is_spd_and_shift_invariant():
    rng = np.random.default_rng(11)
    k = np.exp(rng.uniform(0.0, np.log(250.0), (2, 4, 5, 6, 3)))  # non-cubic on purpose
    mu = homogenize_faces(tf.constant(k), tol=1e-11, max_iterations=2000).numpy()
    for b in range(2):
        ref = homogenize_faces_reference(*(k[b, ..., c] for c in range(3)))
        np.testing.assert_allclose(mu[b], ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    np.testing.assert_allclose(mu, np.swapaxes(mu, 1, 2), rtol=0, atol=0)
    w = np.linalg.eigvalsh(mu)
    assert np.all(w > k.min()) and np.all(w < k.max())
    shifted = homogenize_faces(
        tf.constant(np.roll(k, (1, 3, 2), axis=(1, 2, 3))), tol=1e-11, max_iterations=2000
    )
    np.testing.assert_allclose(shifted.numpy(), mu, rtol=1e-9)


def test_matches_a_sparse_direct_solve_and_the_pixel_finite_volumes():
    """Random conductances against scipy; harmonic pixel faces against the test's own FV."""
    rng = np.random.default_rng(1)
    k = np.exp(rng.uniform(0.0, np.log(250.0), (3, 12, 20, 2)))  # non-square on purpose
    mu = homogenize_faces(tf.constant(k), tol=1e-11, max_iterations=2000).numpy()
    for b in range(3):
        ref = homogenize_faces_reference(k[b, ..., 0], k[b, ..., 1])
        np.testing.assert_allclose(mu[b], ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())
    images = disk_images(3, 24, radius=4.0, rng=2, vf_range=(0.3, 0.7))
    mu = homogenize_faces(tf.constant(_faces_of(images)), tol=1e-11, max_iterations=2000)
    np.testing.assert_allclose(mu.numpy(), fv_homogenize(images), rtol=1e-8, atol=1e-8)


def test_direct_batch_matches_the_iteration_at_high_contrast_and_the_laminate():
    """What answers use: batched direct solves equal the CG to its tolerance (contrast 1e4,
    rectangular), and a laminate of faces gives its arithmetic and harmonic means exactly."""
    rng = np.random.default_rng(5)
    k = np.exp(rng.uniform(0.0, np.log(1e4), (3, 10, 14, 2)))
    ref = homogenize_faces(tf.constant(k), tol=1e-12, max_iterations=4000).numpy()
    got = homogenize_faces_direct(k)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    lam = np.where(np.arange(8)[:, None] % 2 == 0, 1.0, 1e4) * np.ones((8, 6))
    mu = homogenize_faces_direct(np.stack([lam, lam], axis=-1)[None])[0]
    layers = np.array([1.0, 1e4])  # layers normal to x1: harmonic along x1, arithmetic along x2
    np.testing.assert_allclose(mu, np.diag([2 / (1 / layers).sum(), layers.mean()]), rtol=1e-12)
    with pytest.raises(ValueError, match="face conductances"):
        homogenize_faces_direct(k[..., :1])
    for bad in (0.0, -1.0, np.nan):
        k_bad = k.copy()
        k_bad[1, 3, 4, 0] = bad
        with pytest.raises(ValueError, match="positive and finite"):
            homogenize_faces_direct(k_bad)


def test_float32_iteration_gives_the_float64_result():
    """The layer iterates in float32: mu to the solver tolerance, the energy still in float64."""
    images = disk_images(4, 32, radius=5.0, rng=6, vf_range=(0.3, 0.8))
    k = tf.constant(_faces_of(images))
    ref = homogenize_faces(k, tol=1e-11, max_iterations=2000).numpy()
    got = homogenize_faces(k, tol=1e-4, solve_dtype="float32")
    assert got.dtype == tf.float64
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    layer = CoarseHomogenization(tol=1e-4)
    assert layer.solve_dtype == "float32"
    again = CoarseHomogenization.from_config(layer.get_config())
    assert again.solve_dtype == "float32" and again.tol == 1e-4
    np.testing.assert_allclose(layer(k).numpy(), mandel(sym_logm(ref)), atol=1e-5)
    with pytest.raises(ValueError, match="solve_dtype"):
        homogenize_faces(k, solve_dtype="float16")


def test_result_is_spd_between_the_extreme_conductances_and_shift_invariant():
    rng = np.random.default_rng(3)
    k = np.where(rng.random((4, 16, 16, 2)) < 0.5, MU_M, MU_I)
    mu = homogenize_faces(tf.constant(k)).numpy()
    np.testing.assert_allclose(mu, np.swapaxes(mu, 1, 2), rtol=0, atol=0)
    w = np.linalg.eigvalsh(mu)
    assert np.all(w > MU_M) and np.all(w < MU_I)
    shifted = homogenize_faces(tf.constant(np.roll(k, (5, 11), axis=(1, 2)))).numpy()
    np.testing.assert_allclose(shifted, mu, rtol=1e-6)


def test_gradient_is_the_exact_derivative():
    """``d mu / d k`` with ``u`` held fixed equals central finite differences of the solve."""
    rng = np.random.default_rng(4)
    k = np.exp(rng.uniform(0.0, np.log(250.0), (1, 8, 8, 2)))
    weights = tf.constant([[1.0, 0.3], [0.3, -0.5]], tf.float64)
    var = tf.Variable(k)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(homogenize_faces(var, tol=1e-12, max_iterations=2000)[0] * weights)
    grad = tape.gradient(y, var).numpy()[0]
    h = 1e-4
    for idx in [(0, 0, 0), (3, 5, 1), (7, 2, 0)]:
        kp, km = k.copy(), k.copy()
        kp[(0, *idx)] += h
        km[(0, *idx)] -= h
        fp, fm = (
            float(tf.reduce_sum(homogenize_faces(tf.constant(v), tol=1e-12)[0] * weights))
            for v in (kp, km)
        )
        np.testing.assert_allclose(grad[idx], (fp - fm) / (2 * h), rtol=1e-5)


def test_logm_of_2x2_spd_matrices_and_its_gradient_at_isotropy():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(6, 2, 2))
    spd = a @ np.swapaxes(a, 1, 2) + 0.1 * np.eye(2)
    spd[0] = 7.0 * np.eye(2)  # isotropic: the series branch
    spd[1] = [[3.0, 1e-5], [1e-5, 3.0]]  # nearly isotropic
    np.testing.assert_allclose(
        logm_spd2(tf.constant(spd)).numpy(), mandel(sym_logm(spd)), atol=1e-12
    )
    x = tf.Variable(spd[:2])
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(logm_spd2(x))
    assert np.all(np.isfinite(tape.gradient(y, x).numpy()))


def test_logm_of_3x3_spd_matrices_and_its_gradient():
    """Eigendecomposition forward; Daleckii-Krein backward, finite at repeated eigenvalues."""
    rng = np.random.default_rng(12)
    a = rng.normal(size=(5, 3, 3))
    spd = a @ np.swapaxes(a, 1, 2) + 0.1 * np.eye(3)
    spd[0] = 4.0 * np.eye(3)  # isotropic
    spd[1] = np.diag([2.0, 2.0, 3.0])  # transversely isotropic
    np.testing.assert_allclose(
        logm_spd3(tf.constant(spd)).numpy(), mandel(sym_logm(spd)), atol=1e-12
    )
    weights = tf.constant(rng.normal(size=(5, 6)))
    x = tf.Variable(spd)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(logm_spd3(x) * weights)
    grad = tape.gradient(y, x).numpy()
    assert np.all(np.isfinite(grad))
    h = 1e-6
    for b, i, j in [(0, 0, 1), (1, 0, 1), (1, 2, 2), (2, 1, 2), (3, 0, 0)]:
        step = np.zeros((5, 3, 3))
        step[b, i, j] = h
        fp, fm = (
            float(tf.reduce_sum(logm_spd3(tf.constant(spd + s)) * weights)) for s in (step, -step)
        )
        np.testing.assert_allclose(grad[b, i, j], (fp - fm) / (2 * h), rtol=1e-6, atol=1e-9)


def test_solve_head_model_is_admissible_periodic_and_serializable(tmp_path):
    opts = {"head": "solve", "filters": [4, 4], "stem": 2}
    model = build_model("default", resolution=16, options=opts, rng=0)
    rng = np.random.default_rng(6)
    for w in model.trainable_weights:
        w.assign(0.5 * rng.normal(size=w.shape).astype(np.float32))
    x = (rng.random((3, 16, 16, 1)) < 0.5).astype(np.uint8)
    out = np.asarray(model(x))
    assert out.shape == (3, 3) and np.all(np.isfinite(out))
    w = np.linalg.eigvalsh(_expm_mandel(out))
    assert np.all(w > MU_M * (1 - 1e-5)) and np.all(w < MU_I * (1 + 1e-5))
    # a shift by whole stem blocks shifts the coarse grid, which the solve ignores
    rolled = np.roll(x, (2, 6), axis=(1, 2))
    np.testing.assert_allclose(np.asarray(model(rolled)), out, rtol=1e-4, atol=1e-4)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(loaded(x)), out, rtol=1e-6)
    assert isinstance(loaded.get_layer("log_mu"), CoarseHomogenization)


def _expm_mandel(v, dim=2):
    from surrogate.tensors import from_mandel, sym_expm

    return sym_expm(from_mandel(v.astype(np.float64), dim))


def test_3d_solve_head_model_is_admissible_and_periodic(tmp_path):
    opts = {"head": "solve", "filters": [3], "stem": 2}
    model = build_model("default", dim=3, resolution=8, options=opts, rng=0)
    rng = np.random.default_rng(7)
    for w in model.trainable_weights:
        w.assign(0.5 * rng.normal(size=w.shape).astype(np.float32))
    x = (rng.random((2, 8, 8, 8, 1)) < 0.4).astype(np.uint8)
    out = np.asarray(model(x))
    assert out.shape == (2, 6) and np.all(np.isfinite(out))
    w = np.linalg.eigvalsh(_expm_mandel(out, 3))
    assert np.all(w > MU_M * (1 - 1e-5)) and np.all(w < MU_I * (1 + 1e-5))
    rolled = np.roll(x, (2, 4, 6), axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(model(rolled)), out, rtol=1e-4, atol=1e-4)
    model.save(tmp_path / "m3.keras")
    loaded = keras.saving.load_model(tmp_path / "m3.keras")
    np.testing.assert_allclose(np.asarray(loaded(x)), out, rtol=1e-6)


def test_solve_head_options_are_checked():
    with pytest.raises(InputError, match="head"):
        model_options("default", {"head": "mlp"})
    with pytest.raises(InputError, match="solve_tol"):
        model_options("default", {"head": "solve", "solve_tol": 2.0})


@pytest.fixture(scope="module")
def wide_dataset(tmp_path_factory):
    """16 labeled SVEs of 48^2 with the disks of ``tiny_dataset`` (radius 2): a larger cell."""
    from mpi4py import MPI

    from micro.dataset import generate_dataset

    path = tmp_path_factory.mktemp("wide") / "wide.h5"
    generate_dataset(
        path,
        n_samples=16,
        dim=2,
        size=48,
        radius=2.0,
        vf_range=(0.05, 0.45),
        base_seed=3,
        comm=MPI.COMM_SELF,
        progress=False,
    )
    return path


def test_solve_head_trains_transfers_and_serves(
    tiny_dataset, tiny_images, other_dataset, wide_dataset, tiny_model, tmp_path
):
    """The real pipeline with ``head="solve"``: train, transfer, evaluate, batched provider."""
    from surrogate.bundle import at_resolution, load_bundle
    from surrogate.evaluation import evaluate
    from surrogate.provider import CNNProvider
    from surrogate.training import train

    opts = {"head": "solve", "filters": [4, 4], "stem": 2}
    res = train(
        tiny_dataset,
        out=tmp_path / "s",
        epochs=15,
        batch_size=8,
        learning_rate=3e-3,
        options=opts,
        seed=0,
    )
    loss = res.history[0]["loss"]
    assert loss[-1] < 0.1 * loss[0]
    assert res.metadata["model_options"]["head"] == "solve"
    # (accuracy is the benchmarks' business: batch normalization's moving statistics need more
    # steps than a test affords)
    assert np.all(np.isfinite(evaluate(res.model_dir, tiny_dataset).mape))
    moved = train(other_dataset, out=tmp_path / "t", init=res.model_dir, epochs=2, seed=1)
    assert moved.metadata["model_options"]["head"] == "solve"
    assert np.all(np.isfinite(evaluate(moved.model_dir, other_dataset).mape))
    # it moves to a larger cell of the same disks (fine-tuned there); a pooling model does not
    grown = train(wide_dataset, out=tmp_path / "g", init=res.model_dir, epochs=1, seed=1)
    assert grown.metadata["resolution"] == 48
    before = evaluate(res.model_dir, wide_dataset, any_size=True)  # same weights, 48^2 cells
    assert before.n == 16 and np.all(np.isfinite(before.mape))
    with pytest.raises(InputError, match="48 px"):
        evaluate(res.model_dir, wide_dataset)
    assert np.all(np.isfinite(evaluate(grown.model_dir, wide_dataset).mape))
    with pytest.raises(InputError, match="coarse-solve"):
        train(wide_dataset, out=tmp_path / "p", init=tiny_model.model_dir, epochs=1)
    with pytest.raises(InputError, match="coarse-solve"):
        at_resolution(load_bundle(tiny_model.model_dir), 64)
    # the reason named is the stem, not "only coarse-solve models" (issue 23)
    with pytest.raises(InputError, match=r"33 px is not a multiple of its stem \(2 px"):
        at_resolution(load_bundle(res.model_dir), 33)  # stem 2 does not divide 33
    # a frozen transfer keeps the feature convolutions and trains the head (face_logits)
    frozen = train(
        other_dataset, out=tmp_path / "f", init=res.model_dir, freeze="conv", epochs=1, seed=1
    )
    src, new = (load_bundle(d).members[0] for d in (res.model_dir, frozen.model_dir))
    for name in ("conv1", "conv2"):
        for u, v in zip(src.get_layer(name).get_weights(), new.get_layer(name).get_weights()):
            np.testing.assert_array_equal(u, v)
    head_src, head_new = (m.get_layer("face_logits").get_weights()[0] for m in (src, new))
    assert not np.array_equal(head_src, head_new)
    # the same weights on a cell twice as large (no layer is tied to the cell size): a 2 x 2
    # tiling of a periodic cell is the same material, so its mu* is the cell's
    wide = at_resolution(load_bundle(res.model_dir), 2 * src.input_shape[1])
    assert wide.resolution == 64 and wide.metadata["trained_resolution"] == 32
    big = wide.members[0]
    x = tiny_images[:4, ..., None].astype(np.float32)
    want = src.predict_on_batch(x)
    got = big.predict_on_batch(np.tile(x, (1, 2, 2, 1)))
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-4)  # log mu, solve_tol 1e-4
    anysize = CNNProvider(res.model_dir, any_size=True)
    tiled = np.tile(tiny_images[:3], (1, 2, 2))
    np.testing.assert_allclose(anysize(tiled), anysize(tiny_images[:3]), rtol=3e-4)
    assert anysize.n_predicted == 6
    with pytest.raises(InputError, match="does not match"):
        CNNProvider(res.model_dir)(tiled)
    with pytest.raises(InputError, match="coarse-solve"):
        CNNProvider(tiny_model.model_dir, any_size=True)(tiled)
    provider = CNNProvider(res.model_dir, batch_size=3)
    mu = provider(tiny_images[:7])
    single = np.concatenate([provider(img) for img in tiny_images[:4]])
    np.testing.assert_allclose(single, mu[:4], rtol=1e-5)
    w = np.linalg.eigvalsh(mu)
    assert np.all(w > MU_M * (1 - 1e-6)) and np.all(w < MU_I * (1 + 1e-6))
    # a fresh interpreter (the CLI's situation) loads it: the solve layers register themselves
    code = "import sys; from surrogate.bundle import load_bundle; load_bundle(sys.argv[1])"
    done = subprocess.run(
        [sys.executable, "-c", code, str(res.model_dir)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
