"""Patching metrics as a registry of callables (as TransformerLens's `patching_metric`).

A metric is one function `(logits [n, vocab] float32, donor [n], recipient [n]) -> [n]` of the
final-position logits of n runs and their donor / recipient token ids (-1: no token). Registered
once with `register_metric`, it is computed for every patched row and for the unpatched run
(`<name>` and `<name>_clean` columns of the rows), averaged over informative rows in the summary
(`<summary>`, `<summary>_clean`, and `<delta>` = mean(patched - clean) when given), saved with
the results, drawn as heatmaps (`figures`) and printed by `selfsim patch`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

MetricFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Metric:
    """A registered metric: its row column, summary columns and the summary columns drawn as heatmaps."""

    name: str
    fn: MetricFn
    summary: str
    delta: str | None = None
    figures: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        """The summary columns this metric adds, in order."""
        return [self.summary, f"{self.summary}_clean"] + ([self.delta] if self.delta else [])


METRICS: dict[str, Metric] = {}


def register_metric(name: str, *, summary: str | None = None, delta: str | None = None,
                    figures: tuple[str, ...] = ()) -> Callable[[MetricFn], MetricFn]:
    """Decorator: register `fn` as the metric `name` (summary column `summary`, default `name`)."""

    def add(fn: MetricFn) -> MetricFn:
        METRICS[name] = Metric(name, fn, summary or name, delta, tuple(figures))
        return fn

    return add


def token_metrics(logits: torch.Tensor, donor: torch.Tensor, recipient: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every registered metric per row of [n, vocab] logits, and the argmax."""
    logits = logits.float()
    return {name: m.fn(logits, donor, recipient) for name, m in METRICS.items()} | {"argmax": logits.argmax(-1)}


def figure_columns() -> list[str]:
    """The summary columns drawn as heatmaps and printed by the CLI, in registry order."""
    return [c for m in METRICS.values() for c in m.figures]


@register_metric("logit_diff", delta="delta", figures=("delta",))
def logit_diff(logits: torch.Tensor, donor: torch.Tensor, recipient: torch.Tensor) -> torch.Tensor:
    """logit(donor token) - logit(recipient token); NaN where either token is missing."""
    d, r = donor.clamp(min=0)[:, None], recipient.clamp(min=0)[:, None]
    diff = (logits.gather(1, d) - logits.gather(1, r))[:, 0]
    return torch.where((donor >= 0) & (recipient >= 0), diff, torch.tensor(math.nan))


@register_metric("prob_donor")
def prob_donor(logits: torch.Tensor, donor: torch.Tensor, recipient: torch.Tensor) -> torch.Tensor:
    """Probability of the donor token; NaN where it is missing."""
    prob = torch.softmax(logits, -1).gather(1, donor.clamp(min=0)[:, None])[:, 0]
    return torch.where(donor >= 0, prob, torch.tensor(math.nan))


@register_metric("flip", summary="flip_rate", figures=("flip_rate",))
def flip(logits: torch.Tensor, donor: torch.Tensor, recipient: torch.Tensor) -> torch.Tensor:
    """Whether the argmax is the donor token (False where it is missing)."""
    return (logits.argmax(-1) == donor) & (donor >= 0)
