"""The end-to-end study on the embedded toy models (reduced size), run twice with one seed (one worker, then two)."""

from pathlib import Path

import pytest

from selfsim.errors import SelfsimError
from selfsim.examples import load_examples
from selfsim.results import load_results
from selfsim.study import Study, StudyConfig, headline
from selfsim.study.experiments.calibration import Calibration
from selfsim.study.experiments.full_control import FullControl
from selfsim.study.experiments.scaling import Scaling
from selfsim.study.experiments.shift import Shift
from selfsim.study.experiments.verdict import VerdictStudy
from selfsim.verdict import VERDICTS

pytestmark = pytest.mark.slow

TINY = dict(n_train=40, n_eval=24, scaling=(20,), full_control=(20,), calibration_prompts=8,
            calibration_samples=4, epochs=0.6, batch_size=8, n_boot=50)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("study")
    config = StudyConfig.quick(**TINY)
    for name, workers in (("a", 1), ("b", 2)):
        Study(config, base / name, progress=False, workers=workers).run()
    return base / "a", base / "b"


def test_same_seed_gives_byte_identical_results(runs):
    """Also with the second pair in a worker process (run b): its stages' seconds come back to the manifest."""
    import json

    a, b = runs
    assert (a / "results.json").read_bytes() == (b / "results.json").read_bytes()
    stages = [json.loads((run / "manifest.json").read_text())["timings_s"].keys() for run in runs]
    assert stages[0] == stages[1] and "finetune toy-m2__toy-m1/self" in stages[1]


def test_workers_must_be_positive(tmp_path):
    with pytest.raises(SelfsimError, match="^study workers must be >= 1"):
        Study(StudyConfig.quick(**TINY), tmp_path, workers=0)


def test_results_hold_every_experiment(runs):
    import json

    results = load_results(runs[0])
    pair = results.primary
    assert (pair.m1, pair.m2) == ("toy-m1", "toy-m2")
    assert [p.m1 for p in results.pairs] == ["toy-m1", "toy-m2"]
    h = headline(pair)
    for key in ("untrained", "self_trained", "cross_trained", "untrained_m2", "mode_baseline", "cross_vs_own"):
        assert 0.0 <= h[key] <= 1.0
    assert list(pair.experiments) == ["calibration", "full_control", "interp", "scaling", "shift", "verdict"]
    assert not results.pairs[1].experiments
    assert pair.origins == {name: f"selfsim.study.experiments.{name}" for name in pair.experiments}
    assert {r.n_train for r in pair.experiment(Scaling).rows} == {20, 40}
    assert {r.condition for r in pair.experiment(FullControl).rows} == {"self", "cross"}
    calib = pair.experiment(Calibration)
    assert all(0.0 <= c["mad"] <= 100.0 for c in (calib.untrained, calib.self_trained, calib.cross_trained))
    shift = pair.experiment(Shift)
    assert shift.changed and 0.0 <= shift.unchanged_share <= 1.0
    verdict = pair.experiment(VerdictStudy)
    assert set(verdict.models) == {"self", "cross"}
    assert all(v["verdict"] in VERDICTS for m in verdict.models.values() for v in m["verdicts"])
    manifest = json.loads((runs[0] / "manifest.json").read_text())
    assert "total_s" in manifest and manifest["cpu_s"].keys() == manifest["timings_s"].keys()
    assert manifest["total_cpu_s"] == round(sum(manifest["cpu_s"].values()), 2) > 0


def test_report_reads_its_numbers_from_the_run_directory(runs, tmp_path):
    import json
    import shutil

    from selfsim.report import build_study_report

    html = (runs[0] / "report.html").read_text()
    assert html.index("self model self (toy-m1), property second_character:") < html.index("Reading the numbers")
    assert html.count("plotly.js v") == 1 and "Calibration" in html and "Behaviour shift" in html
    copy = tmp_path / "run"
    shutil.copytree(runs[0], copy)
    results = json.loads((copy / "results.json").read_text())
    results["pairs"][0]["eval_ood"]["mode_baseline"]["m1_after"]["wrong"][-1]["accuracy"] = 0.123456
    gap = results["pairs"][0]["eval_ood"]["gap"]["m1_after"]["wrong"]
    gap.update(gap=0.0321, ci_low=-0.0123, ci_high=0.0765)
    (copy / "results.json").write_text(json.dumps(results))
    text = build_study_report(copy).read_text()
    assert "0.1235" in text
    assert "0.0321, paired 95% CI [-0.0123, 0.0765] includes zero" in text
    gap.update(ci_low=0.0111)
    (copy / "results.json").write_text(json.dumps(results))
    assert "0.0321, paired 95% CI [0.0111, 0.0765] excludes zero" in build_study_report(copy).read_text()
    for title in ("Headline numbers", "Self - cross gap per ordered model pair", "Hypothetical accuracy"):
        assert f"{title}" in text
    assert text.count("against the self-trained M1&#x27;s current behaviour (M1ft)") >= 6


def test_resuming_a_finished_study_recomputes_nothing(runs):
    study = Study(StudyConfig.quick(**TINY), runs[0], progress=False)
    study.run()
    assert study.timings == {}


def test_a_run_directory_refuses_another_config(runs):
    with pytest.raises(SelfsimError, match="another config"):
        Study(StudyConfig.quick(**{**TINY, "seed": 1}), runs[0], progress=False).run()


@pytest.mark.skipif(not __import__("shutil").which("chromium"), reason="Debian's chromium is not installed")
def test_report_draws_in_headless_chromium(runs, tmp_path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "check_report_in_browser.py"
    shot = tmp_path / "report.png"
    result = subprocess.run([sys.executable, str(script), str(runs[0] / "report.html"), "--screenshot", str(shot)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "figures drew" in result.stdout and shot.stat().st_size > 10_000


# ---------------------------------------------------------------------------------------- issue 9
KEY = "toy-m1__toy-m2"


def _greedy(path: Path) -> dict[tuple[str, str], tuple[object, bool]]:
    """{(object_id, property): (value, compliant)} of a behaviour table's greedy rows."""
    from selfsim.behavior import BehaviorTable

    df = BehaviorTable.load(path).long()
    return {(o, p): (v, bool(c)) for o, p, v, c in zip(df["object_id"], df["property"], df["value"], df["compliant"])}


def _hand_accuracy(preds_path: Path, target: dict, ids: set[str]) -> float:
    """Counted-wrong accuracy by hand: compliant meta answer equal to the compliant target value."""
    from selfsim.behavior import BehaviorTable

    preds = BehaviorTable.load(preds_path).long()
    preds = preds[preds["object_id"].isin(ids)]
    hits = [bool(c) and a is not None and target[(o, p)][1] and target[(o, p)][0] == a
            for o, p, a, c in zip(preds["object_id"], preds["property"], preds["answer"], preds["compliant"])]
    return sum(hits) / len(hits)


def test_primary_scores_use_the_self_trained_m1s_current_behavior(runs, tmp_path):
    import shutil

    from selfsim.behavior import BEHAVIOR_FILE, PREDICTIONS_FILE, BehaviorTable
    from selfsim.generation import GREEDY
    from selfsim.io import iter_jsonl, write_jsonl

    run = tmp_path / "run"
    shutil.copytree(runs[0], run)
    (run / "results.json").unlink()
    ood = {e.object_id for e in load_examples(run / "examples" / "eval_ood.jsonl")}
    # Make M1ft's current behaviour on held-out prompts differ from M1's: set it to the self model's own
    # hypothetical answers, then let the (fully cached) study recompute every number from the files.
    preds = BehaviorTable.load(run / "predictions" / KEY / "self" / PREDICTIONS_FILE).long()
    answers = {(o, p): a for o, p, a, c in zip(preds["object_id"], preds["property"], preds["answer"], preds["compliant"]) if c}
    path = run / "behaviour" / KEY / "self" / BEHAVIOR_FILE
    rows = [row for _, row in iter_jsonl(path)]
    for row in rows:
        for prop in row["properties"]:
            if row["sample"] == GREEDY and (row["object_id"], prop) in answers and row["object_id"] in ood:
                row["properties"][prop], row["compliant"][prop] = answers[(row["object_id"], prop)], True
    write_jsonl(path, rows)
    study = Study(StudyConfig.quick(**TINY), run, progress=False)
    study.run()
    assert study.timings == {}
    pair = load_results(run).primary
    after, before = _greedy(path), _greedy(run / "behaviour" / "toy-m1" / BEHAVIOR_FILE)
    hand = {}
    for cond, field in (("self", "self_trained"), ("cross", "cross_trained")):
        file = run / "predictions" / KEY / cond / PREDICTIONS_FILE
        hand[cond] = _hand_accuracy(file, after, ood)
        assert headline(pair)[field] == pytest.approx(hand[cond])
        assert headline(pair, target="m1_before")[field] == pytest.approx(_hand_accuracy(file, before, ood))
    assert headline(pair)["self_trained"] > headline(pair, target="m1_before")["self_trained"]
    assert pair.eval_ood.gap.m1_after.wrong["gap"] == pytest.approx(hand["self"] - hand["cross"])


def test_cross_models_learn_the_self_trained_m1s_answers_on_the_training_prompts(runs):
    from selfsim.behavior import BEHAVIOR_FILE
    from selfsim.io import iter_jsonl

    run = runs[0]
    train = {e.object_id for e in load_examples(run / "examples" / "train.jsonl")}
    after = _greedy(run / "behaviour" / KEY / "self" / BEHAVIOR_FILE)
    before = _greedy(run / "behaviour" / "toy-m1" / BEHAVIOR_FILE)
    assert train <= {o for o, _ in after}
    for name, labels in (("self", before), ("full_self_n20", before), ("cross", after), ("cross_n20", after),
                         ("full_cross_n20", after)):
        items = [row for _, row in iter_jsonl(run / "adapters" / KEY / name / "items.jsonl")]
        assert items and all(it["target"] == labels[(it["object_id"], it["property"])][0] for it in items), name


def test_calibration_object_samples_come_from_the_self_trained_m1(runs):
    from selfsim.behavior import BEHAVIOR_FILE, PREDICTIONS_FILE, BehaviorTable
    from selfsim.evaluate import calibration

    run = runs[0]
    calib = load_results(run).primary.experiment(Calibration)
    cols = ["object_id", "value", "sample"]
    obj = BehaviorTable.load(run / "samples" / KEY / "self-object" / BEHAVIOR_FILE).long(samples=True)
    meta_dirs = {"untrained": run / "samples" / "toy-m1", "self": run / "samples" / KEY / "self", "cross": run / "samples" / KEY / "cross"}
    for cond, directory in meta_dirs.items():
        meta = BehaviorTable.load(directory / PREDICTIONS_FILE).long(samples=True).rename(columns={"answer": "value"})
        expected = calibration(obj[cols], meta[cols])
        got = {"untrained": calib.untrained, "self": calib.self_trained, "cross": calib.cross_trained}[cond]
        assert [r["object_prob"] for r in got["pairs"]] == pytest.approx(expected.pairs["object_prob"].tolist())
        assert got["mad"] == pytest.approx(expected.mad)


def test_every_finetune_trains_the_configured_epochs(runs):
    from selfsim.finetune import FinetuneConfig

    config = StudyConfig.quick(**TINY)
    assert (config.n_items(40), config.n_items(20)) == (80, 40)  # per (task, property) share x 2 tasks x 2 properties
    assert (config.steps_for(80), config.steps_for(40)) == (6, 3)  # ceil(0.6 x items / batch 8)
    default = StudyConfig()
    assert default.steps_for(default.n_items(default.n_train)) == 300  # the toy world's tuned main run
    assert StudyConfig(epochs=1.0, batch_size=64).steps_for(1000) == 16
    for name, n_items in (("self", 80), ("cross", 80), ("cross_n20", 40), ("full_self_n20", 40), ("full_cross_n20", 40)):
        assert FinetuneConfig.load(runs[0] / "adapters" / KEY / name).steps == config.steps_for(n_items), name
    with pytest.raises(SelfsimError, match="epochs must be > 0"):
        StudyConfig(epochs=0.0)


def test_excluded_figures_draw_the_excluded_mode_baseline(runs):
    from selfsim.report import _accuracy_table

    pair = load_results(runs[0]).primary
    for split in ("eval_ood", "eval_id"):
        table = _accuracy_table(pair, split, "exclude")
        base = table[table["condition"] == "mode baseline"]
        assert set(base["noncompliant"]) == {"exclude"}
        expected = [r["accuracy"] for r in pair.split(split).mode_baseline.m1_after.exclude]
        assert base["accuracy"].tolist() == pytest.approx(expected, nan_ok=True)


def test_headline_and_gap_carry_confidence_intervals(runs):
    results = load_results(runs[0])
    for pair in results.pairs:
        h = headline(pair, with_ci=True)
        for key in ("untrained", "self_trained", "cross_trained", "mode_baseline"):
            acc, low, high = h[key]
            assert low <= acc <= high
        gap = pair.eval_ood.gap.m1_after.wrong
        assert gap["ci_low"] <= gap["gap"] <= gap["ci_high"] and gap["n"] > 0
    spread = results.spread
    assert len(spread.gaps) == len(spread.ci) == 2 and spread.std is not None
    with pytest.raises(SelfsimError, match="unknown target"):
        headline(results.primary, target="m2")


# ---------------------------------------------------------------------------------------- issue 11
def test_a_real_results_file_survives_the_json_round_trip(runs):
    import json

    from selfsim.results import StudyResults

    data = json.loads((runs[0] / "results.json").read_text())
    results = StudyResults.from_dict(data)
    assert StudyResults.from_dict(json.loads(json.dumps(results.to_dict()))) == results
    assert json.loads(json.dumps(results.to_dict())) == data


def test_an_experiment_added_to_a_finished_run_adds_only_its_block(runs, tmp_path):
    import json
    import shutil
    from dataclasses import dataclass

    import pandas as pd

    from selfsim.results import EXPERIMENTS
    from selfsim.study.experiments import base, register
    from selfsim.study.scoring import unchanged

    # --- the one place: a result type, the experiment, its report section, one register call
    @dataclass(frozen=True)
    class Agreement:
        share: float
        n_prompts: int

    def agreement(ctx: base.PairContext) -> Agreement:
        return Agreement(share=unchanged(ctx.targets["m1_before"], ctx.targets["m1_after"]), n_prompts=len(ctx.ood_ids))

    def section(result: Agreement, pair: object) -> list:
        return [("M1 and M1ft agreement (added from a test)", pd.DataFrame([{"share": result.share, "prompts": 9876}]))]

    register("agreement", agreement, Agreement, section)
    # ---
    try:
        run = tmp_path / "run"
        shutil.copytree(runs[0], run)
        study = Study(StudyConfig.quick(**TINY), run, progress=False)
        study.run()
        assert study.timings == {}
        data = json.loads((run / "results.json").read_text())
        old = json.loads((runs[0] / "results.json").read_text())
        added = data["pairs"][0]["experiments"].pop("agreement")
        assert data["pairs"][0]["origins"].pop("agreement") == __name__
        assert data == old and "agreement" not in data["pairs"][1]["experiments"]
        assert 0.0 <= added["share"] <= 1.0 and added["n_prompts"] == 24
        loaded = load_results(run).primary.experiment(Agreement)
        assert loaded == Agreement(**added)
        text = (run / "report.html").read_text()
        assert "M1 and M1ft agreement (added from a test)" in text and "9876" in text
        manifest = json.loads((run / "manifest.json").read_text())  # the skipped stages keep their seconds
        assert manifest == json.loads((runs[0] / "manifest.json").read_text()) and manifest["total_s"] > 0
        assert "Seconds per stage" in text and "finetune toy-m1__toy-m2/self" in text
        with pytest.raises(SelfsimError, match="^experiment 'agreement' is already registered; choose another name$"):
            register("agreement", agreement, Agreement)
    finally:
        EXPERIMENTS.unregister("agreement")
