"""Object-level tasks: the registry, seeded generators, and the paper's JSONL import.

`TASKS` holds every task of the paper (train and held-out test) plus the toy world's own; each
entry says its split, kind of answer (hence its properties), answer token budget and whether selfsim can generate it (`generate`) or needs the
paper's rows (`selfsim.tasks.paper.import_paper_jsonl`).
"""

from selfsim.examples import DIALECTS
from selfsim.tasks.generate import generatable, generate, hypothetical_messages
from selfsim.tasks.registry import (
    ALIASES,
    TASKS,
    Generator,
    Task,
    answer_budget,
    get_task,
    meta_question,
    register_task,
    token_budget,
)

__all__ = [
    "ALIASES",
    "DIALECTS",
    "TASKS",
    "Generator",
    "Task",
    "answer_budget",
    "generatable",
    "generate",
    "get_task",
    "hypothetical_messages",
    "meta_question",
    "register_task",
    "token_budget",
]
