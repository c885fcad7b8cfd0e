"""The public face of the tracing layer: what patching, probes, lens and the cache use.

A `Tracer` runs one forward pass over a left-padded `Batch` with `Patch`es applied and sites read;
the contract (order of patches and reads, sites, devices) is written in `selfsim.interp.backends.base`.
Backends are found by name (`get_tracer(subject, "nnsight")`) through
`selfsim.interp.backends.registry`; `DEFAULT_BACKEND` is `hooks` (the registry says why).
"""

from __future__ import annotations

from selfsim.interp.backends.base import (
    Batch,
    Patch,
    TraceOutput,
    Tracer,
    apply_patch,
    check_positions,
    encode,
    group_patches,
)
from selfsim.interp.backends.hooks import HookTracer
from selfsim.interp.backends.registry import (
    DEFAULT_BACKEND,
    backend_names,
    check_backend,
    get_tracer,
    register_backend,
)

__all__ = [
    "DEFAULT_BACKEND", "Batch", "HookTracer", "Patch", "TraceOutput", "Tracer", "apply_patch", "backend_names",
    "check_backend", "check_positions", "encode", "get_tracer", "group_patches", "register_backend",
]
