"""Data-parallel training under ``torchrun``: gloo on CPU, NCCL on GPU; a no-op in a single process.

One node with k GPUs::

    torchrun --standalone --nproc_per_node=k -m xmr_lib.train.finetune_job --epochs 20 --out runs/ddp

Several nodes (the same command on each, ``--node_rank`` 0 … n−1)::

    torchrun --nnodes=n --nproc_per_node=k --node_rank=R --rdzv_backend=c10d --rdzv_endpoint=HEAD:29500 \\
        -m xmr_lib.train.finetune_job ...

A training loop asks :func:`context` for its rank and world size, splits every **global** batch between the ranks
(:meth:`DistContext.shard`), wraps its model with :meth:`DistContext.wrap` (``DistributedDataParallel``, which
averages gradients), scales its local loss by the world size so that the averaged gradient is the gradient of
the global batch's loss, and writes checkpoints and records on rank 0 only. With a fixed global batch the result
is the single-process result, up to the order of float additions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class DistContext:
    """Rank and world size of this process (``world == 1``: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, records and progress bars."""
        return self.rank == 0

    def shard(self, items: np.ndarray) -> np.ndarray:
        """This rank's part of a global batch: ranks take every ``world``-th item, starting at their rank."""
        return np.asarray(items)[self.rank :: self.world]

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``DistributedDataParallel(model)`` when distributed, else ``model``."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sum(self, value: float) -> float:
        """The sum of ``value`` over the ranks (every rank gets it)."""
        if not self.enabled:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64)
        if torch.distributed.get_backend() == "nccl":
            t = t.cuda()
        torch.distributed.all_reduce(t)
        return float(t.item())

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()


def context(device: str | torch.device = "cpu") -> DistContext:
    """The process group of a ``torchrun`` launch (initialised on first use), or a single-process context.

    The backend is NCCL when ``device`` is CUDA, else gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not torch.distributed.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    dev = torch.device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        torch.cuda.set_device(local)
    return DistContext(torch.distributed.get_rank(), torch.distributed.get_world_size(), local)
