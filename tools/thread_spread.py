"""Run-to-run spread of the default claims across torch thread counts.

``python -m tools.thread_spread RUN_2_THREADS RUN_1_THREAD`` compares two default runs of the same notebooks and
seeds made with ``XMR_THREADS=2`` (the pinned count) and ``XMR_THREADS=1``: for every ordering claim decided in
both, the change of its mean paired gap, and whether its margin over the required gap is inside that change
(then the claim is not an ordering claim at this scale: its verdict depends on float summation order).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from xmr_lib.core import claims
from xmr_lib.course import scorecard


def _gap(claim: claims.Claim, rec: dict) -> float | None:
    if not claim.ordering or rec is None:
        return None
    a, b = claim.metrics[:2]
    m = rec.get("metrics", {})
    try:
        xa, xb = claims.as_values(m[a], a), claims.as_values(m[b], b)
    except (KeyError, claims.BadValue):
        return None
    n = max(len(xa), len(xb))
    return float(np.mean(np.resize(xa, n) - np.resize(xb, n)))


def compare(run_a: str, run_b: str) -> list[dict]:
    ra, rb = scorecard.load_records(run_a), scorecard.load_records(run_b)
    rows = []
    for c in scorecard.all_claims():
        ga, gb = _gap(c, ra.get(c.chapter)), _gap(c, rb.get(c.chapter))
        if ga is None or gb is None:
            continue
        required = claims.GAP_FRACTION * c.paper_gap if c.paper_gap else 0.0
        spread = abs(ga - gb)
        rows.append(
            {
                "id": c.id,
                "gap_2": ga,
                "gap_1": gb,
                "spread": spread,
                "margin": ga - required,
                "inside_noise": abs(ga - required) <= spread,
            }
        )
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_2_threads")
    ap.add_argument("run_1_thread")
    args = ap.parse_args(argv)
    rows = compare(args.run_2_threads, args.run_1_thread)
    print(f"{'claim':48s} {'gap(2 thr)':>10s} {'gap(1 thr)':>10s} {'spread':>8s} {'margin':>8s}")
    for r in rows:
        flag = "  <- margin inside the thread noise" if r["inside_noise"] else ""
        print(f"{r['id']:48s} {r['gap_2']:+10.4f} {r['gap_1']:+10.4f} {r['spread']:8.4f} {r['margin']:+8.4f}{flag}")
    inside = sum(r["inside_noise"] for r in rows)
    print(
        f"{len(rows)} ordering claims compared; {inside} with a margin inside the 1-vs-2-thread spread; "
        f"median spread {np.median([r['spread'] for r in rows]) if rows else float('nan'):.2g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
