"""results.json's typed schema: a JSON round trip, the typed readers and one-line errors on bad files."""

from __future__ import annotations

import json

import pytest

from selfsim.errors import SelfsimError
from selfsim.results import (
    Conditions,
    Gap,
    Gaps,
    ModeBaselines,
    Modes,
    PairResult,
    SplitResult,
    Spread,
    StudyResults,
    TargetScores,
    Unchanged,
    load_results,
)
from selfsim.study.experiments.calibration import Calibration
from selfsim.study.experiments.full_control import FullControl, FullControlRow
from selfsim.study.experiments.interp import Interp
from selfsim.study.experiments.scaling import Scaling, ScalingRow
from selfsim.study.experiments.shift import Shift


def table(acc: float) -> list[dict]:
    return [{"task": "t1", "property": "first_word", "accuracy": acc / 2, "ci_low": None, "ci_high": 1.0, "n": 3},
            {"task": "ALL", "property": "ALL", "accuracy": acc, "ci_low": acc - 0.1, "ci_high": acc + 0.1, "n": 7}]


def modes(acc: float) -> Modes:
    return Modes(wrong=table(acc), exclude=table(acc + 0.05))


def split(base: float) -> SplitResult:
    m1 = dict(m1_after=modes(base), m1_before=modes(base - 0.1))
    return SplitResult(
        accuracy=Conditions(untrained=TargetScores(**m1), self_trained=TargetScores(m1_after=modes(0.6), m1_before=modes(0.3)),
                            cross_trained=TargetScores(**m1, own_before=modes(0.7), own_after=modes(0.8)),
                            untrained_m2=TargetScores(**m1, own_before=modes(0.65))),
        mode_baseline=ModeBaselines(m1_after=modes(0.35), m1_before=modes(0.33)),
        gap=Gaps(m1_after=Gap(wrong={"gap": 0.1, "ci_low": 0.0, "ci_high": 0.2, "n": 7}, exclude={"gap": 0.2}),
                 m1_before=Gap(wrong={"gap": -0.1, "ci_low": -0.3, "ci_high": 0.1, "n": 7}, exclude={"gap": None})),
    )


def example_results() -> StudyResults:
    primary = PairResult(m1="toy-m1", m2="toy-m2", steps=41, eval_ood=split(0.4), eval_id=split(0.5),
                         unchanged=Unchanged(self_trained=0.9, cross_trained=0.8), experiments={
        "scaling": Scaling(rows=[ScalingRow("cross", 30, 60, 11, modes(0.3), modes(0.2))]),
        "full_control": FullControl(rows=[FullControlRow("self", 60, 11, modes(0.5), modes(0.4)),
                                          FullControlRow("cross", 60, 11, modes(0.3), modes(0.2), vs_own_before=modes(0.6))]),
        "calibration": Calibration(untrained={"mad": 20.0, "pairs": []}, self_trained={"mad": 10.0},
                                   cross_trained={"mad": 15.0}),
        "shift": Shift(changed=[{"task": "ALL", "property": "ALL", "accuracy_new": 0.3}], unchanged_share=0.7),
        "interp": Interp(patching={"rows": [1, 2]}, lens=[{"layer": 0, "p": 0.5}]),
    })
    other = PairResult(m1="toy-m2", m2="toy-m1", steps=41, eval_ood=split(0.45), eval_id=split(0.55),
                       unchanged=Unchanged(self_trained=0.85, cross_trained=0.75))
    return StudyResults(config={"name": "t", "models": ["toy-m1", "toy-m2"]}, pairs=[primary, other],
                        spread=Spread(gaps=[0.1, 0.2], ci=[[0.0, 0.2], [0.1, 0.3]], mean=0.15, std=0.07))


def test_json_round_trip_gives_the_same_results(tmp_path):
    results = example_results()
    data = json.loads(json.dumps(results.to_dict()))
    assert StudyResults.from_dict(data) == results
    (tmp_path / "results.json").write_text(json.dumps(data))
    loaded = load_results(tmp_path)
    assert loaded == results and isinstance(loaded.primary.experiment(Scaling).rows[0], ScalingRow)
    assert loaded.pairs[1].experiment(Scaling) is None


def test_typed_readers():
    pair = example_results().primary
    h = pair.headline()
    assert h == {"untrained": 0.4, "self_trained": 0.6, "cross_trained": 0.4, "untrained_m2": 0.4,
                 "mode_baseline": 0.35, "cross_vs_own": 0.7}
    assert pair.headline("eval_id", "exclude", "m1_before", with_ci=True)["self_trained"] == pytest.approx((0.35, 0.25, 0.45))
    with pytest.raises(SelfsimError, match="unknown target 'own'; valid: m1_after, m1_before"):
        pair.headline(target="own")
    with pytest.raises(SelfsimError, match="unknown mode 'ignore'; valid: wrong, exclude"):
        pair.eval_ood.gap.m1_after.of("ignore")
    with pytest.raises(SelfsimError, match="no accuracy against target 'own_after'; valid: m1_after, m1_before, own_before"):
        pair.eval_ood.accuracy.untrained_m2.of("own_after")


def test_bad_files_name_the_problem(tmp_path):
    data = example_results().to_dict()
    del data["pairs"][0]["eval_id"]
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(SelfsimError, match=r"results\.json: results\.pairs\[0\] is missing key\(s\) \['eval_id'\]"):
        load_results(tmp_path)
    data = example_results().to_dict()
    data["pairs"][0]["accuracy"] = {}
    with pytest.raises(SelfsimError, match=r"results\.pairs\[0\] has unknown key\(s\) \['accuracy'\]; valid: m1, m2"):
        StudyResults.from_dict(data)
    data = example_results().to_dict()
    data["pairs"][0]["experiments"]["probing"] = {}
    with pytest.raises(SelfsimError, match="results.json holds experiment 'probing', which no loaded module registers; "
                                           "name its module in the config's plugins .registered experiments: scaling, "
                                           "full_control, calibration"):
        StudyResults.from_dict(data)
    data["pairs"][0]["origins"] = {"probing": "lab.probing"}
    with pytest.raises(SelfsimError, match="experiment 'probing' written by module 'lab.probing'"):
        StudyResults.from_dict(data)
    data = example_results().to_dict()
    data["config"]["plugins"] = ["lab.not_installed"]
    with pytest.raises(SelfsimError, match=r"^plugin module 'lab.not_installed' cannot be imported \(No module named 'lab'\)"):
        StudyResults.from_dict(data)
    data["config"]["plugins"] = ["lab/probing.py"]
    with pytest.raises(SelfsimError, match="plugin 'lab/probing.py' is not a module name"):
        StudyResults.from_dict(data)
    with pytest.raises(SelfsimError, match="holds no results.json: run `selfsim study"):
        load_results(tmp_path / "nowhere")


def test_a_results_file_of_the_old_layout_says_how_to_rewrite_it(tmp_path):
    data = example_results().to_dict()
    data["pairs"][0]["accuracy"] = {"eval_ood": {}}
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(SelfsimError, match="predates the typed results schema; rerun `selfsim study --out"):
        load_results(tmp_path)
