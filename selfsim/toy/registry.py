"""Names of the toy models and where their checkpoints live.

`toy-m1` and `toy-m2` are committed under `<repo>/checkpoints/` (or `$SELFSIM_CHECKPOINTS`).
Further names `toy-m3`, `toy-m4`, ... are derived from their number (seed, a perturbed mixture)
and pretrained on first use into `~/.cache/selfsim/toy/<name>` (`$SELFSIM_CACHE/toy/<name>`);
`selfsim study --pairs K` uses them for more model pairs.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from selfsim.errors import SelfsimError
from selfsim.stores import checkpoints_dir as checkpoints_dir
from selfsim.stores import toy_cache_dir as cache_dir
from selfsim.toy.config import CONFIG_FILE, ToyConfig, default_mixture

_NAME = re.compile(r"^toy-m([1-9]\d*)$")


def _mixture(number: int) -> dict[str, float]:
    """The default mixture with each weight scaled by a factor in [0.87, 1.15] drawn from `number`."""
    if number == 1:
        return default_mixture()
    rng = random.Random(f"toy-mixture-{number}")
    return {kind: round(w * 1.15 ** rng.uniform(-1, 1), 5) for kind, w in default_mixture().items()}


def config_for(name: str) -> ToyConfig:
    """The ToyConfig of a toy name `toy-mN` (N >= 1); other names raise naming the valid ones."""
    match = _NAME.match(name)
    if not match:
        raise SelfsimError(
            f"unknown toy model {name!r}; valid names are {', '.join(EMBEDDED)} (committed) "
            "and toy-m3, toy-m4, ... (pretrained on first use)"
        )
    number = int(match.group(1))
    return ToyConfig(name=name, seed=number, mixture=_mixture(number))


EMBEDDED: dict[str, ToyConfig] = {name: config_for(name) for name in ("toy-m1", "toy-m2")}


def default_path(name: str) -> Path:
    """The checkpoint directory a toy name resolves to (whether or not it exists yet)."""
    config_for(name)
    return (checkpoints_dir() if name in EMBEDDED else cache_dir()) / name


def is_built(path: Path) -> bool:
    """Whether `path` holds a finished toy checkpoint."""
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file() and (path / CONFIG_FILE).is_file()


def resolve(name: str, build_missing: bool = True) -> Path:
    """The checkpoint directory of a toy name, pretraining it first if missing and `build_missing`."""
    path = default_path(name)
    if is_built(path):
        return path
    if not build_missing:
        raise SelfsimError(f"{name} is not built at {path}: run `selfsim toy build --only {name}`")
    from selfsim.toy.pretrain import pretrain

    return pretrain(config_for(name), path)
