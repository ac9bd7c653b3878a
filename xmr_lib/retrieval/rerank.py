"""Re-ranking topic result lists: cross-media pseudo-relevance feedback, joint embeddings, diversification.

After Renders & Csurka, "NLE @ MediaEval'17: Combining Cross-Media Similarity and Embeddings for Retrieving
Diverse Social Images". Every query (topic) comes with its own list of N candidate documents (a Flickr
photo with its text), so scores are ``(Q, N)`` arrays, batched over queries; lists shorter than N are padded and
marked by a ``mask`` (``True`` = a real document). Document features are ``(Q, N, D)`` arrays (gather them from a
pool with ``pool[doc_index]``), document–document similarities ``(Q, N, N)``.

Relevance (§2.1):

- :func:`prf_score` — Eq. (1), the two-step (trans-media) pseudo-relevance-feedback score
  ``S_{T,V}(d,q) = Σ_{d_i ∈ NN_T^K(q)} S_T(d_i,q) S_V(d,d_i) / Σ_{d_i ∈ NN_T^K(q)} S_T(d_i,q)``: the
  first-step-score-weighted mean second-modality similarity of ``d`` to the K best first-step documents;
- :func:`recombine` — the convex recombination ``(1 − α) S_{T,V} + α S_T``;
- :func:`two_step_score` — both, with per-query min-max normalisation: RUN3 (text → visual), RUN2 (text → text),
  RUN1 (Flickr rank → visual, with :func:`flickr_score`);
- :func:`dirichlet_lm_scores`, :func:`text_relevance` — the text relevance S_T: a Dirichlet-smoothed query likelihood
  mixed with an embedding cosine (§4).

Joint embedding (§2.2, RUN4/5): :func:`pseudo_relevance_labels` (mean ± std thresholds, footnote 4),
:func:`sample_triplets`, :class:`TwoViewEmbedding`, :func:`four_triplet_loss` (the V-V, T-T, V-T, T-V hinges),
:func:`train_joint_embedding`, :func:`centroid_scores` (rank by distance from the query to the centroid of a
document's two embeddings).

Diversity (§3): :func:`mmr_rerank` (Maximal Marginal Relevance with penalty β, Carbonell & Goldstein 1998) and
:func:`cluster_share_rerank` (the clustering-based re-ranking of §1), with :func:`batched_kmeans` to build the
clusterings. Metrics of the task are in :mod:`xmr_lib.chapters.ch09.diversity`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "minmax_normalise",
    "ranking_from_scores",
    "flickr_score",
    "prf_score",
    "recombine",
    "two_step_score",
    "dirichlet_lm_scores",
    "text_relevance",
    "mmr_rerank",
    "cluster_share_rerank",
    "batched_kmeans",
    "pseudo_relevance_labels",
    "sample_triplets",
    "TwoViewEmbedding",
    "four_triplet_terms",
    "four_triplet_loss",
    "train_joint_embedding",
    "centroid_scores",
]

# ---------------------------------------------------------------------------------------------------------------
# input checks


def _scores(name: str, x, ndim: int = 2) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != ndim:
        want = {2: "(n_queries, n_docs)", 3: "(n_queries, n_docs, dim)"}[ndim]
        raise ValueError(f"{name}: expected a {ndim}-D array {want}, got shape {a.shape}")
    return a


def _mask(mask, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"mask: expected shape {shape} (one flag per document of each list), got {m.shape}")
    return m.astype(bool)


def _second_step(shape: tuple[int, int], features, similarity) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Validate exactly one of ``features`` (Q,N,D) / ``similarity`` (Q,N,N)."""
    if (features is None) == (similarity is None):
        raise ValueError("give exactly one of features= (Q, N, D) or similarity= (Q, N, N)")
    Q, N = shape
    if features is not None:
        f = _scores("features", features, 3)
        if f.shape[:2] != (Q, N):
            raise ValueError(f"features: expected shape ({Q}, {N}, D) to match the scores, got {f.shape}")
        return f, None
    s = _scores("similarity", similarity, 3)
    if s.shape != (Q, N, N):
        raise ValueError(f"similarity: expected shape ({Q}, {N}, {N}) to match the scores, got {s.shape}")
    return None, s


# ---------------------------------------------------------------------------------------------------------------
# scores and rankings


def minmax_normalise(scores, mask=None) -> np.ndarray:
    """Per-query min-max normalisation to [0, 1] over the documents of each list.

    Args:
        scores: (Q, N) scores. mask: (Q, N) bool, ``True`` for real documents (default: all).
    Returns:
        (Q, N) float64: ``(s − min) / (max − min)`` per row over the masked-in entries; a row whose scores are
        all equal becomes 1 (every document equally relevant); masked-out entries are 0.
    """
    s = _scores("scores", scores)
    m = _mask(mask, s.shape)
    lo = np.where(m, s, np.inf).min(1, keepdims=True)
    hi = np.where(m, s, -np.inf).max(1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 1.0)
    return np.where(m, out, 0.0)


def ranking_from_scores(scores, mask=None) -> np.ndarray:
    """Document indices of each list, best score first (stable: ties keep list order; masked-out entries last).

    Args:
        scores: (Q, N). mask: (Q, N) bool or None.
    Returns:
        (Q, N) int64 permutation of ``range(N)`` per row.
    """
    s = _scores("scores", scores)
    m = _mask(mask, s.shape)
    key = np.where(m, -s, np.inf)
    return np.argsort(key, axis=1, kind="stable")


def flickr_score(ranks, n=None) -> np.ndarray:
    """The paper's "normalised Flickr relevance score" ``S_F = (n − r) / r`` (§2.1, RUN1).

    Args:
        ranks: (Q, N) 1-based Flickr ranks ``r`` (0 marks padding; its score is 0).
        n: number of images Flickr returned per query: an int, a (Q,) array, or None (= the number of non-zero
            ranks in each row).
    Returns:
        (Q, N) float64, ``n − 1`` at rank 1 down to 0 at rank n. Heavy-tailed (≈ n/r): as weights of Eq. (1) it
        concentrates the feedback on the first few photos; min-max normalise it before mixing with other scores.
    """
    r = np.asarray(ranks)
    if r.ndim != 2:
        raise ValueError(f"ranks: expected a 2-D array (n_queries, n_docs) of 1-based ranks, got shape {r.shape}")
    if np.any(r < 0):
        raise ValueError(f"ranks: expected 1-based ranks (0 for padding), got a minimum of {r.min()}")
    valid = r > 0
    if n is None:
        n_arr = valid.sum(1).astype(np.float64)
    else:
        n_arr = np.broadcast_to(np.asarray(n, dtype=np.float64), (r.shape[0],))
    if np.any(r.max(1) > n_arr):
        raise ValueError(f"ranks: a rank exceeds n (max ranks {r.max(1).tolist()} vs n {n_arr.tolist()})")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (n_arr[:, None] - r) / np.where(valid, r, 1)
    return np.where(valid, out, 0.0)


def _topk_valid(s: np.ndarray, m: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (Q,k) of the k best valid entries per row (stable), and whether each pick is a real document."""
    order = ranking_from_scores(s, m)[:, :k]
    return order, np.take_along_axis(m, order, 1)


def prf_score(first, k: int, *, features=None, similarity=None, mask=None) -> np.ndarray:
    """Eq. (1): the two-step pseudo-relevance-feedback score of every document of every list.

    ``S(d, q) = Σ_{d_i ∈ NN^K(q)} s(d_i, q) · sim(d, d_i) / Σ_{d_i ∈ NN^K(q)} s(d_i, q)`` where ``s`` is the
    first-step score, ``NN^K(q)`` the K documents it ranks highest, and ``sim`` the second-step similarity
    (the dot product of ``features``, or ``similarity`` given directly). With text first and visual second this is
    the paper's cross-media score S_{T,V}; with the same modality twice it is classical PRF.

    Args:
        first: (Q, N) first-step scores, ≥ 0 on real documents (they are weights; min-max normalise first).
        k: K, the number of feedback documents (clipped to the list length; a list with fewer real documents
            uses all of them).
        features: (Q, N, D) second-step features (L2-normalise them for cosine similarity), or
        similarity: (Q, N, N) second-step document–document similarities.
        mask: (Q, N) bool, real documents (default all).
    Returns:
        (Q, N) float64 scores (0 on masked-out entries). If the K weights of a list sum to 0, they count equally.
    """
    s = _scores("first", first)
    m = _mask(mask, s.shape)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected a positive int (number of feedback documents), got {k!r}")
    if np.any(s[m] < 0):
        raise ValueError(
            f"first: eq. (1) uses first-step scores as weights, which must be >= 0; got a minimum of "
            f"{s[m].min():.4g} (min-max normalise them with minmax_normalise first)"
        )
    f, sim = _second_step(s.shape, features, similarity)
    Q, N = s.shape
    k = int(min(k, N))
    top, real = _topk_valid(s, m, k)  # (Q, K)
    w = np.where(real, np.take_along_axis(s, top, 1), 0.0)  # (Q, K)
    tot = w.sum(1, keepdims=True)
    uniform = real / np.maximum(real.sum(1, keepdims=True), 1)
    w = np.where(tot > 0, w / np.where(tot > 0, tot, 1.0), uniform)
    if f is not None:
        fk = np.take_along_axis(f, top[:, :, None], 1)  # (Q, K, D)
        sk = np.einsum("qnd,qkd->qnk", f, fk)  # (Q, N, K)
    else:
        sk = np.take_along_axis(sim, top[:, None, :], 2)  # (Q, N, K)
    out = np.einsum("qnk,qk->qn", sk, w)
    return np.where(m, out, 0.0)


def recombine(prf, first, alpha: float) -> np.ndarray:
    """The convex recombination of §2.1: ``(1 − α) · prf + α · first``, elementwise on (Q, N) arrays."""
    a, b = _scores("prf", prf), _scores("first", first)
    if a.shape != b.shape:
        raise ValueError(f"first: expected the shape of prf {a.shape}, got {b.shape}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha: expected a weight in [0, 1], got {alpha!r}")
    return (1.0 - alpha) * a + alpha * b


def two_step_score(
    first, k: int, alpha: float, *, features=None, similarity=None, mask=None, normalise: bool = True
) -> np.ndarray:
    """The paper's two-step relevance ``S̃ = (1 − α) S_PRF + α S_first`` for a whole batch of lists.

    RUN3 (cross-media): ``first`` = text relevance, ``features`` = visual features; RUN2 (text only):
    ``features`` = text features; RUN1 (visual only): ``first = flickr_score(ranks)``, visual features.

    With ``normalise=True`` (our default; the paper does not say) the first-step scores are min-max normalised per
    list before Eq. (1) (they become non-negative weights) and the PRF score is min-max normalised before the
    recombination, so that α weighs two scores on the same [0, 1] scale.

    Returns:
        (Q, N) float64 scores (0 on masked-out entries).
    """
    s = _scores("first", first)
    m = _mask(mask, s.shape)
    f = minmax_normalise(s, m) if normalise else s
    p = prf_score(f, k, features=features, similarity=similarity, mask=m)
    if normalise:
        p = minmax_normalise(p, m)
    return np.where(m, recombine(p, f, alpha), 0.0)


def dirichlet_lm_scores(query_counts, doc_counts, doc_index, *, mu: float = 10.0, collection_counts=None) -> np.ndarray:
    """Dirichlet-smoothed query likelihood ``log p(q|d) = Σ_w c(w,q) log((c(w,d) + μ p(w|C)) / (|d| + μ))``.

    Args:
        query_counts: (Q, V) term counts of the queries (dense or scipy sparse).
        doc_counts: (M, V) term counts of the document pool (dense or scipy sparse).
        doc_index: (Q, N) int, the pool row of each document of each list (−1 for padding).
        mu: the Dirichlet prior μ (short Flickr texts: ~10; long documents: ~1000-2500).
        collection_counts: (V,) counts defining p(w|C) (default: the column sums of ``doc_counts``). Query terms
            absent from the collection add the same constant to every document and are skipped.
    Returns:
        (Q, N) float64 log-likelihoods (padding: −inf).
    """
    import scipy.sparse as sp

    qc = sp.csr_matrix(query_counts, dtype=np.float64)
    dc = sp.csr_matrix(doc_counts, dtype=np.float64)
    idx = np.asarray(doc_index)
    if qc.shape[1] != dc.shape[1]:
        raise ValueError(
            f"doc_counts: expected {qc.shape[1]} columns (the vocabulary of query_counts), got shape {dc.shape}"
        )
    if idx.ndim != 2 or idx.shape[0] != qc.shape[0]:
        raise ValueError(f"doc_index: expected shape ({qc.shape[0]}, n_docs), got {idx.shape}")
    if idx.size and idx.max() >= dc.shape[0]:
        raise ValueError(f"doc_index: entries must be < {dc.shape[0]} (pool size), got max {idx.max()}")
    if mu <= 0:
        raise ValueError(f"mu: expected a positive Dirichlet prior, got {mu!r}")
    cc = np.asarray(dc.sum(0)).ravel() if collection_counts is None else np.asarray(collection_counts, float)
    if cc.shape != (dc.shape[1],):
        raise ValueError(f"collection_counts: expected shape ({dc.shape[1]},), got {cc.shape}")
    cols = np.unique(qc.indices)
    cols = cols[cc[cols] > 0]
    pc = cc[cols] / cc.sum()
    tf = dc[:, cols].toarray()  # (M, |q-vocab|)
    dl = np.asarray(dc.sum(1)).ravel()  # (M,)
    logp = np.log((tf + mu * pc) / (dl[:, None] + mu))  # (M, |q-vocab|)
    qv = qc[:, cols].toarray()  # (Q, |q-vocab|)
    out = np.einsum("qnw,qw->qn", logp[np.clip(idx, 0, None)], qv)
    return np.where(idx >= 0, out, -np.inf)


def text_relevance(
    query_texts: Sequence[str],
    doc_texts: Sequence[str],
    doc_index,
    *,
    query_embeddings=None,
    doc_embeddings=None,
    lm_weight: float = 0.5,
    mu: float = 10.0,
    mask=None,
) -> np.ndarray:
    """The paper's textual relevance S_T(d, q): a mixture of a Dirichlet LM score and an embedding cosine (§4).

    ``S_T = w · minmax(log p(q|d)) + (1 − w) · minmax(cos(e_q, e_d))`` per list, ``w = lm_weight``. The paper
    mixes the Dirichlet-smoothed LM with DESM embeddings and gives neither the weight nor μ (ours: 0.5 and 10,
    Flickr texts being a few words). Without embeddings (or with ``lm_weight=1``) it is the LM score alone.

    Args:
        query_texts: Q strings. doc_texts: M pool strings. doc_index: (Q, N) pool index (−1 = padding).
        query_embeddings: (Q, E), doc_embeddings: (M, E) L2-normalised text embeddings (e.g. MiniLM).
    Returns:
        (Q, N) float64 in [0, 1] (0 on padding).
    """
    from sklearn.feature_extraction.text import CountVectorizer

    idx = np.asarray(doc_index)
    if idx.ndim != 2 or idx.shape[0] != len(query_texts):
        raise ValueError(f"doc_index: expected shape ({len(query_texts)}, n_docs), got {idx.shape}")
    if not 0.0 <= lm_weight <= 1.0:
        raise ValueError(f"lm_weight: expected a weight in [0, 1], got {lm_weight!r}")
    m = _mask(mask, idx.shape) & (idx >= 0)
    vec = CountVectorizer(token_pattern=r"(?u)\b\w+\b", lowercase=True)
    dc = vec.fit_transform(list(doc_texts))
    lm = dirichlet_lm_scores(vec.transform(list(query_texts)), dc, idx, mu=mu)
    lm = minmax_normalise(np.where(m, lm, 0.0), m)
    if query_embeddings is None or doc_embeddings is None or lm_weight == 1.0:
        return lm
    qe = _scores("query_embeddings", query_embeddings)
    de = _scores("doc_embeddings", doc_embeddings)
    if qe.shape[0] != idx.shape[0] or de.shape[0] != len(doc_texts) or qe.shape[1] != de.shape[1]:
        raise ValueError(
            f"query_embeddings/doc_embeddings: expected ({idx.shape[0]}, E) and ({len(doc_texts)}, E), "
            f"got {qe.shape} and {de.shape}"
        )
    cos = np.einsum("qne,qe->qn", de[np.clip(idx, 0, None)], qe)
    return np.where(m, lm_weight * lm + (1 - lm_weight) * minmax_normalise(cos, m), 0.0)


# ---------------------------------------------------------------------------------------------------------------
# diversification


def _pairwise_row(f, sim, pick):
    """Similarity of every document to the picked one: (Q, N)."""
    ar = np.arange(len(pick))
    if f is not None:
        return np.einsum("qnd,qd->qn", f, f[ar, pick])
    return sim[ar, pick, :]


def mmr_rerank(
    relevance, beta: float, *, features=None, similarity=None, n: int | None = None, mask=None
) -> np.ndarray:
    """Maximal Marginal Relevance re-ranking with a penalty β (§3), batched over queries.

    Greedily ``S_{t+1} = S_t ∪ {argmax_{d ∉ S_t} [rel(d) − β · max_{d' ∈ S_t} sim(d, d')]}``, ``S_0 = ∅`` (so the
    first pick is the most relevant document). β = 0 reproduces the relevance order exactly; a larger β promotes
    documents unlike those already chosen (β is a *penalty*: bigger = more diverse, unlike LangChain's λ; the
    classic ``λ rel − (1 − λ) max sim`` has the same argmax for ``β = (1 − λ) / λ``). Put ``rel`` and ``sim`` on
    comparable scales (e.g. min-max normalised relevance, cosine similarity).

    Args:
        relevance: (Q, N) scores. beta: the penalty β ≥ 0.
        features: (Q, N, D) (similarity = dot product) or similarity: (Q, N, N).
        n: number of greedy picks (default: the whole list); the rest follows by relevance.
        mask: (Q, N) bool, real documents; masked-out entries end the ranking.
    Returns:
        (Q, N) int64, a permutation of each list: the MMR order.
    """
    rel = _scores("relevance", relevance)
    m = _mask(mask, rel.shape)
    if not np.isfinite(float(beta)) or beta < 0:
        raise ValueError(f"beta: expected a penalty >= 0, got {beta!r}")
    f, sim = _second_step(rel.shape, features, similarity)
    Q, N = rel.shape
    n = N if n is None else int(n)
    if not 0 <= n <= N:
        raise ValueError(f"n: expected 0 <= n <= {N} (the list length), got {n}")
    ar = np.arange(Q)
    selected = np.zeros((Q, N), dtype=bool)
    maxsim = np.zeros((Q, N))
    order = np.empty((Q, N), dtype=np.int64)
    low = np.finfo(np.float64).min  # masked-out documents: after every real one, still selectable (permutation)
    base = np.where(m, rel, low)
    for t in range(n):
        obj = base - beta * maxsim if t else base.copy()
        obj = np.where(m, obj, low)
        obj[selected] = -np.inf
        pick = obj.argmax(1)
        order[:, t] = pick
        selected[ar, pick] = True
        s_new = _pairwise_row(f, sim, pick)
        maxsim = s_new if t == 0 else np.maximum(maxsim, s_new)
    if n < N:
        key = np.where(selected, np.inf, np.where(m, -rel, np.finfo(np.float64).max))
        rest = np.argsort(key, axis=1, kind="stable")[:, : N - n]
        order[:, n:] = rest
    return order


def cluster_share_rerank(relevance, clusterings, *, depth: int | None = None, mask=None) -> np.ndarray:
    """The clustering-based diversification of §1: prefer documents sharing few clusters with those ranked above.

    Greedy: the next document is the candidate with the fewest co-members already ranked, counted over all
    clusterings, ``Σ_r #{d' ∈ S : c_r(d') = c_r(d)}``; ties go to the more relevant one. Candidates are the
    ``depth`` most relevant documents of each list (the paper re-ranks a top list; ``None`` = all); the other
    documents follow by relevance. The paper gives no more detail; this is our concrete reading.

    Args:
        relevance: (Q, N) scores.
        clusterings: (Q, N) or (Q, R, N) int cluster labels ≥ 0 (R clusterings, e.g. k-means on visual, text and
            joint features with several k).
        depth: candidate pool size per list. mask: (Q, N) bool.
    Returns:
        (Q, N) int64 permutation of each list.
    """
    rel = _scores("relevance", relevance)
    m = _mask(mask, rel.shape)
    Q, N = rel.shape
    lab = np.asarray(clusterings)
    if lab.ndim == 2:
        lab = lab[:, None, :]
    if lab.ndim != 3 or lab.shape[0] != Q or lab.shape[2] != N:
        raise ValueError(f"clusterings: expected shape ({Q}, {N}) or ({Q}, R, {N}), got {np.shape(clusterings)}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"clusterings: expected integer labels, got dtype {lab.dtype}")
    lab = np.where(m[:, None, :], lab, 0)
    if lab.min() < 0:
        raise ValueError(f"clusterings: labels of real documents must be >= 0, got {lab.min()}")
    depth = N if depth is None else int(depth)
    if depth < 1:
        raise ValueError(f"depth: expected a positive candidate-pool size, got {depth}")
    R, C = lab.shape[1], int(lab.max()) + 1
    by_rel = ranking_from_scores(rel, m)
    relrank = np.empty_like(by_rel)
    np.put_along_axis(relrank, by_rel, np.arange(N)[None, :].repeat(Q, 0), 1)
    cand = (relrank < depth) & m
    n_cand = cand.sum(1)
    counts = np.zeros((Q, R, C), dtype=np.int64)
    selected = np.zeros((Q, N), dtype=bool)
    order = np.empty((Q, N), dtype=np.int64)
    ar = np.arange(Q)
    qi, ri = ar[:, None, None], np.arange(R)[None, :, None]
    for t in range(int(n_cand.max()) if Q else 0):
        cost = counts[qi, ri, lab].sum(1)  # (Q, N)
        key = cost.astype(np.float64) * (N + 1) + relrank
        key[~cand | selected] = np.inf
        pick = key.argmin(1)
        active = t < n_cand
        pick = np.where(active, pick, 0)
        order[:, t] = pick
        selected[ar[active], pick[active]] = True
        np.add.at(counts, (ar[active][:, None], np.arange(R)[None, :], lab[ar[active], :, pick[active]]), 1)
    # documents not picked greedily follow by relevance (fills each row after its n_cand picks)
    key = np.where(selected, np.inf, relrank.astype(np.float64))
    rest = np.argsort(key, axis=1, kind="stable")
    pos = np.arange(N)[None, :] - n_cand[:, None]
    fill = np.take_along_axis(rest, np.clip(pos, 0, N - 1), 1)
    return np.where(pos >= 0, fill, order)


def batched_kmeans(x, k: int, *, n_iter: int = 25, seed: int = 0, mask=None) -> np.ndarray:
    """k-means (Lloyd) run independently on every list of a batch, vectorised over lists.

    Args:
        x: (Q, N, D) features. k: clusters per list (clipped to N). n_iter: Lloyd iterations.
        seed: seeds the initial centres (k distinct real documents per list). mask: (Q, N) bool.
    Returns:
        (Q, N) int64 labels in [0, k) (masked-out entries: 0).
    """
    f = _scores("x", x, 3)
    Q, N, D = f.shape
    m = _mask(mask, (Q, N))
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected a positive int, got {k!r}")
    k = int(min(k, N))
    rng = np.random.default_rng(seed)
    key = np.where(m, rng.random((Q, N)), 2.0)
    init = np.argsort(key, axis=1)[:, :k]
    c = np.take_along_axis(f, init[:, :, None], 1)  # (Q, k, D)
    w = m.astype(np.float64)
    lab = np.zeros((Q, N), dtype=np.int64)
    for _ in range(n_iter):
        d = (f**2).sum(-1)[:, :, None] - 2 * np.einsum("qnd,qkd->qnk", f, c) + (c**2).sum(-1)[:, None, :]
        new = d.argmin(2)
        onehot = (new[:, :, None] == np.arange(k)) * w[:, :, None]  # (Q, N, k)
        cnt = onehot.sum(1)  # (Q, k)
        sums = np.einsum("qnk,qnd->qkd", onehot, f)
        c = np.where(cnt[:, :, None] > 0, sums / np.maximum(cnt, 1)[:, :, None], c)
        if np.array_equal(new, lab):
            break
        lab = new
    return np.where(m, lab, 0)


# ---------------------------------------------------------------------------------------------------------------
# joint visual-textual embedding (RUN4 / RUN5)


def pseudo_relevance_labels(scores, mask=None, n_std: float = 1.0) -> np.ndarray:
    """Footnote 4: within each list, positive if ``score > mean + n_std·std``, negative if ``< mean − n_std·std``.

    Args:
        scores: (Q, N) (e.g. the cross-media score). mask: (Q, N) bool. n_std: the threshold in std units.
    Returns:
        (Q, N) int8 in {1 (pseudo-relevant), 0 (unused), −1 (pseudo-non-relevant)}; masked-out entries 0.
    """
    s = _scores("scores", scores)
    m = _mask(mask, s.shape)
    cnt = np.maximum(m.sum(1, keepdims=True), 1)
    mean = np.where(m, s, 0).sum(1, keepdims=True) / cnt
    std = np.sqrt(np.where(m, (s - mean) ** 2, 0).sum(1, keepdims=True) / cnt)
    out = np.zeros(s.shape, dtype=np.int8)
    out[(s > mean + n_std * std) & m] = 1
    out[(s < mean - n_std * std) & m] = -1
    return out


def _sample_from_groups(
    flat_idx: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    want: np.ndarray,
    rng: np.random.Generator,
    exclude_group: bool = False,
) -> np.ndarray:
    """For each entry of ``want`` (a group id), a uniform member of that group (or of any *other* group)."""
    order = np.argsort(group, kind="stable")
    flat_idx, group = flat_idx[order], group[order]
    counts = np.bincount(group, minlength=n_groups)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if not exclude_group:
        u = (rng.random(len(want)) * counts[want]).astype(np.int64)
        return flat_idx[start[want] + u]
    u = (rng.random(len(want)) * (len(flat_idx) - counts[want])).astype(np.int64)
    u = np.where(u >= start[want], u + counts[want], u)
    return flat_idx[u]


def sample_triplets(
    labels, n: int, *, seed: int | np.random.Generator = 0, p_other: float = 0.5, mask=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triplets (d_i, d_j, d_k) from pseudo-relevance labels, as flat indices into the (Q·N) documents.

    ``d_i`` and ``d_j`` are two distinct pseudo-relevant documents of the same query; ``d_k`` is, with probability
    ``1 − p_other``, a pseudo-non-relevant document of that query, else a pseudo-relevant document of *another*
    query ("documents relevant to other queries", §2.2). Queries with fewer than 2 positives are not used.

    Args:
        labels: (Q, N) in {1, 0, −1} from :func:`pseudo_relevance_labels`. n: number of triplets.
        seed: int or numpy Generator. p_other: share of other-query negatives. mask: (Q, N) bool.
    Returns:
        ``(i, j, k)``, three (n,) int64 arrays of flat indices ``q * N + position``.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"labels: expected a 2-D array (n_queries, n_docs), got shape {lab.shape}")
    Q, N = lab.shape
    m = _mask(mask, (Q, N))
    if not 0.0 <= p_other <= 1.0:
        raise ValueError(f"p_other: expected a probability in [0, 1], got {p_other!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    pos = (lab == 1) & m
    neg = (lab == -1) & m
    n_pos = pos.sum(1)
    eligible = np.flatnonzero(n_pos >= 2)
    if len(eligible) == 0:
        raise ValueError(f"labels: no query has 2 or more positives (positives per query: {n_pos.tolist()})")
    q = rng.choice(eligible, size=n)
    pq, pflat = np.nonzero(pos)  # row-major: grouped by query
    pflat = pq * N + pflat
    start = np.concatenate([[0], np.cumsum(n_pos)[:-1]])
    ui = (rng.random(n) * n_pos[q]).astype(np.int64)  # i: a uniform positive of q
    uj = 1 + (rng.random(n) * (n_pos[q] - 1)).astype(np.int64)  # j: a uniform *other* positive of q
    i = pflat[start[q] + ui]
    j = pflat[start[q] + (ui + uj) % n_pos[q]]
    # k: a negative of q, or a positive of another query
    has_neg = neg.sum(1) > 0
    has_other = n_pos.sum() - n_pos > 0  # another query has positives
    other = ((rng.random(n) < p_other) & has_other[q]) | ~has_neg[q]
    if np.any(other & ~has_other[q]):
        raise ValueError("labels: a query has neither pseudo-negatives nor other queries' positives to contrast")
    k = np.empty(n, dtype=np.int64)
    if (~other).any():
        nq, nflat = np.nonzero(neg)
        k[~other] = _sample_from_groups(nq * N + nflat, nq, Q, q[~other], rng)
    if other.any():
        k[other] = _sample_from_groups(pflat, pq, Q, q[other], rng, exclude_group=True)
    return i.astype(np.int64), j.astype(np.int64), k


class TwoViewEmbedding(nn.Module):
    """Two-branch network of Wang, Li & Lazebnik (CVPR 2016): per view ``Linear → ReLU → Linear``, L2-normalised.

    Args:
        visual_dim, text_dim: input feature sizes. hidden: width of each branch's hidden layer.
        dim: size of the joint space. dropout: on the hidden layer.
    ``forward(v (B, visual_dim), t (B, text_dim)) → (p_v (B, dim), p_t (B, dim))``, unit-norm rows.
    """

    def __init__(self, visual_dim: int, text_dim: int, hidden: int = 512, dim: int = 128, dropout: float = 0.1):
        super().__init__()
        for name, v in (("visual_dim", visual_dim), ("text_dim", text_dim), ("hidden", hidden), ("dim", dim)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        self.visual_branch = nn.Sequential(
            nn.Linear(visual_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.text_branch = nn.Sequential(
            nn.Linear(text_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )

    def visual(self, v: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual_branch(v), dim=-1)

    def text(self, t: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_branch(t), dim=-1)

    def forward(self, v: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.visual(v), self.text(t)


def four_triplet_terms(vi, ti, vj, tj, vk, tk, margin: float = 0.2) -> torch.Tensor:
    """The four hinge terms of §2.2 for a batch of triplets (d_i, d_j, d_k), Euclidean distance d:

    V-V ``[m + d(p_i^V, p_j^V) − d(p_i^V, p_k^V)]_+``, T-T ``[m + d(p_i^T, p_j^T) − d(p_i^T, p_k^T)]_+``,
    V-T ``[m + d(p_i^V, p_j^T) − d(p_i^V, p_k^T)]_+``, T-V ``[m + d(p_i^T, p_j^V) − d(p_i^T, p_k^V)]_+``.

    Args: six (B, dim) embeddings (V = visual, T = textual projections of d_i, d_j, d_k); margin m.
    Returns: (B, 4) tensor, columns V-V, T-T, V-T, T-V.
    """
    shapes = {a.shape for a in (vi, ti, vj, tj, vk, tk)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"embeddings: expected six (B, dim) tensors of one shape, got {sorted(map(tuple, shapes))}")

    def hinge(a, p, n):
        return F.relu(margin + (a - p).norm(dim=1) - (a - n).norm(dim=1))

    return torch.stack([hinge(vi, vj, vk), hinge(ti, tj, tk), hinge(vi, tj, tk), hinge(ti, vj, vk)], dim=1)


def four_triplet_loss(vi, ti, vj, tj, vk, tk, margin: float = 0.2) -> torch.Tensor:
    """``L(d_i, d_j, d_k)`` of §2.2 — the sum of the four hinges (:func:`four_triplet_terms`), mean over the batch."""
    return four_triplet_terms(vi, ti, vj, tj, vk, tk, margin).sum(1).mean()


def train_joint_embedding(
    visual,
    text,
    labels,
    *,
    mask=None,
    hidden: int = 512,
    dim: int = 128,
    margin: float = 0.2,
    epochs: int = 10,
    triplets_per_epoch: int = 4096,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    p_other: float = 0.5,
    dropout: float = 0.1,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> tuple[TwoViewEmbedding, list[float]]:
    """Train :class:`TwoViewEmbedding` with :func:`four_triplet_loss` on pseudo-relevance triplets.

    Args:
        visual: (Q, N, Dv) and text: (Q, N, Dt) document features of every list.
        labels: (Q, N) pseudo-relevance labels (:func:`pseudo_relevance_labels`). mask: (Q, N) bool.
        Fresh triplets (:func:`sample_triplets`) are drawn every epoch; Adam.
    Returns:
        (model in eval mode on ``device``, mean loss per epoch).
    """
    from tqdm.auto import tqdm

    v = _scores("visual", visual, 3)
    t = _scores("text", text, 3)
    if v.shape[:2] != t.shape[:2] or v.shape[:2] != np.shape(labels):
        raise ValueError(
            f"text/labels: expected lists of shape {v.shape[:2]}, got text {t.shape[:2]} and labels {np.shape(labels)}"
        )
    Q, N = v.shape[:2]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vt = torch.as_tensor(v.reshape(Q * N, -1), dtype=torch.float32, device=device)
    tt = torch.as_tensor(t.reshape(Q * N, -1), dtype=torch.float32, device=device)
    model = TwoViewEmbedding(v.shape[2], t.shape[2], hidden, dim, dropout).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = []
    for _ in tqdm(range(epochs), desc="joint embedding", disable=not progress, leave=False):
        model.train()
        i, j, k = (
            torch.as_tensor(a, device=device)
            for a in sample_triplets(labels, triplets_per_epoch, seed=rng, p_other=p_other, mask=mask)
        )
        tot, cnt = 0.0, 0
        for b in range(0, triplets_per_epoch, batch_size):
            sl = slice(b, b + batch_size)
            pv, pt = model(vt[torch.cat([i[sl], j[sl], k[sl]])], tt[torch.cat([i[sl], j[sl], k[sl]])])
            nb = len(i[sl])
            loss = four_triplet_loss(
                pv[:nb], pt[:nb], pv[nb : 2 * nb], pt[nb : 2 * nb], pv[2 * nb :], pt[2 * nb :], margin
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.detach().item() * nb
            cnt += nb
        history.append(tot / cnt)
    model.eval()
    return model, history


@torch.no_grad()
def centroid_scores(
    model: TwoViewEmbedding, visual, text, query_text, *, mask=None, device: str | None = None
) -> np.ndarray:
    """RUN4's ranking score: minus the distance from the query's text embedding to each document's centroid.

    Args:
        model: a trained :class:`TwoViewEmbedding`.
        visual: (Q, N, Dv), text: (Q, N, Dt) document features. query_text: (Q, Dt) query text features.
        mask: (Q, N) bool.
    Returns:
        (Q, N) float64 ``−‖p_q^T − (p_d^V + p_d^T) / 2‖`` (higher is better; masked-out entries: −inf).
    """
    v = _scores("visual", visual, 3)
    t = _scores("text", text, 3)
    qt = _scores("query_text", query_text, 2)
    Q, N = v.shape[:2]
    if t.shape[:2] != (Q, N) or qt.shape[0] != Q:
        raise ValueError(f"text/query_text: expected ({Q}, {N}, Dt) and ({Q}, Dt), got {t.shape} and {qt.shape}")
    m = _mask(mask, (Q, N))
    dev = device or next(model.parameters()).device
    pv = model.visual(torch.as_tensor(v.reshape(Q * N, -1), dtype=torch.float32, device=dev))
    pt = model.text(torch.as_tensor(t.reshape(Q * N, -1), dtype=torch.float32, device=dev))
    pq = model.text(torch.as_tensor(qt, dtype=torch.float32, device=dev))  # (Q, dim)
    cen = ((pv + pt) / 2).reshape(Q, N, -1)
    d = (cen - pq[:, None, :]).norm(dim=-1).double().cpu().numpy()
    return np.where(m, -d, -np.inf)
