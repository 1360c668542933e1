"""Matplotlib for the figure writers: the non-interactive Agg backend, imported on demand.

The plotting modules (``surrogate.plots``, ``macro.output``, ``macro.output3d``,
``magnetohom.study.figures``) call :func:`pyplot` inside their functions, so that importing the
numerics never imports matplotlib.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["ignore_axes3d_warning", "pyplot"]


def ignore_axes3d_warning() -> None:
    """Filter the one warning of Debian's ``python3-matplotlib`` beside the venv's matplotlib.

    Whatever first imports ``matplotlib.pyplot`` (a figure writer, or TensorFlow) warns that
    ``Axes3D`` cannot be imported: Debian's ``mpl_toolkits`` belongs to the other version. No
    figure here uses 3D axes.
    """
    warnings.filterwarnings("ignore", message="Unable to import Axes3D", category=UserWarning)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend.

    The import runs under :func:`ignore_axes3d_warning`, restored afterwards.
    """
    with warnings.catch_warnings():
        ignore_axes3d_warning()
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    return plt
