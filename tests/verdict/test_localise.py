"""Localising g from object runs on a random tiny toy Llama with a planted dominant component."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from selfsim.errors import SelfsimError
from selfsim.interp.pairs import match_all
from selfsim.models import load_subject
from selfsim.tasks.generate import generate
from selfsim.verdict import INTERCHANGE_INPUT, INTERCHANGE_OBJECT, INTERCHANGE_OBJECT_COPY, INTERCHANGE_OBJECT_FINAL, NONE
from selfsim.verdict.localise import Localisation, Node, items, localise, positions

sys.path.insert(0, str(Path(__file__).parents[1] / "interp"))
from toy_tiny import save_toy_tiny  # noqa: E402  (tests/interp's random toy Llama)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """layers.1.mlp's output amplified 30x: it dominates the residual, so it carries M(P); layers.0.mlp is dead."""
    subject = load_subject(str(save_toy_tiny(tmp_path_factory.mktemp("loc"), layers=3)), attn_implementation="eager")
    with torch.no_grad():
        subject.base.model.layers[1].mlp.down_proj.weight *= 30
        subject.base.model.layers[0].mlp.down_proj.weight.zero_()
    return subject


@pytest.fixture(scope="module")
def examples():
    return generate("animals_long", "first_character", n=40, seed=0, dialect="toy")


def test_the_planted_component_is_found_and_a_dead_one_never_moves(planted, examples):
    loc = localise(planted, examples, progress=False)
    assert loc.node == Node(1, "mlp")
    top = next(s for s in loc.ranking if s.node == loc.node)
    assert top.move_low > 0.4 and loc.sharpness[1] > 0
    dead = next(s for s in loc.ranking if s.node == Node(0, "mlp"))
    assert dead.move == dead.kill == 0.0
    assert not top.carries_input and top.carry_n > 0
    assert all(s.carries_input for s in loc.ranking if (s.move, s.kill) > (top.move, top.kill))
    assert [(g.experiment, g.control, g.effect) for g in loc.gate] == [
        (INTERCHANGE_OBJECT, NONE, top.move), (INTERCHANGE_INPUT, NONE, top.carry),
        (INTERCHANGE_OBJECT_COPY, NONE, loc.meta["move_copy_only"]), (INTERCHANGE_OBJECT_FINAL, NONE, loc.meta["move_final_only"])]
    # the amplified output decides at the final position, where the answer is read; at the copy it is diluted
    assert loc.meta["move_final_only"] > loc.meta["move_copy_only"] + 0.3
    assert "at the final position alone" in loc.summary()
    assert Localisation.from_dict(loc.to_dict()) == loc
    assert localise(planted, examples, progress=False) == loc  # seeded: same items, same donors, same numbers


def test_donors_differ_in_value_and_answer_and_positions_end_at_the_final_token(planted, examples):
    pairs, its, dropped = items(planted, examples, seed=0)
    assert len(its) + dropped == len(examples) and its
    for it in its:
        assert it.clean != it.target and it.recipient != it.donor
        where = positions(pairs[it.recipient], pairs[it.donor])
        assert where[-1] == (pairs[it.recipient].object.final, pairs[it.donor].object.final)
        assert all(pairs[it.recipient].object.copy[0] <= r < pairs[it.recipient].object.copy[1] for r, _ in where[:-1])


def test_patching_a_node_with_its_own_clean_output_moves_nothing(planted, examples):
    from selfsim.interp.tracing import get_tracer
    from selfsim.verdict.localise import first_token_ids, read_sites

    pairs = match_all(planted, examples[:8])
    tracer = get_tracer(planted, "hooks")
    site = Node(1, "mlp").site(planted)
    acts = read_sites(planted, tracer, pairs, [site])[site]
    same = [[(q, acts[i][q]) for q in range(p.object.length)] for i, p in enumerate(pairs)]
    prompts = [p.object for p in pairs]
    assert first_token_ids(planted, tracer, prompts, same, site=site, batch_size=3) == first_token_ids(planted, tracer, prompts, [])


def test_bad_input_is_one_line(planted, examples):
    with pytest.raises(SelfsimError, match="valid components"):
        Node(1, "resid")
    with pytest.raises(SelfsimError, match="LAYER.COMPONENT"):
        Node.parse("mlp")
    assert Node.parse("layers.2.mlp") == Node.parse("2.mlp") == Node(2, "mlp")
    with pytest.raises(SelfsimError, match="no examples"):
        localise(planted, [], progress=False)
    with pytest.raises(SelfsimError, match="valid range|layer"):
        localise(planted, examples, layers=[7], progress=False)
