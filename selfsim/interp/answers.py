"""What every interp study reads off the models' answers: labelled subjects, greedy object-level
answers, the first token of an answer, the property value f(answer), and M1's labels.

Patching, probes, the logit lens and the SAE study all use these; none of them owns them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from selfsim.errors import SelfsimError

if TYPE_CHECKING:
    from selfsim.examples import Example
    from selfsim.interp.pairs import MatchedPair, Prompt
    from selfsim.models import Subject

LABEL_TARGETS = ("first_token", "property")


def model_labels(subjects: Mapping[str, Subject] | Sequence[Subject]) -> dict[str, Subject]:
    """Subjects keyed by display label (given, or name plus adapter directory)."""
    if isinstance(subjects, Mapping):
        return dict(subjects)
    named: dict[str, Subject] = {}
    for s in subjects:
        label = f"{s.name}+{s.adapter.name}" if s.adapter else s.name
        if label in named:
            raise SelfsimError(f"two subjects are labelled {label!r}; pass a mapping of labels to subjects")
        named[label] = s
    return named


def greedy_answers(subject: Subject, pairs: Sequence[MatchedPair], max_new_tokens: int | None = None,
                   batch_size: int = 16) -> list[str]:
    """Each pair's full greedy object-level answer (`selfsim.generation`, the task's token budget unless
    `max_new_tokens` is given), generated once per distinct object prompt; in pair order."""
    from selfsim.generation import GREEDY, Request, generate_batch
    from selfsim.tasks import token_budget

    requests: dict[tuple[int, ...], Request] = {}
    for m in pairs:
        budget = token_budget(m.example.task, m.example.dialect, max_new_tokens)
        requests.setdefault(m.object.ids, Request(m.example.object_id, m.object.ids, GREEDY, budget))
    unique = list(requests.values())
    answers: dict[tuple[int, ...], str] = {}
    for start in range(0, len(unique), batch_size):
        rows = unique[start : start + batch_size]
        for request, generation in zip(rows, generate_batch(subject, rows)):
            answers[request.ids] = generation.response
    return [answers[m.object.ids] for m in pairs]


def value_token(subject: Subject, prompt: Prompt, value: str | None) -> int:
    """First token of `value` as the tokenizer continues `prompt` (also tried after a space); -1 for None."""
    from selfsim.interp.pairs import tokenize

    if value is None or not value.strip():
        return -1
    n = prompt.length
    for text in (prompt.text + value, prompt.text + " " + value):
        ids = tokenize(subject, text)
        if len(ids) > n and tuple(ids[:n]) == prompt.ids:
            return ids[n]
    raise SelfsimError(f"the value {value!r} does not continue the prompt {prompt.text[-40:]!r} with a token of its own")


def property_value(example: Example, response: str | None) -> str | None:
    """f(response) for the example's property (None where the response is missing or non-compliant)."""
    from selfsim.properties import get

    return get(example.property).extract(response, example) if response is not None else None


def property_values(examples: Sequence[Example], responses: Sequence[str | None]) -> list[str | None]:
    """`property_value` of each (example, response)."""
    return [property_value(e, r) for e, r in zip(examples, responses)]


def first_tokens(subject: Subject, examples: Sequence[Example], responses: Sequence[str | None]) -> list[str | None]:
    """The first token of each response as `subject`'s tokenizer continues the rendered object prompt."""
    from selfsim.interp.pairs import match

    out: list[str | None] = []
    for example, response in zip(examples, responses):
        token = value_token(subject, match(subject, example).object, response) if response else -1
        out.append(subject.tokenizer.decode([token]).strip() if token >= 0 else None)
    return out


def m1_labels(
    subject: Subject,
    examples: Sequence[Example],
    m1_responses: Mapping[str, str] | None,
    own: Mapping[str, Sequence[str | None]],
) -> dict[str, list[str | None]]:
    """M1's labels per target in LABEL_TARGETS, row-aligned with `examples`: read from `m1_responses`
    (object_id -> M1's response, tokenized by `subject`), or `own` (the first subject's labels) without it."""
    if m1_responses is None:
        return {t: list(own[t]) for t in LABEL_TARGETS}
    responses = [m1_responses.get(e.object_id) for e in examples]
    return {"first_token": first_tokens(subject, examples, responses), "property": property_values(examples, responses)}
