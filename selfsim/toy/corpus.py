"""The synthetic pretraining corpus: object-level tasks and property questions about visible strings.

Object-level answers are *underdetermined* by the data, so each model settles on its own,
prompt-dependent choices: a continuation copies each next word from a random position of the
prompt, a multiple-choice answer is the label of a random one of the two options that start with a
vowel, and a numbers answer is a random one of the numbers shown. (Purely random answers collapse to a constant;
copying keeps the answer a function of the prompt.) Property questions about visible strings
teach what each property means. The hypothetical form never occurs here.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from selfsim.errors import SelfsimError
from selfsim.properties import get as get_property
from selfsim.toy.language import (
    CHOICE_LABELS,
    FAMILIES,
    LETTERS,
    NUMBERS,
    TOY_PROPERTIES,
    choice_prompt,
    numbers_prompt,
    property_question,
    sequence_prompt,
)

OBJECT_TASKS: tuple[str, ...] = (*FAMILIES, "choice", "numbers")
KINDS: tuple[str, ...] = (*OBJECT_TASKS, *TOY_PROPERTIES)
VOWELS = "aeiou"
_WORDS = [w for family in FAMILIES.values() for w in family]
_VOWEL_WORDS = [w for w in _WORDS if w[0] in VOWELS]
_CONSONANT_WORDS = [w for w in _WORDS if w[0] not in VOWELS]
BUCKET_POOL = 4


@dataclass(frozen=True)
class Document:
    """One pretraining conversation: a user prompt of some kind and the assistant's answer."""

    kind: str
    content: str
    answer: str

    def messages(self) -> list[dict[str, str]]:
        """The conversation as chat messages: the user prompt, then the answer."""
        return [{"role": "user", "content": self.content}, {"role": "assistant", "content": self.answer}]


def sample_sequence(rng: random.Random, family: str) -> Document:
    """A continuation prompt over 3-6 distinct family words; each answer word is copied from the prompt."""
    items = rng.sample(FAMILIES[family], rng.randint(3, 6))
    n_next = rng.randint(1, 5)
    answer = " ".join(rng.choice(items) for _ in range(n_next))
    return Document(family, sequence_prompt(family, items, n_next), answer)


def choice_options(rng: random.Random) -> list[str]:
    """Four options in random order, exactly two of them starting with a vowel."""
    options = rng.sample(_VOWEL_WORDS, 2) + rng.sample(_CONSONANT_WORDS, 2)
    rng.shuffle(options)
    return options


def sample_choice(rng: random.Random) -> Document:
    """A multiple choice over `choice_options`; the answer is the label of either vowel-initial option."""
    options = choice_options(rng)
    vowel_labels = [label for label, option in zip(CHOICE_LABELS, options) if option[0] in VOWELS]
    return Document("choice", choice_prompt(options), rng.choice(vowel_labels))


def sample_numbers(rng: random.Random) -> Document:
    """3-6 distinct numbers below 100; the answer is one of them."""
    numbers = rng.sample(range(len(NUMBERS)), rng.randint(3, 6))
    return Document("numbers", numbers_prompt(numbers), str(rng.choice(numbers)))


def sample_object(rng: random.Random, task: str) -> Document:
    """An object-level prompt of one of OBJECT_TASKS with a pretraining answer."""
    if task in FAMILIES:
        return sample_sequence(rng, task)
    if task == "choice":
        return sample_choice(rng)
    if task == "numbers":
        return sample_numbers(rng)
    raise SelfsimError(f"unknown toy task {task!r}; valid tasks are {', '.join(OBJECT_TASKS)}")


def visible_value(prop: str, text: str) -> str | None:
    """The value of a toy property of a clean toy string (None where undefined): the registry's extraction."""
    if prop not in TOY_PROPERTIES:
        raise SelfsimError(f"the toy world has no property {prop!r}; valid properties are {', '.join(TOY_PROPERTIES)}")
    return get_property(prop).extract(text)


def _words(rng: random.Random, n: int) -> list[str]:
    family = FAMILIES[rng.choice(list(FAMILIES))]
    return [rng.choice(family) for _ in range(n)]


def sample_visible_text(rng: random.Random, prop: str) -> str:
    """A string shaped like an object-level answer, on which `prop` is defined.

    Character questions mostly show a single word (spelling is learned fastest at a fixed offset),
    word questions 1-5 words (sometimes numbers), parity questions a number.
    """
    if prop == "is_even":
        return rng.choice(NUMBERS)
    if prop.endswith("_word"):
        n = rng.randint(("first", "second", "third").index(prop.split("_")[0]) + 1, 5)
        if rng.random() < 0.15:
            return " ".join(rng.choice(NUMBERS) for _ in range(n))
        return " ".join(_words(rng, n))
    if prop in ("first_character", "starts_with_vowel") and rng.random() < 0.1:
        return rng.choice(LETTERS)
    return " ".join(_words(rng, 1 if rng.random() < 0.6 else rng.randint(2, 4)))


def sample_property(rng: random.Random, prop: str) -> Document:
    """A property question about a visible string, with its correct answer."""
    text = sample_visible_text(rng, prop)
    return Document(prop, property_question(prop, text), str(visible_value(prop, text)))


def sample_document(rng: random.Random, mixture: Mapping[str, float]) -> Document:
    """One document; `mixture` maps kinds (object tasks and properties) to relative weights."""
    unknown = set(mixture) - set(KINDS)
    if unknown:
        raise SelfsimError(f"unknown corpus kind(s) {sorted(unknown)}; valid kinds are {', '.join(KINDS)}")
    kind = rng.choices(list(mixture), weights=list(mixture.values()))[0]
    if kind in OBJECT_TASKS:
        return sample_object(rng, kind)
    return sample_property(rng, kind)


def _length(doc: Document) -> int:
    return len(doc.content.split()) + len(doc.answer.split())


def iter_batches(seed: int, mixture: Mapping[str, float], batch_size: int, n_batches: int) -> Iterator[list[Document]]:
    """The deterministic batch stream of a pretraining run.

    Documents are drawn `BUCKET_POOL` batches at a time and grouped by length (less padding:
    ~92% of tokens are real instead of ~78%); the pool's batches are then shuffled.
    """
    rng = random.Random(seed)
    done = 0
    while done < n_batches:
        k = min(BUCKET_POOL, n_batches - done)
        docs = sorted((sample_document(rng, mixture) for _ in range(k * batch_size)), key=_length)
        batches = [docs[i * batch_size : (i + 1) * batch_size] for i in range(k)]
        rng.shuffle(batches)
        yield from batches
        done += k
