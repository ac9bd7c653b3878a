"""Independent small runs trained together: ``python -m benchmarks.batched_training``

Trains R runs (R seeds) of two small networks one after the other and then as one batched network
(:mod:`xmr_lib.train.batched`), in the same process, and prints runs per second of both ways, their ratio and the
largest per-run difference of the results:

- ``mlp``: a two-layer MLP classifier with dropout (:func:`xmr_lib.train.batched.train_classifier_runs`), compared
  by its parameters and its training accuracy;
- ``hashing``: chapter 3's cross-modal hashing model at the default profile's size (1,280-d image features, a
  44-word caption vocabulary, 1,000 training pairs, 32 bits, DCMH's alternating passes with buffers and the
  adversarial domain predictors), compared by the image→text and text→image Hamming mAP of every run; also the
  batched trainer's ``fast=True`` (closed-form pair-term gradient, fused Adam: equal to rounding only, so reported
  but not held to 1e-5).

Exits 1 if any run's result differs by more than 1e-5 between the two ways. Targets (not enforced: a shared CPU's
timings swing): ≥ 1.5× on a 2-core CPU, ≥ 5× on a GPU. ``--quick`` is a small smoke run (used by the tests).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from torch import nn

from xmr_lib.chapters.ch03 import batched_hashing as BH
from xmr_lib.chapters.ch03 import hashing as H
from xmr_lib.core.setup import resolve_device
from xmr_lib.retrieval.metrics import hamming_map
from xmr_lib.train import batched as B


def _mlp_case(runs: int, quick: bool, device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    n, d = (400, 32) if quick else (4000, 128)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :3] > 0).long().sum(1)
    make = lambda: nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 4))  # noqa: E731
    kw = dict(epochs=2 if quick else 5, batch_size=64, lr=1e-3, device=device)
    seeds = list(range(runs))
    out = {}
    for way in ("one_by_one", "batched"):
        t0 = time.perf_counter()
        models, _ = B.train_classifier_runs(make, x, y, seeds, batched=way == "batched", **kw)
        out[way] = time.perf_counter() - t0
        out[way + "_models"] = models
    xd, yd = x.to(models[0][0].weight.device), y.to(models[0][0].weight.device)
    diffs = []
    for a, b in zip(out["one_by_one_models"], out["batched_models"]):
        diffs.append(max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters())))
        with torch.no_grad():
            acc = [(m(xd).argmax(1) == yd).float().mean().item() for m in (a, b)]
        diffs.append(abs(acc[0] - acc[1]))
    return {"one_by_one_s": out["one_by_one"], "batched_s": out["batched"], "max_diff": max(diffs)}


def _hashing_case(runs: int, quick: bool, device: str) -> dict:
    r = np.random.default_rng(0)
    n_train, n_eval, c = (200, 200, 14) if quick else (1000, 1000, 14)
    d_img, words = (64, 44) if quick else (1280, 44)
    lab = np.zeros((n_train + n_eval, c), np.float32)
    for _ in range(3):
        lab[np.arange(len(lab)), r.integers(0, c, len(lab))] = 1
    proto_i, proto_t = r.normal(size=(c, d_img)), r.normal(size=(c, words))
    x = (lab @ proto_i + r.normal(size=(len(lab), d_img))).astype(np.float32)
    y = ((lab @ proto_t + 0.5 * r.normal(size=(len(lab), words))) > 1.0).astype(np.float32)
    tr, ev = slice(0, n_train), slice(n_train, None)
    if quick:
        cfg = H.HashingConfig(n_bits=16, common_dim=64, image_hidden=(), text_hidden=128, epochs=2, batch_size=64)
    else:  # the default profile of notebook 03
        cfg = H.HashingConfig(n_bits=32, common_dim=512, image_hidden=(), text_hidden=2000, epochs=8, batch_size=128)
    seeds = list(range(runs))
    t0 = time.perf_counter()
    one = [
        H.train_cross_modal_hashing(x[tr], y[tr], lab[tr], cfg, seed=s, device=device, progress=False, probe_every=2)
        for s in seeds
    ]
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    bat = BH.train_cross_modal_hashing_batched(x[tr], y[tr], lab[tr], cfg, seeds, device=device, probe_every=2)
    t_bat = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = BH.train_cross_modal_hashing_batched(
        x[tr], y[tr], lab[tr], cfg, seeds, device=device, probe_every=2, fast=True
    )
    t_fast = time.perf_counter() - t0

    def maps(m):
        bi, bt = m.encode(x[ev], "image"), m.encode(y[ev], "text")
        return hamming_map(bi, bt, lab[ev], lab[ev]), hamming_map(bt, bi, lab[ev], lab[ev])

    ref = [maps(m) for m in one]
    diff = lambda ms: max(abs(a - b) for r, m in zip(ref, ms) for a, b in zip(r, maps(m)))  # noqa: E731
    fast_res = {"one_by_one_s": t_one, "batched_s": t_fast, "max_diff": diff(fast)}
    return {"one_by_one_s": t_one, "batched_s": t_bat, "max_diff": diff(bat), "fast": fast_res}


def _report(name: str, res: dict, runs: int, target: float) -> bool:
    one_rps, bat_rps = runs / res["one_by_one_s"], runs / res["batched_s"]
    ratio = bat_rps / one_rps
    same = res["max_diff"] <= 1e-5
    print(
        f"{name:10s} one-by-one {one_rps:7.2f} runs/s   batched {bat_rps:7.2f} runs/s   ratio {ratio:5.2f}× "
        f"(target ≥ {target:g}×: {'met' if ratio >= target else 'missed'})   "
        f"max per-run difference {res['max_diff']:.1e} ({'identical to 1e-5' if same else 'DIFFERENT'})"
    )
    return same


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="R runs (seeds) per workload (default 5, as notebook 03)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few seconds")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--only", choices=("mlp", "hashing"), default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads for both ways (default: torch's own)")
    a = ap.parse_args(argv)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    target = 5.0 if device.startswith("cuda") else 1.5
    ok = True
    print(f"device={device} R={a.runs} runs threads={torch.get_num_threads()} (the same for both ways) quick={a.quick}")
    for name, case in (("mlp", _mlp_case), ("hashing", _hashing_case)):
        if a.only not in (None, name):
            continue
        res = case(a.runs, a.quick, device)
        ok &= _report(name, res, a.runs, target)
        if "fast" in res:  # reported, not held to 1e-5: its gradients differ from autograd's by rounding
            _report("  fast=True", res["fast"], a.runs, target)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
