"""Attribution patching: a first-order estimate of every single-position patch from one forward/backward.

For a recipient run with activation a_r at (site, position) and the donor's aligned activation a_d,
exact patching measures the change of a differentiable registered metric m (default logit_diff =
logit(donor token) - logit(recipient token), the same function patching uses) at the final position. Attribution patching estimates it as (a_d - a_r) . dm/da_r, with the
gradient taken in the unpatched recipient run: one forward/backward over the recipients (reading
every site) and one read pass over the donors give estimates for all layers x positions at once.
The gradient of the metric summed over rows is each row's own gradient (rows do not interact).
`compare_with_exact` ranks the estimates against exact single-position patching (`positions="each"`).

`method="atp*"` applies AtP*'s QK fix (Kramar et al. 2024): a resid or mlp patch at layer L enters the residual
stream at one position, and the next layer's attention block (its norm, queries, keys, values and softmax) is
recomputed exactly with the patched residual, so saturated attention patterns are not linearised; only what
lies downstream of that block (and the residual path into it) is. On the last layer, and for attn patches
(whose change passes the layer's MLP first), atp* equals atp.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

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
METHODS = ("atp", "atp*")
DEFAULT_METHOD = "atp*"
QK_COMPONENTS = ("resid", "mlp")


@contextmanager
def grad_from_embeddings(subject: Subject) -> Iterator[None]:
    """Make the embedding output require grad, so activations join the graph even with frozen weights."""
    handle = subject.base.get_input_embeddings().register_forward_hook(lambda m, i, out: out.requires_grad_(True))
    try:
        with torch.enable_grad():
            yield
    finally:
        handle.remove()


@contextmanager
def next_attention_inputs(subject: Subject, layers: Sequence[int]) -> Iterator[dict[int, dict[str, torch.Tensor]]]:
    """Capture, for each layer L in `layers`, layer L+1's rotary cos/sin, attention output before o_proj (`z`)
    and residual stream after attention (`mid`), the latter two as graph tensors."""
    captured: dict[int, dict[str, torch.Tensor]] = {layer: {} for layer in layers}
    handles = []

    def keep(layer: int, name: str):
        def hook(module, args, kwargs=None):
            if name == "rotary":
                cos, sin = (kwargs or {})["position_embeddings"]
                captured[layer]["cos"], captured[layer]["sin"] = cos, sin
            else:
                captured[layer][name] = args[0] if args else next(iter((kwargs or {}).values()))
        return hook

    try:
        for layer in layers:
            block: Any = subject.module(f"model.layers.{layer + 1}")
            handles.append(block.register_forward_pre_hook(keep(layer, "rotary"), with_kwargs=True))
            handles.append(block.self_attn.o_proj.register_forward_pre_hook(keep(layer, "z")))
            handles.append(block.post_attention_layernorm.register_forward_pre_hook(keep(layer, "mid")))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def attention_qkv(block: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A Llama decoder block's rotated queries, keys and values [n, heads, T, head_dim] (keys and values
    repeated per query head) for residual input x [n, T, d] and rotary cos/sin [n, T, head_dim]."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

    attn = block.self_attn
    n, t, _ = x.shape
    h = block.input_layernorm(x)
    q, k, v = (proj(h).view(n, t, -1, attn.head_dim).transpose(1, 2) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    return q, repeat_kv(k, attn.num_key_value_groups), repeat_kv(v, attn.num_key_value_groups)


def qk_fixed(block: Any, x: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor, delta: torch.Tensor,
             cos: torch.Tensor, sin: torch.Tensor, allowed: torch.Tensor, grad_z: torch.Tensor,
             grad_mid: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """AtP* estimates of adding delta [n, d] to the residual x [B, T, d] at (rows, positions) [n]: the next
    attention block's softmax exactly (eager; `allowed` [B, T, T] marks readable keys), first order after it
    (grad_z [B, T, heads*head_dim] of its pre-o_proj output, grad_mid [n, d] of the residual after it)."""
    with torch.no_grad():
        x, cos, sin = x.float(), cos.float(), sin.float()
        q, k, v = attention_qkv(block, x, cos, sin)
        scale = block.self_attn.scaling
        hidden = ~allowed[:, None]
        low = torch.finfo(q.dtype).min
        scores = (q @ k.transpose(2, 3)) * scale
        z = scores.masked_fill(hidden, low).softmax(-1) @ v
        out = torch.empty(len(rows))
        for s in range(0, len(rows), chunk):
            r, p, d = rows[s:s + chunk], positions[s:s + chunk], delta[s:s + chunk].float()
            m = torch.arange(len(r))
            qp, kp, vp = attention_qkv(block, (x[r, p] + d)[:, None], cos[r, p][:, None], sin[r, p][:, None])
            new = scores[r].clone()
            new[m, :, :, p] = (q[r] @ kp.transpose(2, 3)).squeeze(-1) * scale
            row = (qp @ k[r].transpose(2, 3)).squeeze(2) * scale
            row[m, :, p] = (qp * kp).sum(-1).squeeze(-1) * scale
            new[m, :, p, :] = row
            values = v[r].clone()
            values[m, :, p, :] = vp.squeeze(2)
            dz = (new.masked_fill(hidden[r], low).softmax(-1) @ values - z[r]).transpose(1, 2).flatten(2)
            out[s:s + chunk] = ((dz * grad_z[r].float()).sum((1, 2)) + (d * grad_mid[s:s + chunk].float()).sum(-1)).cpu()
    return out


def attribution_rows(setup: Setup, components: Sequence[str], layers: Sequence[int], target: str = "own",
                     metric: str = ATTRIBUTION_METRIC, method: str = DEFAULT_METHOD) -> pd.DataFrame:
    """Estimated change of `metric` (a differentiable registered metric, default logit_diff) for every
    pair x component x layer x single aligned position, by `method` (atp, or atp* with the QK fix)."""
    if target not in setup.tokens:
        raise SelfsimError(f"unknown target {target!r}; valid targets are {', '.join(setup.tokens)}")
    if method not in METHODS:
        raise SelfsimError(f"unknown attribution method {method!r}; valid methods are {', '.join(METHODS)}")
    fn = differentiable(metric).fn
    n_layers = setup.subject.n_layers
    fixed = sorted({layer for layer in layers if layer + 1 < n_layers}) if method == "atp*" and any(
        c in QK_COMPONENTS for c in components) else []
    if fixed and not all(hasattr(setup.subject.module(f"model.layers.{layer + 1}"), "self_attn") for layer in fixed):
        raise SelfsimError(f"atp* needs Llama-style decoder layers (self_attn); {setup.model} has none, use method='atp'")
    resid_sites = {layer: setup.subject.site(layer) for layer in fixed}
    sites = {(c, layer): setup.subject.site(layer, c) for c in components for layer in layers}
    site_list = sorted(set(sites.values()) | set(resid_sites.values()))
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
        batch = setup.recipients.select(pairs)
        with grad_from_embeddings(setup.subject), next_attention_inputs(setup.subject, fixed) as captured:
            out = setup.tracer.run(batch, read=site_list, last_only=True)
            logits = out.logits[:, -1].float()
            tok = tokens[idx].to(logits.device)
            value = fn(logits, tok[:, 0], tok[:, 1])
            keep = informative[idx].to(logits.device)
            objective = torch.where(keep, value, torch.zeros_like(value)).sum()
            acts = [out.activations[s] for s in site_list]
            graph = [captured[layer].get(name) for layer in fixed for name in ("z", "mid")]
            if any(t is None or not t.requires_grad for t in graph) or any("cos" not in captured[la] for la in fixed):
                raise SelfsimError("atp* could not follow the next attention block with backend "
                                   f"{type(setup.tracer).__name__}; use method='atp' or the hooks backend")
            grads = torch.autograd.grad(objective, acts + cast("list[torch.Tensor]", graph), allow_unused=True)
        by_site = {s: (a.detach(), g) for s, a, g in zip(site_list, acts, grads)}
        next_grads = {layer: (grads[len(acts) + 2 * j], grads[len(acts) + 2 * j + 1]) for j, layer in enumerate(fixed)}
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
            delta = donor - act[r, p].float()
            component, layer = key
            if component in QK_COMPONENTS and layer in next_grads and next_grads[layer][0] is not None:
                grad_z, grad_mid = next_grads[layer]
                x = by_site[resid_sites[layer]][0]
                mask = batch.attention_mask.to(x.device).bool()
                causal = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).tril()
                allowed = causal[None] & mask[:, None, :]
                cos, sin = (captured[layer][n].detach().expand(len(pairs), -1, -1) for n in ("cos", "sin"))
                block = setup.subject.module(f"model.layers.{layer + 1}")
                estimates[key][chosen] = qk_fixed(block, x, r, p, delta, cos, sin, allowed, grad_z, grad_mid[r, p])
            else:
                estimates[key][chosen] = (delta * grad[r, p].float()).sum(-1).cpu()
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
    method: str = DEFAULT_METHOD,
) -> pd.DataFrame:
    """Attribution estimates of `metric` by `method` for every subject and direction of `config`, over all its layers and positions."""
    config = config or PatchConfig()
    differentiable(metric)
    if method not in METHODS:
        raise SelfsimError(f"unknown attribution method {method!r}; valid methods are {', '.join(METHODS)}")
    frames = [
        attribution_rows(setup, config.components, config.layers_for(setup.subject), target, metric, method)
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
