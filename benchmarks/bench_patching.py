"""Patching speed, each figure a ratio measured in one run: hook overhead per backend, batched vs
one-patch-per-forward sweeps (batched: resumed from the patched layer, and from the first layer), and
attribution vs the fastest exact sweep (with its Spearman agreement).

The subject is a random-weight Llama built on the meta device and materialised on `--device`
(shapes from `--config`: tiny, toy = the embedded toy shape, llama3-8b), with the toy tokenizer
and toy-dialect first_word examples; `--model` uses a checkpoint instead (paper-dialect english_words_long
examples unless it is a toy model; `--dialect` overrides, `--layers` limits the sweep). Timings are medians over
`--repeats` rounds in which every variant runs once, interleaved, so load on a shared machine hits
all variants alike. Run: `.venv/bin/python benchmarks/bench_patching.py` (GPU: add
`--device cuda --dtype bfloat16 --config llama3-8b`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

CONFIGS: dict[str, dict[str, int | float]] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
    "toy": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2),
    "llama3-8b": dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        vocab_size=128256, rope_theta=500000.0,
    ),
}


def random_subject(config_name: str, device: str, dtype: str, workdir: Path):
    """A random Llama of `config_name`'s shape: built on meta, materialised on `device`, toy tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    from selfsim.models import Subject, torch_dtype
    from selfsim.toy.tokenizer import SPECIAL_TOKENS, build_tokenizer

    build_tokenizer().save_pretrained(workdir)  # the tlens bridge reloads the tokenizer from its directory
    tokenizer = AutoTokenizer.from_pretrained(workdir)
    tokenizer.padding_side = "left"
    shape = dict(CONFIGS[config_name])
    shape.setdefault("vocab_size", len(tokenizer))
    config = LlamaConfig(**shape, max_position_embeddings=8192, pad_token_id=0, bos_token_id=2, eos_token_id=3,
                         tie_word_embeddings=False, attn_implementation="eager")
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model = model.to(torch_dtype(dtype)).to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1:
                param.fill_(1.0)
            else:
                param.normal_(0.0, config.initializer_range, generator=generator)
        model.get_input_embeddings().weight[: len(SPECIAL_TOKENS)] *= 0.01
        model.lm_head.weight[: len(SPECIAL_TOKENS)] = 0.0
        model.lm_head.weight[len(tokenizer) :] = 0.0
    model.model.rotary_emb = LlamaRotaryEmbedding(config).to(device)
    model.eval()
    return Subject(name=f"random-{config_name}", path=Path("."), model=model, tokenizer=tokenizer,
                   fingerprint=f"random-{config_name}", options={"dtype": dtype})


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None],
                warmup: bool = True) -> dict[str, float]:
    """Median seconds per function over `repeats` rounds, each round running every function once (after one
    untimed warm-up call each, unless not `warmup`)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values() if warmup else ():
        fn()
    sync()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def hook_overhead(subject, examples, backends: list[str], repeats: int, sync) -> dict[str, float]:
    """Seconds of a plain forward and, per backend, ratios for no-op / read-every-layer / patch-every-layer passes."""
    from selfsim.interp.pairs import batch_of, match_all
    from selfsim.interp.tracing import Patch, get_tracer

    batch = batch_of(subject, [m.hypothetical for m in match_all(subject, examples)])
    device = subject.input_device
    sites = [subject.site(layer) for layer in range(subject.n_layers)]
    rows = torch.arange(batch.size)
    final = torch.full_like(rows, batch.width - 1)
    value = torch.zeros(batch.size, subject.hidden_size)
    patches = [Patch(site, rows, final, value) for site in sites]

    def plain() -> object:
        return subject.base(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device), use_cache=False)

    out: dict[str, float] = {}
    # The tlens bridge rewraps the model in place (and nnsight refuses a rewrapped one): time it last,
    # against a plain forward of the rewrapped model.
    groups = [[b for b in backends if b != "tlens"], [b for b in backends if b == "tlens"]]
    for group in filter(None, groups):
        fns: dict[str, Callable[[], object]] = {"plain": plain}
        for backend in group:
            tracer = get_tracer(subject, backend)
            fns[f"{backend}_noop"] = lambda t=tracer: t.run(batch)
            fns[f"{backend}_read"] = lambda t=tracer: t.run(batch, read=sites)
            fns[f"{backend}_patch"] = lambda t=tracer: t.run(batch, patches=patches)
        with torch.no_grad():
            times = interleaved(fns, repeats, sync)
        base = times.pop("plain")
        out.setdefault("plain_forward_s", base)
        out.update({f"{name}_vs_plain": t / base for name, t in times.items()})
    return out


VARIANTS = ("batched", "batched_no_resume", "one_per_forward", "attribution", "attribution_atp")
ATTRIBUTIONS = {"attribution": "atp*", "attribution_atp": "atp"}  # timed variant -> attribution method


def spearman_ci(attribution: pd.DataFrame, exact: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> list[float] | None:
    """95% bootstrap interval (pairs resampled) of the cell Spearman of `compare_with_exact`."""
    import numpy as np

    from selfsim.errors import SelfsimError
    from selfsim.interp.attribution import compare_with_exact

    pairs = sorted(set(attribution.loc[attribution["informative"], "pair"]))
    if len(pairs) < 2:
        return None
    rng = np.random.default_rng(seed)
    by_pair_a = {k: g for k, g in attribution.groupby("pair")}
    by_pair_e = {k: g for k, g in exact.groupby("pair")}
    values = []
    for _ in range(resamples):
        pick = rng.choice(pairs, len(pairs))
        # a resampled pair gets a fresh id, so a pair drawn twice counts twice
        a = pd.concat([by_pair_a[k].assign(pair=i) for i, k in enumerate(pick)])
        e = pd.concat([by_pair_e[k].assign(pair=i) for i, k in enumerate(pick)])
        try:
            values.append(float(compare_with_exact(a, e)["spearman_cells"].iloc[0]))
        except SelfsimError:
            continue
    return [float(x) for x in np.nanpercentile(values, [2.5, 97.5])] if values else None


def sweep_and_attribution(subject, examples, backend: str, repeats: int, sync, layers: tuple[int, ...] | None = None,
                          warmup: bool = True, variants: tuple[str, ...] = VARIANTS) -> dict[str, object]:
    """Batched sweep (resumed from the patched layer, and not) vs one patch per forward, and attribution vs the
    fastest exact sweep (`layers`: all when None); the rows of the batched and the one-per-forward sweeps must agree."""
    from selfsim.interp.attribution import attribution_rows, compare_with_exact
    from selfsim.interp.patching import PatchConfig, patch_rows, setups

    config = PatchConfig(layers=layers, positions="each", backend=backend)
    setup = next(setups([subject], examples, config))[0]
    layers = config.layers_for(subject)
    last: dict[str, pd.DataFrame] = {}

    def sweep(max_rows: int, resume: bool) -> Callable[[], object]:
        def fn() -> object:
            setup.max_rows = max_rows
            last[f"{max_rows}-{resume}"] = patch_rows(setup, ("resid",), layers, "each", resume=resume)
            return last[f"{max_rows}-{resume}"]

        return fn

    def attribute(name: str) -> Callable[[], object]:
        def fn() -> object:
            setup.max_rows = 256
            last[name] = attribution_rows(setup, ("resid",), layers, method=ATTRIBUTIONS[name])
            return last[name]

        return fn

    fns = {"batched": sweep(256, True), "batched_no_resume": sweep(256, False), "one_per_forward": sweep(1, False),
           **{name: attribute(name) for name in ATTRIBUTIONS}}
    times: dict[str, float | None] = dict.fromkeys(VARIANTS)
    times.update(interleaved({name: fns[name] for name in ("batched", *variants) if name in fns}, repeats, sync, warmup))
    exact, single = last["256-True"], last.get("1-False")
    n_rows = len(exact) // 2
    max_diff = max_prob_diff = same_answers = None
    if single is not None:
        max_diff = float((exact["logit_diff"] - single["logit_diff"]).abs().max())
        max_prob_diff = float((exact["prob_donor"] - single["prob_donor"]).abs().max())  # nonzero even where tokens coincide
        same_answers = bool(exact["answer"].equals(single["answer"]))
    from selfsim.errors import SelfsimError

    def ratio(a: str, b: str) -> float | None:
        return None if times[a] is None or times[b] is None else times[a] / times[b]  # pyright: ignore[reportOptionalOperand]

    base = {"backend": backend, "patched_rows": n_rows, **{f"{k}_s": v for k, v in times.items()},
            "one_per_forward_vs_batched": ratio("one_per_forward", "batched"),
            "one_per_forward_vs_batched_no_resume": ratio("one_per_forward", "batched_no_resume"),
            "batched_vs_one_per_forward_max_abs_logit_diff": max_diff,
            "batched_vs_one_per_forward_max_abs_prob_donor": max_prob_diff,
            "batched_vs_one_per_forward_same_answers": same_answers}
    fastest = "batched" if times["batched_no_resume"] is None or times["batched"] <= times["batched_no_resume"] else "batched_no_resume"  # pyright: ignore[reportOperatorIssue]
    for name, method in ATTRIBUTIONS.items():
        if name not in last:
            continue
        try:
            comparison = compare_with_exact(last[name], exact)
        except SelfsimError as exc:  # e.g. too few pairs whose donor and recipient answers differ
            print(f"attribution ({method}) vs exact not compared: {exc}")
            continue
        base[method] = {
            "exact_vs_attribution": ratio(fastest, name),
            "exact_one_per_forward_vs_attribution": ratio("one_per_forward", name),
            **{key: cast(comparison[key].iloc[0]) for key, cast in
               (("n_cells", int), ("n_rows", int), ("spearman_cells", float), ("spearman_rows", float))},
            "spearman_cells_ci95": spearman_ci(last[name], exact),
            "spearman_cells_abs": abs_spearman(last[name], exact),
        }
    return base


def abs_spearman(attribution: pd.DataFrame, exact: pd.DataFrame) -> float:
    """Spearman of |cell mean estimate| vs |cell mean exact effect| (ranks magnitudes, ignoring sign)."""
    keys = ["layer", "position", "pair"]
    ex = exact[exact["informative"]].assign(effect=lambda d: d["logit_diff"] - d["logit_diff_clean"])
    joined = attribution[attribution["informative"]].merge(ex[[*keys, "effect"]], on=keys)
    cells = joined.groupby(["layer", "position"])[["estimate", "effect"]].mean().abs()
    return float(cells["estimate"].rank().corr(cells["effect"].rank()))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="toy", choices=sorted(CONFIGS), help="random model shape (default toy)")
    parser.add_argument("--model", default=None, help="a checkpoint (toy-m1, a directory) instead of a random model")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--dtype", default="float32", help="float32 (default) or bfloat16")
    parser.add_argument("--backends", default="hooks,nnsight,tlens", help="comma list of overhead backends, '' for none (default hooks,nnsight,tlens)")
    parser.add_argument("--sweep-backend", default="hooks", help="backend of the sweep and attribution figures (default hooks)")
    parser.add_argument("--pairs", type=int, default=8, help="object prompts / patching pairs (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds of the sweeps (default 3)")
    parser.add_argument("--overhead-repeats", type=int, default=30, help="timing rounds of single forwards (default 30)")
    parser.add_argument("--out", default=None, help="also write the results JSON here")
    parser.add_argument("--dialect", default=None, help="examples' dialect: toy, paper (default: paper for a non-toy --model, else toy)")
    parser.add_argument("--layers", default=None, help="comma list of the sweep's layers (default all)")
    parser.add_argument("--no-warmup", action="store_true", help="time the sweeps' first calls (slow models: one round only)")
    parser.add_argument("--task", default=None, help="task of the first_word examples (default animals_long, paper: english_words_long)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma list of timed variants besides batched (default {','.join(VARIANTS)})")
    args = parser.parse_args(argv)

    from selfsim.models import load_subject
    from selfsim.tasks import generate

    workdir = tempfile.TemporaryDirectory(prefix="bench_patching_")
    if args.model:
        subject = load_subject(args.model, dtype=args.dtype, device_map=args.device, attn_implementation="eager")
    else:
        subject = random_subject(args.config, args.device, args.dtype, Path(workdir.name))
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    dialect = args.dialect or ("paper" if args.model and not args.model.startswith("toy-") else "toy")
    task = args.task or ("english_words_long" if dialect == "paper" else "animals_long")
    examples = generate(task, "first_word", n=args.pairs, seed=0, dialect=dialect)
    layers = tuple(int(x) for x in args.layers.split(",")) if args.layers else None
    result = {
        "model": subject.name, "device": args.device, "dtype": args.dtype, "pairs": args.pairs,
        "layers": subject.n_layers, "hidden": subject.hidden_size, "threads": torch.get_num_threads(),
        "dialect": dialect, "task": task, "sweep_layers": list(layers) if layers else "all",
        "sweep": sweep_and_attribution(subject, examples, args.sweep_backend, args.repeats, sync, layers, not args.no_warmup,
                                       tuple(v for v in args.variants.split(",") if v)),
    }
    if args.backends:
        result["overhead"] = hook_overhead(subject, examples, args.backends.split(","), args.overhead_repeats, sync)
    workdir.cleanup()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
