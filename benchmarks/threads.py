"""How many torch threads suit this machine? ``python -m benchmarks.threads``

Times the workloads the notebooks run on a CPU — small convolutions (28×28 / 64×64 batches, forward+backward),
a small MLP step, and one EfficientNet-sized 224 px convolution stack — with 1, 2, … threads, in the same run,
and prints the time ratio against 1 thread. ``xmr_lib.setup`` uses 1 thread on machines with ≤ 2 cores because
of this measurement (see README, "Performance notes").
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def workloads():
    g = torch.Generator().manual_seed(0)
    small = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 64),
    )
    x28 = torch.randn(64, 1, 28, 28, generator=g)
    rgb = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 64),
    )
    x64 = torch.randn(32, 3, 64, 64, generator=g)
    mlp = nn.Sequential(nn.Linear(1280, 512), nn.ReLU(), nn.Linear(512, 128))
    xm = torch.randn(256, 1280, generator=g)
    big = nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 128, 3, stride=2, padding=1),
    )
    x224 = torch.randn(8, 3, 224, 224, generator=g)

    def step(model, x):
        def f():
            model.zero_grad()
            model(x).square().mean().backward()

        return f

    def fwd(model, x):
        def f():
            with torch.no_grad():
                model(x)

        return f

    return {
        "small conv 28px fwd+bwd (b64)": step(small, x28),
        "small conv 64px fwd+bwd (b32)": step(rgb, x64),
        "MLP 1280→512→128 fwd+bwd (b256)": step(mlp, xm),
        "conv stack 224px fwd (b8)": fwd(big, x224),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    counts = sorted({1, 2, cores})
    print(f"cores: {cores}; torch {torch.__version__}")
    print(f"{'workload':36s} " + " ".join(f"{n:>2d} thr (ms)" for n in counts) + "  ratio t(max)/t(1)")
    for name, fn in workloads().items():
        ts = []
        for n in counts:
            torch.set_num_threads(n)
            ts.append(_time(fn, args.repeats) * 1e3)
        print(f"{name:36s} " + " ".join(f"{t:11.2f}" for t in ts) + f"  {ts[-1] / ts[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
