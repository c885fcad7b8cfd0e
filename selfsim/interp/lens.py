"""Logit lens: read each layer's residual stream through the final norm and the unembedding.

At the final position of a run, layer l's output h_l is mapped to `lm_head(norm(h_l))`; for the
last layer this is exactly the model's own logits. On hypothetical runs we ask at which depth the
first token of the object-level answer M(P) surfaces (its rank, 0 = top, and its probability), for
the model's own answer and for M1's, and compare with the object run on P, where that token is the
answer itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import pandas as pd
import torch

from selfsim.errors import SelfsimError
from selfsim.interp.backends.registry import DEFAULT_BACKEND

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from selfsim.examples import Example
    from selfsim.interp.pairs import Prompt
    from selfsim.models import Subject


def lens_logits(subject: Subject, resid: torch.Tensor) -> torch.Tensor:
    """Logits `[..., vocab]` of residual vectors `[..., d]`: the final norm, then the unembedding."""
    norm = subject.module("model.norm")
    head = cast(torch.nn.Linear, subject.base.get_output_embeddings())  # a causal LM has an LM head
    h = norm(resid.to(next(norm.parameters()).device))
    return head(h.to(head.weight.device))


@dataclass
class LensResult:
    """Per prompt and layer: the target token's rank (0 = top) and probability, and the lens's top token."""

    layers: list[int]
    ranks: torch.Tensor
    probs: torch.Tensor
    top: torch.Tensor


def logit_lens(
    subject: Subject,
    texts: Sequence[str],
    targets: Sequence[int],
    *,
    layers: Sequence[int] | None = None,
    backend: str = DEFAULT_BACKEND,
    batch_size: int = 32,
) -> LensResult:
    """The lens at the final position of each rendered prompt, scored against one target token id each."""
    from selfsim.interp.tracing import encode, get_tracer

    if len(texts) != len(targets):
        raise SelfsimError(f"{len(texts)} prompts but {len(targets)} target tokens")
    layers = list(range(subject.n_layers)) if layers is None else [subject.check_layer(x) for x in layers]
    sites = [subject.site(x) for x in layers]
    tracer = get_tracer(subject, backend)
    ranks, probs, tops = [], [], []
    with torch.inference_mode():
        for b0 in range(0, len(texts), batch_size):
            acts = tracer.run(encode(subject, texts[b0 : b0 + batch_size]), read=sites, last_only=True).activations
            resid = torch.stack([acts[s][:, -1].to(acts[sites[0]].device) for s in sites], dim=1)
            logits = lens_logits(subject, resid).float()
            target = torch.as_tensor(list(targets[b0 : b0 + batch_size]), device=logits.device)[:, None, None]
            chosen = logits.gather(-1, target.expand(-1, len(sites), 1))
            ranks.append((logits > chosen).sum(-1).cpu())
            probs.append(logits.softmax(-1).gather(-1, target.expand(-1, len(sites), 1)).squeeze(-1).cpu())
            tops.append(logits.argmax(-1).cpu())
    return LensResult(layers, torch.cat(ranks), torch.cat(probs), torch.cat(tops))


def lens_study(
    subjects: Mapping[str, Subject] | Sequence[Subject],
    examples: Sequence[Example],
    *,
    m1_first_tokens: Sequence[str | None] | None = None,
    layers: Sequence[int] | None = None,
    backend: str = DEFAULT_BACKEND,
) -> pd.DataFrame:
    """Tidy lens results: one row per (subject, run kind, label source, layer) with mean rank, prob, top-1 rate.

    The target is the first token of the object-level answer: the subject's own (its argmax next
    token on P) and M1's (`m1_first_tokens`, strings; default: the first subject's own). Subjects
    are a {label: Subject} mapping or a list.
    """
    from selfsim.interp.answers import model_labels
    from selfsim.interp.pairs import match_all

    records = []
    for label, subject in model_labels(subjects).items():
        matched = match_all(subject, examples)
        obj_texts = [m.object.text for m in matched]
        hyp_texts = [m.hypothetical.text for m in matched]
        own = logit_lens(subject, obj_texts, [0] * len(obj_texts), layers=[subject.n_layers - 1], backend=backend).top[:, 0]
        if m1_first_tokens is None:
            m1_first_tokens = [subject.tokenizer.decode([t]).strip() for t in own.tolist()]
        m1 = torch.as_tensor([_token_id(subject, m.object, t) for m, t in zip(matched, m1_first_tokens)])
        for source, tokens in (("own", own), ("m1", m1)):
            keep = (tokens >= 0).nonzero().squeeze(1).tolist()
            for kind, texts in (("object", obj_texts), ("hypothetical", hyp_texts)):
                res = logit_lens(subject, [texts[i] for i in keep], tokens[keep].tolist(), layers=layers, backend=backend)
                for j, layer in enumerate(res.layers):
                    records.append({
                        "subject": label, "kind": kind, "labels": source, "layer": layer, "n": len(keep),
                        "mean_rank": float(res.ranks[:, j].float().mean()),
                        "median_rank": float(res.ranks[:, j].float().median()),
                        "prob": float(res.probs[:, j].mean()),
                        "top1": float((res.ranks[:, j] == 0).float().mean()),
                    })
    return pd.DataFrame.from_records(records)


def _token_id(subject: Subject, prompt: Prompt, token: str | None) -> int:
    """The first token id of `token` as it continues the object prompt (`answers.value_token`), or -1."""
    from selfsim.interp.answers import value_token

    try:
        return value_token(subject, prompt, token)
    except SelfsimError:
        return -1


def lens_figure(results: pd.DataFrame, metric: str = "top1") -> go.Figure:
    """Per-layer curves of a lens metric: a panel per label source; colour = subject, dash = run kind."""
    import plotly.express as px

    if results.empty:
        raise SelfsimError("no lens results to plot")
    fig = px.line(results, x="layer", y=metric, color="subject", line_dash="kind", facet_col="labels", markers=True,
                  title=f"Logit lens at the final position: {metric} of the object-level answer's first token")
    return fig
