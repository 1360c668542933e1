"""The stage graph of the paper's study, built from a :class:`~magnetohom.study.config.StudyConfig`.

Stages (names as shown by ``magnetohom study CONFIG --list``; outputs relative to the study
directory):

``data.CLASS``            ``data/CLASS.h5`` by :func:`micro.generate_dataset` (resumes by itself)
                          for the four 2D classes and ``spheres`` -- with ``[study] ranks > 1``
                          in a child ``mpirun -n ranks`` (the same file as a serial run) --, and
                          ``results/samples_CLASS.npz`` (a few images at spread volume
                          fractions, for Figs. 6 and 13);
``train.mono.PRESET``     ``models/mono_PRESET`` by :func:`surrogate.training` (resumes from its
                          checkpoints), one per preset of ``[train]``;
``lc.FRACTION``           ``models/lc_FRACTION``: the learning-curve preset on the first
                          ``FRACTION`` of the monodisperse samples;
``transfer.CLASS.PRESET`` ``models/CLASS_PRESET_transfer``: from ``train.mono.PRESET``, conv
                          layers frozen, then fine-tuning;
``scratch.CLASS.PRESET``  ``models/CLASS_PRESET_scratch``: the same data, from scratch;
``train.spheres.PRESET``  ``models/spheres_PRESET``;
``evaluate``, ``inference``, ``macro``
                          :mod:`magnetohom.study.measure`;
``report``                ``report/`` by :func:`magnetohom.study.report.write_report`.

Every sample of class ``k`` uses ``base_seed = 1000 * seed + k``; every training uses the study
seed for weights and for the 70/15/15 split, so all models of one dataset share its test split.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from magnetohom.errors import InputError, SolverError
from magnetohom.study.config import CLASS_TITLES, CLASSES_2D, StudyConfig
from magnetohom.study.pipeline import Stage, StageContext

__all__ = [
    "build_stages",
    "class_seed",
    "data_path",
    "lc_name",
    "model_stages",
]

log = logging.getLogger(__name__)

_CLASS_INDEX = {name: k + 1 for k, name in enumerate((*CLASSES_2D, "spheres"))}


def class_seed(cfg: StudyConfig, cls: str) -> int:
    """Base seed of the dataset of class ``cls``."""
    return 1000 * cfg.seed + _CLASS_INDEX[cls]


def data_path(cls: str) -> str:
    """Dataset file of a class, relative to the study directory."""
    return f"data/{cls}.h5"


def lc_name(fraction: float) -> str:
    """Stage name of a learning-curve model."""
    return f"lc.{fraction:g}"


def _progress() -> bool:
    return sys.stderr.isatty()


def _class_params(cfg: StudyConfig, cls: str) -> dict[str, Any]:
    """What :func:`micro.generate_dataset` is called with for class ``cls``."""
    common = {"mu_matrix": cfg.mu_matrix, "mu_inclusion": cfg.mu_inclusion}
    if cls == "spheres":
        d3 = cfg.data3d
        return dict(
            n_samples=d3.n_samples,
            dim=3,
            size=d3.resolution,
            radius=d3.radius,
            radius_range=None,
            overlap=False,
            vf_range=d3.vf_range,
            base_seed=class_seed(cfg, cls),
            **common,
        )
    d2, c = cfg.data2d, cfg.data2d.get(cls)
    return dict(
        n_samples=c.n_samples,
        dim=2,
        size=d2.resolution,
        radius=None if c.polydisperse else d2.radius,
        radius_range=d2.radius_range if c.polydisperse else None,
        overlap=c.overlap,
        vf_range=c.vf_range,
        base_seed=class_seed(cfg, cls),
        **common,
    )


_MPI_CHILD = """
import json, sys
import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)
from micro.dataset import generate_dataset
generate_dataset(sys.argv[1], progress=None, **json.loads(sys.argv[2]))
"""
_MPI_ENV_KEEP = (
    "OMPI_ALLOW_RUN_AS_ROOT",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM",
    "OMPI_MCA_rmaps_base_oversubscribe",
)


def _generate(path: Path, params: dict[str, Any], ranks: int) -> dict[str, Any]:
    """Generate or resume a dataset; on ``ranks > 1`` in a child ``mpirun -n ranks``.

    The file does not depend on the number of ranks (:mod:`micro.dataset`). Returns the
    samples, finished samples, samples finished now and wall seconds.
    """
    if ranks == 1:
        from mpi4py import MPI

        from micro.dataset import generate_dataset

        s = generate_dataset(path, comm=MPI.COMM_SELF, progress=_progress(), **params)
        return {
            "n_samples": s.n_samples,
            "n_done": s.n_done,
            "n_new": s.n_new,
            "seconds": s.seconds,
        }
    import json
    import os
    import shutil
    import subprocess
    import time

    from micro.dataset_io import load_dataset

    mpirun = shutil.which("mpirun")
    if mpirun is None:
        raise InputError("[study] ranks > 1 needs mpirun on the PATH")
    before = len(load_dataset(path, require_labels=False)) if path.exists() else 0
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OMPI_", "PMIX_")) or k in _MPI_ENV_KEEP
    }
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        mpirun,
        "-n",
        str(ranks),
        sys.executable,
        "-c",
        _MPI_CHILD,
        str(path),
        json.dumps(params),
    ]
    log.info("labelling %s on %d MPI ranks", path, ranks)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SolverError(f"mpirun dataset generation of {path} failed (exit {proc.returncode})")
    done = len(load_dataset(path))
    return {
        "n_samples": params["n_samples"],
        "n_done": done,
        "n_new": done - before,
        "seconds": seconds,
    }


def _pick_samples(vf: np.ndarray, k: int) -> np.ndarray:
    """Positions of ``k`` samples at evenly spread volume fractions (sorted by vf)."""
    order = np.argsort(vf, kind="stable")
    pos = np.unique(np.round(np.linspace(0, vf.size - 1, min(k, vf.size))).astype(int))
    return order[pos]


def _data_stage(cfg: StudyConfig, cls: str) -> Stage:
    params = _class_params(cfg, cls)
    samples = f"results/samples_{cls}.npz"

    def run(ctx: StageContext) -> dict[str, Any]:
        from micro.dataset_io import load_dataset

        path = ctx.path(data_path(cls))
        summary = _generate(path, params, cfg.ranks)
        ds = load_dataset(path)
        pick = _pick_samples(ds.volume_fraction, cfg.report.samples_per_class)
        np.savez_compressed(
            ctx.path(samples),
            images=ds.images[pick],
            volume_fraction=ds.volume_fraction[pick],
            rows=ds.index[pick],
        )
        sec = ds.solve_seconds
        return {
            "class": cls,
            "title": CLASS_TITLES[cls],
            "path": data_path(cls),
            "samples": samples,
            "dim": int(params["dim"]),
            "resolution": int(params["size"]),
            "radius": params["radius"],
            "radius_range": params["radius_range"],
            "overlap": bool(params["overlap"]),
            "vf_range": list(params["vf_range"]),
            "n_samples": int(summary["n_samples"]),
            "n_done": int(summary["n_done"]),
            "n_new": int(summary["n_new"]),
            "vf_measured": [float(ds.volume_fraction.min()), float(ds.volume_fraction.max())],
            "label_seconds_median": float(np.median(sec)),
            "label_seconds_total": float(np.sum(sec)),
            "cg_iterations_mean": float(np.mean(ds.iterations)),
            "generate_seconds": float(summary["seconds"]),
            "ranks": cfg.ranks,
        }

    return Stage(f"data.{cls}", run, params, (), (data_path(cls), samples))


def _train_stage(
    cfg: StudyConfig,
    name: str,
    *,
    cls: str,
    out: str,
    preset: str,
    epochs: int | None,
    init: str | None = None,
    fine_tune_epochs: int | None = None,
    max_samples: int | None = None,
    kind: str,
) -> Stage:
    params = {
        "preset": preset,
        "epochs": epochs,
        "batch_size": cfg.train.batch_size,
        "init": init,
        "freeze": "conv" if init else None,
        "fine_tune_epochs": fine_tune_epochs,
        "max_samples": max_samples,
        "seed": cfg.seed,
    }
    deps = (f"data.{cls}",) + ((init,) if init else ())

    def run(ctx: StageContext) -> dict[str, Any]:
        from surrogate.training import train

        init_dir = str(ctx.root / ctx.results[init]["model_dir"]) if init else None
        result = train(
            ctx.root / data_path(cls),
            out=ctx.path(out),
            preset=preset,
            epochs=epochs,
            batch_size=cfg.train.batch_size,
            init=init_dir,
            freeze="conv" if init else None,
            fine_tune_epochs=fine_tune_epochs,
            seed=cfg.seed,
            max_samples=max_samples,
            progress=_progress(),
            command=f"magnetohom study {cfg.source or cfg.name} (stage {name})",
        )
        meta = result.metadata
        hist = result.history[0] if result.history else {}
        split = meta.get("split", {})
        plan = meta.get("training", {}).get("plan", {})
        return {
            "model_dir": out,
            "kind": kind,
            "class": cls,
            "preset": preset,
            "init": init,
            "epochs_run": int(result.epochs_run[0]),
            "epochs_planned": int(plan.get("epochs", 0)) + int(plan.get("fine_tune_epochs", 0)),
            "best_val_loss": float(result.best_val_loss[0]),
            "train_seconds": float(meta.get("training", {}).get("seconds", result.seconds)),
            "n_train": int(split.get("n_train", 0)),
            "n_val": int(split.get("n_val", 0)),
            "n_test": int(split.get("n_test", 0)),
            "n_labeled": int(meta.get("dataset", {}).get("n_labeled", 0)),
            "history": {k: list(hist.get(k, [])) for k in ("loss", "val_loss")},
        }

    return Stage(name, run, params, deps, (out,))


def model_stages(cfg: StudyConfig) -> list[Stage]:
    """The training stages (mono presets, learning curve, transfer/scratch, spheres)."""
    out = []
    for p in cfg.train.presets:
        out.append(
            _train_stage(
                cfg,
                f"train.mono.{p}",
                cls="mono",
                out=f"models/mono_{p}",
                preset=p,
                epochs=cfg.train.epochs_of(p),
                kind="mono",
            )
        )
    lc = cfg.learning_curve
    n_mono = cfg.data2d.get("mono").n_samples
    for f in lc.fractions:
        out.append(
            _train_stage(
                cfg,
                lc_name(f),
                cls="mono",
                out=f"models/lc_{f:g}",
                preset=lc.preset,
                epochs=lc.epochs if lc.epochs is not None else cfg.train.epochs_of(lc.preset),
                max_samples=int(round(f * n_mono)),
                kind="learning_curve",
            )
        )
    t = cfg.transfer
    for cls in t.classes:
        for p in t.presets:
            out.append(
                _train_stage(
                    cfg,
                    f"transfer.{cls}.{p}",
                    cls=cls,
                    out=f"models/{cls}_{p}_transfer",
                    preset=p,
                    epochs=t.epochs,
                    init=f"train.mono.{p}",
                    fine_tune_epochs=t.fine_tune_epochs,
                    kind="transfer",
                )
            )
            out.append(
                _train_stage(
                    cfg,
                    f"scratch.{cls}.{p}",
                    cls=cls,
                    out=f"models/{cls}_{p}_scratch",
                    preset=p,
                    epochs=t.scratch_epochs,
                    kind="scratch",
                )
            )
    for p in cfg.threed.presets:
        out.append(
            _train_stage(
                cfg,
                f"train.spheres.{p}",
                cls="spheres",
                out=f"models/spheres_{p}",
                preset=p,
                epochs=cfg.threed.epochs_of(p),
                kind="spheres",
            )
        )
    return out


def build_stages(cfg: StudyConfig) -> list[Stage]:
    """All stages of a study, in a valid order."""
    from magnetohom.study import measure, report

    classes = list(CLASSES_2D) + (["spheres"] if cfg.threed.presets else [])
    stages = [_data_stage(cfg, c) for c in classes]
    models = model_stages(cfg)
    stages += models
    stages.append(measure.evaluate_stage(cfg, [s.name for s in models]))
    stages.append(measure.inference_stage(cfg))
    stages.append(measure.macro_stage(cfg))
    deps = tuple(s.name for s in stages)
    stages.append(report.report_stage(cfg, deps))
    return stages
