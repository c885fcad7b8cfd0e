"""`selfsim tasks list`: the task registry: splits, properties and how each task is obtained."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `tasks` subcommand."""
    p = sub.add_parser("tasks", help="list the object-level tasks and their properties")
    actions = p.add_subparsers(dest="action", metavar="<action>", required=True)
    lst = actions.add_parser("list", help="print every task: split, source, dialects, properties")
    lst.add_argument("--split", choices=("train", "test"), default=None, help="only this split")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    """Print the registry as a table or JSON."""
    from selfsim.tasks import TASKS

    rows = [
        {
            "task": t.name,
            "split": t.split,
            "source": t.source,
            "dialects": list(t.generators),
            "properties": list(t.properties),
            "paper_names": list(t.paper_names),
            "description": t.description,
        }
        for t in TASKS.values()
        if args.split in (None, t.split)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["task"]) for r in rows)
    for r in rows:
        how = f"generated ({', '.join(r['dialects'])})" if r["dialects"] else "imported"
        print(f"{r['task']:<{width}}  {r['split']:<5}  {how:<24}  {', '.join(r['properties'])}")
    return 0
