#!/usr/bin/env bash
# Installs what magnetohom needs, skipping whatever is already there.
#   1. Debian packages (DOLFINx 0.5, dolfinx_mpc, PETSc, MPI, gmsh, meshio)
#   2. a venv from /usr/bin/python3 with --system-site-packages (sees Debian's DOLFINx)
#   3. the project itself with its pinned Python dependencies (numpy<2, tensorflow-cpu)
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
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
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
import h5py, numpy  # h5py (own HDF5) must load before dolfinx
import dolfinx, dolfinx_mpc, petsc4py
assert numpy.__version__.startswith("1."), numpy.__version__
print(f"[setup] ok: numpy {numpy.__version__}, dolfinx {dolfinx.__version__}, h5py {h5py.__version__}")
PY
