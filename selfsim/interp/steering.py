"""Steering from object runs into hypothetical runs, and object->hypothetical patching with a transplant control.

Steering. At layer L, each object run on P gives one vector: the residual averaged over P's tokens
(`position="copy"`) or at the final token (`"final"`). Prompts are grouped by their object answer
M(P) (greedy first token); the direction from answer Y to answer X is mean(X) - mean(Y), the mean of
Y leaving P itself out. Averaging over many prompts per answer averages out what identifies the
input and keeps what the answers share. The direction, times a scale, is ADDED at every token of
P's copy (`inject="copy"`; `"final"`: at the prompt's last token). In the object run this must move
M(P) (`steering_object`: f(M_steered(P)) != f(M(P))); the scale is the smallest of `scales` whose
object move rate reaches `target_rate` and, without a given `layer`, the layer is the one whose move
rate is highest: both chosen on object runs alone. `site` overrides the layer with any module path
(e.g. `model.embed_tokens`, the embeddings' output). In the hypothetical run H(P) the same addition is scored by whether the answer
follows f(M_steered(P)) (`steering`). The control is a seeded random direction of the same norm,
added the same way to the same prompts; effects are per-prompt paired differences.

Patching. Object run on P' -> hypothetical run on H(P) at ALL copy positions together (aligned
from the copies' ends by `selfsim.interp.pairs.align`), P' chosen with f(M(P')) != f(M(P)); scored
by whether the hypothetical answer becomes f(M(P')). The transplant control patches the same
vectors into a neutral prompt that quotes the same P but asks nothing about the model's behaviour
(`neutral_messages`) and scores the same target: what any model says when handed P''s activations.

Additions are applied with the tracing backend's public `Patch` (overwrite) after a read pass at the
same site: the site's clean value at a patched layer is unchanged by later layers, so value + delta
is an addition.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from selfsim import properties
from selfsim.errors import SelfsimError
from selfsim.examples import Example, Messages
from selfsim.interp.pairs import MatchedPair, Prompt, align, batch_of, content_of, locate_copy, match_all, padded, tokenize_with_offsets
from selfsim.interp.tracing import Patch, Tracer, get_tracer
from selfsim.verdict import PATCHING, RANDOM, STEERING, STEERING_OBJECT, TRANSPLANT, UNTRAINED, Evidence, bootstrap_ci

if TYPE_CHECKING:
    from selfsim.models import Subject

POSITIONS = ("copy", "final")


@dataclass(frozen=True)
class SteerConfig:
    """Where and how hard to steer, and how to estimate the CIs."""

    property: str
    layer: int | None = None
    position: str = "copy"
    inject: str = "copy"
    site: str | None = None
    scales: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    target_rate: float = 0.5
    min_per_class: int = 4
    targets_per_prompt: int = 2
    seed: int = 0
    n_boot: int = 2000
    backend: str = "hooks"
    batch_size: int = 128

    def __post_init__(self) -> None:
        properties.get(self.property)
        for what in (self.position, self.inject):
            if what not in POSITIONS:
                raise SelfsimError(f"unknown steering position {what!r}; valid positions are {', '.join(POSITIONS)}")
        if not self.scales or any(s <= 0 for s in self.scales):
            raise SelfsimError(f"steering scales must be positive numbers, got {self.scales}")
        if self.min_per_class < 2 or self.targets_per_prompt < 1:
            raise SelfsimError("min_per_class must be >= 2 and targets_per_prompt >= 1")


@dataclass(frozen=True)
class Outcome:
    """One experiment on one model: per-prompt paired effect (prompt id -> mean difference) and rates."""

    experiment: str
    control: str
    per_prompt: dict[str, float]
    rate: float
    control_rate: float
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The outcome as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Outcome:
        """An Outcome from its JSON form."""
        return cls(**d)

    def evidence(self, model: str, prop: str, *, n_boot: int = 2000, seed: int = 0) -> Evidence:
        """This outcome as an evidence row: the excess over its control with a bootstrap CI over prompts."""
        mean, low, high = bootstrap_ci(list(self.per_prompt.values()), n_boot=n_boot, seed=seed)
        return Evidence(model, prop, self.experiment, self.control, mean, low, high, len(self.per_prompt),
                        raw=self.rate, control_value=self.control_rate)


def versus_untrained(model: Outcome, untrained: Outcome) -> Outcome:
    """The model's per-prompt effect minus the untrained model's on the same prompts (control `untrained`)."""
    common = sorted(set(model.per_prompt) & set(untrained.per_prompt))
    diffs = {k: model.per_prompt[k] - untrained.per_prompt[k] for k in common}
    return Outcome(model.experiment, UNTRAINED, diffs, model.rate, untrained.rate, {"n_model": len(model.per_prompt)})


# ---------------------------------------------------------------- running prompts


def first_tokens(subject: Subject, tracer: Tracer, prompts: Sequence[Prompt], *, site: str | None = None,
                 deltas: Sequence[dict[int, torch.Tensor]] | None = None, add: bool = True,
                 batch_size: int = 128) -> list[str]:
    """Greedy first answer token of each prompt; `deltas[i]` maps positions of prompt i to vectors added at
    `site` (`add=False`: written over the site's output instead)."""
    out: list[str] = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        batch = batch_of(subject, chunk)
        patches = []
        if deltas is not None and site is not None:
            part = deltas[start : start + batch_size]
            rows = [r for r, d in enumerate(part) for _ in d]
            cols = [padded(chunk[r], batch.width, p) for r, d in enumerate(part) for p in d]
            if rows:
                values = torch.stack([v for d in part for v in d.values()])
                if add:
                    with torch.no_grad():
                        acts = tracer.run(batch, read=[site]).activations[site]
                    values = acts[torch.tensor(rows), torch.tensor(cols)] + values.to(acts.dtype).to(acts.device)
                patches = [Patch(site, torch.tensor(rows), torch.tensor(cols), values)]
        with torch.no_grad():
            logits = tracer.run(batch, patches=patches, last_only=True).logits[:, -1]
        out.extend(subject.tokenizer.decode([int(i)]).strip() for i in logits.argmax(-1).tolist())
    return out


def read_at(subject: Subject, tracer: Tracer, prompts: Sequence[Prompt], site: str, batch_size: int = 128) -> list[torch.Tensor]:
    """Each prompt's [length, d] activations at `site` (padding removed)."""
    out = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        batch = batch_of(subject, chunk)
        with torch.no_grad():
            acts = tracer.run(batch, read=[site], last_only=True).activations[site]
        out.extend(acts[r, batch.width - p.length :].float().cpu() for r, p in enumerate(chunk))
    return out


def neutral_messages(example: Example) -> Messages:
    """A prompt quoting P that asks nothing about the model's behaviour (toy: a question about the visible text)."""
    content = content_of(example.object_messages)
    if example.dialect == "toy":
        from selfsim.toy.language import property_question

        return [{"role": "user", "content": property_question(example.property, content)}]
    return [{"role": "user", "content": f'Here is a piece of text: "{content}"\nRepeat the text exactly.'}]


def neutral_prompt(subject: Subject, example: Example, make: Callable[[Example], Messages] = neutral_messages) -> Prompt:
    """The neutral prompt rendered, tokenized and with P's copy located by character offsets."""
    content = content_of(example.object_messages)
    text = subject.render_chat(make(example))
    ids, offsets = tokenize_with_offsets(subject.tokenizer, text)
    span = locate_copy(text, offsets, content, f"example {example.id} (neutral prompt)")
    begin = text.rfind(content)
    return Prompt(text, tuple(ids), span, (begin, begin + len(content)), tuple(offsets))


# ---------------------------------------------------------------- steering


@dataclass(frozen=True)
class _Row:
    prompt: int
    target: str


def class_means(reps: Sequence[torch.Tensor], answers: Sequence[str], keep: set[str]) -> dict[str, tuple[torch.Tensor, int]]:
    """(sum, count) of the object-run vectors per object answer in `keep`."""
    sums: dict[str, list] = {}
    for r, a in zip(reps, answers):
        if a in keep:
            s = sums.setdefault(a, [torch.zeros_like(r), 0])
            s[0] += r
            s[1] += 1
    return {a: (s, n) for a, (s, n) in sums.items()}


def steer(subject: Subject, examples: Sequence[Example], config: SteerConfig) -> dict[str, Outcome]:
    """The steering experiment (object check and hypothetical follow-through) against a random direction."""
    prop = properties.get(config.property)
    wrong = [e.id for e in examples if e.property != config.property]
    if wrong:
        raise SelfsimError(f"steering on {config.property}: {len(wrong)} examples ask about another property (e.g. {wrong[0]})")
    tracer = get_tracer(subject, config.backend)
    pairs = match_all(subject, examples)
    obj = [p.object for p in pairs]
    hyp = [p.hypothetical for p in pairs]
    own = first_tokens(subject, tracer, obj, batch_size=config.batch_size)
    values = [prop.extract(a, p.example) for a, p in zip(own, pairs)]
    counts: dict[str, int] = defaultdict(int)
    for a, v in zip(own, values):
        if v is not None:
            counts[a] += 1
    classes = {a for a, n in counts.items() if n >= config.min_per_class}
    value_of = {a: prop.extract(a) for a in classes}
    if len({value_of[a] for a in classes}) < 2:
        raise SelfsimError(
            f"steering needs object answers with at least two values of {config.property}, each answer given by "
            f">= {config.min_per_class} prompts; got {dict(counts)}"
        )
    rng = random.Random(config.seed)
    rows = []
    for i, a in enumerate(own):
        if a in classes:
            options = sorted(x for x in classes if value_of[x] != value_of[a])
            rows.extend(_Row(i, t) for t in rng.sample(options, min(config.targets_per_prompt, len(options))))
    layers = [subject.check_layer(config.layer)] if config.layer is not None else list(range(subject.n_layers))
    if config.site is not None:
        subject.module(config.site)
        layers = [-1]
    gen = torch.Generator().manual_seed(config.seed)
    best: tuple[float, int, float, list, list] | None = None
    for layer in layers:
        site = config.site or subject.site(layer, "resid")
        acts = read_at(subject, tracer, obj, site, config.batch_size)
        reps = [a[p.copy_positions].mean(0) if config.position == "copy" else a[p.final] for a, p in zip(acts, obj)]
        means = class_means(reps, own, classes)
        dirs = []
        for row in rows:
            s_y, n_y = means[own[row.prompt]]
            s_x, n_x = means[row.target]
            dirs.append(s_x / n_x - (s_y - reps[row.prompt]) / (n_y - 1))
        rand = [torch.randn(d.shape, generator=gen) for d in dirs]
        rand = [r * d.norm() / r.norm() for r, d in zip(rand, dirs)]
        for scale in sorted(config.scales):
            got = first_tokens(subject, tracer, [obj[r.prompt] for r in rows], site=site,
                               deltas=_spread(obj, rows, dirs, scale, config.inject), batch_size=config.batch_size)
            rate = sum(prop.extract(g) not in (None, values[r.prompt]) for g, r in zip(got, rows)) / len(rows)
            if best is None or rate > best[0] + 1e-9 or (rate >= config.target_rate and best[0] < config.target_rate):
                best = (rate, layer, scale, dirs, rand)
            if rate >= config.target_rate:
                break
    assert best is not None
    _, layer, scale, dirs, rand = best
    site = config.site or subject.site(layer, "resid")
    obj_rows = [obj[r.prompt] for r in rows]
    hyp_rows = [hyp[r.prompt] for r in rows]
    run = {}
    for name, vecs in (("dir", dirs), ("rand", rand)):
        run[f"obj_{name}"] = first_tokens(subject, tracer, obj_rows, site=site, deltas=_spread(obj, rows, vecs, scale, config.inject),
                                          batch_size=config.batch_size)
        run[f"hyp_{name}"] = first_tokens(subject, tracer, hyp_rows, site=site, deltas=_spread(hyp, rows, vecs, scale, config.inject),
                                          batch_size=config.batch_size)
    moved: dict[str, list[float]] = defaultdict(list)
    follow: dict[str, list[float]] = defaultdict(list)
    moved_d = moved_r = follow_d = follow_r = 0
    n_follow = 0
    for k, r in enumerate(rows):
        pid = pairs[r.prompt].example.id
        base = values[r.prompt]
        fd, fr = prop.extract(run["obj_dir"][k]), prop.extract(run["obj_rand"][k])
        md, mr = float(fd not in (None, base)), float(fr not in (None, base))
        moved[pid].append(md - mr)
        moved_d, moved_r = moved_d + md, moved_r + mr
        if md:
            hd = float(prop.meta_value(run["hyp_dir"][k]) == fd)
            hr = float(prop.meta_value(run["hyp_rand"][k]) == fd)
            follow[pid].append(hd - hr)
            follow_d, follow_r, n_follow = follow_d + hd, follow_r + hr, n_follow + 1
    details = {"layer": layer, "site": site, "scale": scale, "rows": len(rows), "classes": sorted(classes), "position": config.position,
               "inject": config.inject}
    return {
        STEERING_OBJECT: Outcome(STEERING_OBJECT, RANDOM, _avg(moved), moved_d / len(rows), moved_r / len(rows), details),
        STEERING: Outcome(STEERING, RANDOM, _avg(follow), follow_d / max(n_follow, 1), follow_r / max(n_follow, 1),
                          {**details, "rows_moved": n_follow}),
    }


def _spread(prompts: Sequence[Prompt], rows: Sequence[_Row], vecs: Sequence[torch.Tensor], scale: float,
            inject: str) -> list[dict[int, torch.Tensor]]:
    def where(p: Prompt) -> list[int]:
        return p.copy_positions if inject == "copy" else [p.final]

    return [{q: scale * v for q in where(prompts[r.prompt])} for r, v in zip(rows, vecs)]


def _avg(d: dict[str, list[float]]) -> dict[str, float]:
    return {k: sum(v) / len(v) for k, v in sorted(d.items())}


# ---------------------------------------------------------------- patching with a transplant control


def patch_copy(subject: Subject, examples: Sequence[Example], *, layer: int, prop_name: str, seed: int = 0,
               backend: str = "hooks", batch_size: int = 128,
               neutral: Callable[[Example], Messages] = neutral_messages) -> Outcome:
    """Object(P') -> H(P) at all copy positions of layer `layer`, over the same patch into a neutral prompt."""
    prop = properties.get(prop_name)
    site = subject.site(layer, "resid")
    tracer = get_tracer(subject, backend)
    pairs: list[MatchedPair] = match_all(subject, examples)
    neutrals = [neutral_prompt(subject, p.example, neutral) for p in pairs]
    obj = [p.object for p in pairs]
    own = first_tokens(subject, tracer, obj, batch_size=batch_size)
    values = [prop.extract(a, p.example) for a, p in zip(own, pairs)]
    rng = random.Random(seed)
    donors = []
    for i, v in enumerate(values):
        options = [j for j, w in enumerate(values) if v is not None and w is not None and w != v]
        donors.append(rng.choice(options) if options else None)
    chosen = [i for i, j in enumerate(donors) if j is not None]
    if len(chosen) < 2:
        raise SelfsimError(f"patching on {prop_name} needs object answers with at least two values; got {set(values)}")
    acts = read_at(subject, tracer, obj, site, batch_size)

    def donated(recipients: Sequence[Prompt]) -> list[dict[int, torch.Tensor]]:
        return [{r: acts[donors[i]][d] for r, d in align(recipients[i], obj[donors[i]])} for i in chosen]

    hyp = [p.hypothetical for p in pairs]
    got_h = first_tokens(subject, tracer, [hyp[i] for i in chosen], site=site, deltas=donated(hyp), add=False,
                         batch_size=batch_size)
    got_n = first_tokens(subject, tracer, [neutrals[i] for i in chosen], site=site, deltas=donated(neutrals), add=False,
                         batch_size=batch_size)
    per, hits_h, hits_n = {}, 0.0, 0.0
    for k, i in enumerate(chosen):
        target = values[donors[i]]
        h, n = float(prop.meta_value(got_h[k]) == target), float(prop.meta_value(got_n[k]) == target)
        per[pairs[i].example.id] = h - n
        hits_h, hits_n = hits_h + h, hits_n + n
    return Outcome(PATCHING, TRANSPLANT, per, hits_h / len(chosen), hits_n / len(chosen), {"layer": layer})
