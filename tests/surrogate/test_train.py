"""Training end to end, checkpoints, transfer learning and ensembles (tiny sizes)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from conftest import TINY

from magnetohom.errors import InputError
from surrogate.data import held_out_rows, load_labeled
from surrogate.evaluation import evaluate
from surrogate.models import conv_layers
from surrogate.provider import CNNProvider
from surrogate.registry import load_model
from surrogate.training import train


def test_end_to_end(tiny_model, tiny_dataset, tiny_images, tmp_path):
    res = tiny_model
    out = res.model_dir
    assert {"metadata.json", "history.json", "model_0.keras"} <= {p.name for p in out.iterdir()}
    assert not (out / "checkpoints").exists()
    meta = json.loads((out / "metadata.json").read_text())
    for key in (
        "dim",
        "resolution",
        "mu_matrix",
        "mu_inclusion",
        "vf_range",
        "preset",
        "target",
        "split",
        "dataset",
        "command",
        "training",
        "model_options",
    ):
        assert key in meta, key
    assert meta["split"]["n_train"] + meta["split"]["n_val"] + meta["split"]["n_test"] == 80
    assert meta["components"] == ["mu11", "mu22", "mu12"]
    loss = res.history[0]["loss"]
    assert len(loss) == 5 and loss[-1] < loss[0]
    # load -> evaluate -> predict
    ev = evaluate(out, tiny_dataset)
    assert ev.split == "test" and ev.n == meta["split"]["n_test"]
    assert ev.mape.shape == (3,) and np.all(np.isfinite(ev.mape)) and ev.mape[0] < 50
    own = load_labeled(tiny_dataset)
    assert sorted(ev.rows) == held_out_rows(meta["split"], own.indices)["test"].tolist()
    assert "val_rows" not in meta["split"] and "/" not in meta["dataset"]["path"]
    mu = CNNProvider(out)(tiny_images[:5])
    assert mu.shape == (5, 2, 2) and mu.dtype == np.float64
    # figures
    from surrogate.plots import write_figures

    paths = write_figures(ev, tmp_path / "figs")
    assert [p.name for p in paths] == ["parity.png", "loss.png"] and all(
        p.stat().st_size > 1000 for p in paths
    )


def test_resume_after_interruption(tiny_dataset, tmp_path):
    kw = dict(epochs=2, batch_size=16, learning_rate=3e-3, options=TINY, seed=1)

    def stop_after_first(member, epoch, state):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_dataset, out=tmp_path / "m", on_epoch_end=stop_after_first, **kw)
    state = json.loads((tmp_path / "m/checkpoints/member_0/state.json").read_text())
    assert state["epoch"] == 1 and len(state["history"]["loss"]) == 1
    files = sorted(p.name for p in (tmp_path / "m/checkpoints/member_0").iterdir())
    assert files == ["best_1.npz", "model_1.keras", "state.json"]
    resumed = train(tiny_dataset, out=tmp_path / "m", **kw)
    assert resumed.resumed and resumed.epochs_run == (2,)
    straight = train(tiny_dataset, out=tmp_path / "ref", **kw)
    np.testing.assert_allclose(resumed.history[0]["loss"], straight.history[0]["loss"], rtol=1e-4)
    again = train(tiny_dataset, out=tmp_path / "m", **kw)  # complete: nothing to do
    assert not again.resumed and again.seconds == 0.0
    with pytest.raises(InputError, match="other settings"):
        train(tiny_dataset, out=tmp_path / "m", **{**kw, "epochs": 3})


def test_transfer_learning_freezes_conv_weights(tiny_model, other_dataset, tmp_path):
    res = train(
        other_dataset,
        out=tmp_path / "tl",
        init=tiny_model.model_dir,
        freeze="conv",
        epochs=2,
        batch_size=8,
        learning_rate=3e-3,
    )
    src, new = load_model(tiny_model.model_dir).members[0], load_model(res.model_dir).members[0]
    for a, b in zip(conv_layers(src), conv_layers(new)):
        for u, v in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(u, v)
    dense_changed = [
        not np.array_equal(src.get_layer(n).get_weights()[0], new.get_layer(n).get_weights()[0])
        for n in ("dense1", "raw")
    ]
    assert all(dense_changed)
    assert res.metadata["training"]["freeze"] == "conv" and res.metadata["preset"] == "default"
    # fine-tuning afterwards unfreezes: the checkpoint of the fine-tune epoch has new conv weights
    # (the final model keeps the best validation epoch, which may be the frozen one)
    changed = []

    def look(member, epoch, state):
        if epoch == 1:
            name = state["model_file"]
            ckpt = keras.saving.load_model(tmp_path / "ft/checkpoints/member_0" / name)
            kernel = conv_layers(ckpt)[0].get_weights()[0]
            changed.append(not np.array_equal(conv_layers(src)[0].get_weights()[0], kernel))

    ft = train(
        other_dataset,
        out=tmp_path / "ft",
        init=tiny_model.model_dir,
        freeze="conv",
        epochs=1,
        fine_tune_epochs=1,
        batch_size=8,
        on_epoch_end=look,
    )
    assert changed == [True]
    assert len(ft.history[0]["loss"]) == 2
    with pytest.raises(InputError, match="preset"):
        train(other_dataset, out=tmp_path / "x", init=tiny_model.model_dir, preset="paper")


def test_ensemble_and_paper_preset(tiny_dataset, tiny_images, tmp_path):
    ens = train(
        tiny_dataset, out=tmp_path / "ens", epochs=1, batch_size=16, options=TINY, ensemble=2
    )
    pred = CNNProvider(ens.model_dir, spread_threshold=None).predict(tiny_images[:4])
    assert np.all(pred.spread[:, 0, 0] > 0)
    paper = train(
        tiny_dataset,
        out=tmp_path / "paper",
        preset="paper",
        epochs=1,
        batch_size=16,
        options={"filters": [4, 4, 8, 8]},
    )
    assert paper.metadata["target"]["kind"] == "standardized-diagonal"
    assert paper.metadata["components"] == ["mu11", "mu22"]
    ev = evaluate(paper.model_dir, tiny_dataset)
    assert ev.components == ["mu11", "mu22"]


def test_ensemble_of_separate_runs(tiny_dataset, tiny_model, tiny_images, other_dataset, tmp_path):
    from magnetohom.cli import main
    from surrogate.bundle import merge_bundles

    second = train(
        tiny_dataset,
        out=tmp_path / "s1",
        epochs=1,
        batch_size=16,
        options=TINY,
        seed=1,
        split_seed=0,
    )
    out = tmp_path / "joined"
    assert main(["ensemble", "-o", str(out), str(tiny_model.model_dir), str(second.model_dir)]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["ensemble"] == 2 and meta["members"] == ["model_0.keras", "model_1.keras"]
    assert [s["command"] for s in meta["training"]["sources"]] == [
        tiny_model.metadata["command"],
        second.metadata["command"],
    ]
    assert len(json.loads((out / "history.json").read_text())["members"]) == 2
    x = tiny_images[:6]
    one = [CNNProvider(m.model_dir, spread_threshold=None).predict(x) for m in (tiny_model, second)]
    both = CNNProvider(out, spread_threshold=None).predict(x)
    rtol = 1e-6  # float32 networks, float64 tensors
    np.testing.assert_allclose(both.mu_eff, (one[0].mu_eff + one[1].mu_eff) / 2, rtol=rtol)
    half_gap = np.abs(one[0].mu_eff - one[1].mu_eff) / 2
    np.testing.assert_allclose(both.spread, half_gap, rtol=rtol, atol=1e-12)
    # members of other data, or a missing member file, are refused
    other = train(other_dataset, out=tmp_path / "o", epochs=1, batch_size=8, options=TINY)
    with pytest.raises(InputError, match="differ|other data"):
        merge_bundles(tmp_path / "bad", [tiny_model.model_dir, other.model_dir])
    with pytest.raises(InputError, match="at least two"):
        merge_bundles(tmp_path / "bad", [tiny_model.model_dir])
    with pytest.raises(InputError, match="one of its sources"):
        merge_bundles(second.model_dir, [tiny_model.model_dir, second.model_dir])
    (second.model_dir / "model_0.keras").unlink()
    with pytest.raises(InputError, match="member file model_0.keras is missing"):
        merge_bundles(tmp_path / "bad", [second.model_dir, tiny_model.model_dir])
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_loss_is_the_one_asked_for(tiny_dataset, loss, tmp_path):
    from surrogate.data import TargetTransform, load_labeled, split_indices

    res = train(tiny_dataset, out=tmp_path / loss, epochs=2, batch_size=16, options=TINY, loss=loss)
    meta = res.metadata
    assert meta["training"]["plan"]["loss"] == loss
    assert ("loss" in meta["fingerprint"]["plan"]) == (loss != "mse")  # mse: as before
    # the saved (best) weights reproduce the best validation loss with that loss function
    data = load_labeled(tiny_dataset)
    val = data.subset(split_indices(len(data), seed=0).val)
    y = TargetTransform.from_dict(meta["target"]).to_targets(val.mu_eff)
    out = np.asarray(load_model(res.model_dir).members[0](val.images[..., None], training=False))
    got = np.mean(np.abs(out - y)) if loss == "mae" else np.mean((out - y) ** 2)
    assert got == pytest.approx(res.best_val_loss[0], rel=1e-4)


def test_transfer_can_restart_named_layers(tiny_model, other_dataset, tmp_path):
    """``reinit``: the named layers keep the new model's initial weights, the rest is copied."""
    from surrogate.bundle import copy_layer_weights
    from surrogate.models import build_model

    bundle = load_model(tiny_model.model_dir)
    src = bundle.members[0]
    fresh = build_model(
        "default",
        dim=2,
        resolution=bundle.resolution,
        options=bundle.metadata["model_options"],
        rng=[5, 0, 0],
    )
    before = [w.copy() for w in fresh.get_layer("raw").get_weights()]
    copy_layer_weights(src, fresh, skip=("raw",))
    for u, v in zip(before, fresh.get_layer("raw").get_weights()):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(before[0], src.get_layer("raw").get_weights()[0])
    for a, b in zip(conv_layers(src), conv_layers(fresh)):
        for u, v in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(u, v)
    res = train(
        other_dataset, out=tmp_path / "r", init=tiny_model.model_dir, reinit=["raw"], epochs=1
    )
    assert res.metadata["fingerprint"]["reinit"] == ["raw"]
    with pytest.raises(InputError, match="no layer with weights named 'nope'"):
        train(other_dataset, out=tmp_path / "n", init=tiny_model.model_dir, reinit=["nope"])
    with pytest.raises(InputError, match="reinit needs an initial model"):
        train(other_dataset, out=tmp_path / "m", reinit=["raw"])


def test_bad_training_requests(tiny_dataset, tmp_path):
    with pytest.raises(InputError, match="freeze"):
        train(tiny_dataset, out=tmp_path / "a", freeze="conv")
    with pytest.raises(InputError, match="ensemble"):
        train(tiny_dataset, out=tmp_path / "a", ensemble=0)
    with pytest.raises(InputError, match="loss must be one of mse, mae"):
        train(tiny_dataset, out=tmp_path / "a", loss="huber")
    with pytest.raises(InputError, match="not installed"):
        train(tiny_dataset, out=tmp_path / "a", init="polydisperse-nonexistent")


def test_extra_training_data(tiny_dataset, tiny_model, tiny_images, other_dataset, tmp_path):
    """--extra-train: more samples for the training split; held-out splits stay the dataset's."""
    from surrogate_helpers import write_dataset

    from magnetohom.cli import main
    from surrogate.bundle import merge_bundles
    from surrogate.data import load_labeled

    other = load_labeled(other_dataset)
    # the extra file: the other class's 40 samples and a laminate of volume fraction 0.625,
    # beyond the dataset's range (layers normal to x_1: harmonic mean along 1, arithmetic along 2)
    laminate = np.zeros((1, 32, 32), np.uint8)
    laminate[0, :20] = 1
    f, mu_i = 20 / 32, 250.0
    mu_lam = np.diag([1 / (f / mu_i + (1 - f)), f * mu_i + (1 - f)])[None]
    extra_file = write_dataset(
        tmp_path / "more.h5",
        np.concatenate([other.images, laminate]),
        np.concatenate([other.mu_eff, mu_lam]),
    )
    out = tmp_path / "extra"
    opts = [f"{k}={json.dumps(v)}" for k, v in TINY.items()]
    argv = ["train", str(tiny_dataset), "-o", str(out), "--epochs", "1", "--batch-size", "16"]
    argv += [w for o in opts for w in ("--option", o)] + ["--extra-train", str(extra_file)]
    assert main([*argv, "--quiet"]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert "--extra-train" in meta["command"]
    base = tiny_model.metadata
    assert meta["split"] == base["split"]  # same held-out samples as without extra data
    [extra] = meta["dataset"]["extra_train"]
    assert extra["n_labeled"] == 41
    assert extra["sha256"] == meta["fingerprint"]["extra_train_sha256"][0]
    own = load_labeled(tiny_dataset)
    rows = held_out_rows(base["split"], own.indices)
    held = set(rows["val"].tolist()) | set(rows["test"].tolist())
    train_vf = own.volume_fraction[[r not in held for r in own.indices]]
    assert meta["vf_range"] == [train_vf.min(), f]  # the extra samples were trained on
    ev = evaluate(out, tiny_dataset)
    assert sorted(ev.rows) == rows["test"].tolist()
    with pytest.raises(InputError, match="was extra training data"):
        evaluate(out, extra_file)
    # an ensemble with a member trained without the extra file still refuses it
    joined = merge_bundles(tmp_path / "joined", [tiny_model.model_dir, out])
    with pytest.raises(InputError, match="was extra training data"):
        evaluate(joined, extra_file)

    def refused(path, match):
        with pytest.raises(InputError, match=match):
            train(tiny_dataset, out=tmp_path / "bad", epochs=1, options=TINY, extra_train=[path])

    refused(tiny_dataset, "is the dataset itself")
    labels = own.mu_eff[:10]
    refused(
        write_dataset(tmp_path / "mu.h5", own.images[:10], labels, mu_inclusion=100.0),
        "inclusion mu 100 does not match the dataset's 250",
    )
    refused(
        write_dataset(tmp_path / "px.h5", own.images[:10, ::2, ::2], labels),
        "resolution \\(px\\) 16 does not match the dataset's 32",
    )
    test_rows = np.isin(own.indices, rows["test"])
    leak = write_dataset(tmp_path / "leak.h5", own.images[test_rows][:3], own.mu_eff[test_rows][:3])
    refused(leak, "holds 3 image\\(s\\) of the dataset's validation/test split")
    assert not (tmp_path / "bad").exists()
