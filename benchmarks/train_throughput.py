"""Training throughput of ``xmr_lib.train.loop.Trainer`` against a bare PyTorch loop: ``python -m benchmarks.train_throughput``

Trains the same randomly initialised torchvision model (``--model googlenet`` by default) on the same random batches
(``--batch`` images of ``--size`` px, 1000 classes, SGD) three ways, in the same run, and prints images/s:

* **bare fp32** — the minimal loop: copy, forward, cross-entropy, ``zero_grad``, backward, step;
* **bare matched** — the same loop with what our Trainer does on CUDA: bfloat16 autocast, ``channels_last`` model
  and inputs, pinned-memory non-blocking copies (on the CPU: identical to bare fp32);
* **Trainer** — a :class:`xmr_lib.train.loop.Task` whose ``training_step`` is that forward and loss, run by
  ``Trainer(amp=True)`` (``Trainer.prepare`` / ``Trainer.to_device``).

The ratio Trainer / bare matched is the loop's overhead (target ≥ 0.9); Trainer / bare fp32 is what AMP and
``channels_last`` buy. Then, from the measured Trainer images/s, a rough estimate of each incremental notebook's
``full`` profile on this device: the student's training steps only (iterations × P·K images, read from the chapter
configs, × methods × seeds × datasets); teacher forward passes (about +⅓ per teacher), evaluation and image
generation are not counted, and the ``full`` trunk is GoogLeNet (BatchNorm) at 224 px — run with those settings (the default) for
a meaningful estimate. Clearly an estimate, a lower bound.

``--quick`` (CPU, seconds): resnet18, 32 px, batch 8, 3 timed steps — used by ``tests/train/test_loop.py``, which only
checks that it runs and prints a finite ratio.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import math
import time

import torch
import torch.nn.functional as F

from xmr_lib.train import loop


def make_model(name: str, seed: int = 0) -> torch.nn.Module:
    import torchvision

    torch.manual_seed(seed)
    if name == "googlenet":  # one output in training mode (no auxiliary heads), as chapters 5–7 use it
        return torchvision.models.googlenet(weights=None, num_classes=1000, aux_logits=False, init_weights=True)
    return getattr(torchvision.models, name)(weights=None, num_classes=1000)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model, batches, device, steps: int, warmup: int, matched: bool) -> float:
    """Images/s of the minimal loop (``matched``: bf16 autocast + channels_last on CUDA)."""
    cuda = device.type == "cuda"
    model.to(device)
    if matched and cuda:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    n, t0 = 0, None
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        x, y = batches[i % len(batches)]
        x, y = x.to(device, non_blocking=matched), y.to(device, non_blocking=matched)
        if matched and cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=matched and cuda):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(x) if i >= warmup else 0
    _sync(device)
    return n / (time.perf_counter() - t0)


class _Timer(loop.Hook):
    def __init__(self, warmup: int):
        self.warmup, self.t0, self.t1 = warmup, None, None

    def on_step_end(self, trainer, batch, output) -> None:
        if trainer.global_step == self.warmup:
            _sync(trainer.device)
            self.t0 = time.perf_counter()

    def on_fit_end(self, trainer) -> None:
        _sync(trainer.device)
        self.t1 = time.perf_counter()


def trainer_loop(model, batches, device, steps: int, warmup: int) -> float:
    """Images/s of the same training under our Trainer (AMP, channels_last, pinned copies: its CUDA defaults)."""

    class Classify(loop.Task):
        def on_fit_start(self, tr):
            self.net = tr.prepare(model)
            self.opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            self.net.train()

        def batches(self, tr, epoch):
            i = 0
            while True:
                yield batches[i % len(batches)]
                i += 1

        def training_step(self, tr, batch):
            x, y = tr.to_device(batch)
            return F.cross_entropy(self.net(x), y)

        def optimizers(self, tr, batch):
            return [self.opt]

    timer = _Timer(warmup)
    loop.Trainer(max_steps=warmup + steps, device=device, amp=True, progress=False, hooks=[timer]).fit(Classify())
    if timer.t0 is None:  # warmup 0
        raise ValueError("warmup: expected at least 1 step")
    return steps * len(batches[0][0]) / (timer.t1 - timer.t0)


def full_profile_images(chapter: str) -> tuple[float, str] | None:
    """Images the student trains on in notebook ``chapter``'s ``full`` profile (a rough count, see the module
    docstring), and how it was counted; None when the chapter has no iteration-based full profile."""
    try:
        P = importlib.import_module(f"xmr_lib.chapters.ch{chapter}.config").PROFILES["full"]
    except (ImportError, KeyError):
        return None
    if "classes_per_batch" not in P or "images_per_class" not in P:
        return None
    batch = P["classes_per_batch"] * P["images_per_class"]
    seeds, n_steps = P.get("n_seeds", 1), P.get("n_steps", 1)
    if chapter == "05":
        meths = list(P["methods"])
        it = P["base_iterations"] + P["inc_iterations"] * len([m for m in meths if m != "joint"])
        it += P["joint_iterations"] * ("joint" in meths) + P["step_iterations"] * n_steps * len(P["multi_methods"])
        how = "base + inc·methods + joint + step·n_steps·multi_methods"
    elif chapter == "06":
        meths = list(P["onetask_methods"]) + list(P.get("baseline_methods", []))
        it = P["base_iterations"] + P["onetask_iterations"] * len([m for m in meths if m != "joint"])
        it += P["joint_iterations"] * ("joint" in meths) + P["step_iterations"] * n_steps * len(P["multi_methods"])
        how = "base + onetask·methods + joint + step·n_steps·multi_methods"
    elif chapter == "07":
        meths = list(P["methods"]) + list(P.get("ablation_methods", []))
        it = P["base_iterations"] + P["inc_iterations"] * len([m for m in meths if m != "joint"])
        it = (it + P["joint_iterations"] * ("joint" in meths)) * len(P.get("datasets", [1]))
        how = "(base + inc·methods + joint) · datasets"
    else:
        return None
    return float(it * batch * seeds), f"{how}; × P·K = {batch} × {seeds} seed(s) = {it * batch * seeds:,} images"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.train_throughput", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="googlenet", help="a torchvision model name (random init)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per loop")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2, help="each loop runs this many times, alternating; best kept")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="resnet18, 32 px, batch 8, 3 steps (CPU smoke)")
    args = ap.parse_args(argv)
    if args.quick:
        args.model, args.batch, args.size, args.steps, args.warmup, args.repeats = "resnet18", 8, 32, 3, 1, 1
    from xmr_lib.core.setup import resolve_device

    device = torch.device(resolve_device(args.device))
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(4):
        x = torch.randn(args.batch, 3, args.size, args.size, generator=g)
        y = torch.randint(0, 1000, (args.batch,), generator=g)
        batches.append((x.pin_memory(), y.pin_memory()) if device.type == "cuda" else (x, y))
    base = make_model(args.model)
    best = {"bare fp32": 0.0, "bare matched": 0.0, "Trainer": 0.0}
    for _ in range(args.repeats):
        best["bare fp32"] = max(
            best["bare fp32"], bare_loop(copy.deepcopy(base), batches, device, args.steps, args.warmup, False)
        )
        best["bare matched"] = max(
            best["bare matched"], bare_loop(copy.deepcopy(base), batches, device, args.steps, args.warmup, True)
        )
        best["Trainer"] = max(
            best["Trainer"], trainer_loop(copy.deepcopy(base), batches, device, args.steps, args.warmup)
        )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {name}; {args.model}, batch {args.batch}, {args.size} px, {args.steps} timed steps, best of "
        f"{args.repeats}"
    )
    for k, v in best.items():
        print(f"  {k:13s} {v:10.1f} images/s")
    ratio = best["Trainer"] / best["bare matched"]
    print(f"ratio Trainer / bare matched: {ratio:.3f} (target >= 0.9)")
    print(f"ratio Trainer / bare fp32:    {best['Trainer'] / best['bare fp32']:.3f} (what AMP + channels_last buy)")
    print(
        f"estimated training time of the `full` profiles at {best['Trainer']:.1f} images/s ({args.model}, "
        f"{args.size} px; an estimate — student steps only, see the docstring):"
    )
    for ch in ("05", "06", "07"):
        est = full_profile_images(ch)
        if est is None:
            print(f"  notebook {ch}: no iteration-based full profile")
            continue
        hours = est[0] / best["Trainer"] / 3600 if best["Trainer"] > 0 else math.inf
        print(f"  notebook {ch}: ≈ {hours:,.1f} h  ({est[1]})")
    return 0 if math.isfinite(ratio) else 1


if __name__ == "__main__":
    raise SystemExit(main())
