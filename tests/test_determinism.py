"""Same seed, same bytes: two runs of collect, finetune, cache and sae in separate processes write identical files.

Separate processes matter: Python's string hashing (set order) and the Rust writers' hash maps
(safetensors metadata) are seeded per process, so a same-process rerun would hide their order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import save_tiny_llama

RUN = r"""
import sys
from pathlib import Path

import torch

from selfsim.behavior import collect
from selfsim.examples import Example
from selfsim.finetune import FinetuneConfig, build_training_set, train
from selfsim.interp.cache import CacheConfig, cache_activations
from selfsim.interp.sae import SAEConfig, train_sae
from selfsim.models import load_subject

torch.set_num_threads(1)
model, out = sys.argv[1], Path(sys.argv[2])
words = ["fox gnu cat", "owl bee yak", "cat owl fox", "gnu yak bee", "bee fox owl", "yak cat gnu"]
examples = [
    Example("animals_long", prop, [{"role": "user", "content": f"what is the next animals : {w}"}],
            [{"role": "user", "content": f"previously you were asked : {w} ? what is the {prop} ?"}], split="train", dialect="toy")
    for w in words for prop in ("first_word", "second_character")
]
subject = load_subject(model)
collect(subject, examples, out_dir=out / "collect", samples=2, temperature=1.0, max_new_tokens=3, seed=7, progress=False)
labels = {e.object_id: {"first_word": e.object_messages[0]["content"].split()[-3],
                        "second_character": e.object_messages[0]["content"].split()[-3][1]} for e in examples}
items = build_training_set(examples, labels)
config = FinetuneConfig(steps=3, batch_size=4, lr=1e-2, save_every=1, seed=5)
train(load_subject(model), items, config, out / "finetune", progress=False)
texts = [subject.render_chat(e.object_messages) for e in examples]
sites = ["model.layers.0", "model.layers.1.mlp"]
cache = cache_activations(subject, texts, out / "cache", CacheConfig(sites=sites, positions=[-1, -2], budget_bytes=2**12),
                          progress=False)
assert len(cache.shards) > 1
acts = cache.load("model.layers.0")
acts = acts.reshape(-1, acts.shape[-1]).float()
g = torch.Generator().manual_seed(0)
batches = (acts[torch.randint(0, len(acts), (16,), generator=g)] for _ in iter(int, 1))
train_sae(batches, acts.shape[-1], out / "sae", SAEConfig(d_sae=32, k=4, steps=20, batch_size=16, lr=1e-3),
          hook_name="model.layers.0", model_name="tiny")
"""

TIMING = {"finetune.json": ("seconds",)}


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path, with timing fields dropped."""
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name in TIMING:
                obj = json.loads(data)
                for key in TIMING[path.name]:
                    obj.pop(key, None)
                data = json.dumps(obj, sort_keys=True).encode()
            files[str(path.relative_to(root))] = data
    return files


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny"))


def run(model: Path, out: Path, hash_seed: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": hash_seed,
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-c", RUN, str(model), str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_same_seed_runs_write_identical_files(tiny_dir: Path, tmp_path: Path) -> None:
    run(tiny_dir, tmp_path / "a", "1")
    run(tiny_dir, tmp_path / "b", "2")
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert a.keys() == b.keys()
    for part in ("collect/behavior.jsonl", "finetune/adapter_model.safetensors", "finetune/adapter_config.json",
                 "cache/manifest.json", "cache/shard-00001.safetensors", "sae/cfg.json"):
        assert part in a, sorted(a)
    assert [name for name in a if a[name] != b[name]] == []
    cfg = json.loads(a["sae/cfg.json"])
    assert list(cfg) == sorted(cfg)
    for name in ("cache/shard-00000.safetensors", "cache/shard-00001.safetensors", "sae/sae_weights.safetensors"):
        header = a[name][8 : 8 + int.from_bytes(a[name][:8], "little")]
        meta = json.loads(header).get("__metadata__", {})
        assert list(meta) == sorted(meta), name
