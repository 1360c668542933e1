"""Every subcommand given a broken input or output: one line on stderr, exit 2, nothing left
behind (issue 23). Commands run in-process through ``magnetohom.cli.main``, except the
read-only cases, which need a user whose permissions are enforced (not root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from magnetohom.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _fails(capsys, argv: list[str], match: str) -> str:
    """``main(argv)`` exits 2 with one line on stderr that contains ``match``."""
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith(f"magnetohom {argv[0]}: error: "), err
    assert match in err[0], err
    return err[0]


@pytest.fixture
def afile(tmp_path) -> Path:
    path = tmp_path / "afile"
    path.write_text("not a directory\n")
    return path


@pytest.mark.parametrize("command", ["bounds", "homogenize", "predict"])
def test_empty_npy_is_one_line(capsys, tmp_path, command):
    empty = tmp_path / "empty.npy"
    empty.touch()
    model = ["--model", "default"] if command == "predict" else []  # a shipped model
    _fails(capsys, [command, str(empty), *model], "empty.npy")


@pytest.mark.parametrize("command", ["bounds", "homogenize"])
def test_directory_as_image_is_named(capsys, tmp_path, command):
    """Was 'no such file' (or 'unsupported format')."""
    (tmp_path / "img.npy").mkdir()
    _fails(capsys, [command, str(tmp_path / "img.npy")], "is a directory")


def test_generate_does_not_overwrite_silently(capsys, tmp_path):
    out = tmp_path / "sve.npy"
    np.save(out, np.zeros((4, 4), bool))
    before = out.read_bytes()
    gen = ["generate", "--vf", "0.3", "--size", "32", "--radius", "3", "--seed", "1"]
    _fails(capsys, [*gen, "-o", str(out)], "--overwrite")
    assert out.read_bytes() == before
    assert main([*gen, "-o", str(out), "--overwrite"]) == 0
    assert np.load(out).shape == (32, 32)
    sves = tmp_path / "sves"
    assert main([*gen, "-n", "2", "-o", str(sves)]) == 0
    _fails(capsys, [*gen, "-n", "2", "-o", str(sves)], "sve_0000.npy exists (and 1 more)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sve.npy", "sves"]


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "--vf", "0.3", "--size", "32", "--radius", "3", "-o", "{f}/x.npy"],
        ["generate", "--vf", "0.3", "--size", "32", "--radius", "3", "-n", "2", "-o", "{f}/s"],
        ["evaluate", "default", "data.h5", "-o", "{f}"],
        ["evaluate", "default", "data.h5", "-o", "{f}/figs"],
        ["ensemble", "-o", "{f}", "a", "b"],
        ["ensemble", "-o", "{f}/e", "a", "b"],
        ["train", "data.h5", "-o", "{f}"],
        ["train", "data.h5", "-o", "{f}/m"],
        ["macro", "--demo", "shield", "--provider", "analytic", "-o", "{f}"],
        ["macro", "--demo", "shield", "--provider", "analytic", "-o", "{f}/out"],
        ["study", "quick", "-o", "{f}"],
        ["study", "quick", "-o", "{f}/s"],
    ],
)
def test_output_that_is_or_lies_under_a_file(capsys, afile, argv):
    """Checked before any work (evaluate printed a warning first, macro tracebacked)."""
    argv = [a.replace("{f}", str(afile)) for a in argv]
    _fails(capsys, argv, str(afile))
    assert afile.read_text() == "not a directory\n"


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["train", "data.h5", "-o", "m", "--learning-rate", "nan"], "learning rate"),
        (["train", "data.h5", "-o", "m", "--epochs", "0"], "epochs"),
        (["train", "data.h5", "-o", "m", "--max-samples", "-1"], "max_samples"),
        (["train", "data.h5", "-o", "m", "--option", "filters=[16,"], "not valid JSON"),
        (["calibrate-general", "m", "data.h5", "--size-edges", "1x2"], "--size-edges must be"),
        (["calibrate-general", "m", "data.h5", "--size-edges", "200,100"], "size edges must be"),
        (["calibrate-general", "m", "data.h5", "--contrast-edges", "a"], "--contrast-edges"),
        (["train-general", "m", "data.h5", "--interpolate", "0.5"], "needs --init"),
        (["train-general", "m", "data.h5", "--interpolate", "0"], "--interpolate must be"),
        (["train-general", "m", "data.h5", "--interpolate", "nan"], "--interpolate must be"),
        (["dataset-mixed", "d.h5", "-n", "2", "--min-log10-contrast", "-1"], "--min-log10"),
    ],
)
def test_bad_training_arguments(capsys, tmp_path, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.h5").write_bytes(b"")  # never read: the numbers are checked first
    _fails(capsys, argv, match)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5"]


def test_binary_study_config(capsys, tmp_path):
    config = tmp_path / "config.toml"
    config.write_bytes(bytes(range(256)))
    _fails(capsys, ["study", str(config)], "not a text")


def test_homogenize_table_columns_never_touch(capsys, tmp_path):
    image = np.zeros((16, 16), bool)
    image[:8] = True
    path = tmp_path / "layers.npy"
    np.save(path, image)
    assert main(["homogenize", str(path), "--mu-inclusion", "2e6"]) == 0
    head, row = capsys.readouterr().out.strip().splitlines()
    fields = row.split()
    assert len(fields) == len(head.split()) - 2  # "phase fractions", "CG its": two words
    assert float(fields[4]) == pytest.approx(2.0, rel=1e-5)  # harmonic mean across layers


def _as_nobody() -> list[str] | None:
    """A command prefix that runs as an unprivileged user (root ignores permission bits)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def shared_tmp():
    """A temporary directory the unprivileged user can reach (pytest's own is private)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="magnetohom-ro-"))
    path.chmod(0o777)
    yield path
    for p in path.rglob("*"):
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


_WRITERS = [
    ["generate", "--vf", "0.3", "--size", "32", "--radius", "3", "-o", "{ro}/x.npy"],
    ["generate", "--vf", "0.3", "--size", "32", "--radius", "3", "-n", "2", "-o", "{ro}/s"],
    ["dataset", "{ro}/new.h5", "-n", "4", "--size", "32", "--radius", "2"],
    ["train", "{data}", "-o", "{ro}/m", "--epochs", "1"],
    ["ensemble", "-o", "{ro}/e", "default", "default"],
    ["evaluate", "default", "{data}", "-o", "{ro}/figs"],
    ["macro", "--demo", "shield", "--size", "tiny", "--provider", "analytic", "-o", "{ro}/m"],
    ["study", "quick", "-o", "{ro}/study"],
]


@pytest.mark.slow
@pytest.mark.parametrize("argv", _WRITERS, ids=lambda a: "-".join(a[:2]))
def test_read_only_output_directory(shared_tmp, argv):
    """All writing subcommands: one line, exit 2, nothing written (was a traceback)."""
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("running as root without setpriv: permissions are not enforced")
    ro = shared_tmp / "ro"
    ro.mkdir()
    data = shared_tmp / "data.h5"
    data.write_bytes(b"")
    home = shared_tmp / "home"
    home.mkdir()
    home.chmod(0o777)
    ro.chmod(0o555)
    argv = [a.replace("{ro}", str(ro)).replace("{data}", str(data)) for a in argv]
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "magnetohom.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=shared_tmp,
        timeout=300,
    )
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(err) == 1 and f"magnetohom {argv[0]}: error:" in err[0], err
    assert str(ro) in err[0] and ("not writable" in err[0] or "permission" in err[0]), err
    assert "cannot read" not in err[0] and "No such" not in err[0], err
    assert list(ro.iterdir()) == []


@pytest.mark.slow
def test_finished_dataset_on_read_only_directory_resumes(shared_tmp):
    """A complete dataset was 'corrupt or not an HDF5 file' when it could not be opened r+."""
    from micro.dataset import generate_dataset

    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("running as root without setpriv: permissions are not enforced")
    ro = shared_tmp / "ro"
    ro.mkdir()
    opts = ["-n", "3", "--size", "32", "--radius", "2", "--seed", "4"]
    generate_dataset(ro / "d.h5", n_samples=3, size=32, radius=2.0, base_seed=4)
    (ro / "d.h5").chmod(0o444)
    ro.chmod(0o555)
    env = dict(os.environ, HOME=str(shared_tmp), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "magnetohom.cli", "dataset", str(ro / "d.h5"), *opts],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3/3 samples done, 0 new" in proc.stdout


def test_root_logger_lowered_by_a_library_does_not_leak_info_lines():
    """setuptools (building FFCx forms) set the root logger to INFO: 'INFO root: running
    build_ext' and gcc lines filled the demo's output."""
    code = (
        "import logging; from magnetohom.quiet import set_up_logging; set_up_logging(0); "
        "logging.root.setLevel(logging.INFO); logging.info('running build_ext'); "
        "logging.getLogger('x').warning('kept')"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.stderr.strip().splitlines() == ["WARNING x: kept"]


@pytest.mark.slow
def test_macro_with_cnn_prints_no_tensorflow_lines_and_refuses_a_foreign_resolution():
    """TensorFlow added 4 start-up lines to macro's stderr; --resolution 64 with a 256-px CNN
    was ignored without a word."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    argv = ["macro", "--demo", "shield", "--size", "tiny", "--provider", "cnn"]
    proc = subprocess.run(
        [sys.executable, "-m", "magnetohom.cli", *argv, "--resolution", "64"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "magnetohom macro: error: --resolution 64 does not fit provider cnn: its model takes "
        "SVEs of 256 px per side; leave --resolution out or choose a model of that size"
    ]


@pytest.mark.parametrize("mu", ["1e15", "1e16"])
def test_homogenize_at_extreme_contrast_is_one_line(capsys, tmp_path, mu):
    """1e15 gave mu11 3.19 instead of 1.97 with exit 0; 1e16 'coarsest level not PSD'."""
    image = np.zeros((16, 16), bool)
    image[4:9, 4:9] = True
    path = tmp_path / "sve.npy"
    np.save(path, image)
    _fails(capsys, ["homogenize", str(path), "--mu-inclusion", mu], "contrast")


_BAD_SIZE = "must be N (square/cubic cell) or N1xN2 or N1xN2xN3"


@pytest.mark.parametrize(
    ("size", "match"),
    [
        ("256x0", "every side of --size must be an integer >= 2: got 256x0"),
        ("2x256", "radius 8 too large for a cell of 2x256 pixels (diameter must be < the "
                  "smallest side, 2)"),
        ("12x", _BAD_SIZE),
        ("x12", _BAD_SIZE),
        ("12.5", _BAD_SIZE),
        ("256x12.5", _BAD_SIZE),
        ("abc", _BAD_SIZE),
        ("64x48x32x2", _BAD_SIZE),
        ("0", "--size must be an integer >= 2: got 0"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("n", ["1", "2"])
def test_generate_bad_rectangular_size_is_one_line_and_writes_nothing(capsys, tmp_path, size,
                                                                      match, n):  # fmt: skip
    out = tmp_path / ("sve.npy" if n == "1" else "sves")
    _fails(capsys, ["generate", "--vf", "0.3", "--size", size, "-n", n, "-o", str(out)], match)
    assert not any(tmp_path.iterdir())


def test_generate_size_sides_must_match_dim(capsys, tmp_path):
    gen = ["generate", "--vf", "0.3", "-o", str(tmp_path / "x.npy")]
    _fails(capsys, [*gen, "--size", "64x48x32", "--dim", "2"], "has 3 sides but --dim is 2")
    _fails(capsys, [*gen, "--size", "64x48", "--dim", "3"], "has 2 sides but --dim is 3")
    assert not any(tmp_path.iterdir())


def test_generate_rectangular_writes_its_shape(capsys, tmp_path):
    from micro.imageio import load_image

    gen = ["generate", "--vf", "0.3", "--radius", "3", "--seed", "2"]
    assert main([*gen, "--size", "64x32", "-o", str(tmp_path / "r.png")]) == 0
    assert load_image(tmp_path / "r.png").shape == (64, 32)
    assert main([*gen, "--size", "24x20x16", "-o", str(tmp_path / "r.npy")]) == 0  # 3D implied
    assert np.load(tmp_path / "r.npy").shape == (24, 20, 16)
    assert "vf=0.30" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("resolution", "match"),
    [("64x0", "--resolution must be >= 4: got 64x0"), ("12x", "--resolution must be N"),
     ("8.5", "--resolution must be N")],
)  # fmt: skip
def test_macro_bad_rectangular_resolution_is_one_line(capsys, tmp_path, resolution, match):
    out = tmp_path / "out"
    argv = ["macro", "--demo", "shield", "--size", "tiny", "--provider", "fe", "-o", str(out)]
    _fails(capsys, [*argv, "--resolution", resolution], match)
    assert not out.exists()
