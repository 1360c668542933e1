"""The CNN and hybrid providers in the macro comparison (a tiny model trained here).

The model is trained for a few epochs on 32^2 images, so only the plumbing is checked (names,
resolution, fallbacks, JSON), not the accuracy; the accuracy targets are benchmarked with the
pretrained model (``bench/bench_macro.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "surrogate")]),
       "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip

TRAIN = """
import sys
import tensorflow  # noqa: F401  (before anything else)
from surrogate_helpers import disk_images, fv_homogenize, write_dataset
from surrogate.training import train
images = disk_images(60, 32, radius=2.0, rng=1, vf_range=(0.1, 0.5))
path = write_dataset(sys.argv[1] + "/data.h5", images, fv_homogenize(images))
train(path, out=sys.argv[1] + "/model", epochs=3, batch_size=16, learning_rate=3e-3,
      options={"filters": [4, 8, 8], "dense": [16], "stem": 1}, seed=0)
"""


@pytest.mark.slow
def test_compare_with_cnn_and_hybrid(tmp_path):
    pytest.importorskip("tensorflow")
    res = subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path)], capture_output=True,
                         text=True, env=ENV, timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    cmd = [sys.executable, "-m", "magnetohom.cli", "macro", "--demo", "inductor", "--size",
           "tiny", "--compare", "--providers", "fe,cnn,hybrid,analytic", "--model",
           str(tmp_path / "model"), "--json"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["candidate"] == "cnn" and out["sve_resolution"] == 32
    assert set(out["providers"]) == {"fe", "cnn", "hybrid", "analytic"}
    assert out["unavailable"] == {}
    hybrid = out["providers"]["hybrid"]
    assert 0 <= hybrid["n_fallback"] <= out["n_quadrature_points"]
    for key in ("energy_rel_error", "l2_B_rel_error", "speedup"):
        assert out[key] is not None
