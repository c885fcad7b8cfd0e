import itertools
import json
import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selfsim.cli import main
from selfsim.errors import SelfsimError
from selfsim.examples import Example, save_examples
from selfsim.finetune import (
    FinetuneConfig,
    answer_loss,
    build_training_set,
    collate,
    encode_items,
    global_batch,
    load_labels,
    train,
)
from selfsim.finetune.data import IGNORE_INDEX
from selfsim.guard import MARKER
from selfsim.io import write_jsonl
from selfsim.models import load_subject

ANIMALS = ["fox", "gnu", "cat", "owl", "bee", "yak"]
QUESTIONS = {"first_word": "what is the next", "second_character": "what is the second character of your answer"}
CONFIG = FinetuneConfig(steps=6, batch_size=8, lr=1e-2, save_every=2)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models train fastest single-threaded, above all on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_examples(n: int = 24, seed: int = 0, split: str = "train", task: str = "animals_long") -> tuple[list[Example], dict]:
    """Toy (P, H(P, f)) pairs for two properties, labelled with a fixed rule: the first animal of P."""
    examples, labels = [], {}
    for words in random.Random(seed).sample(list(itertools.permutations(ANIMALS, 3)), n):
        obj = [{"role": "user", "content": "what is the next animals : " + " ".join(words)}]
        for prop, question in QUESTIONS.items():
            hyp = [{"role": "user", "content": f"previously you were asked : {' '.join(words)} ? {question} ?"}]
            examples.append(Example(task, prop, obj, hyp, split=split))
        labels[examples[-1].object_id] = {"first_word": words[0], "second_character": words[0][1]}
    return examples, labels


@pytest.fixture(scope="module")
def items():
    examples, labels = make_examples()
    return build_training_set(examples, labels)


def fresh(model_dir: Path, adapter: Path | None = None):
    return load_subject(str(model_dir), adapter=adapter)


def mean_answer_loss(subject, items) -> float:
    encoded = encode_items(subject, items)
    with torch.no_grad():
        total = answer_loss(subject.model.eval(), collate(encoded, subject.tokenizer.pad_token_id))
    return total.item() / sum(e.n_answer for e in encoded)


def adapter_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def baseline(tiny_llama_dir, items, tmp_path_factory):
    """An uninterrupted run with checkpoints every 2 steps, merged."""
    return train(fresh(tiny_llama_dir), items, replace(CONFIG, merge=True), tmp_path_factory.mktemp("ft") / "base", progress=False)


def test_config_round_trip_and_validation(tmp_path):
    config = FinetuneConfig.preset("paper", seed=3)
    assert (config.rank, config.epochs, config.steps) == (32, 1.0, None)
    assert FinetuneConfig.load(config.save(tmp_path)) == config
    assert FinetuneConfig().target_modules == ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert config.total_steps(130) == 3
    with pytest.raises(SelfsimError, match="unknown finetune config field"):
        FinetuneConfig.from_dict({"rnak": 8})
    with pytest.raises(SelfsimError, match="set exactly one of steps and epochs"):
        FinetuneConfig(epochs=1.0).validate()
    with pytest.raises(SelfsimError, match="merge applies to LoRA adapters"):
        FinetuneConfig(full_finetune=True, merge=True).validate()


def test_load_labels_reads_greedy_rows_in_both_shapes(tmp_path):
    path = tmp_path / "behavior.jsonl"
    write_jsonl(path, [
        {"object_id": "a", "sample": -1, "properties": {"first_word": "fox", "second_character": None}},
        {"object_id": "a", "sample": 0, "properties": {"first_word": "gnu"}},
        {"object_id": "b", "property": "first_word", "value": "owl", "compliant": True},
        {"object_id": "c", "property": "first_word", "value": "x", "compliant": False},
    ])
    assert load_labels(path) == {"a": {"first_word": "fox", "second_character": None}, "b": {"first_word": "owl"}, "c": {"first_word": None}}
    write_jsonl(path, [{"object_id": "a", "properties": {"first_word": "fox"}}, {"object_id": "a", "properties": {"first_word": "cat"}}])
    with pytest.raises(SelfsimError, match=r"behavior.jsonl:2: conflicting labels for object a property first_word"):
        load_labels(path)
    with pytest.raises(SelfsimError, match="no such file"):
        load_labels(tmp_path / "missing.jsonl")


def test_build_training_set_filters_caps_and_is_seeded():
    examples, labels = make_examples(30)
    held_out, held_labels = make_examples(5, seed=1, split="test", task="colors_long")
    labels.update(held_labels)
    first = examples[0]
    labels[first.object_id] = {**labels[first.object_id], "first_word": None}
    labels.pop(examples[2].object_id)
    items = build_training_set(examples + held_out, labels, per_pair=10, seed=1)
    assert len(items) == 20 and {(i.task, i.property) for i in items} == {("animals_long", p) for p in QUESTIONS}
    everything = build_training_set(examples + held_out, labels)
    ids = {i.id for i in everything}
    assert first.id not in ids and examples[1].id in ids
    assert examples[2].id not in ids and examples[3].id not in ids
    assert not ids & {e.id for e in held_out}
    assert all(i.target == labels[i.object_id][i.property] for i in everything)
    assert build_training_set(examples, labels, per_pair=10, seed=1) == items
    assert build_training_set(examples, labels, per_pair=10, seed=2) != items
    with pytest.raises(SelfsimError, match="property second_character appears in the examples but in no behaviour row"):
        build_training_set(examples, {k: {"first_word": v["first_word"]} for k, v in labels.items() if v})
    with pytest.raises(SelfsimError, match="no usable labels: of 60 examples, 60 have no behaviour row"):
        build_training_set(examples, {"other": {"first_word": "fox", "second_character": "o"}})


def test_loss_mask_covers_only_answer_tokens(tiny_llama, items):
    item = next(i for i in items if i.property == "second_character")
    (enc,) = encode_items(tiny_llama, [item])
    tok = tiny_llama.tokenizer
    prompt = tiny_llama.render_chat(item.messages)
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    n_prompt = len(prompt_ids)
    assert enc.input_ids[:n_prompt] == prompt_ids and "what is the second character of your answer ?" in tok.decode(prompt_ids)
    assert enc.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert enc.labels[n_prompt:] == enc.input_ids[n_prompt:] == [tok.convert_tokens_to_ids(item.target), tok.eos_token_id]
    assert tok.decode(enc.input_ids[n_prompt:]) == f"{item.target} </s>" and enc.n_answer == 2


def test_answer_loss_on_padded_batch_equals_per_example_loss(tiny_llama, items):
    chosen = [items[0], items[-1], items[5]]
    encoded = encode_items(tiny_llama, chosen)
    model = tiny_llama.model.eval()
    with torch.no_grad():
        batched = answer_loss(model, collate(encoded, tiny_llama.tokenizer.pad_token_id)).item()
        by_hand = 0.0
        for e in encoded:
            logits = model(input_ids=torch.tensor([e.input_ids])).logits[0, :-1]
            targets = torch.tensor(e.labels[1:])
            by_hand += torch.nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum").item()
    assert batched == pytest.approx(by_hand, rel=1e-5)


def test_global_batches_are_pure_and_cover_each_epoch():
    batches = [global_batch(10, 4, step, seed=0) for step in range(5)]
    assert sorted(sum(batches, [])[:10]) == list(range(10)) and sorted(sum(batches, [])[10:20]) == list(range(10))
    assert global_batch(10, 4, 3, seed=0) == batches[3] and global_batch(10, 4, 3, seed=1) != batches[3]


def test_training_reduces_loss_and_writes_the_run(tiny_llama_dir, items, baseline):
    before = mean_answer_loss(fresh(tiny_llama_dir), items)
    after = mean_answer_loss(fresh(tiny_llama_dir, adapter=baseline), items)
    assert after < before - 0.3
    result = json.loads((baseline / "finetune.json").read_text())
    assert result["kind"] == "lora" and result["steps"] == 6 and result["n_train"] == len(items)
    assert result["pairs"] == {"animals_long/first_word": 24, "animals_long/second_character": 24}
    assert [r["step"] for r in map(json.loads, (baseline / "train_log.jsonl").read_text().splitlines())] == list(range(1, 7))
    assert FinetuneConfig.load(baseline).rank == 8 and not (baseline / "checkpoint").exists()
    assert len((baseline / "items.jsonl").read_text().splitlines()) == len(items)


def test_same_seed_same_adapter_and_merged_weights_match(tiny_llama_dir, items, baseline, tmp_path):
    again = train(fresh(tiny_llama_dir), items, replace(CONFIG, save_every=0), tmp_path / "again", progress=False)
    a, b = adapter_weights(baseline), adapter_weights(again)
    assert a.keys() == b.keys() and len(a) == 2 * 2 * 7
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = train(fresh(tiny_llama_dir), items, replace(CONFIG, seed=1), tmp_path / "other", progress=False)
    assert not torch.equal(adapter_weights(other)[next(iter(a))], next(iter(a.values())))

    ids = torch.tensor([encode_items(fresh(tiny_llama_dir), items[:1])[0].input_ids])
    with torch.no_grad():
        adapted = fresh(tiny_llama_dir, adapter=baseline).model(input_ids=ids).logits
        merged = load_subject(str(baseline / "merged")).model(input_ids=ids).logits
    assert (adapted - merged).abs().max().item() < 1e-5


def test_grad_accumulation_matches_one_micro_batch(tiny_llama_dir, items, baseline, tmp_path):
    accumulated = train(fresh(tiny_llama_dir), items, replace(CONFIG, grad_accum=3, save_every=0), tmp_path / "acc", progress=False)
    a, b = adapter_weights(baseline), adapter_weights(accumulated)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_resume_after_interruption_equals_uninterrupted_run(tiny_llama_dir, items, baseline, tmp_path, monkeypatch):
    import selfsim.finetune.trainer as trainer

    out = tmp_path / "resumed"

    def interrupted(n_items, batch_size, step, seed):
        if step == 3:
            raise KeyboardInterrupt
        return global_batch(n_items, batch_size, step, seed)

    monkeypatch.setattr(trainer, "global_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(fresh(tiny_llama_dir), items, CONFIG, out, progress=False)
    monkeypatch.setattr(trainer, "global_batch", global_batch)
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 2
    with pytest.raises(SelfsimError, match="holds an interrupted finetune; pass --resume"):
        train(fresh(tiny_llama_dir), items, CONFIG, out, progress=False)
    with pytest.raises(SelfsimError, match=r"other settings \(lr: 0.01 -> 0.001\)"):
        train(fresh(tiny_llama_dir), items, replace(CONFIG, lr=1e-3), out, resume=True, progress=False)

    train(fresh(tiny_llama_dir), items, CONFIG, out, resume=True, progress=False)
    a, b = adapter_weights(baseline), adapter_weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (out / "train_log.jsonl").read_text() == (baseline / "train_log.jsonl").read_text()
    assert not (out / "checkpoint").exists()
    with pytest.raises(SelfsimError, match="already holds a finished finetune"):
        train(fresh(tiny_llama_dir), items, CONFIG, out, progress=False)
    assert train(fresh(tiny_llama_dir), items, CONFIG, out, resume=True, progress=False) == out


def test_nan_guard_names_the_step_and_keeps_the_last_checkpoint(tiny_llama_dir, items, tmp_path):
    config = replace(CONFIG, lr=1e30, save_every=1)
    with pytest.raises(SelfsimError, match=r"training diverged at step 2 of 6: loss is nan.*last good checkpoint \(step 1\)"):
        train(fresh(tiny_llama_dir), items, config, tmp_path / "nan", progress=False)
    assert json.loads((tmp_path / "nan" / "checkpoint" / "state.json").read_text())["step"] == 1


def test_training_continues_an_existing_adapter(tiny_llama_dir, items, baseline, tmp_path):
    subject = fresh(tiny_llama_dir, adapter=baseline)
    out = train(subject, items[:8], replace(CONFIG, rank=4, steps=2, save_every=0), tmp_path / "shift", progress=False)
    assert FinetuneConfig.load(out).rank == 8
    a, b = adapter_weights(baseline), adapter_weights(out)
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "finetune.json").read_text())["start_adapter"] == str(baseline)


def test_full_finetune_writes_a_loadable_model(tiny_llama_dir, items, tmp_path):
    out = train(fresh(tiny_llama_dir), items, replace(CONFIG, full_finetune=True, steps=2, save_every=1), tmp_path / "full", progress=False)
    trained, base = load_subject(str(out)), fresh(tiny_llama_dir)
    assert trained.tokenizer.get_vocab() == base.tokenizer.get_vocab()
    assert not torch.equal(trained.base.model.layers[0].mlp.up_proj.weight, base.base.model.layers[0].mlp.up_proj.weight)


def test_cli_flags_override_the_preset_or_config_file(tmp_path):
    from selfsim.cli import build_parser
    from selfsim.commands.finetune import config_from_args

    base = ["finetune", "--model", "m", "--examples", "e", "--labels", "l", "--out", "o"]
    flags = ["--preset", "paper", "--steps", "50", "--per-pair", "all", "--target-modules", "q_proj,v_proj"]
    config = config_from_args(build_parser().parse_args(base + flags))
    assert (config.rank, config.steps, config.epochs, config.per_pair) == (32, 50, None, None)
    assert config.target_modules == ("q_proj", "v_proj")
    FinetuneConfig(rank=4).save(tmp_path)
    config = config_from_args(build_parser().parse_args(base + ["--config", str(tmp_path), "--epochs", "2", "--full"]))
    assert (config.rank, config.steps, config.epochs, config.full_finetune) == (4, None, 2.0, True)


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    examples, labels = make_examples()
    save_examples(root / "examples.jsonl", examples)
    write_jsonl(root / "behavior.jsonl", [{"object_id": k, "sample": -1, "properties": v} for k, v in labels.items()])
    return root


def cli_args(model_dir: Path, root: Path, out: Path, *extra: str) -> list[str]:
    return ["finetune", "--model", str(model_dir), "--examples", str(root / "examples.jsonl"),
            "--labels", str(root / "behavior.jsonl"), "--out", str(out), "--steps", "4", "--batch-size", "8",
            "--save-every", "2", "--no-progress", *extra]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"examples": "missing.jsonl"}, "missing.jsonl: no such file"),
        ({"labels": "other.jsonl"}, "no usable labels"),
        ({"labels": "first_word_only.jsonl"}, "property second_character appears in the examples but in no behaviour row"),
        ({"extra": ["--full", "--merge"]}, "merge applies to LoRA adapters"),
        ({"extra": ["--per-pair", "many"]}, "--per-pair must be a number or 'all'"),
    ],
)
def test_cli_reports_bad_input_in_one_line(tiny_llama_dir, cli_inputs, tmp_path, capsys, change, message):
    write_jsonl(tmp_path / "other.jsonl", [{"object_id": "x", "properties": {"first_word": "fox", "second_character": "o"}}])
    write_jsonl(tmp_path / "first_word_only.jsonl", [{"object_id": "x", "properties": {"first_word": "fox"}}])
    args = cli_args(tiny_llama_dir, cli_inputs, tmp_path / "out", *change.get("extra", []))
    for flag in ("examples", "labels"):
        if flag in change:
            args[args.index(f"--{flag}") + 1] = str(tmp_path / change[flag])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsim finetune: error: ") and message in err and "\n" not in err


@pytest.fixture(scope="module")
def single_process_run(tiny_llama_dir, cli_inputs):
    out = cli_inputs / "single"
    assert main(cli_args(tiny_llama_dir, cli_inputs, out)) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_processes_match_one(tiny_llama_dir, cli_inputs, single_process_run, tmp_path, mode):
    out = tmp_path / mode
    extra = ["--fsdp"] if mode == "fsdp" else []
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "selfsim", *cli_args(tiny_llama_dir, cli_inputs, out, *extra)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["world_size"] == 2
    a, b = adapter_weights(single_process_run), adapter_weights(out)
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


KILL_WINDOWS = [
    "after_items",
    "checkpoint_written",
    "checkpoint_swapping@2",
    "checkpoint_swapped@2",
    "removing_old_checkpoint",
    "after_checkpoint_state@2",
    "adapter_writing",
    "after_adapter",
    "after_result",
    "removing_checkpoints",
]


def kill_args(model_dir: Path, root: Path, out: Path, *extra: str) -> list[str]:
    return [*cli_args(model_dir, root, out), "--steps", "6", *extra]


def run_files(out: Path) -> dict[str, bytes]:
    """The files a run leaves, timing aside (finetune.json without its `seconds`)."""
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    result = json.loads(files.pop("finetune.json"))
    result.pop("seconds")
    files["finetune.json"] = json.dumps(result, sort_keys=True).encode()
    return files


@pytest.fixture(scope="module")
def unkilled_run(tiny_llama_dir, cli_inputs):
    out = cli_inputs / "unkilled"
    assert main(kill_args(tiny_llama_dir, cli_inputs, out)) == 0
    return out


@pytest.mark.parametrize("window", KILL_WINDOWS)
def test_a_kill_in_any_write_window_resumes_to_the_same_bytes(tiny_llama_dir, cli_inputs, unkilled_run, tmp_path, capsys, window):
    out = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "SELFSIM_FAULT": window}
    cmd = [sys.executable, "-m", "selfsim", *kill_args(tiny_llama_dir, cli_inputs, out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 137, proc.stderr[-2000:]
    capsys.readouterr()
    plain = main(kill_args(tiny_llama_dir, cli_inputs, out))
    if plain == 2:
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and ("pass --resume" in err or "already holds a finished finetune" in err), err
        assert main(kill_args(tiny_llama_dir, cli_inputs, out, "--resume")) == 0
    else:
        assert plain == 0
    assert run_files(out) == run_files(unkilled_run)
    assert sorted(p.name for p in out.iterdir() if not p.is_file()) == []
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != MARKER]  # no temporaries


def test_a_half_deleted_checkpoint_of_a_finished_run_is_not_an_interrupted_run(tiny_llama_dir, items, baseline, tmp_path):
    out = tmp_path / "finished"
    train(fresh(tiny_llama_dir), items, CONFIG, out, progress=False)
    ckpt = out / "checkpoint"
    ckpt.mkdir()
    (ckpt / "state.json").write_text(json.dumps({"step": 4}))
    with pytest.raises(SelfsimError, match="already holds a finished finetune"):
        train(fresh(tiny_llama_dir), items, CONFIG, out, progress=False)
    assert train(fresh(tiny_llama_dir), items, CONFIG, out, resume=True, progress=False) == out
    assert not ckpt.exists()


def test_adapter_config_is_written_sorted(baseline):
    text = (baseline / "adapter_config.json").read_text()
    config = json.loads(text)
    assert config["target_modules"] == sorted(config["target_modules"]) and len(config["target_modules"]) == 7
    assert list(config) == sorted(config)
