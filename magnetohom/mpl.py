"""Matplotlib for the figure writers: the non-interactive Agg backend, imported on demand.

The plotting modules (``surrogate.plots``, ``macro.output``, ``macro.output3d``,
``magnetohom.study.figures``) call :func:`pyplot` inside their functions, so that importing the
numerics never imports matplotlib.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["pyplot"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend.

    With Debian's ``python3-matplotlib`` visible beside the virtual environment's matplotlib,
    the first import warns that ``Axes3D`` cannot be imported (Debian's ``mpl_toolkits`` belongs
    to the other version). No figure here uses 3D axes, so that one warning is silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unable to import Axes3D", category=UserWarning)
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    return plt
