"""The study's stage cache hands experiments BehaviorTables and labels finetunes with greedy values only."""

from __future__ import annotations

import dataclasses

import pytest

from selfsim.behavior import BEHAVIOR_FILE, BehaviorTable
from selfsim.errors import SelfsimError
from selfsim.io import write_jsonl
from selfsim.study.config import StudyConfig
from selfsim.study.stages import Stages
from selfsim.tasks import generate


def _row(object_id: str, sample: int, value: str) -> dict:
    return {"object_id": object_id, "task": "animals_long", "sample": sample, "temperature": 0.0 if sample < 0 else 1.0,
            "response": f"{value} runs", "clean": f"{value} runs", "properties": {"first_word": value},
            "compliant": {"first_word": True}, "finish": "eos", "truncated": False, "fingerprint": "f" * 16, "model": "m"}


def finished(path, rows: list[dict]) -> None:
    """Write a stage's output as a finished stage leaves it: the file and its completion mark (`Stages.stage`)."""
    write_jsonl(path, rows)
    (path.parent / f".{path.name}.done").touch()


def test_cached_behavior_is_a_table_and_labels_come_from_greedy_rows(tmp_path):
    examples = [dataclasses.replace(e, split="train") for e in generate("animals_long", "first_word", n=2, seed=0)]
    a, b = (e.object_id for e in examples)
    out = tmp_path / "behaviour" / "m"
    # Sampled rows (sample >= 0) say "zebra": a label or response read off them would be wrong.
    finished(out / BEHAVIOR_FILE, [_row(a, -1, "fox"), _row(a, 0, "zebra"), _row(b, -1, "gnu"), _row(b, 0, "zebra")])
    stages = Stages(StudyConfig.quick(), tmp_path, progress=False)
    table = stages.behavior("m", "no-model-is-loaded", examples)  # the stage is done: nothing loads or runs
    assert isinstance(table, BehaviorTable) and stages.timings == {}
    assert table.responses() == {a: "fox runs", b: "gnu runs"}
    assert sorted(table.long()["value"]) == ["fox", "gnu"]
    items = stages.labelled(examples, table)
    assert sorted((it.object_id, it.target) for it in items) == sorted([(a, "fox"), (b, "gnu")])


def test_conflicting_greedy_labels_stop_a_finetune_before_it_trains(tmp_path):
    examples = [dataclasses.replace(e, split="train") for e in generate("animals_long", "first_word", n=1, seed=0)]
    a = examples[0].object_id
    finished(tmp_path / "behaviour" / "m" / BEHAVIOR_FILE, [_row(a, -1, "fox"), _row(a, -1, "gnu")])
    stages = Stages(StudyConfig.quick(), tmp_path, progress=False)
    with pytest.raises(SelfsimError, match="conflicting labels"):
        stages.labelled(examples, stages.behavior("m", "no-model-is-loaded", examples))
