"""Every metric checked against a hand computation on a small table written out here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from selfsim import evaluate
from selfsim.errors import SelfsimError
from selfsim.evaluate import (
    ALL,
    behavior_shift,
    bootstrap_ci,
    calibration,
    hypothetical_accuracy,
    mode_baseline,
    score,
    to_records,
    unchanged_share,
)

FW, SC = "first_word", "second_character"


def behavior_table() -> pd.DataFrame:
    """t1/first_word: cat dog cat <nc>; t2/first_word: ant bee; t1/second_character: a o a <nc>."""
    rows = [
        ("o1", "t1", FW, "cat", True), ("o2", "t1", FW, "dog", True), ("o3", "t1", FW, "cat", True),
        ("o4", "t1", FW, None, False),
        ("o5", "t2", FW, "ant", True), ("o6", "t2", FW, "bee", True),
        ("o1", "t1", SC, "a", True), ("o2", "t1", SC, "o", True), ("o3", "t1", SC, "a", True),
        ("o4", "t1", SC, None, False),
    ]
    return pd.DataFrame(rows, columns=["object_id", "task", "property", "value", "compliant"])


def predictions_table() -> pd.DataFrame:
    """Right/wrong marks against behaviour_table() in the trailing comments."""
    rows = [
        ("o1", "t1", FW, "cat", True),   # right
        ("o2", "t1", FW, "cat", True),   # wrong (dog)
        ("o3", "t1", FW, None, False),   # meta non-compliant
        ("o4", "t1", FW, "cat", True),   # object non-compliant: no target
        ("o5", "t2", FW, "ant", True),   # right
        ("o6", "t2", FW, "ant", True),   # wrong (bee)
        ("o1", "t1", SC, "a", True),     # right
        ("o2", "t1", SC, "o", True),     # right
        ("o3", "t1", SC, "x", True),     # wrong (a)
        ("o4", "t1", SC, None, False),   # meta and object non-compliant
    ]
    return pd.DataFrame(rows, columns=["object_id", "task", "property", "answer", "compliant"])


def row(table: pd.DataFrame, task: str, prop: str) -> pd.Series:
    hit = table[(table["task"] == task) & (table["property"] == prop)]
    assert len(hit) == 1, (task, prop, table)
    return hit.iloc[0]


# ----------------------------------------------------------------------------- score / accuracy

def test_score_marks_each_row():
    scored = score(predictions_table(), behavior_table())
    assert list(scored["correct"]) == [True, False, False, False, True, False, True, True, False, False]
    assert list(scored["target"].iloc[:3]) == ["cat", "dog", "cat"] and pd.isna(scored["target"].iloc[3])
    assert list(scored["meta_compliant"].iloc[:4]) == [True, True, False, True]
    assert list(scored["object_compliant"].iloc[:4]) == [True, True, True, False]
    assert "compliant" not in scored.columns


def test_accuracy_noncompliant_counted_wrong():
    acc = hypothetical_accuracy(score(predictions_table(), behavior_table()), noncompliant="wrong", n_boot=200)
    # t1/fw 1 of 4; t2/fw 1 of 2; t1/sc 2 of 4; ALL/fw 2 of 6; ALL/sc 2 of 4; ALL/ALL 4 of 10
    expected = {("t1", FW): (1 / 4, 4), ("t2", FW): (1 / 2, 2), ("t1", SC): (2 / 4, 4),
                (ALL, FW): (2 / 6, 6), (ALL, SC): (2 / 4, 4), (ALL, ALL): (4 / 10, 10)}
    assert len(acc) == len(expected)
    for (task, prop), (accuracy, n) in expected.items():
        r = row(acc, task, prop)
        assert r["accuracy"] == pytest.approx(accuracy) and r["n"] == n
        assert r["noncompliant"] == "wrong"
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
    assert row(acc, "t1", FW)["n_meta_noncompliant"] == 1 and row(acc, "t1", FW)["n_object_noncompliant"] == 1
    assert row(acc, ALL, ALL)["n_meta_noncompliant"] == 2 and row(acc, ALL, ALL)["n_object_noncompliant"] == 2
    assert list(acc["task"]) == ["t1", "t1", "t2", ALL, ALL, ALL]  # pairs sorted, then micro rows


def test_accuracy_noncompliant_excluded():
    acc = hypothetical_accuracy(score(predictions_table(), behavior_table()), noncompliant="exclude", n_boot=200)
    # drop o3/fw (meta nc), o4/fw (object nc), o4/sc (both): t1/fw 1 of 2; t2/fw 1 of 2; t1/sc 2 of 3;
    # ALL/fw 2 of 4; ALL/sc 2 of 3; ALL/ALL 4 of 7
    expected = {("t1", FW): (1 / 2, 2), ("t2", FW): (1 / 2, 2), ("t1", SC): (2 / 3, 3),
                (ALL, FW): (2 / 4, 4), (ALL, SC): (2 / 3, 3), (ALL, ALL): (4 / 7, 7)}
    for (task, prop), (accuracy, n) in expected.items():
        r = row(acc, task, prop)
        assert r["accuracy"] == pytest.approx(accuracy) and r["n"] == n
        assert r["noncompliant"] == "exclude"


def test_accuracy_ci_is_the_bootstrap_of_the_group():
    scored = score(predictions_table(), behavior_table())
    acc = hypothetical_accuracy(scored, n_boot=300, seed=5)
    group = scored[(scored["task"] == "t1") & (scored["property"] == SC)]["correct"].to_numpy()
    r = row(acc, "t1", SC)
    assert (r["ci_low"], r["ci_high"]) == bootstrap_ci(group, n_boot=300, seed=5)


def test_accuracy_group_emptied_by_exclusion_keeps_its_row():
    scored = score(predictions_table(), behavior_table())
    only_nc = scored[scored["object_id"] == "o4"]
    acc = hypothetical_accuracy(only_nc, noncompliant="exclude", n_boot=10)
    r = row(acc, "t1", FW)
    assert r["n"] == 0 and np.isnan(r["accuracy"]) and np.isnan(r["ci_low"])


# ----------------------------------------------------------------------------- mode baseline

def test_mode_baseline_from_evaluated_behavior():
    base = mode_baseline(behavior_table(), n_boot=200)
    # modes: t1/fw cat (2 of 3 compliant), t2/fw ant (ant/bee tie -> smallest), t1/sc a.
    # wrong mode: t1/fw 2 of 4, t2/fw 1 of 2, t1/sc 2 of 4, ALL/fw 3 of 6, ALL/sc 2 of 4, ALL/ALL 5 of 10
    expected = {("t1", FW): ("cat", 2 / 4, 4), ("t2", FW): ("ant", 1 / 2, 2), ("t1", SC): ("a", 2 / 4, 4),
                (ALL, FW): (None, 3 / 6, 6), (ALL, SC): (None, 2 / 4, 4), (ALL, ALL): (None, 5 / 10, 10)}
    for (task, prop), (mode, accuracy, n) in expected.items():
        r = row(base, task, prop)
        assert (pd.isna(r["mode"]) if mode is None else r["mode"] == mode) and r["accuracy"] == pytest.approx(accuracy) and r["n"] == n
        assert r["mode_from"] == "behaviour" and r["noncompliant"] == "wrong"


def test_mode_baseline_exclude_and_tie_break_independent_of_row_order():
    shuffled = behavior_table().sample(frac=1, random_state=3)
    base = mode_baseline(shuffled, noncompliant="exclude", n_boot=50)
    # non-compliant o4 rows dropped: t1/fw 2 of 3, t1/sc 2 of 3, ALL/fw 3 of 5, ALL/ALL 5 of 8
    assert row(base, "t2", FW)["mode"] == "ant"
    assert row(base, "t1", FW)["accuracy"] == pytest.approx(2 / 3)
    assert row(base, "t1", SC)["accuracy"] == pytest.approx(2 / 3)
    assert row(base, ALL, FW)["accuracy"] == pytest.approx(3 / 5)
    assert row(base, ALL, ALL)["accuracy"] == pytest.approx(5 / 8) and row(base, ALL, ALL)["n"] == 8


def test_mode_baseline_from_train_behavior():
    train = pd.DataFrame(
        [("x1", "t1", FW, "dog", True), ("x2", "t1", FW, "dog", True), ("x3", "t1", FW, "cat", True),
         ("x4", "t2", FW, "bee", True), ("x1", "t1", SC, "o", True)],
        columns=["object_id", "task", "property", "value", "compliant"],
    )
    base = mode_baseline(behavior_table(), train, n_boot=50)
    # modes dog / bee / o: t1/fw only o2 right (1 of 4); t2/fw o6 (1 of 2); t1/sc o2 (1 of 4); ALL 3 of 10
    assert row(base, "t1", FW)["mode"] == "dog" and row(base, "t1", FW)["accuracy"] == pytest.approx(1 / 4)
    assert row(base, "t2", FW)["accuracy"] == pytest.approx(1 / 2)
    assert row(base, "t1", SC)["accuracy"] == pytest.approx(1 / 4)
    assert row(base, ALL, ALL)["accuracy"] == pytest.approx(3 / 10)
    assert set(base["mode_from"]) == {"train_behaviour"}
    with pytest.raises(SelfsimError, match="t2"):
        mode_baseline(behavior_table(), train[train["task"] == "t1"])


# ----------------------------------------------------------------------------- bootstrap

def test_bootstrap_degenerate_vectors():
    assert bootstrap_ci(np.ones(17, dtype=bool)) == (1.0, 1.0)
    assert bootstrap_ci(np.zeros(5)) == (0.0, 0.0)
    assert all(np.isnan(bootstrap_ci(np.array([]))))


def test_bootstrap_equals_direct_numpy_bootstrap():
    x = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1], dtype=float)
    rng = np.random.default_rng(7)
    means = x[rng.integers(0, x.size, size=(500, x.size))].mean(axis=1)
    expected = np.quantile(means, [0.025, 0.975])
    assert bootstrap_ci(x, n_boot=500, seed=7) == pytest.approx(tuple(expected), abs=0)
    expected90 = np.quantile(means, [0.05, 0.95])
    assert bootstrap_ci(x, n_boot=500, seed=7, level=0.9) == pytest.approx(tuple(expected90), abs=0)


def test_bootstrap_chunking_does_not_change_the_draws(monkeypatch):
    x = np.random.default_rng(1).random(50)
    whole = bootstrap_ci(x, n_boot=101, seed=2)
    monkeypatch.setattr(evaluate, "_BOOT_CHUNK_ELEMENTS", 120)  # 2 resamples per chunk
    assert bootstrap_ci(x, n_boot=101, seed=2) == whole


def test_bootstrap_seeded():
    x = np.random.default_rng(0).random(200)
    assert bootstrap_ci(x, n_boot=300, seed=11) == bootstrap_ci(x, n_boot=300, seed=11)
    assert bootstrap_ci(x, n_boot=300, seed=11) != bootstrap_ci(x, n_boot=300, seed=12)
    rng = np.random.default_rng(0)
    scored = pd.DataFrame({
        "task": rng.choice(["t1", "t2"], 400), "property": FW, "correct": rng.random(400) < 0.4,
        "meta_compliant": True, "object_compliant": True,
    })
    a = hypothetical_accuracy(scored, n_boot=200, seed=3)
    pd.testing.assert_frame_equal(a, hypothetical_accuracy(scored, n_boot=200, seed=3))
    b = hypothetical_accuracy(scored, n_boot=200, seed=4)
    assert (a["accuracy"] == b["accuracy"]).all()
    assert not (a[["ci_low", "ci_high"]].to_numpy() == b[["ci_low", "ci_high"]].to_numpy()).all()


def test_bootstrap_rejects_bad_arguments():
    with pytest.raises(SelfsimError, match="n_boot"):
        bootstrap_ci(np.ones(3), n_boot=0)
    with pytest.raises(SelfsimError, match="level"):
        bootstrap_ci(np.ones(3), level=1.0)


# ----------------------------------------------------------------------------- calibration

def samples(spec: dict[str, list[str | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(oid, i, v) for oid, values in spec.items() for i, v in enumerate(values)],
        columns=["object_id", "sample", "value"],
    )


OBJECT_SAMPLES = {
    "p1": ["a", "a", "a", "b"],              # a .75, b .25
    "p2": ["c", "c", "d", "e", None],        # non-compliant dropped: c .5, d .25, e .25 (d before e)
    "p3": ["f", "f"],                        # f 1.0
    "p4": ["g"],                             # no meta samples: skipped
}
META_SAMPLES = {
    "p1": ["a", "b", "b", None],             # a .25, b .5 (the non-compliant answer stays in the total)
    "p2": ["c", "c", "c", "e", "e"],         # c .6, d 0, e .4
    "p3": ["f", "g"],                        # f .5
    "p5": ["h"],                             # no object samples: skipped
}
# pairs (object_id, rank, value, object prob, hypothetical prob):
#   p1 1 a .75 .25 | p1 2 b .25 .5 | p2 1 c .5 .6 | p2 2 d .25 0 | p2 3 e .25 .4 | p3 1 f 1.0 .5
# sorted by (object prob, object_id, rank): .25 p1/2, .25 p2/2, .25 p2/3, .5 p2/1, .75 p1/1, 1.0 p3/1


def test_calibration_pairs():
    res = calibration(samples(OBJECT_SAMPLES), samples(META_SAMPLES), n_bins=3)
    got = {(r.object_id, r.rank): (r.value, r.object_prob, r.hypothetical_prob) for r in res.pairs.itertuples()}
    assert got == {
        ("p1", 1): ("a", 0.75, 0.25), ("p1", 2): ("b", 0.25, 0.5),
        ("p2", 1): ("c", 0.5, pytest.approx(0.6)), ("p2", 2): ("d", 0.25, 0.0), ("p2", 3): ("e", 0.25, pytest.approx(0.4)),
        ("p3", 1): ("f", 1.0, 0.5),
    }


def test_calibration_mad_and_curve_three_bins():
    res = calibration(samples(OBJECT_SAMPLES), samples(META_SAMPLES), n_bins=3)
    # bins of 2: (.25,.5)(.25,0) -> means .25/.25; (.25,.4)(.5,.6) -> .375/.5; (.75,.25)(1,.5) -> .875/.375
    # MAD = 100 * (0 + .125 + .5) / 3 = 20.8333
    assert list(res.curve["n"]) == [2, 2, 2]
    assert list(res.curve["object_prob"]) == pytest.approx([0.25, 0.375, 0.875])
    assert list(res.curve["hypothetical_prob"]) == pytest.approx([0.25, 0.5, 0.375])
    assert list(res.curve["object_prob_min"]) == pytest.approx([0.25, 0.25, 0.75])
    assert res.mad == pytest.approx(62.5 / 3)
    # per rank: rank 1 (.5,.6)(.75,.25)(1,.5) one per bin -> 100*(.1+.5+.5)/3; rank 2 two pairs -> 100*(.25+.25)/2;
    # rank 3 one pair -> 15
    assert res.mad_by_rank == pytest.approx({1: 110 / 3, 2: 25.0, 3: 15.0})
    bins = {(r.object_id, r.rank): r.bin for r in res.pairs.itertuples()}
    assert bins == {("p1", 2): 0, ("p2", 2): 0, ("p2", 3): 1, ("p2", 1): 1, ("p1", 1): 2, ("p3", 1): 2}


def test_calibration_uneven_and_sparse_bins():
    obj, meta = samples(OBJECT_SAMPLES), samples(META_SAMPLES)
    # 6 pairs in 4 bins -> sizes 2,2,1,1: diffs 0, .125, .5, .5 -> MAD 100 * 1.125 / 4 = 28.125
    res4 = calibration(obj, meta, n_bins=4)
    assert list(res4.curve["n"]) == [2, 2, 1, 1] and res4.mad == pytest.approx(28.125)
    # 10 bins, 6 pairs -> 6 singleton bins: diffs .25 .25 .15 .1 .5 .5 -> MAD 100 * 1.75 / 6
    res10 = calibration(obj, meta)
    assert len(res10.curve) == 6 and res10.mad == pytest.approx(175 / 6)


def test_calibration_top_k_and_determinism():
    obj, meta = samples(OBJECT_SAMPLES), samples(META_SAMPLES)
    top1 = calibration(obj, meta, top_k=1, n_bins=3)
    # rank-1 pairs only: (.5,.6)(.75,.25)(1,.5) -> MAD 100 * (.1 + .5 + .5) / 3
    assert set(top1.pairs["rank"]) == {1} and top1.mad == pytest.approx(110 / 3)
    a = calibration(obj, meta, n_bins=3)
    b = calibration(obj.sample(frac=1, random_state=0), meta.sample(frac=1, random_state=1), n_bins=3)
    pd.testing.assert_frame_equal(a.pairs, b.pairs)
    pd.testing.assert_frame_equal(a.curve, b.curve)


def test_calibration_compliant_column_and_errors():
    obj = samples(OBJECT_SAMPLES).assign(compliant=True)
    meta = samples(META_SAMPLES).assign(compliant=lambda d: d["value"].notna())
    assert calibration(obj, meta, n_bins=3).mad == pytest.approx(62.5 / 3)
    with pytest.raises(SelfsimError, match="value"):
        calibration(obj.drop(columns="value"), meta)
    with pytest.raises(SelfsimError, match="share"):
        calibration(samples({"p9": ["a"]}), meta)
    with pytest.raises(SelfsimError, match="one property"):
        calibration(obj.assign(property=["x", "y"] * 6), meta)


def test_calibration_result_is_json():
    res = calibration(samples(OBJECT_SAMPLES), samples(META_SAMPLES), n_bins=3)
    blob = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert blob["mad"] == pytest.approx(62.5 / 3) and len(blob["pairs"]) == 6 and "1" in blob["mad_by_rank"]


# ----------------------------------------------------------------------------- behaviour shift

def shift_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    cols = ["object_id", "task", "property", "value", "compliant"]
    old = pd.DataFrame([
        ("o1", "t1", FW, "cat", True), ("o2", "t1", FW, "dog", True), ("o3", "t1", FW, "cat", True),
        ("o4", "t1", FW, "eel", True), ("o5", "t1", FW, None, False), ("o7", "t1", FW, "fox", True),
        ("o6", "t2", FW, "ant", True),
    ], columns=cols)
    new = pd.DataFrame([
        ("o1", "t1", FW, "cat", True),   # same
        ("o2", "t1", FW, "cow", True),   # changed
        ("o3", "t1", FW, "ant", True),   # changed
        ("o4", "t1", FW, None, False),   # new non-compliant: not a change
        ("o5", "t1", FW, "bee", True),   # old non-compliant: not a change
        ("o7", "t1", FW, "gnu", True),   # changed
        ("o6", "t2", FW, "bee", True),   # changed
    ], columns=cols)
    predictions = pd.DataFrame([
        ("o1", "t1", FW, "cat", True),
        ("o2", "t1", FW, "cow", True),   # matches new
        ("o3", "t1", FW, "cat", True),   # matches old
        ("o4", "t1", FW, "eel", True),
        ("o5", "t1", FW, "bee", True),
        ("o7", "t1", FW, "gnu", True),   # matches new
        ("o6", "t2", FW, None, False),   # meta non-compliant
    ], columns=["object_id", "task", "property", "answer", "compliant"])
    return predictions, old, new


def test_behavior_shift_counts_changed_prompts_only():
    predictions, old, new = shift_tables()
    shift = behavior_shift(predictions, old, new, n_boot=100)
    # changed: o2 o3 o7 (t1), o6 (t2). t1: new 2 of 3, old 1 of 3; t2: 0 of 1 both; ALL: new 2 of 4, old 1 of 4
    t1, t2, total = row(shift, "t1", FW), row(shift, "t2", FW), row(shift, ALL, ALL)
    assert t1["n"] == 3 and t1["accuracy_new"] == pytest.approx(2 / 3) and t1["accuracy_old"] == pytest.approx(1 / 3)
    assert t2["n"] == 1 and t2["accuracy_new"] == 0 and t2["accuracy_old"] == 0
    assert total["n"] == 4 and total["accuracy_new"] == pytest.approx(0.5) and total["accuracy_old"] == pytest.approx(0.25)
    assert total["n_meta_noncompliant"] == 1
    assert total["ci_low_new"] <= 0.5 <= total["ci_high_new"]


def test_behavior_shift_exclude():
    predictions, old, new = shift_tables()
    shift = behavior_shift(predictions, old, new, noncompliant="exclude", n_boot=100)
    # o6 dropped: t2 empty; ALL: new 2 of 3, old 1 of 3
    assert row(shift, "t2", FW)["n"] == 0 and np.isnan(row(shift, "t2", FW)["accuracy_new"])
    total = row(shift, ALL, ALL)
    assert total["n"] == 3 and total["accuracy_new"] == pytest.approx(2 / 3) and total["accuracy_old"] == pytest.approx(1 / 3)
    assert set(shift["noncompliant"]) == {"exclude"}


def test_unchanged_share_by_response_and_by_value():
    before = behavior_table()
    after = before.copy()
    after.loc[(after["object_id"] == "o2") & (after["property"] == FW), "value"] = "cow"
    after.loc[(after["object_id"] == "o3") & (after["property"] == SC), "value"] = "x"
    # by value over 10 (object_id, property) rows: 2 changed, the o4 None/None pair counts as unchanged
    assert unchanged_share(before, after) == pytest.approx(8 / 10)
    responses = {"o1": "cat", "o2": "dog", "o3": "cat", "o4": "", "o5": "ant", "o6": "bee"}
    b = before.assign(response=before["object_id"].map(responses))
    a = after.assign(response=after["object_id"].map({**responses, "o2": "cow"}))
    # by response over 6 object ids: only o2 changed (o3's value edit is ignored once responses exist)
    assert unchanged_share(b, a) == pytest.approx(5 / 6)
    with pytest.raises(SelfsimError, match="share no"):
        unchanged_share(b, a.assign(object_id=a["object_id"] + "z"))


# ----------------------------------------------------------------------------- errors and serialisation

def test_missing_columns_are_named():
    with pytest.raises(SelfsimError, match=r"missing column\(s\) \['answer'\]; expected columns"):
        score(predictions_table().drop(columns="answer"), behavior_table())
    with pytest.raises(SelfsimError, match="behaviour.*'value'"):
        mode_baseline(behavior_table().drop(columns="value"))
    with pytest.raises(SelfsimError, match="correct"):
        hypothetical_accuracy(pd.DataFrame({"task": [], "property": []}))


def test_score_rejects_bad_joins():
    beh = behavior_table()
    with pytest.raises(SelfsimError, match="no behaviour row"):
        score(predictions_table(), beh[beh["object_id"] != "o1"])
    with pytest.raises(SelfsimError, match="one row per object prompt"):
        score(predictions_table(), pd.concat([beh, beh.iloc[:1]]))
    with pytest.raises(SelfsimError, match="different task"):
        score(predictions_table(), beh.assign(task="t9"))
    with pytest.raises(SelfsimError, match="True/False"):
        score(predictions_table().assign(compliant="yes"), beh)
    with pytest.raises(SelfsimError, match="noncompliant"):
        hypothetical_accuracy(score(predictions_table(), beh), noncompliant="drop")


def test_results_are_json_serialisable():
    scored = score(predictions_table(), behavior_table())
    tables = [
        hypothetical_accuracy(scored, n_boot=20),
        hypothetical_accuracy(scored[scored["object_id"] == "o4"], noncompliant="exclude", n_boot=20),
        mode_baseline(behavior_table(), n_boot=20),
        behavior_shift(*shift_tables(), n_boot=20),
    ]
    for table in tables:
        records = json.loads(json.dumps(to_records(table), allow_nan=False))
        assert len(records) == len(table)
    assert to_records(tables[1])[0]["accuracy"] is None


def test_paired_bootstrap_matches_a_hand_computation():
    # default_rng(4).integers(0, 3, size=(5, 3)) draws the prompt indices
    # [2 2 2], [1 2 2], [2 0 1], [1 0 1], [1 2 1]; both models are resampled with the same rows.
    a, b = np.array([1, 1, 0]), np.array([0, 1, 1])  # per-prompt differences 1, 0, -1
    # resampled mean differences: -1, -2/3, 0, 1/3, -1/3 -> sorted -1, -2/3, -1/3, 0, 1/3;
    # numpy's linear quantiles at 0.025 and 0.975 sit at positions 0.1 and 3.9.
    low, high = evaluate.paired_bootstrap_ci(a, b, n_boot=5, seed=4)
    assert (low, high) == pytest.approx((-1 + 0.1 / 3, 0.9 / 3), abs=1e-12)
    with pytest.raises(SelfsimError, match="one score per prompt"):
        evaluate.paired_bootstrap_ci(a, b[:2])


def test_paired_gap_pairs_rows_by_prompt():
    beh = behavior_table()
    scored_a = score(predictions_table(), beh)
    # b answers like a, except that it gets o1/first_word wrong: a - b is 1 on one row, 0 elsewhere
    preds_b = predictions_table()
    preds_b.loc[0, "answer"] = "dog"
    scored_b = score(preds_b, beh).iloc[::-1]  # row order must not matter
    gap = evaluate.paired_gap(scored_a, scored_b, n_boot=400, seed=1)
    assert gap["gap"] == pytest.approx(0.1) and gap["n"] == 10
    assert (gap["accuracy_a"], gap["accuracy_b"]) == pytest.approx((0.4, 0.3))
    assert (gap["ci_low"], gap["ci_high"]) == bootstrap_ci(np.array([1.0] + [0.0] * 9), n_boot=400, seed=1)
    assert gap["ci_low"] >= 0.0  # a difference on one row only never resamples below zero
    excluded = evaluate.paired_gap(scored_a, scored_b, noncompliant="exclude", n_boot=50)
    assert excluded["n"] == 7 and excluded["gap"] == pytest.approx(1 / 7)  # o3/fw, o4/fw, o4/sc dropped
    with pytest.raises(SelfsimError, match="only one model"):
        evaluate.paired_gap(scored_a, scored_b.iloc[1:], n_boot=10)
