"""Cross-prediction data scaling: M2 trained on growing shares of M1ft's training labels."""

from __future__ import annotations

from selfsim.results import Scaling, ScalingRow
from selfsim.study.experiments.base import PairContext, register
from selfsim.study.scoring import accuracy


def scaling(ctx: PairContext) -> Scaling:
    """Cross-prediction accuracy (held-out tasks) as M2's training set grows, each size trained for
    `epochs` on M1ft's labels; scored against M1ft and M1 before. n_train reuses the main cross run."""
    c, st = ctx.config, ctx.stages
    rows = []
    for n in sorted({*c.scaling, c.n_train}):
        per_pair = max(1, n // len(c.train_tasks))
        key = f"{ctx.key}/cross" if n == c.n_train else f"{ctx.key}/cross_n{n}"
        n_items = c.n_items(n)
        adapter = ctx.adapters["cross"] if n == c.n_train else st.finetune(
            key, ctx.m2, st.labelled(ctx.examples["train"], ctx.beh_self, per_pair), n_items=n_items)
        preds = st.predictions(key, ctx.m2, ctx.evals, adapter).long()
        rows.append(ScalingRow(
            condition="cross", n_train=n, n_items=n_items, steps=c.steps_for(n_items),
            vs_m1_after=accuracy(c, preds, ctx.targets["m1_after"], ctx.ood_ids),
            vs_m1_before=accuracy(c, preds, ctx.targets["m1_before"], ctx.ood_ids),
        ))
    return Scaling(rows=rows)


register("scaling", scaling)
