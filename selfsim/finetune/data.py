"""Training pairs (hypothetical prompt H(P, f) -> f(M(P))) and their token-level encoding.

Labels come from a behaviour table written by `selfsim collect` (`behavior.jsonl`), read by
`selfsim.behavior.BehaviorTable.labels`: greedy rows only, each with its `object_id` and either a
`properties` {property: value} mapping or a long-format `property` / `value` (/ `compliant`) triple.
A value of None (a non-compliant object-level answer) leaves that (P, f) pair unlabelled.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfsim.batching import left_pad
from selfsim.errors import SelfsimError
from selfsim.examples import Example, Messages

if TYPE_CHECKING:
    import torch

    from selfsim.models import Subject

IGNORE_INDEX = -100
Labels = dict[str, dict[str, str | None]]


@dataclass(frozen=True)
class TrainItem:
    """One training pair: the hypothetical prompt's messages and the label string to answer with."""

    id: str
    object_id: str
    task: str
    property: str
    messages: Messages
    target: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of one training row"""
        return asdict(self)


def load_labels(path: str | Path) -> Labels:
    """Greedy property values per object prompt, {object_id: {property: value or None}}, from a behaviour table."""
    from selfsim.behavior import BehaviorTable

    return BehaviorTable.load(path, strict=False).labels()


def build_training_set(
    examples: Iterable[Example],
    labels: Mapping[str, Mapping[str, str | None]],
    per_pair: int | None = None,
    seed: int = 0,
    splits: Sequence[str] = ("train",),
) -> list[TrainItem]:
    """Label examples of `splits` with their object prompt's property value, drop unlabelled ones, and
    keep at most `per_pair` per (task, property), drawn with `seed` independently of the other pairs."""
    examples = list(examples)
    chosen = list({e.id: e for e in examples if e.split in splits}.values())
    if not chosen:
        found = sorted({e.split for e in examples})
        raise SelfsimError(f"no examples in split(s) {', '.join(splits)}; the examples have split(s) {', '.join(found) or 'none'}")
    known = {prop for props in labels.values() for prop in props}
    absent = sorted({e.property for e in chosen} - known)
    if absent:
        raise SelfsimError(
            f"property {', '.join(absent)} appears in the examples but in no behaviour row "
            f"(the labels cover {', '.join(sorted(known)) or 'no property'}); collect behaviour for it first"
        )
    groups: dict[tuple[str, str], list[TrainItem]] = defaultdict(list)
    unlabelled = noncompliant = 0
    for e in chosen:
        props = labels.get(e.object_id)
        if props is None or e.property not in props:
            unlabelled += 1
            continue
        value = props[e.property]
        if value is None:
            noncompliant += 1
            continue
        groups[(e.task, e.property)].append(TrainItem(e.id, e.object_id, e.task, e.property, e.hypothetical_messages, value))
    if not groups:
        raise SelfsimError(
            f"no usable labels: of {len(chosen)} examples, {unlabelled} have no behaviour row for their object prompt "
            f"(were the examples and the behaviour table made from the same prompts?) and {noncompliant} have a "
            "non-compliant object-level answer"
        )
    items: list[TrainItem] = []
    for task, prop in sorted(groups):
        group = sorted(groups[(task, prop)], key=lambda item: item.id)
        random.Random(f"{seed}:{task}:{prop}").shuffle(group)
        items.extend(group[:per_pair])
    return items


def split_holdout(items: Sequence[TrainItem], fraction: float, seed: int) -> tuple[list[TrainItem], list[TrainItem]]:
    """Split off round(fraction * n) items, chosen with `seed`, as a held-out set for the eval loss."""
    n_eval = round(fraction * len(items))
    if n_eval == 0:
        return list(items), []
    if n_eval == len(items):
        raise SelfsimError(f"eval_fraction {fraction} holds out all {len(items)} items; lower it")
    order = list(range(len(items)))
    random.Random(f"{seed}:holdout").shuffle(order)
    held = set(order[:n_eval])
    return [it for i, it in enumerate(items) if i not in held], [it for i, it in enumerate(items) if i in held]


def items_digest(items: Iterable[TrainItem]) -> str:
    """A 16-hex digest of the items' ids and targets, in order (a checkpoint must resume on the same data)."""
    blob = json.dumps([[it.id, it.target] for it in items], ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Encoded:
    """Token ids of prompt + answer + EOS, and labels equal to them on the answer and -100 on the prompt."""

    input_ids: list[int]
    labels: list[int]

    @property
    def n_answer(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


def encode_items(subject: Subject, items: Sequence[TrainItem]) -> list[Encoded]:
    """Render each hypothetical prompt with the chat template and append the target's tokens and EOS."""
    tokenizer = subject.tokenizer
    eos = tokenizer.eos_token_id
    if eos is None:
        raise SelfsimError(f"the tokenizer of {subject.name} has no EOS token to end answers with")
    if not items:
        return []
    prompts = tokenizer([subject.render_chat(it.messages) for it in items], add_special_tokens=False)["input_ids"]
    answers = tokenizer([it.target for it in items], add_special_tokens=False)["input_ids"]
    out = []
    for item, prompt, answer in zip(items, prompts, answers):
        if not answer:
            raise SelfsimError(f"label {item.target!r} of example {item.id} encodes to no tokens")
        answer = [*answer, eos]
        out.append(Encoded(input_ids=[*prompt, *answer], labels=[IGNORE_INDEX] * len(prompt) + answer))
    return out


@dataclass
class Batch:
    """A left-padded micro-batch; `width` is the longest answer (with EOS) in it."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor
    width: int


def collate(encoded: Sequence[Encoded], pad_id: int, device: torch.device | str | None = None) -> Batch:
    """Left-pad sequences so every answer ends at the last position (only the answer logits are computed)."""
    ids, mask = left_pad([e.input_ids for e in encoded], pad_id)
    labels, _ = left_pad([e.labels for e in encoded], IGNORE_INDEX)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    width = max(e.n_answer for e in encoded)
    return Batch(*(t.to(device) for t in (ids, mask, positions, labels)), width=width)


@lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(n))
    random.Random(f"{seed}:epoch:{epoch}").shuffle(order)
    return tuple(order)


def global_batch(n_items: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Item indices of optimizer step `step`: the next `batch_size` of a stream of seeded per-epoch shuffles.

    A pure function of its arguments, so a resumed run and a run on any number of processes see the
    same batches without any sampler state.
    """
    out: list[int] = []
    position = step * batch_size
    while len(out) < batch_size:
        epoch, offset = divmod(position + len(out), n_items)
        take = min(batch_size - len(out), n_items - offset)
        out.extend(_permutation(n_items, seed, epoch)[offset : offset + take])
    return out
