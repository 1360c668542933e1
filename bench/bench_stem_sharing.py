"""Members of an ensemble share the host stem: how much does it save? (one process, A/B)

    OMP_NUM_THREADS=2 python bench/bench_stem_sharing.py default --data runs/data_mono.h5

Times ``CNNProvider(model)(images)`` on 256 images of the dataset two ways, alternately in the
same process, best of ``--repeats`` each, ``--trials`` times: as the provider runs now (the
block-bounds stem computed once per chunk for all members with the same stem) and as it ran
before (every member computing its own stem). Both give the same numbers (checked).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("model", help="registry name or model directory (two or more members)")
    ap.add_argument("--data", required=True, help="dataset whose first 256 images are timed")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args(argv)

    import numpy as np
    import tensorflow  # noqa: F401  (before h5py/dolfinx, see README)

    from surrogate.data import load_labeled
    from surrogate.provider import CNNProvider

    images = np.asarray(load_labeled(args.data, max_samples=256).images).astype(bool)
    provider = CNNProvider(args.model, spread_threshold=None)
    provider.warm_up()
    fns = provider._functions()
    shared = provider._run

    def separate(batch):
        return [np.asarray(fn(batch), dtype=np.float64) for fn in fns]

    ref = provider(images)
    provider._run = separate
    np.testing.assert_allclose(provider(images), ref, rtol=1e-12)
    print(f"{args.model}: {len(fns)} members, 256 images of {args.data}")
    for _ in range(args.trials):
        for name, run in (("stem per member", separate), ("shared stem", shared)):
            provider._run = run
            provider(images)
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                provider(images)
                best = min(best, time.perf_counter() - t0)
            print(f"  {name:>15}: {1e3 * best:6.1f} ms per 256 ({256 / best:6.0f} SVE/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
