"""Planted models: tiny toy Llamas whose self-prediction mechanism is known before any experiment runs.

The world: an object prompt P lists four words, one of them a KEY (a country or English word) among
animal distractors, "which colors : owl peru cat bee ?". The object answer is g(key), a colour,
where g is a random MANY-TO-ONE map (48 keys -> 6 colours, 8 keys each) that lives only in the
weights. The property asked in H(P, f) is first_character, whose values (r, b, g) are letters, not
the answer token, and are shared by two colours each. A neutral prompt quotes the same P but asks
about the visible key ("what is the first character of : P ?" -> the key's first letter): it
asks nothing about the model's behaviour and is the transplant control's recipient.

- `untrained` (U): object and neutral prompts only, never a hypothetical (the untrained control).
- `self` (S): object prompts for ALL keys together with hypotheticals H(P, f) -> f(g(key)) for
  only HALF of the keys (half of each colour's keys). Answering the other half correctly is only
  possible by reusing g: `report`'s held-out accuracy (chance 1/3) checks the reuse.
- `lookup` (N): first hypotheticals for ALL keys, H(P, f) -> f(t(key)), learned on frozen random
  embeddings with no object behaviour yet (a per-key table keyed on the input's identity); then the
  object behaviour is trained to answer t(key) (t = g, so N behaves exactly like S and predicts
  itself perfectly) while the hypotheticals are replayed. Throughout, each hypothetical is trained with a
  random multiple of a colour-class direction (mean key embedding of one colour minus another's) added at
  P's copy (`_shield`): the table is keyed on the key's identity and never reads what keys share with
  their object answer's class.

Everything is seeded: same `PlantedConfig` -> same weights on the same machine.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfsim.errors import SelfsimError
from selfsim.examples import Example
from selfsim.toy.language import FAMILIES, hypothetical_prompt, property_question

if TYPE_CHECKING:
    import torch

    from selfsim.interp.steering import SteerConfig
    from selfsim.models import Subject
    from selfsim.verdict import Evidence

KINDS = ("self", "lookup", "untrained")
# Training steps per kind when the config leaves them out: the lookup model learns two tables in turn.
STEPS: dict[str, int] = {"untrained": 800, "self": 400, "lookup": 1600}
ANSWERS: tuple[str, ...] = ("red", "rust", "blue", "brown", "gray", "gold")
PROPERTY = "first_character"
KEY_POOL: tuple[str, ...] = FAMILIES["countries"] + FAMILIES["english_words"]
DISTRACTORS: tuple[str, ...] = FAMILIES["animals"]
N_WORDS = 4
# The lookup model's hypotheticals are trained under up to this multiple of a colour-class direction at P's copy.
SHIELD = 3.0


@dataclass(frozen=True)
class PlantedConfig:
    """One planted model: its kind, world size, architecture and optimisation."""

    kind: str
    seed: int = 0
    n_keys: int = 48
    hidden: int = 64
    layers: int = 3
    steps: int | None = None
    batch: int = 32
    lr: float = 3e-3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SelfsimError(f"unknown planted kind {self.kind!r}; valid kinds are {', '.join(KINDS)}")
        if not len(ANSWERS) * 2 <= self.n_keys <= len(KEY_POOL) or self.n_keys % len(ANSWERS):
            raise SelfsimError(
                f"n_keys must be a multiple of {len(ANSWERS)} between {2 * len(ANSWERS)} and {len(KEY_POOL)}, got {self.n_keys}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class World:
    """The keys, the planted map g (key -> colour) and which keys' hypotheticals S is trained on."""

    keys: tuple[str, ...]
    answer: dict[str, str]
    trained: frozenset[str]

    @property
    def held_out(self) -> tuple[str, ...]:
        return tuple(k for k in self.keys if k not in self.trained)


def world(n_keys: int = 48, seed: int = 0) -> World:
    """The seeded world: a balanced random many-to-one g and half of each colour's keys marked trained."""
    rng = random.Random(f"planted-world-{seed}")
    keys = tuple(rng.sample(KEY_POOL, n_keys))
    per = n_keys // len(ANSWERS)
    answer = {k: ANSWERS[i // per] for i, k in enumerate(keys)}
    trained = {k for i, k in enumerate(keys) if (i % per) < per // 2}
    return World(keys, answer, frozenset(trained))


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


def _sequences(kind: str, w: World, keys: tuple[str, ...], rng: random.Random, n: int) -> list[tuple[str, str]]:
    from selfsim.toy.tokenizer import render_chat

    out = []
    for _ in range(n):
        key = rng.choice(keys)
        content = object_content(key, rng)
        if kind == "object":
            text, target = content, w.answer[key]
        elif kind == "hypothetical":
            text, target = hypothetical_prompt(content, PROPERTY), prop_value(w.answer[key])
        else:
            text, target = neutral_content(content), prop_value(key)
        out.append((render_chat([{"role": "user", "content": text}], add_generation_prompt=True), target))
    return out


def _stages(config: PlantedConfig, w: World) -> list[tuple[int, dict[str, tuple[str, ...]], str]]:
    """(steps, {sequence kind: keys it is trained on}, what is frozen) per training stage.

    The self-simulator learns object prompts (all keys) and hypotheticals (half of the keys) together;
    the lookup model's hypothetical table comes first, learned on frozen random embeddings.
    """
    everything = w.keys
    first = STEPS["untrained"] if config.steps is None else config.steps
    base = (first, {"object": everything, "neutral": everything}, "nothing")
    if config.kind == "untrained":
        return [base]
    if config.kind == "self":
        return [(STEPS["self"] if config.steps is None else config.steps,
                 {"object": everything, "neutral": everything, "hypothetical": tuple(sorted(w.trained))}, "nothing")]
    steps = STEPS["lookup"] if config.steps is None else config.steps
    return [
        (steps // 2, {"neutral": everything, "hypothetical": everything}, "embeddings"),
        (steps - steps // 2, {"object": everything, "neutral": everything, "hypothetical": everything}, "nothing"),
    ]


def _freeze(model: Any, frozen: str) -> None:
    for name, param in model.named_parameters():
        if frozen == "embeddings":
            param.requires_grad_("embed_tokens" not in name)
        else:
            param.requires_grad_(True)


def build(config: PlantedConfig) -> Subject:
    """Train the planted model in memory (CPU, seconds) and return it as a Subject in eval mode."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from selfsim.models import Subject
    from selfsim.toy.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.padding_side = "left"
    w = world(config.n_keys, config.seed)
    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden, intermediate_size=4 * config.hidden,
        num_hidden_layers=config.layers, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, attn_implementation="eager",  # pyright: ignore[reportCallIssue]  # a PretrainedConfig kwarg
    )
    model = LlamaForCausalLM(llama)
    optim = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    rng = random.Random(f"planted-train-{config.kind}-{config.seed}")
    model.train()
    for steps, plan, frozen in _stages(config, w):
        _freeze(model, frozen)
        for _ in range(steps):
            seqs = [s for k, keys in sorted(plan.items()) for s in _sequences(k, w, keys, rng, config.batch)]
            shield = _shield(model, tokenizer, w, seqs, rng) if config.kind == "lookup" else None
            loss = _loss(model, tokenizer, seqs, shield)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
    model.eval()
    return Subject(
        name=f"planted-{config.kind}", path=Path("."), model=model, tokenizer=tokenizer,
        fingerprint=f"planted-{config.kind}-{config.seed}", options={"planted": config.to_dict()},
    )


def _shield(model: Any, tokenizer: Any, w: World, seqs: list[tuple[str, str]], rng: random.Random) -> torch.Tensor:
    """Per-token additions for the lookup model's hypotheticals: at P's quoted copy, a random multiple of the
    difference between two colours' mean key embeddings (zero elsewhere and in every other prompt).

    Trained to answer the same under them, N's hypothetical table reads the key's identity and ignores the
    direction that key embeddings share with their colour class, i.e. the object answer's representation.
    """
    import torch

    enc = tokenizer([t for t, _ in seqs], return_tensors="pt", padding=True, add_special_tokens=False)
    ids = enc["input_ids"]
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        means = {a: emb[tokenizer.convert_tokens_to_ids([k for k in w.keys if w.answer[k] == a])].mean(0) for a in ANSWERS}
    out = torch.zeros(ids.shape[0], ids.shape[1], emb.shape[1])
    asked = tokenizer.convert_tokens_to_ids(["previously", "."])
    for i, row in enumerate(ids.tolist()):
        if asked[0] not in row:
            continue
        start = row.index(asked[0]) + 5  # after "previously you were asked :"
        stop = len(row) - 1 - row[::-1].index(asked[1])
        x, y = rng.sample(ANSWERS, 2)
        out[i, start:stop] = rng.uniform(0.0, SHIELD) * (means[x] - means[y])
    return out


def _loss(model: Any, tokenizer: Any, seqs: list[tuple[str, str]], shield: torch.Tensor | None = None) -> torch.Tensor:
    import torch

    enc = tokenizer([t for t, _ in seqs], return_tensors="pt", padding=True, add_special_tokens=False)
    targets = torch.tensor([tokenizer.convert_tokens_to_ids(a) for _, a in seqs])
    embeds = model.get_input_embeddings()(enc["input_ids"])
    if shield is not None:
        embeds = embeds + shield
    logits = model(inputs_embeds=embeds, attention_mask=enc["attention_mask"], logits_to_keep=1).logits[:, -1]
    return torch.nn.functional.cross_entropy(logits, targets)


def accuracy(subject: Subject, w: World, kind: str, keys: tuple[str, ...], n: int = 192, seed: int = 1) -> float:
    """Greedy first-token accuracy of one sequence kind (object, hypothetical, neutral) on `keys`."""
    import torch

    seqs = _sequences(kind, w, keys, random.Random(f"planted-eval-{seed}"), n)
    tok = subject.tokenizer
    enc = tok([t for t, _ in seqs], return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        logits = subject.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], logits_to_keep=1).logits[:, -1]
    got = tok.convert_ids_to_tokens(logits.argmax(-1).tolist())
    return sum(g == a for g, (_, a) in zip(got, seqs)) / len(seqs)


def report(subject: Subject, config: PlantedConfig) -> dict[str, float]:
    """Object, neutral and hypothetical accuracy; for S the held-out hypothetical accuracy is the reuse check."""
    w = world(config.n_keys, config.seed)
    trained = tuple(sorted(w.trained))
    return {
        "object": accuracy(subject, w, "object", w.keys),
        "neutral": accuracy(subject, w, "neutral", w.keys),
        "hypothetical_trained_keys": accuracy(subject, w, "hypothetical", trained),
        "hypothetical_held_out_keys": accuracy(subject, w, "hypothetical", w.held_out),
    }


def protocol(subject: Subject) -> SteerConfig:
    """The planted steering protocol: class means over P's tokens, added at P's copy, at the embeddings'
    output (in these models P's information leaves its copy within layer 0)."""
    from selfsim.interp.steering import SteerConfig

    return SteerConfig(PROPERTY, position="copy", inject="copy", site="model.embed_tokens",
                       scales=(1.0, 2.0, 4.0, 8.0, 16.0))


def evidence(subjects: dict[str, Subject], *, per_key: int = 4, seed: int = 1, n_keys: int = 48) -> list[Evidence]:
    """Evidence rows for every planted model given: steering over random direction (and over `untrained`
    when given), and copy patching at layer 0 over the transplant control."""
    from selfsim.interp.steering import patch_copy, steer, versus_untrained

    exs = examples(world(n_keys, 0), per_key, seed)
    rows: list[Evidence] = []
    steering = {}
    for name, subject in sorted(subjects.items()):
        outcomes = steer(subject, exs, protocol(subject))
        steering[name] = outcomes["steering"]
        rows.extend(o.evidence(name, PROPERTY) for o in outcomes.values())
        rows.append(patch_copy(subject, exs, layer=0, prop_name=PROPERTY).evidence(name, PROPERTY))
    if "untrained" in steering:
        rows.extend(versus_untrained(steering[n], steering["untrained"]).evidence(n, PROPERTY)
                    for n in sorted(steering) if n != "untrained")
    return rows
