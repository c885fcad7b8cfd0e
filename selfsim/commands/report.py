"""`selfsim report`: rebuild a run directory's HTML report from its result files."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `report` subcommand."""
    p = sub.add_parser("report", help="rebuild RUN_DIR/report.html from RUN_DIR/results.json and RUN_DIR/figures/")
    p.add_argument("run_dir", type=Path)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Rebuild a study run's report and print its path."""
    from selfsim.report import build_study_report

    print(build_study_report(args.run_dir))
    return 0
