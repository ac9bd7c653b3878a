"""Notebook 07's code: the lifelong benchmark and network of a run, the generation from BatchNorm statistics and
what it matched, the ablation over seeds, its tables, figures and recorded metrics, and the EfficientNet-Lite0
showcase (thesis chapter 7: lifelong retrieval via dual knowledge distillation).

The chapter's method is in :mod:`xmr_lib.chapters.ch07.lifelong` and :mod:`xmr_lib.train.inversion`. A function
here returns metrics as a ``{key: value}`` dict the notebook records (``runs.record_many``); ``results`` is
``{seed: {"initial": ..., method: IncrementalResult}}`` (:func:`~xmr_lib.chapters.ch07.lifelong.compare_lifelong`).
"""

from __future__ import annotations

import copy
import functools
import time
from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from xmr_lib.chapters.ch07 import lifelong as ll
from xmr_lib.core import parallel
from xmr_lib.encoders import backbones
from xmr_lib.train import incremental as inc
from xmr_lib.train import inversion as inv

# ---- section 1: the benchmark


def benchmark(P: Any, seed: int) -> ll.LifelongBenchmark:
    """The task sequence ``P.datasets`` with its seen / unseen classes; ``seed`` draws the embedded images."""
    return ll.lifelong_benchmark(
        P.datasets,
        P.n_seen,
        P.n_unseen,
        P.train_per_class,
        P.test_per_class,
        P.unseen_per_class,
        size=P.image_size,
        seed=seed,
        data_root=P.data_root,
    )


def is_real(P: Any) -> bool:
    """Does this run read the chapter's datasets from ``data_root`` (after the fallback rule)?"""
    return any(d in ll.PAPER_CLASSES for d in P.datasets)


def task_samples(bench: ll.LifelongBenchmark, t: int, n_seen: int = 6, n_unseen: int = 3):
    """One image (``(H, W, C)``) of the first seen and unseen classes of task ``t``, titled "seen c" / "unseen c"."""
    cls = list(bench.seen[t][:n_seen]) + list(bench.unseen[t][:n_unseen])
    ims = [
        bench.train.images[bench.train.labels == c][0]
        if c in bench.seen[t]
        else bench.test.images[bench.test.labels == c][0]
        for c in cls
    ]
    titles = [("seen " if c in bench.seen[t] else "unseen ") + str(c) for c in cls]
    return [im.permute(1, 2, 0).numpy() for im in ims], titles


# ---- sections 2–3: network, training settings, the first dataset


def batch_transform(P: Any) -> inc.BatchTransform:
    """Normalisation of the trunk and flips; a non-tiny trunk resizes to ``image_size`` (224 px in ``full``)."""
    return inc.trunk_transform(P.backbone, 3, size=P.image_size)


def model_factory(P: Any) -> Callable[[int], inc.IncrementalNet]:
    """``make_model(n_classes)``: a BN CNN (or ImageNet trunk), global max pooling, one linear layer, L2
    (``tiny=True``: the ImageNet trunk randomly initialised)."""
    return functools.partial(
        inc.make_net, backbone=P.backbone, embed_dim=P.embed_dim, width=P.width, in_channels=3, pretrained=not P.tiny
    )


def train_config(P: Any, seed: int, n_tasks: int) -> inc.TrainConfig:
    """``base_iterations`` on the first dataset, ``inc_iterations`` on each later one."""
    return inc.TrainConfig(
        iterations=[P.base_iterations] + [P.inc_iterations] * (n_tasks - 1),
        P=P.classes_per_batch,
        K=P.images_per_class,
        lr=P.lr,
        lr_trunk=P.lr_trunk,
        weight_decay=P.weight_decay,
        freeze_bn=P.freeze_bn,
        device=P.device,
        seed=seed,
        progress=True,
    )


def replay_kwargs(P: Any) -> dict:
    """The settings of the generation from BN statistics (Eqs. 7.4–7.5) and of its snapshots."""
    return dict(
        n_images=P.gen_images,
        n_clusters=P.gen_clusters,
        steps=P.gen_steps,
        lr=P.gen_lr,
        lambda_bn=P.lambda_bn,
        lambda_cluster=P.lambda_cluster,
        margin=P.cluster_margin,
        inversion_kw=dict(
            lambda_tv=P.gen_tv,
            lambda_l2=P.gen_l2,
            jitter=P.gen_jitter,
            snapshot_every=P.snapshot_every,
            n_snapshot=16,
            log_every=max(1, P.gen_steps // 50),
        ),
    )


def plugin_kwargs(P: Any, seed: int, cache: dict) -> dict:
    """The weights of Eq. 7.9 (λ_kd × ``kd_scale``: our KL carries T²), the replay settings and its cache."""
    return dict(
        lambda_s=P.lambda_s,
        lambda_kd1=P.kd_scale * P.lambda_kd1,
        lambda_kd2=P.kd_scale * P.lambda_kd2,
        lambda_te2=P.lambda_te2,
        temperature=P.temperature,
        margin=P.margin,
        replay=replay_kwargs(P),
        replay_cache=cache,
        seed=seed,
    )


def train_first(P: Any, bench: ll.LifelongBenchmark, make_model: Callable, transform: Callable):
    """The network after the first dataset (``L_s`` only), as the first seed's runs will start from it."""
    T = len(bench.datasets)
    return ll.compare_lifelong(
        make_model,
        bench,
        [],
        train_config(P, P.seed, T),
        transform,
        plugin_kwargs=plugin_kwargs(P, P.seed, {}),
        checkpoint=f"07/seed{P.seed}" if P.checkpoint else None,
    )["initial"]


# ---- section 4: generation from the BN statistics


def generate(P: Any, model, bench: ll.LifelongBenchmark, transform: Callable, cache: dict):
    """``(teacher, result)``: the frozen copy of ``model`` and the images generated from its BN statistics for task 1
    (an :class:`~xmr_lib.train.inversion.InversionResult`), through ``cache``, which the first seed's runs share."""
    gen_plugin = ll.GeneratedReplay(**replay_kwargs(P), cache=cache, seed=P.seed, progress=True)
    teacher = inc.snapshot(model)
    g0 = gen_plugin.generate(
        teacher,
        tuple(bench.train.images.shape[1:]),
        functools.partial(transform, train=False),
        str(next(teacher.parameters()).device),
        task=1,
    )
    return teacher, g0


def plot_snapshots(g0):
    """The generated images every ``snapshot_every`` steps: one row per snapshot, one column per image."""
    snaps = g0.snapshots
    n_col = snaps[0][1].shape[0]
    fig, axes = plt.subplots(len(snaps), n_col, figsize=(0.8 * n_col, 0.85 * len(snaps)), squeeze=False)
    for r_, (step, ims) in enumerate(snaps):
        for c_ in range(n_col):
            ax = axes[r_, c_]
            ax.imshow(ims[c_].permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if c_ == 0:
                ax.set_ylabel(f"step {step}", fontsize=9)
            if r_ == 0:
                ax.set_title(f"c{int(g0.labels[c_])}", fontsize=9)
    fig.suptitle("Generated images over the optimisation (first images of the batch; c = cluster)", y=1.0)
    fig.tight_layout()
    return fig


def plot_generation(g0):
    """L_BN and L_cluster during the generation, and each BN layer's gap ‖Δμ‖² + ‖Δσ²‖²."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    for term, ax in zip(("bn", "cluster"), axes[:2]):
        x_, y_ = g0.curve(term)
        ax.plot(x_, y_)
        ax.set(title=f"L_{term} (weighted)", xlabel="step", yscale="log" if term == "bn" else "linear")
    gm, gv = g0.layer_gaps["mean"], g0.layer_gaps["var"]
    for layer in range(gm.shape[1]):
        axes[2].plot(g0.layer_steps, gm[:, layer] + gv[:, layer], label=f"BN {layer}")
    axes[2].set(yscale="log", title="per-layer gap ‖Δμ‖² + ‖Δσ²‖²", xlabel="step")
    axes[2].legend(fontsize=9)
    fig.tight_layout()
    return fig


def batch_stats(model, x: torch.Tensor) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per BN layer, the channel means and variances of its input on the batch ``x``."""
    with inv.BNStatistics(model) as h, torch.no_grad():
        model(x.to(next(model.parameters()).device))
        return [m.cpu().numpy() for m in h.means], [v.cpu().numpy() for v in h.variances]


def stats_sets(teacher, g0, bench: ll.LifelongBenchmark, transform: Callable, seed: int) -> dict:
    """BN input statistics ``{name: (means, variances)}`` of pure noise (the start), the generated batch, and as
    many real task-1 training images."""
    noise = (
        0.5 + 0.25 * torch.randn(len(g0.images), *g0.images.shape[1:], generator=torch.Generator().manual_seed(seed))
    ).clamp(0, 1)
    real = bench.train.images[bench.train.mask(bench.seen[0])]
    real = real[torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))[: len(g0.images)]]
    return {
        "noise (start)": batch_stats(teacher, transform(noise)),
        "generated": (g0.stats["mean"], g0.stats["var"]),
        "real task-1 images": batch_stats(teacher, transform(real)),
    }


def plot_stats(sets: dict, g0):
    """Every channel of every BN layer: stored running mean (variance) against each batch's."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for k, (name, (ms, vs)) in enumerate(sets.items()):
        for ax, got, ref in ((axes[0], ms, g0.stats["running_mean"]), (axes[1], vs, g0.stats["running_var"])):
            ax.scatter(np.concatenate(ref), np.concatenate(got), s=7, alpha=0.6, label=name, c=f"C{k}")
    for ax, what in zip(axes, ("mean", "variance")):
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], "k:", lw=1)
        ax.set(xlabel=f"stored running {what} (per channel)", ylabel=f"batch {what}", title=f"BN {what}s, all layers")
        if what == "variance":
            ax.set(xscale="log", yscale="log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def bn_gaps(sets: dict, g0) -> dict:
    """The unweighted L_BN (Eq. 7.4) of each batch of :func:`stats_sets`."""
    return {
        n: float(
            sum(((a - b) ** 2).sum() for a, b in zip(ms, g0.stats["running_mean"]))
            + sum(((a - b) ** 2).sum() for a, b in zip(vs, g0.stats["running_var"]))
        )
        for n, (ms, vs) in sets.items()
    }


def nearest_real(teacher, g0, bench: ll.LifelongBenchmark, transform: Callable, n_clusters: int, k: int = 3):
    """For the first image of each of the first (≤ 6) clusters: it and its ``k`` nearest real task-1 training images
    in the teacher's embedding space; images and titles for a grid of ``k + 1`` columns."""
    dev = next(teacher.parameters()).device
    e_gen = inc.embed(teacher, g0.images, functools.partial(transform, train=False), device=dev)
    t1 = bench.train.mask(bench.seen[0])
    e_real = inc.embed(teacher, bench.train.images[t1], transform, device=dev)
    lab_real = bench.train.labels[t1]
    ims, titles = [], []
    for c in range(min(n_clusters, 6)):
        i = int(torch.nonzero(g0.labels == c)[0])
        nn_ = (e_real @ e_gen[i]).topk(k).indices
        ims += [g0.images[i].permute(1, 2, 0).numpy()] + [
            bench.train.images[t1][j].permute(1, 2, 0).numpy() for j in nn_
        ]
        titles += [f"gen c{c}"] + [f"class {int(lab_real[j])}" for j in nn_]
    return ims, titles


# ---- section 6: the experiment over seeds


class _HereOnly:
    """Holds objects for the job this process runs; pickled (to a worker process, which never runs that job) empty,
    so plugins holding lambdas and the first seed's data stay here."""

    def __init__(self, value=None):
        self.value = value

    def __reduce__(self):
        return (_HereOnly, ())


def seed_runs(P: Any, s: int, here: _HereOnly | None, make_model: Callable, transform: Callable) -> tuple[dict, float]:
    """One seed of :func:`run_all` and the seconds it took: ``P.methods`` (and ``ablation_methods`` on the first seed)
    from the seed's first network. ``here``: ``(bench, base, cache)`` of the first seed; None: the seed draws its
    benchmark here, trains its own first network and generates into a fresh cache."""
    t0 = time.time()
    bench, base, cache = here.value if here is not None else (None, None, None)
    b_s = bench if bench is not None else benchmark(P, s)
    res = ll.compare_lifelong(
        make_model,
        b_s,
        P.methods + (P.ablation_methods if s == P.seed else []),
        train_config(P, s, len(b_s.datasets)),
        transform,
        joint_iterations=P.joint_iterations,
        plugin_kwargs=plugin_kwargs(P, s, cache if cache is not None else {}),
        base=base,
        checkpoint=f"07/seed{s}" if P.checkpoint else None,
    )
    return res, time.time() - t0


def plugin_records(result) -> dict:
    """What the later steps read from a run's plugins, as plain data: ``{"generated": [{task: InversionResult}] per
    GeneratedReplay, "otf_evaluations": [{task: metrics per group}] per OnTheFlyTeacher}`` (a run sent back by a
    worker process carries them instead of its plugins)."""
    if hasattr(result, "plugin_records"):
        return result.plugin_records
    plugins = getattr(result, "plugins", [])
    return {
        "generated": [dict(p_.results) for p_ in plugins if isinstance(p_, ll.GeneratedReplay)],
        "otf_evaluations": [dict(p_.evaluations) for p_ in plugins if isinstance(p_, ll.OnTheFlyTeacher)],
    }


def _without_plugins(out: tuple[dict, float]) -> tuple[dict, float]:
    """What a worker sends back: the runs with :func:`plugin_records` in place of their plugin objects (loss terms
    hold lambdas)."""
    for r in out[0].values():
        r.plugin_records = plugin_records(r)
        r.plugins = []
    return out


def run_all(
    P: Any,
    seeds: Sequence[int],
    bench: ll.LifelongBenchmark,
    base,
    cache0: dict,
    make_model: Callable,
    transform: Callable,
) -> dict:
    """``{seed: {"initial": ..., method: result}}``; the first seed reuses ``bench``, ``base`` and the generated
    images in ``cache0`` and also runs ``ablation_methods``.

    On the CPU the seeds run in parallel processes, one per core (:func:`xmr_lib.core.parallel.map_jobs`, one torch
    thread each: the numbers are those of a sequential run). The first seed runs in this process and keeps its
    plugins; the other seeds' runs come back with :func:`plugin_records` instead."""
    order = sorted(seeds, key=lambda s: s != P.seed)  # the first seed (most runs) first, in this process
    jobs = [(P, s, _HereOnly((bench, base, cache0)) if s == P.seed else None, make_model, transform) for s in order]
    t0 = time.time()
    workers = parallel.cpu_workers(P.device, len(jobs))
    outs = dict(zip(order, parallel.map_jobs(seed_runs, jobs, workers, finish=_without_plugins)))
    results = {}
    for s in seeds:
        results[s], sec = outs[s]
        print(f"seed {s}: {len(results[s]) - 1} runs in {sec:.0f} s")
    print(f"{len(seeds)} seed(s) in {time.time() - t0:.0f} s on {workers} process(es)")
    return results


def scores(results: dict, s: int, m: str, T: int) -> list[dict]:
    """``[{"s", "u", "H", "mAP_s", "mAP_u"}]`` per dataset of run ``m`` of seed ``s`` (the first network: after
    task 1)."""
    return ll.lifelong_scores(results[s][m], T, step=0 if m == "initial" else -1)


def chance_r1(split: inc.LabelledImages, classes: Sequence[int]) -> float:
    """Expected R@1 of a random ranking: P(the first other image is of the same class)."""
    y = split.labels[split.mask(classes)].numpy()
    n = np.bincount(y)[np.unique(y)]
    return float(((n - 1) / (len(y) - 1) * n / len(y)).sum())


def otf_teacher_scores(result, T: int) -> dict | None:
    """s, u and H on the last dataset of the on-the-fly teacher of a run (Table 7.4), None without one."""
    for ev in plugin_records(result)["otf_evaluations"]:
        if T - 1 in ev:
            g_ = ev[T - 1]
            s_, u_ = g_[2 * (T - 1)]["R@1"], g_[2 * (T - 1) + 1]["R@1"]
            return {"s": s_, "u": u_, "H": ll.harmonic_mean(s_, u_)}
    return None


def score_metrics(P: Any, results: dict, bench: ll.LifelongBenchmark, g0) -> dict:
    """What the claims read: s, u, H and seen mAP per dataset (and the last) of the first network and every method,
    per seed; the first network over chance; seen-mAP ratios; the generation's L_BN and total loss at the start and
    the end; the on-the-fly teacher's gain and its own scores."""
    seeds, T, out = list(results), len(bench.datasets), {}
    sc = functools.partial(scores, results, T=T)
    for m in ["initial"] + P.methods:
        for t in range(T):
            for k in ("s", "u", "H", "mAP_s"):
                out[f"{m}/t{t + 1}_{k}_seeds"] = [sc(s, m)[t][k] for s in seeds]
        for k in ("s", "u", "H", "mAP_s"):  # the last (newest) dataset, whatever the sequence length
            out[f"{m}/tlast_{k}_seeds"] = [sc(s, m)[T - 1][k] for s in seeds]
    init_map = [sc(s, "initial")[0]["mAP_s"] for s in seeds]
    out["initial/t1_s_over_chance_seeds"] = [
        sc(s, "initial")[0]["s"] / chance_r1(bench.test, bench.seen[0]) for s in seeds
    ]
    for m in P.methods:
        out[f"{m}/t1_mAP_s_ratio_seeds"] = [sc(s, m)[0]["mAP_s"] / i for s, i in zip(seeds, init_map)]
    if any(m in P.methods for m in ("kd_replay", "dkd")):
        gens = [
            g_[1]
            for s in seeds
            for g_ in plugin_records(results[s].get("kd_replay", results[s].get("dkd", None)))["generated"]
        ]
    else:
        gens = [g0]
    for term in ("bn", "total"):
        out[f"gen/{term}_first_seeds"] = [g.curve(term)[1][0] for g in gens]
        out[f"gen/{term}_last_seeds"] = [g.curve(term)[1][-1] for g in gens]
    if "dkd" in P.methods and "kd_replay" in P.methods:
        out["otf/tlast_H_gain_seeds"] = [sc(s, "dkd")[T - 1]["H"] - sc(s, "kd_replay")[T - 1]["H"] for s in seeds]
    if "dkd" in P.methods and T > 1:
        teach = [otf_teacher_scores(results[s]["dkd"], T) for s in seeds]
        for k in ("s", "u", "H"):
            out[f"otf_teacher/tlast_{k}_seeds"] = [t_[k] for t_ in teach]
    return out


def thesis_71() -> pd.DataFrame:
    """Tables 7.1 / 7.6: CUB-200 → Stanford-Dogs (BN-Inception), R@1 %."""
    return pd.DataFrame(
        [
            [56.0, 47.5, 51.4, 72.2, 84.9, 78.0],
            [62.2, 52.1, 56.7, 73.6, 85.0, 78.9],
            [73.5, 63.8, 68.3, 60.0, 80.3, 68.7],
            [55.1, 47.1, 50.8, 74.0, 86.2, 79.6],
            [73.2, 62.4, 67.3, 69.0, 86.1, 76.6],
            [59.7, 54.5, 56.9, 74.0, 86.2, 79.6],
            [72.0, 62.7, 67.0, 74.4, 86.5, 80.0],
            [74.1, 64.1, 68.7, 74.5, 86.7, 80.1],
        ],
        index=[
            "ft (Baseline, L_s)",
            "kd (Case 1, + L_kd1)",
            "kd_replay (Case 2, + L_g)",
            "otf (Case 3, L_s + L_kd2 + L_te2)",
            "dkd_no_ls (Case 4, no L_s)",
            "dkd_no_replay (Case 5, no L_g)",
            "dkd (Ours)",
            "joint (Reference)",
        ],
        columns=pd.MultiIndex.from_product([["CUB-200", "Stanford-Dogs"], ["s", "u", "H"]]),
    )


def map_h_table(results: dict, rows: Sequence[str], T: int) -> pd.DataFrame:
    """Seen-class mAP and H (R@1) of every dataset, % mean ± std over seeds, one row per run."""
    seeds = list(results)
    return pd.DataFrame(
        {
            m: {
                f"task {t + 1} {k}": f"{100 * np.mean([scores(results, s, m, T)[t][k] for s in seeds]):.1f}"
                f" ± {100 * np.std([scores(results, s, m, T)[t][k] for s in seeds]):.1f}"
                for t in range(T)
                for k in ("mAP_s", "H")
            }
            for m in rows
        }
    ).T


def plot_bars(results: dict, rows: Sequence[str], bench: ll.LifelongBenchmark):
    """Left: task 1's seen-class mAP (forgetting); right: the last task's H (learning the new data), per run."""
    T, seeds = len(bench.datasets), list(results)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    x = np.arange(len(rows))
    for ax, (t, k, title) in zip(
        axes,
        (
            (0, "mAP_s", f"task 1 ({bench.datasets[0]}): seen-class mAP — forgetting"),
            (T - 1, "H", f"task {T} ({bench.datasets[-1]}): H — learning the new data"),
        ),
    ):
        vals = np.array([[scores(results, s, m, T)[t][k] for s in seeds] for m in rows])
        ax.bar(x, vals.mean(1), yerr=vals.std(1), color=[f"C{i}" for i in range(len(rows))])
        for i, v in enumerate(vals):
            ax.scatter(np.full(len(v), x[i]), v, s=10, c="k", zorder=3)
        ax.set_xticks(x, ["after task 1" if m == "initial" else m for m in rows], rotation=20)
        ax.set_title(title, fontsize=10)
        lo = max(0, vals.min() - 0.1)
        ax.set_ylim(lo, 1.0)  # zoomed: the methods differ by a few points, which a 0-based axis would flatten
        ax.set_ylabel(k + (f" (axis from {lo:.2f}, zoomed)" if lo > 0 else ""))
    fig.tight_layout()
    return fig


def plot_loss_terms(result):
    """The weighted loss terms of Eq. 7.9 while a run learns the later dataset(s); None when it has none."""
    Lk = pd.DataFrame([row for row in result.losses if row["task"] >= 1])
    cols_ = [c for c in ("L_s", "L_kd1", "L_kd2", "L_te2") if c in Lk]
    if not cols_:
        return None
    fig, axes = plt.subplots(1, len(cols_), figsize=(3.2 * len(cols_), 2.7))
    for ax, c in zip(np.atleast_1d(axes), cols_):
        ax.plot(Lk["global_iteration"], Lk[c])
        ax.set_title(c + " (DKD, weighted)")
        ax.set_xlabel("iteration")
    fig.tight_layout()
    return fig


def trajectory(results: dict, s: int, m: str, T: int) -> list[tuple[str, list[dict]]]:
    """(label, scores) of run ``m`` of seed ``s`` after each task, the first network's scores first."""
    r = results[s][m]
    pts = [("after task 1", scores(results, s, "initial", T))]
    if m == "joint":
        return pts + [("joint (all seen sets)", ll.lifelong_scores(r, T, step=-1))]
    for i, st in enumerate(r.steps):
        if st["task"] >= 1:
            pts.append((f"after task {st['task'] + 1}", ll.lifelong_scores(r, T, step=i)))
    return pts


def run_view(results: dict, T: int) -> Callable:
    """``draw(method, seed)`` for ``viz.explorer``: every dataset's seen mAP and H after each task (the method
    against fine-tuning), and the method's weighted loss terms on the later dataset(s)."""

    def draw(method, seed):
        fig, axes = plt.subplots(1, 2, figsize=(12.5, 3.9), layout="constrained")
        for m, colour, lw in (("ft", "0.6", 1.2), (method, None, 2.2)):
            if m not in results[seed] or (m == "ft" and method == "ft"):
                continue
            pts = trajectory(results, seed, m, T)
            x = np.arange(len(pts))
            for t in range(T):
                c = colour or f"C{t}"
                axes[0].plot(
                    x,
                    [p[1][t]["mAP_s"] for p in pts],
                    "-o",
                    c=c,
                    lw=lw,
                    label=f"{m}: task {t + 1} seen mAP" if m == method or t == 0 else None,
                )
                axes[0].plot(
                    x,
                    [p[1][t]["H"] for p in pts],
                    "--s",
                    c=c,
                    lw=lw,
                    label=f"{m}: task {t + 1} H" if m == method else None,
                )
            axes[0].set_xticks(x, [p[0] for p in pts])
        axes[0].set(ylim=(0, 1.02), ylabel="score", title=f"{method}, seed {seed}: scores after each task")
        axes[0].legend(fontsize=9, loc="lower left")
        L_ = pd.DataFrame(results[seed][method].losses)
        L_ = L_[L_["task"] >= 1] if method != "joint" else L_
        terms = [c for c in ("L_s", "L_kd1", "L_kd2", "L_te2") if c in L_ and L_[c].notna().any()]
        for c in terms:
            axes[1].plot(L_["global_iteration"] if "global_iteration" in L_ else L_["iteration"], L_[c], label=c)
        axes[1].set(
            xlabel="iteration",
            ylabel="weighted loss",
            title=f"{method}: loss terms on the later dataset(s)"
            if method != "joint"
            else "joint: L_s on every seen set",
        )
        if terms:
            axes[1].legend(fontsize=9)
        return fig

    return draw


# ---- section 7: the rest of the ablation


def otf_table(results: dict, seed: int, T: int) -> pd.DataFrame:
    """Table 7.4's analogue: s, u, H on the last dataset of every on-the-fly teacher of the first seed's runs, and
    of fine-tuning, DKD and joint training (R@1, fractions; empty without them)."""
    first = results[seed]
    rows = {}
    for m in [m for m in first if m not in ("initial", "joint")]:
        otf = otf_teacher_scores(first[m], T)
        if otf is not None:
            rows[f"on-the-fly teacher ({m})"] = otf
    for m in ("ft", "dkd", "joint"):
        if m in first:
            rows[m] = {k: scores(results, seed, m, T)[T - 1][k] for k in ("s", "u", "H")}
    return pd.DataFrame(rows).T


# ---- section 8: the showcase


def run_showcase(P: Any):
    """DeepInversion-style images from EfficientNet-Lite0's ImageNet BN statistics towards ``showcase_classes``:
    ``(result, target classes, their names, softmax of the network on the final images)``."""
    lite = backbones.efficientnet_lite0()
    lbn = inv.bn_layers(lite)
    print(
        f"EfficientNet-Lite0: {len(lbn)} BatchNorm layers, all with running statistics "
        f"(e.g. {lbn[0][0]}: mean of the running means {lbn[0][1].running_mean.mean():.3f})"
    )
    targets = [P.showcase_classes[i % len(P.showcase_classes)] for i in range(P.showcase_images)]
    names = [backbones.imagenet_classes()[c].name for c in targets]
    sc = inv.invert_bn(
        lite,
        len(targets),
        (3, P.showcase_size, P.showcase_size),
        labels=targets,
        steps=P.showcase_steps,
        lr=P.showcase_lr,
        lambda_bn=P.showcase_lambda_bn,
        lambda_cluster=0.0,
        lambda_ce=1.0,
        lambda_tv=0.1,
        squared=False,
        first_layer_weight=10.0,
        jitter=2,
        flip=True,
        normalize=(backbones.LITE0_MEAN, backbones.LITE0_STD),
        snapshot_every=max(1, P.showcase_steps // 4),
        n_snapshot=len(targets),
        log_every=max(1, P.showcase_steps // 20),
        device=P.device,
        seed=P.seed,
    )
    with torch.no_grad():
        x = (sc.images - torch.tensor(backbones.LITE0_MEAN).view(1, 3, 1, 1)) / torch.tensor(backbones.LITE0_STD).view(
            1, 3, 1, 1
        )
        prob = lite(x.to(next(lite.parameters()).device)).softmax(1).cpu()
    return sc, targets, names, prob


def snapshot_grid(sc, n_images: int):
    """Images and titles of every snapshot of an inversion, ``n_images`` per row."""
    ims, titles = [], []
    for step, im in sc.snapshots:
        for j in range(n_images):
            ims.append(im[j].permute(1, 2, 0).numpy())
            titles.append(f"step {step}")
    return ims, titles


def showcase_report(sc, targets: Sequence[int], names: Sequence[str], prob: torch.Tensor, P: Any) -> dict:
    """Print what the showcase reached (speed, cross-entropy and L_BN before / after, each target's probability and
    top-1 class); return its metrics."""
    ce = sc.curve("ce")[1]
    print(
        f"{len(targets)} images at {P.showcase_size} px, {P.showcase_steps} steps: {sc.images_per_second:.2f} "
        f"images/s; cross-entropy to the targets {ce[0]:.2f} → {ce[-1]:.2f}; L_BN {sc.curve('bn')[1][0]:.1f} → "
        f"{sc.curve('bn')[1][-1]:.1f}"
    )
    for j, (c, n_) in enumerate(zip(targets, names)):
        top = prob[j].argmax().item()
        print(
            f"  target {n_!r}: p = {prob[j, c]:.3g} (chance 0.001); top-1 = {backbones.imagenet_classes()[top].name!r}"
        )
    return {
        "showcase/ce_first": float(ce[0]),
        "showcase/ce_last": float(ce[-1]),
        "showcase/target_prob": [float(prob[j, c]) for j, c in enumerate(targets)],
        "showcase/images_per_second": sc.images_per_second,
    }


# ---- section 10: per-seed differences


#: the orderings section 10 looks at: (a, b, task index or -1 for the last, score)
CHECKS = {
    "KD − FT, task 1 seen mAP (small, limited protection)": ("kd", "ft", 0, "mAP_s"),
    "(KD + replay) − KD, task 1 seen mAP (the replay gain)": ("kd_replay", "kd", 0, "mAP_s"),
    "(KD + replay) − FT, last task H (the cost of replay; < 0 = a cost)": ("kd_replay", "ft", -1, "H"),
    "DKD − (KD + replay), last task H (the on-the-fly teacher's gain)": ("dkd", "kd_replay", -1, "H"),
    "DKD − (KD + replay), task 1 seen mAP": ("dkd", "kd_replay", 0, "mAP_s"),
}


def seed_differences(P: Any, results: dict, T: int) -> pd.DataFrame:
    """Each ordering of :data:`CHECKS` whose two methods ran: the per-seed difference a − b."""
    rows = {}
    for name, (a, b, t, k) in CHECKS.items():
        if a in P.methods and b in P.methods:
            t_ = t if t >= 0 else T - 1
            rows[name] = [scores(results, s, a, T)[t_][k] - scores(results, s, b, T)[t_][k] for s in results]
    return pd.DataFrame(rows, index=[f"seed {s}" for s in results]).T


# ---- the full profile: the other sequences of the chapter (Tables 7.2, 7.3; Fig. 7.8 (d))


def sequence_params(P: Any, datasets: Sequence[str]):
    """``P`` for the sequence ``datasets``: a dataset of the main sequence keeps its ``n_seen`` / ``n_unseen``, another
    takes the chapter's (:data:`~xmr_lib.chapters.ch07.lifelong.PAPER_CLASSES`; ``tiny=True``: the first dataset's)."""
    seen, unseen = [], []
    for d in datasets:
        if d in P.datasets:
            i = list(P.datasets).index(d)
            a, b = P.n_seen[i], P.n_unseen[i]
        elif P.tiny or d not in ll.PAPER_CLASSES:
            a, b = P.n_seen[0], P.n_unseen[0]
        else:
            a, b = ll.PAPER_CLASSES[d]
        seen.append(a)
        unseen.append(b)
    q = copy.copy(P)
    q.datasets, q.n_seen, q.n_unseen = list(datasets), seen, unseen
    return q


def run_sequences(
    P: Any,
    make_model: Callable,
    transform: Callable,
    base=None,
    bench: ll.LifelongBenchmark | None = None,
) -> dict:
    """``{key: (bench, results)}`` of every sequence of ``P.sequences`` (first seed; ``P.sequence_methods`` and the
    joint reference, its budget scaled by the number of seen classes). A sequence whose data is not under
    ``data_root`` is skipped with the command that fetches it.

    The first network is trained once per first task (:func:`~xmr_lib.chapters.ch07.lifelong.first_task_key`: the
    same classes, images and settings) and every sequence that starts from it gets a copy of it, evaluated on its own
    galleries (:func:`~xmr_lib.chapters.ch07.lifelong.rebase`): the numbers are those of a sequence that trained its
    own. ``base`` (with ``bench``): the main run's first network (:func:`train_first`), reused the same way."""
    out = {}
    n_main = sum(P.n_seen)
    firsts = {}  # first_task_key → the first network's result
    if base is not None and bench is not None and P.sequences:
        firsts[ll.first_task_key(bench, train_config(P, P.seed, len(bench.datasets)))] = base
    for seq in P.sequences:
        q = sequence_params(P, seq)
        key = ll.sequence_key(seq)
        try:
            b_ = benchmark(q, P.seed)
        except FileNotFoundError as e:
            missing = [d for d in seq if d in ll.PAPER_CLASSES]
            print(
                f"{key}: skipped ({e}); fetch with " + "; ".join(f"python -m data_scripts fetch {d}" for d in missing)
            )
            continue
        t0 = time.time()
        cfg = train_config(q, P.seed, len(seq))
        fk = ll.first_task_key(b_, cfg)
        first = ll.rebase(firsts[fk], b_, cfg, transform) if fk in firsts else None
        res = ll.compare_lifelong(
            make_model,
            b_,
            [m for m in P.sequence_methods],
            cfg,
            transform,
            joint_iterations=max(1, round(P.joint_iterations * sum(q.n_seen) / n_main)),
            plugin_kwargs=plugin_kwargs(q, P.seed, {}),
            base=first,
            checkpoint=f"07/{key}/seed{P.seed}" if P.checkpoint else None,
        )
        firsts.setdefault(fk, res["initial"])
        out[key] = (b_, res)
        how = "its first network reused" if first is not None else "its first network trained"
        print(f"{key}: {len(res) - 1} runs in {time.time() - t0:.0f} s ({how})")
    return out


def table_metrics(key: str, bench: ll.LifelongBenchmark, runs_: dict) -> dict:
    """``<key>/<method>/<dataset>_<s|u|H>`` (R@1 %, one value per run) after the last task, the first network
    after task 1: what the Tables 7.1–7.3 targets read, scored per dataset."""
    T, out = len(bench.datasets), {}
    for m, r in runs_.items():
        for t, d in enumerate(bench.datasets):
            sc = ll.lifelong_scores(r, T, step=0 if m == "initial" else -1)[t]
            for k in ("s", "u", "H"):
                out[f"{key}/{m}/{ll.SHORT.get(d, d)}_{k}"] = [100 * float(sc[k])]
    return out


def paper_metrics(P: Any, results: dict, bench: ll.LifelongBenchmark, seqs: dict) -> dict:
    """The real benchmark only: :func:`table_metrics` of the main sequence (first seed) and of every other sequence,
    and the first task's seen R@1 after each task of every sequence (Fig. 7.8 (d))."""
    if not is_real(P):
        return {}
    out = table_metrics(ll.sequence_key(bench.datasets), bench, results[P.seed])
    for key, (b, r) in seqs.items():
        out.update(table_metrics(key, b, r))
        for m, res in r.items():
            if m not in ("initial", "joint"):
                out[f"{key}/{m}/first_s_curve"] = [100 * float(st["groups"][0]["R@1"]) for st in res.steps]
    return out


def plot_orders(seqs: dict, methods: Sequence[str] = ("ft", "dkd")):
    """Fig. 7.8 (d): R@1 of the first dataset's seen classes after each task, for every sequence that starts with it
    (training orders), per method."""
    fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    for key, (_, r) in seqs.items():
        for m in methods:
            if m in r:
                curve = [100 * st["groups"][0]["R@1"] for st in r[m].steps]
                ax.plot(range(1, len(curve) + 1), curve, marker="o", label=f"{key}: {m}")
    ax.set(xlabel="after task", ylabel="R@1 on the first dataset's seen classes, %")
    ax.set_title("Training orders (Fig. 7.8 (d))", fontsize=10)
    ax.legend(fontsize=8)
    return fig


# ---- Fig. 7.8 (c): where the datasets lie for the first network


def dataset_distribution(
    model, bench: ll.LifelongBenchmark, transform: Callable, per_dataset: int = 300, seed: int = 0
):
    """``(points (N, 2), dataset index (N,), centroid distances {(i, j): d})``: the first network's embeddings of up to
    ``per_dataset`` training images of each dataset, in the plane of their first two principal axes; distances
    between the datasets' mean embeddings (full dimension)."""
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    feats, which = [], []
    for t, seen in enumerate(bench.seen):
        idx = torch.nonzero(bench.train.mask(seen)).squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)[:per_dataset]]
        feats.append(inc.embed(model, bench.train.images[idx], transform, device=dev))
        which.append(np.full(len(idx), t))
    X = torch.cat(feats).double()
    cents = [f.double().mean(0) for f in feats]
    dist = {(i, j): float((cents[i] - cents[j]).norm()) for i in range(len(cents)) for j in range(i + 1, len(cents))}
    Xc = X - X.mean(0)
    _, _, V = torch.linalg.svd(Xc, full_matrices=False)
    return (Xc @ V[:2].T).numpy(), np.concatenate(which), dist


def plot_distribution(points: np.ndarray, which: np.ndarray, bench: ll.LifelongBenchmark):
    """Fig. 7.8 (c): the datasets' training images in the first network's feature space (PCA)."""
    fig, ax = plt.subplots(figsize=(5, 4), layout="constrained")
    for t, d in enumerate(bench.datasets):
        ax.scatter(*points[which == t].T, s=6, alpha=0.5, label=d)
    ax.set(xlabel="PC 1", ylabel="PC 2")
    ax.set_title("The datasets for the first network (Fig. 7.8 (c))", fontsize=10)
    ax.legend(fontsize=9, markerscale=3)
    return fig


# ---- Fig. 7.8 (a), (b): retrieval against classification under Gaussian noise


def train_lwf(P: Any, bench: ll.LifelongBenchmark, make_model: Callable, transform: Callable):
    """Fig. 7.8's classification model: the retrieval network with a classifier on its FC layer, trained by LwF
    (:func:`~xmr_lib.chapters.ch07.lifelong.train_lwf`: new-task head by cross-entropy, the old heads by
    distillation of the previous network's logits at T = 2) over the first two datasets (CUB-200 → Stanford Dogs),
    with the main run's schedule (``base_iterations`` then ``inc_iterations``)."""
    k = min(2, len(bench.datasets))
    return ll.train_lwf(
        make_model,
        bench,
        train_config(P, P.seed, k),
        transform,
        n_tasks=k,
        margin=P.margin,
        lambda_s=P.lambda_s,
        checkpoint=f"07/lwf/seed{P.seed}" if P.checkpoint else None,
    )


def noise_sensitivity(
    model,
    bench: ll.LifelongBenchmark,
    transform: Callable,
    ratios: Sequence[float] = (0.0, 1.0, 2.0, 4.0),
    sigma: float = 0.1,
    seed: int = 0,
    steps: int = 300,
    own_head: bool = False,
) -> dict:
    """R@1 (retrieval among the first dataset's seen test images) and classification accuracy when
    ``ratio · N(0, sigma²)`` noise is added to every test pixel in [0, 1]: ``{"ratio", "R@1", "accuracy", "R@1_drop",
    "accuracy_drop"}`` (drops: 1 − value / value without noise).

    The classifier: ``own_head=True`` — the model's own classifier columns of the first dataset's seen classes (the
    old-task head of :func:`train_lwf`, Fig. 7.8's LwF classifier, applied to the same embeddings that are
    retrieved); else a softmax layer fitted (``steps`` Adam steps) on the frozen model's embeddings of the seen
    training images."""
    dev = next(model.parameters()).device
    seen = bench.seen[0]
    tr, te = bench.train.mask(seen), bench.test.mask(seen)
    classes = torch.as_tensor(np.asarray(seen))
    y_tr = torch.searchsorted(classes, bench.train.labels[tr])
    y_te = torch.searchsorted(classes, bench.test.labels[te])
    g = torch.Generator().manual_seed(seed)
    if own_head:
        if not hasattr(model, "classifier") or model.classifier.out_features < len(classes):
            raise ValueError(
                f"model: own_head=True needs a classifier with at least {len(classes)} columns (the first dataset's "
                "seen classes first), e.g. train_lwf's"
            )
        w = model.classifier.weight[: len(classes)].detach().float().cpu()
        b = model.classifier.bias[: len(classes)].detach().float().cpu()
        clf = lambda e: e @ w.T + b  # noqa: E731 (the old task's head)
    else:
        e_tr = inc.embed(model, bench.train.images[tr], transform, device=dev)
        clf = torch.nn.Linear(e_tr.shape[1], len(classes))
        opt = torch.optim.Adam(clf.parameters(), lr=0.01)
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(clf(e_tr), y_tr).backward()
            opt.step()
    x = bench.test.images[te].float() / 255.0
    eps = torch.randn(x.shape, generator=g) * sigma
    r1, acc = [], []
    for r in ratios:
        e = inc.embed(model, (x + float(r) * eps).clamp(0, 1), transform, device=dev)
        r1.append(float(inc.retrieval_metrics(e, y_te.numpy(), ks=(1,))["R@1"]))
        with torch.no_grad():
            acc.append(float((clf(e).argmax(1) == y_te).float().mean()))
    out = {"ratio": [float(r) for r in ratios], "R@1": r1, "accuracy": acc}
    for k in ("R@1", "accuracy"):
        out[f"{k}_drop"] = [1.0 - v / max(out[k][0], 1e-12) for v in out[k]]
    return out


def plot_noise(ns: dict):
    """Fig. 7.8 (a) R@1 and classification accuracy against the noise ratio, (b) their degradation ratios."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for k, lab in (("R@1", "retrieval R@1"), ("accuracy", "classification accuracy")):
        axes[0].plot(ns["ratio"], [100 * v for v in ns[k]], marker="o", label=lab)
        axes[1].plot(ns["ratio"], [100 * v for v in ns[f"{k}_drop"]], marker="o", label=lab)
    axes[0].set(xlabel="noise ratio", ylabel="%", title="(a) recall / accuracy (Fig. 7.8 (a))")
    axes[1].set(xlabel="noise ratio", ylabel="degradation, %", title="(b) degradation ratios (Fig. 7.8 (b))")
    axes[0].legend(fontsize=9)
    return fig


def fig78_metrics(ns: dict | None, dist: dict | None, bench3: ll.LifelongBenchmark | None) -> dict:
    """What the Fig. 7.8 claims read: the degradations at the largest noise ratio; the distances of the first
    dataset's mean embedding to the others' (by short name)."""
    out = {}
    if ns is not None:
        out.update({"fig78/noise_ratios": ns["ratio"], "fig78/R@1": ns["R@1"], "fig78/accuracy": ns["accuracy"]})
        out["fig78/R@1_drop_last"] = ns["R@1_drop"][-1]
        out["fig78/accuracy_drop_last"] = ns["accuracy_drop"][-1]
    if dist is not None and bench3 is not None:
        for (i, j), d in dist.items():
            if i == 0:
                out[f"fig78/distance_{ll.SHORT.get(bench3.datasets[0])}_{ll.SHORT.get(bench3.datasets[j])}"] = d
    return out


# ---- Table 7.5: Inception score and FID of the generated images


#: Table 7.5's scorer (the chapter's: Inception-v3) and the one used when its weights are not on disk
SCORERS = {"inception_v3": "ImageNet Inception-v3", "googlenet": "ImageNet GoogLeNet"}


def quality_scorer(P: Any):
    """``(trunk, name, input size or None)``: Inception-v3, the chapter's scorer, when its weights are on disk
    (``python -m data_scripts fetch inception_v3``; ``tiny=True``: randomly initialised, at 75 px, its smallest input),
    else ImageNet GoogLeNet with a note saying so (its numbers are not on Table 7.5's scale)."""
    if P.tiny:
        return backbones.backbone("inception_v3", pretrained=False, device=P.device), "inception_v3", 75
    try:
        return backbones.backbone("inception_v3", device=P.device), "inception_v3", None
    except FileNotFoundError:
        print(
            "NOTE: no Inception-v3 weights (python -m data_scripts fetch inception_v3): Table 7.5 is scored with "
            "ImageNet GoogLeNet instead of the chapter's Inception-v3 — its Inception scores and FIDs are on another "
            "scale; only their order is claimed"
        )
        return backbones.backbone("googlenet", device=P.device), "googlenet", None


def image_quality(P: Any, g0, bench: ll.LifelongBenchmark, n_real: int = 4076) -> pd.DataFrame:
    """Table 7.5: Inception score (mean ± std over 10 splits) and FID against up to ``n_real`` real training images
    of the first dataset's seen classes, for the noise the generation starts from, the generated images and the real
    images, scored by :func:`quality_scorer` (Inception-v3; ``attrs["scorer"]`` names the network used)."""
    trunk, name, size = quality_scorer(P)
    gen = g0.images
    noise = (0.5 + 0.25 * torch.randn(gen.shape, generator=torch.Generator().manual_seed(P.seed))).clamp(0, 1)
    real = bench.train.images[bench.train.mask(bench.seen[0])]
    real = real[torch.randperm(len(real), generator=torch.Generator().manual_seed(P.seed))[:n_real]]
    outs = {
        k: inv.inception_outputs(trunk, x, size=size) for k, x in (("noise", noise), ("generated", gen), ("real", real))
    }
    rows = {}
    for k, (f, p) in outs.items():
        m, s = inv.inception_score(p, splits=min(10, len(p)))
        rows[k] = {"IS": m, "IS std": s, "FID": inv.fid(f, outs["real"][0]), "images": len(p)}
    out = pd.DataFrame(rows).T
    out.attrs["scorer"] = name
    return out


def quality_caption(q: pd.DataFrame, P: Any) -> str:
    """The caption of our Table 7.5: which network scored it."""
    name = SCORERS[q.attrs.get("scorer", "googlenet")]
    return f"Ours ({name}{'; tiny=True: random weights at 75 px' if P.tiny else ''})"


def quality_metrics(q: pd.DataFrame) -> dict:
    """``gen_quality/<noise|generated|real>/<IS|FID>`` from :func:`image_quality`, and ``gen_quality/inception_v3``
    (1: scored by Inception-v3, the chapter's scorer; 0: by GoogLeNet)."""
    out = {f"gen_quality/{k}/{c}": float(q.loc[k, c]) for k in q.index for c in ("IS", "FID")}
    out["gen_quality/inception_v3"] = float(q.attrs.get("scorer") == "inception_v3")
    return out


def thesis_75() -> pd.DataFrame:
    """Table 7.5 (frozen teacher on CUB-200; Inception-v3 scores as printed)."""
    return pd.DataFrame(
        {"IS": [0.93, 3.09, 5.24], "IS std": [0.01, 0.39, 0.30], "FID": [401.0, 198.0, 0.0]},
        index=["input random noise", "generated birds images", "origin birds images"],
    )
