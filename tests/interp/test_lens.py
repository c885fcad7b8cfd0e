"""Logit lens: the last layer reproduces the model's logits; targets are ranked and scored."""

from __future__ import annotations

import torch

from selfsim.interp.lens import lens_figure, lens_logits, lens_study, logit_lens
from selfsim.interp.tracing import HookTracer, encode

from test_probes import toy_examples, toy_subjects  # noqa: F401  (toy_subjects is a fixture)

TEXTS = ["<user> fox gnu cat owl <assistant>", "<user> bee <assistant>", "<user> what is the answer ? <assistant>"]


def test_last_layer_lens_equals_the_models_logits(tiny_llama):
    batch = encode(tiny_llama, TEXTS)
    out = HookTracer(tiny_llama).run(batch, read=["model.layers.1"])
    lens = lens_logits(tiny_llama, out.activations["model.layers.1"])
    assert torch.allclose(lens, out.logits, atol=1e-5, rtol=0)
    real = out.logits[:, -1]
    res = logit_lens(tiny_llama, TEXTS, real.argmax(-1).tolist(), batch_size=2)
    assert res.layers == [0, 1] and res.ranks.shape == (3, 2)
    assert (res.ranks[:, 1] == 0).all() and torch.equal(res.top[:, 1], real.argmax(-1))
    assert torch.allclose(res.probs[:, 1], real.softmax(-1).max(-1).values, atol=1e-6)


def test_ranks_and_probabilities_agree_with_a_direct_computation(tiny_llama):
    batch = encode(tiny_llama, TEXTS)
    h0 = HookTracer(tiny_llama).run(batch, read=["model.layers.0"]).activations["model.layers.0"][:, -1]
    logits = tiny_llama.base.lm_head(tiny_llama.base.model.norm(h0))
    targets = [5, 7, 11]
    res = logit_lens(tiny_llama, TEXTS, targets, layers=[0])
    for i, t in enumerate(targets):
        assert res.ranks[i, 0] == int((logits[i] > logits[i, t]).sum())
        assert torch.isclose(res.probs[i, 0], logits[i].softmax(-1)[t], atol=1e-6)


def test_lens_study_reports_every_subject_kind_and_layer(tiny_llama, toy_subjects):
    results = lens_study(toy_subjects, toy_examples(12))
    assert set(results["subject"]) == {"m1", "m2"} and set(results["kind"]) == {"object", "hypothetical"}
    assert set(results["layer"]) == {0, 1, 2}
    last = results[(results["kind"] == "object") & (results["labels"] == "own") & (results["layer"] == 2)]
    assert (last["top1"] == 1.0).all()  # the object run's last layer is the model's own answer
    m1 = results[(results["subject"] == "m1") & (results["layer"] == 2)].set_index(["kind", "labels"])["top1"]
    assert m1[("object", "m1")] == 1.0
    assert len(lens_figure(results).data) > 0


def test_subjects_may_be_a_list(toy_subjects):
    results = lens_study([toy_subjects["m1"]], toy_examples(4), layers=[2])
    assert set(results["subject"]) == {toy_subjects["m1"].name} and set(results["layer"]) == {2}
