"""`selfsim study` config resolution: presets, config files and flags generated from StudyConfig's fields."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from selfsim.cli import main
from selfsim.study.config import PRESETS, StudyConfig, preset


def resolved(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["study", *argv, "--print-config"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_field_has_a_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    text = capsys.readouterr().out
    for f in dataclasses.fields(StudyConfig):
        assert "--" + f.name.replace("_", "-") in text, f.name


def test_default_is_the_demo_preset_and_quick_is_the_quick_preset(capsys: pytest.CaptureFixture[str]) -> None:
    def plain(config: StudyConfig) -> dict:
        return json.loads(json.dumps(config.to_dict()))

    assert resolved(capsys) == plain(StudyConfig()) == plain(preset("demo"))
    assert resolved(capsys, "--quick") == plain(StudyConfig.quick()) == resolved(capsys, "--preset", "quick")
    for name in PRESETS:
        assert resolved(capsys, "--preset", name) == plain(preset(name))


def test_old_flags_keep_working(capsys: pytest.CaptureFixture[str]) -> None:
    config = resolved(capsys, "--quick", "--seed", "3", "--pairs", "2", "--models", "toy-m2", "toy-m1")
    assert (config["seed"], config["pairs"], config["models"], config["name"]) == (3, 2, ["toy-m2", "toy-m1"], "toy-quick-seed3")


def test_precedence_preset_then_file_then_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text('n_train = 64\nlr = 0.002\ntest_tasks = ["english_words_long"]\n')
    config = resolved(capsys, "--preset", "smollm2", "--config", str(path), "--lr", "0.003", "--scaling", "8", "16")
    assert config["dialect"] == "paper"  # from the preset
    assert config["n_train"] == 64 and config["test_tasks"] == ["english_words_long"]  # from the file
    assert config["lr"] == 0.003 and config["scaling"] == [8, 16]  # from the flags


@pytest.mark.parametrize("argv, needle", [
    (["--n-train", "ten"], "--n-train 'ten' is not valid: expected an integer"),
    (["--lr", "inf"], "--lr 'inf' is not valid: expected a finite number"),
    (["--dialect", "french"], "dialect must be one of toy, paper"),
    (["--preset", "smollm2", "--quick"], "--quick is the quick preset"),
    (["--models", "toy-m1", "toy-m1"], "names 'toy-m1' twice"),
    (["--pairs", "0"], "pairs must be >= 1"),
])
def test_bad_values_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert main(["study", *argv, "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err


def test_a_bad_config_file_is_one_line_per_problem(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"splits": "test", "n_train": "100"}))
    assert main(["study", "--config", str(path), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) 'splits'" in err and "n_train = '100' is not valid" in err and "Traceback" not in err
