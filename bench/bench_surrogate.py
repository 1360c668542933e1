"""Inference speed of the CNN surrogates (SVEs per second) and, optionally, of the FE labels.

Measures, in one process on this machine, the end-to-end provider call
(:class:`surrogate.provider.CNNProvider`: bool images in, float64 tensors out) for the presets at
a given resolution, with untrained weights (speed does not depend on them) or a trained model.

    python bench/bench_surrogate.py                       # 256^2, batch 256, both presets
    python bench/bench_surrogate.py --threads 2 --fe 4    # + FE time per SVE (micro.homogenization)
    python bench/bench_surrogate.py --model models/mono --json bench.json
    python bench/bench_surrogate.py --threads 2 --images disks --model default fast --tf-stem
    python bench/bench_surrogate.py --threads 2 --images overlapping --fe 20 --model overlapping

``--images disks``: non-overlapping disk SVEs, vf 0.1-0.5 (with ``--dim 3``: spheres, vf 0.1-0.35);
``--images overlapping``: overlapping disks, vf 0.1-0.9 (the FE labels of ``--fe`` are of the
same kind; random pixels are not representative of the solver's cost).

    python bench/bench_surrogate.py --threads 2 --dim 3 --resolution 48 --images disks --fe 10 \
        --batch 64 --model runs/models/s48_solve2
    python bench/bench_surrogate.py --threads 2 --dim 3 --resolution 100 --images disks --fe 3 \
        --batch 8 --model spheres --any-size    # the 48^3 network on 100^3 cells
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _sves(n: int, dim: int, resolution: int, *, overlap: bool, seed: int):
    """``n`` SVEs (bool images) over a range of volume fractions, default radius."""
    import numpy as np

    from micro.generate import generate_sve

    fractions = np.linspace(0.1, 0.9 if overlap else (0.5 if dim == 2 else 0.35), n)
    return np.stack(
        [
            generate_sve(
                dim=dim, size=resolution, volume_fraction=f, overlap=overlap, rng=seed + i
            ).image
            for i, f in enumerate(fractions)
        ]
    )


def _untrained_provider(preset: str, dim: int, resolution: int, batch_size: int):
    from surrogate.bundle import ModelBundle
    from surrogate.data import TargetTransform
    from surrogate.models import build_model
    from surrogate.provider import CNNProvider

    model = build_model(preset, dim=dim, resolution=resolution, rng=0)
    kind = "log-mandel" if preset == "default" else "standardized-diagonal"
    target = TargetTransform(
        kind, dim, *(((0.0,) * dim, (1.0,) * dim) if kind != "log-mandel" else ())
    )
    meta = {
        "preset": preset,
        "dim": dim,
        "resolution": resolution,
        "mu_matrix": 1.0,
        "mu_inclusion": 250.0,
        "target": target.to_dict(),
        "vf_range": [0.0, 1.0],
        "model_options": {},
        "members": ["untrained"],
        "name": f"untrained-{preset}",
    }
    bundle = ModelBundle(path=Path(f"untrained-{preset}"), metadata=meta, members=(model,))
    return CNNProvider(bundle, batch_size=batch_size, spread_threshold=None), model.count_params()


def _time(fn, repeats: int) -> float:
    fn()  # warm-up (tracing)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256, help="images per measured call")
    ap.add_argument("--presets", nargs="+", default=["default", "paper"])
    ap.add_argument("--model", nargs="+", default=None, help="measure these trained models instead")
    ap.add_argument(
        "--tf-stem",
        action="store_true",
        help="also time each model with its stem inside TensorFlow (host_stem=False)",
    )
    ap.add_argument("--repeats", type=int, default=3, help="best of N timed calls")
    ap.add_argument(
        "--streams",
        type=int,
        nargs="+",
        default=[1],
        help="time each model with these CNNProvider(streams=...) (chunks at once)",
    )
    ap.add_argument(
        "--any-size",
        action="store_true",
        help="coarse-solve models on --resolution whatever their training cell size",
    )
    ap.add_argument("--threads", type=int, default=None, help="TensorFlow intra-op threads")
    ap.add_argument("--fe", type=int, default=0, metavar="N", help="also time N FE labels")
    ap.add_argument(
        "--images",
        choices=("random", "disks", "overlapping"),
        default="random",
        help="random pixels, or non-overlapping / overlapping disk (sphere) SVEs (micro.generate)",
    )
    ap.add_argument("--json", default=None, help="write results here")
    args = ap.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    rng = np.random.default_rng(0)
    shape = (args.batch,) + (args.resolution,) * args.dim
    overlap = args.images == "overlapping"
    if args.images != "random":
        unique = _sves(min(args.batch, 16), args.dim, args.resolution, overlap=overlap, seed=0)
        images = np.stack([unique[i % len(unique)] for i in range(args.batch)])
    else:
        vf = rng.uniform(0.05, 0.6, size=(args.batch,) + (1,) * args.dim)
        images = rng.random(shape) < vf
    results = {
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "resolution": args.resolution,
        "dim": args.dim,
        "batch": args.batch,
        "runs": [],
    }
    if args.model:
        from surrogate.provider import CNNProvider

        runs = []
        for model in args.model:
            for host in (True, False) if args.tf_stem else (True,):
                for streams in args.streams:
                    p = CNNProvider(
                        model,
                        batch_size=args.batch,
                        spread_threshold=None,
                        host_stem=host,
                        streams=streams,
                        any_size=args.any_size,
                    )
                    n_params = sum(m.count_params() for m in p.bundle.members)
                    name = model if host else f"{model} (TF stem)"
                    if len(args.streams) > 1 or streams > 1:
                        name += f" x{streams}"
                    runs.append((name, p, n_params))
    else:
        runs = [
            (p, *_untrained_provider(p, args.dim, args.resolution, args.batch))
            for p in args.presets
        ]
    for name, provider, n_params in runs:
        sec = _time(lambda provider=provider: provider(images), args.repeats)
        rate = args.batch / sec
        results["runs"].append(
            {"model": name, "params": n_params, "seconds": sec, "sve_per_s": rate}
        )
        print(
            f"{name:>10}: {rate:8.1f} SVE/s  ({sec * 1e3:.0f} ms per {args.batch}; "
            f"{n_params} parameters)"
        )
    if args.fe:
        from micro.homogenization import homogenize

        # FE labels of real SVEs (as --images, disks if random), whatever images the CNN was
        # timed on: random pixels are not representative of the solver's cost
        fe_imgs = _sves(args.fe, args.dim, args.resolution, overlap=overlap, seed=100)
        homogenize(fe_imgs[:1])  # set-up
        t = time.perf_counter()
        homogenize(fe_imgs)
        per = (time.perf_counter() - t) / args.fe
        results["fe_seconds_per_sve"] = per
        print(f"{'FE':>10}: {per:8.3f} s per SVE; speed-up of each run:")
        for run in results["runs"]:
            run["speedup_vs_fe"] = per * run["sve_per_s"]
            print(f"{run['model']:>10}: {run['speedup_vs_fe']:.0f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
