"""Read the paper's released rows (`<split>/<task>_<property>.jsonl`) unchanged into Examples.

Each row holds `original_question`, `original_dataset`, `object_level_prompt` and
`hypothetical_prompt` (chat message lists), `behavioral_property` and
`option_matching_ethical_stance`. Task and property come from each row's own `original_dataset`
and `behavioral_property` (release names such as `arc_challenge_non_cot` map to registry names); a
file named `<task>_<property>.jsonl` must agree with them (a conflict is an error naming both), any
other name is fine. The split comes from the parent folder (`train`/`test`), else the registry. `option_matching_ethical_stance` is kept only for `ethical_stance` rows:
upstream fills it with unrelated values elsewhere. For multiple-choice rows the option letters of
the prompt ("A - ...") go to `meta["options"]` (rows of a property that reads option letters, or of a
task with options).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfsim.errors import SelfsimError
from selfsim.examples import Example, Messages
from selfsim.io import iter_jsonl
from selfsim.properties import PROPERTIES
from selfsim.properties import names as property_names
from selfsim.tasks.registry import ALIASES, TASKS

REQUIRED_FIELDS = ("original_question", "object_level_prompt", "hypothetical_prompt", "behavioral_property")
SPLITS = ("train", "test")
_OPTION = re.compile(r"^([A-Z]) - ", re.MULTILINE)


@dataclass
class FileCounts:
    """What one imported file gave: examples imported, lines skipped (only with skip_bad)."""

    imported: int = 0
    skipped: int = 0


@dataclass
class ImportReport:
    """Per-file counts of an import, filled in as the examples stream out."""

    files: dict[str, FileCounts] = field(default_factory=dict)


@dataclass(frozen=True)
class PaperFile:
    """A release file and what its name and folder say: task, property, split (None: the name or folder says nothing)."""

    path: Path
    task: str | None
    property: str | None
    split: str | None


def parse_paper_file(path: str | Path) -> PaperFile:
    """Task, property and split of a `<task>_<property>.jsonl` file (split from train/ or test/, else the registry)."""
    path = Path(path)
    stem = path.name.removesuffix(".jsonl")
    prop = next((p for p in sorted(PROPERTIES, key=len, reverse=True) if stem.endswith(f"_{p}")), None)
    if not path.name.endswith(".jsonl") or prop is None or stem == f"_{prop}":
        raise SelfsimError(
            f"{path}: expected a file named <task>_<property>.jsonl with a property among {', '.join(PROPERTIES)}"
        )
    raw = stem[: -len(prop) - 1]
    task = ALIASES.get(raw, raw)
    if path.parent.name in SPLITS:
        split = path.parent.name
    elif task in TASKS:
        split = TASKS[task].split
    else:
        raise SelfsimError(
            f"{path}: cannot tell the split of unknown task {raw!r}; put the file under train/ or test/ "
            f"or use a registered task ({', '.join(TASKS)})"
        )
    return PaperFile(path, task, prop, split)


def name_hints(path: str | Path) -> PaperFile:
    """What a file's name and folder claim, without raising: a `<task>_<property>.jsonl` name claims both.

    The task claim counts only for a registered task (a renamed file claims nothing it cannot mean).
    """
    path = Path(path)
    stem = path.name.removesuffix(".jsonl")
    prop = next((p for p in sorted(PROPERTIES, key=len, reverse=True) if stem.endswith(f"_{p}")), None)
    raw = stem[: -len(prop) - 1] if prop else ""
    task = ALIASES.get(raw, raw) if raw else None
    return PaperFile(
        path,
        task if task in TASKS else None,
        prop if raw else None,
        path.parent.name if path.parent.name in SPLITS else None,
    )


def paper_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The files named, with each folder replaced by the .jsonl files below it (sorted)."""
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(p.rglob("*.jsonl")))
        elif p.is_file():
            out.append(p)
        else:
            raise SelfsimError(f"{p}: no such file or folder")
    return out


def _messages(value: Any, name: str) -> Messages:
    ok = (
        isinstance(value, list)
        and value
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
        )
    )
    if not ok:
        raise ValueError(f"{name} must be a non-empty list of {{role, content}} string messages")
    if value[-1]["role"] != "user":
        raise ValueError(f"{name} must end with a user message")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _options(task_name: str, prop: str, object_messages: Messages) -> str:
    task = TASKS.get(task_name) if task_name in TASKS else None
    if prop not in property_names(options=True) and not (task and task.options):
        return ""
    letters = "".join(_OPTION.findall(object_messages[-1]["content"]))
    return letters or (task.options if task else "")


def _row_labels(file: PaperFile, row: dict[str, Any]) -> tuple[str, str, str]:
    """Task, property and split of a row: its own fields, checked against what the file's name claims."""
    prop = row["behavioral_property"]
    if not isinstance(prop, str) or prop not in PROPERTIES:
        raise ValueError(f"unknown behavioral_property {prop!r}; valid properties are {', '.join(PROPERTIES)}")
    if file.property is not None and prop != file.property:
        raise ValueError(f"behavioral_property {prop!r} does not match the file name's {file.property!r}")
    dataset = row.get("original_dataset")
    if dataset is None:
        if file.task is None:
            raise ValueError("no original_dataset, and the file name names no registered task")
        dataset = file.task
    if not isinstance(dataset, str) or not dataset.strip():
        raise ValueError("original_dataset must be a non-empty string")
    task = ALIASES.get(dataset, dataset)
    if file.task is not None and task != file.task:
        raise ValueError(f"original_dataset {dataset!r} (task {task!r}) does not match the file name's task {file.task!r}")
    if file.split is not None:
        split = file.split
    elif task in TASKS:
        split = TASKS[task].split
    else:
        raise ValueError(
            f"cannot tell the split of unknown task {dataset!r}; put the file under train/ or test/ "
            f"or use a registered task ({', '.join(TASKS)})"
        )
    return task, prop, split


def row_to_example(file: PaperFile, row: dict[str, Any], lineno: int) -> Example:
    """One release row as an Example (task and property from its own fields); a row that breaks the schema raises ValueError."""
    missing = [k for k in REQUIRED_FIELDS if k not in row]
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    task, prop, split = _row_labels(file, row)
    if not isinstance(row["original_question"], str):
        raise ValueError("original_question must be a string")
    object_messages = _messages(row["object_level_prompt"], "object_level_prompt")
    stance = None
    if prop == "ethical_stance":
        stance = row.get("option_matching_ethical_stance")
        if not isinstance(stance, str) or not stance.strip():
            raise ValueError("an ethical_stance row needs option_matching_ethical_stance (an option letter)")
    meta: dict[str, Any] = {"source": file.path.name, "line": lineno, "original_dataset": row.get("original_dataset")}
    options = _options(task, prop, object_messages)
    if options:
        meta["options"] = options
    return Example(
        task=task,
        property=prop,
        object_messages=object_messages,
        hypothetical_messages=_messages(row["hypothetical_prompt"], "hypothetical_prompt"),
        split=split,
        dialect="paper",
        original_question=row["original_question"],
        option_matching_ethical_stance=stance,
        meta=meta,
    )


def _count_rows(path: Path) -> int:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return sum(1 for line in fh if line.strip())


def import_paper_jsonl(
    paths: str | Path | Iterable[str | Path], skip_bad: bool = False, report: ImportReport | None = None
) -> Iterator[Example]:
    """Stream Examples from release files (folders are searched for .jsonl files).

    Task and property come from each row; a `<task>_<property>.jsonl` name must agree with them. A
    malformed line or row raises a SelfsimError naming file and line; `skip_bad` skips it instead
    (and `report`, if given, counts it).
    """
    for file in [name_hints(p) for p in paper_files(paths)]:
        path = file.path
        counts = FileCounts()
        if report is not None:
            report.files[str(path)] = counts
        try:
            for lineno, row in iter_jsonl(path, skip_bad=skip_bad):
                try:
                    example = row_to_example(file, row, lineno)
                except ValueError as exc:
                    if skip_bad:
                        continue
                    raise SelfsimError(f"{path}:{lineno}: not a paper row ({exc})") from None
                counts.imported += 1
                yield example
        except UnicodeDecodeError as exc:
            raise SelfsimError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if skip_bad:
            counts.skipped = _count_rows(path) - counts.imported
