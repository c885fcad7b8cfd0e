"""run_verdict's chain: steps cached and resumed, a directory of another run refused, results pandas reads.

The interventions are replaced by hand-made evidence here (their own tests run them on models);
localisation runs for real on a random tiny toy Llama."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from selfsim.errors import SelfsimError
from selfsim.models import load_subject
from selfsim.tasks.generate import generate
from selfsim.verdict import INTERCHANGE_COPY, INTERCHANGE_FINAL, TRANSPLANT, UNTRAINED, Evidence, decide
from selfsim.verdict import run as run_module
from selfsim.verdict.localise import Node
from selfsim.verdict.run import ModelVerdict, VerdictConfig, run_verdict

sys.path.insert(0, str(Path(__file__).parents[1] / "interp"))
from toy_tiny import save_toy_tiny  # noqa: E402  (tests/interp's random toy Llama)


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    s = load_subject(str(save_toy_tiny(tmp_path_factory.mktemp("run"), layers=2)), attn_implementation="eager")
    with torch.no_grad():
        s.base.model.layers[1].mlp.down_proj.weight *= 30
    return s


@pytest.fixture(scope="module")
def examples():
    return generate("animals_long", "first_character", n=30, seed=0, dialect="toy")


@pytest.fixture
def fake_steps(monkeypatch):
    calls: list[str] = []

    def interchange(subject, examples, node, untrained, config):
        calls.append(f"interchange {node}")
        return [Evidence(subject.name, "first_character", site, control, 0.5, 0.4, 0.6, 30)
                for site in (INTERCHANGE_COPY, INTERCHANGE_FINAL) for control in (UNTRAINED, TRANSPLANT)]

    def edit(subject, examples, node, untrained, config):
        calls.append("edit")
        return []

    monkeypatch.setattr(run_module, "_interchange", interchange)
    monkeypatch.setattr(run_module, "_edit", edit)
    return calls


def test_steps_are_cached_and_a_rerun_resumes_without_recomputing(subject, examples, fake_steps, tmp_path):
    out = tmp_path / "v"
    first = run_verdict(subject, examples, out, untrained=subject, node=Node(1, "mlp"), label="m", progress=False)
    assert fake_steps == ["interchange layers.1.mlp", "edit"]
    assert {p.name for p in out.iterdir()} >= {"run.json", "localise.json", "interchange.json", "edit.json",
                                               "verdict.json", "verdict.parquet", "evidence.parquet"}
    again = run_verdict(subject, examples, out, untrained=subject, node=Node(1, "mlp"), label="m", progress=False)
    assert fake_steps == ["interchange layers.1.mlp", "edit"]  # nothing recomputed
    assert again.to_dict() == first.to_dict() == ModelVerdict.load(out).to_dict()
    (v,) = first.verdicts
    assert v.model == "m" and (v.verdict, v.reason) == decide(v.evidence)
    # the localisation ran only on the given node; its gate row decides with the (fake) interchange rows
    assert [str(s.node) for s in first.localisation.ranking] == ["layers.1.mlp"]
    table = pd.read_parquet(out / "verdict.parquet")
    assert table.loc[0, "verdict"] == v.verdict and table.loc[0, "interchange_copy/untrained.effect"] == 0.5
    assert len(pd.read_parquet(out / "evidence.parquet")) == len(v.evidence)


def test_a_directory_of_another_run_is_refused(subject, examples, fake_steps, tmp_path):
    out = tmp_path / "v"
    run_verdict(subject, examples, out, untrained=subject, node=Node(1, "mlp"), config=VerdictConfig(edit=False), progress=False)
    with pytest.raises(SelfsimError, match="differs in config"):
        run_verdict(subject, examples, out, untrained=subject, node=Node(1, "mlp"), progress=False)
    with pytest.raises(SelfsimError, match="differs in examples"):
        run_verdict(subject, examples[:20], out, untrained=subject, node=Node(1, "mlp"),
                    config=VerdictConfig(edit=False), progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(SelfsimError, match="not empty"):
        run_verdict(subject, examples, tmp_path / "other", untrained=subject, progress=False)


def test_bad_config_is_one_line():
    with pytest.raises(SelfsimError, match="valid components"):
        VerdictConfig(components=("resid",))
    with pytest.raises(SelfsimError, match="max_items"):
        VerdictConfig(max_items=1)
    with pytest.raises(SelfsimError, match="n_sets"):
        VerdictConfig(n_sets=0)
