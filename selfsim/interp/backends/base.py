"""The types every tracing backend shares: one small interface for reading and writing activations.

Model of execution: a `Tracer` runs ONE forward pass over a left-padded `Batch`. Before the pass it
arms every requested `Patch` (overwrite the output of the module at `site`, for chosen batch rows
and token positions, with given vectors) and every requested read; during the pass each site's
output is patched first and read afterwards, so a read at a patched site sees the patched value and
every later site sees its consequences. Sites are HF module paths (`model.layers.3`,
`model.layers.3.self_attn`, `model.layers.3.mlp`) relative to the bare causal LM; a module that
returns a tuple (attention) is read and patched through its first element. Values are moved to
the device of the module they touch, so a model split with `device_map` works unchanged.

Backends: `hooks` (plain torch forward hooks; the baseline, no dependency), `nnsight` and `tlens`
(TransformerLens), one module each in this package, found by name through `registry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import torch

from selfsim.errors import SelfsimError

if TYPE_CHECKING:
    from selfsim.models import Subject


@dataclass
class Batch:
    """Left-padded token ids of a list of already-rendered prompts."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    texts: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Number of prompts."""
        return int(self.input_ids.shape[0])

    @property
    def width(self) -> int:
        """Padded length in tokens."""
        return int(self.input_ids.shape[1])

    @property
    def lengths(self) -> torch.Tensor:
        """Unpadded length of each prompt."""
        return self.attention_mask.sum(dim=1)

    def select(self, rows: Sequence[int]) -> Batch:
        """A sub-batch of some rows (padding kept, so positions stay valid)."""
        idx = torch.as_tensor(list(rows), dtype=torch.long)
        return Batch(self.input_ids[idx], self.attention_mask[idx], [self.texts[i] for i in idx.tolist()] if self.texts else [])


def encode(subject: Subject, texts: Sequence[str], *, add_special_tokens: bool = False) -> Batch:
    """Tokenize rendered prompts into a left-padded Batch (chat templates already carry BOS)."""
    tok = subject.tokenizer
    tok.padding_side = "left"
    enc = tok(list(texts), return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    return Batch(enc["input_ids"], enc["attention_mask"], list(texts))


@dataclass
class Patch:
    """Overwrite `site`'s output at (rows[i], positions[i]) with values[i]."""

    site: str
    rows: torch.Tensor
    positions: torch.Tensor
    values: torch.Tensor

    def __post_init__(self) -> None:
        self.rows = torch.as_tensor(self.rows, dtype=torch.long)
        self.positions = torch.as_tensor(self.positions, dtype=torch.long)
        if not (len(self.rows) == len(self.positions) == len(self.values)):
            raise SelfsimError(
                f"patch at {self.site}: rows ({len(self.rows)}), positions ({len(self.positions)}) "
                f"and values ({len(self.values)}) must have the same length"
            )


@dataclass
class TraceOutput:
    """Logits (all positions, or the last only) and the activations read, [B, T, d] per site."""

    logits: torch.Tensor
    activations: dict[str, torch.Tensor]


class Tracer(Protocol):
    """A backend that runs one forward pass with patches applied and sites read."""

    name: str
    subject: Subject

    def run(
        self,
        batch: Batch,
        *,
        read: Sequence[str] = (),
        patches: Sequence[Patch] = (),
        last_only: bool = False,
    ) -> TraceOutput:
        """One forward pass with `patches` applied and `read` sites returned (see the module docstring)."""
        ...


def check_positions(batch: Batch, positions: torch.Tensor) -> None:
    """Raise unless every position lies inside the padded width of the batch."""
    if len(positions) and (int(positions.min()) < 0 or int(positions.max()) >= batch.width):
        raise SelfsimError(f"token position out of range: valid positions are 0..{batch.width - 1}")


def group_patches(batch: Batch, patches: Sequence[Patch]) -> dict[str, list[Patch]]:
    """Patches grouped by site, in the order given, after checking their positions against `batch`."""
    by_site: dict[str, list[Patch]] = {}
    for p in patches:
        check_positions(batch, p.positions)
        by_site.setdefault(p.site, []).append(p)
    return by_site


def apply_patch(output: torch.Tensor, patch: Patch) -> torch.Tensor:
    """A copy of a [B, T, d] output with the patch's vectors written in (moved to its device)."""
    patched = output.clone()
    values = patch.values.to(device=output.device, dtype=output.dtype)
    patched[patch.rows.to(output.device), patch.positions.to(output.device)] = values
    return patched
