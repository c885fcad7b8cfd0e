"""`StudyConfig`: everything that determines a study's results (timings excluded)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
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
    full_control: tuple[int, ...] = (1000,)
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
    # Modules imported before the study runs and before its results are read; each registers experiments,
    # properties, ... (`selfsim.results.load_plugins`). Extra experiments run after the built-in ones.
    plugins: tuple[str, ...] = ()

    @classmethod
    def quick(cls, **overrides: Any) -> StudyConfig:
        """A reduced study for CI: a few hundred prompts, short finetunes, every stage exercised
        (2.7 epochs: 41 steps on the main run's 240 items, as the 40 fixed steps it replaced)."""
        base = cls(
            name="toy-quick", n_train=120, n_eval=60, scaling=(30,), full_control=(60,),
            calibration_prompts=16, calibration_samples=8, epochs=2.7, batch_size=16, n_boot=200, interp_prompts=24,
        )
        return replace(base, **overrides)

    def __post_init__(self) -> None:
        if not self.epochs > 0 or self.batch_size < 1:
            raise SelfsimError(f"study epochs must be > 0 and batch_size >= 1, got epochs={self.epochs}, batch_size={self.batch_size}")

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
        """Inverse of `to_dict`; unknown fields raise a SelfsimError listing the valid ones."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise SelfsimError(f"unknown study config field(s) {sorted(unknown)}; valid: {', '.join(sorted(names))}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**values)

    def model_pairs(self) -> list[tuple[str, str]]:
        """Ordered (M1, M2) pairs: the configured models first, then toy-m3/m4, ... both ways round."""
        names = list(self.models)
        for k in range(len(names) // 2, self.pairs):
            names += [f"toy-m{2 * k + 1}", f"toy-m{2 * k + 2}"]
        unordered = [(names[2 * k], names[2 * k + 1]) for k in range(self.pairs)]
        return [p for a, b in unordered for p in ((a, b), (b, a))]

    def per_pair(self) -> int:
        """Training prompts per (task, property) so that all training tasks together give n_train."""
        return max(1, self.n_train // len(self.train_tasks))
