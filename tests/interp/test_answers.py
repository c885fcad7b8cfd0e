"""Answer helpers shared by the interp studies: M1's labels resolved in one place."""

from __future__ import annotations

import pytest

from selfsim.interp.answers import LABEL_TARGETS, first_tokens, m1_labels, property_values
from selfsim.models import load_subject
from selfsim.tasks import generate

from toy_tiny import save_toy_tiny


@pytest.fixture(scope="module")
def toy_tiny(tmp_path_factory):
    return load_subject(str(save_toy_tiny(tmp_path_factory.mktemp("toy_tiny"))), attn_implementation="eager")


def test_m1_labels_come_from_the_table_or_default_to_the_first_subjects_own(toy_tiny):
    examples = generate("animals_long", "second_word", n=4, seed=0, dialect="toy")
    own = {"first_token": ["a", None, "c", "d"], "property": [None, "x", "y", "z"]}
    assert m1_labels(toy_tiny, examples, None, own) == own
    table = {examples[0].object_id: "fox gnu", examples[2].object_id: "bee"}
    labels = m1_labels(toy_tiny, examples, table, own)
    assert set(labels) == set(LABEL_TARGETS)
    responses = [table.get(e.object_id) for e in examples]
    assert labels["property"] == property_values(examples, responses) == ["gnu", None, None, None]
    assert labels["first_token"] == first_tokens(toy_tiny, examples, responses)
    assert labels["first_token"][0] == "fox" and labels["first_token"][1] is None
