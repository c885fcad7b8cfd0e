"""Plotly figures of the evaluation results and one self-contained HTML page per study.

The `fig_*` functions take the tables of `selfsim.evaluate` (plus a `condition` column naming the
model or baseline each row belongs to) and return plotly Figures; `write_report` puts figures and
tables on one page with plotly.js embedded once, so the file opens offline.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from selfsim.errors import SelfsimError
from selfsim.evaluate import ALL, CalibrationResult, require_columns
from selfsim.io import atomic_open
from selfsim.results import EXPERIMENTS, PairResult, Records, StudyResults, load_results, micro_row

CI_COLUMNS = ("accuracy", "ci_low", "ci_high")


def _error_bars(rows: pd.DataFrame, suffix: str = "") -> dict:
    """Asymmetric plotly error bars from accuracy/ci_low/ci_high columns (with `suffix`)."""
    acc = rows[f"accuracy{suffix}"]
    return dict(
        type="data",
        symmetric=False,
        array=(rows[f"ci_high{suffix}"] - acc).tolist(),
        arrayminus=(acc - rows[f"ci_low{suffix}"]).tolist(),
    )


def label_conditions(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Stack result tables (e.g. {"untrained": ..., "self": ..., "mode baseline": ...}) with a condition column."""
    if not tables:
        raise SelfsimError("label_conditions needs at least one table")
    return pd.concat([t.assign(condition=name) for name, t in tables.items()], ignore_index=True)


def fig_accuracy(table: pd.DataFrame, *, task: str = ALL, title: str = "Hypothetical accuracy") -> go.Figure:
    """Grouped bars of accuracy per property for one task (default: micro average), one bar per condition."""
    require_columns(table, ("condition", "task", "property") + CI_COLUMNS, "accuracy")
    rows = table[table["task"] == task]
    fig = go.Figure()
    for condition, group in rows.groupby("condition", sort=False):
        fig.add_trace(go.Bar(
            name=str(condition), x=group["property"].tolist(), y=group["accuracy"].tolist(),
            error_y=_error_bars(group),
        ))
    fig.update_layout(
        title=f"{title} ({'micro average' if task == ALL else task})", barmode="group",
        yaxis=dict(title="accuracy", range=[0, 1]), xaxis_title="property",
    )
    return fig


def fig_scaling(table: pd.DataFrame, *, title: str = "Accuracy vs training-set size") -> go.Figure:
    """Accuracy (with CIs) against `n_train`, one line per condition (e.g. cross at several sizes, self)."""
    require_columns(table, ("condition", "n_train") + CI_COLUMNS, "scaling")
    fig = go.Figure()
    for condition, group in table.groupby("condition", sort=False):
        group = group.sort_values("n_train")
        fig.add_trace(go.Scatter(
            name=str(condition), x=group["n_train"].tolist(), y=group["accuracy"].tolist(),
            mode="lines+markers", error_y=_error_bars(group),
        ))
    fig.update_layout(
        title=title, xaxis=dict(title="training examples", type="log"), yaxis=dict(title="accuracy", range=[0, 1]),
    )
    return fig


def fig_calibration(results: Mapping[str, CalibrationResult], *, title: str = "Calibration") -> go.Figure:
    """Binned calibration curves (object vs hypothetical probability) per model, MAD in the legend."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="perfect", line=dict(dash="dash", color="gray"),
    ))
    for name, res in results.items():
        fig.add_trace(go.Scatter(
            name=f"{name} (MAD {res.mad:.1f})", x=res.curve["object_prob"].tolist(),
            y=res.curve["hypothetical_prob"].tolist(), mode="lines+markers",
        ))
    fig.update_layout(
        title=title, xaxis=dict(title="object-level probability", range=[0, 1]),
        yaxis=dict(title="hypothetical probability", range=[0, 1]),
    )
    return fig


def fig_shift(table: pd.DataFrame, *, task: str = ALL, title: str = "Behaviour shift") -> go.Figure:
    """Bars per property of accuracy against the new vs the old behaviour on changed prompts."""
    ci = tuple(f"{c}{s}" for s in ("_new", "_old") for c in CI_COLUMNS)
    require_columns(table, ("task", "property", "n") + ci, "shift")
    rows = table[table["task"] == task]
    fig = go.Figure()
    for suffix, name in (("_new", "new behaviour"), ("_old", "old behaviour")):
        fig.add_trace(go.Bar(
            name=name, x=rows["property"].tolist(), y=rows[f"accuracy{suffix}"].tolist(),
            error_y=_error_bars(rows, suffix), customdata=rows["n"].tolist(),
            hovertemplate="%{x}: %{y:.3f} (n=%{customdata})<extra></extra>",
        ))
    fig.update_layout(
        title=f"{title} ({'micro average' if task == ALL else task})", barmode="group",
        yaxis=dict(title="accuracy on changed prompts", range=[0, 1]), xaxis_title="property",
    )
    return fig


def _slug(name: str, taken: set[str]) -> str:
    """An HTML id from `name`, unique among `taken`."""
    base = "fig-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "figure")
    slug, i = base, 2
    while slug in taken:
        slug, i = f"{base}-{i}", i + 1
    taken.add(slug)
    return slug


def write_report(
    figures: list[tuple[str, go.Figure]], tables: list[tuple[str, pd.DataFrame]], out: Path, title: str,
    notes: list[str] | None = None, lead: list[str] | None = None,
) -> Path:
    """Write one self-contained HTML page: plotly.js inlined once, the `lead` paragraphs first, the `notes`
    (plain sentences) as a list, then each figure and table under its name."""
    out = Path(out)
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
    ]
    parts += [f"<p>{html.escape(paragraph)}</p>" for paragraph in lead or []]
    if notes:
        parts.append("<h2>Reading the numbers</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    ids: set[str] = set()
    for i, (name, fig) in enumerate(figures):
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(fig.to_html(
            full_html=False, include_plotlyjs=i == 0, div_id=_slug(name, ids), default_height="450px",
        ))
    for name, table in tables:
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(table.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4f}"))
    parts.append("</body></html>")
    with atomic_open(out) as fh:
        fh.write("\n".join(parts))
    return out


# ----------------------------------------------------------------------------- the study page
FIGURES_DIR = "figures"
def write_figure(run_dir: Path, name: str, figure: go.Figure) -> None:
    """Save a plotly figure as JSON under run_dir/figures/, where the report picks it up."""
    with atomic_open(Path(run_dir) / FIGURES_DIR / f"{name}.json") as fh:
        fh.write(figure.to_json())


def _records(records: Records) -> pd.DataFrame:
    return pd.DataFrame.from_records(records)


# Whose behaviour the study's accuracies are scored against (see selfsim.results.TARGETS).
TARGET_TITLES = {
    "m1_after": "against the self-trained M1's current behaviour (M1ft)",
    "m1_before": "against M1's pre-finetune behaviour (secondary)",
}
MODE_TITLES = {"wrong": "non-compliant counted wrong", "exclude": "non-compliant excluded"}


def _accuracy_table(pair: PairResult, split: str, mode: str, target: str = "m1_after") -> pd.DataFrame:
    """Untrained, self, cross and the mode baseline (computed in the same non-compliance mode) vs `target`."""
    part = pair.split(split)
    acc = part.accuracy
    tables = {name: _records(scores.of(target).of(mode))
              for name, scores in (("untrained", acc.untrained), ("self", acc.self_trained), ("cross", acc.cross_trained))}
    tables["mode baseline"] = _records(part.mode_baseline.of(target).of(mode))
    return label_conditions(tables)


def _own_table(pair: PairResult, split: str, mode: str) -> pd.DataFrame:
    acc = pair.split(split).accuracy
    own_before, own_after = acc.cross_trained.of("own_before"), acc.cross_trained.of("own_after")
    return label_conditions({
        "self vs M1ft (after)": _records(acc.self_trained.m1_after.of(mode)),
        "self vs M1 (before)": _records(acc.self_trained.m1_before.of(mode)),
        "cross vs M1ft (after)": _records(acc.cross_trained.m1_after.of(mode)),
        "cross vs M1 (before)": _records(acc.cross_trained.m1_before.of(mode)),
        "cross vs own (before)": _records(own_before.of(mode)),
        "cross vs own (after)": _records(own_after.of(mode)),
        "untrained M2 vs own": _records(acc.untrained_m2.of("own_before").of(mode)),
    })


def _includes_zero(low: float | None, high: float | None) -> bool:
    return low is not None and high is not None and low <= 0.0 <= high


def _headline_table(results: StudyResults) -> pd.DataFrame:
    """ALL/ALL held-out-task numbers with 95% CIs vs M1ft, the pre-finetune score beside, the paper's last."""
    pair = results.primary
    acc = pair.eval_ood.accuracy
    mode_base = pair.eval_ood.mode_baseline
    paper = results.paper
    gap = pair.eval_ood.gap

    def ci_row(name: str, now: dict | None, before: dict | None, paper_value: float | None, key: str = "accuracy") -> dict:
        now = now or {}
        return {"quantity": name, "selfsim toy": now.get(key), "95% CI low": now.get("ci_low"),
                "95% CI high": now.get("ci_high"), "vs M1 before finetuning": (before or {}).get(key),
                "paper (Llama-3.1-70B)": paper_value}

    rows = [
        ci_row("untrained M1 (hypothetical accuracy)", micro_row(acc.untrained.m1_after.wrong),
               micro_row(acc.untrained.m1_before.wrong), paper["untrained_llama70b"] / 100),
        ci_row("self-trained M1", micro_row(acc.self_trained.m1_after.wrong),
               micro_row(acc.self_trained.m1_before.wrong), paper["self_trained_llama70b"] / 100),
        ci_row("cross-trained M2 (on M1ft's labels)", micro_row(acc.cross_trained.m1_after.wrong),
               micro_row(acc.cross_trained.m1_before.wrong), paper["cross_plateau"] / 100),
        ci_row("mode baseline", micro_row(mode_base.m1_after.wrong), micro_row(mode_base.m1_before.wrong),
               paper["mode_baseline_llama70b"] / 100),
        ci_row("self - cross gap (paired bootstrap)", gap.m1_after.wrong, gap.m1_before.wrong, None, key="gap"),
        ci_row("cross-trained M2 vs its own behaviour", micro_row(acc.cross_trained.of("own_before").wrong), None, None),
    ]
    for name, experiment in EXPERIMENTS.items():
        if experiment.headline is not None and name in pair.experiments:
            rows += experiment.headline(pair.experiments[name], results)
    return pd.DataFrame.from_records(rows)


def _gap_table(results: StudyResults) -> pd.DataFrame:
    """Self - cross gap per ordered pair with its paired CI (vs M1ft and vs M1 before), then mean and std."""
    rows = []
    for p in results.pairs:
        now, before = p.eval_ood.gap.m1_after.wrong, p.eval_ood.gap.m1_before.wrong
        rows.append({"pair (M1 / M2)": f"{p.m1} / {p.m2}", "gap": now["gap"], "95% CI low": now["ci_low"],
                     "95% CI high": now["ci_high"], "n": now["n"], "gap vs M1 before": before["gap"],
                     "CI low (before)": before["ci_low"], "CI high (before)": before["ci_high"]})
    spread = results.spread
    rows.append({"pair (M1 / M2)": f"mean over {len(spread.gaps)} ordered pairs (std {_fmt(spread.std)})",
                 "gap": spread.mean})
    return pd.DataFrame.from_records(rows)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _notes(results: StudyResults) -> list[str]:
    """Plain sentences: what is scored against what, how the scaling curve trains, and every CI that includes zero."""
    config = results.config
    notes = [
        "Primary scores are against the self-trained M1's current object-level behaviour (M1ft), as in the paper's "
        "code; M2 is trained on M1ft's behaviour on the training prompts. Columns and figures marked 'before' or "
        "'secondary' score against M1's pre-finetune behaviour.",
        f"Every finetune trains {config.get('epochs')} epochs over its items (steps = ceil(epochs x items / batch "
        f"{config.get('batch_size')})), so the scaling curve varies data size, not repetition; the paper trains 1 epoch.",
    ]
    for p in results.pairs:
        for target, label in (("m1_after", "vs M1ft"), ("m1_before", "vs M1 before finetuning")):
            g = p.eval_ood.gap.of(target).wrong
            verdict = ("includes zero: this run does not show that self beats cross" if _includes_zero(g["ci_low"], g["ci_high"])
                       else "excludes zero")
            notes.append(f"Self - cross gap for M1={p.m1}, M2={p.m2} ({label}, held-out tasks): {_fmt(g['gap'])}, "
                         f"paired 95% CI [{_fmt(g['ci_low'])}, {_fmt(g['ci_high'])}] {verdict}.")
    pair = results.primary
    acc = pair.eval_ood.accuracy
    rows = {name: micro_row(scores.m1_after.wrong)
            for name, scores in (("untrained", acc.untrained), ("self", acc.self_trained), ("cross", acc.cross_trained))}
    rows["mode baseline"] = micro_row(pair.eval_ood.mode_baseline.m1_after.wrong)
    for name, experiment in EXPERIMENTS.items():
        if experiment.notes is not None and name in pair.experiments:
            notes += experiment.notes(pair.experiments[name], results)
    for name, r in rows.items():
        if _includes_zero(r["ci_low"], r["ci_high"]):
            notes.append(f"The 95% CI of the {name} accuracy (vs M1ft) includes zero: [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}].")
    return notes


def _timings_table(run_dir: Path) -> list[tuple[str, pd.DataFrame]]:
    """Seconds per stage from manifest.json (timings never go to results.json: same seed, same bytes)."""
    from selfsim.io import read_json

    path = Path(run_dir) / "manifest.json"
    manifest = read_json(path) if path.is_file() else {}
    timings, cpu = manifest.get("timings_s"), manifest.get("cpu_s") or {}
    if not timings:
        return []
    rows = [{"stage": name, "seconds": seconds, "CPU seconds": cpu.get(name)} for name, seconds in timings.items()]
    rows.append({"stage": "total", "seconds": round(sum(timings.values()), 2),
                 "CPU seconds": round(sum(cpu.values()), 2) if cpu else None})
    return [("Seconds per stage (manifest.json, the last run of each stage on this machine; kept out of results.json "
             "so that the same seed gives the same bytes)", pd.DataFrame.from_records(rows))]


def _lead(results: StudyResults) -> list[str]:
    """The report's opening paragraphs, from every experiment that gives them (the verdict, one per model)."""
    pair, out = results.primary, []
    for name, experiment in EXPERIMENTS.items():
        if experiment.lead is not None and name in pair.experiments:
            out += experiment.lead(pair.experiments[name], results)
    if "verdict" not in pair.experiments:
        out.append("No self-simulation verdict in this run: its verdict experiment did not run (or has not finished), "
                   "so nothing here decides whether the models reuse their object-level computation.")
    return out


def build_study_report(run_dir: Path) -> Path:
    """Write run_dir/report.html from run_dir/results.json and any plotly JSON in run_dir/figures/: the core
    figures and tables, then each experiment's section, headline rows and notes (`selfsim.results.EXPERIMENTS`;
    plugin experiments load through the config's `plugins`)."""
    import plotly.io as pio

    run_dir = Path(run_dir)
    results = load_results(run_dir)
    pair = results.primary
    label = f"M1={pair.m1}, M2={pair.m2}"
    figures: list[tuple[str, go.Figure]] = []
    views = [(split, mode, "m1_after") for split in ("eval_ood", "eval_id") for mode in ("wrong", "exclude")]
    views += [("eval_ood", mode, "m1_before") for mode in ("wrong", "exclude")]
    for split, mode, target in views:
        name = "held-out tasks" if split == "eval_ood" else "held-out prompts of training tasks"
        figures.append((
            f"Hypothetical accuracy {TARGET_TITLES[target]}, {name} ({MODE_TITLES[mode]}; mode baseline likewise)",
            fig_accuracy(_accuracy_table(pair, split, mode, target), title=label),
        ))
    figures.append((
        "Whose behaviour does each model predict? (held-out tasks, each bar names its target)",
        fig_accuracy(_own_table(pair, "eval_ood", "wrong"), title=label),
    ))
    extra_tables: list[tuple[str, pd.DataFrame]] = []
    for name, experiment in EXPERIMENTS.items():
        if experiment.section is not None and name in pair.experiments:
            for title, part in experiment.section(pair.experiments[name], pair):
                if isinstance(part, pd.DataFrame):
                    extra_tables.append((title, part))
                else:
                    figures.append((title, part))
    for path in sorted((run_dir / FIGURES_DIR).glob("*.json")):
        figures.append((path.stem.replace("_", " "), pio.from_json(path.read_text())))
    tables = [
        (f"Headline numbers (held-out tasks, micro average, non-compliant counted wrong) {TARGET_TITLES['m1_after']}, "
         "with 95% bootstrap CIs; the pre-finetune score beside, the paper's last", _headline_table(results)),
        (f"Self - cross gap per ordered model pair {TARGET_TITLES['m1_after']} (held-out tasks, paired bootstrap "
         "over prompts; the pre-finetune target beside)", _gap_table(results)),
        ("Share of object-level answers left unchanged by each finetune (held-out prompts)", pd.DataFrame.from_records(
            [{"pair": f"{p.m1} / {p.m2}", "self": p.unchanged.self_trained, "cross": p.unchanged.cross_trained}
             for p in results.pairs]
        )),
        *extra_tables,
        *_timings_table(run_dir),
    ]
    return write_report(figures, tables, run_dir / "report.html", f"selfsim study: {results.config['name']}",
                        notes=_notes(results), lead=_lead(results))
