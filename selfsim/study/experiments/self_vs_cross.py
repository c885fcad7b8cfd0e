"""The headline experiment on every ordered pair: self-trained M1 vs cross-trained M2 predicting M1ft.

As in the paper's code, the primary target is the self-trained M1's current behaviour (M1ft): M2 learns
M1ft's answers on the training prompts, and every model is scored against M1ft's answers on held-out
prompts. Scores against M1's pre-finetune behaviour are the secondary target.
"""

from __future__ import annotations

from selfsim.examples import Example
from selfsim.results import TARGETS, Conditions, Gaps, ModeBaselines, PairResult, SplitResult, TargetScores, Unchanged
from selfsim.study.experiments.base import PairContext
from selfsim.study.scoring import accuracy, gap, mode, unchanged
from selfsim.study.stages import Stages, model_dir


def self_vs_cross(stages: Stages, a: str, b: str, ex: dict[str, list[Example]]) -> tuple[PairResult, PairContext]:
    """Finetune self (A on its own answers) and cross (B on A-ft's), score every condition on both
    evaluation splits; returns the pair's result and the context the extra experiments build on."""
    c, st = stages.config, stages
    evals = ex["eval_id"] + ex["eval_ood"]
    everything = ex["train"] + evals
    da, db = model_dir(a), model_dir(b)
    beh_a = st.behavior(da, a, everything)
    beh_b = st.behavior(db, b, everything)
    key = f"{da}__{db}"
    n_items = c.n_items(c.n_train)
    adapters = {"self": st.finetune(f"{key}/self", a, st.labelled(ex["train"], beh_a, c.per_pair()), n_items=n_items)}
    beh_self = st.behavior(f"{key}/self", a, everything, adapters["self"])
    adapters["cross"] = st.finetune(f"{key}/cross", b, st.labelled(ex["train"], beh_self, c.per_pair()), n_items=n_items)
    models = {"untrained": (a, None), "self": (a, adapters["self"]), "cross": (b, adapters["cross"]),
              "untrained_m2": (b, None)}
    preds = {k: st.predictions(f"{key}/{k}" if k in adapters else model_dir(m), m, evals, ad).long()
             for k, (m, ad) in models.items()}
    eval_ids = {e.object_id for e in evals}
    m1_after = beh_self.long()
    after = {"self": m1_after[m1_after["object_id"].isin(eval_ids)].reset_index(drop=True),
             "cross": st.behavior(f"{key}/cross", b, evals, adapters["cross"]).long()}
    before = {"m1": beh_a.long(), "m2": beh_b.long()}
    targets = {"m1_after": after["self"], "m1_before": before["m1"]}

    def split(rows: list[Example]) -> SplitResult:
        ids = {e.object_id for e in rows}

        def scores(cond: str, **own: object) -> TargetScores:
            return TargetScores(**{t: accuracy(c, preds[cond], beh, ids) for t, beh in {**targets, **own}.items()})

        return SplitResult(
            accuracy=Conditions(
                untrained=scores("untrained"), self_trained=scores("self"),
                cross_trained=scores("cross", own_before=before["m2"], own_after=after["cross"]),
                untrained_m2=scores("untrained_m2", own_before=before["m2"]),
            ),
            mode_baseline=ModeBaselines(**{t: mode(c, beh, ids) for t, beh in targets.items()}),
            gap=Gaps(**{t: gap(c, preds["self"], preds["cross"], beh, ids) for t, beh in targets.items()}),
        )

    eval_ood = split(ex["eval_ood"])
    eval_id = split(ex["eval_id"])
    result = PairResult(
        m1=a, m2=b, steps=c.steps_for(n_items), eval_ood=eval_ood, eval_id=eval_id, targets=dict(TARGETS),
        unchanged=Unchanged(self_trained=unchanged(before["m1"], after["self"]),
                            cross_trained=unchanged(before["m2"], after["cross"])),
    )
    context = PairContext(stages=st, key=key, m1=a, m2=b, examples=ex, beh_m1=beh_a, beh_m2=beh_b, beh_self=beh_self,
                          adapters=adapters, targets={**targets, "own_before": before["m2"]})
    return result, context
