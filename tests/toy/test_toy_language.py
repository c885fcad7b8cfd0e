import random
from collections import Counter

import pytest

from selfsim.errors import SelfsimError
from selfsim.toy.corpus import KINDS, OBJECT_TASKS, iter_batches, sample_choice, sample_object, sample_property, visible_value
from selfsim.toy.language import (
    FAMILIES,
    HYPOTHETICAL_WORDS,
    TOY_PROPERTIES,
    choice_prompt,
    hypothetical_prompt,
    numbers_prompt,
    property_question,
    sequence_prompt,
    vocabulary,
)
from selfsim.toy.registry import EMBEDDED


def test_words_are_lowercase_ascii_unique_and_in_vocabulary():
    vocab = vocabulary()
    assert len(vocab) == len(set(vocab))
    family_words = [w for family in FAMILIES.values() for w in family]
    assert len(family_words) == len(set(family_words))
    assert all(w.isascii() and w.isalpha() and w.islower() and len(w) >= 3 for w in family_words)
    assert set(family_words) | set(HYPOTHETICAL_WORDS) <= set(vocab)
    assert set("abcdefghijklmnopqrstuvwxyz0123456789") <= set(vocab)


def test_templates():
    assert sequence_prompt("animals", ["fox", "gnu"], 2) == "next 2 animals : fox gnu ?"
    assert choice_prompt(["fox", "red", "peru", "owl"]) == "which option starts with a vowel : a fox b red c peru d owl ?"
    assert numbers_prompt([12, 7]) == "next number : 12 7 ?"
    assert property_question("second_character", "fox gnu") == "what is the second character of : fox gnu ?"
    assert hypothetical_prompt("next 1 animals : fox ?", "is_even") == (
        "previously you were asked : next 1 animals : fox ? . what is the parity of your answer ?"
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sequence_prompt("plants", ["oak"]), "unknown toy family 'plants'; valid families are animals"),
        (lambda: choice_prompt(["fox", "owl"]), "exactly 4 options"),
        (lambda: numbers_prompt([100]), r"0\.\.99"),
        (lambda: property_question("identity", "fox"), "no property 'identity'; valid properties are first_character"),
        (lambda: sample_object(random.Random(0), "mmlu"), "unknown toy task 'mmlu'"),
    ],
)
def test_bad_arguments_are_clear(call, message):
    with pytest.raises(SelfsimError, match=message):
        call()


def test_visible_values():
    assert visible_value("second_character", "fox gnu") == "o"
    assert visible_value("third_word", "fox gnu") is None
    assert visible_value("starts_with_vowel", "owl") == "true"
    assert visible_value("starts_with_vowel", "yak") == "false"
    assert visible_value("is_even", "37") == "odd"


def test_object_answers_are_copied_from_the_prompt():
    rng = random.Random(0)
    for task in OBJECT_TASKS:
        for _ in range(50):
            doc = sample_object(rng, task)
            words = doc.content.split()
            assert doc.answer.split() and all(w in words for w in doc.answer.split())


def test_choice_answer_is_one_of_the_two_options_starting_with_a_vowel():
    rng = random.Random(0)
    letters = Counter()
    for _ in range(2000):
        words = (doc := sample_choice(rng)).content.split()
        options = dict(zip(words[7:15:2], words[8:15:2]))
        assert options[doc.answer][0] in "aeiou"
        assert sum(o[0] in "aeiou" for o in options.values()) == 2
        letters[doc.answer] += 1
    assert set(letters) == {"a", "b", "c", "d"} and min(letters.values()) > 400


def test_property_questions_are_answered_correctly():
    rng = random.Random(0)
    for prop in TOY_PROPERTIES:
        for _ in range(30):
            doc = sample_property(rng, prop)
            text = doc.content.split(" : ", 1)[1].removesuffix(" ?")
            assert doc.answer == visible_value(prop, text) and doc.answer != "None"


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_pretraining_corpus_never_contains_the_hypothetical_form(name):
    config = EMBEDDED[name]
    assert set(config.mixture) <= set(KINDS)
    seen = Counter()
    for doc in (d for batch in iter_batches(config.seed, config.mixture, config.batch_size, 300) for d in batch):
        seen.update(doc.content.split())
        seen.update(doc.answer.split())
    assert not set(HYPOTHETICAL_WORDS) & set(seen)
    assert set(seen) <= set(vocabulary())


def test_corpus_stream_is_unchanged_and_uses_the_property_registry():
    """The pretraining stream that built checkpoints/ (digest of seed 0, 8 batches of 64, pinned before the
    property registry took over the toy extraction) and the registry's extraction on every property answer."""
    import hashlib
    import random

    from selfsim.properties import get
    from selfsim.toy.config import default_mixture

    digest = hashlib.sha256()
    for batch in iter_batches(0, default_mixture(), 64, 8):
        for doc in batch:
            digest.update(f"{doc.kind}|{doc.content}|{doc.answer}\n".encode())
    assert digest.hexdigest() == "b6a1e820d3b494074d164fb19a5ac139ae4504ca26242043d3513b9b98e23999"
    assert list(default_mixture())[-len(TOY_PROPERTIES):] == list(TOY_PROPERTIES)
    rng = random.Random(0)
    for prop in TOY_PROPERTIES:
        for _ in range(50):
            doc = sample_property(rng, prop)
            assert doc.answer == get(prop).extract(doc.content.split(" : ", 1)[1].removesuffix(" ?"))
    with pytest.raises(SelfsimError, match="the toy world has no property 'identity'"):
        visible_value("identity", "fox")
