"""Steering and copy patching mechanics on a random tiny toy Llama (the planted models test the science)."""

from __future__ import annotations

import pytest
import torch

from selfsim.errors import SelfsimError
from selfsim.interp.pairs import match_all
from selfsim.interp.steering import SteerConfig, first_tokens, neutral_prompt, patch_copy, read_at, steer
from selfsim.interp.tracing import HookTracer
from selfsim.models import load_subject
from selfsim.verdict import planted

from toy_tiny import save_toy_tiny


@pytest.fixture(scope="module")
def toy_tiny(tmp_path_factory):
    return load_subject(str(save_toy_tiny(tmp_path_factory.mktemp("toy_tiny"))), attn_implementation="eager")


@pytest.fixture(scope="module")
def examples():
    return planted.examples(planted.world(12, 0), per_key=1, seed=0)


def test_adding_nothing_or_writing_the_clean_value_changes_nothing(toy_tiny, examples):
    tracer = HookTracer(toy_tiny)
    prompts = [p.hypothetical for p in match_all(toy_tiny, examples)]
    site = toy_tiny.site(1)
    clean = first_tokens(toy_tiny, tracer, prompts)
    zeros = [{q: torch.zeros(toy_tiny.hidden_size) for q in p.copy_positions} for p in prompts]
    assert first_tokens(toy_tiny, tracer, prompts, site=site, deltas=zeros) == clean
    acts = read_at(toy_tiny, tracer, prompts, site)
    same = [{q: a[q] for q in p.copy_positions} for a, p in zip(acts, prompts)]
    assert first_tokens(toy_tiny, tracer, prompts, site=site, deltas=same, add=False, batch_size=5) == clean


def test_an_added_vector_acts_where_it_is_added(toy_tiny, examples):
    tracer = HookTracer(toy_tiny)
    prompts = [p.object for p in match_all(toy_tiny, examples)]
    last = toy_tiny.site(toy_tiny.n_layers - 1)
    tok = toy_tiny.tokenizer
    target = tok.convert_tokens_to_ids("gold")
    push = 1e3 * toy_tiny.base.get_input_embeddings().weight[target].detach()
    at_final = [{p.final: push} for p in prompts]
    assert set(first_tokens(toy_tiny, tracer, prompts, site=last, deltas=at_final)) == {"gold"}
    # The last layer's output at P's copy never reaches the final position's logits.
    at_copy = [{q: push for q in p.copy_positions} for p in prompts]
    assert first_tokens(toy_tiny, tracer, prompts, site=last, deltas=at_copy) == first_tokens(toy_tiny, tracer, prompts)


def test_neutral_prompt_quotes_p_and_asks_about_the_text(toy_tiny, examples):
    prompt = neutral_prompt(toy_tiny, examples[0])
    assert "your answer" not in prompt.text and prompt.content == examples[0].object_messages[0]["content"]
    words = prompt.content.split()
    assert [toy_tiny.tokenizer.convert_ids_to_tokens(i) for i in prompt.ids[prompt.copy[0] : prompt.copy[1]]] == words


def test_bad_configs_and_powerless_inputs_raise_one_line_errors(toy_tiny, examples):
    with pytest.raises(SelfsimError, match="valid positions"):
        SteerConfig("first_character", position="middle")
    with pytest.raises(SelfsimError, match="scales"):
        SteerConfig("first_character", scales=(0.0,))
    with pytest.raises(SelfsimError, match="first_charcter"):
        SteerConfig("first_charcter")
    with pytest.raises(SelfsimError, match="another property"):
        steer(toy_tiny, examples, SteerConfig("second_character"))
    # Twelve prompts cannot give two answers with >= 12 prompts each: no direction to build.
    with pytest.raises(SelfsimError, match="at least two values"):
        steer(toy_tiny, examples, SteerConfig("first_character", min_per_class=12))
    with pytest.raises(SelfsimError, match="out of range"):
        patch_copy(toy_tiny, examples, layer=9, prop_name="first_character")
