"""Positive pairs and cirtorch-style hard-negative mining (one negative per group, own group excluded)."""

import numpy as np
import pytest
import torch

from xmr_lib.retrieval.mining import hard_negatives, positive_pairs, random_negatives


def test_hard_negatives_hand_computed():
    q = np.array([[1.0, 0.0]])
    pool = np.array(
        [
            [1.0, 0.0],  # 0: group 7 (the query's group) → skipped
            [0.9, 0.1],  # 1: group 1, sim 0.9
            [0.95, 0.0],  # 2: group 1, sim 0.95 → group 1's representative
            [0.5, 0.5],  # 3: group 2, sim 0.5
            [0.8, 0.0],  # 4: group 3, sim 0.8
            [0.0, 1.0],
        ]
    )  # 5: group 4, sim 0
    groups = np.array([7, 1, 1, 2, 3, 4])
    ids, sims = hard_negatives(q, pool, [7], groups, n=3)
    assert ids.tolist() == [[2, 4, 3]]
    assert np.allclose(sims, [[0.95, 0.8, 0.5]])
    # asking for more negatives than other groups: padded with -1
    ids, sims = hard_negatives(q, pool, [7], groups, n=6)
    assert ids[0].tolist() == [2, 4, 3, 5, -1, -1] and np.isinf(sims[0, 4:]).all()


def _greedy(qd, pd, qg, pg, n):
    out = []
    for i in range(len(qd)):
        order = np.argsort(-(pd @ qd[i]), kind="stable")
        used, got = {qg[i]}, []
        for j in order:
            if pg[j] in used:
                continue
            used.add(pg[j])
            got.append(j)
            if len(got) == n:
                break
        out.append(got)
    return np.array(out)


def test_hard_negatives_equal_greedy_walk_down_the_ranking():
    rng = np.random.default_rng(0)
    pd = rng.normal(size=(300, 16)).astype(np.float32)
    qd = rng.normal(size=(40, 16)).astype(np.float32)
    pg = rng.integers(0, 30, size=300)
    qg = rng.integers(0, 30, size=40)
    ids, _ = hard_negatives(qd, pd, qg, pg, n=5, chunk=7)
    assert np.array_equal(ids, _greedy(qd, pd, qg, pg, 5))
    assert (pg[ids] != qg[:, None]).all()
    assert all(len(set(r)) == 5 for r in pg[ids])  # one per group
    ids_t, _ = hard_negatives(torch.as_tensor(qd), torch.as_tensor(pd), qg, pg, n=5)
    assert np.array_equal(ids, ids_t)


def test_positive_pairs_same_group_different_item():
    g = np.array([0, 0, 1, 1, 1, 2, 3, 3])
    qi, pi = positive_pairs(g, 500, seed=1)
    assert (g[qi] == g[pi]).all() and (qi != pi).all()
    assert 5 not in set(qi.tolist())  # group 2 has a single item
    # every other member of a group of three is drawn
    assert set(pi[qi == 2].tolist()) == {3, 4}
    a, b = positive_pairs(g, 10, seed=1)
    assert np.array_equal(a, positive_pairs(g, 10, seed=1)[0])  # seeded
    with pytest.raises(ValueError, match="no group has two or more items"):
        positive_pairs([0, 1, 2], 3)


def test_random_negatives():
    g = np.repeat(np.arange(5), 4)
    neg = random_negatives(g[:7], g, n=6, seed=0)
    assert neg.shape == (7, 6) and (g[neg] != g[:7, None]).all()


def test_validation_errors():
    with pytest.raises(ValueError, match=r"query_desc, pool_desc: expected \(Q, D\) and \(P, D\)"):
        hard_negatives(np.ones((2, 3)), np.ones((4, 2)), [0, 1], [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"pool_groups: expected a 1-D array of group ids \(4,\)"):
        hard_negatives(np.ones((2, 3)), np.ones((4, 3)), [0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="n: expected a positive number"):
        hard_negatives(np.ones((2, 3)), np.ones((4, 3)), [0, 1], [0, 1, 2, 3], n=0)
