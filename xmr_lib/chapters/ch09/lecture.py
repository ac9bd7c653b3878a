"""The steps of notebook 09 (cross-media pseudo-relevance feedback and MMR, Renders & Csurka, MediaEval 2017) that
are logic rather than display: the topic lists of each seed and their text features, the runs of one seed, the
numbers recorded from them, the tables shown, and the three rankings of one topic drawn by the explorer. The
methods themselves are in :mod:`xmr_lib.retrieval.rerank` and :mod:`xmr_lib.chapters.ch09.diversity`.

Shapes: ``Q`` topics, ``N`` documents per topic list, ``D`` feature dimensions; a pool holds every document once.
"""

from __future__ import annotations

import textwrap
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from xmr_lib.chapters.ch09 import diversity
from xmr_lib.core.cache import cached
from xmr_lib.data import easy_vqa
from xmr_lib.encoders import backbones as models
from xmr_lib.encoders import features as features_mod
from xmr_lib.retrieval import pooling, rerank

# ---------------------------------------------------------------------------------------------------------------
# the metrics, straight from their definitions


def p_cr_f1_loop(ranking, clusters, x: int) -> np.ndarray:
    """P@x, CR@x and F1@x of every topic, one topic at a time, from the definitions (a check of the batched
    :func:`diversity.diversity_metrics`).

    Args:
        ranking: (Q, N) document indices, best first; clusters: (Q, N) sub-topic cluster of every document, -1 for
            an irrelevant one.
    Returns:
        (Q, 3): P, CR, F1 per topic (F1 = 0 when P + CR = 0).
    """
    rows = []
    for r, c in zip(ranking, clusters):
        top = [c[i] for i in r[:x]]
        p = sum(t >= 0 for t in top) / x
        cr = len({t for t in top if t >= 0}) / len({t for t in c if t >= 0})
        rows.append((p, cr, 0.0 if p + cr == 0 else 2 * p * cr / (p + cr)))
    return np.array(rows)


# ---------------------------------------------------------------------------------------------------------------
# the collection


def shape_pool_size(per_combo: int) -> int:
    """How many images :func:`diversity.shape_pool` keeps with ``per_combo`` (without rendering them)."""
    _, colour, shape = easy_vqa.easy_vqa_shapes()
    combo = colour * len(easy_vqa.SHAPES) + shape
    return int(sum(min(int((combo == k).sum()), int(per_combo)) for k in np.unique(combo)))


def check_n_docs(n_docs: int, pool_size: int) -> None:
    """Raise a ValueError naming the largest ``n_docs`` when a topic list asks for more documents than the pool."""
    if n_docs > pool_size:
        raise ValueError(
            f"n_docs: {n_docs} documents per topic list, but the offline pool holds {pool_size} "
            f"images; pass n_docs={pool_size} or less (or a larger per_combo)"
        )


def mediaeval_lists(data_root, n_docs: int) -> diversity.TopicLists:
    """The MediaEval 2017 devset and testset topics (their first ``n_docs`` photos by Flickr rank) as one
    :class:`diversity.TopicLists`. Raises ValueError / FileNotFoundError naming what is missing."""
    return diversity.concat_lists(
        diversity.load_div2017(data_root, "devset", max_docs=n_docs),
        diversity.load_div2017(data_root, "testset", max_docs=n_docs),
    )


def list_text_features(lists: diversity.TopicLists, encoder: str) -> tuple[np.ndarray, np.ndarray]:
    """``(texts, queries)``: (pool size, D) features of the documents some list shows (zero rows for the others)
    and (Q, D) features of the topic titles, the encoder fitted on all texts (tf-idf)."""
    used = np.unique(lists.doc[lists.mask])  # only the pool documents that some list shows
    t_used = features_mod.text_features([lists.texts[i] for i in used], encoder=encoder, fit_texts=lists.texts)
    t = np.zeros((len(lists.texts), t_used.shape[1]), np.float32)
    t[used] = t_used
    qt = features_mod.text_features(lists.titles, encoder=encoder, fit_texts=lists.texts)
    return t, qt


class Collections:
    """The topic lists of each seed and their text features: ``collections(seed) -> (lists, texts, queries)``.

    Offline (``real_lists`` None) every seed draws new lists (:func:`diversity.make_shape_topics`) from ``pool``,
    or, with ``pools``, from its own pool ``pools(seed)`` (a new draw of the aspects: the verdicts then do not hang
    on one draw of the pool); with ``real_lists`` every seed gets them, their text features computed once.
    """

    def __init__(
        self,
        pool,
        real_lists,
        text_encoder: str,
        *,
        n_docs: int,
        n_topics: int,
        p_mention: float,
        p_wrong: float,
        pools: Callable[[int], diversity.ShapePool] | None = None,
        visual: Callable[..., dict] | None = None,
        pool_key: dict | None = None,
    ):
        self.pool, self.real_lists, self.text_encoder, self.pools = pool, real_lists, text_encoder, pools
        self.draw = dict(n_docs=n_docs, n_topics=n_topics, p_mention=p_mention, p_wrong=p_wrong)
        self._visual, self.pool_key = visual, dict(pool_key or {})
        self._real_text = None
        self._last_pool: tuple[int, Any] | None = None
        self._last_visual: tuple[int, Any] | None = None

    def visual(self, seed: int) -> dict[str, np.ndarray]:
        """``{name: (pool size, D)}`` the candidate visual features of seed ``seed``'s pool (``visual(pool=...,
        pool_key=...)`` or ``visual(real_lists=..., pool_key=...)``, e.g. :func:`pool_visual`; the last is kept)."""
        if self._visual is None:
            raise ValueError("visual: these collections were made without a visual= feature function")
        seed = 0 if self.real_lists is not None else seed  # the real photos are the same for every seed
        if self._last_visual is None or self._last_visual[0] != seed:
            if self.real_lists is not None:
                v = self._visual(real_lists=self.real_lists, pool_key=self.pool_key)
            else:
                key = {**self.pool_key, "pool_seed": seed} if self.pools is not None else self.pool_key
                v = self._visual(pool=self.pool_of(seed), pool_key=key)
            self._last_visual = (seed, v)
        return self._last_visual[1]

    def pool_of(self, seed: int):
        """The shape pool seed ``seed`` draws its lists from (the last one is kept)."""
        if self.pools is None:
            return self.pool
        if self._last_pool is None or self._last_pool[0] != seed:
            self._last_pool = (seed, self.pools(seed=seed))
        return self._last_pool[1]

    def __call__(self, seed: int):
        if self.real_lists is not None:
            if self._real_text is None:
                self._real_text = list_text_features(self.real_lists, self.text_encoder)
            return (self.real_lists, *self._real_text)
        lists = diversity.make_shape_topics(self.pool_of(seed), seed=seed, **self.draw)
        return (lists, *list_text_features(lists, self.text_encoder))


#: The visual features Eq. (1) can use (§4 compared AlexNet, Inception V3, Inception-ResNet and R-MAC, each by the
#: last fully connected layer before the classifier; we have AlexNet, R-MAC and two more trunks): name → (backbone,
#: pooling); ``fc7`` = AlexNet's second fully connected layer (the paper's layer), ``gap`` = global average pooling.
VISUAL_FEATURES = {
    "efficientnet_lite0": ("efficientnet_lite0", "gap"),
    "alexnet_fc7": ("alexnet", "fc7"),
    "resnet50": ("resnet50", "gap"),
    "vgg16_rmac": ("vgg16", "rmac"),
}


def _reduce(trunk, how: str):
    """The map → vector step of :func:`visual_features` (runs on the trunk's device, inside no-grad)."""
    import torch

    if how == "gap":
        return lambda m: m.mean(dim=(2, 3))
    if how == "rmac":
        return lambda m: pooling.rmac_pool(m)
    net = trunk.net  # AlexNet: last max-pool, adaptive average pool, then the classifier up to fc7's ReLU
    return lambda m: net.classifier[:-1](torch.flatten(net.avgpool(net.features[-1](m)), 1))


def visual_features(
    name: str,
    images=None,
    *,
    paths=None,
    size: int,
    device: str = "cpu",
    pretrained: bool = True,
    cache_key: dict | None = None,
    progress: bool = True,
) -> np.ndarray:
    """(M, D) visual features of a pool by :data:`VISUAL_FEATURES` name, centred by the pool mean, L2-normalised.

    ``efficientnet_lite0`` with ImageNet weights is :func:`xmr_lib.encoders.features.image_features` (the offline
    default); the others run the trunk of :func:`xmr_lib.encoders.backbones.backbone` (ImageNet statistics, ``size``
    px, centre square of a file) and pool its last maps globally (GAP) or regionally (R-MAC). ``pretrained=False``
    gives random weights (the ``tiny`` check of the full path); such features are never cached.
    """
    if name not in VISUAL_FEATURES:
        raise ValueError(f"visual feature: expected one of {sorted(VISUAL_FEATURES)}, got {name!r}")
    arch, pool_how = VISUAL_FEATURES[name]
    if arch == "efficientnet_lite0" and pretrained:
        return features_mod.image_features(
            images, paths=paths, size=size, device=device, cache_key=cache_key, progress=progress
        )
    if (images is None) == (paths is None):
        raise ValueError("give exactly one of images= (M, H, W, 3) uint8 or paths= (M image files)")

    def compute():
        trunk = models.backbone(arch, pretrained=pretrained, device=device)
        ims = (
            np.asarray(images)
            if images is not None
            else np.stack([models.resize_image(f, size, fit="square", interpolation="bicubic") for f in paths])
        )
        prep = lambda x: models.preprocess(x, size=size, mean=trunk.mean, std=trunk.std)  # noqa: E731
        return models.extract_feature_maps(
            trunk, ims, batch_size=64, device=device, reduce=_reduce(trunk, pool_how), transform=prep, progress=progress
        ).numpy()

    key = None if cache_key is None or not pretrained else {"what": f"ch09_{name}", "size": size, **cache_key}
    raw = cached(key, compute) if key is not None else compute()
    f = raw - raw.mean(0, keepdims=True)
    return (f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def pool_visual(
    names: Sequence[str],
    *,
    pool=None,
    pool_key: dict | None = None,
    real_lists=None,
    size: int,
    device: str = "cpu",
    pretrained: bool = True,
) -> dict[str, np.ndarray]:
    """``{name: (M, D)}`` the candidate visual features of a shape ``pool`` (images) or of ``real_lists``' photos
    (files), cached on disk under ``pool_key`` (pretrained weights only)."""
    if (pool is None) == (real_lists is None):
        raise ValueError("give exactly one of pool= (offline) or real_lists= (MediaEval 2017)")
    src = dict(images=pool.images) if pool is not None else dict(paths=real_lists.image_paths)
    return {
        n: visual_features(n, **src, size=size, device=device, pretrained=pretrained, cache_key=pool_key) for n in names
    }


def similarity_structure(lists: diversity.TopicLists, feats) -> pd.Series:
    """Mean cosine, within each list, between two relevant documents of the same cluster, two relevant documents of
    different clusters, and a relevant and an irrelevant document (``feats``: (pool size, D), unit rows)."""
    f = lists.gather(feats)
    sim = np.einsum("qnd,qmd->qnm", f, f)
    rel, cl = lists.relevant, lists.cluster
    both = rel[:, :, None] & rel[:, None, :]
    same = (cl[:, :, None] == cl[:, None, :]) & both
    off = ~np.eye(sim.shape[1], dtype=bool)[None]
    mixed = rel[:, :, None] ^ rel[:, None, :]
    return pd.Series(
        {
            "relevant, same cluster": sim[same & off].mean(),
            "relevant, other cluster": sim[both & ~same].mean(),
            "relevant vs irrelevant": sim[mixed].mean(),
        }
    ).round(3)


# ---------------------------------------------------------------------------------------------------------------
# the runs of one seed and what is recorded


def run_seed(
    lists,
    visual,
    texts,
    queries,
    *,
    k: int,
    alpha: float,
    betas: Sequence[float],
    joint_epochs: int,
    seed: int,
    device: str = "cpu",
    tune_ks: Sequence[int] = (),
    tune_alphas: Sequence[float] = (),
    cluster_views: bool = True,
    mmr_feature: str = "tuned",
):
    """Every run of Table 1 on one seed's lists, MMR's β tuned on the dev topics, and Eq. (1) with and without the
    recombination (α = 0) scored on the test topics (P@50 was the paper's tuning metric).

    Args:
        visual: (pool size, D) image features, or ``{name: (pool size, D)}`` candidate visual features (the first
            is used unless tuned); texts, queries: from :func:`list_text_features`.
        k, alpha: Eq. (1)'s K and α — unless ``tune_ks`` and ``tune_alphas`` are both given: then K, α and the
            visual feature are chosen by P@50 of RUN3 on the dev topics (:func:`diversity.tune_prf`, §4) and
            applied to every run.
        cluster_views: the clustering-based re-ranking on visual, textual and joint features (§1); else visual.
        mmr_feature: MMR's visual similarity (every run but the text-only ones): ``"tuned"`` = the feature Eq. (1)
            uses, or a name of ``visual`` (§4: R-MAC).
    Returns:
        ``(runs, info, table, sweep, extras)``: :func:`diversity.table1_runs`'s runs and info (``info["tuned"]``:
        the K, α and feature used), the :func:`diversity.evaluate_runs` table and β sweep (with a ``seed``
        column), and this seed's value of each extra metric.
    """
    cands = dict(visual) if isinstance(visual, dict) else {"visual": visual}
    if len(tune_ks) and len(tune_alphas):
        s_t0 = rerank.text_relevance(
            lists.titles, lists.texts, lists.doc, query_embeddings=queries, doc_embeddings=texts, mask=lists.mask
        )
        gathered = {n: lists.gather(v) for n, v in cands.items()}
        tuned, _ = diversity.tune_prf(lists, s_t0, gathered, tune_ks, tune_alphas)
    else:
        tuned = {"K": int(k), "alpha": float(alpha), "feature": next(iter(cands)), "score": float("nan")}
    k, alpha, V_pool = tuned["K"], tuned["alpha"], cands[tuned["feature"]]
    run_s, info_s = diversity.table1_runs(
        lists, V_pool, texts, queries, k=k, alpha=alpha, joint_epochs=joint_epochs, seed=seed, device=device
    )
    info_s["tuned"] = tuned
    V, T = lists.gather(V_pool), lists.gather(texts)
    if mmr_feature != "tuned":
        if mmr_feature not in cands:
            raise ValueError(f"mmr_feature: {mmr_feature!r} is not among the visual features {sorted(cands)}")
        V_mmr = lists.gather(cands[mmr_feature])
        for key, run in run_s.items():
            if key not in ("text", "run2"):
                run.diversity_features = V_mmr
    views = {"clusters": V}
    if cluster_views:
        views.update(clusters_text=T, clusters_joint=diversity.joint_features(V, T))
    table_s, sweep_s = diversity.evaluate_runs(lists, run_s, betas, seed=seed, cluster_features=views)
    test = lists.split == "test"
    s_t = run_s["text"].scores
    extras: dict[str, Any] = {"tune/K": k, "tune/alpha": alpha}
    for a_name, a in (("alpha", alpha), ("alpha0", 0.0)):
        sc = rerank.two_step_score(s_t, k, a, features=V, mask=lists.mask)
        order = rerank.ranking_from_scores(sc, lists.mask)
        extras[f"alpha/run3/P@50_{a_name}"] = float(
            diversity.diversity_metrics(order, lists.cluster, 50)["P"][test].mean()
        )
        extras[f"alpha/run3/F1@20_{a_name}"] = float(
            diversity.diversity_metrics(order, lists.cluster, 20)["F1"][test].mean()
        )
    extras["joint/pseudo_positive_precision"] = info_s.get("pseudo_positive_precision", np.nan)
    return run_s, info_s, table_s.assign(seed=seed), sweep_s.assign(seed=seed), extras


def table1_metrics(table: pd.DataFrame, metric_cols: Sequence[str]) -> dict[str, list]:
    """``table1/<run key>/<none|mmr>/<metric>``: the per-seed values of every row of the seeds' tables."""
    out = {}
    for (key, div), g in table.groupby(["key", "diversification"]):
        for m in metric_cols:
            out[f"table1/{key}/{div.lower()}/{m}"] = g.sort_values("seed")[m].tolist()
    return out


def mmr_gain_cost(table: pd.DataFrame, seeds: Sequence[int]) -> dict[str, list]:
    """Per seed, what MMR does to RUN3: the CR@20 it gains and the P@20 it costs."""
    rows = []
    for s in seeds:
        sub = table[(table.seed == s) & (table.key == "run3")].set_index("diversification")
        rows.append(
            {
                "CR_gain": sub.loc["MMR", "CR@20"] - sub.loc["none", "CR@20"],
                "P_cost": sub.loc["none", "P@20"] - sub.loc["MMR", "P@20"],
            }
        )
    return {"mmr/run3/CR_gain": [r["CR_gain"] for r in rows], "mmr/run3/P_cost": [r["P_cost"] for r in rows]}


def joint_gain(table: pd.DataFrame) -> dict[str, Any]:
    """RUN4 − RUN3 F1@20 with MMR, per seed and its mean (the joint embedding against Eq. (1))."""
    f1 = table[table.diversification == "MMR"].pivot(index="seed", columns="key", values="F1@20")
    return {
        "joint/run4_minus_run3_F1@20": (f1["run4"] - f1["run3"]).tolist(),
        "joint/run4_minus_run3_F1@20_mean": float((f1["run4"] - f1["run3"]).mean()),
    }


def beta_metrics(sweep: pd.DataFrame) -> dict[str, list]:
    """RUN3's trade-off along β on the test topics, per seed: P@20 at the smallest and largest β, CR@20 at the
    smallest β and its maximum over β."""
    g3 = sweep[(sweep.split == "report") & (sweep.key == "run3")]
    per_seed = g3.groupby("seed")
    return {
        "beta/run3/P@20_beta0": [float(g[g.beta == g.beta.min()]["P@20"].iloc[0]) for _, g in per_seed],
        "beta/run3/P@20_beta_max": [float(g[g.beta == g.beta.max()]["P@20"].iloc[0]) for _, g in per_seed],
        "beta/run3/CR@20_beta0": [float(g[g.beta == g.beta.min()]["CR@20"].iloc[0]) for _, g in per_seed],
        "beta/run3/CR@20_best": [float(g["CR@20"].max()) for _, g in per_seed],
    }


# ---------------------------------------------------------------------------------------------------------------
# tables


def mean_sd(df: pd.DataFrame, cols: Sequence[str], with_sd: bool = True) -> pd.DataFrame:
    """Per (run, key, diversification): "mean ± sd" over the seeds of each column (mean only without ``with_sd``)."""
    g = df.groupby(["run", "key", "diversification"], sort=False)[list(cols)]
    m, sd = g.mean(), g.std(ddof=0).fillna(0)
    return m.round(3).astype(str) + (" ± " + sd.round(3).astype(str) if with_sd else "")


def side_by_side(
    table: pd.DataFrame, metric_cols: Sequence[str], paper_table: dict, with_sd: bool = True
) -> pd.DataFrame:
    """Every run with MMR: ours in percent (mean ± sd over the seeds) beside the paper's Table 1, and the β chosen
    on the dev topics (one per seed)."""
    mmr = table[(table.diversification == "MMR") & table.key.str.startswith("run")]
    g = mmr.groupby("run", sort=False)[list(metric_cols)]
    m100, sd100 = 100 * g.mean(), 100 * g.std(ddof=0).fillna(0)
    paper = pd.DataFrame(paper_table).T
    cols = {}
    for c in metric_cols:
        cols[(c, "ours")] = m100[c].round(1).astype(str) + ("±" + sd100[c].round(1).astype(str) if with_sd else "")
        cols[(c, "paper")] = paper[c].reindex(m100.index)
    side = pd.DataFrame(cols)
    side[("MMR β*", "ours")] = g.size().index.map(
        lambda r: ", ".join(f"{b:g}" for b in sorted(set(mmr[mmr.run == r].beta)))
    )
    return side


def run3_metrics(lists: diversity.TopicLists, text_scores, visual, k: int, alpha: float) -> dict[str, float]:
    """RUN3 (Eq. (1) with K = ``k``, recombined with weight ``alpha``) without diversification, on the test topics:
    P@20, CR@20, P@50. ``text_scores``: (Q, N) first-step scores; ``visual``: (Q, N, D) gathered features."""
    test = lists.split == "test"
    sc = rerank.two_step_score(text_scores, k, alpha, features=visual, mask=lists.mask)
    r = rerank.ranking_from_scores(sc, lists.mask)
    m20 = diversity.diversity_metrics(r, lists.cluster, 20)
    return {
        "P@20": m20["P"][test].mean(),
        "CR@20": m20["CR"][test].mean(),
        "P@50": diversity.diversity_metrics(r, lists.cluster, 50)["P"][test].mean(),
    }


# ---------------------------------------------------------------------------------------------------------------
# the explorer's figure


def text_tile(text: str, size: int = 96) -> np.ndarray:
    """A white (size, size, 3) uint8 square with ``text`` written on it, to stand for a text query in a grid."""
    tile = Image.new("RGB", (size, size), "white")
    try:
        font = ImageFont.load_default(size=15)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    ImageDraw.Draw(tile).multiline_text((6, size // 3), "\n".join(textwrap.wrap(text, 10)), fill="black", font=font)
    return np.asarray(tile)


def topic_rows(
    lists: diversity.TopicLists,
    text_scores,
    visual,
    *,
    grid: Callable,
    topic: int,
    K: int,
    alpha: float,
    beta: float,
    top: int = 10,
):
    """Three rankings of one topic — the text score alone, RUN3 (Eq. (1) with ``K``, ``alpha``) and RUN3 re-ranked
    by MMR with penalty ``beta`` — as one row each of ``top`` photos, labelled with P@top and the clusters covered.

    Args:
        text_scores: (Q, N) first-step scores; visual: (Q, N, D) gathered image features.
        grid: ``grid(queries, rows, status, ax_size=...) -> Figure`` (``xmr_lib.course.viz.ranked_grids``).
    Returns:
        the matplotlib Figure.
    """
    q = int(topic)
    s_t, m, f = text_scores[q : q + 1], lists.mask[q : q + 1], visual[q : q + 1]
    sc = rerank.two_step_score(s_t, int(K), float(alpha), features=f, mask=m)
    orders = {
        "text S_T": rerank.ranking_from_scores(s_t, m)[0],
        f"RUN3\nK = {int(K)}, α = {alpha:.2f}": rerank.ranking_from_scores(sc, m)[0],
        f"RUN3 + MMR\nβ = {beta:.2f}": rerank.mmr_rerank(
            rerank.minmax_normalise(sc, m), float(beta), features=f, mask=m, n=top
        )[0],
    }
    n_cl = len(set(lists.cluster[q][lists.mask[q] & lists.relevant[q]]))
    images, status, labels = [], [], []
    for name, o in orders.items():
        o = o[:top]
        rel = lists.relevant[q, o]
        images.append([diversity.document_image(lists, lists.doc[q, i]) for i in o])
        status.append(["relevant" if r else "irrelevant" for r in rel])
        labels.append(f"{name}\nP@{top} = {rel.mean():.1f}\n{len(set(lists.cluster[q, o][rel]))} of {n_cl} clusters")
    # ≈ 1000 px wide at the notebooks' 90 dpi, so that a page does not shrink it: its 11 pt labels stay ≥ 9 pt
    fig = grid([text_tile("")] * len(orders), images, status, ax_size=1.0)
    for r in range(len(orders)):  # the query text, written at 9 pt (a bitmap tile would shrink with the axes)
        fig.axes[r * (top + 1)].text(
            0.5,
            0.5,
            "\n".join(textwrap.wrap(lists.titles[q], 10)),
            ha="center",
            va="center",
            fontsize=9,
            transform=fig.axes[r * (top + 1)].transAxes,
        )
    for r, lab in enumerate(labels):  # row labels: horizontal, 11 pt, left of each row
        fig.axes[r * (top + 1)].set_ylabel(lab, fontsize=11, rotation=0, ha="right", va="center", labelpad=8)
    for ax in fig.axes[: top + 1]:
        ax.title.set_fontsize(11)
    fig.suptitle(f"topic '{lists.titles[q]}' (first seed)", fontsize=12)
    fig.tight_layout()
    return fig
