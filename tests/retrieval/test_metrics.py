"""xmr_lib.retrieval.metrics: hand-computed cases, tie and junk rules, validation, and the vectorised code against
straightforward per-query reference implementations written here."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from xmr_lib.retrieval import metrics as M

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------------------
# per-query reference implementations (plain Python, one query at a time)


def ref_order(s_row, r_row, ties):
    """Rank of the database items for one query, best first, under a deterministic tie rule."""
    n = len(s_row)
    if ties == "index":
        return sorted(range(n), key=lambda j: (-s_row[j], j))
    if ties == "pessimistic":
        return sorted(range(n), key=lambda j: (-s_row[j], bool(r_row[j]), j))
    return sorted(range(n), key=lambda j: (-s_row[j], not r_row[j], j))


def ref_ap(rel_in_order, n_rel, k=None, normalize="min"):
    """Non-interpolated AP of one ranked list of 0/1 relevance."""
    if n_rel == 0:
        return math.nan
    cut = rel_in_order if k is None else rel_in_order[:k]
    hits, total = 0, 0.0
    for i, r in enumerate(cut):
        if r:
            hits += 1
            total += hits / (i + 1)
    if k is None or normalize == "relevant":
        den = n_rel
    elif normalize == "min":
        den = min(n_rel, k)
    else:
        den = hits
    return total / den if den else 0.0


def ref_average_precision(s, r, k=None, ties="index", normalize="min"):
    out = []
    for i in range(len(s)):
        o = ref_order(s[i], r[i], ties)
        out.append(ref_ap([bool(r[i][j]) for j in o], int(np.sum(r[i])), k, normalize))
    return np.array(out)


def tie_orders(s_row):
    """Every ranking of one query obtained by permuting items inside each group of equal scores."""
    groups = [
        list(g)
        for _, g in itertools.groupby(sorted(range(len(s_row)), key=lambda j: -s_row[j]), key=lambda j: s_row[j])
    ]
    for combo in itertools.product(*[itertools.permutations(g) for g in groups]):
        yield [j for g in combo for j in g]


def ref_expected(s_row, r_row, fn):
    """Exact expectation of fn(ranked relevance) over uniformly random orders of tied items (enumeration)."""
    vals = [fn([bool(r_row[j]) for j in o]) for o in tie_orders(s_row)]
    return float(np.mean(vals))


def ref_revisited(ranks, ok, junk, kappas):
    """The revisited protocol for one query at a time, as the official compute_map describes it."""
    aps, prs = [], []
    for i in range(len(ranks)):
        ok_i, junk_i = set(int(x) for x in ok[i]), set(int(x) for x in junk[i])
        if not ok_i:
            aps.append(math.nan)
            prs.append([math.nan] * len(kappas))
            continue
        pos, removed = [], 0
        for r, item in enumerate(ranks[i]):
            if item in ok_i:
                pos.append(r - removed)  # junk strictly above is removed
            if item in junk_i:
                removed += 1
        ap = 0.0
        for j, r in enumerate(pos):
            p0 = 1.0 if r == 0 else j / r
            p1 = (j + 1) / (r + 1)
            ap += (p0 + p1) / 2 / len(ok_i)
        aps.append(ap)
        row = []
        for k in kappas:
            if not pos:
                row.append(0.0)
                continue
            kq = min(pos[-1] + 1, k)
            row.append(sum(1 for p in pos if p + 1 <= kq) / kq)
        prs.append(row)
    return np.array(aps), np.array(prs)


def tied_data(seed, q=7, n=40, levels=6, p=0.25):
    """Scores with many exact ties (few distinct values) and sparse relevance (some queries without any)."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, levels, (q, n)).astype(np.float64)
    r = rng.random((q, n)) < p
    r[0] = False
    return s, r


# ------------------------------------------------------------------------------------------------------------
# average precision, mAP


def test_ap_hand_computed():
    # ranking: rel, irr, rel, irr, rel → P@1 = 1, P@3 = 2/3, P@5 = 3/5; AP = (1 + 2/3 + 3/5) / 3 = 0.7556
    s = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])
    r = np.array([[1, 0, 1, 0, 1]], bool)
    assert M.average_precision(s, r)[0] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # the same items given in another database order: only the scores decide the ranking
    perm = [4, 2, 0, 3, 1]
    assert M.average_precision(s[:, perm], r[:, perm])[0] == pytest.approx(0.755555555)
    # AP@3: hits at ranks 1 and 3 → 1 + 2/3; normalised by min(R=3, k=3) = 3, by retrieved = 2, by R = 3
    assert M.average_precision(s, r, k=3)[0] == pytest.approx((1 + 2 / 3) / 3)
    assert M.average_precision(s, r, k=3, normalize="retrieved")[0] == pytest.approx((1 + 2 / 3) / 2)
    assert M.average_precision(s, r, k=3, normalize="relevant")[0] == pytest.approx((1 + 2 / 3) / 3)
    # AP@2: one hit (rank 1) → min(3, 2) = 2 gives 0.5, retrieved gives 1, relevant gives 1/3
    assert M.average_precision(s, r, k=2)[0] == pytest.approx(0.5)
    assert M.average_precision(s, r, k=2, normalize="retrieved")[0] == pytest.approx(1.0)
    assert M.average_precision(s, r, k=2, normalize="relevant")[0] == pytest.approx(1 / 3)
    assert M.average_precision(s, r, k=99)[0] == pytest.approx(M.average_precision(s, r)[0])
    # graded relevance: anything > 0 counts
    assert M.average_precision(s, np.array([[3, 0, 1, -1, 2]]))[0] == pytest.approx(0.755555555)
    assert M.mean_average_precision(s, r) == pytest.approx(0.755555555)


def test_ap_retrieved_normalisation_gives_zero_when_nothing_is_retrieved():
    s = np.array([[0.9, 0.8, 0.7]])
    r = np.array([[0, 0, 1]], bool)
    assert M.average_precision(s, r, k=2, normalize="retrieved")[0] == 0.0
    assert M.average_precision(s, r, k=2)[0] == 0.0


def test_tie_policies_hand_computed():
    # three items with the same score, only the last (index 2) relevant
    s = np.array([[0.5, 0.5, 0.5]])
    r = np.array([[0, 0, 1]], bool)
    assert M.average_precision(s, r, ties="index")[0] == pytest.approx(1 / 3)  # stays at rank 3
    assert M.average_precision(s, r, ties="pessimistic")[0] == pytest.approx(1 / 3)
    assert M.average_precision(s, r, ties="optimistic")[0] == pytest.approx(1.0)
    # expected: the relevant item is at rank 1, 2 or 3 with probability 1/3 each → (1 + 1/2 + 1/3) / 3 = 11/18
    assert M.average_precision(s, r, ties="expected")[0] == pytest.approx(11 / 18)
    # relevant item first in index order: index = optimistic
    r2 = np.array([[1, 0, 0]], bool)
    assert M.average_precision(s, r2, ties="index")[0] == 1.0
    assert M.average_precision(s, r2, ties="pessimistic")[0] == pytest.approx(1 / 3)
    # P@1 and hit@2 under each rule
    assert M.precision_at_k(s, r, 1, ties="index") == 0.0
    assert M.precision_at_k(s, r, 1, ties="optimistic") == 1.0
    assert M.precision_at_k(s, r, 1, ties="expected") == pytest.approx(1 / 3)
    assert M.recall_at_k(s, r, (1, 2), ties="expected") == pytest.approx({1: 1 / 3, 2: 2 / 3})
    assert M.recall_at_k(s, r, (2, 3), ties="index") == {2: 0.0, 3: 1.0}


def test_queries_without_relevant_items():
    s = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8]])
    r = np.array([[1, 0], [0, 0], [1, 0]], bool)
    ap = M.average_precision(s, r)
    assert ap[0] == 1.0 and math.isnan(ap[1]) and ap[2] == 0.5
    assert M.mean_average_precision(s, r) == pytest.approx(0.75)  # excluded (revisited code)
    assert M.mean_average_precision(s, r, empty="zero") == pytest.approx(0.5)  # counted as 0 (DCMH)
    assert math.isnan(M.mean_average_precision(s, np.zeros_like(r)))
    assert M.recall_at_k(s, r, ks=(1,)) == {1: 0.5}  # the empty query is left out
    assert M.precision_at_k(s, r, 1) == pytest.approx(1 / 3)  # ...but counts for P@k


@pytest.mark.parametrize("ties", ["index", "pessimistic", "optimistic"])
@pytest.mark.parametrize("k,normalize", [(None, "min"), (5, "min"), (5, "retrieved"), (12, "relevant")])
def test_ap_matches_per_query_reference(ties, k, normalize):
    s, r = tied_data(1)
    got = M.average_precision(s, r, k, ties=ties, normalize=normalize)
    want = ref_average_precision(s, r, k, ties, normalize)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.isnan(got[0])


def test_ap_on_distinct_scores_ignores_the_tie_rule_and_matches_sklearn_style_definition():
    rng = np.random.default_rng(2)
    s = rng.standard_normal((20, 300))
    r = rng.random((20, 300)) < 0.1
    base = M.average_precision(s, r)
    for t in M.TIES:
        np.testing.assert_allclose(M.average_precision(s, r, ties=t), base, atol=1e-12)
    np.testing.assert_allclose(base, ref_average_precision(s, r), atol=1e-12)


def test_expected_ties_equal_exhaustive_enumeration():
    s, r = tied_data(3, q=5, n=9, levels=3, p=0.4)
    got = M.average_precision(s, r, ties="expected")
    got_k = M.average_precision(s, r, 4, ties="expected")
    for i in range(len(s)):
        n_rel = int(r[i].sum())
        if n_rel == 0:
            assert math.isnan(got[i])
            continue
        assert got[i] == pytest.approx(ref_expected(s[i], r[i], lambda x: ref_ap(x, n_rel)), abs=1e-12)  # noqa: B023 - called at once, inside the loop
        assert got_k[i] == pytest.approx(ref_expected(s[i], r[i], lambda x: ref_ap(x, n_rel, 4)), abs=1e-12)  # noqa: B023 - called at once, inside the loop
    p3 = M.precision_at_k(s, r, 3, ties="expected", per_query=True)
    hit = M.recall_at_k(s, r, (2,), ties="expected", per_query=True)[2]
    for i in range(len(s)):
        assert p3[i] == pytest.approx(ref_expected(s[i], r[i], lambda x: sum(x[:3]) / 3), abs=1e-12)
        if r[i].any():
            assert hit[i] == pytest.approx(ref_expected(s[i], r[i], lambda x: float(any(x[:2]))), abs=1e-12)
    # expected lies between the pessimistic and optimistic bounds
    lo, hi = M.average_precision(s, r, ties="pessimistic"), M.average_precision(s, r, ties="optimistic")
    ok = ~np.isnan(got)
    assert (lo[ok] <= got[ok] + 1e-12).all() and (got[ok] <= hi[ok] + 1e-12).all()


def test_chunking_does_not_change_results(monkeypatch):
    s, r = tied_data(4, q=30, n=50)
    want = {t: M.average_precision(s, r, ties=t) for t in M.TIES}
    monkeypatch.setattr(M, "_CHUNK_ELEMS", 60)  # one query (and a bit) per chunk
    for t in M.TIES:
        np.testing.assert_allclose(M.average_precision(s, r, ties=t), want[t], atol=1e-12)


def test_torch_inputs_are_accepted():
    s, r = tied_data(5)
    a = M.average_precision(torch.from_numpy(s).float().requires_grad_(), torch.from_numpy(r))
    np.testing.assert_allclose(a, M.average_precision(s, r), atol=1e-12)
    assert isinstance(M.mean_average_precision(torch.from_numpy(s), torch.from_numpy(r)), float)


# ------------------------------------------------------------------------------------------------------------
# precision@k, recall@k, PR curve


@pytest.mark.parametrize("ties", ["index", "pessimistic", "optimistic"])
def test_precision_and_recall_at_k_match_reference(ties):
    s, r = tied_data(6, q=9, n=30)
    for k in (1, 3, 7, 30):
        want_p, want_hit = [], []
        for i in range(len(s)):
            top = [bool(r[i][j]) for j in ref_order(s[i], r[i], ties)[:k]]
            want_p.append(sum(top) / k)
            want_hit.append(float(any(top)) if r[i].any() else math.nan)
        np.testing.assert_allclose(M.precision_at_k(s, r, k, ties=ties, per_query=True), want_p, atol=1e-12)
        assert M.precision_at_k(s, r, k, ties=ties) == pytest.approx(np.mean(want_p))
        got_hit = M.recall_at_k(s, r, (k,), ties=ties, per_query=True)[k]
        np.testing.assert_allclose(got_hit, want_hit, atol=1e-12)
        assert M.recall_at_k(s, r, (k,), ties=ties)[k] == pytest.approx(np.nanmean(want_hit))


def test_recall_at_k_is_the_caption_retrieval_hit_rate():
    # 2 image queries, 4 captions; query 0 has captions 0,1 relevant, query 1 has caption 3
    s = np.array([[0.1, 0.9, 0.8, 0.2], [0.9, 0.8, 0.7, 0.6]])
    r = np.array([[1, 1, 0, 0], [0, 0, 0, 1]], bool)
    # R@1: query 0 hits (caption 1 first), query 1 misses; R@4: both hit; not the fraction of relevant items
    assert M.recall_at_k(s, r, ks=(1, 2, 4)) == {1: 0.5, 2: 0.5, 4: 1.0}


def test_precision_recall_curve():
    # ranking rel, irr, rel: precision 1, 1/2, 2/3; recall 1/2, 1/2, 1
    s = np.array([[0.9, 0.8, 0.7], [0.1, 0.2, 0.3]])
    r = np.array([[1, 0, 1], [0, 0, 0]], bool)
    p, rec, cut = M.precision_recall_curve(s, r)
    np.testing.assert_allclose(p, [1, 0.5, 2 / 3])
    np.testing.assert_allclose(rec, [0.5, 0.5, 1])
    assert cut.tolist() == [1, 2, 3]
    p, rec, cut = M.precision_recall_curve(s, r, cutoffs=[3])
    assert p.tolist() == pytest.approx([2 / 3]) and rec.tolist() == [1.0]
    s2, r2 = tied_data(7, q=6, n=20)
    for ties in ("index", "pessimistic", "optimistic"):
        p, rec, _ = M.precision_recall_curve(s2, r2, ties=ties)
        keep = r2.any(1)
        found = np.array([np.cumsum([r2[i][j] for j in ref_order(s2[i], r2[i], ties)]) for i in np.where(keep)[0]])
        np.testing.assert_allclose(p, (found / np.arange(1, 21)).mean(0), atol=1e-12)
        np.testing.assert_allclose(rec, (found / r2[keep].sum(1, keepdims=True)).mean(0), atol=1e-12)
    p_e, rec_e, _ = M.precision_recall_curve(s2, r2, ties="expected")
    p_lo, _, _ = M.precision_recall_curve(s2, r2, ties="pessimistic")
    p_hi, _, _ = M.precision_recall_curve(s2, r2, ties="optimistic")
    assert (p_lo <= p_e + 1e-12).all() and (p_e <= p_hi + 1e-12).all() and rec_e[-1] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------------------
# revisited Oxford / Paris


def test_revisited_hand_computed():
    # ranking of 6 database images: [junk 4, pos 0, other 5, pos 3, other 1, other 2]
    ranks = np.array([[4, 0, 5, 3, 1, 2]])
    # junk removed → positives at 0-based ranks 0 and 2 (R = 2):
    #   j=0, r=0: (1 + 1/1)/2 · 1/2 = 0.5 ; j=1, r=2: (1/2 + 2/3)/2 · 1/2 = 0.291667 → AP = 0.791667
    ap = M.revisited_ap(ranks, [np.array([0, 3])], [np.array([4])])
    assert ap[0] == pytest.approx(0.5 + (0.5 + 2 / 3) / 4)
    # mP@k (official): last positive at 1-based rank 3 → k' = min(3, k); P@1 = 1/1, P@5 = 2/3 (k' = 3)
    pr = M.revisited_precision_at_k(ranks, [np.array([0, 3])], [np.array([4])], kappas=(1, 2, 5))
    np.testing.assert_allclose(pr[0], [1.0, 0.5, 2 / 3])
    # a lone positive at rank 2 gets 0.25 by the trapezoid rule (not 0.5)
    assert M.revisited_ap(np.array([[1, 0]]), [[0]])[0] == pytest.approx(0.25)


def test_revisited_map_setups_hand_computed():
    # 1 query, 6 images ranked 0..5 (scores descending); easy = {0, 4}, hard = {1}, junk = {2}
    scores = np.array([[6.0, 5, 4, 3, 2, 1]])
    gnd = [{"easy": np.array([0, 4]), "hard": np.array([1]), "junk": np.array([2])}]
    out = M.revisited_map(scores, gnd, kappas=(1, 5))
    # easy: junk {2, 1} removed → ranking 0, 3, 4, 5 → positives at ranks 0, 2: AP = 0.5 + (1/2 + 2/3)/4
    assert out["easy"]["mAP"] == pytest.approx(0.5 + (0.5 + 2 / 3) / 4)
    # medium: junk {2} removed → 0, 1, 3, 4, 5 → positives at 0, 1, 3 (R = 3):
    #   (1 + 1)/2/3 + (1/1 + 2/2)/2/3 + (2/3 + 3/4)/2/3
    assert out["medium"]["mAP"] == pytest.approx(1 / 3 + 1 / 3 + (2 / 3 + 3 / 4) / 6)
    # hard: junk {2, 0, 4} removed → 1, 3, 5 → the hard positive is first: AP = 1
    assert out["hard"]["mAP"] == pytest.approx(1.0) and out["hard"]["mP@5"] == 1.0
    assert out["medium"]["mP@1"] == 1.0 and out["medium"]["mP@5"] == pytest.approx(3 / 4)
    assert set(out) == {"easy", "medium", "hard"} and out["easy"]["aps"].shape == (1,)
    assert out["easy"]["prs"].shape == (1, 2)


def random_gnd(rng, q, n, overlap=False):
    gnd = []
    for i in range(q):
        perm = rng.permutation(n)
        ne, nh, nj = rng.integers(0, 6, 3)
        if i == 0:
            ne, nh = 0, 0  # no positives at all
        g = {"easy": perm[:ne], "hard": perm[ne : ne + nh], "junk": perm[ne + nh : ne + nh + nj]}
        if overlap and ne:  # an index listed both as easy and as junk
            g["junk"] = np.concatenate([g["junk"], perm[:1]])
        gnd.append(g)
    return gnd


@pytest.mark.parametrize("overlap,chunk_elems", [(False, 1 << 20), (True, 1 << 20), (True, 150)])
def test_revisited_map_matches_per_query_reference(overlap, chunk_elems, monkeypatch):
    monkeypatch.setattr(M, "_CHUNK_ELEMS", chunk_elems)  # 150: two or three queries per chunk
    rng = np.random.default_rng(8)
    q, n, kappas = 25, 60, (1, 5, 10)
    gnd = random_gnd(rng, q, n, overlap)
    scores = rng.integers(0, 20, (q, n)).astype(np.float64)  # ties: ranked by index (stable)
    ranks = np.array([ref_order(scores[i], np.zeros(n), "index") for i in range(q)])
    got_s, got_r = M.revisited_map(scores, gnd, kappas), M.revisited_map(ranks, gnd, kappas)
    setups = {
        "easy": (("easy",), ("junk", "hard")),
        "medium": (("easy", "hard"), ("junk",)),
        "hard": (("hard",), ("junk", "easy")),
    }
    for name, (pk, jk) in setups.items():
        ok = [np.concatenate([g[x] for x in pk]) for g in gnd]
        junk = [np.concatenate([g[x] for x in jk]) for g in gnd]
        aps, prs = ref_revisited(ranks, ok, junk, kappas)
        for got in (got_s, got_r):
            np.testing.assert_allclose(got[name]["aps"], aps, atol=1e-12)
            np.testing.assert_allclose(got[name]["prs"], prs, atol=1e-12)
            assert got[name]["mAP"] == pytest.approx(np.nanmean(aps))
            for j, k in enumerate(kappas):
                assert got[name][f"mP@{k}"] == pytest.approx(np.nanmean(prs[:, j]))
        assert math.isnan(got_s[name]["aps"][0])


def test_revisited_truncated_ranks_and_official_layout():
    rng = np.random.default_rng(9)
    q, n = 12, 50
    gnd = random_gnd(rng, q, n)
    full = np.argsort(-rng.random((q, n)), axis=1)
    top = full[:, :15]  # only the top 15 of each ranking
    ok = [np.concatenate([g["easy"], g["hard"]]) for g in gnd]
    junk = [g["junk"] for g in gnd]
    aps, prs = ref_revisited(top, ok, junk, (1, 5, 10))
    got = M.revisited_map(top, gnd)["medium"]
    np.testing.assert_allclose(got["aps"], aps, atol=1e-12)
    np.testing.assert_allclose(got["prs"], prs, atol=1e-12)
    # the lower-level helpers agree with revisited_map
    np.testing.assert_allclose(M.revisited_ap(top, ok, junk), aps, atol=1e-12)
    # a (Q, N) bool mask works as well as index lists
    mask = np.zeros((q, n), bool)
    for i, o in enumerate(ok):
        mask[i, o] = True
    np.testing.assert_allclose(M.revisited_ap(full, mask, junk), M.revisited_ap(full, ok, junk), atol=1e-12)
    with pytest.raises(ValueError, match=r"official \(n_db, n_queries\) layout; pass its transpose"):
        M.revisited_map(full.T, gnd)


def test_revisited_validation():
    gnd = [{"easy": [0], "hard": [], "junk": []}]
    with pytest.raises(ValueError, match=r"gnd\[0\]: expected a dict with 'easy', 'hard'"):
        M.revisited_map(np.array([[0, 1]]), [{"ok": [0]}])
    with pytest.raises(ValueError, match="ranks_or_scores: expected 1 rows"):
        M.revisited_map(np.zeros((2, 3)), gnd)
    with pytest.raises(ValueError, match="ranks_or_scores: NaN score at"):
        M.revisited_map(np.array([[np.nan, 1.0]]), gnd)
    with pytest.raises(ValueError, match=">= 0"):
        M.revisited_map(np.array([[-1, 0]]), gnd)
    with pytest.raises(ValueError, match="setups"):
        M.revisited_map(np.array([[0, 1]]), gnd, setups=("tough",))
    with pytest.raises(ValueError, match="junk: expected 1 entries"):
        M.revisited_ap(np.array([[0, 1]]), [[0]], [[1], [0]])


# ------------------------------------------------------------------------------------------------------------
# Hamming ranking


DCMH_TOY = dict(  # the 4-query toy example shipped with DCMH / SSAH's calc_hammingranking.py
    qB=np.array([[1, -1, 1, 1], [-1, -1, -1, 1], [1, 1, -1, 1], [1, 1, 1, -1]]),
    rB=np.array([[1, -1, 1, -1], [-1, -1, 1, -1], [-1, -1, 1, -1], [1, 1, -1, -1], [-1, 1, -1, -1], [1, 1, -1, 1]]),
    qL=np.array([[0, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 1], [0, 1, 0, 1]]),
    rL=np.array([[1, 0, 0, 1], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 1, 0]]),
)


def test_hamming_distance_both_conventions():
    q = np.array([[1, -1, 1, 1]])
    d = np.array([[1, -1, 1, 1], [-1, 1, -1, -1], [1, 1, 1, -1]])
    np.testing.assert_array_equal(M.hamming_distance(q, d), [[0, 4, 2]])
    np.testing.assert_array_equal(M.hamming_distance((q > 0).astype(int), d), [[0, 4, 2]])  # {0,1} vs ±1
    np.testing.assert_array_equal(
        M.hamming_distance(torch.tensor(q > 0), torch.tensor(d, dtype=torch.float)), [[0, 4, 2]]
    )
    rng = np.random.default_rng(10)
    a, b = rng.integers(0, 2, (7, 37)), rng.integers(0, 2, (11, 37))
    np.testing.assert_array_equal(M.hamming_distance(a, b), (a[:, None, :] != b[None]).sum(2))


def test_hamming_map_dcmh_toy_example():
    t = DCMH_TOY
    # every toy query has a relevant item, so excluding/zeroing empty queries agree
    assert M.hamming_map(t["qB"], t["rB"], t["qL"], t["rL"]) == pytest.approx(0.704166667)
    assert M.hamming_map(t["qB"], t["rB"], t["qL"], t["rL"], ties="expected") == pytest.approx(0.6013020833)
    # query 0: distances [1 2 2 3 4 2], relevant items 1 and 2 → stable ranking 0,1,2,5,3,4 → ranks 2, 3:
    # AP = (1/2 + 2/3) / 2 = 0.583333
    ap = M.hamming_map(t["qB"], t["rB"], t["qL"], t["rL"], per_query=True)
    assert ap[0] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_hamming_map_equals_score_map_on_negative_distances():
    rng = np.random.default_rng(11)
    qB, dB = np.sign(rng.standard_normal((40, 12))), np.sign(rng.standard_normal((300, 12)))
    qL, dL = rng.random((40, 6)) < 0.2, rng.random((300, 6)) < 0.2
    rel = (qL.astype(int) @ dL.T.astype(int)) > 0
    neg = -M.hamming_distance(qB, dB).astype(float)
    for ties in M.TIES:
        for k, norm in ((None, "min"), (25, "min"), (25, "retrieved"), (25, "relevant")):
            if ties == "expected" and norm == "retrieved":
                continue
            got = M.hamming_map(qB, dB, qL, dL, k, ties=ties, normalize=norm, per_query=True)
            np.testing.assert_allclose(got, M.average_precision(neg, rel, k, ties=ties, normalize=norm), atol=1e-12)
        np.testing.assert_allclose(
            M.hamming_topk_precision(qB, dB, qL, dL, 10, ties=ties, per_query=True),
            M.precision_at_k(neg, rel, 10, ties=ties, per_query=True),
            atol=1e-12,
        )
    # chunking and the label format do not matter
    a = M.hamming_map(qB, dB, qL, dL, per_query=True)
    np.testing.assert_allclose(M.hamming_map(qB, dB, qL, dL, per_query=True, chunk_size=7), a, atol=1e-12)
    np.testing.assert_allclose(
        M.hamming_map((qB > 0), (dB > 0).astype(np.uint8), qL.astype(float), dL, per_query=True), a, atol=1e-12
    )


def test_hamming_map_against_per_query_loop():
    rng = np.random.default_rng(12)
    qB, dB = np.sign(rng.standard_normal((30, 8))), np.sign(rng.standard_normal((120, 8)))
    qL, dL = rng.random((30, 5)) < 0.15, rng.random((120, 5)) < 0.15
    want = []
    for i in range(30):
        dist = [int(np.sum(qB[i] != dB[j])) for j in range(120)]
        rel = [bool((qL[i] & dL[j]).any()) for j in range(120)]
        order = sorted(range(120), key=lambda j: (dist[j], j))
        want.append(ref_ap([rel[j] for j in order], sum(rel)))
    np.testing.assert_allclose(M.hamming_map(qB, dB, qL, dL, per_query=True), want, atol=1e-12)
    assert M.hamming_map(qB, dB, qL, dL) == pytest.approx(np.nanmean(want))
    assert M.hamming_map(qB, dB, qL, dL, empty="zero") == pytest.approx(np.nan_to_num(want).mean())


def test_popcount_fallback_for_numpy_without_bitwise_count(monkeypatch):
    rng = np.random.default_rng(15)
    a, b = rng.integers(0, 2, (6, 130)), rng.integers(0, 2, (9, 130))
    la, lb = rng.random((6, 70)) < 0.05, rng.random((9, 70)) < 0.05  # 70 labels: two 64-bit words
    want_d, want_ap = M.hamming_distance(a, b), M.hamming_map(a, b, la, lb, per_query=True)
    monkeypatch.setattr(M, "_HAS_BITWISE_COUNT", False)
    np.testing.assert_array_equal(M.hamming_distance(a, b), want_d)
    np.testing.assert_array_equal(want_d, (a[:, None] != b[None]).sum(2))
    np.testing.assert_allclose(M.hamming_map(a, b, la, lb, per_query=True), want_ap, atol=1e-12)
    np.testing.assert_array_equal(M.hamming_relevance(la, lb), (la.astype(int) @ lb.T.astype(int)) > 0)


def test_class_id_labels_equal_one_hot():
    rng = np.random.default_rng(13)
    qB, dB = np.sign(rng.standard_normal((20, 16))), np.sign(rng.standard_normal((90, 16)))
    qy, dy = rng.integers(0, 5, 20), rng.integers(0, 5, 90)
    a = M.hamming_map(qB, dB, qy, dy, per_query=True)
    b = M.hamming_map(qB, dB, np.eye(5)[qy], np.eye(5)[dy], per_query=True)
    c = M.hamming_map(qB, dB, qy, np.eye(5)[dy], per_query=True)
    np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_allclose(a, c, atol=1e-12)
    np.testing.assert_array_equal(M.hamming_relevance(qy, dy), qy[:, None] == dy[None])


def test_radius_precision_and_pr_curve_hand_computed():
    # one query 0000; database distances 0, 1, 1, 2, 4; relevant: items 0, 2, 4
    q = np.array([[0, 0, 0, 0]])
    d = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    ql, dl = np.array([0]), np.array([0, 1, 0, 1, 0])
    # r = 0: {0} → P 1, R 1/3; r = 1: {0,1,2} → 2/3, 2/3; r = 2,3: {0..3} → 2/4, 2/3; r = 4: all → 3/5, 1
    p, r, radii = M.pr_curve_hamming(q, d, ql, dl)
    np.testing.assert_allclose(p, [1, 2 / 3, 0.5, 0.5, 0.6])
    np.testing.assert_allclose(r, [1 / 3, 2 / 3, 2 / 3, 2 / 3, 1])
    assert radii.tolist() == [0, 1, 2, 3, 4]
    assert M.hamming_radius_precision(q, d, ql, dl, radius=1) == pytest.approx(2 / 3)
    assert M.hamming_radius_precision(q, d, ql, dl, radius=2) == pytest.approx(0.5)
    # a query whose Hamming ball is empty scores 0
    q2 = np.array([[0, 0, 0, 0], [1, 1, 1, 0]])
    pq = M.hamming_radius_precision(q2, d[:4], np.array([0, 0]), dl[:4], radius=0, per_query=True)
    np.testing.assert_allclose(pq, [1.0, 0.0])


def test_pr_curve_micro_and_macro_against_brute_force():
    rng = np.random.default_rng(14)
    qB, dB = rng.integers(0, 2, (15, 10)), rng.integers(0, 2, (80, 10))
    qL, dL = rng.random((15, 4)) < 0.3, rng.random((80, 4)) < 0.3
    D = (qB[:, None] != dB[None]).sum(2)
    W = (qL.astype(int) @ dL.T.astype(int)) > 0
    p_mi, r_mi, _ = M.pr_curve_hamming(qB, dB, qL, dL)
    p_ma, r_ma, _ = M.pr_curve_hamming(qB, dB, qL, dL, average="macro")
    keep = W.any(1)
    for rad in range(11):
        ret = D <= rad
        good = (ret & W).sum()
        assert p_mi[rad] == pytest.approx(good / ret.sum() if ret.sum() else 0.0)
        assert r_mi[rad] == pytest.approx(good / W.sum())
        per_p = np.where(ret.sum(1) > 0, (ret & W).sum(1) / np.maximum(ret.sum(1), 1), 0.0)
        assert p_ma[rad] == pytest.approx(per_p[keep].mean())
        assert r_ma[rad] == pytest.approx(((ret & W).sum(1)[keep] / W.sum(1)[keep]).mean())
        assert M.hamming_radius_precision(qB, dB, qL, dL, radius=rad) == pytest.approx(per_p.mean())


def test_hamming_validation():
    q, d = np.ones((2, 4)), np.ones((3, 4))
    with pytest.raises(ValueError, match=r"query_codes: codes must be in \{-1,\+1\} or \{0,1\}, got value 0.5"):
        M.hamming_distance(np.full((1, 4), 0.5), d)
    with pytest.raises(ValueError, match="mix -1 and 0"):
        M.hamming_distance(np.array([[1, -1, 0, 1]]), d)
    with pytest.raises(ValueError, match=r"db_codes: expected 4 bits like query_codes, got shape \(3, 5\)"):
        M.hamming_distance(q, np.ones((3, 5)))
    with pytest.raises(ValueError, match="db_codes: the database is empty"):
        M.hamming_distance(q, np.ones((0, 4)))
    with pytest.raises(ValueError, match=r"query_labels: expected 2 rows \(one per code\), got shape \(3, 2\)"):
        M.hamming_map(q, d, np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="db_labels: expected 2 label columns like query_labels"):
        M.hamming_map(q, d, np.ones((2, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="query_labels: class id 5 out of range for 2 label columns"):
        M.hamming_map(q, d, np.array([0, 5]), np.ones((3, 2)))
    with pytest.raises(ValueError, match="top_k: expected an integer >= 1, got 0"):
        M.hamming_map(q, d, np.array([0, 1]), np.array([0, 1, 1]), top_k=0)
    with pytest.raises(ValueError, match="'retrieved' cannot be used with ties='expected'"):
        M.hamming_map(q, d, np.array([0, 1]), np.array([0, 1, 1]), top_k=2, ties="expected", normalize="retrieved")
    with pytest.raises(ValueError, match=r"radius: expected an integer in \[0, 4\], got 5"):
        M.hamming_radius_precision(q, d, np.array([0, 1]), np.array([0, 1, 1]), radius=5)
    with pytest.raises(ValueError, match="average"):
        M.pr_curve_hamming(q, d, np.array([0, 1]), np.array([0, 1, 1]), average="weighted")


# ------------------------------------------------------------------------------------------------------------
# validation of the score-based functions


def test_score_validation_messages():
    s, r = np.zeros((2, 3)), np.zeros((2, 3), bool)
    with pytest.raises(ValueError, match=r"scores: expected a 2-D array \(n_queries, n_db\), got shape \(5,\)"):
        M.average_precision(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match=r"relevance: expected shape \(2, 3\) \(the same as scores\), got \(2, 4\)"):
        M.average_precision(s, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"scores: the database is empty \(shape \(2, 0\)\)"):
        M.mean_average_precision(np.zeros((2, 0)), np.zeros((2, 0)))
    with pytest.raises(ValueError, match=r"scores: NaN score at \(query 1, item 2\)"):
        M.average_precision(np.array([[0, 0, 0], [0, 0, np.nan]]), r)
    with pytest.raises(ValueError, match=r"relevance: NaN at \(query 0, item 1\)"):
        M.average_precision(s, np.array([[0, np.nan, 0], [0, 0, 0]]))
    with pytest.raises(
        ValueError,
        match=r"ties: expected one of \('index', 'pessimistic', 'optimistic', "
        r"'expected'\), got 'random'",
    ):
        M.average_precision(s, r, ties="random")
    with pytest.raises(ValueError, match="normalize"):
        M.average_precision(s, r, 2, normalize="total")
    with pytest.raises(ValueError, match=r"k: expected an integer in \[1, 3\], got 4"):
        M.precision_at_k(s, r, 4)
    with pytest.raises(ValueError, match=r"ks: expected an integer in \[1, 3\], got 0"):
        M.recall_at_k(s, r, ks=(0, 1))
    with pytest.raises(ValueError, match="k: expected an integer, got 2.5"):
        M.average_precision(s, r, 2.5)
    with pytest.raises(ValueError, match="empty"):
        M.mean_average_precision(s, r, empty="skip")
    with pytest.raises(ValueError, match=r"cutoffs: expected ranks in \[1, 3\]"):
        M.precision_recall_curve(s, r, cutoffs=[0, 2])


# ------------------------------------------------------------------------------------------------------------
# incremental learning: forgetting (thesis Eq. 6.12)


R4 = np.array(
    [
        [0.90, 0.20, 0.10, 0.05],  # after step 0 (base task 0)
        [0.70, 0.80, 0.15, 0.10],  # after step 1 (task 1)
        [0.60, 0.75, 0.85, 0.12],
        [0.65, 0.50, 0.80, 0.90],
    ]
)


def test_forgetting_hand_computed():
    # step 3, tasks 0..2: f0 = max(.90, .70, .60) − .65 = .25; f1 = max(.80, .75) − .50 = .30; f2 = .85 − .80 = .05
    np.testing.assert_allclose(M.task_forgetting(R4), [0.25, 0.30, 0.05, np.nan])
    assert M.average_forgetting(R4) == pytest.approx(0.20)
    # step 1: f0 = .90 − .70 = .20 ; step 2: f0 = .90 − .60 = .30, f1 = .80 − .75 = .05 → .175
    assert M.average_forgetting(R4, step=1) == pytest.approx(0.20)
    assert M.average_forgetting(R4, step=2) == pytest.approx(0.175)
    np.testing.assert_allclose(M.forgetting_curve(R4), [0.20, 0.175, 0.20])
    assert math.isnan(M.average_forgetting(R4, step=0))
    # average incremental accuracy: mean of .90, (.70+.80)/2, (.60+.75+.85)/3, (.65+.50+.80+.90)/4
    assert M.average_incremental_accuracy(R4) == pytest.approx((0.9 + 0.75 + 2.2 / 3 + 2.85 / 4) / 4)


def test_forgetting_variants_and_nan_convention():
    # the printed Eq. 6.12 takes the max over every earlier step, zero-shot evaluations included
    R = np.array([[0.9, 0.95], [0.8, 0.6], [0.7, 0.5]])
    assert M.average_forgetting(R) == pytest.approx(((0.9 - 0.7) + (0.6 - 0.5)) / 2)
    assert M.average_forgetting(R, max_over="all") == pytest.approx(((0.9 - 0.7) + (0.95 - 0.5)) / 2)
    # NaN = not evaluated yet (xmr_lib.train.incremental's matrix): same values; a truncated matrix works too
    Rn = R4.copy()
    Rn[np.triu_indices(4, 1)] = np.nan
    assert M.average_forgetting(Rn) == pytest.approx(0.20)
    assert M.average_forgetting(Rn[:2]) == pytest.approx(0.20)
    assert M.average_forgetting(Rn[:3, :2]) == pytest.approx(0.175)
    # two groups learned at step 0: "first_finite" reads that from the NaN pattern
    R2 = np.array([[0.9, 0.8, np.nan], [0.7, 0.7, 0.9]])
    assert M.average_forgetting(R2, learned_at="first_finite") == pytest.approx((0.2 + 0.1) / 2)
    assert M.average_forgetting(R2) == pytest.approx(0.2)  # diagonal: only task 0 counts
    assert M.average_forgetting(R2, learned_at=[0, 0, 1]) == pytest.approx(0.15)
    with pytest.raises(ValueError, match=r"R: expected a 2-D results matrix"):
        M.average_forgetting(np.zeros(3))
    with pytest.raises(ValueError, match=r"step: expected an integer in \[-4, 3\], got 4"):
        M.average_forgetting(R4, step=4)
    with pytest.raises(ValueError, match="learned_at: expected 4 integer steps"):
        M.average_forgetting(R4, learned_at=[0, 1])


# ------------------------------------------------------------------------------------------------------------
# the benchmark runs


def test_benchmark_quick_runs():
    res = subprocess.run(
        [sys.executable, "-m", "benchmarks.metrics", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Hamming" in res.stdout and "revisited" in res.stdout and "max |diff|" in res.stdout


def test_revisited_ranks_with_a_repeated_id_raise():
    """Before: a positive listed three times in a ranking counted three times (AP = 3.0)."""
    with pytest.raises(ValueError, match=r"^ranks: database index 0 appears 3 times in the ranking of query 0"):
        M.revisited_ap(np.array([[0, 0, 0, 1]]), [np.array([0])])
    ranks = np.array([[0, 1, 2, 3], [3, 2, 1, 1]])
    with pytest.raises(ValueError, match=r"^ranks_or_scores: database index 1 appears 2 times .*query 1"):
        M.revisited_map(ranks, [{"easy": [0], "hard": []}, {"easy": [2], "hard": []}])
    with pytest.raises(ValueError, match="appears 2 times"):
        M.revisited_precision_at_k(ranks, [[0], [2]])
    ok = M.revisited_ap(np.array([[0, 1, 2, 3], [3, 2, 1, 0]]), [[0], [2]])
    assert ok.tolist() == [1.0, 0.25]  # distinct ids: unchanged (a lone positive at rank 2: 0.25)
