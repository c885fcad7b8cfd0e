import json

import pytest
import torch

from selfsim.errors import SelfsimError
from selfsim.models import check_device_map, load_subject, resolve_path


def test_subject_describes_layers_and_sites(tiny_llama):
    assert tiny_llama.n_layers == 2
    assert tiny_llama.hidden_size == 64
    assert tiny_llama.site(1) == "model.layers.1"
    assert tiny_llama.site(-1, "mlp") == "model.layers.1.mlp"
    assert tiny_llama.module(tiny_llama.site(0, "attn")) is tiny_llama.base.model.layers[0].self_attn
    assert len(tiny_llama.fingerprint) == 16


def test_layer_out_of_range_names_valid_range(tiny_llama):
    with pytest.raises(SelfsimError, match=r"layer 40 is out of range.*0\.\.1"):
        tiny_llama.site(40)
    with pytest.raises(SelfsimError, match="valid components are resid, attn, mlp"):
        tiny_llama.site(0, "head")


def test_render_chat_uses_template(tiny_llama):
    text = tiny_llama.render_chat([{"role": "user", "content": "next animals : fox gnu"}])
    assert text.startswith("<user> next animals : fox gnu")
    assert text.endswith("<assistant>")


def test_bfloat16_and_adapter_change_fingerprint(tiny_llama_dir, tiny_llama, tmp_path):
    from peft import LoraConfig, get_peft_model

    bf = load_subject(str(tiny_llama_dir), dtype="bfloat16")
    assert bf.base.model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
    assert bf.fingerprint == tiny_llama.fingerprint
    peft_model = get_peft_model(load_subject(str(tiny_llama_dir)).model, LoraConfig(r=2, target_modules=["q_proj"]))
    peft_model.save_pretrained(tmp_path / "adapter")
    with_adapter = load_subject(str(tiny_llama_dir), adapter=tmp_path / "adapter")
    assert with_adapter.fingerprint != tiny_llama.fingerprint
    assert with_adapter.site(0) == "model.layers.0"
    assert with_adapter.module("model.layers.0") is with_adapter.base.model.layers[0]


def test_explicit_device_map_loads(tiny_llama_dir):
    subject = load_subject(str(tiny_llama_dir), device_map={"": "cpu"})
    assert subject.input_device.type == "cpu"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dtype": "float8"}, "unknown dtype 'float8'; valid dtypes are float32, bfloat16, float16"),
        ({"device_map": "everywhere"}, "unknown device_map 'everywhere'"),
        ({"adapter": "/nonexistent/adapter"}, "not a peft adapter directory"),
    ],
)
def test_bad_options_are_clear(tiny_llama_dir, kwargs, message):
    with pytest.raises(SelfsimError, match=message):
        load_subject(str(tiny_llama_dir), **kwargs)


def test_missing_directory_and_non_llama(tmp_path):
    with pytest.raises(SelfsimError, match="not found: no such directory"):
        resolve_path(str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(SelfsimError, match=r"model_type 'gpt2' is not supported; selfsim supports LlamaForCausalLM"):
        load_subject(str(tmp_path))


def test_hub_id_not_cached_offline_is_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(SelfsimError, match="not in the local Hugging Face cache"):
        resolve_path("meta-llama/Llama-3.1-8B-Instruct")


def test_device_map_validation():
    assert check_device_map("auto") == "auto"
    assert check_device_map({"model.layers.0": 0}) == {"model.layers.0": 0}
    assert check_device_map("cuda:1") == "cuda:1"


def test_model_config_must_be_an_object_with_sane_sizes(tiny_llama_dir, tmp_path):
    from selfsim.models import read_model_config

    config = read_model_config(tiny_llama_dir)
    assert config["num_hidden_layers"] == 2
    for bad, message in [([], "expected a JSON object of model settings, got a JSON array"),
                         ({**config, "hidden_size": "64"}, "hidden_size must be a positive integer, got '64'"),
                         ({**config, "num_key_value_heads": 3}, "num_attention_heads 4 is not a multiple of num_key_value_heads 3")]:
        (tmp_path / "config.json").write_text(json.dumps(bad))
        with pytest.raises(SelfsimError, match=message):
            read_model_config(tmp_path)


def test_safetensors_completeness(tiny_llama_dir, tmp_path):
    from selfsim.models import check_safetensors

    good = tiny_llama_dir / "model.safetensors"
    check_safetensors(good)
    for size in (4, 100, good.stat().st_size - 1):
        (tmp_path / "cut.safetensors").write_bytes(good.read_bytes()[:size])
        with pytest.raises(SelfsimError, match="truncated"):
            check_safetensors(tmp_path / "cut.safetensors")


def test_device_availability(monkeypatch):
    from selfsim.models import check_devices_available

    check_devices_available("auto")
    check_devices_available({"": "cpu"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SelfsimError, match="has no CUDA"):
        check_devices_available({"model": "cpu", "lm_head": 1})
    with pytest.raises(SelfsimError, match="not a device"):
        check_device_map({"": "banana"})


def test_unbuilt_toy_is_built_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFSIM_CACHE", str(tmp_path))
    with pytest.raises(SelfsimError, match=r"run `selfsim toy build --only toy-m9` first, or pass --build-toy"):
        resolve_path("toy-m9", build_toy=False)
    with pytest.raises(SelfsimError, match="unknown toy model 'toy-x'"):
        resolve_path("toy-x", build_toy=False)
    assert not any(tmp_path.iterdir())


def test_tokenizer_subject_loads_no_weights(tiny_llama_dir, tiny_llama):
    from selfsim.models import context_length, load_tokenizer_subject

    light = load_tokenizer_subject(str(tiny_llama_dir))
    assert context_length(light) == 256 and light.n_layers == 2
    messages = [{"role": "user", "content": "next animals : fox gnu"}]
    assert light.render_chat(messages) == tiny_llama.render_chat(messages)


# Issue 18: an adapter whose target_modules and weights disagree, or that was trained on another base.


@pytest.fixture
def lora_of(tiny_llama_dir, tmp_path):
    """Save a q_proj/v_proj LoRA for the tiny Llama; optionally record a base fingerprint as selfsim does."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    def make(name: str, *, base_fingerprint: str | None = None):
        torch.manual_seed(0)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
                               LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
        out = tmp_path / name
        model.save_pretrained(out)
        if base_fingerprint is not None:
            (out / "finetune.json").write_text(json.dumps({"kind": "lora", "base_fingerprint": base_fingerprint}))
        return out

    return make


def _set_targets(adapter, targets):
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["target_modules"] = targets
    (adapter / "adapter_config.json").write_text(json.dumps(config))


def test_adapter_weights_outside_its_target_modules_are_refused(tiny_llama_dir, lora_of):
    adapter = lora_of("a")
    _set_targets(adapter, ["q_proj"])  # its v_proj weights would be dropped silently
    with pytest.raises(SelfsimError, match=r"holds weights for model\.layers\.0\.self_attn\.v_proj \(2 module\(s\) in all\), "
                                           r"which its target_modules \['q_proj'\] do not name"):
        load_subject(str(tiny_llama_dir), adapter=adapter)
    _set_targets(adapter, ["q_proj", "v_proj", "k_proj"])  # k_proj would get fresh zero LoRA
    with pytest.raises(SelfsimError, match=r"targets model\.layers\.0\.self_attn\.k_proj .* holds no weights for it"):
        load_subject(str(tiny_llama_dir), adapter=adapter)


def test_adapter_trained_on_another_base_of_the_same_shape_is_refused(tiny_llama_dir, tiny_llama, lora_of, tmp_path):
    from conftest import save_tiny_llama

    other = save_tiny_llama(tmp_path / "other", seed=1)
    adapter = lora_of("a", base_fingerprint=tiny_llama.fingerprint)
    assert load_subject(str(tiny_llama_dir), adapter=adapter).adapter == adapter
    with pytest.raises(SelfsimError, match=rf"was trained on another base model .*{tiny_llama.fingerprint}.*not on {other}"):
        load_subject(str(other), adapter=adapter)


def test_foreign_adapter_without_fingerprint_loads_with_one_warning(tiny_llama_dir, lora_of, capsys):
    adapter = lora_of("a")
    capsys.readouterr()
    subject = load_subject(str(tiny_llama_dir), adapter=adapter)
    assert subject.adapter == adapter
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [f"selfsim: warning: adapter {adapter} records no base-model fingerprint (not trained by selfsim); "
                        f"cannot check that it was trained on {tiny_llama_dir}"]
