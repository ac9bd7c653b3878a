"""Training tuples for metric learning: positive pairs and hard-negative mining.

The scheme of cnnimageretrieval-pytorch (``TuplesDataset.create_epoch_tuples``), used to train the GeM networks of
Radenović et al. [57]: every epoch, draw query–positive pairs, embed a random pool of images with the *current*
network, and give each query the ``n`` pool images most similar to it — skipping images of the query's own group
(instance / landmark / 3-D model) and taking **at most one image per group**, so the negatives are hard *and*
diverse. :func:`hard_negatives` does that for all queries at once (no loop over queries).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["positive_pairs", "hard_negatives", "random_negatives"]


def _labels(x: Any, name: str, n: int | None = None) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 1 or (n is not None and len(a) != n):
        want = "(N,)" if n is None else f"({n},)"
        raise ValueError(f"{name}: expected a 1-D array of group ids {want}, got shape {a.shape}")
    return a


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def positive_pairs(groups: Any, n: int, seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` (query, positive) index pairs: two different items of the same group, uniformly over items.

    Args:
        groups: ``(N,)`` group id of every item (items alone in their group are never drawn as queries).
        n: number of pairs (drawn with replacement over queries when ``n`` exceeds the usable items).
    Returns:
        ``(query_idx, positive_idx)``, each ``(n,)`` int64.
    """
    g = _labels(groups, "groups")
    if int(n) < 1:
        raise ValueError(f"n: expected a positive number of pairs, got {n!r}")
    _, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    usable = np.nonzero(counts[inv] >= 2)[0]
    if len(usable) == 0:
        raise ValueError("groups: no group has two or more items, so there are no positive pairs")
    rng = _rng(seed)
    q = rng.choice(usable, size=int(n), replace=int(n) > len(usable))
    order = np.argsort(inv, kind="stable")  # items sorted by group
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.empty(len(g), dtype=np.int64)  # each item's position inside its group
    slot[order] = np.arange(len(g)) - starts[inv[order]]
    c = counts[inv[q]]
    r = np.minimum((rng.random(len(q)) * (c - 1)).astype(np.int64), c - 2)  # uniform over the other c-1 items
    r = r + (r >= slot[q])  # skip the query's own slot
    start = starts[inv[q]]
    return q.astype(np.int64), order[start + r].astype(np.int64)


def hard_negatives(
    query_desc: Any, pool_desc: Any, query_groups: Any, pool_groups: Any, n: int = 5, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` hardest negatives of every query, one per group: cirtorch's mining, batched over queries.

    For each query, pool items of the query's group are excluded; among the others, each group is represented by
    its most similar item, and the ``n`` groups whose representative is most similar to the query give the
    negatives — exactly what greedily walking down the ranked pool while skipping used groups gives.

    Args:
        query_desc: ``(Q, D)`` L2-normalised descriptors of the queries (current network).
        pool_desc: ``(P, D)`` descriptors of the negative pool.
        query_groups: ``(Q,)``; pool_groups: ``(P,)`` group ids.
        n: negatives per query.
        chunk: queries per matrix product.
    Returns:
        ``(ids, sims)``: ``(Q, n)`` pool indices (best first) and their similarities; ``-1`` / ``-inf`` where fewer
        than ``n`` other groups exist.
    """
    q = torch.as_tensor(np.asarray(query_desc) if not isinstance(query_desc, torch.Tensor) else query_desc).float()
    p = torch.as_tensor(np.asarray(pool_desc) if not isinstance(pool_desc, torch.Tensor) else pool_desc).float()
    if q.ndim != 2 or p.ndim != 2 or q.shape[1] != p.shape[1]:
        raise ValueError(
            f"query_desc, pool_desc: expected (Q, D) and (P, D) with the same D, got "
            f"{tuple(q.shape)} and {tuple(p.shape)}"
        )
    qg = _labels(query_groups, "query_groups", len(q))
    pg = _labels(pool_groups, "pool_groups", len(p))
    if int(n) < 1:
        raise ValueError(f"n: expected a positive number of negatives, got {n!r}")
    n = int(n)
    uniq, pinv = np.unique(pg, return_inverse=True)
    G = len(uniq)
    pos = np.searchsorted(uniq, qg)
    qinv = np.where((pos < G) & (uniq[np.minimum(pos, G - 1)] == qg), pos, -1)  # query group in pool ids, or -1
    pinv_t = torch.as_tensor(pinv.reshape(-1))
    big = torch.iinfo(torch.int64).max
    ids_out = np.full((len(q), n), -1, dtype=np.int64)
    sims_out = np.full((len(q), n), -np.inf, dtype=np.float32)
    k = min(n, G)
    for i in range(0, len(q), chunk):
        s = q[i : i + chunk] @ p.T  # (c, P)
        c = len(s)
        own = torch.as_tensor(qinv[i : i + chunk])
        s = s.masked_fill(pinv_t[None, :] == own[:, None], -torch.inf)
        gidx = pinv_t.expand(c, -1)
        gmax = torch.full((c, G), -torch.inf).scatter_reduce(1, gidx, s, "amax")  # best sim per group
        is_best = (s == gmax.gather(1, gidx)) & torch.isfinite(s)
        item = torch.arange(len(p)).expand(c, -1)
        best_item = torch.full((c, G), big, dtype=torch.int64).scatter_reduce(
            1, gidx, torch.where(is_best, item, torch.full_like(item, big)), "amin"
        )  # first best item per group
        top_v, top_g = torch.topk(gmax, k, dim=1)
        chosen = best_item.gather(1, top_g)
        ok = torch.isfinite(top_v)
        ids_out[i : i + c, :k] = torch.where(ok, chosen, torch.full_like(chosen, -1)).numpy()
        sims_out[i : i + c, :k] = top_v.numpy()
    return ids_out, sims_out


def random_negatives(
    query_groups: Any, pool_groups: Any, n: int = 5, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """``n`` random pool items per query from other groups (the easy-negative baseline), ``(Q, n)`` int64.

    Drawn with replacement among the pool items whose group differs from the query's.
    """
    qg = _labels(query_groups, "query_groups")
    pg = _labels(pool_groups, "pool_groups")
    if int(n) < 1:
        raise ValueError(f"n: expected a positive number of negatives, got {n!r}")
    rng = _rng(seed)
    out = rng.integers(0, len(pg), size=(len(qg), int(n)))
    bad = pg[out] == qg[:, None]
    for _ in range(100):  # rejection sampling; converges unless one group is nearly the whole pool
        if not bad.any():
            break
        out[bad] = rng.integers(0, len(pg), size=int(bad.sum()))
        bad = pg[out] == qg[:, None]
    if bad.any():
        raise ValueError("pool_groups: could not find negatives from other groups for some queries")
    return out.astype(np.int64)
