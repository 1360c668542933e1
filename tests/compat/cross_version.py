"""Numbers that must not depend on the platform: SVE labels and the FE² demo's energies.

``python tests/compat/cross_version.py`` recomputes them and writes ``cross_version.json`` and
the FE² mesh ``shield_tiny.msh`` beside this file (the stored reference, computed on DOLFINx
0.5.2 / Debian 12);
``test_cross_version.py`` compares a fresh computation on the installed DOLFINx with it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import magnetohom.dolfinx_compat as dfx

import numpy as np

__all__ = [
    "MESH",
    "REFERENCE",
    "SVE_CASES",
    "compute_labels",
    "compute_shield",
    "pack",
    "unpack",
    "write_shield_mesh",
]

REFERENCE = Path(__file__).with_name("cross_version.json")
MESH = Path(__file__).with_name("shield_tiny.msh")
#: (seed, target volume fraction, radius in pixels) of the 32² SVEs
SVE_CASES = ((11, 0.2, 3.0), (12, 0.35, 4.0), (13, 0.5, 3.0))
SIZE = 32


def pack(image: np.ndarray) -> str:
    """A boolean image as hex of its packed bits."""
    return np.packbits(np.asarray(image, bool).ravel()).tobytes().hex()


def unpack(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pack`."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(text), np.uint8))
    return bits[: int(np.prod(shape))].reshape(shape).astype(bool)


def compute_labels(images: list[np.ndarray] | None = None) -> list[dict[str, Any]]:
    """Generate the SVEs of :data:`SVE_CASES` and their labels (mu_m = 1, mu_i = 250).

    With ``images`` given, those are labelled instead of the generated ones (so that labels and
    generation are checked apart).
    """
    from micro import generate_sve
    from micro.homogenization import Homogenizer

    hom = Homogenizer((SIZE, SIZE), rtol=1e-10)
    out = []
    for k, (seed, vf, radius) in enumerate(SVE_CASES):
        generated = generate_sve(dim=2, size=SIZE, volume_fraction=vf, radius=radius, rng=seed)
        image = generated.image if images is None else images[k]
        res = hom(image[None], mu_matrix=1.0, mu_inclusion=250.0)
        out.append(
            {
                "seed": seed,
                "volume_fraction": vf,
                "radius": radius,
                "generated": pack(generated.image),
                "image": pack(image),
                "mu_eff": res.mu_eff[0].tolist(),
            }
        )
    return out


def write_shield_mesh(path: Path = MESH) -> None:
    """Save the tiny shield mesh that this gmsh makes (the reference used Debian 12's 4.11)."""
    from mpi4py import MPI

    from macro.geometry import _gmsh_session, shield_geometry
    from macro.problems import ShieldProblem

    p = ShieldProblem
    with _gmsh_session() as gmsh:  # an outer session keeps the model after the builder returns
        shield_geometry(
            MPI.COMM_SELF, r_outer=p.r_outer, r_inner=p.r_inner, half_width=p.half_width,
            size="tiny",
        )  # fmt: skip
        gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
        gmsh.write(str(path))


def compute_shield() -> dict[str, Any]:
    """The FE² shield of ``make demo`` (tiny, 64² SVEs, providers fe and analytic) on the stored
    mesh: gmsh 4.13 (Debian 13) meshes the same geometry with a few more cells than 4.11."""
    from macro.compare import compare_providers
    from macro.geometry import load_msh
    from macro.problems import get_problem

    problem = get_problem("shield", size="tiny", resolution=64)
    problem.build_mesh = lambda comm: load_msh(
        MESH, comm, required_regions=("air", "shield", "cavity"), required_boundaries=("outer",)
    )
    cmp = compare_providers(problem, ("fe", "analytic"))
    s = cmp.summary()
    ref = cmp.results["fe"]
    mesh = ref.macro_mesh.mesh
    return {
        "n_cells": int(mesh.topology.index_map(mesh.topology.dim).size_global),
        "n_vertices": int(mesh.topology.index_map(0).size_global),
        "n_quadrature_points": int(s["n_quadrature_points"]),
        "energy_J_per_m": {n: float(r.solution.energy) for n, r in cmp.results.items()},
        "qoi": {n: float(r.qoi) for n, r in cmp.results.items()},
        "qoi_name": ref.qoi_name,
    }


def main() -> None:
    write_shield_mesh()
    data = {
        "computed_with": {
            "dolfinx": dfx.DOLFINX_VERSION,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
        "sves": compute_labels(),
        "shield": compute_shield(),
    }
    REFERENCE.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(data["shield"], indent=1))


if __name__ == "__main__":
    main()
