"""A second model M2 derived from the same base as M1, so that cross-prediction has a model that behaves differently.

`derive` finetunes the base at the object level (LoRA, answer-only loss) on the object prompts of
paper-dialect sequence tasks, labelled by a rule that is not the base's own behaviour, merges the
adapter (`merge_and_unload`) and writes a plain HF directory (safetensors, config, tokenizer,
`selfsim_derived.json`) atomically. Rules: `reverse` answers with the prompt's last five items in
reverse order (first word = the prompt's last item); `pool` answers with five items of the task's
word list that the prompt does not contain, drawn with a seed keyed by the prompt. Same base, config
and seed -> the same bytes. `disagreement` measures how often two models' greedy first words differ.
"""

from __future__ import annotations

import math
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfsim.errors import SelfsimError
from selfsim.zoo.catalog import DERIVED_MANIFEST

if TYPE_CHECKING:
    from selfsim.examples import Example
    from selfsim.models import Subject

MANIFEST = DERIVED_MANIFEST
SEQUENCE_TASKS = ("colors_long", "countries_long", "animals_long", "english_words_long")
ANSWER_ITEMS = 5
Log = Callable[[str], None]


def _reverse(example: Example, seed: int) -> str:
    return " ".join(example.original_question.split()[::-1][:ANSWER_ITEMS])


def _pool(example: Example, seed: int) -> str:
    from selfsim.tasks.words import load_words

    seen = set(example.original_question.split())
    pool = [w for w in load_words(example.task.removesuffix("_long")) if w not in seen]
    return " ".join(random.Random(f"{seed}:{example.object_id}").sample(pool, ANSWER_ITEMS))


RULES: dict[str, Callable[[Example, int], str]] = {"reverse": _reverse, "pool": _pool}


@dataclass(frozen=True)
class DeriveConfig:
    """How M2 is made: labelling rule, train tasks and prompts, LoRA shape, optimisation, seed."""

    rule: str = "reverse"
    tasks: tuple[str, ...] = ("colors_long", "countries_long")
    n_prompts: int = 120
    steps: int = 30
    batch_size: int = 8
    rank: int = 32
    alpha: float = 64.0
    lr: float = 2e-3
    seed: int = 0

    def validate(self) -> DeriveConfig:
        """Return self, or raise a SelfsimError naming the bad field and what is valid."""
        if self.rule not in RULES:
            raise SelfsimError(f"unknown derive rule {self.rule!r}; valid rules are {', '.join(RULES)}")
        bad = [t for t in self.tasks if t not in SEQUENCE_TASKS]
        if bad or not self.tasks:
            raise SelfsimError(f"derive tasks must be among {', '.join(SEQUENCE_TASKS)}; got {', '.join(bad) or 'none'}")
        for name in ("n_prompts", "steps", "batch_size", "rank"):
            if getattr(self, name) < 1:
                raise SelfsimError(f"derive {name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.alpha <= 0:
            raise SelfsimError("derive lr and alpha must be positive finite numbers")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-ready values."""
        return {**asdict(self), "tasks": list(self.tasks)}


def train_examples(config: DeriveConfig) -> list[Example]:
    """The object prompts M2 is trained on: `n_prompts` per task, paper dialect, seeded by `config.seed`."""
    from selfsim.tasks import generate

    return [e for task in config.tasks for e in generate(task, "first_word", n=config.n_prompts, seed=config.seed)]


def heldout_examples(tasks: Sequence[str], n: int, seed: int, exclude: Sequence[Example] = ()) -> list[Example]:
    """`n` object prompts per task not among `exclude` (seed offset so they differ from the training draw)."""
    from selfsim.tasks import generate

    taken = {e.object_id for e in exclude}
    out = []
    for task in tasks:
        fresh = [e for e in generate(task, "first_word", n=n + len(taken), seed=seed + 10_000) if e.object_id not in taken]
        out.extend(fresh[:n])
    return out


def training_items(examples: Sequence[Example], rule: str, seed: int) -> list:
    """Object-level training pairs (object prompt -> the rule's answer), one per distinct prompt."""
    from selfsim.finetune import TrainItem

    label = RULES[rule]
    unique = {e.object_id: e for e in examples}.values()
    return [TrainItem(e.object_id, e.object_id, e.task, "object", e.object_messages, label(e, seed)) for e in unique]


def derive(base: str, out_dir: str | Path, config: DeriveConfig = DeriveConfig(), *, dtype: str = "float32",
           progress: bool = False, log: Log = print) -> Path:
    """Finetune `base` on the rule's object-level answers, merge the adapter, write M2 to `out_dir` atomically."""
    import selfsim.behavior  # noqa: F401  (the trainer imports it lazily when saving; load it before the long run)
    from selfsim.finetune import FinetuneConfig, train
    from selfsim.io import atomic_dir, stabilize_safetensors, write_json
    from selfsim.models import load_subject, resolve_path

    config.validate()
    out = Path(out_dir)
    resolve_path(base, build_toy=False)
    examples = train_examples(config)
    items = training_items(examples, config.rule, config.seed)
    subject = load_subject(base, dtype=dtype)
    ft = FinetuneConfig(
        rank=config.rank, alpha=config.alpha, lr=config.lr, steps=config.steps, batch_size=config.batch_size,
        per_pair=None, save_every=0, seed=config.seed, schedule="constant",
    ).validate()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.adapter.") as scratch:
        log(f"training M2 on {len(items)} object prompts ({config.rule} rule), {config.steps} steps x {config.batch_size}")
        adapter = train(subject, items, ft, Path(scratch) / "adapter", progress=progress)
        losses = [row["loss"] for row in _read_log(adapter)]
        merged = load_subject(base, dtype=dtype, adapter=adapter)
        with atomic_dir(out) as tmp:
            merged.model.merge_and_unload().save_pretrained(tmp, safe_serialization=True)
            merged.tokenizer.save_pretrained(tmp)
            for f in tmp.glob("*.safetensors"):
                stabilize_safetensors(f)
            write_json(tmp / MANIFEST, {
                "base": base,
                "base_fingerprint": subject.fingerprint,
                "dtype": dtype,
                "config": config.to_dict(),
                "n_items": len(items),
                "first_loss": losses[0],
                "final_loss": losses[-1],
            })
    return out


def _read_log(adapter: Path) -> list[dict[str, Any]]:
    from selfsim.io import read_jsonl

    return read_jsonl(adapter / "train_log.jsonl")


def greedy_responses(subject: Subject, examples: Sequence[Example], batch_size: int = 16) -> list[str]:
    """Greedy object-level responses, one per example, with each task's token budget."""
    from selfsim.generation import Request, encode_prompt, generate_batch
    from selfsim.tasks import token_budget

    requests = []
    for e in examples:
        budget = token_budget(e.task, e.dialect)
        ids, _ = encode_prompt(subject, subject.render_chat(e.object_messages), budget)
        requests.append(Request(e.object_id, ids, max_new_tokens=budget))
    out: list[str] = []
    for i in range(0, len(requests), batch_size):
        out.extend(g.response for g in generate_batch(subject, requests[i : i + batch_size]))
    return out


def first_word(response: str) -> str:
    """The first word of the cleaned response ('' when there is none)."""
    from selfsim.properties import clean

    words = clean(response).split()
    return words[0] if words else ""


@dataclass(frozen=True)
class Disagreement:
    """How often two models' greedy first words differ: count, rate and its Wilson 95% interval."""

    n: int
    differ: int

    @property
    def rate(self) -> float:
        return self.differ / self.n if self.n else float("nan")

    @property
    def ci95(self) -> tuple[float, float]:
        if not self.n:
            return (float("nan"), float("nan"))
        z, p, n = 1.96, self.rate, self.n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return (max(0.0, centre - half), min(1.0, centre + half))


def disagreement(a: Sequence[str], b: Sequence[str]) -> Disagreement:
    """Share of paired responses whose first words differ; raise if the lists are not paired."""
    if len(a) != len(b):
        raise SelfsimError(f"cannot compare {len(a)} responses with {len(b)}: the lists must be paired prompt by prompt")
    return Disagreement(len(a), sum(first_word(x) != first_word(y) for x, y in zip(a, b)))


def measure(m1: Subject, m2: Subject, examples: Sequence[Example], batch_size: int = 16) -> dict[str, Any]:
    """First-word disagreement of M1 and M2 on `examples`, per task and overall, with distinct first words."""
    r1, r2 = greedy_responses(m1, examples, batch_size), greedy_responses(m2, examples, batch_size)
    out: dict[str, Any] = {}
    for task in [*dict.fromkeys(e.task for e in examples), "all"]:
        idx = [i for i, e in enumerate(examples) if task in ("all", e.task)]
        d = disagreement([r1[i] for i in idx], [r2[i] for i in idx])
        out[task] = {
            "n": d.n, "differ": d.differ, "rate": round(d.rate, 3), "ci95": [round(x, 3) for x in d.ci95],
            "distinct_m1": len({first_word(r1[i]) for i in idx}), "distinct_m2": len({first_word(r2[i]) for i in idx}),
        }
    out["samples"] = [{"task": e.task, "m1": r1[i][:50], "m2": r2[i][:50]} for i, e in enumerate(examples[:4])]
    return out
