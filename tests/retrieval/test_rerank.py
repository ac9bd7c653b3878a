"""Tests for xmr_lib.retrieval.rerank: Eq. (1) PRF, recombination, MMR, clustering diversification, joint embedding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xmr_lib.retrieval import rerank as rr


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------------------------------------
# scores


def test_minmax_normalise_rows_mask_and_constant():
    s = np.array([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0], [0.0, 10.0, -4.0]])
    mask = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0]], bool)
    out = rr.minmax_normalise(s, mask)
    assert out[0].tolist() == [0.0, 1.0, 0.5]
    assert out[1].tolist() == [1.0, 1.0, 1.0]
    assert out[2].tolist() == [0.0, 1.0, 0.0]  # -4 is padding: ignored for min, set to 0
    with pytest.raises(ValueError, match="scores"):
        rr.minmax_normalise(np.zeros(3))
    with pytest.raises(ValueError, match="mask"):
        rr.minmax_normalise(s, np.ones((2, 3), bool))


def test_ranking_from_scores_stable_and_masked_last():
    s = np.array([[0.2, 0.9, 0.9, 1.5]])
    assert rr.ranking_from_scores(s).tolist() == [[3, 1, 2, 0]]
    assert rr.ranking_from_scores(s, np.array([[1, 1, 1, 0]], bool)).tolist() == [[1, 2, 0, 3]]


def test_flickr_score():
    out = rr.flickr_score(np.array([[1, 2, 3, 4], [2, 1, 0, 0]]))
    np.testing.assert_allclose(out[0], [3, 1, 1 / 3, 0])
    np.testing.assert_allclose(out[1], [0, 1, 0, 0])  # n = 2 real documents
    np.testing.assert_allclose(rr.flickr_score(np.array([[1, 2]]), n=300)[0], [299, 149])
    with pytest.raises(ValueError, match="ranks"):
        rr.flickr_score(np.array([[1, 5]]), n=3)


def test_prf_score_hand_computed():
    # 4 documents in 2-D; first-step scores pick d0 (w = 1) and d1 (w = 0.5) as the K = 2 feedback documents
    f = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]])
    first = np.array([[1.0, 0.5, 0.0, 0.2]])
    out = rr.prf_score(first, 2, features=f)
    sim = f[0] @ f[0].T
    expect = (1.0 * sim[:, 0] + 0.5 * sim[:, 1]) / 1.5
    np.testing.assert_allclose(out[0], expect)
    # with a similarity matrix instead of features
    np.testing.assert_allclose(rr.prf_score(first, 2, similarity=sim[None]), out)
    # K larger than the list uses every document
    full = rr.prf_score(first, 10, features=f)
    np.testing.assert_allclose(full[0], (sim * first[0]).sum(1) / first[0].sum())


def test_prf_score_batched_equals_loop_and_respects_mask():
    rng = np.random.default_rng(0)
    Q, N, D, K = 5, 12, 6, 4
    f = _unit(rng.normal(size=(Q, N, D)))
    first = rng.random((Q, N))
    mask = rng.random((Q, N)) > 0.2
    out = rr.prf_score(first, K, features=f, mask=mask)
    for q in range(Q):
        valid = np.flatnonzero(mask[q])
        top = valid[np.argsort(-first[q, valid], kind="stable")[:K]]
        w = first[q, top]
        ref = (f[q] @ f[q, top].T) @ w / w.sum()
        np.testing.assert_allclose(out[q, mask[q]], ref[mask[q]])
        assert np.all(out[q, ~mask[q]] == 0)


def test_prf_score_validation():
    f = np.zeros((1, 3, 2))
    with pytest.raises(ValueError, match="first"):
        rr.prf_score(np.array([[-1.0, 0.0, 1.0]]), 2, features=f)
    with pytest.raises(ValueError, match="exactly one"):
        rr.prf_score(np.ones((1, 3)), 2)
    with pytest.raises(ValueError, match="features"):
        rr.prf_score(np.ones((1, 3)), 2, features=np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match="k"):
        rr.prf_score(np.ones((1, 3)), 0, features=f)
    # all-zero weights: the K documents count equally
    out = rr.prf_score(np.zeros((1, 3)), 2, similarity=np.eye(3)[None])
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0]])


def test_recombine_and_two_step_limits():
    rng = np.random.default_rng(1)
    first = rng.random((3, 10))
    f = _unit(rng.normal(size=(3, 10, 4)))
    np.testing.assert_allclose(rr.recombine(first * 0, first, 1.0), first)
    np.testing.assert_allclose(rr.recombine(first, first * 0, 0.0), first)
    np.testing.assert_allclose(rr.recombine(np.ones((1, 2)), np.zeros((1, 2)), 0.15), [[0.85, 0.85]])
    with pytest.raises(ValueError, match="alpha"):
        rr.recombine(first, first, 1.5)
    # alpha = 1 keeps the first-step order; alpha = 0 is the (normalised) PRF score alone
    s1 = rr.two_step_score(first, 3, 1.0, features=f)
    assert np.array_equal(rr.ranking_from_scores(s1), rr.ranking_from_scores(first))
    s0 = rr.two_step_score(first, 3, 0.0, features=f)
    p = rr.prf_score(rr.minmax_normalise(first), 3, features=f)
    assert np.array_equal(rr.ranking_from_scores(s0), rr.ranking_from_scores(p))
    assert s0.min() == 0.0 and s0.max() == 1.0


def test_dirichlet_lm_hand_computed():
    # vocabulary [a, b]; d0 = "a a", d1 = "b"; p(a|C) = 2/3; query "a", mu = 1
    docs = np.array([[2, 0], [0, 1]])
    out = rr.dirichlet_lm_scores(np.array([[1, 0]]), docs, np.array([[0, 1, -1]]), mu=1.0)
    assert out[0, 0] == pytest.approx(math.log((2 + 2 / 3) / 3))
    assert out[0, 1] == pytest.approx(math.log((2 / 3) / 2))
    assert out[0, 2] == -np.inf
    # query words absent from the collection are skipped (same constant for every document)
    out2 = rr.dirichlet_lm_scores(np.array([[1, 0, 3]]), np.array([[2, 0, 0], [0, 1, 0]]), np.array([[0, 1]]), mu=1.0)
    np.testing.assert_allclose(out2[0], out[0, :2])
    with pytest.raises(ValueError, match="doc_counts"):
        rr.dirichlet_lm_scores(np.array([[1, 0]]), np.ones((2, 3)), np.array([[0]]))


# ---------------------------------------------------------------------------------------------------------------
# MMR


def _mmr_reference(rel, sim, beta, n):
    """Carbonell & Goldstein's greedy MMR, one list, plain Python."""
    chosen, left = [], list(range(len(rel)))
    for _ in range(n):
        best = max(left, key=lambda d: rel[d] - (beta * max(sim[d][c] for c in chosen) if chosen else 0.0))
        chosen.append(best)
        left.remove(best)
    return chosen


def test_mmr_hand_computed():
    rel = np.array([[1.0, 0.9, 0.5]])
    sim = np.array([[[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])  # d1 duplicates d0
    assert rr.mmr_rerank(rel, 0.5, similarity=sim).tolist() == [[0, 2, 1]]  # 0.9 - 0.5 < 0.5
    assert rr.mmr_rerank(rel, 0.3, similarity=sim).tolist() == [[0, 1, 2]]  # 0.9 - 0.3 > 0.5


def test_mmr_beta_zero_is_relevance_order_and_matches_reference():
    rng = np.random.default_rng(3)
    Q, N = 6, 15
    rel = rng.random((Q, N))
    rel[0, 3] = rel[0, 7]  # a tie: stable order
    f = _unit(rng.normal(size=(Q, N, 5)))
    assert np.array_equal(rr.mmr_rerank(rel, 0.0, features=f), rr.ranking_from_scores(rel))
    out = rr.mmr_rerank(rel, 0.7, features=f, n=8)
    for q in range(Q):
        sim = f[q] @ f[q].T
        assert out[q, :8].tolist() == _mmr_reference(rel[q], sim, 0.7, 8)
        assert sorted(out[q].tolist()) == list(range(N))
        rest = out[q, 8:]
        assert np.all(np.diff(rel[q, rest]) <= 0)  # the rest follows by relevance
    assert not np.array_equal(out[:, :8], rr.ranking_from_scores(rel)[:, :8])  # β changes the order


def test_mmr_masked_documents_come_last():
    rng = np.random.default_rng(4)
    rel = rng.random((2, 6))
    mask = np.array([[1, 1, 0, 1, 0, 1], [1, 1, 1, 1, 1, 1]], bool)
    f = _unit(rng.normal(size=(2, 6, 3)))
    for n in (None, 3):
        out = rr.mmr_rerank(rel, 0.5, features=f, mask=mask, n=n)
        assert set(out[0, :4].tolist()) == {0, 1, 3, 5}
        assert sorted(out[0].tolist()) == list(range(6))
    with pytest.raises(ValueError, match="beta"):
        rr.mmr_rerank(rel, -1.0, features=f)
    with pytest.raises(ValueError, match="n"):
        rr.mmr_rerank(rel, 1.0, features=f, n=7)


# ---------------------------------------------------------------------------------------------------------------
# clustering-based diversification


def test_cluster_share_rerank_hand_computed():
    rel = np.array([[0.9, 0.8, 0.7, 0.6]])
    assert rr.cluster_share_rerank(rel, np.array([[0, 0, 1, 1]])).tolist() == [[0, 2, 1, 3]]
    # two clusterings: after d0, d1 shares a cluster with it in both, d2 in one, d3 in none → d3; then d1 and d2
    # both share 2 clusters with {d0, d3} (d2 shares clustering 2's cluster with d3) → relevance decides: d1
    cl = np.array([[[0, 0, 0, 1], [0, 0, 1, 1]]])
    assert rr.cluster_share_rerank(rel, cl).tolist() == [[0, 3, 1, 2]]
    cl = np.array([[[0, 0, 0, 1], [0, 0, 2, 1]]])  # now d2 shares only one cluster (with d0)
    assert rr.cluster_share_rerank(rel, cl).tolist() == [[0, 3, 2, 1]]
    # depth limits the candidates: only d0, d1 are re-ranked, d2 d3 follow by relevance
    assert rr.cluster_share_rerank(rel, np.array([[0, 0, 1, 1]]), depth=2).tolist() == [[0, 1, 2, 3]]


def test_cluster_share_rerank_batched_permutation_and_mask():
    rng = np.random.default_rng(5)
    rel = rng.random((4, 20))
    mask = rng.random((4, 20)) > 0.25
    cl = rng.integers(0, 4, (4, 2, 20))
    out = rr.cluster_share_rerank(rel, cl, depth=10, mask=mask)
    for q in range(4):
        assert sorted(out[q].tolist()) == list(range(20))
        n_real = mask[q].sum()
        assert mask[q, out[q, :n_real]].all()
    with pytest.raises(ValueError, match="clusterings"):
        rr.cluster_share_rerank(rel, cl[:, :, :5])


def test_batched_kmeans_separates_blobs():
    rng = np.random.default_rng(6)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = rng.integers(0, 3, (3, 60))
    x = centres[truth] + rng.normal(scale=0.5, size=(3, 60, 2))
    lab = rr.batched_kmeans(x, 3, seed=0)
    for q in range(3):
        # a perfect clustering up to renaming: each true blob maps to one label
        pairs = {(t, l) for t, l in zip(truth[q], lab[q])}
        assert len(pairs) == 3 or len({t for t, _ in pairs}) < 3


# ---------------------------------------------------------------------------------------------------------------
# pseudo-relevance and the joint embedding


def test_pseudo_relevance_labels_mean_std():
    s = np.array([[0.0, 0.0, 0.0, 0.0, 10.0, -10.0]])  # mean 0, std sqrt(200/6) = 5.77
    assert rr.pseudo_relevance_labels(s).tolist() == [[0, 0, 0, 0, 1, -1]]
    assert rr.pseudo_relevance_labels(s, n_std=2.0).tolist() == [[0, 0, 0, 0, 0, 0]]
    m = np.array([[1, 1, 1, 1, 1, 0]], bool)  # without -10: mean 2, std 4
    assert rr.pseudo_relevance_labels(s, m).tolist() == [[0, 0, 0, 0, 1, 0]]


def test_sample_triplets_respect_labels():
    lab = np.array([[1, 1, 1, -1, 0, -1], [1, 1, 0, 0, -1, 0], [1, 0, 0, 0, 0, 0]], np.int8)
    N = lab.shape[1]
    i, j, k = rr.sample_triplets(lab, 500, seed=0, p_other=0.5)
    qi, qj, qk = i // N, j // N, k // N
    assert np.all(qi == qj) and np.all(i != j)
    assert np.all(lab.ravel()[i] == 1) and np.all(lab.ravel()[j] == 1)
    assert set(np.unique(qi)) == {0, 1}  # query 2 has a single positive
    positives = set(np.flatnonzero(lab.ravel() == 1)) - {2 * N}
    assert set(i.tolist()) == positives and set(j.tolist()) == positives
    same = qk == qi
    assert np.all(lab.ravel()[k[same]] == -1)  # same query: a pseudo-negative
    assert np.all(lab.ravel()[k[~same]] == 1)  # other query: one of its positives
    assert 0.3 < same.mean() < 0.7
    _, _, k0 = rr.sample_triplets(lab, 200, seed=1, p_other=0.0)
    assert np.all(lab.ravel()[k0] == -1)
    with pytest.raises(ValueError, match="positives"):
        rr.sample_triplets(np.array([[1, 0, -1]]), 5)


def test_four_triplet_terms_hand_computed_and_gradients():
    e = torch.eye(3)
    a, p, n = e[0:1], e[0:1], e[1:2]  # d(a,p) = 0, d(a,n) = sqrt 2
    terms = rr.four_triplet_terms(a, a, p, p, n, n, margin=0.2)
    assert torch.allclose(terms, torch.zeros(1, 4))
    # swap positive and negative: every hinge = m + sqrt 2
    terms = rr.four_triplet_terms(a, a, n, n, p, p, margin=0.2)
    assert torch.allclose(terms, torch.full((1, 4), 0.2 + math.sqrt(2)))
    # only the cross-modal hinges fire when the text of d_j is far from d_i's image
    terms = rr.four_triplet_terms(a, a, p, e[2:3], n, n, margin=0.2)
    assert terms[0, 0] == 0 and terms[0, 3] == 0 and terms[0, 1] > 0 and terms[0, 2] > 0
    x = torch.randn(4, 3, requires_grad=True)
    rr.four_triplet_loss(x, x, x.roll(1, 0), x.roll(1, 0), x.roll(2, 0), x.roll(2, 0), 1.0).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="embeddings"):
        rr.four_triplet_terms(a, a, p, p, n, torch.zeros(1, 5))


def test_joint_embedding_learns_the_pseudo_labels():
    rng = np.random.default_rng(7)
    Q, N = 4, 30
    topic_v = rng.normal(size=(Q, 16))
    topic_t = rng.normal(size=(Q, 8))
    rel = rng.random((Q, N)) < 0.4
    v = rng.normal(size=(Q, N, 16)) + np.where(rel[..., None], 3 * topic_v[:, None], 0)
    t = rng.normal(size=(Q, N, 8)) + np.where(rel[..., None], 3 * topic_t[:, None], 0)
    labels = np.where(rel, 1, -1).astype(np.int8)
    model, hist = rr.train_joint_embedding(
        v, t, labels, hidden=32, dim=8, epochs=8, triplets_per_epoch=512, batch_size=128, seed=0, progress=False
    )
    assert hist[-1] < 0.5 * hist[0]
    scores = rr.centroid_scores(model, v, t, 3 * topic_t)
    assert scores.shape == (Q, N)
    # relevant documents are nearer to their query than non-relevant ones
    for q in range(Q):
        assert scores[q, rel[q]].mean() > scores[q, ~rel[q]].mean()
    m = np.ones((Q, N), bool)
    m[0, 0] = False
    assert rr.centroid_scores(model, v, t, 3 * topic_t, mask=m)[0, 0] == -np.inf


def test_two_view_embedding_shapes_and_validation():
    net = rr.TwoViewEmbedding(10, 6, hidden=16, dim=4)
    pv, pt = net(torch.randn(3, 10), torch.randn(3, 6))
    assert pv.shape == pt.shape == (3, 4)
    assert torch.allclose(pv.norm(dim=1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="dim"):
        rr.TwoViewEmbedding(10, 6, dim=0)


def test_text_relevance_mixture():
    docs = ["red circle", "blue circle", "red square photo", "nothing here"]
    idx = np.array([[0, 1, 2, 3]])
    lm_only = rr.text_relevance(["red circle"], docs, idx)
    assert lm_only[0].argmax() == 0 and lm_only[0].min() == 0.0 and lm_only[0].max() == 1.0
    emb = np.eye(4)
    q = np.array([[0.0, 0.0, 0.0, 1.0]])  # the embedding prefers document 3
    mixed = rr.text_relevance(["red circle"], docs, idx, query_embeddings=q, doc_embeddings=emb, lm_weight=0.5)
    np.testing.assert_allclose(mixed, 0.5 * lm_only + 0.5 * np.array([[0.0, 0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="lm_weight"):
        rr.text_relevance(["a"], docs, idx, lm_weight=2.0)
