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

A loss that couples the items of a batch (a batch-hard triplet, an MMD between two sets of embeddings, BatchNorm's
batch statistics) is not the sum of per-shard losses. For those, :meth:`DistContext.gather` puts the ranks' outputs
back into the global batch (in its original order, differentiably), every rank computes the **whole** global loss
``L``, and :meth:`DistContext.sync_batchnorm` makes BatchNorm normalise with the global batch's statistics
(``SyncBatchNorm`` on CUDA; :class:`GlobalBatchNorm2d` over gloo, which ``SyncBatchNorm`` does not support). Then the
per-rank objective sums to ``world · L``: the gather's backward adds the ranks' gradients, and DDP's average divides
by ``world`` again — the averaged gradient is ``∇L``, with no extra loss scaling.
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

    def gather(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """The global batch of ``n`` items from this rank's rows ``x`` of :meth:`shard` — every rank's rows, in the
        global batch's original order (``x`` itself in one process). Differentiable: with every rank computing the
        whole batch's loss ``L`` on it, the backward pass adds the ranks' gradients, and DDP's average turns the
        resulting ``world · ∇L`` back into ``∇L``."""
        if not self.enabled:
            return x
        return _gather(self, x, int(n))

    def sync_batchnorm(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """Make ``model``'s BatchNorm layers normalise with the **global** batch's statistics when distributed
        (``torch.nn.SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm2d` over gloo), in place, parameters and running
        buffers shared; ``model`` unchanged in one process. Per-shard statistics would make a k-rank run differ from
        the one-process run (and from the global batch it stands for)."""
        if not self.enabled:
            return model
        return _convert_bn(model, torch.device(device).type == "cuda")

    def average_gradients(self, params) -> None:
        """Average the gradients of ``params`` over the ranks (what DDP does for the parameters of the model it
        wraps): for parameters trained outside the DDP model, e.g. a plugin's own network."""
        if not self.enabled:
            return
        for p in params:
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad.div_(self.world)

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


# ---------------------------------------------------------------------------------------------------------------
# whole-batch losses: a differentiable gather and a BatchNorm over the global batch


class _AllReduceSum(torch.autograd.Function):
    """``all_reduce(SUM)`` with its adjoint: the gradient of every rank's input is the sum of the output gradients
    (the objective is the sum of the ranks' losses). Works on gloo and NCCL."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.detach().clone().contiguous()
        torch.distributed.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        g = g.contiguous().clone()
        torch.distributed.all_reduce(g)
        return g


class _GatherShards(torch.autograd.Function):
    """Every rank's ``(m, …)`` rows → ``(world·m, …)`` in rank order; backward: the sum over ranks of the output
    gradient, this rank's rows (``all_reduce`` rather than ``reduce_scatter``/``all_to_all``, which gloo lacks)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        ctx.rank, ctx.m = rank, x.shape[0]
        parts = [torch.empty_like(x.contiguous()) for _ in range(world)]
        torch.distributed.all_gather(parts, x.detach().contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        g = g.contiguous().clone()
        torch.distributed.all_reduce(g)
        return g[ctx.rank * ctx.m : (ctx.rank + 1) * ctx.m]


def _gather(ctx: "DistContext", x: torch.Tensor, n: int) -> torch.Tensor:
    """The global batch ``(n, …)`` in its original order from this rank's shard ``x`` (``DistContext.shard``)."""
    mine = len(range(ctx.rank, n, ctx.world))
    if x.shape[0] != mine:
        raise ValueError(f"gather: rank {ctx.rank} holds {x.shape[0]} rows, but its shard of a batch of {n} has {mine}")
    m = -(-n // ctx.world)  # rows per rank, the short shards padded with zeros
    if x.shape[0] < m:
        x = torch.cat([x, x.new_zeros((m - x.shape[0], *x.shape[1:]))])
    if x.requires_grad:
        allx = _GatherShards.apply(x)
    else:
        parts = [torch.empty_like(x.contiguous()) for _ in range(ctx.world)]
        torch.distributed.all_gather(parts, x.contiguous())
        allx = torch.cat(parts)
    return allx.index_select(0, torch.as_tensor(gathered_rows(n, ctx.world), device=allx.device))


def gathered_rows(n: int, world: int) -> np.ndarray:
    """``(n,)``: the row of the gathered ``(world · ⌈n/world⌉, …)`` tensor (rank r's padded shard in rows
    ``r·m … r·m+m−1``) that holds item i of the global batch — item ``i = r + j·world`` is rank r's row j."""
    i, m = np.arange(int(n)), -(-int(n) // int(world))
    return (i % world) * m + i // world


class GlobalBatchNorm2d(torch.nn.BatchNorm2d):
    """``BatchNorm2d`` whose training-mode statistics are those of the global batch, over any process group (gloo
    included, which ``torch.nn.SyncBatchNorm`` does not support): the per-channel sums and the sums of squared
    deviations are all-reduced (differentiably). The same two-pass mean and variance as ``BatchNorm2d``; running
    statistics updated with the global unbiased variance. In eval mode, or in one process, it is ``BatchNorm2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.distributed.is_available() and torch.distributed.is_initialized()):
            return super().forward(x)
        if x.ndim != 4:
            raise ValueError(f"GlobalBatchNorm2d: expected a 4-d input, got shape {tuple(x.shape)}")
        c = x.shape[1]
        n = _AllReduceSum.apply(x.new_tensor([float(x.numel() // c)]))
        mean = _AllReduceSum.apply(x.sum((0, 2, 3))) / n
        xc = x - mean.view(1, c, 1, 1)
        var = _AllReduceSum.apply((xc * xc).sum((0, 2, 3))) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                mom = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - mom).add_(mom * mean.detach())
                self.running_var.mul_(1 - mom).add_(mom * var.detach() * (n / (n - 1)).clamp_min(0))
        y = xc * torch.rsqrt(var + self.eps).view(1, c, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y


def _convert_bn(module: torch.nn.Module, cuda: bool) -> torch.nn.Module:
    """Replace, in place, every ``BatchNorm{1,2,3}d`` (``SyncBatchNorm`` on CUDA) or ``BatchNorm2d`` (gloo) by its
    synchronised version, sharing the parameters and running buffers. Returns the (possibly new) root."""
    bn = torch.nn.modules.batchnorm
    out = module
    if cuda and isinstance(module, bn._BatchNorm) and not isinstance(module, torch.nn.SyncBatchNorm):
        out = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        out.train(module.training)
        return out
    if not cuda and type(module) is torch.nn.BatchNorm2d:
        out = GlobalBatchNorm2d(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
        return out
    if not cuda and isinstance(module, bn._BatchNorm) and type(module) not in (GlobalBatchNorm2d,):
        raise ValueError(
            f"sync_batchnorm: {type(module).__name__} has no gloo version here (only BatchNorm2d); freeze it "
            "(eval mode) or train on CUDA"
        )
    for name, child in module.named_children():
        new = _convert_bn(child, cuda)
        if new is not child:
            setattr(module, name, new)
    return out
