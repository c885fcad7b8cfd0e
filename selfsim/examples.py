"""The unit of data that flows through the pipeline: an object prompt P paired with H(P, f)."""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selfsim.chat import ROLES, Messages
from selfsim.errors import SelfsimError
from selfsim.io import iter_jsonl, write_jsonl


def prompt_id(messages: Messages) -> str:
    """A stable 16-hex id of a chat prompt (the object prompt's identity across properties)."""
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Example:
    """One (object prompt P, hypothetical prompt H(P, f), property f) triple.

    `object_id` identifies P alone, so behaviour is collected once per object prompt and
    shared by every property asked about it; `id` identifies the whole triple.
    """

    task: str
    property: str
    object_messages: Messages
    hypothetical_messages: Messages
    split: str = "test"
    dialect: str = "paper"
    original_question: str = ""
    option_matching_ethical_stance: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @builtins.property  # the `property` field shadows the builtin for type checkers
    def object_id(self) -> str:
        return prompt_id(self.object_messages)

    @builtins.property
    def id(self) -> str:
        return prompt_id(self.object_messages + [{"property": self.property, "task": self.task}])

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with the derived `id` and `object_id`"""
        d = asdict(self)
        d["id"] = self.id
        d["object_id"] = self.object_id
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Example:
        """An Example from its JSON form; wrong types or an unknown task raise ValueError naming what is valid."""
        names = {f for f in cls.__dataclass_fields__}
        missing = {"task", "property", "object_messages", "hypothetical_messages"} - d.keys()
        if missing:
            raise ValueError(f"missing field(s) {sorted(missing)}")
        check_fields(d)
        return cls(**{k: v for k, v in d.items() if k in names})


SPLITS = ("train", "test")
# How a prompt is worded: "paper" (the paper's English) or "toy" (the embedded toy models' language).
DIALECTS: tuple[str, ...] = ("paper", "toy")


def check_fields(d: dict[str, Any]) -> None:
    """Raise ValueError unless the fields of an example's JSON form have the right types and known values."""
    for name in ("task", "property", "split", "dialect", "original_question"):
        if name in d and not isinstance(d[name], str):
            raise ValueError(f"{name} must be a string, got {_describe(d[name])}")
    if not d["task"]:
        raise ValueError("task must be a task name, got an empty string")
    if not d["property"]:
        raise ValueError("property must be a property name, got an empty string")
    if d.get("split", "test") not in SPLITS:
        raise ValueError(f"split {d['split']!r} is not one of {', '.join(SPLITS)}")
    if d.get("dialect", "paper") not in DIALECTS:
        raise ValueError(f"dialect {d['dialect']!r} is not one of {', '.join(DIALECTS)}")
    stance = d.get("option_matching_ethical_stance")
    if stance is not None and not isinstance(stance, str):
        raise ValueError(f"option_matching_ethical_stance must be a string or null, got {_describe(stance)}")
    if not isinstance(d.get("meta", {}), dict):
        raise ValueError(f"meta must be a JSON object, got {_describe(d['meta'])}")
    for name in ("object_messages", "hypothetical_messages"):
        messages = d[name]
        if not isinstance(messages, list) or not messages:
            raise ValueError(f"{name} must be a non-empty list of {{role, content}} messages, got {_describe(messages)}")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise ValueError(
                    f"{name}[{i}] must be a {{\"role\": {'|'.join(ROLES)}, \"content\": string}} message, got {_describe(m)}"
                )


def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def save_examples(path: str | Path, examples: Iterable[Example]) -> int:
    """Write examples as JSONL, atomically; return how many."""
    return write_jsonl(path, (e.to_dict() for e in examples))


def load_examples(path: str | Path) -> list[Example]:
    """Read examples written by `save_examples`; a bad line raises with file:line."""
    out = []
    for lineno, row in iter_jsonl(path):
        try:
            out.append(Example.from_dict(row))
        except (TypeError, ValueError) as exc:
            raise SelfsimError(f"{path}:{lineno}: not a selfsim example ({exc})") from None
    return out
