"""`selfsim probe`: per-layer linear probes for the object-level answer (and, with --lens, the logit lens).

Also home of the arguments the interpretability commands share: subjects given as
`--subject LABEL=SPEC[@ADAPTER]` (repeatable; e.g. `untrained=toy-m1`, `self=toy-m1@runs/s/self`,
`cross=toy-m2@runs/s/cross`) and/or one `--model` (default: the toy models toy-m1 and toy-m2),
layers, and the examples (freshly generated toy-dialect examples by default, as `selfsim patch`
takes them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from selfsim.commands._common import add_model_args, check_out, model_options
from selfsim.errors import SelfsimError

if TYPE_CHECKING:
    from selfsim.models import Subject

DEFAULT_SUBJECTS = ("toy-m1", "toy-m2")


def add_subject_args(p: argparse.ArgumentParser) -> None:
    """--subject (repeatable) or --model, plus the shared model-loading options."""
    add_model_args(p, required=False)
    p.add_argument("--subject", action="append", default=[], metavar="LABEL=SPEC[@ADAPTER]",
                   help="a model to analyse, with a label and an optional peft adapter; repeat for untrained/self/cross "
                        "(default without --model: toy-m1 and toy-m2)")


def add_example_args(p: argparse.ArgumentParser, *, labels: bool = True) -> None:
    """Examples (--examples JSONL, or generated: --task, --property, --n, --seed, --dialect), M1's --labels,
    --layers, --budget-mib, --backend, --out and --no-progress."""
    p.add_argument("--property", default="first_word", help="property of the examples (default first_word)")
    p.add_argument("--task", default="animals_long", help="task of the generated examples (default animals_long)")
    p.add_argument("--dialect", default="toy", help="dialect of the generated examples: toy (default) or paper")
    p.add_argument("--n", type=int, default=200, help="object prompts to generate (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed for generated examples and the train/test split (default 0)")
    p.add_argument("--examples", default=None, help="examples JSONL instead of generated ones")
    if labels:
        p.add_argument("--labels", default=None, help="M1's behaviour table (selfsim collect) for the m1 labels; default: the first subject's answers")
    p.add_argument("--layers", default="all", help="comma list of layers, or all (default)")
    p.add_argument("--budget-mib", type=int, default=1024, help="memory budget of the activation cache in MiB (default 1024)")
    p.add_argument("--backend", default="hooks", help="tracing backend: hooks (default), nnsight or tlens")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def parse_subject(spec: str) -> tuple[str, str, str | None]:
    """`LABEL=SPEC[@ADAPTER]` -> (label, model spec, adapter or None)."""
    label, sep, rest = spec.partition("=")
    if not sep or not label or not rest:
        raise SelfsimError(f"--subject {spec!r}: expected LABEL=SPEC or LABEL=SPEC@ADAPTER, e.g. self=toy-m1@runs/s/self")
    model, _, adapter = rest.partition("@")
    return label, model, adapter or None


def subjects_from_args(args: argparse.Namespace) -> dict[str, Subject]:
    """Load every subject named by --model and --subject, in order, keyed by label (default: toy-m1 and toy-m2)."""
    from selfsim.models import load_subject

    specs = [parse_subject(s) for s in args.subject]
    if args.model:
        label = Path(args.model).name or args.model
        specs.insert(0, (f"{label}+{Path(args.adapter).name}" if args.adapter else label, args.model, args.adapter))
    specs = specs or [(name, name, None) for name in DEFAULT_SUBJECTS]
    labels = [label for label, _, _ in specs]
    if len(set(labels)) != len(labels):
        raise SelfsimError(f"subject labels must be distinct, got {labels}")
    return {
        label: load_subject(model, adapter=adapter, **model_options(args))
        for label, model, adapter in specs
    }


def parse_layers(value: str) -> list[int] | None:
    """--layers: `all` (None) or a comma list of integers."""
    if value == "all":
        return None
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise SelfsimError(f"--layers {value!r}: expected all or a comma list of integers, e.g. 0,2,3") from None


def examples_from_args(args: argparse.Namespace) -> tuple[list, dict[str, str] | None]:
    """The examples of --property (given or generated) and the optional M1 label table (object_id -> response)."""
    from selfsim.commands.patch import load_inputs

    return load_inputs(argparse.Namespace(**{"labels": None, **vars(args)}))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="per-layer linear probes for the object-level answer: object runs, transfer to hypothetical runs, controls")
    add_subject_args(p)
    add_example_args(p)
    p.add_argument("--position", default="final", help="where to read the residual stream: final (default) or copy_end (end of P's copy)")
    p.add_argument("--test-fraction", type=float, default=0.25, help="share of object prompts held out (default 0.25)")
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
            from selfsim.interp.probes import first_tokens

            m1_first = first_tokens(next(iter(subjects.values())), examples, [labels.get(e.object_id) for e in examples])
        lens = lens_study(subjects, examples, m1_first_tokens=m1_first, layers=layers, backend=args.backend)
        write_json(out / "lens.json", lens.to_dict("records"))
        with atomic_open(out / "lens.html") as fh:
            fh.write(lens_figure(lens).to_html(include_plotlyjs=True))
        written += ["lens.json", "lens.html"]
    best = results[results["metric"].isin(["object", "transfer", "hypothetical"])]
    best = best.sort_values("accuracy", ascending=False).groupby(["subject", "target", "labels", "metric"], sort=False).head(1)
    for row in best.sort_values(["subject", "target", "labels", "metric"]).to_dict("records"):
        print(json.dumps({k: row[k] for k in ("subject", "target", "labels", "metric", "layer", "accuracy")}))
    print(f"{len(results)} rows, {len(written)} files -> {out}")
    return 0
