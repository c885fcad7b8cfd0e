"""Interchange at g's node inside H(P): hand the hypothetical run another prompt's value of g, not its input.

For every item P (one example) a donor P' is chosen, seeded, among the examples of the same
property whose object value differs, f(M(P')) != f(M(P)), AND differs from the tested model's
unpatched hypothetical answer on P: a model whose H ignores g then scores 0 rather than the chance
that its own answer happens to be f(M(P')). The node's output on the object run of P' is written
over its output inside H(P) at P's copy (aligned from the copies' ends, `pairs.align`;
`interchange_copy`) or, separately, at H's final position from P''s final position
(`interchange_final`). Score per item: 1 if the greedy first answer token is f(M(P'))'s first token.

Controls, same items and donors: the untrained model (its own object run on P' supplies the patched
output; scored against the tested model's target value) and the transplant (the same patch into
the tested model's neutral prompt that quotes P and asks nothing about the model). Rows are
`rule.excess` over each control: paired per-item differences with bootstrap 95% CIs over items.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from selfsim.errors import SelfsimError
from selfsim.examples import Example
from selfsim.interp.answers import property_value, value_token
from selfsim.interp.pairs import MatchedPair, Prompt, align, match_all
from selfsim.interp.steering import neutral_prompt, read_at
from selfsim.interp.tracing import Tracer, get_tracer
from selfsim.verdict.localise import first_token_ids
from selfsim.verdict.rule import INTERCHANGE_COPY, INTERCHANGE_FINAL, TRANSPLANT, UNTRAINED, Evidence, excess

if TYPE_CHECKING:
    from selfsim.models import Subject
    from selfsim.verdict.localise import Node

SITES = {INTERCHANGE_COPY: "copy", INTERCHANGE_FINAL: "final"}


@dataclass
class Runs:
    """One model's matched prompts, neutral prompts, node outputs on its object runs and greedy answers."""

    subject: Subject
    tracer: Tracer
    site: str
    pairs: list[MatchedPair]
    neutral: list[Prompt]
    object_acts: list[torch.Tensor]
    object_tokens: list[int]
    hypothetical_tokens: list[int]

    @classmethod
    def collect(cls, subject: Subject, examples: Sequence[Example], site: str, batch_size: int) -> Runs:
        """Render, locate and run every example's object and hypothetical prompt once (no patches)."""
        tracer = get_tracer(subject, "hooks")
        pairs = match_all(subject, examples)
        objects = [p.object for p in pairs]
        acts = read_at(subject, tracer, objects, site, batch_size)
        return cls(subject, tracer, site, pairs, [neutral_prompt(subject, e) for e in examples], acts,
                   first_token_ids(subject, tracer, objects, [], batch_size=batch_size),
                   first_token_ids(subject, tracer, [p.hypothetical for p in pairs], [], batch_size=batch_size))

    def value(self, i: int) -> str | None:
        """f(M(P_i)): the property of the greedy first object answer token."""
        token = self.subject.tokenizer.decode([self.object_tokens[i]]).strip()
        return property_value(self.pairs[i].example, token)


def donors(runs: Runs, items: Sequence[int], seed: int) -> list[tuple[int, int, str]]:
    """(recipient, donor, f(M(P'))) per item with a donor whose value differs from f(M(P)) and from H(P)'s answer."""
    rng = random.Random(f"interchange-{seed}")
    values = {i: runs.value(i) for i in items}
    out = []
    for i in items:
        if values[i] is None:
            continue
        answered = runs.hypothetical_tokens[i]
        pool = [j for j in items if values[j] is not None and values[j] != values[i]
                and _target(runs, runs.pairs[i].hypothetical, values[j]) != answered]
        if pool:
            j = rng.choice(pool)
            out.append((i, j, str(values[j])))
    return out


def _target(runs: Runs, prompt: Prompt, value: str | None) -> int:
    return value_token(runs.subject, prompt, value)


def scores(runs: Runs, recipients: Sequence[Prompt], items: Sequence[tuple[int, int, str]], where: str,
           batch_size: int = 64) -> list[float]:
    """1/0 per item: does the recipient, with the node's output at `where` taken from P''s object run, answer f(M(P'))?"""
    patches = []
    for (_, j, _), prompt in zip(items, recipients):
        donor = runs.pairs[j].object
        acts = runs.object_acts[j]
        if where == "copy":
            patches.append([(r, acts[d]) for r, d in align(prompt, donor)])
        else:
            patches.append([(prompt.final, acts[-1])])
    got = first_token_ids(runs.subject, runs.tracer, recipients, patches, site=runs.site, batch_size=batch_size)
    return [float(g == _target(runs, p, v)) for g, p, (_, _, v) in zip(got, recipients, items)]


def interchange(subject: Subject, examples: Sequence[Example], node: Node, *, untrained: Subject,
                seed: int = 0, batch_size: int = 64) -> list[Evidence]:
    """Rows interchange_copy / interchange_final over untrained and transplant, per property (module docstring)."""
    if not examples:
        raise SelfsimError("interchange needs at least one example")
    site = node.site(subject)
    tested = Runs.collect(subject, examples, site, batch_size)
    control = Runs.collect(untrained, examples, node.site(untrained), batch_size)
    rows: list[Evidence] = []
    for prop in sorted({e.property for e in examples}):
        items = donors(tested, [i for i, e in enumerate(examples) if e.property == prop], seed)
        if not items:
            raise SelfsimError(f"interchange on {subject.name}: no example of property {prop!r} has a donor whose "
                               "object answer has another value; the model's object answers must vary")
        for experiment, where in SITES.items():
            model = scores(tested, [tested.pairs[i].hypothetical for i, _, _ in items], items, where, batch_size)
            untrained_scores = scores(control, [control.pairs[i].hypothetical for i, _, _ in items], items, where, batch_size)
            transplant = scores(tested, [tested.neutral[i] for i, _, _ in items], items, where, batch_size)
            rows.append(excess(subject.name, prop, experiment, UNTRAINED, model, untrained_scores, seed=seed))
            rows.append(excess(subject.name, prop, experiment, TRANSPLANT, model, transplant, seed=seed))
    return rows
