"""Where selfsim keeps models: the embedded toy checkpoints and the on-disk caches (a leaf module: paths only).

The write guard (`selfsim.guard`) never writes inside one of these; the toy registry and the zoo
resolve names to directories under them.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """selfsim's cache root: `$SELFSIM_CACHE` or `~/.cache/selfsim`."""
    return Path(os.environ.get("SELFSIM_CACHE", "~/.cache/selfsim")).expanduser()


def checkpoints_dir() -> Path:
    """Where the committed toy checkpoints live: `$SELFSIM_CHECKPOINTS` or `<repo>/checkpoints`."""
    env = os.environ.get("SELFSIM_CHECKPOINTS")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "checkpoints"


def toy_cache_dir() -> Path:
    """Where on-demand toy models are built: `$SELFSIM_CACHE/toy` or `~/.cache/selfsim/toy`."""
    return cache_root() / "toy"


def models_dir() -> Path:
    """Where fetched and derived models live: `$SELFSIM_CACHE/models` or `~/.cache/selfsim/models`."""
    return cache_root() / "models"


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`."""
    hf_home = Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser()
    return Path(os.environ.get("HF_HUB_CACHE", hf_home / "hub")).expanduser()
