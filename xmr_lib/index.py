"""Nearest-neighbour search behind one small API: N×D float32 in, ``(scores, ids)`` out.

faiss does the work (exact ``IndexFlatIP`` / ``IndexFlatL2``, and ``IndexBinaryFlat`` for Hamming codes); a NumPy
fallback with identical results is used when faiss is missing or ``backend="numpy"``. Equal distances: faiss gives
no ordering guarantee among ties; the NumPy fallback breaks them by ascending id.
"""
from __future__ import annotations

import sys

import numpy as np

try:  # pragma: no cover - exercised implicitly
    import faiss

    if sys.platform == "darwin":  # torch and faiss each load OpenMP on macOS (faiss issue #2463)
        faiss.omp_set_num_threads(1)
except ImportError:  # pragma: no cover
    faiss = None

BACKENDS = ("auto", "faiss", "numpy")


def _as_f32(x, name: str, dim: int | None = None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n, dim), got shape {a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"{name}: expected dim {dim}, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def _backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "faiss" and faiss is None:
        raise ValueError("backend='faiss' but faiss is not installed (pip install faiss-cpu)")
    return "faiss" if backend in ("auto", "faiss") and faiss is not None else "numpy"


def _topk(scores: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    s = -scores if largest else scores
    order = np.argsort(s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), order.astype(np.int64)


class FlatIndex:
    """Exact search. ``metric="ip"``: inner product (cosine on L2-normalised vectors), higher first;
    ``metric="l2"``: squared Euclidean distance, lower first.

    >>> idx = FlatIndex(128, "ip"); idx.add(db); scores, ids = idx.search(queries, 10)   # (Q,10), (Q,10)
    """

    def __init__(self, dim: int, metric: str = "ip", backend: str = "auto"):
        if metric not in ("ip", "l2"):
            raise ValueError(f"metric: expected 'ip' or 'l2', got {metric!r}")
        if int(dim) < 1:
            raise ValueError(f"dim: expected a positive integer, got {dim}")
        self.dim, self.metric, self.backend = int(dim), metric, _backend(backend)
        self._x = np.zeros((0, self.dim), np.float32)
        self._faiss = None
        if self.backend == "faiss":
            self._faiss = faiss.IndexFlatIP(self.dim) if metric == "ip" else faiss.IndexFlatL2(self.dim)

    def __len__(self) -> int:
        return self._faiss.ntotal if self._faiss is not None else len(self._x)

    def add(self, x) -> "FlatIndex":
        """Append database vectors (N, dim)."""
        a = _as_f32(x, "x", self.dim)
        if self._faiss is not None:
            self._faiss.add(a)
        else:
            self._x = np.concatenate([self._x, a])
        return self

    def search(self, q, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` for each query (Q, dim) → (scores (Q,k) float32, ids (Q,k) int64). ``k`` is clipped to len()."""
        a = _as_f32(q, "q", self.dim)
        n = len(self)
        if n == 0:
            raise ValueError("search: the index is empty; add database vectors first")
        if int(k) < 1:
            raise ValueError(f"k: expected a positive integer, got {k}")
        k = min(int(k), n)
        if self._faiss is not None:
            s, i = self._faiss.search(a, k)
            return s, i.astype(np.int64)
        if self.metric == "ip":
            s, i = _topk(a @ self._x.T, k, largest=True)
        else:
            d = (a * a).sum(1, keepdims=True) - 2 * a @ self._x.T + (self._x * self._x).sum(1)[None]
            s, i = _topk(np.maximum(d, 0), k, largest=False)
        return s.astype(np.float32), i


def _pack(codes, name: str, nbits: int | None = None) -> np.ndarray:
    if hasattr(codes, "detach"):
        codes = codes.detach().cpu().numpy()
    c = np.asarray(codes)
    if c.ndim != 2:
        raise ValueError(f"{name}: expected (n, n_bits) codes, got shape {c.shape}")
    if nbits is not None and c.shape[1] != nbits:
        raise ValueError(f"{name}: expected {nbits} bits, got shape {c.shape}")
    if ((c == 0) | (c == 1)).all():
        bits = c.astype(bool)
    elif ((c == -1) | (c == 1)).all():
        bits = c > 0
    else:
        raise ValueError(f"{name}: codes must be in {{-1,+1}} or {{0,1}}")
    return np.packbits(bits, axis=1)


class HammingIndex:
    """Exact Hamming search over binary codes in {-1,+1} or {0,1} → (distances (Q,k) int32, ids (Q,k) int64).

    Uses faiss ``IndexBinaryFlat`` (bits padded to a multiple of 8 with zeros on both sides, which leaves
    distances unchanged), or NumPy popcounts.
    """

    def __init__(self, nbits: int, backend: str = "auto"):
        if int(nbits) < 1:
            raise ValueError(f"nbits: expected a positive integer, got {nbits}")
        self.nbits, self.backend = int(nbits), _backend(backend)
        self._bytes = (self.nbits + 7) // 8
        self._x = np.zeros((0, self._bytes), np.uint8)
        self._faiss = faiss.IndexBinaryFlat(self._bytes * 8) if self.backend == "faiss" else None

    def __len__(self) -> int:
        return self._faiss.ntotal if self._faiss is not None else len(self._x)

    def add(self, codes) -> "HammingIndex":
        p = _pack(codes, "codes", self.nbits)
        if self._faiss is not None:
            self._faiss.add(p)
        else:
            self._x = np.concatenate([self._x, p])
        return self

    def search(self, codes, k: int) -> tuple[np.ndarray, np.ndarray]:
        p = _pack(codes, "codes", self.nbits)
        n = len(self)
        if n == 0:
            raise ValueError("search: the index is empty; add database codes first")
        if int(k) < 1:
            raise ValueError(f"k: expected a positive integer, got {k}")
        k = min(int(k), n)
        if self._faiss is not None:
            d, i = self._faiss.search(p, k)
            return d.astype(np.int32), i.astype(np.int64)
        x = np.bitwise_xor(p[:, None, :], self._x[None, :, :])
        d = np.unpackbits(x, axis=2).sum(2).astype(np.int32)
        return _topk(d, k, largest=False)


def build_index(x, metric: str = "ip", backend: str = "auto"):
    """A :class:`FlatIndex` (``metric`` "ip"/"l2") or :class:`HammingIndex` (``metric="hamming"``) holding ``x``."""
    if metric == "hamming":
        c = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
        return HammingIndex(c.shape[1], backend).add(c)
    a = _as_f32(x, "x")
    return FlatIndex(a.shape[1], metric, backend).add(a)
