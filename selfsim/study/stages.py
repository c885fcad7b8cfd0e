"""The stage cache of a run directory: each stage writes files and is skipped when its output exists.

`Stages` runs a stage unless its `done` file is there and records how long it took (`timings`, wall seconds, and
`cpu_timings`, this process's CPU seconds, which a loaded machine does not inflate; both go to manifest.json, never
to results.json). On top of it sit the cached generation and finetuning stages every
experiment uses: greedy behaviour, hypothetical predictions, T=1 samples and finetunes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfsim.behavior import BehaviorTable
from selfsim.examples import Example
from selfsim.study.config import StudyConfig


def model_dir(model: str) -> str:
    """The directory name of a model in a run directory."""
    return model.replace("/", "_")


class Stages:
    """A run directory's cached stages and the one model kept loaded between them."""

    def __init__(self, config: StudyConfig, out: Path, *, progress: bool = True) -> None:
        self.config = config
        self.out = Path(out)
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.cpu_timings: dict[str, float] = {}
        self._subjects: dict[tuple[str, str | None], Any] = {}

    def stage(self, name: str, done: Path, fn: Callable[[], Any]) -> None:
        """Run `fn` unless `done` exists and `fn` returned after writing it; record the time it took.

        `fn` may write `done` before its other files: only the mark written after it returns (`.<done>.done`)
        says the stage is complete, so a stage cut short (a kill, a full disk, Ctrl-C) runs again on resume.
        """
        complete = done.parent / f".{done.name}.done"
        if done.exists() and complete.exists():
            return
        start, cpu = time.perf_counter(), time.process_time()
        if self.progress:
            print(f"[selfsim study] {name}", flush=True)
        fn()
        complete.parent.mkdir(parents=True, exist_ok=True)
        complete.touch()
        self.timings[name] = round(time.perf_counter() - start, 2)
        self.cpu_timings[name] = round(time.process_time() - cpu, 2)

    def subject(self, model: str, adapter: Path | None = None) -> Any:
        """Load (once) a model, optionally with an adapter or a merged-weights directory."""
        from selfsim.models import load_subject

        key = (model, str(adapter) if adapter else None)
        if key not in self._subjects:
            self._subjects.clear()
            c = self.config
            self._subjects[key] = load_subject(model, adapter=adapter, dtype=c.dtype, device_map=c.device_map)
        return self._subjects[key]

    def behavior(self, key: str, model: str, examples: list[Example], adapter: Path | None = None) -> BehaviorTable:
        """Greedy object-level behaviour of a model (cached under behaviour/<key>)."""
        from selfsim.behavior import BEHAVIOR_FILE, collect

        out = self.out / "behaviour" / key
        self.stage(f"behaviour {key}", out / BEHAVIOR_FILE, lambda: collect(
            self.subject(model, adapter), examples, out_dir=out, batch_size=self.config.gen_batch_size,
            seed=self.config.seed, progress=self.progress,
        ))
        return BehaviorTable.load(out / BEHAVIOR_FILE)

    def predictions(self, key: str, model: str, examples: list[Example], adapter: Path | None = None) -> BehaviorTable:
        """Greedy hypothetical answers of a model (cached under predictions/<key>)."""
        from selfsim.behavior import PREDICTIONS_FILE, predict

        out = self.out / "predictions" / key
        self.stage(f"predictions {key}", out / PREDICTIONS_FILE, lambda: predict(
            self.subject(model, adapter), examples, out_dir=out, batch_size=self.config.gen_batch_size,
            seed=self.config.seed, progress=self.progress,
        ))
        return BehaviorTable.load(out / PREDICTIONS_FILE)

    def samples(self, key: str, model: str, examples: list[Example], *, meta: bool, adapter: Path | None = None) -> BehaviorTable:
        """T=1 samples of the object level or of the hypothetical question (calibration)."""
        from selfsim.behavior import BEHAVIOR_FILE, PREDICTIONS_FILE, collect, predict

        c = self.config
        out = self.out / "samples" / key
        fn, file = (predict, PREDICTIONS_FILE) if meta else (collect, BEHAVIOR_FILE)
        self.stage(f"samples {key}", out / file, lambda: fn(
            self.subject(model, adapter), examples, out_dir=out, samples=c.calibration_samples, temperature=1.0,
            batch_size=c.gen_batch_size, seed=c.seed, progress=self.progress,
        ))
        return BehaviorTable.load(out / file)

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

    def labelled(self, examples: list[Example], behavior: BehaviorTable, per_pair: int | None = None) -> list[Any]:
        """Training items: examples labelled with a behaviour table's greedy property values."""
        from selfsim.finetune import build_training_set

        return build_training_set(examples, behavior.labels(), per_pair=per_pair, seed=self.config.seed)
