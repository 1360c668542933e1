"""Registry of pretrained models and the command line (exit code 2, one-line errors)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import TINY
from surrogate_helpers import write_dataset

from magnetohom.cli import main
from magnetohom.errors import InputError
from surrogate import registry
from surrogate.registry import available_models, load_model, resolve_model


def test_registry_names_and_paths(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "MODELS_DIR", tmp_path / "models")
    assert available_models() == {}
    with pytest.raises(InputError, match="pretrained model 'default' is not installed"):
        load_model(None)
    shutil.copytree(tiny_model.model_dir, tmp_path / "models" / "default")
    assert list(available_models()) == ["default"]
    assert load_model().dim == 2 and load_model("default").resolution == 32
    assert resolve_model(tiny_model.model_dir / "model_0.keras") == tiny_model.model_dir
    with pytest.raises(InputError, match="no such file"):
        resolve_model("nowhere/model.keras")


def test_corrupt_model_is_refused(tiny_model, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model.model_dir, bad)
    (bad / "model_0.keras").write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot read model"):
        load_model(bad)
    (bad / "metadata.json").write_text("{")
    with pytest.raises(InputError, match="cannot read model"):
        load_model(bad)


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_evaluate_predict(tiny_dataset, tiny_model, tiny_images, tmp_path, capsys):
    code, out, err = _run(
        capsys,
        "train",
        str(tiny_dataset),
        "-o",
        str(tmp_path / "m"),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--quiet",
        *[f"--option={k}={json.dumps(v)}" for k, v in TINY.items()],
    )
    assert code == 0, err
    assert "best validation loss" in out
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["command"].startswith(
        f"magnetohom train {tiny_dataset} -o {tmp_path / 'm'} --epochs 1"
    )
    code, out, err = _run(
        capsys,
        "evaluate",
        str(tiny_model.model_dir),
        str(tiny_dataset),
        "-o",
        str(tmp_path / "f"),
        "--json",
    )
    assert code == 0, err
    rep = json.loads(out)
    assert set(rep["mape_percent"]) == {"mu11", "mu22", "mu12"} and len(rep["figures"]) == 2
    np.save(tmp_path / "a.npy", tiny_images[0])
    np.save(tmp_path / "b.npy", tiny_images[1:3])
    code, out, err = _run(
        capsys,
        "predict",
        "--model",
        str(tiny_model.model_dir),
        str(tmp_path / "a.npy"),
        str(tmp_path / "b.npy"),
        "--json",
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 3 and {"file", "mu_eff", "spread", "flags"} <= set(lines[0])
    assert np.array(lines[0]["mu_eff"]).shape == (2, 2)
    code, out, err = _run(
        capsys, "predict", "--model", str(tiny_model.model_dir), str(tmp_path / "a.npy")
    )
    assert code == 0 and "mu_eff" in out
    imageio = pytest.importorskip("micro.imageio")  # 8-bit images: 0 = inclusion
    imageio.save_image(tmp_path / "a.png", tiny_images[0])
    code, out, err = _run(
        capsys, "predict", "--model", str(tiny_model.model_dir), str(tmp_path / "a.png"), "--json"
    )
    assert code == 0, err
    np.testing.assert_allclose(json.loads(out)["mu_eff"], lines[0]["mu_eff"], rtol=1e-9)


def test_cli_errors_are_one_line(tiny_model, tmp_path, capsys):
    np.save(tmp_path / "small.npy", np.zeros((16, 16), bool))
    unlabeled = write_dataset(tmp_path / "u.h5", np.zeros((4, 8, 8), bool), None)
    bad_model = tmp_path / "bad"
    shutil.copytree(tiny_model.model_dir, bad_model)
    (bad_model / "model_0.keras").write_bytes(b"\x00" * 10)
    cases = [
        (
            ("predict", "--model", str(tiny_model.model_dir), str(tmp_path / "small.npy")),
            "does not match",
        ),
        (("predict", "--model", str(bad_model), str(tmp_path / "small.npy")), "cannot read model"),
        (("train", str(unlabeled), "-o", str(tmp_path / "x")), "no label"),
        (("train", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "x")), "no such file"),
        (("evaluate", str(tiny_model.model_dir), str(unlabeled)), "no label"),
    ]
    for argv, needle in cases:
        code, out, err = _run(capsys, *argv)
        assert code == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1 and needle in err, err
        assert err.startswith(f"magnetohom {argv[0]}: error:")
