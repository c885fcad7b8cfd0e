"""Regression (issue 9, defect 3): on a BPE tokenizer P's copy inside H(P) is located by character
offsets, so the closing `."` that merges P's last character with H's quote stays in the copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfsim.examples import Example
from selfsim.interp.pairs import align, content_of, match, match_all
from selfsim.models import Subject

from bpe_tiny import build_bpe_tokenizer

PAPER = Path(__file__).resolve().parents[2] / ".." / "shared" / "paper_dataset"


@pytest.fixture(scope="module")
def bpe():
    """A Subject stub around a trained BPE chat tokenizer: matching needs the tokenizer only."""
    return Subject(name="bpe-tiny", path=Path("."), model=None, tokenizer=build_bpe_tokenizer(), fingerprint="")


def quoted(question: str) -> Example:
    return Example(
        task="stories_sentences", property="first_word", dialect="paper",
        object_messages=[{"role": "user", "content": question}],
        hypothetical_messages=[{"role": "user", "content": f'Previously, you were asked the following question: "{question}" '
                                                           "What is the first word of the response you gave?"}],
    )


def aligned(pair, tokenizer) -> bool:
    """Both copies are exactly the tokens overlapping P's characters, and `align` pairs H's copy with P's
    token for token wherever both tokenizations end on the same character (copy_end with copy_end)."""
    content = content_of(pair.example.object_messages)
    for prompt in (pair.object, pair.hypothetical):
        offsets = tokenizer(prompt.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        begin = prompt.text.rfind(content)
        end = begin + len(content)
        overlapping = [i for i, (a, b) in enumerate(offsets) if max(a, begin) < min(b, end)]
        if list(range(*prompt.copy)) != overlapping:
            return False
    h, o = pair.hypothetical, pair.object
    pairs = align(h, o)
    ends_o = {o.tail(i)[0] for i in o.copy_positions}
    wanted = {i for i in h.copy_positions if h.tail(i)[0] in ends_o}
    same_character = all(h.tail(r)[0] == o.tail(d)[0] for r, d in pairs)
    return same_character and {r for r, _ in pairs} == wanted and pairs[-1] == (h.copy[1] - 1, o.copy[1] - 1)


def test_bpe_merge_of_the_closing_quote_stays_in_the_copy(bpe):
    pair = match(bpe, quoted("What is the next word? Respond with one word."))
    convert = bpe.tokenizer.convert_ids_to_tokens
    h, o = pair.hypothetical, pair.object
    assert convert(h.ids[h.copy[1] - 1]) == '."'  # P's "." merged with the closing quote into one token
    assert convert(o.ids[o.copy[1] - 1]) == "."
    assert convert(h.ids[h.copy[0]]) == convert(o.ids[o.copy[0]]) == "What"
    assert len(h.copy_positions) == len(o.copy_positions) == 11
    assert align(h, o)[-1] == (h.copy[1] - 1, o.copy[1] - 1)
    assert aligned(pair, bpe.tokenizer)


@pytest.mark.skipif(not PAPER.is_dir(), reason="the paper's rows are not present")
def test_every_paper_row_is_aligned_on_a_bpe_tokenizer(bpe):
    from selfsim.tasks.paper import import_paper_jsonl

    examples = list(import_paper_jsonl(PAPER))
    pairs = match_all(bpe, examples)
    merged = [p for p in pairs if bpe.tokenizer.convert_ids_to_tokens(p.hypothetical.ids[p.hypothetical.copy[1] - 1]).endswith('"')]
    bad = [p.example.id for p in pairs if not aligned(p, bpe.tokenizer)]
    assert len(examples) > 0 and len(merged) > 0
    assert bad == [], f"{len(bad)} of {len(pairs)} paper examples misaligned"


def located(pieces: list[str], content: str):
    """A Prompt whose tokens are `pieces`, located by characters as `match` does."""
    from selfsim.interp.pairs import Prompt, locate_copy

    text = "".join(pieces)
    ends = [sum(map(len, pieces[: k + 1])) for k in range(len(pieces))]
    offsets = tuple(zip([0] + ends[:-1], ends))
    begin = text.rfind(content)
    return Prompt(text, tuple(range(len(pieces))), locate_copy(text, offsets, content, "x"), (begin, begin + len(content)), offsets)


def test_shared_text_tokenized_differently_stays_in_register():
    # P ends "...'D'." in both; H's tokenizer writes `'` `."` where P's writes `'.` (SmolLM2 on the paper's arc rows).
    h = located(["<u>", "'C", "',", " '", "D", "'", '."', " x"], "'C', 'D'.")
    o = located(["<u>", "'C", "',", " '", "D", "'.", "\n"], "'C', 'D'.")
    assert h.copy == (1, 7) and o.copy == (1, 6)
    assert align(h, o) == [(1, 1), (2, 2), (3, 3), (4, 4), (6, 5)]  # `'` of H has no counterpart ending with it
    other = located(["<u>", "'B", "',", " '", "E", "'.", "\n"], "'B', 'E'.")  # shares only "'.": D with E, and so on
    assert align(h, other) == [(1, 1), (2, 2), (3, 3), (4, 4), (6, 5)]
    plain = located(["<u>", "'B", "',", " '", "E", "!", "\n"], "'B', 'E!")  # shares nothing: token by token from the end
    assert align(h, plain) == [(2, 1), (3, 2), (4, 3), (5, 4), (6, 5)]
