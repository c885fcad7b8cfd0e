"""Planted ground truth: the world, the examples, configs and cache keys (fast); the construction facts (slow)."""

from __future__ import annotations

from collections import Counter

import pytest

from selfsim.errors import SelfsimError
from selfsim.verdict import planted


def test_world_is_a_seeded_balanced_many_to_one_map_whose_property_is_not_the_answer() -> None:
    w = planted.world(48, 0)
    assert w == planted.world(48, 0) and w != planted.world(48, 1)
    assert Counter(w.answer.values()) == {a: 8 for a in planted.ANSWERS}
    assert Counter(w.answer[k] for k in w.trained) == {a: 4 for a in planted.ANSWERS}
    assert Counter(w.letter.values()) == {letter: 16 for letter in planted.LETTERS}
    values = {planted.prop_value(a) for a in planted.ANSWERS}
    assert values == set(planted.LETTERS) and not values & set(planted.ANSWERS)


def test_examples_quote_p_in_h_and_the_neutral_prompt() -> None:
    ex = planted.examples(planted.world(12, 0), per_key=2, seed=0)
    assert len(ex) == 24 and len({e.id for e in ex}) == 24
    content = ex[0].object_messages[0]["content"]
    assert content in ex[0].hypothetical_messages[0]["content"] and content in planted.neutral_content(content)
    assert ex[0].meta["key"] in content.split()


def test_copy_spans_cover_p_in_every_prompt_kind() -> None:
    tok = planted._tokenizer()
    spans = {k: planted.copy_span(tok, k) for k in ("object", "hypothetical", "neutral")}
    assert len({b - a for a, b in spans.values()}) == 1 and spans["object"][0] < spans["hypothetical"][0]


def test_targets_follow_the_kind() -> None:
    w = planted.world(12, 0)
    key = w.keys[0]
    assert planted.target("object", w, key, "self") == w.answer[key]
    assert planted.target("hypothetical", w, key, "self") == w.answer[key][0]
    assert planted.target("hypothetical", w, key, "random_map") == w.letter[key]
    assert planted.target("neutral", w, key, "lookup_swap") == key[0]


def test_bad_configs_raise_and_cache_keys_separate_what_differs() -> None:
    with pytest.raises(SelfsimError, match="valid kinds"):
        planted.PlantedConfig("mirror")
    with pytest.raises(SelfsimError, match="multiple of 6"):
        planted.PlantedConfig("self", n_keys=50)
    a, b = planted.PlantedConfig("self"), planted.PlantedConfig("lookup_swap")
    assert a.digest() != b.digest() and a.digest(stage0=True) == b.digest(stage0=True)
    assert a.digest(stage0=True) != planted.PlantedConfig("self", seed=1).digest(stage0=True)


@pytest.mark.slow
def test_g_lives_in_the_g_block_after_the_shared_stage(tmp_path, monkeypatch) -> None:
    """Construction, not a verdict: swapping the g-block's output in from another key's prompt moves the object
    answer to that key's colour; swapping any other MLP's does not."""
    monkeypatch.setenv("SELFSIM_PLANTED_CACHE", str(tmp_path))
    config = planted.config_for("untrained", 0, stage1_steps=50)
    subject = planted.build(config)
    w = planted.world(config.n_keys, 0)
    assert planted.accuracy(subject, w, "object", w.keys) >= 0.9
    assert planted.block_patch_moves(subject, w, planted.G_LAYER) >= 0.9
    assert all(planted.block_patch_moves(subject, w, layer) <= 0.1 for layer in range(subject.n_layers) if layer != planted.G_LAYER)
    again = planted.build(config)  # from the cache: same weights
    assert all((p == q).all() for p, q in zip(subject.model.parameters(), again.model.parameters()))


def test_a_planted_model_saves_as_a_model_directory_the_cli_loads(tmp_path) -> None:
    from selfsim.examples import Example
    from selfsim.io import read_jsonl
    from selfsim.models import Subject, load_subject

    tok = planted._tokenizer()
    model = planted._new_model(planted.PlantedConfig("untrained", hidden=32), tok).eval()
    w = planted.world(12, 0)
    path = planted.save(Subject("p", tmp_path, model, tok, "p"), tmp_path / "m", w, per_key=1)
    loaded = load_subject(str(tmp_path / "m"))
    assert all((a == b).all() for a, b in zip(model.parameters(), loaded.model.parameters()))
    rows = [Example.from_dict(r) for r in read_jsonl(path)]
    assert [r.meta["key"] for r in rows] == list(w.keys)
