"""``magnetohom rve`` and micro.rve: apparent tensors of growing windows."""

import json

import numpy as np

from magnetohom.cli import main
from micro.rve import rve_study


def _field(n=96, seed=0):
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(np.random.default_rng(seed).random((n, n)), 1.5, mode="wrap")
    return np.where(noise > np.quantile(noise, 0.7), 30.0, 1.0)


def test_rve_study_gap_shrinks_and_pbc_lies_between():
    study = rve_study(_field(), sizes=[12, 24, 48, 96], windows=3, rng=1, tol=0.3)
    assert study.ordered.all()
    m = study.mean_eigenvalue  # (S, W, 3): UNBC, PBC, UDBC
    assert np.all(m[..., 0] <= m[..., 1]) and np.all(m[..., 1] <= m[..., 2])
    w = study.width.mean(axis=1)
    assert np.all(np.diff(w) < 0)
    assert 0.6 < study.rate < 1.4
    assert study.rve_size is None or study.rve_size in study.sizes


def test_rve_cli_writes_plot_and_json(tmp_path, capsys):
    np.save(tmp_path / "big.npy", (_field(64) > 1).astype(np.uint8))
    out = tmp_path / "rve"
    argv = ["rve", str(tmp_path / "big.npy"), "--sizes", "8,16,32", "--windows", "2"]
    assert main([*argv, "--mu", "1,30", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "gap ~ size^-" in text and (out / "rve.png").is_file()
    summary = json.loads((out / "rve.json").read_text())
    assert [r["size"] for r in summary["sizes"]] == [8, 16, 32]
    assert all(r["ordered"] for r in summary["sizes"])
    assert main([*argv, "--sizes", "8,500", "-o", str(out)]) == 2
    assert "window sizes must be in 3..64" in capsys.readouterr().err
