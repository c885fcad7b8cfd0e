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
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it registers properties, experiments, ...); repeatable")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    import selfsim.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"selfsim.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a command; every failure is one line on stderr.

    A SelfsimError or a file-system error (a full disk, a permission, a symlink loop) exits 2; Ctrl-C
    exits 130 (`selfsim.interrupt`). What a failed command's output claim created and left empty is removed.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    from selfsim import guard, interrupt

    guard.command = args.command

    def fail(message: str, code: int) -> int:
        guard.release()
        one_line = " ".join(message.splitlines())  # a quoted bad value may hold U+2028 and other line breaks
        print(f"selfsim {args.command}: {one_line}", file=sys.stderr, flush=True)
        return code

    with interrupt.handled() as state:
        try:
            if args.plugin:
                from selfsim.results import load_plugins

                load_plugins(args.plugin)
            code = int(args.func(args) or 0)
        except SelfsimError as exc:
            return fail(f"error: {exc}", 2)
        except KeyboardInterrupt:
            interrupt.close_progress_bars()
            return fail(interrupt.MESSAGE, 130)
        except Exception as exc:  # noqa: BLE001 - only file-system errors become one line; anything else re-raises
            line = guard.os_error_line_of(exc)
            if line is None:
                raise
            return fail(f"error: {line}", 2)
        if state.interrupted:  # a Ctrl-C that some library swallowed still stops the command
            interrupt.close_progress_bars()
            return fail(interrupt.MESSAGE, 130)
    guard.forget()
    return code


if __name__ == "__main__":
    sys.exit(main())
