"""Batched decoding: greedy equals one prompt at a time, seeded samples, budgets, EOS, truncation."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from selfsim.budget import TOY_MAX_NEW_TOKENS
from selfsim.errors import SelfsimError
from selfsim.generation import (
    GREEDY,
    GenerationConfig,
    Request,
    _choose,
    encode_prompt,
    generate_batch,
)
from selfsim.models import load_subject
from selfsim.tasks import token_budget

from conftest import save_tiny_llama

WORDS = "fox gnu cat owl bee yak red blue".split()


def save_lively_llama(out: Path) -> Path:
    """A tiny random Llama whose layer weights are scaled up, so greedy answers depend on the prompt.

    (At the default init the layers are near identity and the model copies its last input token.)
    """
    from transformers import AutoModelForCausalLM

    save_tiny_llama(out, seed=1)
    model = AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        for param in model.model.layers.parameters():
            if param.dim() == 2:
                param.mul_(10)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def lively_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_lively_llama(tmp_path_factory.mktemp("lively_llama"))


@pytest.fixture(scope="session")
def lively(lively_dir: Path):
    return load_subject(str(lively_dir))


def animal_prompts(n: int, seed: int = 0, max_words: int = 12) -> list[str]:
    """`n` distinct toy prompts of 1..max_words random words (varied lengths, so batches need padding)."""
    rng = random.Random(seed)
    prompts: dict[str, None] = {}
    while len(prompts) < n:
        prompts["next animals : " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, max_words)))] = None
    return list(prompts)


def requests(subject, n: int, budgets=(6,), **kwargs) -> list[Request]:
    texts = [subject.render_chat([{"role": "user", "content": t}]) for t in animal_prompts(n)]
    return [
        Request(str(i), encode_prompt(subject, t, budgets[i % len(budgets)])[0], max_new_tokens=budgets[i % len(budgets)], **kwargs)
        for i, t in enumerate(texts)
    ]


def one_at_a_time(subject, request: Request) -> tuple[int, ...]:
    """Reference greedy decoding: HF `generate` on the single unpadded prompt."""
    ids = torch.tensor([request.ids])
    out = subject.model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=request.max_new_tokens, do_sample=False,
        eos_token_id=subject.tokenizer.eos_token_id, pad_token_id=subject.tokenizer.pad_token_id,
    )
    return tuple(out[0, ids.shape[1]:].tolist())


@pytest.fixture(scope="module")
def greedy_reference(lively) -> tuple[list[Request], list[tuple[int, ...]]]:
    reqs = requests(lively, 16, budgets=(6, 2, 9))
    return reqs, [one_at_a_time(lively, r) for r in reqs]


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_greedy_batched_equals_one_at_a_time(lively, greedy_reference, batch_size):
    reqs, reference = greedy_reference
    got = [g for start in range(0, len(reqs), batch_size) for g in generate_batch(lively, reqs[start : start + batch_size])]
    assert [g.tokens for g in got] == reference
    assert len({g.tokens for g in got}) > 8, "the fixture model should answer different prompts differently"
    assert [len(g.tokens) for g in got] == [r.max_new_tokens for r in reqs]
    assert all(g.finish == "length" for g in got)


def test_eager_and_sdpa_agree(lively_dir):
    reqs = None
    outs = []
    for attn in ("eager", "sdpa"):
        subject = load_subject(str(lively_dir), attn_implementation=attn)
        reqs = reqs or requests(subject, 8)
        outs.append([g.tokens for g in generate_batch(subject, reqs)])
    assert outs[0] == outs[1]


def test_samples_depend_on_seed_prompt_and_index_only(lively):
    reqs = [
        Request(r.key, r.ids, sample=i, max_new_tokens=5, temperature=1.0, seed=7)
        for r in requests(lively, 5) for i in range(3)
    ]
    together = generate_batch(lively, reqs)
    alone = [generate_batch(lively, [r])[0] for r in reversed(reqs)][::-1]
    assert together == alone
    assert len({g.tokens for g in together}) > 10
    reseeded = generate_batch(lively, [Request(r.key, r.ids, r.sample, 5, 1.0, seed=8) for r in reqs])
    assert [g.tokens for g in reseeded] != [g.tokens for g in together]


def test_greedy_and_sampled_rows_share_a_batch(lively):
    base = requests(lively, 4)
    mixed = base[:2] + [Request(r.key, r.ids, 0, r.max_new_tokens, 1.0, 3) for r in base[2:]]
    got = generate_batch(lively, mixed)
    assert [g.tokens for g in got[:2]] == [one_at_a_time(lively, r) for r in base[:2]]
    assert got[2:] == [generate_batch(lively, [r])[0] for r in mixed[2:]]


def test_inverse_cdf_sampling_follows_the_softmax():
    probs = torch.tensor([0.6, 0.3, 0.1, 0.0])
    logits = probs.clamp(min=1e-30).log().expand(4000, 4).clone()
    generators = [torch.Generator().manual_seed(i) for i in range(4000)]
    drawn = _choose(logits, torch.ones(4000), generators)
    freq = torch.bincount(drawn, minlength=4).float() / 4000
    assert torch.allclose(freq, probs, atol=0.03)
    assert freq[3] == 0
    cold = _choose(logits[:2], torch.tensor([0.0, 0.0]), [None, None])
    assert cold.tolist() == [0, 0]


def test_stops_at_eos_and_strips_it(lively, monkeypatch):
    reqs = requests(lively, 6, budgets=(8,))
    free = generate_batch(lively, reqs)
    stop = free[0].tokens[2]
    monkeypatch.setattr("selfsim.generation.stop_ids", lambda subject: {stop})
    stopped = generate_batch(lively, reqs)
    for before, after in zip(free, stopped):
        if stop in before.tokens:
            assert after.tokens == before.tokens[: before.tokens.index(stop)]
            assert after.finish == "eos"
        else:
            assert after == before
    assert stopped[0].finish == "eos" and len(stopped[0].tokens) == 2


def test_long_prompt_is_cut_from_the_left(lively):
    n_ctx = lively.config.max_position_embeddings
    text = lively.render_chat([{"role": "user", "content": " ".join(["fox"] * (n_ctx + 50)) + " gnu"}])
    ids, cut = encode_prompt(lively, text, 8)
    assert cut and len(ids) == n_ctx - 8
    full = lively.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == tuple(full[-len(ids):]) and "gnu" in lively.tokenizer.convert_ids_to_tokens(list(ids[-4:]))
    assert len(generate_batch(lively, [Request("long", ids, max_new_tokens=8)])[0].tokens) == 8
    assert encode_prompt(lively, "fox gnu", 8) == (tuple(lively.tokenizer("fox gnu", add_special_tokens=False)["input_ids"]), False)


def test_token_budgets_and_config_checks():
    assert token_budget("animals_long", "paper") == 16
    assert token_budget("mmlu", "paper") == 4
    assert token_budget("colors_long", "toy") == TOY_MAX_NEW_TOKENS
    assert token_budget("mmlu", "paper", 3) == 3
    assert token_budget("something_new", "paper") == 32
    assert GREEDY == -1
    for bad, message in [
        (GenerationConfig(samples=-1), "samples must be >= 0"),
        (GenerationConfig(samples=2, temperature=0), "sampling needs a temperature > 0"),
        (GenerationConfig(max_new_tokens=0), "max_new_tokens must be >= 1"),
        (GenerationConfig(batch_size=0), "batch_size must be >= 1"),
    ]:
        with pytest.raises(SelfsimError, match=message):
            bad.check()
