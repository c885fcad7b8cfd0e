"""The verdict's decision rule on hand-made evidence (no model needed)."""

from __future__ import annotations

import pytest

from selfsim.errors import SelfsimError
from selfsim.verdict import (
    MARGIN,
    MIN_N,
    MIN_OBJECT_SHIFT,
    PATCHING,
    RANDOM,
    STEERING,
    STEERING_OBJECT,
    TRANSPLANT,
    UNTRAINED,
    Evidence,
    Verdict,
    bootstrap_ci,
    decide,
    verdicts,
)


def row(experiment: str, control: str, effect: float, low: float, high: float, n: int = 100, model: str = "m") -> Evidence:
    return Evidence(model, "second_character", experiment, control, effect, low, high, n)


POWERED = row(STEERING_OBJECT, RANDOM, 0.8, 0.7, 0.9)


def test_supported_when_every_decisive_effect_clears_the_margin() -> None:
    rows = [POWERED, row(STEERING, RANDOM, 0.6, 0.5, 0.7), row(STEERING, UNTRAINED, 0.5, 0.4, 0.6),
            row(PATCHING, TRANSPLANT, 0.4, 0.3, 0.5)]
    assert decide(rows)[0] == "supported"


def test_not_supported_when_steering_lies_below_the_margin_even_if_patching_is_strong() -> None:
    # The lookup model: patching transplants the input's identity, steering by answer class does nothing.
    rows = [POWERED, row(STEERING, RANDOM, 0.0, -0.05, 0.05), row(PATCHING, TRANSPLANT, 0.9, 0.85, 0.95)]
    verdict, reason = decide(rows)
    assert verdict == "not supported"
    assert "steering over random_direction" in reason


def test_inconclusive_when_a_ci_straddles_the_margin() -> None:
    rows = [POWERED, row(STEERING, RANDOM, MARGIN, MARGIN - 0.1, MARGIN + 0.1)]
    assert decide(rows)[0] == "inconclusive"


def test_inconclusive_when_the_direction_does_not_move_the_object_answer() -> None:
    # No power: even a clear null in the hypothetical run says nothing.
    weak = row(STEERING_OBJECT, RANDOM, 0.1, MIN_OBJECT_SHIFT - 0.15, 0.3)
    assert decide([weak, row(STEERING, RANDOM, 0.0, -0.02, 0.02)])[0] == "inconclusive"
    assert decide([row(STEERING, RANDOM, 0.6, 0.5, 0.7)])[0] == "inconclusive"


def test_inconclusive_on_few_prompts_and_without_the_required_row() -> None:
    assert decide([POWERED, row(STEERING, RANDOM, 0.6, 0.5, 0.7, n=MIN_N - 1)])[0] == "inconclusive"
    assert decide([POWERED, row(PATCHING, TRANSPLANT, 0.6, 0.5, 0.7)])[0] == "inconclusive"


def test_untrained_control_can_veto_support() -> None:
    # A direction that makes ANY model's hypothetical answer follow (e.g. it writes the letter itself).
    rows = [POWERED, row(STEERING, RANDOM, 0.6, 0.5, 0.7), row(STEERING, UNTRAINED, 0.0, -0.1, 0.05)]
    assert decide(rows)[0] == "not supported"


def test_verdicts_group_by_model_and_property_and_round_trip() -> None:
    rows = [POWERED, row(STEERING, RANDOM, 0.6, 0.5, 0.7),
            row(STEERING_OBJECT, RANDOM, 0.8, 0.7, 0.9, model="n"), row(STEERING, RANDOM, 0.0, -0.05, 0.04, model="n")]
    out = verdicts(rows)
    assert [(v.model, v.verdict) for v in out] == [("m", "supported"), ("n", "not supported")]
    assert Verdict.from_dict(out[0].to_dict()) == out[0]
    assert Evidence.from_dict(rows[1].to_dict()) == rows[1]


def test_bad_evidence_raises_one_line_errors() -> None:
    with pytest.raises(SelfsimError, match="ci_low"):
        row(STEERING, RANDOM, 0.5, 0.6, 0.4)
    with pytest.raises(SelfsimError, match="lacks"):
        Evidence.from_dict({"model": "m"})
    with pytest.raises(SelfsimError, match="valid verdicts"):
        Verdict.from_dict({"model": "m", "property": "p", "verdict": "maybe"})


def test_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    values = [1.0] * 30 + [0.0] * 10
    mean, low, high = bootstrap_ci(values, seed=3)
    assert (mean, low, high) == bootstrap_ci(values, seed=3)
    assert low < mean == 0.75 < high
    assert bootstrap_ci([0.2] * 5)[1:] == (pytest.approx(0.2), pytest.approx(0.2))
