"""The three apparent tensors of one image, their order and the image's representativeness.

Paper, Section 2.2: uniform Neumann (UNBC), periodic (PBC) and uniform Dirichlet (UDBC)
conditions all satisfy the Hill–Mandel condition, and on any image their tensors are ordered as
quadratic forms, ``mu_UNBC <= mu_PBC <= mu_UDBC``.  The gap between the Neumann and the Dirichlet
tensor shrinks as the window grows; its size relative to the periodic tensor,
``width = ||mu_UDBC - mu_UNBC||_2 / ||mu_PBC||_2`` (spectral norms), measures how representative
the window is (0 for an RVE).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from magnetohom.errors import InputError

__all__ = ["ApparentTensors", "apparent_tensors", "order_margins"]

#: Relative tolerance of the order check (the tensors' solver error is of order rtol^2).
ORDER_TOL = 1e-8


@dataclass(frozen=True)
class ApparentTensors:
    """Apparent tensors of one image under the boundary conditions asked for.

    Attributes
    ----------
    tensors : dict of str to ndarray, shape (d, d)
        ``"periodic"``, ``"dirichlet"``, ``"neumann"`` (those computed).
    iterations : dict of str to ndarray, shape (d,)
    seconds : dict of str to float
    ordered : bool or None
        ``mu_UNBC <= mu_PBC <= mu_UDBC`` holds (to :data:`ORDER_TOL`) for the tensors computed
        (None with one tensor only).
    width : float or None
        ``||mu_UDBC - mu_UNBC||_2 / ||mu_PBC||_2`` (the periodic norm replaced by the mean of
        the other two when PBC is not computed); None unless both UDBC and UNBC are.
    """

    tensors: dict
    iterations: dict
    seconds: dict
    ordered: bool | None
    width: float | None


def order_margins(lower: np.ndarray, upper: np.ndarray) -> float:
    """Smallest eigenvalue of ``upper - lower`` relative to ``||upper||_2`` (>= 0: ordered)."""
    diff = 0.5 * ((upper - lower) + (upper - lower).T)
    return float(np.linalg.eigvalsh(diff)[0] / np.linalg.norm(upper, 2))


def _order(tensors: dict) -> bool | None:
    chain = [tensors[b] for b in ("neumann", "periodic", "dirichlet") if b in tensors]
    if len(chain) < 2:
        return None
    return all(order_margins(a, b) >= -ORDER_TOL for a, b in pairwise(chain))


def _width(tensors: dict) -> float | None:
    if "dirichlet" not in tensors or "neumann" not in tensors:
        return None
    ref = tensors.get("periodic", 0.5 * (tensors["dirichlet"] + tensors["neumann"]))
    return float(
        np.linalg.norm(tensors["dirichlet"] - tensors["neumann"], 2) / np.linalg.norm(ref, 2)
    )


_CACHE: dict[tuple, object] = {}


def _homogenizer(shape: tuple[int, ...], bc: str, rtol: float):
    from micro.homogenization import Homogenizer

    key = (tuple(shape), bc, float(rtol))
    if key not in _CACHE:
        _CACHE[key] = Homogenizer(shape, bc=bc, rtol=rtol)
    return _CACHE[key]


def apparent_tensors(
    mu: np.ndarray,
    *,
    bcs: tuple[str, ...] = ("periodic", "dirichlet", "neumann"),
    rtol: float = 1e-6,
) -> ApparentTensors:
    """Apparent tensors of one pixel-wise permeability field under several conditions.

    One :class:`~micro.homogenization.Homogenizer` per shape and condition is kept for the life
    of the process.

    Parameters
    ----------
    mu : ndarray, shape (n_1, ..., n_d), float64 > 0
        Relative permeability per pixel (e.g. ``phase_mu[labels]``).
    bcs : tuple of str
        Any of ``"periodic"``, ``"dirichlet"``, ``"neumann"``.
    rtol : float
        CG tolerance.

    Returns
    -------
    ApparentTensors
    """
    from micro.homogenization import BOUNDARY_CONDITIONS

    bcs = tuple(dict.fromkeys(bcs))
    if not bcs or any(b not in BOUNDARY_CONDITIONS for b in bcs):
        raise InputError(f"bcs must be among {', '.join(BOUNDARY_CONDITIONS)}: got {bcs}")
    mu = np.asarray(mu, dtype=np.float64)
    tensors, its, secs = {}, {}, {}
    for bc in bcs:
        sol = _homogenizer(mu.shape, bc, rtol).solve_mu(mu)
        tensors[bc], its[bc], secs[bc] = sol.mu_eff, sol.iterations, sol.seconds
    return ApparentTensors(tensors, its, secs, _order(tensors), _width(tensors))
