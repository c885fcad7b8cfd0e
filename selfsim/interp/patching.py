"""Cross-prompt activation patching between object and hypothetical runs, batched.

For matched prompts of one property, a *recipient* P and a *donor* P' (`selfsim.interp.pairs`),
the donor run's output of one component (resid = the layer's output, attn, mlp) at one layer is
written into the recipient run, at the final position and/or the aligned positions of the copy of
P, and the recipient's next-token distribution at its final position is read. Directions:
object -> hypothetical (the object run on P' into the hypothetical run on H(P, f)),
hypothetical -> object, and hypothetical -> hypothetical (H(P') into H(P)).

"Toward the donor" is measured against two targets. `own`: the patched model's own greedy
object-level answer on P' (a hypothetical recipient reads f of it, an object recipient the answer
itself). The answer is the full greedy response within the task's token budget and f is the
property's own extraction (`selfsim.properties`), as in the behavioural study. `m1`: the same read
off M1's answer from a label table (object_id -> response). The self-simulation signature is a
hypothetical answer that follows `own` whoever trained the model.
Each target gives a donor token and a recipient token: the first token of each value string as
the tokenizer continues the recipient's prompt. Metrics at the final position come from the
registry in `selfsim.interp.metrics`: `logit_diff` = logit(donor token) - logit(recipient token),
`prob_donor`, `flip` (argmax == donor token), each also for the unpatched run (`*_clean`). Rows whose two tokens coincide carry no signal
(`informative=False`) and summaries leave them out, counting them: `n_missing` rows lack a value
(no extractable f, or no M1 label) on the donor or recipient side, `n_same` rows have equal tokens. The last layer's output at the final position
*is* the next-token distribution: patching it from an object donor copies the object answer by
construction (flip toward `own` = 1), so evidence comes from the layers below it.

Execution: one patched recipient row per (pair, component, layer, position group); rows are run
grouped by layer, stacked into batches of at most `max_rows`, and each batch is ONE forward with all
its patches (one `Patch` per site). Donor activations come from one read pass over the donors. When
the backend can resume a forward from a layer (`hooks`: `resumes`) and `PatchConfig.resume` is on,
a batch whose patches all sit at layer L or above starts from the recipients' clean residual stream
entering L (read once, causality keeps it unchanged), so a patch costs the layers above it only.
The metrics are a parameter (`PatchConfig.metrics`, names in `selfsim.interp.metrics.METRICS`);
`rank_by` picks the one cells are ranked by (the CLI's best cells, the study's heatmap).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd
import torch

from selfsim.errors import SelfsimError
from selfsim.examples import Example
from selfsim.interp.answers import greedy_answers, model_labels, property_value, value_token
from selfsim.interp.metrics import DEFAULT_METRICS, DEFAULT_RANK_BY, METRICS, check_metrics, figure_columns, token_metrics
from selfsim.interp.pairs import MatchedPair, Prompt, align, batch_of, match_all, padded, pair_up
from selfsim.interp.tracing import DEFAULT_BACKEND, Batch, Patch, Tracer, check_backend, get_tracer
from selfsim.io import atomic_open, read_json, write_json
from selfsim.models import COMPONENTS

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from selfsim.models import Subject

DIRECTIONS: dict[str, tuple[str, str]] = {
    "object->hypothetical": ("object", "hypothetical"),
    "hypothetical->object": ("hypothetical", "object"),
    "hypothetical->hypothetical": ("hypothetical", "hypothetical"),
}
POSITIONS = ("final", "prompt", "all", "each")
TARGETS = ("own", "m1")
GROUP_ORDER = {"final": 0, "prompt": 1, "all": 2}
SUMMARY_KEYS = ["model", "direction", "component", "layer", "position", "order", "target"]


@dataclass
class PatchConfig:
    """What to patch and how to batch it.

    `positions`: "final"; "prompt" (every aligned position of the copy of P at once); "all" (those and
    the final position at once); "each" (one row per single position: the layer x position sweep);
    or an int, one position of the copy (>= 0 from its start, < 0 from its end). `layers=None` is all.
    `max_new_tokens`: the budget of each model's own greedy object-level answer (None: the task's,
    `selfsim.tasks.token_budget`). `metrics`: registered metric names computed per row;
    `rank_by`: the one cells are ranked by (None: flip when computed, else the first). `resume`:
    start each batch at its lowest patched layer when the backend can (same numbers, less work).
    """

    directions: tuple[str, ...] = ("object->hypothetical",)
    components: tuple[str, ...] = ("resid",)
    layers: tuple[int, ...] | None = None
    positions: str | int = "final"
    backend: str = DEFAULT_BACKEND
    max_new_tokens: int | None = None
    max_rows: int = 256
    seed: int = 0
    metrics: tuple[str, ...] = DEFAULT_METRICS
    rank_by: str | None = None
    resume: bool = True

    def __post_init__(self) -> None:
        self.metrics = tuple(self.metrics)
        if self.rank_by is None:
            self.rank_by = DEFAULT_RANK_BY if DEFAULT_RANK_BY in self.metrics else (self.metrics[0] if self.metrics else "")
        check_metrics(self.metrics, self.rank_by)
        self.directions = tuple(self.directions)
        self.components = tuple(self.components)
        self.layers = None if self.layers is None else tuple(int(x) for x in self.layers)
        _check_choices("direction", self.directions, DIRECTIONS)
        _check_choices("component", self.components, COMPONENTS)
        if not isinstance(self.positions, int) and self.positions not in POSITIONS:
            raise SelfsimError(f"unknown positions {self.positions!r}; valid: {', '.join(POSITIONS)} or an integer")
        check_backend(self.backend)
        if (self.max_new_tokens is not None and self.max_new_tokens < 1) or self.max_rows < 1:
            raise SelfsimError(f"max_new_tokens (None = the task's budget) and max_rows must be at least 1, "
                               f"got {self.max_new_tokens} and {self.max_rows}")

    @property
    def rank_column(self) -> str:
        """The summary column cells are ranked by: `rank_by`'s figure (e.g. flip_rate for flip)."""
        return METRICS.get(str(self.rank_by)).rank

    def layers_for(self, subject: Subject) -> list[int]:
        """The configured layers, checked against `subject` (all of them when unset)."""
        if self.layers is None:
            return list(range(subject.n_layers))
        return [subject.check_layer(layer) for layer in self.layers]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form"""
        return asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the config as JSON"""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> PatchConfig:
        """A config read back from `save`'s JSON"""
        return cls(**read_json(path))


def _check_choices(what: str, given: Sequence[str], valid: Mapping[str, Any]) -> None:
    bad = [g for g in given if g not in valid]
    if bad or not given:
        raise SelfsimError(f"unknown {what} {bad[0] if bad else '(none given)'!r}; valid: {', '.join(valid)}")


@dataclass(frozen=True)
class Slot:
    """One aligned position: its label, sort order, copy index and padded recipient / donor positions."""

    label: str
    order: int
    index: int
    recipient: int
    donor: int


@dataclass(frozen=True)
class RowSpec:
    """One patched recipient row: pair, component, layer and the slots patched together."""

    pair: int
    component: str
    layer: int
    position: str
    order: int
    slots: tuple[Slot, ...]


@dataclass
class Setup:
    """One subject and one direction, ready to patch: batches, aligned slots and target tokens per pair."""

    subject: Subject
    tracer: Tracer
    model: str
    direction: str
    matched: list[MatchedPair]
    index_pairs: list[tuple[int, int]]
    recipients: Batch
    donors: Batch
    slots: list[list[Slot]]
    values: dict[str, list[tuple[str | None, str | None]]]
    tokens: dict[str, torch.Tensor]
    max_rows: int
    _clean_hidden: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def n_pairs(self) -> int:
        return len(self.index_pairs)

    def clean_hidden(self, layers: Sequence[int]) -> dict[int, torch.Tensor]:
        """The recipients' clean output of each layer, [n_pairs, T, d], read once and kept."""
        missing = sorted(set(layers) - self._clean_hidden.keys())
        if missing:
            sites = {layer: self.subject.site(layer) for layer in missing}
            parts: dict[int, list[torch.Tensor]] = defaultdict(list)
            for rows in chunks(range(self.n_pairs), self.max_rows):
                with torch.no_grad():
                    acts = self.tracer.run(self.recipients.select(rows), read=list(sites.values()), last_only=True).activations
                for layer, site in sites.items():
                    parts[layer].append(acts[site].detach())
            self._clean_hidden.update({layer: torch.cat(parts[layer]) for layer in missing})
        return {layer: self._clean_hidden[layer] for layer in layers}

    def donor_activations(self, sites: Sequence[str]) -> dict[str, torch.Tensor]:
        """Donor outputs [n_pairs, T, d] at each site, read in batches of `max_rows`."""
        parts: dict[str, list[torch.Tensor]] = defaultdict(list)
        for rows in chunks(range(self.n_pairs), self.max_rows):
            with torch.no_grad():
                acts = self.tracer.run(self.donors.select(rows), read=sites, last_only=True).activations
            for site in sites:
                parts[site].append(acts[site].detach())
        return {site: torch.cat(parts[site]) for site in sites}

    def clean_logits(self) -> torch.Tensor:
        """Unpatched recipient logits at the final position, [n_pairs, vocab] float32 on CPU."""
        return torch.cat([self.run_last(self.recipients.select(rows)) for rows in chunks(range(self.n_pairs), self.max_rows)])

    def run_last(self, batch: Batch, patches: Sequence[Patch] = ()) -> torch.Tensor:
        """Final-position logits of one (patched) forward, float32 on CPU."""
        with torch.no_grad():
            return self.tracer.run(batch, patches=patches, last_only=True).logits[:, -1].float().cpu()


def chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive slices of at most `size` items."""
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def target_value(kind: str, pair: MatchedPair, response: str | None) -> str | None:
    """What a run of `kind` should answer given an object-level response: f(response), or the response itself."""
    if response is None:
        return None
    if kind == "object":
        return response
    return property_value(pair.example, response)


def make_slots(recipient: Prompt, donor: Prompt, width_r: int, width_d: int) -> list[Slot]:
    """The aligned copy positions (labelled P[-j] from the copy's end) and the final position, padded."""
    start = recipient.copy[0]
    m = recipient.copy[1] - start
    slots = [
        Slot(f"P[{r - start - m}]", r - start - m, r - start, padded(recipient, width_r, r), padded(donor, width_d, d))
        for r, d in align(recipient, donor)
    ]
    slots.append(Slot("final", 0, -1, padded(recipient, width_r, recipient.final), padded(donor, width_d, donor.final)))
    return slots


def position_groups(slots: Sequence[Slot], positions: str | int) -> list[tuple[str, int, tuple[Slot, ...]]]:
    """(label, order, slots patched together) for each row a pair contributes under `positions`."""
    copy = tuple(s for s in slots if s.index >= 0)
    final = tuple(s for s in slots if s.index < 0)
    if positions == "final":
        return [("final", 0, final)]
    if positions == "prompt":
        return [("prompt", GROUP_ORDER["prompt"], copy)] if copy else []
    if positions == "all":
        return [("all", GROUP_ORDER["all"], copy + final)]
    if positions == "each":
        return [(s.label, s.order, (s,)) for s in slots]
    chosen = [s for s in copy if (s.index if cast(int, positions) >= 0 else s.order) == positions]
    return [(chosen[0].label, chosen[0].order, tuple(chosen))] if chosen else []


def prepare(
    subject: Subject,
    tracer: Tracer,
    model: str,
    matched: list[MatchedPair],
    index_pairs: list[tuple[int, int]],
    direction: str,
    answers: Sequence[str],
    labels: Mapping[str, str],
    max_rows: int = 256,
) -> Setup:
    """Batches, slots and per-target (donor, recipient) values and tokens for one subject and direction."""
    donor_kind, recipient_kind = DIRECTIONS[direction]
    r_prompts = [matched[r].prompt(recipient_kind) for r, _ in index_pairs]
    d_prompts = [matched[d].prompt(donor_kind) for _, d in index_pairs]
    recipients, donors = batch_of(subject, r_prompts), batch_of(subject, d_prompts)
    slots = [make_slots(rp, dp, recipients.width, donors.width) for rp, dp in zip(r_prompts, d_prompts)]
    responses = {
        "own": list(answers),
        "m1": [labels.get(m.example.object_id) for m in matched],
    }
    values: dict[str, list[tuple[str | None, str | None]]] = {}
    tokens: dict[str, torch.Tensor] = {}
    for target, resp in responses.items():
        values[target] = [
            (target_value(recipient_kind, matched[d], resp[d]), target_value(recipient_kind, matched[r], resp[r]))
            for r, d in index_pairs
        ]
        tokens[target] = torch.tensor(
            [[value_token(subject, rp, dv), value_token(subject, rp, rv)] for rp, (dv, rv) in zip(r_prompts, values[target])],
            dtype=torch.long,
        ).reshape(-1, 2)
    return Setup(subject, tracer, model, direction, matched, index_pairs, recipients, donors, slots, values, tokens, max_rows)


def row_specs(setup: Setup, components: Sequence[str], layers: Sequence[int], positions: str | int) -> list[RowSpec]:
    """Every patched row: pair x component x layer x position group."""
    return [
        RowSpec(k, component, layer, label, order, group)
        for k in range(setup.n_pairs)
        for component in components
        for layer in layers
        for label, order, group in position_groups(setup.slots[k], positions)
    ]


def build_patches(setup: Setup, specs: Sequence[RowSpec], donor_acts: Mapping[str, torch.Tensor]) -> list[Patch]:
    """One Patch per site for a batch whose row i is `specs[i]`."""
    index: dict[str, tuple[list[int], list[int], list[int], list[int]]] = defaultdict(lambda: ([], [], [], []))
    for row, spec in enumerate(specs):
        rows, positions, pairs, sources = index[setup.subject.site(spec.layer, spec.component)]
        for slot in spec.slots:
            rows.append(row)
            positions.append(slot.recipient)
            pairs.append(spec.pair)
            sources.append(slot.donor)
    return [
        Patch(site, rows, positions, donor_acts[site][torch.tensor(pairs), torch.tensor(sources)])  # pyright: ignore[reportArgumentType]  # Patch takes index lists
        for site, (rows, positions, pairs, sources) in index.items()
    ]


def start_layer(spec: RowSpec) -> int:
    """The first layer a row's forward must run: the patched layer, or the one above it for a resid patch."""
    return spec.layer + 1 if spec.component == "resid" else spec.layer


def patch_rows(
    setup: Setup,
    components: Sequence[str],
    layers: Sequence[int],
    positions: str | int,
    progress: bool = False,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    resume: bool = True,
) -> pd.DataFrame:
    """Run every patched row of one setup; one tidy row per (patched row, target), in `row_specs` order.

    Rows run grouped by the layer their forward starts at; with `resume` and a backend that `resumes`,
    each batch starts there from the recipients' clean residual stream (see the module docstring).
    """
    from tqdm.auto import tqdm

    specs = row_specs(setup, components, layers, positions)
    sites = sorted({setup.subject.site(layer, c) for c in components for layer in layers})
    donor_acts = setup.donor_activations(sites)
    clean = setup.clean_logits()
    clean_metrics = {t: token_metrics(clean, tok[:, 0], tok[:, 1], metrics) for t, tok in setup.tokens.items()}
    clean_values = {t: {name: cm[name].tolist() for name in metrics} for t, cm in clean_metrics.items()}
    resumes = resume and bool(getattr(setup.tracer, "resumes", False))
    order = sorted(range(len(specs)), key=lambda i: start_layer(specs[i])) if resumes else list(range(len(specs)))
    starts = sorted({start_layer(s) for s in specs}) if resumes else []
    hidden = setup.clean_hidden([b - 1 for b in starts if b > 0]) if resumes else {}
    patched: dict[str, dict[str, list[Any]]] = {t: {name: [None] * len(specs) for name in (*metrics, "argmax")}
                                                for t in setup.tokens}
    batches = [chunk for group in _groups(order, specs, resumes) for chunk in chunks(group, setup.max_rows)]
    for batch_rows in tqdm(batches, desc=f"patching {setup.model} {setup.direction}", disable=not progress):
        batch_specs = [specs[i] for i in batch_rows]
        pairs = [s.pair for s in batch_specs]
        batch = setup.recipients.select(pairs)
        patches = build_patches(setup, batch_specs, donor_acts)
        begin = min(start_layer(s) for s in batch_specs) if resumes else 0
        if begin > 0:
            with torch.no_grad():
                out = setup.tracer.run_from(batch, begin, hidden[begin - 1][pairs], patches=patches, last_only=True)  # pyright: ignore[reportAttributeAccessIssue]  # `resumes` promises run_from
            logits = out.logits[:, -1].float().cpu()
        else:
            logits = setup.run_last(batch, patches)
        pair_idx = torch.tensor(pairs)
        for target, tok in setup.tokens.items():
            m = token_metrics(logits, tok[pair_idx, 0], tok[pair_idx, 1], metrics)
            for name in (*metrics, "argmax"):
                column = patched[target][name]
                for i, value in zip(batch_rows, m[name].tolist()):
                    column[i] = value
    convert = setup.subject.tokenizer.convert_ids_to_tokens
    records: list[dict[str, Any]] = []
    for target, tok in setup.tokens.items():
        answers = convert(patched[target]["argmax"])
        unpatched = clean_values[target]
        for i, spec in enumerate(specs):
            k = spec.pair
            r, d = setup.index_pairs[k]
            dv, rv = setup.values[target][k]
            records.append(
                {
                    "model": setup.model,
                    "direction": setup.direction,
                    "component": spec.component,
                    "layer": spec.layer,
                    "position": spec.position,
                    "order": spec.order,
                    "pair": k,
                    "recipient_id": setup.matched[r].example.id,
                    "donor_id": setup.matched[d].example.id,
                    "property": setup.matched[r].example.property,
                    "target": target,
                    "donor_value": dv,
                    "recipient_value": rv,
                    "informative": bool(tok[k, 0] >= 0 and tok[k, 1] >= 0 and tok[k, 0] != tok[k, 1]),
                    **{col: v for name in metrics
                       for col, v in ((name, patched[target][name][i]), (f"{name}_clean", unpatched[name][k]))},
                    "answer": answers[i],
                }
            )
    return pd.DataFrame.from_records(records)


def _groups(order: Sequence[int], specs: Sequence[RowSpec], by_start: bool) -> list[list[int]]:
    """`order` split where the start layer changes (one group when not resuming)."""
    if not by_start:
        return [list(order)]
    groups: dict[int, list[int]] = defaultdict(list)
    for i in order:
        groups[start_layer(specs[i])].append(i)
    return list(groups.values())


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Means over informative rows per (model, direction, component, layer, position, target), with
    n_missing / n_same: the rows left out for a missing value or for coinciding tokens (a group with
    no informative row stays, with n = 0 and no means)."""
    informative = rows[rows["informative"]].copy()
    means: dict[str, tuple[str, str]] = {"n": ("pair", "size")}
    for _, m in METRICS.items():
        if m.name not in rows.columns:
            continue
        means[m.summary] = (m.name, "mean")
        means[f"{m.summary}_clean"] = (f"{m.name}_clean", "mean")
        if m.delta:
            informative[m.delta] = informative[m.name] - informative[f"{m.name}_clean"]
            means[m.delta] = (m.delta, "mean")
    out = informative.groupby(SUMMARY_KEYS, sort=True).agg(**means)
    left_out = rows.assign(
        missing=rows["donor_value"].isna() | rows["recipient_value"].isna(),
        same=~rows["informative"] & rows["donor_value"].notna() & rows["recipient_value"].notna(),
    ).groupby(SUMMARY_KEYS, sort=True).agg(n_missing=("missing", "sum"), n_same=("same", "sum"))
    joined = left_out.join(out, how="left")
    joined["n"] = joined["n"].fillna(0).astype(int)
    return joined[list(out.columns) + ["n_missing", "n_same"]].reset_index()


@dataclass
class PatchResult:
    """Tidy per-row results, each model's object-level answers, and the config that produced them."""

    rows: pd.DataFrame
    answers: pd.DataFrame
    config: PatchConfig

    def summary(self) -> pd.DataFrame:
        """The summary table of the rows (see `summarize`)"""
        return summarize(self.rows)

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write rows/summary/answers (parquet), summary.json, config.json and heatmap HTML; return the paths."""
        out = Path(out_dir)
        summary = self.summary()
        written = []
        for name, df in (("rows", self.rows), ("summary", summary), ("answers", self.answers)):
            with atomic_open(out / f"{name}.parquet", "wb") as fh:
                df.to_parquet(fh, index=False)
            written.append(out / f"{name}.parquet")
        write_json(out / "summary.json", summary.astype(object).where(summary.notna(), None).to_dict("records"))
        self.config.save(out / "config.json")
        written += [out / "summary.json", out / "config.json"]
        groups = cast("Iterable[tuple[tuple[str, str], pd.DataFrame]]", summary.groupby(["direction", "component"]))
        for (direction, component), _ in groups:
            for metric in figure_columns(self.config.metrics):
                path = out / f"heatmap_{direction.replace('->', '_to_')}_{component}_{metric}.html"
                fig = heatmap(summary, metric=metric, direction=direction, component=component)
                with atomic_open(path) as fh:
                    fh.write(fig.to_html(include_plotlyjs=True))
                written.append(path)
        return written


def heatmap(summary: pd.DataFrame, *, metric: str | None = None, direction: str, component: str = "resid") -> go.Figure:
    """Layer x position heatmaps of the summary column `metric` (default: the default rank_by's), one column per
    model and one row per target."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metric = metric or METRICS.get(DEFAULT_RANK_BY).rank
    if metric not in summary.columns:
        raise SelfsimError(f"no column {metric!r} in the summary; its metric columns are "
                           f"{', '.join(c for c in summary.columns if c not in SUMMARY_KEYS)}")
    df = summary[(summary["direction"] == direction) & (summary["component"] == component)]
    if df.empty:
        raise SelfsimError(f"no results for direction {direction!r} and component {component!r}")
    models = list(dict.fromkeys(df["model"]))
    targets = [t for t in TARGETS if t in set(df["target"])]
    positions = df.drop_duplicates("position").sort_values("order")["position"].tolist()
    layers = sorted(df["layer"].unique())
    fig = make_subplots(
        rows=len(targets), cols=len(models), shared_yaxes=True,
        subplot_titles=[f"{m} · toward {t}" for t in targets for m in models],
    )
    low, high = float(df[metric].min()), float(df[metric].max())
    for i, target in enumerate(targets):
        for j, model in enumerate(models):
            cell = df[(df["model"] == model) & (df["target"] == target)]
            grid = cell.pivot_table(index="layer", columns="position", values=metric).reindex(index=layers, columns=positions)
            fig.add_trace(
                go.Heatmap(
                    z=grid.values, x=positions, y=[str(x) for x in layers], zmin=low, zmax=high,
                    coloraxis="coloraxis", hovertemplate="layer %{y}, %{x}: %{z:.3f}<extra></extra>",
                ),
                row=i + 1, col=j + 1,
            )
    fig.update_layout(
        title=f"{metric} · {direction} · {component}", coloraxis={"colorscale": "Viridis"},
        height=260 * len(targets) + 80, width=max(420, 360 * len(models)),
    )
    fig.update_yaxes(title_text="layer", col=1)
    return fig


def setups(
    subjects: Mapping[str, Subject] | Sequence[Subject],
    examples: Sequence[Example],
    config: PatchConfig,
    labels: Mapping[str, str] | None = None,
) -> Iterator[tuple[Setup, pd.DataFrame]]:
    """A Setup per (subject, direction) with that subject's answers table.

    Pairs are drawn once (from the first subject's tokenization) and shared by every subject. Without
    `labels` (object_id -> M1's response) the first subject's own answers are the M1 labels.
    """
    named = model_labels(subjects)
    if not named:
        raise SelfsimError("no subjects given")
    if not examples:
        raise SelfsimError("no examples given")
    first = next(iter(named.values()))
    index_pairs: list[tuple[int, int]] | None = None
    for label, subject in named.items():
        config.layers_for(subject)
        matched = match_all(subject, examples)
        if index_pairs is None:
            index_pairs = pair_up(matched, config.seed)
            if not index_pairs:
                raise SelfsimError("no matched pairs: every property needs at least two distinct object prompts")
        tracer = get_tracer(subject, config.backend)
        answers = greedy_answers(subject, matched, config.max_new_tokens)
        if labels is None and subject is first:
            labels = {m.example.object_id: a for m, a in zip(matched, answers)}
        assert labels is not None  # given, or set from the first subject above
        table = pd.DataFrame(
            {
                "model": label,
                "object_id": [m.example.object_id for m in matched],
                "example_id": [m.example.id for m in matched],
                "answer": answers,
                "m1_answer": [labels.get(m.example.object_id) for m in matched],
            }
        )
        for direction in config.directions:
            yield prepare(subject, tracer, label, matched, index_pairs, direction, answers, labels, config.max_rows), table


def run_patching(
    subjects: Mapping[str, Subject] | Sequence[Subject],
    examples: Sequence[Example],
    config: PatchConfig | None = None,
    labels: Mapping[str, str] | None = None,
    progress: bool = False,
) -> PatchResult:
    """The patching study on every subject (e.g. untrained, self- and cross-trained), side by side."""
    config = config or PatchConfig()
    frames, answers = [], {}
    for setup, table in setups(subjects, examples, config, labels):
        layers = config.layers_for(setup.subject)
        frames.append(patch_rows(setup, config.components, layers, config.positions, progress,
                                 metrics=config.metrics, resume=config.resume))
        answers[setup.model] = table
    rows = pd.concat(frames, ignore_index=True)
    return PatchResult(rows=rows, answers=pd.concat(answers.values(), ignore_index=True), config=config)
