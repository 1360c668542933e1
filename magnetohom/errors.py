"""Exception types shared by :mod:`micro`, :mod:`surrogate` and :mod:`macro`.

The command line turns every :class:`MagnetohomError` into one line on stderr and exit code 2;
library users catch them like any other exception. Messages are one line that names the
problem and the offending value, e.g. ``"image is not binary: found values {0, 3, 255}"``.
"""

from __future__ import annotations

import errno

__all__ = ["InputError", "MagnetohomError", "SampleError", "SolverError", "os_reason"]


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


_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EISDIR: "is a directory",
    errno.EEXIST: "a file is in the way",
    errno.ENOENT: "no such file or directory",
    errno.ENAMETOOLONG: "file name too long",
}


def os_reason(exc: OSError) -> str:
    """One line for an :class:`OSError`: ``"permission denied: out/model"`` and the like.

    Parameters
    ----------
    exc : OSError

    Returns
    -------
    str
        The reason (from ``errno`` where known, else the first line of the message) and the
        file it concerns, if the exception names one.
    """
    reason = _REASONS.get(exc.errno or -1)
    if reason is None:
        text = exc.strerror or str(exc) or type(exc).__name__
        reason = (text.strip().splitlines() or [type(exc).__name__])[0]
    name = exc.filename
    return f"{reason}: {name}" if name is not None else reason
