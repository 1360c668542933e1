"""The study report: ``report/report.md``, its figures and ``report/results.json``.

Everything is drawn from the stage results recorded in the study's ``state.json`` and the arrays
the stages wrote (``results/*.npz``); nothing is recomputed here. The paper's numbers come from
:mod:`magnetohom.study.paper` and are labelled as the paper's. Tables:

* setup (hardware, versions, command, datasets, training runs);
* Table 2 (2D monodisperse accuracy), Table 3 (time for 100 microstructures), Table 4 and
  Fig. 12 (transfer learning against training from scratch), the 3D result;
* beyond the paper: analytic estimates against the CNN on the same test sets, the learning
  curve, the error against the volume fraction, the FE² comparison of one demo;
* the wall time of every stage.

:data:`TABLES` are the headings of these sections and :func:`expected_figures` the figure files a
set of results must produce; the tests check a report against both.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from magnetohom.study import figures
from magnetohom.study.config import CLASS_TITLES, StudyConfig
from magnetohom.study.paper import PAPER
from magnetohom.study.pipeline import Stage, StageContext, load_state, to_jsonable
from magnetohom.study.report_beyond import (
    analytic_table,
    error_vs_vf_table,
    learning_curve_table,
    macro_table,
)
from magnetohom.study.report_tables import (
    datasets_table,
    setup_lines,
    table2,
    table3,
    table4,
    table_3d,
    training_table,
    wall_time_table,
)

__all__ = [
    "FIGURES",
    "TABLES",
    "check_finite",
    "expected_figures",
    "report_stage",
    "write_report",
]

log = logging.getLogger(__name__)

#: Report sections (``## heading``), in order.
TABLES = (
    "Setup",
    "Datasets",
    "Training runs",
    "Table 2: 2D non-overlapping monodisperse disks",
    "Table 3: time to compute the permeability of 100 microstructures",
    "Table 4 and Fig. 12: transfer learning against training from scratch",
    "3D: non-overlapping monodisperse spheres",
    "Beyond the paper: analytic estimates against the CNN",
    "Beyond the paper: learning curve",
    "Beyond the paper: error against the volume fraction",
    "Beyond the paper: FE² comparison",
    "Wall time of each stage",
)

#: Figure files by key.
FIGURES = {
    "samples_2d": "fig06_samples_2d.png",
    "samples_3d": "fig13_samples_3d.png",
    "loss_mono": "fig10b_loss_mono.png",
    "parity_mono": "fig10cd_parity_mono.png",
    "loss_transfer": "fig11b_loss_transfer.png",
    "parity_transfer": "fig11_12_parity_transfer.png",
    "loss_3d": "fig14a_loss_spheres.png",
    "parity_3d": "fig14b_parity_spheres.png",
    "learning_curve": "learning_curve.png",
    "error_vs_vf": "error_vs_vf.png",
    "estimates": "estimates_vs_vf.png",
}

_BLUE, _GREEN = "tab:blue", "tab:green"


def _stages(results: dict[str, Any], prefix: str) -> list[str]:
    return [n for n in results if n.startswith(prefix)]


def expected_figures(results: dict[str, Any]) -> list[str]:
    """Figure files (names in ``report/``) that the given stage results must produce."""
    ev = results.get("evaluate", {})
    keys = []
    if any(n.startswith("data.") and n != "data.spheres" for n in results):
        keys.append("samples_2d")
    if "data.spheres" in results:
        keys.append("samples_3d")
    if _stages(results, "train.mono."):
        keys += ["loss_mono"] + (["parity_mono"] if ev else [])
    if _stages(results, "transfer."):
        keys += ["loss_transfer"] + (["parity_transfer"] if ev else [])
    if _stages(results, "train.spheres."):
        keys += ["loss_3d"] + (["parity_3d"] if ev else [])
    if ev.get("learning_curve"):
        keys.append("learning_curve")
    if ev.get("analytic"):
        keys += ["error_vs_vf", "estimates"]
    return [FIGURES[k] for k in keys]


def _load_npz(root: Path, results: dict[str, Any]) -> dict[str, np.ndarray]:
    ev = results.get("evaluate")
    if not ev:
        return {}
    with np.load(root / ev["arrays"]) as f:
        return {k: f[k] for k in f.files}


def _preset_label(p: str) -> str:
    return f"preset {p}"


def _make_figures(root: Path, out: Path, results: dict[str, Any]) -> dict[str, Path]:
    arr = _load_npz(root, results)
    made: dict[str, Path] = {}
    want = set(expected_figures(results))

    def path(key: str) -> Path | None:
        return out / FIGURES[key] if FIGURES[key] in want else None

    def samples(cls: str) -> tuple[np.ndarray, np.ndarray]:
        with np.load(root / results[f"data.{cls}"]["samples"]) as f:
            return f["images"], f["volume_fraction"]

    if p := path("samples_2d"):
        rows = [
            (CLASS_TITLES[n[5:]], *samples(n[5:]))
            for n in _stages(results, "data.")
            if n != "data.spheres"
        ]
        made["samples_2d"] = figures.plot_samples_2d(rows, p)
    if p := path("samples_3d"):
        imgs, vf = samples("spheres")
        made["samples_3d"] = figures.plot_samples_3d(imgs, vf, p, title=CLASS_TITLES["spheres"])

    def losses(names: list[str]) -> list[Any]:
        return [
            (f"{n}: {_preset_label(results[n]['preset'])}", [("", results[n]["history"], "C0")])
            for n in names
        ]

    def parity_panels(names: list[str], colors: list[str], title: str) -> list[Any]:
        """One panel per diagonal component, each with a series per model."""
        models = results["evaluate"]["models"]
        comps = [c for c in models[names[0]]["components"] if c[2] == c[3]]
        panels = []
        for comp in comps:
            series = []
            for n, color in zip(names, colors):
                k = models[n]["components"].index(comp)
                label = results[n]["kind"] if len(names) > 1 else "CNN"
                series.append((label, arr[f"{n}__y_true"][:, k], arr[f"{n}__y_pred"][:, k], color))
            panels.append((f"{title}: $\\mu^*_{{{comp[2:]}}}$", series))
        return panels

    mono = _stages(results, "train.mono.")
    if p := path("loss_mono"):
        made["loss_mono"] = figures.plot_losses(losses(mono), p)
    if p := path("parity_mono"):
        rows = [parity_panels([n], ["C0"], _preset_label(results[n]["preset"])) for n in mono]
        made["parity_mono"] = figures.plot_parity_rows(rows, p)
    pairs = [(n, "scratch" + n[len("transfer") :]) for n in _stages(results, "transfer.")]
    pairs = [(t, s) for t, s in pairs if s in results]
    if p := path("loss_transfer"):
        panels = [
            (
                f"{CLASS_TITLES[results[t]['class']]}, {_preset_label(results[t]['preset'])}",
                [
                    ("transfer", results[t]["history"], _BLUE),
                    ("scratch", results[s]["history"], _GREEN),
                ],
            )
            for t, s in pairs
        ]
        n_presets = len({results[t]["preset"] for t, _ in pairs})
        made["loss_transfer"] = figures.plot_losses(panels, p, cols=n_presets)
    if p := path("parity_transfer"):
        by_class: dict[str, list[Any]] = {}
        for t, s in pairs:
            title = f"{results[t]['class']}, {results[t]['preset']}"
            by_class.setdefault(results[t]["class"], []).extend(
                parity_panels([t, s], [_BLUE, _GREEN], title)
            )
        rows = list(by_class.values())
        made["parity_transfer"] = figures.plot_parity_rows(rows, p)
    sph = _stages(results, "train.spheres.")
    if p := path("loss_3d"):
        made["loss_3d"] = figures.plot_losses(losses(sph), p)
    if p := path("parity_3d"):
        rows = [parity_panels([n], ["C0"], _preset_label(results[n]["preset"])) for n in sph]
        made["parity_3d"] = figures.plot_parity_rows(rows, p)
    ev = results.get("evaluate", {})
    if p := path("learning_curve"):
        lc = ev["learning_curve"]
        made["learning_curve"] = figures.plot_learning_curve(
            [e["n_train"] for e in lc],
            [e["mape_diag"] for e in lc],
            p,
            title=f"{CLASS_TITLES['mono']}, {lc[0]['n_eval']} held-out samples",
        )

    def main_models(a: dict[str, Any]) -> list[str]:
        """The CNNs of a test set, without the from-scratch comparisons."""
        return [m for m in a["models"] if results[m]["kind"] != "scratch"]

    if p := path("error_vs_vf"):
        panels = []
        for cls, a in ev["analytic"].items():
            lines = {
                f"CNN {results[m]['preset']} ({results[m]['kind']})": a["binned"][m]
                for m in main_models(a)
            }
            lines.update(
                {
                    e: a["binned"][e]
                    for e in ("hs_lower", "maxwell_garnett", "self_consistent", "hs_upper")
                }
            )
            panels.append((CLASS_TITLES[cls], np.asarray(a["vf_edges"]), lines))
        made["error_vs_vf"] = figures.plot_error_vs_vf(panels, p)
    if p := path("estimates"):
        panels = []
        for cls, a in ev["analytic"].items():
            vf, mu = arr[f"analytic__{cls}__vf"], arr[f"analytic__{cls}__mu_true"]
            others = {
                e: arr[f"analytic__{cls}__{e}"] for e in ("hs_lower", "hs_upper", "self_consistent")
            }
            for m in main_models(a):
                comps = ev["models"][m]["components"]
                key = f"CNN {results[m]['preset']} ({results[m]['kind']})"
                others[key] = arr[f"{m}__y_pred"][:, comps.index("mu11")]
            panels.append((CLASS_TITLES[cls], vf, mu[:, 0, 0], others))
        made["estimates"] = figures.plot_estimates(panels, p)
    return made


def _fig(made: dict[str, Path], key: str, caption: str) -> list[str]:
    if key not in made:
        return []
    return [f"![{caption}]({made[key].name})", "", f"*{caption}*", ""]


def write_report(
    root: str | Path,
    *,
    state: dict[str, Any] | None = None,
    out: str | Path | None = None,
    figures: bool = True,
) -> list[Path]:
    """Write ``report.md``, the figures and ``results.json`` of a study directory.

    Parameters
    ----------
    root : path-like
        The study directory (holds ``state.json`` and ``results/``).
    state : dict, optional
        The state (default: read ``root/state.json``).
    out : path-like, optional
        Report directory (default ``root/report``).
    figures : bool
        Draw the figures (False: tables only, e.g. to check numbers quickly).

    Returns
    -------
    list of Path
        The files written.
    """
    root = Path(root)
    state = load_state(root) if state is None else state
    out = root / "report" if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = state.get("stages", {})
    results = {n: r.get("result", {}) for n, r in records.items() if r.get("status") == "done"}
    runs = state.get("runs", [])
    config = next(
        (r["info"]["config"] for r in reversed(runs) if r.get("info", {}).get("config")), {}
    )
    made = _make_figures(root, out, results) if figures else {}
    name = config.get("study", {}).get("name", root.name)
    lines = [f"# Study `{name}`: the paper's results, redrawn from our own data", ""]
    lines += [
        "Every number below was produced by `magnetohom study` in this directory; numbers "
        "marked *paper* are the values printed in Aldakheel et al., *Machine learning aided "
        "multiscale magnetostatics* (2023), with the table or section they come from. MAPE is "
        "the paper's Eq. (12) in percent, R² its Eq. (13), both on the held-out test split "
        "(15 %) of each dataset.",
        "",
    ]
    sections = [
        setup_lines(config, runs, records),
        datasets_table(results, records),
        training_table(results, records),
        table2(results, PAPER["table2"])
        + _fig(made, "samples_2d", "Fig. 6: microstructure " "samples of the four 2D classes")
        + _fig(made, "loss_mono", "Fig. 10b: training and " "validation loss (2D monodisperse)")
        + _fig(made, "parity_mono", "Fig. 10c-d: CNN " "against FEM on the test set"),
        table3(results, PAPER["table3"]),
        table4(results, PAPER["table4"])
        + _fig(
            made,
            "loss_transfer",
            "Fig. 11b: transfer " "learning (blue) against training from scratch (green)",
        )
        + _fig(
            made,
            "parity_transfer",
            "Figs. 11c-d and 12: CNN against FEM, transfer (blue) and scratch (green)",
        ),
        table_3d(results, PAPER["threed"])
        + _fig(made, "samples_3d", "Fig. 13: sphere " "samples")
        + _fig(made, "loss_3d", "Fig. 14a: training and validation loss (3D)")
        + _fig(made, "parity_3d", "Fig. 14b: CNN against FEM (3D)"),
        analytic_table(results)
        + _fig(
            made,
            "estimates",
            "μ*11 of the test samples: FEM, "
            "CNN and analytic estimates against the volume fraction",
        ),
        learning_curve_table(results) + _fig(made, "learning_curve", "Learning curve"),
        error_vs_vf_table(results) + _fig(made, "error_vs_vf", "MAPE per volume-fraction bin"),
        macro_table(results),
        wall_time_table(records, runs),
    ]
    for title, body in zip(TABLES, sections):
        lines += [f"## {title}", "", *body, ""]
    md = out / "report.md"
    md.write_text("\n".join(lines).rstrip() + "\n")
    summary = {
        "config": config,
        "environment": [r.get("info", {}).get("environment") for r in runs],
        "stages": {
            n: {k: r.get(k) for k in ("status", "seconds", "attempts", "run", "result")}
            for n, r in records.items()
        },
        "paper": PAPER,
    }
    js = out / "results.json"
    js.write_text(json.dumps(to_jsonable(summary), indent=1, default=_no_nan) + "\n")
    log.info("report written to %s", md)
    return [md, js, *made.values()]


def _no_nan(obj: Any) -> Any:  # pragma: no cover - only non-JSON types reach here
    return str(obj)


def check_finite(values: Any) -> bool:
    """Whether every number in a JSON-like structure is finite."""
    if isinstance(values, dict):
        return all(check_finite(v) for v in values.values())
    if isinstance(values, list | tuple):
        return all(check_finite(v) for v in values)
    if isinstance(values, float):
        return math.isfinite(values)
    return True


def report_stage(cfg: StudyConfig, deps: tuple[str, ...]) -> Stage:
    """The ``report`` stage: :func:`write_report` after every other stage."""

    def run(ctx: StageContext) -> dict[str, Any]:
        files = write_report(ctx.root)
        return {"files": [str(p.relative_to(ctx.root)) for p in files]}

    return Stage("report", run, {"report": cfg.section("report")}, deps, ("report",))
