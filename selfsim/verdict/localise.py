"""Localise g, the object computation, from OBJECT runs only: which component's output carries M(P).

For every node (layer, component in mlp/attn) and every item P (an example whose greedy object answer
is known), the node's output at P's copy (aligned from the copies' ends, `selfsim.interp.pairs.align`)
and at the final position is replaced by its output on the object run of a donor P' of the same
property with f(M(P')) != f(M(P)) and another first answer token: `move` = the patched first answer
token is M(P')'s. Separately the node's output at the same positions is replaced by its mean over all
items (mean ablation; one mean for copy tokens, one for final tokens): `kill` = the first answer token
is no longer M(P)'s. A node upstream of g that merely carries P's text moves M(P) too; `carry` tells it
apart: the same patch (object run of P' at the aligned copy and final position) into the NEUTRAL prompt
that quotes P and asks about its visible text (`selfsim.interp.steering.neutral_prompt`), scored by
whether its answer becomes the neutral answer on P' (over items where the two neutral answers differ).
g's node is the node with the highest move rate (kill rate breaks ties) among those with carry <=
`rule.MAX_INPUT_CARRY`; the top node by move rate when none qualifies (its gate then fails).
`sharpness` is the node's move rate minus the runner-up's (among the nodes that do not carry the input),
paired over items, with a bootstrap 95% CI. Diagnostic (meta): the node's move rate when patched at P's
copy alone and at the final position alone, i.e. where in the object run its output carries M(P); they
are also the per-site power gates `interchange_object_copy` / `interchange_object_final` (Amendment 2).
The hypothetical prompt is never run.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from selfsim.errors import SelfsimError
from selfsim.examples import Example
from selfsim.interp.answers import greedy_answers, property_values
from selfsim.interp.pairs import MatchedPair, Prompt, align, batch_of, match_all, padded
from selfsim.interp.tracing import Patch, Tracer, get_tracer
from selfsim.verdict.rule import (
    INTERCHANGE_INPUT,
    INTERCHANGE_OBJECT,
    INTERCHANGE_OBJECT_COPY,
    INTERCHANGE_OBJECT_FINAL,
    MAX_INPUT_CARRY,
    Evidence,
    bootstrap_ci,
    rate,
)

if TYPE_CHECKING:
    from selfsim.models import Subject

NODE_COMPONENTS = ("mlp", "attn")


@dataclass(frozen=True)
class Node:
    """A component of one decoder layer: where g is computed."""

    layer: int
    component: str

    def __post_init__(self) -> None:
        if self.component not in NODE_COMPONENTS:
            raise SelfsimError(f"unknown node component {self.component!r}; valid components are {', '.join(NODE_COMPONENTS)}")

    def site(self, subject: Subject) -> str:
        """The node's HF module path in `subject`."""
        return subject.site(self.layer, self.component)

    def __str__(self) -> str:
        return f"layers.{self.layer}.{self.component}"

    @classmethod
    def parse(cls, text: str) -> Node:
        """A node from `layers.L.component` or `L.component` (e.g. `2.mlp`)."""
        parts = text.removeprefix("layers.").split(".")
        if len(parts) != 2 or not parts[0].lstrip("-").isdigit():
            raise SelfsimError(f"bad node {text!r}; write LAYER.COMPONENT, e.g. 2.mlp (components: {', '.join(NODE_COMPONENTS)})")
        return cls(int(parts[0]), parts[1])


@dataclass(frozen=True)
class NodeScore:
    """One node's move and kill rates over the items, each with a bootstrap 95% CI."""

    layer: int
    component: str
    move: float
    move_low: float
    move_high: float
    kill: float
    kill_low: float
    kill_high: float
    n: int
    carry: float = 0.0
    carry_low: float = 0.0
    carry_high: float = 0.0
    carry_n: int = 0

    @property
    def carries_input(self) -> bool:
        """Whether patching the node hands over P''s visible text (carry above MAX_INPUT_CARRY, or unmeasured)."""
        return self.carry_n == 0 or self.carry > MAX_INPUT_CARRY

    @property
    def node(self) -> Node:
        return Node(self.layer, self.component)


@dataclass(frozen=True)
class Localisation:
    """Where the object runs put g: the ranked nodes, the top one, how sharply it stands out, and the
    gate rows (the top node's move rate per property, experiment `interchange_object`)."""

    model: str
    node: Node
    runner_up: Node | None
    sharpness: tuple[float, float, float]
    ranking: tuple[NodeScore, ...]
    gate: tuple[Evidence, ...]
    items: int
    dropped: int
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"model": self.model, "node": asdict(self.node), "runner_up": asdict(self.runner_up) if self.runner_up else None,
                "sharpness": list(self.sharpness), "ranking": [asdict(s) for s in self.ranking],
                "gate": [e.to_dict() for e in self.gate], "items": self.items, "dropped": self.dropped, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Localisation:
        """A Localisation from its JSON form."""
        try:
            return cls(d["model"], Node(**d["node"]), Node(**d["runner_up"]) if d.get("runner_up") else None,
                       (float(d["sharpness"][0]), float(d["sharpness"][1]), float(d["sharpness"][2])),
                       tuple(NodeScore(**s) for s in d["ranking"]), tuple(Evidence.from_dict(e) for e in d["gate"]),
                       int(d["items"]), int(d["dropped"]), dict(d.get("meta", {})))
        except (KeyError, TypeError, IndexError) as exc:
            raise SelfsimError(f"malformed localisation record ({exc!r}); delete it to recompute") from None

    def summary(self) -> str:
        """One line: the node, its move / kill rates, and its lead over the runner-up."""
        top = next(s for s in self.ranking if s.node == self.node)
        where = (f"; patched at P's copy alone it moves M(P) at {self.meta['move_copy_only']:.2f}, at the final position "
                 f"alone at {self.meta['move_final_only']:.2f}" if "move_copy_only" in self.meta else "")
        lead = (f"; {self.sharpness[0]:+.2f} [{self.sharpness[1]:+.2f}, {self.sharpness[2]:+.2f}] over runner-up {self.runner_up}"
                if self.runner_up else "")
        return (f"g localised at {self.node}: patching it from P' moves M(P) to M(P') at {top.move:.2f} "
                f"[{top.move_low:.2f}, {top.move_high:.2f}], mean-ablating it changes M(P) at {top.kill:.2f}, the same patch hands the neutral prompt P''s text at "
                f"{top.carry:.2f} (n={top.carry_n}){lead} (n={top.n}){where}")


@dataclass(frozen=True)
class Item:
    """A recipient P, its donor P', and the first answer tokens of both object runs."""

    recipient: int
    donor: int
    clean: int
    target: int


def items(subject: Subject, examples: Sequence[Example], *, seed: int = 0, max_items: int | None = None,
          tracer: Tracer | None = None, batch_size: int = 64) -> tuple[list[MatchedPair], list[Item], int]:
    """(pairs, items, dropped): every example whose object answer has a property value, paired (seeded) with a
    donor of the same property whose value and first answer token differ. Object runs only."""
    if not examples:
        raise SelfsimError("no examples to localise g on")
    examples = list(examples)[: max_items] if max_items else list(examples)
    pairs = match_all(subject, examples)
    values = property_values(examples, greedy_answers(subject, pairs))
    tracer = tracer or get_tracer(subject, "hooks")
    clean = first_token_ids(subject, tracer, [p.object for p in pairs], [], batch_size=batch_size)
    rng = random.Random(seed)
    by_prop: dict[str, list[int]] = defaultdict(list)
    for i, (e, v) in enumerate(zip(examples, values)):
        if v is not None:
            by_prop[e.property].append(i)
    out: list[Item] = []
    for prop in sorted(by_prop):
        members = by_prop[prop]
        for i in members:
            others = [j for j in members if values[j] != values[i] and clean[j] != clean[i]]
            if others:
                j = rng.choice(others)
                out.append(Item(i, j, clean[i], clean[j]))
    return pairs, out, len(examples) - len(out)


def positions(pair: MatchedPair, donor: MatchedPair) -> list[tuple[int, int]]:
    """(recipient, donor) positions patched in the object run: P's copy aligned from the end, and the final token."""
    return [*align(pair.object, donor.object), (pair.object.final, donor.object.final)]


def first_token_ids(subject: Subject, tracer: Tracer, prompts: Sequence[Prompt], patches: Sequence[list[tuple[int, torch.Tensor]]],
                    *, site: str | None = None, batch_size: int = 64) -> list[int]:
    """Greedy first answer token id of each prompt; `patches[i]` = (position, vector) written over `site`'s
    output in prompt i (none when `patches` is empty)."""
    out: list[int] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        batch = batch_of(subject, chunk)
        todo: list[Patch] = []
        if patches and site is not None:
            part = patches[start : start + batch_size]
            rows = [r for r, ps in enumerate(part) for _ in ps]
            if rows:
                cols = [padded(chunk[r], batch.width, q) for r, ps in enumerate(part) for q, _ in ps]
                values = torch.stack([v for ps in part for _, v in ps])
                todo = [Patch(site, torch.tensor(rows), torch.tensor(cols), values)]
        with torch.no_grad():
            logits = tracer.run(batch, patches=todo, last_only=True).logits[:, -1]
        out.extend(int(i) for i in logits.argmax(-1).tolist())
    return out


def read_sites(subject: Subject, tracer: Tracer, pairs: Sequence[MatchedPair], sites: Sequence[str],
               batch_size: int = 64) -> dict[str, list[torch.Tensor]]:
    """Each object prompt's [length, d] output at every site (padding removed), from one pass per batch."""
    out: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    prompts = [p.object for p in pairs]
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        batch = batch_of(subject, chunk)
        with torch.no_grad():
            acts = tracer.run(batch, read=list(sites), last_only=True).activations
        for s in sites:
            out[s].extend(acts[s][r, batch.width - p.length :].float().cpu() for r, p in enumerate(chunk))
    return out


def localise(subject: Subject, examples: Sequence[Example], *, layers: Sequence[int] | None = None,
             components: Sequence[str] = NODE_COMPONENTS, seed: int = 0, max_items: int | None = None,
             batch_size: int = 64, progress: bool = True) -> Localisation:
    """Rank every (layer, component) by how often patching its output from P' moves M(P) to M(P'), from object runs only."""
    from tqdm.auto import tqdm

    nodes = [Node(subject.check_layer(layer), c) for layer in (layers if layers is not None else range(subject.n_layers))
             for c in components]
    if not nodes:
        raise SelfsimError("no nodes to localise g on: give at least one layer and one component")
    tracer = get_tracer(subject, "hooks")
    pairs, its, dropped = items(subject, examples, seed=seed, max_items=max_items, tracer=tracer, batch_size=batch_size)
    if len(its) < 2:
        raise SelfsimError(f"{subject.name}: only {len(its)} item(s) have a donor with another property value and "
                           f"answer; localisation needs varied object answers (got {len(pairs)} examples)")
    from selfsim.interp.steering import neutral_prompt

    neutral = [neutral_prompt(subject, p.example) for p in pairs]
    neutral_clean = first_token_ids(subject, tracer, neutral, [], batch_size=batch_size)
    telling = [it for it in its if neutral_clean[it.recipient] != neutral_clean[it.donor]]
    sites = [n.site(subject) for n in nodes]
    scores: list[NodeScore] = []
    moved: dict[Node, list[float]] = {}
    carried: dict[Node, list[float]] = {}
    sub = [pairs[it.recipient].object for it in its]
    where = [positions(pairs[it.recipient], pairs[it.donor]) for it in its]
    into_neutral = [[*align(neutral[it.recipient], pairs[it.donor].object), (neutral[it.recipient].final, pairs[it.donor].object.final)]
                    for it in telling]
    for node, site in tqdm(list(zip(nodes, sites)), desc=f"localise g ({subject.name})", disable=not progress):
        acts = read_sites(subject, tracer, pairs, [site], batch_size=batch_size)[site]
        swap = [[(r, acts[it.donor][d]) for r, d in w] for it, w in zip(its, where)]
        copy_mean, final_mean = _means(acts, pairs, its)
        ablate = [[(r, final_mean if r == pairs[it.recipient].object.final else copy_mean) for r, _ in w]
                  for it, w in zip(its, where)]
        patched = first_token_ids(subject, tracer, sub, swap, site=site, batch_size=batch_size)
        ablated = first_token_ids(subject, tracer, sub, ablate, site=site, batch_size=batch_size)
        carry_swap = [[(r, acts[it.donor][d]) for r, d in w] for it, w in zip(telling, into_neutral)]
        neutral_patched = first_token_ids(subject, tracer, [neutral[it.recipient] for it in telling], carry_swap,
                                          site=site, batch_size=batch_size)
        move = [float(p == it.target) for p, it in zip(patched, its)]
        kill = [float(a != it.clean) for a, it in zip(ablated, its)]
        carry = [float(p == neutral_clean[it.donor]) for p, it in zip(neutral_patched, telling)]
        moved[node], carried[node] = move, carry
        m, ml, mh = bootstrap_ci(move, seed=seed)
        k, kl, kh = bootstrap_ci(kill, seed=seed)
        c, cl, ch = bootstrap_ci(carry, seed=seed) if carry else (0.0, 0.0, 0.0)
        scores.append(NodeScore(node.layer, node.component, m, ml, mh, k, kl, kh, len(its), c, cl, ch, len(carry)))
    ranking = sorted(scores, key=lambda s: (-s.move, -s.kill, s.layer, s.component))
    eligible = [s for s in ranking if not s.carries_input]
    first = (eligible or ranking)[0]
    top = first.node
    others = [s for s in (eligible or ranking) if s.node != top]
    runner = others[0].node if others else None
    sharp = (bootstrap_ci([a - b for a, b in zip(moved[top], moved[runner])], seed=seed) if runner
             else (first.move, first.move_low, first.move_high))
    # Where the node's output matters in the object run (diagnostic): P's copy alone, the final position alone.
    site = top.site(subject)
    acts = read_sites(subject, tracer, pairs, [site], batch_size=batch_size)[site]
    split: dict[str, float] = {}
    site_moves: dict[str, list[float]] = {}
    for name, keep in (("copy_only", lambda r, it: r != pairs[it.recipient].object.final),
                       ("final_only", lambda r, it: r == pairs[it.recipient].object.final)):
        swap = [[(r, acts[it.donor][d]) for r, d in w if keep(r, it)] for it, w in zip(its, where)]
        got = first_token_ids(subject, tracer, sub, swap, site=site, batch_size=batch_size)
        site_moves[name] = [float(g == it.target) for g, it in zip(got, its)]
        split[f"move_{name}"] = sum(site_moves[name]) / len(its)
    props = [pairs[it.recipient].example.property for it in its]
    gate = _gate_rows(subject.name, props, moved[top], INTERCHANGE_OBJECT, seed)
    gate += _gate_rows(subject.name, [pairs[it.recipient].example.property for it in telling], carried[top], INTERCHANGE_INPUT, seed)
    gate += _gate_rows(subject.name, props, site_moves["copy_only"], INTERCHANGE_OBJECT_COPY, seed)
    gate += _gate_rows(subject.name, props, site_moves["final_only"], INTERCHANGE_OBJECT_FINAL, seed)
    return Localisation(subject.name, top, runner, sharp, tuple(ranking), tuple(gate), len(its), dropped,
                        {"seed": seed, "examples": len(pairs), "carry_items": len(telling), **split})


def _means(acts: Sequence[torch.Tensor], pairs: Sequence[MatchedPair], its: Sequence[Item]) -> tuple[torch.Tensor, torch.Tensor]:
    """The node's mean output over all items' copy tokens, and over their final tokens."""
    seen = sorted({it.recipient for it in its} | {it.donor for it in its})
    copy = torch.cat([acts[i][pairs[i].object.copy[0] : pairs[i].object.copy[1]] for i in seen]).mean(0)
    final = torch.stack([acts[i][pairs[i].object.final] for i in seen]).mean(0)
    return copy, final


def _gate_rows(model: str, props: Sequence[str], scores: Sequence[float], experiment: str, seed: int) -> list[Evidence]:
    by: dict[str, list[float]] = defaultdict(list)
    for p, m in zip(props, scores):
        by[p].append(m)
    return [rate(model, p, experiment, by[p], seed=seed) for p in sorted(by)]
