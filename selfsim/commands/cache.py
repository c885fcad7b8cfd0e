"""`selfsim cache`: stream a model's activations on matched (P, H(P, f)) pairs to disk, in shards, resumably."""

from __future__ import annotations

import argparse
import json

from selfsim.commands._common import (
    add_example_args,
    add_model_args,
    check_out,
    check_prompts_early,
    examples_from_args,
    parse_layers,
    subject_from_args,
)
from selfsim.errors import SelfsimError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `cache` subcommand."""
    p = sub.add_parser("cache", help="cache activations of object and hypothetical runs at the copy of P and the final token")
    add_model_args(p)
    add_example_args(p, labels=False)
    p.add_argument("--components", default="resid", help="comma list of resid, attn, mlp (default resid)")
    p.add_argument("--store-dtype", default="float16", help="storage dtype: float16 (default), bfloat16 or float32")
    p.add_argument("--batch-size", type=int, default=16, help="most prompts per forward pass (default 16)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the arguments, load the model and cache both runs; print the two manifests' summaries."""
    from selfsim.interp.cache import CacheConfig, cache_pairs
    from selfsim.interp.pairs import match_all

    components = [c.strip() for c in args.components.split(",") if c.strip()]
    if not components:
        raise SelfsimError("--components is empty; give resid, attn and/or mlp")
    layers = parse_layers(args.layers)
    check_out(args.out, reads=[args.examples, args.adapter])
    examples, _ = examples_from_args(args)
    check_prompts_early(args, examples)
    subject = subject_from_args(args)
    layers = list(range(subject.n_layers)) if layers is None else layers
    config = CacheConfig(sites=[subject.site(x, c) for x in layers for c in components], dtype=args.store_dtype,
                         budget_bytes=args.budget_mib * 2**20, batch_size=args.batch_size, backend=args.backend)
    pair = cache_pairs(subject, match_all(subject, examples), args.out, config, progress=not args.no_progress)
    for kind, cache in (("object", pair.object), ("hypothetical", pair.hypothetical)):
        m = cache.manifest
        print(json.dumps({"run": kind, "path": str(cache.path), "rows": cache.n_rows, "shards": len(cache.shards),
                          "rows_per_shard": m["rows_per_shard"], "sites": len(m["sites"]), "dtype": m["dtype"]}))
    return 0
