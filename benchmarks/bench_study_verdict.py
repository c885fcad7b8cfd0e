"""CPU seconds of the study's verdict stage at a preset's settings, on a finished study's adapters.

The verdict's cost depends on its prompt count, edit-set size and the model's shape, not on how well the adapters
were trained, so a quick study's adapters stand in for the demo's. CPU seconds (one BLAS thread) are what an idle
core's wall time would be, also on a loaded machine.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_study_verdict.py --preset demo --run runs/toy-quick
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from selfsim.errors import SelfsimError
from selfsim.models import load_subject
from selfsim.study.config import preset
from selfsim.study.experiments import verdict as study_verdict
from selfsim.study.prompts import study_examples
from selfsim.study.stages import Stages, model_dir
from selfsim.verdict.run import VerdictConfig, run_verdict


def main() -> None:
    """Time the verdict on the run's self-trained M1 and cross-trained M2 with the preset's prompts."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="demo")
    p.add_argument("--run", type=Path, required=True, help="a finished toy study (its adapters/ are tested)")
    args = p.parse_args()
    c = preset(args.preset)
    a, b = c.models
    pair = args.run / "adapters" / f"{model_dir(a)}__{model_dir(b)}"
    if not (pair / "self").is_dir() or not (pair / "cross").is_dir():
        raise SelfsimError(f"{pair} holds no self/ and cross/ adapters; pass a finished toy study's run directory")
    with tempfile.TemporaryDirectory() as tmp:
        ex = study_examples(Stages(c, Path(tmp), progress=False))
        props = [q for q in c.properties if q not in study_verdict.SKIP_PROPERTIES] or list(c.properties)
        n = min(c.interp_prompts, study_verdict.MAX_PROMPTS)
        chosen = [e for q in props for e in [e for e in ex["eval_ood"] if e.property == q][:n]]
        config = VerdictConfig(seed=c.seed, n_sets=study_verdict.N_SETS, per_set=max(1, min(study_verdict.PER_SET, n // 2)))
        total = 0.0
        for label, base in (("self", a), ("cross", b)):
            cpu, wall = time.process_time(), time.perf_counter()
            run_verdict(load_subject(base, adapter=pair / label), chosen, Path(tmp) / label, untrained=load_subject(base),
                        config=config, label=label, progress=False)
            spent = time.process_time() - cpu
            total += spent
            print(f"verdict {label}: {len(chosen)} prompts, edit set {config.per_set}: {spent:.1f} CPU s "
                  f"({time.perf_counter() - wall:.1f} s wall)", flush=True)
        print(f"verdict stage ({args.preset}): {total:.1f} CPU s")


if __name__ == "__main__":
    main()
