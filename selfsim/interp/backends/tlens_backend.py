"""The TransformerLens backend: a `TransformerBridge` booted around the subject's HF model.

`TransformerBridge.boot_transformers(name, hf_model=...)` reuses the loaded model (its weights,
peft adapters and `device_map` placement) rather than converting weights, so activations match
the HF forward; exactness needs `attn_implementation="eager"` (the bridge forces eager attention
in its own components, an sdpa HF model differs by ~1e-3). Booting rewraps the HF model's
modules in place (`model.layers.3` becomes a `BlockBridge` around the original layer); the HF
forward and the hooks backend see the same outputs afterwards, one bridge per model is kept, and
the nnsight backend refuses a rewrapped model (load the subject again).
The bridge refuses a `device_map` that mixes CPU and GPU. Sites translate to TL hook names in one
place, `tl_hook_names`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from selfsim.errors import SelfsimError
from selfsim.interp.backends.base import Batch, Patch, TraceOutput, apply_patch, group_patches
from selfsim.interp.backends.registry import register_backend

if TYPE_CHECKING:
    from selfsim.models import Subject

TL_HOOKS: dict[str, str] = {"resid": "hook_resid_post", "attn": "hook_attn_out", "mlp": "hook_mlp_out"}
BRIDGE_ATTR = "_selfsim_tl_bridge"


def tl_hook_names(subject: Subject) -> dict[str, str]:
    """HF site -> TL hook name: `model.layers.L` -> `blocks.L.hook_resid_post`, `.self_attn`/`.mlp` -> attn/mlp out."""
    return {
        subject.site(layer, component): f"blocks.{layer}.{hook}"
        for layer in range(subject.n_layers)
        for component, hook in TL_HOOKS.items()
    }


def bridge_for(subject: Subject) -> Any:
    """The subject's TransformerBridge, booted on first use and kept on the HF model."""
    model = subject.base
    bridge = vars(model).get(BRIDGE_ATTR)
    if bridge is None:
        from transformer_lens.model_bridge import TransformerBridge

        bridge = TransformerBridge.boot_transformers(
            subject.name, hf_model=model, tokenizer=subject.tokenizer, dtype=model.dtype
        )
        # Stored outside nn.Module's registry: the bridge is not a submodule of the model it wraps.
        object.__setattr__(model, BRIDGE_ATTR, bridge)
    return bridge


@register_backend("tlens")
class TLensTracer:
    """Tracer backed by TransformerLens hooks (`run_with_hooks`) on a TransformerBridge."""

    name = "tlens"
    attn_implementation = "eager"  # the bridge's attention is eager: an sdpa HF model differs by ~1e-3

    def __init__(self, subject: Subject) -> None:
        self.subject = subject
        self.bridge = bridge_for(subject)
        self.hook_names = tl_hook_names(subject)

    def run(
        self,
        batch: Batch,
        *,
        read: Sequence[str] = (),
        patches: Sequence[Patch] = (),
        last_only: bool = False,
    ) -> TraceOutput:
        """One forward pass through the bridge; patches and reads as in `selfsim.interp.backends.base`."""
        by_site = group_patches(batch, patches)
        wanted = set(read)
        store: dict[str, torch.Tensor] = {}

        def hook_for(site: str):
            def fn(activation: torch.Tensor, hook: Any) -> torch.Tensor:
                for p in by_site.get(site, ()):
                    activation = apply_patch(activation, p)
                if site in wanted:
                    store[site] = activation
                return activation

            return fn

        unknown = sorted((wanted | set(by_site)) - self.hook_names.keys())
        if unknown:
            raise SelfsimError(
                f"the tlens backend hooks layer outputs only: {unknown[0]!r} is not model.layers.L[.self_attn|.mlp] "
                f"for L in 0..{self.subject.n_layers - 1}"
            )
        hooks = [(self.hook_names[site], hook_for(site)) for site in wanted | set(by_site)]
        device = self.subject.input_device
        logits = self.bridge.run_with_hooks(
            batch.input_ids.to(device), fwd_hooks=hooks, attention_mask=batch.attention_mask.to(device)
        )
        if last_only:
            logits = logits[:, -1:]
        return TraceOutput(logits=logits, activations={s: store[s] for s in read})
