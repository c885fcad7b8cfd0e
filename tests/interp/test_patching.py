"""Batched cross-prompt patching: metrics, batching, the three directions, results and figures."""

from __future__ import annotations

import math

import pytest
import torch

from selfsim.errors import SelfsimError
from selfsim.interp import patching
from selfsim.interp.pairs import batch_of, padded
from selfsim.interp.patching import PatchConfig, heatmap, run_patching, token_metrics
from selfsim.interp.tracing import HookTracer, Patch
from selfsim.models import load_subject
from selfsim.tasks import generate

from toy_tiny import save_toy_tiny


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return save_toy_tiny(tmp_path_factory.mktemp("toy_tiny"))


@pytest.fixture(scope="module")
def toy_tiny(toy_dir):
    return load_subject(str(toy_dir), attn_implementation="eager")


@pytest.fixture(scope="module")
def examples():
    return generate("animals_long", "first_word", n=6, seed=0, dialect="toy")


def test_metrics_equal_a_hand_computation():
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0]])
    m = token_metrics(logits, torch.tensor([0, 2]), torch.tensor([2, -1]))
    assert m["logit_diff"][0] == 1.0 and math.isnan(m["logit_diff"][1])
    e = math.exp
    assert m["prob_donor"][0] == pytest.approx(e(2) / (e(2) + 1 + e(1)))
    assert m["prob_donor"][1] == pytest.approx(e(1) / (1 + e(3) + e(1)))
    assert m["flip"].tolist() == [True, False]


def test_a_row_equals_the_same_patch_done_by_hand(toy_tiny, examples):
    config = PatchConfig(layers=(1,), positions="each", backend="hooks")
    rows = run_patching([toy_tiny], examples, config).rows
    setup = next(patching.setups([toy_tiny], examples, config))[0]
    row = rows[(rows["target"] == "own") & rows["informative"]].iloc[0]
    k = int(row["pair"])
    slot = next(s for s in setup.slots[k] if s.label == row["position"])
    site = toy_tiny.site(1)
    tracer = HookTracer(toy_tiny)
    with torch.no_grad():
        donor = tracer.run(setup.donors.select([k]), read=[site]).activations[site][0, slot.donor]
        logits = tracer.run(setup.recipients.select([k]), patches=[Patch(site, [0], [slot.recipient], donor[None])]).logits[0, -1]
    d, r = setup.tokens["own"][k].tolist()
    assert row["logit_diff"] == pytest.approx(float(logits[d] - logits[r]), abs=1e-5)
    assert row["prob_donor"] == pytest.approx(float(torch.softmax(logits, -1)[d]), abs=1e-6)
    assert row["flip"] == (int(logits.argmax()) == d)
    donor_answer = setup.values["own"][k][0]
    assert row["donor_value"] == donor_answer and toy_tiny.tokenizer.convert_ids_to_tokens(d) == donor_answer


def test_rows_are_batched_and_independent_of_batch_size(toy_tiny, examples, monkeypatch):
    calls = []
    original = HookTracer.run

    def counting(self, batch, **kwargs):
        calls.append((batch.size, len(kwargs.get("patches", ()))))
        return original(self, batch, **kwargs)

    monkeypatch.setattr(HookTracer, "run", counting)
    config = PatchConfig(positions="each", layers=(1,), components=("resid", "mlp"), backend="hooks", max_rows=1024,
                         resume=False)
    big = run_patching([toy_tiny], examples, config).rows
    patched = [c for c in calls if c[1]]
    n_rows = len(big) // 2
    assert len(patched) == 1 and patched[0] == (n_rows, 2)
    calls.clear()
    small = run_patching([toy_tiny], examples, PatchConfig(**{**config.to_dict(), "max_rows": 50})).rows
    assert len([c for c in calls if c[1]]) == math.ceil(n_rows / 50)
    for col in ("logit_diff", "prob_donor", "logit_diff_clean"):
        assert (big[col] - small[col]).abs().max() < 1e-5
    assert big["flip"].equals(small["flip"])


def test_batched_resumed_sweep_equals_one_patch_per_forward(toy_tiny, examples, monkeypatch):
    calls = []
    original = HookTracer.run_from

    def counting(self, batch, start, hidden, **kwargs):
        calls.append((start, batch.size))
        return original(self, batch, start, hidden, **kwargs)

    monkeypatch.setattr(HookTracer, "run_from", counting)
    grid = dict(positions="each", components=("resid", "attn", "mlp"), backend="hooks")
    batched = run_patching([toy_tiny], examples[:4], PatchConfig(**grid, max_rows=256)).rows
    starts = {start for start, _ in calls}
    # toy_tiny has layers 0..2: attn/mlp at L resume at L, resid at L at L+1 (3: the head only); layer-0 attn/mlp run whole
    assert starts == {1, 2, 3} and max(size for _, size in calls) > 1
    calls.clear()
    single = run_patching([toy_tiny], examples[:4], PatchConfig(**grid, max_rows=1, resume=False)).rows
    assert not calls and len(single) == len(batched) > 0
    keys = ["component", "layer", "position", "pair", "target"]
    assert batched[keys].equals(single[keys])
    for col in ("logit_diff", "prob_donor", "logit_diff_clean"):
        assert (batched[col] - single[col]).abs().max() < 1e-5
    assert batched["flip"].equals(single["flip"]) and batched["answer"].equals(single["answer"])


def test_last_layer_at_the_final_position_copies_the_object_answer(toy_tiny, examples):
    config = PatchConfig(layers=(-1,), positions="final", backend="hooks")
    rows = run_patching([toy_tiny], examples, config).rows
    own = rows[(rows["target"] == "own") & rows["informative"]]
    assert len(own) > 0 and own["flip"].all()
    assert (own["answer"] == own["donor_value"]).all()


def test_every_direction(toy_tiny, examples):
    config = PatchConfig(directions=tuple(patching.DIRECTIONS), layers=(0,), positions="all", backend="hooks", max_new_tokens=2)
    rows = run_patching([toy_tiny], examples, config).rows
    assert len(rows) == 3 * 2 * len(examples)
    for direction, (_, recipient) in patching.DIRECTIONS.items():
        values = rows[(rows["direction"] == direction) & (rows["target"] == "own")]["donor_value"].dropna()
        words = values.str.split().str.len()
        assert len(values) and words.max() == (2 if recipient == "object" else 1)


def test_own_answer_is_the_full_greedy_answer_and_its_property(toy_tiny):
    """Issue 9, defect 4: a one-token answer has no second word, and such rows vanished silently."""
    from selfsim.budget import TOY_MAX_NEW_TOKENS
    from selfsim.generation import GREEDY, Request, generate_batch
    from selfsim.interp.pairs import match_all
    from selfsim.properties import get

    examples = generate("animals_long", "second_word", n=8, seed=0, dialect="toy")
    result = run_patching([toy_tiny], examples, PatchConfig(layers=(1,), positions="final", backend="hooks"))
    matched = match_all(toy_tiny, examples)
    expected = [g.response for g in generate_batch(
        toy_tiny, [Request(m.example.object_id, m.object.ids, GREEDY, TOY_MAX_NEW_TOKENS) for m in matched])]
    assert result.answers["answer"].tolist() == expected
    assert max(len(a.split()) for a in expected) > 1
    rows = result.rows[result.rows["target"] == "own"]
    by_id = dict(zip((e.id for e in examples), expected))
    for row in rows.to_dict("records"):
        assert row["donor_value"] == get("second_word").extract(by_id[row["donor_id"]])
    assert rows["donor_value"].notna().any()
    summary = result.summary()
    missing = rows["donor_value"].isna() | rows["recipient_value"].isna()
    informative = summary[summary["target"] == "own"]
    assert int(informative["n_missing"].sum()) == int(missing.sum())
    assert int(informative[["n", "n_missing", "n_same"]].sum().sum()) == len(rows)


def test_position_groups():
    slots = [patching.Slot(f"P[{o}]", o, i, 10 + i, 20 + i) for i, o in enumerate((-3, -2, -1))]
    slots.append(patching.Slot("final", 0, -1, 30, 40))
    group = patching.position_groups
    assert group(slots, "final") == [("final", 0, (slots[3],))]
    assert group(slots, "prompt") == [("prompt", 1, tuple(slots[:3]))]
    assert group(slots, "all") == [("all", 2, tuple(slots))]
    assert [g[0] for g in group(slots, "each")] == ["P[-3]", "P[-2]", "P[-1]", "final"]
    assert group(slots, 0) == group(slots, -3) == [("P[-3]", -3, (slots[0],))]
    assert group(slots, 5) == []


def test_several_subjects_side_by_side_and_saved_results(toy_dir, toy_tiny, examples, tmp_path):
    other = load_subject(str(save_toy_tiny(tmp_path / "other", seed=1)), attn_implementation="eager")
    result = run_patching({"m1": toy_tiny, "m2": other}, examples, PatchConfig(positions="each", backend="hooks"))
    rows = result.rows
    assert list(dict.fromkeys(rows["model"])) == ["m1", "m2"]
    m1 = rows[rows["model"] == "m1"]
    own, labelled = m1[m1["target"] == "own"], m1[m1["target"] == "m1"]
    assert list(own["donor_value"]) == list(labelled["donor_value"])
    answers = result.answers
    assert (answers[answers["model"] == "m2"]["m1_answer"].values == answers[answers["model"] == "m1"]["answer"].values).all()
    written = result.save(tmp_path / "out")
    assert {p.name for p in written} >= {"rows.parquet", "summary.parquet", "summary.json", "answers.parquet", "config.json"}
    assert any(p.suffix == ".html" for p in written)
    assert PatchConfig.load(tmp_path / "out" / "config.json") == result.config
    fig = heatmap(result.summary(), direction="object->hypothetical")
    assert len(fig.data) == 4
    assert list(fig.data[0].x)[-1] == "final" and list(fig.data[0].y) == [str(x) for x in range(toy_tiny.n_layers)]


def test_config_errors_are_clear(toy_tiny, examples):
    with pytest.raises(SelfsimError, match="unknown direction 'sideways'"):
        PatchConfig(directions=("sideways",))
    with pytest.raises(SelfsimError, match="unknown positions 'middle'"):
        PatchConfig(positions="middle")
    with pytest.raises(SelfsimError, match=r"layer 40 is out of range.*valid layers are 0\.\.2"):
        run_patching([toy_tiny], examples, PatchConfig(layers=(40,), backend="hooks"))
    with pytest.raises(SelfsimError, match="every property needs at least two"):
        run_patching([toy_tiny], examples[:1], PatchConfig(backend="hooks"))


def test_padding_positions_are_consistent(toy_tiny, examples):
    setup = next(patching.setups([toy_tiny], examples, PatchConfig(backend="hooks")))[0]
    for k, (r, _) in enumerate(setup.index_pairs):
        prompt = setup.matched[r].hypothetical
        final = next(s for s in setup.slots[k] if s.label == "final")
        assert final.recipient == setup.recipients.width - 1 == padded(prompt, setup.recipients.width, prompt.final)
    assert batch_of(toy_tiny, [setup.matched[0].object]).width == setup.matched[0].object.length


def test_a_metric_registered_in_one_place_reaches_rows_summary_files_and_heatmaps(toy_tiny, examples, tmp_path, request):
    from selfsim.interp import metrics
    from selfsim.io import read_json

    @metrics.register_metric("logit_donor", summary="mean_logit_donor", delta="logit_donor_gain", figures=("logit_donor_gain",))
    def logit_donor(logits, donor, recipient):
        return torch.where(donor >= 0, logits.gather(1, donor.clamp(min=0)[:, None])[:, 0], torch.tensor(math.nan))

    request.addfinalizer(lambda: metrics.METRICS.unregister("logit_donor"))
    with pytest.raises(SelfsimError, match="metric 'logit_donor' is already registered"):
        metrics.register_metric("logit_donor")(lambda logits, donor, recipient: logits[:, 0])
    config = PatchConfig(layers=(1,), positions="final", backend="hooks", metrics=(*metrics.DEFAULT_METRICS, "logit_donor"))
    result = run_patching([toy_tiny], examples, config)
    rows = result.rows[result.rows["informative"]]
    assert rows["logit_donor"].notna().all() and rows["logit_donor_clean"].notna().all()
    summary = result.summary()
    one = summary[summary["n"] > 0].iloc[0]
    cell = rows[(rows["target"] == one["target"]) & (rows["layer"] == one["layer"])]
    assert one["mean_logit_donor"] == pytest.approx(cell["logit_donor"].mean())
    assert one["logit_donor_gain"] == pytest.approx((cell["logit_donor"] - cell["logit_donor_clean"]).mean())
    written = {p.name for p in result.save(tmp_path)}
    assert "heatmap_object_to_hypothetical_resid_logit_donor_gain.html" in written
    saved = read_json(tmp_path / "summary.json")
    assert {"mean_logit_donor", "mean_logit_donor_clean", "logit_donor_gain", "flip_rate", "delta"} <= set(saved[0])
    assert "logit_donor" in token_metrics(torch.zeros(1, 4), torch.tensor([1]), torch.tensor([2]), ["logit_donor"])
