"""Sparse autoencoders on the residual stream: train (sae-lens), save/load, and the answer latents.

Training: a TopK SAE (sae-lens `TopKTrainingSAE` + `SAETrainer`) is fed activation batches streamed
from an activation cache (`selfsim.interp.cache`), one shard in memory at a time, drawn only from
the training prompts. It is saved in sae-lens's own inference format (`cfg.json` +
`sae_weights.safetensors`) and always used as reloaded by `SAE.load_from_disk`, so a published
Llama SAE in a local directory loads the same way (`load_sae`).

Quality, on held-out prompts: FVU = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 (1 - sae-lens's
explained variance) and the dead share (latents that never fire on held-out data; sae-lens's own
training-time count, latents silent for `dead_window` steps, is reported beside it).

Answer latents: on the object runs of the training prompts, each answer class c (e.g. a first
token) gets the latent whose activation best separates c from the rest (standardized mean
difference). On held-out prompts that latent is read in the object run and in the hypothetical run
on H(P, f): one-vs-rest AUROC per class, and a readout accuracy (the class whose latent is most
active, in z-units of the object runs). Latents that carry M(P) in both runs are what
self-simulation predicts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from selfsim.errors import SelfsimError
from selfsim.interp.backends.registry import DEFAULT_BACKEND
from selfsim.io import read_json, write_json

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from sae_lens import SAE

    from selfsim.examples import Example
    from selfsim.interp.cache import ActivationCache
    from selfsim.models import Subject

@dataclass
class SAEConfig:
    """A TopK SAE and its training run: width, k, steps, batch size, learning rate, seed, dead window."""

    d_sae: int = 512
    k: int = 16
    steps: int = 300
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0
    dead_window: int = 100
    normalize: str = "expected_average_only_in"

    def __post_init__(self) -> None:
        if not 0 < self.k <= self.d_sae or self.steps < 1 or self.batch_size < 1:
            raise SelfsimError(f"need 0 < k <= d_sae and positive steps and batch size (k={self.k}, d_sae={self.d_sae})")


def load_sae(path: str | Path, device: str = "cpu") -> SAE:
    """An SAE in sae-lens's disk format (cfg.json + sae_weights.safetensors), trained here or published."""
    from sae_lens import SAE

    path = Path(path)
    if not (path / "cfg.json").is_file() or not (path / "sae_weights.safetensors").is_file():
        raise SelfsimError(f"{path} is not an sae-lens SAE directory (needs cfg.json and sae_weights.safetensors)")
    return SAE.load_from_disk(str(path), device=device)


def row_batches(caches: Sequence[ActivationCache], site: str, rows: np.ndarray, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless shuffled float32 batches `[batch, d]` of `site` over the given rows (all positions), a shard at a time."""
    keep = np.zeros(caches[0].n_rows, dtype=bool)
    keep[rows] = True
    if not keep.any():
        raise SelfsimError("no rows to train the SAE on")
    g = torch.Generator().manual_seed(seed)
    carry: torch.Tensor | None = None
    while True:
        for cache in caches:
            for shard_rows, tensors in cache.iter_shards([site]):
                x = tensors[site][torch.from_numpy(keep[shard_rows.start : shard_rows.stop])]
                x = x.reshape(-1, x.shape[-1]).float()
                x = x[torch.randperm(len(x), generator=g)]
                if carry is not None:
                    x = torch.cat([carry, x])
                n_full = len(x) // batch_size * batch_size
                yield from x[:n_full].split(batch_size)
                carry = x[n_full:]


def train_sae(
    batches: Iterator[torch.Tensor],
    d_in: int,
    out_dir: str | Path,
    config: SAEConfig,
    *,
    hook_name: str,
    model_name: str,
) -> tuple[SAE, dict[str, float]]:
    """Train a TopK SAE on `batches`, save it in sae-lens format to `out_dir`, and return it reloaded.

    The stats are sae-lens's own at the end of training: `l0_train` and `dead_share_train`.
    """
    from sae_lens import LoggingConfig, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(config.seed)
    sae_cfg = TopKTrainingSAEConfig(
        d_in=d_in, d_sae=config.d_sae, k=config.k, dtype="float32", device="cpu", normalize_activations=config.normalize,  # pyright: ignore[reportArgumentType]  # a str from SAEConfig; sae-lens checks the name
        metadata=SAEMetadata(hook_name=hook_name, model_name=model_name),
    )
    trainer_cfg = SAETrainerConfig(
        total_training_samples=config.steps * config.batch_size, train_batch_size_samples=config.batch_size,
        lr=config.lr, lr_end=config.lr, dead_feature_window=config.dead_window, feature_sampling_window=10 * config.steps,
        n_batches_for_norm_estimate=min(50, config.steps), logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = SAETrainer(trainer_cfg, TopKTrainingSAE(sae_cfg), batches)
    trained = trainer.fit()
    stats = {"l0_train": float(cast(float, trained.cfg.metadata.l0)), "dead_share_train": float(trainer.dead_neurons.float().mean())}
    out = Path(out_dir)
    trained.save_inference_model(out)
    _stabilize_saved(out)
    return load_sae(out), stats


def _stabilize_saved(out: Path) -> None:
    """Same training, same bytes: `cfg.json` as key-sorted JSON, safetensors headers with sorted metadata."""
    from selfsim.io import clean_orphans, stabilize_safetensors

    clean_orphans(out)
    write_json(out / "cfg.json", read_json(out / "cfg.json"))
    for path in sorted(out.glob("*.safetensors")):
        stabilize_safetensors(path)


@torch.no_grad()
def encode_latents(sae: SAE, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Latent activations `[N, d_sae]` of activations `[N, d]`."""
    return torch.cat([a for a, _ in _chunks(sae, x, batch_size, decode=False)])


@torch.no_grad()
def reconstruct(sae: SAE, x: torch.Tensor, batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents `[N, d_sae]` and reconstructions `[N, d]` (decode right after encode, chunk by chunk)."""
    parts = list(_chunks(sae, x, batch_size, decode=True))
    return torch.cat([a for a, _ in parts]), torch.cat([r for _, r in parts])


def _chunks(sae: SAE, x: torch.Tensor, batch_size: int, decode: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    dtype = next(sae.parameters()).dtype
    for i in range(0, len(x), batch_size):
        acts = sae.encode(x[i : i + batch_size].to(sae.device, dtype))
        recon = sae.decode(acts).cpu() if decode else torch.empty(0)
        yield acts.cpu(), recon


@dataclass
class Quality:
    """Streaming held-out FVU and dead share: add batches, then read `fvu` and `dead_share`."""

    d_sae: int
    sum_x: torch.Tensor | None = None
    sum_sq: float = 0.0
    sum_residual: float = 0.0
    n: int = 0
    fired: torch.Tensor | None = field(default=None, repr=False)

    @torch.no_grad()
    def add(self, sae: SAE, x: torch.Tensor) -> None:
        """Accumulate one batch of activations `x` (any leading shape) through `sae`"""
        x = x.reshape(-1, x.shape[-1])
        acts, recon = reconstruct(sae, x)
        x, recon = x.double(), recon.double()
        self.sum_x = x.sum(0) if self.sum_x is None else self.sum_x + x.sum(0)
        self.sum_sq += float(x.pow(2).sum())
        self.sum_residual += float((x - recon).pow(2).sum())
        self.n += len(x)
        active = (acts != 0).any(0)
        self.fired = active if self.fired is None else self.fired | active

    @property
    def fvu(self) -> float:
        if self.n == 0 or self.sum_x is None:
            raise SelfsimError("no held-out activations to measure the SAE on")
        total = self.sum_sq / self.n - float((self.sum_x / self.n).pow(2).sum())
        return (self.sum_residual / self.n) / total

    @property
    def dead_share(self) -> float:
        return 1.0 - float(self.fired.float().mean()) if self.fired is not None else math.nan


def measure(sae: SAE, caches: Sequence[ActivationCache], site: str, rows: np.ndarray) -> dict[str, float]:
    """Held-out `fvu`, `dead_share` and `n_vectors` of an SAE over the given rows (all cached positions)."""
    keep = np.zeros(caches[0].n_rows, dtype=bool)
    keep[rows] = True
    quality = Quality(sae.cfg.d_sae)
    for cache in caches:
        for shard_rows, tensors in cache.iter_shards([site]):
            x = tensors[site][torch.from_numpy(keep[shard_rows.start : shard_rows.stop])]
            if len(x):
                quality.add(sae, x)
    return {"fvu": quality.fvu, "dead_share": quality.dead_share, "n_vectors": quality.n}


def answer_latents(acts: torch.Tensor, labels: Sequence[str], min_count: int = 3) -> dict[str, int]:
    """For each label with >= min_count rows, the latent with the largest standardized mean difference."""
    y = np.asarray(labels)
    a = acts.double()
    sd = a.std(0) + 1e-6
    out = {}
    for c in sorted(set(y.tolist())):
        inside = torch.from_numpy(y == c)
        if int(inside.sum()) < min_count or int((~inside).sum()) < 1:
            continue
        score = (a[inside].mean(0) - a[~inside].mean(0)) / sd
        out[c] = int(score.argmax())
    return out


def latent_readout(acts: torch.Tensor, labels: Sequence[str], chosen: Mapping[str, int], reference: torch.Tensor) -> dict[str, float | None]:
    """Mean one-vs-rest AUROC of each class's latent, and readout accuracy (z-scored by `reference`)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels)
    classes = [c for c in chosen if c in set(y.tolist())]
    aurocs = []
    for c in classes:
        inside = y == c
        if 0 < inside.sum() < len(y):
            aurocs.append(roc_auc_score(inside, acts[:, chosen[c]].double().numpy()))
    rows = np.isin(y, classes)
    if not rows.any():
        return {"auroc": None, "readout": None, "n": 0, "n_classes": len(classes)}
    idx = torch.as_tensor([chosen[c] for c in classes])
    mu, sd = reference[:, idx].double().mean(0), reference[:, idx].double().std(0) + 1e-6
    z = (acts[torch.from_numpy(rows)][:, idx].double() - mu) / sd
    predicted = np.asarray(classes)[z.argmax(1).numpy()]
    return {"auroc": float(np.mean(aurocs)) if aurocs else None, "readout": float(np.mean(predicted == y[rows])),
            "n": int(rows.sum()), "n_classes": len(classes)}


@dataclass
class SAEStudyConfig:
    """The SAE study: layers, the SAE recipe, split and probe position, tokens per prompt for training and
    the budget of the greedy answers the labels are read from (None: the task's)."""

    layers: list[int] | None = None
    sae: SAEConfig = field(default_factory=SAEConfig)
    test_fraction: float = 0.25
    seed: int = 0
    position: str = "final"
    train_tokens: int = 16
    min_count: int = 3
    budget_bytes: int = 2**30
    backend: str = DEFAULT_BACKEND
    max_new_tokens: int | None = None

    def save(self, path: str | Path) -> None:
        """Write the config as JSON"""
        write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> SAEStudyConfig:
        """A config read back from `save`'s JSON (with its nested SAEConfig)"""
        raw = read_json(path)
        return cls(**{**raw, "sae": SAEConfig(**raw["sae"])})


def cache_tokens(subject: Subject, examples: Sequence[Example], out_dir: Path, config: SAEStudyConfig, layers: Sequence[int]) -> list[ActivationCache]:
    """Cache the last `train_tokens` positions (fewer if a prompt is shorter) of object and hypothetical prompts."""
    from selfsim.interp.cache import CacheConfig, cache_activations
    from selfsim.interp.pairs import match_all

    matched = match_all(subject, examples)
    caches = []
    for kind in ("object", "hypothetical"):
        prompts = [m.prompt(kind) for m in matched]
        m = min(config.train_tokens, min(p.length for p in prompts))
        cache_config = CacheConfig(sites=[subject.site(x) for x in layers], positions=list(range(-m, 0)),
                                   budget_bytes=config.budget_bytes, backend=config.backend)
        caches.append(cache_activations(subject, [p.text for p in prompts], out_dir / kind, cache_config,
                                        row_ids=[e.id for e in examples], progress=False))
    return caches


def sae_study(
    subjects: Mapping[str, Subject] | Sequence[Subject],
    examples: Sequence[Example],
    out_dir: str | Path,
    config: SAEStudyConfig | None = None,
    *,
    m1_responses: Mapping[str, str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train an SAE per subject and layer, measure it, and trace the answer latents; writes results.json.

    Subjects and M1's labels work as in `selfsim.interp.probes.run_probes`.
    Layout: out_dir/{config.json, results.json, saes/<subject>/layer_<l>/, cache/, tokens/}.
    """
    from selfsim.interp.answers import LABEL_TARGETS, m1_labels, model_labels
    from selfsim.interp.cache import PAIR_POSITIONS, CacheConfig
    from selfsim.interp.probes import label_dir, run_subject, split_by_prompt, target_labels

    config = config or SAEStudyConfig()
    subjects = model_labels(subjects)
    if not subjects or not examples:
        raise SelfsimError("the SAE study needs at least one subject and one example")
    out = Path(out_dir)
    config.save(out / "config.json")
    train, test = split_by_prompt([e.object_id for e in examples], config.test_fraction, config.seed)
    k = PAIR_POSITIONS.index(config.position)
    results: dict[str, Any] = {"split": {"train_prompts": len(train), "test_prompts": len(test)}, "subjects": {}}
    m1: dict[str, list[str | None]] | None = None
    for label, subject in subjects.items():
        layers = list(range(subject.n_layers)) if config.layers is None else [subject.check_layer(x) for x in config.layers]
        pair_config = CacheConfig(sites=[subject.site(x) for x in layers], budget_bytes=config.budget_bytes, backend=config.backend)
        run = run_subject(label, subject, examples, out / "cache", pair_config, max_new_tokens=config.max_new_tokens, progress=progress)
        own = target_labels(run, examples)
        if m1 is None:
            m1 = m1_labels(subject, examples, m1_responses, own)
        tokens = cache_tokens(subject, examples, out / "tokens" / label_dir(label), config, layers)
        per_layer = {}
        for layer in layers:
            site = subject.site(layer)
            sae_dir = out / "saes" / label_dir(label) / f"layer_{layer}"
            batches = row_batches(tokens, site, train, config.sae.batch_size, config.sae.seed)
            sae, stats = train_sae(batches, subject.hidden_size, sae_dir, config.sae, hook_name=site, model_name=label)
            entry: dict[str, Any] = {"sae_dir": str(sae_dir), **stats, **measure(sae, tokens, site, test)}
            obj = encode_latents(sae, run.cache.object.load(site, position=k).float())
            hyp = encode_latents(sae, run.cache.hypothetical.load(site, position=k).float())
            for source, labels in (("own", own), ("m1", m1)):
                for target in LABEL_TARGETS:
                    entry[f"{source}:{target}"] = _trace_latents(obj, hyp, labels[target], train, test, config.min_count, config.seed)
            per_layer[str(layer)] = entry
        results["subjects"][label] = per_layer
    write_json(out / "results.json", results)
    return results


def _trace_latents(obj: torch.Tensor, hyp: torch.Tensor, labels: Sequence[str | None], train: np.ndarray, test: np.ndarray,
                   min_count: int, seed: int) -> dict[str, Any]:
    """Answer latents chosen on training object runs, read on held-out object and hypothetical runs.

    Control: latents chosen with shuffled training labels, read on held-out object runs (selection-bias chance).
    """
    from selfsim.interp.probes import shuffled

    y = np.asarray(labels, dtype=object)
    tr = train[np.array([v is not None for v in y[train]], dtype=bool)]
    te = test[np.array([v is not None for v in y[test]], dtype=bool)]
    chosen = answer_latents(obj[tr], y[tr].tolist(), min_count)
    if not chosen or not len(te):
        return {"n_classes": 0}
    ref = obj[tr]
    o = latent_readout(obj[te], y[te].tolist(), chosen, ref)
    h = latent_readout(hyp[te], y[te].tolist(), chosen, ref)
    control = answer_latents(obj[tr], shuffled(y[tr], seed).tolist(), min_count)
    c = latent_readout(obj[te], y[te].tolist(), control, ref) if control else {"auroc": None}
    return {"n_classes": len(chosen), "n_test": o["n"], "chance": 1 / len(chosen),
            "object_auroc": o["auroc"], "hypothetical_auroc": h["auroc"], "shuffled_object_auroc": c["auroc"],
            "object_readout": o["readout"], "hypothetical_readout": h["readout"],
            "latents": dict(sorted(chosen.items()))}


def sae_figure(results: Mapping[str, Any], source: str = "own", target: str = "first_token") -> go.Figure:
    """Per-layer answer-latent AUROC and readout in object vs hypothetical runs, one colour per subject."""
    import pandas as pd
    import plotly.express as px

    rows = []
    for subject, layers in results["subjects"].items():
        for layer, entry in layers.items():
            traced = entry.get(f"{source}:{target}", {})
            for run in ("object", "hypothetical"):
                for metric in ("auroc", "readout"):
                    rows.append({"subject": subject, "layer": int(layer), "run": run, "metric": metric,
                                 "value": traced.get(f"{run}_{metric}")})
    if not rows:
        raise SelfsimError("no SAE results to plot")
    return px.line(pd.DataFrame(rows), x="layer", y="value", color="subject", line_dash="run", facet_col="metric",
                   markers=True, title=f"SAE answer latents ({source} labels, {target}): object vs hypothetical runs")
