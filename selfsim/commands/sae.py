"""`selfsim sae`: train TopK SAEs on each subject's residual stream and trace the object-level answer latents."""

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
    """Add the `sae` subcommand."""
    p = sub.add_parser("sae", help="train SAEs (sae-lens format) per subject and layer; FVU, dead latents and answer latents")
    add_subject_args(p)
    add_example_args(p)
    p.add_argument("--d-sae", type=int, default=512, help="SAE width (default 512)")
    p.add_argument("--k", type=int, default=16, help="active latents per input, TopK (default 16)")
    p.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    p.add_argument("--batch-size", type=int, default=256, help="activations per step (default 256)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--train-tokens", type=int, default=16, help="last tokens of each prompt to train on (default 16)")
    add_readout_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the arguments, load the subjects, run the SAE study and print one line per subject and layer."""
    from selfsim.interp.sae import SAEConfig, SAEStudyConfig, sae_figure, sae_study
    from selfsim.io import atomic_open

    config = SAEStudyConfig(
        layers=parse_layers(args.layers),
        sae=SAEConfig(d_sae=args.d_sae, k=args.k, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed),
        test_fraction=args.test_fraction, seed=args.seed, position=args.position, train_tokens=args.train_tokens,
        budget_bytes=args.budget_mib * 2**20, backend=args.backend,
    )
    check_out(args.out)
    examples, labels = examples_from_args(args)
    subjects = subjects_from_args(args)
    results = sae_study(subjects, examples, args.out, config, m1_responses=labels, progress=not args.no_progress)
    with atomic_open(f"{args.out}/sae.html") as fh:
        fh.write(sae_figure(results).to_html(include_plotlyjs=True))
    for subject, layers in results["subjects"].items():
        for layer, entry in layers.items():
            traced = entry.get("own:first_token", {})
            print(json.dumps({"subject": subject, "layer": int(layer), "fvu": round(entry["fvu"], 4),
                              "dead_share": round(entry["dead_share"], 4), "dead_share_train": round(entry["dead_share_train"], 4),
                              **{k: traced.get(k) for k in ("n_classes", "object_auroc", "hypothetical_auroc")}}))
    print(f"results -> {args.out}/results.json")
    return 0
