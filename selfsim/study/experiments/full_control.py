"""The full-finetuning control: self and cross with full-weight finetunes instead of LoRA.

Its points are drawn in the scaling experiment's figure (`scaling.section`). The demo and quick presets run it at
the scaling curve's smallest size, so each full-weight point has a LoRA cross point of the same data size beside
it, at a quarter of the steps of a control at n_train; self vs cross is compared within the control.
"""

from __future__ import annotations

from dataclasses import dataclass

from selfsim.results import Modes
from selfsim.study.experiments.base import PairContext, register
from selfsim.study.scoring import accuracy


@dataclass(frozen=True)
class FullControlRow:
    """Full-weight finetune of self or cross on `n_train` prompts (held-out tasks)."""

    condition: str
    n_train: int
    steps: int
    vs_m1_after: Modes
    vs_m1_before: Modes
    vs_own_before: Modes | None = None


@dataclass(frozen=True)
class FullControl:
    """The full-finetuning control."""

    rows: list[FullControlRow]


def full_control(ctx: PairContext) -> FullControl:
    """Full-weight finetuning of self (on M1's own answers) and cross (on M1ft's) at growing data sizes,
    scored against M1ft, M1 before and (cross) M2's own pre-finetune behaviour."""
    c, st, ids = ctx.config, ctx.stages, ctx.ood_ids
    rows = []
    for n in c.full_control:
        per_pair = max(1, n // len(c.train_tasks))
        for cond, model, labels in (("self", ctx.m1, ctx.beh_m1), ("cross", ctx.m2, ctx.beh_self)):
            key = f"{ctx.key}/full_{cond}_n{n}"
            path = st.finetune(key, model, st.labelled(ctx.examples["train"], labels, per_pair), n_items=c.n_items(n), full=True)
            preds = st.predictions(key, str(path), ctx.evals).long()
            rows.append(FullControlRow(
                condition=cond, n_train=n, steps=c.steps_for(c.n_items(n)),
                vs_m1_after=accuracy(c, preds, ctx.targets["m1_after"], ids),
                vs_m1_before=accuracy(c, preds, ctx.targets["m1_before"], ids),
                vs_own_before=accuracy(c, preds, ctx.targets["own_before"], ids) if cond == "cross" else None,
            ))
    return FullControl(rows=rows)


register("full_control", full_control, FullControl)
