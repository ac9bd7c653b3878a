import functools

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


def test_values_come_back_identical(tmp_path):
    rng = np.random.default_rng(0)
    for value in (rng.normal(size=(5, 7)).astype(np.float32), rng.integers(0, 9, 11), np.float64(3.5) * np.ones(())):

        def make(v=value):
            return v

        cache.cached({"v": str(value.dtype), "s": value.shape}, make, root=tmp_path)
        hit = cache.cached(
            {"v": str(value.dtype), "s": value.shape},
            lambda: pytest.fail("should hit"),
            root=tmp_path,
            producer=cache.producer_name(make),
        )
        assert hit.dtype == value.dtype and hit.shape == value.shape and np.array_equal(hit, value)


def _one():
    return np.ones(3)


def test_a_changed_producer_version_misses_an_unchanged_one_hits(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.full(3, float(len(calls)))

    k = {"model": "m"}
    assert cache.cached(k, compute, root=tmp_path, version=1)[0] == 1.0
    assert cache.cached(k, compute, root=tmp_path, version=1)[0] == 1.0  # unchanged version: a hit
    assert cache.cached(k, compute, root=tmp_path, version=2)[0] == 2.0  # changed version: recomputed
    assert cache.cached(k, compute, root=tmp_path, version=1)[0] == 1.0  # the old entry is still there
    assert len(calls) == 2


def test_the_cache_version_and_the_producer_are_part_of_the_key(tmp_path, monkeypatch):
    k = {"model": "m"}
    cache.cached(k, _one, root=tmp_path)
    cache.cached(k, lambda: pytest.fail("should hit"), root=tmp_path, producer=cache.producer_name(_one))
    assert cache.producer_name(_one) == f"{__name__}._one"
    assert cache.producer_name(functools.partial(_one)) == cache.producer_name(_one)
    # another producer with the same key does not read _one's entry
    assert np.array_equal(cache.cached(k, lambda: np.zeros(3), root=tmp_path), np.zeros(3))
    # neither does any producer after the cache's own version changes
    monkeypatch.setattr(cache, "CACHE_VERSION", cache.CACHE_VERSION + 1)
    assert np.array_equal(
        cache.cached(k, lambda: np.full(3, 7.0), root=tmp_path, producer=cache.producer_name(_one)), np.full(3, 7.0)
    )
    full = cache.entry_key(k, "p", 3)
    assert (
        full["_cache_version"] == cache.CACHE_VERSION and full["_producer"] == "p" and full["_producer_version"] == "3"
    )
    with pytest.raises(ValueError, match="key"):
        cache.entry_key({"_producer": "x"}, "p")


def test_corrupt_entry_is_recomputed(tmp_path):
    k = {"model": "m"}
    cache.cached(k, _one, root=tmp_path)
    (entry,) = tmp_path.glob("*.npy")
    entry.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        assert np.array_equal(
            cache.cached(k, lambda: np.full(3, 2.0), root=tmp_path, producer=cache.producer_name(_one)), np.full(3, 2.0)
        )
    assert np.array_equal(
        cache.cached(k, lambda: pytest.fail("should hit"), root=tmp_path, producer=cache.producer_name(_one)),
        np.full(3, 2.0),
    )  # rewritten
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_key():
    with pytest.raises(ValueError, match="key"):
        cache.key_hash({})
    with pytest.raises(ValueError, match="key"):
        cache.cached({}, _one)


def test_default_root_is_under_xmr_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path))
    cache.cached({"model": "m"}, _one)
    assert len(list((tmp_path / "features").glob("*_one-*.npy"))) == 1
    assert len(list((tmp_path / "features").glob("*_one-*.json"))) == 1
