"""Notebook 06's code: the benchmark and network of a run, the one-task and multi-task experiments, their tables,
figures and recorded metrics, and the look inside the feature estimation (thesis chapter 6).

The chapter's method is in :mod:`xmr_lib.chapters.ch06.estimation`, the trainer in
:mod:`xmr_lib.train.incremental`. A function here returns metrics as a ``{key: value}`` dict the notebook records
(``runs.record_many``); results are the dicts of :func:`xmr_lib.train.incremental.compare_methods`, per seed.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from xmr_lib.chapters.ch06 import estimation as est
from xmr_lib.core import parallel
from xmr_lib.core.checkpoint import Checkpoint
from xmr_lib.retrieval import metrics as rmetrics
from xmr_lib.train import incremental as inc

# ---- section 1: the benchmark and the network


def benchmark(P: Any, seed: int) -> tuple[inc.LabelledImages, inc.LabelledImages, list[str]]:
    """``(train, test, class names)`` of ``P.dataset``; ``seed`` draws the SynthSpecies images (a real dataset is
    the same for every seed)."""
    if P.dataset == "synth_species":
        return inc.synth_species_disjoint(
            P.n_old, P.n_new, P.train_per_class, P.test_per_class, P.image_size, seed=seed
        )
    train, test, names = inc.load_fine_grained(P.dataset, P.data_root, P.image_size)
    if P.dataset == "stanford_dogs":  # §6.4.1: 60% / 40% of each class, as CUB (not Dogs' official split)
        images, labels = torch.cat([train.images, test.images]), torch.cat([train.labels, test.labels])
        tr, te = inc.per_class_split(labels.numpy(), 0.6, seed=0)
        train, test = (inc.LabelledImages(images[i], labels[i]) for i in (torch.from_numpy(tr), torch.from_numpy(te)))
    return train, test, names


def is_real(P: Any) -> bool:
    """Does this run read a real dataset (after the fallback rule, which sets ``dataset`` to SynthSpecies)?"""
    return P.dataset != "synth_species"


def class_order(P: Any) -> list[int]:
    """The order in which the classes arrive: natural, or a Latin square (SynthSpecies 9 + 9 in 3 groups only: each
    group holds every stripe count once)."""
    if P.class_order not in ("natural", "latin"):
        raise ValueError(f"class_order: expected 'natural' or 'latin', got {P.class_order!r}")
    if P.class_order == "natural":
        return list(range(P.n_old + P.n_new))
    if not (P.dataset == "synth_species" and P.n_new == 9 and P.n_steps == 3):
        raise ValueError(
            "class_order: 'latin' needs the SynthSpecies 9 new classes in n_steps=3 groups, got "
            f"dataset={P.dataset!r}, n_new={P.n_new}, n_steps={P.n_steps}"
        )
    return est.latin_square_order(P.n_old)


def step_iterations(P: Any) -> list[int]:
    """Steps of each group of the multi-task run: ``step_iterations`` is one count for every group or one per group."""
    its = (
        [int(P.step_iterations)] * P.n_steps if np.isscalar(P.step_iterations) else [int(i) for i in P.step_iterations]
    )
    if len(its) != P.n_steps:
        raise ValueError(
            f"step_iterations: expected one int or {P.n_steps} values (one per group), got {P.step_iterations!r}"
        )
    return its


def batch_transform(P: Any, in_channels: int) -> inc.BatchTransform:
    """Normalisation of the trunk, flips, and the thesis' random-resized crops with ``augment="crop_flip"``; a
    non-tiny trunk resizes to ``image_size``."""
    crop = (0.16, 1.0) if P.augment == "crop_flip" else None
    return inc.trunk_transform(P.backbone, in_channels, size=P.image_size, crop_scale=crop)


def model_factory(P: Any, in_channels: int) -> Callable[[int], inc.IncrementalNet]:
    """``make_model(n_classes)``: a BN CNN (or ImageNet trunk), global max pooling, one linear layer, L2
    (``tiny=True``: the ImageNet trunk randomly initialised)."""
    return functools.partial(
        inc.make_net,
        backbone=P.backbone,
        embed_dim=P.embed_dim,
        width=P.width,
        in_channels=in_channels,
        pretrained=not P.tiny,
    )


def group_samples(train: inc.LabelledImages, groups: Sequence[Sequence[int]], per_group: int = 3):
    """One image (``(H, W[, C])`` for plotting) of each of the first ``per_group`` classes of every group, titled
    ``g<group>: <class>``."""
    ims, titles = [], []
    for g, grp in enumerate(groups):
        for c in grp[:per_group]:
            ims.append(train.images[train.labels == c][0].permute(1, 2, 0).squeeze(-1).numpy())
            titles.append(f"g{g}: {c}")
    return ims, titles


# ---- section 2: the losses


def eq_6_5_literal(Fo: torch.Tensor, Fn: torch.Tensor) -> torch.Tensor:
    """Eq. 6.5 exactly as printed, for ``(N, d)`` teacher / student features: the Gram rows' softmax (no
    temperature), KL(teacher ‖ student) summed and divided by N."""
    p, q = torch.softmax(Fo @ Fo.T, 1), torch.softmax(Fn @ Fn.T, 1)
    return (p * (p / q).log()).sum() / len(Fo)


# ---- sections 3 and 5: the experiments


def train_config(P: Any, seed: int, iterations: Sequence[int]) -> inc.TrainConfig:
    """The training settings of every run (no in-task evaluation)."""
    return inc.TrainConfig(
        iterations=iterations,
        P=P.classes_per_batch,
        K=P.images_per_class,
        lr=P.lr,
        lr_trunk=P.lr_trunk,
        weight_decay=P.weight_decay,
        freeze_bn=P.freeze_bn,
        eval_every=0,
        device=P.device,
        seed=seed,
        progress=True,
    )


def method_kwargs(P: Any) -> dict:
    """The loss weights and settings :func:`xmr_lib.chapters.ch06.estimation.method_plugins` takes."""
    sig = P.mmd_sigmas if isinstance(P.mmd_sigmas, str) else tuple(P.mmd_sigmas)
    return dict(
        lambda1=P.lambda1,
        lambda2=P.lambda2,
        temperature=P.temperature,
        k=P.k,
        decay=P.decay,
        margin=P.margin,
        l2_weight=P.l2_weight,
        mmd_weight=P.mmd_weight,
        sigmas=sig,
        metric=P.acc_metric,
        direction=P.kl_direction,
        ranking=P.ranking,
    )


def factories(kwargs: dict, methods: Sequence[str], seed: int, keepers: dict, keep: Sequence[str] = (), **over) -> dict:
    """``{method: () -> plugins}``; a method in ``keep`` also keeps a copy of every model it trains, in
    ``keepers[(method, seed)]`` (an :class:`~xmr_lib.chapters.ch06.estimation.KeepModels`; section 6)."""

    def make(m):
        def factory():
            plugins = est.method_plugins(m, **{**kwargs, **over, "seed": seed})
            if m in keep:
                keepers[(m, seed)] = est.KeepModels()
                plugins.append(keepers[(m, seed)])
            return plugins

        return factory

    return {m: make(m) for m in methods}


def seed_runs(
    P: Any,
    s: int,
    data: tuple | None,
    make_model: Callable,
    one_task: Sequence,
    multi_task: Sequence,
    transform: Callable,
    kwargs: dict,
    part: str = "all",
) -> tuple:
    """One seed of :func:`run_all`: ``(f_0's result, the one-task results, the multi-task results, keepers, seconds)``.
    ``part``: ``"all"``; ``"methods"`` (f_0 and every run from it: all but joint training) or ``"joint"`` (the joint
    reference alone, which does not start from f_0: ``(None, {"joint": result}, {}, {}, seconds)``). ``data`` =
    ``(train, test)``, or None to draw the seed's SynthSpecies images here."""
    if part not in ("all", "methods", "joint"):
        raise ValueError(f"part: expected 'all', 'methods' or 'joint', got {part!r}")
    ck = (lambda name, s: f"06/{name}/seed{s}") if P.checkpoint else (lambda name, s: None)
    step_its = step_iterations(P)
    keepers: dict = {}
    t0 = time.time()
    tr_s, te_s = data if data is not None else benchmark(P, s)[:2]
    ms_s = list(P.onetask_methods) + [m for m in P.baseline_methods if s == P.seed and m not in P.onetask_methods]
    if part == "joint":
        joint = inc.compare_methods(
            make_model,
            tr_s,
            te_s,
            one_task,
            factories(kwargs, ["joint"], s, keepers),
            train_config(P, s, [P.base_iterations, P.onetask_iterations]),
            transform,
            joint_iterations=P.joint_iterations,
            checkpoint=ck("one", s),
        )
        return None, joint, {}, {}, time.time() - t0
    if part == "methods":
        ms_s = [m for m in ms_s if m != "joint"]
    torch.manual_seed(s)
    base = inc.IncrementalTrainer(
        make_model(P.n_old),
        tr_s,
        te_s,
        one_task[:1],
        est.method_plugins("ft", **kwargs),
        train_config(P, s, [P.base_iterations]),
        transform,
        eval_groups=one_task,
        name="initial",
        checkpoint=Checkpoint(ck("initial", s)) if P.checkpoint else None,
    ).run()
    one = inc.compare_methods(
        make_model,
        tr_s,
        te_s,
        one_task,
        factories(kwargs, ms_s, s, keepers),
        train_config(P, s, [P.base_iterations, P.onetask_iterations]),
        transform,
        joint_iterations=P.joint_iterations,
        base=base,
        checkpoint=ck("one", s),
    )
    if s == P.seed and "corr" in P.onetask_methods:
        for lam in P.lambda2_grid:
            one.update(
                inc.compare_methods(
                    make_model,
                    tr_s,
                    te_s,
                    one_task,
                    {f"corr λ2={lam:g}": factories(kwargs, ["corr"], s, keepers, lambda2=lam)["corr"]},
                    train_config(P, s, [P.base_iterations, P.onetask_iterations]),
                    transform,
                    base=base,
                    checkpoint=ck(f"lam{lam:g}", s),
                )
            )
    multi = inc.compare_methods(
        make_model,
        tr_s,
        te_s,
        multi_task,
        factories(
            kwargs, P.multi_methods, s, keepers, keep=("corr_fe",) if s == P.seed else (), lambda2=P.multi_lambda2
        ),
        train_config(P, s, [P.base_iterations] + step_its),
        transform,
        base=base,
        checkpoint=ck("multi", s),
    )
    return base, one, multi, keepers, time.time() - t0


def _without_plugins(out: tuple) -> tuple:
    """What a worker sends back: the results without their plugin objects (loss terms hold lambdas)."""
    base, one, multi = out[:3]
    for r in [base, *one.values(), *multi.values()]:
        if r is not None:
            r.plugins = []
    return out


def run_all(
    P: Any,
    seeds: Sequence[int],
    first: tuple,
    make_model: Callable,
    one_task: Sequence,
    multi_task: Sequence,
    transform: Callable,
    kwargs: dict,
) -> tuple[dict, dict, dict, dict]:
    """Per seed: f_0 on the old classes, the one-task methods (and the λ2 grid, first seed) and the multi-task
    methods from it. ``first`` = ``(train, test)`` of the first seed. Returns ``(bases, one, multi, keepers)``,
    the first three ``{seed: ...}``; ``keepers`` holds every model of the first seed's ``corr_fe`` run.

    On the CPU the work runs in parallel processes, one per core (:func:`xmr_lib.core.parallel.map_jobs`, one torch
    thread each: the numbers are those of a sequential run): per seed, f_0 with every run that starts from it, and
    apart the joint reference. The first seed's f_0 and runs stay in this process and keep their plugins; the other
    results come back without them."""
    parts = ("methods", "joint") if "joint" in P.onetask_methods else ("all",)
    jobs = [
        (P, s, first if s == P.seed else None, make_model, one_task, multi_task, transform, kwargs, part)
        for part in parts
        for s in seeds
    ]
    t0 = time.time()
    workers = parallel.cpu_workers(P.device, len(jobs))
    outs = parallel.map_jobs(seed_runs, jobs, workers, finish=_without_plugins)
    bases, one, multi, keepers = {}, {}, {}, {}
    for s in seeds:
        got = [out for job, out in zip(jobs, outs) if job[1] == s]
        bases[s] = next(b for b, *_ in got if b is not None)
        runs_ = {k: v for _, o, *_ in got for k, v in o.items()}
        keys = ["initial", *P.onetask_methods] + [k for k in runs_ if k != "initial" and k not in P.onetask_methods]
        one[s] = {k: runs_[k] for k in keys if k in runs_}
        multi[s] = next(m for _, _, m, *_ in got if m)
        for _, _, _, k, _ in got:
            keepers.update(k)
        print(f"seed {s}: {len(one[s]) + len(multi[s]) - 2} runs in {sum(out[-1] for out in got):.0f} s")
    print(f"{len(seeds)} seed(s) in {time.time() - t0:.0f} s on {workers} process(es)")
    return bases, one, multi, keepers


chance_map = inc.chance_map
per_seed = inc.per_seed


def base_metrics(bases: dict, test: inc.LabelledImages, old_classes: Sequence[int]) -> dict:
    """f_0's old-class mAP (and over chance), its loss at the start and the end, its new-class mAP, per seed."""
    init_old = [b.steps[0]["groups"][0]["mAP"] for b in bases.values()]
    out = {
        "initial/old_mAP_seeds": init_old,
        "initial/old_mAP_over_chance_seeds": [m / chance_map(test, old_classes) for m in init_old],
    }
    fl = []
    for b in bases.values():
        L = [l["total"] for l in b.losses]
        n10 = max(1, len(L) // 10)
        fl.append((float(np.mean(L[:n10])), float(np.mean(L[-n10:]))))
    out["initial/loss_first_seeds"] = [a for a, _ in fl]
    out["initial/loss_last_seeds"] = [b for _, b in fl]
    out["initial/loss_last_over_first_seeds"] = [b / a for a, b in fl]
    out["initial/new_mAP_seeds"] = [b.steps[0]["groups"][1]["mAP"] for b in bases.values()]
    return out


def onetask_metrics(P: Any, one: dict, init_old: Sequence[float]) -> dict:
    """Old / new mAP and R@1 of every one-task method, per seed; fine-tuning's old-class mAP over f_0's."""
    out = {}
    for m in P.onetask_methods:
        for which in ("old", "new"):
            for metric in ("mAP", "R@1"):
                out[f"onetask/{m}/{which}_{metric}_seeds"] = per_seed(one, m, which, metric)
    if "ft" in P.onetask_methods:
        out["onetask/ft/old_mAP_ratio_seeds"] = [f / i for f, i in zip(per_seed(one, "ft", "old", "mAP"), init_old)]
    return out


def mean_std(v: Sequence[float]) -> str:
    """``"m ± s"`` in % (one value: the value)."""
    return f"{100 * np.mean(v):.1f} ± {100 * np.std(v):.1f}" if len(v) > 1 else f"{100 * v[0]:.1f}"


def thesis_61() -> pd.DataFrame:
    """Table 6.1 (CUB-200, one task 100 → +100), %."""
    return pd.DataFrame(
        {
            "old R@1": [79.24, 70.21, 75.93, 77.03, 77.71, 78.18],
            "old mAP": [55.78, 42.57, 50.23, 51.10, 52.25, 52.17],
            "new R@1": [46.93, 75.13, 74.12, 74.12, 75.00, 79.24],
            "new mAP": [19.54, 48.90, 47.47, 45.05, 46.51, 50.99],
        },
        index=["initial f_0", "ft", "l2", "mmd", "corr (ours)", "joint"],
    )


def onetask_methods_shown(P: Any) -> list[str]:
    """The one-task methods of every seed, then the first seed's baselines."""
    return list(P.onetask_methods) + [m for m in P.baseline_methods if m not in P.onetask_methods]


def onetask_table(P: Any, bases: dict, one: dict) -> pd.DataFrame:
    """Our Table 6.1: f_0 and every one-task method, old / new R@1 and mAP, % mean ± std over seeds."""
    b0 = [b.steps[0]["groups"] for b in bases.values()]
    rows = {
        "initial f_0": {
            f"{w} {k_}": mean_std([g[i][k_] for g in b0]) for w, i in (("old", 0), ("new", 1)) for k_ in ("R@1", "mAP")
        }
    }
    for m in onetask_methods_shown(P):
        rows[m + ("" if m in P.onetask_methods else f" (seed {P.seed})")] = {
            f"{w} {k_}": mean_std([r[m].steps[-1][w][k_] for r in one.values() if m in r])
            for w in ("old", "new")
            for k_ in ("R@1", "mAP")
        }
    return pd.DataFrame(rows).T


def plot_onetask(P: Any, one: dict, init_old: Sequence[float]):
    """Left: old / new mAP of every one-task method. Right: the λ2 trade-off of the first seed (λ2 = 0 is ft)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    ms = onetask_methods_shown(P)
    x = np.arange(len(ms))
    for k_, (which, c) in enumerate((("old", "C0"), ("new", "C1"))):
        vals = [[r[m].steps[-1][which]["mAP"] for r in one.values() if m in r] for m in ms]
        axes[0].bar(
            x + (k_ - 0.5) * 0.38,
            [np.mean(v) for v in vals],
            0.36,
            yerr=[np.std(v) for v in vals],
            color=c,
            label=f"{which} classes",
        )
    axes[0].axhline(np.mean(init_old), ls=":", c="k", lw=1, label="f_0 on old (before)")
    axes[0].set_xticks(x, ms)
    axes[0].set(ylabel="mAP", title="One task, after learning the new classes", ylim=(0, 1.2))
    axes[0].legend(fontsize=9, loc="upper center", ncols=3)
    first = one[P.seed]
    pts = [(0.0, first["ft"])] if "ft" in first else []
    pts += [(P.lambda2, first["corr"])] if "corr" in first else []
    pts += [(float(n.split("=")[1]), r) for n, r in first.items() if n.startswith("corr λ2=")]
    pts.sort(key=lambda t: t[0])
    if pts:
        axes[1].plot([r.final("new") for _, r in pts], [r.final("old") for _, r in pts], marker="o")
        for lam, r in pts:
            axes[1].annotate(
                f"λ2={lam:g}", (r.final("new"), r.final("old")), fontsize=9, xytext=(3, 3), textcoords="offset points"
            )
    axes[1].set(
        xlabel="new-class mAP (plasticity)",
        ylabel="old-class mAP (stability)",
        title=f"λ2 sweep (seed {P.seed}; λ2 = 0 is ft)",
    )
    axes[1].margins(0.15)
    return fig


def plot_results_matrices(res: dict, methods: Sequence[str], seed: int):
    """The results matrix R[step, group] (mAP) of each method of one seed, grey where a group is not seen yet."""
    fig, axes = plt.subplots(1, len(methods), figsize=(3.0 * len(methods), 3.4), squeeze=False, layout="constrained")
    for ax, m in zip(axes[0], methods):
        R_ = res[m].matrix("mAP")
        ax.imshow(np.ma.masked_invalid(R_), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(R_):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9, color="w" if v < 0.6 else "k")
        ax.set_title(f"{m}\nforgetting {res[m].forgetting():.3f}", fontsize=10)
        ax.set(xlabel="group", ylabel="after step")
        ax.set_xticks(range(R_.shape[1]), ["orig"] + [f"g{g}" for g in range(1, R_.shape[1])], fontsize=9)
        ax.set_yticks(range(R_.shape[0]))
        ax.grid(False)
    fig.suptitle(f"Results matrices R[step, group] (mAP, seed {seed})")
    return fig


def multi_metrics(multi: dict, methods: Sequence[str], seed: int) -> dict:
    """Per method: forgetting (last step and mean over steps), the original classes' mAP / R@1 and every group's
    mAP after the last step, per seed; the results matrix of ``seed``."""
    out = {}
    for m in methods:
        out[f"multi/{m}/forgetting_seeds"] = [r[m].forgetting() for r in multi.values()]
        out[f"multi/{m}/mean_forgetting_seeds"] = [float(np.nanmean(r[m].forgetting_curve())) for r in multi.values()]
        out[f"multi/{m}/final_old_mAP_seeds"] = [r[m].steps[-1]["groups"][0]["mAP"] for r in multi.values()]
        out[f"multi/{m}/final_old_R@1_seeds"] = [r[m].steps[-1]["groups"][0]["R@1"] for r in multi.values()]
        out[f"multi/{m}/final_all_mAP_seeds"] = [r[m].steps[-1]["all"]["mAP"] for r in multi.values()]
        out[f"multi/{m}/matrix_mAP"] = multi[seed][m].matrix("mAP").tolist()
    return out


def plot_multi(multi: dict, methods: Sequence[str], n_steps: int):
    """Eq. 6.12's forgetting after each step (Fig. 6.7), the original classes step after step (Fig. 6.11), and
    every group after the last step (Fig. 6.8); mean over seeds."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    steps_ = np.arange(1, n_steps + 1)
    for m in methods:
        curves = np.array([r[m].forgetting_curve() for r in multi.values()])
        axes[0].errorbar(
            steps_, curves.mean(0), yerr=curves.std(0) if len(multi) > 1 else None, marker="o", label=m, capsize=2
        )
        col0 = np.array([[st["groups"][0]["mAP"] for st in r[m].steps] for r in multi.values()])
        axes[1].plot(np.arange(n_steps + 1), col0.mean(0), marker="o", label=m)
    axes[0].set(xlabel="step t", ylabel="average forgetting (mAP)", xticks=steps_)
    axes[0].set_title(f"Eq. 6.12 after each step (Fig. 6.7), {len(multi)} seed(s)", fontsize=10)
    axes[1].set(xlabel="step t", ylabel="mAP on the original classes", xticks=np.arange(n_steps + 1))
    axes[1].set_title("The original classes, step after step (Fig. 6.11)", fontsize=10)
    axes[0].legend(fontsize=9)
    w = 0.8 / len(methods)
    for i, m in enumerate(methods):
        fin = np.array([[r[m].steps[-1]["groups"][g]["R@1"] for g in range(n_steps + 1)] for r in multi.values()]).mean(
            0
        )
        axes[2].bar(np.arange(n_steps + 1) + (i - (len(methods) - 1) / 2) * w, fin, w, label=m)
    axes[2].set_xticks(range(n_steps + 1), ["orig"] + [f"g{g}" for g in range(1, n_steps + 1)])
    axes[2].set(ylabel="R@1 of the final model", xlabel="group")
    axes[2].set_title("Every group after the last step (Fig. 6.8)", fontsize=10)
    return fig


def thesis_63() -> pd.DataFrame:
    """Table 6.3 (CUB, t = 2; old = classes 1–100, new = 126–150), %."""
    return pd.DataFrame(
        {
            "old R@1": [74.75, 76.69, 76.19, 76.61],
            "old mAP": [48.09, 50.71, 50.45, 50.49],
            "new R@1": [76.83, 75.00, 76.33, 76.50],
            "new mAP": [52.45, 50.87, 51.79, 51.92],
        },
        index=["(a) corr", "(b) corr_aug", "(c) corr_fe", "(d) corr_all"],
    )


def t2_table(multi: dict, methods: Sequence[str], t2: int) -> pd.DataFrame:
    """Our Table 6.3: at step ``t2`` the original classes and the group just learnt, and the final step."""
    tab = {}
    for m in methods:
        at = [r[m].steps[t2]["groups"] for r in multi.values()]
        tab[m] = {f"old {k_} (t={t2})": mean_std([g[0][k_] for g in at]) for k_ in ("R@1", "mAP")}
        tab[m].update({f"new {k_} (t={t2})": mean_std([g[t2][k_] for g in at]) for k_ in ("R@1", "mAP")})
        tab[m].update(
            {
                "old mAP (final)": mean_std([r[m].steps[-1]["groups"][0]["mAP"] for r in multi.values()]),
                "forgetting (final)": mean_std([r[m].forgetting() for r in multi.values()]),
            }
        )
    return pd.DataFrame(tab).T


def t2_metrics(multi: dict, methods: Sequence[str], t2: int) -> dict:
    """Old / new (the group of step ``t2``) R@1 and mAP after step ``t2``, per method and seed."""
    out = {}
    for m in methods:
        for k_ in ("R@1", "mAP"):
            out[f"t2/{m}/old_{k_}_seeds"] = [r[m].steps[t2]["groups"][0][k_] for r in multi.values()]
            out[f"t2/{m}/new_{k_}_seeds"] = [r[m].steps[t2]["groups"][t2][k_] for r in multi.values()]
    return out


def final_old_per_seed(multi: dict, methods: Sequence[str]) -> pd.DataFrame:
    """Original-class mAP after the last step, one row per seed."""
    return pd.DataFrame(
        {m: [r[m].steps[-1]["groups"][0]["mAP"] for r in multi.values()] for m in methods},
        index=[f"seed {s}" for s in multi],
    )


# ---- section 6: inside the estimation


def estimation_rows(
    models: Sequence, test: inc.LabelledImages, groups: Sequence, steps: Sequence[dict], transform: Callable, P: Any
) -> pd.DataFrame:
    """For every step t ≥ 2 and every unsaved model: virtual vs stored features against the actual ones (cosine,
    relative L2, L_corr), on the test images of group t (:func:`~xmr_lib.chapters.ch06.estimation.
    estimation_report`)."""
    rep = []
    dev = next(models[0].parameters()).device
    for t in range(2, P.n_steps + 1):
        x_ = transform(test.images[test.mask(groups[t])].to(dev), train=False)
        rng_t = est.accuracy_ranges(steps[:t], P.acc_metric)
        for row in est.estimation_report(models[:t], x_, rng_t, P.k, P.temperature, n_draws=8, seed=P.seed):
            rep.append({"step t": t, **row})
    return pd.DataFrame(rep)


def plot_estimation(rep: pd.DataFrame):
    """Mean cosine and L_corr to the actual features: virtual (estimated) and stored, per step and unsaved model."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    lab = rep["step t"].astype(str) + ": f" + rep["model"].astype(str)
    xx = np.arange(len(rep))
    for ax, (col, ttl) in zip(
        axes,
        (
            ("cos", "mean cosine to the actual features (higher = closer)"),
            ("kl", "L_corr to the actual Gram matrix (lower = closer)"),
        ),
    ):
        ax.plot(xx, rep[f"{col}_virtual"], marker="o", label="virtual (estimated)")
        ax.plot(xx, rep[f"{col}_stored"], marker="s", label="stored f_t−1, as is")
        ax.set_xticks(xx, lab, fontsize=9)
        ax.set_title(ttl, fontsize=10)
        ax.set_xlabel("step: unsaved model")
    axes[0].legend(fontsize=9)
    return fig


def last_group_features(models: Sequence, test: inc.LabelledImages, group: Sequence[int], transform: Callable):
    """``(x, y)``: the transformed test images of ``group`` on the models' device, and their labels."""
    m_ = test.mask(group)
    x_ = transform(test.images[m_].to(next(models[0].parameters()).device), train=False)
    return x_, test.labels[m_].numpy()


def plot_virtual_pca(models: Sequence, x_: torch.Tensor, y_: np.ndarray, steps: Sequence[dict], P: Any):
    """Group t's test images (t = n_steps) in the first two principal axes: f_0 as it was, the stored f_{t−1}, and
    f_0 as estimated at step t; grey lines join an image's actual and virtual f_0 features."""
    from sklearn.decomposition import PCA  # heavy, optional

    t = P.n_steps
    with torch.no_grad():
        actual0 = models[0](x_).embedding
        stored = models[t - 1](x_).embedding
    virt0 = est.estimate_features(
        stored, est.accuracy_ranges(steps[:t], P.acc_metric), P.k, torch.Generator().manual_seed(P.seed)
    )[-1]
    pca = PCA(2, random_state=P.seed).fit(torch.cat([actual0, stored, virt0]).cpu().numpy())
    Z = {
        n: pca.transform(v.cpu().numpy())
        for n, v in (("actual f_0", actual0), (f"stored f_{t - 1}", stored), ("virtual f_0", virt0))
    }
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for (n, z), mk in zip(Z.items(), ("o", "s", "^")):
        ax.scatter(z[:, 0], z[:, 1], s=14, marker=mk, label=n, alpha=0.7)
    for i in range(0, len(y_), max(1, len(y_) // 15)):
        ax.plot(
            [Z["actual f_0"][i, 0], Z["virtual f_0"][i, 0]],
            [Z["actual f_0"][i, 1], Z["virtual f_0"][i, 1]],
            c="grey",
            lw=0.6,
        )
    ax.plot([], [], c="grey", lw=0.6, label="one image: actual → virtual f_0")
    ax.set(xlabel="PC 1", ylabel="PC 2")
    ax.set_title(f"Group {t}'s test images (PCA): f_0 as it was, and as estimated at step {t}", fontsize=10)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def virtual_teacher_view(models: Sequence, x_: torch.Tensor, y_: np.ndarray, steps: Sequence[dict], P: Any):
    """``draw(model, k)`` for ``viz.explorer``: the Gram rows (softmax of G / T) of the actual unsaved model
    f_model, of the stored f_{t−1} and of the virtual f_model estimated with scaling factor k, at t = n_steps.

    The features are computed once here (inference only): moving a control re-draws, it never trains."""
    t_x = P.n_steps
    by_class = np.argsort(y_, kind="stable")
    pick = torch.as_tensor(by_class[np.linspace(0, len(by_class) - 1, min(24, len(by_class))).astype(int)])
    with torch.no_grad():
        F_actual = {j: models[j](x_[pick]).embedding.cpu() for j in range(t_x - 1)}
        F_stored = models[t_x - 1](x_[pick]).embedding.cpu()
    ranges_x = est.accuracy_ranges(steps[:t_x], P.acc_metric)

    def gram_rows(F):
        return torch.softmax(F @ F.T / P.temperature, dim=1).numpy()

    def draw(model, k):
        virt = est.estimate_features(F_stored, ranges_x, k, torch.Generator().manual_seed(P.seed))[t_x - 2 - model]
        panels = [
            (f"actual f_{model}", F_actual[model]),
            (f"stored f_{t_x - 1}, as is", F_stored),
            (f"virtual f_{model}, k = {k:g}", virt),
        ]
        fig, axs = plt.subplots(1, 3, figsize=(12, 4.2), layout="constrained")
        rows_ = [gram_rows(F) for _, F in panels]  # one colour scale for the three panels
        lo_, hi_ = min(float(r.min()) for r in rows_), max(float(r.max()) for r in rows_)
        for ax, (name, F), r in zip(axs, panels, rows_):
            im = ax.imshow(r, vmin=lo_, vmax=hi_, cmap="viridis")
            if not name.startswith("actual"):
                name += f"\nL_corr to the actual rows: {est.gram_kl_matrix(F_actual[model], F, P.temperature):.4f}"
            ax.set_title(name, fontsize=10)
            ax.set(xlabel="image j (sorted by class)", ylabel="image i")
            ax.grid(False)
        fig.colorbar(im, ax=list(axs), shrink=0.85, label=f"softmax of row i of G / T (T = {P.temperature:g})")
        fig.suptitle(
            f"Step {t_x}: what the loss term of f_{model} compares with ({len(pick)} test images of group {t_x})"
        )
        return fig

    return draw


# ---- section 7: memory


def memory_table(net, n_steps: int) -> pd.DataFrame:
    """Models and bytes each variant keeps besides the trained network, at every step up to max(n_steps, 10)."""
    mem = []
    for t in range(1, max(n_steps, 10) + 1):
        for m in ("corr", "corr_fe", "corr_all"):
            c = est.memory_cost(net, m, t)
            mem.append(
                {
                    "step t": t,
                    "method": m,
                    "models": c["models"],
                    "MB": c["total_bytes"] / 2**20,
                    "bytes": c["total_bytes"],
                }
            )
    return pd.DataFrame(mem)


def plot_memory(mem: pd.DataFrame):
    """MB kept per step and method (corr and corr_fe overlap: one model, plus 2 floats per task)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    style = {"corr": dict(marker="o", ms=8), "corr_fe": dict(marker="x", ls="--"), "corr_all": dict(marker="s")}
    for m_, d in mem.groupby("method"):
        ax.plot(d["step t"], d["MB"], **style[m_], label=m_)
    ax.set(
        xlabel="step t",
        ylabel="MB kept",
        title="memory of the teachers",
        xticks=sorted(mem["step t"].unique()),
        ylim=(0, None),
    )
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def memory_metrics(net, n_steps: int) -> dict:
    """Model bytes of feature estimation over storing every model at the last step, and the bytes of one model."""
    last = (
        est.memory_cost(net, "corr_fe", n_steps)["model_bytes"]
        / est.memory_cost(net, "corr_all", n_steps)["model_bytes"]
    )
    return {"memory/fe_over_all_ratio": last, "memory/bytes_per_model": est.memory_cost(net, "corr", 1)["model_bytes"]}


# ---- section 8: the thesis' numbers on the real data


def paper_metrics(P: Any, bases: dict, one: dict, multi: dict, methods: Sequence[str], t2: int) -> dict:
    """R@1 % per seed on the real benchmark, keyed by dataset (each scored against its own tables); empty on
    SynthSpecies."""
    if not is_real(P):
        return {}
    ds_, out = P.dataset, {}

    def pct(xs):
        return [100 * float(x) for x in xs]

    for m in P.onetask_methods:
        for which in ("old", "new"):
            out[f"{ds_}/{m}/{which}_R@1"] = pct(per_seed(one, m, which, "R@1"))
    out[f"{ds_}/initial/old_R@1"] = pct([b.steps[0]["groups"][0]["R@1"] for b in bases.values()])
    out[f"{ds_}/initial/new_R@1"] = pct([b.steps[0]["groups"][1]["R@1"] for b in bases.values()])
    for m in methods:
        out[f"{ds_}/multi/{m}/forgetting"] = [r[m].forgetting() for r in multi.values()]
        out[f"{ds_}/multi/{m}/avg_incremental_R@1"] = pct([avg_incremental(r[m]) for r in multi.values()])
        for k_, which in (("old_R@1", 0), ("new_R@1", t2)):
            out[f"{ds_}/t2/{m}/{k_}"] = pct([r[m].steps[t2]["groups"][which]["R@1"] for r in multi.values()])
        out[f"{ds_}/multi/{m}/final_old_R@1"] = pct([r[m].steps[-1]["groups"][0]["R@1"] for r in multi.values()])
    return out


# ---- the long sequence (Fig. 6.10, full profile): the new classes in ``long_steps`` groups, first seed


def run_long(
    P: Any,
    base,
    data: tuple,
    make_model: Callable,
    order: Sequence[int],
    transform: Callable,
    kwargs: dict,
) -> dict:
    """``{method: result}`` of ``P.long_methods`` over the new classes in ``P.long_steps`` groups of equal size
    (CUB-200: 10 groups of 10, Fig. 6.10), ``P.long_iterations`` steps each, from the first seed's f_0 (``base``);
    ``{}`` when ``long_steps`` is 0 (smoke, default)."""
    if not P.long_steps or not P.long_methods:
        return {}
    if P.n_new % P.long_steps:
        raise ValueError(f"long_steps: {P.n_new} new classes do not split into {P.long_steps} equal groups")
    groups = inc.multi_step_protocol(order, P.n_old, P.long_steps)
    out = inc.compare_methods(
        make_model,
        data[0],
        data[1],
        groups,
        factories(kwargs, [m for m in P.long_methods if m != "joint"], P.seed, {}, lambda2=P.multi_lambda2),
        train_config(P, P.seed, [P.base_iterations] + [P.long_iterations] * P.long_steps),
        transform,
        base=base,
        checkpoint=f"06/long/seed{P.seed}" if P.checkpoint else None,
    )
    out.pop("initial", None)
    return out


def avg_incremental(result, metric: str = "R@1") -> float:
    """Average incremental accuracy of a run (:func:`xmr_lib.retrieval.metrics.average_incremental_accuracy` of its
    results matrix: the mean over steps of the mean over the groups seen so far, each group its own gallery)."""
    return rmetrics.average_incremental_accuracy(result.matrix(metric))


def long_curves(long: dict) -> dict:
    """Per method: R@1 of the original classes after each step (f_0 first) and the forgetting ratio
    ``1 − R@1_t / R@1_0`` (Fig. 6.10 (a), (b))."""
    out = {}
    for m, r in long.items():
        r1 = np.array([st["groups"][0]["R@1"] for st in r.steps])
        out[m] = {"old_R@1": r1, "forgetting_ratio": 1.0 - r1 / max(r1[0], 1e-12)}
    return out


def long_metrics(P: Any, long: dict) -> dict:
    """The curves of :func:`long_curves`, the average incremental accuracy (R@1) and the final forgetting ratio per
    method; on the real benchmark also ``<dataset>/long/<method>/…`` in % for the claims."""
    out = {}
    for m, c in long_curves(long).items():
        aia = avg_incremental(long[m])
        out[f"long/{m}/old_R@1_curve"] = c["old_R@1"].tolist()
        out[f"long/{m}/forgetting_ratio_curve"] = c["forgetting_ratio"].tolist()
        out[f"long/{m}/avg_incremental_R@1"] = aia
        if is_real(P):
            out[f"{P.dataset}/long/{m}/final_old_R@1"] = [100 * float(c["old_R@1"][-1])]
            out[f"{P.dataset}/long/{m}/final_forgetting_ratio"] = [100 * float(c["forgetting_ratio"][-1])]
            out[f"{P.dataset}/long/{m}/avg_incremental_R@1"] = [100 * aia]
    return out


def plot_long(long: dict):
    """Fig. 6.10: (a) R@1 of the original classes after each group, (b) its forgetting ratio, per method."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for m, c in long_curves(long).items():
        t = np.arange(len(c["old_R@1"]))
        axes[0].plot(t, 100 * c["old_R@1"], marker="o", label=f"{m} (AIA {100 * avg_incremental(long[m]):.1f})")
        axes[1].plot(t[1:], 100 * c["forgetting_ratio"][1:], marker="o", label=m)
    axes[0].set(xlabel="task t (group of new classes)", ylabel="R@1 on the original classes, %")
    axes[0].set_title("(a) the original classes after each group (Fig. 6.10(a))", fontsize=10)
    axes[1].set(xlabel="task t", ylabel="forgetting ratio 1 − R@1_t / R@1_0, %")
    axes[1].set_title("(b) forgetting ratio on R@1 (Fig. 6.10(b))", fontsize=10)
    axes[0].legend(fontsize=9, title="AIA: average incremental accuracy", title_fontsize=8)
    return fig
