"""The command line: fast --help, and one-line errors (no traceback) for bad input."""

import json
import subprocess
import sys

import pytest


def selfsim(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "selfsim", *args], capture_output=True, text=True, cwd=cwd,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, timeout=120,
    )


def test_help_lists_every_stage_without_heavy_imports():
    code = "import sys; from selfsim.cli import build_parser; build_parser(); print(sorted(m for m in ('torch', 'transformers', 'nnsight', 'transformer_lens', 'sae_lens', 'peft') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    result = selfsim("--help")
    assert result.returncode == 0
    for command in ("collect", "data", "evaluate", "finetune", "info", "patch", "predict", "study", "toy"):
        assert command in result.stdout


def _one_line_error(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--model", "/no/such/dir"], "not found: no such directory"),
        (["--model", "toy-unknown"], "unknown toy model 'toy-unknown'; valid names are toy-m1, toy-m2"),
        (["--model", "toy-m1", "--dtype", "float8"], "unknown dtype 'float8'; valid dtypes are float32, bfloat16, float16"),
        (["--model", "toy-m1", "--device-map", "{bad json"], "--device-map is not valid JSON"),
    ],
)
def test_bad_model_arguments_give_one_line(args, needle):
    _one_line_error(selfsim("info", *args), needle)


def test_non_llama_directory_gives_one_line(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    _one_line_error(selfsim("info", "--model", str(tmp_path)), "model_type 'bert' is not supported")


def test_info_describes_a_model(tiny_llama_dir):
    result = selfsim("info", "--model", str(tiny_llama_dir))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["n_layers"] == 2 and info["architecture"] == "LlamaForCausalLM"
    assert info["sites"]["mlp"] == "model.layers.{layer}.mlp"


def test_commands_import_only_the_shared_module_of_their_package():
    import ast
    from pathlib import Path

    import selfsim.commands

    for path in sorted(Path(selfsim.commands.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("selfsim.commands"):
                    assert name == "selfsim.commands._common", f"{path.name} imports {name}"


def test_layer_of_an_unbuilt_toy_model_is_checked_from_its_planned_config(tmp_path, monkeypatch):
    from selfsim.errors import SelfsimError
    from selfsim.models import check_layer_index, layer_count
    from selfsim.toy import registry

    monkeypatch.setattr(registry, "default_path", lambda name: tmp_path / name)
    n = registry.config_for("toy-m7").num_layers
    assert layer_count("toy-m7") == n
    assert check_layer_index(-1, n, "toy-m7") == n - 1
    with pytest.raises(SelfsimError, match=f"toy-m7 has {n} layers, valid layers are 0..{n - 1}"):
        check_layer_index(n, n, "toy-m7")
    assert not (tmp_path / "toy-m7").exists()
