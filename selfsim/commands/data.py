"""`selfsim data`: build an examples file, by importing the paper's rows or by generating a task."""

from __future__ import annotations

import argparse

from selfsim.commands._common import check_out
from selfsim.errors import SelfsimError
from selfsim.guard import jsonl_with

MAX_N = 1_000_000
EXAMPLES_FILE = jsonl_with("task", "property", "object_messages", "hypothetical_messages")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `data` subcommand."""
    p = sub.add_parser("data", help="import the paper's JSONL rows or generate a task into an examples file")
    actions = p.add_subparsers(dest="action", metavar="<action>", required=True)

    imp = actions.add_parser("import", help="read <task>_<property>.jsonl release files (or folders of them) unchanged")
    imp.add_argument("files", nargs="+", metavar="FILE", help="release .jsonl files or folders searched for them")
    imp.add_argument("--out", required=True, help="examples JSONL to write (written whole or not at all)")
    imp.add_argument("--skip-bad", action="store_true", help="skip malformed lines instead of stopping at the first")
    imp.set_defaults(func=run_import)

    gen = actions.add_parser("generate", help="generate seeded examples of a generatable task")
    gen.add_argument("--task", required=True, help="task name (see `selfsim tasks list`)")
    gen.add_argument(
        "--property", action="append", dest="properties", metavar="PROPERTY",
        help="property to ask about; repeat for several (default: all of the task's in this dialect)",
    )
    gen.add_argument("--n", type=int, default=100, help=f"number of distinct object prompts, 1..{MAX_N:,} (default 100)")
    gen.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    gen.add_argument("--dialect", default="paper", help="paper (the paper's English, default) or toy")
    gen.add_argument("--out", required=True, help="examples JSONL to write")
    gen.set_defaults(func=run_generate)


def run_import(args: argparse.Namespace) -> int:
    """Stream every row into --out atomically, then print the counts per file."""
    from selfsim.examples import save_examples
    from selfsim.tasks.paper import ImportReport, import_paper_jsonl

    check_out(args.out, kind="file", reads=args.files, looks_like=EXAMPLES_FILE, what="an examples file")
    report = ImportReport()
    total = save_examples(args.out, import_paper_jsonl(args.files, skip_bad=args.skip_bad, report=report))
    for path, counts in report.files.items():
        skipped = f", {counts.skipped} skipped" if args.skip_bad else ""
        print(f"{path}: {counts.imported} imported{skipped}")
    print(f"{total} examples from {len(report.files)} file(s) -> {args.out}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    """Generate the examples and write them to --out."""
    from selfsim.examples import save_examples
    from selfsim.tasks import generate

    if not 1 <= args.n <= MAX_N:
        raise SelfsimError(f"--n must be between 1 and {MAX_N:,} object prompts, got {args.n:,}")
    check_out(args.out, kind="file", looks_like=EXAMPLES_FILE, what="an examples file")
    examples = generate(args.task, args.properties, n=args.n, seed=args.seed, dialect=args.dialect)
    total = save_examples(args.out, examples)
    print(f"{total} examples ({args.n} prompts of {args.task}, {args.dialect} dialect, seed {args.seed}) -> {args.out}")
    return 0
