"""The tracing-backend registry: name -> Tracer class, in the shared `selfsim.registry.Registry`.

Each backend module registers its class with `@register_backend(name)` when it is imported. The
built-in backends are imported only when first asked for (`BUILTIN`), so nnsight and
TransformerLens load only when used; this module imports neither torch nor any backend, which
lets the CLI name the choices while building its parser. A backend states what it needs from the
loaded model as class attributes (`attn_implementation`: e.g. "eager" for tlens, None = the
loader's default), read by `needs` before the model is loaded.

The default everywhere (patching, probes, lens, cache, SAE study, CLI) is `hooks`: it needs no
extra library, it is the reference the other backends are tested against (`tests/interp/test_backends.py`),
it leaves the HF model as loaded (tlens rewraps its modules in place), it runs a `device_map`
that mixes CPU and GPU (tlens refuses one), it is the fastest (BENCHMARKS.md: within 1.05x of a
plain forward, and it resumes batched patches from the patched layer), and the study has always
used it, so its numbers stay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from selfsim.registry import Registry

if TYPE_CHECKING:
    from selfsim.interp.backends.base import Tracer
    from selfsim.models import Subject

DEFAULT_BACKEND = "hooks"
BUILTIN: dict[str, str] = {
    "hooks": "selfsim.interp.backends.hooks",
    "nnsight": "selfsim.interp.backends.nnsight_backend",
    "tlens": "selfsim.interp.backends.tlens_backend",
}
BACKENDS: Registry[Any] = Registry("backend", builtin=BUILTIN)


def register_backend(name: str) -> Callable[[Any], Any]:
    """Class decorator: register a Tracer class (built as `cls(subject)`) under `name`; a taken name fails."""
    return BACKENDS.add(name)


def backend_names() -> list[str]:
    """Every backend that can be asked for: the built-in ones, then any registered since."""
    return BACKENDS.names()


def check_backend(name: str) -> str:
    """`name` if it names a backend (nothing is imported), else a SelfsimError listing the valid ones."""
    return BACKENDS.check(name)


def backend_class(name: str) -> Callable[[Subject], Tracer]:
    """The Tracer class registered as `name`, importing its built-in module on first use."""
    return BACKENDS.get(name)


def needs(name: str) -> dict[str, Any]:
    """What backend `name` needs from the model loader (keyword arguments of `load_subject`), from its class attributes."""
    cls = backend_class(name)
    implementation = getattr(cls, "attn_implementation", None)
    return {"attn_implementation": implementation} if implementation else {}


def get_tracer(subject: Subject, backend: str = DEFAULT_BACKEND) -> Tracer:
    """A tracer for `subject` from the named backend."""
    return backend_class(backend)(subject)
