"""Serial and 2-rank runs give the same microstructures and results (mpirun)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(shutil.which("mpirun") is None, reason="no mpirun"),
]


def _run(nproc: int, *args: str) -> dict:
    cmd = [sys.executable, "-m", "magnetohom.cli", "macro", *args, "--json"]
    if nproc > 1:
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", str(nproc), *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, res.stdout  # only rank 0 prints
    return json.loads(lines[0])


@pytest.mark.parametrize(
    ("demo", "degree", "qoi", "resolution"),
    [
        ("shield", 2, "shielding_factor", 32),
        ("inductor", 1, "inductance_H_per_m", 32),
        ("shield3d", 1, "shielding_factor", 10),
    ],
)
def test_serial_equals_two_ranks(demo, degree, qoi, resolution):
    args = ("--demo", demo, "--size", "tiny", "--resolution", str(resolution), "--provider",
            "fe", "--degree", str(degree))  # fmt: skip
    serial = _run(1, *args)
    parallel = _run(2, *args)
    assert parallel["mpi_ranks"] == 2
    assert parallel["n_quadrature_points"] == serial["n_quadrature_points"]
    assert parallel["energy_J_per_m"] == pytest.approx(serial["energy_J_per_m"], rel=1e-8)
    assert parallel[qoi] == pytest.approx(serial[qoi], rel=1e-7)


@pytest.mark.slow
def test_choke_serial_equals_two_ranks():
    """The nonlinear A_z sweep (learned law) gives the same L(I) on 1 and 2 ranks."""
    args = ("--demo", "choke", "--size", "tiny", "--providers", "learned,linear",
            "--currents", "2,20")  # fmt: skip
    serial, parallel = _run(1, *args), _run(2, *args)
    assert parallel["mpi_ranks"] == 2
    assert parallel["n_composite_points"] == serial["n_composite_points"]
    for name in ("learned", "linear"):
        for a, b in zip(serial["providers"][name]["steps"], parallel["providers"][name]["steps"]):
            assert b["inductance_H"] == pytest.approx(a["inductance_H"], rel=1e-7)
            assert b["incremental_inductance_H"] == pytest.approx(
                a["incremental_inductance_H"], rel=1e-6
            )


@pytest.mark.slow
def test_choke_nested_balanced_over_two_ranks():
    """Nested FE² with the cell problems balanced over 2 ranks (collective CellProblemLaw and
    InverseLaw) gives the serial answer."""
    args = ("--demo", "choke", "--size", "tiny", "--providers", "nested", "--currents", "2")
    serial, parallel = _run(1, *args), _run(2, *args)
    a, b = serial["providers"]["nested"]["steps"][0], parallel["providers"]["nested"]["steps"][0]
    assert b["inductance_H"] == pytest.approx(a["inductance_H"], rel=1e-7)
    assert b["newton_iterations"] == a["newton_iterations"]
