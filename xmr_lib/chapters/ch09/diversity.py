"""The diverse social image retrieval task (MediaEval 2016-2017): topic lists, sub-topic clusters, metrics, data.

A *topic* is a text query with its own list of candidate documents (Flickr photos with a title/tags text and a
Flickr rank). Ground truth marks each document relevant or not and puts every relevant document in one sub-topic
*cluster* (dGT). Lists are stored padded in a :class:`TopicLists` — ``(Q, N)`` arrays indexing a pool of documents.

Metrics (:func:`diversity_metrics`), per query then averaged over queries, as the task's ``div_eval`` scorer and
TREC ``ndeval`` (v4.5) define them, with each relevant document in exactly one cluster:

- ``P@X`` = #relevant in the top X / X;
- ``CR@X`` (cluster recall) = #clusters represented by the relevant documents of the top X / #clusters of the
  query (every cluster with at least one relevant document; ndeval's ``strec@X``);
- ``F1@X`` = 2·P·CR / (P + CR) per query (then averaged — so the mean F1 is not the harmonic mean of mean P and
  mean CR);
- ``alpha-nDCG@X`` (Clarke et al. 2008): gain at rank r ``G_r = (1 − α)^{c_r}``, ``c_r`` = #documents of the same
  cluster ranked above r (0 for non-relevant documents), ``α-DCG@X = Σ_{r≤X} G_r / log2(r + 1)``, divided by the
  α-DCG of the ideal ranking (ndeval builds it greedily; with one cluster per document the greedy round-robin over
  clusters is optimal);
- ``ERR-IA@X`` (Chapelle et al. 2009): intent-aware ERR with uniform intent probabilities over the query's clusters
  and binary grades, ``Σ_s (1/S) Σ_r (1/r) R Π_{t<r, t∈s} (1 − R)``, R = 1/2, normalised by the ideal ranking —
  ndeval's ``nERR-IA@X`` (α = 0.5 makes it ``Σ_r G_r / r`` over the ideal's value).

Data:

- :func:`shape_pool` + :func:`make_shape_topics` — an offline collection built from easy-vqa's 5,000 shape images:
  topic = a (colour, shape) pair such as "red circle", sub-topics = ten photographic *aspects* (close-up, night,
  blurred, ...) rendered onto the images, Flickr-like noisy tags and a noisy "Flickr" ranking;
- :func:`table1_runs`, :func:`evaluate_runs` — the runs of the paper's Table 1 on a collection, diversified by MMR
  (β tuned on dev topics) or by clustering, and scored on test topics;
- :func:`load_div2017` — the MediaEval 2017 Retrieving Diverse Social Images data (devset / testset) under a data
  root, fetched by the user (``python -m data_scripts fetch mediaeval2017_div --root DIR``); :func:`concat_lists`,
  :func:`write_trec_run` (the task's run format, for the official ``div_eval.jar``);
- :func:`image_features` (EfficientNet-Lite0 through :mod:`xmr_lib.encoders.backbones`, cached on disk) and
  :func:`text_features` (MiniLM through :mod:`xmr_lib.encoders.text`, or tf-idf) of a document pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xmr_lib.data import registry as data
from xmr_lib.data.easy_vqa import COLOURS, SHAPES, _shape_mask, easy_vqa_shapes
from xmr_lib.encoders import backbones as models
from xmr_lib.retrieval import rerank as rr
from xmr_lib.retrieval.rerank import minmax_normalise

__all__ = [
    "diversity_metrics",
    "mean_metrics",
    "METRIC_NAMES",
    "TopicLists",
    "ShapePool",
    "ASPECTS",
    "render_aspect",
    "shape_pool",
    "make_shape_topics",
    "flickr_ranks",
    "tune_prf",
    "joint_features",
    "toy_lists",
    "load_div2017",
    "write_trec_run",
    "RUNS",
    "Run",
    "table1_runs",
    "beta_sweep",
    "evaluate_runs",
    "concat_lists",
    "document_image",
]

METRIC_NAMES = ("P", "CR", "F1", "ERR-IA", "alpha-nDCG")

# ---------------------------------------------------------------------------------------------------------------
# metrics


def _ideal_gains(clusters: np.ndarray, x: int, alpha: float) -> np.ndarray:
    """(Q, x) gains of the ideal ranking: the x largest of {(1 − α)^j : j < size of cluster s} over clusters s."""
    Q = clusters.shape[0]
    C = int(clusters.max()) + 1 if clusters.size and clusters.max() >= 0 else 0
    if C == 0:
        return np.zeros((Q, x))
    sizes = np.stack([(clusters == c).sum(1) for c in range(C)], 1)  # (Q, C)
    levels = np.arange(x)
    g = np.where(levels[None, None, :] < sizes[:, :, None], (1.0 - alpha) ** levels, 0.0)  # (Q, C, x)
    g = -np.sort(-g.reshape(Q, -1), axis=1)[:, :x]
    if g.shape[1] < x:
        g = np.pad(g, ((0, 0), (0, x - g.shape[1])))
    return g


def diversity_metrics(ranking, clusters, x: int = 20, *, alpha: float = 0.5, n_clusters=None) -> dict[str, np.ndarray]:
    """P@X, CR@X, F1@X, ERR-IA@X and α-nDCG@X of every query (definitions in the module docstring).

    Args:
        ranking: (Q, L) int, the positions (in each list) of the documents ranked 1..L; −1 = no document.
            L may be smaller than X (missing ranks count as non-relevant).
        clusters: (Q, N) int, the sub-topic of each document of each list, −1 for non-relevant documents and
            padding.
        x: the cut-off X. alpha: redundancy penalty of α-nDCG / ERR-IA (ndeval's default 0.5).
        n_clusters: (Q,) number of clusters per query for CR (default: distinct clusters in ``clusters``).
    Returns:
        ``{"P": (Q,), "CR": (Q,), "F1": (Q,), "ERR-IA": (Q,), "alpha-nDCG": (Q,)}`` float64 arrays.
    """
    r = np.asarray(ranking)
    c = np.asarray(clusters)
    if c.ndim != 2:
        raise ValueError(f"clusters: expected a 2-D array (n_queries, n_docs), got shape {c.shape}")
    if r.ndim != 2 or r.shape[0] != c.shape[0]:
        raise ValueError(f"ranking: expected shape ({c.shape[0]}, L) (one ranked list per query), got {r.shape}")
    if not np.issubdtype(r.dtype, np.integer) or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"ranking/clusters: expected integer arrays, got {r.dtype} and {c.dtype}")
    if r.size and r.max() >= c.shape[1]:
        raise ValueError(f"ranking: positions must be < {c.shape[1]} (list length), got max {r.max()}")
    if not isinstance(x, (int, np.integer)) or x < 1:
        raise ValueError(f"x: expected a positive cut-off, got {x!r}")
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha: expected 0 <= alpha < 1, got {alpha!r}")
    Q = c.shape[0]
    top = r[:, :x]
    if top.shape[1] < x:
        top = np.pad(top, ((0, 0), (0, x - top.shape[1])), constant_values=-1)
    lab = np.where(top >= 0, np.take_along_axis(c, np.clip(top, 0, None), 1), -1)  # (Q, x)
    rel = lab >= 0
    C = int(c.max()) + 1 if c.size and c.max() >= 0 else 1
    onehot = (lab[:, :, None] == np.arange(C)) & rel[:, :, None]  # (Q, x, C)
    if n_clusters is None:
        n_cl = np.stack([(c == k).any(1) for k in range(C)], 1).sum(1).astype(np.float64)
    else:
        n_cl = np.broadcast_to(np.asarray(n_clusters, dtype=np.float64), (Q,))
    prec = rel.sum(1) / x
    covered = onehot.any(1).sum(1)
    cr = np.where(n_cl > 0, covered / np.maximum(n_cl, 1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(prec + cr > 0, 2 * prec * cr / (prec + cr), 0.0)
    before = np.cumsum(onehot, 1) - onehot  # (Q, x, C) counts above
    prev = (before * onehot).sum(2)  # (Q, x)
    gain = np.where(rel, (1.0 - alpha) ** prev, 0.0)
    ranks = np.arange(1, x + 1, dtype=np.float64)
    disc = 1.0 / np.log2(ranks + 1.0)
    ideal = _ideal_gains(c, x, alpha)
    dcg, idcg = gain @ disc, ideal @ disc
    err, ierr = gain @ (1.0 / ranks), ideal @ (1.0 / ranks)
    with np.errstate(invalid="ignore", divide="ignore"):
        ndcg = np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0)
        nerr = np.where(ierr > 0, err / np.where(ierr > 0, ierr, 1.0), 0.0)
    return {"P": prec, "CR": cr, "F1": f1, "ERR-IA": nerr, "alpha-nDCG": ndcg}


def mean_metrics(
    ranking, clusters, x: int = 20, *, alpha: float = 0.5, queries=None, n_clusters=None, suffix: bool = True
) -> dict[str, float]:
    """Means over queries of :func:`diversity_metrics`, keyed ``"P@20"``, ``"CR@20"``, ... (``suffix=False``:
    ``"P"``, ``"CR"``, ...). ``queries``: a (Q,) bool mask or index array selecting the queries to average."""
    per = diversity_metrics(ranking, clusters, x, alpha=alpha, n_clusters=n_clusters)
    sel = slice(None) if queries is None else np.asarray(queries)
    return {(f"{k}@{x}" if suffix else k): float(np.mean(v[sel])) for k, v in per.items()}


# ---------------------------------------------------------------------------------------------------------------
# topic lists


@dataclass
class TopicLists:
    """Padded per-topic result lists over a pool of documents.

    Attributes:
        titles: Q query texts. doc: (Q, N) int, pool index of each listed document (−1 = padding).
        mask: (Q, N) bool, real documents. relevant: (Q, N) bool. cluster: (Q, N) int, sub-topic of each relevant
        document (−1 otherwise). flickr_rank: (Q, N) int, 1-based rank in the original (Flickr) list (0 = padding).
        texts: M pool texts. images: (M, H, W, 3) uint8 pool images, or None when ``image_paths`` is used.
        image_paths: M image files, or None. cluster_names: per query, names of its cluster ids.
        split: (Q,) str, e.g. "dev"/"test". topic_ids: Q identifiers. info: anything else.
    """

    titles: list[str]
    doc: np.ndarray
    mask: np.ndarray
    relevant: np.ndarray
    cluster: np.ndarray
    flickr_rank: np.ndarray
    texts: list[str]
    images: np.ndarray | None = None
    image_paths: list[str] | None = None
    cluster_names: list[dict[int, str]] = field(default_factory=list)
    split: np.ndarray | None = None
    topic_ids: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_queries(self) -> int:
        return len(self.titles)

    def gather(self, pool_features: np.ndarray) -> np.ndarray:
        """(M, D) pool features → (Q, N, D) list features (zeros on padding)."""
        f = np.asarray(pool_features)
        if f.ndim != 2 or f.shape[0] != len(self.texts):
            raise ValueError(
                f"pool_features: expected shape ({len(self.texts)}, D) (one row per pool document), got {f.shape}"
            )
        out = f[np.clip(self.doc, 0, None)]
        return np.where(self.mask[:, :, None], out, 0)

    def subset(self, queries) -> "TopicLists":
        """The lists of some queries (a bool mask or index array), same pool."""
        idx = np.flatnonzero(queries) if np.asarray(queries).dtype == bool else np.asarray(queries)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return TopicLists(
            [self.titles[i] for i in idx],
            self.doc[idx],
            self.mask[idx],
            self.relevant[idx],
            self.cluster[idx],
            self.flickr_rank[idx],
            self.texts,
            self.images,
            self.image_paths,
            [self.cluster_names[i] for i in idx] if self.cluster_names else [],
            pick(self.split),
            [self.topic_ids[i] for i in idx] if self.topic_ids else [],
            dict(self.info),
        )

    def summary(self):
        """A pandas DataFrame, one row per topic: list length, relevant share, number of clusters, split."""
        import pandas as pd

        rows = []
        for q in range(self.n_queries):
            cl = self.cluster[q][self.cluster[q] >= 0]
            rows.append(
                {
                    "topic": self.titles[q],
                    "split": None if self.split is None else self.split[q],
                    "documents": int(self.mask[q].sum()),
                    "relevant": int(self.relevant[q].sum()),
                    "clusters": int(len(np.unique(cl))),
                    "largest cluster share": float(np.bincount(cl).max() / max(len(cl), 1)) if len(cl) else 0.0,
                }
            )
        return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# offline collection: easy-vqa shapes, rendered aspects, Flickr-like tags

ASPECTS = (
    "plain",
    "close-up",
    "far away",
    "night",
    "blurred",
    "striped background",
    "group",
    "framed",
    "tilted",
    "foggy",
)
SYNONYMS = {
    "red": ("crimson", "scarlet"),
    "green": ("lime", "emerald"),
    "blue": ("azure", "navy"),
    "black": ("ebony", "jet"),
    "gray": ("grey", "silver"),
    "yellow": ("golden", "lemon"),
    "teal": ("turquoise", "cyan"),
    "brown": ("chestnut", "maroon"),
    "circle": ("round", "disc", "dot"),
    "rectangle": ("square", "box", "block"),
    "triangle": ("pyramid", "wedge", "delta"),
}
ASPECT_WORDS = {
    "plain": ("simple", "clean"),
    "close-up": ("closeup", "macro"),
    "far away": ("distant", "far"),
    "night": ("night", "dark"),
    "blurred": ("blurry", "bokeh"),
    "striped background": ("stripes", "lines"),
    "group": ("group", "many"),
    "framed": ("frame", "polaroid"),
    "tilted": ("tilted", "angle"),
    "foggy": ("fog", "haze"),
}
FILLER = (
    "photo",
    "art",
    "minimal",
    "geometry",
    "abstract",
    "design",
    "pattern",
    "nikon",
    "canon",
    "2017",
    "flickr",
    "graphic",
    "modern",
    "shape",
    "minimalism",
    "composition",
    "explore",
    "iphone",
    "colour",
    "wallpaper",
    "simple",
    "flat",
    "icon",
    "paint",
    "study",
)


def render_aspect(image: np.ndarray, aspect: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one easy-vqa image (H, W, 3) uint8 as seen under an aspect of :data:`ASPECTS` (same size, uint8).

    plain; close-up (crop around the shape, upscaled); far away (shrunk to 40 % at a random place); night
    (darkened, blue cast); blurred (Gaussian, σ = 3 px); striped background; group (four copies); framed (dark
    frame); tilted (rotated 25-40° with dark corners); foggy (55 % white haze).
    """
    from PIL import Image, ImageFilter

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image: expected an (H, W, 3) uint8 array, got shape {img.shape} dtype {img.dtype}")
    if not 0 <= int(aspect) < len(ASPECTS):
        raise ValueError(f"aspect: expected an index in [0, {len(ASPECTS)}), got {aspect!r}")
    H, W, _ = img.shape
    im = Image.fromarray(img)
    bg = tuple(int(v) for v in img[0, 0])
    name = ASPECTS[int(aspect)]
    if name == "plain":
        out = im
    elif name == "close-up":
        m = _shape_mask(img)
        ys, xs = np.nonzero(m) if m.any() else (np.array([0, H - 1]), np.array([0, W - 1]))
        cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
        r = max(ys.max() - ys.min(), xs.max() - xs.min()) / 2 * 1.15 + 2
        pad = Image.new("RGB", (3 * W, 3 * H), bg)
        pad.paste(im, (W, H))
        out = pad.crop((int(cx - r) + W, int(cy - r) + H, int(cx + r) + W, int(cy + r) + H)).resize(
            (W, H), Image.BILINEAR
        )
    elif name == "far away":
        s = max(int(W * 0.4), 4)
        out = Image.new("RGB", (W, H), bg)
        out.paste(im.resize((s, s), Image.BILINEAR), (int(rng.integers(0, W - s + 1)), int(rng.integers(0, H - s + 1))))
    elif name == "night":
        out = Image.fromarray(np.clip(img * 0.3 + np.array([0.0, 0.0, 25.0]), 0, 255).astype(np.uint8))
    elif name == "blurred":
        out = im.filter(ImageFilter.GaussianBlur(3))
    elif name == "striped background":
        yy, xx = np.mgrid[:H, :W]
        f, ang = rng.uniform(0.3, 0.6), rng.uniform(0, np.pi)
        stripes = (np.sin(f * (xx * np.cos(ang) + yy * np.sin(ang))) > 0)[..., None]
        shape = _shape_mask(img)[..., None]
        out = Image.fromarray(np.where(shape, img, np.where(stripes, img * 0.55, img)).astype(np.uint8))
    elif name == "group":
        s = W // 2
        small = im.resize((s, H // 2), Image.BILINEAR)
        out = Image.new("RGB", (W, H), bg)
        for u, v in ((0, 0), (s, 0), (0, H // 2), (s, H // 2)):
            out.paste(small, (u, v))
    elif name == "framed":
        b = max(W // 8, 1)
        out = Image.new("RGB", (W, H), (40, 30, 20))
        out.paste(im.resize((W - 2 * b, H - 2 * b), Image.BILINEAR), (b, b))
    elif name == "tilted":
        angle = float(rng.uniform(25, 40)) * float(rng.choice([-1, 1]))
        out = im.rotate(angle, resample=Image.BILINEAR, expand=False, fillcolor=(20, 20, 20))
    else:  # foggy
        out = Image.fromarray((img * 0.45 + 255 * 0.55).astype(np.uint8))
    return np.asarray(out.convert("RGB"), dtype=np.uint8)


@dataclass
class ShapePool:
    """The rendered image pool of the offline collection: images (M, H, W, 3) uint8 and their attributes."""

    images: np.ndarray
    colour: np.ndarray
    shape: np.ndarray
    aspect: np.ndarray
    source: np.ndarray  # index into easy-vqa's 5,000 images (train then test)

    def __len__(self) -> int:
        return len(self.images)


def shape_pool(per_combo: int | None = None, *, seed: int = 0, progress: bool = True) -> ShapePool:
    """Build the rendered image pool: easy-vqa images, each drawn under one random aspect of :data:`ASPECTS`.

    Args:
        per_combo: keep at most this many images per (colour, shape) pair (~208 exist; None = all 5,000).
        seed: chooses the images kept and the aspect of each (keep it fixed so cached features stay valid; vary
            the topic lists with :func:`make_shape_topics`' own seed).
    Returns:
        :class:`ShapePool` with 64×64 images.
    """
    from tqdm.auto import tqdm

    images, colour, shape = easy_vqa_shapes()
    rng = np.random.default_rng(seed)
    keep = np.arange(len(images))
    if per_combo is not None:
        if per_combo < 1:
            raise ValueError(f"per_combo: expected a positive number of images per (colour, shape), got {per_combo}")
        combo = colour * len(SHAPES) + shape
        keep = np.sort(
            np.concatenate([rng.permutation(np.flatnonzero(combo == k))[:per_combo] for k in np.unique(combo)])
        )
    aspect = rng.integers(0, len(ASPECTS), len(keep))
    rendered = np.stack(
        [
            render_aspect(images[i], a, rng)
            for i, a in tqdm(
                zip(keep, aspect), total=len(keep), desc="rendering aspects", disable=not progress, leave=False
            )
        ]
    )
    return ShapePool(rendered, colour[keep], shape[keep], aspect, keep)


def _tags(
    colour: int,
    shape: int,
    aspect: int,
    rng: np.random.Generator,
    p_mention: float,
    p_synonym: float,
    p_wrong: float,
    p_aspect_word: float,
) -> list[str]:
    words = []
    for attr, names in ((COLOURS[colour], COLOURS), (SHAPES[shape], SHAPES)):
        if rng.random() < p_mention:
            words.append(str(rng.choice(SYNONYMS[attr])) if rng.random() < p_synonym else attr)
        if rng.random() < p_wrong:
            words.append(str(rng.choice([n for n in names if n != attr])))
    if rng.random() < p_aspect_word:
        words.append(str(rng.choice(ASPECT_WORDS[ASPECTS[aspect]])))
    words += [str(w) for w in rng.choice(FILLER, size=int(rng.integers(1, 5)), replace=False)]
    rng.shuffle(words)
    return words


def flickr_ranks(match, rng: np.random.Generator, *, noise: float = 1.0) -> np.ndarray:
    """The offline "Flickr" rank of one list: 1-based ranks sorting ``0.5 · match + N(0, noise²)``, best first.

    ``match``: (N,) how many query words each document's tags contain. Only the text match and the noise enter —
    no relevance, no cluster — so the base ranking RUN1 starts from is as informative as the tags, no more.
    """
    match = np.asarray(match, dtype=np.float64)
    if match.ndim != 1:
        raise ValueError(f"match: expected a 1-D array (one count per document), got shape {match.shape}")
    if not float(noise) >= 0:
        raise ValueError(f"noise: expected a standard deviation >= 0, got {noise!r}")
    latent = 0.5 * match + float(noise) * rng.standard_normal(len(match))
    ranks = np.empty(len(match), dtype=np.int64)
    ranks[np.argsort(-latent, kind="stable")] = np.arange(1, len(match) + 1)
    return ranks


def make_shape_topics(
    pool: ShapePool,
    *,
    n_docs: int = 150,
    relevant_fraction: tuple[float, float] = (0.35, 0.6),
    zipf: float = 1.0,
    p_mention: float = 0.5,
    p_synonym: float = 0.3,
    p_wrong: float = 0.2,
    p_aspect_word: float = 0.3,
    retrieval_bias: float = 2.0,
    flickr_noise: float = 1.0,
    n_topics: int | None = None,
    dev_fraction: float = 0.5,
    seed: int = 0,
) -> TopicLists:
    """Flickr-like topic lists over a :class:`ShapePool`: text alone is noisy, pictures carry the relevance.

    Every pool image gets Flickr-like tags: its colour and its shape are each named with probability
    ``p_mention`` (a synonym — "crimson", "disc" — with probability ``p_synonym``), a *wrong* colour and a wrong
    shape are added with probability ``p_wrong`` each, an aspect word with ``p_aspect_word``, plus 1-4 filler
    tags ("nikon", "minimal", ...). A topic is a (colour, shape) pair, its title e.g. "red circle". Its list of
    ``n_docs`` documents is what a keyword search might return: a relevant share drawn from
    ``relevant_fraction``, relevant documents drawn with Zipf(``zipf``)-skewed aspect proportions (the sub-topic
    clusters are the aspects), irrelevant ones preferring photos that share the colour or the shape, and both
    favouring photos whose tags contain the query words (weight ``1 + retrieval_bias · #matched words``). The
    "Flickr" rank is a noisy text match, :func:`flickr_ranks`: it sorts ``0.5 · #query words in the tags +
    N(0, flickr_noise²)`` and never reads the ground truth, so it carries relevance only as far as the tags do.

    Returns:
        :class:`TopicLists` over the pool (texts = the tags), topics split into "dev" / "test".
    """
    for name, v in (
        ("p_mention", p_mention),
        ("p_synonym", p_synonym),
        ("p_wrong", p_wrong),
        ("p_aspect_word", p_aspect_word),
        ("dev_fraction", dev_fraction),
    ):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name}: expected a probability in [0, 1], got {v!r}")
    lo, hi = relevant_fraction
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"relevant_fraction: expected 0 < low <= high <= 1, got {relevant_fraction!r}")
    if n_docs < 2 or n_docs > len(pool):
        raise ValueError(f"n_docs: expected 2 <= n_docs <= {len(pool)} (pool size), got {n_docs}")
    rng = np.random.default_rng(seed)
    M = len(pool)
    tags = [
        _tags(c, s, a, rng, p_mention, p_synonym, p_wrong, p_aspect_word)
        for c, s, a in zip(pool.colour, pool.shape, pool.aspect)
    ]
    texts = [" ".join(t) for t in tags]
    has = {w: np.array([w in t for t in tags]) for w in COLOURS + SHAPES}
    combos = [
        (c, s)
        for c in range(len(COLOURS))
        for s in range(len(SHAPES))
        if np.any((pool.colour == c) & (pool.shape == s))
    ]
    if n_topics is not None:
        if not 1 <= n_topics <= len(combos):
            raise ValueError(f"n_topics: expected 1..{len(combos)}, got {n_topics}")
        combos = [combos[i] for i in np.sort(rng.choice(len(combos), n_topics, replace=False))]
    Q = len(combos)
    doc = np.empty((Q, n_docs), dtype=np.int64)
    relevant = np.zeros((Q, n_docs), dtype=bool)
    cluster = np.full((Q, n_docs), -1, dtype=np.int64)
    flickr_rank = np.zeros((Q, n_docs), dtype=np.int64)
    titles = []
    for q, (c, s) in enumerate(combos):
        titles.append(f"{COLOURS[c]} {SHAPES[s]}")
        match = has[COLOURS[c]].astype(float) + has[SHAPES[s]]
        is_rel = (pool.colour == c) & (pool.shape == s)
        n_rel = min(int(round(rng.uniform(lo, hi) * n_docs)), int(is_rel.sum()), n_docs - 1)
        aspect_w = np.empty(len(ASPECTS))
        aspect_w[rng.permutation(len(ASPECTS))] = 1.0 / np.arange(1, len(ASPECTS) + 1) ** zipf
        w_rel = np.where(is_rel, aspect_w[pool.aspect] * (1 + retrieval_bias * match), 0.0)
        rel_docs = rng.choice(M, n_rel, replace=False, p=w_rel / w_rel.sum())
        share = (pool.colour == c).astype(float) + (pool.shape == s)
        w_irr = np.where(is_rel, 0.0, (1 + retrieval_bias * match) * (1 + share))
        n_irr = min(n_docs - n_rel, int((w_irr > 0).sum()))
        irr_docs = rng.choice(M, n_irr, replace=False, p=w_irr / w_irr.sum())
        ids = rng.permutation(np.concatenate([rel_docs, irr_docs]))
        if len(ids) < n_docs:
            raise ValueError(f"n_docs: the pool is too small for lists of {n_docs} documents")
        doc[q] = ids
        relevant[q] = is_rel[ids]
        cluster[q] = np.where(relevant[q], pool.aspect[ids], -1)
        flickr_rank[q] = flickr_ranks(match[ids], rng, noise=flickr_noise)
    n_dev = int(round(dev_fraction * Q))
    split = np.array(["test"] * Q, dtype=object)
    split[rng.permutation(Q)[:n_dev]] = "dev"
    return TopicLists(
        titles,
        doc,
        np.ones((Q, n_docs), dtype=bool),
        relevant,
        cluster,
        flickr_rank,
        texts,
        images=pool.images,
        cluster_names=[dict(enumerate(ASPECTS)) for _ in range(Q)],
        split=split,
        topic_ids=[t.replace(" ", "_") for t in titles],
        info={"source": "easy-vqa shapes with rendered aspects", "seed": seed},
    )


# ---------------------------------------------------------------------------------------------------------------
# MediaEval 2017 (Div150-family layout)

FETCH_HINT = data.DIV2017_FETCH_HINT


def toy_lists(
    n_queries: int = 30,
    n_docs: int = 40,
    n_clusters: int = 5,
    *,
    dim: int = 16,
    p_relevant: float = 0.5,
    noise: float = 0.6,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small synthetic batch of topic lists for exercises and tests (no images, seconds to make).

    Each list has ``n_docs`` documents, relevant with probability ``p_relevant``; a relevant document belongs to one
    of ``n_clusters`` sub-topic clusters drawn with Zipf-skewed proportions (cluster 0 dominates, as one look does on
    Flickr). Features: the cluster's centre plus noise (relevant), a random direction (irrelevant), L2-normalised.
    Relevance: 1 for a relevant document, +0.3 for the dominant cluster, plus Gaussian ``noise``, min-max normalised.

    Returns:
        relevance ``(Q, N)`` in [0, 1], features ``(Q, N, dim)`` (unit rows), clusters ``(Q, N)`` int
        (−1 = irrelevant).
    """
    for name, v in (("n_queries", n_queries), ("n_docs", n_docs), ("n_clusters", n_clusters), ("dim", dim)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    if not 0.0 < float(p_relevant) <= 1.0:
        raise ValueError(f"p_relevant: expected a probability in (0, 1], got {p_relevant!r}")
    if not float(noise) >= 0:
        raise ValueError(f"noise: expected a standard deviation >= 0, got {noise!r}")

    rng = np.random.default_rng(seed)
    Q, N, C = int(n_queries), int(n_docs), int(n_clusters)
    centres = rng.normal(size=(Q, C + 1, dim))
    p = 1.0 / np.arange(1, C + 1) ** 1.5
    p /= p.sum()
    rel = rng.random((Q, N)) < p_relevant
    cl = np.where(rel, np.array([rng.choice(C, N, p=p) for _ in range(Q)]), -1)
    f = np.take_along_axis(centres, np.where(cl >= 0, cl, C)[:, :, None], 1) + 0.35 * rng.normal(size=(Q, N, dim))
    f[~rel] = rng.normal(size=(int((~rel).sum()), dim))
    f /= np.linalg.norm(f, axis=2, keepdims=True)
    score = rel * 1.0 + 0.3 * (cl == 0) + float(noise) * rng.normal(size=(Q, N))
    return minmax_normalise(score), f, cl


def load_div2017(root, split: str = "devset", *, max_docs: int | None = None) -> TopicLists:
    """Load the MediaEval 2017 Retrieving Diverse Social Images data of one split as padded :class:`TopicLists`.

    The files (layout, ground truth, which photos are kept) are read by :func:`xmr_lib.data.registry.read_div2017`.

    Args:
        root: the data root (e.g. what ``data_root`` points to). split: "devset" or "testset".
        max_docs: keep the first ``max_docs`` photos of each topic by Flickr rank (the task ranks up to 300).
    Raises:
        ValueError naming the fetch command when the data are absent.
    """
    raw = data.read_div2017(root, split, max_docs=max_docs)
    Q, N = len(raw.titles), max(len(x) for x in raw.lists)

    def pad(arrs, fill, dtype):
        out = np.full((Q, N), fill, dtype=dtype)
        for q, a in enumerate(arrs):
            out[q, : len(a)] = a
        return out

    doc = pad(raw.lists, -1, np.int64)
    cluster = pad(raw.cluster, -1, np.int64)
    cluster = np.where(cluster < -1, -1, cluster)
    rank = [np.arange(1, len(x) + 1) for x in raw.lists]
    return TopicLists(
        raw.titles,
        doc,
        doc >= 0,
        pad(raw.relevant, False, bool),
        cluster,
        pad(rank, 0, np.int64),
        raw.texts,
        images=None,
        image_paths=raw.image_paths,
        cluster_names=[{} for _ in raw.titles],
        split=np.array([{"devset": "dev", "testset": "test"}.get(split, split)] * Q, dtype=object),
        topic_ids=raw.topic_ids,
        info={"source": f"MediaEval 2017 diverse social images, {split}", "root": str(raw.folder)},
    )


def write_trec_run(
    path, lists: TopicLists, ranking: np.ndarray, scores: np.ndarray | None = None, run_id: str = "xmr", depth: int = 50
) -> Path:
    """Write a run in the task's TREC format ``qid iter docno rank sim run_id`` (rank 0 = best; ≤ ``depth``).

    ``docno`` is the pool text index unless the lists carry photo paths (then the photo id = the file stem), so
    the file can be scored with the official ``div_eval.jar``.
    """
    path = Path(path)
    ranking = np.asarray(ranking)
    lines = []
    for q in range(lists.n_queries):
        r = [int(i) for i in ranking[q] if i >= 0 and lists.mask[q, i]][:depth]
        for pos, i in enumerate(r):
            d = int(lists.doc[q, i])
            docno = Path(lists.image_paths[d]).stem if lists.image_paths else str(d)
            sim = float(scores[q, i]) if scores is not None else float(depth - pos)
            qid = lists.topic_ids[q] if lists.topic_ids else str(q)
            lines.append(f"{qid} 0 {docno} {pos} {sim:.6f} {run_id}")
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------------------
# the runs of the paper's Table 1, and their evaluation

RUNS = {
    "flickr": "Flickr order",
    "text": "text S_T",
    "run1": "RUN1 (V)",
    "run2": "RUN2 (T)",
    "run3": "RUN3 (VT)",
    "run4": "RUN4 (VT, joint)",
    "run5": "RUN5* (ours: ½ RUN4 + ½ RUN3)",
}


@dataclass
class Run:
    """One run: relevance ``scores`` (Q, N) and the features (Q, N, D) MMR uses as document similarity."""

    name: str
    scores: np.ndarray
    diversity_features: np.ndarray


def table1_runs(
    lists: TopicLists,
    visual,
    text,
    query_text,
    *,
    k: int = 25,
    alpha: float = 0.15,
    lm_weight: float = 0.5,
    mu: float = 10.0,
    joint_epochs: int = 15,
    joint_dim: int = 128,
    joint_hidden: int = 512,
    triplets_per_epoch: int = 4096,
    run5_weight: float = 0.5,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> tuple[dict[str, Run], dict[str, Any]]:
    """Score every list with the runs of Table 1 (before diversification).

    - ``flickr``: the given (Flickr) order; ``text``: S_T alone (:func:`xmr_lib.retrieval.rerank.text_relevance`);
    - ``run1``: S̃_{F,V} — Eq. (1) with the Flickr score (n − r)/r first and visual similarity second;
    - ``run2``: S̃_{T,T} — text first, text-embedding similarity second (classical PRF);
    - ``run3``: S̃_{T,V} — text first, visual second (cross-media);
    - ``run4``: joint embedding trained on RUN3's pseudo-relevance labels, centroid ranking;
    - ``run5``: **ours, not the paper's** (the paper lists a RUN5 in Table 1 but never defines it): RUN4's score
      (min-max normalised) mixed with RUN3's, weight ``run5_weight`` on RUN4.

    Args:
        lists: the topics. visual: (M, Dv) and text: (M, Dt) L2-normalised pool features; query_text: (Q, Dt).
        k, alpha: Eq. (1)'s K and the recombination weight α (paper: 25 and 0.15). lm_weight, mu: S_T's mixture.
    Returns:
        ``(runs, info)``: ``{key: Run}`` with MMR similarity = visual features for every run but ``run2`` and
        ``text`` (text features, to stay text-only, as in the paper); ``info`` holds the joint model's loss
        history and the precision of the pseudo-labels.
    """

    V, T = lists.gather(visual), lists.gather(text)
    qt = np.asarray(query_text, dtype=np.float64)
    m = lists.mask
    s_t = rr.text_relevance(
        lists.titles,
        lists.texts,
        lists.doc,
        query_embeddings=qt,
        doc_embeddings=text,
        lm_weight=lm_weight,
        mu=mu,
        mask=m,
    )
    s_f = rr.flickr_score(lists.flickr_rank)
    runs = {
        "flickr": Run(RUNS["flickr"], np.where(m, -lists.flickr_rank.astype(np.float64), -np.inf), V),
        "text": Run(RUNS["text"], s_t, T),
        "run1": Run(RUNS["run1"], rr.two_step_score(s_f, k, alpha, features=V, mask=m), V),
        "run2": Run(RUNS["run2"], rr.two_step_score(s_t, k, alpha, features=T, mask=m), T),
        "run3": Run(RUNS["run3"], rr.two_step_score(s_t, k, alpha, features=V, mask=m), V),
    }
    info: dict[str, Any] = {}
    if joint_epochs > 0:
        labels = rr.pseudo_relevance_labels(runs["run3"].scores, m)
        model, hist = rr.train_joint_embedding(
            V,
            T,
            labels,
            mask=m,
            hidden=joint_hidden,
            dim=joint_dim,
            epochs=joint_epochs,
            triplets_per_epoch=triplets_per_epoch,
            seed=seed,
            device=device,
            progress=progress,
        )
        s4 = rr.centroid_scores(model, V, T, qt, mask=m)
        s4n = rr.minmax_normalise(np.where(m, s4, 0.0), m)
        runs["run4"] = Run(RUNS["run4"], s4n, V)
        runs["run5"] = Run(RUNS["run5"], np.where(m, run5_weight * s4n + (1 - run5_weight) * runs["run3"].scores, 0), V)
        pos, neg = labels == 1, labels == -1
        info.update(
            joint_loss=hist,
            model=model,
            pseudo_positive_precision=float(lists.relevant[pos].mean()) if pos.any() else 0.0,
            pseudo_negative_precision=float(lists.relevant[neg].mean()) if neg.any() else 0.0,
            pseudo_positives=int(pos.sum()),
            pseudo_negatives=int(neg.sum()),
        )
    return runs, info


def _split_mask(lists: TopicLists, split) -> np.ndarray:
    if split is None:
        return np.ones(lists.n_queries, dtype=bool)
    if lists.split is None:
        raise ValueError(f"split: the lists carry no dev/test split, cannot select {split!r}")
    sel = np.isin(lists.split, [split] if isinstance(split, str) else list(split))
    if not sel.any():
        raise ValueError(f"split: no topic in split {split!r}; splits present: {sorted(set(lists.split))}")
    return sel


def beta_sweep(
    lists: TopicLists, run: Run, betas: Sequence[float], *, x: int = 20, n_mmr: int = 50, alpha_ndcg: float = 0.5
) -> dict[float, dict[str, np.ndarray]]:
    """Per-query metrics of ``run`` re-ranked by MMR for every β (relevance = the min-max normalised scores)."""

    rel = rr.minmax_normalise(np.where(lists.mask, run.scores, 0.0), lists.mask)
    f = run.diversity_features
    sim = np.einsum("qnd,qmd->qnm", f, f) if f.shape[1] <= 1000 else None  # shared by every β
    out = {}
    for b in betas:
        order = rr.mmr_rerank(
            rel,
            float(b),
            features=None if sim is not None else f,
            similarity=sim,
            n=min(n_mmr, rel.shape[1]),
            mask=lists.mask,
        )
        out[float(b)] = diversity_metrics(order, lists.cluster, x, alpha=alpha_ndcg)
    return out


def evaluate_runs(
    lists: TopicLists,
    runs: dict[str, Run],
    betas: Sequence[float],
    *,
    x: int = 20,
    n_mmr: int = 50,
    tune_on="dev",
    report_on="test",
    tune_metric: str = "F1",
    cluster_run: str | None = "run3",
    cluster_ks: Sequence[int] = (5, 10, 15),
    cluster_depth: int = 50,
    cluster_features: dict[str, np.ndarray] | None = None,
    seed: int = 0,
):
    """Table 1 for a collection: every run without diversification, with MMR (β tuned on ``tune_on`` topics by
    mean ``tune_metric``@x, reported on ``report_on``), and ``cluster_run`` with the clustering-based method.

    ``cluster_features``: ``{diversification name: (Q, N, D) features}``, one clustering-based row each (k-means
    at every k of ``cluster_ks`` on those features, §1: visual, textual and joint); default
    ``{"clusters": <cluster_run's own diversity features>}``.

    Returns:
        ``(table, sweep)``: ``table`` a DataFrame with columns run, key, diversification, beta, P@x, CR@x, F1@x,
        ERR-IA@x, alpha-nDCG@x (means over the ``report_on`` topics); ``sweep`` a DataFrame of the MMR β sweep
        (run, key, beta, split, metrics) over both splits.
    """
    import pandas as pd

    tune, rep = _split_mask(lists, tune_on), _split_mask(lists, report_on)
    rows, sweep_rows = [], []
    for key, run in runs.items():
        plain = diversity_metrics(rr.ranking_from_scores(run.scores, lists.mask), lists.cluster, x)
        rows.append(
            {
                "run": run.name,
                "key": key,
                "diversification": "none",
                "beta": 0.0,
                **{f"{k}@{x}": float(v[rep].mean()) for k, v in plain.items()},
            }
        )
        sw = beta_sweep(lists, run, betas, x=x, n_mmr=n_mmr)
        for b, per in sw.items():
            for split, sel in (("tune", tune), ("report", rep)):
                sweep_rows.append(
                    {
                        "run": run.name,
                        "key": key,
                        "beta": b,
                        "split": split,
                        **{f"{k}@{x}": float(v[sel].mean()) for k, v in per.items()},
                    }
                )
        best = max(sw, key=lambda b: (sw[b][tune_metric][tune].mean(), -b))
        rows.append(
            {
                "run": run.name,
                "key": key,
                "diversification": "MMR",
                "beta": best,
                **{f"{k}@{x}": float(v[rep].mean()) for k, v in sw[best].items()},
            }
        )
    if cluster_run is not None and cluster_run in runs:
        run = runs[cluster_run]
        feats = {"clusters": run.diversity_features} if cluster_features is None else cluster_features
        for name, f in feats.items():
            clusterings = np.stack(
                [rr.batched_kmeans(f, kk, seed=seed + i, mask=lists.mask) for i, kk in enumerate(cluster_ks)], 1
            )
            order = rr.cluster_share_rerank(run.scores, clusterings, depth=cluster_depth, mask=lists.mask)
            per = diversity_metrics(order, lists.cluster, x)
            rows.append(
                {
                    "run": run.name,
                    "key": cluster_run,
                    "diversification": name,
                    "beta": float("nan"),
                    **{f"{k}@{x}": float(v[rep].mean()) for k, v in per.items()},
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(sweep_rows)


def joint_features(visual, text) -> np.ndarray:
    """(…, Dv + Dt) the concatenation of L2-normalised visual and text features, scaled by 1/√2 so that rows stay
    unit-norm: a dot product is the mean of the visual and the textual cosine (the joint space of §1's clustering)."""
    v, t = np.asarray(visual, dtype=np.float32), np.asarray(text, dtype=np.float32)
    if v.shape[:-1] != t.shape[:-1]:
        raise ValueError(f"visual, text: expected the same leading shape, got {v.shape} and {t.shape}")
    return np.concatenate([v, t], -1) / np.float32(np.sqrt(2.0))


def tune_prf(
    lists: TopicLists,
    first,
    features: dict[str, np.ndarray],
    ks: Sequence[int],
    alphas: Sequence[float],
    *,
    x: int = 50,
    metric: str = "P",
    split="dev",
):
    """The paper's tuning (§4): K, α and the visual feature of Eq. (1) chosen by P@50 on the dev topics.

    Every combination of ``ks`` × ``alphas`` × ``features`` scores RUN3 (:func:`xmr_lib.retrieval.rerank.two_step_score`,
    first step ``first``, second step the feature's dot products, no diversification); the best mean
    ``metric``@``x`` over the ``split`` topics wins (ties: the smaller K, then the smaller α, then the first feature).

    Args:
        first: (Q, N) first-step scores (S_T). features: ``{name: (Q, N, D)}`` gathered, L2-normalised features.
        ks, alphas: the grid (K ≥ 1, 0 ≤ α ≤ 1).
    Returns:
        ``(best, grid)``: ``best = {"K": int, "alpha": float, "feature": str, "score": float}`` and a DataFrame
        with one row per combination (feature, K, alpha, ``<metric>@<x>``).
    """
    import pandas as pd

    if not features:
        raise ValueError("features: give at least one {name: (Q, N, D) features}")
    ks, alphas = [int(k) for k in ks], [float(a) for a in alphas]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks: expected a non-empty list of K >= 1, got {ks!r}")
    if not alphas or min(alphas) < 0 or max(alphas) > 1:
        raise ValueError(f"alphas: expected a non-empty list of α in [0, 1], got {alphas!r}")
    sel = _split_mask(lists, split)
    col = f"{metric}@{x}"
    rows = []
    for name, f in features.items():
        for k in ks:
            for a in alphas:
                sc = rr.two_step_score(first, k, a, features=f, mask=lists.mask)
                per = diversity_metrics(rr.ranking_from_scores(sc, lists.mask), lists.cluster, x)[metric]
                rows.append({"feature": name, "K": k, "alpha": a, col: float(per[sel].mean())})
    grid = pd.DataFrame(rows)
    order = {n: i for i, n in enumerate(features)}
    best = min(rows, key=lambda r: (-r[col], r["K"], r["alpha"], order[r["feature"]]))
    return {"K": best["K"], "alpha": best["alpha"], "feature": best["feature"], "score": best[col]}, grid


# ---------------------------------------------------------------------------------------------------------------
# features of a document pool


def concat_lists(*parts: TopicLists) -> TopicLists:
    """Stack the topics of several :class:`TopicLists` (e.g. devset and testset), pools concatenated."""
    if not parts:
        raise ValueError("parts: give at least one TopicLists")
    N = max(p.doc.shape[1] for p in parts)
    off, docs, texts, paths, imgs = 0, [], [], [], []

    def pad(a, fill):
        return np.pad(a, ((0, 0), (0, N - a.shape[1])), constant_values=fill)

    for p in parts:
        docs.append(pad(np.where(p.doc >= 0, p.doc + off, -1), -1))
        off += len(p.texts)
        texts += list(p.texts)
        paths += list(p.image_paths or [])
        imgs.append(p.images)
    images = None if any(i is None for i in imgs) else np.concatenate(imgs)
    split = None if any(p.split is None for p in parts) else np.concatenate([p.split for p in parts])
    return TopicLists(
        sum((p.titles for p in parts), []),
        np.concatenate(docs),
        np.concatenate([pad(p.mask, False) for p in parts]),
        np.concatenate([pad(p.relevant, False) for p in parts]),
        np.concatenate([pad(p.cluster, -1) for p in parts]),
        np.concatenate([pad(p.flickr_rank, 0) for p in parts]),
        texts,
        images,
        paths if paths else None,
        sum((p.cluster_names for p in parts), []),
        split,
        sum((p.topic_ids for p in parts), []),
        dict(parts[0].info),
    )


def document_image(lists: TopicLists, pool_index: int, size: int = 64) -> np.ndarray:
    """The picture of pool document ``pool_index`` as (size, size, 3) uint8 (from ``images`` or ``image_paths``),
    resized with PIL's bicubic filter (:func:`xmr_lib.encoders.backbones.resize_image`): an in-memory picture is
    squashed to ``size`` (returned as is when already ``size`` high), a file's centre square is taken, as the
    pool's features read it (:func:`xmr_lib.encoders.features.image_features`)."""
    if lists.images is not None:
        img = lists.images[pool_index]
        if img.shape[0] == size:
            return img
        return models.resize_image(img, size, fit="squash", interpolation="bicubic")
    if lists.image_paths is None:
        raise ValueError("lists: these lists carry neither images nor image paths")
    return models.resize_image(
        lists.image_paths[pool_index], size, fit="square", interpolation="bicubic", rounding="floor"
    )
