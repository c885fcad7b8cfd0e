"""Weight-edit transfer: edit g's component on OBJECT runs only, then ask whether the hypothetical follows.

Items are groups of examples that share `meta["key"]` (else one example each): an edit moves a whole
group, since every prompt with the same key runs through the same weights. For each of `n_sets`
edit sets, `per_set` groups get a new object answer (a greedy object answer of another example
whose property value differs); each edited prompt P is paired with a donor P' answering it (the
donor whose copy shares most aligned tokens with P's). Only the node's module trains (Adam,
`steps`), with an interchange-style objective: its output on P's object run, at the aligned copy
tokens that differ from P''s and at the final position, is pulled onto its output on P' (MSE),
while its output on up to 64 unedited prompts is held at its value before the edit. No
hypothetical prompt is ever seen, and no answer logit is trained.

Scores per edited group (mean over its prompts): `edit_transfer` = +1 if H(P) answers the new
value, -1 if it answers a third value (neither old nor new, one per group, seeded), else 0, so
unanchored drift, which lands on the new and the third value alike, averages out; over the
untrained model (the same edit made in it, scored against the tested model's values) and over the
transplant (the edited model's neutral prompt). Gates: `edit_object` (the edited object answer is
the new one), `edit_retained` (unedited object answers unchanged), `edit_drift` (self-prediction
accuracy on unedited prompts, after minus before). Weights are restored after every set.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from selfsim.errors import SelfsimError
from selfsim.examples import Example
from selfsim.interp.answers import value_token
from selfsim.interp.pairs import align, batch_of, padded
from selfsim.verdict.interchange import Runs
from selfsim.verdict.localise import first_token_ids
from selfsim.verdict.rule import (
    EDIT_DRIFT,
    EDIT_OBJECT,
    EDIT_RETAINED,
    EDIT_TRANSFER,
    TRANSPLANT,
    UNTRAINED,
    Evidence,
    excess,
    rate,
)

if TYPE_CHECKING:
    from selfsim.models import Subject
    from selfsim.verdict.localise import Node

PRESERVE = 64


def groups_of(examples: Sequence[Example]) -> dict[str, list[int]]:
    """Example indices grouped by `meta["key"]` (else by the example's own id), in first-seen order."""
    out: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        out.setdefault(str((e.meta or {}).get("key", e.id)), []).append(i)
    return out


def _plan(runs: Runs, groups: dict[str, list[int]], n_sets: int, per_set: int, seed: int):
    """Per set: [(group, members, new answer token, new value, third value, {member: donor})]."""
    rng = random.Random(f"edit-{seed}")
    values = [runs.value(i) for i in range(len(runs.pairs))]
    answers: dict[int, str | None] = {}
    for i, t in enumerate(runs.object_tokens):
        answers.setdefault(t, values[i])
    names = [g for g, members in groups.items() if values[members[0]] is not None]
    if len(names) < 2:
        raise SelfsimError("edit transfer needs object answers with at least two property values")
    order = list(names)
    rng.shuffle(order)
    sets = []
    for s in range(n_sets):
        chosen = [order[(s * per_set + k) % len(order)] for k in range(min(per_set, len(order)))]
        plan = []
        for g in chosen:
            members = groups[g]
            old = values[members[0]]
            options = sorted(t for t, v in answers.items() if v is not None and v != old)
            if not options:
                continue
            new_token = rng.choice(options)
            new = answers[new_token]
            thirds = sorted({v for v in answers.values() if v is not None and v not in (old, new)})
            third = rng.choice(thirds) if thirds else None
            pool = [j for j, t in enumerate(runs.object_tokens) if t == new_token and j not in members]
            donors = {}
            for i in members:
                rng.shuffle(pool)
                donors[i] = max(pool, key=lambda j: _shared(runs, i, j))
            plan.append((g, members, new_token, new, third, donors))
        sets.append(plan)
    return sets


def _shared(runs: Runs, i: int, j: int) -> int:
    p, d = runs.pairs[i].object, runs.pairs[j].object
    return sum(p.ids[a] == d.ids[b] for a, b in align(p, d))


def _targets(runs: Runs, i: int, j: int) -> list[tuple[int, torch.Tensor]]:
    p, d = runs.pairs[i].object, runs.pairs[j].object
    acts = runs.object_acts[j]
    out = [(a, acts[b]) for a, b in align(p, d) if p.ids[a] != d.ids[b]]
    return out + [(p.final, acts[-1])]


def _edit(runs: Runs, plan, keep: Sequence[int], steps: int, lr: float) -> None:
    """Train the node's module in place: edited prompts' outputs onto their donors', `keep`'s held still."""
    params = list(runs.subject.module(runs.site).parameters())
    flags = {p: p.requires_grad for p in runs.subject.base.parameters()}
    for p in flags:
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    prompts, targets = [], []
    for _, members, _, _, _, donors in plan:
        for i in members:
            prompts.append(runs.pairs[i].object)
            targets.append(_targets(runs, i, donors[i]))
    for i in keep:
        prompts.append(runs.pairs[i].object)
        targets.append(list(enumerate(runs.object_acts[i])))
    batch = batch_of(runs.subject, prompts)
    rows = torch.tensor([r for r, t in enumerate(targets) for _ in t])
    cols = torch.tensor([padded(prompts[r], batch.width, p) for r, t in enumerate(targets) for p, _ in t])
    goal = torch.stack([v for t in targets for _, v in t])
    edited = torch.tensor([r < len(prompts) - len(keep) for r, t in enumerate(targets) for _ in t])
    optim = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        out = runs.tracer.run(batch, read=[runs.site], last_only=True).activations[runs.site]
        err = ((out[rows, cols] - goal.to(out.device)) ** 2).mean(-1)
        loss = err[edited].mean() + (err[~edited].mean() if (~edited).any() else 0.0)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
    for p, flag in flags.items():
        p.requires_grad_(flag)


def _score(token: int, runs: Runs, prompt, new: str | None, third: str | None) -> float:
    if token == value_token(runs.subject, prompt, new):
        return 1.0
    return -1.0 if third is not None and token == value_token(runs.subject, prompt, third) else 0.0


def edit_transfer(subject: Subject, examples: Sequence[Example], node: Node, *, untrained: Subject,
                  n_sets: int = 3, per_set: int = 16, seed: int = 0, steps: int = 150, lr: float = 1e-2,
                  batch_size: int = 64) -> list[Evidence]:
    """Rows edit_object / edit_retained / edit_drift (gates) and edit_transfer over untrained and transplant, per property."""
    if n_sets < 1 or per_set < 1:
        raise SelfsimError(f"n_sets and per_set must be >= 1, got {n_sets} and {per_set}")
    rows: list[Evidence] = []
    for prop in sorted({e.property for e in examples}):
        exs = [e for e in examples if e.property == prop]
        tested = Runs.collect(subject, exs, node.site(subject), batch_size)
        control = Runs.collect(untrained, exs, node.site(untrained), batch_size)
        groups = groups_of(exs)
        sets = _plan(tested, groups, n_sets, per_set, seed)
        model_s, untrained_s, transplant_s, moved, retained, drift = [], [], [], [], [], []
        before_ok = [float(h == value_token(subject, tested.pairs[i].hypothetical, tested.value(i)))
                     for i, h in enumerate(tested.hypothetical_tokens)]
        for s, plan in enumerate(sets):
            edited = {i for _, members, *_ in plan for i in members}
            rest = [i for i in range(len(exs)) if i not in edited]
            keep = random.Random(f"edit-keep-{seed}-{s}").sample(rest, min(PRESERVE, len(rest)))
            for runs, out in ((tested, model_s), (control, untrained_s)):
                saved = {k: v.detach().clone() for k, v in runs.subject.module(runs.site).state_dict().items()}
                try:
                    _edit(runs, plan, keep, steps, lr)
                    order = [i for _, members, *_ in plan for i in members]
                    hyp = dict(zip(order, first_token_ids(runs.subject, runs.tracer, [runs.pairs[i].hypothetical for i in order], [],
                                                 batch_size=batch_size)))
                    out.extend(sum(_score(hyp[i], runs, runs.pairs[i].hypothetical, new, third) for i in members) / len(members)
                               for _, members, _, new, third, _ in plan)
                    if runs is tested:
                        neu = dict(zip(order, first_token_ids(subject, tested.tracer, [tested.neutral[i] for i in order], [], batch_size=batch_size)))
                        transplant_s.extend(sum(_score(neu[i], tested, tested.neutral[i], new, third) for i in members) / len(members)
                                            for _, members, _, new, third, _ in plan)
                        obj = dict(zip(order, first_token_ids(subject, tested.tracer, [tested.pairs[i].object for i in order], [], batch_size=batch_size)))
                        moved.extend(sum(float(obj[i] == tok) for i in members) / len(members) for _, members, tok, *_ in plan)
                        rest_obj = first_token_ids(subject, tested.tracer, [tested.pairs[i].object for i in rest], [], batch_size=batch_size)
                        rest_hyp = first_token_ids(subject, tested.tracer, [tested.pairs[i].hypothetical for i in rest], [], batch_size=batch_size)
                        retained.extend(float(o == tested.object_tokens[i]) for o, i in zip(rest_obj, rest))
                        drift.extend(float(h == value_token(subject, tested.pairs[i].hypothetical, tested.value(i))) - before_ok[i]
                                     for h, i in zip(rest_hyp, rest))
                finally:
                    runs.subject.module(runs.site).load_state_dict(saved)
        name = subject.name
        rows += [rate(name, prop, EDIT_OBJECT, moved, seed=seed), rate(name, prop, EDIT_RETAINED, retained, seed=seed),
                 rate(name, prop, EDIT_DRIFT, drift, seed=seed),
                 excess(name, prop, EDIT_TRANSFER, UNTRAINED, model_s, untrained_s, seed=seed),
                 excess(name, prop, EDIT_TRANSFER, TRANSPLANT, model_s, transplant_s, seed=seed)]
    return rows
