"""The demo problems: graded composite shields (2D ring, 3D shell) and an E-I core inductor.

Each problem builds its mesh once (:meth:`Problem.mesh`) and solves it with any provider
(:meth:`Problem.solve`), so that :mod:`macro.compare` runs the same mesh and the same SVEs with
several providers. Look problems up by name with :func:`get_problem` (``"shield"``,
``"inductor"``); a wrong name is an :class:`~magnetohom.errors.InputError` listing the valid
ones.

* ``shield`` -- ring of radii 16 / 20 mm in a 120 mm air box, composite radially graded from
  vf = 0.40 (inner) to 0.15 (outer), applied field H0 = 1 kA/m along x; quantity of interest:
  the shielding factor ``S = mu0 |H0| / |<B>_cavity|``.
* ``shield3d`` -- spherical shell of radii 12 / 20 mm in a 120 mm air cube, spheres graded
  from vf = 0.30 (inner) to 0.10 (outer), 24^3-voxel SVEs by default, H0 = 1 kA/m along x;
  the 3D shielding factor.
* ``inductor`` -- E-I core (5 mm legs, 0.5 mm gap) graded linearly from vf = 0.45 at the
  centre leg to 0.25 at the outer legs, coil of 100 ampere-turns per side; quantity of
  interest: the inductance per unit depth ``L = 2 W / I^2``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from macro.material import LinearGrading, Material, MirroredFraction, RadialGrading
from magnetohom.errors import InputError

__all__ = ["PROBLEMS", "DemoResult", "Problem", "get_problem"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoResult:
    """One solve of a demo problem.

    Attributes
    ----------
    problem : str
    solution : macro.solve.MacroSolution
    macro_mesh : macro.geometry.MacroMesh
    material : Material
    qoi_name : str
        ``"shielding_factor"`` or ``"inductance_H_per_m"``.
    qoi : float
    quantities : dict
        JSON-able quantities of interest and problem data.
    """

    problem: str
    solution: Any
    macro_mesh: Any
    material: Material
    qoi_name: str
    qoi: float
    quantities: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (energy, QoI, timings, counts)."""
        out = {"problem": self.problem, self.qoi_name: self.qoi, **self.quantities}
        out.update(self.solution.summary())
        out["material"] = self.material.describe()
        out["mesh"] = dict(self.macro_mesh.info)
        out["mesh"]["n_cells"] = int(
            self.macro_mesh.mesh.topology.index_map(self.macro_mesh.mesh.topology.dim).size_global
        )
        out["regions"] = dict(self.macro_mesh.regions)
        return out


class Problem:
    """Base class: a mesh builder, a material and a solve."""

    name = "problem"
    qoi_name = "qoi"
    composite_region = "composite"
    #: Region shown in plots (xmin, xmax, ymin, ymax) [m].
    extent: tuple[float, float, float, float] | None = None

    def __init__(
        self,
        *,
        size: str | float = "small",
        material: Material | None = None,
        degree: int = 1,
        seed: int = 0,
        resolution: int | None = None,
        rtol: float = 1e-10,
    ) -> None:
        self.size = size
        self.degree = int(degree)
        if self.degree not in (1, 2, 3, 4):
            raise InputError(f"quadrature degree must be 1..4: got {degree}")
        self.material = material if material is not None else self.default_material(seed)
        if resolution is not None:
            self.material = self.material.with_resolution(resolution)
        self.rtol = float(rtol)
        self._mesh: Any = None
        self.mesh_seconds = 0.0

    def default_material(self, seed: int) -> Material:  # pragma: no cover - abstract
        raise NotImplementedError

    def build_mesh(self, comm: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def mesh(self, comm: Any = None) -> Any:
        """The :class:`~macro.geometry.MacroMesh` (built on first use)."""
        if self._mesh is None:
            from mpi4py import MPI

            t0 = time.perf_counter()
            self._mesh = self.build_mesh(MPI.COMM_WORLD if comm is None else comm)
            self.mesh_seconds = time.perf_counter() - t0
        return self._mesh

    def coefficient(self, provider: Any, *, batch_size: int = 256) -> Any:
        """mu* of this problem's mesh from a provider."""
        from macro.coefficient import build_mu_coefficient

        m = self.mesh()
        comp = m.tag(self.composite_region)
        others = {t: 1.0 for name, t in m.regions.items() if t != comp}
        return build_mu_coefficient(
            m.mesh, provider, self.material, degree=self.degree, cell_tags=m.cell_tags,
            composite=comp, constants=others, batch_size=batch_size,
        )  # fmt: skip

    def solve(self, provider: Any, *, batch_size: int = 256) -> DemoResult:  # pragma: no cover
        raise NotImplementedError


class ShieldProblem(Problem):
    """Composite ring shield in a uniform applied field (scalar potential)."""

    name = "shield"
    qoi_name = "shielding_factor"
    composite_region = "shield"
    extent = (-0.035, 0.035, -0.03, 0.03)
    r_outer, r_inner, half_width = 0.02, 0.016, 0.06
    H0 = (1000.0, 0.0)

    def default_material(self, seed: int) -> Material:
        grading = RadialGrading(0.40, 0.15, r0=self.r_inner, r1=self.r_outer)
        return Material(grading, seed=seed)

    def build_mesh(self, comm: Any) -> Any:
        from macro.geometry import shield_geometry

        return shield_geometry(
            comm, r_outer=self.r_outer, r_inner=self.r_inner, half_width=self.half_width,
            size=self.size,
        )  # fmt: skip

    def solve(self, provider: Any, *, batch_size: int = 256) -> DemoResult:
        """Solve with a provider; QoI = shielding factor."""
        from macro.solve import MU0, solve_scalar_potential

        m = self.mesh()
        coef = self.coefficient(provider, batch_size=batch_size)
        sol = solve_scalar_potential(
            coef, H0=self.H0, facet_tags=m.facet_tags, boundary=m.boundary("outer"),
            rtol=self.rtol,
        )  # fmt: skip
        b_cav = np.asarray(sol.region_B[m.tag("cavity")])
        b0 = MU0 * math.hypot(*self.H0)
        factor = b0 / float(np.linalg.norm(b_cav))
        q = {"H0_A_per_m": list(self.H0), "cavity_mean_B_T": b_cav.tolist(),
             "shield_energy_J_per_m": sol.region_energy[m.tag("shield")]}  # fmt: skip
        return DemoResult(self.name, sol, m, self.material, self.qoi_name, factor, q)


class InductorProblem(Problem):
    """E-I core with a coil (vector potential); QoI = inductance per unit depth."""

    name = "inductor"
    qoi_name = "inductance_H_per_m"
    composite_region = "core"
    extent = (-0.03, 0.03, -0.02, 0.03)
    leg = 0.005
    ampere_turns = 100.0

    def default_material(self, seed: int) -> Material:
        outer = 2 * self.leg + 0.0075
        grading = LinearGrading(0.45, 0.25, p0=(0.0, 0.0), p1=(outer, 0.0))
        return Material(MirroredFraction(grading, axis=0), seed=seed)

    def build_mesh(self, comm: Any) -> Any:
        from macro.geometry import inductor_geometry

        return inductor_geometry(comm, leg=self.leg, size=self.size)

    def solve(self, provider: Any, *, batch_size: int = 256) -> DemoResult:
        """Solve with a provider; QoI = inductance per unit depth (per turn squared)."""
        from macro.solve import solve_vector_potential

        m = self.mesh()
        coef = self.coefficient(provider, batch_size=batch_size)
        currents = {m.tag("coil_pos"): self.ampere_turns, m.tag("coil_neg"): -self.ampere_turns}
        sol = solve_vector_potential(
            coef, currents=currents, facet_tags=m.facet_tags, boundary=m.boundary("outer"),
            rtol=self.rtol,
        )  # fmt: skip
        q = {"ampere_turns": self.ampere_turns, "source_energy_J_per_m": sol.source_energy,
             "core_energy_J_per_m": sol.region_energy[m.tag("core")]}  # fmt: skip
        return DemoResult(self.name, sol, m, self.material, self.qoi_name, sol.inductance, q)


class Shield3DProblem(ShieldProblem):
    """Composite spherical shell in a uniform applied field (3D scalar potential)."""

    name = "shield3d"
    r_outer, r_inner, half_width = 0.02, 0.012, 0.06
    H0 = (1000.0, 0.0, 0.0)

    def default_material(self, seed: int) -> Material:
        grading = RadialGrading(0.30, 0.10, r0=self.r_inner, r1=self.r_outer,
                                center=(0.0, 0.0, 0.0))  # fmt: skip
        return Material(grading, dim=3, resolution=24, seed=seed)

    def build_mesh(self, comm: Any) -> Any:
        from macro.geometry3d import shell_geometry

        return shell_geometry(
            comm, r_outer=self.r_outer, r_inner=self.r_inner, half_width=self.half_width,
            size=self.size,
        )  # fmt: skip


#: Demo problems by name.
PROBLEMS: dict[str, type[Problem]] = {
    "shield": ShieldProblem,
    "inductor": InductorProblem,
    "shield3d": Shield3DProblem,
}


def get_problem(name: str, **options: Any) -> Problem:
    """A demo problem by name (``size``, ``material``, ``degree``, ``seed``, ``resolution``)."""
    if name not in PROBLEMS:
        raise InputError(f"unknown demo {name!r}; valid demos: {', '.join(PROBLEMS)}")
    return PROBLEMS[name](**options)
