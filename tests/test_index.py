import numpy as np
import pytest

from xmr_lib import index as I


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_faiss_and_numpy_agree(metric):
    rng = np.random.default_rng(0)
    db = rng.standard_normal((200, 16)).astype(np.float32)
    q = rng.standard_normal((20, 16)).astype(np.float32)
    a = I.FlatIndex(16, metric).add(db).search(q, 5)
    b = I.FlatIndex(16, metric, backend="numpy").add(db).search(q, 5)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-4, atol=1e-4)
    assert (a[1] == b[1]).mean() > 0.99


def test_self_search_and_k_clipping():
    x = np.eye(4, dtype=np.float32)
    s, i = I.build_index(x, "ip").search(x, 10)
    assert s.shape == (4, 4) and (i[:, 0] == np.arange(4)).all()


def test_hamming_index_matches_numpy_and_bruteforce():
    rng = np.random.default_rng(1)
    db = np.sign(rng.standard_normal((300, 12)))
    q = np.sign(rng.standard_normal((25, 12)))
    d1, _ = I.HammingIndex(12).add(db).search(q, 7)
    d2, _ = I.HammingIndex(12, backend="numpy").add(db).search(q, 7)
    brute = np.sort(((q[:, None, :] != db[None]).sum(2)), axis=1)[:, :7]
    assert (d1 == brute).all() and (d2 == brute).all()


def test_errors():
    with pytest.raises(ValueError, match="empty"):
        I.FlatIndex(3).search(np.zeros((1, 3)), 1)
    with pytest.raises(ValueError, match="expected dim 3"):
        I.FlatIndex(3).add(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        I.FlatIndex(2).add(np.array([[np.nan, 0]]))
    with pytest.raises(ValueError, match="metric"):
        I.FlatIndex(2, "cosine")
    with pytest.raises(ValueError, match="codes must be"):
        I.HammingIndex(2).add(np.array([[0.5, 1]]))
