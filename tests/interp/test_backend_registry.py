"""The tracing-backend registry: one default everywhere, lazy built-ins, a backend added from outside."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from selfsim.errors import SelfsimError
from selfsim.interp.backends import registry
from selfsim.interp.tracing import DEFAULT_BACKEND, HookTracer, encode, get_tracer


def test_one_default_backend_everywhere():
    from selfsim.interp.cache import CacheConfig
    from selfsim.interp.lens import lens_study, logit_lens
    from selfsim.interp.patching import PatchConfig
    from selfsim.interp.probes import run_probes
    from selfsim.interp.sae import SAEStudyConfig

    assert DEFAULT_BACKEND == "hooks"
    defaults = [PatchConfig().backend, CacheConfig(sites=["model.layers.0"]).backend, SAEStudyConfig().backend]
    defaults += [inspect.signature(f).parameters["backend"].default for f in (run_probes, lens_study, logit_lens)]
    assert defaults == [DEFAULT_BACKEND] * 6


def test_cli_defaults_follow_the_registry():
    from selfsim.cli import build_parser

    parser = build_parser()
    for command in (["patch", "--model", "m", "--out", "o"], ["probe", "--out", "o"], ["cache", "--model", "m", "--out", "o"]):
        assert parser.parse_args(command).backend == DEFAULT_BACKEND


def test_builtin_backends_import_their_library_only_when_used():
    code = ("import sys; from selfsim.interp.patching import PatchConfig; PatchConfig(backend='nnsight'); "
            "from selfsim.interp.backends.registry import backend_class; backend_class('tlens'); "
            "print(sorted(m for m in ('nnsight', 'transformer_lens') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_backend_is_refused_before_any_work():
    from selfsim.interp.cache import CacheConfig
    from selfsim.interp.patching import PatchConfig

    for make in (lambda: PatchConfig(backend="pyvene"), lambda: CacheConfig(sites=["model.layers.0"], backend="pyvene")):
        with pytest.raises(SelfsimError, match="unknown backend 'pyvene'; valid backends are hooks, nnsight, tlens"):
            make()


def test_a_backend_registered_from_outside_is_used_by_name(tiny_llama, monkeypatch):
    from selfsim.interp.patching import PatchConfig

    calls = []

    @registry.register_backend("counting")
    class CountingTracer(HookTracer):
        name = "counting"

        def run(self, batch, **kwargs):
            calls.append(batch.size)
            return super().run(batch, **kwargs)

    assert registry.backend_names()[-1] == "counting" and PatchConfig(backend="counting").backend == "counting"
    tracer = get_tracer(tiny_llama, "counting")
    batch = encode(tiny_llama, ["<user> fox <assistant>"])
    try:
        assert isinstance(tracer, CountingTracer) and tracer.run(batch).logits.shape[0] == 1 and calls == [1]
        with pytest.raises(SelfsimError, match="backend 'counting' is already registered; choose another name"):
            registry.register_backend("counting")(HookTracer)
    finally:
        registry.BACKENDS.unregister("counting")
    assert "counting" not in registry.backend_names()
