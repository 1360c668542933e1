"""The ``magnetohom`` command line.

Each package contributes its sub-commands through a ``register(subparsers)`` function in its
``cli`` module (``micro.cli``, ``surrogate.cli``, ``macro.cli``). Handlers import their heavy
dependencies (DOLFINx, TensorFlow) lazily, so ``magnetohom --help`` and the ``micro`` commands
never load TensorFlow.

Errors derived from :class:`magnetohom.errors.MagnetohomError` are printed as one line on stderr
with exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from magnetohom import __version__
from magnetohom.errors import MagnetohomError, os_reason
from magnetohom.mpl import ignore_axes3d_warning
from magnetohom.quiet import set_up_logging

__all__ = ["build_parser", "main"]

_COMMAND_MODULES = (
    "micro.cli",
    "micro.mixed_cli",
    "surrogate.cli",
    "surrogate.general_cli",
    "macro.cli",
    "magnetohom.study_cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every package's sub-commands."""
    parser = argparse.ArgumentParser(
        prog="magnetohom",
        description="Machine-learning-aided multiscale magnetostatics.",
    )
    parser.add_argument("--version", action="version", version=f"magnetohom {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a package not written yet
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``magnetohom`` console script; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    set_up_logging(args.verbose)
    ignore_axes3d_warning()  # for the whole run: TensorFlow imports pyplot too
    try:
        return int(args.handler(args) or 0)
    except MagnetohomError as exc:
        print(f"magnetohom {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"magnetohom {args.command}: error: no such file: {exc.filename}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused: permissions, read-only, a file as dir...
        print(f"magnetohom {args.command}: error: {os_reason(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"magnetohom {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
