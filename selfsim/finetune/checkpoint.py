"""Atomic, resumable checkpoints: trainable weights, optimizer and scheduler state, step, gathered to rank 0.

`out_dir/checkpoint/` holds `trainable.safetensors` (full, unsharded tensors named as in the unwrapped
model), `optimizer.pt` (optimizer state keyed by parameter name, and the scheduler's state) and
`state.json` (step, config, item digest, base fingerprint, loss log). A new checkpoint is written to a
temporary directory, fsynced, and swapped in with two renames, so a kill at any moment leaves one
complete checkpoint (`checkpoint/`, or `checkpoint.old/` between the renames); a checkpoint is
removed by renaming it to a temporary name first, so a kill while deleting never leaves a partial
`checkpoint/` behind. The state-dict helpers
of `torch.distributed.checkpoint` make the same files from one process, DDP or FSDP, so a run may
resume on another number of processes. No RNG state is stored: each step reseeds from (seed, step,
rank), so a resumed run draws the same random numbers as an uninterrupted one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from selfsim.io import fault_point, read_json, write_json

if TYPE_CHECKING:
    import torch
    from torch import nn

    from selfsim.finetune.distributed import DistEnv

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILES = ("trainable.safetensors", "optimizer.pt", "state.json")
_OLD_SUFFIX = ".old"


@dataclass
class Checkpoint:
    """A checkpoint read back from disk."""

    path: Path
    state: dict[str, Any]
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])


def _full(**kwargs: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def gather_weights(model: nn.Module, names: Collection[str]) -> dict[str, torch.Tensor]:
    """Full CPU copies of the named (trainable) weights; collective under FSDP, filled on rank 0 only."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(model, options=_full(cpu_offload=True, ignore_frozen_params=True))
    return {k: cast("torch.Tensor", v) for k, v in state.items() if k in names}


def find_checkpoint(out_dir: Path) -> Path | None:
    """The complete checkpoint directory in `out_dir` (all of its files present), if any."""
    for path in (out_dir / CHECKPOINT_DIR, out_dir / (CHECKPOINT_DIR + _OLD_SUFFIX)):
        if all((path / name).is_file() for name in CHECKPOINT_FILES):
            return path
    return None


def save_checkpoint(
    out_dir: Path,
    env: DistEnv,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    names: Collection[str],
    state: dict[str, Any],
) -> Path:
    """Gather the training state to rank 0 and write `out_dir/checkpoint` atomically; every process calls it."""
    import torch
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    weights = gather_weights(model, names)
    optim = get_optimizer_state_dict(model, optimizer, options=_full(cpu_offload=True))
    final = out_dir / CHECKPOINT_DIR
    if env.is_main:
        tmp = Path(tempfile.mkdtemp(prefix=f".{CHECKPOINT_DIR}.", dir=out_dir))
        save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp / "trainable.safetensors"))
        torch.save({"optimizer": optim, "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
        write_json(tmp / "state.json", state)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        fault_point("checkpoint_written")
        old = out_dir / (CHECKPOINT_DIR + _OLD_SUFFIX)
        if final.exists():
            _remove_dir(old, "removing_old_checkpoint")
            os.replace(final, old)
        fault_point("checkpoint_swapping")
        os.replace(tmp, final)
        fault_point("checkpoint_swapped")
        _remove_dir(old, "removing_old_checkpoint")
    env.barrier()
    return final


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint directory written by `save_checkpoint` (on every process)."""
    import torch
    from safetensors.torch import load_file

    rest = torch.load(path / "optimizer.pt", weights_only=True)
    return Checkpoint(
        path=path,
        state=read_json(path / "state.json"),
        weights=load_file(str(path / "trainable.safetensors")),
        optimizer=rest["optimizer"],
        scheduler=rest["scheduler"],
    )


def restore(checkpoint: Checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """Load a checkpoint's weights, optimizer and scheduler state into a (possibly sharded) model."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    set_model_state_dict(model, cast(dict[str, Any], checkpoint.weights), options=_full(strict=False))
    set_optimizer_state_dict(model, optimizer, checkpoint.optimizer, options=_full())
    scheduler.load_state_dict(checkpoint.scheduler)


def remove_temporaries(out_dir: Path) -> None:
    """Delete half-written checkpoint directories left by a kill during `save_checkpoint`."""
    for path in out_dir.glob(f".{CHECKPOINT_DIR}.*"):
        shutil.rmtree(path, ignore_errors=True)


def _remove_dir(path: Path, fault: str) -> None:
    """Rename `path` to a temporary name (one atomic step), then delete it: a kill leaves only a temporary."""
    if not path.exists():
        return
    trash = path.with_name(f".{CHECKPOINT_DIR}.removing-{path.name}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    for f in sorted(trash.iterdir()):
        f.unlink()
        fault_point(fault)
    shutil.rmtree(trash, ignore_errors=True)


def remove_checkpoints(out_dir: Path) -> None:
    """Delete the checkpoint (after a finished run) and any temporaries."""
    remove_temporaries(out_dir)
    for path in (out_dir / CHECKPOINT_DIR, out_dir / (CHECKPOINT_DIR + _OLD_SUFFIX)):
        _remove_dir(path, "removing_checkpoints")
