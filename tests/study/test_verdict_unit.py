"""The study's verdict unit draws its report parts (opening paragraphs, table, headline rows) from stored verdicts."""

from __future__ import annotations

from selfsim.results import EXPERIMENTS
from selfsim.study.experiments.verdict import VerdictStudy, headline, lead, section
from selfsim.verdict import (
    INTERCHANGE_COPY,
    INTERCHANGE_FINAL,
    INTERCHANGE_INPUT,
    INTERCHANGE_OBJECT,
    INTERCHANGE_OBJECT_COPY,
    INTERCHANGE_OBJECT_FINAL,
    NONE,
    TRANSPLANT,
    UNTRAINED,
    Evidence,
    verdicts,
)
from selfsim.verdict.localise import Localisation, Node, NodeScore


def stored(model: str, copy_effect: float) -> dict:
    rows = [Evidence(model, "second_character", e, NONE, 0.9, 0.8, 1.0, 60)
            for e in (INTERCHANGE_OBJECT, INTERCHANGE_OBJECT_COPY, INTERCHANGE_OBJECT_FINAL)]
    rows.append(Evidence(model, "second_character", INTERCHANGE_INPUT, NONE, 0.05, 0.0, 0.1, 50))
    rows += [Evidence(model, "second_character", site, c, copy_effect, copy_effect - 0.1, copy_effect + 0.1, 60,
                      raw=copy_effect, control_value=0.0)
             for site in (INTERCHANGE_COPY, INTERCHANGE_FINAL) for c in (UNTRAINED, TRANSPLANT)]
    ranking = (NodeScore(2, "mlp", 0.9, 0.8, 1.0, 0.95, 0.9, 1.0, 60, 0.05, 0.0, 0.1, 50),
               NodeScore(1, "attn", 0.1, 0.0, 0.2, 0.2, 0.1, 0.3, 60, 0.0, 0.0, 0.0, 50))
    loc = Localisation(model, Node(2, "mlp"), Node(1, "attn"), (0.8, 0.7, 0.9), ranking, tuple(rows[:4]), 60, 0,
                       {"move_copy_only": 0.9, "move_final_only": 0.9})
    (v,) = verdicts(rows, decisive=("interchange",))
    return {"model": model, "localisation": loc.to_dict(), "verdicts": [v.to_dict()]}


def test_the_report_opens_with_one_paragraph_per_model_with_its_verdict_and_numbers():
    result = VerdictStudy({"self": stored("m1+self", 0.6), "cross": stored("m2+cross", -0.05)},
                          {"self": "m1", "cross": "m2"})
    paragraphs = lead(result, None)  # type: ignore[arg-type]
    assert len(paragraphs) == 2
    assert "SUPPORTED" in paragraphs[0] and "+0.60 [+0.50, +0.70] over untrained" in paragraphs[0]
    assert "NOT SUPPORTED" in paragraphs[1] and "g localised at layers.2.mlp" in paragraphs[1]
    (title, table), = section(result, None)  # type: ignore[arg-type]
    assert list(table["verdict"]) == ["supported", "not supported"] and "Self-simulation verdict" in title
    rows = headline(result, None)  # type: ignore[arg-type]
    assert [r["selfsim toy"] for r in rows] == [0.6, -0.05]
    assert EXPERIMENTS["verdict"].lead is lead


def test_a_model_the_chain_cannot_run_on_is_reported_not_fatal():
    result = VerdictStudy({"self": stored("m1+self", 0.6), "cross": {"model": "cross (m2)", "error": "no donors"}},
                          {"self": "m1", "cross": "m2"})
    paragraphs = lead(result, None)  # type: ignore[arg-type]
    assert "SUPPORTED" in paragraphs[0] and paragraphs[1] == "cross model cross (m2): no verdict (INCONCLUSIVE): no donors"
    (_, table), = section(result, None)  # type: ignore[arg-type]
    assert list(table["model"]) == ["m1+self"] and len(headline(result, None)) == 1  # type: ignore[arg-type]
