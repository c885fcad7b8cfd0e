"""`selfsim <command>`: one thin command per pipeline stage.

Each module in `selfsim.commands` defines `register(subparsers)` which adds its parser and sets
`func`; heavy libraries are imported inside the command functions so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from selfsim import __version__
from selfsim.errors import SelfsimError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command module's subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="selfsim",
        description="Self-prediction finetuning and self-simulation tests on Llama-architecture models.",
    )
    parser.add_argument("--version", action="version", version=f"selfsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    import selfsim.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"selfsim.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a command; a SelfsimError becomes one line on stderr and exit code 2."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except SelfsimError as exc:
        one_line = " ".join(str(exc).splitlines())  # a quoted bad value may hold U+2028 and other line breaks
        print(f"selfsim {args.command}: error: {one_line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"selfsim {args.command}: interrupted; finished work is on disk, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
