import numpy as np
import pytest

from xmr_lib.core import cache


def test_hit_miss_and_dicts(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.arange(4.0)

    k = {"model": "m", "dataset": "d", "profile": "smoke"}
    assert np.array_equal(cache.cached(k, compute, root=tmp_path), np.arange(4.0))
    assert np.array_equal(cache.cached(dict(reversed(list(k.items()))), compute, root=tmp_path), np.arange(4.0))
    assert len(calls) == 1
    out = cache.cached({"x": 1}, lambda: {"a": np.ones(2), "b": np.zeros(3)}, root=tmp_path)
    again = cache.cached({"x": 1}, lambda: pytest.fail("should hit"), root=tmp_path)
    assert set(again) == {"a", "b"} and np.array_equal(again["a"], out["a"])
    assert cache.clear_cache(tmp_path) == 2


def test_corrupt_entry_is_recomputed(tmp_path):
    k = {"model": "m"}
    cache.cached(k, lambda: np.ones(3), root=tmp_path)
    (tmp_path / f"{cache.key_hash(k)}.npz").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        assert np.array_equal(cache.cached(k, lambda: np.full(3, 2.0), root=tmp_path), np.full(3, 2.0))


def test_bad_key():
    with pytest.raises(ValueError, match="key"):
        cache.key_hash({})
