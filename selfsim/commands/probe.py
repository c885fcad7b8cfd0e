"""`selfsim probe`: per-layer linear probes for the object-level answer (and, with --lens, the logit lens).

Subjects are given as `--subject LABEL=SPEC[@ADAPTER]` (repeatable; e.g. `untrained=toy-m1`,
`self=toy-m1@runs/s/self`, `cross=toy-m2@runs/s/cross`) and/or one `--model` (default: the toy
models toy-m1 and toy-m2); see `selfsim.commands._common` for the options sae and cache share.
"""

from __future__ import annotations

import argparse
import json

from selfsim.commands._common import (
    add_example_args,
    add_readout_args,
    add_subject_args,
    check_out,
    examples_from_args,
    parse_layers,
    subjects_from_args,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `probe` subcommand."""
    p = sub.add_parser("probe", help="per-layer linear probes for the object-level answer: object runs, transfer to hypothetical runs, controls")
    add_subject_args(p)
    add_example_args(p)
    add_readout_args(p)
    p.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic regression (default 1)")
    p.add_argument("--lens", action="store_true", help="also run the logit lens on the same examples")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the arguments, load the subjects, run the probes (and lens) and print the best layers."""
    from selfsim.interp.probes import ProbeConfig, run_probes

    config = ProbeConfig(test_fraction=args.test_fraction, seed=args.seed, C=args.C, position=args.position)
    layers = parse_layers(args.layers)
    out = check_out(args.out)
    examples, labels = examples_from_args(args)
    subjects = subjects_from_args(args)
    results = run_probes(subjects, examples, out, config, layers=layers, m1_responses=labels,
                         budget_bytes=args.budget_mib * 2**20, backend=args.backend, progress=not args.no_progress)
    written = ["results.parquet", "results.json", "config.json", "probes.html"]
    if args.lens:
        from selfsim.interp.lens import lens_figure, lens_study
        from selfsim.io import atomic_open, write_json

        m1_first = None
        if labels is not None:
            from selfsim.interp.answers import first_tokens

            m1_first = first_tokens(next(iter(subjects.values())), examples, [labels.get(e.object_id) for e in examples])
        lens = lens_study(subjects, examples, m1_first_tokens=m1_first, layers=layers, backend=args.backend)
        write_json(out / "lens.json", lens.to_dict("records"))
        with atomic_open(out / "lens.html") as fh:
            fh.write(lens_figure(lens).to_html(include_plotlyjs=True))
        written += ["lens.json", "lens.html"]
    best = results.loc[results["metric"].isin(["object", "transfer", "hypothetical"])]
    best = best.sort_values("accuracy", ascending=False).groupby(["subject", "target", "labels", "metric"], sort=False).head(1)
    for row in best.sort_values(["subject", "target", "labels", "metric"]).to_dict("records"):
        print(json.dumps({k: row[k] for k in ("subject", "target", "labels", "metric", "layer", "accuracy")}))
    print(f"{len(results)} rows, {len(written)} files -> {out}")
    return 0
