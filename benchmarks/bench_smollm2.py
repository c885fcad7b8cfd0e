"""SmolLM2-135M-Instruct on the CPU, every figure a ratio against a baseline measured in the same run.

Parts (`--parts`, default all, in this order):
- collect: `selfsim.behavior.collect` (batch `--batch-size`) vs HF `generate(do_sample=False)` one prompt at
  a time on `--n` paper-dialect object prompts (bench_collect's functions); the greedy outputs must be equal.
- patch: bench_patching's batched sweep vs one patch per forward (hooks, layers `--layers`, `--pairs`
  english_words_long first_word pairs), then the hook overhead of hooks / nnsight / tlens vs a plain forward.
- train: `selfsim.finetune.train` (LoRA r=32, alpha 64, all projections) for `--train-steps` steps of
  `--train-batch` hypothetical prompts, tokens/s against a no-grad forward over the same batches (a fresh
  copy of the model: the tlens bridge rewraps the first in place).
Memory: peak RSS (`ru_maxrss`) after each part against the RSS once the model is loaded. Each part notes
the 1-minute load average before and after it (the machine is shared).
Run: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_smollm2.py --threads 1 --json benchmarks/out/smollm2_t1.json`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_collect  # noqa: E402
import bench_patching  # noqa: E402


def rss_mib() -> float:
    """Current resident set size of this process, MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    """Peak resident set size of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> float:
    return round(os.getloadavg()[0], 1)


def bench_collect_part(subject, n: int, batch_size: int) -> dict:
    examples = bench_collect.toy_examples(n, "paper")
    bench_collect.one_at_a_time(subject, examples[:1])
    bench_collect.batched(subject, examples[:2], batch_size)
    t_one, reference = bench_collect.timed(bench_collect.one_at_a_time, subject, examples)
    t_batch, responses = bench_collect.timed(bench_collect.batched, subject, examples, batch_size)
    if responses != reference:
        diff = sum(a != b for a, b in zip(responses, reference))
        sys.exit(f"batched greedy responses differ from one-at-a-time on {diff} of {len(examples)} prompts")
    return {
        "prompts": len(examples), "batch_size": batch_size, "identical_greedy": True,
        "one_at_a_time_s": round(t_one, 2), "batched_s": round(t_batch, 2),
        "batched_prompts_per_s": round(len(examples) / t_batch, 3), "speedup": round(t_one / t_batch, 2),
    }


def bench_patch_part(subject, pairs: int, layers: tuple[int, ...], repeats: int, overhead_repeats: int) -> dict:
    from selfsim.tasks import generate

    examples = generate("english_words_long", "first_word", n=pairs, seed=0, dialect="paper")
    sync = lambda: None  # noqa: E731
    # one untimed warm-up forward, then each sweep once: SmolLM2's one-patch-per-forward sweep is minutes
    with torch.no_grad():
        subject.base(**subject.tokenizer(["warm up"], return_tensors="pt"), use_cache=False)
    sweep = bench_patching.sweep_and_attribution(subject, examples, "hooks", repeats, sync, layers, warmup=False)
    overhead = bench_patching.hook_overhead(subject, examples, ["hooks", "nnsight", "tlens"], overhead_repeats, sync)
    return {"sweep": sweep, "overhead": overhead}


def bench_train_part(model: str, steps: int, batch: int) -> dict:
    from selfsim.finetune import FinetuneConfig, TrainItem, encode_items, global_batch, train
    from selfsim.finetune.data import collate
    from selfsim.models import load_subject
    from selfsim.tasks import generate

    subject = load_subject(model)
    examples = generate("english_words_long", "first_word", n=steps * batch, seed=1, dialect="paper")
    items = [TrainItem(e.id, e.object_id, e.task, e.property, e.hypothetical_messages, e.original_question.split()[0])
             for e in examples]
    config = FinetuneConfig.preset("paper", steps=steps, epochs=None, batch_size=batch, per_pair=None, save_every=0)
    encoded = encode_items(subject, items)
    batches = [global_batch(len(encoded), batch, s, config.seed) for s in range(steps)]
    tokens = sum(len(encoded[i].input_ids) for b in batches for i in b)
    pad = subject.tokenizer.pad_token_id
    with torch.no_grad():
        subject.model(**_inputs(collate([encoded[i] for i in batches[0]], pad)))
        start = time.perf_counter()
        for b in batches:
            subject.model(**_inputs(collate([encoded[i] for i in b], pad)))
        forward_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train(subject, items, config, Path(tmp) / "adapter", progress=False)
        train_s = time.perf_counter() - start
    return {
        "steps": steps, "batch": batch, "tokens": tokens, "mean_tokens_per_item": round(tokens / (steps * batch), 1),
        "rank": config.rank, "train_s": round(train_s, 2), "forward_s": round(forward_s, 2),
        "train_tokens_per_s": round(tokens / train_s, 1), "forward_tokens_per_s": round(tokens / forward_s, 1),
        "train_vs_forward_time": round(train_s / forward_s, 2),
    }


def _inputs(batch) -> dict:
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "position_ids": batch.position_ids,
            "use_cache": False, "logits_to_keep": batch.width + 1}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--parts", default="collect,patch,train", help="comma list of parts (default all)")
    parser.add_argument("--n", type=int, default=16, help="collection prompts (default 16)")
    parser.add_argument("--batch-size", type=int, default=16, help="collection batch size (default 16)")
    parser.add_argument("--pairs", type=int, default=2, help="patching pairs (default 2)")
    parser.add_argument("--layers", default="5,25", help="layers of the patch sweep (default 5,25)")
    parser.add_argument("--repeats", type=int, default=1, help="sweep timing rounds (default 1)")
    parser.add_argument("--overhead-repeats", type=int, default=5, help="single-forward timing rounds (default 5)")
    parser.add_argument("--train-steps", type=int, default=3, help="LoRA steps timed (default 3)")
    parser.add_argument("--train-batch", type=int, default=4, help="LoRA batch (default 4)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    parts = args.parts.split(",")

    from selfsim.models import load_subject

    before = rss_mib()
    subject = load_subject(args.model, attn_implementation="eager")
    loaded = rss_mib()
    result: dict = {"model": args.model, "threads": torch.get_num_threads(), "rss_before_load_mib": round(before),
                    "rss_loaded_mib": round(loaded)}

    def run(name: str, fn, *fn_args) -> None:
        start_load = load()
        start = time.perf_counter()
        figures = fn(*fn_args)
        result[name] = {**figures, "seconds": round(time.perf_counter() - start, 1), "load_avg": [start_load, load()],
                        "peak_rss_mib": round(peak_mib()), "peak_vs_loaded": round(peak_mib() / loaded, 2)}
        print(json.dumps({name: result[name]}), flush=True)

    if "collect" in parts:
        run("collect", bench_collect_part, subject, args.n, args.batch_size)
    if "patch" in parts:
        layers = tuple(int(x) for x in args.layers.split(","))
        run("patch", bench_patch_part, subject, args.pairs, layers, args.repeats, args.overhead_repeats)
    del subject
    gc.collect()
    if "train" in parts:
        run("train", bench_train_part, args.model, args.train_steps, args.train_batch)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
