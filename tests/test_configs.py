"""Config files by dataclass field types: one place checks every config of the project, one line per problem."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfsim import configs
from selfsim.errors import SelfsimError
from selfsim.study.config import PRESETS, StudyConfig, preset


def project_configs() -> list[type]:
    """Every config dataclass a user can write as a file."""
    from selfsim.finetune import FinetuneConfig
    from selfsim.interp.patching import PatchConfig
    from selfsim.interp.probes import ProbeConfig
    from selfsim.zoo.pair import DeriveConfig

    return [StudyConfig, FinetuneConfig, PatchConfig, ProbeConfig, DeriveConfig]


def test_round_trip_of_every_preset_and_default() -> None:
    for name in PRESETS:
        config = preset(name)
        assert configs.from_dict(StudyConfig, configs.to_dict(config)) == config
    for cls in project_configs():
        default = cls()
        assert configs.from_dict(cls, configs.to_dict(default)) == default, cls.__name__


def test_a_string_where_a_list_is_expected_is_refused_not_split() -> None:
    with pytest.raises(SelfsimError, match=r"^test_tasks = 'animals_long' is a string, expected a list of strings") as exc:
        configs.from_dict(StudyConfig, {"test_tasks": "animals_long"})
    assert "'a'" not in str(exc.value) and "\n" not in str(exc.value)
    from selfsim.finetune import FinetuneConfig

    with pytest.raises(SelfsimError, match=r"target_modules = 'q_proj' is a string, expected a list of strings"):
        configs.from_dict(FinetuneConfig, {"target_modules": "q_proj"})


@pytest.mark.parametrize("field, value", [("n_train", "100"), ("lr", "1e-3"), ("epochs", "2"), ("seed", 1.5), ("n_eval", True)])
def test_a_string_or_wrong_number_where_a_number_is_expected_is_refused(field: str, value: Any) -> None:
    with pytest.raises(SelfsimError, match=rf"^{field} = .* is not valid: expected (an integer|a finite number)$"):
        configs.from_dict(StudyConfig, {field: value})


@pytest.mark.parametrize("text", ["lr = inf", "lr = nan", "epochs = -inf"])
def test_toml_infinity_and_nan_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(SelfsimError, match="finite number"):
        configs.load(StudyConfig, path)


@pytest.mark.parametrize("text", ['{"lr": Infinity}', '{"lr": NaN}', '{"full_lr": -Infinity}'])
def test_json_infinity_and_nan_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(SelfsimError, match="finite number"):
        configs.load(StudyConfig, path)


def test_unknown_keys_are_listed_with_the_valid_ones() -> None:
    with pytest.raises(SelfsimError) as exc:
        configs.from_dict(StudyConfig, {"n_trian": 5})
    message = str(exc.value)
    assert "unknown key(s) 'n_trian'" in message and "n_train" in message and "interp_layers" in message


def test_one_line_per_problem_naming_field_and_value() -> None:
    with pytest.raises(SelfsimError) as exc:
        configs.from_dict(StudyConfig, {"n_train": "x", "lr": float("inf"), "models": ["a"]})
    lines = str(exc.value).splitlines()
    assert len(lines) == 2 and lines[0].startswith("n_train = 'x'") and lines[1].startswith("lr = inf")


def test_semantic_checks_of_the_dataclass_run_after_the_type_checks() -> None:
    with pytest.raises(SelfsimError, match="models must name exactly two models"):
        configs.from_dict(StudyConfig, {"models": ["toy-m1"]})
    with pytest.raises(SelfsimError, match="dialect must be one of toy, paper"):
        configs.from_dict(StudyConfig, {"dialect": "french"})


def test_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SelfsimError, match="does not exist"):
        configs.load(StudyConfig, tmp_path / "missing.toml")
    with pytest.raises(SelfsimError, match=r"must end in \.toml or \.json"):
        configs.load(StudyConfig, tmp_path / "c.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(SelfsimError, match="must hold a table"):
        configs.load(StudyConfig, bad)
    bad.write_text("{")
    with pytest.raises(SelfsimError, match="not valid JSON"):
        configs.load(StudyConfig, bad)


def test_a_toml_file_over_a_preset(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('n_train = 64\ntest_tasks = ["english_words_long"]\nlr = 2e-3\n')
    config = configs.load(StudyConfig, path, base=configs.to_dict(preset("smollm2")))
    assert (config.n_train, config.test_tasks, config.lr, config.dialect) == (64, ("english_words_long",), 2e-3, "paper")


def test_parse_flag_by_field_type() -> None:
    assert configs.parse_flag(StudyConfig, "n_train", "12") == 12
    assert configs.parse_flag(StudyConfig, "scaling", ["1", "2"]) == (1, 2)
    assert configs.parse_flag(StudyConfig, "device_map", "none") is None
    assert configs.parse_flag(StudyConfig, "device_map", "auto") == "auto"
    for field, raw in (("n_train", "ten"), ("lr", "inf"), ("lr", "nan"), ("scaling", ["1", "x"])):
        with pytest.raises(SelfsimError, match=r"^--[a-z-]+ '.*' is not valid: expected"):
            configs.parse_flag(StudyConfig, field, raw)


# The fuzzer: for every project config and every field, a value of the wrong type is one SelfsimError line.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def _fits(tp: Any, value: Any) -> bool:
    try:
        configs.check_value(tp, value, "x")
    except configs._Problem:
        return False
    return True


@pytest.mark.parametrize("cls", project_configs(), ids=lambda c: c.__name__)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_wrong_types_are_one_line_errors(cls: type, data: st.DataObject) -> None:
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    name = data.draw(st.sampled_from(names))
    value = data.draw(JSON_VALUES)
    tp = configs.field_types(cls)[name]
    try:
        config = configs.from_dict(cls, {name: value})
    except SelfsimError as exc:
        assert "\n" not in str(exc) and str(exc).strip()
        return
    # Accepted: then the value had the field's type, and the config holds it (lists as tuples).
    assert _fits(tp, value), f"{cls.__name__}.{name} accepted {value!r} of the wrong type"
    stored = getattr(config, name)
    assert json.loads(json.dumps(configs.to_dict(config)))[name] == json.loads(json.dumps(stored if not dataclasses.is_dataclass(stored) else configs.to_dict(stored)))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(StudyConfig)] + ["bogus"]), JSON_VALUES, max_size=4))
def test_fuzz_study_config_files_never_raise_another_exception(raw: dict) -> None:
    try:
        configs.from_dict(StudyConfig, raw)
    except SelfsimError as exc:
        assert str(exc).strip()


def test_every_field_type_is_supported() -> None:
    for cls in project_configs():
        for name, tp in configs.field_types(cls).items():
            default = getattr(cls(), name)
            configs.check_value(tp, json.loads(json.dumps(default)) if not dataclasses.is_dataclass(default)
                                else configs.to_dict(default), f"{cls.__name__}.{name}")
            assert configs.describe(tp)
    assert typing.get_type_hints(StudyConfig)
