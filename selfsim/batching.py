"""Left padding: the one place token rows become a rectangular batch.

Every batch in selfsim is left-padded, so each row's last real token sits in the last column
(generation continues from there, patching and probing read the final position there, and
finetuning's answer tokens end there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def left_pad(rows: Sequence[Sequence[int]], pad_value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`rows` right-aligned in a (len(rows), longest) long tensor filled with `pad_value`; (tensor, attention mask)."""
    import torch

    width = max((len(r) for r in rows), default=0)
    values = torch.full((len(rows), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            values[i, width - len(row):] = torch.tensor(list(row), dtype=torch.long)
            mask[i, width - len(row):] = 1
    return values, mask
