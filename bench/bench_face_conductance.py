"""What face conductances a coarse-solve network (``head="solve"``) puts inside each phase.

For every image the network's face conductances (layer ``conductance``: ``d`` per coarse cell,
the face between a cell and its ``+x_a`` neighbour) are split by what lies on both sides: faces
between two cells of pure matrix, faces between two cells of pure inclusion, and the rest
(interfaces). The script prints the median conductance of each kind per volume-fraction bin.

A network trained only on isolated inclusions (non-overlapping disks) cannot tell from its labels
what conductance an inclusion's interior has: at a contrast of 250 the flux barely depends on it.
This table shows what such a network chose, and what a transfer has to change.

Run from the repository root::

    python bench/bench_face_conductance.py MODEL... --data runs/data_overlap.h5 [--n 200]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def face_table(model_ref: str, images: np.ndarray, vf: np.ndarray, bins: np.ndarray) -> list:
    """Median conductance of matrix, inclusion and interface faces per volume-fraction bin."""
    import keras

    from magnetohom.errors import InputError
    from surrogate.registry import load_model
    from surrogate.stem import block_means

    bundle = load_model(model_ref)
    options = bundle.metadata["model_options"]
    if options.get("head") != "solve":
        raise InputError(f"{model_ref}: not a coarse-solve network (head={options.get('head')!r})")
    member = bundle.members[0]
    sub = keras.Model(member.inputs, member.get_layer("conductance").output)
    k = sub.predict(images[..., None].astype("float32"), verbose=0, batch_size=16)
    frac = block_means(images, images.shape[1] // k.shape[1])[..., 0]  # 0/1 exact in float32
    dim = images.ndim - 1
    rows = []
    for lo, hi in itertools.pairwise(bins):
        sel = (vf >= lo) & (vf < hi)
        if not sel.any():
            continue
        f0, k_sel = frac[sel], k[sel]
        kinds = {"matrix": [], "inclusion": [], "interface": []}
        for a in range(dim):
            f1, ka = np.roll(f0, -1, axis=1 + a), k_sel[..., a]
            matrix, inclusion = (f0 == 0) & (f1 == 0), (f0 == 1) & (f1 == 1)
            kinds["matrix"].append(ka[matrix])
            kinds["inclusion"].append(ka[inclusion])
            kinds["interface"].append(ka[~(matrix | inclusion)])
        med = {
            name: float(np.median(np.concatenate(v))) if sum(map(len, v)) else float("nan")
            for name, v in kinds.items()
        }
        rows.append((lo, hi, int(sel.sum()), med))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="coarse-solve model names or directories")
    p.add_argument("--data", required=True, help="dataset file (images and volume fractions)")
    p.add_argument("--n", type=int, default=200, help="first N images (default 200)")
    p.add_argument("--bins", type=int, default=4, help="volume-fraction bins (default 4)")
    args = p.parse_args(argv)
    import tensorflow  # noqa: F401  (before h5py/dolfinx, see README)

    from magnetohom.errors import InputError
    from surrogate.data import load_labeled

    data = load_labeled(args.data)
    images, vf = data.images[: args.n], data.volume_fraction[: args.n]
    bins = np.linspace(vf.min(), vf.max() + 1e-9, args.bins + 1)
    print(
        f"median face conductance (matrix {data.mu_matrix:g}, inclusion {data.mu_inclusion:g}) "
        f"on {len(vf)} images of {args.data}"
    )
    head = ("model", "vf bin", "N", "matrix", "inclusion", "interface")
    print("{:<28} {:>13} {:>4} {:>8} {:>10} {:>10}".format(*head))
    try:
        for ref in args.models:
            for lo, hi, n, med in face_table(ref, images, vf, bins):
                print(
                    f"{ref:<28} {lo:6.2f}-{hi:<6.2f} {n:4d} {med['matrix']:8.2f} "
                    f"{med['inclusion']:10.2f} {med['interface']:10.2f}"
                )
    except InputError as err:
        print(f"bench_face_conductance: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
