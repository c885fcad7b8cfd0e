import json
import math
import random

import pytest
import torch

from selfsim.errors import SelfsimError
from selfsim.interp import tracing
from selfsim.interp.cache import (
    ActivationCache,
    CacheConfig,
    cache_activations,
    forward_bytes,
    plan_batches,
    resolve_positions,
)
from selfsim.interp.tracing import HookTracer, encode

WORDS = ["fox", "gnu", "cat", "owl", "bee", "yak", "red", "blue"]
SITES = [f"model.layers.{i}{c}" for i in range(2) for c in ("", ".self_attn", ".mlp")]


def prompts(n: int, words: int = 18, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"<user> {' '.join(rng.choice(WORDS) for _ in range(words))} <assistant>" for _ in range(n)]


def batches(subject, texts, cache, config):
    """The forward batches the cache ran: per shard, as planned under the budget's headroom."""
    per_shard, widths = cache.manifest["rows_per_shard"], cache.widths
    headroom = int(config.budget_bytes * config.forward_fraction)
    out = []
    for start in range(0, len(texts), per_shard):
        chunk = texts[start : start + per_shard]
        lengths = [len(encode(subject, [t]).input_ids[0]) for t in chunk]
        cost = lambda rows, width: forward_bytes(subject, widths, rows, width)  # noqa: E731
        out += [(start + b0, start + b1) for b0, b1 in plan_batches(lengths, config.batch_size, headroom, cost)]
    return out


def reference(subject, texts, cache, config, positions):
    """Activations computed directly with the same batches, cast to the storage dtype."""
    out = {s: [] for s in config.sites}
    tracer = HookTracer(subject)
    for b0, b1 in batches(subject, texts, cache, config):
        acts = tracer.run(encode(subject, texts[b0:b1]), read=config.sites).activations
        for s in config.sites:
            out[s].append(acts[s][:, positions].to(torch.float16))
    return {s: torch.cat(v) for s, v in out.items()}


@pytest.fixture(scope="module")
def big(tiny_llama, tmp_path_factory):
    """10 MiB of float16 activations cached under a 1 MiB budget."""
    positions = list(range(-16, 0))
    row_bytes = len(positions) * len(SITES) * 64 * 2
    n = math.ceil(10 * 2**20 / row_bytes)
    texts = prompts(n)
    config = CacheConfig(sites=SITES, positions=positions, budget_bytes=2**20, batch_size=21)
    out = tmp_path_factory.mktemp("cache")
    cache = cache_activations(tiny_llama, texts, out, config, progress=False)
    return cache, texts, config


def test_shards_respect_the_budget_and_round_trip_exactly(tiny_llama, big):
    cache, texts, config = big
    assert cache.n_rows * cache.manifest["row_bytes"] >= 10 * 2**20
    per_shard = cache.manifest["rows_per_shard"]
    assert per_shard == int(config.budget_bytes * config.shard_fraction) // cache.manifest["row_bytes"]
    assert len(cache.shards) == math.ceil(len(texts) / per_shard) >= 20
    assert all((cache.path / s["file"]).stat().st_size <= config.budget_bytes * config.shard_fraction + 4096 for s in cache.shards)
    ref = reference(tiny_llama, texts, cache, config, list(range(-16, 0)))
    for site in SITES:
        assert torch.equal(cache.load(site), ref[site])
    assert torch.equal(cache.load(SITES[0], position=-1), ref[SITES[0]][:, -1])
    assert torch.equal(cache.memmap(SITES[1]), ref[SITES[1]])
    from safetensors.torch import load_file

    first = load_file(cache.path / cache.shards[0]["file"])
    assert first.keys() == set(SITES) | {"positions", "next_token"}
    assert all(torch.equal(first[k], v) for k, v in next(cache.iter_shards())[1].items())
    width = encode(tiny_llama, texts[:1]).width
    assert torch.equal(cache.load("positions"), torch.arange(width - 16, width).expand(len(texts), 16))


def test_next_token_is_the_models_argmax(tiny_llama, big):
    cache, texts, _ = big
    logits = HookTracer(tiny_llama).run(encode(tiny_llama, texts[:5]), last_only=True).logits
    assert torch.equal(cache.load("next_token")[:5], logits[:, -1].argmax(-1))


def test_resume_skips_completed_shards(tiny_llama, tmp_path, monkeypatch):
    texts = prompts(60, seed=1)
    config = CacheConfig(sites=SITES[:2], positions=[-1, 2], budget_bytes=2**19, shard_fraction=0.0125, forward_fraction=0.9, batch_size=4)
    full = cache_activations(tiny_llama, texts, tmp_path / "full", config, progress=False)
    calls = {"n": 0}
    real_run = tracing.HookTracer.run

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(tracing.HookTracer, "run", flaky)
    with pytest.raises(KeyboardInterrupt):
        cache_activations(tiny_llama, texts, tmp_path / "part", config, progress=False)
    part = ActivationCache(tmp_path / "part")
    planned = batches(tiny_llama, texts, full, config)
    per_shard = part.manifest["rows_per_shard"]
    shard_ends = {min(len(texts), s + per_shard) for s in range(0, len(texts), per_shard)}
    assert len(part.shards) == sum(b1 in shard_ends for _, b1 in planned[:7]) > 0  # 1 width probe + 7 batches ran
    assert not part.complete
    with pytest.raises(SelfsimError, match="incomplete"):
        part.load(SITES[0])
    calls["n"] = -1000
    resumed = cache_activations(tiny_llama, texts, tmp_path / "part", config, progress=False)
    assert calls["n"] + 1000 == sum(b0 >= len(part.shards) * per_shard for b0, _ in planned)
    for site in config.sites:
        assert torch.equal(resumed.load(site), full.load(site))
    assert not list((tmp_path / "part").glob(".*.tmp"))


def test_bad_requests_are_clear(tiny_llama, tmp_path):
    texts = prompts(4)
    with pytest.raises(SelfsimError, match="cannot hold one row"):
        cache_activations(tiny_llama, texts, tmp_path / "a", CacheConfig(sites=SITES, budget_bytes=100), progress=False)
    with pytest.raises(SelfsimError, match="out of range"):
        resolve_positions([3, 5], [[-4], [0]])
    with pytest.raises(SelfsimError, match="no module"):
        cache_activations(tiny_llama, texts, tmp_path / "b", CacheConfig(sites=["model.layers.9"]), progress=False)
    cache_activations(tiny_llama, texts, tmp_path / "c", CacheConfig(sites=SITES[:1]), progress=False)
    with pytest.raises(SelfsimError, match="different positions"):
        cache_activations(tiny_llama, texts, tmp_path / "c", CacheConfig(sites=SITES[:1], positions=[0]), progress=False)
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["row_ids"] == ["0", "1", "2", "3"] and manifest["dtype"] == "float16"


def test_cache_command_caches_both_runs(tmp_path, capsys):
    from selfsim.cli import main
    from selfsim.interp.cache import PairCache

    from toy_tiny import save_toy_tiny

    model = save_toy_tiny(tmp_path / "model")
    code = main(["cache", "--model", str(model), "--n", "12", "--components", "resid,mlp", "--layers", "1",
                 "--budget-mib", "1", "--no-progress", "--out", str(tmp_path / "cache")])
    assert code == 0
    runs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["run"] for r in runs] == ["object", "hypothetical"] and runs[0]["rows"] == 12
    pair = PairCache.open(tmp_path / "cache")
    assert pair.object.sites == ["model.layers.1", "model.layers.1.mlp"]
    assert pair.hypothetical.load("model.layers.1").shape == (12, 2, 64)
    positions = pair.hypothetical.load("positions")
    assert (positions[:, 0] < positions[:, 1]).all()  # the end of P's copy comes before the final token


def test_bfloat16_storage_round_trips_through_both_readers(tiny_llama, tmp_path):
    texts = prompts(6, seed=2)
    config = CacheConfig(sites=SITES[:1], positions=[0, -1], dtype="bfloat16", budget_bytes=2**14, shard_fraction=0.05)
    cache = cache_activations(tiny_llama, texts, tmp_path, config, row_ids=[f"r{i}" for i in range(6)], progress=False)
    assert len(cache.shards) == 3 and cache.row_ids == [f"r{i}" for i in range(6)]
    assert batches(tiny_llama, texts, cache, config) == [(i, i + 1) for i in range(6)]
    acts = [HookTracer(tiny_llama).run(encode(tiny_llama, [t]), read=SITES[:1]).activations[SITES[0]] for t in texts]
    loaded = cache.load(SITES[0])
    assert loaded.dtype == torch.bfloat16 and torch.equal(loaded, torch.cat(acts)[:, [0, -1]].to(torch.bfloat16))
    assert torch.equal(cache.memmap(SITES[0]), loaded)


@pytest.mark.parametrize("backend", ["nnsight", "tlens"])
def test_other_tracing_backends_cache_the_same_activations(tiny_llama, tmp_path, backend):
    texts = prompts(3, words=5, seed=3) + ["<user> bee <assistant>"]
    config = CacheConfig(sites=["model.layers.0", "model.layers.1.mlp"], positions=[0, -1], dtype="float32")
    hooks = cache_activations(tiny_llama, texts, tmp_path / "hooks", config, progress=False)
    other = cache_activations(tiny_llama, texts, tmp_path / backend, CacheConfig(**{**config.__dict__, "backend": backend}), progress=False)
    for key in config.sites:
        assert torch.allclose(other.load(key), hooks.load(key), atol=1e-6)
    assert torch.equal(other.load("next_token"), hooks.load("next_token"))
