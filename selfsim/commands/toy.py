"""`selfsim toy`: rebuild the embedded toy models, or ask one of them something."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from selfsim.commands._common import check_out


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `toy` subcommand (build, chat)."""
    p = sub.add_parser("toy", help="build the embedded toy models (toy-m1, toy-m2) or chat with one")
    toy_sub = p.add_subparsers(dest="toy_command", metavar="<toy command>", required=True)

    build = toy_sub.add_parser("build", help="pretrain toy models from scratch (both take a few minutes on 2 cores)")
    build.add_argument(
        "--out", type=Path, default=None,
        help="parent directory (default: the repository's checkpoints/ for toy-m1/toy-m2, the cache for toy-m3+)",
    )
    build.add_argument("--only", action="append", default=None, metavar="NAME", help="build only this toy model (repeatable)")
    build.add_argument("--steps", type=int, default=None, help="override the number of training steps")
    build.add_argument("--jobs", type=int, default=None, help="models trained at once, one core each (default: all cores)")
    build.set_defaults(func=run_build)

    chat = toy_sub.add_parser("chat", help="print a toy model's greedy answer to a prompt in the toy dialect")
    chat.add_argument("--model", default="toy-m1", help="toy name or model directory (default toy-m1)")
    chat.add_argument("prompt", nargs="+", help='e.g. "next 3 animals : fox gnu cat owl ?"')
    chat.add_argument("--max-new-tokens", type=int, default=8)
    chat.set_defaults(func=run_chat)


def run_build(args: argparse.Namespace) -> int:
    """Pretrain the toy models named by --only (default: the embedded ones) and print where each went."""
    import os
    from dataclasses import replace

    from selfsim.errors import SelfsimError
    from selfsim.toy.pretrain import pretrain_many
    from selfsim.toy.registry import EMBEDDED, config_for, default_path, is_built

    if args.steps is not None and args.steps < 1:
        raise SelfsimError(f"--steps must be positive, got {args.steps}")
    if args.out is not None:
        check_out(args.out)
    configs = [config_for(name) for name in args.only or EMBEDDED]
    if args.steps is not None:
        configs = [replace(config, steps=args.steps) for config in configs]
    outs = [args.out.expanduser() / c.name if args.out else default_path(c.name) for c in configs]
    for out in outs:
        if out.exists() and not (out.is_dir() and (is_built(out) or not any(out.iterdir()))):
            raise SelfsimError(f"{out} exists and is not a toy model selfsim built; it would be replaced: move it or give another --out")
    start = time.perf_counter()
    workers = args.jobs or min(len(configs), os.cpu_count() or 1)
    paths = pretrain_many(list(zip(configs, outs)), workers=workers)
    for config, path in zip(configs, paths):
        print(f"{config.name}: {config.steps} steps -> {path}")
    print(f"built {len(paths)} toy model(s) in {time.perf_counter() - start:.0f} s")
    return 0


def run_chat(args: argparse.Namespace) -> int:
    """Print a built toy model's greedy answer to one prompt."""
    from selfsim.models import load_subject
    from selfsim.toy.generate import greedy_answers

    subject = load_subject(args.model, build_toy=False)
    print(greedy_answers(subject.model, subject.tokenizer, [" ".join(args.prompt)], args.max_new_tokens)[0])
    return 0
