"""Seeded, deterministic generation of Examples for the tasks selfsim can build itself."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from selfsim.errors import SelfsimError
from selfsim.examples import DIALECTS, Example, Messages
from selfsim.tasks import prompts
from selfsim.tasks.registry import TASKS, Task, get_task, meta_question

HYPOTHETICAL: dict[str, Callable[[Task, str, Messages], Messages]] = {
    "paper": lambda task, prop, msgs: prompts.paper_hypothetical(msgs, meta_question(task, prop)),
    "toy": lambda task, prop, msgs: prompts.toy_hypothetical(msgs, prop),
}
MAX_DRAWS_PER_PROMPT = 100


def hypothetical_messages(task: Task | str, prop: str, object_messages: Messages, dialect: str = "paper") -> Messages:
    """H(P, f): the hypothetical question about `prop` of the answer to `object_messages`."""
    task = get_task(task) if isinstance(task, str) else task
    _check_dialect(dialect)
    return HYPOTHETICAL[dialect](task, prop, object_messages)


def _check_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise SelfsimError(f"unknown dialect {dialect!r}; valid dialects are {', '.join(DIALECTS)}")


def _resolve_properties(task: Task, properties: str | Sequence[str] | None, dialect: str) -> tuple[str, ...]:
    available = task.properties_for(dialect)
    if not available:
        raise SelfsimError(
            f"the {dialect} dialect cannot ask about any property of task {task.name!r} ({', '.join(task.properties)})"
        )
    if properties is None:
        props = available
    elif isinstance(properties, str):
        props = (properties,)
    else:
        props = tuple(properties)
    bad = [p for p in props if p not in available]
    if bad or not props:
        raise SelfsimError(
            f"task {task.name!r} in the {dialect} dialect has no property {', '.join(map(repr, bad)) or '(none given)'}; "
            f"valid: {', '.join(available)}"
        )
    return props


def generate(
    task: Task | str,
    properties: str | Sequence[str] | None = None,
    n: int = 100,
    seed: int = 0,
    dialect: str = "paper",
) -> list[Example]:
    """`n` distinct object prompts of `task`, each paired with every requested property (all by default).

    Deterministic in (task, dialect, n, seed); the object prompts do not depend on `properties`.
    """
    task = get_task(task) if isinstance(task, str) else task
    _check_dialect(dialect)
    generator = task.generators.get(dialect)
    if generator is None:
        where = f"generated only in: {', '.join(task.generators)}" if task.generators else "imported from the paper's rows"
        raise SelfsimError(f"task {task.name!r} cannot be generated in the {dialect} dialect; it is {where}")
    props = _resolve_properties(task, properties, dialect)
    if n < 0:
        raise SelfsimError(f"n must be non-negative, got {n}")
    rng = random.Random(f"selfsim:{task.name}:{dialect}:{seed}")
    seen: set[str] = set()
    examples: list[Example] = []
    for _ in range(MAX_DRAWS_PER_PROMPT * n):
        if len(seen) == n:
            break
        content, original = generator.render(generator.draw(rng))
        if content in seen:
            continue
        seen.add(content)
        meta = {"seed": seed, "index": len(seen) - 1} | ({"options": task.options} if task.options else {})
        examples.extend(
            Example(
                task=task.name,
                property=prop,
                object_messages=prompts.user(content),
                hypothetical_messages=HYPOTHETICAL[dialect](task, prop, prompts.user(content)),
                split=task.split,
                dialect=dialect,
                original_question=original,
                meta=dict(meta),
            )
            for prop in props
        )
    if len(seen) < n:
        raise SelfsimError(f"task {task.name!r} ({dialect}) yielded only {len(seen)} distinct prompts of the {n} asked for")
    return examples


def generatable(dialect: str = "paper") -> list[str]:
    """Names of the tasks that can be generated in `dialect`."""
    _check_dialect(dialect)
    return [name for name, task in TASKS.items() if dialect in task.generators]
