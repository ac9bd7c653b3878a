"""Query expansion and database-side augmentation for global descriptors (re-query with neighbours).

The thesis does not cover query expansion (the word does not occur in it); these are background methods of the
papers it cites ([31] uses average QE, [57] α-QE) and are labelled as such in notebook 02.

- :func:`alpha_query_expansion` — ``q' = L2(Σ_{i=0}^{n} max(0, qᵀd_(i))^α d_(i))`` with ``d_(0) = q`` (weight 1) and
  ``d_(1..n)`` the top-n database vectors (Radenović et al. [57]; α = 3 there).
- :func:`average_query_expansion` — α = 0: ``q' = L2(q + Σ_{i=1}^{n} d_(i))`` (Chum et al. 2007, as in [31]).
- :func:`database_side_augmentation` — every database vector re-expressed the same way with its own top-k
  *other* database vectors (Arandjelović & Zisserman 2012; α-DBA as in dirtorch).

All functions take ``(Q, D)`` / ``(N, D)`` L2-normalised descriptors (numpy or torch; the output has the input's
type) and rank by inner product. Neighbours are found batched over queries (no Python loop over queries).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["top_neighbours", "alpha_query_expansion", "average_query_expansion", "database_side_augmentation"]

EPS = 1e-6


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_vectors, dim), got shape {tuple(t.shape)}")
    return t.float()


def _like(y: torch.Tensor, x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return y.to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
    return y.cpu().numpy().astype(np.float32)


def _check_n(n: int, limit: int, name: str) -> int:
    if int(n) != n or int(n) < 0:
        raise ValueError(f"{name}: expected an int >= 0, got {n!r}")
    if int(n) > limit:
        raise ValueError(f"{name}: asked for {n} neighbours but only {limit} are available")
    return int(n)


def top_neighbours(
    queries: Any, database: Any, k: int, exclude_self: bool = False, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` database vectors with the largest inner product with each query.

    Args:
        queries: ``(Q, D)``; database: ``(N, D)``.
        exclude_self: ``queries`` *is* ``database`` (``Q = N``); row i never returns item i.
        chunk: queries per matrix product (bounds memory at ``chunk × N`` scores).
    Returns:
        ``(scores, ids)``, both ``(Q, k)``, best first.
    """
    q, db = _as_tensor(queries, "queries"), _as_tensor(database, "database")
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"queries, database: dimensions differ: {tuple(q.shape)} vs {tuple(db.shape)}")
    if exclude_self and len(q) != len(db):
        raise ValueError(f"exclude_self=True needs queries to be the database; got {len(q)} and {len(db)} rows")
    k = _check_n(k, len(db) - int(exclude_self), "k")
    scores, ids = [], []
    for i in range(0, len(q), chunk):
        s = q[i : i + chunk] @ db.T
        if exclude_self:
            r = torch.arange(i, i + len(s))
            s[torch.arange(len(s)), r] = -torch.inf
        v, j = torch.topk(s, k, dim=1)
        scores.append(v)
        ids.append(j)
    return torch.cat(scores), torch.cat(ids)


def _expand(
    q: torch.Tensor, db: torch.Tensor, sims: torch.Tensor, ids: torch.Tensor, alpha: float, chunk: int = 1024
) -> torch.Tensor:
    w = sims.clamp(min=0).pow(alpha) if alpha != 0 else torch.ones_like(sims)  # (Q, n)
    y = torch.cat(
        [
            q[i : i + chunk] + torch.einsum("qn,qnd->qd", w[i : i + chunk], db[ids[i : i + chunk]])
            for i in range(0, len(q), chunk)
        ]
    )
    return y / (torch.linalg.vector_norm(y, dim=1, keepdim=True) + EPS)


def alpha_query_expansion(queries: Any, database: Any, n: int = 2, alpha: float = 3.0) -> Any:
    """α-query expansion: ``q' = L2(q + Σ_{i=1}^{n} max(0, qᵀd_(i))^α d_(i))``.

    Args:
        queries: ``(Q, D)`` L2-normalised query descriptors.
        database: ``(N, D)`` L2-normalised database descriptors (possibly DBA-augmented).
        n: number of top-ranked database vectors averaged in (``n = 0`` returns the queries).
        alpha: similarity power; 0 gives average QE. Negative similarities get weight 0 (for ``alpha > 0``).
    Returns:
        ``(Q, D)`` expanded queries, L2-normalised, same type as ``queries``.
    """
    q, db = _as_tensor(queries, "queries"), _as_tensor(database, "database")
    n = _check_n(n, len(db), "n")
    if not float(alpha) >= 0:
        raise ValueError(f"alpha: expected a number >= 0, got {alpha!r}")
    if n == 0:
        return _like(q / (torch.linalg.vector_norm(q, dim=1, keepdim=True) + EPS), queries)
    sims, ids = top_neighbours(q, db, n)
    return _like(_expand(q, db, sims, ids, float(alpha)), queries)


def average_query_expansion(queries: Any, database: Any, n: int = 2) -> Any:
    """Average query expansion ``q' = L2(q + Σ_{i=1}^{n} d_(i))`` — :func:`alpha_query_expansion` with α = 0."""
    return alpha_query_expansion(queries, database, n, alpha=0.0)


def database_side_augmentation(database: Any, k: int = 2, alpha: float = 0.0) -> Any:
    """Database-side augmentation: ``d' = L2(d + Σ_{i=1}^{k} max(0, dᵀd_(i))^α d_(i))`` over the top-k *other* items.

    Run it once offline; then search (and expand queries) against the augmented database.
    ``(N, D) → (N, D)``, same type as the input.
    """
    db = _as_tensor(database, "database")
    k = _check_n(k, len(db) - 1, "k")
    if not float(alpha) >= 0:
        raise ValueError(f"alpha: expected a number >= 0, got {alpha!r}")
    if k == 0:
        return _like(db / (torch.linalg.vector_norm(db, dim=1, keepdim=True) + EPS), database)
    sims, ids = top_neighbours(db, db, k, exclude_self=True)
    return _like(_expand(db, db, sims, ids, float(alpha)), database)
