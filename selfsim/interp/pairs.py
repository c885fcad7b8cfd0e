"""Matched (P, H(P, f)) prompts with the token positions that patching aligns between them.

Both prompts of an `Example` are rendered with the subject's chat template and tokenized without
special tokens (the template writes them). The *copy* of P is where the content of P's last user
message lies: in the object prompt that is P itself, in H the quoted copy. It is located by
CHARACTER offsets, never by matching token ids: the content's character span is found in the
rendered text (its last occurrence, i.e. in the last user turn) and the copy is every token whose
character span (the fast tokenizer's offset mapping) overlaps it. Subword vocabularies merge P's
first or last characters with the template around it (a Llama BPE tokenizer writes the closing `."`
of H's quote as ONE token), so a boundary token of the copy may also hold template characters; it
still belongs to the copy, because it is where P's first (last) character is read. Hence:
- `copy` = [start, end): the first to the last token overlapping P's characters;
- `copy_end` = end - 1: the token holding P's last character (what `selfsim.interp.cache` stores);
- `final` = the prompt's last token, whose next-token distribution is the answer's first token.
Positions here are indices into the prompt's own ids; `padded` turns them into indices into a
left-padded batch.

Donors are paired with recipients of the same property, preferring copies of equal length;
where lengths differ, `align` matches the copies from their ends (the token holding P's last
character with the token holding P''s last character), so only the last min(m, m') tokens of each
copy are aligned.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from selfsim.batching import left_pad
from selfsim.errors import SelfsimError
from selfsim.examples import Example, Messages
from selfsim.interp.tracing import Batch

if TYPE_CHECKING:
    from selfsim.models import Subject

KINDS = ("object", "hypothetical")


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt, its token ids, the token span [start, end) of the copy of P's content and, when
    located by `match`, the content's character span in `text` and every token's character span."""

    text: str
    ids: tuple[int, ...]
    copy: tuple[int, int]
    chars: tuple[int, int] | None = None
    offsets: tuple[tuple[int, int], ...] = ()

    @property
    def content(self) -> str | None:
        """P's content as it stands in this prompt (None when not located by characters)."""
        return None if self.chars is None else self.text[self.chars[0] : self.chars[1]]

    def tail(self, position: int) -> tuple[int, int] | None:
        """(end, reach) of a copy token in characters counted back from the end of P's content: the token
        covers the content's last `reach` characters except the last `end`. None without offsets."""
        if self.chars is None:
            return None
        a, b = self.offsets[position]
        last = self.chars[1]
        return last - min(b, last), last - max(a, self.chars[0])

    @property
    def length(self) -> int:
        return len(self.ids)

    @property
    def copy_positions(self) -> list[int]:
        return list(range(*self.copy))

    @property
    def copy_end(self) -> int:
        """The copy's last token: the one holding P's last character."""
        return self.copy[1] - 1

    @property
    def final(self) -> int:
        return len(self.ids) - 1


@dataclass(frozen=True)
class MatchedPair:
    """An example with its object prompt P and hypothetical prompt H(P, f), both located."""

    example: Example
    object: Prompt
    hypothetical: Prompt

    def prompt(self, kind: str) -> Prompt:
        """The object or hypothetical prompt."""
        if kind not in KINDS:
            raise SelfsimError(f"unknown prompt kind {kind!r}; valid kinds are {', '.join(KINDS)}")
        return self.object if kind == "object" else self.hypothetical


def content_of(messages: Messages) -> str:
    """The content of the last user message (P's question)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message["content"].strip()
    raise SelfsimError("the object prompt has no user message")


def tokenize(subject: Subject, text: str) -> list[int]:
    """Token ids of `text` without added special tokens (as `selfsim.interp.tracing.encode` does)."""
    return list(subject.tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenize_with_offsets(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of `text` (no added special tokens) and each token's character span [a, b) in `text`."""
    if not getattr(tokenizer, "is_fast", False):
        raise SelfsimError(
            f"locating P's copy needs a fast tokenizer with an offset mapping; {type(tokenizer).__name__} is not one"
        )
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [(int(a), int(b)) for a, b in enc["offset_mapping"]]


def locate_copy(text: str, offsets: Sequence[tuple[int, int]], content: str, what: str) -> tuple[int, int]:
    """Token span [start, end) of every token overlapping the last occurrence of `content` in `text`; else raise."""
    begin = text.rfind(content) if content else -1
    if begin < 0:
        raise SelfsimError(f"{what}: P's content does not occur in the rendered prompt; H(P, f) must quote P's last user message verbatim")
    finish = begin + len(content)
    inside = [i for i, (a, b) in enumerate(offsets) if max(a, begin) < min(b, finish)]
    if not inside:
        raise SelfsimError(f"{what}: no token of the rendered prompt covers P's content (characters {begin}..{finish})")
    return inside[0], inside[-1] + 1


def match(subject: Subject, example: Example) -> MatchedPair:
    """Render and tokenize P and H(P, f) and locate the copy of P's content in each."""
    content = content_of(example.object_messages)
    prompts = []
    for kind, messages in (("object", example.object_messages), ("hypothetical", example.hypothetical_messages)):
        text = subject.render_chat(messages)
        ids, offsets = tokenize_with_offsets(subject.tokenizer, text)
        span = locate_copy(text, offsets, content, f"example {example.id} ({kind} prompt)")
        begin = text.rfind(content)
        prompts.append(Prompt(text, tuple(ids), span, (begin, begin + len(content)), tuple(offsets)))
    return MatchedPair(example, *prompts)


def match_all(subject: Subject, examples: Sequence[Example]) -> list[MatchedPair]:
    """`match` for every example."""
    return [match(subject, e) for e in examples]


def pair_up(pairs: Sequence[MatchedPair], seed: int = 0) -> list[tuple[int, int]]:
    """(recipient, donor) indices: every prompt receives from another prompt of its property, equal copy lengths first.

    Within each (property, copy length) group the order is shuffled and each prompt receives from
    the next one; prompts left alone in their group are pooled per property and rotated the same way.
    A property with a single prompt has nobody to pair with and is left out.
    """
    rng = random.Random(seed)
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        groups[(p.example.property, p.hypothetical.copy[1] - p.hypothetical.copy[0])].append(i)
    out: list[tuple[int, int]] = []
    leftovers: dict[str, list[int]] = defaultdict(list)
    for (prop, _), members in sorted(groups.items()):
        if len(members) == 1:
            leftovers[prop].extend(members)
        else:
            out.extend(_rotate(members, rng))
    for _, members in sorted(leftovers.items()):
        if len(members) > 1:
            out.extend(_rotate(members, rng))
    return sorted(out)


def _rotate(members: list[int], rng: random.Random) -> list[tuple[int, int]]:
    order = list(members)
    rng.shuffle(order)
    return [(order[i], order[(i + 1) % len(order)]) for i in range(len(order))]


def align(recipient: Prompt, donor: Prompt) -> list[tuple[int, int]]:
    """(recipient position, donor position) of the copies, matched from their ends (copy_end with copy_end).

    Walking back one token of each copy at a time pairs different contents token by token. Where the
    two contents share their last characters (H(P) and P itself, or an instruction both end with) and
    the tokenizations differ there (`'` `."` in H against `'.` in P), tokens pair by the characters they
    cover: a pair is kept only when both tokens end on the same character of the shared text, and the
    walk steps back in the copy whose token reaches less far, so the shared text stays in register.
    """
    r, d = recipient.copy_positions, donor.copy_positions
    rc, dc = recipient.content, donor.content
    common = _common_suffix(rc, dc) if rc is not None and dc is not None else 0
    out: list[tuple[int, int]] = []
    i, j = len(r) - 1, len(d) - 1
    while i >= 0 and j >= 0:
        rt, dt = recipient.tail(r[i]), donor.tail(d[j])
        if rt is None or dt is None or rt == dt or max(rt[1], dt[1]) > common:
            out.append((r[i], d[j]))
            i, j = i - 1, j - 1
            continue
        if rt[0] == dt[0]:
            out.append((r[i], d[j]))
        if rt[1] <= dt[1]:
            i -= 1
        if dt[1] <= rt[1]:
            j -= 1
    return out[::-1]


def _common_suffix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def padded(prompt: Prompt, width: int, position: int) -> int:
    """A position of `prompt` as an index into a left-padded batch of `width` columns."""
    return position + width - prompt.length


def batch_of(subject: Subject, prompts: Sequence[Prompt]) -> Batch:
    """A left-padded Batch of already-tokenized prompts."""
    ids, mask = left_pad([p.ids for p in prompts], int(subject.tokenizer.pad_token_id or 0))
    return Batch(ids, mask, [p.text for p in prompts])
