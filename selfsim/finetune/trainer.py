"""`train`: LoRA or full-weight finetuning on labelled hypothetical prompts, in one process or many.

Execution model. Every process runs this same function (torchrun starts N copies of the command).
Optimizer step s uses the global batch `global_batch(n, batch_size, s, seed)`, a pure function of
the seed and the step; process r takes items r, r+N, r+2N, ... of it and splits them into
`grad_accum` micro-batches. Each process backpropagates the summed cross-entropy of its answer
tokens times N / (answer tokens in the whole global batch); DDP and FSDP average gradients over the
N processes, so every update is the gradient of the mean answer-token loss of the global batch,
whatever N is. Prompts are left-padded so every answer ends its row, and only the answer positions'
logits are computed. Rank 0 alone writes files; every process reads a checkpoint when resuming.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from selfsim import __version__
from selfsim.errors import SelfsimError
from selfsim.finetune.checkpoint import (
    find_checkpoint,
    gather_weights,
    load_checkpoint,
    remove_checkpoints,
    remove_temporaries,
    restore,
    save_checkpoint,
)
from selfsim.finetune.config import FinetuneConfig
from selfsim.finetune.data import (
    IGNORE_INDEX,
    Batch,
    Encoded,
    TrainItem,
    collate,
    encode_items,
    global_batch,
    items_digest,
    split_holdout,
)
from selfsim.finetune.distributed import DistEnv, distributed, grad_sync, wrap_model
from selfsim.io import atomic_dir, clean_orphans, fault_point, read_json, temp_prefix, write_json, write_jsonl

if TYPE_CHECKING:
    import torch
    from torch import nn

    from selfsim.models import Subject

RESULT_FILE = "finetune.json"
MERGED_DIR = "merged"


def answer_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Summed cross-entropy of the answer tokens (and EOS) of a left-padded batch; prompt tokens add nothing."""
    import torch.nn.functional as F

    logits = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        logits_to_keep=batch.width + 1,
        use_cache=False,
    ).logits[:, :-1]
    targets = batch.labels[:, -batch.width :].to(logits.device)
    return F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )


def train(
    subject: Subject,
    items: Sequence[TrainItem],
    config: FinetuneConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    metadata: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Finetune `subject` on `items` and write the adapter (or full weights) to `out_dir`; return `out_dir`.

    `resume` continues an interrupted run from `out_dir/checkpoint` (or returns a finished one as is,
    finishing the removal of its checkpoint if a kill cut that short); a kill at any point leaves a
    directory that `resume` completes to the same bytes as an uninterrupted run;
    `config.merge` also writes base + adapter merged into `out_dir/merged`. The subject's model is
    trained in place: load the result afresh (`load_subject(base, adapter=out_dir)`) to use it.
    """
    config.validate()
    out = Path(out_dir)
    if not items:
        raise SelfsimError("no training items: nothing to finetune on")
    if not is_finished(out, resume=resume):
        with distributed() as env:
            if env.launched and subject.options.get("device_map") is not None:
                raise SelfsimError(
                    "--device-map cannot be combined with torchrun: each process holds a replica (DDP) or a shard (--fsdp)"
                )
            _Trainer(subject, items, config, out, env).run(resume=resume, progress=progress, metadata=dict(metadata or {}))
    elif os.environ.get("RANK", "0") == "0":
        remove_checkpoints(out)
        clean_orphans(out)
    if config.merge and os.environ.get("RANK", "0") == "0" and not (out / MERGED_DIR / "config.json").is_file():
        merge_adapter(subject, out, out / MERGED_DIR)
    return out


def is_finished(out_dir: str | Path, *, resume: bool) -> bool:
    """True if `out_dir` holds a finished run and `resume` accepts it; raise if it holds a run `resume` does not allow.

    `finetune.json` is written last, after the complete adapter: with it the run is finished, even if a
    kill left its checkpoint behind.
    """
    out = Path(out_dir)
    checkpoint = find_checkpoint(out)
    if (out / RESULT_FILE).is_file():
        if resume:
            return True
        raise SelfsimError(f"{out} already holds a finished finetune; choose a new output directory (or pass --resume to keep it)")
    if checkpoint is not None and not resume:
        raise SelfsimError(f"{out} holds an interrupted finetune; pass --resume to continue it or choose a new output directory")
    return False


def merge_adapter(subject: Subject, adapter_dir: Path, merged_dir: Path) -> Path:
    """Load the subject's base weights afresh, apply the adapter, merge it and save full weights + tokenizer."""
    from selfsim.models import load_subject

    merged = load_subject(str(subject.path), dtype=subject.options.get("dtype", "float32"), adapter=adapter_dir)
    with atomic_dir(merged_dir) as tmp:
        merged.model.merge_and_unload().save_pretrained(tmp)
        merged.tokenizer.save_pretrained(tmp)
        fault_point("merging")
    return merged_dir


def save_adapter(model: nn.Module, out: Path, weights: Mapping[str, Any], tokenizer: Any = None) -> None:
    """Write the trained weights (`save_pretrained`) into `out` file by file, each complete when renamed in.

    `adapter_config.json` is rewritten as key-sorted JSON with sorted module lists, so the same run
    gives the same bytes (peft keeps `target_modules` in a set).
    """
    from selfsim.behavior import canonical_adapter_config

    tmp = Path(tempfile.mkdtemp(dir=out, prefix=temp_prefix(out / "adapter"), suffix=".tmp"))
    try:
        model.save_pretrained(tmp, state_dict=dict(weights))  # pyright: ignore[reportCallIssue]  # a transformers/peft method, typed via nn.Module.__getattr__
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        config = tmp / "adapter_config.json"
        if config.is_file():
            write_json(config, canonical_adapter_config(read_json(config)))
        for i, f in enumerate(sorted(tmp.iterdir())):
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(f, out / f.name)
            if i == 0:
                fault_point("adapter_writing")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _prepare_model(subject: Subject, config: FinetuneConfig) -> tuple[nn.Module, FinetuneConfig]:
    """Attach a fresh LoRA adapter, reopen the subject's own adapter for training, or unfreeze all weights."""
    import torch

    torch.manual_seed(config.seed)
    model = subject.model
    is_peft = hasattr(model, "peft_config")
    if config.full_finetune:
        model = model.merge_and_unload() if is_peft else model
        model.requires_grad_(True)
    elif is_peft:
        lora = model.peft_config[model.active_adapter]
        if getattr(lora, "r", None) is None:
            raise SelfsimError(f"the adapter of {subject.name} is not a LoRA adapter; only LoRA adapters can be trained further")
        targets = lora.target_modules if isinstance(lora.target_modules, str) else tuple(sorted(lora.target_modules))
        # a str target_modules (a peft regex) does not fit with_lora's tuple of names
        config = config.with_lora(lora.r, lora.lora_alpha, targets)  # pyright: ignore[reportArgumentType]
        for name, param in model.named_parameters():
            param.requires_grad_("lora_" in name)
    else:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,  # pyright: ignore[reportArgumentType]  # peft annotates int; the scale may be a float
            lora_dropout=config.dropout,
            target_modules=list(config.target_modules),
            task_type="CAUSAL_LM",
        )
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
                model = get_peft_model(model, lora)
        except ValueError as exc:
            raise SelfsimError(f"cannot put LoRA on {subject.name}: {str(exc).splitlines()[0]}") from None
    if config.gradient_checkpointing:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # pyright: ignore[reportCallIssue]  # a transformers/peft method, typed via nn.Module.__getattr__
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})  # pyright: ignore[reportCallIssue]
    return model, config


def _chunks(seq: Sequence[int], n: int) -> list[list[int]]:
    """`seq` cut into `n` contiguous parts whose sizes differ by at most one."""
    size, extra = divmod(len(seq), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (i < extra)
        out.append(list(seq[start:end]))
        start = end
    return out


def _lr_factor(step: int, config: FinetuneConfig, total: int) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    return max(0.0, (total - step) / max(1, total - config.warmup_steps))


class _Trainer:
    """The state of one run on one process: model, optimizer, data, and the log written by rank 0."""

    def __init__(self, subject: Subject, items: Sequence[TrainItem], config: FinetuneConfig, out: Path, env: DistEnv):
        import torch

        self.subject, self.out, self.env = subject, out, env
        self.model, self.config = _prepare_model(subject, config)
        self.train_items, self.eval_items = split_holdout(items, config.eval_fraction, config.seed)
        self.digest = items_digest([*self.train_items, *self.eval_items])
        self._check_sizes()
        self.encoded: list[Encoded] = encode_items(subject, self.train_items)
        self.held: list[Encoded] = encode_items(subject, self.eval_items)
        self.total = self.config.total_steps(len(self.encoded))
        self.names = {n for n, p in self.model.named_parameters() if p.requires_grad}
        self.wrapped = wrap_model(self.model, env, fsdp=self.config.fsdp)
        self.device = env.device if env.launched else self.model.get_input_embeddings().weight.device  # pyright: ignore[reportCallIssue]  # a transformers/peft method, typed via nn.Module.__getattr__
        self.pad_id = subject.tokenizer.pad_token_id
        self.params = [p for p in self.wrapped.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: _lr_factor(s, self.config, self.total)
        )
        self.log: list[dict[str, Any]] = []
        self.last_saved: int | None = None

    def _check_sizes(self) -> None:
        c, world = self.config, self.env.world_size
        if c.batch_size < world * c.grad_accum:
            raise SelfsimError(
                f"batch size {c.batch_size} is too small for {world} process(es) x {c.grad_accum} micro-batches; "
                f"use a batch size of at least {world * c.grad_accum}"
            )
        if 0 < len(self.eval_items) < world:
            raise SelfsimError(f"{len(self.eval_items)} held-out item(s) cannot be spread over {world} processes; raise eval_fraction")

    def run(self, *, resume: bool, progress: bool, metadata: dict[str, Any]) -> None:
        """Train from step 0 or the checkpoint to the end, then save the result (rank 0) and drop the checkpoint."""
        from tqdm.auto import tqdm

        started = time.monotonic()
        start = self._resume() if resume else 0
        if self.env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_temporaries(self.out)
            clean_orphans(self.out)
            self.config.save(self.out)
            rows = [{**it.to_dict(), "heldout": held} for held, its in ((False, self.train_items), (True, self.eval_items)) for it in its]
            write_jsonl(self.out / "items.jsonl", rows)
            fault_point("after_items")
        bar = tqdm(
            total=self.total,
            initial=start,
            desc=f"finetune {self.subject.name}",
            unit="step",
            disable=not (progress and self.env.is_main),
            dynamic_ncols=True,
        )
        with bar:
            for step in range(start, self.total):
                row = self._step(step)
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
                done = step + 1
                if self.config.save_every and done % self.config.save_every == 0 and done < self.total:
                    row["eval_loss"] = self._eval_loss()
                    self._save_checkpoint(done)
        self.log[-1]["eval_loss"] = self._eval_loss()
        self._save_result(metadata, time.monotonic() - started)

    def _resume(self) -> int:
        path = find_checkpoint(self.out)
        if not self.env.agree(read_json(path / "state.json")["step"] if path else -1):
            raise SelfsimError(f"the processes see different checkpoints in {self.out}: put the output directory on a shared filesystem")
        if path is None:
            return 0
        ckpt = load_checkpoint(path)
        saved = FinetuneConfig.from_dict(ckpt.state["config"])
        changed = saved.differences(self.config)
        if changed:
            detail = ", ".join(f"{k}: {getattr(saved, k)!r} -> {getattr(self.config, k)!r}" for k in changed)
            raise SelfsimError(f"cannot resume {path}: it was made with other settings ({detail}); rerun with the original ones")
        if ckpt.state["items"] != self.digest:
            raise SelfsimError(
                f"cannot resume {path}: the training items differ from the checkpoint's "
                "(other examples, labels, per-pair count or seed)"
            )
        if ckpt.state["fingerprint"] != self.subject.fingerprint:
            raise SelfsimError(f"cannot resume {path}: it was made from another base model (fingerprint {ckpt.state['fingerprint']})")
        restore(ckpt, self._unwrapped(), self.optimizer, self.scheduler)
        self.log = list(ckpt.state["log"])
        self.last_saved = ckpt.step
        return ckpt.step

    def _step(self, step: int) -> dict[str, Any]:
        import torch

        c, env = self.config, self.env
        torch.manual_seed((c.seed * 1_000_003 + step) * 1_009 + env.rank)
        self.wrapped.train()
        batch = global_batch(len(self.encoded), c.batch_size, step, c.seed)
        tokens = sum(self.encoded[i].n_answer for i in batch)
        parts = _chunks(batch[env.rank :: env.world_size], c.grad_accum)
        local = torch.zeros((), dtype=torch.float64)
        for j, part in enumerate(parts):
            with grad_sync(self.wrapped, j == len(parts) - 1):
                loss_sum = answer_loss(self.wrapped, collate([self.encoded[i] for i in part], self.pad_id, self.device))
                (loss_sum * env.world_size / tokens).backward()
            local += loss_sum.detach().double().cpu()
        loss = float(env.sum(local)) / tokens
        if not math.isfinite(loss):
            self._diverged(step, f"loss is {loss}")
        norm = torch.nn.utils.clip_grad_norm_(self.params, c.max_grad_norm or math.inf)
        norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # pyright: ignore[reportAttributeAccessIssue]  # a DTensor under FSDP
        if not math.isfinite(norm):
            self._diverged(step, f"gradient norm is {norm}")
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        row = {"step": step + 1, "loss": loss, "grad_norm": norm, "lr": lr, "answer_tokens": tokens}
        self.log.append(row)
        return row

    def _diverged(self, step: int, what: str) -> None:
        kept = (
            f"the last good checkpoint (step {self.last_saved}) is kept in {self.out / 'checkpoint'}"
            if self.last_saved
            else "no checkpoint had been saved yet"
        )
        raise SelfsimError(
            f"training diverged at step {step + 1} of {self.total}: {what}; stopped before updating the weights, "
            f"{kept}. Lower the learning rate (now {self.config.lr:g}) and start again"
        )

    def _eval_loss(self) -> float | None:
        import torch

        if not self.held:
            return None
        env, c = self.env, self.config
        micro = max(1, c.batch_size // (env.world_size * c.grad_accum))
        n_parts = max(1, math.ceil(len(self.held) // env.world_size / micro))
        local = torch.zeros((), dtype=torch.float64)
        self.wrapped.eval()
        with torch.no_grad():
            for part in _chunks(range(env.rank, len(self.held), env.world_size), n_parts):
                batch = collate([self.held[i] for i in part], self.pad_id, self.device)
                local += answer_loss(self.wrapped, batch).double().cpu()
        return float(env.sum(local)) / sum(e.n_answer for e in self.held)

    def _unwrapped(self) -> nn.Module:
        return cast("nn.Module", self.wrapped.module) if hasattr(self.wrapped, "no_sync") else self.wrapped

    def _state(self, step: int) -> dict[str, Any]:
        return {
            "step": step,
            "config": self.config.to_dict(),
            "items": self.digest,
            "fingerprint": self.subject.fingerprint,
            "log": self.log,
        }

    def _save_checkpoint(self, step: int) -> None:
        save_checkpoint(self.out, self.env, self._unwrapped(), self.optimizer, self.scheduler, self.names, self._state(step))
        if self.env.is_main:
            fault_point("after_checkpoint_state")
            write_jsonl(self.out / "train_log.jsonl", self.log)
        self.last_saved = step

    def _save_result(self, metadata: dict[str, Any], seconds: float) -> None:
        weights = gather_weights(self._unwrapped(), self.names)
        if self.env.is_main:
            tokenizer = self.subject.tokenizer if self.config.full_finetune else None
            save_adapter(self._unwrapped(), self.out, weights, tokenizer)
            fault_point("after_adapter")
            write_jsonl(self.out / "train_log.jsonl", self.log)
            pairs = Counter(f"{it.task}/{it.property}" for it in self.train_items)
            write_json(
                self.out / RESULT_FILE,
                {
                    "kind": "full" if self.config.full_finetune else "lora",
                    "base_model": self.subject.name,
                    "base_path": str(self.subject.path),
                    "base_fingerprint": self.subject.fingerprint,
                    "start_adapter": str(self.subject.adapter) if self.subject.adapter else None,
                    "n_train": len(self.train_items),
                    "n_eval": len(self.eval_items),
                    "pairs": dict(sorted(pairs.items())),
                    "items_digest": self.digest,
                    "steps": self.total,
                    "world_size": self.env.world_size,
                    "final_loss": self.log[-1]["loss"],
                    "eval_loss": self.log[-1].get("eval_loss"),
                    "seconds": round(seconds, 2),
                    "selfsim_version": __version__,
                    **metadata,
                },
            )
            fault_point("after_result")
            remove_checkpoints(self.out)
        self.env.barrier()
