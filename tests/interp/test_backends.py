"""The nnsight and TransformerLens backends agree with the plain-hooks baseline."""

from __future__ import annotations

import pytest
import torch

from selfsim.errors import SelfsimError
from selfsim.interp.tracing import HookTracer, Patch, encode, get_tracer
from selfsim.models import load_subject

from toy_tiny import toy_checkpoint

TEXTS = ["<user> fox gnu cat owl <assistant>", "<user> bee <assistant>"]
BACKENDS = ["nnsight", "tlens"]
TOL = 1e-4


def fresh(path) -> object:
    """A new subject per backend: the tlens bridge rewraps the model it boots on."""
    return load_subject(str(path), attn_implementation="eager")


def reads_and_patches(subject):
    batch = encode(subject, TEXTS)
    d = subject.hidden_size
    sites = [subject.site(layer, c) for layer in range(subject.n_layers) for c in ("resid", "attn", "mlp")]
    gen = torch.Generator().manual_seed(0)
    patches = [
        Patch(subject.site(0, "attn"), [0, 1], [3, batch.width - 1], torch.randn(2, d, generator=gen)),
        Patch(subject.site(1, "resid"), [1], [batch.width - 2], torch.randn(1, d, generator=gen)),
        Patch(subject.site(0, "mlp"), [0], [batch.width - 1], torch.randn(1, d, generator=gen)),
    ]
    return batch, sites, patches


def assert_agree(subject, backend):
    batch, sites, patches = reads_and_patches(subject)
    with torch.no_grad():
        expected = [HookTracer(subject).run(batch, read=sites, patches=p) for p in ([], patches)]
        tracer = get_tracer(subject, backend)
        got = [tracer.run(batch, read=sites, patches=p) for p in ([], patches)]
        last = tracer.run(batch, patches=patches, last_only=True).logits
    for want, have in zip(expected, got):
        assert (want.logits - have.logits).abs().max() < TOL
        for site in sites:
            assert (want.activations[site] - have.activations[site]).abs().max() < TOL, site
    assert last.shape[1] == 1 and (last[:, -1] - expected[1].logits[:, -1]).abs().max() < TOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_matches_hooks_on_tiny_llama(tiny_llama_dir, backend):
    assert_agree(fresh(tiny_llama_dir), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_patching_full_layer_output_reproduces_donor_logits(tiny_llama_dir, backend):
    subject = fresh(tiny_llama_dir)
    donor = encode(subject, ["<user> fox gnu cat owl <assistant>"])
    recipient = encode(subject, ["<user> bee yak red blue <assistant>"])
    tracer = get_tracer(subject, backend)
    with torch.no_grad():
        cached = tracer.run(donor, read=["model.layers.0"]).activations["model.layers.0"][0]
        positions = torch.arange(donor.width)
        patch = Patch("model.layers.0", torch.zeros_like(positions), positions, cached)
        patched = tracer.run(recipient, patches=[patch]).logits
        assert (patched - tracer.run(donor).logits).abs().max() < 1e-6
        assert (patched - tracer.run(recipient).logits).abs().max() > 1e-3


def test_backends_follow_a_lora_adapter(tiny_llama_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(
        load_subject(str(tiny_llama_dir)).model, LoraConfig(r=2, target_modules=["q_proj", "down_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    for backend in BACKENDS:
        assert_agree(load_subject(str(tiny_llama_dir), adapter=tmp_path / "adapter", attn_implementation="eager"), backend)


def test_nnsight_on_a_device_mapped_model(tiny_llama_dir):
    layers = {f"model.layers.{i}": "cpu" for i in range(2)}
    subject = load_subject(
        str(tiny_llama_dir), attn_implementation="eager",
        device_map={"model.embed_tokens": "cpu", **layers, "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"},
    )
    assert_agree(subject, "nnsight")


def test_backend_errors_are_clear(tiny_llama_dir):
    subject = fresh(tiny_llama_dir)
    batch = encode(subject, TEXTS)
    with pytest.raises(SelfsimError, match="tlens backend hooks layer outputs only"):
        get_tracer(subject, "tlens").run(batch, read=["model.norm"])
    with pytest.raises(SelfsimError, match="load the subject again"):
        get_tracer(subject, "nnsight")
    with pytest.raises(SelfsimError, match="token position out of range"):
        get_tracer(fresh(tiny_llama_dir), "nnsight").run(batch, patches=[Patch("model.layers.0", [0], [99], torch.zeros(1, 64))])


@pytest.mark.skipif(toy_checkpoint() is None, reason="toy-m1 is not built (checkpoints/toy-m1 missing)")
@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_matches_hooks_on_toy_m1(backend):
    assert_agree(load_subject("toy-m1", attn_implementation="eager"), backend)
