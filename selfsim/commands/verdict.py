"""`selfsim verdict`: the self-simulation verdict on one model (localise g, intervene on it, controls, rule),
or `--planted`: the validation on planted models whose g has a known place."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from selfsim.commands._common import add_model_args, check_out, check_prompts_early, model_options
from selfsim.errors import SelfsimError

if TYPE_CHECKING:
    from selfsim.verdict.run import VerdictConfig


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `verdict` subcommand."""
    p = sub.add_parser("verdict", help="self-simulation verdict per (model, property): localise g, interchange at it, "
                                       "edit transfer, controls, rule (docs/verdict.md); or --planted: the validation")
    add_model_args(p, required=False)
    p.add_argument("--untrained", default=None,
                   help="the control never trained on hypotheticals (model name or directory; default with --adapter: "
                        "--model without the adapter)")
    p.add_argument("--examples", default=None, help="examples JSONL (object/hypothetical pairs); required without --planted")
    p.add_argument("--property", default=None, help="only the examples of this property (default: every property in --examples)")
    p.add_argument("--planted", action="store_true", help="validate on the planted models (selfsim.verdict.planted) instead")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="planted seeds (default 0 1 2)")
    p.add_argument("--kinds", nargs="+", default=None, help="planted kinds to test (default: all but the untrained control)")
    p.add_argument("--node", default=None, help="skip the search: g's node as LAYER.COMPONENT, e.g. 2.mlp")
    p.add_argument("--layers", default=None, help="layers searched for g, comma list (default all)")
    p.add_argument("--components", default="mlp,attn", help="components searched for g: mlp, attn or both (default mlp,attn)")
    p.add_argument("--max-items", type=int, default=None, help="use at most this many examples (default all)")
    p.add_argument("--no-edit", action="store_true", help="skip edit transfer (interchange alone)")
    p.add_argument("--n-sets", type=int, default=3, help="edit sets for edit transfer (default 3)")
    p.add_argument("--per-set", type=int, default=16, help="edited items per edit set (default 16)")
    p.add_argument("--batch-size", type=int, default=64, help="prompts per forward pass (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed for donors, edit sets and bootstrap (default 0)")
    p.add_argument("--out", required=True, help="output directory; rerunning with the same DIR resumes")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> VerdictConfig:
    """The VerdictConfig the arguments describe (validated, nothing loaded)."""
    from selfsim.verdict.run import VerdictConfig

    layers = None
    if args.layers:
        try:
            layers = tuple(int(x) for x in args.layers.split(","))
        except ValueError:
            raise SelfsimError(f"--layers must be a comma list of integers, got {args.layers!r}") from None
    return VerdictConfig(seed=args.seed, max_items=args.max_items, layers=layers,
                         components=tuple(c.strip() for c in args.components.split(",") if c.strip()),
                         edit=not args.no_edit, n_sets=args.n_sets, per_set=args.per_set, batch_size=args.batch_size)


def run(args: argparse.Namespace) -> int:
    """Check every argument, then run the verdict (or the planted validation) and print the verdicts."""
    from selfsim.verdict.localise import Node

    config = build_config(args)
    node = Node.parse(args.node) if args.node else None
    if args.planted:
        if args.model or args.examples or args.untrained or args.adapter:
            raise SelfsimError("--planted builds its own models and examples: drop --model, --adapter, --untrained and --examples")
        check_out(args.out)
        return _planted(args, config)
    if not args.model or not args.examples:
        raise SelfsimError("give --model and --examples (or --planted for the validation on planted models)")
    if not args.untrained and not args.adapter:
        raise SelfsimError("the verdict needs an untrained control: give --untrained MODEL, or --adapter A (the control is then "
                           "--model without the adapter)")
    from selfsim.examples import load_examples
    from selfsim.models import check_layer_index, layer_count

    check_out(args.out, reads=[args.examples])
    examples = load_examples(args.examples)
    if args.property:
        examples = [e for e in examples if e.property == args.property]
    if len(examples) < 2:
        what = f" of property {args.property!r}" if args.property else ""
        raise SelfsimError(f"{args.examples} holds {len(examples)} example(s){what}; the verdict needs at least 2")
    n_layers = layer_count(args.model)
    for layer in (config.layers or ()) + ((node.layer,) if node else ()):
        check_layer_index(layer, n_layers, args.model)
    check_prompts_early(args, examples)
    from selfsim.models import load_subject
    from selfsim.verdict.run import run_verdict

    options = model_options(args)
    subject = load_subject(args.model, adapter=args.adapter, **options)
    untrained = load_subject(args.untrained or args.model, **options)
    from pathlib import Path

    label = f"{subject.name}+{Path(args.adapter).name}" if args.adapter else subject.name
    result = run_verdict(subject, examples, args.out, untrained=untrained, config=config, node=node, label=label,
                         progress=not args.no_progress)
    print(result.localisation.summary())
    for v in result.verdicts:
        print(f"{v.model} / {v.property}: {v.verdict} — {v.reason}")
    print(f"wrote {args.out}/verdict.json, verdict.parquet, evidence.parquet")
    return 0


def _planted(args: argparse.Namespace, config: VerdictConfig) -> int:
    from selfsim.verdict.run import run_planted

    calls = run_planted(args.seeds, args.out, config=config, kinds=args.kinds, progress=not args.no_progress)
    for c in calls:
        mark = {True: "right", False: "WRONG", None: "no expectation"}[c.right]
        print(f"seed {c.seed} {c.kind}: {c.verdict} (expected {c.expected}; {mark}); per test {json.dumps(c.by_test)}; "
              f"g localised at {c.node} (planted {c.planted_node})")
    wrong = [c for c in calls if c.right is False]
    print(f"wrote {args.out}/planted.jsonl, planted.parquet; {len(wrong)} wrong call(s) of {len(calls)}")
    return 1 if wrong else 0
