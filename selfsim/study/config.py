"""`StudyConfig`: everything that determines a study's results (timings excluded), and the named presets.

Presets are just named configs (`PRESETS`, `preset(name)`): `demo` (the default, what `make demo` runs),
`quick` (what CI runs), `smollm2` (SmolLM2-135M-Instruct against an M2 derived from it, sized for 2 CPU
cores) and `smollm2-gpu` (the same study at the paper's prompt counts, bf16, for one GPU). A config file
(`selfsim.configs.load`) or flags override a preset field by field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from selfsim.errors import SelfsimError


@dataclass
class StudyConfig:
    """Everything that determines a study's results (timings excluded)."""

    name: str = "toy"
    models: tuple[str, ...] = ("toy-m1", "toy-m2")
    pairs: int = 1
    seed: int = 0
    train_tasks: tuple[str, ...] = ("colors_long", "countries_long")
    test_tasks: tuple[str, ...] = ("animals_long", "english_words_long")
    properties: tuple[str, ...] = ("first_word", "second_character")
    n_train: int = 1000
    n_eval: int = 500
    scaling: tuple[int, ...] = (250, 500)
    # The full-weight control runs at the scaling curve's smallest size: self and cross full finetunes beside the
    # LoRA cross point of the same size, at a quarter of the steps a control at n_train would cost (make demo budget).
    full_control: tuple[int, ...] = (250,)
    calibration_prompts: int = 100
    calibration_samples: int = 20
    # Every finetune trains this many passes over its items (steps = ceil(epochs * items / batch_size)),
    # so the scaling curve varies data size, not repetition. 9.6 epochs of the main run's 2000 items at
    # batch 64 are the 300 steps the toy world was tuned with (STACK.md); the paper trains 1 epoch on ~30k.
    epochs: float = 9.6
    batch_size: int = 64
    lr: float = 1e-3
    rank: int = 8
    alpha: float = 16.0
    full_lr: float = 1e-3
    gen_batch_size: int = 64
    n_boot: int = 1000
    interp_prompts: int = 96
    # Prompt wording: "toy" (the embedded toy models' language) or "paper" (the paper's English, for real models).
    dialect: str = "toy"
    dtype: str = "float32"
    device_map: str | None = None  # None: CPU; "auto" or "cuda" for a GPU
    # Layers of each model in the interp battery: 0 = every layer, k = k evenly spaced layers (per model).
    interp_layers: int = 0
    # Modules imported before the study runs and before its results are read; each registers experiments,
    # properties, ... (`selfsim.results.load_plugins`). Extra experiments run after the built-in ones.
    plugins: tuple[str, ...] = ()

    @classmethod
    def quick(cls, **overrides: Any) -> StudyConfig:
        """A reduced study for CI: a few hundred prompts, short finetunes, every stage exercised
        (2.7 epochs: 41 steps on the main run's 240 items, as the 40 fixed steps it replaced)."""
        base = cls(
            name="toy-quick", n_train=120, n_eval=60, scaling=(30,), full_control=(30,),
            calibration_prompts=16, calibration_samples=8, epochs=2.7, batch_size=16, n_boot=200, interp_prompts=24,
        )
        return replace(base, **overrides)

    def __post_init__(self) -> None:
        if not self.epochs > 0 or self.batch_size < 1:
            raise SelfsimError(f"study epochs must be > 0 and batch_size >= 1, got epochs={self.epochs}, batch_size={self.batch_size}")
        problems = [f"{name} must be >= {low}, got {getattr(self, name)}" for name, low in (
            ("pairs", 1), ("n_train", 1), ("n_eval", 1), ("calibration_prompts", 1), ("calibration_samples", 1),
            ("gen_batch_size", 1), ("n_boot", 1), ("interp_prompts", 1), ("rank", 1), ("interp_layers", 0))
            if getattr(self, name) < low]
        problems += [f"{name} must be > 0, got {getattr(self, name)}" for name in ("lr", "full_lr", "alpha")
                     if not getattr(self, name) > 0]
        problems += [f"{name} sizes must be >= 1, got {list(getattr(self, name))}" for name in ("scaling", "full_control")
                     if any(n < 1 for n in getattr(self, name))]
        problems += [f"{name} must not be empty" for name in ("train_tasks", "test_tasks", "properties") if not getattr(self, name)]
        if len(self.models) != 2:
            problems.append(f"models must name exactly two models (M1 M2), got {len(self.models)}: {list(self.models)}")
        elif self.models[0] == self.models[1]:
            problems.append(f"models names {self.models[0]!r} twice: cross-prediction needs two different models")
        if self.dialect not in DIALECTS:
            problems.append(f"dialect must be one of {', '.join(DIALECTS)}, got {self.dialect!r}")
        if self.dtype not in DTYPES:
            problems.append(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if problems:
            raise SelfsimError("study config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what config.json and results.json hold)."""
        return asdict(self)

    def steps_for(self, n_items: int) -> int:
        """Optimizer steps of a finetune on `n_items` items: `epochs` passes at `batch_size` (at least 1)."""
        return max(1, math.ceil(self.epochs * n_items / self.batch_size))

    def n_items(self, n_train: int) -> int:
        """Requested training items for `n_train` prompts: per (task, property) share x tasks x properties."""
        return max(1, n_train // len(self.train_tasks)) * len(self.train_tasks) * len(self.properties)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyConfig:
        """Inverse of `to_dict`, every value checked by its field's type (`selfsim.configs`)."""
        from selfsim.configs import from_dict

        return from_dict(cls, d, source="study config")

    def model_pairs(self) -> list[tuple[str, str]]:
        """Ordered (M1, M2) pairs: the configured models first, then toy-m3/m4, ... both ways round."""
        names = list(self.models)
        for k in range(len(names) // 2, self.pairs):
            names += [f"toy-m{2 * k + 1}", f"toy-m{2 * k + 2}"]
        unordered = [(names[2 * k], names[2 * k + 1]) for k in range(self.pairs)]
        return [p for a, b in unordered for p in ((a, b), (b, a))]

    def layers_for(self, n_layers: int) -> list[int] | None:
        """The interp battery's layers of a model with `n_layers` layers: None (every layer) when `interp_layers`
        is 0 or covers them all, else `interp_layers` evenly spaced layers from the first to the last."""
        k = self.interp_layers
        if k == 0 or k >= n_layers:
            return None
        if k == 1:
            return [n_layers - 1]
        return sorted({round(i * (n_layers - 1) / (k - 1)) for i in range(k)})

    def per_pair(self) -> int:
        """Training prompts per (task, property) so that all training tasks together give n_train."""
        return max(1, self.n_train // len(self.train_tasks))


DIALECTS = ("toy", "paper")
DTYPES = ("float32", "bfloat16", "float16")
SMOLLM2 = ("smollm2-135m-instruct", "smollm2-135m-instruct-m2")


def _smollm2() -> StudyConfig:
    # Sized for the shared 2-core machine (BENCHMARKS.md, SmolLM2 study; one thread, ~35 min on an idle core):
    # 16 training prompts per task and property, 12+24 held-out, 2 epochs of LoRA r=32 at batch 8 (16 steps), a
    # full-finetuning control at 8 prompts (4 steps), no extra scaling sizes (the scaling unit reports the main
    # cross run), 4 of 30 layers in the interp battery. Tasks where the untrained model's behaviour varies
    # (animals_long is degenerate: "The" on 32 of 34 prompts).
    return StudyConfig(
        name="smollm2", models=SMOLLM2, dialect="paper", train_tasks=("colors_long", "countries_long"),
        test_tasks=("english_words_long",), properties=("first_word", "second_character"), n_train=32, n_eval=24,
        scaling=(), full_control=(8,), calibration_prompts=8, calibration_samples=6, epochs=2.0, batch_size=8,
        lr=1e-3, rank=32, alpha=64.0, full_lr=1e-4, gen_batch_size=24, n_boot=1000, interp_prompts=12, interp_layers=4,
    )


def _smollm2_gpu() -> StudyConfig:
    # The paper's scale on one GPU: 1000 training prompts per task, 1 epoch, LoRA r=32 at lr 1e-4 (the paper's
    # preset), bf16, every layer in the interp battery; only generated tasks, so a fresh machine needs no paper
    # rows (animals_long is the paper's held-out task even though the untrained SmolLM2 mostly answers "The").
    # NOT run on this project's CPU machines.
    return replace(
        _smollm2(), name="smollm2-gpu", test_tasks=("english_words_long", "animals_long"),
        properties=("first_word", "first_character", "second_character", "starts_with_vowel"), n_train=2000, n_eval=1000,
        scaling=(250, 500, 1000), full_control=(1000,), calibration_prompts=100, calibration_samples=20, epochs=1.0,
        batch_size=32, lr=1e-4, full_lr=1e-5, gen_batch_size=64, interp_prompts=96, interp_layers=0, dtype="bfloat16",
        device_map="auto",
    )


PRESETS: dict[str, Callable[[], StudyConfig]] = {
    "demo": StudyConfig,
    "quick": StudyConfig.quick,
    "smollm2": _smollm2,
    "smollm2-gpu": _smollm2_gpu,
}


def preset(name: str) -> StudyConfig:
    """The named preset config, or a SelfsimError listing the valid names."""
    if name not in PRESETS:
        raise SelfsimError(f"unknown study preset {name!r}; valid presets are {', '.join(PRESETS)}")
    return PRESETS[name]()
