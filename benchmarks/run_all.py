"""`make bench`: every benchmark in a quick setting, each in its own process, then one table of its ratios.

Quick means small (random-weight toy-shaped models, few prompts, few timing rounds): minutes on 2
cores, figures to check a change against, not the BENCHMARKS.md figures (each of those names its own
command). Every benchmark writes its JSON under `--out` (default benchmarks/out/quick/); the ratios
printed are read back from there. `--only NAME[,NAME]` runs some of them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> (script, quick arguments, [(label, path into its JSON)])
BENCHMARKS: dict[str, tuple[str, list[str], list[tuple[str, tuple[str, ...]]]]] = {
    "patching": (
        "bench_patching.py",
        ["--config", "toy", "--pairs", "4", "--repeats", "2", "--overhead-repeats", "5"],
        [
            ("one patch per forward / batched sweep (resumed)", ("sweep", "one_per_forward_vs_batched")),
            ("one patch per forward / batched sweep (not resumed)", ("sweep", "one_per_forward_vs_batched_no_resume")),
            ("batched vs one-per-forward max |logit_diff| difference", ("sweep", "batched_vs_one_per_forward_max_abs_logit_diff")),
            ("fastest exact sweep / attribution", ("sweep", "exact_vs_attribution")),
            ("attribution vs exact Spearman, cells", ("sweep", "spearman_cells")),
            ("attribution vs exact Spearman, rows", ("sweep", "spearman_rows")),
            ("hooks patch-every-layer / plain forward", ("overhead", "hooks_patch_vs_plain")),
            ("nnsight patch-every-layer / plain forward", ("overhead", "nnsight_patch_vs_plain")),
            ("tlens patch-every-layer / plain forward", ("overhead", "tlens_patch_vs_plain")),
        ],
    ),
    "collect": (
        "bench_collect.py",
        ["--n", "32", "--batch-size", "32", "--rounds", "1"],
        [("one prompt at a time / batched collection", ("speedup",))],
    ),
    "cache": (
        "bench_cache_memory.py",
        ["--budget-mib", "64", "--factor", "3", "--seq", "64", "--batch", "16"],
        [("peak - baseline RSS / budget", ("peak_over_baseline_per_budget",))],
    ),
    "gpu_check": (
        "gpu_check.py",
        ["--tiny"],
        [("tiny: batched sweep throughput / plain forward", ("rows", "tiny random Llama, float32: batched sweep throughput / plain forward"))],
    ),
}
JSON_FLAG = {"bench_patching.py": "--out", "bench_collect.py": "--json", "bench_cache_memory.py": "--json", "gpu_check.py": "--json"}


def lookup(data: object, path: tuple[str, ...]) -> object:
    """Follow `path` into the JSON; a list of table rows is searched by its `figure` field."""
    for key in path:
        if isinstance(data, list):
            data = next((row.get("value") for row in data if isinstance(row, dict) and row.get("figure") == key), None)
        elif isinstance(data, dict):
            data = data.get(key)
        else:
            return None
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "out" / "quick"), help="directory of the JSON results")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma list of {', '.join(BENCHMARKS)} (default all)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; valid: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1"}
    table, failed = [], []
    for name in names:
        script, quick, ratios = BENCHMARKS[name]
        target = out / f"{name}.json"
        start = time.perf_counter()
        print(f"== {name}: {script} {' '.join(quick)}", flush=True)
        done = subprocess.run([sys.executable, str(HERE / script), *quick, JSON_FLAG[script], str(target)], env=env,
                              stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        if done.returncode != 0 or not target.exists():
            failed.append(name)
            table.append((name, "FAILED", f"exit {done.returncode}", seconds))
            continue
        data = json.loads(target.read_text())
        for label, path in ratios:
            value = lookup(data, path)
            table.append((name, label, f"{value:.3g}" if isinstance(value, float) else str(value), seconds))
    load = os.getloadavg()[0]
    print(f"\nquick benchmarks (1-minute load average now {load:.1f}; JSON in {out})")
    width = max(len(label) for _, label, _, _ in table)
    for name, label, value, seconds in table:
        print(f"{name:10s} {label:{width}s} {value:>10s}   ({seconds:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
