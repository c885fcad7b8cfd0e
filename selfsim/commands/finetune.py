"""`selfsim finetune`: train a LoRA adapter on hypothetical prompts labelled with a model's behaviour.

Self-prediction: --model M1 --labels M1's behavior.jsonl. Cross-prediction: --model M2, same labels.
Runs in one process, or under `torchrun --nproc_per_node N -m selfsim finetune ...` (docs/finetune.md).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from selfsim.commands._common import add_model_args, check_out, subject_from_args
from selfsim.errors import SelfsimError

if TYPE_CHECKING:
    from selfsim.finetune import FinetuneConfig

# Flags that set the FinetuneConfig field of the same name when given.
_FIELD_FLAGS = (
    "rank", "alpha", "dropout", "lr", "schedule", "warmup_steps", "batch_size", "grad_accum",
    "eval_fraction", "save_every", "seed",
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `finetune` subcommand."""
    p = sub.add_parser(
        "finetune",
        help="LoRA-finetune a model on hypothetical prompts labelled with some model's behaviour",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(p)
    p.add_argument("--examples", required=True, help="examples JSONL (selfsim examples)")
    p.add_argument("--labels", required=True, help="behavior.jsonl of the model whose behaviour is to be predicted")
    p.add_argument("--out", required=True, help="output directory for the adapter (or full weights with --full)")
    p.add_argument("--preset", choices=("toy", "paper"), default="toy", help="defaults to start from (default toy)")
    p.add_argument("--config", help="a finetune_config.json to start from instead of a preset; flags override it")
    p.add_argument("--rank", type=int, help="LoRA rank (toy 8, paper 32)")
    p.add_argument("--alpha", type=float, help="LoRA alpha (toy 16)")
    p.add_argument("--dropout", type=float, help="LoRA dropout (default 0)")
    p.add_argument("--target-modules", help="comma-separated module names (default: all 7 projections)")
    p.add_argument("--lr", type=float, help="peak learning rate (toy 1e-3)")
    p.add_argument("--schedule", choices=("constant", "linear"), help="learning-rate schedule after warmup (default linear)")
    p.add_argument("--warmup-steps", type=int, help="linear warmup steps (default 0)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimizer steps (toy 300)")
    length.add_argument("--epochs", type=float, help="passes over the training set instead of --steps (paper 1)")
    p.add_argument("--batch-size", type=int, help="global batch per step, whatever the number of processes (default 64)")
    p.add_argument("--grad-accum", type=int, help="micro-batches per process and step (default 1)")
    p.add_argument("--per-pair", help="examples per (task, property) pair, or 'all' (default 1000)")
    p.add_argument("--splits", help="comma-separated example splits to train on (default train)")
    p.add_argument("--eval-fraction", type=float, help="share of items held out for an eval loss (default 0)")
    p.add_argument("--save-every", type=int, help="checkpoint every N steps, 0 for never (default 100)")
    p.add_argument("--seed", type=int, help="seed for item choice, order and LoRA init (default 0)")
    p.add_argument("--full", action="store_true", help="train all weights instead of LoRA (the full-finetune control)")
    p.add_argument("--merge", action="store_true", help="also write base + adapter merged into OUT/merged")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT from its checkpoint")
    p.add_argument("--fsdp", action="store_true", help="shard the model over the torchrun processes (FSDP2)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in backward to save memory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The FinetuneConfig a command line asks for: preset or --config file, then the given flags."""
    from selfsim.finetune import FinetuneConfig

    config = FinetuneConfig.load(args.config) if args.config else FinetuneConfig.preset(args.preset)
    changes = {flag: getattr(args, flag) for flag in _FIELD_FLAGS if getattr(args, flag) is not None}
    if args.steps is not None:
        changes.update(steps=args.steps, epochs=None)
    if args.epochs is not None:
        changes.update(steps=None, epochs=args.epochs)
    if args.target_modules:
        changes["target_modules"] = tuple(m.strip() for m in args.target_modules.split(",") if m.strip())
    if args.splits:
        changes["splits"] = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    if args.per_pair is not None:
        changes["per_pair"] = _per_pair(args.per_pair)
    for flag, field in (("full", "full_finetune"), ("merge", "merge"), ("fsdp", "fsdp"), ("gradient_checkpointing", "gradient_checkpointing")):
        if getattr(args, flag):
            changes[field] = True
    return replace(config, **changes).validate()


def _per_pair(value: str) -> int | None:
    if value == "all":
        return None
    try:
        return int(value)
    except ValueError:
        raise SelfsimError(f"--per-pair must be a number or 'all', not {value!r}") from None


def run(args: argparse.Namespace) -> int:
    """Check the arguments, build the training set, finetune the model and print the run's summary."""
    from selfsim.examples import load_examples
    from selfsim.finetune import build_training_set, load_labels, train
    from selfsim.finetune.trainer import is_finished

    config = config_from_args(args)
    check_out(args.out, reads=[args.model, args.adapter, args.examples, args.labels, args.config])
    is_finished(args.out, resume=args.resume)
    examples = load_examples(args.examples)
    labels = load_labels(args.labels)
    items = build_training_set(examples, labels, per_pair=config.per_pair, seed=config.seed, splits=config.splits)
    subject = subject_from_args(args)
    sources = {"examples": str(Path(args.examples).resolve()), "labels": str(Path(args.labels).resolve())}
    out = train(subject, items, config, args.out, resume=args.resume, metadata=sources, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":
        result = json.loads((out / "finetune.json").read_text())
        keys = ("kind", "n_train", "n_eval", "steps", "world_size", "final_loss", "eval_loss", "seconds")
        print(json.dumps({"out": str(out), **{k: result.get(k) for k in keys}}))
    return 0
