"""Running a study: the config, the stage graph, the import order and the run record.

:func:`run_study` is what ``magnetohom study CONFIG`` calls; :func:`stage_status` is its
``--list``. One process runs the stages one after the other (DOLFINx labels on one core,
TensorFlow on all). h5py and TensorFlow are imported before anything loads DOLFINx
(``docs/ARCHITECTURE.md``, import order).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from magnetohom.study.config import StudyConfig, load_config
from magnetohom.study.pipeline import Pipeline

__all__ = ["default_outdir", "run_study", "stage_status", "study_pipeline"]

log = logging.getLogger(__name__)


def default_outdir(cfg: StudyConfig) -> Path:
    """``study_NAME`` in the current directory."""
    return Path(f"study_{cfg.name}")


def study_pipeline(config: str | Path | StudyConfig, out: str | Path | None = None) -> Pipeline:
    """The :class:`~magnetohom.study.pipeline.Pipeline` of a config over a study directory."""
    from magnetohom.study.stages import build_stages

    cfg = config if isinstance(config, StudyConfig) else load_config(config)
    return Pipeline(build_stages(cfg), default_outdir(cfg) if out is None else out)


def stage_status(config: str | Path | StudyConfig, out: str | Path | None = None) -> list[tuple]:
    """``(stage, status)`` of every stage, in run order (nothing is run or imported)."""
    pipe = study_pipeline(config, out)
    return [(n, pipe.status(n)) for n in pipe.order]


def run_study(
    config: str | Path | StudyConfig,
    out: str | Path | None = None,
    *,
    stages: Iterable[str] | None = None,
    force: Iterable[str] = (),
    command: list[str] | None = None,
) -> Pipeline:
    """Run (or resume) a study; see :mod:`magnetohom.study`.

    Parameters
    ----------
    config : path, shipped name or StudyConfig
    out : path-like, optional
        Study directory (default ``study_NAME``); holds ``state.json``, ``data/``, ``models/``,
        ``results/`` and ``report/``.
    stages : iterable of str, optional
        Run only these stages (names or glob patterns) and what they depend on.
    force : iterable of str
        Run these stages (names or patterns) again even if done, their old outputs deleted.
    command : list of str, optional
        Command line recorded with the run (default ``sys.argv``).

    Returns
    -------
    Pipeline
        With the final state (``pipeline.results()``).
    """
    from magnetohom.quiet import import_tensorflow

    import_tensorflow(int(logging.getLogger().level < logging.WARNING))  # quiet unless -v

    import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

    from magnetohom.study.environment import collect

    cfg = config if isinstance(config, StudyConfig) else load_config(config)
    pipe = study_pipeline(cfg, out)
    pipe.root.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {
        "environment": collect(command),
        "config": cfg.to_dict(),
        "config_source": cfg.source,
    }
    if cfg.source and Path(cfg.source).is_file():
        (pipe.root / "config.toml").write_text(Path(cfg.source).read_text())
    steps = pipe.run(stages, force, info=info)
    ran = [n for n, a in steps if a == "run"]
    log.info(
        "study %s in %s: %d stage(s) run, %d skipped",
        cfg.name,
        pipe.root,
        len(ran),
        len(steps) - len(ran),
    )
    return pipe
