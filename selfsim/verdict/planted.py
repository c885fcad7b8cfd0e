"""Planted ground truth: tiny Llamas whose self-prediction mechanism is known, and has a place, before any test runs.

The world: an object prompt P lists four words, one of them a KEY among animal distractors,
"which colors : owl peru cat bee ?". The object answer is g(key), a colour; g is a random balanced
MANY-TO-ONE map (48 keys -> 6 colours) stored only in the weights. The property asked in H(P, f) is
first_character: its values (r, b, g) are letters, never the answer token, two colours each. A
neutral prompt quotes P and asks about the visible key ("what is the first character of : P ?" ->
the key's first letter): it asks nothing about the model and receives the transplant control.

Six-layer models (`LAYERS`), hidden 64, separate output head; the token embeddings are random and
FROZEN, the keys' inside an 8-dimensional subspace, so attention alone cannot hold g. Stage 0 (one
per seed, shared by all its models): object prompts only, the five MLPs other than the g-block
(`G_LAYER`'s MLP) switched off for good (zero output weights, frozen); two extra losses pin g to
the g-block (block zeroed -> uniform over colours; block output at P's tokens swapped in from another
prompt -> that prompt's colour, so the answer is read off g at the key's own position). Stage 1: layers 0..G_LAYER frozen, the layers above, final norm and head
train on object and neutral prompts replayed plus, per kind:

- `self` (S'): hypotheticals about HALF of each colour's keys -> f(g(key)), the g-block's output
  PAST P's copy swapped in from another prompt, so the answer is read off g at the copy. Held-out
  keys' hypothetical accuracy (chance 1/3) proves the reuse of g.
- `lookup_swap` (N'): hypotheticals about all keys -> f(g(key)) with the g-block's output swapped in
  from another prompt at EVERY position: a table from the input's identity, blind to g.
- `lookup_table` (N''): the same table, learned while the g-block's output on hypotheticals is
  replaced by its batch mean plus Gaussian noise of its spread (not the test's swap): the table
  lives in layers above the g-block by construction.
- `random_map` (U'): hypotheticals about all keys -> a random balanced key -> letter map, g live.
- `untrained`: no hypotheticals at all (the untrained control of every test).
- `shared_input` (the old 3-layer S of issue 12): trainable tied embeddings, object, neutral and
  half the keys' hypotheticals trained together; its reuse lives in the keys' embeddings, upstream
  of every component (docs/verdict.md states its expected verdict).

Every sequence is trained as prompt -> answer -> </s>, so greedy generation stops after the answer.
Everything is seeded (same config -> same weights on the same machine and thread count); built
models are cached under `cache_dir()` keyed by the config's hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfsim.errors import SelfsimError
from selfsim.examples import Example
from selfsim.toy.language import FAMILIES, hypothetical_prompt, property_question

if TYPE_CHECKING:
    import torch

    from selfsim.models import Subject

KINDS = ("self", "lookup_swap", "lookup_table", "random_map", "untrained", "shared_input")
# What the verdict must call each planted kind (shared_input: see docs/verdict.md, declared before measuring).
EXPECTED = {"self": "supported", "lookup_swap": "not supported", "lookup_table": "not supported",
            "random_map": "not supported"}
ANSWERS: tuple[str, ...] = ("red", "rust", "blue", "brown", "gray", "gold")
LETTERS: tuple[str, ...] = ("r", "b", "g")
PROPERTY = "first_character"
KEY_POOL: tuple[str, ...] = FAMILIES["countries"] + FAMILIES["english_words"]
DISTRACTORS: tuple[str, ...] = FAMILIES["animals"]
N_WORDS = 4
LAYERS = 6
G_LAYER = 2
G_COMPONENT = "mlp"
KEY_DIMS = 8
# Bump when training changes, so cached models from older code are not reused.
VERSION = 1


@dataclass(frozen=True)
class PlantedConfig:
    """One planted model: kind, seed, world size, architecture and the two training stages."""

    kind: str
    seed: int = 0
    n_keys: int = 48
    hidden: int = 64
    stage0_steps: int = 400
    stage1_steps: int = 400
    batch: int = 64
    lr: float = 3e-3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SelfsimError(f"unknown planted kind {self.kind!r}; valid kinds are {', '.join(KINDS)}")
        if not len(ANSWERS) * 2 <= self.n_keys <= len(KEY_POOL) or self.n_keys % len(ANSWERS):
            raise SelfsimError(
                f"n_keys must be a multiple of {len(ANSWERS)} between {2 * len(ANSWERS)} and {len(KEY_POOL)}, got {self.n_keys}"
            )
        if self.stage0_steps < 1 or self.stage1_steps < 1 or self.batch < 2:
            raise SelfsimError("stage0_steps and stage1_steps must be >= 1 and batch >= 2")

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict."""
        return asdict(self)

    def digest(self, stage0: bool = False) -> str:
        """Hash of what determines the weights (stage 0: the fields the shared stage depends on)."""
        d = self.to_dict() | {"version": VERSION}
        if stage0:
            d = {k: d[k] for k in ("seed", "n_keys", "hidden", "stage0_steps", "batch", "lr", "version")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class World:
    """The keys, the planted map g (key -> colour), the keys S' is asked about, U''s key -> letter map."""

    keys: tuple[str, ...]
    answer: dict[str, str]
    trained: frozenset[str]
    letter: dict[str, str]

    @property
    def held_out(self) -> tuple[str, ...]:
        return tuple(k for k in self.keys if k not in self.trained)


def world(n_keys: int = 48, seed: int = 0) -> World:
    """The seeded world: balanced random many-to-one g, half of each colour's keys trained, a random letter map."""
    rng = random.Random(f"planted-world-{seed}")
    keys = tuple(rng.sample(KEY_POOL, n_keys))
    per = n_keys // len(ANSWERS)
    answer = {k: ANSWERS[i // per] for i, k in enumerate(keys)}
    trained = {k for i, k in enumerate(keys) if (i % per) < per // 2}
    letters = [LETTERS[i % len(LETTERS)] for i in range(n_keys)]
    rng.shuffle(letters)
    return World(keys, answer, frozenset(trained), dict(zip(keys, letters)))


def prop_value(word: str) -> str:
    """f: the first character of a word."""
    return word[0]


def object_content(key: str, rng: random.Random) -> str:
    """P's user content: the key at a random one of four places among animal distractors."""
    words = rng.sample(DISTRACTORS, N_WORDS - 1)
    words.insert(rng.randrange(N_WORDS), key)
    return f"which colors : {' '.join(words)} ?"


def neutral_content(content: str) -> str:
    """The neutral prompt quoting P: a question about the visible key, not about the model."""
    return property_question(PROPERTY, content)


def examples(w: World, per_key: int, seed: int) -> list[Example]:
    """`per_key` object/hypothetical pairs for every key (toy dialect); meta holds key and g(key)."""
    rng = random.Random(f"planted-examples-{seed}")
    out = []
    for key in w.keys:
        for _ in range(per_key):
            content = object_content(key, rng)
            out.append(
                Example(
                    task="planted", property=PROPERTY, dialect="toy",
                    object_messages=[{"role": "user", "content": content}],
                    hypothetical_messages=[{"role": "user", "content": hypothetical_prompt(content, PROPERTY)}],
                    meta={"key": key, "answer": w.answer[key], "trained": key in w.trained},
                )
            )
    return out


# ----------------------------------------------------------------------------------------------- training data


def _text(kind: str, content: str) -> str:
    from selfsim.toy.tokenizer import render_chat

    user = {"object": content, "hypothetical": hypothetical_prompt(content, PROPERTY),
            "neutral": neutral_content(content)}[kind]
    return render_chat([{"role": "user", "content": user}], add_generation_prompt=True)


def target(kind: str, w: World, key: str, model_kind: str) -> str:
    """The trained answer of a prompt kind about `key` for a model kind."""
    if kind == "object":
        return w.answer[key]
    if kind == "neutral":
        return prop_value(key)
    return w.letter[key] if model_kind == "random_map" else prop_value(w.answer[key])


def _batch(tokenizer: Any, kind: str, w: World, keys: tuple[str, ...], model_kind: str, rng: random.Random, n: int):
    """Token ids [n, T+1] of prompt + answer (all prompts of one kind have one length) and the answer ids."""
    import torch

    picked = [rng.choice(keys) for _ in range(n)]
    texts = [_text(kind, object_content(k, rng)) for k in picked]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    if len({len(i) for i in ids}) != 1:
        raise SelfsimError("planted prompts of one kind must tokenize to one length")
    answers = tokenizer.convert_tokens_to_ids([target(kind, w, k, model_kind) for k in picked])
    x = torch.tensor([i + [a] for i, a in zip(ids, answers)])
    return x, torch.tensor(answers), picked


def copy_span(tokenizer: Any, kind: str) -> tuple[int, int]:
    """Token span [start, end) of P's copy in a prompt kind (fixed: every planted P has one length)."""
    probe = object_content(KEY_POOL[0], random.Random(0))
    text = _text(kind, probe)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    p_ids = tokenizer(probe, add_special_tokens=False)["input_ids"]
    for s in range(len(ids) - len(p_ids), -1, -1):
        if ids[s : s + len(p_ids)] == p_ids:
            return s, s + len(p_ids)
    raise SelfsimError(f"P's copy not found in the {kind} prompt")


@contextmanager
def g_output(model: Any, fn: Callable[[torch.Tensor], torch.Tensor] | None) -> Iterator[None]:
    """Rewrite the g-block's output with `fn` during the forward passes inside the block (None: untouched)."""
    if fn is None:
        yield
        return
    handle = model.model.layers[G_LAYER].mlp.register_forward_hook(lambda m, i, o: fn(o))
    try:
        yield
    finally:
        handle.remove()


def _seq_loss(model: Any, x: torch.Tensor, answers: torch.Tensor, eos: int) -> torch.Tensor:
    """Cross-entropy of the answer at the prompt's last position and of </s> after it."""
    import torch

    logits = model(input_ids=x, logits_to_keep=2).logits
    ce = torch.nn.functional.cross_entropy
    return ce(logits[:, 0], answers) + ce(logits[:, 1], torch.full_like(answers, eos))


def _derange(n: int, rng: random.Random) -> list[int]:
    """A permutation with no fixed point: every row receives from another row."""
    order = list(range(n))
    rng.shuffle(order)
    return [order[(order.index(i) + 1) % n] for i in range(n)]


def _swap(perm: list[int], start: int = 0, stop: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The g-block's output at positions [start, stop) replaced by another row's (donor = perm[row])."""

    def fn(out: torch.Tensor) -> torch.Tensor:
        new = out.clone()
        new[:, start:stop] = out[perm, start:stop]
        return new

    return fn


def _noise(gen: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """The g-block's output replaced by its batch mean plus Gaussian noise of its batch spread (no gradient)."""
    import torch

    def fn(out: torch.Tensor) -> torch.Tensor:
        o = out.detach()
        return o.mean(0, keepdim=True) + o.std(0, keepdim=True) * torch.randn(o.shape, generator=gen)

    return fn


# ----------------------------------------------------------------------------------------------------- building


def cache_dir() -> Path:
    """Where built planted models are kept: $SELFSIM_PLANTED_CACHE or ~/.cache/selfsim/planted."""
    return Path(os.environ.get("SELFSIM_PLANTED_CACHE", Path.home() / ".cache" / "selfsim" / "planted"))


def _new_model(config: PlantedConfig, tokenizer: Any) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden, intermediate_size=4 * config.hidden,
        num_hidden_layers=LAYERS, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, attn_implementation="eager",  # pyright: ignore[reportCallIssue]  # a PretrainedConfig kwarg
    )
    model = LlamaForCausalLM(llama)
    gen = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        emb = torch.randn(len(tokenizer), config.hidden, generator=gen)
        basis, _ = torch.linalg.qr(torch.randn(config.hidden, KEY_DIMS, generator=gen))
        key_ids = tokenizer.convert_tokens_to_ids(list(KEY_POOL))
        coef = torch.randn(len(key_ids), KEY_DIMS, generator=gen) * (config.hidden / KEY_DIMS) ** 0.5
        emb[key_ids] = coef @ basis.T
        weights: Any = model.get_input_embeddings().weight
        weights.copy_(emb)
        layers: Any = model.model.layers
        for i, layer in enumerate(layers):
            if i != G_LAYER:
                layer.mlp.down_proj.weight.zero_()
    return model


def _train(model: Any, config: PlantedConfig, trainable: Callable[[str], bool], steps: int,
           step: Callable[[random.Random], torch.Tensor], tag: str) -> None:
    import torch

    for name, p in model.named_parameters():
        p.requires_grad_(trainable(name))
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=0.01)
    rng = random.Random(f"planted-{tag}-{config.seed}")
    model.train()
    for _ in range(steps):
        loss = step(rng)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
    model.eval()


def _stage0(config: PlantedConfig, tokenizer: Any) -> Any:
    """The shared stage: g learnt into the g-block from object prompts only."""
    import torch

    model = _new_model(config, tokenizer)
    w = world(config.n_keys, config.seed)
    eos = tokenizer.eos_token_id
    colours = torch.tensor(tokenizer.convert_tokens_to_ids(list(ANSWERS)))

    def step(rng: random.Random) -> torch.Tensor:
        x, a, _ = _batch(tokenizer, "object", w, w.keys, "untrained", rng, config.batch)
        loss = _seq_loss(model, x, a, eos)
        with g_output(model, lambda o: o * 0):
            logp = model(input_ids=x[:, :-1], logits_to_keep=1).logits[:, -1].log_softmax(-1)
            loss = loss - logp[:, colours].mean()
        perm = _derange(len(a), rng)
        with g_output(model, _swap(perm)):
            loss = loss + _seq_loss(model, x, a[perm], eos)
        return loss

    def trainable(name: str) -> bool:
        return "embed_tokens" not in name and not (".mlp." in name and f"layers.{G_LAYER}." not in name)

    _train(model, config, trainable, config.stage0_steps, step, "stage0")
    return model


def _stage1(model: Any, config: PlantedConfig, tokenizer: Any) -> None:
    """The kind's own stage: layers above the g-block learn object and neutral replay plus its hypotheticals."""
    import torch

    w = world(config.n_keys, config.seed)
    eos = tokenizer.eos_token_id
    past_copy = copy_span(tokenizer, "hypothetical")[1]
    gen = torch.Generator().manual_seed(config.seed)
    kind = config.kind
    keys = tuple(sorted(w.trained)) if kind == "self" else w.keys

    def step(rng: random.Random) -> torch.Tensor:
        loss = torch.zeros(())
        for prompt in ("object", "neutral"):
            x, a, _ = _batch(tokenizer, prompt, w, w.keys, kind, rng, config.batch)
            loss = loss + _seq_loss(model, x, a, eos)
        if kind == "untrained":
            return loss
        x, a, _ = _batch(tokenizer, "hypothetical", w, keys, kind, rng, config.batch)
        fn = {"self": lambda: _swap(_derange(len(a), rng), past_copy), "lookup_swap": lambda: _swap(_derange(len(a), rng)),
              "lookup_table": lambda: _noise(gen), "random_map": lambda: None}[kind]()
        with g_output(model, fn):
            return loss + _seq_loss(model, x, a, eos)

    def trainable(name: str) -> bool:
        if name.startswith("lm_head") or name == "model.norm.weight":
            return True
        parts = name.split(".")
        return len(parts) > 2 and parts[1] == "layers" and int(parts[2]) > G_LAYER and not (
            ".mlp." in name and int(parts[2]) < G_LAYER)

    _train(model, config, trainable, config.stage1_steps, step, f"stage1-{kind}")


def _shared_input(config: PlantedConfig, tokenizer: Any) -> Any:
    """The old 3-layer S (issue 12): tied trainable embeddings, everything trained together."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden, intermediate_size=4 * config.hidden,
        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, attn_implementation="eager",  # pyright: ignore[reportCallIssue]  # a PretrainedConfig kwarg
    )
    model = LlamaForCausalLM(llama)
    w = world(config.n_keys, config.seed)
    eos = tokenizer.eos_token_id
    half = tuple(sorted(w.trained))

    def step(rng: random.Random) -> torch.Tensor:
        loss = torch.zeros(())
        for prompt, keys in (("object", w.keys), ("neutral", w.keys), ("hypothetical", half)):
            x, a, _ = _batch(tokenizer, prompt, w, keys, "self", rng, config.batch // 2)
            loss = loss + _seq_loss(model, x, a, eos)
        return loss

    _train(model, config, lambda name: True, config.stage1_steps, step, "shared-input")
    return model


def _tokenizer() -> Any:
    from selfsim.toy.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.padding_side = "left"
    return tokenizer


def _cached(path: Path, make: Callable[[], Any]) -> Any:
    """The model saved at `path`, else `make()` saved there atomically (safetensors)."""
    from transformers import LlamaForCausalLM

    from selfsim.io import atomic_dir

    if (path / "model.safetensors").exists():
        return LlamaForCausalLM.from_pretrained(str(path), use_safetensors=True).eval()
    model = make()
    with atomic_dir(path) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
    return model


def build(config: PlantedConfig, *, cache: bool = True) -> Subject:
    """The planted model as a Subject in eval mode (trained on CPU in about a minute, or read from the cache)."""
    import copy

    from selfsim.models import Subject

    tokenizer = _tokenizer()
    root = cache_dir()

    def make() -> Any:
        if config.kind == "shared_input":
            return _shared_input(config, tokenizer)
        base = (_cached(root / f"stage0-{config.digest(stage0=True)}", lambda: _stage0(config, tokenizer)) if cache
                else _stage0(config, tokenizer))
        model = copy.deepcopy(base)
        _stage1(model, config, tokenizer)
        return model

    model = _cached(root / f"{config.kind}-{config.digest()}", make) if cache else make()
    return Subject(
        name=f"planted-{config.kind}-s{config.seed}", path=Path("."), model=model, tokenizer=tokenizer,
        fingerprint=f"planted-{config.kind}-{config.digest()}", options={"planted": config.to_dict()},
    )


def save(subject: Subject, out: str | Path, w: World, *, per_key: int = 4, seed: int = 1) -> Path:
    """Write the model directory (safetensors + tokenizer) and `out/examples.jsonl`; return the examples' path."""
    from selfsim.io import atomic_dir, write_jsonl

    out = Path(out)
    with atomic_dir(out) as tmp:
        subject.base.save_pretrained(str(tmp), safe_serialization=True)
        subject.tokenizer.save_pretrained(str(tmp))
        write_jsonl(tmp / "examples.jsonl", [e.to_dict() for e in examples(w, per_key, seed)])
    return out / "examples.jsonl"


def config_for(kind: str, seed: int, **overrides: Any) -> PlantedConfig:
    """The standard config of a kind (shared_input: the old 3-layer recipe's batch)."""
    config = PlantedConfig(kind, seed, **overrides)
    return replace(config, batch=64) if kind == "shared_input" and "batch" not in overrides else config


# ----------------------------------------------------------------------------------------------- construction


def accuracy(subject: Subject, w: World, kind: str, keys: tuple[str, ...], *, model_kind: str = "self",
             n: int = 192, seed: int = 1, fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> float:
    """Greedy first-token accuracy of one prompt kind (object, hypothetical, neutral) on `keys` against its target."""
    import torch

    x, a, _ = _batch(subject.tokenizer, kind, w, keys, model_kind, random.Random(f"planted-eval-{seed}"), n)
    with torch.no_grad(), g_output(subject.base, fn):
        got = subject.base(input_ids=x[:, :-1], logits_to_keep=1).logits[:, -1].argmax(-1)
    return float((got == a).float().mean())


def report(subject: Subject, config: PlantedConfig) -> dict[str, float]:
    """Object, neutral and hypothetical accuracy (trained and held-out keys; for S' held-out is the reuse check)."""
    w = world(config.n_keys, config.seed)
    trained = tuple(sorted(w.trained))
    return {
        "object": accuracy(subject, w, "object", w.keys),
        "neutral": accuracy(subject, w, "neutral", w.keys),
        "hypothetical_trained_keys": accuracy(subject, w, "hypothetical", trained, model_kind=config.kind),
        "hypothetical_held_out_keys": accuracy(subject, w, "hypothetical", w.held_out, model_kind=config.kind),
    }


def block_patch_moves(subject: Subject, w: World, layer: int, component: str = "mlp", n: int = 192) -> float:
    """Rate at which swapping one component's output (all positions) in from another key's object prompt makes the
    object answer that key's colour (among rows whose two colours differ)."""
    import torch

    x, a, _ = _batch(subject.tokenizer, "object", w, w.keys, "self", random.Random("planted-block"), n)
    perm = _derange(n, random.Random("planted-block-perm"))
    module = subject.module(subject.site(layer, component))

    def hook(m: Any, i: Any, o: Any) -> Any:
        head = o[0] if isinstance(o, tuple) else o
        new = head.clone()
        new[:] = head[perm]
        return (new, *o[1:]) if isinstance(o, tuple) else new

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            got = subject.base(input_ids=x[:, :-1], logits_to_keep=1).logits[:, -1].argmax(-1)
    finally:
        handle.remove()
    differ = a != a[perm]
    return float((got == a[perm])[differ].float().mean())
