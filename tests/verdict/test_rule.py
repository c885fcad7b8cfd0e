"""The verdict's decision rule on hand-made evidence rows (no model needed): each outcome, each gate."""

from __future__ import annotations

import pytest

from selfsim.errors import SelfsimError
from selfsim.verdict import (
    EDIT_DRIFT,
    EDIT_OBJECT,
    EDIT_RETAINED,
    EDIT_TRANSFER,
    INTERCHANGE,
    INTERCHANGE_COPY,
    INTERCHANGE_FINAL,
    INTERCHANGE_INPUT,
    INTERCHANGE_OBJECT,
    INTERCHANGE_OBJECT_COPY,
    INTERCHANGE_OBJECT_FINAL,
    MAX_DRIFT,
    MAX_INPUT_CARRY,
    MIN_MOVE,
    MIN_N,
    MIN_RETAINED,
    NONE,
    RANDOM,
    REJECT,
    STEERING,
    SUPPORT,
    TRANSPLANT,
    UNTRAINED,
    Evidence,
    Verdict,
    bootstrap_ci,
    decide,
    decisive_tests,
    excess,
    rate,
    verdicts,
)


def row(experiment: str, control: str, effect: float, low: float, high: float, n: int = 100, model: str = "m") -> Evidence:
    return Evidence(model, "first_character", experiment, control, effect, low, high, n)


def both(experiment: str, effect: float, low: float, high: float, n: int = 100, model: str = "m") -> list[Evidence]:
    return [row(experiment, c, effect, low, high, n, model) for c in (UNTRAINED, TRANSPLANT)]


MOVES = row(INTERCHANGE_OBJECT, NONE, 0.95, 0.9, 1.0)
NO_CARRY = row(INTERCHANGE_INPUT, NONE, 0.05, 0.0, 0.12)
POWER = [row(INTERCHANGE_OBJECT_COPY, NONE, 0.9, 0.8, 1.0), row(INTERCHANGE_OBJECT_FINAL, NONE, 0.9, 0.8, 1.0)]
STRONG = (0.6, 0.5, 0.7)
NULL = (0.0, -0.05, 0.05)
EDIT_GATES = [row(EDIT_OBJECT, NONE, 0.9, 0.8, 1.0), row(EDIT_RETAINED, NONE, 0.97, 0.95, 0.99),
              row(EDIT_DRIFT, NONE, -0.03, -0.08, 0.02)]


def test_interchange_decides_by_default_until_edit_transfer_is_validated() -> None:
    assert decisive_tests(False) == (INTERCHANGE,)
    assert decisive_tests(True) == (INTERCHANGE, EDIT_TRANSFER)
    # Edit transfer rows alone decide nothing while it is not validated.
    assert decide([*EDIT_GATES, *both(EDIT_TRANSFER, *STRONG)], decisive=(INTERCHANGE,))[0] == "inconclusive"


def test_supported_when_the_copy_site_clears_support_over_both_controls() -> None:
    rows = [MOVES, NO_CARRY, *POWER, *both(INTERCHANGE_COPY, *STRONG), *both(INTERCHANGE_FINAL, *NULL)]
    verdict, reason = decide(rows, decisive=(INTERCHANGE,))
    assert verdict == "supported"
    assert "interchange_copy supports" in reason


def test_not_supported_needs_every_site_to_reject() -> None:
    lookup = [MOVES, NO_CARRY, *POWER, *both(INTERCHANGE_COPY, *NULL), *both(INTERCHANGE_FINAL, *NULL)]
    assert decide(lookup, decisive=(INTERCHANGE,))[0] == "not supported"
    straddle = [MOVES, NO_CARRY, *POWER, *both(INTERCHANGE_COPY, *NULL), *both(INTERCHANGE_FINAL, 0.15, 0.05, 0.25)]
    assert decide(straddle, decisive=(INTERCHANGE,))[0] == "inconclusive"


def test_support_needs_both_controls_and_either_control_can_reject() -> None:
    # The transplant also follows (the intervention writes the value itself): no excess over it.
    rows = [MOVES, NO_CARRY, *POWER, row(INTERCHANGE_COPY, UNTRAINED, *STRONG), row(INTERCHANGE_COPY, TRANSPLANT, *NULL)]
    assert decide(rows, decisive=(INTERCHANGE,))[0] == "not supported"
    missing = [MOVES, NO_CARRY, *POWER, row(INTERCHANGE_COPY, UNTRAINED, *STRONG)]
    verdict, reason = decide(missing, decisive=(INTERCHANGE,))
    assert verdict == "inconclusive" and "no row over transplant" in reason


def test_thresholds_are_strict_at_their_edges() -> None:
    at_support = [MOVES, NO_CARRY, *POWER, *both(INTERCHANGE_COPY, 0.3, SUPPORT, 0.4)]
    assert decide(at_support, decisive=(INTERCHANGE,))[0] == "inconclusive"
    at_reject = [MOVES, NO_CARRY, *POWER, *both(INTERCHANGE_COPY, 0.0, -0.1, REJECT)]
    assert decide(at_reject, decisive=(INTERCHANGE,))[0] == "inconclusive"
    just_below = [MOVES, NO_CARRY, *POWER, *both(INTERCHANGE_COPY, 0.0, -0.1, REJECT - 0.01)]
    assert decide(just_below, decisive=(INTERCHANGE,))[0] == "not supported"


def test_object_gate_makes_interchange_inconclusive() -> None:
    weak = row(INTERCHANGE_OBJECT, NONE, 0.7, MIN_MOVE - 0.01, 0.8)
    for site_rows in (both(INTERCHANGE_COPY, *STRONG), both(INTERCHANGE_COPY, *NULL)):
        verdict, reason = decide([weak, NO_CARRY, *POWER, *site_rows], decisive=(INTERCHANGE,))
        assert verdict == "inconclusive" and "gate failed: interchange_object" in reason
    verdict, reason = decide([NO_CARRY, *POWER, *both(INTERCHANGE_COPY, *STRONG)], decisive=(INTERCHANGE,))
    assert verdict == "inconclusive" and "no interchange_object row" in reason


def test_a_node_that_carries_p_s_text_is_not_g() -> None:
    # Patching an input carrier hands any reader P''s text: the neutral prompt follows it too.
    carrier = row(INTERCHANGE_INPUT, NONE, MAX_INPUT_CARRY + 0.01, 0.2, 0.45)
    verdict, reason = decide([MOVES, carrier, *POWER, *both(INTERCHANGE_COPY, *STRONG)], decisive=(INTERCHANGE,))
    assert verdict == "inconclusive" and "gate failed: interchange_input" in reason
    at_edge = row(INTERCHANGE_INPUT, NONE, MAX_INPUT_CARRY, 0.2, 0.4)
    assert decide([MOVES, at_edge, *POWER, *both(INTERCHANGE_COPY, *STRONG)], decisive=(INTERCHANGE,))[0] == "supported"
    assert decide([MOVES, *POWER, *both(INTERCHANGE_COPY, *STRONG)], decisive=(INTERCHANGE,))[0] == "inconclusive"


def test_a_site_without_power_can_neither_support_nor_reject() -> None:
    # Amendment 2: the patch at P's copy alone barely moves the object answer, so H ignoring it says nothing.
    weak_copy = [row(INTERCHANGE_OBJECT_COPY, NONE, 0.03, 0.01, 0.05), POWER[1]]
    null = [MOVES, NO_CARRY, *weak_copy, *both(INTERCHANGE_COPY, *NULL), *both(INTERCHANGE_FINAL, *NULL)]
    verdict, reason = decide(null, decisive=(INTERCHANGE,))
    assert verdict == "inconclusive" and "gate failed: interchange_object_copy" in reason
    strong = [MOVES, NO_CARRY, *weak_copy, *both(INTERCHANGE_COPY, *STRONG)]
    assert decide(strong, decisive=(INTERCHANGE,))[0] == "inconclusive"
    # the other site, powered, still decides
    final_supports = [MOVES, NO_CARRY, *weak_copy, *both(INTERCHANGE_COPY, *NULL), *both(INTERCHANGE_FINAL, *STRONG)]
    assert decide(final_supports, decisive=(INTERCHANGE,))[0] == "supported"
    missing = [MOVES, NO_CARRY, *both(INTERCHANGE_COPY, *NULL)]
    assert decide(missing, decisive=(INTERCHANGE,))[0] == "inconclusive"


def test_few_items_make_a_row_inconclusive() -> None:
    rows = [MOVES, NO_CARRY, *POWER, *both(INTERCHANGE_COPY, *STRONG, n=MIN_N - 1)]
    assert decide(rows, decisive=(INTERCHANGE,))[0] == "inconclusive"
    gate = row(INTERCHANGE_OBJECT, NONE, 0.95, 0.9, 1.0, n=MIN_N - 1)
    assert decide([gate, NO_CARRY, *POWER, *both(INTERCHANGE_COPY, *STRONG)], decisive=(INTERCHANGE,))[0] == "inconclusive"


@pytest.mark.parametrize("gate", [
    row(EDIT_OBJECT, NONE, 0.7, MIN_MOVE - 0.05, 0.8),
    row(EDIT_RETAINED, NONE, MIN_RETAINED - 0.01, 0.8, 0.95),
    row(EDIT_DRIFT, NONE, -(MAX_DRIFT + 0.01), -0.2, 0.0),
    row(EDIT_DRIFT, NONE, MAX_DRIFT + 0.01, 0.0, 0.2),
])
def test_each_edit_gate_makes_edit_transfer_inconclusive(gate: Evidence) -> None:
    gates = [g for g in EDIT_GATES if g.experiment != gate.experiment] + [gate]
    assert decide([*EDIT_GATES, *both(EDIT_TRANSFER, *STRONG)], decisive=(EDIT_TRANSFER,))[0] == "supported"
    verdict, reason = decide([*gates, *both(EDIT_TRANSFER, *STRONG)], decisive=(EDIT_TRANSFER,))
    assert verdict == "inconclusive" and f"gate failed: {gate.experiment}" in reason


def test_with_edit_transfer_decisive_the_tests_must_agree() -> None:
    both_decisive = (INTERCHANGE, EDIT_TRANSFER)
    agree = [MOVES, NO_CARRY, *POWER, *both(INTERCHANGE_COPY, *STRONG), *EDIT_GATES, *both(EDIT_TRANSFER, *STRONG)]
    assert decide(agree, decisive=both_decisive)[0] == "supported"
    disagree = [MOVES, NO_CARRY, *POWER, *both(INTERCHANGE_COPY, *STRONG), *EDIT_GATES, *both(EDIT_TRANSFER, *NULL)]
    assert decide(disagree, decisive=both_decisive)[0] == "inconclusive"
    null = [MOVES, NO_CARRY, *POWER, *both(INTERCHANGE_COPY, *NULL), *EDIT_GATES, *both(EDIT_TRANSFER, *NULL)]
    assert decide(null, decisive=both_decisive)[0] == "not supported"


def test_diagnostics_never_decide() -> None:
    steer = [row(STEERING, RANDOM, 0.9, 0.85, 0.95), row(STEERING, UNTRAINED, 0.9, 0.85, 0.95)]
    assert decide(steer, decisive=(INTERCHANGE,))[0] == "inconclusive"
    rows = [MOVES, NO_CARRY, *POWER, *both(INTERCHANGE_COPY, *NULL), *steer]
    assert decide(rows, decisive=(INTERCHANGE,))[0] == "not supported"


def test_unknown_decisive_test_is_one_line_error() -> None:
    with pytest.raises(SelfsimError, match="valid tests are"):
        decide([MOVES, NO_CARRY], decisive=("steering",))


def test_verdicts_group_by_model_and_property_and_round_trip() -> None:
    rows = [MOVES, NO_CARRY, *POWER, *both(INTERCHANGE_COPY, *STRONG), row(INTERCHANGE_OBJECT, NONE, 0.95, 0.9, 1.0, model="n"),
            row(INTERCHANGE_INPUT, NONE, 0.05, 0.0, 0.12, model="n"),
            *(row(p.experiment, NONE, 0.9, 0.8, 1.0, model="n") for p in POWER), *both(INTERCHANGE_COPY, *NULL, model="n")]
    out = verdicts(rows, decisive=(INTERCHANGE,))
    assert [(v.model, v.verdict) for v in out] == [("m", "supported"), ("n", "not supported")]
    assert Verdict.from_dict(out[0].to_dict()) == out[0]
    assert Evidence.from_dict(rows[1].to_dict()) == rows[1]


def test_excess_and_rate_rows_match_hand_computation() -> None:
    model = [1.0, 1.0, 0.0, 1.0]
    control = [0.0, 1.0, 0.0, 0.0]
    e = excess("m", "p", INTERCHANGE_COPY, UNTRAINED, model, control)
    assert (e.effect, e.raw, e.control_value, e.n) == (0.5, 0.75, 0.25, 4)
    assert e.ci_low <= 0.5 <= e.ci_high
    g = rate("m", "p", INTERCHANGE_OBJECT, [1.0] * 30)
    assert (g.effect, g.ci_low, g.ci_high, g.control) == (1.0, 1.0, 1.0, NONE)
    with pytest.raises(SelfsimError, match="paired"):
        excess("m", "p", INTERCHANGE_COPY, UNTRAINED, model, control[:3])


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
