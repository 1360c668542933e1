"""Gmsh geometries: named regions, sizes, and meshes without the expected groups."""

from __future__ import annotations

import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

import numpy as np
import pytest

from magnetohom.errors import InputError


def test_inductor_regions_and_coil_area():
    from macro.geometry import inductor_geometry

    m = inductor_geometry(size="tiny")
    assert set(m.regions) == {"air", "core", "coil_pos", "coil_neg"}
    assert m.boundaries == {"outer": m.boundary("outer")}
    with pytest.raises(InputError, match="no region 'iron'"):
        m.tag("iron")
    from dolfinx import fem
    from mpi4py import MPI

    dx = __import__("ufl").Measure("dx", domain=m.mesh, subdomain_data=m.cell_tags)
    area = m.mesh.comm.allreduce(
        fem.assemble_scalar(fem.form(1.0 * dx(m.tag("coil_pos")))), op=MPI.SUM
    )
    assert area == pytest.approx(m.info["coil_area"], rel=1e-9)


def test_bad_sizes():
    from macro.geometry import resolve_size, shield_geometry

    assert resolve_size("small") == 4.0 and resolve_size("6") == 6.0
    for bad in ("huge", -1, float("nan")):
        with pytest.raises(InputError):
            resolve_size(bad)
    with pytest.raises(InputError, match="r_inner < r_outer"):
        shield_geometry(r_outer=0.01, r_inner=0.02)


def test_mesh_without_expected_groups_is_refused(tmp_path):
    import gmsh

    from macro.geometry import load_msh

    path = tmp_path / "plate.msh"
    gmsh.initialize()
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("plate")
        s = gmsh.model.occ.addRectangle(0, 0, 0, 1, 1)
        gmsh.model.occ.synchronize()
        gmsh.model.addPhysicalGroup(2, [s], 5)
        gmsh.model.setPhysicalName(2, 5, "plate")
        gmsh.model.mesh.generate(2)
        gmsh.write(str(path))
    finally:
        gmsh.finalize()
    with pytest.raises(InputError, match=r"lacks physical group\(s\) core, outer \(has: plate\)"):
        load_msh(path, required_regions=["core"], required_boundaries=["outer"])
    m = load_msh(path, required_regions=["plate"])
    assert m.regions == {"plate": 5}
    assert np.all(m.cell_tags.values == 5)
    with pytest.raises(InputError, match="no such mesh file"):
        load_msh(tmp_path / "nope.msh")


def test_shell_sizes_named_halved_numbers_as_given():
    from macro.geometry3d import shell_geometry

    assert shell_geometry(size="tiny").info["size"] == 1.0
    # a number given as a string (as the CLI passes it) is not halved
    assert shell_geometry(size="2").info["size"] == 2.0
    with pytest.raises(InputError, match="r_inner < r_outer"):
        shell_geometry(r_inner=0.03, r_outer=0.02)
