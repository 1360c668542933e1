"""Property-based checks (hypothesis) of the image readers, the material options and the
dataset writer: random shapes, dtypes, contents, truncations and permission bits. Whatever
the input, the result is either right or an :class:`InputError`; never another exception,
never a silently wrong value (issue 23)."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from magnetohom.errors import InputError
from micro.imageio import load_image, save_image

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

DTYPES = st.sampled_from(
    [np.bool_, np.uint8, np.int8, np.int16, np.int64, np.float32, np.float64, np.complex64]
)


def _valid_binary(arr: np.ndarray) -> bool:
    shape = arr.shape  # rectangular cells are images too (square pixels)
    if arr.ndim not in (2, 3) or min(shape) == 0:
        return False
    if np.iscomplexobj(arr):
        return False
    if arr.dtype == bool:
        return True
    with np.errstate(invalid="ignore"):
        return bool(np.all((arr == 0) | (arr == 1)))


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="magnetohom-prop-") as d:
        yield Path(d)


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(DTYPES))
    ndim = draw(st.integers(1, 4))
    side = draw(st.integers(0, 6))
    square = draw(st.booleans())
    shape = tuple([side] * ndim) if square else tuple(draw(st.integers(0, 6)) for _ in range(ndim))
    binary = draw(st.booleans())
    if binary or dtype.kind == "b":
        elements = st.booleans() if dtype.kind == "b" else st.sampled_from([0, 1])
    elif dtype.kind == "f":
        elements = st.sampled_from([0.0, 1.0, 0.5, -1.0, 255.0, math.nan, math.inf])
    elif dtype.kind == "c":
        elements = st.sampled_from([0, 1, 1j])
    else:
        elements = st.sampled_from([0, 1, 2, 255 if dtype.itemsize > 1 or dtype.kind == "u" else 7])
    return draw(hnp.arrays(dtype, shape, elements=elements))


@SETTINGS
@given(arr=arrays())
def test_npy_reader_is_right_or_refuses(workdir, arr):
    path = workdir / "a.npy"
    np.save(path, arr)
    if _valid_binary(arr):
        np.testing.assert_array_equal(load_image(path), arr != 0)
    else:
        with pytest.raises(InputError):
            load_image(path)


@SETTINGS
@given(arr=arrays(), cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_npy_is_refused(workdir, arr, cut):
    assume(arr.nbytes > 0)
    path = workdir / "t.npy"
    np.save(path, arr)
    data = path.read_bytes()
    path.write_bytes(data[: int(cut * len(data))])
    with pytest.raises(InputError):
        load_image(path)


@SETTINGS
@given(
    dim=st.sampled_from([2, 3]),
    side=st.integers(1, 9),
    suffix=st.sampled_from([".npy", ".png", ".tif"]),
    data=st.data(),
)
def test_written_images_read_back_identical(workdir, dim, side, suffix, data):
    assume(not (suffix == ".png" and dim == 3))
    image = data.draw(hnp.arrays(np.bool_, (side,) * dim))
    path = save_image(workdir / f"img{suffix}", image)
    np.testing.assert_array_equal(load_image(path), image)
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".")] == []


@SETTINGS
@given(
    suffix=st.sampled_from([".npy", ".png", ".tif", ".tiff"]),
    blob=st.binary(max_size=600),
    keep=st.floats(0.0, 1.0),
)
def test_arbitrary_or_truncated_bytes_never_crash_the_readers(workdir, suffix, blob, keep):
    """Random bytes, or a valid file cut anywhere: an image or InputError, nothing else."""
    path = workdir / f"junk{suffix}"
    if keep < 0.5:
        path.write_bytes(blob)
    else:
        save_image(path, np.eye(8, dtype=bool))
        data = path.read_bytes()
        path.write_bytes(data[: int(keep * len(data))])
    try:
        out = load_image(path)
    except InputError:
        return
    assert out.dtype == bool and out.ndim in (2, 3) and min(out.shape) > 0


@SETTINGS
@given(mode=st.integers(0, 0o777))
def test_permission_bits_give_an_image_or_one_clear_error(workdir, mode):
    path = save_image(workdir / "perm.npy", np.eye(5, dtype=bool))
    path.chmod(mode)
    try:
        out = load_image(path)
    except (InputError, PermissionError):  # PermissionError: the CLI prints one line for it
        assert os.geteuid() != 0
    else:
        np.testing.assert_array_equal(out, np.eye(5, dtype=bool))
    finally:
        path.chmod(0o644)


# -- material options -------------------------------------------------------------------------

ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.floats(-10, 10), max_size=3),
)


@SETTINGS
@given(mu_m=ANY, mu_i=ANY)
def test_phase_permeabilities_are_checked(mu_m, mu_i):
    from micro.validate import MAX_CONTRAST, check_contrast, check_mu

    try:
        a, b = check_mu(mu_m, mu_i)
    except InputError:
        return
    assert isinstance(a, float) and isinstance(b, float)
    assert math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0
    try:
        contrast = check_contrast(a, b)
    except InputError:
        assert max(a, b) / min(a, b) > MAX_CONTRAST
    else:
        assert 1.0 <= contrast <= MAX_CONTRAST


@SETTINGS
@given(
    mu_m=ANY,
    mu_i=ANY,
    radius=ANY,
    resolution=ANY,
    seed=ANY,
    overlap=ANY,
    radius_range=st.one_of(st.none(), st.tuples(ANY, ANY), ANY),
)
def test_macro_material_options(mu_m, mu_i, radius, resolution, seed, overlap, radius_range):
    from macro.material import Material

    try:
        m = Material(
            0.3,
            mu_matrix=mu_m,
            mu_inclusion=mu_i,
            radius=radius,
            radius_range=radius_range,
            resolution=resolution,
            seed=seed,
            overlap=overlap,
        )
    except InputError:
        return
    for v in (m.mu_matrix, m.mu_inclusion, *(() if m.radius is None else (m.radius,))):
        assert isinstance(v, float) and math.isfinite(v) and v > 0
    assert m.resolution is None or (int(m.resolution) == m.resolution and m.resolution >= 4)
    assert int(m.seed) >= 0 and isinstance(m.overlap, bool | np.bool_)
    if m.radius_range is not None:
        assert 0 < m.radius_range[0] <= m.radius_range[1]


@SETTINGS
@given(
    n=ANY,
    size=st.one_of(ANY, st.integers(2, 300)),
    radius=ANY,
    vf=st.one_of(ANY, st.tuples(ANY, ANY), st.tuples(st.floats(0, 1), st.floats(0, 1))),
    mu_m=ANY,
    mu_i=ANY,
    seed=ANY,
)
def test_dataset_options(n, size, radius, vf, mu_m, mu_i, seed):
    """The options of a dataset are accepted as valid values or refused with InputError."""
    from micro.dataset import _check_options

    try:
        o = _check_options(
            n_samples=n, dim=2, size=size, radius=radius, radius_range=None, overlap=False,
            vf_range=vf, base_seed=seed, mu_matrix=mu_m, mu_inclusion=mu_i, rtol=None,
            log_every=10,
        )  # fmt: skip
    except InputError:
        return
    lo, hi = o["vf_range"]
    assert 0 < lo <= hi < 1 and o["n_samples"] >= 1 and o["base_seed"] >= 0
    assert 0.005 <= o["vf_tol"] <= 0.03


# -- dataset writer ---------------------------------------------------------------------------


def _spec(n: int, dim: int, res: int):
    from micro.dataset_io import DatasetSpec

    return DatasetSpec(
        n_samples=n,
        dim=dim,
        resolution=res,
        geometry={"class": "test"},
        vf_range=(0.1, 0.5),
        base_seed=0,
        mu_matrix=1.0,
        mu_inclusion=10.0,
        solver_rtol=1e-6,
    )


@st.composite
def written_files(draw):
    dim = draw(st.sampled_from([2, 3]))
    res = draw(st.integers(3, 6))
    n = draw(st.integers(1, 5))
    rows = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
    images = [draw(hnp.arrays(np.bool_, (res,) * dim)) for _ in rows]
    weights = [draw(st.floats(0.0, 1.0)) for _ in rows]
    return dim, res, n, rows, images, weights


def _label(image: np.ndarray, w: float) -> np.ndarray:
    f = image.mean()
    lower = 1.0 / (f / 10.0 + (1 - f) / 1.0)
    upper = f * 10.0 + (1 - f)
    return np.eye(image.ndim) * (lower + w * (upper - lower))


def _write(path: Path, case) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    from micro.dataset_io import DatasetFile

    dim, res, n, rows, images, weights = case
    spec = _spec(n, dim, res)
    written = {}
    with DatasetFile.open(
        path, spec, seeds=np.arange(n, dtype=np.int64), target_volume_fraction=np.full(n, 0.3)
    ) as w:
        for row, image, wt in zip(rows, images, weights):
            mu = _label(image, wt)
            w.write_sample(
                row, image=image, mu_eff=mu, iterations=np.ones(dim), seconds=0.1,
                volume_fraction=float(image.mean()),
            )  # fmt: skip
            written[row] = (image, mu)
    return written


@SETTINGS
@given(case=written_files(), mode=st.integers(0, 0o777))
def test_dataset_writer_round_trip(workdir, case, mode):
    from micro.dataset_io import load_dataset

    path = workdir / "w.h5"
    path.unlink(missing_ok=True)
    written = _write(path, case)
    path.chmod(mode)
    try:
        data = load_dataset(path, require_labels=False)
    except (InputError, PermissionError):
        assert os.geteuid() != 0
        return
    finally:
        path.chmod(0o644)
    assert sorted(written) == data.index.tolist()
    for k, row in enumerate(data.index.tolist()):
        np.testing.assert_array_equal(data.images[k], written[row][0])
        np.testing.assert_array_equal(data.mu_eff[k], written[row][1])
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".")] == []


@SETTINGS
@given(
    case=written_files(),
    where=st.floats(0.0, 1.0, exclude_max=True),
    length=st.integers(1, 64),
    truncate=st.booleans(),
)
def test_damaged_dataset_is_refused_or_read_unchanged(workdir, case, where, length, truncate):
    """Flip bytes anywhere, or truncate: load_dataset raises InputError or returns rows that
    are exactly those written (the row checksum catches changed labels)."""
    from micro.dataset_io import load_dataset

    path = workdir / "d.h5"
    path.unlink(missing_ok=True)
    written = _write(path, case)
    data = bytearray(path.read_bytes())
    start = int(where * len(data))
    if truncate:
        del data[start:]
    else:
        stop = min(start + length, len(data))
        data[start:stop] = bytes(b ^ 0xFF for b in data[start:stop])
    path.write_bytes(bytes(data))
    try:
        out = load_dataset(path, require_labels=False)
    except InputError:
        return
    for k, row in enumerate(out.index.tolist()):
        assert row in written
        np.testing.assert_array_equal(out.images[k], written[row][0])
        np.testing.assert_array_equal(out.mu_eff[k], written[row][1])
