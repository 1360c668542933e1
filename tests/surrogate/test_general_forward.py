"""The general network's numpy forward pass (surrogate.general_forward) against Keras."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from magnetohom.errors import InputError
from micro.morphologies import generate_morphology
from surrogate.general import GeneralModel, _corrected, _features
from surrogate.general_features import canonical_form
from surrogate.general_forward import corrected, forward, load_weights
from surrogate.registry import resolve_model


def _inputs(shape, n=3, seed=0):
    rng = np.random.default_rng(seed)
    images = np.stack([generate_morphology("blobs", shape, rng=rng) for _ in range(n)])
    strong, _, contrast = canonical_form(images, 1.0, rng.uniform(2, 3000, n))
    return _features(strong, contrast)


@pytest.mark.parametrize("which", ["shipped", "tiny_general", "tiny_general_tensors"])
def test_numpy_forward_equals_keras(which, request):
    path = resolve_model("general") if which == "shipped" else request.getfixturevalue(which)
    model = GeneralModel(path)
    for shape in ((64, 64), (48, 80)):
        grid, glob, _ = _inputs(shape)
        ref = model.network([grid, glob])
        got = forward(model.weights, grid, glob)
        for r, g in zip(ref, got, strict=True):
            np.testing.assert_allclose(g, r.numpy(), rtol=1e-4, atol=1e-4 * np.abs(r).max())


def test_corrected_equals_the_training_graph():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 2, 2))
    mu = a @ np.swapaxes(a, 1, 2) + 0.1 * np.eye(2)
    corr = rng.normal(0, 0.5, (20, 3))
    np.testing.assert_allclose(corrected(mu, corr), _corrected(mu, corr).numpy(), rtol=1e-10)
    np.testing.assert_allclose(corrected(mu, np.zeros((20, 3))), mu, rtol=1e-10, atol=1e-12)


def test_unreadable_network_is_one_clear_error(tmp_path):
    bad = tmp_path / "general.keras"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match="cannot read the general network"):
        load_weights(bad)


def test_predict_with_the_general_model_does_not_start_tensorflow(tmp_path):
    """Answers need no TensorFlow (its start-up costs seconds): the process never imports it."""
    image = generate_morphology("voronoi", (32, 32), rng=0)
    np.save(tmp_path / "a.npy", image)
    code = (
        "import sys, runpy; sys.argv = ['magnetohom', 'predict', sys.argv[1], '--json'];\n"
        "try:\n    runpy.run_module('magnetohom.cli', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "a.npy")], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert '"source": "cnn"' in res.stdout


def test_gelu_is_the_exact_one_to_float32_round_off():
    """The compiled GELU (a rational erf) against ``x Phi(x)`` through the exact ``erf``."""
    import math

    from surrogate.general_forward import _gelu

    x = np.concatenate([np.linspace(-12.0, 12.0, 200_001), [0.0, -0.0, 1e-30, -50.0, 50.0]])
    exact = np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
    got = _gelu(x.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, exact, rtol=2e-6, atol=2e-6)
    assert got[x == 50.0] == 50.0 and got[x == -50.0] == 0.0
