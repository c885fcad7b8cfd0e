"""The experiment protocol: an experiment is a function of the pair's context returning its result dataclass.

Experiments registered here (`selfsim.results.EXPERIMENTS`) run on the primary pair, in registration order,
after self vs cross. One `register` call names the run function, the result type (how results.json stores
and decodes `PairResult.experiments[name]`), and the report section, headline rows and notes drawn from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from selfsim.behavior import BehaviorTable
from selfsim.errors import SelfsimError
from selfsim.examples import Example
from selfsim.results import EXPERIMENTS, Experiment, PairResult, StudyResults
from selfsim.study.config import StudyConfig
from selfsim.study.stages import Stages

# What an experiment may add to the report, each from its result: titled figures or tables, headline rows
# ({"quantity": ..., "selfsim toy": ..., "95% CI low": ..., "95% CI high": ..., "paper (Llama-3.1-70B)": ...}), notes.
Section = Callable[[Any, PairResult], "list[tuple[str, Any]]"]
Headline = Callable[[Any, StudyResults], "list[dict[str, Any]]"]
Notes = Callable[[Any, StudyResults], "list[str]"]


@dataclass
class PairContext:
    """What self vs cross leaves behind for one ordered pair: models, tables and adapters.

    `beh_*` are greedy behaviour tables (`selfsim.behavior.BehaviorTable`); `targets` holds long
    tables: m1_after (M1ft on the evaluation prompts), m1_before (M1) and own_before (M2 before finetuning).
    """

    stages: Stages
    key: str  # the pair's directory under adapters/, predictions/, ...
    m1: str
    m2: str
    examples: dict[str, list[Example]]
    beh_m1: BehaviorTable
    beh_m2: BehaviorTable
    beh_self: BehaviorTable
    adapters: dict[str, Path]
    targets: dict[str, pd.DataFrame]

    @property
    def config(self) -> StudyConfig:
        """The study's config."""
        return self.stages.config

    @property
    def evals(self) -> list[Example]:
        """Every evaluation prompt (held-out prompts of training tasks, then held-out tasks)."""
        return self.examples["eval_id"] + self.examples["eval_ood"]

    @property
    def ood_ids(self) -> set[str]:
        """Object ids of the held-out-task prompts, where the extra experiments are scored."""
        return {e.object_id for e in self.examples["eval_ood"]}


def register(name: str, run: Callable[[PairContext], Any], result: type[Any], section: Section | None = None, *,
             headline: Headline | None = None, notes: Notes | None = None, lead: Notes | None = None) -> Experiment:
    """Add experiment `name` to the primary pair's run order: `run(context)` returns a `result` dataclass (how
    results.json stores and decodes it); `section`, `headline`, `notes` and `lead` draw it in the report (see
    `selfsim.results.Experiment`). A taken name is a SelfsimError."""
    if not (isinstance(result, type) and dataclasses.is_dataclass(result)):
        raise SelfsimError(f"experiment {name!r}: result must be a dataclass type, got {result!r}")
    module = getattr(run, "__module__", None) or "__main__"
    return EXPERIMENTS.register(name, Experiment(name, run, result, module, section, headline, notes, lead))
