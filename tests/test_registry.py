"""The one Registry type: taken names refused, unknown names listed, built-ins loaded lazily."""

import sys
import types

import pytest

from selfsim.errors import SelfsimError
from selfsim.registry import Registry


def test_taken_name_is_refused_with_one_line():
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(SelfsimError, match="widget 'a' is already registered"):
        reg.register("a", 2)
    assert reg.get("a") == 1


def test_same_object_again_is_a_no_op():
    reg: Registry[object] = Registry("widget")
    value = object()
    reg.register("a", value)
    assert reg.register("a", value) is value
    assert reg.names() == ["a"]


def test_unknown_name_lists_valid_names():
    reg: Registry[int] = Registry("metric")
    reg.register("flip_rate", 1)
    reg.register("logit_diff", 2)
    with pytest.raises(SelfsimError, match="unknown metric 'nope'; valid metrics are flip_rate, logit_diff"):
        reg.get("nope")


def test_builtin_module_is_imported_only_when_asked_for(monkeypatch):
    reg: Registry[int] = Registry("backend", builtin={"lazy": "fake_selfsim_lazy_backend"})
    module = types.ModuleType("fake_selfsim_lazy_backend")
    imported = []

    def load():
        imported.append(True)
        reg.register("lazy", 7)

    monkeypatch.setitem(sys.modules, "fake_selfsim_lazy_backend", module)
    assert reg.check("lazy") == "lazy" and reg.names() == ["lazy"] and not imported
    monkeypatch.delitem(sys.modules, "fake_selfsim_lazy_backend")
    monkeypatch.setattr("importlib.import_module", lambda name: load())
    assert reg.get("lazy") == 7 and imported == [True]


def test_modules_load_before_first_listing(monkeypatch):
    reg: Registry[str] = Registry("experiment", modules=["fake_selfsim_experiments"])
    monkeypatch.setattr("importlib.import_module", lambda name: reg.register("built_in", name))
    assert reg.names() == ["built_in"]
    assert reg.get("built_in") == "fake_selfsim_experiments"


def test_it_reads_like_a_mapping():
    reg: Registry[int] = Registry("task")
    reg.register("a", 1)
    reg.register("b", 2)
    assert reg["b"] == 2 and reg.values() == [1, 2] and dict(reg.items()) == {"a": 1, "b": 2}
    with pytest.raises(SelfsimError, match="^unknown task 'c'; valid tasks are a, b$"):
        reg["c"]
