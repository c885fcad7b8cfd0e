"""Attribution patching: a first-order estimate of every single-position patch from one forward/backward.

For a recipient run with activation a_r at (site, position) and the donor's aligned activation a_d,
exact patching measures the change of a differentiable registered metric m (default logit_diff =
logit(donor token) - logit(recipient token), the same function patching uses) at the final position. Attribution patching estimates it as (a_d - a_r) . dm/da_r, with the
gradient taken in the unpatched recipient run: one forward/backward over the recipients (reading
every site) and one read pass over the donors give estimates for all layers x positions at once.
The gradient of the metric summed over rows is each row's own gradient (rows do not interact).
`compare_with_exact` ranks the estimates against exact single-position patching (`positions="each"`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pandas as pd
import torch

from selfsim.errors import SelfsimError
from selfsim.examples import Example
from selfsim.interp.metrics import ATTRIBUTION_METRIC, METRICS, Metric
from selfsim.interp.metrics import metric as metric_named
from selfsim.interp.patching import PatchConfig, Setup, chunks, setups

if TYPE_CHECKING:
    from selfsim.models import Subject

CELL_KEYS = ["model", "direction", "component", "target", "layer", "position", "order"]


@contextmanager
def grad_from_embeddings(subject: Subject) -> Iterator[None]:
    """Make the embedding output require grad, so activations join the graph even with frozen weights."""
    handle = subject.base.get_input_embeddings().register_forward_hook(lambda m, i, out: out.requires_grad_(True))
    try:
        with torch.enable_grad():
            yield
    finally:
        handle.remove()


def attribution_rows(setup: Setup, components: Sequence[str], layers: Sequence[int], target: str = "own",
                     metric: str = ATTRIBUTION_METRIC) -> pd.DataFrame:
    """Estimated change of `metric` (a differentiable registered metric, default logit_diff) for every
    pair x component x layer x single aligned position."""
    if target not in setup.tokens:
        raise SelfsimError(f"unknown target {target!r}; valid targets are {', '.join(setup.tokens)}")
    fn = differentiable(metric).fn
    sites = {(c, layer): setup.subject.site(layer, c) for c in components for layer in layers}
    site_list = sorted(set(sites.values()))
    donor_acts = setup.donor_activations(site_list)
    tokens = setup.tokens[target]
    informative = (tokens[:, 0] >= 0) & (tokens[:, 1] >= 0) & (tokens[:, 0] != tokens[:, 1])
    # Flat (pair, slot) index of every single aligned position, in slot order per pair.
    flat = [(k, slot) for k in range(setup.n_pairs) for slot in setup.slots[k]]
    pair_of = torch.tensor([k for k, _ in flat], dtype=torch.long)
    rpos = torch.tensor([slot.recipient for _, slot in flat], dtype=torch.long)
    dpos = torch.tensor([slot.donor for _, slot in flat], dtype=torch.long)
    estimates = {key: torch.full((len(flat),), float("nan")) for key in sites}
    for pairs in chunks(range(setup.n_pairs), setup.max_rows):
        idx = torch.tensor(pairs)
        with grad_from_embeddings(setup.subject):
            out = setup.tracer.run(setup.recipients.select(pairs), read=site_list, last_only=True)
            logits = out.logits[:, -1].float()
            tok = tokens[idx].to(logits.device)
            value = fn(logits, tok[:, 0], tok[:, 1])
            keep = informative[idx].to(logits.device)
            objective = torch.where(keep, value, torch.zeros_like(value)).sum()
            acts = [out.activations[s] for s in site_list]
            grads = torch.autograd.grad(objective, acts, allow_unused=True)
        by_site = {s: (a.detach(), g) for s, a, g in zip(site_list, acts, grads)}
        local = {k: row for row, k in enumerate(pairs)}
        chosen = torch.tensor([i for i, (k, _) in enumerate(flat) if k in local and informative[k]], dtype=torch.long)
        if not len(chosen):
            continue
        rows = torch.tensor([local[int(pair_of[i])] for i in chosen.tolist()], dtype=torch.long)
        for key, site in sites.items():
            act, grad = by_site[site]
            if grad is None:
                continue
            r, p = rows.to(act.device), rpos[chosen].to(act.device)
            donor = donor_acts[site][pair_of[chosen], dpos[chosen]].to(act.device, torch.float32)
            estimates[key][chosen] = ((donor - act[r, p].float()) * grad[r, p].float()).sum(-1).cpu()
    frames = []
    for (component, layer), values in estimates.items():
        frames.append(pd.DataFrame({
            "model": setup.model,
            "direction": setup.direction,
            "component": component,
            "target": target,
            "layer": layer,
            "position": [slot.label for _, slot in flat],
            "order": [slot.order for _, slot in flat],
            "pair": pair_of.tolist(),
            "informative": informative[pair_of].tolist(),
            "estimate": values.tolist(),
        }))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*CELL_KEYS, "pair", "informative", "estimate"])


def differentiable(name: str) -> Metric:
    """The registered metric `name`, if attribution can differentiate it (else a one-line SelfsimError)."""
    m = metric_named(name)
    if not m.differentiable:
        valid = ", ".join(n for n, x in METRICS.items() if x.differentiable)
        raise SelfsimError(f"metric {name!r} is not differentiable; attribution takes {valid}")
    return m


def run_attribution(
    subjects: Mapping[str, Subject] | Sequence[Subject],
    examples: Sequence[Example],
    config: PatchConfig | None = None,
    labels: Mapping[str, str] | None = None,
    target: str = "own",
    metric: str = ATTRIBUTION_METRIC,
) -> pd.DataFrame:
    """Attribution estimates of `metric` for every subject and direction of `config`, over all its layers and positions."""
    config = config or PatchConfig()
    differentiable(metric)
    frames = [
        attribution_rows(setup, config.components, config.layers_for(setup.subject), target, metric)
        for setup, _ in setups(subjects, examples, config, labels)
    ]
    return pd.concat(frames, ignore_index=True)


def _spearman(a: pd.Series, b: pd.Series) -> float:
    return float(a.rank().corr(b.rank())) if len(a) > 1 else float("nan")


def compare_with_exact(attribution: pd.DataFrame, exact: pd.DataFrame, metric: str = ATTRIBUTION_METRIC) -> pd.DataFrame:
    """Spearman correlation of estimated vs exact changes of `metric` per model, direction, component and target.

    `spearman_cells` ranks the layer x position means over informative pairs; `spearman_rows` ranks
    single (pair, layer, position) effects. `exact` holds patching rows from `positions="each"`.
    """
    if metric not in exact.columns:
        raise SelfsimError(f"the exact patching rows have no {metric!r} column: run exact patching with that metric")
    ex = exact[exact["informative"]].assign(effect=lambda d: d[metric] - d[f"{metric}_clean"])
    at = attribution[attribution["informative"]]
    if ex.empty or at.empty:
        raise SelfsimError("no informative pair: donor and recipient values coincide or are missing for every pair")
    joined = at.merge(ex[[*CELL_KEYS, "pair", "effect"]], on=[*CELL_KEYS, "pair"], how="inner")
    if joined.empty:
        raise SelfsimError("no (pair, layer, position) is in both tables: run exact patching with positions='each'")
    out = []
    for key, rows in joined.groupby(["model", "direction", "component", "target"], sort=False):
        cells = rows.groupby(["layer", "position"])[["estimate", "effect"]].mean()
        out.append(
            dict(
                zip(["model", "direction", "component", "target"], key),
                n_cells=len(cells),
                n_rows=len(rows),
                spearman_cells=_spearman(cells["estimate"], cells["effect"]),
                spearman_rows=_spearman(rows["estimate"], rows["effect"]),
            )
        )
    return pd.DataFrame(out)
