"""Attribution patching: one forward/backward, validated against exact single-position patching."""

from __future__ import annotations

import pandas as pd
import pytest

from selfsim.errors import SelfsimError
from selfsim.interp.attribution import compare_with_exact, run_attribution
from selfsim.interp.patching import PatchConfig, run_patching
from selfsim.models import load_subject
from selfsim.tasks import generate

from toy_tiny import save_toy_tiny


@pytest.fixture(scope="module")
def toy_tiny(tmp_path_factory):
    subject = load_subject(str(save_toy_tiny(tmp_path_factory.mktemp("toy_tiny"))), attn_implementation="eager")
    for p in subject.base.parameters():
        p.requires_grad_(False)
    return subject


@pytest.mark.parametrize("backend", ["hooks", "nnsight"])
def test_attribution_ranks_like_exact_patching(toy_tiny, backend):
    examples = generate("animals_long", "first_word", n=8, seed=2, dialect="toy")
    config = PatchConfig(positions="each", components=("resid", "mlp"), backend=backend)
    exact = run_patching([toy_tiny], examples, config).rows
    estimates = run_attribution([toy_tiny], examples, config)
    n_positions = exact[["position"]].drop_duplicates().shape[0]
    assert len(estimates) == len(exact) // 2
    assert estimates.groupby(["component", "layer"]).size().eq(len(estimates) // (2 * toy_tiny.n_layers)).all()
    comparison = compare_with_exact(estimates, exact)
    assert list(comparison["component"]) == ["resid", "mlp"]
    assert (comparison["n_cells"] == toy_tiny.n_layers * n_positions).all()
    assert (comparison["spearman_cells"] > 0.7).all(), comparison
    assert (comparison["spearman_rows"] > 0.5).all(), comparison


def test_comparison_needs_informative_rows():
    empty = pd.DataFrame({"informative": [False], "logit_diff": [0.0], "logit_diff_clean": [0.0], "estimate": [0.0]})
    with pytest.raises(SelfsimError, match="no informative pair"):
        compare_with_exact(empty, empty)
