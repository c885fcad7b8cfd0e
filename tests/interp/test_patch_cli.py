"""`selfsim patch`: argument errors before loading, and a full sweep with attribution on a tiny model."""

from __future__ import annotations

import json
import re

import pytest

from selfsim.cli import main
from selfsim.io import read_json

from toy_tiny import save_toy_tiny


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return save_toy_tiny(tmp_path_factory.mktemp("toy_tiny"))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_layer_out_of_range_fails_before_loading(toy_dir, tmp_path, capsys, monkeypatch):
    import selfsim.models

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(selfsim.models, "load_subject", no_load)
    assert main(["patch", "--model", str(toy_dir), "--layer", "40", "--out", str(tmp_path)]) == 2
    err = one_line_error(capsys)
    assert "layer 40 is out of range" in err and "valid layers are 0..2" in err


def test_toy_m1_layer_40_names_the_valid_range_built_or_not(tmp_path, capsys):
    assert main(["patch", "--model", "toy-m1", "--layer", "40", "--out", str(tmp_path)]) == 2
    assert re.search(r"layer 40 is out of range: toy-m1 has \d+ layers, valid layers are 0\.\.\d+", one_line_error(capsys))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--position", "middle", "--layer", "0"], "unknown --position 'middle'"),
        ([], "give --layer L, or --sweep"),
        (["--layer", "0", "--component", "head"], "unknown component 'head'"),
        (["--layer", "0", "--backend", "pyvene"], "unknown backend 'pyvene'"),
    ],
)
def test_bad_arguments_are_one_line(toy_dir, tmp_path, capsys, args, message):
    assert main(["patch", "--model", str(toy_dir), "--out", str(tmp_path), *args]) == 2
    assert message in one_line_error(capsys)


def test_sweep_with_attribution_writes_tables_and_heatmaps(toy_dir, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["patch", "--model", str(toy_dir), "--sweep", "--attribution", "--backend", "hooks", "--n", "6",
               "--direction", "object->hypothetical,hypothetical->hypothetical", "--out", str(out), "--no-progress"])
    assert rc == 0
    names = {p.name for p in out.iterdir()}
    assert {"rows.parquet", "summary.parquet", "summary.json", "answers.parquet", "config.json",
            "attribution.parquet", "attribution_vs_exact.json"} <= names
    assert "heatmap_object_to_hypothetical_resid_flip_rate.html" in names
    summary = read_json(out / "summary.json")
    assert {row["direction"] for row in summary} == {"object->hypothetical", "hypothetical->hypothetical"}
    assert {row["layer"] for row in summary} == {0, 1, 2}
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].endswith(str(out)) and json.loads(lines[-2])["flip_rate"] >= 0
