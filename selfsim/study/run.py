"""The run order of a study: plugin modules, config check, examples, self vs cross on every pair, the
registered experiments on the primary pair, then results.json, manifest.json and report.html."""

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

    def __init__(self, config: StudyConfig, out: Path, *, progress: bool = True) -> None:
        self.config = config
        self.out = Path(out)
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
        pairs = [self.run_pair(a, b, ex, primary=i == 0) for i, (a, b) in enumerate(self.config.model_pairs())]
        results = StudyResults(config=self.config.to_dict(), pairs=pairs, spread=spread(pairs), paper=dict(PAPER))
        write_json(self.out / "results.json", results.to_dict())
        manifest = self.out / "manifest.json"
        earlier = read_json(manifest).get("timings_s", {}) if manifest.exists() else {}
        timings = {**earlier, **self.stages.timings}  # a resumed run keeps the seconds of the stages it skipped
        write_json(manifest, {"timings_s": timings, "total_s": round(sum(timings.values()), 2)})
        from selfsim.report import build_study_report

        build_study_report(self.out)
        return results

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
