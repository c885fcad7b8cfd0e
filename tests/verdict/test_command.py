"""`selfsim verdict`'s bad input: one line on stderr, exit 2, before any model is loaded."""

from __future__ import annotations

import pytest

from selfsim.cli import main
from selfsim.examples import save_examples
from selfsim.tasks import generate


def run_cli(capsys, *args) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.fixture
def examples_file(tmp_path):
    path = tmp_path / "ex.jsonl"
    save_examples(path, generate("animals_long", "first_character", n=4, seed=0, dialect="toy"))
    return path


@pytest.mark.parametrize("args, message", [
    ([], "give --model and --examples"),
    (["--model", "toy-m1", "--examples", "EX"], "needs an untrained control"),
    (["--planted", "--model", "toy-m1"], "--planted builds its own"),
    (["--model", "toy-m1", "--untrained", "toy-m2", "--examples", "EX", "--property", "first_word"], "holds 0 example"),
    (["--model", "toy-m1", "--untrained", "toy-m2", "--examples", "EX", "--layers", "0,x"], "comma list of integers"),
    (["--model", "toy-m1", "--untrained", "toy-m2", "--examples", "EX", "--layers", "99"], "layer"),
    (["--model", "toy-m1", "--untrained", "toy-m2", "--examples", "EX", "--node", "mlp"], "LAYER.COMPONENT"),
    (["--model", "toy-m1", "--untrained", "toy-m2", "--examples", "EX", "--components", "resid"], "valid components"),
    (["--model", "toy-m1", "--untrained", "toy-m2", "--examples", "EX", "--max-items", "1"], "max_items"),
    (["--model", "toy-m1", "--untrained", "toy-m2", "--examples", "missing.jsonl"], "missing.jsonl"),
    (["--planted", "--kinds", "nonsense"], "unknown planted kind"),
])
def test_bad_input_is_one_line_before_loading(capsys, tmp_path, examples_file, monkeypatch, args, message):
    import selfsim.models

    def no_loading(*a, **k):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(selfsim.models, "load_subject", no_loading)
    monkeypatch.chdir(tmp_path)
    args = [str(examples_file) if a == "EX" else a for a in args]
    code, err = run_cli(capsys, "verdict", *args, "--out", tmp_path / "out")
    assert code == 2 and len(err) == 1 and message in err[0], err


@pytest.mark.slow
def test_verdict_end_to_end_writes_one_row_per_property_and_resumes(capsys, tmp_path, examples_file):
    """Two random tiny toy Llamas (model and control): the chain runs, writes its tables, a rerun reads its cache."""
    import sys
    from pathlib import Path

    import pandas as pd

    sys.path.insert(0, str(Path(__file__).parents[1] / "interp"))
    from toy_tiny import save_toy_tiny

    save_examples(examples_file, generate("animals_long", "first_character", n=24, seed=0, dialect="toy"))
    model, control = save_toy_tiny(tmp_path / "m", seed=1, layers=2), save_toy_tiny(tmp_path / "u", seed=2, layers=2)
    args = ["verdict", "--model", model, "--untrained", control, "--examples", examples_file, "--no-edit",
            "--out", tmp_path / "out", "--no-progress"]
    code, err = run_cli(capsys, *args)
    assert code == 0, err
    table = pd.read_parquet(tmp_path / "out" / "verdict.parquet")
    assert list(table["property"]) == ["first_character"]
    assert table.loc[0, "verdict"] in ("supported", "not supported", "inconclusive")
    assert {"interchange_copy/untrained.effect", "interchange_final/transplant.ci_high",
            "interchange_object/none.effect", "interchange_input/none.effect"} <= set(table.columns)
    first = (tmp_path / "out" / "verdict.json").read_text()
    assert run_cli(capsys, *args)[0] == 0
    assert (tmp_path / "out" / "verdict.json").read_text() == first
