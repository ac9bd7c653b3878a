"""The steps of notebook 08 (similarity-based classifier initialisation, Pascal, Bost & Huet, CBMI 2019) that are
logic rather than display: the offline target set, the per-seed train / validation / test split, the choice of K
(Fig. 3), the training curves (Fig. 1) and the data-reduction table (Table II), each returning the numbers the
notebook records and shows. The method itself (similarities, initialisation, fine-tuning) is in
:mod:`xmr_lib.chapters.ch08.transfer`.

Shapes: ``N`` target classes, ``M`` source classes, ``D`` feature dimensions, ``n`` images.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xmr_lib.chapters.ch08 import transfer
from xmr_lib.encoders import backbones

METHODS = ("random", "inference", "wordnet", "wordvec")
"""The four initialisations of Table II: Xavier and the three similarities (§III.A)."""


# ---------------------------------------------------------------------------------------------------------------
# targets and sizes


def source_synsets() -> list:
    """The M WordNet synsets of the source network's ImageNet classes, without loading the network."""
    return transfer.synsets_from_wnids([c.wnid for c in backbones.imagenet_classes()])


def offline_targets(
    source_synsets: Sequence, source_names: Sequence[str] | None = None
) -> tuple[list[transfer.TargetClass], pd.DataFrame, list[str]]:
    """Sort :data:`transfer.OFFLINE_TARGET_CANDIDATES` into the paper's types (§IV.B) against the M sources.

    Returns ``(targets, table, dropped)``: the candidates that are not ImageNet classes themselves (type
    ``"identical"`` is dropped: the paper's targets all lie outside the 1000), one row per candidate (class,
    dataset, synset, type and — when ``source_names`` is given — the source classes that decide its type), and the
    names of the dropped candidates.
    """
    candidates = list(transfer.OFFLINE_TARGET_CANDIDATES)
    types = transfer.target_types([transfer.synset(c.synset) for c in candidates], source_synsets)
    rows = []
    for c, t in zip(candidates, types):
        row = {"class": c.name, "dataset": c.dataset, "WordNet synset": c.synset, "type": t}
        if source_names is not None:
            rel = transfer.related_sources(transfer.synset(c.synset), source_synsets)
            row["because of source class(es)"] = "; ".join(source_names[j] for j in rel)
        rows.append(row)
    targets = [c for c, t in zip(candidates, types) if t != "identical"]
    dropped = [c.name for c, t in zip(candidates, types) if t == "identical"]
    return targets, pd.DataFrame(rows), dropped


def clamped_sizes(
    available: int, train_per_class: int, val_per_class: int, test_per_class: int, shots: Sequence[int]
) -> dict[str, Any]:
    """The sizes that fit classes of ``available`` images: ``{}`` when train + val + test fit, else a smaller
    ``train_per_class`` (val and test kept) and ``shots`` capped at it (sorted, largest first, duplicates merged).

    Raises:
        ValueError: val + test alone leave no training image.
    """
    if train_per_class + val_per_class + test_per_class <= available:
        return {}
    train = available - val_per_class - test_per_class
    if train < 1:
        raise ValueError(
            f"val_per_class + test_per_class = {val_per_class + test_per_class}: the offline classes "
            f"hold {available} images each at least; leave room for training images"
        )
    return {"train_per_class": train, "shots": sorted({min(s, train) for s in shots}, reverse=True)}


def offline_sizes(p: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`clamped_sizes` for the offline targets and the parameters ``p`` (``train_per_class``,
    ``val_per_class``, ``test_per_class``, ``shots``): what the full profile's fallback changes."""
    targets, _, _ = offline_targets(source_synsets())
    available = int(transfer.offline_class_counts(targets).min())
    return clamped_sizes(available, p["train_per_class"], p["val_per_class"], p["test_per_class"], p["shots"])


def check_offline_sizes(
    targets: Sequence[transfer.TargetClass], train_per_class: int, val_per_class: int, test_per_class: int
) -> None:
    """Raise a ValueError naming the largest ``train_per_class`` when the offline classes hold too few images."""
    available = int(transfer.offline_class_counts(targets).min())
    if train_per_class + val_per_class + test_per_class > available:
        raise ValueError(
            f"train_per_class + val_per_class + test_per_class = "
            f"{train_per_class + val_per_class + test_per_class}: the smallest offline class holds "
            f"{available} images; pass train_per_class={available - val_per_class - test_per_class} "
            "or less (and shots no larger)"
        )


# ---------------------------------------------------------------------------------------------------------------
# splits and similarities per seed


def split(
    labels, train_per_class: int, val_per_class: int, seed: int, test=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, val, test)`` image indices of one seed: ``train_per_class`` training images per class, then
    ``val_per_class`` validation images per class (to choose K) among the rest, the remaining images for testing.

    Args:
        labels: (n,) target class of every image.
        test: (n,) bool or None — the dataset's own test images (``pool.test``: the authors' ``test/`` folder,
            full profile). Given, the test indices are exactly those, and train / val are drawn (per seed) from the
            other images; None: the images are pooled and re-split as above.
    """
    if test is not None:
        test = np.asarray(test, bool)
        if test.shape != (len(labels),):
            raise ValueError(f"test: expected a bool mask of shape ({len(labels)},), got shape {test.shape}")
        own = np.flatnonzero(~test)
        tr, va, _ = split(np.asarray(labels)[own], train_per_class, val_per_class, seed)
        return own[tr], own[va], np.flatnonzero(test)
    tr, rest = transfer.split_per_class(labels, train_per_class, seed)
    va = rest[transfer.few_shot_indices(labels[rest], val_per_class, seed)]
    te = np.setdiff1d(rest, va)
    return tr, va, te


def seed_similarities(
    source_logits, labels, train_idx, n_targets: int, semantic: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The three (N, M) similarities of one seed: inference from the source network's (n, M) outputs on that seed's
    training images, then the seed-independent semantic ones (``{"wordnet": …, "wordvec": …}``)."""
    return {
        "inference": transfer.inference_similarity(source_logits[train_idx], labels[train_idx], n_targets),
        **semantic,
    }


def first_f(source_weight, source_bias, sim, k, features, labels, types: Sequence[str]) -> float:
    """Macro F-score over all targets of the images ``features`` (n, D) right after initialising the head from
    ``sim`` (N, M) with K = ``k`` (an int, or one K per target): the "First" of Table II."""
    w, b = transfer.similarity_init(source_weight, sim, k, source_bias)
    return transfer.group_fscores((features @ w.T + b).argmax(1), labels, len(types), types)["all"]


# ---------------------------------------------------------------------------------------------------------------
# Fig. 3: the number of neighbours K


def choose_k(
    source_weight,
    source_bias,
    sims: Mapping[int, Mapping[str, np.ndarray]],
    splits: Mapping[int, tuple],
    features,
    labels,
    types: Sequence[str],
    k_values: Sequence[int],
):
    """Sweep K on each seed's validation images and judge the K chosen per target type on its test images.

    Args:
        sims: seed → similarity name → (N, M); splits: seed → (train, val, test) indices.
    Returns:
        ``(sweeps, best_k, test_first, metrics)``: (seed, name) → K-sweep DataFrame (K × type, on validation);
        (seed, name) → (N,) chosen K; (seed, name) → (test F with K = 1, test F with the chosen K); and the
        metrics the claims read (per-seed lists).
    """
    sweeps, best_k, test_first = {}, {}, {}
    for s, sims_s in sims.items():
        _, va, te = splits[s]
        for name, S in sims_s.items():
            sweeps[s, name] = transfer.k_sweep(source_weight, source_bias, S, k_values, features[va], labels[va], types)
            best_k[s, name] = transfer.best_k_per_group(sweeps[s, name], types)
            test_first[s, name] = (
                first_f(source_weight, source_bias, S, 1, features[te], labels[te], types),
                first_f(source_weight, source_bias, S, best_k[s, name], features[te], labels[te], types),
            )
    seeds, names = list(sims), list(next(iter(sims.values())))
    metrics: dict[str, Any] = {}
    for name in names:
        k1 = [test_first[s, name][0] for s in seeds]
        kb = [test_first[s, name][1] for s in seeds]
        metrics.update(
            {
                f"ksweep/{name}/test_k1_seeds": k1,
                f"ksweep/{name}/test_bestk_seeds": kb,
                f"ksweep/{name}/test_gain_seeds": [b_ - a_ for a_, b_ in zip(k1, kb)],
            }
        )
    metrics["ksweep/semantic_max/test_gain_seeds"] = [
        max(test_first[s, n][1] - test_first[s, n][0] for n in ("wordnet", "wordvec")) for s in seeds
    ]
    return sweeps, best_k, test_first, metrics


def first_f_table(test_first: Mapping[tuple, tuple[float, float]]) -> pd.DataFrame:
    """Similarity × {"K = 1", "K chosen on validation"}: the test F at iteration 0, mean of the seeds."""
    seeds = list(dict.fromkeys(s for s, _ in test_first))
    names = list(dict.fromkeys(n for _, n in test_first))
    return pd.DataFrame(
        {
            name: {
                "K = 1": np.mean([test_first[s, name][0] for s in seeds]),
                "K chosen on validation": np.mean([test_first[s, name][1] for s in seeds]),
            }
            for name in names
        }
    ).T


def best_k_table(best_k: Mapping[tuple, np.ndarray], seed: int, types: Sequence[str]) -> pd.DataFrame:
    """Type × similarity: the K chosen on the validation images of ``seed``."""
    present = [t for t in transfer.TARGET_TYPES if t in set(types)]
    names = [n for s, n in best_k if s == seed]
    return pd.DataFrame({name: {t: int(best_k[seed, name][list(types).index(t)]) for t in present} for name in names})


# ---------------------------------------------------------------------------------------------------------------
# Fig. 1: training curves


def curve_settings(curve_k: int) -> tuple[str, str]:
    """The names of the two curve settings: K = ``curve_k`` for every target, and the K chosen per type."""
    return f"K = {curve_k}", "best K per type"


def training_curves(
    source_weight,
    source_bias,
    sims: Mapping[int, Mapping[str, np.ndarray]],
    splits: Mapping[int, tuple],
    features,
    labels,
    best_k: Mapping[tuple, np.ndarray],
    curve_k: int,
    **train_kw,
) -> dict[tuple[str, int], transfer.FineTuneHistory]:
    """Fine-tune the four heads of every seed in both :func:`curve_settings`, on the seed's training images,
    evaluated on its test images. Returns (setting, seed) → history (``train_kw``: :func:`transfer.fine_tune_heads`'s
    iterations, batch_size, lr, dropout, eval_every, device)."""
    fixed, tuned = curve_settings(curve_k)
    curves = {}
    for s, sims_s in sims.items():
        tr, _, te = splits[s]
        for setting, k in ((fixed, curve_k), (tuned, {n: best_k[s, n] for n in sims_s})):
            heads = transfer.initial_heads(source_weight, source_bias, sims_s, k, seed=s)
            curves[setting, s] = transfer.fine_tune_heads(
                heads, features[tr], labels[tr], features[te], labels[te], seed=s, **train_kw
            )
    return curves


def curve_metrics(curves: Mapping[tuple[str, int], transfer.FineTuneHistory]) -> tuple[dict[str, Any], pd.DataFrame]:
    """The numbers of the training curves: per setting (``k1`` = the first, ``tuned`` = the second) and head, the
    area under the test-F curve of every seed, and the weakest similarity init's iteration-0 F as a share of its
    run's best F (K = 1 setting). Returns ``(metrics, summary)``, summary = F at iteration 0, area, final F
    (means of the seeds) per (setting, head)."""
    settings = list(dict.fromkeys(st for st, _ in curves))
    seeds = list(dict.fromkeys(s for _, s in curves))
    first = curves[settings[0], seeds[0]]
    metrics: dict[str, Any] = {}
    summary = {}
    for setting, tag in zip(settings, ("k1", "tuned")):
        for r, n in enumerate(first.names):
            auc = [float(curves[setting, s].fscore[r].mean()) for s in seeds]
            metrics[f"curves/{tag}/auc/{n}_seeds"] = auc
            summary[setting, n] = [
                np.mean([curves[setting, s].fscore[r, 0] for s in seeds]),
                np.mean(auc),
                np.mean([curves[setting, s].fscore[r, -1] for s in seeds]),
            ]
    k1 = settings[0]
    metrics["curves/k1/first_over_best/min_seeds"] = [
        min(
            float(curves[k1, s].fscore[r, 0] / max(curves[k1, s].fscore[r].max(), 1e-12))
            for r, n in enumerate(first.names)
            if n != "random"
        )
        for s in seeds
    ]
    table = pd.DataFrame(summary, index=["iteration 0", "area under curve", f"iteration {first.iterations[-1]}"])
    return metrics, table


# ---------------------------------------------------------------------------------------------------------------
# Table II: fewer images per class


def reduction_metrics(reduction: pd.DataFrame, shots: Sequence[int]) -> dict[str, Any]:
    """The per-seed "first" / "best" F of every (shots, method) cell of the data-reduction study
    (:func:`transfer.data_reduction` rows of all seeds), the same at the most and fewest shots, and the spread of
    the four methods' Best F at the most shots."""
    metrics: dict[str, Any] = {}
    for (sh, m), g in reduction.groupby(["shots", "method"]):
        for w in ("first", "best"):
            metrics[f"reduction/{w}/{m}/shots{sh}_seeds"] = g.sort_values("seed")[w].tolist()
    hi, lo = max(shots), min(shots)
    for m in METHODS:
        for w in ("first", "best"):
            for tag, sh in (("max", hi), ("min", lo)):
                g = reduction[(reduction.shots == sh) & (reduction.method == m)].sort_values("seed")
                metrics[f"reduction/{w}/{m}/{tag}_shots_seeds"] = g[w].tolist()
    spread = reduction[reduction.shots == hi].groupby("seed")["best"].agg(lambda x: x.max() - x.min())
    metrics["reduction/best_spread_max_shots_seeds"] = spread.sort_index().tolist()
    return metrics


def reduction_tables(reduction: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ours and the paper's Table II side by side: shots (descending) × "<method> <first|best>"; ours is the mean
    of the seeds."""
    ours = reduction.groupby(["shots", "method"])[["first", "best"]].mean().unstack("method")
    cols = pd.MultiIndex.from_product([METHODS, ["first", "best"]]).swaplevel(0, 1)
    ours = ours.reindex(columns=cols).sort_index(ascending=False)
    ours.columns = [f"{m} {w}" for w, m in ours.columns]
    paper = pd.DataFrame(
        {
            f"{m} {w}": {s: transfer.PAPER_TABLE_II[(s, m, w)] for s in (100, 50, 25, 10, 5, 2, 1)}
            for m in METHODS
            for w in ("first", "best")
        }
    ).sort_index(ascending=False)
    return ours, paper


def best_gain_over_random(reduction: pd.DataFrame) -> pd.DataFrame:
    """Shots (descending) × similarity: Best(init) − Best(random), mean of the seeds."""
    gap = reduction.pivot_table(index=["seed", "shots"], columns="method", values="best")
    gap = gap[["inference", "wordnet", "wordvec"]].sub(gap["random"], axis=0).groupby("shots").mean()
    return gap.sort_index(ascending=False)


# ---------------------------------------------------------------------------------------------------------------
# the paper's experiment: ResNet-101, layer4 + fc fine-tuned (full profile; :mod:`xmr_lib.chapters.ch08.finetune`)

TINY = {"image_size": 32, "iterations": 3, "eval_every": 1, "train_per_class": 2, "val_per_class": 1}
"""What ``tiny=True`` changes in the fine-tuning of the ``full`` profile (besides random ResNet-101 weights): CI
runs the GPU user's path on a few fixture images per class in seconds."""


def finetune_settings(p: Mapping[str, Any], seeds: Sequence[int]) -> dict[str, Any]:
    """The keyword arguments of :func:`xmr_lib.chapters.ch08.finetune.paper_experiment` from the notebook's
    parameters ``p``: the profile's sizes and the paper's optimiser (§IV.A), or with ``p["tiny"]`` a randomly
    initialised ResNet-101 at :data:`TINY`'s sizes, one seed, two numbers of shots and K ∈ {1, 2}."""
    kw = {k: p[k] for k in ("image_size", "iterations", "eval_every", "train_per_class", "val_per_class")}
    kw.update(shots=list(p["shots"]), k_values=list(p["k_values"]), seeds=list(seeds), pretrained=True)
    if p["tiny"]:
        kw.update(TINY, shots=[2, 1], k_values=[1, 2], seeds=list(seeds)[:1], pretrained=False)
    return {**kw, "batch_size": p["batch_size"], "lr": p["lr"], "dropout": p["dropout"], "device": p["device"]}


# ---------------------------------------------------------------------------------------------------------------
# the explorer: a target's K source neighbours under each similarity


def neighbour_panels(
    source_weight,
    source_bias,
    sims: Mapping[str, np.ndarray],
    features,
    labels,
    target_names: Sequence[str],
    source_names: Sequence[str],
    *,
    target: int,
    K: int,
    colours: Mapping[str, str] | None = None,
):
    """One panel per similarity: the ``K`` source classes whose classifier rows are mixed into the new row of
    ``target`` (§III.B), each bar its mixing weight (the similarity renormalised over the K), and — in the title —
    the F-score at iteration 0 of that class and of all classes on ``features`` (no training).

    Args:
        source_weight, source_bias: (M, D), (M,) the source classifier.
        sims: name → (N, M) similarity. features: (n, D) evaluation images; labels: (n,) their target class.
        target_names, source_names: N and M names. target: the target class shown. K: the number of neighbours.
        colours: name → bar colour.
    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    i, k, n_targets = int(target), int(K), len(target_names)
    # ≈ 920 px wide at the notebooks' 90 dpi for three similarities, so that a page does not shrink its 9 pt labels
    fig, axes = plt.subplots(1, len(sims), figsize=(3.4 * len(sims), 1.3 + 0.3 * k), squeeze=False)
    for ax, (name, S) in zip(axes[0], sims.items()):
        coef = transfer.neighbour_coefficients(S, k)[i]
        idx, raw = transfer.top_neighbours(S[i : i + 1], k)
        w, b = transfer.similarity_init(source_weight, S, k, source_bias)
        f = transfer.per_class_fscore((features @ w.T + b).argmax(1), labels, n_targets)
        ax.barh(np.arange(k), coef[idx[0]], color=(colours or {}).get(name))
        ax.set_yticks(np.arange(k), [f"{source_names[j][:18]} ({s:.2f})" for j, s in zip(idx[0], raw[0])], fontsize=9)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("weight (sim / sum over the K)")
        ax.set_title(f"{name}\nF at iteration 0: {f[i]:.2f} (all: {f.mean():.2f})", fontsize=10)
    fig.suptitle(
        f"target '{target_names[i]}': its {k} nearest source classes (raw similarity in brackets)", fontsize=11
    )
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------------------
# exercises


def toy_targets(seed: int = 0, n_sources: int = 40, dim: int = 32, n_targets: int = 12, per_class: int = 30):
    """A small synthetic transfer problem for the exercises: ``(W, sim, x, y)``.

    ``W`` (M, D): unit source classifier rows. Target class i is a mixture 0.5 / 0.3 / 0.2 of three source classes
    (its "parents"; targets 2m and 2m+1 share their main parent, as the digits share WordNet neighbours); ``x``
    (N·per_class, D): its images' features, the mixture plus noise; ``y``: their classes. ``sim`` (N, M): 0.6 +
    the mixture weight for the parents, a random value in [0, 0.6) for every other source (a similarity is rarely
    zero: WordNet's Wu–Palmer, for one, is positive for any two nouns).
    """
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n_sources, dim))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    parents = np.stack([np.array([i // 2, 12 + 2 * i, 13 + 2 * i]) % n_sources for i in range(n_targets)])
    mix = np.array([0.5, 0.3, 0.2])
    y = np.repeat(np.arange(n_targets), per_class)
    x = np.einsum("k,nkd->nd", mix, W[parents])[y] + 0.35 * rng.normal(size=(len(y), dim)) / np.sqrt(dim)
    sim = 0.6 * rng.random((n_targets, n_sources))
    sim[np.arange(n_targets)[:, None], parents] = 0.6 + mix
    return W, sim, x, y
