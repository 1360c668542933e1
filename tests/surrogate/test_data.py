"""Reading dataset files, the split and the target transforms."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from surrogate_helpers import write_dataset

from magnetohom.errors import InputError
from surrogate.data import (
    TargetTransform,
    concat_labeled,
    held_out_rows,
    image_digests,
    load_labeled,
    rows_digest,
    split_indices,
)


def _plausible(images: np.ndarray, w: float, mu_i: float = 250.0) -> np.ndarray:
    """Isotropic labels a fraction ``w`` of the way from the Reuss to the Voigt bound."""
    f = images.reshape(len(images), -1).mean(axis=1)
    lower, upper = 1 / (f / mu_i + (1 - f)), f * mu_i + (1 - f)
    return (lower + w * (upper - lower))[:, None, None] * np.eye(images.ndim - 1)


def test_only_finished_finite_samples_are_used(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((6, 8, 8)) < 0.3
    mu = np.stack([np.eye(2) * (1.5 + i) for i in range(6)])
    mu[2] = np.nan
    done = np.array([1, 1, 1, 0, 1, 1], bool)
    # a finished row with a NaN label is a damaged file, not a sample to skip (issue 23)
    with pytest.raises(InputError, match="row 2: label mu_eff is not finite"):
        load_labeled(write_dataset(tmp_path / "nan.h5", images, mu, done=done))
    done[2] = False
    path = write_dataset(tmp_path / "d.h5", images, mu, done=done)
    data = load_labeled(path)
    assert list(data.indices) == [0, 1, 4, 5]
    assert data.images.dtype == np.uint8 and data.images.shape == (4, 8, 8)
    np.testing.assert_array_equal(data.images, images[[0, 1, 4, 5]])
    np.testing.assert_allclose(data.volume_fraction, images[[0, 1, 4, 5]].mean(axis=(1, 2)))
    assert (data.dim, data.resolution, data.mu_inclusion) == (2, 8, 250.0)
    assert data.attrs["geometry"]["class"] == "test-disks"
    assert len(load_labeled(path, max_samples=2)) == 2


def test_labeled_data_of_two_files_join(tmp_path):
    rng = np.random.default_rng(1)
    a_img, b_img = rng.random((4, 8, 8)) < 0.3, rng.random((3, 8, 8)) < 0.6
    a_mu, b_mu = _plausible(a_img, 0.1), _plausible(b_img, 0.2)  # within the Wiener bounds
    a = load_labeled(write_dataset(tmp_path / "a.h5", a_img, a_mu))
    b = load_labeled(write_dataset(tmp_path / "b.h5", b_img, b_mu))
    ab = concat_labeled([a, b])
    assert len(ab) == 7 and ab.path == a.path and ab.n_total == 7
    np.testing.assert_array_equal(ab.images, np.concatenate([a_img, b_img]))
    np.testing.assert_array_equal(ab.indices, [0, 1, 2, 3, 0, 1, 2])
    np.testing.assert_allclose(ab.mu_eff[4:], b_mu)
    np.testing.assert_allclose(ab.volume_fraction[4:], b_img.mean(axis=(1, 2)))
    assert concat_labeled([a]) is a
    c = load_labeled(
        write_dataset(tmp_path / "c.h5", a_img[:, ::2, ::2], _plausible(a_img[:, ::2, ::2], 0.1))
    )
    with pytest.raises(InputError, match=r"images of shape \(4, 4\) do not join"):
        concat_labeled([a, c])
    with pytest.raises(InputError, match="nothing to join"):
        concat_labeled([])
    # equal images, equal digests; one pixel changed, another digest
    d = image_digests(np.concatenate([a.images, a.images[:1]]))
    assert d[0] == d[4] and len(set(d[:4])) == 4
    flipped = a.images[:1].copy()
    flipped[0, 0, 0] ^= 1
    assert image_digests(flipped)[0] != d[0]


def test_unlabeled_or_foreign_files_are_refused(tmp_path):
    images = np.zeros((3, 8, 8), bool)
    with pytest.raises(InputError, match="no label"):
        load_labeled(write_dataset(tmp_path / "u.h5", images, None))
    with h5py.File(tmp_path / "other.h5", "w") as fh:
        fh["x"] = [1]
    with pytest.raises(InputError, match="magnetohom dataset"):
        load_labeled(tmp_path / "other.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InputError, match="cannot read dataset|unreadable"):
        load_labeled(tmp_path / "text.h5")
    with pytest.raises(FileNotFoundError):
        load_labeled(tmp_path / "absent.h5")


def test_split_is_deterministic_and_disjoint():
    s = split_indices(100, seed=3)
    assert (s.train.size, s.val.size, s.test.size) == (70, 15, 15)
    assert len(set(s.train) | set(s.val) | set(s.test)) == 100
    t = split_indices(100, seed=3)
    assert all(
        np.array_equal(a, b) for a, b in zip((s.train, s.val, s.test), (t.train, t.val, t.test))
    )
    assert not np.array_equal(s.test, split_indices(100, seed=4).test)
    d = s.to_dict(np.arange(100) * 2)
    assert d["n_test"] == 15 and d["test_rows_sha256"] == rows_digest(2 * s.test)
    assert "test_rows" not in d  # digests, not 15 % of the file's rows (issue 23)
    held = held_out_rows(d, np.arange(100) * 2)
    np.testing.assert_array_equal(held["test"], 2 * s.test)
    np.testing.assert_array_equal(held["val"], 2 * s.val)
    with pytest.raises(InputError, match="do not match"):
        held_out_rows({**d, "seed": 4}, np.arange(100) * 2)
    legacy = {"val_rows": [1, 2], "test_rows": [3]}  # models saved before issue 23
    assert held_out_rows(legacy, np.arange(10))["test"].tolist() == [3]
    with pytest.raises(InputError):
        split_indices(2, seed=0)


@pytest.mark.parametrize("dim", [2, 3])
def test_target_transforms_round_trip(dim):
    rng = np.random.default_rng(dim)
    b = rng.normal(size=(10, dim, dim))
    mu = b @ np.swapaxes(b, 1, 2) + 2.0 * np.eye(dim)
    logt = TargetTransform.fit("log-mandel", mu)
    y = logt.to_targets(mu)
    assert y.dtype == np.float32 and y.shape == (10, 3 if dim == 2 else 6)
    np.testing.assert_allclose(logt.to_tensors(y), mu, rtol=1e-5)
    diag = TargetTransform.fit("standardized-diagonal", mu)
    z = diag.to_targets(mu)
    assert z.shape == (10, dim)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-5)
    back = diag.to_tensors(z)
    np.testing.assert_allclose(
        np.diagonal(back, axis1=1, axis2=2), np.diagonal(mu, axis1=1, axis2=2), rtol=1e-5
    )
    assert TargetTransform.from_dict(diag.to_dict()) == diag
    with pytest.raises(InputError):
        TargetTransform.fit("raw", mu)
