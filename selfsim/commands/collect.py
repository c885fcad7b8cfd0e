"""`selfsim collect`: a model's object-level behaviour on an examples file, cached and resumable."""

from __future__ import annotations

import argparse

from selfsim.commands._common import add_generation_args, generation_inputs, subject_from_args


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `collect` subcommand."""
    p = sub.add_parser("collect", help="generate a model's object-level answers (greedy, optional samples) into DIR/behavior.jsonl")
    add_generation_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate the inputs, load the model, collect the behaviour table and print where it went."""
    from selfsim import behavior

    examples, options = generation_inputs(args)
    df = behavior.collect(subject_from_args(args), examples, **options)
    print(f"{len(df)} rows -> {args.out}/{behavior.BEHAVIOR_FILE}")
    return 0
