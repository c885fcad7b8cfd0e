"""One registry type for every extension point: properties, tasks, metrics, backends, result types, sections, experiments.

A `Registry` maps a name to a value. Registering a name that is taken by another value raises a
SelfsimError (registering the very same object again is a no-op, so re-importing a module is safe);
asking for an unknown name raises a SelfsimError that lists the valid names. Built-ins can be
loaded lazily: `builtin` maps a name to the module that registers it (imported when that name is
first asked for, e.g. the nnsight backend), and `modules` lists modules imported before the first
listing or lookup (e.g. the built-in experiments), so importing the registry itself stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from selfsim.errors import SelfsimError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> value, refusing taken names and naming the valid ones in every error."""

    def __init__(self, kind: str, *, builtin: Mapping[str, str] | None = None, modules: Sequence[str] = (),
                 plural: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._builtin = dict(builtin or {})
        self._modules = tuple(modules)
        self._loaded = not self._modules
        self._entries: dict[str, T] = {}

    def register(self, name: str, value: T) -> T:
        """Add `value` under `name`; a name taken by another value raises a SelfsimError."""
        if not isinstance(name, str) or not name:
            raise SelfsimError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        taken = self._entries.get(name)
        if taken is not None and taken is not value:
            raise SelfsimError(f"{self.kind} {name!r} is already registered; choose another name")
        self._entries[name] = value
        return value

    def add(self, name: str) -> Callable[[T], T]:
        """Decorator form of `register`: `@REG.add("name")`."""

        def decorate(value: T) -> T:
            return self.register(name, value)

        return decorate

    def unregister(self, name: str) -> T:
        """Remove and return the entry `name` (undoes `register`)."""
        value = self.get(name)
        del self._entries[name]
        return value

    def _load_modules(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)

    def names(self) -> list[str]:
        """Every name that can be asked for: built-ins (loaded or not) first, then the rest in registration order."""
        self._load_modules()
        return list(self._builtin) + [n for n in self._entries if n not in self._builtin]

    def check(self, name: str) -> str:
        """`name` if it is valid (no built-in module is imported), else a SelfsimError listing the valid names."""
        if name in self._builtin or name in self._entries:
            return name
        self._load_modules()
        if name not in self._entries:
            valid = ", ".join(self.names()) or "(none registered)"
            raise SelfsimError(f"unknown {self.kind} {name!r}; valid {self.plural} are {valid}")
        return name

    def get(self, name: str) -> T:
        """The value registered as `name`, importing its built-in module on first use."""
        self.check(name)
        if name not in self._entries and name in self._builtin:
            importlib.import_module(self._builtin[name])
            if name not in self._entries:
                raise SelfsimError(f"{self.kind} {name!r}: module {self._builtin[name]} did not register it")
        return self._entries[name]

    def items(self) -> list[tuple[str, T]]:
        """(name, value) for every entry, built-ins imported."""
        return [(name, self.get(name)) for name in self.names()]

    def values(self) -> list[T]:
        """Every entry's value, built-ins imported."""
        return [value for _, value in self.items()]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        self._load_modules()
        return name in self._builtin or name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
