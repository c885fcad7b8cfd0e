"""The study's prompts: training, held-out and calibration examples (a cached stage)."""

from __future__ import annotations

import random
from dataclasses import replace

from selfsim.examples import Example, load_examples, save_examples
from selfsim.study.stages import Stages

SPLITS = ("train", "eval_id", "eval_ood", "calibration")


def study_examples(stages: Stages) -> dict[str, list[Example]]:
    """train (finetuning data), eval_id (held-out prompts of train tasks), eval_ood (held-out tasks), calibration."""
    paths = {k: stages.out / "examples" / f"{k}.jsonl" for k in SPLITS}

    def build() -> None:
        from selfsim.tasks import generate

        c = stages.config
        per_task = c.per_pair()
        n_id = max(1, c.n_eval // len(c.train_tasks))
        train, eval_id = [], []
        for task in c.train_tasks:
            rows = generate(task, c.properties, per_task + n_id, seed=c.seed, dialect=c.dialect)
            cut = per_task * len(c.properties)
            train += rows[:cut]
            eval_id += [replace(e, split="test") for e in rows[cut:]]
        n_ood = max(1, c.n_eval // len(c.test_tasks))
        eval_ood = [e for t in c.test_tasks for e in generate(t, c.properties, n_ood, seed=c.seed + 1, dialect=c.dialect)]
        for key, rows in (("train", train), ("eval_id", eval_id), ("eval_ood", eval_ood)):
            save_examples(paths[key], rows)
        calibration = (calibration_examples(c.calibration_prompts, c.seed) if c.dialect == "toy" else
                       paper_calibration_examples(c.test_tasks[0], c.calibration_prompts, c.seed))
        save_examples(paths["calibration"], calibration)

    stages.stage("examples", paths["calibration"], build)
    return {k: load_examples(p) for k, p in paths.items()}


def calibration_examples(n: int, seed: int) -> list[Example]:
    """"Next single animal" toy prompts with the second-character hypothetical (SPEC experiment 3)."""
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


def paper_calibration_examples(task: str, n: int, seed: int) -> list[Example]:
    """Held-out-task prompts in the paper's wording with the second-character hypothetical (real models' calibration)."""
    from selfsim.tasks import generate

    return generate(task, "second_character", n, seed=seed + 2, dialect="paper")
