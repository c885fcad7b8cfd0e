"""One process or many: detect torchrun / accelerate launch, join the process group, wrap the model.

A launcher sets RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR in each process's environment. With
them, `distributed()` joins a process group (nccl on GPU, gloo on CPU) and gives each process its
device (cuda:LOCAL_RANK, or cpu); without them it is a no-op and the model stays where it was loaded
(one CPU, one GPU, or several GPUs through a `device_map`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from selfsim.errors import SelfsimError

if TYPE_CHECKING:
    import torch
    from torch import nn

_LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the run: rank, world size, and the device it computes on (None: leave as loaded)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None
    launched: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (no-op in a single process)."""
        if self.launched:
            import torch.distributed as dist

            dist.barrier()

    def agree(self, value: int) -> bool:
        """True if every process passed the same `value`."""
        if not self.launched:
            return True
        import torch
        import torch.distributed as dist

        bounds = torch.tensor([value, -value], dtype=torch.long, device=self.device)
        dist.all_reduce(bounds, op=dist.ReduceOp.MAX)
        return int(bounds[0]) == -int(bounds[1])

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of `value` over all processes (a float64 tensor on this process's device)."""
        import torch

        total = value.detach().to(dtype=torch.float64, device=self.device or value.device)
        if self.launched:
            import torch.distributed as dist

            dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total


def launched_by_torchrun() -> bool:
    """True when a distributed launcher has set RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR."""
    return all(v in os.environ for v in _LAUNCH_VARS)


@contextmanager
def distributed() -> Iterator[DistEnv]:
    """Join the launcher's process group for the duration of the block (and leave it if we joined it)."""
    if not launched_by_torchrun():
        yield DistEnv()
        return
    import torch
    import torch.distributed as dist

    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device, backend = torch.device("cuda", local), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    created = not dist.is_initialized()
    if created:
        dist.init_process_group(backend=backend)
    try:
        yield DistEnv(rank=rank, world_size=world, local_rank=local, device=device, launched=True)
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of a (possibly peft-wrapped) causal LM: the units FSDP shards one by one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # pyright: ignore[reportCallIssue]  # a transformers/peft method, typed via nn.Module.__getattr__
    try:
        return list(cast("nn.ModuleList", base.get_submodule("model.layers")))
    except AttributeError:
        raise SelfsimError(f"cannot shard {type(base).__name__} with FSDP: it has no model.layers") from None


def wrap_model(model: nn.Module, env: DistEnv, *, fsdp: bool) -> nn.Module:
    """Shard with FSDP2 (`fully_shard` per decoder layer, then the root), replicate with DDP, or return as is."""
    if fsdp:
        if not env.launched:
            raise SelfsimError("--fsdp shards the model over processes: launch with torchrun or accelerate launch")
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(cast("torch.device", env.device).type, (env.world_size,))  # set when launched
        for layer in decoder_layers(model):
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    if not env.launched:
        return model
    from torch.nn.parallel import DistributedDataParallel

    model.to(env.device)
    device_ids = [env.device] if cast("torch.device", env.device).type == "cuda" else None  # set when launched
    return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)


def grad_sync(wrapped: nn.Module, enabled: bool) -> Any:
    """A context in which backward does (enabled) or does not (accumulating micro-batches) reduce gradients."""
    if hasattr(wrapped, "no_sync"):
        return nullcontext() if enabled else wrapped.no_sync()  # pyright: ignore[reportCallIssue]  # DDP's, hasattr-checked
    if hasattr(wrapped, "set_requires_gradient_sync"):
        wrapped.set_requires_gradient_sync(enabled)  # pyright: ignore[reportCallIssue]  # FSDP2's, hasattr-checked
    return nullcontext()
