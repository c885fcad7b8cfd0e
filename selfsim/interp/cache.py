"""Stream activations at chosen sites and token positions to disk, in shards, under a memory budget.

Layout of a cache directory: `manifest.json` (format, model, sites, widths, positions, dtype, row ids,
rows per shard, and the list of completed shards) and one `shard-NNNNN.safetensors` per shard. A
shard holds, for its rows `[start, end)`, one tensor per site `[rows, K, d]` (K token positions per
prompt), `positions` `[rows, K]` (the token index inside each unpadded prompt) and `next_token`
`[rows]` (the model's argmax next token at the prompt's last position: its own first answer token).

Memory: the budget decides the shard size. `shard_fraction` of it is the one shard buffer (reused,
never copied: safetensors writes it from its pointer); `forward_fraction` is for one forward batch:
batches hold at most `batch_size` prompts and no more than `forward_bytes` estimates to fit there
(at least one prompt); the rest is slack for tokenization, Python objects and the allocator, and
freed memory is handed back to the OS after every batch. The model's weights are not counted: they
exist before caching starts. `iter_shards` copies one shard's tensors at a time and maps no file;
`memmap` maps one .npy per site, consolidated from the shards once.

Resume: a shard is written to a temporary file, renamed into place and only then recorded in the
manifest (itself replaced atomically), so after a kill a rerun skips every recorded shard and redoes
at most the one that was in flight. Positions are indices into a prompt's own tokens (negative count
from its end), so they do not depend on the padding of the batch.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from selfsim.errors import SelfsimError
from selfsim.interp.backends.registry import DEFAULT_BACKEND, check_backend
from selfsim.io import clean_orphans, read_json, stabilize_safetensors, temp_prefix, write_json

if TYPE_CHECKING:
    from selfsim.interp.pairs import MatchedPair
    from selfsim.models import Subject

FORMAT = "selfsim-activations/1"
MANIFEST = "manifest.json"
STORAGE_DTYPES: dict[str, torch.dtype] = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
EXTRA_KEYS = ("positions", "next_token")


@dataclass
class CacheConfig:
    """What to cache (sites, positions), how to store it (dtype) and within what memory (budget)."""

    sites: list[str]
    positions: list[int] = field(default_factory=lambda: [-1])
    dtype: str = "float16"
    budget_bytes: int = 2**30
    shard_fraction: float = 0.5
    forward_fraction: float = 0.3
    batch_size: int = 16
    backend: str = DEFAULT_BACKEND

    def __post_init__(self) -> None:
        if not self.sites:
            raise SelfsimError("no sites to cache: pass at least one HF module path, e.g. model.layers.0")
        if len(set(self.sites)) != len(self.sites) or set(self.sites) & set(EXTRA_KEYS):
            raise SelfsimError(f"sites must be distinct and not named {' or '.join(EXTRA_KEYS)}: got {self.sites}")
        if self.dtype not in STORAGE_DTYPES:
            raise SelfsimError(f"unknown storage dtype {self.dtype!r}; valid dtypes are {', '.join(STORAGE_DTYPES)}")
        if not (0 < self.shard_fraction < 1 and 0 < self.forward_fraction < 1 and self.shard_fraction + self.forward_fraction <= 1):
            raise SelfsimError(
                f"shard_fraction ({self.shard_fraction}) and forward_fraction ({self.forward_fraction}) must be positive and sum to at most 1"
            )
        if self.batch_size < 1 or self.budget_bytes < 1:
            raise SelfsimError("batch_size and budget_bytes must be positive")
        check_backend(self.backend)


def resolve_positions(lengths: Sequence[int], positions: Sequence[Sequence[int]]) -> torch.Tensor:
    """Per-prompt token indices (negative from the end) as non-negative indices `[rows, K]`, checked."""
    out = torch.as_tensor([list(p) for p in positions], dtype=torch.long).reshape(len(lengths), -1)
    lens = torch.as_tensor(list(lengths), dtype=torch.long).unsqueeze(1)
    out = torch.where(out < 0, out + lens, out)
    bad = (out < 0) | (out >= lens)
    if bad.any():
        row = int(bad.any(dim=1).nonzero()[0])
        raise SelfsimError(f"token position {positions[row]} out of range for a prompt of {int(lens[row])} tokens (row {row})")
    return out


def forward_bytes(subject: Subject, widths: dict[str, int], rows: int, width: int) -> int:
    """Rough working memory of one forward pass that reads `widths` sites: activations kept, transients, logits."""
    cfg = subject.config
    itemsize = next(subject.base.parameters()).element_size()
    per_token = sum(widths.values()) + 10 * cfg.hidden_size + 3 * cfg.intermediate_size + 2 * cfg.num_attention_heads * width
    return itemsize * rows * width * per_token + 4 * rows * cfg.vocab_size


def plan_batches(lengths: Sequence[int], max_rows: int, headroom: int, cost: Callable[[int, int], int]) -> list[tuple[int, int]]:
    """Split rows into consecutive batches of at most `max_rows` whose `cost(rows, width)` fits `headroom`."""
    plans, b0 = [], 0
    while b0 < len(lengths):
        b1, width = b0 + 1, lengths[b0]
        while b1 < len(lengths) and b1 - b0 < max_rows and cost(b1 + 1 - b0, max(width, lengths[b1])) <= headroom:
            width = max(width, lengths[b1])
            b1 += 1
        plans.append((b0, b1))
        b0 = b1
    return plans


def release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc's malloc_trim; glibc keeps it otherwise); no-op elsewhere."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load_libc()


def _ids_hash(row_ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(row_ids).encode()).hexdigest()[:16]


def _shard_name(index: int) -> str:
    return f"shard-{index:05d}.safetensors"


SAFETENSORS_DTYPES: dict[str, torch.dtype] = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "I64": torch.int64}


def read_tensors(path: Path, keys: Sequence[str]) -> dict[str, torch.Tensor]:
    """Some tensors of a safetensors file, each read with one copy into its own buffer.

    Unlike `safetensors.safe_open`, nothing is memory-mapped, so reading a shard keeps no file pages
    resident beyond the tensors themselves.
    """
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
        out = {}
        for key in keys:
            info = header[key]
            begin, end = info["data_offsets"]
            dtype = SAFETENSORS_DTYPES[info["dtype"]]
            if end == begin:
                out[key] = torch.empty(info["shape"], dtype=dtype)
                continue
            fh.seek(8 + n + begin)
            buffer = bytearray(end - begin)
            fh.readinto(buffer)
            out[key] = torch.frombuffer(buffer, dtype=dtype).reshape(info["shape"])
    return out


class ActivationCache:
    """Read a cache directory: one shard at a time, or a whole site (concatenated or memory-mapped)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest = read_json(self.path / MANIFEST)
        if self.manifest.get("format") != FORMAT:
            raise SelfsimError(f"{self.path / MANIFEST}: not a selfsim activation cache (format {self.manifest.get('format')!r})")

    @property
    def sites(self) -> list[str]:
        return list(self.manifest["sites"])

    @property
    def row_ids(self) -> list[str]:
        return list(self.manifest["row_ids"])

    @property
    def n_rows(self) -> int:
        return len(self.manifest["row_ids"])

    @property
    def n_positions(self) -> int:
        return int(self.manifest["n_positions"])

    @property
    def widths(self) -> dict[str, int]:
        return dict(self.manifest["widths"])

    @property
    def shards(self) -> list[dict[str, Any]]:
        """Completed shards in row order: {index, file, rows: [start, end]}."""
        return sorted(self.manifest["shards"], key=lambda s: s["index"])

    @property
    def complete(self) -> bool:
        return sum(s["rows"][1] - s["rows"][0] for s in self.manifest["shards"]) == self.n_rows

    def _check_complete(self) -> None:
        if not self.complete:
            done, total = len(self.manifest["shards"]), math.ceil(self.n_rows / self.manifest["rows_per_shard"])
            raise SelfsimError(f"cache {self.path} is incomplete ({done}/{total} shards): rerun the caching command to resume it")

    def _check_site(self, site: str) -> None:
        if site not in self.manifest["sites"] and site not in EXTRA_KEYS:
            raise SelfsimError(f"site {site!r} is not in cache {self.path}; cached sites: {', '.join(self.sites)}")

    def iter_shards(self, keys: Sequence[str] | None = None) -> Iterator[tuple[range, dict[str, torch.Tensor]]]:
        """Yield (rows, {key: tensor}) per completed shard; keys are sites, positions or next_token."""
        keys = list(keys) if keys is not None else self.sites + list(EXTRA_KEYS)
        for k in keys:
            self._check_site(k)
        for shard in self.shards:
            release_freed_memory()  # what the caller dropped of the previous shard
            yield range(*shard["rows"]), read_tensors(self.path / shard["file"], keys)

    def load(self, site: str, position: int | None = None) -> torch.Tensor:
        """A whole site `[N, K, d]`, or `[N, d]` at one position index (into K), in memory."""
        self._check_complete()
        parts = [t[site] if position is None else t[site][:, position] for _, t in self.iter_shards([site])]
        return torch.cat(parts)

    def memmap(self, site: str) -> torch.Tensor:
        """A whole site `[N, K, d]` backed by a memory-mapped .npy consolidated once beside the shards."""
        self._check_complete()
        self._check_site(site)
        target = self.path / "memmap" / f"{site}.npy"
        if not target.is_file():
            self._consolidate(site, target)
        array = np.load(target, mmap_mode="c")
        tensor = torch.from_numpy(array)
        return tensor.view(torch.bfloat16) if self.manifest["dtype"] == "bfloat16" and site not in EXTRA_KEYS else tensor

    def _consolidate(self, site: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        first = next(self.iter_shards([site]))[1][site]
        np_dtype = np.uint16 if first.dtype == torch.bfloat16 else first.numpy().dtype
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np_dtype)), "fortran_order": False,
                  "shape": (self.n_rows, *first.shape[1:])}
        with open(tmp, "wb") as fh:
            np.lib.format.write_array_header_2_0(fh, header)
            for _, tensors in self.iter_shards([site]):
                t = tensors[site]
                fh.write((t.view(torch.uint16) if t.dtype == torch.bfloat16 else t).numpy().data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)


def _new_manifest(subject: Subject, config: CacheConfig, row_ids: list[str], widths: dict[str, int],
                  positions: list[int] | str, n_positions: int, meta: dict[str, Any]) -> dict[str, Any]:
    itemsize = STORAGE_DTYPES[config.dtype].itemsize
    row_bytes = n_positions * sum(widths.values()) * itemsize + 8 * (n_positions + 1)
    rows_per_shard = int(config.budget_bytes * config.shard_fraction) // row_bytes
    if rows_per_shard < 1:
        need = math.ceil(row_bytes / config.shard_fraction)
        raise SelfsimError(f"a memory budget of {config.budget_bytes} bytes cannot hold one row ({row_bytes} bytes): raise it to at least {need}")
    return {
        "format": FORMAT,
        "model": subject.name,
        "fingerprint": subject.fingerprint,
        "sites": list(config.sites),
        "widths": widths,
        "positions": positions,
        "n_positions": n_positions,
        "dtype": config.dtype,
        "budget_bytes": config.budget_bytes,
        "rows_per_shard": rows_per_shard,
        "row_bytes": row_bytes,
        "ids_hash": _ids_hash(row_ids),
        "row_ids": row_ids,
        "shards": [],
        "meta": meta,
    }


def _check_resumable(old: dict[str, Any], new: dict[str, Any], path: Path) -> None:
    keys = ("format", "fingerprint", "sites", "positions", "n_positions", "dtype", "ids_hash")
    diff = [k for k in keys if old.get(k) != new.get(k)]
    if diff:
        raise SelfsimError(
            f"{path} holds a cache made with different {', '.join(diff)}: pass another output directory or delete it"
        )


def cache_activations(
    subject: Subject,
    texts: Sequence[str],
    out_dir: str | Path,
    config: CacheConfig,
    *,
    row_ids: Sequence[str] | None = None,
    positions: Sequence[Sequence[int]] | None = None,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
) -> ActivationCache:
    """Run `subject` over rendered prompts and store the configured sites at the chosen positions.

    `positions` gives each prompt its own K token indices (default: `config.positions` for all).
    An existing cache in `out_dir` made with the same model, sites, positions and rows is resumed.
    """
    from tqdm.auto import tqdm

    from selfsim.interp.tracing import encode, get_tracer

    out = Path(out_dir)
    n = len(texts)
    row_ids = [str(r) for r in row_ids] if row_ids is not None else [str(i) for i in range(n)]
    if len(row_ids) != n or len(set(row_ids)) != n:
        raise SelfsimError(f"row ids must be {n} distinct strings, one per prompt")
    if positions is not None and len(positions) != n:
        raise SelfsimError(f"positions must give one list per prompt: {len(positions)} lists for {n} prompts")
    per_row = [list(p) for p in positions] if positions is not None else [list(config.positions)] * n
    if n == 0 or len({len(p) for p in per_row}) != 1 or not per_row[0]:
        raise SelfsimError("every prompt needs the same, non-zero number of token positions (and there must be prompts)")
    n_positions = len(per_row[0])
    tracer = get_tracer(subject, config.backend)
    sites = list(config.sites)
    for site in sites:
        subject.module(site)

    manifest_path = out / MANIFEST
    _clean_leftovers(out)
    old = read_json(manifest_path) if manifest_path.is_file() else None
    if old is not None:
        widths = old["widths"]
    else:
        probe = tracer.run(encode(subject, texts[:1]), read=sites, last_only=True)
        widths = {s: int(probe.activations[s].shape[-1]) for s in sites}
    pos_spec: list[int] | str = list(config.positions) if positions is None else "per-row:" + _ids_hash([str(p) for p in per_row])
    manifest = _new_manifest(subject, config, row_ids, widths, pos_spec, n_positions, meta or {})
    if old is not None:
        _check_resumable(old, manifest, out)
        manifest["rows_per_shard"], manifest["shards"] = old["rows_per_shard"], old["shards"]
    write_json(manifest_path, manifest)

    per_shard = manifest["rows_per_shard"]
    batch_size = min(config.batch_size, per_shard)
    headroom = int(config.budget_bytes * config.forward_fraction)
    done = {s["index"] for s in manifest["shards"] if (out / s["file"]).is_file()}
    manifest["shards"] = [s for s in manifest["shards"] if s["index"] in done]
    n_shards = math.ceil(n / per_shard)
    dtype = STORAGE_DTYPES[config.dtype]
    buffers: dict[str, torch.Tensor] = {}
    bar = tqdm(total=n, initial=sum(s["rows"][1] - s["rows"][0] for s in manifest["shards"]),
               desc=f"caching {subject.name}", unit="prompt", disable=not progress)
    with torch.inference_mode():
        for index in range(n_shards):
            if index in done:
                continue
            start, end = index * per_shard, min(n, (index + 1) * per_shard)
            if not buffers:
                size = min(per_shard, n)
                buffers = {s: torch.empty(size, n_positions, widths[s], dtype=dtype) for s in sites}
                buffers["positions"] = torch.empty(size, n_positions, dtype=torch.long)
                buffers["next_token"] = torch.empty(size, dtype=torch.long)
            lengths = [len(ids) for ids in subject.tokenizer(list(texts[start:end]), add_special_tokens=False)["input_ids"]]
            for b0, b1 in plan_batches(lengths, batch_size, headroom, lambda rows, width: forward_bytes(subject, widths, rows, width)):
                b0, b1 = start + b0, start + b1
                batch = encode(subject, texts[b0:b1])
                pos = resolve_positions(batch.lengths.tolist(), per_row[b0:b1])
                padded = pos + (batch.width - batch.lengths).unsqueeze(1)
                result = tracer.run(batch, read=sites, last_only=True)
                rows = torch.arange(b1 - b0).unsqueeze(1)
                for s in sites:
                    act = result.activations[s]
                    buffers[s][b0 - start:b1 - start] = act[rows.to(act.device), padded.to(act.device)].to("cpu", dtype)
                buffers["positions"][b0 - start:b1 - start] = pos
                buffers["next_token"][b0 - start:b1 - start] = result.logits[:, -1].argmax(-1).cpu()
                del result
                release_freed_memory()
                bar.update(b1 - b0)
            _write_shard(out, index, {k: v[: end - start] for k, v in buffers.items()}, start, end)
            manifest["shards"].append({"index": index, "file": _shard_name(index), "rows": [start, end]})
            write_json(manifest_path, manifest)
    bar.close()
    del buffers
    release_freed_memory()
    return ActivationCache(out)


def _write_shard(out: Path, index: int, tensors: dict[str, torch.Tensor], start: int, end: int) -> None:
    import tempfile

    from safetensors.torch import save_file

    target = out / _shard_name(index)
    fd, name = tempfile.mkstemp(dir=out, prefix=temp_prefix(target), suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "rows": f"{start}-{end}"})
        stabilize_safetensors(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _clean_leftovers(out: Path) -> None:
    """Drop temporaries of killed writes: the current naming, and shard files of older versions (`.shard-N.safetensors.tmp`)."""
    clean_orphans(out)
    for path in out.glob(".shard-*.safetensors.tmp"):
        if path.stat().st_mtime < _STARTED:
            path.unlink(missing_ok=True)


_STARTED = time.time()


PAIR_POSITIONS = ("copy_end", "final")


@dataclass
class PairCache:
    """The object-run and hypothetical-run caches of the same matched pairs, row-aligned.

    Each stores K=2 positions per prompt, in the order of PAIR_POSITIONS: `Prompt.copy_end`, the token
    holding the last character of P's content (located by character offsets, `selfsim.interp.pairs`),
    and the prompt's final token.
    """

    object: ActivationCache
    hypothetical: ActivationCache

    @classmethod
    def open(cls, path: str | Path) -> PairCache:
        """The pair cache written under `path` (its object/ and hypothetical/ caches)"""
        path = Path(path)
        return cls(ActivationCache(path / "object"), ActivationCache(path / "hypothetical"))


def cache_pairs(
    subject: Subject,
    pairs: Sequence[MatchedPair],
    out_dir: str | Path,
    config: CacheConfig,
    *,
    progress: bool = True,
) -> PairCache:
    """Cache the object run on P and the hypothetical run on H(P, f) of every pair (row i = pair i).

    Positions are PAIR_POSITIONS (`config.positions` is not used); row ids are the example ids.
    """
    out = Path(out_dir)
    examples = [m.example for m in pairs]
    ids = [e.id for e in examples]
    meta = {"object_ids": [e.object_id for e in examples], "properties": [e.property for e in examples],
            "tasks": [e.task for e in examples], "position_names": list(PAIR_POSITIONS)}
    caches = []
    for kind in ("object", "hypothetical"):
        prompts = [m.prompt(kind) for m in pairs]
        positions = [[p.copy_end, p.final] for p in prompts]
        caches.append(cache_activations(subject, [p.text for p in prompts], out / kind, config, row_ids=ids,
                                        positions=positions, meta={**meta, "run": kind}, progress=progress))
    return PairCache(*caches)
