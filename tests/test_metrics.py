"""Metrics against hand-computed cases and straightforward per-query loops."""
import numpy as np
import pytest

from xmr_lib import metrics as M


def test_ap_hand_computed():
    # ranking: rel, irr, rel, irr, rel → AP = (1/1 + 2/3 + 3/5) / 3
    s = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])
    r = np.array([[1, 0, 1, 0, 1]], bool)
    assert M.average_precision(s, r)[0] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # AP@2: hits at rank 1 only, normalised by min(R=3, k=2) = 2 → 0.5
    assert M.average_precision(s, r, k=2)[0] == pytest.approx(0.5)
    assert M.precision_at_k(s, r, 3) == pytest.approx(2 / 3)
    assert M.recall_at_k(s, r, ks=(1, 2)) == {1: 1.0, 2: 1.0}


def test_tie_policies():
    s = np.array([[0.5, 0.5, 0.5]])
    r = np.array([[0, 0, 1]], bool)
    assert M.average_precision(s, r, ties="index")[0] == pytest.approx(1 / 3)
    assert M.average_precision(s, r, ties="pessimistic")[0] == pytest.approx(1 / 3)
    assert M.average_precision(s, r, ties="optimistic")[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="ties"):
        M.average_precision(s, r, ties="random")


def test_queries_without_relevant_items_are_left_out():
    s = np.array([[0.9, 0.1], [0.9, 0.1]])
    r = np.array([[1, 0], [0, 0]], bool)
    assert np.isnan(M.average_precision(s, r)[1])
    assert M.mean_average_precision(s, r) == 1.0


def _loop_map(s, r):
    aps = []
    for i in range(len(s)):
        order = sorted(range(s.shape[1]), key=lambda j: (-s[i, j], j))
        hits, total = 0, 0.0
        for rank, j in enumerate(order, 1):
            if r[i, j]:
                hits += 1
                total += hits / rank
        if r[i].sum():
            aps.append(total / r[i].sum())
    return np.mean(aps)


def test_vectorised_equals_loop():
    rng = np.random.default_rng(0)
    s = np.round(rng.random((30, 50)), 1)  # many ties
    r = rng.random((30, 50)) < 0.2
    assert M.mean_average_precision(s, r) == pytest.approx(_loop_map(s, r), abs=1e-12)


@pytest.mark.parametrize("bad,match", [
    (dict(scores=np.zeros(5), relevance=np.zeros(5)), "2-D"),
    (dict(scores=np.zeros((2, 3)), relevance=np.zeros((2, 4))), "relevance: expected shape"),
    (dict(scores=np.zeros((2, 0)), relevance=np.zeros((2, 0))), "empty"),
    (dict(scores=np.array([[0.1, np.nan]]), relevance=np.zeros((1, 2))), "NaN"),
])
def test_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        M.mean_average_precision(**bad)


def _official_ap(ranks, nres):  # the trapezoid rule as the revisited evaluation writes it, in a loop
    ap = 0.0
    for j, rank in enumerate(ranks):
        p0 = 1.0 if rank == 0 else j / rank
        p1 = (j + 1) / (rank + 1)
        ap += (p0 + p1) / 2 / nres
    return ap


def _loop_revisited(order, pos, junk, kappas):
    aps, prs = [], []
    for i in range(len(order)):
        p = np.asarray(pos[i]); jk = np.asarray(junk[i])
        if len(p) == 0:
            aps.append(np.nan); prs.append([np.nan] * len(kappas)); continue
        ranked = list(order[i])
        positions = sorted(ranked.index(x) for x in p)
        junkpos = sorted(ranked.index(x) for x in jk if x not in set(p))
        adj = [q - sum(1 for jp in junkpos if jp < q) for q in positions]
        aps.append(_official_ap(adj, len(p)))
        one = np.array(adj) + 1
        prs.append([(one <= min(one.max(), k)).sum() / min(one.max(), k) for k in kappas])
    return np.array(aps), np.array(prs)


def test_revisited_matches_official_loop():
    rng = np.random.default_rng(1)
    Q, N = 12, 40
    order = np.stack([rng.permutation(N) for _ in range(Q)])
    gnd = []
    for _ in range(Q):
        ids = rng.permutation(N)
        gnd.append({"easy": ids[:3], "hard": ids[3:3 + rng.integers(0, 4)], "junk": ids[8:8 + rng.integers(0, 5)]})
    res = M.revisited_map(order, gnd, kappas=(1, 5, 10))
    pos = [np.concatenate([g["easy"], g["hard"]]) for g in gnd]
    aps, prs = _loop_revisited(order, pos, [g["junk"] for g in gnd], (1, 5, 10))
    np.testing.assert_allclose(res["medium"]["aps"], aps, atol=1e-12)
    assert res["medium"]["mP@5"] == pytest.approx(np.nanmean(prs[:, 1]))
    hard_pos = [g["hard"] for g in gnd]
    aps_h, _ = _loop_revisited(order, hard_pos, [np.concatenate([g["junk"], g["easy"]]) for g in gnd], (1,))
    np.testing.assert_allclose(res["hard"]["aps"], aps_h, atol=1e-12)


def test_revisited_junk_is_ignored():
    # ranking 0,1,2: item 1 is junk → positives 0 and 2 sit at positions 0 and 1 → AP = 1
    gnd = [{"easy": [0], "hard": [2], "junk": [1]}]
    res = M.revisited_map(np.array([[0, 1, 2]]), gnd)
    assert res["medium"]["mAP"] == 1.0
    with pytest.raises(ValueError, match="missing key"):
        M.revisited_map(np.array([[0, 1, 2]]), [{"easy": [0]}])


def test_hamming_distance_and_map():
    q = np.array([[1, 1, -1, -1]])
    d = np.array([[1, 1, -1, -1], [-1, 1, -1, -1], [-1, -1, 1, 1]])
    assert M.hamming_distance(q, d).tolist() == [[0, 1, 4]]
    assert M.hamming_distance((q > 0).astype(int), (d > 0).astype(int)).tolist() == [[0, 1, 4]]
    # labels: item 0 shares a label, item 1 not, item 2 shares → ranking 0,1,2 → AP = (1 + 2/3) / 2
    ql = np.array([[1, 0, 1]])
    dl = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert M.hamming_map(q, d, ql, dl) == pytest.approx((1 + 2 / 3) / 2)
    assert M.hamming_map(q, d, np.array([0]), np.array([0, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="bits"):
        M.hamming_distance(q, d[:, :3])
    with pytest.raises(ValueError, match="codes must be"):
        M.hamming_distance(q * 2, d)
    with pytest.raises(ValueError, match="rows of labels"):
        M.hamming_map(q, d, ql, dl[:2])


def test_pr_curve_hamming_endpoints():
    rng = np.random.default_rng(2)
    q = np.sign(rng.standard_normal((20, 8))); d = np.sign(rng.standard_normal((100, 8)))
    ql = rng.integers(0, 3, 20); dl = rng.integers(0, 3, 100)
    p, r = M.pr_curve_hamming(q, d, ql, dl)
    assert p.shape == r.shape == (9,)
    assert r[-1] == pytest.approx(1.0) and np.all(np.diff(r) >= -1e-12)


def test_average_forgetting_hand_computed():
    R = [[0.9, 0.0, 0.0], [0.7, 0.8, 0.0], [0.6, 0.7, 0.9]]
    assert M.average_forgetting(R) == pytest.approx(((0.9 - 0.6) + (0.8 - 0.7)) / 2)
    with pytest.raises(ValueError, match="square"):
        M.average_forgetting([[1.0, 2.0]])


def test_benchmark_runs_and_agrees():
    from benchmarks import metrics as bench

    assert bench.main(["--quick"]) == 0
