"""Nonlinear datasets (micro.dataset_nl): schema, labels, resume, MPI, command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from magnetohom.errors import InputError
from micro.dataset_io import load_dataset
from micro.dataset_nl import generate_nl_dataset, load_nl_dataset
from micro.nonlinear import NonlinearHomogenizer
from micro.phase_laws import MU0, ArctanLaw, LinearLaw

ROOT = Path(__file__).resolve().parents[2]
N, SIZE, RADIUS = 2, 32, 2.5
LAWS = dict(matrix_law=LinearLaw(1.0), inclusion_law=ArctanLaw(1000.0, 1.6))
OPTS = dict(size=SIZE, radius=RADIUS, vf_range=(0.3, 0.4), n_directions=2, n_magnitudes=3)


def _env() -> dict:
    env = dict(os.environ)
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMPI_MCA_rmaps_base_oversubscribe="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("nl") / "ref.h5"
    generate_nl_dataset(path, n_samples=N, base_seed=7, **LAWS, **OPTS)
    return path


def test_schema_labels_and_range(reference):
    ds = load_nl_dataset(reference)
    assert len(ds) == N
    K = 6
    assert ds.field.shape == (N, K, 2) and ds.tangent.shape == (N, K, 2, 2)
    assert ds.laws[1] == LAWS["inclusion_law"]
    # log strata of 0.01 .. 6 knee fields; the tangent is SPD; B . H > 0 (monotone law)
    mags = np.linalg.norm(ds.field, axis=2) / ds.knee_field[:, None]
    edges = 0.01 * 600 ** (np.arange(4) / 3)
    for j in range(3):
        assert np.all((mags[:, j::3] >= edges[j]) & (mags[:, j::3] <= edges[j + 1]))
    assert np.linalg.eigvalsh(ds.tangent).min() > 0
    assert np.all(np.einsum("nkd,nkd->nk", ds.field, ds.flux) > 0)
    # labels are the cell problem's, and the small-field mu_eff is the linear one
    nh = NonlinearHomogenizer((SIZE, SIZE))
    image = ds.base.images[1]
    laws = list(ds.laws)
    res = nh.solve(image, laws, ds.field[1, 4])
    np.testing.assert_allclose(res.B, ds.flux[1, 4], rtol=1e-7)
    lin = nh.solve(image, laws, np.zeros(2))
    np.testing.assert_allclose(ds.base.mu_eff[1], lin.tangent / MU0, rtol=1e-8)
    # the file is a linear dataset too
    assert load_dataset(reference).mu_eff.shape == (N, 2, 2)


def test_resume_and_mismatch(reference, tmp_path):
    s = generate_nl_dataset(reference, n_samples=N, base_seed=7, **LAWS, **OPTS)
    assert s.n_new == 0 and s.n_done == N
    with pytest.raises(InputError, match="inclusion_law"):
        generate_nl_dataset(
            reference,
            n_samples=N,
            base_seed=7,
            matrix_law=LinearLaw(1.0),
            inclusion_law=ArctanLaw(1000.0, 1.2),
            **OPTS,
        )
    with pytest.raises(InputError, match="both phase laws are linear"):
        generate_nl_dataset(
            tmp_path / "x.h5",
            n_samples=1,
            matrix_law=LinearLaw(1.0),
            inclusion_law=LinearLaw(9.0),
        )


def test_several_files_of_one_composite_are_joined(reference, tmp_path):
    """Files of other seeds join in order; the same samples twice, another law or other cells
    are one clear error each."""
    other = tmp_path / "other.h5"
    generate_nl_dataset(other, n_samples=1, base_seed=8, **LAWS, **OPTS)
    one, two = load_nl_dataset(reference), load_nl_dataset(other)
    both = load_nl_dataset([reference, other])
    assert len(both) == N + 1 and both.laws == one.laws
    np.testing.assert_array_equal(both.base.images, np.concatenate([one.base.images,
                                                                   two.base.images]))  # fmt: skip
    for name in ("field", "flux", "tangent", "coenergy", "knee_field"):
        np.testing.assert_array_equal(
            getattr(both, name), np.concatenate([getattr(one, name), getattr(two, name)])
        )
    np.testing.assert_array_equal(both.base.mu_eff[N:], two.base.mu_eff)
    with pytest.raises(InputError, match="repeats samples of"):
        load_nl_dataset([reference, other, reference])
    law = tmp_path / "law.h5"
    generate_nl_dataset(law, n_samples=1, base_seed=9, matrix_law=LinearLaw(1.0),
                        inclusion_law=ArctanLaw(1000.0, 1.2), **OPTS)  # fmt: skip
    with pytest.raises(InputError, match="inclusion_law"):
        load_nl_dataset([reference, law])
    with pytest.raises(InputError, match="no nonlinear dataset file"):
        load_nl_dataset([])


@pytest.mark.mpi
def test_mpirun_two_ranks_and_cli(reference, tmp_path):
    out = tmp_path / "mpi.h5"
    exe = str(Path(sys.executable).parent / "magnetohom")
    opts = (
        f"-n {N} --size {SIZE} --radius {RADIUS} --vf-min 0.3 --vf-max 0.4 --seed 7 "
        "--directions 2 --magnitudes 3 --inclusion-law arctan:1000,1.6"
    ).split()
    cmd = ["mpirun", "-n", "2", "--oversubscribe", exe, "dataset-nl", str(out), *opts]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"{N}/{N} samples done, {N} new" in proc.stdout and "on 2 ranks" in proc.stdout
    par, ser = load_nl_dataset(out), load_nl_dataset(reference)
    np.testing.assert_array_equal(par.base.images, ser.base.images)
    np.testing.assert_array_equal(par.field, ser.field)
    np.testing.assert_allclose(par.flux, ser.flux, rtol=1e-8)
    bad = subprocess.run(
        [exe, "dataset-nl", str(tmp_path / "b.h5"), "-n", "1", "--matrix-law", "arctan:1,2"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "mu_r > 1" in bad.stderr
