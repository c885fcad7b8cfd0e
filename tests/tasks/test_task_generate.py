"""Seeded generation of Examples in the paper's English and in the toy dialect."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfsim.errors import SelfsimError
from selfsim.examples import load_examples, save_examples
from selfsim.io import iter_jsonl
from selfsim.tasks import TASKS, Generator, Task, generatable, generate, get_task, hypothetical_messages, meta_question, prompts
from selfsim.tasks.paper import parse_paper_file
from selfsim.tasks.registry import sample
from selfsim.tasks.words import load_words
from selfsim.toy import language

PAPER_DATASET = Path(__file__).resolve().parents[3] / "shared" / "paper_dataset"
PREFIX = 'Previously, you were asked the following question: "'


def content(example_messages: list[dict[str, str]]) -> str:
    assert len(example_messages) == 1 and example_messages[0]["role"] == "user"
    return example_messages[0]["content"]


@pytest.mark.parametrize("dialect", ["paper", "toy"])
@pytest.mark.parametrize("task", ["animals_long", "colors_long", "countries_long", "english_words_long", "numbers"])
def test_generation_is_seeded_and_deterministic(task: str, dialect: str) -> None:
    a = generate(task, n=20, seed=3, dialect=dialect)
    assert a == generate(task, n=20, seed=3, dialect=dialect)
    assert [e.object_id for e in a] != [e.object_id for e in generate(task, n=20, seed=4, dialect=dialect)]
    props = get_task(task).properties_for(dialect)
    assert len(a) == 20 * len(props)
    assert len({e.object_id for e in a}) == 20
    assert len({e.id for e in a}) == len(a)
    assert all(e.dialect == dialect and e.split == TASKS[task].split and e.task == task for e in a)


def test_object_prompts_do_not_depend_on_the_properties_asked() -> None:
    every = generate("animals_long", n=10, seed=0)
    one = generate("animals_long", "third_word", n=10, seed=0)
    assert [e.object_messages for e in one] == [e.object_messages for e in every if e.property == "third_word"]
    assert [e.property for e in every[:7]] == list(TASKS["animals_long"].properties)


def test_paper_animals_prompt_and_hypothetical() -> None:
    (e,) = generate("animals_long", "second_character", n=1, seed=0)
    head = (
        "What is the next 5 animals in the following text? Respond only with the next 5 animals and nothing else, "
        "including punctuation.\n"
    )
    obj = content(e.object_messages)
    assert obj == head + e.original_question + "\n"
    items = e.original_question.split()
    assert e.original_question == " ".join(items) + " " and 7 <= len(items) <= 10
    assert set(items) <= set(load_words("animals"))
    assert content(e.hypothetical_messages) == (
        PREFIX + obj.removesuffix("\n") + '" ' + meta_question(TASKS["animals_long"], "second_character") + "\n"
    )


@pytest.mark.parametrize(
    ("task", "words", "lengths", "trailing"),
    [
        ("colors_long", "colors", {5}, ""),
        ("countries_long", "countries", {3, 4, 5, 6}, ""),
        ("english_words_long", "english_words", {5}, " "),
    ],
)
def test_paper_sequences_use_the_paper_lists_and_lengths(task: str, words: str, lengths: set[int], trailing: str) -> None:
    examples = generate(task, "first_word", n=200, seed=1)
    seen = set()
    for e in examples:
        items = e.original_question.split()
        assert e.original_question == " ".join(items) + trailing
        assert len(items) == len(set(items)) and set(items) <= set(load_words(words))
        assert content(e.object_messages).endswith("\n" + e.original_question + "\n")
        seen.add(len(items))
    assert seen == lengths


def test_paper_numbers() -> None:
    examples = generate("numbers", n=50, seed=0)
    for e in examples:
        items = e.original_question.split()
        assert 7 <= len(items) <= 10 and all(len(x) == 3 and x.isdigit() for x in items)
        assert content(e.object_messages).startswith("What is the next number in the following text?")
        assert content(e.hypothetical_messages).endswith('Respond only with "even" for even and "odd" for odd.\n')


@pytest.mark.parametrize(("task", "family"), [("animals_long", "animals"), ("english_words_long", "english_words")])
def test_toy_sequences_render_through_the_toy_language(task: str, family: str) -> None:
    examples = generate(task, n=30, seed=0, dialect="toy")
    assert {e.property for e in examples} == set(language.TOY_PROPERTIES) & set(TASKS[task].properties)
    for e in examples:
        items = e.original_question.split()
        assert set(items) <= set(language.FAMILIES[family])
        assert content(e.object_messages) == language.sequence_prompt(family, items)
        assert content(e.hypothetical_messages) == language.hypothetical_prompt(content(e.object_messages), e.property)


def test_toy_numbers() -> None:
    examples = generate("numbers", n=10, seed=0, dialect="toy")
    for e in examples:
        numbers = [int(x) for x in e.original_question.split()]
        assert content(e.object_messages) == language.numbers_prompt(numbers)
        assert content(e.hypothetical_messages) == language.hypothetical_prompt(content(e.object_messages), "is_even")


def test_toy_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    for prop, noun in (("among_a_or_c", "a or c"), ("among_b_or_d", "b or d")):
        if prop not in language.TOY_PROPERTIES:
            monkeypatch.setattr(language, "TOY_PROPERTIES", (*language.TOY_PROPERTIES, prop))
            monkeypatch.setitem(language.PROPERTY_NOUNS, prop, noun)
    examples = generate("toy_choice", n=10, seed=0, dialect="toy")
    assert {e.property for e in examples} == {"among_a_or_c", "among_b_or_d"}
    for e in examples:
        options = e.original_question.split()
        families = sorted(sum(w in words for w in options) for words in language.FAMILIES.values())
        assert families == [0, 1, 1, 2] and e.meta["options"] == "abcd"
        assert content(e.object_messages) == language.choice_prompt(options)
        assert content(e.hypothetical_messages) == language.hypothetical_prompt(content(e.object_messages), e.property)


def test_toy_choice_needs_toy_questions_about_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(language, "TOY_PROPERTIES", tuple(p for p in language.TOY_PROPERTIES if not p.startswith("among")))
    with pytest.raises(SelfsimError, match="cannot ask about any property of task 'toy_choice'"):
        generate("toy_choice", n=1, dialect="toy")


def test_generatable() -> None:
    assert set(generatable("paper")) == {"colors_long", "countries_long", "numbers", "animals_long", "english_words_long"}
    assert set(generatable("toy")) == set(generatable("paper")) | {"toy_choice"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "mmlu"}, "imported from the paper's rows"),
        ({"task": "toy_choice"}, "generated only in: toy"),
        ({"task": "animals_long", "properties": "is_even"}, "has no property 'is_even'; valid: first_character"),
        ({"task": "animals_long", "properties": []}, r"\(none given\)"),
        ({"task": "animals_long", "dialect": "klingon"}, "unknown dialect 'klingon'"),
        ({"task": "animals_long", "n": -1}, "n must be non-negative"),
        ({"task": "zoo"}, "unknown task 'zoo'"),
    ],
)
def test_generation_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(SelfsimError, match=message):
        generate(**kwargs)


def test_toy_dialect_refuses_properties_it_cannot_ask() -> None:
    if "ethical_stance" in language.TOY_PROPERTIES:
        pytest.skip("the toy language asks about ethical_stance")
    assert "identity" not in TASKS["animals_long"].properties_for("toy")


def test_too_few_distinct_prompts() -> None:
    tiny = Task("tiny", "train", "sequence", "two prompts only",
                generators={"paper": Generator(sample(lambda: ("a", "b"), (1, 1), True), prompts.paper_sequence("{text}\n"))})
    assert len(generate(tiny, "first_word", n=2)) == 2
    with pytest.raises(SelfsimError, match="only 2 distinct prompts of the 3"):
        generate(tiny, "first_word", n=3)


def test_examples_round_trip_through_jsonl(tmp_path: Path) -> None:
    examples = generate("countries_long", n=5, seed=0) + generate("numbers", n=5, seed=0, dialect="toy")
    save_examples(tmp_path / "ex.jsonl", examples)
    assert load_examples(tmp_path / "ex.jsonl") == examples


def test_hypothetical_keeps_earlier_messages() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say a word.\n"}]
    out = hypothetical_messages("animals_long", "first_word", messages)
    assert out[0] == messages[0]
    assert out[1]["content"].startswith(PREFIX + 'Say a word." What is the first word')
    with pytest.raises(SelfsimError, match="must end with a user message"):
        hypothetical_messages("animals_long", "first_word", messages[:1])


@pytest.mark.skipif(not PAPER_DATASET.is_dir(), reason="shared/paper_dataset is not beside the repository")
def test_paper_wording_reproduces_every_released_row() -> None:
    for path in sorted(PAPER_DATASET.glob("*/*.jsonl")):
        file = parse_paper_file(path)
        task = get_task(file.task)
        generator = task.generators.get("paper")
        for _, row in iter_jsonl(path):
            obj = row["object_level_prompt"]
            assert hypothetical_messages(task, file.property, obj) == row["hypothetical_prompt"], path.name
            if generator is not None:
                rendered, original = generator.render(row["original_question"].split())
                assert (rendered, original) == (obj[0]["content"], row["original_question"]), path.name
