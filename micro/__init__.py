"""micro: periodic two-phase microstructures and their effective permeability.

* :mod:`micro.generate` -- periodic SVEs by random sequential addition of disks/spheres;
* :mod:`micro.imageio` / :mod:`micro.validate` -- binary image files and checks;
* :mod:`micro.analytic` -- Voigt/Reuss, Hashin–Shtrikman, Maxwell–Garnett, self-consistent;
  k-phase Wiener and Hashin–Shtrikman bounds;
* :mod:`micro.segmentation` -- greyscale micrographs to phase images (Otsu, multi-Otsu);
* :mod:`micro.apparent` / :mod:`micro.rve` -- UNBC/PBC/UDBC apparent tensors, window studies.

Importing :mod:`micro` is light: DOLFINx (``micro.homogenization``) and h5py (datasets) are only
imported by the modules that need them, and TensorFlow never.
"""

from micro.analytic import (
    Estimates,
    PhaseBounds,
    estimates,
    hashin_shtrikman,
    maxwell_garnett,
    phase_bounds,
    reuss,
    self_consistent,
    voigt,
)
from micro.generate import (
    SVE,
    generate_images,
    generate_sve,
    max_volume_fraction,
    rasterize,
    spawn_seeds,
)
from micro.imageio import load_image, load_images, save_image
from micro.segmentation import Segmentation, load_phases, segment
from micro.validate import as_binary_image, as_label_image, check_mu

__all__ = [
    "SVE",
    "Estimates",
    "PhaseBounds",
    "Segmentation",
    "as_binary_image",
    "as_label_image",
    "check_mu",
    "estimates",
    "generate_images",
    "generate_sve",
    "hashin_shtrikman",
    "load_image",
    "load_images",
    "load_phases",
    "max_volume_fraction",
    "maxwell_garnett",
    "phase_bounds",
    "rasterize",
    "reuss",
    "save_image",
    "segment",
    "self_consistent",
    "spawn_seeds",
    "voigt",
    # loaded on first use (they import DOLFINx or h5py):
    "AnalyticProvider",
    "ApparentTensors",
    "BOUNDARY_CONDITIONS",
    "RVEStudy",
    "apparent_tensors",
    "rve_study",
    "CellSolution",
    "Dataset",
    "DatasetSummary",
    "FEProvider",
    "HomogenizationResult",
    "Homogenizer",
    "generate_dataset",
    "homogenize",
    "load_dataset",
    # saturating materials (issue 22), loaded on first use:
    "ArctanLaw",
    "CellDescriptors",
    "FrohlichKennellyLaw",
    "LinearLaw",
    "NonlinearCellResult",
    "NonlinearHomogenizer",
    "TableLaw",
    "describe_cells",
    "generate_nl_dataset",
    "load_nl_dataset",
]

_LAZY = {
    "ApparentTensors": "micro.apparent",
    "apparent_tensors": "micro.apparent",
    "BOUNDARY_CONDITIONS": "micro.homogenization",
    "RVEStudy": "micro.rve",
    "rve_study": "micro.rve",
    "Homogenizer": "micro.homogenization",
    "HomogenizationResult": "micro.homogenization",
    "CellSolution": "micro.homogenization",
    "homogenize": "micro.homogenization",
    "generate_dataset": "micro.dataset",
    "DatasetSummary": "micro.dataset",
    "load_dataset": "micro.dataset_io",
    "Dataset": "micro.dataset_io",
    "FEProvider": "micro.providers",
    "AnalyticProvider": "micro.providers",
    "ArctanLaw": "micro.phase_laws",
    "FrohlichKennellyLaw": "micro.phase_laws",
    "LinearLaw": "micro.phase_laws",
    "TableLaw": "micro.phase_laws",
    "NonlinearHomogenizer": "micro.nonlinear",
    "NonlinearCellResult": "micro.nonlinear",
    "CellDescriptors": "micro.nonlinear",
    "describe_cells": "micro.nonlinear",
    "generate_nl_dataset": "micro.dataset_nl",
    "load_nl_dataset": "micro.dataset_nl",
}


def __getattr__(name: str):
    """Import the heavy parts of the API (DOLFINx, h5py) only when they are first used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'micro' has no attribute {name!r}")
