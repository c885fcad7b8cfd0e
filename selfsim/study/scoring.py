"""Scores of hypothetical answers against behaviour tables, in both non-compliance modes, as result types."""

from __future__ import annotations

import statistics

import pandas as pd

from selfsim.results import MODES, Gap, Modes, PairResult, Records, Spread
from selfsim.study.config import StudyConfig


def accuracy(config: StudyConfig, predictions: pd.DataFrame, behavior: pd.DataFrame, ids: set[str]) -> Modes:
    """Hypothetical accuracy (both non-compliance modes) of predictions against a behaviour table on prompts `ids`."""
    from selfsim.evaluate import hypothetical_accuracy, score, to_records

    scored = score(predictions[predictions["object_id"].isin(ids)], behavior[behavior["object_id"].isin(ids)])
    return Modes(**{
        mode: to_records(hypothetical_accuracy(scored, noncompliant=mode, n_boot=config.n_boot, seed=config.seed))
        for mode in MODES
    })


def mode(config: StudyConfig, behavior: pd.DataFrame, ids: set[str]) -> Modes:
    """Mode baseline on the prompts `ids` of a behaviour table, in both non-compliance modes."""
    from selfsim.evaluate import mode_baseline, to_records

    rows = behavior[behavior["object_id"].isin(ids)]
    return Modes(**{
        m: to_records(mode_baseline(rows, noncompliant=m, n_boot=config.n_boot, seed=config.seed)) for m in MODES
    })


def gap(config: StudyConfig, preds_self: pd.DataFrame, preds_cross: pd.DataFrame, behavior: pd.DataFrame,
        ids: set[str]) -> Gap:
    """Self - cross accuracy gap (ALL/ALL) with a paired bootstrap CI over prompts, both non-compliance modes."""
    from selfsim.evaluate import paired_gap, score, to_records

    beh = behavior[behavior["object_id"].isin(ids)]
    scored = [score(p[p["object_id"].isin(ids)], beh) for p in (preds_self, preds_cross)]
    return Gap(**{
        m: to_records(pd.DataFrame([paired_gap(*scored, noncompliant=m, n_boot=config.n_boot, seed=config.seed)]))[0]
        for m in MODES
    })


def unchanged(before: pd.DataFrame, after: pd.DataFrame) -> float:
    """Share of object-level answers a finetune left unchanged (on the prompts both tables hold)."""
    from selfsim.evaluate import unchanged_share

    return float(unchanged_share(before, after))


def spread(pairs: list[PairResult]) -> Spread:
    """Self - cross gap per ordered pair (held-out tasks, ALL/ALL, vs M1ft) with its paired CI, and the
    mean and sample std over ordered pairs."""
    rows: Records = [p.eval_ood.gap.m1_after.wrong for p in pairs]
    gaps = [r["gap"] for r in rows if r["gap"] is not None]
    return Spread(
        gaps=gaps,
        ci=[[r["ci_low"], r["ci_high"]] for r in rows if r["gap"] is not None],
        mean=statistics.fmean(gaps) if gaps else None,
        std=statistics.stdev(gaps) if len(gaps) > 1 else None,
    )
