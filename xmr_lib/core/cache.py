"""On-disk cache for expensive arrays (extracted features), keyed by what produced them.

    feats = cached({"model": "efficientnet_lite0", "dataset": "fashion_mnist", "split": "test",
                    "transform": "224px", "profile": "default"}, compute)

The entry's name is a hash of three things, so that a result is reused only by the code that made it:

- the caller's ``key`` (a JSON-able dict: model, dataset, transform, profile and anything else that changes the
  result);
- the producer: the qualified name of ``compute`` (``xmr_lib.encoders.features.image_features.<locals>.compute``)
  and its ``version`` (an argument the producer bumps when its output changes);
- :data:`CACHE_VERSION`, bumped when this file format or a preprocessing step shared by every producer changes.

Entries live in ``$XMR_CACHE_DIR/features`` (default ``~/.cache/xmr/features``): one array as ``.npy``, a dict of
arrays as ``.npz``, each with a readable ``.json`` sidecar of its key. Writes are atomic (temporary file + rename),
so an interrupted run never leaves a half-written entry; an unreadable entry is reported, deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from xmr_lib.core.paths import cache_dir

__all__ = ["CACHE_VERSION", "cached", "cache_root", "clear_cache", "entry_key", "key_hash", "producer_name"]

CACHE_VERSION = 2
"""Version of the cache itself (2: one cache for every producer, keys carry the producer and its version)."""


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """The cache folder (created): ``root`` when given, else ``$XMR_CACHE_DIR/features``."""
    d = Path(root) if root is not None else cache_dir() / "features"
    d.mkdir(parents=True, exist_ok=True)
    return d


def producer_name(compute: Callable) -> str:
    """``module.qualname`` of a callable (of the wrapped function for a ``functools.partial``)."""
    fn = getattr(compute, "func", compute)
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


def entry_key(key: dict, producer: str, version: str | int = 1) -> dict:
    """The full key an entry is stored under: ``key`` plus the cache version, the producer and its version."""
    if not isinstance(key, dict) or not key:
        raise ValueError(f"key: expected a non-empty dict describing the result, got {key!r}")
    reserved = {"_cache_version", "_producer", "_producer_version"} & set(key)
    if reserved:
        raise ValueError(f"key: {sorted(reserved)} are set by the cache itself")
    return {**key, "_cache_version": CACHE_VERSION, "_producer": str(producer), "_producer_version": str(version)}


def key_hash(key: dict) -> str:
    """A stable 20-hex-digit hash of a JSON-able key (order of dict items does not matter)."""
    if not isinstance(key, dict) or not key:
        raise ValueError(f"key: expected a non-empty dict describing the result, got {key!r}")
    try:
        blob = json.dumps(key, sort_keys=True, default=str)
    except TypeError as e:
        raise ValueError(f"key: must be JSON-serialisable ({e})") from e
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _entry_stem(full_key: dict) -> str:
    # a readable prefix (the producer's last two names: image_features_compute), then the hash that decides
    parts = full_key["_producer"].replace(".<locals>", "").replace("<lambda>", "lambda").split(".")
    name = re.sub(r"[^A-Za-z0-9_]+", "_", "_".join(parts[-2:]))[:48]
    return f"{name}-{key_hash(full_key)}"


def _load(path: Path) -> Any:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _save(path: Path, value: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix + ".tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            if path.suffix == ".npy":
                np.save(f, np.asarray(value), allow_pickle=False)
            else:
                np.savez(f, **{k: np.asarray(v) for k, v in value.items()})
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def cached(
    key: dict,
    compute: Callable[[], Any],
    root: str | os.PathLike | None = None,
    refresh: bool = False,
    *,
    version: str | int = 1,
    producer: str | None = None,
) -> Any:
    """Return the cached value for ``key`` made by ``compute``, computing and storing it on a miss.

    Args:
        key: a non-empty JSON-able dict of everything that changes the result.
        compute: ``() -> value``, a numpy array or a dict of numpy arrays.
        root: the cache folder (default :func:`cache_root`).
        refresh: recompute and overwrite even when an entry exists.
        version: the producer's version: bump it when ``compute`` starts returning other values, so that entries
            of the old code are never read.
        producer: the producer's name (default :func:`producer_name` of ``compute``; two lambdas of one function
            share it, so their keys must differ).

    Returns:
        the value: an array (exactly the dtype and values ``compute`` returned) or a dict of arrays.
    """
    full = entry_key(key, producer if producer is not None else producer_name(compute), version)
    d = cache_root(root)
    stem = _entry_stem(full)
    if not refresh:
        for path in (d / f"{stem}.npy", d / f"{stem}.npz"):
            if not path.is_file():
                continue
            try:
                return _load(path)
            except Exception as e:  # noqa: BLE001 - any unreadable entry is recomputed
                warnings.warn(f"cache entry {path} is unreadable ({type(e).__name__}: {e}); recomputing")
                path.unlink(missing_ok=True)
    value = compute()
    path = d / f"{stem}.npz" if isinstance(value, dict) else d / f"{stem}.npy"
    _save(path, value)
    (d / f"{stem}.json").write_text(json.dumps(full, sort_keys=True, default=str, indent=1))
    return value


def clear_cache(root: str | os.PathLike | None = None) -> int:
    """Delete every cache entry; returns how many were removed."""
    d = cache_root(root)
    n = 0
    for p in list(d.glob("*.npy")) + list(d.glob("*.npz")) + list(d.glob("*.json")):
        p.unlink()
        n += p.suffix in (".npy", ".npz")
    return n
