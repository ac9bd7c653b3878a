"""Query expansion (average, α) and database-side augmentation on hand-computed 2-D vectors."""

import numpy as np
import pytest
import torch

from xmr_lib.retrieval.expansion import (
    alpha_query_expansion,
    average_query_expansion,
    database_side_augmentation,
    top_neighbours,
)

Q = np.array([[1.0, 0.0]], dtype=np.float32)
DB = np.array([[0.8, 0.6], [0.0, 1.0], [0.6, -0.8]], dtype=np.float32)  # similarities to Q: 0.8, 0, 0.6


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_top_neighbours():
    s, i = top_neighbours(Q, DB, 2)
    assert i.tolist() == [[0, 2]] and np.allclose(s.numpy(), [[0.8, 0.6]])
    s, i = top_neighbours(DB, DB, 1, exclude_self=True)
    assert i[:, 0].tolist() == [1, 0, 0]  # a·b = 0.6, a·c = 0 ; b·a = 0.6 ; c·a = 0, c·b = -0.8


def test_average_query_expansion_hand_computed():
    got = average_query_expansion(Q, DB, n=2)  # q + a + c = (2.4, -0.2)
    assert np.allclose(got[0], _unit([2.4, -0.2]), atol=1e-6)
    assert got.dtype == np.float32 and got.shape == (1, 2)


def test_alpha_query_expansion_hand_computed():
    got = alpha_query_expansion(Q, DB, n=2, alpha=3.0)  # q + 0.8³ a + 0.6³ c
    expect = _unit(np.array([1.0, 0.0]) + 0.512 * DB[0] + 0.216 * DB[2])
    assert np.allclose(got[0], expect, atol=1e-6)
    # alpha = 0 is average QE, n = 0 is the identity
    assert np.allclose(alpha_query_expansion(Q, DB, 2, alpha=0.0), average_query_expansion(Q, DB, 2))
    assert np.allclose(alpha_query_expansion(Q, DB, 0), Q)


def test_negative_similarities_get_zero_weight():
    db = np.array([[-0.6, 0.8], [0.0, 1.0]], dtype=np.float32)  # sims -0.6 and 0
    got = alpha_query_expansion(Q, db, n=2, alpha=3.0)
    assert np.allclose(got, Q, atol=1e-6)


def test_database_side_augmentation_hand_computed():
    got = database_side_augmentation(DB, k=1)
    assert np.allclose(got[0], _unit(DB[0] + DB[1]), atol=1e-6)
    assert np.allclose(got[1], _unit(DB[1] + DB[0]), atol=1e-6)
    assert np.allclose(got[2], _unit(DB[2] + DB[0]), atol=1e-6)
    weighted = database_side_augmentation(DB, k=1, alpha=3.0)  # c's neighbour a has similarity 0 → weight 0
    assert np.allclose(weighted[2], DB[2], atol=1e-6)


def test_torch_in_torch_out_and_chunking():
    rng = np.random.default_rng(0)
    db = rng.normal(size=(50, 8)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    q = torch.as_tensor(db[:7])
    a = alpha_query_expansion(q, torch.as_tensor(db), n=3)
    assert isinstance(a, torch.Tensor) and a.shape == (7, 8)
    b = alpha_query_expansion(db[:7], db, n=3)
    assert np.allclose(a.numpy(), b, atol=1e-6)
    s1, i1 = top_neighbours(db, db, 4, exclude_self=True, chunk=3)
    s2, i2 = top_neighbours(db, db, 4, exclude_self=True)
    assert torch.equal(i1, i2)


def test_validation_errors():
    with pytest.raises(ValueError, match=r"queries: expected a 2-D array"):
        alpha_query_expansion(np.ones(2), DB)
    with pytest.raises(ValueError, match="n: asked for 5 neighbours but only 3"):
        alpha_query_expansion(Q, DB, n=5)
    with pytest.raises(ValueError, match="alpha"):
        alpha_query_expansion(Q, DB, n=1, alpha=-1)
    with pytest.raises(ValueError, match="dimensions differ"):
        top_neighbours(Q, np.ones((3, 3)), 1)
    with pytest.raises(ValueError, match="k: asked for 3 neighbours but only 2"):
        database_side_augmentation(DB, k=3)
