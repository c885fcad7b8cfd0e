"""The experiment protocol and registry: an experiment is a function of the pair's context returning its result.

Experiments registered here run on the primary pair, in registration order, after self vs cross. Their
results go to `PairResult.experiments[name]` (decoded through `selfsim.results.RESULT_TYPES`) and their
report section, if given, to `selfsim.report.SECTIONS`: one `register` call adds all three.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from selfsim import report, results
from selfsim.behavior import BehaviorTable
from selfsim.errors import SelfsimError
from selfsim.examples import Example
from selfsim.study.config import StudyConfig
from selfsim.study.stages import Stages


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


@dataclass(frozen=True)
class Experiment:
    """A named experiment: `run(context)` returns an instance of `result`."""

    name: str
    run: Callable[[PairContext], Any]
    result: type[Any]


EXPERIMENTS: dict[str, Experiment] = {}


def register(name: str, run: Callable[[PairContext], Any], result: type[Any] | None = None,
             section: report.Section | None = None) -> Experiment:
    """Add experiment `name` to the primary pair's run order; `result` (default: the type registered with
    `@selfsim.results.result_type(name)`) is how results.json decodes it, `section` draws it in the report."""
    if result is None:
        if name not in results.RESULT_TYPES:
            raise SelfsimError(f"experiment {name!r} has no result type: pass result= or decorate one with @result_type({name!r})")
        result = results.RESULT_TYPES[name]
    results.RESULT_TYPES[name] = result
    if section is not None:
        report.SECTIONS[name] = section
    EXPERIMENTS[name] = Experiment(name, run, result)
    return EXPERIMENTS[name]
