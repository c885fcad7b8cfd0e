"""The run order of a study: plugin modules, config check, examples, self vs cross on every pair, the
registered experiments on the primary pair, then results.json, manifest.json and report.html.

With `workers` > 1 the other pairs run in worker processes (one BLAS thread each, as the main one) while the
main process runs the primary pair and its experiments; the untrained models' stages, which every pair reads,
run first in the main process. Each stage does the same arithmetic in whichever process runs it, so
results.json is byte-identical to a run with one worker.
"""

from __future__ import annotations

import json
from pathlib import Path

from selfsim.errors import SelfsimError
from selfsim.io import read_json, write_json
from selfsim.results import EXPERIMENTS, PAPER, PairResult, StudyResults, load_plugins
from selfsim.study.config import StudyConfig
from selfsim.study.experiments.self_vs_cross import self_vs_cross
from selfsim.study.preflight import preflight
from selfsim.study.prompts import study_examples
from selfsim.study.scoring import spread
from selfsim.study.stages import Stages


class Study:
    """A run directory and the stages that fill it; see `selfsim.study`."""

    def __init__(self, config: StudyConfig, out: Path, *, progress: bool = True, workers: int = 1) -> None:
        if workers < 1:
            raise SelfsimError(f"study workers must be >= 1 (processes running pairs side by side), got {workers}")
        self.config = config
        self.out = Path(out)
        self.workers = workers
        self.stages = Stages(config, self.out, progress=progress)

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per stage that ran in this process (finished stages are skipped and not listed)."""
        return self.stages.timings

    def run(self) -> StudyResults:
        """Run every stage (skipping finished ones), write results.json, manifest.json, report.html."""
        load_plugins(self.config.plugins)
        preflight(self.config, log=lambda line: print(f"[selfsim study] {line}", flush=True))
        self.out.mkdir(parents=True, exist_ok=True)
        config_path = self.out / "config.json"
        if config_path.exists() and _results_part(read_json(config_path)) != _results_part(self.config.to_dict()):
            raise SelfsimError(f"{self.out} holds a study with another config; pass a new --out or delete it")
        write_json(config_path, self.config.to_dict())
        ex = study_examples(self.stages)
        pairs = self.run_pairs(ex)
        results = StudyResults(config=self.config.to_dict(), pairs=pairs, spread=spread(pairs), paper=dict(PAPER))
        write_json(self.out / "results.json", results.to_dict())
        manifest = self.out / "manifest.json"
        earlier = read_json(manifest) if manifest.exists() else {}
        # a resumed run keeps the seconds of the stages it skipped
        timings = {**earlier.get("timings_s", {}), **self.stages.timings}
        cpu = {**earlier.get("cpu_s", {}), **self.stages.cpu_timings}
        write_json(manifest, {"timings_s": timings, "total_s": round(sum(timings.values()), 2),
                              "cpu_s": cpu, "total_cpu_s": round(sum(cpu.values()), 2)})
        from selfsim.report import build_study_report

        build_study_report(self.out)
        return results

    def run_pairs(self, ex: dict) -> list[PairResult]:
        """Every ordered pair, the primary first; the others in up to `workers` - 1 worker processes."""
        order = self.config.model_pairs()
        if self.workers == 1 or len(order) == 1:
            return [self.run_pair(a, b, ex, primary=i == 0) for i, (a, b) in enumerate(order)]
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        shared_stages(self.stages, sorted({m for pair in order for m in pair}), ex)
        context = multiprocessing.get_context("spawn")  # a fork would copy this process's torch threads
        with ProcessPoolExecutor(min(self.workers - 1, len(order) - 1), mp_context=context) as pool:
            futures = [pool.submit(_pair_in_worker, self.config.to_dict(), str(self.out), a, b) for a, b in order[1:]]
            if self.stages.progress:
                print(f"[selfsim study] pairs {', '.join(f'{a}/{b}' for a, b in order[1:])} run in "
                      f"{len(futures) if len(futures) < self.workers else self.workers - 1} worker process(es)", flush=True)
            primary = self.run_pair(*order[0], ex, primary=True)
            others = [f.result() for f in futures]
        for _, timings, cpu in others:
            self.stages.timings.update(timings)
            self.stages.cpu_timings.update(cpu)
        return [primary] + [result for result, _, _ in others]

    def run_pair(self, a: str, b: str, ex: dict, *, primary: bool) -> PairResult:
        """Self vs cross for one ordered pair (A = M1, B = M2); the registered experiments when primary."""
        result, context = self_vs_cross(self.stages, a, b, ex)
        if primary:
            for name, experiment in EXPERIMENTS.items():
                result.experiments[name] = experiment.run(context)
                result.origins[name] = experiment.module
        return result


def _results_part(config: dict) -> dict:
    """A config as JSON without `plugins`: naming another plugin adds experiments to a finished run, whose
    finished stages stay valid."""
    return {k: v for k, v in json.loads(json.dumps(config)).items() if k != "plugins"}


def shared_stages(stages: Stages, models: list[str], ex: dict) -> None:
    """The stages every pair reads (each untrained model's behaviour and hypothetical answers), as
    `self_vs_cross` names them, so that no two processes run one stage."""
    from selfsim.study.stages import model_dir

    evals = ex["eval_id"] + ex["eval_ood"]
    for m in models:
        stages.behavior(model_dir(m), m, ex["train"] + evals)
    for m in models:
        stages.predictions(model_dir(m), m, evals)


def _pair_in_worker(config: dict, out: str, a: str, b: str) -> tuple[PairResult, dict[str, float], dict[str, float]]:
    """Self vs cross of one non-primary pair in a worker process: its result and its stages' seconds."""
    config_ = StudyConfig.from_dict(config)
    load_plugins(config_.plugins)
    stages = Stages(config_, Path(out), progress=False)
    result, _ = self_vs_cross(stages, a, b, study_examples(stages))
    return result, stages.timings, stages.cpu_timings
