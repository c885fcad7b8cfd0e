"""Matched (P, H) prompts: the copy of P located by character offsets, padding, pairing and alignment."""

from __future__ import annotations

import pytest

from selfsim.errors import SelfsimError
from selfsim.examples import Example
from selfsim.interp.pairs import (
    Prompt,
    align,
    batch_of,
    locate_copy,
    match,
    match_all,
    padded,
    pair_up,
    tokenize,
)
from selfsim.tasks import generate
from selfsim.toy.language import hypothetical_prompt, sequence_prompt

from toy_tiny import save_toy_tiny


@pytest.fixture(scope="module")
def toy_tiny(tmp_path_factory):
    from selfsim.models import load_subject

    return load_subject(str(save_toy_tiny(tmp_path_factory.mktemp("toy_tiny"))), attn_implementation="eager")


def example(items: list[str], prop: str = "first_word") -> Example:
    content = sequence_prompt("animals", items, 3)
    return Example(
        task="animals_long", property=prop, dialect="toy",
        object_messages=[{"role": "user", "content": content}],
        hypothetical_messages=[{"role": "user", "content": hypothetical_prompt(content, prop)}],
    )


def test_copy_of_p_is_located_in_both_prompts(toy_tiny):
    pair = match(toy_tiny, example(["fox", "gnu", "cat"]))
    content = tokenize(toy_tiny, "next 3 animals : fox gnu cat ?")
    for prompt in (pair.object, pair.hypothetical):
        start, end = prompt.copy
        assert list(prompt.ids[start:end]) == content
        assert prompt.ids == tuple(tokenize(toy_tiny, prompt.text))
    assert pair.object.copy[0] == 2  # after <s> <user>
    assert pair.hypothetical.copy[0] > pair.object.copy[0]
    assert pair.hypothetical.final == len(pair.hypothetical.ids) - 1


def test_padded_positions_index_the_left_padded_batch(toy_tiny):
    pairs = match_all(toy_tiny, [example(["fox"]), example(["fox", "gnu", "cat", "owl", "bee"])])
    prompts = [p.hypothetical for p in pairs]
    batch = batch_of(toy_tiny, prompts)
    for row, prompt in enumerate(prompts):
        for pos in (*prompt.copy_positions, prompt.final):
            assert batch.input_ids[row, padded(prompt, batch.width, pos)] == prompt.ids[pos]
    assert batch.attention_mask[0].sum() == prompts[0].length < batch.width


def test_missing_copy_is_a_clear_error(toy_tiny):
    bad = Example(
        task="animals_long", property="first_word", dialect="toy",
        object_messages=[{"role": "user", "content": "next 3 animals : fox gnu cat ?"}],
        hypothetical_messages=[{"role": "user", "content": "previously you were asked : next 3 animals : owl bee ?"}],
    )
    with pytest.raises(SelfsimError, match="P's content does not occur"):
        match(toy_tiny, bad)


def test_copy_is_every_token_overlapping_p_characters():
    offsets = [(0, 3), (3, 5), (5, 9), (9, 11), (11, 12)]  # "abc" "\"d" "efgh" ".\"" "?"
    text = 'abc"defgh."?'
    assert locate_copy(text, offsets, "defgh.", "x") == (1, 4)  # both boundary tokens hold template characters too
    assert locate_copy(text, offsets, "efgh", "x") == (2, 3)
    with pytest.raises(SelfsimError, match="x: P's content does not occur"):
        locate_copy(text, offsets, "xyz", "x")


def test_pairs_share_a_property_and_prefer_equal_lengths(toy_tiny):
    examples = generate("animals_long", ["first_word", "second_character"], n=12, seed=1, dialect="toy")
    matched = match_all(toy_tiny, examples)
    pairs = pair_up(matched, seed=0)
    assert sorted(r for r, _ in pairs) == list(range(len(matched)))
    assert sorted(d for _, d in pairs) == list(range(len(matched)))
    for r, d in pairs:
        assert r != d and matched[r].example.property == matched[d].example.property
    same_length = [len(matched[r].hypothetical.copy_positions) == len(matched[d].hypothetical.copy_positions) for r, d in pairs]
    assert sum(same_length) >= len(pairs) // 2
    assert pair_up(matched, seed=0) == pairs != pair_up(matched, seed=1)


def test_copies_of_different_length_align_from_the_end():
    recipient = Prompt("r", tuple(range(10)), (2, 7))
    donor = Prompt("d", tuple(range(6)), (1, 4))
    assert align(recipient, donor) == [(4, 1), (5, 2), (6, 3)]
