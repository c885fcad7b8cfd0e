"""The write guard (issue 18): no command writes into a model, an adapter, a model store, its own input or a
run it does not own; a rerun into its own output directory resumes; a failed claim leaves nothing behind.

`test_no_writer_changes_any_protected_directory` runs every writing command against every kind of
directory and compares every byte before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from selfsim import guard
from selfsim.cli import main
from selfsim.errors import SelfsimError
from selfsim.io import atomic_dir
from selfsim.toy.registry import checkpoints_dir


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")
    monkeypatch.setenv("SELFSIM_CACHE", str(tmp_path / "selfsim-cache"))
    monkeypatch.setattr(guard, "command", None)
    yield
    guard.forget()


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones too) -> sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def fake_model(path: Path) -> Path:
    """A model directory as the guard sees one (files by name; contents copied from toy-m1)."""
    shutil.copytree(checkpoints_dir() / "toy-m1", path)
    return path


def fake_adapter(path: Path, *, owner: str | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "target_modules": ["q_proj"]}))
    (path / "adapter_model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    if owner:  # a finished selfsim finetune
        (path / "finetune.json").write_text(json.dumps({"kind": "lora", "base_fingerprint": "0" * 16}))
        (path / guard.MARKER).write_text(json.dumps({"command": owner, "made_by": "selfsim"}))
    return path


def targets(tmp: Path) -> dict[str, Path]:
    """One directory of every kind a careless --out could point at."""
    from selfsim.zoo import models_dir

    run = tmp / "study-run"
    (run / "pair").mkdir(parents=True)
    (run / "results.json").write_text("{}\n")
    (run / "pair" / "behavior.jsonl").write_text('{"a": 1}\n')
    (run / guard.MARKER).write_text(json.dumps({"command": "someone-else", "made_by": "selfsim"}))
    foreign = tmp / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine\n")
    return {
        "embedded checkpoint": checkpoints_dir() / "toy-m1",
        "embedded checkpoints root": checkpoints_dir(),
        "fetched-model cache": fake_model(models_dir() / "some-model"),
        "model": fake_model(tmp / "model"),
        "adapter (foreign)": fake_adapter(tmp / "adapter"),
        "adapter (selfsim finetune)": fake_adapter(tmp / "ft-adapter", owner="finetune"),
        "run of another command": run,
        "foreign directory": foreign,
    }


def writers(target: Path, tmp: Path) -> dict[str, list[str]]:
    """Every command that writes, aimed at `target` (reading it too where the command can read it)."""
    files = [p for p in sorted(target.iterdir()) if p.is_file() and p.name != guard.MARKER]
    t, f = str(target), str(files[0] if files else target / "new.json")  # file writers aim at a file already there
    ex, labels = str(tmp / "ex.jsonl"), str(tmp / "labels.jsonl")
    return {
        "finetune lora": ["finetune", "--model", "toy-m1", "--examples", ex, "--labels", labels, "--out", t],
        "finetune --full": ["finetune", "--full", "--model", t, "--examples", ex, "--labels", labels, "--out", t],
        "finetune --adapter": ["finetune", "--model", "toy-m1", "--adapter", t, "--examples", ex, "--labels", labels, "--out", t],
        "data generate": ["data", "generate", "--task", "animals_long", "--n", "2", "--out", f],
        "data import": ["data", "import", ex, "--out", f],
        "collect": ["collect", "--model", "toy-m1", "--examples", ex, "--out", t],
        "predict": ["predict", "--model", "toy-m1", "--examples", ex, "--out", t],
        "evaluate": ["evaluate", "--predictions", labels, "--behavior", labels, "--out", f],
        "patch": ["patch", "--model", "toy-m1", "--layer", "0", "--out", t],
        "probe": ["probe", "--model", "toy-m1", "--out", t],
        "sae": ["sae", "--model", "toy-m1", "--out", t],
        "cache": ["cache", "--model", "toy-m1", "--out", t],
        "study": ["study", "--quick", "--out", t],
        "models derive": ["models", "derive", "toy-m1", "--out", t, "--measure", "0"],
        "models derive --json": ["models", "derive", "toy-m1", "--out", str(tmp / "m2"), "--json", f],
        "toy build": ["toy", "build", "--only", "toy-m3", "--steps", "1", "--out", t],
        "verdict": ["verdict", "--planted", "--out", t],
        "verdict on a model": ["verdict", "--model", "toy-m1", "--adapter", t, "--examples", ex, "--out", t],
    }


@pytest.mark.slow
def test_no_writer_changes_any_protected_directory(tmp_path, capsys):
    kinds = targets(tmp_path)
    before = {kind: tree_digest(path) for kind, path in kinds.items()}
    failures = []
    for kind, target in kinds.items():
        for name, argv in writers(target, tmp_path).items():
            capsys.readouterr()
            code = main(argv)
            err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
            ok = code == 2 and len(err) == 1 and str(target) in err[0]
            if not ok:
                failures.append(f"{name} -> {kind}: exit {code}, {err}")
    assert not failures, "\n".join(failures)
    after = {kind: tree_digest(path) for kind, path in kinds.items()}
    assert after == before
    assert not (tmp_path / "m2").exists(), "a refused command left its other output behind"


def test_rerun_into_own_output_resumes_and_another_command_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(guard, "command", "collect")
    assert guard.claim_dir(out) == out
    (out / "behavior.jsonl").write_text("{}\n")
    guard.forget()
    assert guard.claim_dir(out) == out  # the same command: resume
    monkeypatch.setattr(guard, "command", "probe")
    with pytest.raises(SelfsimError, match=r"holds the output of `selfsim collect`"):
        guard.claim_dir(out)


def test_a_failed_command_leaves_no_claimed_directory(tmp_path, capsys):
    out = tmp_path / "a" / "b" / "out"
    code = main(["collect", "--model", "toy-m1", "--examples", str(tmp_path / "missing.jsonl"), "--out", str(out)])
    assert code == 2
    assert not (tmp_path / "a").exists()
    existing = tmp_path / "empty"
    existing.mkdir()
    main(["collect", "--model", "toy-m1", "--examples", str(tmp_path / "missing.jsonl"), "--out", str(existing)])
    assert existing.is_dir() and not any(existing.iterdir())


def test_release_keeps_a_claimed_directory_that_holds_work(tmp_path):
    out = tmp_path / "out"
    guard.claim_dir(out)
    (out / "part.jsonl").write_text("{}\n")
    guard.release()
    assert (out / guard.MARKER).is_file() and (out / "part.jsonl").is_file()


def test_marker_survives_an_atomic_directory_replace(tmp_path):
    out = tmp_path / "m2"
    guard.claim_dir(out)
    guard.forget()
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("{}")
        (tmp / "model.safetensors").write_bytes(b"")
    assert guard.is_marked(out)
    assert guard.claim_dir(out) == out  # a model dir selfsim made there: rerun allowed


def test_claim_file_rules(tmp_path):
    examples = guard.jsonl_with("task", "object_messages")
    mine = tmp_path / "ex.jsonl"
    mine.write_text(json.dumps({"task": "t", "object_messages": []}) + "\n")
    assert guard.claim_file(mine, looks_like=examples) == mine  # rewriting its own kind of file
    other = tmp_path / "notes.jsonl"
    other.write_text('{"x": 1}\n')
    with pytest.raises(SelfsimError, match="is not an examples file"):
        guard.claim_file(other, looks_like=examples, what="an examples file")
    with pytest.raises(SelfsimError, match="also an input"):
        guard.claim_file(mine, reads=[str(mine)], looks_like=examples)
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(SelfsimError, match="model or adapter file"):
        guard.claim_file(weights)
    with pytest.raises(SelfsimError, match="is a directory"):
        guard.claim_file(tmp_path)


def test_symlink_loop_and_unwritable_parent_are_one_line(tmp_path):
    (tmp_path / "l1").symlink_to(tmp_path / "l2")
    (tmp_path / "l2").symlink_to(tmp_path / "l1")
    with pytest.raises(SelfsimError, match="symbolic-link loop"):
        guard.claim_dir(tmp_path / "l1" / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SelfsimError, match="is a file, not a directory"):
        guard.claim_dir(tmp_path / "file" / "out")
    with pytest.raises(SelfsimError, match="File name too long"):
        guard.claim_dir(tmp_path / ("x" * 300) / "out")
    with pytest.raises(SelfsimError, match="not a usable path"):
        guard.claim_file(f"{tmp_path}/a\x00b.json")


def test_an_empty_existing_directory_and_older_runs_by_marker(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert guard.claim_dir(empty) == empty and guard.is_marked(empty)
    old = tmp_path / "old-run"
    old.mkdir()
    (old / "results.json").write_text("{}")
    with pytest.raises(SelfsimError, match="already holds files selfsim did not write"):
        guard.claim_dir(old)
    (old / guard.MARKER).touch()  # the message's advice: adopt a run of an older selfsim
    assert guard.claim_dir(old) == old


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores mode bits")
def test_no_permission_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(SelfsimError, match="no write permission"):
        guard.claim_dir(locked / "out")
