"""Retrieval metrics: mAP, precision/recall@k, the revisited Oxford/Paris protocol, Hamming ranking, forgetting.

Every function takes NumPy arrays or torch tensors and returns NumPy arrays or Python floats. Hot paths are
vectorised over queries (queries are processed in chunks only to bound memory).

Conventions shared by the score-based functions (each docstring repeats what applies to it):

* ``scores`` is ``(Q, N)``: query i against database item j, **higher = better**. Hamming functions rank by
  **ascending** distance instead.
* ``relevance`` is ``(Q, N)``: bool, or graded (any number), where a value ``> 0`` counts as relevant.
* **Ties** (``ties=``): ``"index"`` (default) sorts by descending score and keeps equal scores in ascending
  database index (a stable sort); ``"pessimistic"`` puts the irrelevant items first among equal scores,
  ``"optimistic"`` the relevant ones; ``"expected"`` returns the expectation over uniformly random orders of each
  group of tied items (McSherry & Najork, ECIR 2008), computed in closed form, not by sampling.
* **Queries with no relevant item** get ``NaN`` per query and are left out of the means (the official revisited
  Oxford/Paris code does the same); ``empty="zero"`` counts them as 0 instead (what DCMH/SSAH's ``calc_map``
  does: such queries are skipped but still counted in the number of queries). The mean of nothing is ``NaN``.
* Bad input raises ``ValueError`` naming the argument and the shape or value seen.

Sections: ranking metrics (:func:`average_precision`, :func:`mean_average_precision`, :func:`precision_at_k`,
:func:`recall_at_k`, :func:`precision_recall_curve`); the revisited protocol (:func:`revisited_map`,
:func:`revisited_ap`, :func:`revisited_precision_at_k`); Hamming ranking for hashing (:func:`hamming_distance`,
:func:`hamming_relevance`, :func:`hamming_map`, :func:`hamming_topk_precision`, :func:`hamming_radius_precision`,
:func:`pr_curve_hamming`); incremental learning (:func:`task_forgetting`, :func:`average_forgetting`,
:func:`forgetting_curve`, :func:`average_incremental_accuracy`).
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from xmr_lib.core.checks import check_choice, check_int

__all__ = [
    "TIES",
    "NORMALIZE",
    "average_precision",
    "mean_average_precision",
    "precision_at_k",
    "recall_at_k",
    "precision_recall_curve",
    "revisited_ap",
    "revisited_precision_at_k",
    "revisited_map",
    "hamming_distance",
    "hamming_relevance",
    "hamming_map",
    "hamming_topk_precision",
    "hamming_radius_precision",
    "pr_curve_hamming",
    "task_forgetting",
    "average_forgetting",
    "forgetting_curve",
    "average_incremental_accuracy",
]

TIES = ("index", "pessimistic", "optimistic", "expected")
NORMALIZE = ("min", "retrieved", "relevant")
_EMPTY = ("exclude", "zero")
_CHUNK_ELEMS = 1 << 20  # (rows × database items) processed at once: a few MB per temporary array (cache-friendly)


# ================================================================================================================
# input helpers


def _np(x: Any, name: str) -> np.ndarray:
    """A NumPy array from an array-like or a torch tensor (detached, moved to the CPU)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        t = x.detach().cpu()
        if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        return t.numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: cannot be read as an array ({type(x).__name__}): {e}") from None


def _first_nan(a: np.ndarray) -> tuple[int, ...] | None:
    if a.dtype.kind not in "fc":
        return None
    bad = np.isnan(a)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.argwhere(bad)[0])


def _scores(x: Any, name: str = "scores") -> np.ndarray:
    """(Q, N) real scores, no NaN, at least one query and one database item."""
    a = _np(x, name)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_queries, n_db), got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected real numbers, got dtype {a.dtype}")
    if a.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one query, got shape {a.shape}")
    if a.shape[1] == 0:
        raise ValueError(f"{name}: the database is empty (shape {a.shape})")
    where = _first_nan(a)
    if where is not None:
        raise ValueError(f"{name}: NaN score at (query {where[0]}, item {where[1]})")
    if a.dtype.kind in "bu":
        a = a.astype(np.int64)
    return a


def _relevance(x: Any, shape: tuple[int, ...], name: str = "relevance") -> np.ndarray:
    """Bool relevance of the given shape; graded values > 0 count as relevant."""
    a = _np(x, name)
    if a.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} (the same as scores), got {a.shape}")
    if a.dtype == bool:
        return a
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{name}: expected bool or numbers (graded: > 0 is relevant), got dtype {a.dtype}")
    where = _first_nan(a)
    if where is not None:
        raise ValueError(f"{name}: NaN at (query {where[0]}, item {where[1]})")
    return a > 0


def _chunks(n_rows: int, n_cols: int, chunk_size: int | None = None) -> Iterator[slice]:
    step = chunk_size if chunk_size else max(1, _CHUNK_ELEMS // max(1, n_cols))
    for s in range(0, n_rows, step):
        yield slice(s, min(n_rows, s + step))


def _mean(values: np.ndarray, empty: str = "exclude") -> float:
    """Mean over queries; NaN entries (queries without relevant items) excluded, or counted as 0."""
    v = np.asarray(values, dtype=np.float64)
    if empty == "zero":
        v = np.nan_to_num(v, nan=0.0)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


# ================================================================================================================
# ranking core (all functions here take a *key*: smaller = ranked first)


def _order(key: np.ndarray, rel: np.ndarray, ties: str) -> np.ndarray:
    """(C, N) indices sorting each row of ``key`` ascending, equal keys resolved by the tie rule."""
    if ties in ("index", "expected"):  # "expected" only needs the tie groups to be contiguous
        return np.argsort(key, axis=1, kind="stable")
    second = rel if ties == "pessimistic" else ~rel  # False sorts first: irrelevant (pessimistic) / relevant first
    if key.dtype.kind == "u" and key.dtype.itemsize == 1:  # small integer keys (Hamming): one radix sort
        return np.argsort(key.astype(np.uint16) * 2 + second, axis=1, kind="stable")
    return np.lexsort((second, key), axis=1)


def _take_rows(a: np.ndarray, idx: np.ndarray, consume: bool = False) -> np.ndarray:
    """``np.take_along_axis(a, idx, axis=1)`` for 2-D arrays, through a flat ``np.take`` (about 2× faster).
    ``consume=True`` turns ``idx`` (an intp array nobody else uses) into the flat indices in place."""
    offsets = (np.arange(a.shape[0], dtype=np.intp) * a.shape[1])[:, None]
    if consume and idx.dtype == np.intp and idx.flags.writeable:
        idx += offsets
        return np.take(a.ravel(), idx)
    return np.take(a.ravel(), np.add(idx, offsets, dtype=np.intp))


def _tie_groups(sorted_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For keys sorted along axis 1: (start, end) position of the tie group of every position, end exclusive."""
    c, n = sorted_key.shape
    pos = np.arange(n)
    new = np.ones((c, n), dtype=bool)
    new[:, 1:] = sorted_key[:, 1:] != sorted_key[:, :-1]
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    last = np.ones((c, n), dtype=bool)
    last[:, :-1] = new[:, 1:]
    end = np.minimum.accumulate(np.where(last, pos + 1, n)[:, ::-1], axis=1)[:, ::-1]
    return start, end


def _expected_rel_and_terms(sorted_key: np.ndarray, sorted_rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected relevance and expected ``rel_k · P@k`` at every rank k under random orders within tie groups.

    For a group of n tied items holding r relevant ones, preceded by ``b`` items of which ``R_b`` are relevant,
    position k of the group (1-based) is relevant with probability r/n and, given that, is preceded inside the
    group by (k−1)(r−1)/(n−1) relevant items on average, so
    ``E[rel · P] = (r/n) · (R_b + 1 + (k−1)(r−1)/(n−1)) / (b + k)`` (exact, by linearity of expectation).
    """
    c, n = sorted_rel.shape
    start, end = _tie_groups(sorted_key)
    crel = np.zeros((c, n + 1), dtype=np.int64)
    np.cumsum(sorted_rel, axis=1, out=crel[:, 1:])
    r_before = _take_rows(crel, start)
    r_group = _take_rows(crel, end) - r_before
    size = end - start
    pos = np.arange(n)
    within = pos - start  # 0-based position inside the group
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = np.where(size > 1, within * (r_group - 1) / np.maximum(size - 1, 1), 0.0)
    p_rel = r_group / size
    return p_rel, p_rel * (r_before + 1 + inner) / (pos + 1)


def _ap_from_key(key: np.ndarray, rel: np.ndarray, k: int | None, ties: str, normalize: str) -> np.ndarray:
    """Per-row AP (or AP@k) for a chunk; NaN where a row has no relevant item."""
    c, n = rel.shape
    n_rel = np.count_nonzero(rel, axis=1)
    kk = n if k is None else min(k, n)
    order = _order(key, rel, ties)
    if ties == "expected":
        sk = _take_rows(key, order)
        sr = _take_rows(rel, order)
        _, terms = _expected_rel_and_terms(sk, sr)
        num = terms[:, :kk].sum(1)
        n_ret = None
    else:
        sr = _take_rows(rel, order[:, :kk], consume=True)
        n_ret = np.count_nonzero(sr, axis=1)
        first = np.cumsum(n_ret) - n_ret
        rows = np.repeat(np.arange(c), n_ret)
        # flat position of each relevant item (rows ascending, then ranks) → 1-based rank inside its row
        rank = np.flatnonzero(sr).astype(np.float64)
        rank += 1.0 - rows * float(kk)
        hits = np.arange(1.0, rows.size + 1.0)  # relevant items up to and including this rank
        hits -= np.repeat(first, n_ret)
        hits /= rank
        num = np.bincount(rows, weights=hits, minlength=c)
    if k is None or normalize == "relevant":
        den = n_rel
    elif normalize == "min":
        den = np.minimum(n_rel, k)
    else:  # "retrieved"
        den = n_ret
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where(den > 0, num / np.maximum(den, 1), 0.0)
    return np.where(n_rel > 0, ap, np.nan)


def _relevant_in_topk(key: np.ndarray, rel: np.ndarray, k: int, ties: str) -> tuple[np.ndarray, np.ndarray]:
    """(number of relevant items in the top k, probability that the top k holds a relevant item) per row.

    Linear time: only the k-th smallest key and the group of items tied with it are looked at.
    """
    c, n = key.shape
    if k >= n:
        cnt = rel.sum(1).astype(np.float64)
        return cnt, (cnt > 0).astype(np.float64)
    kth = np.partition(key, k - 1, axis=1)[:, k - 1 : k]
    lt, eq = key < kth, key == kth
    slots = k - lt.sum(1)  # places left for the items tied at the k-th key (≥ 1)
    r_lt = (rel & lt).sum(1)
    r_eq = (rel & eq).sum(1)
    n_eq = eq.sum(1)
    if ties == "index":
        sel = eq & (np.cumsum(eq, axis=1) <= slots[:, None])
        cnt = (r_lt + (rel & sel).sum(1)).astype(np.float64)
    elif ties == "pessimistic":
        cnt = (r_lt + np.clip(slots - (n_eq - r_eq), 0, None)).astype(np.float64)
    elif ties == "optimistic":
        cnt = (r_lt + np.minimum(r_eq, slots)).astype(np.float64)
    else:  # expected: slots drawn at random from the tied group
        cnt = r_lt + slots * r_eq / n_eq
        from scipy.special import gammaln

        miss = n_eq - r_eq  # P(no relevant among the slots) = C(miss, slots) / C(n_eq, slots)
        with np.errstate(invalid="ignore"):
            p_none = np.where(
                miss >= slots,
                np.exp(gammaln(miss + 1) - gammaln(miss - slots + 1) - gammaln(n_eq + 1) + gammaln(n_eq - slots + 1)),
                0.0,
            )
        hit = np.where(r_lt > 0, 1.0, 1.0 - p_none)
        return cnt, hit
    return cnt, (cnt > 0).astype(np.float64)


# ================================================================================================================
# ranking metrics on scores


def average_precision(
    scores, relevance, k: int | None = None, *, ties: str = "index", normalize: str = "min"
) -> np.ndarray:
    """Per-query average precision over the full ranking, or AP@k.

    ``AP = (1/R) Σ_{n=1..N} P@n · rel_n`` with ``R`` the number of relevant items in the database (non-interpolated
    AP, thesis Eq. 2.20). With ``k``, the sum stops at rank k and the normaliser is chosen by ``normalize``:

    * ``"min"`` (default): ``min(R, k)``, so a perfect top k scores 1 (the usual AP@k, e.g. ``ml_metrics.apk``);
    * ``"retrieved"``: the number of relevant items inside the top k, as the hashing codes HashNet,
      DeepHash-pytorch and DCMH's MATLAB ``calcMapTopk`` do (0 when none is retrieved);
    * ``"relevant"``: ``R``, i.e. the full-ranking AP with the tail cut off.

    Relevance rule: ``relevance > 0``. Tie rule: ``ties`` (module docstring); ``"expected"`` cannot be combined
    with ``normalize="retrieved"`` (the normaliser would be random). No junk: use :func:`revisited_ap` for that.

    Args:
        scores: (Q, N) float, higher = better.
        relevance: (Q, N) bool or graded.
        k: cut-off rank (≥ 1; values above N act as N), or None for the full ranking.

    Returns:
        (Q,) float64, NaN for queries with no relevant item.
    """
    s = _scores(scores)
    r = _relevance(relevance, s.shape)
    check_choice(ties, "ties", TIES)
    check_choice(normalize, "normalize", NORMALIZE)
    if k is not None:
        k = check_int(k, "k")
        if ties == "expected" and normalize == "retrieved":
            raise ValueError("normalize: 'retrieved' cannot be used with ties='expected'; use 'min' or 'relevant'")
    out = np.empty(s.shape[0])
    for sl in _chunks(*s.shape):
        out[sl] = _ap_from_key(-s[sl], r[sl], k, ties, normalize)
    return out


def mean_average_precision(
    scores, relevance, k: int | None = None, *, ties: str = "index", normalize: str = "min", empty: str = "exclude"
) -> float:
    """mAP: the mean over queries of :func:`average_precision` (same relevance, tie and ``k`` rules).

    Queries with no relevant item are left out (``empty="exclude"``, as the revisited Oxford/Paris code) or count
    as 0 (``empty="zero"``, as DCMH/SSAH's ``calc_map``). Returns NaN when no query counts.
    """
    check_choice(empty, "empty", _EMPTY)
    return _mean(average_precision(scores, relevance, k, ties=ties, normalize=normalize), empty)


def precision_at_k(scores, relevance, k: int, *, ties: str = "index", per_query: bool = False):
    """Precision@k: (relevant items among the top k) / k, averaged over **all** queries.

    Relevance ``> 0``; ties by ``ties`` (``"expected"`` gives the expected count of relevant items). Queries
    without any relevant item count (with precision 0): precision is defined for them. ``1 ≤ k ≤ N``.
    Linear time per query (no sort): only the group of items tied with the k-th score is resolved.

    Returns:
        float, or the (Q,) per-query values with ``per_query=True``.
    """
    s = _scores(scores)
    r = _relevance(relevance, s.shape)
    check_choice(ties, "ties", TIES)
    k = check_int(k, "k", 1, s.shape[1])
    out = np.empty(s.shape[0])
    for sl in _chunks(*s.shape):
        out[sl] = _relevant_in_topk(-s[sl], r[sl], k, ties)[0] / k
    return out if per_query else float(out.mean())


def recall_at_k(
    scores, relevance, ks: Sequence[int] = (1, 5, 10), *, ties: str = "index", per_query: bool = False
) -> dict:
    """Recall@K **as cross-modal (image–caption) retrieval reports it**: the fraction of queries that have *at
    least one* relevant item among the top K (a hit rate; CMPM/VSE++ ``recall_at_k``), not the fraction of the
    relevant items that are retrieved.

    Relevance ``> 0``; ties by ``ties`` (``"expected"``: the probability of a hit). Queries without any relevant
    item cannot hit and are left out. Each K must satisfy ``1 ≤ K ≤ N``.

    Returns:
        ``{K: value}`` (floats; NaN if no query has a relevant item), or ``{K: (Q,) array}`` (1/0 hits, NaN for
        queries without relevant items) with ``per_query=True``.
    """
    s = _scores(scores)
    r = _relevance(relevance, s.shape)
    check_choice(ties, "ties", TIES)
    ks = [check_int(kk, "ks", 1, s.shape[1]) for kk in np.atleast_1d(np.asarray(ks)).tolist()]
    if not ks:
        raise ValueError("ks: expected at least one cut-off, got none")
    hits = {kk: np.empty(s.shape[0]) for kk in ks}
    for sl in _chunks(*s.shape):
        key = -s[sl]
        for kk in ks:
            hits[kk][sl] = _relevant_in_topk(key, r[sl], kk, ties)[1]
    has = r.any(1)
    for kk in ks:
        hits[kk][~has] = np.nan
    if per_query:
        return hits
    return {kk: _mean(v) for kk, v in hits.items()}


def precision_recall_curve(scores, relevance, *, ties: str = "index", cutoffs=None):
    """Rank-based precision–recall curve, averaged over queries (macro).

    At each cut-off n: ``precision(n) = mean_q (#relevant in top n) / n`` and ``recall(n) = mean_q (#relevant in
    top n) / R_q``. Queries without any relevant item are left out of both. Relevance ``> 0``; ties by ``ties``.

    Args:
        cutoffs: ranks n to report (1 ≤ n ≤ N), default every rank 1..N.

    Returns:
        ``(precision, recall, cutoffs)``, three arrays of the same length (NaN if no query has a relevant item).
    """
    s = _scores(scores)
    r = _relevance(relevance, s.shape)
    check_choice(ties, "ties", TIES)
    n = s.shape[1]
    cut = np.arange(1, n + 1) if cutoffs is None else np.atleast_1d(_np(cutoffs, "cutoffs")).astype(np.int64)
    if cut.ndim != 1 or cut.size == 0 or cut.min() < 1 or cut.max() > n:
        raise ValueError(f"cutoffs: expected ranks in [1, {n}], got {cut.tolist() if cut.size < 10 else cut.shape}")
    p_sum = np.zeros(cut.size)
    r_sum = np.zeros(cut.size)
    n_q = 0
    for sl in _chunks(*s.shape):
        rel = r[sl]
        keep = rel.any(1)
        if not keep.any():
            continue
        key, rel = -s[sl][keep], rel[keep]
        order = _order(key, rel, ties)
        if ties == "expected":
            found = np.cumsum(_expected_rel_and_terms(_take_rows(key, order), _take_rows(rel, order))[0], axis=1)
        else:
            found = np.cumsum(_take_rows(rel, order), axis=1, dtype=np.float64)
        found = found[:, cut - 1]
        p_sum += (found / cut).sum(0)
        r_sum += (found / rel.sum(1, keepdims=True)).sum(0)
        n_q += rel.shape[0]
    if n_q == 0:
        return np.full(cut.size, np.nan), np.full(cut.size, np.nan), cut
    return p_sum / n_q, r_sum / n_q, cut


# ================================================================================================================
# revisited Oxford / Paris (Radenović, Iscen, Tolias, Avrithis, Chum, CVPR 2018)


def _ranks(x: Any, n_queries: int, kind: str = "auto", name: str = "ranks") -> tuple[np.ndarray, bool]:
    """(Q, M) ranks (or scores → stable ranks later): returns (array, is_scores)."""
    a = _np(x, name)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_queries, n_db), got shape {a.shape}")
    if a.shape[0] != n_queries:
        hint = (
            " — it looks like the official (n_db, n_queries) layout; pass its transpose"
            if a.shape[1] == n_queries
            else ""
        )
        raise ValueError(f"{name}: expected {n_queries} rows (one per query), got shape {a.shape}{hint}")
    if a.shape[1] == 0:
        raise ValueError(f"{name}: the database is empty (shape {a.shape})")
    if kind == "auto":
        kind = "ranks" if a.dtype.kind in "iu" else "scores"
    if kind == "scores":
        return _scores(a, name), True
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name}: ranks must be integer database indices, got dtype {a.dtype}")
    if a.min() < 0:
        raise ValueError(f"{name}: ranks must be database indices >= 0, got {int(a.min())}")
    return a, False


def _index_lists(x: Any, n_queries: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-query integer lists (or a (Q, N) bool mask) → flat (row, item) arrays sorted by (row, item), without
    duplicates."""
    if x is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if getattr(x, "ndim", 0) == 2 and str(getattr(x, "dtype", "")) in ("bool", "torch.bool"):
        m = _np(x, name)
        if m.shape[0] != n_queries:
            raise ValueError(f"{name}: expected {n_queries} rows (one per query), got shape {m.shape}")
        rows, cols = np.nonzero(m)
        return rows.astype(np.int64), cols.astype(np.int64)
    if len(x) != n_queries:
        raise ValueError(f"{name}: expected {n_queries} entries (one per query), got {len(x)}")
    arrs = []
    for i, v in enumerate(x):
        a = np.asarray(_np(v, name)).ravel()
        if a.size and a.dtype.kind not in "iu":
            if a.dtype.kind == "f" and np.all(a == np.round(a)):
                a = a.astype(np.int64)
            else:
                raise ValueError(f"{name}[{i}]: expected integer database indices, got dtype {a.dtype}")
        arrs.append(a if a.dtype == np.int64 else a.astype(np.int64))
    rows = np.repeat(np.arange(n_queries), [a.size for a in arrs])
    cols = np.concatenate(arrs) if arrs else np.zeros(0, np.int64)
    if not cols.size:
        return rows, cols
    if cols.min() < 0:
        raise ValueError(f"{name}: database indices must be >= 0, got {int(cols.min())}")
    width = int(cols.max()) + 1
    key = np.sort(rows * width + cols)
    key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    return key // width, key % width


def _revisited_chunk(
    ranks: np.ndarray, s0: int, n: int, groups: list, setups: list, kappas: Sequence[int], distinct: str | None = None
) -> list:
    """AP and P@k (official rules) of the queries s0 … s0+C−1, for each (positive bits, junk bits) setup.
    ``distinct``: the argument's name when ``ranks`` are given ranks (checked for repeated ids), None for rankings
    computed from scores (permutations).

    Every listed (query, item) pair gets a bit per group in a (C, N) uint8 table; one gather along the rankings
    and one ``nonzero`` leave only the listed items, in rank order, and the rest works on those alone.
    """
    c, m = ranks.shape
    cat = np.zeros((c, n), dtype=np.uint8)
    pairs = []
    for bit, (rows, cols) in enumerate(groups):
        lo, hi = np.searchsorted(rows, [s0, s0 + c])
        r, col = rows[lo:hi] - s0, cols[lo:hi]
        cat[r, col] |= np.uint8(1 << bit)
        pairs.append((r, col))
    pairs = [(r, cat[r, col]) for r, col in pairs]  # every bit of each listed pair
    flat = np.add(ranks, (np.arange(c, dtype=np.int64) * n)[:, None], dtype=np.int64)
    if distinct is not None:
        _check_distinct_ranks(flat, c, s0, n, distinct)
    listed = np.take(cat.ravel(), flat)  # (C, M): the bits of the item at each rank
    hit = np.flatnonzero(listed != 0)  # listed items in rank order, query by query
    rows_l, rank_l = hit // m, hit % m
    val = listed.ravel()[hit]
    out = []
    for pbits, jbits in setups:
        n_pos = np.zeros(c, dtype=np.int64)  # distinct positives, ranked or not (counted at their lowest bit)
        for bit, (r, v) in enumerate(pairs):
            if pbits >> bit & 1:
                n_pos += np.bincount(r[(v & pbits & ((1 << bit) - 1)) == 0], minlength=c)
        is_j = (val & jbits) != 0
        junk_incl = np.cumsum(is_j)
        junk_excl = junk_incl - is_j  # junk entries before this one (all queries so far)
        is_p = (val & pbits) != 0
        rows, rank = rows_l[is_p], rank_l[is_p]
        per_row = np.bincount(rows_l, minlength=c)
        row_first = np.cumsum(per_row) - per_row  # first listed entry of each query
        junk_above = junk_excl[is_p] - junk_excl[np.minimum(row_first[rows], max(len(val) - 1, 0))]
        eff = rank - junk_above  # 0-based rank once the junk ranked strictly above is removed
        found = np.bincount(rows, minlength=c)
        first = np.cumsum(found) - found
        j = np.arange(rows.size) - first[rows]  # positives above this one
        with np.errstate(divide="ignore", invalid="ignore"):
            p0 = np.where(eff == 0, 1.0, j / np.maximum(eff, 1))  # precision just before the recall step
        p1 = (j + 1.0) / (eff + 1.0)  # precision at the step
        area = np.bincount(rows, weights=(p0 + p1) / 2.0, minlength=c)
        has = n_pos > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            aps = np.where(has, area / np.maximum(n_pos, 1), np.nan)
        last = np.zeros(c, dtype=np.int64)  # 1-based rank of the last positive found (0 = none found)
        last[found > 0] = eff[first[found > 0] + found[found > 0] - 1] + 1
        prs = np.full((c, len(kappas)), np.nan)
        for i, kk in enumerate(kappas):
            kq = np.minimum(last, kk)
            cnt = np.bincount(rows, weights=(eff + 1 <= kq[rows]), minlength=c)
            with np.errstate(divide="ignore", invalid="ignore"):
                prs[:, i] = np.where(has, np.where(kq > 0, cnt / np.maximum(kq, 1), 0.0), np.nan)
        out.append((aps, prs))
    return out


def _check_distinct_ranks(flat: np.ndarray, c: int, s0: int, n: int, name: str) -> None:
    """Each row of a ranking lists a database index at most once (a repeated positive would be counted at every
    occurrence, giving AP > 1). ``flat`` = row·n + index of the chunk's C rows; one scatter into a (C, N) bool
    table: linear in the chunk's size."""
    flat = flat.ravel()
    seen = np.zeros(c * n, dtype=bool)
    seen[flat] = True
    if np.count_nonzero(seen) != flat.size:  # error path only from here
        counts = np.bincount(flat, minlength=c * n)
        k = int(np.argmax(counts > 1))
        raise ValueError(
            f"{name}: database index {k % n} appears {int(counts[k])} times in the ranking of query "
            f"{s0 + k // n}; each row must list distinct database indices"
        )


def _revisited(
    ranks_or_scores: Any,
    groups: list,
    setups: list,
    n_q: int,
    kappas: Sequence[int],
    kind: str = "auto",
    name: str = "ranks",
) -> list:
    """[(aps (Q,), prs (Q, len(kappas)))] per (positive bits, junk bits) setup over the flat-list ``groups``."""
    if len(groups) > 8:
        raise ValueError(f"groups: at most 8 index lists, got {len(groups)}")
    a, is_scores = _ranks(ranks_or_scores, n_q, kind, name)
    kappas = [check_int(kk, "kappas") for kk in kappas]
    n = a.shape[1] if is_scores else int(a.max()) + 1
    listed = [int(cols.max()) + 1 for _, cols in groups if cols.size]
    if is_scores and listed and max(listed) > n:
        raise ValueError(f"positives/junk: database index {max(listed) - 1} out of range for {n} scored items")
    n = max([n] + listed)
    res = [(np.empty(n_q), np.empty((n_q, len(kappas)))) for _ in setups]
    for sl in _chunks(n_q, n):
        ranks = np.argsort(-a[sl], axis=1, kind="stable") if is_scores else a[sl]
        chunk = _revisited_chunk(ranks, sl.start, n, groups, setups, kappas, None if is_scores else name)
        for (aps, prs), (ca, cp) in zip(res, chunk):
            aps[sl], prs[sl] = ca, cp
    return res


def _n_queries(positives: Any) -> int:
    return positives.shape[0] if hasattr(positives, "shape") else len(positives)


def revisited_ap(ranks, positives, junk=None, *, kind: str = "auto") -> np.ndarray:
    """Per-query AP with junk removed, by the trapezoid rule of the official revisited Oxford/Paris code.

    Junk rule: junk items are taken out of the ranking first; each positive's rank drops by the number of junk
    items ranked strictly above it (an item listed as both positive and junk stays a positive, and still counts
    as junk for the positives below it, exactly as the official loop does). With the j-th positive (0-based) at
    junk-free 0-based rank ``r_j``, ``AP = (1/R) Σ_j ½ (j / r_j + (j+1)/(r_j+1))`` where ``j / r_j`` is taken
    as 1 when ``r_j = 0``, and ``R`` is the number of distinct positives of the query (positives missing from a
    truncated ranking add nothing). This is never larger than the non-interpolated AP of
    :func:`average_precision` (a lone positive at rank 2 gets 0.25, not 0.5).

    Args:
        ranks: (Q, M) distinct database indices per row (a repeated one raises ``ValueError``), best first,
            ``M ≤ N`` (a truncated ranking is fine). **Our layout is
            (n_queries, n_db)**; the official ``compute_map`` takes the transpose (n_db, n_queries). A float
            array is taken as (Q, N) scores (higher = better) and ranked with a stable sort (ties by index); force
            the reading with ``kind="ranks"`` / ``"scores"``.
        positives: per query, an integer array of database indices (or a (Q, N) bool mask).
        junk: the same for the junk items, or None.

    Returns:
        (Q,) float64, NaN for queries without positives (the official code skips them).
    """
    check_choice(kind, "kind", ("auto", "ranks", "scores"))
    n_q = _n_queries(positives)
    groups = [_index_lists(positives, n_q, "positives"), _index_lists(junk, n_q, "junk")]
    return _revisited(ranks, groups, [(1, 2)], n_q, (), kind)[0][0]


def revisited_precision_at_k(
    ranks, positives, junk=None, kappas: Sequence[int] = (1, 5, 10), *, kind: str = "auto"
) -> np.ndarray:
    """Per-query precision@k of the official revisited code, junk removed as in :func:`revisited_ap`.

    The official rule (kept, quirk included): with ``last`` the 1-based junk-free rank of the last positive
    found, ``k' = min(last, k)`` and ``P@k = #(positives at rank ≤ k') / k'``. So when every positive sits above
    rank k, P@k is 1, not (number of positives) / k. Queries whose positives are all missing from a truncated
    ranking get 0 (the official code raises there).

    Returns:
        (Q, len(kappas)) float64, NaN rows for queries without positives.
    """
    check_choice(kind, "kind", ("auto", "ranks", "scores"))
    n_q = _n_queries(positives)
    groups = [_index_lists(positives, n_q, "positives"), _index_lists(junk, n_q, "junk")]
    return _revisited(ranks, groups, [(1, 2)], n_q, kappas, kind)[0][1]


_SETUPS = {  # setup → (positive lists, junk lists) of the official example_evaluate.py
    "easy": (("easy",), ("junk", "hard")),
    "medium": (("easy", "hard"), ("junk",)),
    "hard": (("hard",), ("junk", "easy")),
}


def revisited_map(
    ranks_or_scores,
    gnd: Sequence[dict],
    kappas: Sequence[int] = (1, 5, 10),
    *,
    setups: Sequence[str] = ("easy", "medium", "hard"),
    kind: str = "auto",
) -> dict:
    """Revisited Oxford/Paris evaluation (Radenović et al., CVPR 2018): mAP and mP@k in the Easy / Medium / Hard
    setups, with the rules of the official ``compute_map`` (see :func:`revisited_ap` and
    :func:`revisited_precision_at_k`), vectorised over queries.

    Setups (positives | junk, i.e. removed from the ranking):

    * Easy: ``easy`` | ``junk + hard``;
    * Medium: ``easy + hard`` | ``junk``;
    * Hard: ``hard`` | ``junk + easy``.

    Args:
        ranks_or_scores: **(Q, N)**, one row per query: integer database indices best first (may be truncated to
            the top M), or float scores (higher = better), ranked with a stable sort (ties by database index).
            The official code's ranks are (N, Q) — pass ``ranks.T``. ``kind`` forces ``"ranks"`` or ``"scores"``.
        gnd: one dict per query with integer arrays ``'easy'``, ``'hard'`` and ``'junk'`` (the official
            ``gnd_roxford5k.pkl`` / ``gnd_rparis6k.pkl`` ``['gnd']`` list); a missing ``'junk'`` is empty.
        kappas: the k of mP@k.

    Returns:
        ``{'easy': {'mAP': float, 'mP@1': float, ..., 'aps': (Q,) array, 'prs': (Q, len(kappas)) array},
        'medium': ..., 'hard': ...}``; values in [0, 1] (the official script prints them × 100). Queries
        without positives in a setup have NaN in ``aps``/``prs`` and are left out of the means.
    """
    check_choice(kind, "kind", ("auto", "ranks", "scores"))
    for s in setups:
        check_choice(s, "setups", tuple(_SETUPS))
    if isinstance(gnd, dict) and "gnd" in gnd:
        gnd = gnd["gnd"]
    if not isinstance(gnd, (list, tuple)) or not gnd:
        raise ValueError(f"gnd: expected a non-empty list of per-query dicts, got {type(gnd).__name__}")
    for i, g in enumerate(gnd):
        if not isinstance(g, dict) or "easy" not in g or "hard" not in g:
            raise ValueError(
                f"gnd[{i}]: expected a dict with 'easy', 'hard' (and 'junk') index arrays, got "
                f"{sorted(g) if isinstance(g, dict) else type(g).__name__}"
            )

    groups = [
        _index_lists([_np(g.get(key, []), "gnd") for g in gnd], len(gnd), f"gnd '{key}'")
        for key in ("easy", "hard", "junk")
    ]
    bits = {"easy": 1, "hard": 2, "junk": 4}
    masks = [(sum(bits[k] for k in _SETUPS[s][0]), sum(bits[k] for k in _SETUPS[s][1])) for s in setups]
    results = _revisited(ranks_or_scores, groups, masks, len(gnd), kappas, kind, "ranks_or_scores")
    out = {}
    for s, (aps, prs) in zip(setups, results):
        res: dict[str, Any] = {"mAP": _mean(aps)}
        for i, kk in enumerate(kappas):
            res[f"mP@{kk}"] = _mean(prs[:, i])
        res["aps"], res["prs"] = aps, prs
        out[s] = res
    return out


# ================================================================================================================
# Hamming ranking for (cross-modal) hashing


def _code_bits(x: Any, name: str) -> np.ndarray:
    """(n, n_bits) codes in {-1,+1} or {0,1} (either, per array) → bool bits (+1 / 1 → True)."""
    a = _np(x, name)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n, n_bits), got shape {a.shape}")
    if a.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one bit, got shape {a.shape}")
    if a.dtype == bool:
        return a
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{name}: expected codes in {{-1,+1}} or {{0,1}}, got dtype {a.dtype}")
    neg, zero, one = (a == -1), (a == 0), (a == 1)
    ok = neg | zero | one
    if not ok.all():
        bad = a[~ok].ravel()[0].item()
        raise ValueError(
            f"{name}: codes must be in {{-1,+1}} or {{0,1}}, got value {bad!r} "
            "(binarise first, e.g. np.where(h >= 0, 1, -1); note sign(0) = 0)"
        )
    if neg.any() and zero.any():
        raise ValueError(
            f"{name}: codes mix -1 and 0; use {{-1,+1}} or {{0,1}}, not both "
            "(sign(0) = 0 is a common cause: map 0 to +1)"
        )
    return one


_HAS_BITWISE_COUNT = hasattr(np, "bitwise_count")  # NumPy >= 2.0
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _words(bits: np.ndarray) -> np.ndarray:
    """(n, b) bool → (n, ceil(b/64)) uint64 words (zero padding bits leave XOR/AND counts unchanged)."""
    packed = np.packbits(bits, axis=1)
    pad = (-packed.shape[1]) % 8
    if pad:
        packed = np.pad(packed, ((0, 0), (0, pad)))
    return np.ascontiguousarray(packed).view(np.uint64)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (uint8 result)."""
    if _HAS_BITWISE_COUNT:
        return np.bitwise_count(x)
    return _POPCOUNT8[x[..., None].view(np.uint8)].sum(-1, dtype=np.uint8)  # pragma: no cover - NumPy < 2


def _code_pair(query_codes, db_codes) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated codes packed to uint64 words: (query words, database words, number of bits)."""
    qb, db = _code_bits(query_codes, "query_codes"), _code_bits(db_codes, "db_codes")
    if qb.shape[1] != db.shape[1]:
        raise ValueError(f"db_codes: expected {qb.shape[1]} bits like query_codes, got shape {db.shape}")
    if db.shape[0] == 0:
        raise ValueError(f"db_codes: the database is empty (shape {db.shape})")
    if qb.shape[0] == 0:
        raise ValueError(f"query_codes: expected at least one query, got shape {qb.shape}")
    return _words(qb), _words(db), qb.shape[1]


def _hamming_block(qw: np.ndarray, dw: np.ndarray, bits: int) -> np.ndarray:
    """(C, N) Hamming distances of packed codes by XOR + popcount (no BLAS); uint8 up to 255 bits, else uint16."""
    out = _popcount(qw[:, None, 0] ^ dw[None, :, 0])
    if bits > 255:
        out = out.astype(np.uint16 if bits <= 65535 else np.uint32)
    for w in range(1, qw.shape[1]):
        out += _popcount(qw[:, None, w] ^ dw[None, :, w])
    return out


def hamming_distance(query_codes, db_codes) -> np.ndarray:
    """Hamming distances between binary codes (the number of differing bits; for ±1 codes this equals
    ``(bits − ⟨q, d⟩) / 2``, DCMH's ``calc_hammingDist``).

    Args:
        query_codes: (Q, bits) in {-1,+1} or {0,1} (or bool).
        db_codes: (N, bits), same bit count; each array may use either convention.

    Returns:
        (Q, N) int32.
    """
    q, d, bits = _code_pair(query_codes, db_codes)
    out = np.empty((q.shape[0], d.shape[0]), dtype=np.int32)
    for sl in _chunks(q.shape[0], d.shape[0]):
        out[sl] = _hamming_block(q[sl], d, bits)
    return out


def _labels(x: Any, name: str, n: int) -> np.ndarray:
    a = _np(x, name)
    if a.ndim not in (1, 2):
        raise ValueError(f"{name}: expected (n,) class ids or (n, L) multi-hot labels, got shape {a.shape}")
    if a.shape[0] != n:
        raise ValueError(f"{name}: expected {n} rows (one per code), got shape {a.shape}")
    where = _first_nan(a)
    if where is not None:
        raise ValueError(f"{name}: NaN at {where}")
    if a.ndim == 1:
        if a.dtype.kind not in "iu" and not (a.dtype.kind == "f" and np.all(a == np.round(a))):
            raise ValueError(f"{name}: (n,) labels must be integer class ids, got dtype {a.dtype}")
        a = a.astype(np.int64)
        if a.size and a.min() < 0:
            raise ValueError(f"{name}: class ids must be >= 0, got {int(a.min())}")
        return a
    return a > 0


class _LabelRelevance:
    """Relevance = shares at least one label: AND of packed multi-hot words; (n,) class ids compared directly."""

    def __init__(self, query_labels, db_labels, n_q: int, n_d: int):
        ql, dl = _labels(query_labels, "query_labels", n_q), _labels(db_labels, "db_labels", n_d)
        if ql.ndim == 2 and dl.ndim == 2 and ql.shape[1] != dl.shape[1]:
            raise ValueError(f"db_labels: expected {ql.shape[1]} label columns like query_labels, got {dl.shape}")
        for ids, other, nm in ((ql, dl, "query_labels"), (dl, ql, "db_labels")):
            if ids.ndim == 1 and other.ndim == 2 and ids.size and ids.max() >= other.shape[1]:
                raise ValueError(f"{nm}: class id {int(ids.max())} out of range for {other.shape[1]} label columns")
        self.mode = "ids" if ql.ndim == 1 and dl.ndim == 1 else "hot"
        if self.mode == "hot":
            ql = ql if ql.ndim == 2 else np.eye(dl.shape[1], dtype=bool)[ql]
            dl = dl if dl.ndim == 2 else np.eye(ql.shape[1], dtype=bool)[dl]
            if ql.shape[1] == 0:
                raise ValueError(f"query_labels: expected at least one label column, got shape {ql.shape}")
            self.q, self.d = _words(ql), _words(dl)
        else:
            self.q, self.d = ql, dl

    def __call__(self, sl: slice) -> np.ndarray:
        if self.mode == "ids":
            return self.q[sl, None] == self.d[None, :]
        out = (self.q[sl, None, 0] & self.d[None, :, 0]) != 0
        for w in range(1, self.q.shape[1]):
            out |= (self.q[sl, None, w] & self.d[None, :, w]) != 0
        return out


def hamming_relevance(query_labels, db_labels) -> np.ndarray:
    """(Q, N) bool: query and database item share at least one label (DCMH/SSAH/DSCMR relevance).

    Labels are (n, L) multi-hot (any value > 0 is a label) or (n,) integer class ids (= one-hot).
    """
    ql, dl = _np(query_labels, "query_labels"), _np(db_labels, "db_labels")
    rel = _LabelRelevance(ql, dl, len(ql), len(dl))
    return rel(slice(0, len(ql)))


def _hamming_setup(query_codes, db_codes, query_labels, db_labels):
    q, d, bits = _code_pair(query_codes, db_codes)
    return q, d, bits, _LabelRelevance(query_labels, db_labels, q.shape[0], d.shape[0])


def _progress(it, enabled: bool, total: int, desc: str):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, total=total, desc=desc, leave=False)


def hamming_map(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    top_k: int | None = None,
    *,
    ties: str = "index",
    normalize: str = "min",
    empty: str = "exclude",
    per_query: bool = False,
    chunk_size: int | None = None,
    progress: bool = False,
):
    """mAP by Hamming ranking (multi-label cross-modal hashing: I→T with image query codes and text database
    codes, and T→I), or mAP@top_k.

    Relevance: query and item share at least one label (labels (n, L) multi-hot, or (n,) class ids).
    Ranking: ascending Hamming distance; ``ties="index"`` keeps equal distances in ascending database index
    (DCMH/SSAH's ``np.argsort`` is not stable, so their numbers can differ slightly; use ``"expected"`` for the
    tie-order-free expectation, ``"pessimistic"``/``"optimistic"`` for bounds). AP as :func:`average_precision`,
    with ``normalize`` choosing the AP@k normaliser (``"min"`` = min(R, k) by default; ``"retrieved"`` is the
    HashNet / DeepHash-pytorch / DCMH-MATLAB ``mAP@K``). Queries without relevant items: ``empty``.

    Distances come from XOR + popcount on packed bits and are small integers, so the sort is a linear-time
    radix sort; queries go in chunks of ``chunk_size`` rows (default: about 1M distances at a time).

    Returns:
        float mAP, or the (Q,) per-query AP (NaN: no relevant item) with ``per_query=True``.
    """
    check_choice(ties, "ties", TIES)
    check_choice(normalize, "normalize", NORMALIZE)
    check_choice(empty, "empty", _EMPTY)
    if top_k is not None:
        top_k = check_int(top_k, "top_k")
        if ties == "expected" and normalize == "retrieved":
            raise ValueError("normalize: 'retrieved' cannot be used with ties='expected'; use 'min' or 'relevant'")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size")
    q, d, bits, relevance = _hamming_setup(query_codes, db_codes, query_labels, db_labels)
    ap = np.empty(q.shape[0])
    chunks = list(_chunks(q.shape[0], d.shape[0], chunk_size))
    for sl in _progress(chunks, progress, len(chunks), "hamming mAP"):
        ap[sl] = _ap_from_key(_hamming_block(q[sl], d, bits), relevance(sl), top_k, ties, normalize)
    return ap if per_query else _mean(ap, empty)


def hamming_topk_precision(
    query_codes, db_codes, query_labels, db_labels, k: int, *, ties: str = "index", per_query: bool = False
):
    """Top-k precision by Hamming ranking: mean over all queries of (relevant among the k nearest codes) / k.

    Relevance: shares at least one label. Ranking by ascending distance, ties by ``ties`` (default: ascending
    database index). ``1 ≤ k ≤ N``. Returns a float, or (Q,) with ``per_query=True``.
    """
    check_choice(ties, "ties", TIES)
    q, d, bits, relevance = _hamming_setup(query_codes, db_codes, query_labels, db_labels)
    k = check_int(k, "k", 1, d.shape[0])
    out = np.empty(q.shape[0])
    for sl in _chunks(q.shape[0], d.shape[0]):
        out[sl] = _relevant_in_topk(_hamming_block(q[sl], d, bits), relevance(sl), k, ties)[0] / k
    return out if per_query else float(out.mean())


def _radius_counts(q, d, b: int, relevance) -> tuple[np.ndarray, np.ndarray]:
    """Per query, cumulative counts over radius r = 0..bits of retrieved items (d ≤ r) and relevant ones."""
    tot = np.empty((q.shape[0], b + 1), dtype=np.int64)
    hit = np.empty((q.shape[0], b + 1), dtype=np.int64)
    for sl in _chunks(q.shape[0], d.shape[0]):
        dist = _hamming_block(q[sl], d, b).astype(np.int64)
        c = dist.shape[0]
        flat = (dist + (b + 1) * np.arange(c)[:, None]).ravel()
        tot[sl] = np.bincount(flat, minlength=c * (b + 1)).reshape(c, b + 1).cumsum(1)
        hit[sl] = np.bincount(flat[relevance(sl).ravel()], minlength=c * (b + 1)).reshape(c, b + 1).cumsum(1)
    return tot, hit


def hamming_radius_precision(
    query_codes, db_codes, query_labels, db_labels, radius: int = 2, *, per_query: bool = False
):
    """Precision of hash lookup within Hamming ``radius`` (e.g. "precision within Hamming radius 2").

    Per query: (relevant items with distance ≤ radius) / (items with distance ≤ radius); a query whose ball is
    empty gets 0 (the usual convention, which penalises long codes). Mean over all queries. Relevance: shares at
    least one label. No ties (the ball is a set). Returns a float, or (Q,) with ``per_query=True``.
    """
    q, d, bits, relevance = _hamming_setup(query_codes, db_codes, query_labels, db_labels)
    radius = check_int(radius, "radius", 0, bits)
    tot, hit = _radius_counts(q, d, bits, relevance)
    t, h = tot[:, radius], hit[:, radius]
    out = np.where(t > 0, h / np.maximum(t, 1), 0.0)
    return out if per_query else float(out.mean())


def pr_curve_hamming(query_codes, db_codes, query_labels, db_labels, *, average: str = "micro"):
    """Precision and recall of hash lookup at every Hamming radius r = 0..bits (the DCMH PR curve).

    Retrieved at radius r = the items with distance ≤ r. Relevance: shares at least one label.

    * ``average="micro"`` (default; DCMH ``calcPreRecRadiusLabel.m``): pooled over all (query, item) pairs,
      ``precision(r) = Σ relevant retrieved / Σ retrieved`` (0 when nothing is retrieved) and
      ``recall(r) = Σ relevant retrieved / Σ relevant``.
    * ``average="macro"``: per-query precision (0 for an empty ball) and recall, averaged over the queries that
      have at least one relevant item.

    Returns:
        ``(precision, recall, radii)``, three arrays of length bits + 1.
    """
    check_choice(average, "average", ("micro", "macro"))
    q, d, bits, relevance = _hamming_setup(query_codes, db_codes, query_labels, db_labels)
    tot, hit = _radius_counts(q, d, bits, relevance)
    n_rel = hit[:, -1]
    radii = np.arange(bits + 1)
    if average == "micro":
        t, h = tot.sum(0), hit.sum(0)
        prec = np.where(t > 0, h / np.maximum(t, 1), 0.0)
        rec = h / n_rel.sum() if n_rel.sum() > 0 else np.full(radii.size, np.nan)
        return prec, rec, radii
    keep = n_rel > 0
    if not keep.any():
        return np.full(radii.size, np.nan), np.full(radii.size, np.nan), radii
    t, h = tot[keep], hit[keep]
    prec = np.where(t > 0, h / np.maximum(t, 1), 0.0).mean(0)
    rec = (h / n_rel[keep, None]).mean(0)
    return prec, rec, radii


# ================================================================================================================
# incremental learning: results matrix R[i, j] = metric on task j after training step i


def _results(R: Any) -> np.ndarray:
    r = _np(R, "R")
    if r.ndim != 2 or r.shape[0] == 0 or r.shape[1] == 0:
        raise ValueError(
            f"R: expected a 2-D results matrix (n_steps, n_tasks), R[i, j] = metric on task j after "
            f"step i; got shape {r.shape}"
        )
    if r.dtype.kind not in "biuf":
        raise ValueError(f"R: expected numbers, got dtype {r.dtype}")
    return r.astype(np.float64)


def _learned_at(r: np.ndarray, learned_at: Any) -> np.ndarray:
    t, g = r.shape
    if isinstance(learned_at, str):
        check_choice(learned_at, "learned_at", ("diagonal", "first_finite"))
        if learned_at == "diagonal":
            return np.arange(g)
        fin = np.isfinite(r)
        return np.where(fin.any(0), fin.argmax(0), t)
    la = np.asarray(_np(learned_at, "learned_at"))
    if la.shape != (g,) or la.dtype.kind not in "iu":
        raise ValueError(f"learned_at: expected {g} integer steps (one per task column), got {la.tolist()!r}")
    return la.astype(np.int64)


def task_forgetting(R, step: int = -1, *, learned_at="diagonal", max_over: str = "learned") -> np.ndarray:
    """Forgetting of each earlier task after ``step``: ``f_j = max_l R[l, j] − R[step, j]`` (Chaudhry et al.,
    ECCV 2018; thesis Eq. 6.12 before averaging).

    ``R[i, j]`` is the metric (the thesis uses mAP) on task (class group) j after training step i; column 0 is
    the base task (the original classes), trained at step 0. Which tasks count: those learned before ``step``
    (``learned_at[j] < step``; by default task j is learned at step j, ``"first_finite"`` reads it from the first
    non-NaN entry of the column — the convention of NaN for "not evaluated yet" — or give one step per column).
    The thesis includes the original classes as a task; so do we.

    ``max_over="learned"`` (default) takes the max over ``l ∈ [learned_at[j], step)``; ``"all"`` over
    ``l ∈ [0, step)`` as Eq. 6.12 is printed (it then also sees the zero-shot scores before the task was
    learned, normally lower, so the two agree in practice). NaN entries are ignored in the max.

    Returns:
        (n_tasks,) float64; NaN for tasks that do not count (not learned yet, or NaN at ``step``).
    """
    r = _results(R)
    t_all, g = r.shape
    step = check_int(step, "step", -t_all, t_all - 1) % t_all
    check_choice(max_over, "max_over", ("learned", "all"))
    la = _learned_at(r, learned_at)
    rows = np.arange(t_all)[:, None]
    lo = la[None, :] if max_over == "learned" else np.zeros((1, g), dtype=np.int64)
    window = (rows >= lo) & (rows < step)
    vals = np.where(window & np.isfinite(r), r, -np.inf)
    best = vals.max(0)
    counts = (la < step) & np.isfinite(best) & np.isfinite(r[step])
    return np.where(counts, best - np.where(np.isfinite(r[step]), r[step], 0.0), np.nan)


def average_forgetting(R, step: int = -1, *, learned_at="diagonal", max_over: str = "learned") -> float:
    """Average forgetting after ``step`` — thesis Eq. 6.12 (after Chaudhry et al. [246]):

    ``F_t = (1/t) Σ_{j=0}^{t−1} ( max_{l<t} R[l, j] − R[t, j] )`` with 0-based steps and task j learned at
    step j, i.e. the mean of :func:`task_forgetting` over the tasks learned before step t. (The printed formula
    is 1-based, ``1/(t−1) Σ_{j=1}^{t−1}``; counting the base classes as task 0, as the thesis's own description
    of the t = 2 evaluation does, gives the same set of tasks.) Higher = more forgetting.

    Returns:
        float; NaN when no task counts (e.g. at step 0).
    """
    return _mean(task_forgetting(R, step, learned_at=learned_at, max_over=max_over))


def forgetting_curve(R, *, learned_at="diagonal", max_over: str = "learned") -> np.ndarray:
    """:func:`average_forgetting` after each step 1..T−1 (thesis Fig. 6.7 plots it against t). The thesis text
    also speaks of averaging "all previous forgetting ratios (1, 2, …, t−1)"; if a single number over the whole
    sequence is wanted, that is ``np.nanmean(forgetting_curve(R))``.

    Returns:
        (T−1,) float64.
    """
    r = _results(R)
    return np.array([average_forgetting(r, t, learned_at=learned_at, max_over=max_over) for t in range(1, r.shape[0])])


def average_incremental_accuracy(R, *, learned_at="diagonal") -> float:
    """Average incremental accuracy (Rebuffi et al., iCaRL): the mean over steps t of the mean of ``R[t, j]``
    over the tasks learned so far (``learned_at[j] ≤ t``; NaN entries skipped)."""
    r = _results(R)
    la = _learned_at(r, learned_at)
    seen = la[None, :] <= np.arange(r.shape[0])[:, None]
    vals = np.where(seen & np.isfinite(r), r, np.nan)
    per_step = np.array([_mean(v) for v in vals])
    return _mean(per_step)
