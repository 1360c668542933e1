"""``magnetohom study CONFIG``: the paper's study in one command, with a report.

Examples::

    magnetohom study quick                         # into ./study_quick
    magnetohom study paper -o runs/paper           # the paper's sizes (needs a GPU and time)
    magnetohom study my.toml --list                # stages and whether they are done
    magnetohom study quick --stages 'train.mono.*' # those stages (and what they need)
    magnetohom study quick --force report          # redo the report

Re-running the same command resumes: finished stages are skipped, an interrupted dataset or
training continues where it stopped. TensorFlow and DOLFINx are imported inside the handler.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``study`` sub-command."""
    p = subparsers.add_parser(
        "study",
        help="run the paper's study (datasets, training, transfer, timing, FE²) and its report",
        description="Run the paper's study end to end from a TOML config (or a shipped one: "
        "quick, cpu, paper) and write report/ with the paper's figures and tables redrawn "
        "from our own data. Resumes where it stopped; finished stages are skipped.",
    )
    p.add_argument("config", metavar="CONFIG", help="TOML file or shipped name: quick, cpu, paper")
    p.add_argument("-o", "--outdir", default=None, help="study directory (default: ./study_NAME)")
    p.add_argument(
        "--stages",
        nargs="+",
        default=None,
        metavar="STAGE",
        help="run only these stages (names or glob patterns, e.g. 'train.*') and their inputs",
    )
    p.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="STAGE",
        help="run this stage (name or pattern) again even if done (repeatable)",
    )
    p.add_argument(
        "--list", action="store_true", help="list the stages and their status, run nothing"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``magnetohom study``."""
    from magnetohom.study import load_config, run_study, stage_status

    cfg = load_config(args.config)
    if args.list:
        width = 0
        rows = stage_status(cfg, args.outdir)
        width = max(len(n) for n, _ in rows)
        for name, status in rows:
            sys.stdout.write(f"{name:<{width}}  {status}\n")
        return 0
    from magnetohom.paths import check_output_dir

    check_output_dir(args.outdir or f"study_{cfg.name}", "study directory")
    pipe = run_study(cfg, args.outdir, stages=args.stages, force=args.force, command=sys.argv)
    report = pipe.root / "report" / "report.md"
    if report.exists():
        sys.stdout.write(f"report: {report}\n")
    return 0
