"""The steps of notebook 10 (enhanced isomorphic semantic representation, Liu et al., ICME 2017, and the
common-space objectives of thesis chapter 8) that are logic rather than display: the data of each seed, the chance
level, the numbers recorded from the Table 2 ablation, the Table 1 sweep and the Table 3 comparison, and the tables
shown beside the paper's. The network, objectives and training are in :mod:`xmr_lib.chapters.ch10.common_space`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xmr_lib.chapters.ch10 import alexnet_inet as ai
from xmr_lib.chapters.ch10 import baselines as bl
from xmr_lib.chapters.ch10 import common_space as cs
from xmr_lib.chapters.ch10 import cycle_space as cy
from xmr_lib.chapters.ch10 import latent_spaces as lsp
from xmr_lib.core import parallel
from xmr_lib.core.setup import resolve_device
from xmr_lib.data.registry import converted_available
from xmr_lib.retrieval.metrics import hamming_relevance, mean_average_precision

ABLATION_KEYS = ("i2t", "t2i", "average", "consistency", "image_acc", "text_acc")
"""What :func:`common_space.run_isomorphic` reports and the Table 2 ablation records per variant."""

OBJECTIVES = {
    "cca": "CCA",
    "semantic": "semantic matching (Eq. 2)",
    "triplet": "ranking (triplet)",
    "adversarial": "semantic + adversarial",
}
"""The four common-space objectives compared (thesis ch. 8 §8.3.3): key → name shown."""


def objectives_for(labels) -> dict[str, str]:
    """:data:`OBJECTIVES` that apply to a set's labels: the ranking objective mines negatives by class id, so it is
    left out on a multi-label set ((n, c) labels, VOC 2007)."""
    multi = np.ndim(labels) != 1
    return {k: v for k, v in OBJECTIVES.items() if not (multi and k == "triplet")}


PAPER_TABLE1 = pd.DataFrame(
    {
        "Wikipedia avg (paper)": [42.5, 44.1, 44.2, 44.6, 44.2],
        "Pascal Sentence avg (paper)": [45.7, 49.5, 49.3, 49.0, 47.4],
    },
    index=[64, 128, 256, 512, 1024],
)
"""Table 1 of the paper: average mAP (%) per latent dimension l."""

PAPER_TABLE2 = {
    "Wikipedia (paper)": [43.1, 43.1, 44.1],
    "Pascal Sentence (paper)": [48.8, 48.9, 49.5],
    "VOC 2007 (paper)": [81.6, 81.5, 82.3],
}
"""Table 2 of the paper: average mAP (%) of O, O/LE, O/LE/J."""

PAPER_TABLE3 = pd.DataFrame(
    {"Wikipedia": [22.6, 24.6, 23.6, 44.3, 45.0, 44.6], "Pascal Sentence": [26.1, 35.6, 30.9, 46.5, 52.4, 49.5]},
    index=pd.MultiIndex.from_product([["CCA", "ours (O/LE/J)"], ["image", "text", "average"]]),
)
"""Table 3 of the paper (the rows it re-ran: CCA and its own method), mAP (%)."""


# ---------------------------------------------------------------------------------------------------------------
# independent runs on several cores


def _one_thread(fn, *args):
    """``fn(*args)`` with one torch thread and one BLAS / OpenMP thread (numpy, sklearn), restored after."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            return fn(*args)
    finally:
        torch.set_num_threads(threads)


def run_jobs(jobs: Sequence[tuple], device: str = "cpu") -> list:
    """``[fn(*args) for fn, *args in jobs]``: the independent runs of one step (seeds, variants, methods).

    On the CPU each job runs at one torch / BLAS thread (these MLPs, LDA and logistic regressions are too small to
    split over threads) in :func:`xmr_lib.core.parallel.map_jobs`'s worker processes, one per core (``XMR_WORKERS``;
    1: all in this process) — a job computes the same numbers whatever the number of processes. On a GPU the jobs
    run one after another in this process. Put the longest jobs first.

    Args:
        jobs: ``(fn, *args)`` tuples; ``fn`` a module-level function, the arguments picklable.
        device: the device the jobs train on.
    """
    jobs = [tuple(j) for j in jobs]
    if resolve_device(device) != "cpu":
        return [fn(*args) for fn, *args in jobs]
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # map_jobs gives its workers this process's thread count
    try:
        return parallel.map_jobs(_one_thread, jobs, parallel.cpu_workers("cpu", len(jobs)))
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------------------------
# data


def probe_feature_pairs(name: str, root) -> None:
    """Raise the ValueError of :func:`common_space.load_feature_pairs` (naming what is missing and the fetch
    command) when the paper dataset ``name`` is not under ``root``, without reading or building its features."""
    if (
        root is not None
        and name in cs.PAPER_DATASETS
        and (
            (Path(root) / name / cs.FEATURES_FILE).is_file()
            or (name in cs.CONVERTED_PAPER_DATASETS and converted_available(name, root))
        )
    ):
        return
    cs.load_feature_pairs(name, root)  # nothing there: raises before reading anything


def is_missing(error: Exception) -> bool:
    """Whether an error of :func:`probe_feature_pairs` means "not on disk" (a broken file or a bad name does not)."""
    return isinstance(error, FileNotFoundError) or str(error).startswith("data_root:")


def seed_splits(p: Mapping[str, Any], seeds: Sequence[int]) -> dict[int, cs.CrossModalSplit]:
    """The data of every seed. Offline (``p["dataset"] == "fashion_wiki"``) each seed draws a new split and new
    documents; a paper dataset is read once (``<data_root>/<dataset>/isomorphic_features.npz``, else built and cached
    from the converted layout) and every seed trains on that same split.

    Args:
        p: the notebook's parameters (dataset, data_root, n_train, n_test, text_features, n_topics, text_signal,
            device, seed).
    """
    if p["dataset"] == "fashion_wiki":  # one job per seed (:func:`run_jobs`): LDA is most of the time
        args = (p["n_train"], p["n_test"], p["text_features"], p["n_topics"], p["text_signal"], 0.15, 0.0)
        jobs = [(cs.fashion_wiki_pairs, *args, s) for s in seeds]
        return dict(zip(seeds, run_jobs(jobs, p["device"])))
    real = cs.load_feature_pairs(
        p["dataset"],
        p["data_root"],
        text_features=p["text_features"],
        n_topics=p["n_topics"],
        device=p["device"],
        seed=p["seed"],
    )
    return {s: real for s in seeds}


def chance_map(split: cs.CrossModalSplit) -> float:
    """The mAP of a random ranking of the test items, ≈ Σ_c p_c² / Σ_c p_c with p_c the share of class c (single
    label; NaN for multi-label sets)."""
    lab = split.test_labels
    if np.ndim(lab) != 1:
        return float("nan")
    return float(
        np.mean([(lab == c).mean() ** 2 for c in range(split.n_classes)])
        / np.mean([(lab == c).mean() for c in range(split.n_classes)])
    )


# ---------------------------------------------------------------------------------------------------------------
# Table 2: the ablation


def ablation(
    splits: Mapping[int, cs.CrossModalSplit],
    base: cs.CommonSpaceTrainConfig,
    device: str = "cpu",
    progress=lambda x, **kw: x,
) -> dict[str, list[dict]]:
    """Train the three variants of Table 2 (:data:`common_space.MODES`) on every seed: mode → one result per seed
    (:func:`common_space.run_isomorphic`). The 3 × seeds runs are independent (:func:`run_jobs`); ``progress`` is
    accepted for symmetry with the full section's steps and not used."""
    jobs = [(cs.run_isomorphic, splits[s], replace(base, mode=m), s, device) for s in splits for m in cs.MODES]
    res = iter(run_jobs(jobs, device))
    out: dict[str, list[dict]] = {m: [] for m in cs.MODES}
    for _s in splits:
        for m in cs.MODES:
            out[m].append(next(res))
    return out


def ablation_metrics(results: Mapping[str, Sequence[dict]], chance: Sequence[float]) -> dict[str, list]:
    """Per variant and key of :data:`ABLATION_KEYS`, the per-seed values; the chance level; O/LE/J's average mAP
    over chance; and O/LE/J − O in average mAP."""
    out: dict[str, list] = {f"ablation/{m}/{k}": [r[k] for r in rs] for m, rs in results.items() for k in ABLATION_KEYS}
    out["chance/average"] = list(chance)
    out["ablation/O-LE-J/average_over_chance"] = [r["average"] / c for r, c in zip(results["O-LE-J"], chance)]
    out["ablation/joint_minus_original"] = [
        a["average"] - b["average"] for a, b in zip(results["O-LE-J"], results["O"])
    ]
    return out


def mean_sd_percent(results: Mapping[str, Sequence[dict]], keys: Sequence[str]) -> pd.DataFrame:
    """Row per entry of ``results``, column per key: "mean ± sd" over the seeds, in percent, one decimal."""
    mean = pd.DataFrame({m: {k: np.mean([r[k] for r in rs]) for k in keys} for m, rs in results.items()}).T
    sd = pd.DataFrame({m: {k: np.std([r[k] for r in rs]) for k in keys} for m, rs in results.items()}).T
    return (100 * mean).round(1).astype(str) + " ± " + (100 * sd).round(1).astype(str)


def table2_beside_paper(results: Mapping[str, Sequence[dict]], dataset: str) -> pd.DataFrame:
    """Average mAP (%) of O, O/LE, O/LE/J: the paper's three datasets and ours (mean over the seeds)."""
    ours = [100 * np.mean([r["average"] for r in results[m]]) for m in cs.MODES]
    return pd.DataFrame({**PAPER_TABLE2, f"{dataset} (ours)": np.round(ours, 1)}, index=list(cs.MODES))


def ablation_differences(results: Mapping[str, Sequence[dict]], seeds: Sequence[int]) -> pd.DataFrame:
    """Per seed, the differences in average mAP between the variants (O/LE − O, O/LE/J − O, O/LE/J − O/LE)."""
    d = lambda a, b: [x["average"] - y["average"] for x, y in zip(results[a], results[b])]  # noqa: E731
    return pd.DataFrame(
        {"O/LE − O": d("O-LE", "O"), "O/LE/J − O": d("O-LE-J", "O"), "O/LE/J − O/LE": d("O-LE-J", "O-LE")},
        index=[f"seed {s}" for s in seeds],
    )


# ---------------------------------------------------------------------------------------------------------------
# Table 1: the latent dimension


def latent_sweep(
    splits: Mapping[int, cs.CrossModalSplit],
    base: cs.CommonSpaceTrainConfig,
    latent_dims: Sequence[int],
    at_base: Sequence[dict],
    device: str = "cpu",
    progress=lambda x, **kw: x,
) -> dict[int, list[dict]]:
    """O/LE/J at every latent dimension of ``latent_dims`` on every seed: l → one result per seed. The run at
    ``base.latent`` is ``at_base`` (Table 2's O/LE/J), not trained twice; the others run as independent jobs
    (:func:`run_jobs`, the largest l first)."""
    new = sorted({int(l) for l in latent_dims if l != base.latent}, reverse=True)
    jobs = [(cs.run_isomorphic, splits[s], replace(base, latent=l), s, device) for l in new for s in splits]
    res = iter(run_jobs(jobs, device))
    trained = {l: [next(res) for _s in splits] for l in new}
    return {l: list(at_base) if l == base.latent else trained[int(l)] for l in latent_dims}


def sweep_metrics(sweep: Mapping[int, Sequence[dict]]) -> dict[str, list]:
    """``sweep/l<l>/<i2t|t2i|average>``: the per-seed values."""
    return {f"sweep/l{l}/{k}": [r[k] for r in rs] for l, rs in sweep.items() for k in ("i2t", "t2i", "average")}


def sweep_table(sweep: Mapping[int, Sequence[dict]]) -> tuple[pd.DataFrame, int]:
    """Latent l × (i2t, t2i, average): mAP (%) mean over the seeds, and the l of the best average."""
    means = {l: np.mean([r["average"] for r in rs]) for l, rs in sweep.items()}
    best = max(means, key=means.get)
    table = pd.DataFrame(
        {l: {k: 100 * np.mean([r[k] for r in rs]) for k in ("i2t", "t2i", "average")} for l, rs in sweep.items()}
    ).T.round(1)
    table.index.name = "latent l"
    return table, best


# ---------------------------------------------------------------------------------------------------------------
# Table 3 / chapter 8: four objectives


def compare_objectives(
    splits: Mapping[int, cs.CrossModalSplit],
    base: cs.CommonSpaceTrainConfig,
    semantic: Sequence[dict],
    *,
    cca_components: int,
    triplet_batch_size: int,
    device: str = "cpu",
    progress=lambda x, **kw: x,
) -> dict[str, list[dict]]:
    """Every objective of :data:`OBJECTIVES` on every seed: key → one result per seed. The semantic-matching runs
    are ``semantic`` (Table 2's O/LE/J); the ranking objective uses ``triplet_batch_size`` pairs per batch. The
    other runs are independent jobs (:func:`run_jobs`, the slowest objective first). On a multi-label set the
    ranking objective is left out (:func:`objectives_for`)."""
    keys = objectives_for(next(iter(splits.values())).train_labels)  # no ranking objective on multi-label sets
    cfgs = {
        "triplet": replace(base, objective="triplet", batch_size=triplet_batch_size),
        "adversarial": replace(base, objective="adversarial"),
    }
    cfgs = {k: v for k, v in cfgs.items() if k in keys}
    jobs = [(cs.run_isomorphic, splits[s], cfg, s, device) for cfg in cfgs.values() for s in splits]
    jobs += [(cs.run_cca, splits[s], cca_components, 32, s) for s in splits]
    res = iter(run_jobs(jobs, device))
    trained = {k: [next(res) for _s in splits] for k in (*cfgs, "cca")}
    return {k: list(semantic) if k == "semantic" else trained[k] for k in keys}


def compare_metrics(results: Mapping[str, Sequence[dict]]) -> dict[str, list]:
    """``compare/<objective>/<i2t|t2i|average>`` per seed, and the worst supervised objective's average per seed."""
    out = {f"compare/{k}/{m}": [r[m] for r in rs] for k, rs in results.items() for m in ("i2t", "t2i", "average")}
    n = len(results["semantic"])
    out["compare/worst_supervised/average"] = [
        min(results[k][i]["average"] for k in ("semantic", "triplet", "adversarial") if k in results) for i in range(n)
    ]
    return out


def compare_table(results: Mapping[str, Sequence[dict]]) -> pd.DataFrame:
    """Objective × (i2t, t2i, average): mAP (%) "mean ± sd" over the seeds, and the seconds per run."""
    table = pd.DataFrame(
        {
            OBJECTIVES[k]: {
                m: f"{100 * np.mean([r[m] for r in rs]):.1f} ± {100 * np.std([r[m] for r in rs]):.1f}"
                for m in ("i2t", "t2i", "average")
            }
            for k, rs in results.items()
        }
    ).T
    table["seconds / run"] = [f"{np.mean([r['seconds'] for r in results[k]]):.1f}" for k in results]
    return table


def per_dataset_metrics(dataset: str, metrics: Mapping[str, Any], paper_features: bool = False) -> dict[str, Any]:
    """The metrics the per-dataset paper targets read, again under ``<dataset>/…``:

    - ``<dataset>/ablation/<O|O-LE|O-LE-J>/…``: Table 2's variants from the AlexNet fine-tuning of the full section
      (``finetune/…``) when it ran, else from section 3;
    - ``<dataset>/compare/<cca|sm|tvcca>/…``: only on the paper's image features (AlexNet fc7, Table 3 §4.2) —
      the ``paper_features/compare/…`` runs of the full section, or section 5/6's runs when ``paper_features`` says
      the notebook's own features are AlexNet fc7 (a hand-made ``isomorphic_features.npz`` that names them).
    """
    src = "finetune/" if any(k.startswith("finetune/O-LE-J/") for k in metrics) else "ablation/"
    out = {
        f"{dataset}/ablation/{k[len(src) :]}": v
        for k, v in metrics.items()
        if k.startswith(src) and k[len(src) :].split("/")[0] in cs.MODES
    }
    base = ("cca", "sm", "tvcca")
    if any(k.startswith("paper_features/compare/") for k in metrics):
        pre = "paper_features/"
    elif paper_features:
        pre = ""
    else:
        return out
    for k, v in metrics.items():
        if k.startswith(pre + "compare/") and k[len(pre) :].split("/")[1] in base:
            out[f"{dataset}/{k[len(pre) :]}"] = v
    return out


def uses_paper_features(split: cs.CrossModalSplit) -> bool:
    """Whether a split's image features are the paper's (AlexNet fc7 of the ImageNet network, §4.2)."""
    return str(split.meta.get("image_features", "")).startswith(ai.FC7_NAME)


# ---------------------------------------------------------------------------------------------------------------
# the paper's experiment (full profile, i_net="alexnet")


def paper_experiment(p: Mapping[str, Any], seeds: Sequence[int], progress=lambda x, **kw: x) -> dict[str, Any]:
    """ICME 2017 as published, on a converted paper dataset: Table 2's O, O/LE, O/LE/J with AlexNet fine-tuned
    (SGD, 0.01 new / 0.001 pre-trained layers, §3.2) on every seed, and Table 3's CCA, SM and T-V CCA on the
    pre-trained AlexNet's fc7 features (§4.2). ``p["tiny"]``: the same path with random AlexNet weights, 72 px
    images cropped to 64, 3 iterations of 8 pairs (what CI runs).

    Returns:
        ``{"finetune": mode → one result per seed, "baselines": key → one result per seed, "pairs", "fc7"}``.
    """
    tiny = bool(p["tiny"])
    pairs = ai.image_pairs(
        p["dataset"], p["data_root"], resize=72 if tiny else 256, n_topics=p["n_topics"], seed=p["seed"]
    )
    cfg = ai.FinetuneConfig(
        latent=p["latent"],
        iterations=3 if tiny else p["iterations"],
        batch_size=8 if tiny else p["batch_size"],
        lr_new=p["lr"],
        lr_pretrained=p["lr"] / 10,
        crop=64 if tiny else p["image_size"],
    )
    ft: dict[str, list[dict]] = {m: [] for m in cs.MODES}
    for s in progress(list(seeds), desc="seeds (AlexNet fine-tuning)"):
        for m in cs.MODES:
            ft[m].append(
                ai.finetune_isomorphic(pairs, replace(cfg, mode=m), seed=s, device=p["device"], pretrained=not tiny)
            )
    fc7 = ai.alexnet_fc7_split(pairs, crop=cfg.crop, pretrained=not tiny, device=p["device"])
    fc7_splits = {s: fc7 for s in seeds}
    base = table3_baselines(fc7_splits, cca_components=p["cca_components"])
    base["cca"] = [cs.run_cca(fc7, p["cca_components"], seed=s) for s in seeds]
    return {"finetune": ft, "baselines": base, "pairs": pairs, "fc7": fc7}


def paper_experiment_metrics(result: Mapping[str, Any]) -> dict[str, list]:
    """``finetune/<mode>/<key>`` (keys of :data:`ABLATION_KEYS`) and ``paper_features/compare/<cca|sm|tvcca>/…``
    per seed, and the fine-tuning's last-minus-first loss of O/LE/J (mean of 10 steps at each end)."""
    out: dict[str, list] = {
        f"finetune/{m}/{k}": [r[k] for r in rs] for m, rs in result["finetune"].items() for k in ABLATION_KEYS
    }
    # the Table 3 targets read these only on the paper's features (ImageNet AlexNet fc7), not with tiny's random net
    pre = "paper_features/" if uses_paper_features(result["fc7"]) else "random_alexnet_fc7/"
    out.update({f"{pre}{k}": v for k, v in more_compare_metrics(result["baselines"]).items()})
    out["finetune/O-LE-J/loss_drop"] = [
        float(np.mean(r["history"]["loss"][:10]) - np.mean(r["history"]["loss"][-10:]))
        for r in result["finetune"]["O-LE-J"]
    ]
    return out


# ---------------------------------------------------------------------------------------------------------------
# the explorer: one query's ranked results under each objective


def _label_text(labels, i: int, class_names: Sequence[str]) -> str:
    lab = np.asarray(labels)[i]
    if np.ndim(lab) == 0:
        return class_names[int(lab)]
    return ", ".join(class_names[j] for j in np.flatnonzero(lab))


def _draw_item(ax, image, text: str | None, frame: str, linewidth: float) -> None:
    """One cell of the grid: an image, or a text wrapped inside the axes; the frame coloured by relevance."""
    import textwrap

    if image is not None:
        ax.imshow(np.asarray(image), cmap="gray")
    else:
        ax.set_xlim(0, 1), ax.set_ylim(0, 1)
        body = "\n".join(textwrap.wrap(text or "", 14)[:7])
        ax.text(0.05, 0.95, body, fontsize=9, va="top", ha="left", family="monospace")
    ax.set_xticks([]), ax.set_yticks([])
    for sp in ax.spines.values():
        sp.set_visible(True), sp.set_edgecolor(frame), sp.set_linewidth(linewidth)


def ranked_by_objective(
    reprs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    labels,
    class_names: Sequence[str],
    *,
    query: int,
    direction: str,
    images: Sequence | None = None,
    texts: Sequence[str] | None = None,
    names: Mapping[str, str] | None = None,
    top: int = 5,
    colours: Mapping[str, str] | None = None,
):
    """One row per objective: a test query (an image for ``direction="i2t"``, a text for ``"t2i"``) and its
    ``top`` nearest items of the other modality by Euclidean distance in that objective's space, framed green when
    they share a label with the query, red otherwise; the row label gives the query's AP over the full list (Eq. 3).

    Args:
        reprs: objective → (test images (n, d), test texts (n, d)) in its common space.
        labels: (n,) ids or (n, c) multi-hot test labels (one per pair). class_names: c names.
        images: the n test images (else each item shows its label); texts: the n test documents (likewise).
        names: objective → the name shown. colours: ``{"relevant": ..., "irrelevant": ...}`` frame colours.
    Returns:
        the matplotlib Figure.
    """
    import textwrap

    import matplotlib.pyplot as plt

    if direction not in ("i2t", "t2i"):
        raise ValueError(f"direction: expected 'i2t' or 't2i', got {direction!r}")
    q, k = int(query), int(top)
    col = {"relevant": "#1e8e3e", "irrelevant": "#d93025", **(colours or {})}
    rel = hamming_relevance(np.asarray(labels)[q : q + 1], labels)[0]

    def item(modality: str, i: int):
        if modality == "image":
            return (images[i] if images is not None else None), (
                None if images is not None else _label_text(labels, i, class_names)
            )
        return None, (texts[i] if texts is not None else _label_text(labels, i, class_names))

    q_mod, db_mod = ("image", "text") if direction == "i2t" else ("text", "image")
    # ≈ 1000 px wide at the notebooks' 90 dpi, so that a page does not shrink its 9–10 pt labels
    fig, axes = plt.subplots(len(reprs), k + 1, figsize=(1.5 * (k + 1) + 1.6, 1.6 * len(reprs)), squeeze=False)
    for r, (key, (zi, zt)) in enumerate(reprs.items()):
        zq, zdb = (zi, zt) if direction == "i2t" else (zt, zi)
        d = cs.euclidean_distances(zq[q : q + 1], zdb)[0]
        order = np.argsort(d, kind="stable")[:k]
        ap = mean_average_precision(-d[None], rel[None])
        _draw_item(axes[r, 0], *item(q_mod, q), "#202124", 1.5)
        for j, i in enumerate(order):
            _draw_item(axes[r, j + 1], *item(db_mod, i), col["relevant" if rel[i] else "irrelevant"], 4)
        axes[r, 0].set_ylabel(
            "\n".join(textwrap.wrap((names or {}).get(key, key), 18)) + f"\nAP = {ap:.2f}",
            fontsize=10,
            rotation=0,
            ha="right",
            va="center",
            labelpad=8,
        )
    axes[0, 0].set_title(f"query ({q_mod})\n{_label_text(labels, q, class_names)}", fontsize=10, fontweight="bold")
    for j in range(k):
        axes[0, j + 1].set_title(f"#{j + 1} {db_mod}", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------------------
# exercises


def toy_pairs(seed: int = 0, n_classes: int = 10, n: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small synthetic image–text pairs for the exercises: ``(images (n, 20), texts (n, 30), labels (n,))``.

    Each modality is its class's random centre plus Gaussian noise; the texts are the cleaner modality (noise 0.5
    against 1.0), as the paper's premise has it.
    """
    rng = np.random.default_rng(seed)
    mi, mt = rng.normal(size=(n_classes, 20)), rng.normal(size=(n_classes, 30))
    y = rng.integers(0, n_classes, n)
    xi = mi[y] + rng.normal(size=(n, 20))
    xt = mt[y] + 0.5 * rng.normal(size=(n, 30))
    return xi.astype(np.float32), xt.astype(np.float32), y


def toy_latent_run(latent: int, seed: int = 0) -> dict[str, float]:
    """Train O/LE/J (Eq. 2) with latent size ``latent`` on :func:`toy_pairs` (400 training, 200 test pairs; 200
    iterations, hidden 64, one CPU thread: about a second) and return its test ``average`` mAP and pair ``consistency``."""
    import torch

    xi, xt, y = toy_pairs(seed)
    cfg = cs.CommonSpaceTrainConfig(hidden=64, latent=int(latent), iterations=200, batch_size=64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small runs fastest (and the same every time) on one thread
    try:
        model, _ = cs.train_common_space_model(xi[:400], xt[:400], y[:400], cfg, seed=seed, device="cpu")
        zi, zt = cs.represent(model, xi[400:], xt[400:])
    finally:
        torch.set_num_threads(threads)
    return {"average": cs.cross_modal_map(zi, zt, y[400:])["average"], "consistency": cs.pair_consistency(zi, zt)}


def class_modality_legend(ax, class_names: Sequence[str], cmap: str = "tab10") -> None:
    """A legend for a scatter of both modalities coloured by class: one colour patch per class (``cmap``'s colours,
    class i ↦ colour i) and the two markers (image ●, text ×), placed right of ``ax``."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colours = plt.get_cmap(cmap)
    n = len(class_names)
    handles = [
        Line2D([], [], ls="", marker="s", ms=8, color=colours(i / max(n - 1, 1)), label=name)
        for i, name in enumerate(class_names)
    ]
    handles += [
        Line2D([], [], ls="", marker="o", ms=6, color="#5f6368", label="image"),
        Line2D([], [], ls="", marker="x", ms=7, color="#5f6368", label="text"),
    ]
    ax.legend(handles=handles, fontsize=9, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)


# ---------------------------------------------------------------------------------------------------------------
# Table 3's baselines re-built, and thesis ch. 8's joint and generative common spaces

BASELINES = {"sm": "SM (semantic matching)", "tvcca": "T-V CCA (three-view)"}
"""Table 3's baselines re-built from their papers (:mod:`xmr_lib.chapters.ch10.baselines`): key → name shown."""

LATENT_SPACES = {
    "bilinear": "joint: bilinear (Eq. 8.1)",
    "autoencoder": "auto-encoder (unsupervised)",
    "cycle": "cycle-consistent (unsupervised)",
}
"""Thesis ch. 8's joint embedding and its two generative common spaces (:mod:`xmr_lib.chapters.ch10.latent_spaces`,
:mod:`xmr_lib.chapters.ch10.cycle_space`)."""

PAPER_TABLE3_ALL = pd.DataFrame(
    {
        "Wikipedia": [23.6, 38.0, 31.3, 34.7, 34.6, 37.6, 41.5, 44.6],
        "Pascal Sentence": [30.9, 44.6, 38.8, 45.2, 45.1, 46.2, 46.3, 49.5],
        "Pascal VOC 2007": [66.5, np.nan, 72.5, np.nan, np.nan, 80.0, np.nan, 82.3],
    },
    index=["CCA", "SM", "T-V CCA", "GMLDA", "GMMFA", "Deep-SM", "MDCR", "ours (O/LE/J)"],
)
"""Table 3 of the paper, average mAP (%) of every method (NaN: not applicable to multi-label VOC)."""


def _evaluated(zi, zt, labels, t0: float, model) -> dict[str, Any]:
    out: dict[str, Any] = cs.cross_modal_map(zi, zt, labels)
    out.update(consistency=cs.pair_consistency(zi, zt), seconds=time.time() - t0, model=model, test_repr=(zi, zt))
    return out


def table3_baselines(
    splits: Mapping[int, cs.CrossModalSplit], *, cca_components: int, progress=lambda x, **kw: x
) -> dict[str, list[dict]]:
    """SM and three-view CCA on every seed's split: key of :data:`BASELINES` → one result per seed
    (``{"i2t", "t2i", "average", "consistency", "seconds", "model", "test_repr"}``). SM needs one label per
    pair and is left out on a multi-label set (VOC 2007), as in Table 3. T-V CCA embeds in ``cca_components``
    dimensions, the size of the CCA row."""
    multi = np.ndim(next(iter(splits.values())).test_labels) != 1
    keys = [k for k in BASELINES if not (multi and k == "sm")]
    res = iter(run_jobs([(_baseline_run, k, splits[s], cca_components) for k in keys for s in splits]))
    return {k: [next(res) for _s in splits] for k in keys}


def _baseline_run(key: str, sp: cs.CrossModalSplit, cca_components: int) -> dict[str, Any]:
    """One Table 3 baseline (key of :data:`BASELINES`) fitted on a split's training pairs, evaluated on its test."""
    t0 = time.time()
    m = (bl.SemanticMatching() if key == "sm" else bl.ThreeViewCCA(cca_components)).fit(
        sp.train_image, sp.train_text, sp.train_labels
    )
    return _evaluated(*m.transform(sp.test_image, sp.test_text), sp.test_labels, t0, m)


def latent_spaces(
    splits: Mapping[int, cs.CrossModalSplit],
    config: lsp.LatentSpaceConfig,
    device: str = "cpu",
    progress=lambda x, **kw: x,
) -> dict[str, list[dict]]:
    """The bilinear joint embedding, the correspondence auto-encoder and the cycle-consistent space on every seed:
    key of :data:`LATENT_SPACES` → one result per seed (``{"i2t", "t2i", "average", "seconds", "model",
    "history"}``), as independent jobs (:func:`run_jobs`, the slower auto-encoder first). The cycle-consistent
    space takes ``config``'s hidden width, iterations, batch size and learning rate."""
    keys = sorted(LATENT_SPACES, key=lambda k: k != "autoencoder")
    jobs = [(_latent_run, k, splits[s], config, s, device) for k in keys for s in splits]
    res = iter(run_jobs(jobs, device))
    trained = {k: [next(res) for _s in splits] for k in keys}
    return {k: trained[k] for k in LATENT_SPACES}


def _latent_run(key: str, sp: cs.CrossModalSplit, config: lsp.LatentSpaceConfig, seed: int, device: str) -> dict:
    """One run of a :data:`LATENT_SPACES` method (the cycle-consistent space trains on the CPU)."""
    if key == "cycle":
        kw = dict(hidden=config.hidden, iterations=config.iterations, batch_size=config.batch_size, lr=config.lr)
        return cy.run_cycle_space(sp, seed, **kw)
    return lsp.run_latent_space(sp, replace(config, method=key), seed, device)


def more_compare_metrics(results: Mapping[str, Sequence[dict]]) -> dict[str, list]:
    """``compare/<key>/<i2t|t2i|average>`` per seed for the methods of :data:`BASELINES` / :data:`LATENT_SPACES`."""
    return {f"compare/{k}/{m}": [r[m] for r in rs] for k, rs in results.items() for m in ("i2t", "t2i", "average")}


def all_methods_table(*results: Mapping[str, Sequence[dict]]) -> pd.DataFrame:
    """Method × (i2t, t2i, average): mAP (%) "mean ± sd" over the seeds and seconds per run, for every result dict
    given (keys named by :data:`OBJECTIVES`, :data:`BASELINES`, :data:`LATENT_SPACES`)."""
    names = {**OBJECTIVES, **BASELINES, **LATENT_SPACES}
    rows = {}
    for res in results:
        for k, rs in res.items():
            row = {
                m: f"{100 * np.mean([r[m] for r in rs]):.1f} ± {100 * np.std([r[m] for r in rs]):.1f}"
                for m in ("i2t", "t2i", "average")
            }
            row["seconds / run"] = f"{np.mean([r['seconds'] for r in rs]):.1f}"
            rows[names.get(k, k)] = row
    return pd.DataFrame(rows).T
