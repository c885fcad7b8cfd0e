"""`ToyConfig`: everything that determines a toy model (seed, corpus mixture, size, optimisation)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from selfsim.errors import SelfsimError
from selfsim.io import write_json
from selfsim.toy.corpus import KINDS
from selfsim.toy.language import FAMILIES, TOY_PROPERTIES

CONFIG_FILE = "toy_config.json"
# Corpus weight of each toy property's questions (every one of `TOY_PROPERTIES` needs one).
PROPERTY_WEIGHTS: dict[str, float] = {
    "first_character": 0.055, "second_character": 0.055, "third_character": 0.055,
    "first_word": 0.08, "second_word": 0.135, "third_word": 0.165,
    "starts_with_vowel": 0.065, "is_even": 0.06,
}


def default_mixture() -> dict[str, float]:
    """Relative corpus weights: object-level tasks 33%, property questions 67%.

    Multiple choice (its rule needs a two-step circuit) and word positions need the most data;
    continuations are learned within a few hundred steps.
    """
    weights = {task: 0.035 for task in FAMILIES}
    weights.update({"choice": 0.15, "numbers": 0.04})
    weights.update({p: PROPERTY_WEIGHTS[p] for p in TOY_PROPERTIES})
    return weights


@dataclass
class ToyConfig:
    """How to pretrain one toy model; same config -> same weights on the same machine."""

    name: str
    seed: int
    mixture: dict[str, float] = field(default_factory=default_mixture)
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 4
    max_positions: int = 128
    steps: int = 2400
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    init_std: float = 0.06
    min_lr_ratio: float = 0.1

    def __post_init__(self) -> None:
        unknown = set(self.mixture) - set(KINDS)
        if unknown:
            raise SelfsimError(f"{self.name}: unknown mixture kind(s) {sorted(unknown)}; valid kinds are {', '.join(KINDS)}")
        if self.steps < 1 or self.batch_size < 1:
            raise SelfsimError(f"{self.name}: steps and batch_size must be positive")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ToyConfig:
        """Inverse of `to_dict`; unknown keys raise a SelfsimError."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise SelfsimError(f"unknown ToyConfig field(s) {sorted(unknown)}; valid fields are {', '.join(sorted(names))}")
        return cls(**d)

    def save(self, path: Path) -> None:
        """Write the config as JSON, atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> ToyConfig:
        """Read a config written by `save`."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise SelfsimError(f"{path}: not a toy config ({exc})") from None
