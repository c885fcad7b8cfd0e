"""Compare a results.json written before the typed schema (issue 11) with one written after: every number equal.

Usage: python scripts/compare_study_results.py OLD/results.json NEW/results.json
The old layout is mapped onto the new one (`legacy_to_new`); the script prints how many numbers it compared
and exits 1 naming the first difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from selfsim.results import StudyResults

CONDITIONS = {"untrained": "untrained", "self": "self_trained", "cross": "cross_trained", "untrained_m2": "untrained_m2"}


def _split(pair: dict[str, Any], split: str) -> dict[str, Any]:
    return {
        "accuracy": {CONDITIONS[c]: v for c, v in pair["accuracy"][split].items()},
        "mode_baseline": pair["mode_baseline"][split],
        "gap": pair["gap"][split],
    }


def _pair(pair: dict[str, Any]) -> dict[str, Any]:
    new = {k: pair[k] for k in ("m1", "m2", "steps", "targets")}
    new.update(eval_ood=_split(pair, "eval_ood"), eval_id=_split(pair, "eval_id"),
               unchanged={"self_trained": pair["unchanged"]["self"], "cross_trained": pair["unchanged"]["cross"]})
    experiments: dict[str, Any] = {}
    if "scaling" in pair:
        experiments["scaling"] = {"rows": [
            {**{k: r[k] for k in ("condition", "n_train", "n_items", "steps", "vs_m1_before")},
             "vs_m1_after": {"wrong": r["wrong"], "exclude": r["exclude"]}} for r in pair["scaling"]]}
    if "full_control" in pair:
        experiments["full_control"] = {"rows": pair["full_control"]}
    if "calibration" in pair:
        experiments["calibration"] = {CONDITIONS[c]: v for c, v in pair["calibration"].items()}
    for name in ("shift", "interp"):
        if name in pair:
            experiments[name] = pair[name]
    new["experiments"] = experiments
    return new


def legacy_to_new(old: dict[str, Any]) -> dict[str, Any]:
    """The pre-issue-11 results.json dict in the typed schema's layout (StudyResults.to_dict())."""
    converted = {"config": old["config"], "paper": old["paper"], "spread": old["spread"],
                 "pairs": [_pair(p) for p in old["pairs"]]}
    return StudyResults.from_dict(converted).to_dict()


def numbers(obj: Any, path: str = "") -> dict[str, float]:
    """Every numeric leaf by its path."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in numbers(val, f"{path}.{key}").items()}
    if isinstance(obj, list):
        return {k: v for i, val in enumerate(obj) for k, v in numbers(val, f"{path}[{i}]").items()}
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return {path: obj}
    return {}


def compare(old: dict[str, Any], new: dict[str, Any]) -> int:
    """Number of numeric values compared; raises AssertionError naming the first path that differs."""
    mapped, got = numbers(legacy_to_new(old)), numbers(json.loads(json.dumps(new)))
    assert sorted(numbers(old).values()) == sorted(mapped.values()), "the mapping lost or invented numbers"
    assert mapped.keys() == got.keys(), f"paths differ: {sorted(mapped.keys() ^ got.keys())[:5]}"
    for path, value in mapped.items():
        assert got[path] == value, f"{path}: old {value} != new {got[path]}"
    assert legacy_to_new(old) == new, "non-numeric content differs"
    return len(mapped)


if __name__ == "__main__":
    old_results, new_results = (json.loads(Path(p).read_text()) for p in sys.argv[1:3])
    try:
        n = compare(old_results, new_results)
    except AssertionError as exc:
        print(f"DIFFERENT: {exc}")
        sys.exit(1)
    print(f"same numbers: {n} numeric values of {sys.argv[1]} equal those of {sys.argv[2]}")
