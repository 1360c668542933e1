"""The nonlinear ``choke`` demo (issue 22): currents, bad input, and an end-to-end tiny run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from macro.choke import parse_currents
from magnetohom.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "magnetohom.cli", "macro", "--demo", "choke", *args],
        capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=900,
    )  # fmt: skip


def test_parse_currents():
    np.testing.assert_array_equal(parse_currents("0.5, 1,2"), [0.5, 1.0, 2.0])
    for bad in ("", "1,-2", "0,1", "2,1", "1,nan", "a,b", "1,inf"):
        with pytest.raises(InputError):
            parse_currents(bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--currents", "1,-2"), "currents must be finite and > 0"),
        (("--providers", "learned,magic"), "unknown provider"),
        (("--currents", "2,1"), "strictly increasing"),
        (("--resolution", "64"), "32^2"),
    ],
)
def test_cli_bad_input_is_one_line(args, message):
    res = _cli(*args)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_choke_tiny_end_to_end(tmp_path):
    """Learned law and linear mu* on the tiny choke: L(I) falls for the saturating law, stays
    constant for the linear one; at low current the two agree within a few %."""
    res = _cli("--size", "tiny", "--providers", "learned,linear", "--currents", "2,10,50",
               "--json", "-o", str(tmp_path))  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    learned = [s["inductance_H"] for s in out["providers"]["learned"]["steps"]]
    linear = [s["inductance_H"] for s in out["providers"]["linear"]["steps"]]
    assert np.all(np.diff(learned) < 0) and learned[-1] < 0.7 * learned[0]
    np.testing.assert_allclose(linear, linear[0], rtol=1e-6)
    assert learned[0] == pytest.approx(linear[0], rel=0.03)
    for sw in out["providers"].values():
        for s in sw["steps"]:
            assert s["residuals"][-1] <= 1e-8
            # the incremental inductance is below the secant one once the core saturates
            assert s["incremental_inductance_H"] <= s["inductance_H"] * (1 + 1e-6)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"choke_L.csv", "choke_L.png", "choke.json", "choke_learned.xdmf",
            "choke_B_learned_50A.png", "choke_B_linear_2A.png"} <= names  # fmt: skip
    rows = list(csv.DictReader((tmp_path / "choke_L.csv").open()))
    assert len(rows) == 6 and {r["provider"] for r in rows} == {"learned", "linear"}
