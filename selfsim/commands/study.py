"""`selfsim study`: the paper's four experiments end to end on the embedded toy models."""

from __future__ import annotations

import argparse
from pathlib import Path

from selfsim.commands._common import check_out


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `study` subcommand."""
    p = sub.add_parser("study", help="run the whole self/cross-prediction study and write runs/<name>/report.html")
    p.add_argument("--quick", action="store_true", help="a reduced study (what CI runs): few prompts, short finetunes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pairs", type=int, default=1, help="model pairs (extra toy models are pretrained on demand and cached)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<name>)")
    p.add_argument("--models", nargs=2, default=None, metavar=("M1", "M2"), help="the primary pair (default toy-m1 toy-m2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the arguments, run the whole study and print where its results and report went."""
    from selfsim.errors import SelfsimError
    from selfsim.study import Study, StudyConfig

    if args.pairs < 1:
        raise SelfsimError(f"--pairs must be at least 1, got {args.pairs}")
    overrides = {"seed": args.seed, "pairs": args.pairs}
    if args.models:
        overrides["models"] = tuple(args.models)
    config = StudyConfig.quick(**overrides) if args.quick else StudyConfig(**overrides)
    if args.seed:
        config.name = f"{config.name}-seed{args.seed}"
    out = check_out(args.out or Path("runs") / config.name)
    Study(config, out).run()
    print(f"selfsim study: results in {out}/results.json, report in {out}/report.html")
    return 0
