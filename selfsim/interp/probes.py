"""Linear probes: does the hypothetical run carry the object-level answer where the object run does?

Per layer, a logistic-regression probe is trained on object-run activations (the residual stream
at one position) to decode the object-level answer M(P): its first token, or the property value
f(M(P)). The same probe, unchanged, is applied to the hypothetical run on H(P, f) (*transfer*: a
shared representation), and a second probe is trained on hypothetical runs directly. Train and test
rows are split by object prompt, once for every subject and label set, so no P is on both sides
(rows whose label is unknown, e.g. a non-compliant answer, are left out). Controls, on that split: a
probe trained on shuffled labels (empirical chance), the mode baseline (always the most common
training label), and an input-only baseline, a bag-of-words classifier that sees only P's text: if
it decodes the answer as well as the model's activations do, privileged access is not shown.
Labels come both ways: M1's answer (`m1`) and the probed model's own (`own`). Every subject
(untrained, self-trained, cross-trained) runs through the same split and reports side by side.

A probe can only name labels it saw in training, so test rows whose label never occurs among the
training labels are left out of every metric and counted (`n_test_unseen`; `n_missing` counts rows
without a label). When no test row is left, that (subject, target, labels) is not scored: its rows
carry metric "skipped", no accuracy and a `status` saying why, never a silent 0.0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import pandas as pd

from selfsim.errors import SelfsimError
from selfsim.interp.answers import LABEL_TARGETS, property_values
from selfsim.interp.backends.registry import DEFAULT_BACKEND
from selfsim.io import read_json, write_json

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from selfsim.examples import Example
    from selfsim.interp.cache import CacheConfig, PairCache
    from selfsim.models import Subject

Labels = Sequence[str] | np.ndarray  # one string label per row, as a list or a numpy array


class Classifier(Protocol):
    """A fitted scikit-learn classifier or pipeline"""

    def predict(self, X: Any) -> Any:
        """Labels predicted for the rows of X"""
        ...


TARGETS = LABEL_TARGETS
OK = "ok"
NO_SHARED_LABEL = "skipped: no test label occurs among the training labels"
LABEL_SOURCES = ("m1", "own")
METRICS = ("object", "transfer", "hypothetical", "shuffled", "shuffled_transfer")
BASELINES = ("mode", "input_only")


@dataclass
class ProbeConfig:
    """Probes: held-out share of object prompts, seed, inverse L2 strength, solver iterations, the
    position read (final or copy_end, see `selfsim.interp.cache.PAIR_POSITIONS`) and the budget of
    the full greedy answer the property labels are read from (None: the task's)."""

    test_fraction: float = 0.25
    seed: int = 0
    C: float = 1.0
    max_iter: int = 300
    position: str = "final"
    max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise SelfsimError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        from selfsim.interp.cache import PAIR_POSITIONS

        if self.position not in PAIR_POSITIONS:
            raise SelfsimError(f"unknown probe position {self.position!r}; valid: {', '.join(PAIR_POSITIONS)}")

    def save(self, path: str | Path) -> None:
        """Write the config as JSON"""
        write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> ProbeConfig:
        """A config read back from `save`'s JSON"""
        return cls(**read_json(path))


def split_by_prompt(groups: Labels, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices, every group (object prompt) wholly on one side; seeded."""
    from sklearn.model_selection import GroupShuffleSplit

    groups = np.asarray(groups)
    if len(set(groups.tolist())) < 2:
        raise SelfsimError("a train/test split needs at least two distinct object prompts")
    train, test = next(GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed).split(groups, groups=groups))
    return np.sort(train), np.sort(test)


def fit_probe(X: np.ndarray, y: Labels, config: ProbeConfig) -> Classifier:
    """A standardized multinomial logistic regression (a constant predictor when y has one class)."""
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(y)
    if len(set(y.tolist())) < 2:
        return DummyClassifier(strategy="most_frequent").fit(X, y)
    model = LogisticRegression(C=config.C, max_iter=config.max_iter, random_state=config.seed)
    pipeline = make_pipeline(StandardScaler(), model).fit(np.asarray(X, dtype=np.float32), y)
    return cast(Classifier, pipeline)  # sklearn's `available_if` hides Pipeline.predict from checkers


def accuracy(model: Classifier, X: np.ndarray, y: Labels) -> float:
    """Share of rows whose predicted label equals y."""
    return float(np.mean(model.predict(np.asarray(X, dtype=np.float32)) == np.asarray(y)))


def shuffled(y: Labels, seed: int) -> np.ndarray:
    """The labels in a seeded random order (the random-label control)."""
    return np.random.default_rng(seed).permutation(np.asarray(y))


def mode_baseline(y_train: Labels, y_test: Labels) -> float:
    """Accuracy of always answering the most common training label."""
    values, counts = np.unique(np.asarray(y_train), return_counts=True)
    return float(np.mean(np.asarray(y_test) == values[counts.argmax()]))


def input_baseline(texts: Sequence[str] | np.ndarray, labels: Labels, train: np.ndarray, test: np.ndarray, config: ProbeConfig) -> float:
    """Accuracy of a bag-of-words logistic regression that reads only the prompt text."""
    from sklearn.feature_extraction.text import CountVectorizer

    texts = np.asarray(texts, dtype=object)
    vectorizer = CountVectorizer(token_pattern=r"\S+", lowercase=True).fit(texts[train])
    X_train, X_test = vectorizer.transform(texts[train]).toarray(), vectorizer.transform(texts[test]).toarray()
    y = np.asarray(labels)
    return accuracy(fit_probe(X_train, y[train], config), X_test, y[test])


def probe_layers(
    object_acts: Mapping[int, np.ndarray],
    hypothetical_acts: Mapping[int, np.ndarray],
    labels: Labels,
    train: np.ndarray,
    test: np.ndarray,
    config: ProbeConfig,
) -> pd.DataFrame:
    """Per layer: object, transfer, hypothetical, shuffled and shuffled_transfer accuracies on `test`."""
    y = np.asarray(labels)
    y_shuffled = shuffled(y[train], config.seed)
    rows = []
    for layer in sorted(object_acts):
        X_obj, X_hyp = np.asarray(object_acts[layer]), np.asarray(hypothetical_acts[layer])
        probe = fit_probe(X_obj[train], y[train], config)
        control = fit_probe(X_obj[train], y_shuffled, config)
        rows.append({
            "layer": int(layer),
            "object": accuracy(probe, X_obj[test], y[test]),
            "transfer": accuracy(probe, X_hyp[test], y[test]),
            "hypothetical": accuracy(fit_probe(X_hyp[train], y[train], config), X_hyp[test], y[test]),
            "shuffled": accuracy(control, X_obj[test], y[test]),
            "shuffled_transfer": accuracy(control, X_hyp[test], y[test]),
        })
    return pd.DataFrame.from_records(rows)


def label_dir(label: str) -> str:
    """A subject label made safe as one directory name."""
    safe = re.sub(r"[^\w.\-]+", "_", label).strip("._")
    return safe or "subject"


@dataclass
class SubjectRun:
    """One subject's cached (object, hypothetical) activations and its own object-level answers."""

    label: str
    cache: PairCache
    responses: list[str]
    first_tokens: list[str]

    def activations(self, kind: str, layers: Sequence[int], position: str) -> dict[int, np.ndarray]:
        """{layer: [N, d] float32} of the object or hypothetical run at a named position."""
        from selfsim.interp.cache import PAIR_POSITIONS

        cache = self.cache.object if kind == "object" else self.cache.hypothetical
        k = PAIR_POSITIONS.index(position)
        return {layer: cache.load(f"model.layers.{layer}", position=k).float().numpy() for layer in layers}


def run_subject(
    label: str,
    subject: Subject,
    examples: Sequence[Example],
    out_dir: str | Path,
    cache_config: CacheConfig,
    *,
    max_new_tokens: int | None = None,
    progress: bool = False,
) -> SubjectRun:
    """Cache a subject's pair activations under `out_dir/<label>` and read its greedy object-level answers."""
    from selfsim.interp.answers import greedy_answers
    from selfsim.interp.cache import cache_pairs
    from selfsim.interp.pairs import match_all

    matched = match_all(subject, examples)
    cache = cache_pairs(subject, matched, Path(out_dir) / label_dir(label), cache_config, progress=progress)
    responses = greedy_answers(subject, matched, max_new_tokens)
    first = [subject.tokenizer.decode([t]).strip() for t in cache.object.load("next_token").tolist()]
    return SubjectRun(label, cache, responses, first)


def target_labels(run: SubjectRun, examples: Sequence[Example]) -> dict[str, list[str | None]]:
    """The first_token and property labels of `run`'s own answers."""
    return {"first_token": list(run.first_tokens), "property": property_values(examples, run.responses)}


def probe_study(
    runs: Sequence[SubjectRun],
    labels: Mapping[str, Mapping[str, Sequence[str | None]]],
    examples: Sequence[Example],
    layers: Sequence[int],
    config: ProbeConfig,
) -> pd.DataFrame:
    """Tidy accuracies: one row per (subject, target, labels, layer, metric), baselines included.

    `labels[subject label]` maps "<source>:<target>" (source in m1/own) to row-aligned labels.
    """
    from selfsim.interp.pairs import content_of

    texts = [content_of(e.object_messages) for e in examples]
    train_all, test_all = split_by_prompt([e.object_id for e in examples], config.test_fraction, config.seed)
    records = []
    for run in runs:
        obj = run.activations("object", layers, config.position)
        hyp = run.activations("hypothetical", layers, config.position)
        for source in LABEL_SOURCES:
            for target in TARGETS:
                y = np.asarray(labels[run.label][f"{source}:{target}"], dtype=object)
                known = np.flatnonzero([v is not None for v in y])
                train, labelled = np.intersect1d(train_all, known), np.intersect1d(test_all, known)
                if len(train) < 2 or len(labelled) < 1:
                    continue
                seen = set(y[train].tolist())
                test = labelled[[v in seen for v in y[labelled]]]
                base = {"subject": run.label, "target": target, "labels": source, "n_train": len(train), "n_test": len(test),
                        "n_test_unseen": len(labelled) - len(test), "n_missing": len(y) - len(known), "status": OK}
                if not len(test):
                    records += [{**base, "layer": int(layer), "metric": "skipped", "accuracy": None, "status": NO_SHARED_LABEL}
                                for layer in layers]
                    continue
                for row in probe_layers(obj, hyp, y, train, test, config).to_dict("records"):
                    records += [{**base, "layer": row["layer"], "metric": m, "accuracy": row[m]} for m in METRICS]
                baselines = dict(zip(BASELINES, (mode_baseline(y[train], y[test]), input_baseline(texts, y, train, test, config))))
                records += [{**base, "layer": int(layer), "metric": m, "accuracy": acc}
                            for m, acc in baselines.items() for layer in layers]
    return pd.DataFrame.from_records(records)


def probe_figure(results: pd.DataFrame) -> go.Figure:
    """Per-layer accuracy curves: a panel per (target, label source); colour = subject, dash = metric."""
    import plotly.express as px

    if "status" in results:
        results = results[results["status"] == OK]
    if results.empty:
        raise SelfsimError("no probe results to plot")
    dashes = {"object": "solid", "transfer": "dash", "hypothetical": "dot", "shuffled": "longdash",
              "shuffled_transfer": "longdashdot", "mode": "dashdot", "input_only": "dashdot"}
    fig = px.line(
        results, x="layer", y="accuracy", color="subject", line_dash="metric", facet_row="target", facet_col="labels",
        line_dash_map=dashes, markers=True, category_orders={"labels": list(LABEL_SOURCES), "target": list(TARGETS)},
        title="Linear probes for the object-level answer: object runs, transfer to hypothetical runs, controls",
    )
    fig.update_yaxes(range=[0, 1.02])
    return fig


def run_probes(
    subjects: Mapping[str, Subject] | Sequence[Subject],
    examples: Sequence[Example],
    out_dir: str | Path,
    config: ProbeConfig | None = None,
    *,
    layers: Sequence[int] | None = None,
    m1_responses: Mapping[str, str] | None = None,
    budget_bytes: int = 2**30,
    backend: str = DEFAULT_BACKEND,
    progress: bool = False,
) -> pd.DataFrame:
    """The whole probe study; writes results.parquet, results.json, config.json and probes.html to out_dir.

    Subjects are a {label: Subject} mapping or a list (labelled by name and adapter directory).
    Without `m1_responses` (object_id -> M1's response) the first subject's own answers are M1's.
    """
    from selfsim.interp.answers import m1_labels, model_labels
    from selfsim.interp.cache import CacheConfig
    from selfsim.io import atomic_open

    config = config or ProbeConfig()
    subjects = model_labels(subjects)
    if not subjects or not examples:
        raise SelfsimError("the probe study needs at least one subject and one example")
    out = Path(out_dir)
    first = next(iter(subjects.values()))
    layers = list(range(first.n_layers)) if layers is None else [first.check_layer(x) for x in layers]
    runs, labels = [], {}
    m1: dict[str, list[str | None]] | None = None
    for label, subject in subjects.items():
        cache_config = CacheConfig(sites=[subject.site(x) for x in layers], budget_bytes=budget_bytes, backend=backend)
        run = run_subject(label, subject, examples, out / "cache", cache_config, max_new_tokens=config.max_new_tokens, progress=progress)
        own = target_labels(run, examples)
        if m1 is None:
            m1 = m1_labels(subject, examples, m1_responses, own)
        labels[label] = {f"own:{t}": own[t] for t in TARGETS} | {f"m1:{t}": m1[t] for t in TARGETS}
        runs.append(run)
    results = probe_study(runs, labels, examples, layers, config)
    config.save(out / "config.json")
    with atomic_open(out / "results.parquet", "wb") as fh:
        results.to_parquet(fh, index=False)
    write_json(out / "results.json", results.astype(object).where(results.notna(), None).to_dict("records"))
    with atomic_open(out / "probes.html") as fh:
        fh.write(probe_figure(results).to_html(include_plotlyjs=True))
    return results
