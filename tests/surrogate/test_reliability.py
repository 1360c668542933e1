"""Bad inputs of the surrogate commands: one clear error, nothing silently wrong (issue 23)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import TINY

from magnetohom.errors import InputError
from surrogate.training import train


@pytest.fixture
def two_models(tiny_model, tiny_dataset, tmp_path):
    """Copies of the tiny model and of a second member trained with another seed."""
    a = tmp_path / "a"
    shutil.copytree(tiny_model.model_dir, a)
    b = train(
        tiny_dataset,
        out=tmp_path / "b",
        epochs=1,
        batch_size=16,
        options=TINY,
        seed=1,
        split_seed=0,
    )
    return a, b.model_dir


def test_ensemble_refuses_to_replace_another_model(two_models, tmp_path):
    from surrogate.bundle import merge_bundles

    a, b = two_models
    other = tmp_path / "other"
    shutil.copytree(a, other)
    (other / "PROVENANCE.md").write_text("how it was made\n")
    with pytest.raises(InputError, match="holds another model"):
        merge_bundles(other, [a, b])
    assert (other / "PROVENANCE.md").read_text() == "how it was made\n"
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not a model directory"):
        merge_bundles(junk, [a, b])
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        merge_bundles(afile, [a, b])
    # the same command again replaces its own output
    out = tmp_path / "ens"
    merge_bundles(out, [a, b])
    merge_bundles(out, [a, b])
    assert json.loads((out / "metadata.json").read_text())["ensemble"] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("keep", [0, 100, "half"])
def test_truncated_member_is_refused(two_models, tmp_path, keep):
    """A truncated .keras used to be packed into an ensemble (exit 0) or give 'File not found'."""
    from surrogate.bundle import load_bundle, merge_bundles

    a, b = two_models
    member = b / "model_0.keras"
    data = member.read_bytes()
    member.write_bytes(data[: len(data) // 2 if keep == "half" else keep])
    with pytest.raises(InputError, match="member file model_0.keras is truncated"):
        load_bundle(b)
    with pytest.raises(InputError, match="member file model_0.keras is truncated"):
        merge_bundles(tmp_path / "ens", [a, b])
    assert not (tmp_path / "ens").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ens")]


def test_bundle_is_named_as_the_user_knows_it(two_models):
    """Errors named the run of the shipped default model ('ens_x1b_x2c_x3b')."""
    from surrogate.registry import load_model

    a, _ = two_models
    from surrogate.bundle import load_bundle

    assert load_bundle(a).name == "a"
    assert load_model("default").name == "default"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs"),  # trained 200 epochs
        ({"epochs": -3}, "epochs"),
        ({"learning_rate": float("nan")}, "learning rate"),  # traceback
        ({"learning_rate": float("inf")}, "learning rate"),
        ({"batch_size": 0}, "batch size"),
        ({"max_samples": -1}, "max_samples"),  # dropped the last sample
        ({"max_samples": 0}, "max_samples"),
        ({"fine_tune_epochs": -1}, "fine_tune_epochs"),
    ],
)
def test_bad_training_numbers_are_refused_before_reading(tiny_dataset, tmp_path, kwargs, match):
    with pytest.raises(InputError, match=match):
        train(tiny_dataset, out=tmp_path / "m", **kwargs)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("filters=[16,", "not valid JSON"),
        ("stem=2.5.1", "not valid JSON"),
        ("=3", "KEY=VALUE"),
        ("stem", "KEY=VALUE"),
    ],
)
def test_malformed_option_is_refused(item, match):
    from surrogate.cli import _parse_options

    with pytest.raises(InputError, match=match):
        _parse_options([item])


def test_bare_word_option_is_a_string():
    from surrogate.cli import _parse_options

    assert _parse_options(["head=solve", "stem=2", "filters=[4, 8]"]) == {
        "head": "solve",
        "stem": 2,
        "filters": [4, 8],
    }


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"filters": "abc"}, "filters must be a list of integers"),
        ({"filters": 16}, "filters must be a list of integers"),
        ({"filters": [16, 2.5]}, "filters must be a list of integers"),
        ({"stem": 2.5}, "stem must be an integer"),
        ({"stem": "x"}, "stem must be an integer"),
        ({"l2": "x"}, "l2 must be a finite number"),
        ({"batch_norm": 1}, "batch_norm must be true or false"),
        ({"pool": 3}, "pool must be a string"),
    ],
)
def test_badly_typed_model_options_are_refused(options, match):
    from surrogate.models import model_options

    with pytest.raises(InputError, match=match):
        model_options("default", options)


def test_evaluate_refuses_data_of_other_phase_permeabilities(tiny_model, tiny_dataset, tmp_path):
    """Gave MAPE numbers with no word of the mismatch."""
    import h5py

    from surrogate.evaluation import evaluate

    other = tmp_path / "mu1000.h5"
    shutil.copy(tiny_dataset, other)
    with h5py.File(other, "r+") as f:
        f.attrs["mu_inclusion"] = 1000.0
    with pytest.raises(InputError, match="mu_inclusion 1000.*mu_inclusion 250"):
        evaluate(tiny_model.model_dir, other)


def test_non_finite_weights_are_refused(two_models):
    """Gave finite, near-constant predictions with empty flags."""
    import keras

    from surrogate.bundle import load_bundle

    _, b = two_models
    member = b / "model_0.keras"
    model = keras.saving.load_model(member, compile=False)
    weights = model.get_weights()
    weights[0] = np.full_like(weights[0], np.nan)
    model.set_weights(weights)
    member.unlink()
    model.save(member)
    with pytest.raises(InputError, match="model_0.keras has non-finite weights"):
        load_bundle(b)


def test_any_size_on_an_odd_side_names_the_stem():
    """An odd side for the spheres model (stem 2) was refused as 'only coarse-solve models'."""
    from surrogate.bundle import at_resolution, why_not_moves
    from surrogate.registry import load_model

    spheres = load_model("spheres")
    assert why_not_moves(spheres, 100) is None
    with pytest.raises(InputError, match=r"49 px is not a multiple of its stem \(2 px"):
        at_resolution(spheres, 49)
    assert "coarse-solve" in why_not_moves(load_model("fast"), 64)
