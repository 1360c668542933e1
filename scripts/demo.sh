#!/usr/bin/env bash
# `make demo`: the main job end to end at a small size (a few minutes on 2 cores):
# microstructures -> DOLFINx labels and analytic estimates -> a labelled dataset (2 MPI ranks)
# -> a CNN trained on it -> evaluation -> predictions -> an FE² macro comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
MH=${VENV:-.venv}/bin/magnetohom  # the Makefile passes its VENV (Debian 13 CI: /opt/...)
OUT=${OUT:-out/demo}
# a fresh run each time (a dataset left by an older demo with other parameters would be refused
# by the resumable writer); DEMO_KEEP=1 keeps what is there, to show resuming
[ "${DEMO_KEEP:-0}" = 1 ] || rm -rf "$OUT"
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

echo "== 1. four 256² SVEs (non-overlapping monodisperse disks, radius 8 px) and their labels"
$MH generate --dim 2 --size 256 --vf 0.35 -n 4 --seed 1 -o "$OUT/sves"
$MH homogenize "$OUT"/sves/*.npy
$MH bounds "$OUT/sves/sve_0000.npy"

echo "== 2. a labelled dataset, samples split over 2 MPI ranks (resumable)"
mpirun -n 2 $MH dataset "$OUT/data.h5" -n ${DEMO_SAMPLES:-400} --dim 2 --size 64 --radius 4 \
    --vf-min 0.05 --vf-max 0.45 --seed 7

echo "== 3. a CNN surrogate trained on it, evaluated on its held-out test split"
echo "   (a small demo model: see surrogate/models/default for the full-size one and its accuracy)"
$MH train "$OUT/data.h5" -o "$OUT/model" --epochs ${DEMO_EPOCHS:-40} --quiet
$MH evaluate "$OUT/model" "$OUT/data.h5" -o "$OUT/figures"

echo "== 4. predictions for the SVEs of step 1 (pretrained models shipped in the package):"
echo "   the general model (any image and materials, an error bound per answer), with FE where"
echo "   the bound exceeds 2 %, and the specialist for the paper's disks"
$MH predict "$OUT"/sves/*.npy --mu-matrix 2 --mu-inclusion 1000
$MH predict "$OUT"/sves/*.npy --mu-matrix 2 --mu-inclusion 1000 --fallback fe --tolerance 0.02
$MH predict "$OUT"/sves/*.npy --model disks

echo "== 5. FE² magnetic shield: CNN and analytic providers against the full FE² reference"
$MH macro --demo shield --size tiny --resolution 64 --compare --providers fe,analytic -o "$OUT/shield"

echo "demo outputs in $OUT"
