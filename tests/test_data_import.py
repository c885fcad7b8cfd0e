"""`selfsim data import|generate` and `selfsim tasks list` end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfsim.cli import main
from selfsim.examples import load_examples
from selfsim.tasks import generate, hypothetical_messages
from selfsim.tasks.paper import import_paper_jsonl


def release_rows(n: int, prop: str = "second_word") -> list[str]:
    rows = []
    for i in range(n):
        obj = [{"role": "user", "content": f"Continue the list: owl bee {i}\n"}]
        rows.append(json.dumps({
            "original_question": f"owl bee {i}",
            "original_dataset": "animals_long",
            "object_level_prompt": obj,
            "hypothetical_prompt": hypothetical_messages("animals_long", prop, obj),
            "behavioral_property": prop,
            "option_matching_ethical_stance": None,
        }))
    return rows


@pytest.fixture
def release(tmp_path: Path) -> Path:
    root = tmp_path / "release"
    (root / "test").mkdir(parents=True)
    (root / "test" / "animals_long_second_word.jsonl").write_text("\n".join(release_rows(4)) + "\n")
    (root / "test" / "animals_long_third_word.jsonl").write_text("\n".join(release_rows(2, "third_word")) + "\n")
    return root


def test_import_writes_examples_and_prints_counts(release: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "runs" / "examples.jsonl"
    assert main(["data", "import", str(release), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "animals_long_second_word.jsonl: 4 imported" in printed
    assert "animals_long_third_word.jsonl: 2 imported" in printed
    assert f"6 examples from 2 file(s) -> {out}" in printed
    assert load_examples(out) == list(import_paper_jsonl(release))


def test_a_bad_line_leaves_nothing_half_written(release: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "runs" / "examples.jsonl"
    assert main(["data", "import", str(release), "--out", str(out)]) == 0
    previous = out.read_bytes()
    bad = release / "test" / "animals_long_second_word.jsonl"
    bad.write_text("\n".join([*release_rows(2), "{oops", *release_rows(1)]) + "\n")
    capsys.readouterr()
    assert main(["data", "import", str(release), "--out", str(out)]) == 2
    assert f"{bad}:3: malformed JSONL line" in capsys.readouterr().err
    assert out.read_bytes() == previous
    assert [p.name for p in out.parent.iterdir()] == ["examples.jsonl"]


def test_skip_bad_reports_skipped_lines(release: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = release / "test" / "animals_long_second_word.jsonl"
    bad.write_text("\n".join([*release_rows(2), "{oops"]) + "\n")
    out = tmp_path / "examples.jsonl"
    assert main(["data", "import", str(bad), "--out", str(out), "--skip-bad"]) == 0
    assert "animals_long_second_word.jsonl: 2 imported, 1 skipped" in capsys.readouterr().out
    assert len(load_examples(out)) == 2


def test_import_of_a_missing_file_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "import", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("dialect", ["paper", "toy"])
def test_generate(tmp_path: Path, dialect: str, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "g.jsonl"
    args = ["data", "generate", "--task", "animals_long", "--property", "first_word", "--property", "second_character",
            "--n", "7", "--seed", "2", "--dialect", dialect, "--out", str(out)]
    assert main(args) == 0
    assert "14 examples" in capsys.readouterr().out
    assert load_examples(out) == generate("animals_long", ["first_word", "second_character"], n=7, seed=2, dialect=dialect)


def test_generate_refuses_imported_tasks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "generate", "--task", "mmlu", "--out", str(tmp_path / "g.jsonl")]) == 2
    assert "cannot be generated" in capsys.readouterr().err


def test_tasks_list(capsys: pytest.CaptureFixture) -> None:
    assert main(["tasks", "list", "--json", "--split", "test"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["task"] for r in rows} == {
        "animals_long", "english_words_long", "stories_sentences", "mmlu", "myopic_reward", "survival_instinct"
    }
    assert main(["tasks", "list"]) == 0
    table = capsys.readouterr().out
    assert "arc_challenge" in table and "generated (paper, toy)" in table
