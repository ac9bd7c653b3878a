"""A fine-tuning job that runs alone or data-parallel under ``torchrun`` (see :mod:`xmr_lib.train.distributed`).

``python -m xmr_lib.train.finetune_job --out DIR [--epochs 3 --batch-tuples 4 --seed 0]`` — one process;
``torchrun --standalone --nproc_per_node=2 -m xmr_lib.train.finetune_job --out DIR`` — two ranks (gloo on CPU, NCCL on
GPU) with the same global batch: the loss curve in ``DIR/history.json`` (written by rank 0) is the one-process
curve. The data are small generated instances (groups of noisy copies of a random pattern), the network a small
conv trunk with GeM pooling: a template for distributing any of the book's fine-tuning runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from xmr_lib.core.setup import setup
from xmr_lib.retrieval.pooling import GeM
from xmr_lib.train import distributed
from xmr_lib.train.finetune import RetrievalNet, train_retrieval_net


def instances(n_groups: int = 8, per_group: int = 6, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """``(n_groups · per_group, 3, size, size)`` inputs — noisy copies of one random pattern per group — and groups."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n_groups, 3, size, size, generator=g)
    x = base.repeat_interleave(per_group, 0) + 0.3 * torch.randn(n_groups * per_group, 3, size, size, generator=g)
    return x, np.repeat(np.arange(n_groups), per_group)


def small_net(seed: int = 0) -> RetrievalNet:
    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
    return RetrievalNet(trunk, GeM(p=3.0))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xmr_lib.train.finetune_job", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for history.json (rank 0 writes it)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-tuples", type=int, default=4, help="the GLOBAL batch, split between the ranks")
    ap.add_argument("--queries", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    settings = setup(args.seed, args.device, threads=1)
    dist = distributed.context(settings.device)
    x, groups = instances(seed=args.seed)
    net = small_net(args.seed)
    hist = train_retrieval_net(
        net,
        x,
        groups,
        epochs=args.epochs,
        queries_per_epoch=args.queries,
        pool_size=len(x),
        n_negatives=2,
        batch_tuples=args.batch_tuples,
        lr=1e-3,
        seed=args.seed,
        device=settings.device,
        progress=False,
    )
    if dist.is_main:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "history.json").write_text(json.dumps({"world": dist.world, **hist.as_dict()}, indent=1))
    dist.barrier()
    if dist.enabled:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
