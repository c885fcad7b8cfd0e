"""The nnsight backend: one `trace` per batch, with every patch and read of the batch inside it.

nnsight 0.8 runs the body of a `with model.trace(...)` block alongside the forward pass and hands
it each module's output as that module returns, so the body must touch sites in the order the
forward pass reaches them (else `OutOfOrderError`). `NNsightTracer` therefore visits the requested
sites sorted by the execution order of the subject's modules, measured once by a probe pass. At
each site it writes the patched output back (`envoy.output = ...`) before saving what it reads,
exactly as the `hooks` baseline does. nnsight wraps the already-loaded HF model, so a model split
with `device_map` works unchanged; inputs go to the embedding's device and patch values to the
device of the module they touch. nnsight derives `position_ids` from the attention mask, while the
HF forward counts positions over padding too: with rotary embeddings only relative positions
matter, so the two agree up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from selfsim.errors import SelfsimError
from selfsim.interp.backends.base import Batch, Patch, TraceOutput, apply_patch, group_patches
from selfsim.interp.backends.registry import register_backend
from selfsim.interp.backends.tlens_backend import BRIDGE_ATTR

if TYPE_CHECKING:
    from selfsim.models import Subject


def execution_order(subject: Subject) -> dict[int, int]:
    """id(module) -> rank of the moment its forward returns, for every module (one 1-token probe pass)."""
    order: dict[int, int] = {}
    handles = []

    def record(module: torch.nn.Module, inputs: tuple, output: object) -> None:
        order.setdefault(id(module), len(order))

    try:
        for module in subject.base.modules():
            handles.append(module.register_forward_hook(record))
        ids = torch.full((1, 1), int(subject.tokenizer.pad_token_id or 0), device=subject.input_device)
        with torch.no_grad():
            subject.base(input_ids=ids, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return order


@register_backend("nnsight")
class NNsightTracer:
    """Tracer backed by `nnsight.modeling.transformers.TransformersModel` around the subject's HF model."""

    name = "nnsight"

    def __init__(self, subject: Subject) -> None:
        from nnsight.modeling.transformers import TransformersModel

        if BRIDGE_ATTR in vars(subject.base):
            raise SelfsimError(
                f"{subject.name} was rewrapped by the tlens backend; load the subject again for the nnsight backend"
            )
        self.subject = subject
        self.model = TransformersModel(subject.base, tokenizer=subject.tokenizer)
        self._order: dict[int, int] | None = None

    def ordered(self, sites: set[str]) -> list[str]:
        """`sites` in the order the forward pass reaches them."""
        if self._order is None:
            self._order = execution_order(self.subject)
        ranks = {}
        for site in sites:
            rank = self._order.get(id(self.subject.module(site)))
            if rank is None:
                raise SelfsimError(f"module {site!r} of {self.subject.name} does not run in a forward pass")
            ranks[site] = rank
        return sorted(sites, key=ranks.__getitem__)

    def run(
        self,
        batch: Batch,
        *,
        read: Sequence[str] = (),
        patches: Sequence[Patch] = (),
        last_only: bool = False,
    ) -> TraceOutput:
        """One traced forward pass; patches and reads as in `selfsim.interp.backends.base`."""
        import nnsight

        by_site = group_patches(batch, patches)
        wanted = set(read)
        sites = self.ordered(wanted | set(by_site))
        device = self.subject.input_device
        inputs = {"input_ids": batch.input_ids.to(device), "attention_mask": batch.attention_mask.to(device)}
        kwargs: dict[str, Any] = {"use_cache": False}
        if last_only:
            kwargs["logits_to_keep"] = 1
        store: dict[str, torch.Tensor] = {}
        with self.model.trace(inputs, **kwargs):
            for site in sites:
                envoy = self.model.get(site)
                output = envoy.output
                head = output[0] if isinstance(output, tuple) else output
                if site in by_site:
                    for p in by_site[site]:
                        head = apply_patch(head, p)
                    envoy.output = (head, *output[1:]) if isinstance(output, tuple) else head
                if site in wanted:
                    store[site] = nnsight.save(head)
            logits = nnsight.save(self.model.output.logits)
        return TraceOutput(logits=logits, activations={s: store[s] for s in read})
