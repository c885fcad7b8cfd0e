"""Behaviour collection and hypothetical answers: tables, dedup, cache/resume, CLI errors, kill + resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from selfsim import behavior, evaluate
from selfsim.behavior import (
    BEHAVIOR_FILE,
    CACHE_DIR,
    PREDICTIONS_FILE,
    SLEEP_ENV,
    BehaviorTable,
    TruncationWarning,
    collect,
    predict,
)
from selfsim.cli import main
from selfsim.errors import SelfsimError
from selfsim.examples import Example, save_examples
from selfsim.generation import Generation
from selfsim.io import read_jsonl, write_jsonl

from test_generation import animal_prompts, lively, lively_dir  # noqa: F401  (fixtures)

PAPER_DATASET = Path(__file__).resolve().parents[2] / "shared" / "paper_dataset"


def toy_examples(n: int, properties=("first_word", "first_character"), seed: int = 0) -> list[Example]:
    """`n` object prompts, each asked about every property in `properties`."""
    return [
        Example(
            task="animals_long",
            property=prop,
            object_messages=[{"role": "user", "content": text}],
            hypothetical_messages=[{"role": "user", "content": f"previously you were asked : {text} ? what is the {prop}"}],
            dialect="toy",
        )
        for text in animal_prompts(n, seed=seed)
        for prop in properties
    ]


def cache_rows(out: Path) -> list[dict]:
    return [row for f in sorted((out / CACHE_DIR).glob("*.jsonl")) for row in read_jsonl(f, tolerate_torn_tail=True)]


def test_collect_answers_each_object_prompt_once(lively, tmp_path):
    examples = toy_examples(6)
    df = collect(lively, examples, out_dir=tmp_path, progress=False)
    assert len(df) == 6 and df["object_id"].tolist() == list(dict.fromkeys(e.object_id for e in examples))
    assert (df["sample"] == -1).all() and (df["temperature"] == 0.0).all()
    row = df.iloc[0]
    assert set(row["properties"]) == set(row["compliant"]) == {"first_word", "first_character"}
    words = row["clean"].split()
    assert row["properties"] == {"first_word": words[0], "first_character": row["clean"][0]}
    assert row["model"] == lively.name and len(row["fingerprint"]) == 16
    assert len(cache_rows(tmp_path)) == 6
    on_disk = BehaviorTable.load(tmp_path / BEHAVIOR_FILE).df
    from_parquet = BehaviorTable.load(tmp_path / "behavior.parquet").df
    pd.testing.assert_frame_equal(on_disk, df)
    pd.testing.assert_frame_equal(from_parquet, df)


def test_long_tables_feed_evaluate(lively, tmp_path):
    examples = toy_examples(5)
    behavior = collect(lively, examples, out_dir=tmp_path, samples=3, progress=False)
    predictions = predict(lively, examples, out_dir=tmp_path, progress=False)
    long = BehaviorTable(behavior).long()
    assert list(long.columns) == ["object_id", "task", "property", "value", "compliant", "sample", "response"]
    assert len(long) == 10 and (long["sample"] == -1).all()
    assert len(BehaviorTable(behavior).long(samples=True)) == 5 * 3 * 2
    assert len(predictions) == len(examples)
    assert predictions["example_id"].tolist() == [e.id for e in examples]
    preds = BehaviorTable(predictions).long()
    assert list(preds.columns[:5]) == ["object_id", "task", "property", "answer", "compliant"]
    assert preds.loc[~preds["compliant"], "answer"].isna().all()
    scored = evaluate.score(preds, long)
    assert len(scored) == len(examples)
    assert len(evaluate.hypothetical_accuracy(scored, n_boot=10)) == 2 + 2 + 1
    assert (tmp_path / PREDICTIONS_FILE).is_file() and (tmp_path / "predictions.parquet").is_file()


def test_meta_answers_are_scored_by_the_property(lively, tmp_path, monkeypatch):
    examples = toy_examples(2, properties=("first_character",))
    canned = iter(["F.", "fox gnu"])
    monkeypatch.setattr(
        "selfsim.behavior.generate_batch", lambda subject, reqs: [Generation(next(canned), (1,), "eos") for _ in reqs]
    )
    df = predict(lively, examples, out_dir=tmp_path, progress=False, batch_size=1)
    assert df["answer"].iloc[0] == "f" and pd.isna(df["answer"].iloc[1])
    assert df["compliant"].tolist() == [True, False]
    assert df["clean"].tolist() == ["f", "fox gnu"]


def test_same_seed_same_samples_and_more_samples_reuse_the_cache(lively, tmp_path):
    examples = toy_examples(4)
    a = collect(lively, examples, out_dir=tmp_path / "a", samples=3, seed=5, batch_size=5, progress=False)
    b = collect(lively, examples, out_dir=tmp_path / "b", samples=3, seed=5, batch_size=2, progress=False)
    pd.testing.assert_frame_equal(a, b)
    assert a["sample"].tolist() == [-1, 0, 1, 2] * 4
    assert len(set(a.loc[a["sample"] >= 0, "response"])) > 6
    c = collect(lively, examples, out_dir=tmp_path / "b", samples=3, seed=6, progress=False)
    assert c.loc[c["sample"] >= 0, "response"].tolist() != a.loc[a["sample"] >= 0, "response"].tolist()
    pd.testing.assert_frame_equal(c[c["sample"] == -1], a[a["sample"] == -1])
    before = len(cache_rows(tmp_path / "a"))
    more = collect(lively, examples, out_dir=tmp_path / "a", samples=5, seed=5, progress=False)
    assert len(cache_rows(tmp_path / "a")) == before + 4 * 2
    pd.testing.assert_frame_equal(more[more["sample"] < 3].reset_index(drop=True), a)


def test_resume_generates_only_what_is_missing_and_survives_a_torn_line(lively, tmp_path, monkeypatch):
    examples = toy_examples(8)
    full = collect(lively, examples, out_dir=tmp_path / "full", samples=1, progress=False)
    out = tmp_path / "resumed"
    collect(lively, examples[:6], out_dir=out, samples=1, progress=False)
    cache_file = max((out / CACHE_DIR).glob("*.jsonl"), key=lambda f: f.stat().st_size)
    with open(cache_file, "a") as fh:
        fh.write('{"key": "torn", "sam')
    calls = []
    real = behavior.generate_batch
    monkeypatch.setattr(behavior, "generate_batch", lambda s, reqs: calls.append(len(reqs)) or real(s, reqs))
    resumed = collect(lively, examples, out_dir=out, samples=1, progress=False)
    assert sum(calls) == 5 * 2  # the first 6 examples hold 3 of the 8 prompts: 5 prompts x (greedy + 1 sample) remain
    pd.testing.assert_frame_equal(resumed, full)
    keys = [(r["key"], r["sample"]) for r in cache_rows(out)]
    assert len(keys) == len(set(keys)) == 8 * 2
    calls.clear()
    collect(lively, examples, out_dir=out, samples=1, progress=False)
    assert calls == []


def test_long_prompts_are_truncated_with_one_warning(lively, tmp_path):
    long_text = " ".join(["fox"] * (lively.config.max_position_embeddings + 10))
    examples = toy_examples(3) + [
        Example("toy_animals", "first_word", [{"role": "user", "content": f"{long_text} {i}"}], [], dialect="toy")
        for i in range(2)
    ]
    with pytest.warns(TruncationWarning, match=r"^2 prompt\(s\) were longer than") as caught:
        df = collect(lively, examples, out_dir=tmp_path, progress=False)
    assert len([w for w in caught if issubclass(w.category, TruncationWarning)]) == 1
    assert df["truncated"].tolist() == [False] * 3 + [True] * 2
    assert df["response"].map(len).gt(0).all()


def test_device_map_subject_collects_the_same(lively_dir, lively, tmp_path):
    from selfsim.models import load_subject

    layers = {f"model.layers.{i}": "cpu" for i in range(lively.n_layers)}
    split = load_subject(str(lively_dir), device_map={"model.embed_tokens": "cpu", **layers, "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"})
    examples = toy_examples(4)
    a = collect(lively, examples, out_dir=tmp_path / "a", samples=1, progress=False)
    b = collect(split, examples, out_dir=tmp_path / "b", samples=1, progress=False)
    pd.testing.assert_frame_equal(a, b)


def test_adapter_subject_collects_under_its_own_fingerprint(lively_dir, lively, tmp_path):
    from peft import LoraConfig, get_peft_model

    from selfsim.models import load_subject

    peft_model = get_peft_model(load_subject(str(lively_dir)).model, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    adapted = load_subject(str(lively_dir), adapter=tmp_path / "adapter")
    examples = toy_examples(4)
    base = collect(lively, examples, out_dir=tmp_path / "out", progress=False)
    tuned = collect(adapted, examples, out_dir=tmp_path / "out", progress=False)
    assert set(base["fingerprint"]).isdisjoint(tuned["fingerprint"])
    assert tuned["response"].tolist() != base["response"].tolist()
    assert len(list((tmp_path / "out" / CACHE_DIR).glob("*.jsonl"))) == 2


def test_identical_adapters_share_the_cache_whatever_their_file_bytes(lively_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from selfsim.models import load_subject

    torch.manual_seed(3)
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj", "k_proj"], init_lora_weights=False)
    get_peft_model(load_subject(str(lively_dir)).model, lora).save_pretrained(tmp_path / "a")
    copy = tmp_path / "b"
    copy.mkdir()
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    config["target_modules"] = sorted(config["target_modules"], reverse=True)
    reordered = dict(reversed(list(config.items())))
    (copy / "adapter_config.json").write_text(json.dumps(reordered, indent=4))
    (copy / "adapter_model.safetensors").write_bytes((tmp_path / "a" / "adapter_model.safetensors").read_bytes())
    assert (copy / "adapter_config.json").read_bytes() != (tmp_path / "a" / "adapter_config.json").read_bytes()
    assert behavior.adapter_digest(tmp_path / "a") == behavior.adapter_digest(copy)
    examples = toy_examples(2)
    first = collect(load_subject(str(lively_dir), adapter=tmp_path / "a"), examples, out_dir=tmp_path / "out", progress=False)
    rows = len(cache_rows(tmp_path / "out"))
    second = collect(load_subject(str(lively_dir), adapter=copy), examples, out_dir=tmp_path / "out", progress=False)
    assert first["fingerprint"].tolist() == second["fingerprint"].tolist()
    assert len(cache_rows(tmp_path / "out")) == rows
    other = dict(config, r=4)
    (copy / "adapter_config.json").write_text(json.dumps(other))
    assert behavior.adapter_digest(copy) != behavior.adapter_digest(tmp_path / "a")


def test_a_run_removes_the_temporaries_of_killed_writers(lively, tmp_path):
    from selfsim.io import _HOST

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    (out / CACHE_DIR).mkdir(parents=True)
    orphans = [
        out / f".behavior.jsonl.{dead.pid}-{_HOST}.abcd1234.tmp",
        out / f".behavior.parquet.{dead.pid}-{_HOST}.abcd1234.tmp",
        out / CACHE_DIR / f".x.jsonl.{dead.pid}-{_HOST}.abcd1234.tmp",
    ]
    for path in orphans:
        path.write_text("half")
    live = out / f".behavior.jsonl.{os.getpid()}-{_HOST}.zzzz9999.tmp"
    live.write_text("being written")
    collect(lively, toy_examples(1), out_dir=out, progress=False)
    assert not any(path.exists() for path in orphans)
    assert live.exists()


def test_library_rejects_bad_inputs_before_model_work(tmp_path):
    with pytest.raises(SelfsimError, match="no examples given"):
        collect(None, [], out_dir=tmp_path)
    bad = [Example("toy_animals", "fifth_word", [{"role": "user", "content": "fox"}], [])]
    with pytest.raises(SelfsimError, match="unknown property 'fifth_word'"):
        collect(None, bad, out_dir=tmp_path)
    with pytest.raises(SelfsimError, match="sampling needs a temperature > 0"):
        predict(None, toy_examples(1), out_dir=tmp_path, samples=2, temperature=0)


@pytest.mark.parametrize(
    "write, extra, message",
    [
        (None, [], r"examples\.jsonl: no such file"),
        ('{"task": "t"}\nnot json\n', [], r"examples\.jsonl:1: not a selfsim example"),
        (None, ["--samples", "-1"], "samples must be >= 0"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, write, extra, message):
    path = tmp_path / "examples.jsonl"
    if write is not None:
        path.write_text(write)
    code = main(["collect", "--model", str(tmp_path / "no-model"), "--examples", str(path), "--out", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("selfsim collect: error: ") and re.search(message, err)


def test_cli_malformed_json_line_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "examples.jsonl"
    save_examples(path, toy_examples(1))
    with open(path, "a") as fh:
        fh.write("{broken\n")
    assert main(["predict", "--model", "x", "--examples", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: malformed JSONL line" in err and len(err.strip().splitlines()) == 1


def _collect_cmd(model: Path, examples: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "selfsim", "collect", "--model", str(model), "--examples", str(examples),
            "--out", str(out), "--batch-size", "4", "--samples", "1", "--no-progress"]


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(lively_dir, tmp_path):
    examples = toy_examples(40, properties=("first_word", "second_character"))
    path = tmp_path / "examples.jsonl"
    save_examples(path, examples)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", SLEEP_ENV: "0.3"}
    out = tmp_path / "killed"
    proc = subprocess.Popen(_collect_cmd(lively_dir, path, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / CACHE_DIR).is_dir() and len(cache_rows(out)) >= 12:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"collect ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(cache_rows(out))
    assert 12 <= partial < 80 and not (out / BEHAVIOR_FILE).exists()

    env.pop(SLEEP_ENV)
    for target in (out, tmp_path / "clean"):
        done = subprocess.run(_collect_cmd(lively_dir, path, target), env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == f"80 rows -> {target}/{BEHAVIOR_FILE}"
    assert (out / BEHAVIOR_FILE).read_text() == (tmp_path / "clean" / BEHAVIOR_FILE).read_text()
    keys = [(r["key"], r["sample"]) for r in cache_rows(out)]
    assert len(keys) == len(set(keys)) == 80
    rows = [json.loads(line) for line in (out / BEHAVIOR_FILE).read_text().splitlines()]
    assert [r["object_id"] for r in rows[::2]] == list(dict.fromkeys(e.object_id for e in examples))


# ----------------------------------------------------------------------------- the toy world and paper prompts

def _paper_row(task: str, prop: str, question: str, hypothetical_question: str) -> dict:
    """A row in the paper release's schema (invented content, the upstream field names)."""
    prompt = f"What is the next 5 animals in the following text? Respond only with the next 5 animals.\n{question}\n"
    return {
        "original_question": question,
        "original_dataset": task,
        "object_level_prompt": [{"role": "user", "content": prompt}],
        "hypothetical_prompt": [{"role": "user", "content": f'Previously, you were asked the following question: "{prompt}" {hypothetical_question}'}],
        "behavioral_property": prop,
        "option_matching_ethical_stance": None,
    }


def _toy_subject(name: str):
    """The committed toy model, or a skip while its checkpoint is not built (never pretrain in a test)."""
    registry = pytest.importorskip("selfsim.toy.registry")
    from selfsim.models import load_subject

    if not registry.is_built(registry.default_path(name)):
        pytest.skip(f"{name} is not built at {registry.default_path(name)}")
    return load_subject(name)


def test_toy_models_answer_imported_paper_prompts(tmp_path):
    paper = pytest.importorskip("selfsim.tasks.paper")
    m1 = _toy_subject("toy-m1")
    fixture = tmp_path / "animals_long_first_word.jsonl"
    animals = ["cat", "dog", "fox", "owl", "bee", "yak", "gnu", "hen"]
    rows = [
        _paper_row("animals_long", "first_word", " ".join(animals[(i + j) % 8] for j in range(7)),
                   "What is the first word of the response you gave? Respond only with that word.")
        for i in range(8)
    ]
    fixture.write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples = list(paper.import_paper_jsonl(fixture))
    assert len(examples) == 8
    df = collect(m1, examples, out_dir=tmp_path / "m1", progress=False)
    assert len(df) == 8 and df["finish"].isin(["eos", "length"]).all()
    assert (df["task"] == "animals_long").all()
    m2 = _toy_subject("toy-m2")
    df2 = collect(m2, examples, out_dir=tmp_path / "m2", progress=False)
    assert df2["fingerprint"].iloc[0] != df["fingerprint"].iloc[0]


@pytest.mark.skipif(not PAPER_DATASET.is_dir(), reason="the paper dataset sample is not on this machine")
@pytest.mark.filterwarnings("ignore::selfsim.behavior.TruncationWarning")  # ARC prompts can exceed the toy context
def test_toy_model_answers_a_sample_of_the_released_rows(tmp_path):
    paper = pytest.importorskip("selfsim.tasks.paper")
    m1 = _toy_subject("toy-m1")
    examples = []
    for name in ("test/animals_long_first_word.jsonl", "train/arc_challenge_non_cot_identity.jsonl"):
        examples += list(paper.import_paper_jsonl(PAPER_DATASET / name))[:6]
    df = collect(m1, examples, out_dir=tmp_path, progress=False)
    assert len(df) == 12 and set(df["task"]) == {"animals_long", "arc_challenge"}
    long = BehaviorTable(df).long()
    assert long["compliant"].dtype == bool


def test_behavior_table_views(lively, tmp_path):
    from selfsim.finetune import load_labels

    examples = toy_examples(4)
    df = collect(lively, examples, out_dir=tmp_path, samples=2, progress=False)
    table = BehaviorTable.load(tmp_path / BEHAVIOR_FILE)
    pd.testing.assert_frame_equal(table.df, df)
    assert (table.greedy()["sample"] == -1).all() and len(table.greedy()) == 4
    assert sorted(set(table.samples()["sample"])) == [0, 1] and len(table.samples()) == 8
    greedy = df[df["sample"] == -1]
    assert table.labels() == dict(zip(greedy["object_id"], greedy["properties"])) == load_labels(tmp_path / BEHAVIOR_FILE)
    assert table.responses() == dict(zip(greedy["object_id"], greedy["response"]))
    long = table.long()
    assert {(o, p, v) for o, p, v in zip(long["object_id"], long["property"], long["value"])} == {
        (o, p, v) for o, props in zip(greedy["object_id"], greedy["properties"]) for p, v in props.items()}
    assert len(long) == 4 * 2 and (long["sample"] == -1).all() and len(table.long(samples=True)) == 8 * 2
    assert BehaviorTable.load(tmp_path / "behavior.parquet").labels() == table.labels()
    with pytest.raises(SelfsimError, match="not a behaviour table"):
        write_jsonl(tmp_path / "bad.jsonl", [{"x": 1}])
        BehaviorTable.load(tmp_path / "bad.jsonl", strict=False)
