"""Retrieval metrics, vectorised over queries (no per-query Python loop on the hot path).

Conventions for every function:

* ``scores`` is (Q, N): higher = more similar. ``relevance`` is (Q, N) bool (graded values > 0 count as relevant).
* **Tie rule** (``ties="index"``): items are sorted by descending score; equal scores keep ascending database index
  (a stable sort). ``"pessimistic"`` puts irrelevant items first among equal scores, ``"optimistic"`` relevant first.
* **Queries without any relevant item** get AP = NaN and are left out of the mean (as the official revisited
  Oxford/Paris evaluation does); if no query has a relevant item the mean is NaN.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

TIES = ("index", "pessimistic", "optimistic")


def _np(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_pair(scores, relevance) -> tuple[np.ndarray, np.ndarray]:
    s = _np(scores, "scores").astype(np.float64, copy=False)
    r = _np(relevance, "relevance")
    if s.ndim != 2:
        raise ValueError(f"scores: expected a 2-D array (n_queries, n_db), got shape {s.shape}")
    if r.shape != s.shape:
        raise ValueError(f"relevance: expected shape {s.shape} (same as scores), got {r.shape}")
    if s.shape[1] == 0:
        raise ValueError(f"scores: the database is empty (shape {s.shape})")
    if np.isnan(s).any():
        q = int(np.argwhere(np.isnan(s))[0, 0])
        raise ValueError(f"scores: contains NaN (first in query row {q})")
    return s, r > 0


def rank_order(scores, relevance=None, ties: str = "index") -> np.ndarray:
    """Indices that sort each row of ``scores`` (Q,N) best first, with the tie rule; returns (Q,N) int64."""
    s = _np(scores, "scores").astype(np.float64, copy=False)
    if ties not in TIES:
        raise ValueError(f"ties: expected one of {TIES}, got {ties!r}")
    if ties == "index":
        return np.argsort(-s, axis=1, kind="stable")
    if relevance is None:
        raise ValueError(f"ties={ties!r} needs relevance")
    r = _np(relevance, "relevance") > 0
    secondary = r if ties == "pessimistic" else ~r  # lexsort: last key is primary; False sorts first
    n = s.shape[1]
    idx = np.broadcast_to(np.arange(n), s.shape)
    return _lexsort_rows(-s, secondary, idx)


def _lexsort_rows(primary, secondary, tertiary) -> np.ndarray:
    out = np.empty(primary.shape, dtype=np.int64)
    # np.lexsort works on 1-D keys; sort rows by composite keys via successive stable argsorts (vectorised).
    o = np.argsort(tertiary, axis=1, kind="stable")
    o = np.take_along_axis(o, np.argsort(np.take_along_axis(secondary, o, 1), axis=1, kind="stable"), 1)
    o = np.take_along_axis(o, np.argsort(np.take_along_axis(primary, o, 1), axis=1, kind="stable"), 1)
    out[:] = o
    return out


def _ap_sorted(rel: np.ndarray, n_rel: np.ndarray, k: int | None) -> np.ndarray:
    """AP from relevance already in rank order (Q,N) and the number of relevant items per query (Q,)."""
    n_rel = n_rel.astype(np.float64)
    if k is not None:
        if k < 1:
            raise ValueError(f"k: expected a positive integer, got {k}")
        rel = rel[:, :k]
        n_rel = np.minimum(n_rel, rel.shape[1])
    hits = np.cumsum(rel, axis=1, dtype=np.float64)
    ap_sum = (hits / np.arange(1, rel.shape[1] + 1) * rel).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_rel > 0, ap_sum / n_rel, np.nan)


def average_precision(scores, relevance, k: int | None = None, ties: str = "index") -> np.ndarray:
    """Per-query AP (Q,) over the full ranking, or AP@k.

    AP = (1/R) Σ_k P@k · rel_k with R = number of relevant items in the database; with ``k`` the sum stops at
    rank k and R becomes min(R, k) (the normalisation common in hashing papers' mAP@k). NaN where R = 0.
    """
    s, r = _check_pair(scores, relevance)
    return _ap_sorted(np.take_along_axis(r, rank_order(s, r, ties), axis=1), r.sum(1), k)


def mean_average_precision(scores, relevance, k: int | None = None, ties: str = "index") -> float:
    """mAP: the mean of :func:`average_precision` over queries that have a relevant item (NaN if none do)."""
    ap = average_precision(scores, relevance, k=k, ties=ties)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def precision_at_k(scores, relevance, k: int, ties: str = "index") -> float:
    """Mean over queries of (relevant items among the top k) / k."""
    s, r = _check_pair(scores, relevance)
    if k < 1:
        raise ValueError(f"k: expected a positive integer, got {k}")
    top = np.take_along_axis(r, rank_order(s, r, ties)[:, :k], axis=1)
    return float(top.sum(1).mean() / k)


def recall_at_k(scores, relevance, ks: Sequence[int] = (1, 5, 10), ties: str = "index") -> dict[int, float]:
    """Recall@K as cross-modal caption retrieval reports it: the fraction of queries with at least one relevant
    item in the top K. Returns ``{K: value}``."""
    s, r = _check_pair(scores, relevance)
    order = rank_order(s, r, ties)
    rel = np.take_along_axis(r, order[:, :max(ks)], axis=1)
    first = np.where(rel.any(1), rel.argmax(1), np.iinfo(np.int64).max)
    return {int(k): float((first < k).mean()) for k in ks}


def precision_recall_curve(scores, relevance, ties: str = "index") -> tuple[np.ndarray, np.ndarray]:
    """Rank-based PR curve averaged over queries: precision@n and recall@n for n = 1..N; returns (P (N,), R (N,))."""
    s, r = _check_pair(scores, relevance)
    rel = np.take_along_axis(r, rank_order(s, r, ties), axis=1)
    hits = np.cumsum(rel, axis=1)
    n_rel = r.sum(1, keepdims=True)
    keep = n_rel[:, 0] > 0
    prec = hits / np.arange(1, rel.shape[1] + 1)
    rec = hits[keep] / n_rel[keep]
    return prec[keep].mean(0), rec.mean(0)


# ---------------------------------------------------------------------------------------------------------------
# revisited Oxford / Paris


def _ranks_from(ranks_or_scores, n_queries: int) -> np.ndarray:
    a = _np(ranks_or_scores, "ranks_or_scores")
    if a.ndim != 2 or a.shape[0] != n_queries:
        raise ValueError(f"ranks_or_scores: expected (n_queries={n_queries}, n_db), got shape {a.shape}")
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64)
    if np.isnan(a).any():
        raise ValueError("ranks_or_scores: contains NaN")
    return np.argsort(-a, axis=1, kind="stable")


def revisited_ap(order: np.ndarray, positives: list, junk: list, kappas: Sequence[int] = (1, 5, 10)):
    """AP and precision@k per query under the revisited protocol.

    Args:
        order: (Q, N) database indices, best first.
        positives, junk: per query, integer arrays of database indices.
    Junk items are removed from the ranking before AP (positions are counted without them). mP@k follows the
    official code: with 1-based positive positions ``pos``, ``kq = min(max(pos), k)`` and P = #(pos ≤ kq) / kq.
    Vectorised over queries: two (Q,N) boolean gathers, then work on the positives and junk only.
    Returns ``(aps (Q,), prs (Q, len(kappas)))`` with NaN for queries without positives.
    """
    order = np.asarray(order)
    Q, N = order.shape
    def flat(name, lists):
        if len(lists) != Q:
            raise ValueError(f"{name}: expected {Q} entries (one per query), got {len(lists)}")
        arrs = [np.atleast_1d(np.asarray(x, dtype=np.int64)).ravel() for x in lists]
        rows = np.repeat(np.arange(Q), [len(a) for a in arrs])
        cols = np.concatenate(arrs) if arrs else np.zeros(0, np.int64)
        if cols.size and (cols.min() < 0 or cols.max() >= N):
            raise ValueError(f"{name}: database index out of range [0, {N})")
        return rows, cols

    pos_mask = np.zeros((Q, N), dtype=bool)
    pos_mask[flat("positives", positives)] = True
    junk_mask = np.zeros((Q, N), dtype=bool)
    junk_mask[flat("junk", junk)] = True
    junk_mask &= ~pos_mask  # an item that is both counts as positive
    rows, rank = np.nonzero(np.take_along_axis(pos_mask, order, 1))  # positives in rank order, row-major
    jrows, jrank = np.nonzero(np.take_along_axis(junk_mask, order, 1))
    pkey, jkey = rows * N + rank, jrows * N + jrank
    adj = rank - (np.searchsorted(jkey, pkey) - np.searchsorted(jkey, rows * N))  # junk above removed
    n_pos = np.bincount(rows, minlength=Q)
    start = np.concatenate([[0], np.cumsum(n_pos)[:-1]])
    j = np.arange(len(rows)) - start[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        p0 = np.where(adj == 0, 1.0, j / np.maximum(adj, 1))
    p1 = (j + 1) / (adj + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        aps = np.where(n_pos > 0, np.bincount(rows, weights=(p0 + p1) / 2.0, minlength=Q) / np.maximum(n_pos, 1),
                       np.nan)
    last = np.zeros(Q, np.int64)
    np.maximum.at(last, rows, adj + 1)
    prs = np.full((Q, len(kappas)), np.nan)
    for i, k in enumerate(kappas):
        kq = np.minimum(last, k)
        cnt = np.bincount(rows, weights=(adj + 1 <= kq[rows]).astype(np.float64), minlength=Q)
        with np.errstate(invalid="ignore", divide="ignore"):
            prs[:, i] = np.where(n_pos > 0, cnt / np.maximum(kq, 1), np.nan)
    return aps, prs


def revisited_map(ranks_or_scores, gnd: list[dict], kappas: Sequence[int] = (1, 5, 10)) -> dict:
    """Revisited Oxford/Paris evaluation (Radenović et al., CVPR 2018) in the easy / medium / hard setups.

    Args:
        ranks_or_scores: (Q, N) — either database indices best first (integer array) or scores (float, higher =
            better; ranked with a stable sort). NOTE: the official code takes ranks as (N, Q); ours is (Q, N).
        gnd: per query a dict with integer arrays ``'easy'``, ``'hard'``, ``'junk'`` (the official gnd format).
    Setups: easy — positives easy, junk = junk + hard; medium — positives easy + hard, junk = junk;
    hard — positives hard, junk = junk + easy. AP by the official trapezoid rule; mAP over queries with positives.
    Returns ``{'easy'|'medium'|'hard': {'mAP': float, 'mP@k': float, ..., 'aps': (Q,) array}}``.
    """
    order = _ranks_from(ranks_or_scores, len(gnd))
    for i, g in enumerate(gnd):
        for key in ("easy", "hard", "junk"):
            if key not in g:
                raise ValueError(f"gnd[{i}]: missing key {key!r} (need 'easy', 'hard', 'junk')")
    cat = lambda *xs: np.concatenate([np.asarray(x, dtype=np.int64).ravel() for x in xs])  # noqa: E731
    setups = {
        "easy": ([cat(g["easy"]) for g in gnd], [cat(g["junk"], g["hard"]) for g in gnd]),
        "medium": ([cat(g["easy"], g["hard"]) for g in gnd], [cat(g["junk"]) for g in gnd]),
        "hard": ([cat(g["hard"]) for g in gnd], [cat(g["junk"], g["easy"]) for g in gnd]),
    }
    out = {}
    for name, (pos, junk) in setups.items():
        aps, prs = revisited_ap(order, pos, junk, kappas)
        res = {"mAP": float(np.nanmean(aps)) if np.isfinite(aps).any() else float("nan")}
        for i, k in enumerate(kappas):
            res[f"mP@{k}"] = float(np.nanmean(prs[:, i])) if np.isfinite(prs[:, i]).any() else float("nan")
        res["aps"] = aps
        out[name] = res
    return out


# ---------------------------------------------------------------------------------------------------------------
# Hamming ranking for cross-modal hashing


def _codes(x, name: str) -> np.ndarray:
    a = _np(x, name)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected (n, n_bits) codes, got shape {a.shape}")
    a = a.astype(np.float32)
    if ((a == 0) | (a == 1)).all():
        a = 2 * a - 1
    elif not ((a == -1) | (a == 1)).all():
        raise ValueError(f"{name}: codes must be in {{-1,+1}} or {{0,1}}")
    return a


def _labels(x, name: str, n: int) -> np.ndarray:
    a = _np(x, name)
    if a.ndim == 1:
        a = np.eye(int(a.max()) + 1, dtype=bool)[a.astype(np.int64)]
    if a.ndim != 2 or a.shape[0] != n:
        raise ValueError(f"{name}: expected {n} rows of labels ((n,) ids or (n, L) multi-hot), got shape {a.shape}")
    return a > 0


def hamming_distance(query_codes, db_codes) -> np.ndarray:
    """(Q,N) Hamming distances between codes in {-1,+1} or {0,1}: d = (bits − ⟨q, d⟩) / 2."""
    q, d = _codes(query_codes, "query_codes"), _codes(db_codes, "db_codes")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"db_codes: expected {q.shape[1]} bits like query_codes, got {d.shape[1]}")
    if d.shape[0] == 0:
        raise ValueError("db_codes: the database is empty")
    return np.rint((q.shape[1] - q @ d.T) / 2).astype(np.int32)


def hamming_relevance(query_labels, db_labels, nq: int, nd: int) -> np.ndarray:
    """(Q,N) bool: relevant when query and item share at least one label."""
    ql, dl = _labels(query_labels, "query_labels", nq), _labels(db_labels, "db_labels", nd)
    if ql.shape[1] != dl.shape[1]:
        w = max(ql.shape[1], dl.shape[1])
        ql = np.pad(ql, ((0, 0), (0, w - ql.shape[1])))
        dl = np.pad(dl, ((0, 0), (0, w - dl.shape[1])))
    return (ql.astype(np.float32) @ dl.T.astype(np.float32)) > 0


def hamming_map(query_codes, db_codes, query_labels, db_labels, top_k: int | None = None,
                ties: str = "index", chunk: int = 512) -> float:
    """mAP (or mAP@top_k) by Hamming ranking; relevant = shares at least one label.

    Ranking by ascending Hamming distance; ties broken by ascending database index (``ties="index"``; see the
    module docstring for the alternatives). AP@k normalises by min(R, k). Queries are processed in chunks of
    ``chunk`` rows to bound memory (vectorised within a chunk).
    """
    q, d = _codes(query_codes, "query_codes"), _codes(db_codes, "db_codes")
    ql_all = _np(query_labels, "query_labels")
    if len(ql_all) != len(q):
        raise ValueError(f"query_labels: expected {len(q)} rows of labels, got {len(ql_all)}")
    if ties not in TIES:
        raise ValueError(f"ties: expected one of {TIES}, got {ties!r}")
    aps = []
    for s0 in range(0, len(q), chunk):
        dist = hamming_distance(q[s0:s0 + chunk], d)
        rel = hamming_relevance(ql_all[s0:s0 + chunk], db_labels, len(dist), len(d))
        if ties == "index":  # distances are small integers: a stable radix sort is much faster than mergesort
            key = dist.astype(np.uint16)
        else:  # put irrelevant (pessimistic) or relevant (optimistic) items first among equal distances
            first = ~rel if ties == "pessimistic" else rel
            key = (2 * dist + (~first)).astype(np.uint16)
        order = np.argsort(key, axis=1, kind="stable")
        aps.append(_ap_sorted(np.take_along_axis(rel, order, 1), rel.sum(1), top_k))
    ap = np.concatenate(aps) if aps else np.zeros(0)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def hamming_radius_precision(query_codes, db_codes, query_labels, db_labels, radius: int = 2) -> float:
    """Mean precision of the items within Hamming ``radius`` (queries retrieving nothing count 0)."""
    dist = hamming_distance(query_codes, db_codes)
    rel = hamming_relevance(query_labels, db_labels, *dist.shape)
    inside = dist <= radius
    n = inside.sum(1)
    return float(np.where(n > 0, (inside & rel).sum(1) / np.maximum(n, 1), 0.0).mean())


def pr_curve_hamming(query_codes, db_codes, query_labels, db_labels) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of the Hamming ball of radius r = 0..bits, averaged over queries: (P (bits+1,), R)."""
    dist = hamming_distance(query_codes, db_codes)
    rel = hamming_relevance(query_labels, db_labels, *dist.shape)
    bits = _codes(query_codes, "query_codes").shape[1]
    radii = np.arange(bits + 1)
    # per-query histograms of distances for all / relevant items, then cumulative counts per radius
    Q = dist.shape[0]
    idx = dist + (bits + 1) * np.arange(Q)[:, None]
    tot = np.bincount(idx.ravel(), minlength=Q * (bits + 1)).reshape(Q, bits + 1).cumsum(1)
    hit = np.bincount(idx.ravel(), weights=rel.ravel(), minlength=Q * (bits + 1)).reshape(Q, bits + 1).cumsum(1)
    n_rel = rel.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(tot > 0, hit / np.maximum(tot, 1), 0.0).mean(0)
        rec = (hit / np.maximum(n_rel, 1)).mean(0)
    return prec[radii], rec[radii]


def topn_precision(scores, relevance, ns: Sequence[int] = (100, 500, 1000)) -> dict[int, float]:
    """Top-N precision curve points: ``{N: precision@N}``."""
    return {int(n): precision_at_k(scores, relevance, min(n, _np(scores, "scores").shape[1])) for n in ns}


# ---------------------------------------------------------------------------------------------------------------
# incremental learning


def average_forgetting(R) -> float:
    """Average forgetting after the last step: for each earlier task j, the best value it had at any earlier step
    minus its value now, averaged over tasks j < T (Chaudhry et al. 2018; thesis Eq. 6.12).

    ``R`` is (T, T): R[i, j] = metric on task j after training step i (entries j > i are ignored).
    """
    r = _np(R, "R").astype(np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 2:
        raise ValueError(f"R: expected a square (T, T) matrix with T ≥ 2, got shape {r.shape}")
    T = r.shape[0]
    f = [np.max(r[:T - 1, j][j:]) - r[T - 1, j] for j in range(T - 1)]
    return float(np.mean(f))
