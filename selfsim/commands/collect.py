"""`selfsim collect`: a model's object-level behaviour on an examples file, cached and resumable."""

from __future__ import annotations

import argparse
import math

from selfsim.commands._common import add_model_args, check_out, subject_from_args
from selfsim.errors import SelfsimError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="generate a model's object-level answers (greedy, optional samples) into DIR/behavior.jsonl")
    add_generation_args(p)
    p.set_defaults(func=run, table="behavior")


def add_generation_args(p: argparse.ArgumentParser) -> None:
    """Add the model arguments, --examples, --out and the decoding options collect and predict share."""
    add_model_args(p)
    p.add_argument("--examples", required=True, help="examples JSONL (selfsim.examples.save_examples format)")
    p.add_argument("--out", required=True, help="output directory; rerunning with the same DIR resumes from DIR/cache")
    p.add_argument("--samples", type=int, default=0, help="sampled answers per prompt at --temperature, besides the greedy one (default 0)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature for --samples (default 1.0)")
    p.add_argument("--batch-size", type=int, default=16, help="generations per forward pass (default 16)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="token budget for every prompt (default: per-task table)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Validate the inputs, load the model, run collect or predict and print where the table went."""
    from selfsim import behavior
    from selfsim.examples import load_examples
    from selfsim.generation import GenerationConfig

    if not math.isfinite(args.temperature) or args.temperature < 0:
        raise SelfsimError(f"--temperature must be a finite number >= 0, got {args.temperature}")
    GenerationConfig(args.samples, args.temperature, args.max_new_tokens, args.seed, args.batch_size).check()
    check_out(args.out)
    examples = load_examples(args.examples)
    behavior.check_examples(examples)
    behavior.check_cache(args.out)
    subject = subject_from_args(args)
    fn = behavior.collect if args.table == "behavior" else behavior.predict
    df = fn(
        subject,
        examples,
        out_dir=args.out,
        samples=args.samples,
        temperature=args.temperature,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        progress=not args.no_progress,
    )
    name = behavior.BEHAVIOR_FILE if args.table == "behavior" else behavior.PREDICTIONS_FILE
    print(f"{len(df)} rows -> {args.out}/{name}")
    return 0
