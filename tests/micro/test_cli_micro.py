"""``magnetohom generate`` and ``magnetohom bounds``, in-process and as a console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from magnetohom.cli import main
from micro.analytic import estimates
from micro.generate import generate_sve, spawn_seeds
from micro.imageio import load_image

SCRIPT = Path(sys.executable).with_name("magnetohom")


def test_generate_directory_npy(tmp_path, capsys):
    out = tmp_path / "svs"
    rc = main(
        [
            "generate",
            "--vf",
            "0.3",
            "--size",
            "64",
            "--radius",
            "4",
            "--seed",
            "7",
            "-n",
            "3",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    files = sorted(out.glob("sve_*.npy"))
    assert [f.name for f in files] == ["sve_0000.npy", "sve_0001.npy", "sve_0002.npy"]
    assert len(lines) == 3
    seeds = spawn_seeds(7, 3)
    for line, path, seed in zip(lines, files, seeds):
        image = load_image(path)
        assert image.shape == (64, 64)
        assert line.startswith(str(path))
        vf = float(line.split("vf=")[1].split()[0])
        assert vf == pytest.approx(image.mean(), abs=5e-5)
        assert abs(vf - 0.3) <= 0.005
        # sample k is generate_sve with child seed k
        ref = generate_sve(size=64, radius=4, volume_fraction=0.3, rng=int(seed))
        np.testing.assert_array_equal(image, ref.image)
    assert len({load_image(f).tobytes() for f in files}) == 3


def test_generate_formats(tmp_path, capsys):
    assert (
        main(
            [
                "generate",
                "--vf",
                "0.2",
                "--size",
                "48",
                "--radius-range",
                "2",
                "5",
                "--overlap",
                "--seed",
                "1",
                "-n",
                "2",
                "--format",
                "png",
                "-o",
                str(tmp_path / "png"),
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "png").glob("sve_*.png"))) == 2
    path = tmp_path / "one.tif"
    assert (
        main(
            [
                "generate",
                "--dim",
                "3",
                "--size",
                "24",
                "--radius",
                "3",
                "--vf",
                "0.2",
                "--seed",
                "2",
                "-o",
                str(path),
            ]
        )
        == 0
    )
    image = load_image(path, dim=3)
    assert image.shape == (24, 24, 24) and abs(image.mean() - 0.2) <= 0.005
    capsys.readouterr()


def test_bounds_json_and_table(tmp_path, capsys):
    main(
        [
            "generate",
            "--vf",
            "0.25",
            "--size",
            "64",
            "--radius",
            "4",
            "--seed",
            "3",
            "-n",
            "2",
            "--format",
            "tiff",
            "-o",
            str(tmp_path),
        ]
    )
    files = sorted(str(p) for p in tmp_path.glob("sve_*.tif"))
    capsys.readouterr()
    assert main(["bounds", *files, "--mu-inclusion", "100", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["file"] for r in rows] == files
    for row in rows:
        vf = load_image(row["file"]).mean()
        assert row["dim"] == 2 and row["volume_fraction"] == pytest.approx(vf)
        ref = estimates(vf, 1.0, 100.0, dim=2).as_dict()
        for key, value in ref.items():
            assert row[key] == pytest.approx(float(value), rel=1e-12)
        assert row["reuss"] <= row["hs_lower"] <= row["self_consistent"] <= row["hs_upper"]
    assert main(["bounds", *files]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert len(table) == 3 and "hs_lower" in table[0] and "self_consistent" in table[0]


def _bad_inputs(tmp: Path) -> list[list[str]]:
    np.save(tmp / "nonbinary.npy", np.array([[0, 3], [255, 0]]))
    np.save(tmp / "nan.npy", np.array([[0.0, np.nan], [1.0, 0.0]]))
    np.save(tmp / "dims.npy", np.zeros((2, 2, 2, 2), dtype=bool))
    np.save(tmp / "rect.npy", np.zeros((256, 2), dtype=bool))
    np.save(tmp / "good.npy", np.eye(4, dtype=bool))
    return [
        ["bounds", str(tmp / "nonbinary.npy")],
        ["bounds", str(tmp / "nan.npy")],
        ["bounds", str(tmp / "dims.npy")],
        ["homogenize", str(tmp / "rect.npy")],
        ["bounds", str(tmp / "good.npy"), "--mu-matrix", "0"],
        ["bounds", str(tmp / "good.npy"), "--mu-inclusion", "-5"],
        ["bounds", str(tmp / "missing.png")],
        ["generate", "--vf", "0.7", "-o", str(tmp / "x")],
        ["generate", "--vf", "0.3", "--radius", "200", "-o", str(tmp / "x")],
        ["generate", "--vf", "1.5", "-o", str(tmp / "x")],
        [
            "generate",
            "--vf",
            "0.3",
            "--dim",
            "3",
            "--size",
            "20",
            "--radius",
            "3",
            "--format",
            "png",
            "-o",
            str(tmp / "x"),
        ],
        ["generate", "--vf", "0.3", "-n", "2", "-o", str(tmp / "x.npy")],
    ]


_EXPECTED = [
    "image has phase labels up to 255 but only 2 permeabilities were given",
    "NaN",
    "2D or 3D: got 4D",
    "rect.npy: image must have at least 3 pixels per side: got shape (256, 2)",
    "mu_matrix must be finite and > 0",
    "mu_inclusion must be finite and > 0",
    "no such file",
    "volume fraction 0.7 unreachable for non-overlapping monodisperse disks",
    "radius 200 too large",
    "volume fraction must be in (0, 1)",
    "PNG holds 2D images only",
    "names a file",
]


def test_bad_input_in_process(tmp_path, capsys):
    for argv, expected in zip(_bad_inputs(tmp_path), _EXPECTED):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"magnetohom {argv[0]}: error: "), err
        assert expected in err, (argv, err)
        assert "\n" not in err


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed")
def test_bad_input_console_script(tmp_path):
    for argv, expected in zip(_bad_inputs(tmp_path), _EXPECTED):
        proc = subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (argv, proc.stderr)
        err = proc.stderr.strip()
        assert len(err.splitlines()) == 1, err
        assert "Traceback" not in err and expected in err, (argv, err)
        assert proc.stdout == "" or argv[0] == "bounds"
