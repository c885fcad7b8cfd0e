"""The real-model study path (`selfsim study --preset smollm2`) in miniature, and the checks that run before it.

The miniature keeps the smollm2 preset's wording (paper dialect), tasks and experiment units and shrinks the
prompt counts and steps. Its models are tiny random Llamas with a byte-level BPE chat tokenizer (a tokenizer
unlike the toy models' word-level one) of DIFFERENT depths (3 and 2 layers), each answering in words (" fox" or
" red", varying with the prompt), so that a cross-family pair runs every stage, the interp battery
included, in seconds. SmolLM2 itself runs the full preset (docs/smollm2.md); tests/test_smollm2.py fetches it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interp"))

from selfsim.cli import main  # noqa: E402

MINIATURE = ["--n-train", "4", "--n-eval", "24", "--lr", "1e-5", "--full-lr", "1e-6", "--scaling", "2", "--full-control", "2", "--calibration-prompts", "2",
             "--calibration-samples", "2", "--epochs", "1", "--batch-size", "4", "--n-boot", "20", "--interp-prompts", "8",
             "--interp-layers", "2", "--gen-batch-size", "4"]


def save_bpe_llama(out: Path, layers: int, seed: int) -> Path:
    """A random tiny Llama (hidden 32, `layers` layers) with the tests' byte-level BPE chat tokenizer whose untied
    head says only " fox" or " red", split at the median of the top principal component of its final hidden
    states on english_words_long prompts: answers are words and vary with the prompt, as a chat model's do."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from selfsim.tasks import generate

    from bpe_tiny import build_bpe_tokenizer

    tok = build_bpe_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    fit = generate("english_words_long", "first_word", 40, seed=99, dialect="paper")
    with torch.no_grad():
        hidden = torch.stack([model.model(tok(tok.apply_chat_template(e.object_messages, tokenize=False, add_generation_prompt=True),
                                              return_tensors="pt", add_special_tokens=False).input_ids).last_hidden_state[0, -1]
                              for e in fit])
        mean = hidden.mean(0)
        w = torch.linalg.svd(hidden - mean, full_matrices=False).Vh[0]
        w = w / (hidden - mean).matmul(w).std()
        lift = 50.0 * mean / (mean @ mean)  # both words far above every other token
        head = torch.zeros_like(model.lm_head.weight)
        head[tok.convert_tokens_to_ids("Ġfox")] = w + lift
        head[tok.convert_tokens_to_ids("Ġred")] = hidden.matmul(w).median() * mean / (mean @ mean) + lift
        model.lm_head.weight.copy_(head)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two random word-saying BPE Llamas of different depth (3 and 2 layers)."""
    root = tmp_path_factory.mktemp("bpe_pair")
    return save_bpe_llama(root / "m1", 3, 0), save_bpe_llama(root / "m2", 2, 1)


@pytest.mark.slow
def test_miniature_of_the_smollm2_preset_runs_every_unit_on_a_cross_family_pair(pair: tuple[Path, Path], tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ["study", "--preset", "smollm2", "--models", str(pair[0]), str(pair[1]), "--out", str(out), *MINIATURE]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["dialect"] == "paper" and config["n_train"] == 4 and config["rank"] == 32
    pair_result = results["pairs"][0]
    assert set(pair_result["experiments"]) >= {"scaling", "full_control", "calibration", "shift", "interp"}
    examples = [json.loads(line) for line in (out / "examples" / "eval_ood.jsonl").read_text().splitlines()]
    assert examples and all(e["dialect"] == "paper" for e in examples)
    # The interp battery opened each model at its own layers (first and last of M1's 3, both of M2's 2).
    patch_rows = json.loads((out / "interp" / "patching" / "summary.json").read_text())
    layers = {(r["model"], r["layer"]) for r in patch_rows}
    assert {layer for model, layer in layers if model == "cross"} == {0, 1}
    assert {layer for model, layer in layers if model == "self"} == {0, 2}
    assert (out / "report.html").is_file()
    # A rerun resumes to the same bytes.
    first = (out / "results.json").read_bytes()
    assert main(argv) == 0
    assert (out / "results.json").read_bytes() == first


def test_every_preset_passes_its_task_checks_on_a_fresh_machine() -> None:
    from selfsim.study.config import PRESETS, preset
    from selfsim.study.preflight import check_tasks

    for name in PRESETS:
        check_tasks(preset(name))  # generated tasks only: no paper rows needed


def test_the_same_model_twice_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from selfsim.toy.registry import resolve

    copy = tmp_path / "copy-of-m1"
    shutil.copytree(resolve("toy-m1"), copy)
    for models in (["toy-m1", "toy-m1"], ["toy-m1", str(resolve("toy-m1"))], ["toy-m1", str(copy)]):
        out = tmp_path / "run"
        assert main(["study", "--quick", "--models", *models, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "cross-prediction needs two different models" in err, err
        assert not out.exists()


def test_a_bad_task_or_property_for_the_dialect_fails_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["study", "--quick", "--test-tasks", "no_such_task", "--out", str(out)]) == 2
    assert "no_such_task" in capsys.readouterr().err and not out.exists()
    assert main(["study", "--quick", "--properties", "first_word", "no_such_property", "--out", str(out)]) == 2
    assert "no_such_property" in capsys.readouterr().err and not out.exists()


def test_a_model_that_is_not_there_fails_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["study", "--quick", "--models", "toy-m1", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err and not out.exists()
