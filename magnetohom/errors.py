"""Exception types shared by :mod:`micro`, :mod:`surrogate` and :mod:`macro`.

The command line turns every :class:`MagnetohomError` into one line on stderr and exit code 2;
library users catch them like any other exception. Messages are one line that names the
problem and the offending value, e.g. ``"image is not binary: found values {0, 3, 255}"``.
"""

from __future__ import annotations

__all__ = ["InputError", "MagnetohomError", "SampleError", "SolverError"]


class MagnetohomError(Exception):
    """Base class of all errors raised on purpose by magnetohom."""


class InputError(MagnetohomError, ValueError):
    """Bad user input: wrong shape, non-binary image, NaN, mu <= 0, unreachable target, ..."""


class SampleError(InputError):
    """Bad input of one sample of a batch: ``"sample {index}: {reason}"``; callers that know
    the samples by another name (a quadrature point) re-word it from ``index`` and ``reason``."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"sample {index}: {reason}")
        self.index = int(index)
        self.reason = str(reason)


class SolverError(MagnetohomError, RuntimeError):
    """A numerical solve diverged or did not converge; no numbers are returned."""
