"""CNN surrogates of the homogenized permeability (Keras 3 on TensorFlow).

The public API, imported lazily (``import surrogate`` loads neither TensorFlow nor Keras; the
first use of a name loads its module):

* models -- :func:`build_model`, :class:`DefaultOptions`, :class:`PaperOptions`
  (:mod:`surrogate.models`, custom layers in :mod:`surrogate.layers`);
* data -- :func:`load_labeled`, :func:`split_indices`, :class:`TargetTransform`
  (:mod:`surrogate.data`); augmentation :func:`symmetry_group`, :func:`random_augment`
  (:mod:`surrogate.augment`);
* training -- :func:`train` -> :class:`TrainResult` (:mod:`surrogate.training`);
* evaluation -- :func:`evaluate` -> :class:`Evaluation`; figures :func:`plot_parity`,
  :func:`plot_history` (:mod:`surrogate.evaluation`, :mod:`surrogate.plots`);
* use -- :class:`CNNProvider`, :class:`Prediction` (:mod:`surrogate.provider`),
  :class:`HybridProvider` (:mod:`surrogate.hybrid`); pretrained models :func:`load_model`,
  :func:`available_models` (:mod:`surrogate.registry`); :func:`merge_bundles` joins trained
  models into one deep ensemble (:mod:`surrogate.bundle`);
* bounds -- :func:`wiener`, :func:`hashin_shtrikman`, :func:`maxwell_garnett`,
  :func:`bruggeman` (:mod:`surrogate.bounds`).

Command line: ``magnetohom train | ensemble | evaluate | predict`` (:mod:`surrogate.cli`).
"""

from __future__ import annotations

import importlib
from typing import Any

# ``train`` and ``evaluate`` live in ``surrogate.training`` / ``surrogate.evaluation`` (no
# submodule shadows a public function); these modules import neither TensorFlow nor Keras at
# import time.
from surrogate.evaluation import Evaluation, evaluate
from surrogate.training import TrainResult, train

__all__ = [
    "CNNProvider",
    "DefaultOptions",
    "Evaluation",
    "HybridPrediction",
    "HybridProvider",
    "ModelBundle",
    "PaperOptions",
    "Prediction",
    "SymmetryOp",
    "TargetTransform",
    "TrainResult",
    "available_models",
    "bruggeman",
    "build_model",
    "evaluate",
    "hashin_shtrikman",
    "load_labeled",
    "load_model",
    "maxwell_garnett",
    "merge_bundles",
    "plot_history",
    "plot_parity",
    "random_augment",
    "split_indices",
    "symmetry_group",
    "train",
    "wiener",
]

_WHERE = {
    "CNNProvider": "provider",
    "HybridPrediction": "hybrid",
    "HybridProvider": "hybrid",
    "Prediction": "provider",
    "DefaultOptions": "models",
    "PaperOptions": "models",
    "build_model": "models",
    "ModelBundle": "bundle",
    "merge_bundles": "bundle",
    "SymmetryOp": "augment",
    "random_augment": "augment",
    "symmetry_group": "augment",
    "TargetTransform": "data",
    "load_labeled": "data",
    "split_indices": "data",
    "available_models": "registry",
    "load_model": "registry",
    "plot_history": "plots",
    "plot_parity": "plots",
    "bruggeman": "bounds",
    "hashin_shtrikman": "bounds",
    "maxwell_garnett": "bounds",
    "wiener": "bounds",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'surrogate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"surrogate.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
