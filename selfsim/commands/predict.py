"""`selfsim predict`: a model's answers to the hypothetical prompts of an examples file, scored per property."""

from __future__ import annotations

import argparse

from selfsim.commands._common import add_generation_args, generation_inputs, subject_from_args


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `predict` subcommand."""
    p = sub.add_parser("predict", help="generate a model's answers to H(P, f) into DIR/predictions.jsonl")
    add_generation_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate the inputs, load the model, collect the predictions table and print where it went."""
    from selfsim import behavior

    examples, options = generation_inputs(args)
    df = behavior.predict(subject_from_args(args), examples, **options)
    print(f"{len(df)} rows -> {args.out}/{behavior.PREDICTIONS_FILE}")
    return 0
