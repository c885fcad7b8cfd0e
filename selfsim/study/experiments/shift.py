"""SPEC experiment 4: behaviour shift of M1ft further finetuned on M2's object-level answers (Mc)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from selfsim.report import fig_shift
from selfsim.results import PairResult, Records, StudyResults, all_row
from selfsim.study.experiments.base import PairContext, register
from selfsim.study.scoring import unchanged


@dataclass(frozen=True)
class Shift:
    """Behaviour shift: Mc's accuracy against its new vs the old behaviour on changed prompts."""

    changed: Records
    unchanged_share: float


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


def section(result: Shift, pair: PairResult) -> list[tuple[str, Any]]:
    """Accuracy against the new vs the old behaviour per property."""
    return [("Behaviour shift (Mc vs its new behaviour and vs M1ft's, on changed prompts)",
             fig_shift(pd.DataFrame.from_records(result.changed)))]


def headline(result: Shift, results: StudyResults) -> list[dict[str, Any]]:
    """Mc against its new and its old behaviour (micro average, changed prompts), the paper's beside."""
    row = all_row(result.changed) or {}
    return [{"quantity": f"shift: Mc vs {side} behaviour (changed prompts)", "selfsim toy": row.get(f"accuracy_{side}"),
             "95% CI low": row.get(f"ci_low_{side}"), "95% CI high": row.get(f"ci_high_{side}"),
             "paper (Llama-3.1-70B)": results.paper[f"shift_{side}"] / 100} for side in ("new", "old")]


register("shift", shift, Shift, section, headline=headline)
