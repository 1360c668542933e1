"""The report's tables beyond the paper: analytic estimates, learning curve, error against the
volume fraction, the FE² comparison. Built from stage results only, formatted as in
:mod:`magnetohom.study.report_tables`.
"""

from __future__ import annotations

from typing import Any

from magnetohom.study.config import CLASS_TITLES
from magnetohom.study.report_tables import _f, _missing, _pct, _pct100, _r2, _s, _table

__all__ = ["analytic_table", "error_vs_vf_table", "learning_curve_table", "macro_table"]

_ESTIMATE_NAMES = {
    "voigt": "Voigt (arithmetic mean)",
    "reuss": "Reuss (harmonic mean)",
    "hs_lower": "Hashin–Shtrikman lower",
    "hs_upper": "Hashin–Shtrikman upper",
    "maxwell_garnett": "Maxwell–Garnett",
    "self_consistent": "self-consistent (Bruggeman)",
}


def _cnn_of(results: dict[str, Any], cls: str, preset: str) -> str | None:
    for n in (f"train.{cls}.{preset}", f"transfer.{cls}.{preset}"):
        if n in results.get("evaluate", {}).get("models", {}):
            return n
    return None


def analytic_table(results: dict[str, Any]) -> list[str]:
    """MAPE (diagonal mean) of the CNNs and of every analytic estimate on the same test sets."""
    ev = results.get("evaluate", {})
    an = ev.get("analytic")
    if not an:
        return _missing("evaluation")
    classes = list(an)
    presets = list(dict.fromkeys(results[m]["preset"] for a in an.values() for m in a["models"]))
    rows = [["test samples", *[str(an[c]["n"]) for c in classes]]]
    for p in presets:
        cells = []
        for c in classes:
            n = _cnn_of(results, "mono" if c == "mono" else c, p)
            cells.append(_pct(ev["models"][n]["mape_diag"]) if n else "–")
        rows.append([f"CNN, preset `{p}`", *cells])
    for e, title in _ESTIMATE_NAMES.items():
        rows.append([title, *[_pct(an[c]["mape_diag"][e]) for c in classes]])
    return [
        "MAPE % over the diagonal components, on each dataset's test split; the estimates use the "
        "measured volume fraction of each sample (isotropic, so μ11 = μ22 (= μ33)); "
        "Maxwell–Garnett with the low-μ matrix as host is the Hashin–Shtrikman lower bound. The "
        "CNN of a transfer class is its transfer-learned model.",
        "",
        *_table(["", *[CLASS_TITLES[c] for c in classes]], rows),
    ]


def learning_curve_table(results: dict[str, Any]) -> list[str]:
    """Error against the number of training samples (monodisperse, common held-out samples)."""
    lc = results.get("evaluate", {}).get("learning_curve")
    if not lc:
        return _missing("learning curve")
    rows = [
        [
            f"`{e['stage']}`",
            str(e["n_train"]),
            str(e["n_labeled"]),
            _pct(e["mape"][0]),
            _pct(e["mape"][1]),
            _pct(e["mape_diag"]),
            _r2(e["r2"][0]),
            str(e["epochs_run"]),
            _s(e["train_seconds"]),
        ]
        for e in lc
    ]
    return [
        f"{CLASS_TITLES['mono']}; all models evaluated on the same {lc[0]['n_eval']} samples: "
        "test samples of the full model that lie beyond the samples any smaller model used.",
        "",
        *_table(
            [
                "model",
                "train samples",
                "of samples",
                "μ11 MAPE %",
                "μ22 MAPE %",
                "mean MAPE %",
                "μ11 R²",
                "epochs",
                "train s",
            ],
            rows,
        ),
    ]


def error_vs_vf_table(results: dict[str, Any]) -> list[str]:
    """MAPE per volume-fraction bin on the monodisperse test set (CNNs and estimates)."""
    a = results.get("evaluate", {}).get("analytic", {}).get("mono")
    if not a:
        return _missing("evaluation of the monodisperse class")
    edges = a["vf_edges"]
    cols = [*a["models"], "hs_lower", "maxwell_garnett", "self_consistent", "hs_upper"]
    names = [f"CNN `{results[m]['preset']}`" for m in a["models"]]
    names += [_ESTIMATE_NAMES[e] for e in cols[len(a["models"]) :]]
    rows = []
    for b in range(len(edges) - 1):
        rows.append(
            [
                f"{edges[b]:.3f}–{edges[b + 1]:.3f}",
                str(a["bin_counts"][b]),
                *[_pct(a["binned"][c][b]) for c in cols],
            ]
        )
    return [
        f"{CLASS_TITLES['mono']}, test split; MAPE % over the diagonal per bin of measured "
        "volume fraction (all classes in the figure).",
        "",
        *_table(["volume fraction", "samples", *names], rows),
    ]


def macro_table(results: dict[str, Any]) -> list[str]:
    """The FE² comparison of one demo: errors and per-stage seconds per provider."""
    m = results.get("macro")
    if not m:
        return _missing("FE² comparison")
    rows = []
    for name, p in m["providers"].items():
        t = p["timings_s"]
        solve = sum(t.get(k, 0.0) for k in ("coefficient_fill", "assembly", "solve", "postprocess"))
        ref = name == m["reference"]
        rows.append(
            [
                f"{name}{' (FE² reference)' if ref else ''}",
                "–" if ref else _pct100(p["energy_rel_error"]),
                "–" if ref else _pct100(p["qoi_rel_error"]),
                "–" if ref else _pct100(p["l2_B_rel_error"]),
                _s(t.get("sve_generation")),
                _s(t.get("mu_evaluation")),
                _s(solve),
                _s(p["total_s"]),
                _f(p.get("speedup"), ".1f"),
                _f(p.get("mu_evaluation_speedup"), ".1f"),
            ]
        )
    for name, why in (m.get("unavailable") or {}).items():
        rows.append([name, f"unavailable: {why}", *["–"] * 8])
    return [
        f"Demo `{m['demo']}` (mesh `{m['size']}`): {m['n_quadrature_points']} quadrature points, "
        f"{m['n_cells']} cells, one SVE of {m['sve_resolution']}² (disk radius {m['radius']:g} px) "
        f"per point, CNN = `{m['model']}`; quantity of interest: {m['qoi_name']}; mesh "
        f"{m['mesh_seconds']:.2f} s (shared).",
        "",
        *_table(
            [
                "provider",
                "energy err %",
                "QoI err %",
                "L2(B) err %",
                "SVE gen s",
                "μ* s",
                "solve s",
                "total s",
                "speed-up",
                "μ* speed-up",
            ],
            rows,
        ),
    ]
