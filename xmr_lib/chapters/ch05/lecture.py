"""Notebook 05's code: the benchmark and network of a run, the experiments of its sections, their tables, figures
and recorded metrics (thesis chapter 5: incremental fine-grained retrieval with L_dist and L_mmd).

The notebook reads as a lecture and calls these functions; the losses, the trainer and the protocol are in
:mod:`xmr_lib.train.distill` and :mod:`xmr_lib.train.incremental`. A function here returns metrics as a
``{key: value}`` dict the notebook records (``runs.record_many``); a run's results are the dicts
:func:`xmr_lib.train.incremental.compare_methods` returns, ``{seed: {"initial": ..., method: IncrementalResult}}``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from xmr_lib.chapters.ch05.config import CIFAR_REAL, CIFAR_TABLE, PAPER_NEW_SPLITS, PAPER_SPLIT, ab_key
from xmr_lib.core import parallel
from xmr_lib.data import registry
from xmr_lib.retrieval import index
from xmr_lib.train import incremental as inc

#: the weight knob of each regulariser (its name in :func:`xmr_lib.train.incremental.method_plugins`, its knob)
WEIGHT_KNOB = {"kd_mmd": "beta", "mmd": "beta", "lwf": "alpha", "l2": "l2_weight", "ewc": "ewc_weight"}


# ---- section 1: the benchmark and the network


def benchmark(P: Any, seed: int) -> tuple[inc.LabelledImages, inc.LabelledImages, list[str]]:
    """``(train, test, class names)`` of ``P.dataset``; ``seed`` draws the SynthSpecies images (a real dataset is
    the same for every seed)."""
    if P.dataset == "synth_species":
        return inc.synth_species_disjoint(
            P.n_old, P.n_new, P.train_per_class, P.test_per_class, P.image_size, seed=seed
        )
    return inc.load_fine_grained(P.dataset, P.data_root, P.image_size)


def is_real(P: Any) -> bool:
    """Does this run read a real dataset (after the fallback rule, which sets ``dataset`` to SynthSpecies)?"""
    return P.dataset != "synth_species"


def batch_transform(P: Any, in_channels: int) -> inc.BatchTransform:
    """Normalisation of the trunk, flips, and the thesis' random-resized crops with ``augment="crop_flip"``; a
    non-tiny trunk resizes to ``image_size``."""
    crop = (0.16, 1.0) if P.augment == "crop_flip" else None
    return inc.trunk_transform(P.backbone, in_channels, size=P.image_size, crop_scale=crop)


def model_factory(P: Any, in_channels: int) -> Callable[[int], inc.IncrementalNet]:
    """``make_model(n_classes)``: the network of Fig. 5.1b with this run's trunk and embedding size (``tiny=True``:
    the ImageNet trunk randomly initialised)."""
    return functools.partial(
        inc.make_net,
        backbone=P.backbone,
        embed_dim=P.embed_dim,
        width=P.width,
        in_channels=in_channels,
        pretrained=not P.tiny,
    )


def as_image(x: torch.Tensor) -> np.ndarray:
    """A ``(C, H, W)`` uint8 tensor → ``(H, W[, C])`` for plotting."""
    return x.permute(1, 2, 0).squeeze(-1).numpy()


def sample_images(train: inc.LabelledImages, group: Sequence[int], per_class: int = 3, n_classes: int = 9):
    """Images and titles of the first ``n_classes`` classes of ``group``, ``per_class`` each (class id above the
    first of each class)."""
    shown = group[: min(len(group), n_classes)]
    ims = [as_image(im) for c in shown for im in train.images[train.labels == c][:per_class]]
    titles = [str(c) if i % per_class == 0 else "" for c in shown for i in range(per_class)]
    return ims, titles


# ---- section 4: the one-step experiment


def train_config(P: Any, seed: int, iterations: Sequence[int]) -> inc.TrainConfig:
    """The training settings of every run; the in-task evaluations (the forgetting curves of section 5) only for the
    first seed: they cost time."""
    return inc.TrainConfig(
        iterations=iterations,
        P=P.classes_per_batch,
        K=P.images_per_class,
        lr=P.lr,
        lr_trunk=P.lr_trunk,
        weight_decay=P.weight_decay,
        freeze_bn=P.freeze_bn,
        eval_every=P.eval_every if seed == P.seed else 0,
        device=P.device,
        seed=seed,
        progress=True,
    )


def method_kwargs(P: Any) -> dict:
    """The loss weights and settings :func:`xmr_lib.train.incremental.method_plugins` takes."""
    sig = P.mmd_sigmas if isinstance(P.mmd_sigmas, str) else tuple(P.mmd_sigmas)
    return dict(
        alpha=P.alpha,
        beta=P.beta,
        l2_weight=P.l2_weight,
        ewc_weight=P.ewc_weight,
        temperature=P.temperature,
        sigmas=sig,
        margin=P.margin,
    )


def _with_weight(method: str, kwargs: dict, key: str, weight: float) -> Callable[[], list]:
    return lambda: inc.method_plugins(method, **{**kwargs, key: weight})


def _with_weights(method: str, kwargs: dict, **weights: float) -> Callable[[], list]:
    return lambda: inc.method_plugins(method, **{**kwargs, **weights})


def ab_name(alpha: float, beta: float) -> str:
    """The run name of an extra (α, β) run of Table 5.8: ``"kd_mmd α=0.1 β=10"``."""
    return f"kd_mmd α={alpha:g} β={beta:g}"


def ab_grid(P: Any) -> list[tuple[float, float]]:
    """The extra (α, β) runs of Table 5.8: every α of ``alpha_grid`` (but ``alpha``) × every β of {beta} ∪
    ``beta_grid`` (the α = alpha rows are the β grid)."""
    betas = sorted({P.beta, *P.beta_grid})
    return [(a, b) for a in P.alpha_grid if a != P.alpha for b in betas]


def one_step_seed(
    P: Any,
    s: int,
    data: tuple | None,
    make_model: Callable,
    protocol: Sequence,
    transform: Callable,
    kwargs: dict,
    part: str = "all",
) -> tuple[dict, float]:
    """One seed of :func:`run_one_step` and the seconds it took. ``part``: ``"all"``; ``"methods"`` (network A,
    every method of ``P.methods`` but joint training, the β grid from A) or ``"joint"`` (the joint reference alone: it
    does not start from A). ``data`` = ``(train, test)``, or None to draw the seed's SynthSpecies images here."""
    if part not in ("all", "methods", "joint"):
        raise ValueError(f"part: expected 'all', 'methods' or 'joint', got {part!r}")
    tr_s, te_s = data if data is not None else benchmark(P, s)[:2]
    t0 = time.time()
    methods = [m for m in P.methods if (m == "joint") == (part == "joint") or part == "all"]
    cfg = train_config(P, s, [P.base_iterations, P.inc_iterations])
    res = inc.compare_methods(
        make_model,
        tr_s,
        te_s,
        protocol,
        methods,
        cfg,
        transform,
        joint_iterations=P.joint_iterations,
        method_kwargs=kwargs,
        checkpoint=f"05/one_step/seed{s}" if P.checkpoint else None,
    )
    if part == "joint":
        return res, time.time() - t0
    grid = [b for b in P.beta_grid if b != P.beta]
    res.update(
        inc.compare_methods(
            make_model,
            tr_s,
            te_s,
            protocol,
            {f"kd_mmd β={b:g}": _with_weight("kd_mmd", kwargs, "beta", b) for b in grid},
            train_config(P, s, [P.base_iterations, P.inc_iterations]),
            transform,
            base=res["initial"],
            checkpoint=f"05/beta/seed{s}" if P.checkpoint else None,
        )
    )
    if ab_grid(P):  # Table 5.8's other α rows (full profile: α = 0.1)
        res.update(
            inc.compare_methods(
                make_model,
                tr_s,
                te_s,
                protocol,
                {ab_name(a, b): _with_weights("kd_mmd", kwargs, alpha=a, beta=b) for a, b in ab_grid(P)},
                train_config(P, s, [P.base_iterations, P.inc_iterations]),
                transform,
                base=res["initial"],
                checkpoint=f"05/alpha/seed{s}" if P.checkpoint else None,
            )
        )
    return res, time.time() - t0


def _without_plugins(out: tuple[dict, float]) -> tuple[dict, float]:
    """What a worker sends back: the results without their plugin objects (loss terms hold lambdas)."""
    for r in out[0].values():
        r.plugins = []
    return out


def run_one_step(
    P: Any,
    seeds: Sequence[int],
    first: tuple,
    make_model: Callable,
    protocol: Sequence,
    transform: Callable,
    kwargs: dict,
) -> dict:
    """Every method of ``P.methods`` and the β grid from one network A per seed: ``{seed: {"initial": A,
    method: result, "kd_mmd β=b": result}}``. ``first`` = ``(train, test)`` of the first seed (already loaded).

    On the CPU the work runs in parallel processes, one per core (:func:`xmr_lib.core.parallel.map_jobs`, one torch
    thread each: the numbers are those of a sequential run): per seed, network A with the methods that start from
    it, and apart the joint reference (a third of a seed's steps). The first seed's A and methods run in this
    process and keep their plugins; the other results come back without them."""
    split = "joint" in P.methods and [m for m in P.methods if m != "joint"]
    parts = ("methods", "joint") if split else ("all",)
    jobs = [
        (P, s, first if s == P.seed else None, make_model, protocol, transform, kwargs, part)
        for part in parts
        for s in seeds
    ]
    t0 = time.time()
    workers = parallel.cpu_workers(P.device, len(jobs))
    outs = parallel.map_jobs(one_step_seed, jobs, workers, finish=_without_plugins)
    one = {}
    for s in seeds:
        got = [out for job, out in zip(jobs, outs) if job[1] == s]
        runs_ = {k: v for res, _ in got for k, v in res.items()}
        keys = ["initial", *P.methods] + [k for k in runs_ if k != "initial" and k not in P.methods]
        one[s] = {k: runs_[k] for k in keys if k in runs_}
        print(f"seed {s}: {len(one[s]) - 1} runs in {sum(sec for _, sec in got):.0f} s")
    print(f"{len(seeds)} seed(s) in {time.time() - t0:.0f} s on {workers} process(es)")
    return one


per_seed = inc.per_seed
chance_map = inc.chance_map


def one_step_metrics(P: Any, one: dict, test: inc.LabelledImages, old_classes: Sequence[int]) -> dict:
    """The per-seed metrics the claims read: network A (mAP, over chance, loss, R@1), every method's old / new
    mAP and R@K, and Table 5.7's ablation (what L_mmd gives, what L_dist adds on top)."""
    out = {}
    init_old = [r["initial"].steps[0]["groups"][0]["mAP"] for r in one.values()]
    out["initial/old_mAP_seeds"] = init_old
    out["initial/old_mAP_over_chance_seeds"] = [m / chance_map(test, old_classes) for m in init_old]
    first_last = [
        (
            np.mean([l["total"] for l in r["initial"].losses[: max(1, len(r["initial"].losses) // 10)]]),
            np.mean([l["total"] for l in r["initial"].losses[-max(1, len(r["initial"].losses) // 10) :]]),
        )
        for r in one.values()
    ]
    out["initial/loss_last_over_first_seeds"] = [b / a for a, b in first_last]
    for which, g in (("old", 0), ("new", 1)):  # A before any new class ('feature extraction' on the new ones)
        out[f"initial/{which}_R@1_seeds"] = [r["initial"].steps[0]["groups"][g]["R@1"] for r in one.values()]
    for m in P.methods:
        for which in ("old", "new"):
            for metric in ("mAP", "R@1", "R@2", "R@4"):
                out[f"{m}/{which}_{metric}_seeds"] = per_seed(one, m, which, metric)
    if {"ft", "mmd", "kd_mmd"} <= set(P.methods):
        ft_, mmd_, ours_ = (np.array(per_seed(one, m, "old", "R@1")) for m in ("ft", "mmd", "kd_mmd"))
        out["ablation/mmd_gain_old_R@1_seeds"] = (mmd_ - ft_).tolist()
        out["ablation/dist_on_mmd_old_R@1_seeds"] = (ours_ - mmd_).tolist()
    return out


def plot_forgetting(first: dict, methods: Sequence[str]):
    """Fig. 5.3c: old- and new-class mAP while each method learns the new classes (first seed)."""
    s0 = first["initial"].steps[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
    for m in [m for m in methods if m != "joint"]:
        for g, ax in zip((0, 1), axes):
            x, y_ = first[m].curve(group=g, task=1)
            ax.plot(x - x.min(), y_, label=m, marker=".")
    axes[0].axhline(s0["groups"][0]["mAP"], ls=":", c="k", lw=1, label="A before")
    if "joint" in first:
        for g, ax in zip((0, 1), axes):
            ax.axhline(first["joint"].steps[-1]["groups"][g]["mAP"], ls="--", c="grey", lw=1, label="joint")
    axes[0].set(title="old classes (never seen again)", xlabel="iteration on the new classes", ylabel="mAP")
    axes[1].set(title="new classes (being learnt)", xlabel="iteration on the new classes")
    axes[1].legend(fontsize=9, ncol=2)
    fig.tight_layout()
    return fig


def forgetting_view(one: dict, methods: Sequence[str]) -> Callable:
    """``draw(method, seed)`` for ``viz.explorer``: old- and new-class mAP while ``method`` learns the new classes
    (seed ``seed`` of the one-step run), against fine-tuning (grey) from the same network A, with A's old-class mAP
    before (dotted) and joint training (dashed) when they were run. Draws recorded curves only (no training)."""

    def draw(method: str, seed: int):
        runs_ = one[seed]
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharex=True, layout="constrained")
        shown = ([("ft", "0.6", 1.2)] if method != "ft" and "ft" in runs_ else []) + [(method, "C0", 2.2)]
        for m, colour, lw in shown:
            for g, ax in zip((0, 1), axes):
                x, y_ = runs_[m].curve(group=g, task=1)
                ax.plot(x - x.min(), y_, marker=".", c=colour, lw=lw, label=m)
        axes[0].axhline(runs_["initial"].steps[0]["groups"][0]["mAP"], ls=":", c="k", lw=1, label="A before")
        if "joint" in runs_:
            for g, ax in zip((0, 1), axes):
                ax.axhline(runs_["joint"].steps[-1]["groups"][g]["mAP"], ls="--", c="grey", lw=1, label="joint")
        axes[0].set(title=f"{method}, seed {seed}: old classes", xlabel="iteration on the new classes", ylabel="mAP")
        axes[1].set(title="new classes (being learnt)", xlabel="iteration on the new classes", ylim=(0, 1.02))
        axes[0].set_ylim(0, 1.02)
        axes[0].legend(fontsize=9)
        return fig

    return draw


def plot_loss_terms(result: inc.IncrementalResult):
    """The four terms of Eq. 5.6 while the chapter's method learns the new classes."""
    Lk = pd.DataFrame([l for l in result.losses if l["task"] == 1])
    fig, axes = plt.subplots(1, 4, figsize=(13, 2.8))
    for ax, c in zip(axes, ("ce", "triplet", "kd", "mmd")):
        ax.plot(Lk["iteration"], Lk[c])
        ax.set_title(f"L_{c}" if c != "kd" else "L_dist")
        ax.set_xlabel("iteration")
    fig.tight_layout()
    return fig


# ---- section 6: beside the thesis' tables


def thesis_one_step() -> pd.DataFrame:
    """Tables 5.2 and 5.7 (CUB-200 one-step, BN-Inception), R@K in %."""
    return pd.DataFrame(
        {
            "old R@1": [79.41, None, 53.90, 54.92, 56.91, 62.03, 66.48, 73.36, 74.41, 77.33],
            "old R@2": [85.64, None, 64.56, 66.40, 66.65, 72.16, 75.68, 81.25, 82.57, 85.08],
            "old R@4": [89.63, None, 73.56, 75.42, 76.57, 80.08, 82.67, 87.43, 88.52, 89.03],
            "new R@1": [None, 47.02, 76.18, 75.76, 72.48, 73.32, 77.44, 73.40, 73.11, 76.64],
            "new R@2": [None, 57.44, 82.56, 82.69, 79.50, 80.92, 83.78, 81.60, 80.84, 83.53],
            "new R@4": [None, 67.86, 87.39, 86.93, 85.67, 86.01, 88.07, 86.64, 86.64, 89.12],
        },
        index=[
            "initial A(1–100)",
            "feature extraction",
            "ft (L_ce + L_triplet)",
            "lwf (+ L_dist)",
            "ALASSO",
            "ewc",
            "l2 (L2 loss)",
            "mmd (+ L_mmd)",
            "kd_mmd (+ L_dist + L_mmd)",
            "joint A(1–200)",
        ],
    )


def _mean_std(v: list | None) -> str:
    if v is None:
        return "–"
    return f"{100 * np.mean(v):.1f} ± {100 * np.std(v):.1f}" if len(v) > 1 else f"{100 * v[0]:.1f}"


def summary(runs_: dict, methods: Sequence[str], metrics_: Sequence[str] = ("R@1", "R@2", "R@4", "mAP")):
    """Our Table 5.2: one row per method (and A, feature extraction), old / new × metrics, % mean ± std over seeds."""
    rows = {}
    init = [r["initial"].steps[0] for r in runs_.values()]
    rows["initial A"] = {f"old {k}": [s["groups"][0][k] for s in init] for k in metrics_}
    rows["feature extraction"] = {f"new {k}": [s["groups"][1][k] for s in init] for k in metrics_}
    for m in methods:
        rows[m] = {f"{w} {k}": [r[m].steps[-1][w][k] for r in runs_.values()] for w in ("old", "new") for k in metrics_}
    cols = [f"{w} {k}" for w in ("old", "new") for k in metrics_]
    return pd.DataFrame({m: {c: _mean_std(rows[m].get(c)) for c in cols} for m in rows}).T[cols]


def plot_after_bars(one: dict, methods: Sequence[str], init_old: Sequence[float]):
    """Old- and new-class mAP of every method after learning the new classes (bars: mean ± std; dots: seeds)."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    x = np.arange(len(methods))
    for k, (which, c) in enumerate((("old", "C0"), ("new", "C1"))):
        vals = np.array([per_seed(one, m, which, "mAP") for m in methods])
        ax.bar(x + (k - 0.5) * 0.38, vals.mean(1), 0.36, yerr=vals.std(1), color=c, label=f"{which} classes")
        for i, v in enumerate(vals):
            ax.scatter(np.full(len(v), x[i] + (k - 0.5) * 0.38), v, s=8, c="k", zorder=3)
    ax.axhline(np.mean(init_old), ls=":", c="k", lw=1, label="A on old (before)")
    ax.set_xticks(x, list(methods))
    ax.set_ylim(0, 1.05)  # bars start at 0: their heights compare
    ax.set_ylabel("mAP")
    ax.set_title("After learning the new classes (dots: seeds)")
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


# ---- section 7: the stability–plasticity trade-off


def run_sweep(
    P: Any,
    train,
    test,
    make_model: Callable,
    protocol: Sequence,
    transform: Callable,
    kwargs: dict,
    base: inc.IncrementalResult,
) -> dict:
    """``P.sweep`` ({regulariser: [weights]}) on the first seed, from network A: ``{"l2 l2_weight=3": result}``."""
    if not P.sweep:
        return {}
    factories = {}
    for reg, weights in P.sweep.items():
        key = WEIGHT_KNOB[reg]
        for w in weights:
            factories[f"{reg} {key}={w:g}"] = _with_weight(reg, kwargs, key, w)
    return inc.compare_methods(
        make_model,
        train,
        test,
        protocol,
        factories,
        train_config(P, P.seed, [P.base_iterations, P.inc_iterations]),
        transform,
        base=base,
        checkpoint=f"05/sweep/seed{P.seed}" if P.checkpoint else None,
    )


def tradeoff_points(P: Any, first: dict, sweep_runs: dict) -> pd.DataFrame:
    """(regulariser, weight, old mAP, new mAP) of every regularised run of the first seed and the sweep."""
    points = []
    for name, r in {**first, **sweep_runs}.items():
        reg = name.split()[0]
        if name in ("initial", "joint") or reg == "ft":
            continue
        w = float(name.split("=")[1]) if "=" in name else float(P[WEIGHT_KNOB[reg]])
        points.append((reg, w, r.steps[-1]["old"]["mAP"], r.steps[-1]["new"]["mAP"]))
    return pd.DataFrame(points, columns=["regulariser", "weight", "old mAP", "new mAP"]).sort_values(
        ["regulariser", "weight"]
    )


def plot_tradeoff(pts: pd.DataFrame, first: dict):
    """Each regulariser across its weight in the (new mAP, old mAP) plane, with fine-tuning and joint training."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for reg, d in pts.groupby("regulariser"):
        ax.plot(d["new mAP"], d["old mAP"], marker="o", label=reg)
        for _, row in d.iterrows():
            ax.annotate(
                f"{row['weight']:g}",
                (row["new mAP"], row["old mAP"]),
                fontsize=9,
                xytext=(3, 3),
                textcoords="offset points",
            )
    if "ft" in first:
        ax.scatter(
            [first["ft"].final("new")],
            [first["ft"].final("old")],
            marker="X",
            s=80,
            c="k",
            label="ft (weight 0)",
            zorder=4,
        )
    if "joint" in first:
        ax.scatter(
            [first["joint"].final("new")],
            [first["joint"].final("old")],
            marker="*",
            s=140,
            c="gold",
            edgecolor="k",
            label="joint (sees old images)",
            zorder=4,
        )
    ax.axhline(first["initial"].steps[0]["groups"][0]["mAP"], ls=":", c="k", lw=1)
    ax.set(
        xlabel="new-class mAP (plasticity)",
        ylabel="old-class mAP (stability)",
        title="Each regulariser across its weight (numbers: weights)",
    )
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def beta_rows(P: Any, one: dict) -> pd.DataFrame:
    """Table 5.8's β rows (α = alpha): one row per seed and β, old / new R@1 and mAP (empty without kd_mmd)."""
    rows = []
    grid = sorted({P.beta, *P.beta_grid})
    for s, r in one.items():
        if "kd_mmd" not in r:
            continue
        runs_b = {b: (r["kd_mmd"] if b == P.beta else r[f"kd_mmd β={b:g}"]) for b in grid}
        rows += [
            {
                "seed": s,
                "β": b,
                "old R@1": x.final("old", "R@1"),
                "new R@1": x.final("new", "R@1"),
                "old mAP": x.final("old"),
                "new mAP": x.final("new"),
            }
            for b, x in runs_b.items()
        ]
    return pd.DataFrame(rows)


def beta_metrics(bdf: pd.DataFrame) -> dict:
    """``beta=b/{old,new}_R@1_seeds`` for every β of :func:`beta_rows`."""
    out = {}
    for b, d in bdf.groupby("β") if len(bdf) else ():
        for which in ("old", "new"):
            out[f"beta={b:g}/{which}_R@1_seeds"] = d[f"{which} R@1"].tolist()
    return out


def alpha_beta_table(P: Any, one: dict) -> pd.DataFrame:
    """Table 5.8 as run: one row per (α, β) of our method (the β grid at α = alpha and :func:`ab_grid`), old / new
    R@1 in %, mean over the seeds (empty without kd_mmd)."""
    rows = {}
    for a in sorted({P.alpha, *P.alpha_grid}):
        for b in sorted({P.beta, *P.beta_grid}):
            name = "kd_mmd" if (a, b) == (P.alpha, P.beta) else (f"kd_mmd β={b:g}" if a == P.alpha else ab_name(a, b))
            if all(name in r for r in one.values()):
                rows[(a, b)] = {
                    f"{w} R@1": 100 * float(np.mean([r[name].final(w, "R@1") for r in one.values()]))
                    for w in ("old", "new")
                }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["α", "β"])


# ---- Tables 5.4 / 5.5: fewer new classes at once


def run_splits(
    P: Any, train, test, make_model: Callable, transform: Callable, kwargs: dict, first: dict
) -> dict[int, dict]:
    """Tables 5.4 / 5.5 (first seed): for each k of ``P.new_class_splits``, our method learning the first k new
    classes at once from the one-step run's network A, and the joint reference on the n_old + k classes (its
    iterations scaled from ``joint_iterations`` by the number of classes). One incremental step of
    ``step_iterations`` (a group of 25 CUB classes, as in the multi-step run). ``{k: {"initial", "kd_mmd",
    "joint"}}``; ``{}`` without splits."""
    out = {}
    for k in P.new_class_splits:
        if not 1 <= k <= P.n_new:
            raise ValueError(f"new_class_splits: {k} new classes asked for, but the run has n_new={P.n_new}")
        tasks = inc.one_step_protocol(np.arange(P.n_old + k), P.n_old)
        joint_its = max(1, round(P.joint_iterations * (P.n_old + k) / (P.n_old + P.n_new)))
        out[k] = inc.compare_methods(
            make_model,
            train,
            test,
            tasks,
            ["kd_mmd", "joint"],
            train_config(P, P.seed, [P.base_iterations, P.step_iterations]),
            transform,
            joint_iterations=joint_its,
            method_kwargs=kwargs,
            base=first["initial"],
            checkpoint=f"05/split{k}/seed{P.seed}" if P.checkpoint else None,
        )
        print(f"+{k} new classes at once: ours and joint training on {P.n_old + k} classes done")
    return out


def splits_table(P: Any, first: dict, splits: dict) -> pd.DataFrame:
    """Our Table 5.4 / 5.5: A, ours with each k and with all n_new new classes, the joint references; R@1 %."""
    r1 = lambda r, w: 100 * r.steps[-1][w]["R@1"]  # noqa: E731
    rows = {f"A(1–{P.n_old}) initial": {"old R@1": 100 * first["initial"].steps[0]["groups"][0]["R@1"]}}
    for k, res in sorted(splits.items()) + ([(P.n_new, first)] if "kd_mmd" in first else []):
        rows[f"+B({P.n_old + 1}–{P.n_old + k}) ours"] = {w + " R@1": r1(res["kd_mmd"], w) for w in ("old", "new")}
    for k, res in sorted(splits.items()) + ([(P.n_new, first)] if "joint" in first else []):
        rows[f"A(1–{P.n_old + k}) joint"] = {w + " R@1": r1(res["joint"], w) for w in ("old", "new")}
    return pd.DataFrame.from_dict(rows, orient="index")


def split_metrics(P: Any, splits: dict) -> dict:
    """``split{k}/{kd_mmd,joint}/{old,new}_R@1`` (fractions, first seed) of every split."""
    return {
        f"split{k}/{m}/{w}_R@1": res[m].steps[-1][w]["R@1"]
        for k, res in splits.items()
        for m in ("kd_mmd", "joint")
        for w in ("old", "new")
    }


# ---- Table 5.6: class-incremental classification on CIFAR-100


class TopOneAccuracy(inc.Plugin):
    """Adds no loss: after every task, the top-1 accuracy of the classifier over the test images of every class seen
    so far (argmax over all the seen classes' logits), ``acc[task]`` (Table 5.6's metric)."""

    name = "top1"

    def __init__(self):
        self.acc: dict[int, float] = {}

    def after_task(self, trainer, task: int) -> None:
        seen = np.concatenate(trainer.tasks[: task + 1])
        self.acc[int(task)] = top1_accuracy(
            trainer.model, trainer.test_set, seen, trainer.columns, trainer.transform, trainer.device
        )

    def state(self) -> dict:
        return dict(self.acc)

    def load_state(self, state: Any) -> None:
        self.acc = {int(k): float(v) for k, v in (state or {}).items()}


@torch.no_grad()
def top1_accuracy(
    model: inc.IncrementalNet,
    test: inc.LabelledImages,
    classes: Sequence[int],
    columns: dict[int, int],
    transform: Callable | None = None,
    device: Any = "cpu",
    batch_size: int = 256,
) -> float:
    """Fraction of the test images of ``classes`` whose largest logit is their class's column (``columns``: class id
    → classifier column, :attr:`xmr_lib.train.incremental.IncrementalTrainer.columns`)."""
    m = test.mask(classes)
    y = test.labels[m].numpy()
    lut = np.full(max(max(columns), int(y.max(initial=0))) + 1, -1, dtype=np.int64)
    lut[list(columns)] = list(columns.values())
    want = torch.from_numpy(lut[y])
    if (want < 0).any():
        raise ValueError(f"classes: class(es) {sorted(set(y[lut[y] < 0].tolist()))[:5]} have no classifier column")
    modes = [(mod, mod.training) for mod in model.modules()]
    model.eval()
    try:
        x_all, pred = test.images[m], []
        for i in range(0, len(x_all), batch_size):
            x = x_all[i : i + batch_size].to(device)
            x = transform(x, train=False) if transform is not None else x.float()
            pred.append(model(x).logits.argmax(1).cpu())
    finally:
        for mod, training in modes:
            mod.training = training
    return float((torch.cat(pred) == want).float().mean()) if pred else float("nan")


def cifar_benchmark(P: Any) -> tuple[inc.LabelledImages, inc.LabelledImages, list[np.ndarray]] | None:
    """CIFAR-100's first ``cifar_classes`` classes (train / test at 32 px) and the 5 tasks of equal size in class-id
    order (the thesis: 100 classes, 5 × 20); None when the track is off or CIFAR-100 is not under ``data_root``."""
    if not P.cifar100:
        print("CIFAR-100 track skipped (cifar100=False)")
        return None
    if not registry.converted_available("cifar100", P.data_root):
        print(
            "CIFAR-100 track skipped: cifar100 is not under data_root — "
            f"python -m data_scripts fetch cifar100 --root {P.data_root or 'DIR'}"
        )
        return None
    if P.cifar_classes % 5:
        raise ValueError(f"cifar_classes: expected a multiple of 5 (5 tasks of equal size), got {P.cifar_classes}")
    parts = []
    for split in ("train", "test"):
        ds = registry.load("cifar100", split, root=P.data_root)
        keep = np.nonzero(np.asarray(ds.labels) < P.cifar_classes)[0]
        parts.append(inc.to_labelled(ds.images[keep], np.asarray(ds.labels)[keep]))
    tasks = inc.class_increments(np.arange(P.cifar_classes), P.cifar_classes // 5, 4)
    return parts[0], parts[1], tasks


def run_cifar(P: Any, kwargs: dict, data: tuple | None) -> dict | None:
    """Table 5.6 (first seed): the chapter's network (trunk ``backbone`` at ``image_size``) trained on the first
    task, then the L2 loss of [219], EWC, LwF and ours through the other four tasks; every run records its top-1
    accuracy over the seen classes after each task (:class:`TopOneAccuracy`). ``data``: :func:`cifar_benchmark`'s."""
    if data is None:
        return None
    train, test, tasks = data
    make = model_factory(P, 3)
    base_its, step_its = P.cifar_iterations[0], P.cifar_iterations[-1]
    cfg = dataclasses.replace(train_config(P, P.seed, [base_its] + [step_its] * 4), eval_every=0)
    factories = {m: _with_top1(m, kwargs) for m in CIFAR_TABLE}
    return inc.compare_methods(
        make,
        train,
        test,
        tasks,
        factories,
        cfg,
        batch_transform(P, 3),
        base_plugins=lambda: inc.method_plugins("ft", margin=kwargs["margin"]) + [TopOneAccuracy()],
        checkpoint=f"05/cifar100/seed{P.seed}" if P.checkpoint else None,
    )


def _with_top1(method: str, kwargs: dict) -> Callable[[], list]:
    return lambda: inc.method_plugins(method, **kwargs) + [TopOneAccuracy()]


def cifar_table(cifar: dict) -> pd.DataFrame:
    """Our Table 5.6: average top-1 accuracy (%) over the classes seen, one row per method, one column per number
    of classes seen."""
    per_task = len(cifar["initial"].groups[0])
    return pd.DataFrame(
        {m: {per_task * (t + 1): 100 * a for t, a in r.plugin("top1").acc.items()} for m, r in cifar.items()}
    ).T.rename_axis(columns="classes seen")


def cifar_metrics(cifar: dict | None) -> dict:
    """``cifar100/{method}/top1_{n}`` (%) after n classes seen, ``cifar100/initial/top1_{n}`` for the first task, and
    ``cifar100/real`` = 1 (the track read CIFAR-100 from data_root); empty when the track did not run."""
    if not cifar:
        return {}
    out = {CIFAR_REAL: 1}
    for m, row in cifar_table(cifar).iterrows():
        for n, v in row.dropna().items():
            if m != "initial" or n == row.dropna().index[0]:
                out[f"cifar100/{m}/top1_{n}"] = float(v)
    return out


def thesis_cifar() -> pd.DataFrame:
    """Table 5.6 (CIFAR-100, 5 tasks of 20 classes): average top-1 accuracy (%) over the classes seen."""
    return pd.DataFrame(CIFAR_TABLE, index=[20, 40, 60, 80, 100]).T.rename_axis(columns="classes seen")


# ---- section 8: multi-step


def run_multi(
    P: Any,
    train,
    test,
    make_model: Callable,
    protocol: Sequence,
    transform: Callable,
    kwargs: dict,
    first: dict,
    n_old_group: int,
) -> dict:
    """The multi-step run (first seed) from the one-step run's network A when the old group is the same."""
    return inc.compare_methods(
        make_model,
        train,
        test,
        protocol,
        P.multi_methods,
        train_config(P, P.seed, [P.base_iterations] + [P.step_iterations] * P.n_steps),
        transform,
        method_kwargs=kwargs,
        base=first["initial"] if P.n_old == n_old_group else None,
        checkpoint=f"05/multi/seed{P.seed}" if P.checkpoint else None,
    )


def plot_results_matrices(multi: dict, methods: Sequence[str]):
    """The results matrix R[step, group] (mAP) of each method, with its forgetting after the last step."""
    fig, axes = plt.subplots(1, len(methods), figsize=(3.4 * len(methods), 3.3), squeeze=False)
    for ax, m in zip(axes[0], methods):
        R_ = multi[m].matrix("mAP")
        ax.imshow(R_, vmin=0, vmax=1, cmap="viridis")
        for (i, j), v in np.ndenumerate(R_):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9, color="w" if v < 0.6 else "k")
        ax.set(title=f"{m}: forgetting {multi[m].forgetting():.2f}", xlabel="group", ylabel="after step")
        ax.set_xticks(range(R_.shape[1]), ["old"] + [f"new{g}" for g in range(1, R_.shape[1])], fontsize=9)
        ax.set_yticks(range(R_.shape[0]))  # whole steps
    fig.suptitle("Results matrix R[step, group] (mAP)", y=1.02)
    fig.tight_layout()
    return fig


def old_r1_per_step(multi: dict, methods: Sequence[str]) -> dict:
    """``{method: [old-class R@1 after each step]}``."""
    return {m: [s["groups"][0]["R@1"] for s in multi[m].steps] for m in methods}


def multi_metrics(multi: dict, methods: Sequence[str]) -> dict:
    """Forgetting after the last step and old-class R@1 after each step, per method."""
    out = {}
    for m in methods:
        out[f"multi/{m}/forgetting"] = multi[m].forgetting()
        out[f"multi/{m}/old_R@1_per_step"] = [s["groups"][0]["R@1"] for s in multi[m].steps]
    return out


def thesis_multi() -> pd.DataFrame:
    """Table 5.9 (CUB, 4 groups of 25): R@1 % on classes 1–100 after each step."""
    return pd.DataFrame(
        {
            "ft": [79.41, 54.58, 41.53, 39.24, 35.68],
            "lwf": [79.41, 57.50, 42.46, 40.21, 33.31],
            "ewc": [79.41, 61.23, 46.65, 43.60, 36.82],
            "l2": [79.41, 67.37, 58.14, 53.86, 45.85],
            "kd_mmd": [79.41, 76.65, 73.77, 70.47, 66.40],
        },
        index=[f"after step {t}" for t in range(5)],
    )


# ---- sections 9–10: retrieval results and embedding drift


def nearest(model, images: torch.Tensor, transform: Callable, queries: Sequence[int], k: int = 6) -> list[list[int]]:
    """The ``k`` nearest images (cosine, the query itself left out) of each query among ``images``."""
    dev = next(model.parameters()).device
    E = inc.embed(model, images, transform, device=dev).numpy()
    idx_ = index.FlatIndex(E.shape[1], metric="ip").add(E)
    _, ids = idx_.search(E[list(queries)], k + 1)
    return [[j for j in row if j != q][:k] for row, q in zip(ids, queries)]


def embedding_drift(embs: dict) -> dict:
    """Mean distance of each image's embedding from where the first model (A) put it, per model."""
    ref = next(iter(embs.values()))
    return {t: float(np.linalg.norm(E - ref, axis=1).mean()) for t, E in embs.items()}


# ---- section 11: Fashion-MNIST


def run_fmnist(P: Any, seeds: Sequence[int], kwargs: dict) -> dict:
    """The Fashion-MNIST track (5 old + 5 new classes, tiny trunk), one comparison per seed."""
    tasks = inc.one_step_protocol(range(10), 5)
    tf = inc.BatchTransform(mean=(0.286,), std=(0.353,), flip=True)
    make = functools.partial(inc.make_net, backbone="tiny", embed_dim=P.embed_dim, width=P.width, in_channels=1)
    n_tr, n_te = (3000, 1000) if P.profile != "smoke" else (400, 200)
    fm = {}
    for s in seeds:
        ftr = registry.load("fashion_mnist", "train", n=n_tr, seed=s)
        fte = registry.load("fashion_mnist", "test", n=n_te, seed=s)
        fm_train, fm_test = inc.to_labelled(ftr.images, ftr.labels), inc.to_labelled(fte.images, fte.labels)
        b_, i_, j_ = P.fmnist_iterations
        cfg = inc.TrainConfig(iterations=[b_, i_], P=5, K=P.images_per_class, lr=1e-3, device=P.device, seed=s)
        fm[s] = inc.compare_methods(
            make, fm_train, fm_test, tasks, P.fmnist_methods, cfg, tf, joint_iterations=j_, method_kwargs=kwargs
        )
    return fm


def fmnist_metrics(P: Any, fm: dict) -> dict:
    """Old- / new-class mAP per seed of the track, and fine-tuning's old-class mAP over A's."""
    f_init = [r["initial"].steps[0]["groups"][0]["mAP"] for r in fm.values()]
    out = {"fmnist/initial/old_mAP_seeds": f_init}
    for m in P.fmnist_methods:
        for which in ("old", "new"):
            out[f"fmnist/{m}/{which}_mAP_seeds"] = per_seed(fm, m, which, "mAP")
    if "ft" in P.fmnist_methods:
        out["fmnist/ft/old_mAP_ratio_seeds"] = [f / i for f, i in zip(per_seed(fm, "ft", "old", "mAP"), f_init)]
    return out


# ---- section 12: the thesis' numbers on the real data


def paper_metrics(P: Any, one: dict, multi: dict, methods: Sequence[str], splits: dict | None = None) -> dict:
    """R@1 % of the thesis' protocol on the real data, keyed by dataset (each scored against its own tables): Tables
    5.2 / 5.3, 5.7, 5.8 (every (α, β) run), 5.9 / 5.10 and, for the thesis' +25 (CUB) / +5 (Dogs) split, 5.4 / 5.5;
    empty unless the run read the real data with the thesis' class split."""
    if not is_real(P) or (P.n_old, P.n_new) != PAPER_SPLIT[P.dataset]:
        return {}
    D, out = P.dataset, {}
    for k, res in (splits or {}).items():
        if k in PAPER_NEW_SPLITS[D]:
            for m in ("kd_mmd", "joint"):
                for which in ("old", "new"):
                    out[f"{D}/split{k}/{m}/{which}_R@1"] = 100 * res[m].steps[-1][which]["R@1"]
    for (a, b), row in alpha_beta_table(P, one).iterrows():
        if (a, b) != (P.alpha, P.beta):
            out.update({f"{D}/{ab_key(a, b)}/{w}_R@1": float(row[f"{w} R@1"]) for w in ("old", "new")})
    for m in P.methods:
        for which in ("old", "new"):
            out[f"{D}/{m}/{which}_R@1"] = 100 * float(np.mean(per_seed(one, m, which, "R@1")))
    for which, g in (("old", 0), ("new", 1)):
        out[f"{D}/initial/{which}_R@1"] = 100 * float(
            np.mean([r["initial"].steps[0]["groups"][g]["R@1"] for r in one.values()])
        )
    for m in methods:
        out[f"{D}/multi/{m}/final_old_R@1"] = 100 * multi[m].steps[-1]["groups"][0]["R@1"]
        out[f"{D}/multi/{m}/forgetting"] = multi[m].forgetting()
    return out
