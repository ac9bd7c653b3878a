"""Chapter 4's evaluation without sorting: ``python -m benchmarks.caption_metrics [--images 1000 --per-image 5]``

Times :func:`xmr_lib.chapters.ch04.adversarial.retrieval_metrics` (R@K, mAP and the thesis's "mAP" from the rank of
every relevant item, no full sort) against the same metrics from full sorts (``xmr_lib.retrieval.metrics``'s
``recall_at_k`` and ``mean_average_precision`` and the sorted-relevance thesis "mAP"), in the same run, on the
default profile's test split size (1,000 images × 5 captions), and prints the ratio and the largest difference.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xmr_lib.chapters.ch04 import adversarial as adv
from xmr_lib.retrieval.metrics import mean_average_precision, recall_at_k


def sorted_metrics(zi: np.ndarray, zt: np.ndarray, pair: np.ndarray, ks=(1, 5, 10)) -> dict[str, float]:
    """The metrics of ``adv.retrieval_metrics`` computed from full sorts (the baseline)."""
    rel_i2t, rel_t2i = adv.cross_modal_relevance(pair, zi.shape[0])
    s = (zi @ zt.T).astype(np.float64)
    out = {}
    for name, sc, rel in (("i2t", s, rel_i2t), ("t2i", s.T, rel_t2i)):
        for k, v in recall_at_k(sc, rel, list(ks)).items():
            out[f"{name}/R@{k}"] = 100.0 * v
        out[f"{name}/mAP"] = 100.0 * mean_average_precision(sc, rel)
        out[f"{name}/thesis_mAP"] = 100.0 * adv.thesis_map_excluding_hit(sc, rel)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--per-image", type=int, default=5)
    ap.add_argument("--dim", type=int, default=256)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    zi = rng.standard_normal((a.images, a.dim)).astype(np.float32)
    pair = np.repeat(np.arange(a.images), a.per_image)
    zt = (zi[pair] + rng.standard_normal((len(pair), a.dim)).astype(np.float32)).astype(np.float32)
    times = {}
    for name, fn in (("sorted", sorted_metrics), ("ranks", adv.retrieval_metrics)):
        t0 = time.perf_counter()
        res = fn(zi, zt, pair)
        times[name] = (time.perf_counter() - t0, res)
    (ts, a_), (tr, b_) = times["sorted"], times["ranks"]
    diff = max(abs(a_[k] - b_[k]) for k in a_)
    print(
        f"{a.images} images x {a.per_image} captions: sorted {ts:.2f} s, ranks {tr:.2f} s, ratio {ts / tr:.1f}x, "
        f"max |difference| {diff:.2e}"
    )


if __name__ == "__main__":
    main()
