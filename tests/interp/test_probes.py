"""Probes: a planted linear signal is decoded, shuffled labels sit at chance, splits keep prompts apart."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from selfsim.errors import SelfsimError
from selfsim.examples import Example
from selfsim.interp.probes import (
    ProbeConfig,
    input_baseline,
    mode_baseline,
    probe_figure,
    probe_layers,
    run_probes,
    split_by_prompt,
)
from selfsim.toy.language import hypothetical_prompt, sequence_prompt

from toy_tiny import save_toy_tiny

CONFIG = ProbeConfig(test_fraction=0.25, seed=0)


def planted(n: int = 1200, d: int = 32, k: int = 4, strength: float = 4.0, seed: int = 0):
    """Gaussian activations plus a label-dependent direction: x = noise + strength * u[y].

    Unit noise per dimension; class means of random unit directions lie ~strength * sqrt(2) apart,
    so the Bayes error is about (k - 1) * Phi(-strength / sqrt(2)) < 1% at strength 4.
    """
    rng = np.random.default_rng(seed)
    labels = np.array([f"c{i}" for i in rng.integers(0, k, n)])
    directions = rng.standard_normal((k, d))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    signal = strength * directions[[int(c[1:]) for c in labels]]
    return labels, signal, rng


def chance_band(p0: float, n_test: int, sigmas: float = 4.0) -> tuple[float, float]:
    """p0 +- 4 binomial standard errors: a chance-level classifier lands outside with probability < 1e-4."""
    half = sigmas * math.sqrt(p0 * (1 - p0) / n_test)
    return p0 - half, p0 + half


def test_planted_signal_is_decoded_and_shuffled_labels_sit_at_chance():
    labels, signal, rng = planted()
    groups = [f"p{i}" for i in range(len(labels))]
    obj = {0: rng.standard_normal(signal.shape), 1: signal + rng.standard_normal(signal.shape)}
    hyp = {0: rng.standard_normal(signal.shape), 1: signal + rng.standard_normal(signal.shape)}
    train, test = split_by_prompt(groups, CONFIG.test_fraction, CONFIG.seed)
    res = probe_layers(obj, hyp, labels, train, test, CONFIG).set_index("layer")
    assert res.loc[1, "object"] >= 0.95 and res.loc[1, "transfer"] >= 0.95 and res.loc[1, "hypothetical"] >= 0.95
    low, high = chance_band(0.25, len(test))
    for metric in ("shuffled", "shuffled_transfer"):
        assert low <= res.loc[1, metric] <= high, (metric, res.loc[1, metric])
    for metric in ("object", "transfer", "hypothetical"):  # a layer without the signal decodes nothing
        assert low <= res.loc[0, metric] <= high, (metric, res.loc[0, metric])
    assert low <= mode_baseline(labels[train], labels[test]) <= high


def test_transfer_fails_when_the_hypothetical_run_encodes_the_label_elsewhere():
    labels, signal, rng = planted(seed=1)
    other = np.roll(signal, 7, axis=1)  # the same class means, moved to other coordinates
    groups = [f"p{i // 2}" for i in range(len(labels))]
    obj = {0: signal + rng.standard_normal(signal.shape)}
    hyp = {0: other + rng.standard_normal(signal.shape)}
    train, test = split_by_prompt(groups, CONFIG.test_fraction, CONFIG.seed)
    res = probe_layers(obj, hyp, labels, train, test, CONFIG).iloc[0]
    assert res["object"] >= 0.95 and res["hypothetical"] >= 0.95
    assert res["transfer"] < 0.6


def test_split_keeps_each_prompt_on_one_side_and_is_seeded():
    groups = [f"p{i % 50}" for i in range(200)]
    train, test = split_by_prompt(groups, 0.25, 3)
    assert not {groups[i] for i in train} & {groups[i] for i in test}
    assert len(train) + len(test) == 200 and 0.15 < len(test) / 200 < 0.35
    again = split_by_prompt(groups, 0.25, 3)
    assert (again[0] == train).all() and (again[1] == test).all()
    with pytest.raises(SelfsimError, match="two distinct"):
        split_by_prompt(["a", "a"], 0.5, 0)


def test_input_only_baseline_reads_the_prompt_text():
    rng = np.random.default_rng(0)
    words = ["fox", "gnu", "cat", "owl"]
    texts = [" ".join(rng.choice(words, 3)) + f" key{i % 3}" for i in range(300)]
    train, test = split_by_prompt([str(i) for i in range(300)], 0.25, 0)
    assert input_baseline(texts, [t.split()[-1] for t in texts], train, test, CONFIG) == 1.0
    random_labels = [str(x) for x in rng.integers(0, 3, 300)]
    low, high = chance_band(1 / 3, len(test))
    assert input_baseline(texts, random_labels, train, test, CONFIG) <= high


def toy_examples(n: int, prop: str = "first_word") -> list[Example]:
    from selfsim.toy.language import FAMILIES

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        content = sequence_prompt("animals", list(rng.choice(FAMILIES["animals"], 5, replace=False)), 3)
        out.append(Example(task="animals_long", property=prop, dialect="toy",
                           object_messages=[{"role": "user", "content": content}],
                           hypothetical_messages=[{"role": "user", "content": hypothetical_prompt(content, prop)}]))
    return out


@pytest.fixture(scope="module")
def toy_subjects(tmp_path_factory):
    from selfsim.models import load_subject

    root = tmp_path_factory.mktemp("toy_tiny_probes")
    return {
        "m1": load_subject(str(save_toy_tiny(root / "a", seed=0))),
        "m2": load_subject(str(save_toy_tiny(root / "b", seed=1))),
    }


def test_probe_study_runs_on_two_subjects_and_writes_results(toy_subjects, tmp_path):
    examples = toy_examples(40)
    results = run_probes(toy_subjects, examples, tmp_path, ProbeConfig(max_iter=100), layers=[0, 2])
    assert set(results["subject"]) == {"m1", "m2"} and set(results["labels"]) == {"m1", "own"}
    assert set(results["metric"]) - {"skipped"} == {"object", "transfer", "hypothetical", "shuffled", "shuffled_transfer", "mode", "input_only"}
    scored = results[results["status"] == "ok"]
    assert set(results["layer"]) == {0, 2} and scored["accuracy"].between(0, 1).all()
    assert results[results["status"] != "ok"]["accuracy"].isna().all()
    m1_rows = results[results["subject"] == "m1"].set_index(["target", "labels", "layer", "metric"])["accuracy"]
    for key, acc in m1_rows.items():  # M1's labels are its own answers
        assert acc == m1_rows[(key[0], "own", *key[2:])]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved) == len(results)
    assert (tmp_path / "probes.html").stat().st_size > 10_000
    assert len(probe_figure(results).data) > 0
    again = run_probes(toy_subjects, examples, tmp_path, ProbeConfig(max_iter=100), layers=[0, 2])  # resumed caches
    assert again.equals(results)


def test_probe_command_writes_probes_and_lens(toy_subjects, tmp_path, capsys):
    from selfsim.cli import main

    model = str(toy_subjects["m1"].path)
    code = main(["probe", "--subject", f"untrained={model}", "--subject", f"other={toy_subjects['m2'].path}",
                 "--n", "24", "--layers", "0,2", "--lens", "--no-progress", "--out", str(tmp_path)])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[0])["subject"] in {"untrained", "other"} and lines[-1].endswith(str(tmp_path))
    for name in ("results.json", "results.parquet", "config.json", "probes.html", "lens.json", "lens.html"):
        assert (tmp_path / name).is_file()
    assert ProbeConfig.load(tmp_path / "config.json") == ProbeConfig()
    assert main(["probe", "--subject", "nolabel", "--out", str(tmp_path)]) == 2
    assert "expected LABEL=SPEC" in capsys.readouterr().err



class FixedRun:
    """A SubjectRun stand-in: fixed activations per run kind (probe_study reads label and activations only)."""

    def __init__(self, label: str, acts: np.ndarray) -> None:
        self.label, self.acts = label, acts

    def activations(self, kind, layers, position):
        return {layer: self.acts for layer in layers}


def test_unseen_test_labels_are_counted_and_never_scored_zero():
    """Issue 9: a probe cannot name a label absent from training; such test rows are left out and counted,
    and a label set whose test labels are all unseen is skipped with a status, not reported as 0.0."""
    from selfsim.interp.probes import NO_SHARED_LABEL, probe_study

    examples = toy_examples(40)
    train, test = split_by_prompt([e.object_id for e in examples], CONFIG.test_fraction, CONFIG.seed)
    rng = np.random.default_rng(0)
    signal = {"a": -5.0, "b": 5.0}
    partial = np.array(["a" if i % 2 else "b" for i in range(len(examples))], dtype=object)
    partial[test[:3]] = "never-trained"  # three test rows carry a label no training row has
    partial[train[0]] = None  # and one row has no label at all
    disjoint = np.array(["a" if i % 2 else "b" for i in range(len(examples))], dtype=object)
    disjoint[test] = "z"
    acts = rng.standard_normal((len(examples), 8))
    acts[:, 0] += [signal.get(v, 2.0) if v else 0.0 for v in partial]
    labels = {"m": {f"{s}:{t}": (partial if t == "property" else disjoint).tolist() for s in ("m1", "own") for t in ("first_token", "property")}}
    results = probe_study([FixedRun("m", acts)], labels, examples, [0, 1], CONFIG)
    skipped = results[results["target"] == "first_token"]
    assert set(skipped["metric"]) == {"skipped"} and set(skipped["status"]) == {NO_SHARED_LABEL}
    assert skipped["accuracy"].isna().all() and len(skipped) == 2 * 2  # per label source and layer
    scored = results[results["target"] == "property"]
    assert set(scored["status"]) == {"ok"} and (scored["n_test"] == len(test) - 3).all()
    assert (scored["n_test_unseen"] == 3).all() and (scored["n_missing"] == 1).all()
    assert (scored[scored["metric"] == "object"]["accuracy"] > 0.9).all()
