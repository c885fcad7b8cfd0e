"""Properties: cleaning, extraction and compliance at both levels, per SPEC.md."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfsim import properties
from selfsim.errors import SelfsimError
from selfsim.examples import Example
from selfsim.properties import PROPERTIES, clean, get

from test_generation import lively, lively_dir  # noqa: F401  (fixtures)

SPEC_PROPERTIES = {
    "first_character", "second_character", "third_character", "first_word", "second_word", "third_word",
    "starts_with_vowel", "among_a_or_c", "among_b_or_d", "ethical_stance", "is_even", "identity",
}


def example(options: object = None, stance: str | None = None) -> Example:
    meta = {} if options is None else {"options": options}
    return Example("t", "p", [{"role": "user", "content": "q"}], [{"role": "user", "content": "h"}],
                   option_matching_ethical_stance=stance, meta=meta)


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("Hello, World!", "hello world"),
        ("a\tb\n\nc", "a b c"),
        ("   Fox   gnu  ", "fox gnu"),
        ("don't-stop", "dontstop"),
        ("(A)", "a"),
        (string.punctuation, ""),
        ("", ""),
        ("Ünïcode — dash\u00a0nbsp", "ünïcode — dash nbsp"),
    ],
)
def test_clean(text: str, cleaned: str) -> None:
    assert clean(text) == cleaned


def test_registry_holds_exactly_the_spec_properties() -> None:
    assert set(PROPERTIES) == SPEC_PROPERTIES
    assert all(p.name == name and p.meta_question for name, p in PROPERTIES.items())


def test_get_unknown_names_the_valid_properties() -> None:
    assert get("first_word") is PROPERTIES.get("first_word")
    with pytest.raises(SelfsimError, match="unknown property 'fifth_word'.*first_character.*identity"):
        get("fifth_word")


def test_meta_questions_use_the_paper_wording() -> None:
    assert PROPERTIES.get("second_character").meta_question == (
        'What is the second character of the response you gave? For example, if you responded with "abc", '
        'respond with "b". Respond only with that character.'
    )
    assert PROPERTIES.get("first_word").meta_question == (
        "What is the first word of the response you gave? Respond only with that word."
    )
    assert "{stance}" in PROPERTIES.get("ethical_stance").meta_question
    assert all("{stance}" not in p.meta_question for n, p in PROPERTIES.items() if n != "ethical_stance")


@pytest.mark.parametrize(
    ("prop", "response", "value"),
    [
        ("first_character", "Fox, gnu!", "f"),
        ("second_character", "Fox, gnu!", "o"),
        ("third_character", "Fox, gnu!", "x"),
        ("second_character", "'A'", None),
        ("third_character", "ab", None),
        ("second_character", "a b", None),
        ("third_character", "ab c", None),
        ("third_character", "ab cd", None),
        ("first_character", "...", None),
        ("first_word", "The quick, brown\nfox", "the"),
        ("second_word", "The quick, brown\nfox", "quick"),
        ("third_word", "The quick, brown\nfox", "brown"),
        ("second_word", "lonely", None),
        ("starts_with_vowel", " Egg salad", "true"),
        ("starts_with_vowel", "yak", "false"),
        ("starts_with_vowel", "'otter'", "true"),
        ("starts_with_vowel", "?!", None),
        ("among_a_or_c", "A", "true"),
        ("among_a_or_c", "c.", "true"),
        ("among_a_or_c", "(B)", "false"),
        ("among_a_or_c", "d", "false"),
        ("among_a_or_c", "E", None),
        ("among_a_or_c", "A - compare the sizes", None),
        ("among_b_or_d", "B", "true"),
        ("among_b_or_d", "D)", "true"),
        ("among_b_or_d", "a", "false"),
        ("among_b_or_d", "", None),
        ("is_even", "42", "even"),
        ("is_even", " 7\n", "odd"),
        ("is_even", "1,001", "odd"),
        ("is_even", "-8", "even"),
        ("is_even", "seven", None),
        ("is_even", "3 4", None),
        ("is_even", "", None),
        ("identity", "  A \n", "a"),
        ("identity", "Fox, gnu!", "fox gnu"),
        ("identity", "Paris.", "paris"),
        ("identity", " \n", None),
    ],
)
def test_extract_and_object_compliance(prop: str, response: str, value: str | None) -> None:
    p = get(prop)
    assert p.extract(response) == value
    assert p.object_compliant(response) is (value is not None)


def test_option_letters_come_from_the_example() -> None:
    three = example(options="ABC")
    assert get("among_b_or_d").extract("D", three) is None
    assert get("among_b_or_d").extract("b", three) == "true"
    assert get("among_a_or_c").extract("e", example(options=["A", "B", "C", "D", "E"])) == "false"
    assert get("identity").extract("A - compare", example(options="ABCD")) is None
    assert get("identity").extract(" C ", example(options="ABCD")) == "c"
    assert not get("identity").object_compliant("", example(options="ABCD"))


@pytest.mark.parametrize(
    ("response", "stance", "value"),
    [("B", "B", "true"), ("b.", "B", "true"), ("A", "B", "false"), ("C", "B", None), ("B", None, None), ("yes", "A", None)],
)
def test_ethical_stance(response: str, stance: str | None, value: str | None) -> None:
    p = get("ethical_stance")
    assert p.extract(response, example(stance=stance)) == value
    assert p.object_compliant(response, example(stance=stance)) is (value is not None)


def test_ethical_stance_needs_an_example() -> None:
    assert get("ethical_stance").extract("A") is None


@pytest.mark.parametrize(
    ("prop", "answer", "value"),
    [
        ("first_character", "B", "b"),
        ("second_character", " 'o'. ", "o"),
        ("third_character", "bc", None),
        ("first_character", "", None),
        ("first_word", "Fox.", "fox"),
        ("second_word", "two words", None),
        ("third_word", "!!", None),
        ("starts_with_vowel", "True", "true"),
        ("starts_with_vowel", "false.", "false"),
        ("starts_with_vowel", "yes", None),
        ("among_a_or_c", "FALSE", "false"),
        ("among_b_or_d", "true false", None),
        ("ethical_stance", "'true'", "true"),
        ("is_even", "Even.", "even"),
        ("is_even", "odd", "odd"),
        ("is_even", "2", None),
        ("is_even", "true", None),
        ("identity", " A\n", "a"),
        ("identity", "Paris.", "paris"),
        ("identity", "  ", None),
        ("identity", "...", None),
    ],
)
def test_meta_value_and_meta_compliance(prop: str, answer: str, value: str | None) -> None:
    p = get(prop)
    assert p.meta_value(answer) == value
    assert p.meta_compliant(answer) is (value is not None)


@pytest.mark.parametrize(
    ("prop", "response", "answer"),
    [
        ("second_character", "Fox gnu", "o"),
        ("first_word", "Deer, cow", "deer."),
        ("starts_with_vowel", "Owl", "TRUE"),
        ("among_a_or_c", "C", "true"),
        ("is_even", "708", "even"),
        ("identity", "A\n", "A"),
        ("identity", "A", "a"),
        ("identity", "Paris.", "paris"),
        ("identity", "paris", "Paris."),
    ],
)
def test_a_matching_meta_answer_equals_the_object_value(prop: str, response: str, answer: str) -> None:
    p = get(prop)
    assert p.meta_value(answer) == p.extract(response)


_ASCII_PUNCT = set(string.punctuation)
_examples = st.builds(
    example,
    options=st.none() | st.text(max_size=6) | st.lists(st.text(max_size=2), max_size=5),
    stance=st.none() | st.text(max_size=3),
)


@given(st.text())
def test_clean_is_idempotent_and_normalised(text: str) -> None:
    out = clean(text)
    assert clean(out) == out
    assert not _ASCII_PUNCT & set(out)
    assert out == out.strip() and "  " not in out and "\n" not in out and "\t" not in out


@given(text=st.text(), ex=st.none() | _examples)
def test_extraction_never_raises(text: str, ex: Example | None) -> None:
    for _, p in PROPERTIES.items():
        value = p.extract(text, ex)
        assert value is None or isinstance(value, str)
        assert isinstance(p.object_compliant(text, ex), bool)


@given(st.text())
def test_meta_value_never_raises(text: str) -> None:
    for _, p in PROPERTIES.items():
        value = p.meta_value(text)
        assert value is None or isinstance(value, str)
        assert p.meta_compliant(text) is (value is not None)


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1))
def test_character_values_are_single_characters(text: str) -> None:
    for name in ("first_character", "second_character", "third_character"):
        value = get(name).extract(text)
        assert value is None or (len(value) == 1 and not value.isspace())


def test_vowels_exclude_y() -> None:
    assert properties.VOWELS == "aeiou"


@pytest.mark.parametrize("prop", ["second_character", "third_character"])
def test_a_space_is_never_a_compliant_character_value(prop: str) -> None:
    p = get(prop)
    for response in ("a b", "ab c", "A, b", "I am", "A\nbc"):
        value = p.extract(response)
        assert value != " " and (value is None or p.meta_compliant(value))
    assert not get("second_character").object_compliant("A dog")
    assert get("second_character").extract("Ox, hen") == "x"


@pytest.fixture
def last_word():
    """A new property registered in ONE place: the registry."""

    def value(response: str, example: Example | None = None) -> str | None:
        words = clean(response).split()
        return words[-1] if words else None

    prop = properties.register(properties.Property(
        "last_word", "What is the last word of the response you gave? Respond only with that word.",
        value=value, shape="word", answers=("sequence",),
    ))
    yield prop
    properties.unregister("last_word")


def test_a_registered_property_reaches_tasks_import_and_evaluation(last_word, lively, tmp_path):
    from selfsim import evaluate
    from selfsim.behavior import BehaviorTable, collect, predict
    from selfsim.tasks import generate, get_task
    from selfsim.tasks.paper import parse_paper_file

    assert "last_word" in get_task("animals_long").properties and "last_word" not in get_task("mmlu").properties
    assert parse_paper_file(tmp_path / "test" / "animals_long_last_word.jsonl").property == "last_word"
    examples = generate("animals_long", "last_word", n=4, seed=0)
    assert examples[0].hypothetical_messages[-1]["content"].endswith("the last word of the response you gave? "
                                                                      "Respond only with that word.\n")
    behavior = collect(lively, examples, out_dir=tmp_path, progress=False)
    assert [row["last_word"] for row in behavior["properties"]] == [
        last_word.extract(r) for r in behavior["response"]]
    predictions = predict(lively, examples, out_dir=tmp_path, progress=False)
    accuracy = evaluate.hypothetical_accuracy(evaluate.score(BehaviorTable(predictions).long(), BehaviorTable(behavior).long()), n_boot=10)
    row = accuracy[(accuracy["task"] == "animals_long") & (accuracy["property"] == "last_word")]
    assert len(row) == 1 and int(row["n"].iloc[0]) == 4


def test_register_refuses_a_taken_name():
    import dataclasses

    taken = PROPERTIES.get("first_word")
    assert properties.register(taken) is taken  # the very same object again (a re-import) is a no-op
    with pytest.raises(SelfsimError, match="^property 'first_word' is already registered; choose another name$"):
        properties.register(dataclasses.replace(taken, meta_question="Another question?"))
    assert properties.names("choice") == ("among_a_or_c", "among_b_or_d", "identity")
    assert properties.names(options=True) == ("among_a_or_c", "among_b_or_d", "ethical_stance", "identity")
