"""Import of the paper's released JSONL rows, on fixtures written here in the same format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selfsim.errors import SelfsimError
from selfsim.examples import load_examples, save_examples
from selfsim.tasks import hypothetical_messages
from selfsim.tasks.paper import ImportReport, import_paper_jsonl, paper_files, parse_paper_file

PAPER_DATASET = Path(__file__).resolve().parents[3] / "shared" / "paper_dataset"
CHOICES = "Is a fox a mammal?\n\nChoices:\nA - No, it is a bird.\nB - Yes, it is a mammal."
ANSWER_AB = "\nAnswer with A or B only.\n"


def row(task: str, prop: str, question: str, prompt: str, stance: str | None = None) -> dict[str, Any]:
    """A row in the release schema, built with the paper's hypothetical template."""
    obj = [{"role": "user", "content": prompt}]
    return {
        "original_question": question,
        "original_dataset": task,
        "object_level_prompt": obj,
        "hypothetical_prompt": hypothetical_messages(task if task != "arc_challenge_non_cot" else "arc_challenge", prop, obj),
        "behavioral_property": prop,
        "option_matching_ethical_stance": stance,
    }


def sequence_rows(task: str = "animals_long", prop: str = "first_word", n: int = 3) -> list[dict[str, Any]]:
    words = ["owl bee", "gnu yak", "cat fox", "elk emu", "ant ape"]
    return [row(task, prop, w, f"Continue: {w}\n", stance="the") for w in words[:n]]


def write(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_import_reads_rows_unchanged(tmp_path: Path) -> None:
    rows = sequence_rows()
    path = write(tmp_path / "test" / "animals_long_first_word.jsonl", rows)
    examples = list(import_paper_jsonl(path))
    assert len(examples) == 3
    for e, r in zip(examples, rows, strict=True):
        assert (e.task, e.property, e.split, e.dialect) == ("animals_long", "first_word", "test", "paper")
        assert e.object_messages == r["object_level_prompt"]
        assert e.hypothetical_messages == r["hypothetical_prompt"]
        assert e.original_question == r["original_question"]
        assert e.option_matching_ethical_stance is None
        assert e.meta == {"source": path.name, "line": rows.index(r) + 1, "original_dataset": "animals_long"}


def test_import_streams(tmp_path: Path) -> None:
    path = write(tmp_path / "test" / "animals_long_first_word.jsonl", [*sequence_rows(n=2), "{broken"])
    stream = import_paper_jsonl(path)
    assert isinstance(stream, Iterator)
    assert next(stream).original_question == "owl bee"
    assert next(stream).original_question == "gnu yak"
    with pytest.raises(SelfsimError, match=r"animals_long_first_word.jsonl:3: malformed JSONL line"):
        next(stream)


def test_stance_kept_only_for_ethical_stance_rows(tmp_path: Path) -> None:
    stance = [row("power_seeking", "ethical_stance", CHOICES, CHOICES + ANSWER_AB, stance="B")]
    write(tmp_path / "train" / "power_seeking_ethical_stance.jsonl", stance)
    write(tmp_path / "train" / "wikipedia_long_first_word.jsonl", sequence_rows("wikipedia_long"))
    by_task = {e.task: e for e in import_paper_jsonl(tmp_path)}
    power = by_task["power_seeking"]
    assert power.option_matching_ethical_stance == "B" and power.meta["options"] == "AB"
    assert by_task["wikipedia_long"].option_matching_ethical_stance is None
    assert "options" not in by_task["wikipedia_long"].meta


def test_release_names_and_option_letters(tmp_path: Path) -> None:
    three = "Which is a fish?\n\nAnswer choices:\nA - eel\nB - owl\nC - elk"
    rows = [row("arc_challenge_non_cot", "among_b_or_d", three, three + "\nAnswer with one letter.\n", stance="A")]
    path = write(tmp_path / "arc_challenge_non_cot_among_b_or_d.jsonl", rows)
    (e,) = import_paper_jsonl(path)
    assert (e.task, e.split, e.meta["options"]) == ("arc_challenge", "train", "ABC")
    assert e.option_matching_ethical_stance is None
    assert e.meta["original_dataset"] == "arc_challenge_non_cot"


@pytest.mark.parametrize(
    ("relpath", "task", "prop", "split"),
    [
        ("train/animals_long_third_character.jsonl", "animals_long", "third_character", "train"),
        ("animals_long_third_character.jsonl", "animals_long", "third_character", "test"),
        ("x/mmlu_non_cot_identity.jsonl", "mmlu", "identity", "test"),
        ("test/number_triplets_is_even.jsonl", "number_triplets", "is_even", "test"),
        ("train/arc_challenge_non_cot_among_a_or_c.jsonl", "arc_challenge", "among_a_or_c", "train"),
    ],
)
def test_parse_paper_file(relpath: str, task: str, prop: str, split: str) -> None:
    f = parse_paper_file(Path("/data") / relpath)
    assert (f.task, f.property, f.split) == (task, prop, split)


@pytest.mark.parametrize(
    ("relpath", "message"),
    [
        ("test/animals_long_fifth_word.jsonl", "expected a file named <task>_<property>.jsonl"),
        ("test/first_word.jsonl", "expected a file named"),
        ("test/_first_word.jsonl", "expected a file named"),
        ("test/animals_long_first_word.json", "expected a file named"),
        ("data/number_triplets_is_even.jsonl", "cannot tell the split of unknown task 'number_triplets'"),
    ],
)
def test_parse_paper_file_errors(relpath: str, message: str) -> None:
    with pytest.raises(SelfsimError, match=message):
        parse_paper_file(Path("/data") / relpath)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("hypothetical_prompt"), r"missing field\(s\) \['hypothetical_prompt'\]"),
        (
            lambda r: r.update(behavioral_property="first_character"),
            "behavioral_property 'first_character' does not match the file name's 'first_word'",
        ),
        (lambda r: r.update(object_level_prompt="What next?"), "object_level_prompt must be a non-empty list"),
        (lambda r: r.update(object_level_prompt=[]), "object_level_prompt must be a non-empty list"),
        (lambda r: r.update(hypothetical_prompt=[{"role": "user"}]), "hypothetical_prompt must be a non-empty list"),
        (
            lambda r: r.update(object_level_prompt=[{"role": "assistant", "content": "x"}]),
            "object_level_prompt must end with a user",
        ),
        (lambda r: r.update(original_question=None), "original_question must be a string"),
    ],
)
def test_schema_errors_name_file_and_line(tmp_path: Path, mutate: Any, message: str) -> None:
    rows = sequence_rows()
    mutate(rows[1])
    path = write(tmp_path / "test" / "animals_long_first_word.jsonl", rows)
    with pytest.raises(SelfsimError, match=rf"animals_long_first_word.jsonl:2: not a paper row \({message}"):
        list(import_paper_jsonl(path))


def test_ethical_stance_rows_need_the_option(tmp_path: Path) -> None:
    rows = [row("survival_instinct", "ethical_stance", CHOICES, CHOICES + ANSWER_AB, stance=None)]
    path = write(tmp_path / "test" / "survival_instinct_ethical_stance.jsonl", rows)
    with pytest.raises(SelfsimError, match=":1: not a paper row .*option_matching_ethical_stance"):
        list(import_paper_jsonl(path))


def test_skip_bad_skips_and_counts(tmp_path: Path) -> None:
    rows = sequence_rows(n=4)
    rows[2]["behavioral_property"] = "second_word"
    good = write(tmp_path / "test" / "animals_long_first_word.jsonl", [rows[0], "[1, 2]", "", rows[1], rows[2], "{x", rows[3]])
    other = write(tmp_path / "test" / "animals_long_second_word.jsonl", sequence_rows(prop="second_word", n=2))
    report = ImportReport()
    examples = list(import_paper_jsonl([good, other], skip_bad=True, report=report))
    assert [e.original_question for e in examples] == ["owl bee", "gnu yak", "elk emu", "owl bee", "gnu yak"]
    assert [(c.imported, c.skipped) for c in report.files.values()] == [(3, 3), (2, 0)]


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "test" / "animals_long_first_word.jsonl"
    path.parent.mkdir()
    path.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(SelfsimError, match="not UTF-8 text"):
        list(import_paper_jsonl(path))


def test_paper_files_expands_folders(tmp_path: Path) -> None:
    a = write(tmp_path / "train" / "colors_long_first_word.jsonl", [])
    b = write(tmp_path / "test" / "animals_long_first_word.jsonl", [])
    (tmp_path / "README.md").write_text("not data")
    assert paper_files(tmp_path) == [b, a]
    assert paper_files([a, str(b)]) == [a, b]
    with pytest.raises(SelfsimError, match="no such file or folder"):
        paper_files(tmp_path / "missing.jsonl")


def test_imported_examples_round_trip(tmp_path: Path) -> None:
    write(tmp_path / "test" / "animals_long_first_word.jsonl", sequence_rows())
    write(tmp_path / "train" / "power_seeking_ethical_stance.jsonl",
          [row("power_seeking", "ethical_stance", CHOICES, CHOICES + ANSWER_AB, stance="A")])
    examples = list(import_paper_jsonl(tmp_path))
    save_examples(tmp_path / "out.jsonl", examples)
    assert load_examples(tmp_path / "out.jsonl") == examples


def test_shared_object_prompts_share_object_ids(tmp_path: Path) -> None:
    write(tmp_path / "test" / "animals_long_first_word.jsonl", sequence_rows(prop="first_word"))
    write(tmp_path / "test" / "animals_long_third_character.jsonl", sequence_rows(prop="third_character"))
    examples = list(import_paper_jsonl(tmp_path))
    assert len({e.object_id for e in examples}) == 3 and len({e.id for e in examples}) == 6


@pytest.mark.skipif(not PAPER_DATASET.is_dir(), reason="shared/paper_dataset is not beside the repository")
def test_every_released_file_imports_in_full() -> None:
    files = sorted(PAPER_DATASET.glob("*/*.jsonl"))
    assert files
    report = ImportReport()
    for _ in import_paper_jsonl(PAPER_DATASET, report=report):
        pass
    for path in files:
        with open(path, encoding="utf-8") as fh:
            assert report.files[str(path)].imported == sum(1 for _ in fh), path.name


def test_a_renamed_file_imports_from_its_rows(tmp_path: Path) -> None:
    rows = [*sequence_rows(n=2), *sequence_rows("wikipedia_long", "third_character", n=1)]
    for name in ("rows.jsonl", "animals_long_colour.jsonl", "backup_copy.jsonl", "mine_first_word.txt"):
        path = write(tmp_path / "test" / name, rows)
        examples = list(import_paper_jsonl(path))
        assert [(e.task, e.property, e.split) for e in examples] == [
            ("animals_long", "first_word", "test"), ("animals_long", "first_word", "test"),
            ("wikipedia_long", "third_character", "test"),
        ]
    (e,) = import_paper_jsonl(write(tmp_path / "elsewhere" / "x.jsonl", rows[2:]))
    assert (e.task, e.split) == ("wikipedia_long", "train")


def test_release_alias_in_the_row_maps_to_the_registry(tmp_path: Path) -> None:
    three = "Which is a fish?\n\nAnswer choices:\nA - eel\nB - owl\nC - elk"
    rows = [row("arc_challenge_non_cot", "identity", three, three + "\nAnswer with one letter.\n")]
    (e,) = import_paper_jsonl(write(tmp_path / "renamed.jsonl", rows))
    assert (e.task, e.property, e.split, e.meta["options"]) == ("arc_challenge", "identity", "train", "ABC")


@pytest.mark.parametrize(
    ("name", "mutate", "message"),
    [
        ("colors_long_first_word.jsonl", lambda r: None,
         "original_dataset 'animals_long' \\(task 'animals_long'\\) does not match the file name's task 'colors_long'"),
        ("animals_long_first_word.jsonl", lambda r: r.update(original_dataset="colors_long"),
         "original_dataset 'colors_long' .* does not match the file name's task 'animals_long'"),
        ("rows_second_word.jsonl", lambda r: None, "behavioral_property 'first_word' does not match the file name's 'second_word'"),
        ("rows.jsonl", lambda r: r.update(behavioral_property="fifth_word"), "unknown behavioral_property 'fifth_word'; valid"),
        ("rows.jsonl", lambda r: r.update(behavioral_property=["first_word"]), "unknown behavioral_property"),
        ("rows.jsonl", lambda r: r.pop("original_dataset"), "no original_dataset, and the file name names no registered task"),
        ("rows.jsonl", lambda r: r.update(original_dataset=7), "original_dataset must be a non-empty string"),
    ],
)
def test_row_and_name_conflicts_name_both(tmp_path: Path, name: str, mutate: Any, message: str) -> None:
    rows = sequence_rows(n=2)
    mutate(rows[1])
    path = write(tmp_path / "test" / name, rows)
    with pytest.raises(SelfsimError, match=rf"{name}:[12]: not a paper row \({message}"):
        list(import_paper_jsonl(path))


def test_row_without_original_dataset_takes_the_name(tmp_path: Path) -> None:
    rows = sequence_rows(n=1)
    rows[0].pop("original_dataset")
    (e,) = import_paper_jsonl(write(tmp_path / "animals_long_first_word.jsonl", rows))
    assert (e.task, e.property, e.split) == ("animals_long", "first_word", "test")


def test_unknown_task_without_a_split_folder(tmp_path: Path) -> None:
    rows = sequence_rows("numbers", "is_even", n=1)
    rows[0]["original_dataset"] = "number_triplets"
    path = write(tmp_path / "data" / "rows.jsonl", rows)
    with pytest.raises(SelfsimError, match="cannot tell the split of unknown task 'number_triplets'"):
        list(import_paper_jsonl(path))
    (e,) = import_paper_jsonl(write(tmp_path / "test" / "rows.jsonl", rows))
    assert (e.task, e.split) == ("number_triplets", "test")


@pytest.mark.skipif(not PAPER_DATASET.is_dir(), reason="shared/paper_dataset is not beside the repository")
def test_every_released_row_imports_and_renamed_copies_agree(tmp_path: Path) -> None:
    files = sorted(PAPER_DATASET.glob("*/*.jsonl"))
    expected = 0
    for path in files:
        with open(path, encoding="utf-8") as fh:
            expected += sum(1 for line in fh if line.strip())
    examples = list(import_paper_jsonl(PAPER_DATASET))
    assert len(examples) == expected > 0
    for path in files:
        assert {(e.task, e.property) for e in examples if e.meta["source"] == path.name} == {
            (parse_paper_file(path).task, parse_paper_file(path).property)
        }
    renamed = tmp_path / files[0].parent.name / "renamed.jsonl"
    renamed.parent.mkdir()
    renamed.write_bytes(files[0].read_bytes())
    original = [e for e in examples if e.meta["source"] == files[0].name]
    assert [e.id for e in import_paper_jsonl(renamed)] == [e.id for e in original]
