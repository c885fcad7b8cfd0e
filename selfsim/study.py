"""The end-to-end study of `make demo`: the paper's four experiments on a pair of models.

For each ordered model pair (A plays M1, B plays M2) the study
1. generates toy-dialect examples: training tasks (finetuning data and held-out prompts of the same
   tasks) and held-out tasks (the paper's evaluation);
2. collects both models' object-level behaviour, and their untrained hypothetical answers;
3. finetunes A on its own behaviour (self, giving A-ft), collects A-ft's behaviour, finetunes B on A-ft's
   behaviour on the training prompts (cross, as the paper's code), and scores every model's hypothetical
   answers against A-ft's current behaviour (primary), A's pre-finetune behaviour (secondary) and its own;
4. on the primary pair only: a data-scaling curve for cross-prediction, a full-finetuning control,
   calibration (T=1 samples, object level from A-ft) and behaviour shift (A-ft further finetuned on B's
   object answers). Every finetune trains `epochs` passes over its items.
Every stage writes files under the run directory and is skipped when its output is already there,
so an interrupted study resumes. `results.json` holds every number of the report and depends only on
the config (same seed -> same bytes); timings live in `manifest.json`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from selfsim.errors import SelfsimError
from selfsim.examples import Example, load_examples, save_examples
from selfsim.io import read_json, write_json

PAPER = {
    "self_trained_llama70b": 48.5,
    "untrained_llama70b": 26.4,
    "mode_baseline_llama70b": 36.1,
    "cross_plateau": 35.0,
    "shift_new": 35.4,
    "shift_old": 21.7,
}
# Whose object-level behaviour a hypothetical answer is scored against: the self-trained M1's current
# behaviour (primary, as the paper's code) or M1's behaviour before finetuning (secondary).
TARGETS = {
    "m1_after": "the self-trained M1's current behaviour (M1ft)",
    "m1_before": "M1's pre-finetune behaviour",
}


@dataclass
class StudyConfig:
    """Everything that determines a study's results (timings excluded)."""

    name: str = "toy"
    models: tuple[str, ...] = ("toy-m1", "toy-m2")
    pairs: int = 1
    seed: int = 0
    train_tasks: tuple[str, ...] = ("colors_long", "countries_long")
    test_tasks: tuple[str, ...] = ("animals_long", "english_words_long")
    properties: tuple[str, ...] = ("first_word", "second_character")
    n_train: int = 1000
    n_eval: int = 500
    scaling: tuple[int, ...] = (250, 500)
    full_control: tuple[int, ...] = (1000,)
    calibration_prompts: int = 100
    calibration_samples: int = 20
    # Every finetune trains this many passes over its items (steps = ceil(epochs * items / batch_size)),
    # so the scaling curve varies data size, not repetition. 9.6 epochs of the main run's 2000 items at
    # batch 64 are the 300 steps the toy world was tuned with (STACK.md); the paper trains 1 epoch on ~30k.
    epochs: float = 9.6
    batch_size: int = 64
    lr: float = 1e-3
    rank: int = 8
    alpha: float = 16.0
    full_lr: float = 1e-3
    gen_batch_size: int = 64
    n_boot: int = 1000
    interp_prompts: int = 96

    @classmethod
    def quick(cls, **overrides: Any) -> StudyConfig:
        """A reduced study for CI: a few hundred prompts, short finetunes, every stage exercised
        (2.7 epochs: 41 steps on the main run's 240 items, as the 40 fixed steps it replaced)."""
        base = cls(
            name="toy-quick", n_train=120, n_eval=60, scaling=(30,), full_control=(60,),
            calibration_prompts=16, calibration_samples=8, epochs=2.7, batch_size=16, n_boot=200, interp_prompts=24,
        )
        return replace(base, **overrides)

    def __post_init__(self) -> None:
        if not self.epochs > 0 or self.batch_size < 1:
            raise SelfsimError(f"study epochs must be > 0 and batch_size >= 1, got epochs={self.epochs}, batch_size={self.batch_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def steps_for(self, n_items: int) -> int:
        """Optimizer steps of a finetune on `n_items` items: `epochs` passes at `batch_size` (at least 1)."""
        return max(1, math.ceil(self.epochs * n_items / self.batch_size))

    def n_items(self, n_train: int) -> int:
        """Requested training items for `n_train` prompts: per (task, property) share x tasks x properties."""
        return max(1, n_train // len(self.train_tasks)) * len(self.train_tasks) * len(self.properties)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise SelfsimError(f"unknown study config field(s) {sorted(unknown)}; valid: {', '.join(sorted(names))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def model_pairs(self) -> list[tuple[str, str]]:
        """Ordered (M1, M2) pairs: the configured models first, then toy-m3/m4, ... both ways round."""
        names = list(self.models)
        for k in range(len(names) // 2, self.pairs):
            names += [f"toy-m{2 * k + 1}", f"toy-m{2 * k + 2}"]
        unordered = [(names[2 * k], names[2 * k + 1]) for k in range(self.pairs)]
        return [p for a, b in unordered for p in ((a, b), (b, a))]

    def per_pair(self) -> int:
        """Training prompts per (task, property) so that all training tasks together give n_train."""
        return max(1, self.n_train // len(self.train_tasks))


class Study:
    """A run directory and the stages that fill it; see the module docstring."""

    def __init__(self, config: StudyConfig, out: Path, *, progress: bool = True) -> None:
        self.config = config
        self.out = Path(out)
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._subjects: dict[tuple[str, str | None], Any] = {}

    # ------------------------------------------------------------------ plumbing
    def stage(self, name: str, done: Path, fn: Callable[[], Any]) -> None:
        """Run `fn` unless `done` exists; record the time it took."""
        if done.exists():
            return
        start = time.perf_counter()
        if self.progress:
            print(f"[selfsim study] {name}", flush=True)
        fn()
        self.timings[name] = round(time.perf_counter() - start, 2)

    def subject(self, model: str, adapter: Path | None = None) -> Any:
        """Load (once) a model, optionally with an adapter or a merged-weights directory."""
        from selfsim.models import load_subject

        key = (model, str(adapter) if adapter else None)
        if key not in self._subjects:
            self._subjects.clear()
            self._subjects[key] = load_subject(model, adapter=adapter)
        return self._subjects[key]

    def model_dir(self, model: str) -> str:
        return model.replace("/", "_")

    # ------------------------------------------------------------------ examples
    def examples(self) -> dict[str, list[Example]]:
        """train (finetuning data), eval_id (held-out prompts of train tasks), eval_ood (held-out tasks)."""
        paths = {k: self.out / "examples" / f"{k}.jsonl" for k in ("train", "eval_id", "eval_ood", "calibration")}

        def build() -> None:
            from selfsim.tasks import generate

            c = self.config
            per_task = c.per_pair()
            n_id = max(1, c.n_eval // len(c.train_tasks))
            train, eval_id = [], []
            for task in c.train_tasks:
                rows = generate(task, c.properties, per_task + n_id, seed=c.seed, dialect="toy")
                cut = per_task * len(c.properties)
                train += rows[:cut]
                eval_id += [replace(e, split="test") for e in rows[cut:]]
            n_ood = max(1, c.n_eval // len(c.test_tasks))
            eval_ood = [e for t in c.test_tasks for e in generate(t, c.properties, n_ood, seed=c.seed + 1, dialect="toy")]
            for key, rows in (("train", train), ("eval_id", eval_id), ("eval_ood", eval_ood)):
                save_examples(paths[key], rows)
            save_examples(paths["calibration"], calibration_examples(c.calibration_prompts, c.seed))

        self.stage("examples", paths["calibration"], build)
        return {k: load_examples(p) for k, p in paths.items()}

    # ------------------------------------------------------------------ generation
    def behaviour(self, key: str, model: str, examples: list[Example], adapter: Path | None = None) -> pd.DataFrame:
        """Greedy object-level behaviour of a model (cached under behaviour/<key>)."""
        from selfsim.behavior import BEHAVIOR_FILE, collect, load_table

        out = self.out / "behaviour" / key
        self.stage(f"behaviour {key}", out / BEHAVIOR_FILE, lambda: collect(
            self.subject(model, adapter), examples, out_dir=out, batch_size=self.config.gen_batch_size,
            seed=self.config.seed, progress=self.progress,
        ))
        return load_table(out / BEHAVIOR_FILE)

    def predictions(self, key: str, model: str, examples: list[Example], adapter: Path | None = None) -> pd.DataFrame:
        """Greedy hypothetical answers of a model (cached under predictions/<key>)."""
        from selfsim.behavior import PREDICTIONS_FILE, load_table, predict

        out = self.out / "predictions" / key
        self.stage(f"predictions {key}", out / PREDICTIONS_FILE, lambda: predict(
            self.subject(model, adapter), examples, out_dir=out, batch_size=self.config.gen_batch_size,
            seed=self.config.seed, progress=self.progress,
        ))
        return load_table(out / PREDICTIONS_FILE)

    def samples(self, key: str, model: str, examples: list[Example], *, meta: bool, adapter: Path | None = None) -> pd.DataFrame:
        """T=1 samples of the object level or of the hypothetical question (calibration)."""
        from selfsim.behavior import BEHAVIOR_FILE, PREDICTIONS_FILE, collect, load_table, predict

        c = self.config
        out = self.out / "samples" / key
        fn, file = (predict, PREDICTIONS_FILE) if meta else (collect, BEHAVIOR_FILE)
        self.stage(f"samples {key}", out / file, lambda: fn(
            self.subject(model, adapter), examples, out_dir=out, samples=c.calibration_samples, temperature=1.0,
            batch_size=c.gen_batch_size, seed=c.seed, progress=self.progress,
        ))
        return load_table(out / file)

    # ------------------------------------------------------------------ finetuning
    def finetune(self, key: str, model: str, items: list[Any], *, n_items: int | None = None, full: bool = False,
                 base_adapter: Path | None = None) -> Path:
        """Train an adapter (or full weights) for `epochs` over `n_items` (default len(items)); returns its directory (cached)."""
        from selfsim.finetune import FinetuneConfig, train
        from selfsim.finetune.trainer import RESULT_FILE

        c = self.config
        out = self.out / "adapters" / key
        steps = c.steps_for(len(items) if n_items is None else n_items)
        config = FinetuneConfig(
            rank=c.rank, alpha=c.alpha, lr=c.full_lr if full else c.lr, steps=steps, batch_size=c.batch_size,
            per_pair=None, seed=c.seed, full_finetune=full, save_every=max(steps // 3, 1),
        )
        self.stage(f"finetune {key}", out / RESULT_FILE, lambda: train(
            self.subject(model, base_adapter), items, config, out, resume=True, progress=self.progress,
        ))
        self._subjects.clear()
        return out

    def labelled(self, examples: list[Example], behaviour: pd.DataFrame, per_pair: int | None = None) -> list[Any]:
        """Training items: examples labelled with a behaviour table's greedy property values."""
        from selfsim.finetune import build_training_set

        return build_training_set(examples, labels_of(behaviour), per_pair=per_pair, seed=self.config.seed)

    # ------------------------------------------------------------------ the experiments
    def run(self) -> dict[str, Any]:
        """Run every stage (skipping finished ones), write results.json, manifest.json, report.html."""
        self.out.mkdir(parents=True, exist_ok=True)
        config_path = self.out / "config.json"
        if config_path.exists() and read_json(config_path) != json.loads(json.dumps(self.config.to_dict())):
            raise SelfsimError(f"{self.out} holds a study with another config; pass a new --out or delete it")
        write_json(config_path, self.config.to_dict())
        ex = self.examples()
        results: dict[str, Any] = {"config": self.config.to_dict(), "paper": PAPER, "pairs": []}
        for index, (a, b) in enumerate(self.config.model_pairs()):
            results["pairs"].append(self.run_pair(a, b, ex, primary=index == 0))
        results["spread"] = spread(results["pairs"])
        write_json(self.out / "results.json", results)
        write_json(self.out / "manifest.json", {"timings_s": self.timings, "total_s": round(sum(self.timings.values()), 2)})
        from selfsim.report import build_study_report

        build_study_report(self.out)
        return results

    def run_pair(self, a: str, b: str, ex: dict[str, list[Example]], *, primary: bool) -> dict[str, Any]:
        """Self vs cross for one ordered pair (A = M1, B = M2); the extra experiments when primary.

        As in the paper's code, the primary target is the self-trained M1's current behaviour (M1ft):
        M2 learns M1ft's answers on the training prompts, and every model is scored against M1ft's
        answers on held-out prompts. Scores against M1's pre-finetune behaviour are the secondary target.
        """
        from selfsim.behavior import to_long

        c = self.config
        evals = ex["eval_id"] + ex["eval_ood"]
        everything = ex["train"] + evals
        da, db = self.model_dir(a), self.model_dir(b)
        beh_a = self.behaviour(da, a, everything)
        beh_b = self.behaviour(db, b, everything)
        pair = f"{da}__{db}"
        n_items = c.n_items(c.n_train)
        adapters = {"self": self.finetune(f"{pair}/self", a, self.labelled(ex["train"], beh_a, c.per_pair()), n_items=n_items)}
        beh_self = self.behaviour(f"{pair}/self", a, everything, adapters["self"])
        adapters["cross"] = self.finetune(f"{pair}/cross", b, self.labelled(ex["train"], beh_self, c.per_pair()), n_items=n_items)
        models = {"untrained": (a, None), "self": (a, adapters["self"]), "cross": (b, adapters["cross"]),
                  "untrained_m2": (b, None)}
        preds = {k: to_long(self.predictions(f"{pair}/{k}" if k in adapters else self.model_dir(m), m, evals, ad))
                 for k, (m, ad) in models.items()}
        eval_ids = {e.object_id for e in evals}
        m1_after = to_long(beh_self)
        after = {"self": m1_after[m1_after["object_id"].isin(eval_ids)].reset_index(drop=True),
                 "cross": to_long(self.behaviour(f"{pair}/cross", b, evals, adapters["cross"]))}
        before = {"m1": to_long(beh_a), "m2": to_long(beh_b)}
        targets = {"m1_after": after["self"], "m1_before": before["m1"]}
        scoring = {
            "untrained": dict(targets),
            "self": dict(targets),
            "cross": {**targets, "own_before": before["m2"], "own_after": after["cross"]},
            "untrained_m2": {**targets, "own_before": before["m2"]},
        }
        out: dict[str, Any] = {"m1": a, "m2": b, "targets": TARGETS, "steps": c.steps_for(n_items),
                               "accuracy": {}, "mode_baseline": {}, "gap": {}, "unchanged": {}}
        for split, rows in (("eval_ood", ex["eval_ood"]), ("eval_id", ex["eval_id"])):
            ids = {e.object_id for e in rows}
            out["accuracy"][split] = {
                cond: {target: self.accuracy(preds[cond], beh, ids) for target, beh in targets_.items()}
                for cond, targets_ in scoring.items()
            }
            out["mode_baseline"][split] = {
                target: {mode: self.mode(beh, ids, mode) for mode in ("wrong", "exclude")} for target, beh in targets.items()
            }
            out["gap"][split] = {target: self.gap(preds["self"], preds["cross"], beh, ids) for target, beh in targets.items()}
        out["unchanged"] = {
            "self": unchanged(before["m1"], after["self"]),
            "cross": unchanged(before["m2"], after["cross"]),
        }
        if primary:
            out["scaling"] = self.scaling(pair, b, ex, beh_self, evals, targets, adapters["cross"])
            out["full_control"] = self.full_control(pair, a, b, ex, beh_a, beh_self, evals, {**targets, "own_before": before["m2"]})
            out["calibration"] = self.calibration(pair, a, b, ex["calibration"], adapters)
            out["shift"] = self.shift(pair, a, b, ex, beh_b, adapters["self"], evals, after["self"])
            out["interp"] = self.interp(a, b, ex["eval_ood"], beh_a, adapters)
        return out

    def interp(self, a: str, b: str, examples: list[Example], beh_a: pd.DataFrame, adapters: dict[str, Path]) -> dict[str, Any]:
        """Patching (object -> hypothetical, final position, by layer and component), probes and logit
        lens on untrained, self- and cross-trained models side by side; figures go to figures/."""
        from selfsim.interp.lens import lens_figure, lens_study
        from selfsim.interp.patching import PatchConfig, heatmap, run_patching
        from selfsim.interp.probes import probe_figure, run_probes
        from selfsim.models import load_subject

        c = self.config
        out = self.out / "interp"
        chosen = [e for e in examples if e.property == "first_word"][: c.interp_prompts]
        greedy = beh_a[beh_a["sample"] == -1]
        m1 = dict(zip(greedy["object_id"], greedy["response"]))

        def subjects() -> dict[str, Any]:
            return {"untrained": load_subject(a), "self": load_subject(a, adapter=adapters["self"]),
                    "cross": load_subject(b, adapter=adapters["cross"])}

        def patching() -> None:
            config = PatchConfig(components=("resid", "attn", "mlp"), positions="final", backend="hooks", seed=c.seed)
            result = run_patching(subjects(), chosen, config, labels=m1)
            result.save(out / "patching")
            summary = result.summary()
            figure = heatmap(summary, metric="flip_rate", direction="object->hypothetical", component="resid")
            write_figure(self.out, "patching_flip_rate_resid", figure)

        def probes() -> None:
            results = run_probes(subjects(), chosen, out / "probes", m1_responses=m1, progress=False)
            write_figure(self.out, "probes_by_layer", probe_figure(results))

        def lens() -> None:
            subs = subjects()
            tokens = [str(m1.get(e.object_id) or "").split()[0] if m1.get(e.object_id) else None for e in chosen]
            results = lens_study(subs, chosen, m1_first_tokens=tokens)
            results.to_json(out / "lens.json", orient="records", indent=1)
            write_figure(self.out, "logit_lens", lens_figure(results))

        self.stage("interp patching", out / "patching" / "summary.json", patching)
        self.stage("interp probes", out / "probes" / "results.json", probes)
        self.stage("interp lens", out / "lens.json", lens)
        return {"patching": read_json(out / "patching" / "summary.json"), "lens": read_json(out / "lens.json")}

    def accuracy(self, predictions: pd.DataFrame, behaviour: pd.DataFrame, ids: set[str]) -> dict[str, Any]:
        """Hypothetical accuracy (both non-compliance modes) of predictions against a behaviour table."""
        from selfsim.evaluate import hypothetical_accuracy, score, to_records

        scored = score(predictions[predictions["object_id"].isin(ids)], behaviour[behaviour["object_id"].isin(ids)])
        c = self.config
        return {
            mode: to_records(hypothetical_accuracy(scored, noncompliant=mode, n_boot=c.n_boot, seed=c.seed))
            for mode in ("wrong", "exclude")
        }

    def mode(self, behaviour: pd.DataFrame, ids: set[str], noncompliant: str = "wrong") -> list[dict[str, Any]]:
        """Mode baseline on the prompts `ids` of a behaviour table, non-compliant rows handled as `noncompliant`."""
        from selfsim.evaluate import mode_baseline, to_records

        c = self.config
        rows = behaviour[behaviour["object_id"].isin(ids)]
        return to_records(mode_baseline(rows, noncompliant=noncompliant, n_boot=c.n_boot, seed=c.seed))

    def gap(self, preds_self: pd.DataFrame, preds_cross: pd.DataFrame, behaviour: pd.DataFrame, ids: set[str]) -> dict[str, Any]:
        """Self - cross accuracy gap (ALL/ALL) with a paired bootstrap CI over prompts, both non-compliance modes."""
        from selfsim.evaluate import paired_gap, score, to_records

        c = self.config
        beh = behaviour[behaviour["object_id"].isin(ids)]
        scored = [score(p[p["object_id"].isin(ids)], beh) for p in (preds_self, preds_cross)]
        return {
            mode: to_records(pd.DataFrame([paired_gap(*scored, noncompliant=mode, n_boot=c.n_boot, seed=c.seed)]))[0]
            for mode in ("wrong", "exclude")
        }

    def scaling(self, pair: str, b: str, ex: dict[str, list[Example]], labels: pd.DataFrame,
                evals: list[Example], targets: dict[str, pd.DataFrame], cross: Path) -> list[dict[str, Any]]:
        """Cross-prediction accuracy (held-out tasks) as B's training set grows, each size trained for
        `epochs` on M1ft's labels; scored against M1ft (top level) and M1 before (`vs_m1_before`).
        n_train reuses the main cross run."""
        from selfsim.behavior import to_long

        c = self.config
        ids = {e.object_id for e in ex["eval_ood"]}
        rows = []
        for n in sorted({*c.scaling, c.n_train}):
            per_pair = max(1, n // len(c.train_tasks))
            key = f"{pair}/cross" if n == c.n_train else f"{pair}/cross_n{n}"
            n_items = c.n_items(n)
            adapter = cross if n == c.n_train else self.finetune(key, b, self.labelled(ex["train"], labels, per_pair), n_items=n_items)
            preds = to_long(self.predictions(key, b, evals, adapter))
            rows.append({"condition": "cross", "n_train": n, "n_items": n_items, "steps": c.steps_for(n_items),
                         **self.accuracy(preds, targets["m1_after"], ids),
                         "vs_m1_before": self.accuracy(preds, targets["m1_before"], ids)})
        return rows

    def full_control(self, pair: str, a: str, b: str, ex: dict[str, list[Example]], beh_a: pd.DataFrame,
                     beh_self: pd.DataFrame, evals: list[Example], targets: dict[str, pd.DataFrame]) -> list[dict[str, Any]]:
        """Full-weight finetuning of self (on M1's own answers) and cross (on M1ft's) at growing data sizes,
        scored against M1ft's behaviour (`vs_m1_after`) and M1's pre-finetune behaviour (`vs_m1_before`)."""
        from selfsim.behavior import to_long

        c = self.config
        ids = {e.object_id for e in ex["eval_ood"]}
        rows = []
        for n in c.full_control:
            per_pair = max(1, n // len(c.train_tasks))
            for cond, model, labels in (("self", a, beh_a), ("cross", b, beh_self)):
                key = f"{pair}/full_{cond}_n{n}"
                path = self.finetune(key, model, self.labelled(ex["train"], labels, per_pair), n_items=c.n_items(n), full=True)
                preds = to_long(self.predictions(key, str(path), evals))
                row = {"condition": cond, "n_train": n, "steps": c.steps_for(c.n_items(n)),
                       "vs_m1_after": self.accuracy(preds, targets["m1_after"], ids),
                       "vs_m1_before": self.accuracy(preds, targets["m1_before"], ids)}
                if cond == "cross":
                    row["vs_own_before"] = self.accuracy(preds, targets["own_before"], ids)
                rows.append(row)
        return rows

    def calibration(self, pair: str, a: str, b: str, examples: list[Example], adapters: dict[str, Path]) -> dict[str, Any]:
        """SPEC experiment 3: T=1 object samples of the self-trained M1 (whose behaviour is predicted)
        vs T=1 hypothetical samples of each model."""
        from selfsim.behavior import to_long
        from selfsim.evaluate import calibration

        obj = to_long(self.samples(f"{pair}/self-object", a, examples, meta=False, adapter=adapters["self"]), samples=True)
        result = {}
        for cond, (model, adapter) in {"untrained": (a, None), "self": (a, adapters["self"]), "cross": (b, adapters["cross"])}.items():
            key = f"{pair}/{cond}" if adapter else self.model_dir(model)
            meta = to_long(self.samples(key, model, examples, meta=True, adapter=adapter), samples=True)
            meta = meta.rename(columns={"answer": "value"})
            result[cond] = calibration(obj[["object_id", "value", "sample"]], meta[["object_id", "value", "sample"]]).to_dict()
        return result

    def shift(self, pair: str, a: str, b: str, ex: dict[str, list[Example]], beh_b: pd.DataFrame, self_adapter: Path,
              evals: list[Example], old: pd.DataFrame) -> dict[str, Any]:
        """SPEC experiment 4: A-self finetuned further on B's object-level answers (Mc); new vs old behaviour."""
        from selfsim.behavior import to_long
        from selfsim.evaluate import behaviour_shift, to_records
        from selfsim.finetune import TrainItem

        greedy = beh_b[beh_b["sample"] == -1]
        train_ids = {e.object_id: e for e in ex["train"]}
        items = [
            TrainItem(id=f"object:{oid}", object_id=oid, task=train_ids[oid].task, property="object",
                      messages=train_ids[oid].object_messages, target=str(resp))
            for oid, resp in sorted(zip(greedy["object_id"], greedy["response"])) if oid in train_ids and str(resp).strip()
        ]
        shifted = self.finetune(f"{pair}/shift", a, items, base_adapter=self_adapter)
        new = to_long(self.behaviour(f"{pair}/shift", a, evals, shifted))
        preds = to_long(self.predictions(f"{pair}/shift", a, evals, shifted))
        c = self.config
        ids = {e.object_id for e in ex["eval_ood"]}
        return {
            "changed": to_records(behaviour_shift(preds[preds["object_id"].isin(ids)], old, new, n_boot=c.n_boot, seed=c.seed)),
            "unchanged_share": unchanged(old, new),
        }


def write_figure(run_dir: Path, name: str, figure: Any) -> None:
    """Save a plotly figure as JSON under run_dir/figures/, where the report picks it up."""
    from selfsim.io import atomic_open
    from selfsim.report import FIGURES_DIR

    with atomic_open(Path(run_dir) / FIGURES_DIR / f"{name}.json") as fh:
        fh.write(figure.to_json())


def labels_of(behaviour: pd.DataFrame) -> dict[str, dict[str, str | None]]:
    """{object_id: {property: value}} from the greedy rows of a behaviour table."""
    greedy = behaviour[behaviour["sample"] == -1]
    return {oid: dict(props) for oid, props in zip(greedy["object_id"], greedy["properties"])}


def unchanged(before: pd.DataFrame, after: pd.DataFrame) -> float:
    """Share of object-level answers a finetune left unchanged (on the prompts both tables hold)."""
    from selfsim.evaluate import unchanged_share

    return float(unchanged_share(before, after))


def calibration_examples(n: int, seed: int) -> list[Example]:
    """"Next single animal" toy prompts with the second-character hypothetical (SPEC experiment 3)."""
    import random

    from selfsim.tasks import hypothetical_messages
    from selfsim.toy.language import FAMILIES, sequence_prompt

    rng = random.Random(f"selfsim:calibration:{seed}")
    seen: dict[str, Example] = {}
    while len(seen) < n:
        items = rng.sample(FAMILIES["animals"], rng.randint(5, 8))
        messages = [{"role": "user", "content": sequence_prompt("animals", items, n_next=1)}]
        seen.setdefault(messages[0]["content"], Example(
            task="animals_long", property="second_character", object_messages=messages,
            hypothetical_messages=hypothetical_messages("animals_long", "second_character", messages, dialect="toy"),
            split="test", dialect="toy",
        ))
    return list(seen.values())


def _all_row(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in records if r["task"] == "ALL" and r["property"] == "ALL"), None)


def headline(pair: dict[str, Any], split: str = "eval_ood", mode: str = "wrong", target: str = "m1_after",
             *, with_ci: bool = False) -> dict[str, Any]:
    """Micro-averaged (ALL/ALL) accuracy of each condition and of the mode baseline against `target`
    (default: the self-trained M1's current behaviour); with_ci gives (accuracy, ci_low, ci_high) tuples."""
    if target not in TARGETS:
        raise SelfsimError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")

    def pick(records: list[dict[str, Any]]) -> Any:
        row = _all_row(records)
        if row is None:
            return (None, None, None) if with_ci else None
        return (row["accuracy"], row["ci_low"], row["ci_high"]) if with_ci else row["accuracy"]

    acc = pair["accuracy"][split]
    out = {cond: pick(targets[target][mode]) for cond, targets in acc.items()}
    out["mode_baseline"] = pick(pair["mode_baseline"][split][target][mode])
    out["cross_vs_own"] = pick(acc["cross"]["own_before"][mode])
    return out


def spread(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Self - cross gap per ordered pair (held-out tasks, ALL/ALL, vs M1ft) with its paired CI, and the
    mean and sample std over ordered pairs."""
    import statistics

    rows = [p["gap"]["eval_ood"]["m1_after"]["wrong"] for p in pairs]
    gaps = [r["gap"] for r in rows if r["gap"] is not None]
    return {
        "gaps": gaps,
        "ci": [[r["ci_low"], r["ci_high"]] for r in rows if r["gap"] is not None],
        "mean": statistics.fmean(gaps) if gaps else None,
        "std": statistics.stdev(gaps) if len(gaps) > 1 else None,
        "target": "m1_after",
        "note": "ordered pairs share models (both role orders), so they are not independent",
    }


def load_config(out: Path) -> StudyConfig:
    """The config of an existing run directory."""
    return StudyConfig.from_dict(read_json(Path(out) / "config.json"))
