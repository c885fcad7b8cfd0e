"""A plugin module as a user writes one: a property and a study experiment, each registered in one place.

`tests/study/test_plugins.py` names it in a study config's `plugins` (with tests/plugins on PYTHONPATH) and
follows both into results.json, the report rebuilt in a fresh process and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from selfsim import properties
from selfsim.results import PairResult, StudyResults
from selfsim.study.experiments import PairContext, register
from selfsim.study.scoring import unchanged


# --- a property: the parity of the first word's length, askable in the toy dialect as "first word parity"
def first_word_parity(response: str, example: Any = None) -> str | None:
    """'even' or 'odd' number of characters in the cleaned response's first word; None for an empty response."""
    words = properties.clean(response).split()
    return ("even" if len(words[0]) % 2 == 0 else "odd") if words else None


properties.register(properties.Property(
    "first_word_parity",
    'Does the first word of the response you gave have an even or an odd number of letters? Respond only with "even" or "odd".',
    value=first_word_parity, shape="parity", answers=("sequence",), toy_noun="first word parity",
))


# --- an experiment: how often M1ft still gives M1's pre-finetune answer on the held-out tasks
@dataclass(frozen=True)
class Agreement:
    """Share of held-out-task prompts on which M1ft answers as M1 did before finetuning."""

    share: float
    n_prompts: int


def agreement(ctx: PairContext) -> Agreement:
    """M1 before vs after self-finetuning, on the held-out-task prompts."""
    before, after = (ctx.targets[t][ctx.targets[t]["object_id"].isin(ctx.ood_ids)] for t in ("m1_before", "m1_after"))
    return Agreement(share=unchanged(before, after), n_prompts=len(ctx.ood_ids))


def section(result: Agreement, pair: PairResult) -> list[tuple[str, Any]]:
    """One table."""
    return [("Plugin: M1 / M1ft agreement", pd.DataFrame([{"share": result.share, "prompts": result.n_prompts}]))]


def headline(result: Agreement, results: StudyResults) -> list[dict[str, Any]]:
    """One headline row."""
    return [{"quantity": "plugin: M1 / M1ft agreement", "selfsim toy": result.share}]


def notes(result: Agreement, results: StudyResults) -> list[str]:
    """One note."""
    return [f"Plugin note: M1ft kept M1's answer on {result.n_prompts} held-out prompts' share {result.share:.4f}."]


register("agreement", agreement, Agreement, section, headline=headline, notes=notes)
