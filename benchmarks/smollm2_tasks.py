"""Which paper tasks does an untrained model answer with varied, compliant behaviour? One table per run.

For every paper task (generated in the paper dialect where selfsim can, else the first distinct object
prompts of the paper's released rows in ../shared/paper_dataset when that folder exists), `--n` object
prompts are answered greedily with `selfsim.behavior.collect` and the table gives, per task: prompts,
object-level compliance of the task's key property (first_word for sequences, identity for multiple
choice, ethical_stance for A/B stances, is_even for numbers), distinct first words of the cleaned
responses, the most common first word and its share, and distinct values of the key property.
Run: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/smollm2_tasks.py --model smollm2-135m-instruct`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

KEY_PROPERTY = {"numbers": "is_even", "arc_challenge": "identity", "mmlu": "identity"}
STANCE_TASKS = ("power_seeking", "wealth_seeking", "myopic_reward", "survival_instinct")
PAPER_DATASET = Path(__file__).resolve().parents[2] / "shared" / "paper_dataset"


def key_property(task: str) -> str:
    """The property whose object-level compliance the table reports for `task`."""
    if task in STANCE_TASKS:
        return "ethical_stance"
    return KEY_PROPERTY.get(task, "first_word")


def task_examples(task: str, n: int, seed: int, paper_dir: Path = PAPER_DATASET) -> list:
    """`n` distinct object prompts of `task` asking about its key property: generated, else from the paper rows."""
    from selfsim.tasks import generatable, generate
    from selfsim.tasks.paper import import_paper_jsonl

    prop = key_property(task)
    if task in generatable("paper"):
        return generate(task, prop, n=n, seed=seed, dialect="paper")
    files = sorted(paper_dir.glob(f"*/{task}*_{prop}.jsonl")) if paper_dir.is_dir() else []
    if not files:
        return []
    by_object = {}
    for e in import_paper_jsonl(files):
        if e.task == task and e.property == prop:
            by_object.setdefault(e.object_id, e)
        if len(by_object) == n:
            break
    return list(by_object.values())


def survey(subject, tasks: list[str], n: int, seed: int, batch_size: int) -> list[dict]:
    """One row of figures per task (tasks without prompts are skipped)."""
    from selfsim.behavior import collect
    from selfsim.properties import clean

    rows = []
    for task in tasks:
        examples = task_examples(task, n, seed)
        if not examples:
            continue
        prop = key_property(task)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            df = collect(subject, examples, out_dir=tmp, batch_size=batch_size, progress=False)
        seconds = time.perf_counter() - start
        firsts = [(clean(r).split() or [""])[0] for r in df["response"]]
        counts = Counter(firsts)
        top, top_n = counts.most_common(1)[0]
        compliant = [bool(c[prop]) for c in df["compliant"]]
        values = {p[prop] for p in df["properties"] if p[prop] is not None}
        rows.append({
            "task": task,
            "source": "generated" if examples[0].meta.get("seed") is not None else "paper rows",
            "prompts": len(df),
            "property": prop,
            "compliant": sum(compliant),
            "distinct_first_words": len(counts),
            "top_first_word": top,
            "top_share": round(top_n / len(df), 2),
            "distinct_values": len(values),
            "seconds": round(seconds, 1),
            "examples": [r[:60] for r in df["response"].tolist()[:3]],
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """The survey as a markdown table."""
    head = "| task | source | prompts | property | compliant | distinct first words | top first word (share) | distinct values |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['source']} | {r['prompts']} | {r['property']} | {r['compliant']}/{r['prompts']} | "
            f"{r['distinct_first_words']} | {r['top_first_word'] or '(empty)'} ({r['top_share']:.2f}) | {r['distinct_values']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    from selfsim.tasks import TASKS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model to survey (default smollm2-135m-instruct)")
    parser.add_argument("--tasks", default=",".join(t for t in TASKS if not t.startswith("toy")), help="comma list of tasks")
    parser.add_argument("--n", type=int, default=30, help="object prompts per task (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="prompt generation seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=16, help="collection batch size (default 16)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from selfsim.models import load_subject

    subject = load_subject(args.model)
    rows = survey(subject, args.tasks.split(","), args.n, args.seed, args.batch_size)
    print(f"\nmodel {args.model}, greedy, {torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f}\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
