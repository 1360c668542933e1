"""Where a study ran: hardware, software versions, the command and the code revision.

:func:`collect` is called once per ``magnetohom study`` run and stored in the state file, so the
report says which machine produced which numbers.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["collect"]

log = logging.getLogger(__name__)

_PACKAGES = (
    "magnetohom",
    "numpy",
    "scipy",
    "h5py",
    "tensorflow",
    "keras",
    "fenics-dolfinx",
    "petsc4py",
    "mpi4py",
    "matplotlib",
)
_MODULES = {"fenics-dolfinx": "dolfinx", "tensorflow": "tensorflow", "petsc4py": "petsc4py"}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        mod = sys.modules.get(_MODULES.get(name, name))
        return getattr(mod, "__version__", None) if mod is not None else None


def _gpus() -> list[str]:
    """GPUs TensorFlow sees (only if TensorFlow is already imported; it is not imported here)."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return []
    try:
        return [d.name for d in tf.config.list_physical_devices("GPU")]
    except Exception:  # pragma: no cover - TF build without device listing
        return []


def _git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def collect(command: list[str] | None = None) -> dict[str, Any]:
    """Hardware, versions, command line, date and code revision, as JSON-able data."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_gib": _memory_gib(),
        "gpus": _gpus(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in _PACKAGES},
        "git": _git_revision(),
        "command": shlex.join(command if command is not None else sys.argv),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
