"""Configs from files: any config dataclass of the project from TOML, JSON or a dict, checked by its field types.

`from_dict(cls, data)` checks every value against the type annotation of its dataclass field (int, float,
str, bool, `tuple[X, ...]`, `X | None`, `Literal[...]`, dicts and nested dataclasses) and raises one
`SelfsimError` with one line per problem, naming the field, the value and what is valid: a string where a
list is expected is an error (never split into characters), so is a string where a number is expected, and
`inf` / `Infinity` / NaN are refused for numbers; unknown keys are listed with the valid ones. The
dataclass's own `__post_init__` checks (ranges, names) run after. `load(cls, path)` reads a `.toml` or
`.json` file; `parse_flag(cls, name, raw)` turns command-line strings into a field's value by the same rules.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from selfsim.errors import SelfsimError

T = TypeVar("T")
SUFFIXES = (".toml", ".json")


class _Problem(Exception):
    """One value that does not fit its type (internal: collected into one SelfsimError)."""


def field_types(cls: type) -> dict[str, Any]:
    """{field name: resolved type annotation} of a dataclass (string annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def describe(tp: Any) -> str:
    """A reader's name for a type: 'an integer', 'a list of strings', 'a number or nothing', ..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a finite number"
    if tp is str:
        return "a string"
    if tp is Any:
        return "any value"
    if origin in (tuple, list) and args:
        inner = describe(args[0])
        return f"a list of {inner.removeprefix('an ').removeprefix('a ')}s" if inner.startswith(("a ", "an ")) else f"a list of ({inner})"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (types.UnionType, typing.Union):
        parts = [describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or nothing (null)" if type(None) in args else "")
    if origin in (dict, Mapping) or tp is dict:
        return "a table (mapping)"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return f"a table of {tp.__name__} fields"
    return getattr(tp, "__name__", str(tp))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_value(tp: Any, value: Any, where: str) -> Any:
    """`value` converted to `tp` (lists to tuples, nested tables to dataclasses); raise `_Problem` naming `where`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        problems = []
        for option in (a for a in args if a is not type(None)):
            try:
                return check_value(option, value, where)
            except _Problem as exc:
                problems.append(str(exc))
        raise _Problem(f"{where} = {_show(value)} is not valid: expected {describe(tp)}")
    if origin is typing.Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise _Problem(f"{where} = {_show(value)} is not valid: expected {describe(tp)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise _Problem(f"{where} = {_show(value)} is not valid: expected a finite number (inf and NaN are refused)")
            return float(value) if isinstance(value, float) else value
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin in (tuple, list) or tp in (tuple, list):
        if isinstance(value, str):
            raise _Problem(f"{where} = {_show(value)} is a string, expected {describe(tp)} (write [{_show(value)}] for one item)")
        if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
            inner = args[0] if args else Any
            if len(args) == 2 and args[1] is not Ellipsis:
                raise _Problem(f"{where}: fixed-length tuple types are not supported in configs")
            return tuple(check_value(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    elif origin in (dict, Mapping) or tp is dict:
        if isinstance(value, Mapping):
            key_t, val_t = (args + (Any, Any))[:2] if args else (Any, Any)
            return {check_value(key_t, k, f"{where} key"): check_value(val_t, v, f"{where}.{k}") for k, v in value.items()}
    elif dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return _build(tp, value, where)
    else:
        raise _Problem(f"{where}: field type {tp!r} is not supported in configs")
    raise _Problem(f"{where} = {_show(value)} is not valid: expected {describe(tp)}")


def _build(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    types_ = field_types(cls)
    problems: list[str] = []
    unknown = [k for k in data if k not in types_]
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(map(repr, map(str, unknown)))}; valid keys: {', '.join(types_)}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name not in types_:
            continue
        try:
            values[name] = check_value(types_[name], value, f"{where}.{name}" if where else name)
        except _Problem as exc:
            problems.append(str(exc))
    if problems:
        raise _Problem("\n".join(problems))
    try:
        return cls(**values)
    except SelfsimError as exc:
        raise _Problem(f"{where}: {exc}" if where else str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise _Problem(f"{where or cls.__name__}: {exc}") from None


def from_dict(cls: type[T], data: Any, *, source: str | None = None) -> T:
    """`cls(**data)` with every value checked by its field's type; one SelfsimError line per problem."""
    prefix = f"{source}: " if source else ""
    if not isinstance(data, Mapping):
        raise SelfsimError(f"{prefix}a {cls.__name__} config must be a table of keys, got {type(data).__name__}")
    try:
        return _build(cls, data, "")
    except _Problem as exc:
        lines = str(exc).splitlines()
        raise SelfsimError("\n".join(f"{prefix}{line.removeprefix(': ')}" for line in lines)) from None


def read(path: str | Path) -> dict[str, Any]:
    """The table of a `.toml` or `.json` config file (JSON's NaN/Infinity are read, then refused by type checks)."""
    p = Path(path)
    if p.suffix not in SUFFIXES:
        raise SelfsimError(f"config file {p} must end in {' or '.join(SUFFIXES)}")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SelfsimError(f"config file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SelfsimError(f"cannot read config file {p}: {exc}") from None
    try:
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SelfsimError(f"{p} is not valid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SelfsimError(f"{p} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise SelfsimError(f"{p} nests too deeply to be a config") from None
    if not isinstance(data, dict):
        raise SelfsimError(f"{p} must hold a table of keys (a JSON object), got {type(data).__name__}")
    return data


def load(cls: type[T], path: str | Path, base: Mapping[str, Any] | None = None) -> T:
    """A `cls` from a TOML or JSON file, its keys laid over `base` (e.g. a preset's fields)."""
    return from_dict(cls, {**(base or {}), **read(path)}, source=str(path))


def to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON-ready values (tuples as lists, nested dataclasses as tables)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def parse_flag(cls: type, name: str, raw: str | Sequence[str], flag: str | None = None) -> Any:
    """A command-line value (one string, or several for a list field) as field `name` of `cls`; one-line errors."""
    tp = field_types(cls)[name]
    where = flag or f"--{name.replace('_', '-')}"

    def scalar(t: Any, text: str) -> Any:
        origin, args = typing.get_origin(t), typing.get_args(t)
        if origin in (types.UnionType, typing.Union):
            if text.lower() in ("none", "null") and type(None) in args:
                return None
            for option in (a for a in args if a is not type(None)):
                try:
                    return scalar(option, text)
                except SelfsimError:
                    continue
            raise SelfsimError(f"{where} {text!r} is not valid: expected {describe(t)}")
        if t is bool:
            if text.lower() in ("true", "yes", "1"):
                return True
            if text.lower() in ("false", "no", "0"):
                return False
        elif t is int:
            try:
                return int(text)
            except ValueError:
                pass
        elif t is float:
            try:
                value = float(text)
            except ValueError:
                value = None
            if value is not None:
                if not math.isfinite(value):
                    raise SelfsimError(f"{where} {text!r} is not valid: expected a finite number (inf and NaN are refused)")
                return value
        elif t is str or t is Any or origin is typing.Literal:
            return check_value(t, text, where) if origin is typing.Literal and text in args else text
        raise SelfsimError(f"{where} {text!r} is not valid: expected {describe(t)}")

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (tuple, list):
        items = [raw] if isinstance(raw, str) else list(raw)
        return tuple(scalar(args[0] if args else str, x) for x in items)
    if not isinstance(raw, str):
        raise SelfsimError(f"{where} takes one value, got {len(raw)}")
    value = scalar(tp, raw)
    try:
        return check_value(tp, value, where)
    except _Problem as exc:
        raise SelfsimError(str(exc)) from None
