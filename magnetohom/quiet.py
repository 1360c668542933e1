"""Quiet imports of libraries that write to the stderr file descriptor at start-up.

TensorFlow 2.21 writes "WARNING: All log messages before absl::InitializeLog() ..." and
oneDNN lines to file descriptor 2 while it is imported, before its logging is set up
(``TF_CPP_MIN_LOG_LEVEL`` does not reach them). When FFCx compiles a form, setuptools' build
lowers the *root logger's* level to INFO and logs every compiler call ("INFO root: running
build_ext", gcc lines). The command line uses these helpers so that its stderr holds only its
own lines; ``-v`` shows them.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

__all__ = ["import_tensorflow", "set_up_logging"]


def import_tensorflow(verbose: int = 0) -> None:
    """Import TensorFlow (before anything that may load DOLFINx), its start-up lines discarded.

    Parameters
    ----------
    verbose : int
        ``> 0``: import it plainly (its lines shown).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or verbose:
        import tensorflow

        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def set_up_logging(verbose: int = 0) -> None:
    """Log to stderr at WARNING (``-v``: INFO, ``-vv``: DEBUG), whatever other libraries do.

    The level is set on the handler as well as on the root logger: setuptools (building FFCx's
    forms) lowers the root logger to INFO, which would let its compiler lines and every INFO
    record through for the rest of the run.
    """
    level = logging.WARNING - 10 * min(int(verbose), 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.root.handlers:
        handler.setLevel(level)
