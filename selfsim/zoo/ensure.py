"""Fetch or derive a named real model on demand: the one step that reaches from the catalogue to the builders."""

from __future__ import annotations

from pathlib import Path

from selfsim.zoo.catalog import DERIVED, Log, derived_dir, is_derived, is_fetched, model_dir


def ensure(name: str, *, log: Log = print) -> Path:
    """The local directory of zoo or derived model `name`, fetching or deriving it first when missing (one line each)."""
    if name in DERIVED:
        entry = DERIVED[name]
        path = derived_dir(entry.base, entry.tag)
        if not is_derived(path):
            ensure(entry.base, log=log)
            from selfsim.zoo.pair import DeriveConfig, derive

            log(f"{name} is not derived yet: deriving it from {entry.base} (`selfsim models derive {entry.base}`, minutes on a CPU)")
            derive(entry.base, path, DeriveConfig(rule=entry.rule, seed=entry.seed), log=log)
        return path
    path = model_dir(name)
    if not is_fetched(path):
        from selfsim.zoo.gguf import fetch

        log(f"{name} is not fetched yet: fetching it (`selfsim models fetch {name}`, a ~100 MB download and a few minutes)")
        fetch(name, log=log)
    return path
