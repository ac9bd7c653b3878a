"""Cross-modal (image–text) data preparation and evaluation shared by the cross-modal notebooks.

=========================================  ======================================================================
:func:`load_crossmodal_pairs`              paired images/texts with multi-hot labels: the offline ``"shapes"``
                                           (easy-vqa shapes with captions; labels colour / shape / size) and
                                           ``"fashion_mnist"`` (templated captions; class + coarse-group labels),
                                           or the prepared ``"mirflickr25k"`` / ``"nuswide"`` (24 / 21 labels)
:func:`crossmodal_split`                   the DCMH protocol: query set; retrieval set = the rest; the training
                                           pairs are drawn from the retrieval set (seeded)
:func:`prepare_crossmodal_features`        image features (frozen EfficientNet-Lite0 / pixels / precomputed),
                                           text features (bag-of-words / tf-idf / MiniLM), labels and the split,
                                           cached on disk → :class:`CrossModalFeatures`
:func:`evaluate_hashing`                   mAP by Hamming ranking (I→T, T→I), top-N precision, hash-lookup PR
                                           curves, from binary codes (``xmr_lib.retrieval.metrics``)
:func:`hamming_ndcg`                       NDCG@k of a Hamming ranking with graded relevance 2^t − 1 (t = shared
                                           labels): the metric that sees multi-level similarity
:func:`hamming_neighbours`                 top-k retrieval through :class:`xmr_lib.retrieval.index.HammingIndex`
:func:`modality_probe_accuracy`            a *fresh* logistic-regression probe: can the modality still be told
                                           from the common-space features / codes?
=========================================  ======================================================================

The real datasets are read from ``<data_root>/<name>/`` as written by ``python -m data_scripts fetch <name>``:
``labels.npy`` (N, c) 0/1, ``tags_bow.npy`` (N, T) 0/1 and either ``image_features_<encoder>.npy`` (N, D) or
``images.npy`` (N, H, W, 3) uint8; ``meta.json`` optional. Nothing here downloads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xmr_lib.chapters.ch03 import batched_hashing as BH
from xmr_lib.chapters.ch03 import hashing as H
from xmr_lib.core.setup import resolve_device
from xmr_lib.data import registry as data
from xmr_lib.data.easy_vqa import COLOURS, SHAPES
from xmr_lib.data.shape_captions import SIZE_WORDS, shape_caption_benchmark
from xmr_lib.encoders import text as _text
from xmr_lib.encoders.features import image_features
from xmr_lib.retrieval.index import HammingIndex
from xmr_lib.retrieval.metrics import hamming_distance, hamming_map, hamming_topk_precision, pr_curve_hamming
from xmr_lib.retrieval.modality import modality_probe_accuracy  # one probe for chapters 3 and 4

__all__ = [
    "CrossModalPairs",
    "CrossModalFeatures",
    "OFFLINE_DATASETS",
    "PREPARED_DATASETS",
    "load_crossmodal_pairs",
    "crossmodal_split",
    "prepare_crossmodal_features",
    "evaluate_hashing",
    "hamming_ndcg",
    "hamming_neighbours",
    "modality_probe_accuracy",
    "shared_label_counts",
]

OFFLINE_DATASETS = ("shapes", "fashion_mnist")
PREPARED_DATASETS = {
    "mirflickr25k": {"n_labels": 24, "n_words": 1386, "n": 20015},
    "nuswide": {"n_labels": 21, "n_words": 1000, "n": 190421},
}
SHAPE_LABEL_ATTRIBUTES = ("colour", "shape", "size")


@dataclass
class CrossModalPairs:
    """n paired items: image i goes with text i; both carry the multi-hot labels ``labels[i]``.

    Attributes:
        images: (n, H, W[, 3]) uint8 pixels, or None (a prepared set with precomputed features only).
        texts: n strings (captions), or None when the text is given as ``bow`` (e.g. MIRFlickr tags).
        labels: (n, c) uint8 multi-hot; ``label_names`` its c names.
        bow: optional (n, T) 0/1 bag-of-words given by the dataset, with ``vocab``.
        image_features: optional {encoder name: (n, D) float32} shipped with a prepared dataset.
    """

    name: str
    labels: np.ndarray
    label_names: list[str]
    images: np.ndarray | None = None
    texts: list[str] | None = None
    bow: np.ndarray | None = None
    vocab: list[str] | None = None
    image_features: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.labels)
        if self.labels.ndim != 2:
            raise ValueError(f"labels: expected (n, c) multi-hot, got shape {self.labels.shape}")
        for nm in ("images", "texts", "bow"):
            v = getattr(self, nm)
            if v is not None and len(v) != n:
                raise ValueError(f"{nm}: expected {n} rows (one per pair), got {len(v)}")
        if self.texts is None and self.bow is None:
            raise ValueError("texts, bow: a pair set needs captions or a bag-of-words")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class CrossModalFeatures:
    """Features ready for training: image i ↔ text i, multi-hot labels, and index arrays of the split.

    Attributes:
        image: (n, D_img) float32; text: (n, D_txt) float32; labels: (n, c) uint8.
        split: {"query", "retrieval", "train"} → int64 indices into the n pairs (train ⊂ retrieval).
        images / texts: the raw items for display (may be None).
    """

    name: str
    image: np.ndarray
    text: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    split: dict[str, np.ndarray]
    images: np.ndarray | None = None
    texts: list[str] | None = None
    vocab: list[str] | None = None
    meta: dict = field(default_factory=dict)

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image features, text features, labels) of split part ``name``."""
        if name not in self.split:
            raise ValueError(f"name: expected one of {sorted(self.split)}, got {name!r}")
        i = self.split[name]
        return self.image[i], self.text[i], self.labels[i]

    def summary(self) -> dict[str, Any]:
        """Sizes, dimensions and label statistics (what a notebook prints first)."""
        q, r = self.labels[self.split["query"]], self.labels[self.split["retrieval"]]
        rel = (q.astype(np.float32) @ r.T.astype(np.float32)) > 0
        return {
            "dataset": self.name,
            "pairs": len(self.labels),
            **{f"n_{k}": len(v) for k, v in self.split.items()},
            "image_dim": self.image.shape[1],
            "text_dim": self.text.shape[1],
            "labels": self.labels.shape[1],
            "labels_per_item": float(self.labels.sum(1).mean()),
            "relevant_fraction": float(rel.mean()),
        }


# ---------------------------------------------------------------------------------------------------------------
# loading


def shared_label_counts(labels_a: np.ndarray, labels_b: np.ndarray) -> np.ndarray:
    """t_ij = number of labels items i and j share: (n, c) × (m, c) multi-hot → (n, m) int."""
    a, b = np.asarray(labels_a), np.asarray(labels_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"labels_a, labels_b: expected (n, c) and (m, c) multi-hot, got {a.shape} and {b.shape}")
    return a.astype(np.int32) @ b.T.astype(np.int32)


def _shapes(seed: int, label_attributes: Sequence[str], p_drop: float, n: int | None) -> CrossModalPairs:

    names = {
        "colour": list(COLOURS),
        "shape": list(SHAPES),
        "size": list(SIZE_WORDS),
        "row": ["top", "middle row", "bottom"],
        "column": ["left", "centre column", "right"],
    }
    bad = [a for a in label_attributes if a not in names]
    if bad or not label_attributes:
        raise ValueError(f"label_attributes: expected a non-empty subset of {sorted(names)}, got {label_attributes!r}")
    # one caption per image; the image set is fixed (all 5,000, so the image features are shared and cached)
    bench = shape_caption_benchmark(5000, captions_per_image=1, seed=seed, p_drop=p_drop)
    cols, label_names = [], []
    for a in label_attributes:
        v = bench.attributes[a]
        cols.append(np.eye(len(names[a]), dtype=np.uint8)[v])
        label_names += [f"{a}:{x}" for x in names[a]]
    out = CrossModalPairs(
        "shapes",
        np.concatenate(cols, 1),
        label_names,
        images=bench.images,
        texts=list(bench.captions),
        meta={"source": "easy-vqa (MIT) + templated captions", "p_drop": p_drop, "easy_vqa_ids": bench.source},
    )
    return out if n is None else _subset_pairs(out, np.sort(np.random.default_rng(seed).permutation(len(out))[:n]))


def _fashion(seed: int, n: int | None) -> CrossModalPairs:

    ds = data.with_captions(data.load("fashion_mnist", "all", n=n, seed=seed), seed=seed)
    n_cls, n_coarse = len(ds.class_names), len(ds.coarse_names)
    lab = np.zeros((len(ds), n_cls + n_coarse), np.uint8)
    lab[np.arange(len(ds)), ds.labels] = 1
    lab[np.arange(len(ds)), n_cls + ds.coarse_labels] = 1
    return CrossModalPairs(
        "fashion_mnist",
        lab,
        list(ds.class_names) + [f"group:{c}" for c in ds.coarse_names],
        images=ds.images,
        texts=list(ds.captions),
        meta={"source": ds.meta.get("source", "")},
    )


def _prepared(name: str, root: str | Path | None) -> CrossModalPairs:
    """A prepared tagged collection (files read and checked by :func:`xmr_lib.data.registry.read_tagged_images`)
    as pairs; DCMH / SSAH keep only the pairs with at least one label."""
    raw = data.read_tagged_images(name, root, PREPARED_DATASETS[name]["n_labels"])
    labels, meta = raw.labels, raw.meta
    keep = labels.sum(1) > 0
    label_names = meta.get("label_names") or [f"label{i}" for i in range(labels.shape[1])]
    pairs = CrossModalPairs(
        name,
        labels,
        list(label_names),
        images=raw.images,
        bow=raw.bow,
        vocab=meta.get("vocab"),
        image_features=dict(raw.image_features),
        meta={**meta, "root": str(raw.folder)},
    )
    return pairs if keep.all() else _subset_pairs(pairs, np.flatnonzero(keep))


def _subset_pairs(p: CrossModalPairs, idx: np.ndarray) -> CrossModalPairs:
    return CrossModalPairs(
        p.name,
        p.labels[idx],
        p.label_names,
        images=None if p.images is None else np.asarray(p.images[idx]),
        texts=None if p.texts is None else [p.texts[i] for i in idx],
        bow=None if p.bow is None else p.bow[idx],
        vocab=p.vocab,
        image_features={k: np.asarray(v[idx]) for k, v in p.image_features.items()},
        meta={**p.meta, "subset_of": len(p.labels)},
    )


def load_crossmodal_pairs(
    dataset: str,
    root: str | Path | None = None,
    seed: int = 0,
    n: int | None = None,
    label_attributes: Sequence[str] = SHAPE_LABEL_ATTRIBUTES,
    caption_drop: float = 0.3,
) -> CrossModalPairs:
    """Paired images and texts with multi-hot labels.

    Args:
        dataset: ``"shapes"`` — the 5,000 easy-vqa images, one templated caption each (colour, a paraphrase of the
            shape, and — each left out with probability ``caption_drop`` — size and position), labels one-hot per
            attribute in ``label_attributes`` (default colour 8 + shape 3 + size 3 = 14 labels, 3 per item, so
            pairs share 0–3 labels); ``"fashion_mnist"`` — templated captions, labels = class (10) + coarse
            group (5); ``"mirflickr25k"`` / ``"nuswide"`` — prepared under ``root`` (tag bag-of-words, 24 / 21
            labels; only pairs with at least one label).
        root: folder of the prepared real datasets (``data_root``).
        seed: captions (shapes) and subset choice. n: keep a seeded random subset of n pairs (offline sets).
    Returns:
        :class:`CrossModalPairs`.
    """
    if dataset == "shapes":
        if not 0 <= caption_drop < 1:
            raise ValueError(f"caption_drop: expected a probability in [0, 1), got {caption_drop!r}")
        return _shapes(seed, tuple(label_attributes), caption_drop, n)
    if dataset == "fashion_mnist":
        return _fashion(seed, n)
    if dataset in PREPARED_DATASETS:
        p = _prepared(dataset, root)
        return p if n is None else _subset_pairs(p, np.sort(np.random.default_rng(seed).permutation(len(p))[:n]))
    raise ValueError(f"dataset: expected one of {OFFLINE_DATASETS + tuple(PREPARED_DATASETS)}, got {dataset!r}")


def crossmodal_split(
    n: int, n_query: int, n_train: int, n_retrieval: int | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """The DCMH / SSAH protocol: ``n_query`` random query pairs, the retrieval set = the rest (or a random
    ``n_retrieval`` of it), and ``n_train`` training pairs drawn from the retrieval set.

    Returns:
        {"query", "retrieval", "train"} → sorted int64 indices into 0..n-1.
    """
    for nm, v in (("n", n), ("n_query", n_query), ("n_train", n_train)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{nm}: expected a positive int, got {v!r}")
    rest = n - n_query
    n_ret = rest if n_retrieval is None else int(n_retrieval)
    if rest < 1 or not 1 <= n_ret <= rest:
        raise ValueError(
            f"n_query, n_retrieval: {n_query} queries and {n_retrieval} retrieval items do not fit in n = {n} pairs"
        )
    if n_train > n_ret:
        raise ValueError(f"n_train: the {n_train} training pairs must come from the {n_ret} retrieval pairs")
    perm = np.random.default_rng(seed).permutation(n)
    query, retrieval = perm[:n_query], perm[n_query : n_query + n_ret]
    train = retrieval[:n_train]
    return {"query": np.sort(query), "retrieval": np.sort(retrieval), "train": np.sort(train)}


# ---------------------------------------------------------------------------------------------------------------
# features


def _pixel_features(images: np.ndarray, size: int = 16) -> np.ndarray:
    """Images resized to size × size (area average), flattened, in [0, 1]: a cheap stand-in for a CNN."""
    import torch
    import torch.nn.functional as F

    out = []
    for s in range(0, len(images), 4096):  # chunks: a memory-mapped images.npy is read piece by piece
        x = torch.from_numpy(np.array(images[s : s + 4096])).float() / 255.0
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        out.append(F.adaptive_avg_pool2d(x, size).flatten(1).numpy().astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, size * size * (1 if np.ndim(images) == 3 else 3)), np.float32)


def _image_features(pairs: CrossModalPairs, encoder: str, size: int, device: str, cache: bool) -> np.ndarray:
    if encoder in pairs.image_features:
        return np.asarray(pairs.image_features[encoder], dtype=np.float32)
    if pairs.images is None:
        raise ValueError(
            f"image_encoder: {pairs.name} ships only {sorted(pairs.image_features)} features and no "
            f"images; got {encoder!r}"
        )
    if encoder == "pixels":
        return _pixel_features(pairs.images)
    if encoder == "raw":  # the images themselves (n, 3·S·S) in [0, 1], for an image branch that fine-tunes a trunk
        imgs = np.asarray(pairs.images)
        return _pixel_features(np.repeat(imgs[..., None], 3, axis=-1) if imgs.ndim == 3 else imgs, size)
    if encoder == "efficientnet_lite0":
        imgs = np.asarray(pairs.images)
        if imgs.ndim == 3:
            imgs = np.repeat(imgs[..., None], 3, axis=-1)
        key = None
        if cache:
            ids = pairs.meta.get("easy_vqa_ids")
            if pairs.name == "shapes" and ids is not None and np.array_equal(ids, np.arange(5000)):
                key = {"dataset": "easy_vqa_all_5000"}  # the same cache entry as the other shape notebooks
            else:
                import hashlib

                key = {
                    "dataset": pairs.name,
                    "n": len(imgs),
                    "digest": hashlib.sha1(
                        np.ascontiguousarray(imgs[:: max(1, len(imgs) // 64)]).tobytes()
                    ).hexdigest()[:16],
                }
        return image_features(imgs, size=size, cache_key=key, device=resolve_device(device), progress=True)
    raise ValueError(
        f"image_encoder: expected 'efficientnet_lite0', 'pixels', 'raw' or a shipped feature "
        f"{sorted(pairs.image_features)}, got {encoder!r}"
    )


def _text_features(pairs: CrossModalPairs, encoder: str, fit_idx: np.ndarray) -> tuple[np.ndarray, list | None]:

    if pairs.bow is not None:
        if encoder != "bow":
            raise ValueError(f"text_encoder: {pairs.name} comes as a tag bag-of-words; use 'bow', got {encoder!r}")
        return pairs.bow.astype(np.float32), pairs.vocab
    texts = list(pairs.texts)
    if encoder == "bow":
        _, vocab = _text.bag_of_words([texts[i] for i in fit_idx], binary=True)
        x, _ = _text.bag_of_words(texts, vocab=vocab, binary=True)
        return x, vocab
    if encoder == "tfidf":
        return _text.tfidf(texts, fit_texts=[texts[i] for i in fit_idx])
    if encoder == "minilm":
        return np.asarray(_text.encode(texts, progress=False), dtype=np.float32), None
    raise ValueError(f"text_encoder: expected 'bow', 'tfidf' or 'minilm', got {encoder!r}")


def prepare_crossmodal_features(
    dataset: str | CrossModalPairs,
    image_encoder: str = "efficientnet_lite0",
    text_encoder: str = "bow",
    split: dict | None = None,
    cache: bool = True,
    *,
    root: str | Path | None = None,
    seed: int = 0,
    image_size: int = 128,
    standardize_image: bool = True,
    device: str = "auto",
    **load_kw,
) -> CrossModalFeatures:
    """Everything a cross-modal notebook trains on: features of both modalities, labels and the split.

    Args:
        dataset: a name for :func:`load_crossmodal_pairs` (then ``root``, ``seed`` and ``load_kw`` are passed on)
            or a :class:`CrossModalPairs`.
        image_encoder: ``"efficientnet_lite0"`` (frozen ImageNet trunk, global-average-pooled 1280-d at
            ``image_size`` px; cached on disk when ``cache``), ``"pixels"`` (16 × 16 thumbnails), ``"raw"`` (the
            images at ``image_size`` px, flattened channel-first in [0, 1], never standardised: the input of a
            fine-tuned trunk, ``HashingConfig.image_trunk``), or the name of
            features shipped with a prepared dataset (e.g. ``"cnnf"``).
        text_encoder: ``"bow"`` (binary bag-of-words over the training texts' vocabulary, as the thesis),
            ``"tfidf"`` or ``"minilm"`` (384-d sentence embeddings, cached).
        split: keyword arguments of :func:`crossmodal_split` (``n_query``, ``n_train``, optional ``n_retrieval``);
            default 10 % queries and up to 2,000 training pairs.
        standardize_image: z-score the image features with the training part's mean and std (the thesis
            fine-tunes its CNN; frozen features need at least this).
    Returns:
        :class:`CrossModalFeatures` (the split is seeded by ``seed``).
    """
    pairs = (
        dataset
        if isinstance(dataset, CrossModalPairs)
        else load_crossmodal_pairs(dataset, root=root, seed=seed, **load_kw)
    )
    n = len(pairs)
    sp = dict(split or {})
    sp.setdefault("n_query", max(1, n // 10))
    sp.setdefault("n_train", min(2000, n - sp["n_query"]))
    parts = crossmodal_split(n, seed=sp.pop("seed", seed), **sp)
    img = _image_features(pairs, image_encoder, image_size, device, cache)
    txt, vocab = _text_features(pairs, text_encoder, parts["train"])
    if standardize_image and image_encoder != "raw":
        tr = img[parts["train"]]
        img = ((img - tr.mean(0)) / (tr.std(0) + 1e-6)).astype(np.float32)
    return CrossModalFeatures(
        pairs.name,
        np.ascontiguousarray(img, dtype=np.float32),
        np.ascontiguousarray(txt, dtype=np.float32),
        pairs.labels,
        pairs.label_names,
        parts,
        images=pairs.images,
        texts=pairs.texts,
        vocab=vocab,
        meta={
            **{k: v for k, v in pairs.meta.items() if k != "easy_vqa_ids"},
            "image_encoder": image_encoder,
            "text_encoder": text_encoder,
            "image_size": image_size,
        },
    )


# ---------------------------------------------------------------------------------------------------------------
# evaluation


def hamming_ndcg(
    query_codes: np.ndarray, db_codes: np.ndarray, query_labels: np.ndarray, db_labels: np.ndarray, k: int = 100
) -> float:
    """NDCG@k of the Hamming ranking with graded gains ``2^t − 1`` (t = labels shared with the query).

    Ties in distance are broken by database index (as :func:`xmr_lib.retrieval.metrics.hamming_map`'s default). Queries
    whose ideal DCG is 0 are left out.

    Args:
        query_codes: (Q, K) ±1 or 0/1; db_codes: (N, K); query_labels: (Q, c); db_labels: (N, c) multi-hot.
    Returns:
        mean NDCG@k over the queries.
    """

    dist = hamming_distance(query_codes, db_codes)
    t = shared_label_counts(query_labels, db_labels)
    if dist.shape != t.shape:
        raise ValueError(f"db_labels: expected {dist.shape[1]} rows like db_codes, got shape {np.shape(db_labels)}")
    k = int(min(k, dist.shape[1]))
    if k < 1:
        raise ValueError(f"k: expected ≥ 1, got {k}")
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    gain = (2.0 ** np.take_along_axis(t, order, 1)) - 1.0
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (gain * disc).sum(1)
    ideal = ((2.0 ** -np.sort(-t, axis=1)[:, :k]) - 1.0) @ disc
    ok = ideal > 0
    return float((dcg[ok] / ideal[ok]).mean()) if ok.any() else float("nan")


def evaluate_hashing(
    codes: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    top_n: Sequence[int] = (100, 500, 1000),
    pr: bool = True,
    ndcg_k: int | None = 100,
) -> dict[str, Any]:
    """Both retrieval directions of cross-modal hashing from binary codes.

    Args:
        codes: ``{"query_image", "query_text", "db_image", "db_text"}`` → (n, K) codes in ±1 (or 0/1).
        labels: ``{"query", "db"}`` → multi-hot labels.
        top_n: cut-offs of the top-N precision (those larger than the database are skipped).
        pr: add the hash-lookup precision–recall curves (radius 0..K, micro-averaged as DCMH).
        ndcg_k: also NDCG@k with graded relevance (None: skip).
    Returns:
        ``{"i2t": {...}, "t2i": {...}}`` with ``"mAP"``, ``"P@N"`` ({N: precision}), optionally ``"pr"``
        (precision, recall, radius lists) and ``"NDCG@k"``.
    """

    need = {"query_image", "query_text", "db_image", "db_text"}
    if set(codes) != need:
        raise ValueError(f"codes: expected keys {sorted(need)}, got {sorted(codes)}")
    if set(labels) != {"query", "db"}:
        raise ValueError(f"labels: expected keys ['db', 'query'], got {sorted(labels)}")
    out = {}
    for task, q, d in (("i2t", "query_image", "db_text"), ("t2i", "query_text", "db_image")):
        qc, dc = codes[q], codes[d]
        r: dict[str, Any] = {"mAP": float(hamming_map(qc, dc, labels["query"], labels["db"]))}
        r["P@N"] = {
            int(k): float(hamming_topk_precision(qc, dc, labels["query"], labels["db"], int(k)))
            for k in top_n
            if 1 <= k <= len(dc)
        }
        if pr:
            p, rc, radii = pr_curve_hamming(qc, dc, labels["query"], labels["db"])
            r["pr"] = {"precision": p.tolist(), "recall": rc.tolist(), "radius": radii.tolist()}
        if ndcg_k:
            r[f"NDCG@{ndcg_k}"] = hamming_ndcg(qc, dc, labels["query"], labels["db"], ndcg_k)
        out[task] = r
    return out


def hamming_neighbours(query_codes: np.ndarray, db_codes: np.ndarray, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest database codes of each query through the binary faiss index.

    Returns:
        (distances (Q, k) int32, ids (Q, k) int64), ties by ascending id.
    """

    db = np.asarray(db_codes)
    if db.ndim != 2:
        raise ValueError(f"db_codes: expected (N, K) codes, got shape {db.shape}")
    return HammingIndex(db.shape[1]).add(db).search(query_codes, k)


# ---------------------------------------------------------------------------------------------------------------
# one training + evaluation run of the ch. 3 hashing model (resumable)


@dataclass
class HashingRun:
    """What one ``(config, seed)`` run produced: metrics of both directions, per-epoch history, query/database
    codes, timing. ``model`` is kept only when asked for (it is not checkpointed)."""

    name: str
    seed: int
    config: dict
    metrics: dict
    history: list
    codes: dict
    seconds: float
    pairs_per_second: float
    model: Any = None

    @property
    def map_i2t(self) -> float:
        return self.metrics["i2t"]["mAP"]

    @property
    def map_t2i(self) -> float:
        return self.metrics["t2i"]["mAP"]


def _run_key(config, seed: int, name: str) -> tuple[dict, str]:
    """The config as a dict and the checkpoint key of run ``(name, seed, config)``."""
    import hashlib
    from dataclasses import asdict

    cfg = asdict(config)
    digest = hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return cfg, f"{name or 'run'}_s{seed}_{digest}"


def _finish_run(
    features: CrossModalFeatures, config, model, seed: int, name: str, secs: float, top_n, probe: bool, keep_model
) -> HashingRun:
    """Encode the query and retrieval parts with a trained ``model`` and evaluate both directions."""
    cfg, _ = _run_key(config, seed, name)
    q, r = features.split["query"], features.split["retrieval"]
    codes = {
        "query_image": model.encode(features.image[q], "image"),
        "query_text": model.encode(features.text[q], "text"),
        "db_image": model.encode(features.image[r], "image"),
        "db_text": model.encode(features.text[r], "text"),
    }
    metrics = evaluate_hashing(codes, {"query": features.labels[q], "db": features.labels[r]}, top_n=top_n)
    if probe:
        metrics["probe"] = {
            what: modality_probe_accuracy(
                model.encode(features.image[q], "image", what=what),
                model.encode(features.text[q], "text", what=what),
                seed=seed,
            )
            for what in ("features", "soft")
        }
    n_pairs = len(features.split["train"]) * config.epochs * 2  # one image pass and one text pass per epoch
    return HashingRun(
        name,
        int(seed),
        cfg,
        metrics,
        model.history,
        codes,
        secs,
        n_pairs / max(secs, 1e-9),
        model if keep_model else None,
    )


def _save_run(checkpoint, key: str, run: HashingRun) -> None:
    if checkpoint is not None:
        checkpoint.save(key, {k: v for k, v in run.__dict__.items() if k != "model"} | {"model": None})


def run_hashing(
    features: CrossModalFeatures,
    config,
    seed: int = 0,
    name: str = "",
    device: str = "auto",
    checkpoint=None,
    keep_model: bool = False,
    progress: bool = False,
    top_n: Sequence[int] = (100, 500, 1000),
    probe: bool = True,
    probe_every: int = 2,
) -> HashingRun:
    """Train :func:`xmr_lib.chapters.ch03.hashing.train_cross_modal_hashing` on the training part, encode the query and
    retrieval parts, and evaluate both directions with :func:`evaluate_hashing`.

    Args:
        features: :class:`CrossModalFeatures`. config: a :class:`xmr_lib.chapters.ch03.hashing.HashingConfig`.
        checkpoint: an :class:`xmr_lib.core.checkpoint.Checkpoint`; a finished run is stored under a key made of ``name``,
            ``seed`` and the config, and loaded instead of retrained next time (unless ``keep_model``).
        probe: add ``metrics["probe"]``: held-out accuracy of a fresh linear modality classifier on the query
            pairs' common features (F vs G) and soft codes (H^v vs H^t) (:func:`modality_probe_accuracy`).
        probe_every: record the per-term gradient norms every this many epochs (0 = never; they cost a few
            extra backward passes).
    Returns:
        :class:`HashingRun`.
    """
    import time

    _, key = _run_key(config, seed, name)
    if checkpoint is not None and not keep_model:
        got = checkpoint.load(key)
        if got is not None:
            return HashingRun(**got)
    xi, xt, lab = features.part("train")
    t0 = time.perf_counter()
    model = H.train_cross_modal_hashing(
        xi, xt, lab, config, seed=seed, device=device, progress=progress, probe_every=probe_every
    )
    run = _finish_run(features, config, model, seed, name, time.perf_counter() - t0, top_n, probe, keep_model)
    _save_run(checkpoint, key, run)
    return run


def run_hashing_many(
    features: CrossModalFeatures,
    config,
    seeds: Sequence[int],
    name: str = "",
    device: str = "auto",
    checkpoint=None,
    keep_model: bool = False,
    progress: bool = False,
    top_n: Sequence[int] = (100, 500, 1000),
    probe: bool = True,
    probe_every: int = 2,
    amp: bool | str = False,
) -> list[HashingRun]:
    """:func:`run_hashing` for every seed of ``seeds``, the runs not in ``checkpoint`` trained together as one
    batched network (:func:`xmr_lib.chapters.ch03.batched_hashing.train_cross_modal_hashing_batched`): the same
    runs and metrics as one :func:`run_hashing` call per seed (less Python overhead per step; on a 2-core CPU
    at the default size the pair-term products dominate and the time is about the same). A run's ``seconds`` is its share of
    the batched fit (the fit's wall time / the number of runs trained together)."""
    import time

    runs: dict[int, HashingRun] = {}
    todo = []
    for i, s in enumerate(seeds):
        _, key = _run_key(config, s, name)
        got = checkpoint.load(key) if checkpoint is not None and not keep_model else None
        if got is not None:
            runs[i] = HashingRun(**got)
        else:
            todo.append(i)
    if todo:
        xi, xt, lab = features.part("train")
        t0 = time.perf_counter()
        models = BH.train_cross_modal_hashing_batched(
            xi,
            xt,
            lab,
            config,
            [seeds[i] for i in todo],
            device=device,
            progress=progress,
            probe_every=probe_every,
            amp=amp,
        )
        secs = (time.perf_counter() - t0) / len(todo)
        for i, m in zip(todo, models):
            runs[i] = _finish_run(features, config, m, seeds[i], name, secs, top_n, probe, keep_model)
            _save_run(checkpoint, _run_key(config, seeds[i], name)[1], runs[i])
    return [runs[i] for i in range(len(seeds))]


def run_baseline_many(
    train: Any,
    features: CrossModalFeatures,
    config,
    seeds: Sequence[int],
    name: str,
    device: str = "auto",
    checkpoint=None,
    top_n: Sequence[int] = (100, 500, 1000),
) -> list[HashingRun]:
    """A baseline (DCMH, SSAH) trained on ``features``' training part at each of ``seeds`` and evaluated like the
    chapter's runs (:class:`HashingRun`, both directions; no modality probe). ``train(xi, xt, labels, config,
    seed=, device=)`` returns the trained model (``encode`` like the chapter's). Finished runs are stored in and
    reloaded from ``checkpoint``."""
    import time

    out = []
    xi, xt, lab = features.part("train")
    for s in seeds:
        _, key = _run_key(config, s, name)
        got = checkpoint.load(key) if checkpoint is not None else None
        if got is not None:
            out.append(HashingRun(**got))
            continue
        t0 = time.perf_counter()
        model = train(xi, xt, lab, config, seed=s, device=device)
        r = _finish_run(features, config, model, s, name, time.perf_counter() - t0, top_n, False, False)
        _save_run(checkpoint, key, r)
        out.append(r)
    return out
