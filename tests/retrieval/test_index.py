"""xmr_lib.retrieval.index: faiss and the NumPy fallback agree with brute force (tie-tolerantly where faiss is free to
order equal scores), k is clipped, bad input is rejected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xmr_lib.retrieval import index as I

needs_faiss = pytest.mark.skipif(not I.faiss_available(), reason="faiss is not installed")


def brute(db, q, metric):
    """Exact float64 scores (Q, N): inner products, or squared L2 distances."""
    db, q = db.astype(np.float64), q.astype(np.float64)
    if metric == "ip":
        return q @ db.T
    return ((q[:, None, :] - db[None]) ** 2).sum(2)


def assert_topk_matches(scores, ids, exact, metric, k, tol=1e-4):
    """Tie-tolerant check of a top-k result against exact scores: the returned scores are the exact scores of the
    returned ids, they are the k best values, in order, and ids are unique."""
    sign = -1 if metric == "ip" else 1
    assert scores.shape == ids.shape == (exact.shape[0], k)
    np.testing.assert_allclose(scores, np.take_along_axis(exact, ids, 1), rtol=0, atol=tol)
    best = np.sort(sign * exact, axis=1)[:, :k] * sign
    np.testing.assert_allclose(scores, best, rtol=0, atol=tol)
    assert all(len(set(row)) == k for row in ids.tolist())


@pytest.mark.parametrize("backend", ["numpy", pytest.param("faiss", marks=needs_faiss)])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_flat_search_matches_brute_force(backend, metric):
    rng = np.random.default_rng(0)
    db = rng.standard_normal((500, 24)).astype(np.float32)
    q = rng.standard_normal((40, 24)).astype(np.float32)
    idx = I.FlatIndex(24, metric, backend=backend).add(db)
    assert len(idx) == idx.ntotal == 500 and idx.backend == backend
    s, i = idx.search(q, 10)
    assert s.dtype == np.float32 and i.dtype == np.int64
    exact = brute(db, q, metric)
    assert_topk_matches(s, i, exact, metric, 10)
    # with distinct random scores the ids are the exact ones
    order = np.argsort(-exact if metric == "ip" else exact, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(i, order)


@needs_faiss
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_faiss_and_numpy_give_the_same_results(metric):
    rng = np.random.default_rng(1)
    db = rng.standard_normal((300, 16)).astype(np.float32)
    q = rng.standard_normal((50, 16)).astype(np.float32)
    a = I.FlatIndex(16, metric, backend="faiss").add(db).search(q, 7)
    b = I.FlatIndex(16, metric, backend="numpy").add(db).search(q, 7)
    np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("backend", ["numpy", pytest.param("faiss", marks=needs_faiss)])
def test_ties(backend):
    # database items 0..5 are three pairs of duplicates: every score is tied with one other item
    base = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    db = np.repeat(base, 2, axis=0)  # ids 0,1 | 2,3 | 4,5
    q = np.array([[1, 0], [0, 1], [2, 2]], np.float32)
    s, i = I.FlatIndex(2, "ip", backend=backend).add(db).search(q, 3)
    assert_topk_matches(s, i, brute(db, q, "ip"), "ip", 3)
    for row_s, row_i in zip(s.tolist(), i.tolist()):  # equal scores are listed by ascending id
        for a, b, ia, ib in zip(row_s, row_s[1:], row_i, row_i[1:]):
            assert a > b or (a == b and ia < ib)
    # query (1, 0) scores 1, 1, 0, 0, 1, 1: four items tie for the top 3; query (2, 2) scores 2, 2, 2, 2, 4, 4
    np.testing.assert_allclose(s, [[1, 1, 1], [1, 1, 1], [4, 4, 2]])
    if backend == "numpy":  # the fallback also picks the smallest tied ids
        np.testing.assert_array_equal(i, [[0, 1, 4], [2, 3, 4], [4, 5, 0]])


def test_fallback_when_faiss_is_missing(monkeypatch):
    rng = np.random.default_rng(2)
    db = rng.standard_normal((100, 8)).astype(np.float32)
    want = I.FlatIndex(8, backend="numpy").add(db).search(db[:5], 3)
    monkeypatch.setattr(I, "faiss", None)
    assert not I.faiss_available()
    idx = I.FlatIndex(8)  # "auto" falls back to NumPy
    assert idx.backend == "numpy"
    got = idx.add(db).search(db[:5], 3)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[0], want[0])
    assert I.HammingIndex(8).backend == "numpy"
    with pytest.raises(ValueError, match="backend: 'faiss' was requested but faiss is not installed"):
        I.FlatIndex(8, backend="faiss")


@pytest.mark.parametrize("backend", ["numpy", pytest.param("faiss", marks=needs_faiss)])
def test_k_clipping_incremental_add_reset_and_torch(backend):
    x = np.eye(4, dtype=np.float32)
    idx = I.build_index(x, "ip", backend=backend)
    s, i = idx.search(x, 10)  # k > ntotal → clipped to 4 (never padded)
    assert s.shape == i.shape == (4, 4) and (i[:, 0] == np.arange(4)).all() and (i >= 0).all()
    # adding in pieces is the same as adding at once; ids continue
    rng = np.random.default_rng(3)
    db = rng.standard_normal((60, 5)).astype(np.float32)
    one = I.FlatIndex(5, "l2", backend=backend).add(db)
    two = I.FlatIndex(5, "l2", backend=backend).add(db[:25]).add(torch.from_numpy(db[25:]))
    a, b = one.search(db[:6], 4), two.search(torch.from_numpy(db[:6]), 4)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)
    assert (a[1][:, 0] == np.arange(6)).all() and np.allclose(a[0][:, 0], 0, atol=1e-4)
    two.reset()
    assert len(two) == 0
    with pytest.raises(ValueError, match="the index is empty"):
        two.search(db[:1], 1)


def test_flat_validation():
    with pytest.raises(ValueError, match="search: the index is empty; add database vectors first"):
        I.FlatIndex(3).search(np.zeros((1, 3)), 1)
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 3\), got \(2, 4\)"):
        I.FlatIndex(3).add(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"q: expected a 2-D array \(n, 3\), got shape \(3,\)"):
        I.FlatIndex(3).add(np.zeros((2, 3))).search(np.zeros(3), 1)
    with pytest.raises(ValueError, match="x: NaN or inf at row 0, column 0"):
        I.FlatIndex(2).add(np.array([[np.nan, 0]]))
    with pytest.raises(ValueError, match=r"metric: expected one of \('ip', 'l2'\), got 'cosine'"):
        I.FlatIndex(2, "cosine")
    with pytest.raises(ValueError, match="dim: expected a positive integer, got 0"):
        I.FlatIndex(0)
    with pytest.raises(ValueError, match="backend: expected one of"):
        I.FlatIndex(2, backend="gpu")
    with pytest.raises(ValueError, match="k: expected a positive integer, got 0"):
        I.FlatIndex(2).add(np.zeros((3, 2))).search(np.zeros((1, 2)), 0)
    with pytest.raises(ValueError, match="metric"):
        I.build_index(np.zeros((3, 2)), "cos")


@pytest.mark.parametrize("backend", ["numpy", pytest.param("faiss", marks=needs_faiss)])
@pytest.mark.parametrize("nbits", [12, 64, 100])
def test_hamming_index_matches_brute_force(backend, nbits):
    rng = np.random.default_rng(4)
    db = np.where(rng.random((400, nbits)) < 0.5, 1, -1)
    q = np.where(rng.random((30, nbits)) < 0.5, 1, -1)
    idx = I.HammingIndex(nbits, backend=backend).add(db)
    d, i = idx.search(q, 15)
    assert d.dtype == np.int32 and i.dtype == np.int64 and d.shape == (30, 15)
    exact = (q[:, None, :] != db[None]).sum(2)
    np.testing.assert_array_equal(d, np.take_along_axis(exact, i, 1))  # distances of the returned ids
    np.testing.assert_array_equal(d, np.sort(exact, axis=1)[:, :15])  # ...and the 15 smallest
    for row_d, row_i in zip(d.tolist(), i.tolist()):  # ties listed by ascending id
        assert all(a < b or (a == b and ia < ib) for a, b, ia, ib in zip(row_d, row_d[1:], row_i, row_i[1:]))
    if backend == "numpy":  # many ties: smallest ids win
        np.testing.assert_array_equal(i, np.argsort(exact, axis=1, kind="stable")[:, :15])
    # {0,1} and bool codes give the same distances as ±1 codes
    d01, _ = I.HammingIndex(nbits, backend=backend).add((db > 0).astype(np.uint8)).search(q > 0, 15)
    np.testing.assert_array_equal(d01, d)


def test_hamming_index_validation_and_build():
    with pytest.raises(ValueError, match=r"codes: codes must be in \{-1,\+1\} or \{0,1\}"):
        I.HammingIndex(2).add(np.array([[0.5, 1]]))
    with pytest.raises(ValueError, match=r"codes: expected shape \(n, 8\) codes, got \(1, 4\)"):
        I.HammingIndex(8).add(np.ones((1, 4)))
    with pytest.raises(ValueError, match="search: the index is empty; add database codes first"):
        I.HammingIndex(8).search(np.ones((1, 8)), 1)
    with pytest.raises(ValueError, match="nbits: expected a positive integer"):
        I.HammingIndex(-3)
    codes = torch.tensor([[1, -1, 1, 1], [-1, -1, 1, 1], [1, 1, 1, 1]])
    idx = I.build_index(codes, "hamming")
    assert isinstance(idx, I.HammingIndex) and len(idx) == 3
    d, i = idx.search(codes[:1], 5)
    assert d.tolist() == [[0, 1, 1]] and i.tolist() == [[0, 1, 2]]
