"""`selfsim info`: load a model and print what selfsim sees in it."""

from __future__ import annotations

import argparse
import json

from selfsim.commands._common import add_model_args, subject_from_args


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `info` subcommand."""
    p = sub.add_parser("info", help="load a model and print its layers, sites, dtype and fingerprint")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the model and print its description and hook-site patterns as JSON."""
    subject = subject_from_args(args)
    info = subject.describe()
    info["sites"] = {c: subject.site(0, c).replace(".0", ".{layer}", 1) for c in ("resid", "attn", "mlp")}
    print(json.dumps(info, indent=2))
    return 0
