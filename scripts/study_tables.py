"""Markdown tables of a finished study run: headline vs the paper, the self - cross gap, stage timings with the
cost model and a projection to Llama-3.1-8B on one H100 (`selfsim.zoo.budget.project`, stated figures).

Usage: python scripts/study_tables.py RUN_DIR [--load-note TEXT]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a GitHub markdown table (numbers rounded, None as '')."""
    def cell(v: object) -> str:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return ""
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    rows = [[cell(v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main() -> None:
    """Print the tables of RUN_DIR."""
    from selfsim.io import read_json
    from selfsim.report import _gap_table, _headline_table
    from selfsim.results import load_results
    from selfsim.study.config import StudyConfig, preset
    from selfsim.zoo.budget import SMOLLM2_PARAMS, STAGE_GROUPS, Hardware, project, stage_group

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    results = load_results(args.run_dir)
    print("## Headline (held-out task, micro average, non-compliant counted wrong, vs M1ft)\n")
    print(markdown(_headline_table(results)))
    print("\n## Self - cross gap (paired bootstrap over prompts)\n")
    print(markdown(_gap_table(results), 4))
    manifest = args.run_dir / "manifest.json"
    if not manifest.is_file():
        return
    timings = read_json(manifest)["timings_s"]
    config = StudyConfig.from_dict(results.config)
    measured: dict[str, float] = {}
    for stage, seconds in timings.items():
        measured[stage_group(stage)] = measured.get(stage_group(stage), 0.0) + seconds / 60
    # The cost model on this CPU: its speed fitted to the measured finetune minutes (the largest compute-bound
    # group), decoding at the measured seconds per generated token of a batch.
    cpu = project(config, Hardware("cpu", flops=1.0, decode_step_s=0.0, source="unit"), params=SMOLLM2_PARAMS)
    flops = cpu["finetune"] / measured["finetune"] if measured.get("finetune") else float("nan")
    h100_cpu, h100_gpu = project(config), project(preset("smollm2-gpu"))
    rows = [{"stage group": g, "measured CPU min": measured.get(g, 0.0),
             "cost model, CPU min (fitted on finetune)": cpu[g] / flops if g != "other" else None,
             "Llama-3.1-8B on 1 H100, this size (min)": h100_cpu.get(g),
             "Llama-3.1-8B on 1 H100, smollm2-gpu size (min)": h100_gpu.get(g)} for g in (*STAGE_GROUPS, "other")]
    rows.append({"stage group": "total", "measured CPU min": sum(measured.values()),
                 "Llama-3.1-8B on 1 H100, this size (min)": h100_cpu["total"],
                 "Llama-3.1-8B on 1 H100, smollm2-gpu size (min)": h100_gpu["total"]})
    print(f"\n## Stage timings (manifest.json) and projection; CPU effective rate fitted: {flops:.3g} FLOP/s\n")
    print(markdown(pd.DataFrame(rows), 2))
    print("\n### Every stage (seconds)\n")
    print(markdown(pd.DataFrame([{"stage": k, "seconds": v} for k, v in timings.items()]), 1))


if __name__ == "__main__":
    main()
