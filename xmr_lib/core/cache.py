"""On-disk cache for expensive arrays (extracted features), keyed by what produced them.

    feats = cached({"model": "efficientnet_lite0", "dataset": "fashion_mnist", "split": "test",
                    "transform": "224px", "profile": "default"}, lambda: extract(...))

The key (a JSON-able dict: model, dataset, transform, profile and anything else that changes the result) is hashed
to a file name under ``$XMR_CACHE_DIR`` (default ``~/.cache/xmr/features``); a sidecar ``.json`` keeps the key
readable. Writes are atomic (temporary file + rename), so an interrupted run never leaves a half-written entry;
an unreadable entry is reported, deleted and recomputed.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from xmr_lib.core.paths import cache_dir


def cache_root(root: str | os.PathLike | None = None) -> Path:
    d = Path(root) if root is not None else Path(os.environ.get("XMR_CACHE_DIR", Path.home() / ".cache" / "xmr")) / "features"
    d.mkdir(parents=True, exist_ok=True)
    return d


def key_hash(key: dict) -> str:
    """A stable 20-hex-digit hash of a JSON-able key (order of dict items does not matter)."""
    if not isinstance(key, dict) or not key:
        raise ValueError(f"key: expected a non-empty dict describing the result, got {key!r}")
    try:
        blob = json.dumps(key, sort_keys=True, default=str)
    except TypeError as e:
        raise ValueError(f"key: must be JSON-serialisable ({e})") from e
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cached(key: dict, compute: Callable[[], Any], root: str | os.PathLike | None = None,
           refresh: bool = False) -> Any:
    """Return the cached value for ``key``, computing and storing it on a miss.

    ``compute`` returns a numpy array or a dict of numpy arrays (stored as ``.npz``).
    """
    d = cache_root(root)
    h = key_hash(key)
    path = d / f"{h}.npz"
    if path.is_file() and not refresh:
        try:
            with np.load(path, allow_pickle=False) as z:
                out = {k: z[k] for k in z.files}
            return out["__array__"] if list(out) == ["__array__"] else out
        except Exception as e:  # noqa: BLE001 - any unreadable entry is recomputed
            warnings.warn(f"cache entry {path} is unreadable ({type(e).__name__}: {e}); recomputing")
            path.unlink(missing_ok=True)
    value = compute()
    arrays = {"__array__": np.asarray(value)} if not isinstance(value, dict) else {
        k: np.asarray(v) for k, v in value.items()}
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".npz.tmp")
    os.close(fd)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    (d / f"{h}.json").write_text(json.dumps(key, sort_keys=True, default=str, indent=1))
    return value


def clear_cache(root: str | os.PathLike | None = None) -> int:
    """Delete every cache entry; returns how many were removed."""
    d = cache_root(root)
    n = 0
    for p in list(d.glob("*.npz")) + list(d.glob("*.json")):
        p.unlink()
        n += p.suffix == ".npz"
    return n


def _cache_dir() -> Path:

    d = cache_dir() / "features"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _cached_array(key: dict, compute) -> np.ndarray:
    import hashlib
    import json

    h = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = _cache_dir() / f"{key.get('what', 'array')}-{h}.npy"
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass
    arr = compute()
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    tmp.replace(path)
    return arr
