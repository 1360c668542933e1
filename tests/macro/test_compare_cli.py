"""Provider comparison, the `magnetohom macro` command and the demos, at the smallest size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "magnetohom.cli", "macro", *args],
        capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600,
    )  # fmt: skip


def test_compare_fe_analytic_same_mesh_and_sves():
    from macro.compare import compare_providers
    from macro.problems import get_problem

    problem = get_problem("inductor", size="tiny", resolution=32)
    cmp = compare_providers(problem, ("fe", "analytic"))
    s = cmp.summary()
    assert s["candidate"] == "analytic" and s["n_quadrature_points"] > 100
    fe, an = s["providers"]["fe"], s["providers"]["analytic"]
    assert fe["energy_rel_error"] == 0 and fe["l2_B_rel_error"] == 0
    assert 0 < an["energy_rel_error"] < 1 and an["l2_B_rel_error"] > 0
    # inductance is 2W/I^2 for each provider
    for m in (fe, an):
        assert m["inductance_H_per_m"] == pytest.approx(2 * m["energy_J_per_m"] / 100.0**2)
    # the same SVEs: measured volume fractions identical in both runs
    vf = [r.solution.coefficient.volume_fraction.x.array for r in cmp.results.values()]
    assert np.array_equal(vf[0], vf[1]) and vf[0].max() > 0.2
    for stage in ("sve_generation", "mu_evaluation", "assembly", "solve"):
        assert stage in fe["timings_s"]
    # the FE² reference's homogenizer is set up before the timed stages, and reported
    assert fe["provider_setup_s"] > 0 and "provider_setup_s" in an


def test_cli_compare_json_and_outputs(tmp_path):
    res = _cli("--demo", "shield", "--size", "tiny", "--resolution", "32", "--compare",
               "--providers", "fe,analytic", "--json", "-o", str(tmp_path))  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    for key in ("n_quadrature_points", "energy_rel_error", "l2_B_rel_error", "speedup"):
        assert key in out
    assert out["providers"]["fe"]["timings_s"]["mu_evaluation"] > 0
    assert 1.0 < out["providers"]["fe"]["shielding_factor"] < 2.0
    names = {p.name for p in tmp_path.iterdir()}
    assert {
        "shield_fe.xdmf",
        "shield_fe.png",
        "shield_analytic.json",
        "shield_compare.json",
    } <= names


def test_cli_compare_3d_shell(tmp_path):
    """The 3D demo: every point owns a 3D SVE; the FE² reference against Hashin–Shtrikman."""
    res = _cli("--demo", "shield3d", "--size", "tiny", "--resolution", "12", "--compare",
               "--providers", "fe,analytic", "--json", "-o", str(tmp_path))  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["dim"] == 3 and out["sve_resolution"] == 12 and out["n_quadrature_points"] > 100
    fe = out["providers"]["fe"]
    # a permeable shell shields its cavity: S > 1
    assert 1.0 < fe["shielding_factor"] < 3.0
    saved = json.loads((tmp_path / "shield3d_fe.json").read_text())
    assert all(len(b) == 3 for b in saved["region_mean_B_T"].values())
    assert 0 < out["providers"]["analytic"]["energy_rel_error"] < 1
    names = {p.name for p in tmp_path.iterdir()}
    assert {"shield3d_fe.xdmf", "shield3d_fe.png", "shield3d_compare.json"} <= names


def test_cli_single_provider_text(tmp_path):
    res = _cli("--demo", "inductor", "--size", "tiny", "--resolution", "32", "--provider",
               "analytic")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "inductance_H_per_m" in res.stdout and "sve_generation" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--demo", "toaster"), "unknown demo 'toaster'; valid demos: shield, inductor, shield3d"),
        (("--demo", "shield", "--provider", "magic"), "unknown provider 'magic'"),
        (("--demo", "shield", "--size", "huge"), "unknown size 'huge'"),
    ],
)
def test_cli_bad_input(args, message):
    res = _cli(*args)
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("demo", ["shield", "inductor"])
def test_demo_runs_headless(demo, tmp_path):
    env = {**ENV, "MAGNETOHOM_DEMO_SIZE": "tiny", "MAGNETOHOM_DEMO_RESOLUTION": "32",
           "MAGNETOHOM_DEMO_OUT": str(tmp_path), "MPLBACKEND": "Agg"}  # fmt: skip
    script = str(ROOT / "demos" / f"{demo}.py")
    res = subprocess.run([sys.executable, script], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert any(p.suffix == ".png" for p in tmp_path.iterdir())
    assert "wrote" in res.stdout
