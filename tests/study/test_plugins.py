"""A property and a study experiment registered by one plugin module (tests/plugins/agreement_plugin.py) reach
results.json, the report rebuilt by `selfsim report` in a fresh process, the CLI and its error messages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selfsim.study.config import StudyConfig

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "tests" / "plugins"
# As tests/test_study.py's TINY (the verdict unit needs varied answers), without the extra scaling and full-weight runs.
TINY = dict(n_train=40, n_eval=24, scaling=(), full_control=(), calibration_prompts=8, calibration_samples=4,
            epochs=0.6, batch_size=8, n_boot=50, properties=("first_word", "first_word_parity"), plugins=("agreement_plugin",))


def selfsim(*args: str, plugins: bool = True, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python -m selfsim ARGS` in a fresh process (tests/plugins on PYTHONPATH unless `plugins` is False)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *([str(PLUGINS)] if plugins else [])])}
    return subprocess.run([sys.executable, "-m", "selfsim", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("plugin-study")
    config = base / "study.json"
    config.write_text(json.dumps(StudyConfig.quick(**TINY).to_dict()))
    done = selfsim("study", "--quick", "--config", str(config), "--out", str(base / "run"))
    assert done.returncode == 0, done.stderr[-3000:]
    return base / "run"


@pytest.mark.slow
def test_the_plugins_experiment_and_property_reach_results_json(run):
    data = json.loads((run / "results.json").read_text())
    primary = data["pairs"][0]
    assert data["config"]["plugins"] == ["agreement_plugin"]
    assert {"agreement", "calibration", "interp", "scaling", "shift"} <= set(primary["experiments"])
    assert primary["origins"]["agreement"] == "agreement_plugin"
    assert primary["origins"]["shift"] == "selfsim.study.experiments.shift"
    added = primary["experiments"]["agreement"]
    assert 0.0 <= added["share"] <= 1.0 and added["n_prompts"] == 24
    assert "agreement" not in data["pairs"][1]["experiments"]
    rows = primary["eval_ood"]["accuracy"]["self_trained"]["m1_after"]["wrong"]
    parity = [r for r in rows if r["property"] == "first_word_parity"]
    assert parity and all(0.0 <= r["accuracy"] <= 1.0 for r in parity)
    examples = [json.loads(line) for line in (run / "examples" / "eval_ood.jsonl").read_text().splitlines()]
    assert any("first word parity" in e["hypothetical_messages"][-1]["content"] for e in examples if e["property"] == "first_word_parity")


@pytest.mark.slow
def test_selfsim_report_rebuilds_every_section_in_a_fresh_process(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "report.html").unlink()
    done = selfsim("report", str(copy))
    assert done.returncode == 0, done.stderr
    html = (copy / "report.html").read_text()
    for text in ("Plugin: M1 / M1ft agreement", "plugin: M1 / M1ft agreement", "Plugin note: M1ft kept",
                 "first_word_parity", "Behaviour shift", "Calibration (object-level"):
        assert text in html, text


@pytest.mark.slow
def test_a_missing_plugin_or_unknown_block_is_one_line(run, tmp_path):
    done = selfsim("report", str(run), plugins=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"selfsim report: error: {run / 'results.json'}: plugin module 'agreement_plugin' cannot be imported (No module "
        "named 'agreement_plugin'); put it on PYTHONPATH or remove it from the config's plugins"]
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    data = json.loads((copy / "results.json").read_text())
    data["config"]["plugins"] = []
    (copy / "results.json").write_text(json.dumps(data))
    done = selfsim("report", str(copy))
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"selfsim report: error: {copy / 'results.json'}: results.json holds experiment 'agreement' "
                           "written by module 'agreement_plugin', which no loaded module registers; name its module in "
                           "the config's plugins (registered experiments: scaling, full_control, calibration, shift, interp")


@pytest.mark.slow
def test_the_cli_loads_a_plugin_and_names_its_property(tmp_path):
    args = ("data", "generate", "--task", "colors_long", "--property", "first_word_parity", "--dialect", "toy", "--n", "2")
    done = selfsim(*args, "--out", str(tmp_path / "a.jsonl"), plugins=False)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line == ("selfsim data: error: task 'colors_long' in the toy dialect has no property 'first_word_parity'; valid: "
                    "first_character, second_character, third_character, first_word, second_word, third_word, starts_with_vowel")
    done = selfsim("--plugin", "agreement_plugin", *args, "--out", str(tmp_path / "b.jsonl"))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {r["property"] for r in rows} == {"first_word_parity"}
    assert "what is the first word parity of your answer ?" in rows[0]["hypothetical_messages"][-1]["content"]
    done = selfsim("--plugin", "agreement_plugin", "--plugin", "no_such_plugin", "tasks", "list")
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "selfsim tasks: error: plugin module 'no_such_plugin' cannot be imported (No module named 'no_such_plugin'); "
        "put it on PYTHONPATH or remove it from the config's plugins"]
    done = selfsim("--plugin", "agreement_plugin", "tasks", "list")
    assert done.returncode == 0 and "first_word_parity" in done.stdout
