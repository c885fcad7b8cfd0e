"""SPEC experiment 4: behaviour shift of M1ft further finetuned on M2's object-level answers (Mc)."""

from __future__ import annotations

from selfsim.results import Shift
from selfsim.study.experiments.base import PairContext, register
from selfsim.study.scoring import unchanged


def shift(ctx: PairContext) -> Shift:
    """M1-self finetuned further on M2's object-level answers (Mc); Mc's predictions vs its new and the old behaviour."""
    from selfsim.evaluate import behavior_shift, to_records
    from selfsim.finetune import TrainItem

    c, st, old = ctx.config, ctx.stages, ctx.targets["m1_after"]
    train_ids = {e.object_id: e for e in ctx.examples["train"]}
    items = [
        TrainItem(id=f"object:{oid}", object_id=oid, task=train_ids[oid].task, property="object",
                  messages=train_ids[oid].object_messages, target=str(resp))
        for oid, resp in sorted(ctx.beh_m2.responses().items()) if oid in train_ids and str(resp).strip()
    ]
    shifted = st.finetune(f"{ctx.key}/shift", ctx.m1, items, base_adapter=ctx.adapters["self"])
    new = st.behavior(f"{ctx.key}/shift", ctx.m1, ctx.evals, shifted).long()
    preds = st.predictions(f"{ctx.key}/shift", ctx.m1, ctx.evals, shifted).long()
    return Shift(
        changed=to_records(behavior_shift(preds[preds["object_id"].isin(ctx.ood_ids)], old, new, n_boot=c.n_boot, seed=c.seed)),
        unchanged_share=unchanged(old, new),
    )


register("shift", shift)
