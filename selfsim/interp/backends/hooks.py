"""The baseline backend: plain torch forward hooks on the HF modules (no extra library).

Besides `run`, it can resume a forward pass from a layer (`run_from`): given the output of layer
L-1 (the residual stream entering layer L) it runs only layers L.. and the head, with HF's own
forward (the decoder stack is sliced for the call), so a patch at layer L costs the layers above
it only. Batched patching uses this (`resumes = True`) when every patch of a batch sits at or
above L: rows share the clean run below their patch, which causality cannot change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import torch

from selfsim.interp.backends.base import Batch, Patch, TraceOutput, apply_patch, group_patches
from selfsim.interp.backends.registry import register_backend

if TYPE_CHECKING:
    from selfsim.models import Subject


@register_backend("hooks")
class HookTracer:
    """The baseline backend: plain torch forward hooks on the HF modules."""

    name = "hooks"
    resumes = True

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
        """One forward pass; see `selfsim.interp.backends.base` for the order of patches and reads."""
        return self._forward(batch, read, patches, last_only)

    def run_from(
        self,
        batch: Batch,
        start: int,
        hidden: torch.Tensor,
        *,
        read: Sequence[str] = (),
        patches: Sequence[Patch] = (),
        last_only: bool = False,
    ) -> TraceOutput:
        """The forward pass from layer `start` on, given `hidden` [B, T, d], the output of layer start-1.

        Patches at layer start-1's output are written into `hidden`; patches and reads at sites of
        layers >= start act as in `run`. Sites below are neither patched nor read.
        """
        if start <= 0:
            return self._forward(batch, read, patches, last_only)
        entry = self.subject.site(start - 1)
        for p in group_patches(batch, patches).get(entry, ()):
            hidden = apply_patch(hidden, p)
        rest = [p for p in patches if p.site != entry]
        return self._forward(batch, [s for s in read if s != entry], rest, last_only, start=start, hidden=hidden)

    def _forward(self, batch: Batch, read: Sequence[str], patches: Sequence[Patch], last_only: bool,
                 start: int = 0, hidden: torch.Tensor | None = None) -> TraceOutput:
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

        stack = self.subject.module("model")
        layers = cast(torch.nn.ModuleList, stack.layers)
        try:
            for site in set(read) | set(by_site):
                handles.append(self.subject.module(site).register_forward_hook(hook(site)))
            mask = batch.attention_mask.to(self.subject.input_device)
            kwargs: dict[str, object] = {"logits_to_keep": 1} if last_only else {}
            if hidden is None:
                kwargs["input_ids"] = batch.input_ids.to(self.subject.input_device)
            else:
                kwargs["inputs_embeds"] = hidden
                stack.layers = torch.nn.ModuleList(list(layers)[start:])
            logits = self.subject.base(attention_mask=mask, use_cache=False, **kwargs).logits
        finally:
            stack.layers = layers
            for h in handles:
                h.remove()
        return TraceOutput(logits=logits, activations={s: store[s] for s in read})
