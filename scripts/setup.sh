#!/usr/bin/env bash
# Installs what magnetohom needs, skipping whatever is already there.
#   1. Debian packages (DOLFINx, dolfinx_mpc, PETSc, MPI, gmsh, meshio): DOLFINx 0.5.2 on
#      Debian 12, 0.9.0 on Debian 13 (same package names)
#   2. a venv from /usr/bin/python3 with --system-site-packages (sees Debian's DOLFINx)
#   3. the project itself with its pinned Python dependencies (pyproject.toml; the pins differ
#      by Python version: NumPy 1.x on Debian 12's Python 3.11, NumPy 2.x on Debian 13's 3.13)
# Then it checks what is installed against those pins and the DOLFINx versions supported.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
APT_PKGS="python3-dolfinx python3-dolfinx-mpc python3-petsc4py python3-mpi4py python3-gmsh \
python3-meshio python3-venv python3-dev openmpi-bin"

missing=""
for p in $APT_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "[setup] installing Debian packages:$missing"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    # one apt at a time: the CI's Debian 13 set-up may be installing debootstrap meanwhile
    # (magnetohom's own lock), and apt waits for any other holder of dpkg's lock
    APT="$SUDO flock /var/lock/magnetohom-apt.lock apt-get -o DPkg::Lock::Timeout=900"
    $APT update -qq
    DEBIAN_FRONTEND=noninteractive $APT install -y -qq $missing >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV (system site packages visible)"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi

stamp="$VENV/.magnetohom-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[setup] installing Python dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # compat mode: a .pth with the repository root, so every package here imports from source
    "$VENV/bin/python" -m pip install -q -e ".[ml,dev]" --config-settings editable_mode=compat
    touch "$stamp"
fi
"$VENV/bin/python" - <<'PY'
# every installed requirement of magnetohom (with its extras) must satisfy its pin for this
# platform, and DOLFINx must be a supported version (magnetohom.dolfinx_compat says which)
import importlib.metadata as md
import sys

try:
    from packaging.requirements import Requirement
except ImportError:  # pip always vendors it
    from pip._vendor.packaging.requirements import Requirement

import magnetohom.dolfinx_compat as dfx  # h5py first, then DOLFINx; exits on unsupported ones

import dolfinx_mpc  # noqa: F401
import h5py
import numpy

bad = []
for line in md.requires("magnetohom") or []:
    req = Requirement(line)
    if req.marker and not any(req.marker.evaluate({"extra": e}) for e in ("", "ml", "dev")):
        continue
    try:
        have = md.version(req.name)
    except md.PackageNotFoundError:
        bad.append(f"{req.name} missing (wants {req.specifier})")
        continue
    if have not in req.specifier:
        bad.append(f"{req.name} {have} (wants {req.specifier})")
if bad:
    sys.exit("[setup] pins not met: " + "; ".join(bad))
print(f"[setup] ok: python {sys.version.split()[0]}, numpy {numpy.__version__}, "
      f"dolfinx {dfx.DOLFINX_VERSION}, h5py {h5py.__version__}")
PY
