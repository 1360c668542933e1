"""CNNProvider(streams=1) against streams=2, interleaved in one process (SVEs per second).

    OMP_NUM_THREADS=2 python bench/bench_streams.py fast default --rounds 15

Each round calls both providers on the same batch of 256 non-overlapping disk SVEs (256², vf
0.1-0.5), alternating which goes first; prints the median and best rates and their ratio. On a
noisy machine interleaving is what makes the ratio trustworthy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("models", nargs="+", help="registry names or model directories")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads")
    args = ap.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_surrogate import _sves

    from surrogate.provider import CNNProvider

    unique = _sves(16, 2, 256, overlap=False, seed=0)
    images = np.stack([unique[i % len(unique)] for i in range(args.batch)])
    for model in args.models:
        providers = {
            k: CNNProvider(model, batch_size=args.batch, spread_threshold=None, streams=k)
            for k in (1, 2)
        }
        for p in providers.values():  # tracing, caches
            p(images)
            p(images)
        times: dict[int, list[float]] = {1: [], 2: []}
        for r in range(args.rounds):
            for k in (1, 2) if r % 2 else (2, 1):
                t = time.perf_counter()
                providers[k](images)
                times[k].append(time.perf_counter() - t)
        med = {k: args.batch / float(np.median(v)) for k, v in times.items()}
        best = {k: args.batch / min(v) for k, v in times.items()}
        print(
            f"{model}: median {med[1]:.0f} / {med[2]:.0f} SVE/s with 1 / 2 streams "
            f"(x{med[2] / med[1]:.2f}); best {best[1]:.0f} / {best[2]:.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
