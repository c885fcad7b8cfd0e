"""The tracing-backend registry: name -> Tracer class, as SAELens registers its SAE architectures.

Each backend module registers its class with `@register_backend(name)` when it is imported. The
built-in backends are imported only when first asked for (`BUILTIN`), so nnsight and
TransformerLens load only when used; this module imports neither torch nor any backend, which
lets the CLI name the choices while building its parser.

The default everywhere (patching, probes, lens, cache, SAE study, CLI) is `hooks`: it needs no
extra library, it is the reference the other backends are tested against (`tests/interp/test_backends.py`),
it leaves the HF model as loaded (tlens rewraps its modules in place), it runs a `device_map`
that mixes CPU and GPU (tlens refuses one), and the study has always used it, so its numbers stay.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from selfsim.errors import SelfsimError

if TYPE_CHECKING:
    from selfsim.interp.backends.base import Tracer
    from selfsim.models import Subject

DEFAULT_BACKEND = "hooks"
BUILTIN: dict[str, str] = {
    "hooks": "selfsim.interp.backends.hooks",
    "nnsight": "selfsim.interp.backends.nnsight_backend",
    "tlens": "selfsim.interp.backends.tlens_backend",
}
_REGISTRY: dict[str, Callable[[Subject], Tracer]] = {}


def register_backend(name: str) -> Callable[[Any], Any]:
    """Class decorator: register a Tracer class (built as `cls(subject)`) under `name`."""

    def add(cls: Any) -> Any:
        _REGISTRY[name] = cls
        return cls

    return add


def backend_names() -> list[str]:
    """Every backend that can be asked for: the built-in ones, then any registered since."""
    return list(BUILTIN) + [name for name in _REGISTRY if name not in BUILTIN]


def check_backend(name: str) -> str:
    """`name` if it names a backend (nothing is imported), else a SelfsimError listing the valid ones."""
    if name not in BUILTIN and name not in _REGISTRY:
        raise SelfsimError(f"unknown backend {name!r}; valid backends are {', '.join(backend_names())}")
    return name


def backend_class(name: str) -> Callable[[Subject], Tracer]:
    """The Tracer class registered as `name`, importing its built-in module on first use."""
    check_backend(name)
    if name not in _REGISTRY:
        importlib.import_module(BUILTIN[name])
    return _REGISTRY[name]


def get_tracer(subject: Subject, backend: str = DEFAULT_BACKEND) -> Tracer:
    """A tracer for `subject` from the named backend."""
    return backend_class(backend)(subject)
