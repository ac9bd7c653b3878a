"""Notebook 00 — getting started: environment check, offline assets, a tiny retrieval demo.

The demo retrieves sklearn's 8×8 digits by their pixels and by PCA-whitened pixels. It is not a paper
reproduction; it states no paper claim (``NOT_CLAIMED`` is empty): its two claims are sanity checks that the metric, index and plotting plumbing work end to end.
"""
from xmr_lib.claims import SANITY, at_least

PROFILES = {
    #           database size per query set, queries, PCA dims, results shown per query
    "smoke": {"n_db": 500, "n_queries": 100, "pca_dim": 16, "top_k": 8},
    "default": {"n_db": 1500, "n_queries": 297, "pca_dim": 24, "top_k": 8},
    "full": {"n_db": 1500, "n_queries": 297, "pca_dim": 24, "top_k": 8},
}

CLAIMS = [
    at_least("00.pixels_beat_chance", "Raw-pixel retrieval of digits is far above chance (mAP ≥ 3× chance)",
             metric="pixels/mAP_over_chance", threshold=3.0, kind=SANITY, source="—",
             profiles=("smoke", "default", "full")),
    at_least("00.faiss_matches_numpy", "faiss and brute-force numpy search return the same top-1 (agreement ≥ 0.99)",
             metric="index/top1_agreement", threshold=0.99, kind=SANITY, source="—",
             profiles=("smoke", "default", "full")),
]

NOT_CLAIMED: list[tuple[str, str, str]] = []
