"""A metric and a backend added in one plugin module reach the results, the CLI and its error messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from selfsim.cli import main
from selfsim.errors import SelfsimError
from selfsim.interp.backends.registry import BACKENDS, backend_names, needs
from selfsim.interp.metrics import METRICS
from selfsim.interp.patching import PatchConfig, run_patching
from selfsim.io import read_json
from selfsim.tasks import generate

from toy_tiny import save_toy_tiny

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return save_toy_tiny(tmp_path_factory.mktemp("toy_tiny"))


@pytest.fixture
def plugin(monkeypatch):
    """The plugin folder on sys.path; whatever its modules registered is removed again afterwards."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    metrics, backends = set(METRICS.names()), set(BACKENDS.names())
    yield
    for name in set(METRICS.names()) - metrics:
        METRICS.unregister(name)
    for name in set(BACKENDS.names()) - backends:
        BACKENDS.unregister(name)
    for module in ("patch_extras", "patch_taken"):
        sys.modules.pop(module, None)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_plugin_metric_and_backend_reach_the_results(plugin, toy_dir):
    import patch_extras

    from selfsim.models import load_subject

    assert "recipient_logit" in METRICS and backend_names()[-1] == "counting" and needs("counting") == {"attn_implementation": "eager"}
    subject = load_subject(str(toy_dir), **needs("counting"))
    examples = generate("animals_long", "first_word", n=6, seed=0, dialect="toy")
    config = PatchConfig(layers=(1,), backend="counting", metrics=("logit_diff", "recipient_logit"), rank_by="recipient_logit")
    calls = len(patch_extras.CALLS)
    result = run_patching([subject], examples, config)
    assert len(patch_extras.CALLS) > calls and config.rank_column == "mean_recipient_logit"
    rows = result.rows[result.rows["informative"]]
    assert "prob_donor" not in rows.columns and not rows.empty
    summary = result.summary()
    assert {"mean_recipient_logit", "mean_recipient_logit_clean"} <= set(summary.columns)
    one = summary[summary["n"] > 0].iloc[0]
    cell = rows[(rows["target"] == one["target"]) & (rows["layer"] == one["layer"])]
    assert one["mean_recipient_logit"] == pytest.approx(cell["recipient_logit"].mean())


def test_plugin_through_the_cli(plugin, toy_dir, tmp_path, capsys):
    import patch_extras  # noqa: F401  # imported again by --plugin: registering the same objects is a no-op

    out = tmp_path / "run"
    args = ["--plugin", "patch_extras", "patch", "--model", str(toy_dir), "--layer", "1", "--n", "6", "--no-progress",
            "--out", str(out), "--backend", "counting", "--metric", "logit_diff", "--metric", "recipient_logit",
            "--rank-by", "recipient_logit"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    best = json.loads(lines[-2])
    assert "mean_recipient_logit" in best and "flip_rate" not in best
    assert (out / "heatmap_object_to_hypothetical_resid_mean_recipient_logit.html").exists()
    assert read_json(out / "config.json")["metrics"] == ["logit_diff", "recipient_logit"]
    assert "mean_recipient_logit" in read_json(out / "summary.json")[0]


@pytest.mark.parametrize(
    "plugins, extra, message",
    [
        (["patch_taken"], [], "metric 'logit_diff' is already registered; choose another name"),
        (["no_such_plugin_module"], [], "plugin module 'no_such_plugin_module' cannot be imported"),
        (["patch_extras"], ["--metric", "nope"], "unknown metric 'nope'; valid metrics are logit_diff, prob_donor, flip, recipient_logit"),
        (["patch_extras"], ["--metric", "flip", "--rank-by", "recipient_logit"],
         "rank_by 'recipient_logit' is not among the computed metrics (flip)"),
        ([], ["--backend", "counting"], "unknown backend 'counting'; valid backends are hooks, nnsight, tlens"),
    ],
)
def test_plugin_errors_are_one_line(plugin, toy_dir, tmp_path, capsys, plugins, extra, message):
    flags = [arg for module in plugins for arg in ("--plugin", module)]
    assert main([*flags, "patch", "--model", str(toy_dir), "--layer", "0", "--out", str(tmp_path / "o"), *extra]) == 2
    assert message in one_line_error(capsys)


def test_attribution_refuses_a_metric_it_cannot_differentiate():
    from selfsim.interp.attribution import differentiable

    with pytest.raises(SelfsimError, match="metric 'flip' is not differentiable; attribution takes logit_diff, prob_donor"):
        differentiable("flip")
