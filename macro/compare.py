"""Side-by-side runs of one macro problem with several providers, errors versus FE².

:func:`compare_providers` builds the problem's mesh once and solves it with each provider
(``fe`` -- the FE² reference --, ``cnn``, ``analytic``, ...), every provider seeing the same
SVEs (same material, seeds and resolution; a CNN's input size sets the resolution for all).
Against the reference it reports

* ``energy_rel_error`` -- ``|W - W_ref| / |W_ref|``;
* ``qoi_rel_error`` -- relative error of the problem's quantity of interest (inductance per
  unit depth, shielding factor);
* ``l2_B_rel_error`` -- ``||B - B_ref||_L2 / ||B_ref||_L2`` over the whole mesh, and
  ``l2_B_rel_error_composite`` over the composite region only;
* wall time per stage and ``speedup`` = reference end-to-end time / provider end-to-end time
  (stages: SVE generation, mu* evaluation, coefficient fill, assembly, solve, post-processing;
  the shared mesh generation is excluded), and ``mu_evaluation_speedup`` of the mu* stage
  alone;
* ``provider_setup_s`` -- one-off set-up of each provider, excluded from the end-to-end times
  of all providers alike: building it (loading a CNN) and its ``warm_up(shape)`` (TensorFlow
  tracing of a CNN; the FE² reference's DOLFINx set-up and first compiled solve).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from macro.problems import DemoResult, Problem
from macro.provider import (
    check_resolution,
    get_provider,
    provider_geometry,
    provider_resolution,
)
from magnetohom.errors import InputError

__all__ = ["Comparison", "compare_providers", "l2_difference"]

logger = logging.getLogger(__name__)

DEFAULT_PROVIDERS = ("fe", "cnn", "analytic")


def l2_difference(
    sol: Any, ref: Any, *, field_name: str = "B", region: int | None = None
) -> tuple[float, float]:
    """``(||f - f_ref||, ||f - f_ref|| / ||f_ref||)`` in L2 over the mesh or one cell tag.

    Both solutions must live on the same mesh with the same quadrature.
    """
    from mpi4py import MPI

    a, b = getattr(sol, field_name), getattr(ref, field_name)
    if a.shape != b.shape:
        raise InputError(f"solutions differ in shape: {a.shape} vs {b.shape}")
    w = ref.weights
    if region is not None:
        tags = ref.coefficient.cell_tags
        n_owned = w.shape[0]
        sel = np.zeros(n_owned, dtype=bool)
        idx = tags.indices[(tags.values == region) & (tags.indices < n_owned)]
        sel[idx] = True
        w = w * sel[:, None]
    comm = ref.potential.function_space.mesh.comm
    diff = comm.allreduce(float(np.sum(w * np.sum((a - b) ** 2, axis=-1))), op=MPI.SUM)
    norm = comm.allreduce(float(np.sum(w * np.sum(b**2, axis=-1))), op=MPI.SUM)
    err = float(np.sqrt(diff))
    return err, err / float(np.sqrt(norm)) if norm > 0 else float("inf")


def _rel(value: float | None, ref: float | None) -> float | None:
    if value is None or ref is None or ref == 0:
        return None
    return abs(value - ref) / abs(ref)


@dataclass(frozen=True)
class Comparison:
    """Results of :func:`compare_providers`.

    Attributes
    ----------
    problem : str
    reference : str
        Name of the reference provider (``"fe"``).
    results : dict name -> DemoResult
    metrics : dict name -> dict
        Errors versus the reference and times (see the module docstring).
    unavailable : dict name -> str
        Providers that could not be built, with the reason.
    n_quadrature_points : int
    mesh_seconds : float
    resolution : int or tuple of int
        SVE size used by all providers (pixels per side, or a rectangular cell's shape).
    """

    problem: str
    reference: str
    results: dict[str, DemoResult]
    metrics: dict[str, dict[str, Any]]
    unavailable: dict[str, str] = field(default_factory=dict)
    n_quadrature_points: int = 0
    mesh_seconds: float = 0.0
    resolution: int | tuple[int, ...] = 0

    @property
    def candidate(self) -> str | None:
        """The provider the headline numbers are for: ``cnn`` if run, else the first other."""
        others = [n for n in self.metrics if n != self.reference]
        if "cnn" in others:
            return "cnn"
        return others[0] if others else None

    def summary(self) -> dict[str, Any]:
        """One JSON-able object; headline keys refer to :attr:`candidate`."""
        cand = self.candidate
        head = self.metrics.get(cand, {}) if cand else {}
        ref = self.results[self.reference]
        return {
            "problem": self.problem,
            "reference": self.reference,
            "candidate": cand,
            "n_quadrature_points": self.n_quadrature_points,
            "sve_resolution": (
                list(self.resolution) if isinstance(self.resolution, tuple) else self.resolution
            ),
            "dim": int(ref.material.dim),
            "qoi_name": ref.qoi_name,
            "energy_rel_error": head.get("energy_rel_error"),
            "qoi_rel_error": head.get("qoi_rel_error"),
            "l2_B_rel_error": head.get("l2_B_rel_error"),
            "speedup": head.get("speedup"),
            "mu_evaluation_speedup": head.get("mu_evaluation_speedup"),
            "mesh_seconds": self.mesh_seconds,
            "n_cells": ref.summary()["mesh"]["n_cells"],
            "providers": self.metrics,
            "unavailable": self.unavailable,
        }


def _build(name: str, problem: Problem, options: dict[str, Any]) -> Any:
    mat = problem.material
    opts: dict[str, Any] = {"dim": mat.dim, "mu_matrix": mat.mu_matrix,
                            "mu_inclusion": mat.mu_inclusion}  # fmt: skip
    opts.update(options.get(name, {}))
    return get_provider(name, **opts)


def compare_providers(
    problem: Problem,
    providers: tuple[str, ...] | list[str] = DEFAULT_PROVIDERS,
    *,
    reference: str = "fe",
    provider_options: dict[str, dict[str, Any]] | None = None,
    required: tuple[str, ...] = (),
) -> Comparison:
    """Solve ``problem`` with each provider on the same mesh and SVEs; errors vs ``reference``.

    Parameters
    ----------
    problem : Problem
        From :func:`macro.problems.get_problem`.
    providers : sequence of str
        Provider names; ``reference`` is added if missing and run first.
    provider_options : dict name -> dict, optional
        Extra keyword arguments per provider (e.g. ``{"cnn": {"model": "path"}}``).
    required : tuple of str
        Providers whose failure to build is an error; the others are reported in
        ``unavailable`` (e.g. no trained CNN installed).
    """
    options = dict(provider_options or {})
    names = [reference] + [n for n in dict.fromkeys(providers) if n != reference]
    built: dict[str, Any] = {}
    setup: dict[str, float] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        try:
            t0 = time.perf_counter()
            built[name] = _build(name, problem, options)
            setup[name] = time.perf_counter() - t0
        except (InputError, ImportError, OSError) as exc:
            if name == reference or name in required:
                raise
            unavailable[name] = f"{type(exc).__name__}: {exc}"
            logger.warning("provider %s unavailable: %s", name, exc)
    resolutions = {n: provider_resolution(p) for n, p in built.items()}
    fixed = {r for r in resolutions.values() if r is not None}
    if len(fixed) > 1:
        raise InputError(f"providers need different SVE resolutions: {resolutions}")
    if fixed:
        res = fixed.pop()
        if isinstance(problem.material.resolution, tuple):  # rectangular: square CNNs refuse
            for prov in built.values():
                check_resolution(prov, problem.material.resolution)
        if problem.material.resolution not in (None, res):
            logger.warning("SVE resolution %s -> %d (the CNN's input size)",
                           problem.material.resolution, res)  # fmt: skip
        geometry = next((g for g in map(provider_geometry, built.values()) if g), {})
        problem.material = problem.material.matched_to(res, geometry)
    elif problem.material.resolution is None:
        problem.material = problem.material.with_resolution(64)
    problem.mesh()
    shape = problem.material.shape()
    for name, prov in built.items():
        # model loading, TF tracing, the homogenizer's DOLFINx set-up: reported, not timed
        setup[name] += float(prov.warm_up(shape))
    results: dict[str, DemoResult] = {}
    for name, prov in built.items():
        logger.info("solving %s with provider %s", problem.name, name)
        results[name] = problem.solve(prov)
    ref = results[reference]
    comp_tag = ref.macro_mesh.tag(problem.composite_region)
    ref_total = ref.solution.total_seconds
    metrics: dict[str, dict[str, Any]] = {}
    for name, res in results.items():
        sol = res.solution
        _, l2 = l2_difference(sol, ref.solution)
        _, l2c = l2_difference(sol, ref.solution, region=comp_tag)
        metrics[name] = {
            "energy_J_per_m": sol.energy,
            res.qoi_name: res.qoi,
            "energy_rel_error": _rel(sol.energy, ref.solution.energy),
            "qoi_rel_error": _rel(res.qoi, ref.qoi),
            "l2_B_rel_error": l2,
            "l2_B_rel_error_composite": l2c,
            "timings_s": dict(sol.timings),
            "total_s": sol.total_seconds,
            "speedup": ref_total / sol.total_seconds if sol.total_seconds > 0 else None,
            "mu_evaluation_speedup": ref.solution.timings["mu_evaluation"]
            / sol.timings["mu_evaluation"]
            if sol.timings["mu_evaluation"] > 0
            else None,
            "n_fallback": sol.n_fallback,
            "iterations": sol.iterations,
            "provider_setup_s": setup.get(name, 0.0),
        }
    return Comparison(
        problem=problem.name,
        reference=reference,
        results=results,
        metrics=metrics,
        unavailable=unavailable,
        n_quadrature_points=ref.solution.n_quadrature_points,
        mesh_seconds=problem.mesh_seconds,
        resolution=problem.material.resolution or 0,
    )
