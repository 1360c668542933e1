"""``magnetohom study``: configs, the resumable stage graph, the report, and the quick study."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from magnetohom.errors import InputError
from magnetohom.study import Pipeline, Stage, load_config, load_state, parse_config
from magnetohom.study.config import SHIPPED, shipped_path

ROOT = Path(__file__).resolve().parents[2]


def _quick_dict() -> dict:
    return tomllib.loads(shipped_path("quick").read_text())


# -- configs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_parse(name):
    cfg = load_config(name)
    assert cfg.name == name
    assert [c.name for c in cfg.data2d.classes] == ["mono", "poly", "overlap", "overlap_poly"]
    assert set(cfg.transfer.presets) <= set(cfg.train.presets)
    # transfer classes get at most 20 % of the monodisperse samples (the paper's setting)
    mono = cfg.data2d.get("mono").n_samples
    assert all(cfg.data2d.get(c).n_samples <= 0.2 * mono for c in cfg.transfer.classes)


def test_paper_config_has_the_papers_sizes():
    cfg = load_config("paper")
    assert (cfg.data2d.resolution, cfg.data2d.radius) == (256, 8.0)
    assert cfg.data2d.get("mono").n_samples == 5500
    assert (cfg.data3d.resolution, cfg.data3d.radius, cfg.data3d.n_samples) == (101, 5.0, 2500)
    assert cfg.train.epochs_of("paper") is None  # the preset's own plan: 300 epochs
    assert cfg.transfer.epochs == 100


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["data2d"]["mono"].update(n_sample=5),
            r"unknown key\(s\) data2d\.mono\.n_sample",
        ),
        (lambda d: d["data2d"]["mono"].pop("n_samples"), r"missing key data2d\.mono\.n_samples"),
        (lambda d: d.update(extra={}), r"unknown key\(s\) extra"),
        (lambda d: d.pop("macro"), r"missing key macro"),
        (lambda d: d["data3d"].update(n_samples="many"), r"data3d\.n_samples must be an integer"),
        (lambda d: d["data3d"].update(n_samples=True), r"data3d\.n_samples must be an integer"),
        (lambda d: d["data2d"]["poly"].update(vf_range=[0.5, 0.1]), r"data2d\.poly\.vf_range"),
        (lambda d: d["train"].update(presets=["paper", "fancy"]), r"train\.presets"),
        (lambda d: d["train"]["epochs"].update(fancy=3), r"train\.epochs\.fancy"),
        (lambda d: d["learning_curve"].update(fractions=[0.5, 0.25]), r"learning_curve\.fractions"),
        (lambda d: d["learning_curve"].update(fractions=[0.001]), r"fewer than 10"),
        (lambda d: d["macro"].update(providers=["fe", "analytic"]), r"must include cnn"),
        (lambda d: d["macro"].update(demo="motor"), r"macro\.demo"),
        (lambda d: d["data2d"].update(radius=40.0), r"too large"),
        (
            lambda d: d["train"].update(presets=["default"]),
            r"unknown key\(s\) train\.epochs\.paper",
        ),
        (
            lambda d: d["train"].update(presets=["default"], epochs={"default": 2}),
            r"transfer\.presets",
        ),
    ],
)
def test_config_errors_name_the_key(edit, message):
    data = _quick_dict()
    edit(data)
    with pytest.raises(InputError, match=message):
        parse_config(data)


def test_load_config_errors(tmp_path):
    with pytest.raises(InputError, match="no config file nope.toml"):
        load_config("nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nname = 1")
    with pytest.raises(InputError, match="invalid TOML"):
        load_config(bad)


# -- the stage graph ----------------------------------------------------------------------------


def _toy(root: Path, log: list[str], *, b_param: int = 1, fail: set | None = None) -> Pipeline:
    """a -> b -> c, and d independent; each appends its name to ``log`` and writes a file."""

    def make(name: str, value):
        def run(ctx):
            log.append(name)
            if fail and name in fail:
                raise RuntimeError(f"{name} broke")
            inputs = {d: ctx.results[d]["value"] for d in ctx.stage.deps}
            ctx.path(f"out/{name}.txt").write_text(json.dumps(inputs))
            return {"value": value, "inputs": inputs}

        return run

    stages = [
        Stage("c", make("c", 3), {"k": 3}, ("b",), ("out/c.txt",)),
        Stage("a", make("a", 1), {"k": 1}, (), ("out/a.txt",)),
        Stage("b", make("b", b_param), {"k": b_param}, ("a",), ("out/b.txt",)),
        Stage("d", make("d", 4), {"k": 4}, (), ("out/d.txt",)),
    ]
    return Pipeline(stages, root)


def test_pipeline_runs_in_dependency_order_and_skips_done(tmp_path):
    log: list[str] = []
    pipe = _toy(tmp_path, log)
    assert pipe.order.index("a") < pipe.order.index("b") < pipe.order.index("c")
    pipe.run()
    assert sorted(log) == ["a", "b", "c", "d"]
    assert json.loads((tmp_path / "out/c.txt").read_text()) == {"b": 1}
    state = load_state(tmp_path)
    assert all(r["status"] == "done" for r in state["stages"].values())
    log.clear()
    steps = _toy(tmp_path, log).run()
    assert log == [] and {a for _, a in steps} == {"skip"}


def test_pipeline_reruns_what_a_change_touches(tmp_path):
    log: list[str] = []
    _toy(tmp_path, log).run()
    log.clear()
    pipe = _toy(tmp_path, log, b_param=7)
    assert [pipe.status(n) for n in ("a", "b", "c", "d")] == ["done", "stale", "stale", "done"]
    pipe.run()
    assert log == ["b", "c"]
    assert pipe.record("c")["result"]["inputs"] == {"b": 7}


def test_pipeline_missing_output_force_and_selection(tmp_path):
    log: list[str] = []
    _toy(tmp_path, log).run()
    (tmp_path / "out/d.txt").unlink()
    log.clear()
    _toy(tmp_path, log).run()
    assert log == ["d"]
    log.clear()
    pipe = _toy(tmp_path, log)
    pipe.run(force=["b"])  # forced b reruns; c's fingerprint is unchanged, so it is skipped
    assert log == ["b"]
    log.clear()
    pipe.run(select=["c"], force=["?"])  # patterns: all single-letter stages
    assert sorted(log) == ["a", "b", "c", "d"]
    with pytest.raises(InputError, match="matches no stage"):
        pipe.run(select=["train.*"])


def test_pipeline_selection_brings_missing_dependencies(tmp_path):
    log: list[str] = []
    pipe = _toy(tmp_path, log)
    assert [(n, a) for n, a in pipe.plan(["c"])] == [("a", "run"), ("b", "run"), ("c", "run")]
    pipe.run(["c"])
    assert log == ["a", "b", "c"] and pipe.status("d") == "todo"


def test_pipeline_failure_is_recorded_and_retried(tmp_path):
    log: list[str] = []
    with pytest.raises(RuntimeError, match="b broke"):
        _toy(tmp_path, log, fail={"b"}).run(["c"])
    rec = load_state(tmp_path)["stages"]["b"]
    assert rec["status"] == "failed" and "b broke" in rec["error"]
    log.clear()
    pipe = _toy(tmp_path, log)
    pipe.run(["c"])
    assert log == ["b", "c"]
    assert pipe.record("b")["attempts"] == 2


def test_pipeline_rejects_cycles_and_unknown_deps(tmp_path):
    run = lambda ctx: {}  # noqa: E731
    with pytest.raises(InputError, match="cycle"):
        Pipeline([Stage("x", run, deps=("y",)), Stage("y", run, deps=("x",))], tmp_path)
    with pytest.raises(InputError, match="unknown stage"):
        Pipeline([Stage("x", run, deps=("z",))], tmp_path)


_KILLED = """
import json, sys, time
from pathlib import Path
from magnetohom.study import Pipeline, Stage

root = Path(sys.argv[1])

def a(ctx):
    n = root / "a_runs"
    n.write_text(str(int(n.read_text()) + 1 if n.exists() else 1))
    ctx.path("a.txt").write_text("a")
    return {"ok": 1}

def b(ctx):
    part = ctx.path("b/partial.txt")
    seen = part.read_text() if part.exists() else ""
    part.write_text(seen + "x")
    if len(seen) == 0:
        (root / "b_started").write_text("1")
        time.sleep(120)  # killed here on the first attempt
    return {"resumed_from": seen}

Pipeline([Stage("a", a, {}, (), ("a.txt",)), Stage("b", b, {}, ("a",), ("b",))], root).run()
"""


def test_sigkill_mid_stage_then_resume(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(_KILLED))
    root = tmp_path / "study"
    proc = subprocess.Popen([sys.executable, str(script), str(root)], cwd=ROOT)
    deadline = time.monotonic() + 60
    while not (root / "b_started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "child did not start b"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert load_state(root)["stages"]["b"]["status"] == "running"
    subprocess.run([sys.executable, str(script), str(root)], cwd=ROOT, check=True, timeout=60)
    state = load_state(root)
    assert (root / "a_runs").read_text() == "1"  # a was not redone
    rec = state["stages"]["b"]
    assert rec["status"] == "done" and rec["attempts"] == 2
    assert rec["result"]["resumed_from"] == "x"  # b's partial output was kept for its resume


# -- the report ---------------------------------------------------------------------------------


def _synthetic_study(root: Path, cfg) -> dict:
    """A state file and arrays shaped like a real study's, with known numbers."""
    from magnetohom.study.stages import build_stages

    rng = np.random.default_rng(0)
    stages = build_stages(cfg)
    records, npz = {}, {}
    models, analytic = {}, {}
    for s in stages:
        name = s.name
        if name.startswith("data."):
            cls = name[5:]
            dim = 3 if cls == "spheres" else 2
            n = 12 if dim == 3 else 16
            (root / "results").mkdir(parents=True, exist_ok=True)
            imgs = rng.random((3,) + (n,) * dim) < 0.3
            np.savez(
                root / f"results/samples_{cls}.npz",
                images=imgs,
                volume_fraction=imgs.reshape(3, -1).mean(1),
            )
            res = {
                "class": cls,
                "samples": f"results/samples_{cls}.npz",
                "dim": dim,
                "resolution": n,
                "radius": 2.0 if "poly" not in cls else None,
                "radius_range": [1.0, 3.0] if "poly" in cls else None,
                "vf_measured": [0.05, 0.5],
                "n_samples": 40,
                "n_done": 40,
                "label_seconds_median": 0.01,
                "label_seconds_total": 0.4,
            }
        elif name.count(".") == 2 or name.startswith("lc."):
            kind = {"train": "mono", "transfer": "transfer", "scratch": "scratch", "lc": "lc"}
            parts = name.split(".")
            cls = "mono" if parts[0] == "lc" else parts[1]
            preset = "default" if parts[0] == "lc" else parts[2]
            k = "spheres" if cls == "spheres" else kind[parts[0]]
            res = {
                "model_dir": f"models/{name}",
                "kind": k,
                "class": cls,
                "preset": preset,
                "epochs_run": 5,
                "epochs_planned": 5,
                "train_seconds": 1.5,
                "n_train": 28,
                "n_val": 6,
                "n_test": 6,
                "n_labeled": 40,
                "history": {"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.6, 0.4]},
            }
            if not name.startswith("lc."):
                dim = 3 if cls == "spheres" else 2
                comps = ["mu11", "mu22", "mu33"][:dim] + (["mu12"] if preset == "default" else [])
                yt = rng.uniform(1.5, 20.0, (6, len(comps)))
                npz[f"{name}__y_true"], npz[f"{name}__y_pred"] = yt, yt * 1.0123
                mape = {c: 1.23 for c in comps}
                models[name] = {
                    "kind": k,
                    "class": cls,
                    "preset": preset,
                    "components": comps,
                    "mape": mape,
                    "r2": {c: 0.9876 for c in comps},
                    "mape_diag": 1.23,
                    "n_test": 6,
                }
                a = analytic.setdefault(
                    cls,
                    {
                        "n": 6,
                        "models": [],
                        "vf_edges": [0.05, 0.3, 0.5],
                        "bin_counts": [3, 3],
                        "binned": {},
                        "mape_diag": {},
                    },
                )
                if k in ("mono", "transfer", "spheres"):
                    a["models"].append(name)
                    a["binned"][name] = [1.0, 2.0]
                vf = np.linspace(0.05, 0.5, 6)
                npz[f"analytic__{cls}__vf"] = vf
                mu = np.zeros((6, dim, dim))
                mu[:, np.arange(dim), np.arange(dim)] = yt[:, :dim]
                npz[f"analytic__{cls}__mu_true"] = mu
                for e in (
                    "voigt",
                    "reuss",
                    "hs_lower",
                    "hs_upper",
                    "maxwell_garnett",
                    "self_consistent",
                ):
                    a["mape_diag"][e] = 12.5
                    a["binned"][e] = [10.0, None]
                    npz[f"analytic__{cls}__{e}"] = 1.0 + 10 * vf
        elif name == "evaluate":
            continue
        elif name == "inference":
            t = {
                "dim": 2,
                "resolution": 16,
                "n_images": 100,
                "n_fe": 3,
                "fe_setup_seconds": 0.1,
                "fe_seconds_per_sve": 0.02,
                "fe_seconds": 2.0,
                "models": {
                    p: {"seconds": 0.01, "sve_per_s": 1e4, "speedup_vs_fe": 200.0}
                    for p in cfg.train.presets
                },
            }
            res = {"2d": t, "3d": {**t, "dim": 3, "resolution": 12}}
        elif name == "macro":
            prov = {
                p: {
                    "energy_rel_error": 0.0 if p == "fe" else 0.004,
                    "qoi_rel_error": 0.002,
                    "l2_B_rel_error": 0.01,
                    "total_s": 2.0,
                    "speedup": 3.0,
                    "mu_evaluation_speedup": 9.0,
                    "timings_s": {
                        "sve_generation": 0.5,
                        "mu_evaluation": 1.0,
                        "coefficient_fill": 0.1,
                        "assembly": 0.1,
                        "solve": 0.2,
                        "postprocess": 0.1,
                    },
                }
                for p in ("fe", "cnn", "analytic")
            }
            res = {
                "demo": "shield",
                "size": "tiny",
                "n_quadrature_points": 318,
                "n_cells": 900,
                "sve_resolution": 16,
                "radius": 2.0,
                "model": "models/x",
                "reference": "fe",
                "qoi_name": "shielding_factor",
                "mesh_seconds": 0.5,
                "providers": prov,
            }
        else:
            continue
        records[name] = {"status": "done", "seconds": 2.5, "attempts": 1, "run": 0, "result": res}
    lc = [
        {
            "stage": n,
            "n_train": 7 * (k + 1),
            "n_labeled": 10 * (k + 1),
            "n_eval": 5,
            "mape_diag": 3.0 / (k + 1),
            "mape": [3.0, 3.0],
            "r2": [0.9, 0.9],
            "epochs_run": 5,
            "train_seconds": 1.0,
        }
        for k, n in enumerate(["lc.0.125", "lc.0.25", "train.mono.default"])
    ]
    np.savez(root / "results/evaluate.npz", **npz)
    records["evaluate"] = {
        "status": "done",
        "seconds": 1.0,
        "attempts": 1,
        "run": 0,
        "result": {
            "models": models,
            "analytic": analytic,
            "learning_curve": lc,
            "arrays": "results/evaluate.npz",
        },
    }
    env = {
        "date": "2026-01-01",
        "host": "h",
        "cpu": "cpu",
        "cores": 2,
        "cores_usable": 2,
        "memory_gib": 8.0,
        "gpus": [],
        "versions": {"tensorflow": "2"},
        "git": "abc",
        "command": "magnetohom study quick",
    }
    state = {
        "format": "magnetohom-study-state",
        "version": 1,
        "stages": records,
        "runs": [{"info": {"environment": env, "config": cfg.to_dict()}}],
    }
    (root / "state.json").write_text(json.dumps(state))
    return state


_NUMBER = re.compile(r"(?<![\w.])-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?(?![\w.])", re.I)


def check_report(root: Path) -> str:
    """Every section and figure present, every number in report.md and results.json finite."""
    from magnetohom.study.report import TABLES, check_finite, expected_figures

    state = load_state(root)
    results = {n: r["result"] for n, r in state["stages"].items() if r.get("status") == "done"}
    md = (root / "report" / "report.md").read_text()
    for title in TABLES:
        assert f"## {title}\n" in md, title
        body = md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
        assert "Not part of this study" not in body, title
    figs = expected_figures(results)
    assert len(figs) == 11
    for name in figs:
        assert (root / "report" / name).stat().st_size > 1000, name
        assert f"]({name})" in md, name
    assert not re.search(r"\b(nan|inf)\b", md, re.I)
    table_lines = [line for line in md.splitlines() if line.startswith("| ")]
    numbers = [float(x) for line in table_lines for x in _NUMBER.findall(line)]
    assert len(numbers) > 100 and all(math.isfinite(x) for x in numbers)
    summary = json.loads((root / "report" / "results.json").read_text())
    assert check_finite(summary)
    return md


def test_report_from_synthetic_results(tmp_path):
    from magnetohom.study.report import write_report

    cfg = load_config("quick")
    _synthetic_study(tmp_path, cfg)
    files = write_report(tmp_path)
    assert all(p.exists() for p in files)
    md = check_report(tmp_path)
    # our numbers and the paper's, side by side
    t2 = md.split("## Table 2")[1].split("## ")[0]
    assert "| *paper* (paper, Table 2 and Sec. 5.1.1) | 1.00 | 1.00 | 0.9940 | 0.9910 |" in t2
    assert "| ours, preset `paper` | 1.23 | 1.23 | 0.9876 | 0.9876 |" in t2
    t4 = md.split("## Table 4")[1].split("## ")[0]
    assert "| 6.00 | 5.50 | 0.9700 | 0.9700 |" in t4  # paper, Table 4, scratch
    assert t4.count("| ours |") == 4 * len(cfg.transfer.classes)
    assert "| Hashin–Shtrikman lower | 12.50 |" in md


def test_report_writes_a_nan_as_nan(tmp_path):
    from magnetohom.study.report import check_finite, write_report

    state = _synthetic_study(tmp_path, load_config("quick"))
    state["stages"]["evaluate"]["result"]["models"]["train.mono.paper"]["mape"]["mu11"] = math.nan
    (tmp_path / "state.json").write_text(json.dumps(state))
    write_report(tmp_path, figures=False)
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| ours, preset `paper` | nan | 1.23 |" in md
    assert not check_finite(json.loads((tmp_path / "report" / "results.json").read_text()))
    assert not list((tmp_path / "report").glob("*.png"))


def test_cli_lists_stages_and_reports_bad_config(tmp_path, capsys):
    from magnetohom.cli import main

    assert main(["study", "quick", "-o", str(tmp_path / "s"), "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in out]
    assert names[0] == "data.mono" and names[-1] == "report"
    assert {
        "train.mono.paper",
        "transfer.poly.default",
        "scratch.overlap.paper",
        "lc.0.25",
        "train.spheres.default",
        "evaluate",
        "inference",
        "macro",
    } <= set(names)
    assert all(line.split()[1] == "todo" for line in out)
    assert main(["study", "missing.toml"]) == 2
    assert "no config file missing.toml" in capsys.readouterr().err


def _tiny_config(**study):
    data = _quick_dict()
    data["study"].update(study)
    data["data2d"].update(resolution=16, radius=2.0, radius_range=[1.0, 2.0])
    data["data2d"]["mono"]["n_samples"] = 24
    data["learning_curve"]["fractions"] = [0.5]
    return parse_config(data)


@pytest.mark.mpi
@pytest.mark.skipif(shutil.which("mpirun") is None, reason="no mpirun")
def test_dataset_stage_on_two_ranks_equals_serial(tmp_path):
    from magnetohom.study import run_study
    from magnetohom.study.stages import _class_params
    from micro.dataset import generate_dataset
    from micro.dataset_io import load_dataset

    cfg = _tiny_config(ranks=2)
    pipe = run_study(cfg, tmp_path / "s", stages=["data.mono"], command=["test"])
    assert pipe.status("data.mono") == "done" and pipe.status("train.mono.paper") == "todo"
    res = pipe.record("data.mono")["result"]
    assert (res["ranks"], res["n_done"], res["n_new"]) == (2, 24, 24)
    serial = tmp_path / "serial.h5"
    generate_dataset(serial, progress=False, **_class_params(cfg, "mono"))
    a, b = load_dataset(tmp_path / "s" / "data" / "mono.h5"), load_dataset(serial)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_allclose(a.mu_eff, b.mu_eff, rtol=1e-12)
    # the samples of the figures were written from the same file
    with np.load(tmp_path / "s" / res["samples"]) as f:
        assert f["images"].shape == (3, 16, 16)
        np.testing.assert_array_equal(f["images"], a.images[np.searchsorted(a.index, f["rows"])])


# -- the quick study, end to end ----------------------------------------------------------------


@pytest.mark.slow
def test_quick_study_end_to_end(tmp_path):
    """The shipped ``quick`` config, run for real: completeness of the report, not accuracy."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = tmp_path / "quick"
    cmd = [sys.executable, "-m", "magnetohom.cli", "study", "quick", "-o", str(out)]
    subprocess.run(cmd, cwd=tmp_path, env=env, check=True, timeout=3600)
    check_report(out)
    # afterwards every stage is done: a second run would skip them all
    proc = subprocess.run(
        [*cmd, "--list"], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    )
    assert all(line.split()[1] == "done" for line in proc.stdout.splitlines())
