"""`selfsim evaluate`: score hypothetical answers against a behaviour table."""

from __future__ import annotations

import argparse
from pathlib import Path

from selfsim.commands._common import check_out
from selfsim.guard import json_with


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand."""
    p = sub.add_parser("evaluate", help="hypothetical accuracy with bootstrap CIs and the mode baseline")
    p.add_argument("--predictions", type=Path, required=True, help="predictions.jsonl from `selfsim predict`")
    p.add_argument("--behavior", type=Path, required=True, help="behavior.jsonl from `selfsim collect` (the labels' model)")
    p.add_argument("--noncompliant", choices=("wrong", "exclude"), default="wrong")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the tables as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score the predictions against the behaviour; print the accuracy and mode-baseline tables (and write --out)."""
    import pandas as pd

    from selfsim.behavior import BehaviorTable
    from selfsim.evaluate import hypothetical_accuracy, mode_baseline, score, to_records
    from selfsim.io import write_json

    if args.out:
        check_out(args.out, kind="file", reads=[args.predictions, args.behavior],
                  looks_like=json_with("accuracy", "mode_baseline"), what="an evaluate table")
    predictions = BehaviorTable.load(args.predictions).long()
    behavior = BehaviorTable.load(args.behavior).long()
    behavior = behavior.loc[behavior["object_id"].isin(predictions["object_id"])]
    kw = {"noncompliant": args.noncompliant, "n_boot": args.n_boot, "seed": args.seed}
    accuracy = hypothetical_accuracy(score(predictions, behavior), **kw)
    baseline = mode_baseline(behavior, **kw)
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(accuracy[["task", "property", "accuracy", "ci_low", "ci_high", "n"]].to_string(index=False))
        print("\nmode baseline")
        print(baseline[["task", "property", "mode", "accuracy", "n"]].to_string(index=False))
    if args.out:
        write_json(args.out, {"accuracy": to_records(accuracy), "mode_baseline": to_records(baseline), **kw})
    return 0
