"""The paper's study in one command: datasets, trainings, evaluation, timing, FE², report.

``magnetohom study CONFIG`` (:mod:`magnetohom.study_cli`) runs the stage graph of
:mod:`magnetohom.study.stages` over a study directory, skipping finished stages and resuming
interrupted ones (:mod:`magnetohom.study.pipeline`), and writes ``report/`` with the figures of
the paper's results section redrawn from the study's own data and ``report.md`` whose tables
stand beside the paper's (:mod:`magnetohom.study.report`).

* :mod:`~magnetohom.study.config` -- TOML configs; shipped: ``quick``, ``cpu``, ``paper``;
* :mod:`~magnetohom.study.pipeline` -- stages, fingerprints, the state file;
* :mod:`~magnetohom.study.stages` / :mod:`~magnetohom.study.measure` -- what each stage does;
* :mod:`~magnetohom.study.report` (with :mod:`~magnetohom.study.report_tables`,
  :mod:`~magnetohom.study.report_beyond`, :mod:`~magnetohom.study.figures`) -- the report;
* :mod:`~magnetohom.study.paper` -- the paper's numbers; :mod:`~magnetohom.study.environment`
  -- hardware and versions.

Importing this package is light (no TensorFlow, DOLFINx or matplotlib).
"""

from magnetohom.study.config import SHIPPED, StudyConfig, load_config, parse_config
from magnetohom.study.pipeline import Pipeline, Stage, StageContext, load_state
from magnetohom.study.runner import run_study, stage_status, study_pipeline

__all__ = [
    "SHIPPED",
    "Pipeline",
    "Stage",
    "StageContext",
    "StudyConfig",
    "load_config",
    "load_state",
    "parse_config",
    "run_study",
    "stage_status",
    "study_pipeline",
]
