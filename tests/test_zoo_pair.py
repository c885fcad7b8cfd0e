"""Deriving M2 from a base model, and measuring how often two models' first words differ (tiny random Llama)."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfsim.errors import SelfsimError
from selfsim.zoo import pair as zoo_pair
from selfsim.zoo.pair import DeriveConfig, Disagreement, derive, disagreement

TINY = DeriveConfig(tasks=("colors_long",), n_prompts=4, steps=2, batch_size=2, rank=4, alpha=8.0, lr=1e-2, seed=3)


def _files(path: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(path.iterdir()) if f.is_file()}


def test_derive_is_deterministic_and_changes_the_weights(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    a = derive(str(tiny_llama_dir), tmp_path / "a", TINY, log=lambda _: None)
    b = derive(str(tiny_llama_dir), tmp_path / "b", TINY, log=lambda _: None)
    files_a, files_b = _files(a), _files(b)
    assert zoo_pair.MANIFEST in files_a and "model.safetensors" in files_a and "config.json" in files_a
    assert files_a == files_b
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # the scratch adapter is gone

    base = load_file(tiny_llama_dir / "model.safetensors")
    merged = load_file(a / "model.safetensors")
    assert set(merged) <= set(base)
    assert any(not base[k].equal(merged[k]) for k in merged if "proj" in k)

    other = derive(str(tiny_llama_dir), tmp_path / "c", DeriveConfig(**{**TINY.to_dict(), "tasks": ("colors_long",), "seed": 4}),
                   log=lambda _: None)
    assert _files(other)["model.safetensors"] != files_a["model.safetensors"]


def test_derived_model_loads_and_disagreement_of_a_model_with_itself_is_zero(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from selfsim.models import load_subject

    out = derive(str(tiny_llama_dir), tmp_path / "m2", TINY, log=lambda _: None)
    base, m2 = load_subject(str(tiny_llama_dir)), load_subject(str(out))
    held = zoo_pair.heldout_examples(["colors_long"], 3, TINY.seed, zoo_pair.train_examples(TINY))
    assert len(held) == 3
    assert not {e.object_id for e in held} & {e.object_id for e in zoo_pair.train_examples(TINY)}
    same = zoo_pair.measure(base, base, held, batch_size=2)
    assert same["all"]["n"] == 3 and same["all"]["differ"] == 0
    figures = zoo_pair.measure(base, m2, held, batch_size=2)
    responses = zoo_pair.greedy_responses(m2, held, batch_size=3)
    reference = zoo_pair.greedy_responses(base, held, batch_size=1)
    assert figures["all"]["differ"] == disagreement(reference, responses).differ


def test_disagreement_counts_first_words_after_cleaning() -> None:
    d = disagreement(["The cat.", "red blue", "", "Fox!"], ["the dog", "blue red", "", "fox"])
    assert (d.n, d.differ) == (4, 1)
    assert d.rate == 0.25
    low, high = d.ci95
    assert 0 < low < 0.25 < high < 1
    assert Disagreement(10, 10).ci95[1] == 1.0
    with pytest.raises(SelfsimError, match="paired"):
        disagreement(["a"], ["a", "b"])


def test_rules_label_from_the_prompt() -> None:
    examples = zoo_pair.train_examples(DeriveConfig(tasks=("colors_long",), n_prompts=3))
    items = zoo_pair.training_items(examples, "reverse", 0)
    for e, item in zip(examples, items):
        words = e.original_question.split()
        assert item.target.split() == words[::-1][:5] and item.messages == e.object_messages
    pool = zoo_pair.training_items(examples, "pool", 0)
    assert [i.target for i in pool] == [i.target for i in zoo_pair.training_items(examples, "pool", 0)]
    for e, item in zip(examples, pool):
        assert len(item.target.split()) == 5 and not set(item.target.split()) & set(e.original_question.split())


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (DeriveConfig(rule="nope"), "valid rules are reverse, pool"),
        (DeriveConfig(tasks=("numbers",)), "derive tasks must be among"),
        (DeriveConfig(steps=0), "steps must be >= 1"),
    ],
)
def test_bad_config_is_refused_before_loading(config: DeriveConfig, message: str, tmp_path: Path) -> None:
    with pytest.raises(SelfsimError, match=message):
        derive("/nonexistent/model", tmp_path / "m2", config)


def test_cli_derive_writes_m2_and_reports_disagreement(capsys, tiny_llama_dir: Path, tmp_path: Path) -> None:
    import json

    from selfsim.cli import main

    out, figures = tmp_path / "m2", tmp_path / "derive.json"
    args = ["models", "derive", str(tiny_llama_dir), "--out", str(out), "--tasks", "colors_long", "--n-prompts", "4",
            "--steps", "1", "--batch-size", "2", "--rank", "4", "--measure", "2", "--measure-tasks", "colors_long",
            "--json", str(figures)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"-> {out}" in printed and "colors_long: first words differ on" in printed
    saved = json.loads(figures.read_text())
    assert saved["all"]["n"] == 2 and saved["config"]["steps"] == 1
    assert main(args) == 0
    assert "already holds a derived model" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--rule", "shuffle"], "valid rules are reverse, pool"), (["--measure-tasks", "mmlu"], "--measure-tasks must be among")],
)
def test_cli_derive_bad_input_is_one_line(capsys, extra: list[str], message: str, tmp_path: Path) -> None:
    from selfsim.cli import main

    assert main(["models", "derive", "smollm2-135m-instruct", "--out", str(tmp_path / "x"), *extra]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "x").exists()
