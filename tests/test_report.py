"""Figures build from evaluate's tables; the HTML page holds every figure once and every table value."""

from __future__ import annotations

import pandas as pd
import pytest

from selfsim.errors import SelfsimError
from selfsim.evaluate import ALL, behavior_shift, calibration, hypothetical_accuracy, mode_baseline, score
from selfsim.report import fig_accuracy, fig_calibration, fig_scaling, fig_shift, label_conditions, write_report

from test_evaluate import (
    META_SAMPLES,
    OBJECT_SAMPLES,
    behavior_table,
    predictions_table,
    samples,
    shift_tables,
)


def accuracy_table() -> pd.DataFrame:
    scored = score(predictions_table(), behavior_table())
    return label_conditions({
        "self": hypothetical_accuracy(scored, n_boot=50),
        "mode baseline": mode_baseline(behavior_table(), n_boot=50),
    })


def test_fig_accuracy_has_one_trace_per_condition_with_ci():
    fig = fig_accuracy(accuracy_table())
    assert [t.name for t in fig.data] == ["self", "mode baseline"]
    self_bars = fig.data[0]
    assert list(self_bars.x) == ["first_word", "second_character", ALL]
    assert list(self_bars.y) == pytest.approx([2 / 6, 2 / 4, 4 / 10])
    assert all(v >= 0 for v in self_bars.error_y.array) and all(v >= 0 for v in self_bars.error_y.arrayminus)


def test_other_figures():
    scaling = pd.DataFrame({
        "condition": ["cross", "cross", "self"], "n_train": [1000, 100, 1000],
        "accuracy": [0.4, 0.3, 0.5], "ci_low": [0.35, 0.25, 0.45], "ci_high": [0.45, 0.35, 0.55],
    })
    fig = fig_scaling(scaling)
    assert list(fig.data[0].x) == [100, 1000] and list(fig.data[0].y) == [0.3, 0.4]
    cal = calibration(samples(OBJECT_SAMPLES), samples(META_SAMPLES), n_bins=3)
    fig = fig_calibration({"self": cal})
    assert fig.data[1].name == "self (MAD 20.8)" and list(fig.data[1].x) == pytest.approx([0.25, 0.375, 0.875])
    fig = fig_shift(behavior_shift(*shift_tables(), n_boot=20))
    assert [t.name for t in fig.data] == ["new behaviour", "old behaviour"]
    assert list(fig.data[0].y) == pytest.approx([0.5, 0.5])  # first_word micro row, then ALL/ALL
    with pytest.raises(SelfsimError, match="condition"):
        fig_accuracy(hypothetical_accuracy(score(predictions_table(), behavior_table()), n_boot=5))


def test_write_report_single_file(tmp_path):
    acc = accuracy_table()
    figures = [("Accuracy", fig_accuracy(acc)), ("Accuracy", fig_accuracy(acc, task="t1")),
               ("Calibration <self>", fig_calibration({"self": calibration(samples(OBJECT_SAMPLES), samples(META_SAMPLES))}))]
    tables = [("Accuracy table", acc[acc["task"] == ALL])]
    out = write_report(figures, tables, tmp_path / "report.html", title="Study & results")
    text = out.read_text()
    for div in ('id="fig-accuracy"', 'id="fig-accuracy-2"', 'id="fig-calibration-self"'):
        assert div in text
    assert text.count("Plotly.newPlot(") == 3
    assert text.count("plotly.js v") == 1  # the library banner: embedded exactly once
    assert "Study &amp; results" in text and "Calibration &lt;self&gt;" in text
    for value in ("0.3333", "0.5000", "0.4000", "mode baseline", "second_character"):
        assert value in text


def test_write_report_lists_notes_before_the_figures(tmp_path):
    acc = accuracy_table()
    notes = ["The gap's 95% CI [-0.01, 0.05] includes zero <so no claim>."]
    text = write_report([("Accuracy", fig_accuracy(acc))], [], tmp_path / "r.html", title="t", notes=notes).read_text()
    assert "<li>The gap&#x27;s 95% CI [-0.01, 0.05] includes zero &lt;so no claim&gt;.</li>" in text
    assert text.index("Reading the numbers") < text.index('id="fig-accuracy"')
    assert "Reading the numbers" not in write_report([], [], tmp_path / "s.html", title="t").read_text()
