"""The cost model of a study on a real model: minutes per stage from a `StudyConfig` and measured throughput.

`estimate(config, speed)` counts what the study does (object-level and hypothetical generations, finetune
tokens, sampled rows, patched forwards: the same counts `selfsim.study` runs) and divides by `speed`.
`SMOLLM2_CPU` holds one idle core's speeds for SmolLM2-135M-Instruct, scaled from figures measured on the
shared 2-core machine (BENCHMARKS.md); `SMOLLM2_GPU_GUESS` is NOT measured. `check_budget` raises when an
estimate is over its budget (the `smollm2` preset must fit 45 minutes on 2 idle cores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from selfsim.errors import SelfsimError


@dataclass(frozen=True)
class Throughput:
    """Measured (or stated) speeds of the stages' inner loops on one machine."""

    collect_prompts_per_s: float  # batched greedy object-level answers (16-24 token budgets)
    meta_prompts_per_s: float  # batched greedy hypothetical answers (8 token budget, longer prompts)
    train_tokens_per_s: float  # LoRA r=32 training, prompt + answer tokens
    patch_rows_per_s: float  # batched patched forwards (one row = one hypothetical prompt)
    source: str


# benchmarks/bench_smollm2.py and `selfsim models derive`, 1 thread, shared machine (see BENCHMARKS.md).
SMOLLM2_CPU = Throughput(
    collect_prompts_per_s=1.2, meta_prompts_per_s=1.2, train_tokens_per_s=100.0, patch_rows_per_s=2.0,
    source=(
        "one idle core, scaled from figures measured on the shared 2-core machine at load average 5-9 "
        "(train 26 tok/s at load 8.5, 128 tok/s in the least loaded steps; collect 1.46 prompts/s at load 5): "
        "BENCHMARKS.md, SmolLM2 section"
    ),
)
# Not measured: a guess for one H100, bf16, batch 64, for sizing only.
SMOLLM2_GPU_GUESS = Throughput(
    collect_prompts_per_s=60.0, meta_prompts_per_s=80.0, train_tokens_per_s=20_000.0, patch_rows_per_s=500.0,
    source="NOT measured: a guess for one GPU; rerun benchmarks/bench_smollm2.py there and replace it",
)
TOKENS_PER_META_ITEM = 100  # SmolLM2 chat template + hypothetical prompt + answer, measured
TOKENS_PER_OBJECT_ITEM = 80
DERIVE_STEPS, DERIVE_BATCH = 30, 8  # `selfsim models derive` defaults (selfsim.zoo.pair.DeriveConfig)


def counts(config: Any) -> dict[str, float]:
    """What a study of `config` (a `StudyConfig`) runs on its primary pair: prompts, rows and finetune steps."""
    per_task = config.per_pair()
    n_id = max(1, config.n_eval // len(config.train_tasks)) * len(config.train_tasks)
    n_ood = max(1, config.n_eval // len(config.test_tasks)) * len(config.test_tasks)
    n_all = per_task * len(config.train_tasks) + n_id + n_ood
    n_evals = n_id + n_ood
    meta_sets = 4 + 1 + len(set(config.scaling) - {config.n_train}) + 2 * len(config.full_control)
    steps = (2 * config.steps_for(config.n_items(config.n_train))
             + sum(config.steps_for(config.n_items(n)) for n in set(config.scaling) - {config.n_train})
             + 2 * sum(config.steps_for(config.n_items(n)) for n in config.full_control)
             + config.steps_for(per_task * len(config.train_tasks)))
    layers = config.interp_layers or 30
    return {
        "object_prompts": 3 * n_all + 2 * n_evals,
        "meta_prompts": meta_sets * n_evals * len(config.properties),
        "finetune_steps": steps,
        "sampled_rows": 4 * config.calibration_prompts * config.calibration_samples,
        "patch_rows": 3 * config.interp_prompts * layers * 3 * 2,
    }


def estimate(config: Any, speed: Throughput, *, derive_m2: bool = True) -> dict[str, float]:
    """Minutes per stage and in total for `config` under `speed` (a cost model, not a measurement)."""
    n = counts(config)
    seconds = {
        "derive_m2": DERIVE_STEPS * DERIVE_BATCH * TOKENS_PER_OBJECT_ITEM / speed.train_tokens_per_s if derive_m2 else 0.0,
        "behaviour": n["object_prompts"] / speed.collect_prompts_per_s,
        "finetunes": n["finetune_steps"] * config.batch_size * TOKENS_PER_META_ITEM / speed.train_tokens_per_s,
        "predictions": n["meta_prompts"] / speed.meta_prompts_per_s,
        # Samples of one prompt share its prefill: count a sampled row as a quarter of a greedy prompt.
        "calibration": n["sampled_rows"] / 4 / speed.collect_prompts_per_s,
        "interp": n["patch_rows"] / speed.patch_rows_per_s,
    }
    out = {k: round(v / 60, 1) for k, v in seconds.items()}
    out["total"] = round(sum(seconds.values()) / 60, 1)
    return out


def check_budget(config: Any, speed: Throughput, minutes: float = 45.0) -> float:
    """Estimated total minutes of `config` under `speed`; raise if over `minutes`."""
    total = estimate(config, speed)["total"]
    if total > minutes:
        raise SelfsimError(f"the {config.name} study is estimated at {total:.0f} min, over its {minutes:.0f} min budget")
    return total


@dataclass(frozen=True)
class Hardware:
    """Stated (not measured) speeds of a target machine, for projections."""

    name: str
    flops: float  # effective dense FLOP/s for prefill and training (compute-bound)
    decode_step_s: float  # one decoding step of a batch (bandwidth-bound: weight bytes / memory bandwidth)
    source: str


# One H100 SXM, bf16: 989 TFLOP/s dense peak at an assumed 30% utilisation; Llama-3.1-8B's 16 GB of bf16
# weights read once per decoding step at 3.35 TB/s = 4.8 ms, rounded up to 6 ms for the KV cache and overheads.
H100_LLAMA8B = Hardware("one H100, bf16", flops=300e12, decode_step_s=6e-3,
                        source="stated: 30% of the H100's 989 TFLOP/s; 16 GB weights / 3.35 TB/s per decoding step")
LLAMA8B_PARAMS = 6.98e9  # non-embedding parameters (forward FLOPs per token ~ 2x this)
SMOLLM2_PARAMS = 1.06e8
OBJECT_BUDGET, META_BUDGET = 20, 8  # typical greedy token budgets of the paper's sequence tasks / hypotheticals
STAGE_GROUPS = ("behaviour", "predictions", "samples", "finetune", "interp")


def stage_group(stage: str) -> str:
    """The group of a manifest stage name ('finetune a__b/self' -> 'finetune'); 'other' for the rest."""
    head = stage.split(" ", 1)[0]
    return head if head in STAGE_GROUPS else "other"


def project(config: Any, hardware: Hardware = H100_LLAMA8B, params: float = LLAMA8B_PARAMS) -> dict[str, float]:
    """Minutes per stage group of a study of `config` on a model of `params` non-embedding parameters on `hardware`:
    prefill and training compute-bound (2 / 6 FLOPs per parameter and token), decoding one step per token per batch."""
    n = counts(config)
    batches = lambda rows: -(-rows // config.gen_batch_size)  # noqa: E731
    seconds = {
        "behaviour": (n["object_prompts"] * TOKENS_PER_OBJECT_ITEM * 2 * params / hardware.flops
                      + batches(n["object_prompts"]) * OBJECT_BUDGET * hardware.decode_step_s),
        "predictions": (n["meta_prompts"] * TOKENS_PER_META_ITEM * 2 * params / hardware.flops
                        + batches(n["meta_prompts"]) * META_BUDGET * hardware.decode_step_s),
        "samples": (n["sampled_rows"] * TOKENS_PER_META_ITEM * 2 * params / hardware.flops
                    + batches(n["sampled_rows"]) * OBJECT_BUDGET * hardware.decode_step_s),
        "finetune": n["finetune_steps"] * config.batch_size * TOKENS_PER_META_ITEM * 6 * params / hardware.flops,
        # Each patched row is a donor and a recipient forward; probes and lens add a few forwards per prompt.
        "interp": (n["patch_rows"] + 20 * config.interp_prompts) * TOKENS_PER_META_ITEM * 2 * 2 * params / hardware.flops,
    }
    out = {k: round(v / 60, 2) for k, v in seconds.items()}
    out["total"] = round(sum(seconds.values()) / 60, 2)
    return out
