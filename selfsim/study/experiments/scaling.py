"""Cross-prediction data scaling: M2 trained on growing shares of M1ft's training labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from selfsim.report import TARGET_TITLES, fig_scaling
from selfsim.results import Modes, PairResult, micro_row
from selfsim.study.experiments.base import PairContext, register
from selfsim.study.scoring import accuracy


@dataclass(frozen=True)
class ScalingRow:
    """Cross-prediction accuracy (held-out tasks) of M2 trained on `n_train` prompts."""

    condition: str
    n_train: int
    n_items: int
    steps: int
    vs_m1_after: Modes
    vs_m1_before: Modes


@dataclass(frozen=True)
class Scaling:
    """The data-scaling curve of cross-prediction."""

    rows: list[ScalingRow]


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


def section(result: Scaling, pair: PairResult) -> list[tuple[str, Any]]:
    """The cross-prediction scaling curve, with the full-finetuning control's points when present."""
    from selfsim.study.experiments.full_control import FullControl  # registered after scaling: run order

    rows = [{"condition": "cross (LoRA)", "n_train": r.n_train, **micro_row(r.vs_m1_after.wrong)} for r in result.rows]
    control = pair.experiment(FullControl)
    for r in control.rows if control else []:
        rows.append({"condition": f"{r.condition} (full weights)", "n_train": r.n_train, **micro_row(r.vs_m1_after.wrong)})
    return [(f"Cross-prediction data scaling and the full-finetuning control, {TARGET_TITLES['m1_after']}",
             fig_scaling(pd.DataFrame.from_records(rows)))]


register("scaling", scaling, Scaling, section)
