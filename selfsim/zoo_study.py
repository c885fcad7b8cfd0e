"""Recommended study settings for a real model (SmolLM2-135M-Instruct), sized from measured throughput.

`smollm2_settings("cpu")` fits the whole study (derive M2, collect, self/cross finetunes, predictions,
calibration samples, behaviour shift, patching for the verdict) in 45 minutes on 2 idle cores, by the
cost model `StudySettings.estimate` fed with `SMOLLM2_CPU` (one idle core's speed, scaled from figures
measured by benchmarks/bench_smollm2.py and `selfsim models derive` on the shared 2-core machine under
load; the second idle core is left as margin). `smollm2_settings("gpu")` is the documented larger setting
(paper-sized data per pair, more tasks and properties); its estimate uses `SMOLLM2_GPU_GUESS`, which is
NOT measured. Tasks were chosen where the untrained model's greedy behaviour varies (BENCHMARKS.md,
"SmolLM2: which tasks"): animals_long (2 distinct first words of 30) and numbers (2/30 compliant) are out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from selfsim.errors import SelfsimError
from selfsim.zoo_pair import DeriveConfig

PROFILES = ("cpu", "gpu")
BUDGET_MINUTES = {"cpu": 45.0, "gpu": 60.0}


@dataclass(frozen=True)
class Throughput:
    """Measured (or stated) speeds of the stages' inner loops on one machine."""

    collect_prompts_per_s: float  # batched greedy object-level answers (16-24 token budgets)
    meta_prompts_per_s: float  # batched greedy hypothetical answers (8 token budget, longer prompts)
    train_tokens_per_s: float  # LoRA r=32 training, prompt + answer tokens
    patch_rows_per_s: float  # batched patched forwards (one row = one hypothetical prompt); CPU: not measured yet
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


@dataclass(frozen=True)
class StudySettings:
    """Everything a SmolLM2 study run needs to know about its size, for `selfsim study --preset smollm2`."""

    profile: str
    model: str
    train_tasks: tuple[str, ...]
    test_tasks: tuple[str, ...]
    properties: tuple[str, ...]
    n_train_prompts: int  # object prompts per train task
    n_test_prompts: int  # object prompts per test task
    finetune: dict[str, Any]  # FinetuneConfig fields (LoRA r=32, the paper's preset, with steps set)
    shift_steps: int  # further finetuning of M1ft on M2's object-level answers (behaviour shift)
    calibration_prompts: int
    calibration_samples: int
    patch_pairs: int
    patch_layers: int
    derive: DeriveConfig = field(default_factory=DeriveConfig)
    dtype: str = "float32"
    batch_size: int = 16
    tokens_per_meta_item: int = 100  # SmolLM2 chat template + hypothetical prompt + answer, measured
    tokens_per_object_item: int = 80
    patch_positions: int = 2  # "final" and "prompt" (the whole copy of P at once); "each" is ~14 (english words)

    def finetune_config(self) -> Any:
        """The self/cross finetune as a validated `FinetuneConfig`."""
        from selfsim.finetune import FinetuneConfig

        return FinetuneConfig.preset("paper", **self.finetune)

    def estimate(self, speed: Throughput) -> dict[str, float]:
        """Minutes per stage and in total under `speed` (a cost model, not a measurement)."""
        n_object = self.n_train_prompts * len(self.train_tasks) + self.n_test_prompts * len(self.test_tasks)
        n_meta = self.n_test_prompts * len(self.test_tasks) * len(self.properties)
        n_items = self.n_train_prompts * len(self.train_tasks) * len(self.properties)
        steps = self.finetune_config().total_steps(min(n_items, n_items if self.finetune.get("per_pair") is None else
                                                       self.finetune["per_pair"] * len(self.train_tasks) * len(self.properties)))
        ft = steps * self.finetune["batch_size"] * self.tokens_per_meta_item / speed.train_tokens_per_s
        shift = self.shift_steps * self.finetune["batch_size"] * self.tokens_per_object_item / speed.train_tokens_per_s
        derive = self.derive.steps * self.derive.batch_size * self.tokens_per_object_item / speed.train_tokens_per_s
        # Samples of one prompt share its prefill: count a sampled row as a quarter of a greedy prompt.
        calib = self.calibration_prompts * self.calibration_samples * 4 / 4
        rows = self.patch_pairs * self.patch_layers * self.patch_positions * len(self.properties) * 3
        seconds = {
            "derive_m2": derive,
            "collect_m1_m1ft_m2_mc": 4 * n_object / speed.collect_prompts_per_s,
            "finetune_self_cross": 2 * ft,
            "finetune_shift": shift,
            "predict_untrained_self_cross_shift": 4 * n_meta / speed.meta_prompts_per_s,
            "calibration": calib / speed.collect_prompts_per_s,
            "patching_verdict": rows / speed.patch_rows_per_s,
        }
        out = {k: round(v / 60, 1) for k, v in seconds.items()}
        out["total"] = round(sum(seconds.values()) / 60, 1)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-ready values (the derive config included)."""
        d = asdict(self)
        d["derive"] = self.derive.to_dict()
        return d


def smollm2_settings(profile: str = "cpu") -> StudySettings:
    """The recommended SmolLM2-135M-Instruct study: `cpu` (45 min on 2 idle cores) or `gpu` (larger, documented)."""
    if profile not in PROFILES:
        raise SelfsimError(f"unknown study profile {profile!r}; valid profiles are {', '.join(PROFILES)}")
    cpu = StudySettings(
        profile="cpu",
        model="smollm2-135m-instruct",
        train_tasks=("colors_long", "countries_long"),
        test_tasks=("english_words_long",),
        properties=("first_word", "second_character"),
        n_train_prompts=60,
        n_test_prompts=60,
        finetune={"steps": 40, "epochs": None, "batch_size": 8, "lr": 1e-3, "warmup_steps": 4, "per_pair": None,
                  "save_every": 0},
        shift_steps=15,
        calibration_prompts=10,
        calibration_samples=20,
        patch_pairs=8,
        patch_layers=6,
        derive=DeriveConfig(),
    )
    if profile == "cpu":
        return cpu
    return replace(
        cpu,
        profile="gpu",
        train_tasks=("colors_long", "countries_long", "wikipedia_long"),
        test_tasks=("english_words_long", "stories_sentences"),
        properties=("first_word", "first_character", "second_character", "starts_with_vowel"),
        n_train_prompts=1000,
        n_test_prompts=500,
        finetune={"steps": None, "epochs": 1.0, "batch_size": 32, "lr": 1e-4, "warmup_steps": 10, "per_pair": 1000,
                  "save_every": 100},
        shift_steps=200,
        calibration_prompts=100,
        calibration_samples=20,
        patch_pairs=64,
        patch_layers=30,
        patch_positions=15,
        batch_size=64,
        derive=DeriveConfig(n_prompts=1000, steps=300, batch_size=32, lr=5e-4),
    )


def check_budget(settings: StudySettings, speed: Throughput) -> float:
    """Estimated total minutes; raise if it exceeds the profile's budget."""
    total = settings.estimate(speed)["total"]
    if total > BUDGET_MINUTES[settings.profile]:
        raise SelfsimError(
            f"the {settings.profile} study is estimated at {total:.0f} min, over its {BUDGET_MINUTES[settings.profile]:.0f} min budget"
        )
    return total
