"""The toy world's language: its words, its object-level task templates and its property questions.

Everything the embedded models read is rendered here, in the *toy dialect*: short lowercase
sentences of whitespace-separated vocabulary words. Four kinds of text exist:

- object-level prompts (`sequence_prompt`, `choice_prompt`, `numbers_prompt`), seen in pretraining;
- property questions about a *visible* string (`property_question`), seen in pretraining, so the
  models learn what "second character" or "parity" mean;
- hypothetical questions about the model's *own* answer (`hypothetical_prompt`). They are never
  part of pretraining: self-knowledge may only come from later finetuning. Their words
  (`HYPOTHETICAL_WORDS`) are in the vocabulary but absent from the pretraining corpus.

Every toy word is at least three letters long, so the first three characters of an answer always
come from its first word. The multiple-choice question asks which option starts with a vowel; in
pretraining exactly two options do, so the answer (a letter) is underdetermined between them.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsim.errors import SelfsimError
from selfsim.properties import PROPERTIES

FAMILIES: dict[str, tuple[str, ...]] = {
    "animals": (
        "fox", "gnu", "cat", "owl", "bee", "yak", "dog", "elk", "emu", "eel", "ant", "ape", "bat", "cow",
        "hen", "pig", "rat", "seal", "wolf", "bear", "deer", "duck", "goat", "lion", "mole", "mule",
        "newt", "orca", "swan", "toad", "crab", "ibis", "hare", "lamb", "moth", "otter",
    ),
    "colors": (
        "red", "blue", "green", "black", "white", "pink", "gray", "brown", "amber", "azure", "beige",
        "coral", "cyan", "gold", "indigo", "ivory", "jade", "khaki", "lilac", "lime", "magenta", "maroon",
        "navy", "olive", "orange", "plum", "ruby", "rust", "scarlet", "silver", "tan", "teal", "violet",
        "yellow", "ebony", "mint",
    ),
    "countries": (
        "peru", "chile", "china", "india", "japan", "egypt", "kenya", "spain", "italy", "france", "brazil",
        "canada", "mexico", "cuba", "iran", "iraq", "oman", "chad", "mali", "nepal", "laos", "fiji",
        "ghana", "greece", "norway", "sweden", "poland", "russia", "turkey", "yemen", "haiti", "israel",
        "uganda", "angola", "ecuador", "austria",
    ),
    "english_words": (
        "table", "river", "stone", "chair", "house", "paper", "music", "light", "bread", "cloud", "dream",
        "field", "glass", "heart", "island", "jacket", "kettle", "ladder", "mirror", "needle", "ocean",
        "pencil", "queen", "rocket", "shadow", "tunnel", "umbrella", "valley", "window", "garden",
        "hammer", "basket", "candle", "engine", "idea", "anchor",
    ),
}
FAMILY_LABELS: dict[str, str] = {
    "animals": "animals",
    "colors": "colors",
    "countries": "countries",
    "english_words": "words",
}
# The toy world's words for registered properties (`selfsim.properties`); every word is in TEMPLATE_WORDS.
PROPERTY_NOUNS: dict[str, str] = {
    "first_character": "first character",
    "second_character": "second character",
    "third_character": "third character",
    "first_word": "first word",
    "second_word": "second word",
    "third_word": "third word",
    "starts_with_vowel": "vowel start",
    "is_even": "parity",
}
# The properties the toy world can ask about: the registry's, in registry order, that have a toy noun.
TOY_PROPERTIES: tuple[str, ...] = tuple(p for p in PROPERTIES if p in PROPERTY_NOUNS)
CHOICE_LABELS: tuple[str, ...] = ("a", "b", "c", "d")
NUMBERS: tuple[str, ...] = tuple(str(n) for n in range(100))
LETTERS: tuple[str, ...] = tuple("abcdefghijklmnopqrstuvwxyz")
TEMPLATE_WORDS: tuple[str, ...] = (
    ":", "?", ".", "next", "animals", "colors", "countries", "words", "number", "which", "option", "starts", "with",
    "what", "is", "the", "of", "first", "second", "third", "character", "word", "vowel", "start",
    "parity", "true", "false", "even", "odd",
)
HYPOTHETICAL_WORDS: tuple[str, ...] = (
    "previously", "you", "were", "asked", "your", "answer",
    "response", "gave", "suppose", "would", "be", "question",
)


def vocabulary() -> list[str]:
    """Every non-special word of the toy vocabulary, in a fixed order (ids follow this order)."""
    words = [*LETTERS, *NUMBERS, *TEMPLATE_WORDS, *HYPOTHETICAL_WORDS]
    for family in FAMILIES.values():
        words.extend(family)
    seen: set[str] = set()
    return [w for w in words if not (w in seen or seen.add(w))]


def _check_words(words: Sequence[str], what: str) -> None:
    if not words:
        raise SelfsimError(f"{what} needs at least one word")
    bad = [w for w in words if not w or any(c.isspace() for c in w)]
    if bad:
        raise SelfsimError(f"{what}: words must be non-empty and contain no whitespace, got {bad[:3]}")


def sequence_prompt(family: str, items: Sequence[str], n_next: int = 3) -> str:
    """User content of a continuation prompt: "next 3 animals : fox gnu cat owl ?"."""
    if family not in FAMILIES:
        raise SelfsimError(f"unknown toy family {family!r}; valid families are {', '.join(FAMILIES)}")
    if n_next < 1:
        raise SelfsimError(f"n_next must be at least 1, got {n_next}")
    _check_words(items, "sequence_prompt")
    return f"next {n_next} {FAMILY_LABELS[family]} : {' '.join(items)} ?"


def choice_prompt(options: Sequence[str]) -> str:
    """User content of a 4-option multiple choice: "which option starts with a vowel : a fox b owl c emu d red ?"."""
    if len(options) != len(CHOICE_LABELS):
        raise SelfsimError(f"choice_prompt takes exactly {len(CHOICE_LABELS)} options, got {len(options)}")
    _check_words(options, "choice_prompt")
    body = " ".join(f"{label} {option}" for label, option in zip(CHOICE_LABELS, options))
    return f"which option starts with a vowel : {body} ?"


def numbers_prompt(numbers: Sequence[int]) -> str:
    """User content of the numbers task: "next number : 12 45 7 33 ?"; the answer is a number."""
    if not numbers:
        raise SelfsimError("numbers_prompt needs at least one number")
    bad = [n for n in numbers if not 0 <= int(n) < len(NUMBERS)]
    if bad:
        raise SelfsimError(f"toy numbers lie in 0..{len(NUMBERS) - 1}, got {bad[:3]}")
    return f"next number : {' '.join(str(int(n)) for n in numbers)} ?"


def askable_properties() -> tuple[str, ...]:
    """The properties a toy-dialect hypothetical question can ask about: the pretrained ones (`TOY_PROPERTIES`),
    then registered properties that name a `toy_noun` (never in pretraining)."""
    return TOY_PROPERTIES + tuple(p for p, prop in PROPERTIES.items() if prop.toy_noun and p not in PROPERTY_NOUNS)


def _noun(prop: str) -> str:
    if prop in PROPERTY_NOUNS:
        return PROPERTY_NOUNS[prop]
    noun = PROPERTIES.get(prop).toy_noun if prop in PROPERTIES else ""
    if not noun:
        raise SelfsimError(f"the toy world has no property {prop!r}; valid properties are {', '.join(askable_properties())}")
    unknown = [w for w in noun.split() if w not in TEMPLATE_WORDS]
    if unknown:
        raise SelfsimError(f"property {prop!r}: toy_noun word(s) {unknown} are not toy words; use words among "
                           f"{', '.join(TEMPLATE_WORDS)}")
    return noun


def property_question(prop: str, text: str) -> str:
    """A question about a visible string (pretraining only): "what is the second character of : fox gnu ?"."""
    return f"what is the {_noun(prop)} of : {text} ?"


def hypothetical_prompt(object_content: str, prop: str) -> str:
    """The hypothetical question about the model's own answer to `object_content`; never in pretraining."""
    return f"previously you were asked : {object_content} . what is the {_noun(prop)} of your answer ?"
