"""How object prompts P and hypothetical prompts H(P, f) are worded, in each dialect.

`paper`: the English of the paper's released rows, character for character (including the
trailing newline of every user message and the paper's own typos). H(P, f) embeds P's user
content, minus its final newline, in quotes and appends the property's question.
`toy`: the embedded models' language; every string is rendered by `selfsim.toy.language`, imported
lazily because the toy package may pull in model code.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from selfsim.chat import Messages
from selfsim.errors import SelfsimError
from selfsim.toy import language

Render = Callable[[Sequence[str]], tuple[str, str]]

PAPER_HYPOTHETICAL = 'Previously, you were asked the following question: "{prompt}" {question}\n'


def user(content: str) -> Messages:
    """A one-turn chat prompt."""
    return [{"role": "user", "content": content}]


def _last_user(object_messages: Messages) -> str:
    if not object_messages or object_messages[-1].get("role") != "user":
        raise SelfsimError("an object prompt must end with a user message to be asked about hypothetically")
    return object_messages[-1]["content"]


def paper_hypothetical(object_messages: Messages, question: str) -> Messages:
    """H(P, f) in the paper's wording; earlier messages of P (e.g. a system message) are kept."""
    content = PAPER_HYPOTHETICAL.format(prompt=_last_user(object_messages).removesuffix("\n"), question=question)
    return [*object_messages[:-1], {"role": "user", "content": content}]


def toy_hypothetical(object_messages: Messages, prop: str) -> Messages:
    """H(P, f) in the toy dialect (`selfsim.toy.language.hypothetical_prompt`)."""
    return user(language.hypothetical_prompt(_last_user(object_messages), prop))


def paper_sequence(template: str, trailing: str = "") -> Render:
    """Render items into a paper prompt; the joined items (plus `trailing`) are the original question."""

    def render(items: Sequence[str]) -> tuple[str, str]:
        text = " ".join(items) + trailing
        return template.format(text=text), text

    return render


def toy_sequence(family: str) -> Render:
    """Render items of a toy family as a toy continuation prompt."""

    def render(items: Sequence[str]) -> tuple[str, str]:
        return language.sequence_prompt(family, items), " ".join(items)

    return render


def toy_numbers(items: Sequence[str]) -> tuple[str, str]:
    """Render numbers as the toy numbers prompt."""
    return language.numbers_prompt([int(x) for x in items]), " ".join(items)


def toy_choice(items: Sequence[str]) -> tuple[str, str]:
    """Render four option words as the toy multiple-choice prompt."""
    return language.choice_prompt(items), " ".join(items)


def toy_family(family: str) -> Callable[[], tuple[str, ...]]:
    """The words of one toy family, looked up when first drawn."""

    def pool() -> tuple[str, ...]:
        return language.FAMILIES[family]

    return pool


def toy_choice_options(rng: random.Random) -> list[str]:
    """Four options as in the toy pretraining corpus: two words of one family, one of each of two others."""
    pair_family, *others = rng.sample(list(language.FAMILIES), 3)
    options = rng.sample(language.FAMILIES[pair_family], 2) + [rng.choice(language.FAMILIES[f]) for f in others]
    rng.shuffle(options)
    return options


def toy_numbers_pool() -> tuple[str, ...]:
    """The numbers the toy world knows, as strings."""
    return language.NUMBERS


def toy_properties() -> tuple[str, ...]:
    """The properties the toy dialect can ask about."""
    return language.askable_properties()
