"""Patching metrics as a registry of callables (as TransformerLens's `patching_metric`).

A metric is one function `(logits [n, vocab] float32, donor [n], recipient [n]) -> [n]` of the
final-position logits of n runs and their donor / recipient token ids (-1: no token). Registered
once with `register_metric` in the shared `selfsim.registry.Registry` `METRICS`, it can be asked
for by name (`PatchConfig.metrics`, `selfsim patch --metric NAME`): it is computed for every
patched row and for the unpatched run (`<name>` and `<name>_clean` columns of the rows), averaged
over informative rows in the summary (`<summary>`, `<summary>_clean`, and `<delta>` =
mean(patched - clean) when given), saved with the results, drawn as heatmaps (`figures`) and
printed by `selfsim patch`. `rank_by` ranks cells by a metric's `rank` column (its first figure,
else its summary). A `differentiable` metric can drive attribution patching (`selfsim.interp.attribution`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from selfsim.interp.metric_defaults import ATTRIBUTION_METRIC as ATTRIBUTION_METRIC
from selfsim.interp.metric_defaults import DEFAULT_METRICS as DEFAULT_METRICS
from selfsim.interp.metric_defaults import DEFAULT_RANK_BY as DEFAULT_RANK_BY
from selfsim.registry import Registry

MetricFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Metric:
    """A registered metric: its row column, summary columns and the summary columns drawn as heatmaps."""

    name: str
    fn: MetricFn
    summary: str
    delta: str | None = None
    figures: tuple[str, ...] = ()
    differentiable: bool = False

    @property
    def columns(self) -> list[str]:
        """The summary columns this metric adds, in order."""
        return [self.summary, f"{self.summary}_clean"] + ([self.delta] if self.delta else [])

    @property
    def rank(self) -> str:
        """The summary column cells are ranked by when this metric is `rank_by`."""
        return self.figures[0] if self.figures else self.summary


METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str, *, summary: str | None = None, delta: str | None = None,
                    figures: tuple[str, ...] = (), differentiable: bool = False) -> Callable[[MetricFn], MetricFn]:
    """Decorator: register `fn` as the metric `name` (summary column `summary`, default `name`); a taken name fails."""

    def add(fn: MetricFn) -> MetricFn:
        METRICS.register(name, Metric(name, fn, summary or name, delta, tuple(figures), differentiable))
        return fn

    return add


def metric(name: str) -> Metric:
    """The metric registered as `name` (a SelfsimError listing the valid names otherwise)."""
    return METRICS.get(name)


def check_metrics(names: Sequence[str], rank_by: str) -> None:
    """Raise a SelfsimError unless every name and `rank_by` are registered and `rank_by` is among `names`."""
    from selfsim.errors import SelfsimError

    if not names:
        raise SelfsimError(f"no metric given; valid metrics are {', '.join(METRICS.names())}")
    for name in (*names, rank_by):
        METRICS.check(name)
    if rank_by not in names:
        raise SelfsimError(f"rank_by {rank_by!r} is not among the computed metrics ({', '.join(names)})")


def token_metrics(logits: torch.Tensor, donor: torch.Tensor, recipient: torch.Tensor,
                  names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The named metrics (default: every registered one) per row of [n, vocab] logits, and the argmax."""
    logits = logits.float()
    chosen = METRICS.names() if names is None else names
    return {name: METRICS.get(name).fn(logits, donor, recipient) for name in chosen} | {"argmax": logits.argmax(-1)}


def figure_columns(names: Sequence[str] | None = None) -> list[str]:
    """The summary columns drawn as heatmaps and printed by the CLI, in the order of `names` (default: all)."""
    chosen = METRICS.names() if names is None else names
    return [c for name in chosen for c in METRICS.get(name).figures]


@register_metric("logit_diff", delta="delta", figures=("delta",), differentiable=True)
def logit_diff(logits: torch.Tensor, donor: torch.Tensor, recipient: torch.Tensor) -> torch.Tensor:
    """logit(donor token) - logit(recipient token); NaN where either token is missing."""
    d, r = donor.clamp(min=0)[:, None], recipient.clamp(min=0)[:, None]
    diff = (logits.gather(1, d) - logits.gather(1, r))[:, 0]
    return torch.where((donor >= 0) & (recipient >= 0), diff, torch.tensor(math.nan, device=logits.device))


@register_metric("prob_donor", differentiable=True)
def prob_donor(logits: torch.Tensor, donor: torch.Tensor, recipient: torch.Tensor) -> torch.Tensor:
    """Probability of the donor token; NaN where it is missing."""
    prob = torch.softmax(logits, -1).gather(1, donor.clamp(min=0)[:, None])[:, 0]
    return torch.where(donor >= 0, prob, torch.tensor(math.nan, device=logits.device))


@register_metric("flip", summary="flip_rate", figures=("flip_rate",))
def flip(logits: torch.Tensor, donor: torch.Tensor, recipient: torch.Tensor) -> torch.Tensor:
    """Whether the argmax is the donor token (False where it is missing)."""
    return (logits.argmax(-1) == donor) & (donor >= 0)
