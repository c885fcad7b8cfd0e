"""`selfsim patch`: cross-prompt activation patching between object and hypothetical runs."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from selfsim.commands._common import add_model_args, check_out, check_prompts_early, examples_from_args, subject_from_args
from selfsim.errors import SelfsimError

if TYPE_CHECKING:
    from selfsim.interp.pairs import MatchedPair
    from selfsim.interp.patching import PatchConfig

POSITION_CHOICES = "final, prompt, all or an integer (a position of the copy of P: >= 0 from its start, < 0 from its end)"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `patch` subcommand."""
    p = sub.add_parser("patch", help="patch activations between object and hypothetical runs; write tables and heatmaps to DIR")
    add_model_args(p)
    p.add_argument("--layer", type=int, default=None, help="layer to patch (required unless --sweep)")
    p.add_argument("--position", default="final", help=f"where to patch: {POSITION_CHOICES} (default final)")
    p.add_argument("--component", default="resid", help="resid, attn, mlp or a comma list (default resid)")
    p.add_argument("--direction", default="object->hypothetical",
                   help="object->hypothetical (default), hypothetical->object, hypothetical->hypothetical, a comma list or all")
    p.add_argument("--sweep", action="store_true", help="every layer x every single position (the heatmap)")
    p.add_argument("--attribution", action="store_true", help="also run attribution patching and rank it against exact patching")
    p.add_argument("--attribution-method", default=None, choices=("atp", "atp*"),
                   help="atp (first order) or atp* (next attention block's softmax exact); default atp*")
    from selfsim.interp.backends.registry import BUILTIN, DEFAULT_BACKEND

    p.add_argument("--backend", default=DEFAULT_BACKEND,
                   help=f"tracing backend: {', '.join(BUILTIN)} or one registered by `selfsim --plugin MODULE` (default {DEFAULT_BACKEND})")
    from selfsim.interp.metric_defaults import DEFAULT_METRICS, DEFAULT_RANK_BY

    p.add_argument("--metric", action="append", default=None, metavar="NAME",
                   help=f"patching metric to compute (built-in or registered by `selfsim --plugin MODULE`); repeat for several "
                        f"(default {', '.join(DEFAULT_METRICS)})")
    p.add_argument("--rank-by", default=None, metavar="NAME",
                   help=f"metric the best cells are ranked by (default {DEFAULT_RANK_BY} if computed, else the first --metric)")
    p.add_argument("--no-resume", action="store_true",
                   help="run every patched row from the first layer (default: resume from the patched layer when the backend can)")
    p.add_argument("--property", default="first_word", help="property of the generated examples (default first_word)")
    p.add_argument("--task", default="animals_long", help="task of the generated examples (default animals_long)")
    p.add_argument("--dialect", default="toy", help="dialect of the generated examples: toy (default) or paper")
    p.add_argument("--n", type=int, default=64, help="object prompts to generate (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed for generated examples and donor pairing (default 0)")
    p.add_argument("--examples", default=None, help="examples JSONL instead of generated ones")
    p.add_argument("--labels", default=None,
                   help="M1's behaviour table (selfsim collect) for the m1 target; default: this model's own answers")
    p.add_argument("--max-rows", type=int, default=256, help="patched rows per forward pass (default 256)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def parse_position(value: str) -> str | int:
    """--position's value: a named mode or an integer copy position."""
    if value in ("final", "prompt", "all"):
        return value
    try:
        return int(value)
    except ValueError:
        raise SelfsimError(f"unknown --position {value!r}; use {POSITION_CHOICES}") from None


def check_layer_early(args: argparse.Namespace) -> None:
    """Validate --layer against the checkpoint's config.json (a toy model's config if not yet built), loading no weights."""
    from selfsim.models import check_layer_index, layer_count

    if args.layer is not None:
        check_layer_index(args.layer, layer_count(args.model), args.model)


def check_position(config: PatchConfig, matched: list[MatchedPair]) -> None:
    """Raise unless the integer position of `config` (if any) is an aligned copy position of at least one pair."""
    from selfsim.interp.pairs import pair_up
    from selfsim.interp.patching import DIRECTIONS

    position, spans = config.positions, []
    if not isinstance(position, int):
        return
    for direction in config.directions:
        donor_kind, recipient_kind = DIRECTIONS[direction]
        for r, d in pair_up(matched, config.seed):
            m = len(matched[r].prompt(recipient_kind).copy_positions)
            spans.append((m, min(m, len(matched[d].prompt(donor_kind).copy_positions))))
    if any((m - k <= position < m) if position >= 0 else (-k <= position) for m, k in spans):
        return
    first, last = min((m - k for m, k in spans), default=0), max((m for m, _ in spans), default=0) - 1
    widest = max((k for _, k in spans), default=0)
    raise SelfsimError(
        f"--position {position} is outside the copy of P in every pair: valid integer positions are "
        f"{first}..{last} (from the copy's start) and -{widest}..-1 (from its end), or final, prompt, all"
    )


def build_config(args: argparse.Namespace) -> PatchConfig:
    """The PatchConfig the arguments describe (validated, nothing loaded)."""
    from selfsim.interp.metrics import DEFAULT_METRICS
    from selfsim.interp.patching import DIRECTIONS, PatchConfig

    if args.layer is None and not args.sweep:
        raise SelfsimError("give --layer L, or --sweep for every layer x position")
    directions = tuple(DIRECTIONS) if args.direction == "all" else tuple(d.strip() for d in args.direction.split(","))
    return PatchConfig(
        directions=directions,
        components=tuple(c.strip() for c in args.component.split(",")),
        layers=None if args.layer is None else (args.layer,),
        positions="each" if args.sweep else parse_position(args.position),
        backend=args.backend,
        max_rows=args.max_rows,
        seed=args.seed,
        metrics=tuple(args.metric) if args.metric else DEFAULT_METRICS,
        rank_by=args.rank_by,
        resume=not args.no_resume,
    )


def run(args: argparse.Namespace) -> int:
    """Check the arguments, load the model, run the patching (and attribution) and write the results."""
    from dataclasses import replace
    from pathlib import Path

    config = build_config(args)
    check_out(args.out)
    check_layer_early(args)
    examples, labels = examples_from_args(args)
    from selfsim.tasks import token_budget

    budget = max((token_budget(e.task, e.dialect, config.max_new_tokens) for e in examples), default=0)
    check_position(config, check_prompts_early(args, examples, extra_tokens=budget))
    from selfsim.interp.backends.registry import needs

    subject = subject_from_args(args, **needs(config.backend))

    from selfsim.interp.patching import run_patching

    result = run_patching([subject], examples, config, labels=labels, progress=not args.no_progress)
    out = Path(args.out)
    written = result.save(out)
    summary = result.summary()
    if args.attribution:
        from selfsim.interp.attribution import compare_with_exact, run_attribution
        from selfsim.interp.metrics import ATTRIBUTION_METRIC
        from selfsim.io import atomic_open, write_json

        metric = next((m for m in config.metrics if m == ATTRIBUTION_METRIC), None)
        if metric is None:
            raise SelfsimError(f"--attribution compares against exact patching of {ATTRIBUTION_METRIC}: add --metric {ATTRIBUTION_METRIC}")
        each = replace(config, positions="each")
        exact = result.rows if args.sweep else run_patching([subject], examples, each, labels=labels).rows
        method = {"method": args.attribution_method} if args.attribution_method else {}
        attribution = run_attribution([subject], examples, each, labels=labels, **method)
        with atomic_open(out / "attribution.parquet", "wb") as fh:
            attribution.to_parquet(fh, index=False)
        comparison = compare_with_exact(attribution, exact, metric)
        write_json(out / "attribution_vs_exact.json", comparison.to_dict("records"))
        written += [out / "attribution.parquet", out / "attribution_vs_exact.json"]
        print(comparison.to_string(index=False))
    if not summary["n"].to_numpy().any():
        print("no informative pair: the donor's and the recipient's values coincide (or are missing) everywhere")
    from selfsim.interp.metrics import figure_columns

    rank = config.rank_column
    best = summary.loc[summary["n"] > 0].sort_values(rank, ascending=False).groupby(["direction", "component", "target"]).head(1)
    keys = tuple(dict.fromkeys(("direction", "component", "target", "layer", "position", "n", "n_missing", rank,
                                *figure_columns(config.metrics))))
    for row in best.to_dict("records"):
        print(json.dumps({k: row[k] for k in keys}))
    print(f"{len(result.rows)} rows, {len(written)} files -> {out}")
    return 0
