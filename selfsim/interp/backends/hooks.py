"""The baseline backend: plain torch forward hooks on the HF modules (no extra library)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from selfsim.interp.backends.base import Batch, Patch, TraceOutput, apply_patch, group_patches
from selfsim.interp.backends.registry import register_backend

if TYPE_CHECKING:
    from selfsim.models import Subject


@register_backend("hooks")
class HookTracer:
    """The baseline backend: plain torch forward hooks on the HF modules."""

    name = "hooks"

    def __init__(self, subject: Subject) -> None:
        self.subject = subject

    def run(
        self,
        batch: Batch,
        *,
        read: Sequence[str] = (),
        patches: Sequence[Patch] = (),
        last_only: bool = False,
    ) -> TraceOutput:
        """One forward pass; see the module docstring for the order of patches and reads."""
        by_site = group_patches(batch, patches)
        store: dict[str, torch.Tensor] = {}
        handles = []

        def hook(site: str):
            def fn(module: torch.nn.Module, inputs: tuple, output: torch.Tensor | tuple[torch.Tensor, ...]) -> object:
                head = output[0] if isinstance(output, tuple) else output
                for p in by_site.get(site, ()):
                    head = apply_patch(head, p)
                if site in read:
                    store[site] = head
                if site in by_site:
                    return (head, *output[1:]) if isinstance(output, tuple) else head
                return None

            return fn

        try:
            for site in set(read) | set(by_site):
                handles.append(self.subject.module(site).register_forward_hook(hook(site)))
            ids = batch.input_ids.to(self.subject.input_device)
            mask = batch.attention_mask.to(self.subject.input_device)
            kwargs = {"logits_to_keep": 1} if last_only else {}
            logits = self.subject.base(input_ids=ids, attention_mask=mask, use_cache=False, **kwargs).logits
        finally:
            for h in handles:
                h.remove()
        return TraceOutput(logits=logits, activations={s: store[s] for s in read})
