"""A plugin module that registers a metric name already taken by a built-in: loading it must fail in one line."""

from __future__ import annotations

import torch

from selfsim.interp.metrics import register_metric


@register_metric("logit_diff")
def my_logit_diff(logits: torch.Tensor, donor: torch.Tensor, recipient: torch.Tensor) -> torch.Tensor:
    """Not the built-in one."""
    return logits[:, 0]
