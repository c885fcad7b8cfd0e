"""`FinetuneConfig`: every knob of a self/cross-prediction finetune, saved beside its result."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, cast

from selfsim.errors import SelfsimError
from selfsim.io import read_json, write_json

ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SCHEDULES = ("constant", "linear")
# Fields that change how a run executes but not what it computes; a checkpoint may resume under other values.
RUNTIME_FIELDS = ("save_every", "fsdp", "gradient_checkpointing", "merge")
CONFIG_FILE = "finetune_config.json"


@dataclass(frozen=True)
class FinetuneConfig:
    """LoRA (or full-weight) finetuning on hypothetical prompts; defaults are the toy world's (STACK.md).

    `batch_size` is the global batch per optimizer step, whatever the number of processes: each of
    the N processes takes 1/N of it, split into `grad_accum` micro-batches. Exactly one of `steps`
    and `epochs` is set. `merge` also writes base + adapter merged into full weights. `per_pair` and
    `splits` choose the items (`build_training_set`); they are kept here so the run records them.
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ALL_PROJECTIONS
    full_finetune: bool = False
    lr: float = 1e-3
    schedule: str = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    steps: int | None = 300
    epochs: float | None = None
    batch_size: int = 64
    grad_accum: int = 1
    per_pair: int | None = 1000
    splits: tuple[str, ...] = ("train",)
    eval_fraction: float = 0.0
    save_every: int = 100
    seed: int = 0
    fsdp: bool = False
    gradient_checkpointing: bool = False
    merge: bool = False

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> FinetuneConfig:
        """`toy` (STACK.md: r 8, alpha 16, lr 1e-3, 300 steps, batch 64) or `paper` (rank 32, one epoch)."""
        presets = {
            "toy": {},
            "paper": {"rank": 32, "alpha": 64.0, "lr": 1e-4, "steps": None, "epochs": 1.0, "warmup_steps": 10},
        }
        if name not in presets:
            raise SelfsimError(f"unknown finetune preset {name!r}; valid presets are {', '.join(presets)}")
        return cls(**{**presets[name], **overrides}).validate()

    def validate(self) -> FinetuneConfig:
        """Return self, or raise a SelfsimError naming the first bad field."""
        checks = [
            (self.rank >= 1, "rank must be >= 1"),
            (self.alpha > 0, "alpha must be > 0"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (bool(self.target_modules), "target_modules must name at least one module"),
            (self.lr > 0 and math.isfinite(self.lr), "lr must be a positive finite number"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.max_grad_norm >= 0, "max_grad_norm must be >= 0 (0 disables clipping)"),
            ((self.steps is None) != (self.epochs is None), "set exactly one of steps and epochs"),
            (self.steps is None or self.steps >= 1, "steps must be >= 1"),
            (self.epochs is None or self.epochs > 0, "epochs must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.grad_accum >= 1, "grad_accum must be >= 1"),
            (self.per_pair is None or self.per_pair >= 1, "per_pair must be >= 1 (or None for all)"),
            (bool(self.splits), "splits must name at least one split"),
            (0.0 <= self.eval_fraction < 1.0, "eval_fraction must be in [0, 1)"),
            (self.save_every >= 0, "save_every must be >= 0 (0 saves no checkpoints)"),
            (not (self.merge and self.full_finetune), "merge applies to LoRA adapters; a full finetune writes full weights"),
        ]
        for ok, message in checks:
            if not ok:
                raise SelfsimError(f"bad finetune config: {message}")
        return self

    def total_steps(self, n_items: int) -> int:
        """Optimizer steps for a training set of `n_items`: `steps`, or `epochs` worth of global batches."""
        if self.steps is not None:
            return self.steps
        epochs = cast(float, self.epochs)  # set whenever steps is not (__post_init__)
        return max(1, math.ceil(epochs * n_items / self.batch_size))

    def differences(self, other: FinetuneConfig) -> list[str]:
        """Names of the non-runtime fields on which two configs disagree."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if k not in RUNTIME_FIELDS and mine[k] != theirs[k]]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (tuples as lists)"""
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        d["splits"] = list(self.splits)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneConfig:
        """Inverse of `to_dict`; unknown keys raise a SelfsimError naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SelfsimError(f"unknown finetune config field(s) {unknown}; valid fields are {sorted(names)}")
        values = dict(d)
        for key in ("target_modules", "splits"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values).validate()

    def with_lora(self, rank: int, alpha: float, target_modules: tuple[str, ...]) -> FinetuneConfig:
        """The same config with another adapter shape (used when training continues an existing adapter)."""
        return replace(self, rank=rank, alpha=alpha, target_modules=tuple(target_modules))

    def save(self, out_dir: str | Path) -> Path:
        """Write `finetune_config.json` into `out_dir`; return its path."""
        path = Path(out_dir) / CONFIG_FILE
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> FinetuneConfig:
        """Read a config file (or the one inside a finetune output directory)."""
        path = Path(path)
        return cls.from_dict(read_json(path / CONFIG_FILE if path.is_dir() else path))
