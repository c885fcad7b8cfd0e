"""Ground truth for the verdict: a planted self-simulator and a planted lookup model, built in the test."""

from __future__ import annotations

from collections import Counter

import pytest

from selfsim.errors import SelfsimError
from selfsim.verdict import planted, verdicts


def test_world_is_a_seeded_balanced_many_to_one_map_whose_property_is_not_the_answer() -> None:
    w = planted.world(48, 0)
    assert w == planted.world(48, 0) and w != planted.world(48, 1)
    assert Counter(w.answer.values()) == {a: 8 for a in planted.ANSWERS}
    assert Counter(w.answer[k] for k in w.trained) == {a: 4 for a in planted.ANSWERS}
    values = {planted.prop_value(a) for a in planted.ANSWERS}
    assert len(values) == 3 and not values & set(planted.ANSWERS)


def test_examples_quote_p_in_h_and_the_neutral_prompt() -> None:
    ex = planted.examples(planted.world(12, 0), per_key=2, seed=0)
    assert len(ex) == 24 and len({e.id for e in ex}) == 24
    content = ex[0].object_messages[0]["content"]
    assert content in ex[0].hypothetical_messages[0]["content"] and content in planted.neutral_content(content)
    assert ex[0].meta["key"] in content.split()


def test_bad_configs_raise() -> None:
    with pytest.raises(SelfsimError, match="valid kinds"):
        planted.PlantedConfig("mirror")
    with pytest.raises(SelfsimError, match="multiple of 6"):
        planted.PlantedConfig("self", n_keys=50)


@pytest.fixture(scope="module")
def models():
    return {kind: planted.build(planted.PlantedConfig(kind)) for kind in planted.KINDS}


@pytest.mark.slow
def test_the_self_simulator_answers_hypotheticals_about_keys_it_was_never_asked_about(models) -> None:
    for kind, subject in models.items():
        acc = planted.report(subject, planted.PlantedConfig(kind))
        print(kind, acc)
        # The untrained control only needs varied object answers to steer (steer() checks that).
        assert kind == "untrained" or acc["object"] >= 0.9
    s = planted.report(models["self"], planted.PlantedConfig("self"))
    assert s["hypothetical_held_out_keys"] >= 0.6  # chance is 1/3: g is reused, not relearned
    assert planted.report(models["lookup"], planted.PlantedConfig("lookup"))["hypothetical_held_out_keys"] >= 0.9


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="half separated (docs/verdict.md, 'Measured on the planted models'): the lookup model, its table shielded "
    "from colour-class directions, is called not supported (steering +0.01 [-0.03, 0.05] over random), but the "
    "self-simulator stays inconclusive (steering over untrained +0.12 [0.03, 0.20], needs ci_low > 0.10)",
)
def test_the_verdict_calls_both_planted_models_right(models) -> None:
    rows = planted.evidence(models)
    for r in rows:
        print(r)
    out = {v.model: v for v in verdicts(rows)}
    for v in out.values():
        print(v.model, v.verdict, v.reason)
    assert out["self"].verdict == "supported"
    assert out["lookup"].verdict == "not supported"
