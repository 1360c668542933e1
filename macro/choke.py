"""The ``choke`` demo: a saturating composite-core choke swept over current (issue 22).

The ``inductor`` demo's E-I core (:func:`macro.geometry.inductor_geometry`: 5 mm legs, 0.5 mm
air gap, a coil in both windows) made of a *saturating* soft-magnetic composite: a linear
matrix (``linear:1``) with disks of a saturating phase (``arctan:1000,1.6`` by default: initial
mu_r 1000, saturation polarization 1.6 T), radius 2.5 px on 32^2 SVEs, volume fraction graded
from 0.40 at the centre leg to 0.25 at the outer legs, one SVE per quadrature point.  For every
current ``I`` (``turns`` turns, ``+N I`` through ``coil_pos``, ``-N I`` through ``coil_neg``)
the nonlinear A_z problem (:func:`macro.nonlinear.solve_vector_potential_nl`) is solved with
the composite's effective law from a *nonlinear provider*:

* ``learned`` -- the learned convex law (:class:`surrogate.convex_law.ConvexLawProvider`; by
  default the shipped law :data:`surrogate.convex_law.DEFAULT_LAW`), imported lazily; it
  loads and answers in numpy (no TensorFlow);
* ``nested`` -- nested FE²: a nonlinear cell problem per composite point in every law call
  (:class:`macro.nonlinear.CellProblemLaw`);
* ``linear`` -- the linear ``mu*`` of each SVE (the small-field tangent; cannot saturate).

Quantities per current: the flux linkage ``Psi = N l (<A>_coil_pos - <A>_coil_neg)`` [Wb]
(``l`` the depth), the inductance ``L = Psi / I`` [H] and the incremental inductance
``dPsi/dI`` [H] (one extra linear solve with the converged tangent).  The sweep starts each
current from the previous solution scaled by the ratio of the currents.

Look the providers up in :data:`NONLINEAR_PROVIDERS` (``macro`` never imports TensorFlow at
module import; ``micro`` is imported when the SVEs are described).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from macro.material import LinearGrading, Material, MirroredFraction
from magnetohom.errors import InputError

__all__ = [
    "NONLINEAR_PROVIDERS",
    "ChokeProblem",
    "ChokeStep",
    "ChokeSweep",
    "parse_currents",
    "write_choke_outputs",
]

log = logging.getLogger(__name__)

#: Nonlinear providers of the choke demo (name -> one-line description).
NONLINEAR_PROVIDERS = {
    "learned": "learned convex effective law (surrogate.convex_law; numpy)",
    "nested": "nested FE²: a nonlinear cell problem per composite point and law call",
    "linear": "linear mu* of each SVE (small-field tangent; cannot saturate)",
}


def parse_currents(text: str | Sequence[float]) -> np.ndarray:
    """Currents [A] from ``"0.5,1,2"`` or a sequence: finite, > 0, strictly increasing.

    Raises
    ------
    InputError
        Empty, non-numeric, non-positive, non-finite or not increasing.
    """
    try:
        if isinstance(text, str):
            values = [float(x) for x in text.split(",") if x.strip()]
        else:
            values = [float(x) for x in text]
    except ValueError:
        raise InputError(f"currents must be comma-separated numbers: got {text!r}") from None
    cur = np.asarray(values, dtype=np.float64)
    if cur.size == 0 or not np.all(np.isfinite(cur)) or np.any(cur <= 0):
        raise InputError(f"currents must be finite and > 0: got {text!r}")
    if np.any(np.diff(cur) <= 0):
        raise InputError(f"currents must be strictly increasing: got {text!r}")
    return cur


@dataclass(frozen=True)
class ChokeStep:
    """One current of a sweep.

    Attributes
    ----------
    current : float
        A.
    flux_linkage : float
        ``Psi`` [Wb].
    inductance, incremental_inductance : float
        ``Psi / I`` and ``dPsi / dI`` [H].
    core_mean_B : float
        Mean ``|B|`` over the core [T].
    core_max_field, core_mean_field : float
        Largest and mean ``|H| / H_k*`` over the composite points.
    newton_iterations : int
    residuals : tuple of float
    law_calls : int
    law_seconds, seconds : float
        Time in the law (its inversions included) and end to end (max over ranks).
    cpu_seconds : float
        Process CPU time of the step (max over ranks; all threads): on a shared machine, the
        work done, whatever the load.
    """

    current: float
    flux_linkage: float
    inductance: float
    incremental_inductance: float
    core_mean_B: float
    core_max_field: float
    core_mean_field: float
    newton_iterations: int
    residuals: tuple[float, ...]
    law_calls: int
    law_seconds: float
    seconds: float
    cpu_seconds: float = 0.0


@dataclass
class ChokeSweep:
    """A provider's sweep: the steps and the solutions kept for plots.

    Attributes
    ----------
    provider : str
    steps : list of ChokeStep
    solutions : dict float -> NonlinearMacroSolution
        At the currents asked to keep.
    setup_seconds : float
        One-off set-up of the provider (law loading; the learned law's per-point constants:
        knee fields and its MLP at the points' descriptors).
    out_of_range : int
        Learned law: point evaluations beyond its trained field range (flagged).
    unfamiliar_points : int
        Learned law: points whose microstructure lies outside its training data (flagged:
        :meth:`surrogate.convex_law.ConvexLaw.familiar`).
    """

    provider: str
    steps: list[ChokeStep] = field(default_factory=list)
    solutions: dict[float, Any] = field(default_factory=dict)
    setup_seconds: float = 0.0
    out_of_range: int = 0
    unfamiliar_points: int = 0

    def table(self) -> dict[str, list[float]]:
        """Columns ``current_A``, ``flux_linkage_Wb``, ``inductance_H``,
        ``incremental_inductance_H``."""
        return {
            "current_A": [s.current for s in self.steps],
            "flux_linkage_Wb": [s.flux_linkage for s in self.steps],
            "inductance_H": [s.inductance for s in self.steps],
            "incremental_inductance_H": [s.incremental_inductance for s in self.steps],
        }

    def summary(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "provider": self.provider,
            "setup_s": self.setup_seconds,
            "out_of_range": self.out_of_range,
            "unfamiliar_points": self.unfamiliar_points,
            "steps": [
                {
                    "current_A": s.current,
                    "flux_linkage_Wb": s.flux_linkage,
                    "inductance_H": s.inductance,
                    "incremental_inductance_H": s.incremental_inductance,
                    "core_mean_B_T": s.core_mean_B,
                    "core_max_field_knees": s.core_max_field,
                    "core_mean_field_knees": s.core_mean_field,
                    "newton_iterations": s.newton_iterations,
                    "residuals": list(s.residuals),
                    "law_calls": s.law_calls,
                    "law_s": s.law_seconds,
                    "total_s": s.seconds,
                    "cpu_s": s.cpu_seconds,
                }
                for s in self.steps
            ],
        }


class ChokeProblem:
    """The choke demo (see the module docstring).

    Parameters
    ----------
    size : str or float
        Mesh density (:data:`macro.geometry.SIZES`): elements across a 5 mm leg.
    turns : int
        Coil turns ``N``.
    depth : float
        Core depth ``l`` [m].
    degree : int
        Quadrature degree of the composite's points (1: one point per cell).
    seed : int
        Base seed of the SVEs.
    laws : (str, str)
        Matrix and inclusion phase-law specifications (:func:`micro.phase_laws.law_from_spec`);
        the learned law brings its own and must match.
    vf : (float, float)
        Volume fraction at the centre leg and at the outer legs.
    rtol : float
        Relative residual of the macro Newton.
    """

    name = "choke"
    extent = (-0.03, 0.03, -0.02, 0.03)
    leg = 0.005

    def __init__(
        self,
        *,
        size: str | float = "tiny",
        turns: int = 1000,
        depth: float = 0.02,
        degree: int = 1,
        seed: int = 0,
        laws: tuple[str, str] = ("linear:1", "arctan:1000,1.6"),
        vf: tuple[float, float] = (0.40, 0.25),
        rtol: float = 1e-8,
    ) -> None:
        if int(turns) != turns or turns < 1:
            raise InputError(f"turns must be a positive integer: got {turns!r}")
        if not (math.isfinite(depth) and depth > 0):
            raise InputError(f"depth must be > 0 m: got {depth!r}")
        if int(degree) not in (1, 2, 3, 4):
            raise InputError(f"quadrature degree must be 1..4: got {degree}")
        self.size, self.turns, self.depth = size, int(turns), float(depth)
        self.degree, self.seed, self.rtol = int(degree), int(seed), float(rtol)
        self.law_specs = tuple(laws)
        outer = 2 * self.leg + 0.0075
        grading = LinearGrading(float(vf[0]), float(vf[1]), p0=(0.0, 0.0), p1=(outer, 0.0))
        self.material = Material(MirroredFraction(grading, axis=0), radius=2.5, resolution=32,
                                 seed=self.seed, mu_inclusion=1000.0)  # fmt: skip
        self._mesh: Any = None
        self._points: dict[str, Any] | None = None
        self.timings: dict[str, float] = {}

    # -- set-up ----------------------------------------------------------------------------------
    def phase_laws(self) -> list[Any]:
        """The (matrix, inclusion) :mod:`micro.phase_laws` laws."""
        from micro.phase_laws import law_from_spec

        return [law_from_spec(s) for s in self.law_specs]

    def mesh(self) -> Any:
        """The :class:`~macro.geometry.MacroMesh` (built on first use)."""
        if self._mesh is None:
            from mpi4py import MPI

            from macro.geometry import inductor_geometry

            t0 = time.perf_counter()
            self._mesh = inductor_geometry(MPI.COMM_WORLD, leg=self.leg, size=self.size)
            self.timings["mesh"] = time.perf_counter() - t0
        return self._mesh

    def points(self) -> dict[str, Any]:
        """Quadrature points of this rank: ``composite`` mask (M,), the composite points'
        ``images``, their descriptors ``cells`` (:func:`micro.nonlinear.describe_cells`: one
        linear cell problem each) and knee fields ``knee`` [A/m]; ``core_cells``."""
        if self._points is not None:
            return self._points
        from macro.coefficient import quadrature_points
        from micro.dataset_nl import effective_knee_field
        from micro.nonlinear import describe_cells

        m = self.mesh()
        pts, gid = quadrature_points(m.mesh, self.degree)
        n_cells, nq = pts.shape[:2]
        tags = np.full(n_cells, -1)
        keep = m.cell_tags.indices < n_cells
        tags[m.cell_tags.indices[keep]] = m.cell_tags.values[keep]
        core_cells = np.flatnonzero(tags == m.tag("core"))
        composite = np.zeros((n_cells, nq), bool)
        composite[core_cells] = True
        composite = composite.ravel()
        t0 = time.perf_counter()
        batch = self.material.generate(pts.reshape(-1, 2)[composite], gid.ravel()[composite])
        t1 = time.perf_counter()
        laws = self.phase_laws()
        cells = describe_cells(batch.images, laws)
        knee = np.array(
            [effective_knee_field(mu, laws, f)
             for mu, f in zip(cells.mu_lin, cells.volume_fraction, strict=True)]
        )  # fmt: skip
        self.timings.update(sve_generation=t1 - t0, descriptors=time.perf_counter() - t1)
        self._points = {"composite": composite, "images": batch.images, "cells": cells,
                        "knee": knee, "core_cells": core_cells}  # fmt: skip
        return self._points

    def n_composite_points(self) -> int:
        """Composite quadrature points on all ranks."""
        from mpi4py import MPI

        return int(MPI.COMM_WORLD.allreduce(int(self.points()["composite"].sum())))

    def knee_field(self) -> float:
        """Mean composite knee field ``H_k*`` over all ranks' points [A/m]."""
        from mpi4py import MPI

        k = self.points()["knee"]
        comm = MPI.COMM_WORLD
        return comm.allreduce(float(k.sum())) / max(comm.allreduce(int(k.size)), 1)

    def point_law(
        self, provider: str, *, law: Any = None
    ) -> tuple[Any, Callable[[], tuple[int, int]]]:
        """The :class:`macro.nonlinear.PointLaws` of a provider, and a counter of its flags:
        ``(evaluations beyond the trained field range, points whose microstructure lies
        outside the training data)`` on this rank.

        Parameters
        ----------
        provider : {"learned", "nested", "linear"}
        law : str, path or ConvexLaw, optional
            ``learned``: the law (name of a shipped law, a directory, or a loaded law);
            default :data:`surrogate.convex_law.DEFAULT_LAW`.
        """
        from macro.nonlinear import CellProblemLaw, PointLaws
        from macro.solve import MU0

        if provider not in NONLINEAR_PROVIDERS:
            known = ", ".join(NONLINEAR_PROVIDERS)
            raise InputError(f"unknown provider {provider!r} for the choke; known: {known}")
        p = self.points()
        ones = np.ones(p["composite"].size)
        if provider == "linear":
            mu = p["cells"].mu_lin

            def linear(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                return MU0 * np.einsum("kij,kj->ki", mu, H), MU0 * mu

            return PointLaws(ones, p["composite"], linear), lambda: (0, 0)
        if provider == "nested":
            from mpi4py import MPI

            nested = CellProblemLaw(p["images"], self.phase_laws(), rtol=1e-10,
                                    comm=MPI.COMM_WORLD)  # fmt: skip
            return PointLaws(ones, p["composite"], nested), lambda: (0, 0)
        from surrogate.convex_law import ConvexLaw, ConvexLawProvider, load_law

        convex = law if isinstance(law, ConvexLaw) else load_law(law)
        mine = [x.to_dict() for x in self.phase_laws()]
        theirs = [x.to_dict() for x in convex.laws]
        if mine != theirs:
            raise InputError(
                f"the learned law was trained for phase laws {theirs}, the choke uses {mine}"
            )
        prov = ConvexLawProvider(convex, p["cells"], on_range="flag")
        return PointLaws(ones, p["composite"], prov), lambda: (prov.out_of_range, prov.unfamiliar)

    # -- the sweep -------------------------------------------------------------------------------
    def sweep(
        self,
        provider: str,
        currents: Sequence[float] | str,
        *,
        law: Any = None,
        keep: Sequence[float] = (),
        max_newton: int = 40,
        start: tuple[float, Any] | None = None,
    ) -> ChokeSweep:
        """Solve at every current (increasing), each from the previous solution.

        Parameters
        ----------
        provider : {"learned", "nested", "linear"}
        currents : sequence of float or str
            Currents [A] (:func:`parse_currents`).
        law : optional
            The learned law (see :meth:`point_law`).
        keep : sequence of float
            Currents whose solutions are kept (for plots and XDMF).
        max_newton : int
        start : (current, NonlinearMacroSolution), optional
            Start the first current from this solution (any provider's; ``A`` scaled by the
            ratio of the currents, the inverse law seeded with its fields) instead of 0.

        Raises
        ------
        InputError
            Bad currents or provider.
        SolverError
            A Newton iteration (macro, inverse law or cell problem) did not converge.
        """
        from mpi4py import MPI

        from macro.nonlinear import InverseLaw, solve_vector_potential_nl

        cur = parse_currents(currents)
        comm = MPI.COMM_WORLD
        t0 = time.perf_counter()
        point_law, flags = self.point_law(provider, law=law)
        p = self.points()
        m = self.mesh()
        pos, neg = m.tag("coil_pos"), m.tag("coil_neg")
        # a cell problem answers to its Newton tolerance (1e-10): invert to 1e-9 there
        inverse = InverseLaw(point_law, rtol=1e-9 if provider == "nested" else 1e-11,
                             comm=comm if provider == "nested" else None)  # fmt: skip
        if provider == "learned":  # the per-point constants once, outside the timed steps
            inverse(np.zeros((p["composite"].size, 2)))
        result = ChokeSweep(provider, setup_seconds=time.perf_counter() - t0)
        keep_set = {float(k) for k in keep}
        previous, prev_current = None, None
        if start is not None:
            prev_current, previous = float(start[0]), start[1]
            inverse.seed(previous.H.reshape(-1, 2))
        core_w = None
        for current in cur:
            t1, c1 = time.perf_counter(), time.process_time()
            initial = None
            if previous is not None:
                initial = previous.potential.x.array * (current / prev_current)
            sol = solve_vector_potential_nl(
                m.mesh, inverse, currents={pos: self.turns * current, neg: -self.turns * current},
                cell_tags=m.cell_tags, facet_tags=m.facet_tags, boundary=m.boundary("outer"),
                quadrature_degree=self.degree, rtol=self.rtol, max_newton=max_newton,
                initial=initial, sensitivity=True,
            )  # fmt: skip
            seconds = comm.allreduce(time.perf_counter() - t1, op=MPI.MAX)
            cpu = comm.allreduce(time.process_time() - c1, op=MPI.MAX)
            law_s = comm.allreduce(sol.law_seconds, op=MPI.MAX)
            mean = sol.region_mean_potential
            psi = self.turns * self.depth * (mean[pos] - mean[neg])
            dmean = sol.region_mean_sensitivity
            # d<A>/ds for currents s * N I: dPsi/dI = N l (d<A>+/ds - d<A>-/ds) / I
            dpsi = self.turns * self.depth * (dmean[pos] - dmean[neg]) / current
            if core_w is None:
                core_w = sol.weights[p["core_cells"]]
            Bc = np.linalg.norm(sol.B[p["core_cells"]], axis=-1)
            area = comm.allreduce(float(core_w.sum()))
            mean_b = comm.allreduce(float(np.sum(core_w * Bc))) / area
            Hc = np.linalg.norm(sol.H.reshape(-1, 2)[p["composite"]], axis=1)
            local = float(np.max(Hc / p["knee"])) if Hc.size else 0.0
            max_field = comm.allreduce(local, op=MPI.MAX)
            mean_field = comm.allreduce(float(np.sum(Hc / p["knee"]))) / max(
                comm.allreduce(int(Hc.size)), 1
            )
            step = ChokeStep(
                current=float(current), flux_linkage=float(psi), inductance=float(psi / current),
                incremental_inductance=float(dpsi), core_mean_B=float(mean_b),
                core_max_field=float(max_field), core_mean_field=float(mean_field),
                newton_iterations=sol.newton_iterations,
                residuals=sol.residuals, law_calls=sol.law_calls, law_seconds=float(law_s),
                seconds=float(seconds), cpu_seconds=float(cpu),
            )  # fmt: skip
            result.steps.append(step)
            log.info(
                "choke %s: I = %g A, L = %.4g H, dPsi/dI = %.4g H, %d Newton its (%s), %.2f s",
                provider, current, step.inductance, step.incremental_inductance,
                step.newton_iterations, ", ".join(f"{r:.0e}" for r in sol.residuals), seconds,
            )  # fmt: skip
            if float(current) in keep_set:
                result.solutions[float(current)] = sol
            previous, prev_current = sol, current
        out_of_range, unfamiliar = flags()
        result.out_of_range = int(comm.allreduce(int(out_of_range)))
        result.unfamiliar_points = int(comm.allreduce(int(unfamiliar)))
        return result


def write_choke_outputs(
    problem: ChokeProblem,
    sweeps: dict[str, ChokeSweep],
    outdir: str | Path,
    *,
    summary: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """CSV and JSON of ``L(I)``, a PNG of ``L(I)`` (all providers), |B| maps (PNG) and XDMF
    (``A_z``, ``B``, ``H`` per kept current) per provider.  Collective; rank 0 writes the
    CSV, JSON and the ``L(I)`` plot.  Returns the paths."""
    from mpi4py import MPI

    from macro.output import write_json

    outdir = Path(outdir)
    comm = MPI.COMM_WORLD
    files: dict[str, Any] = {"xdmf": {}, "maps": {}}
    for name, sw in sweeps.items():
        if sw.solutions:
            files["xdmf"][name] = str(_write_xdmf(problem, sw, outdir / f"choke_{name}.xdmf"))
            files["maps"][name] = _plot_maps(problem, sw, outdir)
    if comm.rank == 0:
        csv = outdir / "choke_L.csv"
        lines = ["provider,current_A,flux_linkage_Wb,inductance_H,incremental_inductance_H,"
                 "core_mean_B_T,core_max_field_knees,newton_iterations,total_s"]  # fmt: skip
        for name, sw in sweeps.items():
            for s in sw.steps:
                lines.append(
                    f"{name},{s.current:.9g},{s.flux_linkage:.9g},{s.inductance:.9g},"
                    f"{s.incremental_inductance:.9g},{s.core_mean_B:.6g},"
                    f"{s.core_max_field:.6g},{s.newton_iterations},{s.seconds:.6g}"
                )
        outdir.mkdir(parents=True, exist_ok=True)
        csv.write_text("\n".join(lines) + "\n")
        files["csv"] = str(csv)
        files["png"] = str(_plot_inductance(sweeps, outdir / "choke_L.png", problem))
        data = dict(summary or {})
        data["files"] = files
        files["json"] = str(write_json(data, outdir / "choke.json"))
    return files


def _plot_inductance(sweeps: dict[str, ChokeSweep], path: Path, problem: ChokeProblem) -> Path:
    from magnetohom.mpl import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    styles = {"learned": ("C0", "o"), "nested": ("C3", "s"), "linear": ("C7", "^")}
    for name, sw in sweeps.items():
        t = sw.table()
        colour, marker = styles.get(name, ("C1", "x"))
        ax.plot(t["current_A"], np.array(t["inductance_H"]) * 1e3, color=colour, marker=marker,
                label=f"{name}: L = Ψ/I")  # fmt: skip
        ax.plot(t["current_A"], np.array(t["incremental_inductance_H"]) * 1e3, color=colour,
                linestyle="--", linewidth=0.9, label=f"{name}: dΨ/dI")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("current I [A]")
    ax.set_ylabel("inductance [mH]")
    ax.set_title(f"choke ({problem.turns} turns, {problem.depth * 1e3:g} mm deep): L(I)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _plot_maps(problem: ChokeProblem, sw: ChokeSweep, outdir: Path) -> dict[str, str]:
    from types import SimpleNamespace

    from macro.output import plot_field

    out = {}
    for current, sol in sorted(sw.solutions.items()):
        view = SimpleNamespace(potential=sol.potential, B=sol.B, weights=sol.weights,
                               formulation="vector", provider=sw.provider)  # fmt: skip
        path = outdir / f"choke_B_{sw.provider}_{current:g}A.png"
        png = plot_field(view, path, extent=problem.extent,
                         title=f"choke: |B| at I = {current:g} A ({sw.provider})")  # fmt: skip
        if png is not None:
            out[f"{current:g}"] = str(png)
    return out


def _write_xdmf(problem: ChokeProblem, sw: ChokeSweep, path: Path) -> Path:
    """Mesh, regions and, per kept current (as the time value), ``A_z``, cell-mean ``B``,
    ``H`` and ``|B|``."""
    import magnetohom.dolfinx_compat as dfx

    from dolfinx.io import XDMFFile

    from macro.output import _dg0, cell_average

    m = problem.mesh()
    mesh = m.mesh
    if mesh.comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    mesh.comm.barrier()
    with XDMFFile(mesh.comm, str(path), "w") as xdmf:
        xdmf.write_mesh(mesh)
        dfx.write_meshtags(xdmf, m.cell_tags, mesh)
        for current, sol in sorted(sw.solutions.items()):
            B = cell_average(sol.B, sol.weights)
            fields = [sol.potential, _dg0(mesh, B, "B"),
                      _dg0(mesh, cell_average(sol.H, sol.weights), "H"),
                      _dg0(mesh, np.linalg.norm(B, axis=1), "B_magnitude")]  # fmt: skip
            for f in fields:
                xdmf.write_function(f, float(current))
    return path
