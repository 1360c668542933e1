"""The Markdown tables of the study report beside the paper's, built from stage results only.

Each function returns the lines of one report section (tables and a few sentences). Missing
stages give a one-line note instead of a table. Numbers: MAPE in percent with 2 decimals, R² with
4, seconds with 3 significant digits; ``–`` marks a value that does not exist (never a number that
could not be computed: a NaN is written as ``nan`` so that a check for finite numbers fails).
"""

from __future__ import annotations

from typing import Any

from magnetohom.study.config import CLASS_TITLES

__all__ = [
    "datasets_table",
    "setup_lines",
    "table2",
    "table3",
    "table4",
    "table_3d",
    "training_table",
    "wall_time_table",
]


def _f(x: Any, spec: str) -> str:
    if x is None:
        return "–"
    return format(float(x), spec)


def _pct(x: Any) -> str:
    return _f(x, ".2f")


def _pct100(x: Any) -> str:
    return _pct(None if x is None else 100.0 * float(x))


def _r2(x: Any) -> str:
    return _f(x, ".4f")


def _s(x: Any) -> str:
    if x is None:
        return "–"
    x = float(x)
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def _missing(what: str) -> list[str]:
    return [f"Not part of this study ({what} not run or not configured).", ""]


def _res(d: dict[str, Any]) -> str:
    return f"{d['resolution']}{'²' if d['dim'] == 2 else '³'}"


def setup_lines(config: dict[str, Any], runs: list[dict], records: dict[str, Any]) -> list[str]:
    """Hardware, software, command and total time of the runs that produced the results."""
    used = sorted({r.get("run") for r in records.values() if r.get("run") is not None})
    rows = []
    for k in used:
        if k >= len(runs):
            continue
        env = runs[k].get("info", {}).get("environment") or {}
        gpus = ", ".join(env.get("gpus") or []) or "none"
        v = env.get("versions") or {}
        soft = ", ".join(
            f"{n} {v[n]}" for n in ("tensorflow", "fenics-dolfinx", "numpy") if v.get(n)
        )
        rows.append(
            [
                str(k),
                env.get("date", "–"),
                env.get("host", "–"),
                env.get("cpu", "–"),
                f"{env.get('cores_usable', '–')} of {env.get('cores', '–')}",
                _s(env.get("memory_gib")),
                gpus,
                soft or "–",
                env.get("git") or "–",
            ]
        )
    total = sum(r.get("seconds", 0.0) for r in records.values() if r.get("status") == "done")
    out = [
        f"Config `{config.get('study', {}).get('name', '?')}`: "
        f"{config.get('study', {}).get('description', '')}. Total wall time of the stages: "
        f"**{_s(total)} s** ({total / 60:.1f} min).",
        "",
    ]
    out += _table(
        ["run", "date (UTC)", "host", "CPU", "cores used", "memory GiB", "GPU", "software", "git"],
        rows,
    )
    cmds = [
        runs[k].get("info", {}).get("environment", {}).get("command") for k in used if k < len(runs)
    ]
    for c in dict.fromkeys(c for c in cmds if c):
        out += [f"Command: `{c}`", ""]
    return out


def datasets_table(results: dict[str, Any], records: dict[str, Any]) -> list[str]:
    """One row per dataset: class, resolution, radius, volume fractions, samples, label times."""
    rows = []
    for n, r in results.items():
        if not n.startswith("data."):
            continue
        radius = (
            r["radius"] if r.get("radius") is not None else "{:g}–{:g}".format(*r["radius_range"])
        )
        rows.append(
            [
                CLASS_TITLES[r["class"]],
                _res(r),
                str(radius),
                "{:.2f}–{:.2f}".format(*r["vf_measured"]),
                f"{r['n_done']} of {r['n_samples']}",
                _s(r["label_seconds_median"]),
                _s(r["label_seconds_total"]),
                _s(records[n].get("seconds")),
            ]
        )
    if not rows:
        return _missing("datasets")
    return [
        "Paper: 5500 non-overlapping monodisperse disks at 256² (radius 8 px), fewer for the "
        "transfer classes, 2500 spheres at 101³ (radius 5); labels by a MATLAB FE script "
        "(Secs. 4.1-4.2, 5.1.1, 5.2). Ours: DOLFINx periodic homogenization (`micro`), "
        "μ = 1 / 250.",
        "",
        *_table(
            [
                "class",
                "resolution",
                "radius px",
                "vf (measured)",
                "samples",
                "label s (median)",
                "labels total s",
                "stage wall s",
            ],
            rows,
        ),
    ]


def training_table(results: dict[str, Any], records: dict[str, Any]) -> list[str]:
    """One row per trained model."""
    rows = []
    for n, r in results.items():
        if "history" not in r:
            continue
        rows.append(
            [
                f"`{n}`",
                r["preset"],
                r["class"],
                f"{r['n_train']}/{r['n_val']}/{r['n_test']}",
                f"{r['epochs_run']} of {r['epochs_planned']}",
                _s(r["train_seconds"]),
                _s(records[n].get("seconds")),
            ]
        )
    if not rows:
        return _missing("training")
    return _table(
        ["stage", "preset", "data", "train/val/test", "epochs", "train s", "stage wall s"], rows
    )


def _metrics(ev: dict[str, Any], comps: tuple[str, ...]) -> list[str]:
    return [_pct(ev["mape"].get(c)) for c in comps] + [_r2(ev["r2"].get(c)) for c in comps]


def table2(results: dict[str, Any], paper: dict[str, Any]) -> list[str]:
    """2D monodisperse: paper's Table 2 beside the paper and default presets."""
    models = results.get("evaluate", {}).get("models", {})
    names = [n for n in models if n.startswith("train.mono.")]
    if not names:
        return _missing("2D training/evaluation")
    comps = ("mu11", "mu22")
    rows = [
        [
            f"*paper* ({paper['source']})",
            *[_pct(paper["mape"][c]) for c in comps],
            *[_r2(paper["r2"][c]) for c in comps],
            "–",
            f"{paper['n_test']} of {paper['n_samples']}",
            f"{paper['resolution']}²",
            str(paper["epochs"]),
            _s(60 * paper["train_minutes"]),
        ]
    ]
    for n in names:
        ev, tr, d = models[n], results[n], results["data.mono"]
        off = (
            f"{_pct(ev['mape']['mu12'])} / {_r2(ev['r2']['mu12'])}" if "mu12" in ev["mape"] else "–"
        )
        rows.append(
            [
                f"ours, preset `{tr['preset']}`",
                *_metrics(ev, comps),
                off,
                f"{ev['n_test']} of {tr['n_labeled']}",
                _res(d),
                str(tr["epochs_run"]),
                _s(tr["train_seconds"]),
            ]
        )
    return [
        *_table(
            [
                "model",
                "μ11 MAPE %",
                "μ22 MAPE %",
                "μ11 R²",
                "μ22 R²",
                "μ12 error* % / R²",
                "test of samples",
                "resolution",
                "epochs",
                "train s",
            ],
            rows,
        ),
        "*μ12 is close to zero; its error is divided by the mean eigenvalue tr(μ*)/2 "
        f"(`surrogate.evaluation`). Paper training time: ~10 min on a {paper['hardware']}.",
        "",
    ]


def table3(results: dict[str, Any], paper: dict[str, Any]) -> list[str]:
    """Time for ``n_images`` microstructures: FE against the CNN presets."""
    inf = results.get("inference")
    if not inf:
        return _missing("inference timing")
    presets = list(dict.fromkeys(p for k in ("2d", "3d") if k in inf for p in inf[k]["models"]))
    n_p = paper["n_images"]
    rows = [
        [
            f"*paper* ({paper['source']})",
            f"{n_p} × 256²",
            _s(paper["fem_seconds"]),
            *[_s(paper["cnn_seconds"]) if p == "paper" else "–" for p in presets],
            *[
                _s(paper["fem_seconds"] / paper["cnn_seconds"]) if p == "paper" else "–"
                for p in presets
            ],
        ]
    ]
    for key in ("2d", "3d"):
        t = inf.get(key)
        if not t:
            continue
        m = t["models"]
        rows.append(
            [
                f"ours, {key.upper()}",
                f"{t['n_images']} × {_res(t)}",
                _s(t.get("fe_seconds")),
                *[_s(m[p]["seconds"]) if p in m else "–" for p in presets],
                *[_s(m[p].get("speedup_vs_fe")) if p in m else "–" for p in presets],
            ]
        )
    notes = []
    for key in ("2d", "3d"):
        t = inf.get(key)
        if t and "fe_seconds_per_sve" in t:
            rates = ", ".join(f"{p} {v['sve_per_s']:.0f} SVE/s" for p, v in t["models"].items())
            notes.append(
                f"{key.upper()}: FE {t['fe_seconds_per_sve']:.3g} s per SVE (median of {t['n_fe']} "
                f"DOLFINx labels after a {t['fe_setup_seconds']:.2f} s set-up, one core), the FE "
                f"time of {t['n_images']} SVEs is that times {t['n_images']}; CNN: one batched "
                f"provider call, best of the repeats ({rates})."
            )
    return [
        *_table(
            [
                "",
                "microstructures",
                "FEM s",
                *[f"CNN `{p}` s" for p in presets],
                *[f"speed-up `{p}`" for p in presets],
            ],
            rows,
        ),
        *[f"- {n}" for n in notes],
        "",
    ]


def table4(results: dict[str, Any], paper: dict[str, Any]) -> list[str]:
    """Transfer learning against training from scratch per class and preset (paper: Table 4)."""
    models = results.get("evaluate", {}).get("models", {})
    names = [n for n in models if n.startswith(("transfer.", "scratch."))]
    if not names:
        return _missing("transfer learning")
    comps = ("mu11", "mu22")
    rows = []
    for kind in ("transfer", "scratch"):
        p = paper[kind]
        rows.append(
            [
                f"*paper* ({'Table 4'})",
                CLASS_TITLES[paper["class"]],
                "paper's CNN",
                kind,
                *[_pct(p["mape"][c]) for c in comps],
                *[_r2(p["r2"][c]) for c in comps],
                "–",
                str(paper["epochs"]),
                "–",
            ]
        )
    order = {c: k for k, c in enumerate(CLASS_TITLES)}

    def key(n: str) -> tuple:
        kind, cls, preset = n.split(".")
        return (order[cls], preset != "paper", kind != "transfer")

    for n in sorted(names, key=key):
        ev, tr = models[n], results[n]
        rows.append(
            [
                "ours",
                CLASS_TITLES[tr["class"]],
                f"`{tr['preset']}`",
                tr["kind"],
                *_metrics(ev, comps),
                str(tr["n_train"]),
                str(tr["epochs_run"]),
                _s(tr["train_seconds"]),
            ]
        )
    return [
        *_table(
            [
                "",
                "class",
                "preset",
                "model",
                "μ11 MAPE %",
                "μ22 MAPE %",
                "μ11 R²",
                "μ22 R²",
                "train samples",
                "epochs",
                "train s",
            ],
            rows,
        ),
        f"Paper: {paper['source']}. Transfer: the monodisperse model of the same preset, "
        "convolution layers frozen, then (if configured) all layers fine-tuned at a 10x lower "
        "learning rate; scratch: the same preset and data from random weights.",
        "",
    ]


def table_3d(results: dict[str, Any], paper: dict[str, Any]) -> list[str]:
    """3D spheres: the paper's μ11 result beside ours."""
    models = results.get("evaluate", {}).get("models", {})
    names = [n for n in models if n.startswith("train.spheres.")]
    if not names:
        return _missing("3D training")
    fe = results.get("data.spheres", {}).get("label_seconds_median")
    rows = [
        [
            f"*paper* ({paper['source']})",
            _pct(paper["mape"]["mu11"]),
            _r2(paper["r2"]["mu11"]),
            "–",
            "–",
            f"{paper['n_samples']} at {paper['resolution']}³",
            str(paper["epochs"]),
            _s(60 * paper["train_minutes"]),
            _s(60 * paper["fem_minutes_per_sve"]),
        ]
    ]
    for n in names:
        ev, tr, d = models[n], results[n], results["data.spheres"]
        rows.append(
            [
                f"ours, preset `{tr['preset']}`",
                _pct(ev["mape"]["mu11"]),
                _r2(ev["r2"]["mu11"]),
                _pct(ev["mape"].get("mu22")),
                _pct(ev["mape"].get("mu33")),
                f"{d['n_done']} at {_res(d)}",
                str(tr["epochs_run"]),
                _s(tr["train_seconds"]),
                _s(fe),
            ]
        )
    return _table(
        [
            "model",
            "μ11 MAPE %",
            "μ11 R²",
            "μ22 MAPE %",
            "μ33 MAPE %",
            "samples",
            "epochs",
            "train s",
            "FE s per SVE",
        ],
        rows,
    )


def wall_time_table(records: dict[str, Any], runs: list[dict]) -> list[str]:
    """Status, seconds and attempts of every stage."""
    rows = []
    for n, r in records.items():
        res = r.get("result") or {}
        extra = ""
        if "train_seconds" in res:
            extra = f"training {_s(res['train_seconds'])} s"
        elif "label_seconds_total" in res:
            extra = f"labels {_s(res['label_seconds_total'])} s"
        status = r.get("status", "?")
        if n == "report" and status == "running":
            status = "writing this report"
        rows.append(
            [
                f"`{n}`",
                status,
                _s(r.get("seconds")),
                str(r.get("attempts")),
                str(r.get("run")),
                extra or "–",
            ]
        )
    return [
        "Seconds of the attempt that finished each stage (a resumed stage counts only its last "
        "attempt; its training or label seconds are cumulative).",
        "",
        *_table(["stage", "status", "wall s", "attempts", "run", "of which"], rows),
    ]
