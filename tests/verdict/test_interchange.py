"""Interchange at g's node and weight-edit transfer: pairing, donors, controls and restoration on a tiny random Llama."""

from __future__ import annotations

import pytest
import torch

from selfsim.errors import SelfsimError
from selfsim.models import Subject
from selfsim.verdict import planted
from selfsim.verdict.edit import edit_transfer, groups_of
from selfsim.verdict.interchange import Runs, donors, interchange
from selfsim.verdict.localise import Node
from selfsim.verdict.rule import EDIT_TRANSFER, INTERCHANGE_COPY, INTERCHANGE_FINAL, TRANSPLANT, UNTRAINED


@pytest.fixture(scope="module")
def tiny() -> Subject:
    tokenizer = planted._tokenizer()
    model = planted._new_model(planted.PlantedConfig("untrained", seed=3, hidden=32), tokenizer).eval()
    with torch.no_grad():  # sharpen the random attention and head so that answers vary with the prompt
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.mul_(50)
            layer.self_attn.q_proj.weight.mul_(20)
            layer.self_attn.k_proj.weight.mul_(20)
        model.lm_head.weight.mul_(20)
    return Subject(name="tiny", path=planted.cache_dir(), model=model, tokenizer=tokenizer, fingerprint="tiny")


@pytest.fixture(scope="module")
def exs():
    return planted.examples(planted.world(12, 0), per_key=2, seed=0)


def test_donors_have_another_value_and_another_answer_than_h(tiny, exs) -> None:
    node = Node(planted.G_LAYER, "mlp")
    runs = Runs.collect(tiny, exs, node.site(tiny), 64)
    items = donors(runs, list(range(len(exs))), seed=0)
    assert items, "a random model's object answers vary"
    for i, j, v in items:
        assert i != j and v == runs.value(j) and v != runs.value(i)
        assert runs.hypothetical_tokens[i] != tiny.tokenizer.convert_tokens_to_ids(v)


def test_interchange_against_itself_is_exactly_zero_over_the_untrained_control(tiny, exs) -> None:
    rows = interchange(tiny, exs, Node(planted.G_LAYER, "mlp"), untrained=tiny, seed=0)
    assert {(r.experiment, r.control) for r in rows} == {
        (s, c) for s in (INTERCHANGE_COPY, INTERCHANGE_FINAL) for c in (UNTRAINED, TRANSPLANT)}
    for r in rows:
        assert 0 <= (r.raw or 0) <= 1 and r.n > 0
        if r.control == UNTRAINED:
            assert r.effect == r.ci_low == r.ci_high == 0.0


def test_interchange_of_the_last_residual_hands_h_the_donors_answer(tiny, exs) -> None:
    """A planted effect: overwriting the final layer's output at H's final position with the object run's on P'
    makes H answer exactly what P' answered, so the rate is f(M(P'))'s token whenever that is M(P')'s token."""
    runs = Runs.collect(tiny, exs, tiny.site(tiny.n_layers - 1, "resid"), 64)
    items = donors(runs, list(range(len(exs))), seed=0)
    from selfsim.verdict.interchange import scores

    got = scores(runs, [runs.pairs[i].hypothetical for i, _, _ in items], items, "final")
    want = [float(runs.object_tokens[j] == tiny.tokenizer.convert_tokens_to_ids(v)) for _, j, v in items]
    assert got == want


def test_edit_transfer_restores_weights_and_pairs_its_controls(tiny, exs) -> None:
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    rows = edit_transfer(tiny, exs, Node(planted.G_LAYER, "mlp"), untrained=tiny, n_sets=1, per_set=4, steps=3)
    after = tiny.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    by = {(r.experiment, r.control): r for r in rows}
    assert by[(EDIT_TRANSFER, UNTRAINED)].effect == 0.0 and by[(EDIT_TRANSFER, UNTRAINED)].n == 4
    assert len(groups_of(exs)) == 12


def test_bad_input_is_one_line(tiny) -> None:
    with pytest.raises(SelfsimError, match="at least one example"):
        interchange(tiny, [], Node(planted.G_LAYER, "mlp"), untrained=tiny)
    with pytest.raises(SelfsimError, match="n_sets and per_set"):
        edit_transfer(tiny, [], Node(planted.G_LAYER, "mlp"), untrained=tiny, n_sets=0)
