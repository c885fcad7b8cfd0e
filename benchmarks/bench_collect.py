"""Batched behaviour collection vs a one-prompt-at-a-time `model.generate` loop, same model and prompts.

Prompts: `--n` toy-dialect object prompts (animals_long, colors_long, countries_long, numbers in turn),
greedy, each with its task's token budget. Baseline: for each prompt alone, HF `generate(do_sample=False)`
with the same budget and EOS. Batched: `selfsim.behavior.collect` into a fresh directory (cache writes,
property extraction and the final tables included). Both are warmed up first; `--rounds` rounds
alternate baseline and batched and the medians are compared. The greedy responses must be identical.
Model: `--model` (default toy-m1 when its checkpoint is built, else a random-weight model of the toy
shape with the toy tokenizer, flagged in the output). Run: `.venv/bin/python benchmarks/bench_collect.py`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

TASKS = ("animals_long", "colors_long", "countries_long", "numbers")


def load_model(name: str | None):
    """The subject to time: `name`, else toy-m1 if built, else a random model of the toy shape."""
    from selfsim.models import Subject, load_subject
    from selfsim.toy import registry

    if name or registry.is_built(registry.default_path("toy-m1")):
        return load_subject(name or "toy-m1"), False
    from selfsim.toy.pretrain import build_model
    from selfsim.toy.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.padding_side = "left"
    torch.manual_seed(0)
    model = build_model(registry.config_for("toy-m1"), tokenizer).eval()
    return Subject(name="random-toy-shape", path=Path("."), model=model, tokenizer=tokenizer, fingerprint="random-toy-shape"), True


def toy_examples(n: int, dialect: str = "toy"):
    """`n` distinct object prompts of `dialect` (toy by default) spread over TASKS, one property each."""
    from selfsim.tasks.generate import generate

    per_task = -(-n // len(TASKS))
    pools = [generate(task, n=per_task, dialect=dialect, seed=0) for task in TASKS]
    firsts = [list({e.object_id: e for e in pool}.values()) for pool in pools]
    return [firsts[i % len(TASKS)][i // len(TASKS)] for i in range(n)]


def one_at_a_time(subject, examples) -> list[str]:
    """The baseline: HF generate on each prompt alone, decoded as collect decodes."""
    from selfsim.generation import encode_prompt
    from selfsim.tasks import token_budget

    tok = subject.tokenizer
    out = []
    for e in examples:
        budget = token_budget(e.task, e.dialect)
        ids, _ = encode_prompt(subject, subject.render_chat(e.object_messages), budget)
        x = torch.tensor([ids], device=subject.input_device)
        with torch.inference_mode():
            y = subject.model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=budget, do_sample=False,
                                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        new = y[0, len(ids):].tolist()
        if tok.eos_token_id in new:
            new = new[: new.index(tok.eos_token_id)]
        out.append(tok.decode(new, skip_special_tokens=True))
    return out


def batched(subject, examples, batch_size: int) -> list[str]:
    """selfsim's collection into a throwaway directory; the greedy responses in example order."""
    from selfsim.behavior import collect

    with tempfile.TemporaryDirectory() as tmp:
        df = collect(subject, examples, out_dir=tmp, batch_size=batch_size, progress=False)
    return df["response"].tolist()


def timed(fn, *args) -> tuple[float, list[str]]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model to time (default toy-m1, or a random toy-shaped model)")
    parser.add_argument("--n", type=int, default=256, help="object prompts (default 256)")
    parser.add_argument("--batch-size", type=int, default=64, help="collect's batch size (default 64)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--dialect", default="toy", help="prompt dialect: toy (default) or paper")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    subject, random_weights = load_model(args.model)
    examples = toy_examples(args.n, args.dialect)
    one_at_a_time(subject, examples[:4])
    batched(subject, examples[: args.batch_size], args.batch_size)
    base_times, batch_times = [], []
    for _ in range(args.rounds):
        t, reference = timed(one_at_a_time, subject, examples)
        base_times.append(t)
        t, responses = timed(batched, subject, examples, args.batch_size)
        batch_times.append(t)
        if responses != reference:
            diff = sum(a != b for a, b in zip(responses, reference))
            sys.exit(f"batched greedy responses differ from one-at-a-time on {diff} of {len(examples)} prompts")
    base, fast = statistics.median(base_times), statistics.median(batch_times)
    result = {
        "model": subject.name,
        "random_weights": random_weights,
        "prompts": len(examples),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "identical_greedy": True,
        "distinct_responses": len(set(reference)),
        "one_at_a_time_s": round(base, 3),
        "batched_s": round(fast, 3),
        "one_at_a_time_prompts_per_s": round(len(examples) / base, 1),
        "batched_prompts_per_s": round(len(examples) / fast, 1),
        "speedup": round(base / fast, 2),
        "rounds": args.rounds,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
