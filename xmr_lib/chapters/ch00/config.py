"""Notebook 00 — getting started: environment check, offline assets, a tiny retrieval demo.

The demo retrieves sklearn's 8×8 digits by their pixels and by PCA-whitened pixels. It is not a paper
reproduction; it states no paper claim (``NOT_CLAIMED`` is empty): its two claims are sanity checks that the metric, index and plotting plumbing work end to end.
"""

from xmr_lib.core.claims import SANITY, at_least
from xmr_lib.retrieval import metrics

PROFILES = {
    #           database size per query set, queries, PCA dims, results shown per query
    "smoke": {"n_db": 500, "n_queries": 100, "pca_dim": 16, "top_k": 8},
    "default": {"n_db": 1500, "n_queries": 297, "pca_dim": 24, "top_k": 8},
    "full": {"n_db": 1500, "n_queries": 297, "pca_dim": 24, "top_k": 8},
}

CLAIMS = [
    at_least(
        "00.pixels_beat_chance",
        "Raw-pixel retrieval of digits is far above chance (mAP ≥ 3× chance)",
        metric="pixels/mAP_over_chance",
        threshold=3.0,
        kind=SANITY,
        source="—",
        profiles=("smoke", "default", "full"),
    ),
    at_least(
        "00.faiss_matches_numpy",
        "faiss and brute-force numpy search return the same top-1 (agreement ≥ 0.99)",
        metric="index/top1_agreement",
        threshold=0.99,
        kind=SANITY,
        source="—",
        profiles=("smoke", "default", "full"),
    ),
]

NOT_CLAIMED: list[tuple[str, str, str]] = []


# ---------------------------------------------------------------------------------------------------------------
# exercises (checked by ``check.ex00_1`` … in the notebook; see xmr_lib/exercises.py)


def _check_precision_at_k(fn):
    """Exercise 00.1: ``fn(scores, relevance, k)`` = P@k of one query, as :func:`xmr_lib.retrieval.metrics.precision_at_k`."""
    import numpy as np

    rng = np.random.default_rng(0)
    for k in (1, 3, 10):
        s, r = rng.normal(size=20), (rng.random(20) < 0.3).astype(float)
        want = float(metrics.precision_at_k(s[None], r[None], k, per_query=True)[0])
        got = float(fn(s, r, k))
        if abs(got - want) > 1e-9:
            return False, (
                f"for k={k} you return {got:.3f}, expected {want:.3f} (the fraction of relevant items "
                "among the k best-scored)"
            )
    return True, "P@k matches xmr_lib.retrieval.metrics.precision_at_k for k = 1, 3, 10"


def _check_hamming(fn):
    """Exercise 00.2: ``fn(a, b)`` = Hamming distances ``(n_a, n_b)`` between ±1 codes, from one matrix product."""
    import numpy as np

    rng = np.random.default_rng(1)
    a, b = np.sign(rng.normal(size=(5, 16))), np.sign(rng.normal(size=(7, 16)))
    got = np.asarray(fn(a, b), dtype=float)
    want = metrics.hamming_distance(a, b).astype(float)
    if got.shape != want.shape:
        return False, f"expected shape {want.shape} (one row per code of a), got {got.shape}"
    if not np.allclose(got, want):
        return False, "not the number of differing bits: for ±1 codes, d = (bits − a·b) / 2"
    return True, "d_H = (bits − a·bᵀ) / 2 — one matrix product for all pairs, as xmr_lib.retrieval.metrics does"


EXERCISES = {"1": _check_precision_at_k, "2": _check_hamming}
