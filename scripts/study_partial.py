"""Write results.json of a study run from its cached self-vs-cross stages only (while its other units still run),
with an empty experiments block. Usage: python scripts/study_partial.py RUN_DIR OUT_DIR"""

import sys
from pathlib import Path

from selfsim.io import read_json, write_json
from selfsim.results import PAPER, StudyResults
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
pair, _ = self_vs_cross(st, a, b, ex)
results = StudyResults(config=config.to_dict(), pairs=[pair], spread=spread([pair]), paper=dict(PAPER))
dest.mkdir(parents=True, exist_ok=True)
write_json(dest / "results.json", results.to_dict())
print("wrote", dest / "results.json")
