"""Write results.json of a study run from its cached stages only (while its last units still run): self vs cross of
the primary pair, then every registered experiment whose stages are all done (the others are named and left out).
Usage: python scripts/study_partial.py RUN_DIR OUT_DIR"""

import sys
from pathlib import Path

from selfsim.io import read_json, write_json
from selfsim.results import EXPERIMENTS, PAPER, StudyResults
from selfsim.study.config import StudyConfig
from selfsim.study.experiments.self_vs_cross import self_vs_cross
from selfsim.study.prompts import study_examples
from selfsim.study.scoring import spread
from selfsim.study.stages import Stages

run, dest = Path(sys.argv[1]), Path(sys.argv[2])
config = StudyConfig.from_dict(read_json(run / "config.json"))
st = Stages(config, run, progress=False)


def cached_only(name: str, done: Path, fn: object) -> None:
    """Refuse to compute: every stage must already be in the run directory."""
    if not done.exists():
        raise SystemExit(f"stage {name} is not done yet in {run}")


st.stage = cached_only
ex = study_examples(st)
a, b = config.models
pair, context = self_vs_cross(st, a, b, ex)
for name, experiment in EXPERIMENTS.items():
    try:
        pair.experiments[name] = experiment.run(context)
        pair.origins[name] = experiment.module
    except SystemExit as unfinished:
        print(f"left out experiment {name}: {unfinished}")
results = StudyResults(config=config.to_dict(), pairs=[pair], spread=spread([pair]), paper=dict(PAPER))
dest.mkdir(parents=True, exist_ok=True)
write_json(dest / "results.json", results.to_dict())
print("wrote", dest / "results.json")
