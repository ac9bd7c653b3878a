"""An incremental-learning job (chapters 5-7) that runs alone or data-parallel under ``torchrun``.

``python -m xmr_lib.train.incremental_job --out DIR [--method kd_mmd --tasks 2 --iterations 6 ...]`` — one
process; ``torchrun --standalone --nproc_per_node=2 -m xmr_lib.train.incremental_job --out DIR ...`` — two ranks
(gloo on CPU, NCCL on GPU) sharing every GLOBAL P×K batch: the per-step loss curve in ``DIR/record.json`` (written by
rank 0) is the one-process curve. The data are the embedded SynthSpecies images
(:func:`xmr_lib.train.incremental.synth_species_disjoint`), the network the small BatchNorm CNN (or an ImageNet trunk,
``--backbone``, randomly initialised unless its weights are installed): a template for distributing any of the book's
incremental runs (see :mod:`xmr_lib.train.distributed`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from xmr_lib.core.setup import setup
from xmr_lib.train import distributed
from xmr_lib.train import incremental as inc


def build(args: argparse.Namespace) -> inc.IncrementalTrainer:
    """The :class:`IncrementalTrainer` the flags describe (the same on every rank)."""
    step = args.classes // args.tasks
    if step < 1 or args.classes > 18:
        raise ValueError(f"--classes: expected {args.tasks}-18 classes for {args.tasks} tasks, got {args.classes}")
    n_a = min(9, args.classes)  # the data: up to 9 classes of attribute set A, the rest of B
    train, test, _ = inc.synth_species_disjoint(
        n_a, max(args.classes - n_a, 1), args.train_per_class, args.test_per_class, args.size, seed=args.seed
    )
    classes = np.arange(args.classes)
    n_first = args.classes - step * (args.tasks - 1)
    tasks = inc.class_increments(classes, n_first, args.tasks - 1) if args.tasks > 1 else [classes]
    cfg = inc.TrainConfig(
        iterations=args.iterations,
        P=args.P,
        K=args.K,
        lr=args.lr,
        log_every=1,
        device=args.device,
        seed=args.seed,
        progress=False,
        freeze_bn=args.freeze_bn,
    )
    torch.manual_seed(args.seed)
    model = inc.make_net(
        len(tasks[0]), backbone=args.backbone, embed_dim=args.embed_dim, width=args.width, pretrained=False
    )
    plugins = inc.method_plugins(args.method, alpha=args.alpha, beta=args.beta)
    transform = inc.trunk_transform(args.backbone, 3, size=args.size)
    return inc.IncrementalTrainer(model, train, test, tasks, plugins, cfg, transform, name=args.method)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xmr_lib.train.incremental_job", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for record.json (rank 0 writes it)")
    ap.add_argument("--method", default="kd_mmd", choices=sorted(inc.METHODS))
    ap.add_argument("--tasks", type=int, default=2, help="number of tasks (equal groups; the first takes the rest)")
    ap.add_argument("--classes", type=int, default=6, help="classes over all tasks (at most 18)")
    ap.add_argument("--iterations", type=int, default=6, help="optimiser steps per task")
    ap.add_argument("--P", type=int, default=3, help="classes per GLOBAL batch")
    ap.add_argument("--K", type=int, default=4, help="images per class: the global batch is P·K, split between ranks")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--alpha", type=float, default=1.0, help="distillation weight")
    ap.add_argument("--beta", type=float, default=1.0, help="MMD weight")
    ap.add_argument("--backbone", default="tiny", choices=list(inc.TRUNKS))
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--embed-dim", type=int, default=16)
    ap.add_argument("--size", type=int, default=16, help="image side in pixels")
    ap.add_argument("--train-per-class", type=int, default=12)
    ap.add_argument("--test-per-class", type=int, default=6)
    ap.add_argument("--freeze-bn", action="store_true", help="BatchNorm in eval mode (else synchronised over ranks)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    args = ap.parse_args(argv)
    if args.tasks < 1:
        raise ValueError(f"--tasks: expected an int >= 1, got {args.tasks}")
    settings = setup(args.seed, args.device, threads=1)
    args.device = str(settings.device)
    dist = distributed.context(settings.device)
    trainer = build(args)
    t0 = time.time()
    result = trainer.run()
    if dist.is_main:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        rec = {"world": dist.world, "seconds": time.time() - t0, "args": vars(args), **result.to_dict()}
        (out / "record.json").write_text(json.dumps(rec, indent=1, default=float))
    dist.barrier()
    if dist.enabled:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
