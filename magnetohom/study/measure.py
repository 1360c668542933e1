"""The measuring stages of a study: accuracy, analytic estimates, inference timing, FE².

``evaluate``   every trained model on its test split (:func:`surrogate.evaluation.evaluate`), the
               analytic estimates of :mod:`micro.analytic` at the measured volume fractions of
               the same test samples, errors binned by volume fraction, and the learning curve
               (every learning-curve model and the full model on the same held-out samples:
               test samples of the full model that no learning-curve model trained on).
               Per-sample arrays go to ``results/evaluate.npz``.
``inference``  the CNN provider call (bool images in, tensors out; best of ``repeats``) against
               DOLFINx labels timed one by one after the set-up, in the same process, in 2D
               and 3D.
``macro``      :func:`macro.compare.compare_providers` on one demo, the CNN being the study's own
               monodisperse model of ``[macro] preset``, and the SVE disks of the study's radius.

MAPE here is the paper's (Eq. 12), in percent, per diagonal component; "diag" is its mean over
the diagonal components, the number compared across methods.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from magnetohom.study.config import StudyConfig
from magnetohom.study.pipeline import Stage, StageContext
from magnetohom.study.stages import data_path, lc_name

__all__ = [
    "ESTIMATES",
    "binned_mape",
    "diag_mape",
    "evaluate_stage",
    "inference_stage",
    "macro_stage",
]

log = logging.getLogger(__name__)

#: Analytic estimates compared with the CNN (names of :class:`micro.analytic.Estimates`).
ESTIMATES = ("voigt", "reuss", "hs_lower", "hs_upper", "maxwell_garnett", "self_consistent")


def diag_mape(mu_true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Absolute percentage errors ``(N, d)`` of the diagonal of ``mu_true (N, d, d)``.

    ``pred`` is ``(N, d, d)`` (tensors) or ``(N,)`` (an isotropic estimate).
    """
    t = np.diagonal(mu_true, axis1=1, axis2=2)
    p = np.diagonal(pred, axis1=1, axis2=2) if np.ndim(pred) == 3 else np.asarray(pred)[:, None]
    return 100.0 * np.abs(p - t) / np.abs(t)


def binned_mape(vf: np.ndarray, ape: np.ndarray, edges: np.ndarray) -> list[float | None]:
    """Mean of ``ape (N,)`` in each volume-fraction bin (None for an empty bin)."""
    idx = np.clip(np.searchsorted(edges, vf, side="right") - 1, 0, edges.size - 2)
    return [
        float(ape[idx == b].mean()) if np.any(idx == b) else None for b in range(edges.size - 1)
    ]


def _rows_to_pos(index: np.ndarray, rows: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(index, rows)
    if np.any(pos >= index.size) or np.any(index[np.minimum(pos, index.size - 1)] != rows):
        raise RuntimeError("evaluation rows are not labeled samples of the dataset")
    return pos


def evaluate_stage(cfg: StudyConfig, model_stages: list[str]) -> Stage:
    """The ``evaluate`` stage over the given training stages."""
    arrays = "results/evaluate.npz"
    params = {"vf_bins": cfg.report.vf_bins, "learning_curve": cfg.learning_curve.preset}

    def run(ctx: StageContext) -> dict[str, Any]:
        from micro.analytic import estimates
        from micro.dataset_io import load_dataset
        from surrogate.evaluation import evaluate

        models: dict[str, Any] = {}
        npz: dict[str, np.ndarray] = {}
        tests: dict[str, dict[str, Any]] = {}
        data: dict[str, Any] = {}
        for name in model_stages:
            tr = ctx.results[name]
            cls = tr["class"]
            if cls not in data:
                data[cls] = load_dataset(ctx.root / data_path(cls))
            ds = data[cls]
            if tr["kind"] == "learning_curve":
                continue
            ev = evaluate(ctx.root / tr["model_dir"], ctx.root / data_path(cls), split="test")
            pos = _rows_to_pos(ds.index, ev.rows)
            d = ds.dim
            pred = np.zeros((ev.n, d, d))
            true = ds.mu_eff[pos]
            for c, comp in enumerate(ev.components):
                i, j = int(comp[2]) - 1, int(comp[3]) - 1
                pred[:, i, j] = pred[:, j, i] = ev.y_pred[:, c]
            ape = diag_mape(true, pred)
            models[name] = {
                **{k: tr[k] for k in ("kind", "class", "preset", "model_dir")},
                "components": ev.components,
                "mape": dict(zip(ev.components, map(float, ev.mape))),
                "r2": dict(zip(ev.components, map(float, ev.r2))),
                "mape_scale": dict(zip(ev.components, ev.mape_scale)),
                "mape_diag": float(ape.mean()),
                "n_test": ev.n,
            }
            npz[f"{name}__rows"] = ev.rows
            npz[f"{name}__y_true"] = ev.y_true
            npz[f"{name}__y_pred"] = ev.y_pred
            npz[f"{name}__vf"] = ds.volume_fraction[pos]
            npz[f"{name}__ape_diag"] = ape.mean(axis=1)
            if cls in tests and not np.array_equal(tests[cls]["rows"], ev.rows):
                raise RuntimeError(f"models of class {cls} have different test splits")
            tests.setdefault(cls, {"rows": ev.rows, "pos": pos, "models": []})["models"].append(
                name
            )

        analytic: dict[str, Any] = {}
        for cls, t in tests.items():
            ds = data[cls]
            vf, true = ds.volume_fraction[t["pos"]], ds.mu_eff[t["pos"]]
            est = estimates(vf, cfg.mu_matrix, cfg.mu_inclusion, dim=ds.dim).as_dict()
            edges = np.linspace(vf.min(), vf.max(), cfg.report.vf_bins + 1)
            entry: dict[str, Any] = {"n": int(vf.size), "mape_diag": {}, "mape": {}, "binned": {}}
            entry["vf_edges"] = edges.tolist()
            entry["bin_counts"] = np.histogram(vf, bins=edges)[0].tolist()
            for e in ESTIMATES:
                ape = diag_mape(true, est[e])
                entry["mape_diag"][e] = float(ape.mean())
                entry["mape"][e] = ape.mean(axis=0).tolist()
                entry["binned"][e] = binned_mape(vf, ape.mean(axis=1), edges)
                npz[f"analytic__{cls}__{e}"] = est[e]
            for name in t["models"]:
                entry["binned"][name] = binned_mape(vf, npz[f"{name}__ape_diag"], edges)
            npz[f"analytic__{cls}__vf"] = vf
            npz[f"analytic__{cls}__mu_true"] = true
            entry["models"] = t["models"]
            analytic[cls] = entry

        curve = _learning_curve(ctx, cfg, data.get("mono"), models) if "mono" in data else []
        np.savez_compressed(ctx.path(arrays), **npz)
        return {"models": models, "analytic": analytic, "learning_curve": curve, "arrays": arrays}

    return Stage("evaluate", run, params, tuple(model_stages), (arrays,))


def _learning_curve(
    ctx: StageContext, cfg: StudyConfig, ds: Any, models: dict[str, Any]
) -> list[dict[str, Any]]:
    """MAPE/R² of the learning-curve models and the full model on common held-out samples."""
    lc = cfg.learning_curve
    full = f"train.mono.{lc.preset}"
    if not lc.fractions or full not in models:
        return []
    from surrogate.provider import CNNProvider

    names = [lc_name(f) for f in lc.fractions] + [full]
    n_max = max(int(round(f * cfg.data2d.get("mono").n_samples)) for f in lc.fractions)
    # rows >= n_max were seen by no learning-curve model; the full model held them out
    rows = _test_rows(ctx, full, np.asarray(ds.index, dtype=np.int64))
    rows = rows[rows >= n_max]
    if rows.size == 0:
        raise RuntimeError("learning curve: no held-out samples beyond the largest fraction")
    pos = _rows_to_pos(ds.index, rows)
    true = ds.mu_eff[pos]
    out = []
    for name in names:
        tr = ctx.results[name]
        pred = CNNProvider(ctx.root / tr["model_dir"], spread_threshold=None)(ds.images[pos])
        ape = diag_mape(true, pred)
        t, p = np.diagonal(true, axis1=1, axis2=2), np.diagonal(pred, axis1=1, axis2=2)
        ss_res = np.sum((t - p) ** 2, axis=0)
        r2 = 1.0 - ss_res / np.sum((t - t.mean(axis=0)) ** 2, axis=0)
        out.append(
            {
                "stage": name,
                "n_train": tr["n_train"],
                "n_labeled": tr["n_labeled"],
                "n_eval": int(rows.size),
                "mape_diag": float(ape.mean()),
                "mape": ape.mean(axis=0).tolist(),
                "r2": r2.tolist(),
                "epochs_run": tr["epochs_run"],
                "train_seconds": tr["train_seconds"],
            }
        )
    return out


def _test_rows(ctx: StageContext, stage: str, indices: np.ndarray) -> np.ndarray:
    """File rows of the test split of the model of ``stage`` (``indices``: labeled rows of its
    training file)."""
    import json

    from surrogate.data import held_out_rows

    meta = json.loads((ctx.root / ctx.results[stage]["model_dir"] / "metadata.json").read_text())
    return held_out_rows(meta["split"], indices)["test"]


def _time_call(fn: Any, repeats: int) -> float:
    fn()  # warm-up: tracing, first allocation
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _timing(ctx: StageContext, cfg: StudyConfig, cls: str, presets: tuple[str, ...], n_fe: int):
    from micro.dataset_io import load_dataset
    from micro.homogenization import Homogenizer
    from surrogate.provider import CNNProvider

    inf = cfg.inference
    ds = load_dataset(ctx.root / data_path(cls))
    reps = -(-inf.n_images // len(ds))
    images = np.concatenate([ds.images] * reps)[: inf.n_images]
    out: dict[str, Any] = {
        "class": cls,
        "dim": ds.dim,
        "resolution": int(ds.images.shape[1]),
        "n_images": inf.n_images,
        "models": {},
    }
    for p in presets:
        prov = CNNProvider(
            ctx.root / ctx.results[f"train.{cls}.{p}"]["model_dir"],
            batch_size=inf.n_images,
            spread_threshold=None,
        )
        sec = _time_call(lambda prov=prov: prov(images), inf.repeats)
        out["models"][p] = {"seconds": sec, "sve_per_s": inf.n_images / sec}
    if n_fe:
        t0 = time.perf_counter()
        hom = Homogenizer(images.shape[1:])
        out["fe_setup_seconds"] = time.perf_counter() - t0
        per = []
        for k in range(n_fe):
            t0 = time.perf_counter()
            hom(
                images[k % len(images)][None],
                mu_matrix=cfg.mu_matrix,
                mu_inclusion=cfg.mu_inclusion,
            )
            per.append(time.perf_counter() - t0)
        out["n_fe"] = n_fe
        out["fe_seconds_per_sve"] = float(np.median(per))
        out["fe_seconds_per_sve_mean"] = float(np.mean(per))
        fe100 = out["fe_seconds_per_sve"] * inf.n_images
        out["fe_seconds"] = fe100
        for m in out["models"].values():
            m["speedup_vs_fe"] = fe100 / m["seconds"]
    return out


def inference_stage(cfg: StudyConfig) -> Stage:
    """The ``inference`` stage: CNN SVEs/s against FE labels, 2D (and 3D)."""
    params = {"inference": cfg.section("inference"), "mu": [cfg.mu_matrix, cfg.mu_inclusion]}
    deps = tuple(f"train.mono.{p}" for p in cfg.train.presets)
    deps += tuple(f"train.spheres.{p}" for p in cfg.threed.presets)

    def run(ctx: StageContext) -> dict[str, Any]:
        import os

        out = {"threads": os.cpu_count()}
        out["2d"] = _timing(ctx, cfg, "mono", cfg.train.presets, cfg.inference.n_fe)
        if cfg.threed.presets:
            out["3d"] = _timing(ctx, cfg, "spheres", cfg.threed.presets, cfg.inference.n_fe_3d)
        return out

    return Stage("inference", run, params, deps, ())


def macro_stage(cfg: StudyConfig) -> Stage:
    """The ``macro`` stage: FE² comparison of one demo with the study's CNN."""
    out_json = "results/macro.json"
    model = f"train.mono.{cfg.macro.preset}"
    params = {"macro": cfg.section("macro"), "radius": cfg.data2d.radius, "seed": cfg.seed}

    def run(ctx: StageContext) -> dict[str, Any]:
        import json

        import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

        from macro.compare import compare_providers
        from macro.problems import get_problem
        from magnetohom.study.pipeline import to_jsonable

        m = cfg.macro
        problem = get_problem(m.demo, size=m.size, seed=cfg.seed)
        problem.material = dataclasses.replace(problem.material, radius=cfg.data2d.radius)
        model_dir = str(ctx.root / ctx.results[model]["model_dir"])
        t0 = time.perf_counter()
        cmp = compare_providers(
            problem,
            m.providers,
            provider_options={"cnn": {"model": model_dir}, "hybrid": {"model": model_dir}},
            required=("cnn",),
        )
        summary = to_jsonable(cmp.summary())
        summary.update(
            demo=m.demo,
            size=m.size,
            model=ctx.results[model]["model_dir"],
            radius=cfg.data2d.radius,
            wall_seconds=time.perf_counter() - t0,
        )
        ctx.path(out_json).write_text(json.dumps(summary, indent=1) + "\n")
        return summary

    return Stage("macro", run, params, (model,), (out_json,))
