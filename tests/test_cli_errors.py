"""Issue 10's catalogue of bad input: every case exits 2 with one line on stderr, before heavy work, leaving no output.

Cases run `selfsim.cli.main` in-process (an unexpected exception fails the test with its traceback);
a few run as subprocesses to prove stderr holds no traceback. The fuzz cases draw broken examples
files and model configs with hypothesis.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfsim.cli import main
from selfsim.examples import save_examples
from selfsim.tasks import generate


@pytest.fixture(autouse=True)
def _offline_and_quiet(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")


def run_cli(capsys, *args) -> tuple[int, list[str]]:
    """(exit code, non-empty stderr lines) of an in-process `selfsim ...`."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def assert_one_line(capsys, needle: str, *args, out: Path | None = None) -> str:
    """The command exits 2 with exactly one stderr line holding `needle`, and `out` (if new) is not created."""
    existed = out is not None and out.exists()
    code, lines = run_cli(capsys, *args)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("selfsim ") and needle in lines[0], lines[0]
    if out is not None and not existed:
        assert not out.exists(), f"{out} was left behind"
    return lines[0]


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_config(model: Path, **changes) -> None:
    config = json.loads((model / "config.json").read_text())
    config.update(changes)
    (model / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def examples_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("examples") / "ex.jsonl"
    save_examples(path, generate("animals_long", "first_word", n=4, seed=0, dialect="toy"))
    return path


@pytest.fixture(scope="module")
def adapter_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    """A LoRA adapter (r=2 on q_proj) that fits the tiny Llama."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), LoraConfig(r=2, target_modules=["q_proj"]))
    out = tmp_path_factory.mktemp("adapter") / "lora"
    model.save_pretrained(out)
    return out


# ----------------------------------------------------------------------------- the model directory

def test_config_that_is_not_an_object(capsys, tiny_llama_dir, tmp_path):
    model = copy_model(tiny_llama_dir, tmp_path / "m")
    (model / "config.json").write_text("[1, 2, 3]")
    assert_one_line(capsys, "config.json: expected a JSON object of model settings, got a JSON array", "info", "--model", model)


def test_truncated_safetensors(capsys, tiny_llama_dir, tmp_path):
    model = copy_model(tiny_llama_dir, tmp_path / "m")
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    for cut in (len(data) - 100, 20):
        weights.write_bytes(data[:cut])
        assert_one_line(capsys, "model.safetensors: truncated", "info", "--model", model)


def _pickle_model(tiny_llama_dir: Path, dst: Path, payload: object) -> Path:
    model = copy_model(tiny_llama_dir, dst)
    (model / "model.safetensors").unlink()
    torch.save(payload, model / "pytorch_model.bin")
    return model


class Evil:
    """A pickle that runs a command when unpickled without weights_only."""

    marker = Path(tempfile.gettempdir()) / "selfsim-test-pwned"

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_weights_are_refused_unless_allowed(capsys, tiny_llama_dir, tmp_path):
    from safetensors.torch import load_file

    state = load_file(tiny_llama_dir / "model.safetensors")
    benign = _pickle_model(tiny_llama_dir, tmp_path / "benign", state)
    assert_one_line(capsys, "holds only pickle weights (pytorch_model.bin); selfsim loads safetensors only", "info", "--model", benign)
    capsys.readouterr()
    assert main(["info", "--model", str(benign), "--allow-pickle-weights"]) == 0
    assert json.loads(capsys.readouterr().out)["n_layers"] == 2


def test_benign_pickle_loads_with_the_flag(tiny_llama_dir, tmp_path):
    from safetensors.torch import load_file

    from selfsim.models import load_subject

    state = load_file(tiny_llama_dir / "model.safetensors")
    benign = _pickle_model(tiny_llama_dir, tmp_path / "benign", state)
    subject = load_subject(str(benign), allow_pickle_weights=True)
    assert torch.equal(subject.base.model.layers[0].mlp.up_proj.weight, state["model.layers.0.mlp.up_proj.weight"])


def test_malicious_pickle_is_refused_even_with_the_flag(capsys, tiny_llama_dir, tmp_path):
    Evil.marker.unlink(missing_ok=True)
    evil = _pickle_model(tiny_llama_dir, tmp_path / "evil", {"model.embed_tokens.weight": Evil()})
    assert_one_line(capsys, "safetensors only", "info", "--model", evil)
    assert_one_line(capsys, "weights_only", "info", "--model", evil, "--allow-pickle-weights")
    assert not Evil.marker.exists()


# ----------------------------------------------------------------------------- device maps

@pytest.mark.parametrize(
    "device_map, needle",
    [
        ('{"": "banana"}', "module '' is mapped to 'banana', not a device; valid devices are cpu"),
        ('{"model.nothing": "cpu", "": "cpu"}', "names module(s) 'model.nothing' that"),
        ('{"model.layers.0": "cpu"}', "gives no device to model.embed_tokens.weight"),
        ("{}", "empty JSON object"),
        ("elsewhere", "unknown device_map 'elsewhere'"),
    ],
)
def test_bad_device_maps(capsys, tiny_llama_dir, device_map, needle):
    assert_one_line(capsys, needle, "info", "--model", tiny_llama_dir, "--device-map", device_map)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("device_map", ["cuda:0", "0", '{"": "cuda:1"}'])
def test_cuda_device_map_without_cuda(capsys, tiny_llama_dir, device_map):
    assert_one_line(capsys, "has no CUDA; use cpu, auto", "info", "--model", tiny_llama_dir, "--device-map", device_map)


def test_good_device_map_still_loads(capsys, tiny_llama_dir):
    code, lines = run_cli(capsys, "info", "--model", tiny_llama_dir, "--device-map", '{"model": "cpu", "lm_head": "cpu"}')
    assert code == 0, lines


# ----------------------------------------------------------------------------- adapters

def _adapter_variant(adapter_dir: Path, dst: Path) -> Path:
    shutil.copytree(adapter_dir, dst)
    return dst


def test_adapter_of_another_shape(capsys, tiny_llama_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from conftest import save_tiny_llama

    other = save_tiny_llama(tmp_path / "narrow", hidden=32)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(other), LoraConfig(r=2, target_modules=["q_proj"]))
    model.save_pretrained(tmp_path / "lora")
    assert_one_line(capsys, "lora_A has shape [2, 32], but the base module has 64 inputs", "info", "--model", tiny_llama_dir,
                    "--adapter", tmp_path / "lora")


def test_adapter_with_other_target_modules(capsys, tiny_llama_dir, adapter_dir, tmp_path):
    lora = _adapter_variant(adapter_dir, tmp_path / "lora")
    config = json.loads((lora / "adapter_config.json").read_text())
    config["target_modules"] = ["c_attn"]
    (lora / "adapter_config.json").write_text(json.dumps(config))
    assert_one_line(capsys, "targets ['c_attn'], which", "info", "--model", tiny_llama_dir, "--adapter", lora)


def test_adapter_config_only(capsys, tiny_llama_dir, adapter_dir, tmp_path):
    lora = _adapter_variant(adapter_dir, tmp_path / "lora")
    (lora / "adapter_model.safetensors").unlink()
    assert_one_line(capsys, "no adapter weights (adapter_model.safetensors)", "info", "--model", tiny_llama_dir, "--adapter", lora)


@pytest.mark.parametrize(
    "text, needle",
    [('{"peft_type": "LORA", "target_', "adapter_config.json:1: malformed JSON"),
     ('["q_proj"]', "expected a JSON object (a peft adapter config), got a JSON array"),
     ('{"peft_type": "LORA", "target_modules": 7}', "target_modules must be a non-empty list"),
     ('{"peft_type": "IA3", "target_modules": ["q_proj"]}', "peft_type 'IA3' is not supported")],
)
def test_malformed_adapter_config(capsys, tiny_llama_dir, adapter_dir, tmp_path, text, needle):
    lora = _adapter_variant(adapter_dir, tmp_path / "lora")
    (lora / "adapter_config.json").write_text(text)
    assert_one_line(capsys, needle, "info", "--model", tiny_llama_dir, "--adapter", lora)


def test_pickle_adapter_is_refused(capsys, tiny_llama_dir, adapter_dir, tmp_path):
    from safetensors.torch import load_file

    lora = _adapter_variant(adapter_dir, tmp_path / "lora")
    torch.save(load_file(lora / "adapter_model.safetensors"), lora / "adapter_model.bin")
    (lora / "adapter_model.safetensors").unlink()
    assert_one_line(capsys, "only pickle adapter weights (adapter_model.bin); selfsim loads safetensors only", "info",
                    "--model", tiny_llama_dir, "--adapter", lora)


def test_truncated_adapter_weights(capsys, tiny_llama_dir, adapter_dir, tmp_path):
    lora = _adapter_variant(adapter_dir, tmp_path / "lora")
    weights = lora / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    assert_one_line(capsys, "adapter_model.safetensors: truncated", "info", "--model", tiny_llama_dir, "--adapter", lora)


def test_fitting_adapter_still_loads(capsys, tiny_llama_dir, adapter_dir):
    code, lines = run_cli(capsys, "info", "--model", tiny_llama_dir, "--adapter", adapter_dir)
    assert code == 0, lines


# ----------------------------------------------------------------------------- examples files

def _example_row(examples_file: Path) -> dict:
    return json.loads(examples_file.read_text().splitlines()[0])


@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("object_messages", "fox gnu cat", "object_messages must be a non-empty list of {role, content} messages"),
        ("property", ["first_word"], 'property must be a string, got ["first_word"]'),
        ("hypothetical_messages", [{"role": "user", "content": 42}], 'hypothetical_messages[0] must be a {"role": system|user|assistant, "content": string}'),
        ("task", "no_such_task", "unknown task 'no_such_task'; valid tasks are"),
        ("split", "validation", "split 'validation' is not one of train, test"),
    ],
)
def test_examples_with_wrong_types_fail_at_load(capsys, tiny_llama_dir, examples_file, tmp_path, field, value, needle):
    good = examples_file.read_text().splitlines()
    bad = dict(_example_row(examples_file), **{field: value})
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([good[0], json.dumps(bad), *good[1:]]) + "\n")
    line = assert_one_line(capsys, needle, "collect", "--model", tiny_llama_dir, "--examples", path, "--out", tmp_path / "o",
                           out=tmp_path / "o")
    assert f"{path}:2:" in line


def test_examples_wrong_types_in_patch_and_finetune(capsys, tiny_llama_dir, examples_file, tmp_path):
    bad = dict(_example_row(examples_file), object_messages=[{"role": "user", "content": 42}])
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(bad) + "\n")
    assert_one_line(capsys, f"{path}:1:", "patch", "--model", tiny_llama_dir, "--layer", 0, "--examples", path,
                    "--out", tmp_path / "p", out=tmp_path / "p")
    labels = tmp_path / "labels.jsonl"
    labels.write_text("")
    assert_one_line(capsys, f"{path}:1:", "finetune", "--model", tiny_llama_dir, "--examples", path, "--labels", labels,
                    "--out", tmp_path / "f", out=tmp_path / "f")


# ----------------------------------------------------------------------------- patch and cache

@pytest.mark.parametrize("position", ["999", "-999"])
def test_patch_position_out_of_range(capsys, tiny_llama_dir, tmp_path, position):
    assert_one_line(capsys, f"--position {position} is outside the copy of P in every pair: valid integer positions are ",
                    "patch", "--model", tiny_llama_dir, "--layer", 0, "--position", position, "--n", 4,
                    "--out", tmp_path / "p", out=tmp_path / "p")


def test_prompts_longer_than_the_context(capsys, tiny_llama_dir, examples_file, tmp_path):
    short = copy_model(tiny_llama_dir, tmp_path / "short")
    edit_config(short, max_position_embeddings=8)
    needle = "context of 8 positions (max_position_embeddings)"
    assert_one_line(capsys, needle, "patch", "--model", short, "--layer", 0, "--examples", examples_file,
                    "--out", tmp_path / "p", out=tmp_path / "p")
    assert_one_line(capsys, needle, "cache", "--model", short, "--examples", examples_file, "--property", "first_word",
                    "--out", tmp_path / "c", out=tmp_path / "c")


# ----------------------------------------------------------------------------- --out of every writer

def writer_commands(model: Path, examples: Path, out: Path) -> dict[str, list]:
    m = ["--model", model]
    return {
        "collect": ["collect", *m, "--examples", examples, "--out", out],
        "predict": ["predict", *m, "--examples", examples, "--out", out],
        "data import": ["data", "import", examples, "--out", out],
        "data generate": ["data", "generate", "--task", "animals_long", "--out", out],
        "evaluate": ["evaluate", "--predictions", examples, "--behavior", examples, "--out", out],
        "finetune": ["finetune", *m, "--examples", examples, "--labels", examples, "--out", out],
        "patch": ["patch", *m, "--layer", 0, "--out", out],
        "probe": ["probe", *m, "--out", out],
        "sae": ["sae", *m, "--out", out],
        "cache": ["cache", *m, "--out", out],
        "study": ["study", "--quick", "--out", out],
        "toy build": ["toy", "build", "--only", "toy-m1", "--out", out],
    }


FILE_WRITERS = {"data import", "data generate", "evaluate"}


@pytest.mark.parametrize("writer", sorted(writer_commands(Path(), Path(), Path())))
def test_out_under_a_file_is_refused_before_work(capsys, tiny_llama_dir, examples_file, tmp_path, writer):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = blocker / "out"
    assert_one_line(capsys, f"--out {out} cannot be created: {blocker} is a file, not a directory",
                    *writer_commands(tiny_llama_dir, examples_file, out)[writer])
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize("writer", sorted(set(writer_commands(Path(), Path(), Path())) - FILE_WRITERS))
def test_out_that_is_an_existing_file(capsys, tiny_llama_dir, examples_file, tmp_path, writer):
    out = tmp_path / "taken"
    out.write_text("keep me")
    assert_one_line(capsys, f"--out {out} is an existing file; give a directory",
                    *writer_commands(tiny_llama_dir, examples_file, out)[writer])
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("writer", sorted(FILE_WRITERS))
def test_file_out_that_is_a_directory(capsys, tiny_llama_dir, examples_file, tmp_path, writer):
    assert_one_line(capsys, f"--out {tmp_path} is a directory; give a file path",
                    *writer_commands(tiny_llama_dir, examples_file, tmp_path)[writer])


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores mode bits, so a read-only directory is still writable to it")
def test_out_in_a_read_only_directory(capsys, tiny_llama_dir, examples_file, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert_one_line(capsys, "cannot be written: no write permission in", "collect", "--model", tiny_llama_dir,
                    "--examples", examples_file, "--out", locked / "o")


# ----------------------------------------------------------------------------- bounds and typos

@pytest.mark.parametrize("n", ["100000000", "0", "-3"])
def test_data_generate_n_is_bounded(capsys, tmp_path, n):
    assert_one_line(capsys, "--n must be between 1 and 1,000,000 object prompts", "data", "generate", "--task", "animals_long",
                    "--n", n, "--out", tmp_path / "x.jsonl", out=tmp_path / "x.jsonl")


@pytest.mark.parametrize("temperature", ["inf", "nan", "-1"])
def test_temperature_must_be_finite_and_non_negative(capsys, tiny_llama_dir, examples_file, tmp_path, temperature):
    assert_one_line(capsys, "--temperature must be a finite number >= 0", "collect", "--model", tiny_llama_dir,
                    "--examples", examples_file, "--out", tmp_path / "o", "--samples", 1, "--temperature", temperature,
                    out=tmp_path / "o")


def test_unbuilt_toy_name_does_not_start_pretraining(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SELFSIM_CACHE", str(tmp_path / "cache"))
    assert_one_line(capsys, "toy-m7 is not built (pretraining it takes minutes): run `selfsim toy build --only toy-m7` first",
                    "info", "--model", "toy-m7")
    assert not (tmp_path / "cache").exists()


def test_cache_row_without_key(capsys, tiny_llama_dir, examples_file, tmp_path):
    out = tmp_path / "o"
    args = ["collect", "--model", tiny_llama_dir, "--examples", examples_file, "--out", out, "--max-new-tokens", 2, "--no-progress"]
    code, lines = run_cli(capsys, *args)
    assert code == 0, lines
    cache = sorted((out / "cache").glob("*.jsonl"))[0]
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    del rows[1]["key"]
    cache.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert_one_line(capsys, f"{cache}:2: not a generation-cache row (it needs a string key", *args)


# ----------------------------------------------------------------------------- as a user sees it: no traceback

def test_subprocesses_print_one_line_and_no_traceback(tiny_llama_dir, examples_file, tmp_path):
    listed = copy_model(tiny_llama_dir, tmp_path / "listed")
    (listed / "config.json").write_text('"llama"')
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(dict(_example_row(examples_file), property=["first_word"])) + "\n")
    cases = [
        (["info", "--model", listed], "got a JSON string"),
        (["collect", "--model", tiny_llama_dir, "--examples", bad, "--out", tmp_path / "o"], f"{bad}:1:"),
        (["patch", "--model", tiny_llama_dir, "--layer", "0", "--position", "999", "--n", "4", "--out", tmp_path / "p"],
         "--position 999 is outside"),
    ]
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    for args, needle in cases:
        result = subprocess.run([sys.executable, "-m", "selfsim", *map(str, args)], capture_output=True, text=True,
                                env=env, timeout=120, cwd=Path(__file__).parents[1])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(lines) == 1 and needle in lines[0], result.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "p").exists()


# ----------------------------------------------------------------------------- fuzz

def _not(valid):
    return lambda value: not valid(value)


_non_str = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                     st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2))
_junk = st.one_of(_non_str, st.text(max_size=6))
_messages_junk = st.one_of(
    _junk.filter(lambda v: not (isinstance(v, list) and v)),
    st.lists(_junk, min_size=1, max_size=2),
    st.lists(st.fixed_dictionaries({"role": _junk.filter(lambda v: v not in ("system", "user", "assistant")), "content": st.text(max_size=4)}), min_size=1, max_size=2),
    st.lists(st.fixed_dictionaries({"role": st.just("user"), "content": _non_str}),
             min_size=1, max_size=2),
)
EXAMPLE_FIELD_JUNK = {
    "task": st.one_of(_non_str, st.text(max_size=8).map(lambda s: f"zz{s}")),
    "property": st.one_of(_non_str, st.just("")),
    "object_messages": _messages_junk,
    "hypothetical_messages": _messages_junk,
    "split": _junk.filter(lambda v: v not in ("train", "test")),
    "dialect": _junk.filter(lambda v: v not in ("paper", "toy")),
    "meta": _junk.filter(_not(lambda v: isinstance(v, dict))),
    "original_question": _non_str,
}
_bad_line = st.one_of(
    st.sampled_from(sorted(EXAMPLE_FIELD_JUNK)).flatmap(lambda f: st.tuples(st.just(f), EXAMPLE_FIELD_JUNK[f])),
    st.sampled_from(["task", "property", "object_messages", "hypothetical_messages"]).map(lambda f: (f, "<missing>")),
    st.sampled_from(['[1, 2]', '"text"', "{'single': 'quotes'}", '{"task": ', "null", "7"]).map(lambda raw: ("<raw>", raw)),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=_bad_line, position=st.integers(0, 3))
def test_fuzzed_examples_files_fail_with_one_line(capsys, tiny_llama_dir, examples_file, bad, position):
    good = examples_file.read_text().splitlines()
    field, value = bad
    if field == "<raw>":
        line = value
    else:
        row = _example_row(examples_file)
        if value == "<missing>":
            del row[field]
        else:
            row[field] = value
        line = json.dumps(row)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ex.jsonl"
        path.write_text("\n".join([*good[:position], line, *good[position:]]) + "\n")
        message = assert_one_line(capsys, f"{path}:{position + 1}:", "collect", "--model", tiny_llama_dir, "--examples", path,
                                  "--out", Path(tmp) / "o", out=Path(tmp) / "o")
        assert "Traceback" not in message


def test_line_separator_in_a_bad_value_stays_on_one_line(capsys, tiny_llama_dir, examples_file, tmp_path):
    row = {**_example_row(examples_file), "dialect": {"\u2028": 0}}
    path = tmp_path / "ex.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n")
    assert_one_line(capsys, f"{path}:1: not a selfsim example (dialect must be a string", "collect", "--model", tiny_llama_dir,
                    "--examples", path, "--out", tmp_path / "o", out=tmp_path / "o")


def _bad_int(optional: bool):
    values = st.one_of(st.integers(max_value=0), st.floats(allow_nan=True), st.text(max_size=4), st.booleans(),
                       st.lists(st.integers(1, 3), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
    return values if optional else st.one_of(values, st.none())


CONFIG_FIELD_JUNK = {
    "model_type": _junk.filter(lambda v: v not in ("llama", "mistral", "qwen2")),
    "num_hidden_layers": _bad_int(False),
    "hidden_size": _bad_int(False),
    "intermediate_size": _bad_int(False),
    "num_attention_heads": _bad_int(False),
    "vocab_size": _bad_int(False),
    "num_key_value_heads": _bad_int(True),
    "max_position_embeddings": _bad_int(True),
    "head_dim": _bad_int(True),
    "rms_norm_eps": st.one_of(st.floats(max_value=0), st.just(float("inf")), st.just(float("nan")), st.text(max_size=3),
                              st.booleans(), st.lists(st.floats(), max_size=1)),
    "rope_theta": st.one_of(st.floats(max_value=0), st.just(float("nan")), st.text(max_size=3), st.booleans()),
    "tie_word_embeddings": _junk.filter(_not(lambda v: isinstance(v, bool))),
    "hidden_act": _junk.filter(lambda v: v is not None and not isinstance(v, str)),
    "rope_scaling": _junk.filter(lambda v: v is not None and not isinstance(v, dict)),
}
_bad_config = st.one_of(
    st.sampled_from(sorted(CONFIG_FIELD_JUNK)).flatmap(lambda f: st.tuples(st.just(f), CONFIG_FIELD_JUNK[f])),
    st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=5), st.integers(), st.none(), st.booleans())
    .map(lambda whole: ("<whole>", whole)),
    st.sampled_from(["model_type", "num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size"])
    .map(lambda f: (f, "<missing>")),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=_bad_config)
def test_fuzzed_model_configs_fail_with_one_line(capsys, tiny_llama_dir, bad):
    field, value = bad
    config = json.loads((tiny_llama_dir / "config.json").read_text())
    if field == "<whole>":
        config = value
    elif value == "<missing>":
        del config[field]
    else:
        config[field] = value
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "m"
        model.mkdir()
        for item in tiny_llama_dir.iterdir():
            if item.name != "config.json":
                (model / item.name).symlink_to(item)
        (model / "config.json").write_text(json.dumps(config))
        for command in (["info", "--model", model], ["patch", "--model", model, "--layer", 0, "--out", Path(tmp) / "p"]):
            assert_one_line(capsys, str(model), *command, out=Path(tmp) / "p")
