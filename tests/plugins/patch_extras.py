"""A plugin module as a user writes one: a patching metric and a tracing backend, each registered in one place.

Loaded by `selfsim patch --plugin patch_extras` (with this folder on PYTHONPATH) or by importing it.
"""

from __future__ import annotations

import math

import torch

from selfsim.interp.backends.hooks import HookTracer
from selfsim.interp.backends.registry import register_backend
from selfsim.interp.metrics import register_metric

CALLS: list[int] = []


@register_metric("recipient_logit", summary="mean_recipient_logit", figures=("mean_recipient_logit",), differentiable=True)
def recipient_logit(logits: torch.Tensor, donor: torch.Tensor, recipient: torch.Tensor) -> torch.Tensor:
    """The recipient token's logit; NaN where it is missing."""
    value = logits.gather(1, recipient.clamp(min=0)[:, None])[:, 0]
    return torch.where(recipient >= 0, value, torch.tensor(math.nan))


@register_backend("counting")
class CountingTracer(HookTracer):
    """The hooks backend, counting its forward passes and asking for eager attention."""

    name = "counting"
    attn_implementation = "eager"

    def __init__(self, subject) -> None:
        super().__init__(subject)
        self.attention = subject.base.config._attn_implementation

    def run(self, batch, **kwargs):
        CALLS.append(batch.size)
        return super().run(batch, **kwargs)
