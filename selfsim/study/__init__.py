"""The end-to-end study of `make demo`: the paper's four experiments on a pair of models.

For each ordered model pair (A plays M1, B plays M2) the study
1. generates toy-dialect examples: training tasks (finetuning data and held-out prompts of the same
   tasks) and held-out tasks (the paper's evaluation) (`prompts`);
2. collects both models' object-level behaviour, and their untrained hypothetical answers;
3. finetunes A on its own behaviour (self, giving A-ft), collects A-ft's behaviour, finetunes B on A-ft's
   behaviour on the training prompts (cross, as the paper's code), and scores every model's hypothetical
   answers against A-ft's current behaviour (primary), A's pre-finetune behaviour (secondary) and its own
   (`experiments.self_vs_cross`);
4. on the primary pair only, the registered experiments (`experiments.EXPERIMENTS`, in order): a
   data-scaling curve for cross-prediction, a full-finetuning control, calibration (T=1 samples, object
   level from A-ft), behaviour shift (A-ft further finetuned on B's object answers) and interpretability.
   Every finetune trains `epochs` passes over its items.
Every stage writes files under the run directory and is skipped when its output is already there
(`stages`), so an interrupted study resumes. `results.json` (typed by `selfsim.results`) holds every
number of the report and depends only on the config (same seed -> same bytes); timings live in
`manifest.json`. `run` holds the run order.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfsim.report import write_figure
    from selfsim.results import PAPER, TARGETS, PairResult, StudyResults
    from selfsim.study.config import StudyConfig
    from selfsim.study.prompts import calibration_examples
    from selfsim.study.run import Study
    from selfsim.study.scoring import spread, unchanged

# Imported on first use, so that `selfsim.study.config` (read when the CLI builds its flags) stays light.
_LAZY = {
    "write_figure": "selfsim.report", "PAPER": "selfsim.results", "TARGETS": "selfsim.results",
    "PairResult": "selfsim.results", "StudyResults": "selfsim.results", "StudyConfig": "selfsim.study.config",
    "calibration_examples": "selfsim.study.prompts", "Study": "selfsim.study.run", "spread": "selfsim.study.scoring",
    "unchanged": "selfsim.study.scoring",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'selfsim.study' has no attribute {name!r}")

__all__ = ["PAPER", "TARGETS", "PairResult", "Study", "StudyConfig", "StudyResults", "calibration_examples", "headline",
           "spread", "unchanged", "write_figure"]


def headline(pair: PairResult, split: str = "eval_ood", mode: str = "wrong", target: str = "m1_after",
             *, with_ci: bool = False) -> dict:
    """Micro-averaged (ALL/ALL) accuracy per condition and of the mode baseline (see `PairResult.headline`)."""
    return pair.headline(split, mode, target, with_ci=with_ci)

