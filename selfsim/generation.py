"""Batched decoding with a KV cache: greedy or seeded sampling, one budget and one seed per row.

How a batch runs. Each request is a rendered prompt (token ids), a sample index (-1 = greedy) and a
token budget. The batch's distinct prompts are left-padded and run once (prefill, keeping only the last
position's logits); the KV cache is then indexed so that every request gets its own copy of its
prompt's cache (N samples of one prompt share one prefill). Each decode step feeds one token per live
row with explicit `position_ids` (pads do not count), so a left-padded row sees exactly the positions
and keys it would see alone. A row stops at an end-of-sequence token or at its own budget; finished
rows are dropped from the cache, so long and short budgets can share a batch.

Greedy picks the arg-max token, as `model.generate(do_sample=False)` does: batched greedy output equals
a one-prompt-at-a-time loop. Sampling is ancestral at temperature T by inverse-CDF: every request owns a
CPU `torch.Generator` seeded from (seed, prompt key, sample index) and draws one uniform number per
token; the token is where that number falls in the cumulative softmax(logits / T). The draws therefore
depend on the request alone, never on batch size, batch order or device, so the same seed gives the
same samples however the run is batched or resumed.

Inputs go to `subject.input_device` and new tokens follow them there; logits are read wherever the
LM head lives, so a model split with `device_map` runs unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from selfsim.batching import left_pad
from selfsim.budget import DEFAULT_MAX_NEW_TOKENS
from selfsim.errors import SelfsimError

if TYPE_CHECKING:
    import torch

    from selfsim.models import Subject

GREEDY = -1


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings shared by collect and predict: sampling, budget override, seed, batch size."""

    samples: int = 0
    temperature: float = 1.0
    max_new_tokens: int | None = None
    seed: int = 0
    batch_size: int = 16

    def check(self) -> GenerationConfig:
        """Return self, or raise a SelfsimError naming the bad setting."""
        if self.samples < 0:
            raise SelfsimError(f"samples must be >= 0, got {self.samples}")
        if self.samples and not self.temperature > 0:
            raise SelfsimError(f"sampling needs a temperature > 0, got {self.temperature} (greedy rows are always collected)")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise SelfsimError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise SelfsimError(f"batch_size must be >= 1, got {self.batch_size}")
        return self


def sample_seed(seed: int, key: str, sample: int) -> int:
    """The generator seed of one request: a hash of (run seed, prompt key, sample index)."""
    digest = hashlib.sha256(f"{seed}/{key}/{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


@dataclass(frozen=True)
class Request:
    """One generation: prompt token ids, sample index (-1 greedy), token budget and sampling seed."""

    key: str
    ids: tuple[int, ...]
    sample: int = GREEDY
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Generation:
    """What a request produced: decoded text (special tokens stripped), new tokens, why it stopped."""

    response: str
    tokens: tuple[int, ...]
    finish: str  # "eos" or "length"


def context_limit(subject: Subject, max_new_tokens: int) -> int | None:
    """Longest prompt that leaves room for `max_new_tokens`, or None when the config sets no limit."""
    n_ctx = getattr(subject.config, "max_position_embeddings", None)
    return None if n_ctx is None else max(1, int(n_ctx) - max_new_tokens)


def encode_prompt(subject: Subject, text: str, max_new_tokens: int) -> tuple[tuple[int, ...], bool]:
    """Token ids of a rendered prompt, cut from the left to fit the context; (ids, truncated)."""
    ids = subject.tokenizer(text, add_special_tokens=False)["input_ids"]
    limit = context_limit(subject, max_new_tokens)
    if limit is not None and len(ids) > limit:
        return tuple(ids[-limit:]), True
    return tuple(ids), False


def stop_ids(subject: Subject) -> set[int]:
    """Token ids that end a response: the tokenizer's and the generation config's EOS tokens."""
    ids = {subject.tokenizer.eos_token_id}
    eos = getattr(getattr(subject.base, "generation_config", None), "eos_token_id", None)
    ids.update(eos if isinstance(eos, (list, tuple)) else [eos])
    ids.discard(None)
    if not ids:
        raise SelfsimError(f"{subject.name} defines no end-of-sequence token; generation could not stop")
    return ids


def generate_batch(subject: Subject, requests: list[Request]) -> list[Generation]:
    """Run one batch of requests (see the module docstring); results in request order."""
    import torch

    if not requests:
        return []
    device = subject.input_device
    pad_id = subject.tokenizer.pad_token_id
    stops = torch.tensor(sorted(stop_ids(subject)), device=device)
    prompts = list(dict.fromkeys(r.ids for r in requests))
    ids, mask = left_pad(prompts, pad_id)
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    generators = [_generator(r) for r in requests]
    temperature = torch.tensor([r.temperature for r in requests], dtype=torch.float32)
    budget = torch.tensor([r.max_new_tokens for r in requests], device=device)
    out_tokens: list[list[int]] = [[] for _ in requests]
    finish = ["length"] * len(requests)

    with torch.inference_mode():
        out = subject.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        prompt_row = {p: i for i, p in enumerate(prompts)}
        row_of = torch.tensor([prompt_row[r.ids] for r in requests])
        cache.batch_select_indices(row_of)
        logits = out.logits[row_of.to(out.logits.device), -1, :]
        mask, positions = mask[row_of.to(device)], positions[row_of.to(device), -1:]
        live = torch.arange(len(requests))  # request index of each remaining row
        step = 0
        while True:
            nxt = _choose(logits, temperature[live], [generators[i] for i in live.tolist()]).to(device)
            step += 1
            ended = torch.isin(nxt, stops)
            for row, (req, tok, end) in enumerate(zip(live.tolist(), nxt.tolist(), ended.tolist())):
                if end:
                    finish[req] = "eos"
                else:
                    out_tokens[req].append(tok)
            keep = ~(ended | (step >= budget[live.to(device)]))
            if not keep.any():
                break
            if not keep.all():
                rows = keep.nonzero().squeeze(-1)
                cache.batch_select_indices(rows)
                live, nxt, mask, positions = live[rows.cpu()], nxt[rows], mask[rows], positions[rows]
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=-1)
            positions = positions + 1
            out = subject.model(
                input_ids=nxt.unsqueeze(-1), attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True
            )
            cache, logits = out.past_key_values, out.logits[:, -1, :]
    decode = subject.tokenizer.decode
    return [Generation(decode(t, skip_special_tokens=True), tuple(t), f) for t, f in zip(out_tokens, finish)]


def _generator(request: Request) -> torch.Generator | None:
    import torch

    if request.temperature <= 0:
        return None
    return torch.Generator().manual_seed(sample_seed(request.seed, request.key, request.sample))


def _choose(logits: torch.Tensor, temperature: torch.Tensor, generators: list[torch.Generator | None]) -> torch.Tensor:
    """Next token per row: arg-max where temperature is 0, else an inverse-CDF draw from its generator."""
    import torch

    choice = logits.argmax(dim=-1)
    sampled = [i for i, g in enumerate(generators) if g is not None]
    if sampled:
        rows = torch.tensor(sampled, device=logits.device)
        t = temperature[sampled].to(logits.device).unsqueeze(-1)
        cdf = torch.softmax(logits[rows].float() / t, dim=-1).double().cumsum(dim=-1)
        u = torch.cat([torch.rand(1, generator=generators[i], dtype=torch.float64) for i in sampled])
        target = (u.to(logits.device) * cdf[:, -1]).unsqueeze(-1)
        drawn = torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp(max=cdf.shape[-1] - 1)
        choice[rows] = drawn
    return choice
