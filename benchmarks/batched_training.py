"""Independent small runs trained together: ``python -m benchmarks.batched_training``

Trains R runs (R seeds) of two small networks one after the other and then as one batched network
(:mod:`xmr_lib.train.batched`), in the same process, and prints runs per second of both ways, their ratio and the
largest per-run difference of the results:

- ``mlp``: a two-layer MLP classifier with dropout (:func:`xmr_lib.train.batched.train_classifier_runs`), compared
  by its parameters and its training accuracy;
- ``hashing``: chapter 3's cross-modal hashing model at the default profile's size (1,280-d image features, a
  44-word caption vocabulary, 1,000 training pairs, 32 bits, 8 epochs of DCMH's alternating passes with buffers and
  the adversarial domain predictors; ``--pairs`` / ``--epochs`` change the size), compared by the image→text and
  text→image Hamming mAP of every run, in two arithmetics, each batched against its own one-by-one fits:

  * autograd (notebook 03's): the chapter's trainer seed by seed vs the batched trainer (``fast=False``);
  * closed form (``fast=True``: both pair terms' gradient in closed form from one product, fused Adam): the
    chapter's per-run trainer in that arithmetic (``batched_hashing.train_cross_modal_hashing_closed_form``) seed
    by seed vs the batched trainer with ``fast=True``.

  A third line, closed-form batched vs autograd one-by-one, is reported but not held to 1e-5 (not the same
  arithmetic: rounding flips a code bit now and then).

Exits 1 if any run's result differs by more than 1e-5 between the two ways of one arithmetic. Targets (not
enforced: a shared CPU's timings swing): ≥ 1.5× on a 2-core CPU, ≥ 5× on a GPU. ``--quick`` is a small smoke run
(used by the tests).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

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


def _hashing_data(n_train: int, n_eval: int, d_img: int, words: int = 44, c: int = 14):
    r = np.random.default_rng(0)
    lab = np.zeros((n_train + n_eval, c), np.float32)
    for _ in range(3):
        lab[np.arange(len(lab)), r.integers(0, c, len(lab))] = 1
    proto_i, proto_t = r.normal(size=(c, d_img)), r.normal(size=(c, words))
    x = (lab @ proto_i + r.normal(size=(len(lab), d_img))).astype(np.float32)
    y = ((lab @ proto_t + 0.5 * r.normal(size=(len(lab), words))) > 1.0).astype(np.float32)
    return x, y, lab


def _hashing_case(
    runs: int, quick: bool, device: str, pairs: int | None = None, epochs: int | None = None, repeat: int = 1
) -> dict:
    n_train = pairs or (200 if quick else 1000)
    x, y, lab = _hashing_data(n_train, 200 if quick else 1000, 64 if quick else 1280)
    tr, ev = slice(0, n_train), slice(n_train, None)
    if quick:
        cfg = H.HashingConfig(n_bits=16, common_dim=64, image_hidden=(), text_hidden=128, epochs=2, batch_size=64)
    else:  # the default profile of notebook 03
        cfg = H.HashingConfig(n_bits=32, common_dim=512, image_hidden=(), text_hidden=2000, epochs=8, batch_size=128)
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    seeds = list(range(runs))
    kw = dict(device=device, probe_every=2)
    ways = {  # each way: a callable that trains every seed and returns the R models
        "autograd_one": lambda: [H.train_cross_modal_hashing(*data, cfg, seed=s, progress=False, **kw) for s in seeds],
        "autograd_batched": lambda: BH.train_cross_modal_hashing_batched(*data, cfg, seeds, **kw),
        "closed_one": lambda: [BH.train_cross_modal_hashing_closed_form(*data, cfg, seed=s, **kw) for s in seeds],
        "closed_batched": lambda: BH.train_cross_modal_hashing_batched(*data, cfg, seeds, fast=True, **kw),
    }
    data = (x[tr], y[tr], lab[tr])
    warm = replace(cfg, epochs=1)  # first calls pay one-off costs (allocator, kernels' first use): not timed
    H.train_cross_modal_hashing(*data, warm, seed=0, progress=False, **kw)
    BH.train_cross_modal_hashing_batched(*data, warm, seeds[:2], fast=True, **kw)
    secs, maps = {}, {}
    for _ in range(repeat):  # rounds of all four ways, each way's best time kept (a shared CPU's load comes and goes)
        for way, fit in ways.items():
            t0 = time.perf_counter()
            models = fit()
            secs[way] = min(secs.get(way, float("inf")), time.perf_counter() - t0)
            maps[way] = []
            for m in models:
                bi, bt = m.encode(x[ev], "image"), m.encode(y[ev], "text")
                maps[way].append((hamming_map(bi, bt, lab[ev], lab[ev]), hamming_map(bt, bi, lab[ev], lab[ev])))

    def row(one: str, bat: str) -> dict:
        diff = max(abs(a - b) for ra, rb in zip(maps[one], maps[bat]) for a, b in zip(ra, rb))
        return {"one_by_one_s": secs[one], "batched_s": secs[bat], "max_diff": diff}

    return {
        "autograd": row("autograd_one", "autograd_batched"),
        "closed": row("closed_one", "closed_batched"),
        "mixed": row("autograd_one", "closed_batched"),
        "config": f"{n_train} pairs, {cfg.epochs} epochs, {cfg.n_bits} bits",
    }


def _report(name: str, res: dict, runs: int, target: float, held: bool = True) -> bool:
    one_rps, bat_rps = runs / res["one_by_one_s"], runs / res["batched_s"]
    ratio = bat_rps / one_rps
    same = res["max_diff"] <= 1e-5
    verdict = ("identical to 1e-5" if same else "DIFFERENT") if held else "reported only: not the same arithmetic"
    print(
        f"{name:34s} one-by-one {one_rps:7.3f} runs/s   batched {bat_rps:7.3f} runs/s   ratio {ratio:5.2f}× "
        f"(target ≥ {target:g}×: {'met' if ratio >= target else 'missed'})   "
        f"max per-run difference {res['max_diff']:.1e} ({verdict})"
    )
    return same or not held


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="R runs (seeds) per workload (default 5, as notebook 03)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few seconds")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--only", choices=("mlp", "hashing"), default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads for both ways (default: torch's own)")
    ap.add_argument("--pairs", type=int, default=None, help="hashing: training pairs (default 1,000; --quick 200)")
    ap.add_argument("--epochs", type=int, default=None, help="hashing: epochs (default 8, notebook 03's default)")
    ap.add_argument("--repeat", type=int, default=1, help="hashing: rounds of all ways, best time of each kept")
    a = ap.parse_args(argv)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    target = 5.0 if device.startswith("cuda") else 1.5
    ok = True
    print(f"device={device} R={a.runs} runs threads={torch.get_num_threads()} (the same for both ways) quick={a.quick}")
    if a.only in (None, "mlp"):
        ok &= _report("mlp", _mlp_case(a.runs, a.quick, device), a.runs, target)
    if a.only in (None, "hashing"):
        res = _hashing_case(a.runs, a.quick, device, a.pairs, a.epochs, max(1, a.repeat))
        print(f"hashing: {res['config']}, best of {max(1, a.repeat)} round(s)")
        ok &= _report("hashing, autograd (notebook 03's)", res["autograd"], a.runs, target)
        ok &= _report("hashing, closed form (fast=True)", res["closed"], a.runs, target)
        _report("  closed-form batched vs autograd 1×1", res["mixed"], a.runs, target, held=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
