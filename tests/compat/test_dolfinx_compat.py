"""magnetohom.dolfinx_compat: the one place for DOLFINx version differences and import order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import magnetohom.dolfinx_compat as dfx

import numpy as np
import pytest

from magnetohom.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    p
    for d in ("micro", "macro", "surrogate", "magnetohom", "bench", "demos", "tests")
    for p in sorted((ROOT / d).rglob("*.py"))
]
COMPAT = ROOT / "magnetohom" / "dolfinx_compat.py"
SOURCES.remove(Path(__file__).resolve())  # its patterns are no imports


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_every_dolfinx_user_imports_the_compat_module_first():
    """A module that imports DOLFINx, PETSc, dolfinx_mpc, basix or gmsh imports the compat
    module (ruff's isort section puts that import ahead of the third-party ones)."""
    uses = re.compile(r"^\s*(import|from)\s+(dolfinx|petsc4py|dolfinx_mpc|basix|gmsh)\b", re.M)
    compat = re.compile(
        r"^\s*(import magnetohom\.dolfinx_compat|from magnetohom\.dolfinx_compat)", re.M
    )
    missing = [
        _rel(p)
        for p in SOURCES
        if p != COMPAT and uses.search(p.read_text()) and not compat.search(p.read_text())
    ]
    assert missing == []
    assert len([p for p in SOURCES if uses.search(p.read_text())]) >= 8  # the scan sees them


def test_import_order_and_versions_live_in_one_module():
    """h5py is put before DOLFINx only by the compat module, and no call site reads the DOLFINx
    version to choose an API (recording it is fine)."""
    ordering = [_rel(p) for p in SOURCES if "import h5py  # noqa: F401" in p.read_text()]
    assert ordering == [_rel(COMPAT)]
    branch = re.compile(
        r"dolfinx\.__version__|\b_NEW\b|(\bif\b|\belif\b|[<>=]=?).*DOLFINX_VERSION"
        r"|DOLFINX_VERSION.*([<>]|==|!=|startswith)"
    )
    version_tests = [_rel(p) for p in SOURCES if p != COMPAT and branch.search(p.read_text())]
    assert version_tests == []


@pytest.mark.parametrize("version", ["0.5.2", "0.5.0", "0.9.0", "0.9.0.post1", "0.9.1.dev0"])
def test_supported_versions_pass(version):
    assert dfx.check_version(version) == version


@pytest.mark.parametrize("version", ["0.4.1", "0.6.0", "0.7.3", "0.8.0", "0.10.0", "1.0", "x"])
def test_unsupported_version_is_one_clear_line(version):
    with pytest.raises(dfx.UnsupportedDolfinxError) as info:
        dfx.check_version(version)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"DOLFINx {version} is not supported" in msg
    assert "0.5.x and 0.9.x" in msg
    assert isinstance(info.value, InputError) and isinstance(info.value, ImportError)


def _fake_dolfinx(tmp_path: Path, version: str) -> dict[str, str]:
    pkg = tmp_path / "dolfinx"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"__version__ = {version!r}\n")
    env = {k: v for k, v in os.environ.items() if k != "MAGNETOHOM_ANY_DOLFINX"}
    return {**env, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}


def test_unsupported_dolfinx_fails_at_import_and_in_the_cli(tmp_path):
    env = _fake_dolfinx(tmp_path, "0.7.3")
    code = "import magnetohom.dolfinx_compat"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("magnetohom.dolfinx_compat.UnsupportedDolfinxError: DOLFINx 0.7.3")
    np.save(tmp_path / "sve.npy", np.zeros((8, 8), bool))
    proc = subprocess.run(
        [sys.executable, "-m", "magnetohom.cli", "homogenize", str(tmp_path / "sve.npy")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert err.startswith("magnetohom homogenize: error: DOLFINx 0.7.3 is not supported"), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_version_check_can_be_skipped(tmp_path):
    env = {**_fake_dolfinx(tmp_path, "0.7.3"), "MAGNETOHOM_ANY_DOLFINX": "1"}
    code = "import magnetohom.dolfinx_compat as d; print(d.DOLFINX_VERSION)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0.7.3"
    assert "version check skipped" in proc.stderr


# -- the helpers on the installed DOLFINx ----------------------------------------------------
@pytest.fixture(scope="module")
def square():
    from dolfinx import mesh
    from mpi4py import MPI

    return mesh.create_unit_square(MPI.COMM_SELF, 3, 2)  # 12 triangles


@pytest.mark.parametrize(("shape", "bs"), [((), 1), ((2,), 2), ((2, 2), 4)])
def test_functionspace_value_shapes(square, shape, bs):
    V = dfx.functionspace(square, "DG", 0, shape)
    assert V.dofmap.index_map_bs == bs
    assert dfx.cell_dofs(V).shape == (12, 1)
    assert dfx.element_degree(V) == 0
    P2 = dfx.functionspace(square, "CG", 2)
    assert dfx.element_degree(P2) == 2
    assert dfx.cell_dofs(P2).shape == (12, 6)


@pytest.mark.parametrize(("shape", "bs"), [((), 1), ((2,), 2), ((2, 2), 4)])
def test_quadrature_space_points_and_expression(square, shape, bs):
    import basix
    import ufl
    from dolfinx import fem

    ref, w = basix.make_quadrature(basix.CellType.triangle, 2)
    Q = dfx.quadrature_space(square, 2, shape)
    assert Q.dofmap.index_map_bs == bs
    assert dfx.cell_dofs(Q).shape == (12, ref.shape[0])
    assert dfx.cell_name(square) == "triangle"
    x = dfx.eval_expression(fem.Expression(ufl.SpatialCoordinate(square), ref), square, [0, 5])
    assert x.shape == (2, ref.shape[0] * 2)
    det = dfx.eval_expression(fem.Expression(ufl.JacobianDeterminant(square), ref), square, [3])
    assert np.abs(det).ravel() @ w == pytest.approx(1 / 12)  # the area of one triangle


def test_geometry_dofs_and_original_cell_index(square):
    geom = dfx.geometry_dofs(square)
    assert geom.shape == (12, 3)
    assert np.allclose(square.geometry.x[geom][:, :, :2].mean(axis=(0, 1)), 0.5, atol=0.1)
    assert sorted(dfx.original_cell_index(square)) == list(range(12))


def test_petsc_vector_shares_the_function_values(square):
    from dolfinx import fem

    f = fem.Function(dfx.functionspace(square, "CG", 1))
    vec = dfx.petsc_vector(f)
    vec.set(2.5)
    assert np.all(f.x.array == 2.5)


def test_write_meshtags(square, tmp_path):
    from dolfinx import mesh
    from dolfinx.io import XDMFFile

    cells = np.arange(12, dtype=np.int32)
    tags = mesh.meshtags(square, 2, cells, (cells % 3).astype(np.int32))
    tags.name = "regions"
    with XDMFFile(square.comm, str(tmp_path / "t.xdmf"), "w") as xdmf:
        xdmf.write_mesh(square)
        dfx.write_meshtags(xdmf, tags, square)
    text = (tmp_path / "t.xdmf").read_text()
    assert 'Name="regions"' in text


def test_import_leaves_the_root_logger_alone():
    """FFCx 0.5 calls logging.basicConfig() at import; after the compat import a program's own
    basicConfig(level=INFO) still works, and a handler set up before stays."""
    code = (
        "import logging, sys\n"
        "if sys.argv[1] == 'before': logging.basicConfig(level=logging.DEBUG)\n"
        "n = len(logging.getLogger().handlers)\n"
        "import magnetohom.dolfinx_compat\n"
        "assert len(logging.getLogger().handlers) == n, logging.getLogger().handlers\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "logging.getLogger('x').info('3/3 done')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for when in ("before", "after"):
        proc = subprocess.run(
            [sys.executable, "-c", code, when], capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, proc.stderr
        assert "INFO:x:3/3 done" in proc.stderr
