"""Exact nearest-neighbour search behind one small API: N×D float32 in, ``(scores, ids)`` out.

* :class:`FlatIndex` — ``metric="ip"`` (inner product; cosine similarity on L2-normalised vectors; higher first)
  or ``metric="l2"`` (**squared** Euclidean distance, as faiss returns it; lower first).
* :class:`HammingIndex` — binary codes in {-1,+1} or {0,1}, stored as packed bits; returns Hamming distances
  (int32, lower first).
* :func:`build_index` — make one and add the database in one call.

faiss (``IndexFlatIP`` / ``IndexFlatL2`` / ``IndexBinaryFlat``) does the work when it is installed; otherwise,
or with ``backend="numpy"``, a NumPy implementation gives the same results (float scores up to rounding).

Rules shared by both indexes:

* ``k`` larger than the number of stored items is clipped to it: ``search`` then returns (Q, ntotal) arrays
  (faiss would pad with id -1; we never return padding). ``k < 1`` is a ValueError, and so is searching an
  empty index.
* **Ties.** faiss gives no ordering guarantee among equal scores (faiss issues #808, #1201). Within the
  returned list we sort equal scores by ascending id on both backends; the NumPy backend also picks, among items
  tied at the k-th score, those with the smallest ids. With faiss, which of several tied items makes the cut is
  unspecified — compare results tie-tolerantly.
* On macOS, torch and faiss each bring an OpenMP runtime (faiss issue #2463); faiss is set to one thread there.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from xmr_lib.retrieval.metrics import _code_bits as _bits_of
from xmr_lib.retrieval.metrics import _hamming_block, _np, _words

try:
    import faiss
except ImportError:  # pragma: no cover - exercised by forcing backend="numpy" in the tests
    faiss = None

if faiss is not None and sys.platform == "darwin":  # pragma: no cover - macOS only
    faiss.omp_set_num_threads(1)

__all__ = ["FlatIndex", "HammingIndex", "build_index", "faiss_available", "METRICS", "BACKENDS"]

METRICS = ("ip", "l2")
BACKENDS = ("auto", "faiss", "numpy")
_CHUNK_ELEMS = 1 << 22


def faiss_available() -> bool:
    """Whether faiss could be imported (``backend="auto"`` then uses it)."""
    return faiss is not None


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 1:
        raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    return int(v)


def _vectors(x: Any, name: str, dim: int | None) -> np.ndarray:
    """(n, dim) C-contiguous float32 with finite values."""
    a = _np(x, name)
    if a.ndim == 1 and dim is not None and a.shape[0] == dim:
        raise ValueError(f"{name}: expected a 2-D array (n, {dim}), got shape {a.shape} (a single vector? use x[None])")
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n, dim), got shape {a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"{name}: expected shape (n, {dim}), got {a.shape}")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        i, j = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name}: NaN or inf at row {int(i)}, column {int(j)}")
    return a


def _backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "faiss" and faiss is None:
        raise ValueError("backend: 'faiss' was requested but faiss is not installed (pip install faiss-cpu)")
    return "faiss" if backend != "numpy" and faiss is not None else "numpy"


def _k_smallest(key: np.ndarray, k: int) -> np.ndarray:
    """(C, k) ids of the k smallest keys per row, ordered by (key, id): ties go to the smaller id. Linear time
    per row plus a sort of k items."""
    c, n = key.shape
    if k >= n:
        return np.argsort(key, axis=1, kind="stable")
    kth = np.partition(key, k - 1, axis=1)[:, k - 1 : k]
    lt, eq = key < kth, key == kth
    slots = k - lt.sum(1, keepdims=True)
    sel = lt | (eq & (np.cumsum(eq, axis=1) <= slots))
    ids = np.nonzero(sel)[1].reshape(c, k)  # ascending ids, exactly k per row
    o = np.argsort(np.take_along_axis(key, ids, axis=1), axis=1, kind="stable")
    return np.take_along_axis(ids, o, axis=1)


def _order_by_key_then_id(key: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(Q, k) positions that reorder each row of a faiss result by (key ascending, id ascending)."""
    return np.lexsort((ids, key), axis=1)


class _Index:
    """Storage, validation and the search driver shared by the two indexes."""

    _what = "vectors"

    def __init__(self, backend: str):
        self.backend = _backend(backend)
        self._blocks: list[np.ndarray] = []
        self._n = 0
        self._faiss = None

    def __len__(self) -> int:
        return self._n

    @property
    def ntotal(self) -> int:
        """Number of stored items (same as ``len(index)``)."""
        return self._n

    def _data(self) -> np.ndarray:
        if len(self._blocks) > 1:
            self._blocks = [np.concatenate(self._blocks)]
        return self._blocks[0]

    def _store(self, a: np.ndarray) -> None:
        if a.shape[0] == 0:
            return
        if self._faiss is not None:
            self._faiss.add(a)
        else:
            self._blocks.append(a)
        self._n += a.shape[0]

    def reset(self):
        """Remove every stored item (the index keeps its dimension, metric and backend)."""
        self._blocks, self._n = [], 0
        if self._faiss is not None:
            self._faiss.reset()
        return self

    def _check_search(self, k: Any) -> int:
        k = _positive_int("k", k)
        if self._n == 0:
            raise ValueError(f"search: the index is empty; add database {self._what} first")
        return min(k, self._n)


class FlatIndex(_Index):
    """Exact (brute-force) search over float vectors.

    Args:
        dim: vector dimension D.
        metric: ``"ip"`` — inner product, higher = better (cosine on L2-normalised vectors); ``"l2"`` — squared
            Euclidean distance, lower = better.
        backend: ``"auto"`` (faiss if installed, else NumPy), ``"faiss"`` or ``"numpy"``.

    >>> idx = FlatIndex(128, "ip").add(db)            # db: (N, 128)
    >>> scores, ids = idx.search(queries, 10)          # (Q, 10) float32, (Q, 10) int64; best first
    """

    def __init__(self, dim: int, metric: str = "ip", backend: str = "auto"):
        if metric not in METRICS:
            raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
        super().__init__(backend)
        self.dim, self.metric = _positive_int("dim", dim), metric
        if self.backend == "faiss":
            self._faiss = faiss.IndexFlatIP(self.dim) if metric == "ip" else faiss.IndexFlatL2(self.dim)

    def __repr__(self) -> str:
        return f"FlatIndex(dim={self.dim}, metric={self.metric!r}, backend={self.backend!r}, ntotal={self._n})"

    def add(self, x) -> "FlatIndex":
        """Append database vectors ``x`` (N, dim) (NumPy array or torch tensor; stored as float32). Ids are
        assigned in order of addition, from 0. Returns the index, so calls chain."""
        self._store(_vectors(x, "x", self.dim))
        return self

    def search(self, q, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best database items for each query.

        Args:
            q: (Q, dim) queries.
            k: number of results; clipped to ``len(self)``.

        Returns:
            ``(scores, ids)``, both (Q, min(k, ntotal)): float32 inner products (descending) or squared L2
            distances (ascending), and int64 ids. Equal scores are listed by ascending id.
        """
        a = _vectors(q, "q", self.dim)
        k = self._check_search(k)
        if self._faiss is not None:
            s, i = self._faiss.search(a, k)
            o = _order_by_key_then_id(-s if self.metric == "ip" else s, i)
            return np.take_along_axis(s, o, 1), np.take_along_axis(i, o, 1).astype(np.int64)
        x = self._data()
        scores = np.empty((a.shape[0], k), dtype=np.float32)
        ids = np.empty((a.shape[0], k), dtype=np.int64)
        x_sq = (x * x).sum(1) if self.metric == "l2" else None
        step = max(1, _CHUNK_ELEMS // x.shape[0])
        for s0 in range(0, a.shape[0], step):
            qa = a[s0 : s0 + step]
            sim = qa @ x.T
            if self.metric == "ip":
                key = -sim
            else:
                key = np.maximum((qa * qa).sum(1, keepdims=True) + x_sq[None, :] - 2 * sim, 0)
            idx = _k_smallest(key, k)
            ids[s0 : s0 + step] = idx
            scores[s0 : s0 + step] = np.take_along_axis(sim if self.metric == "ip" else key, idx, axis=1)
        return scores, ids


def _code_bits(codes: Any, name: str, nbits: int) -> np.ndarray:
    """(n, nbits) codes in {-1,+1} or {0,1} (or bool) → bool bits, validated."""
    a = _np(codes, name)
    if a.ndim == 2 and a.shape[1] != nbits:
        raise ValueError(f"{name}: expected shape (n, {nbits}) codes, got {a.shape}")
    if a.ndim == 2 and a.shape[0] == 0:
        return np.zeros((0, nbits), dtype=bool)
    return _bits_of(a, name)


class HammingIndex(_Index):
    """Exact Hamming search over binary codes (faiss ``IndexBinaryFlat``, or NumPy popcounts).

    Codes are (n, nbits) in {-1,+1} or {0,1} (or bool); +1 / 1 is bit 1. They are packed with ``np.packbits``;
    when nbits is not a multiple of 8 the padding bits are 0 on both sides, which leaves distances unchanged.

    >>> idx = HammingIndex(64).add(db_codes)
    >>> dist, ids = idx.search(query_codes, 100)       # (Q, 100) int32 Hamming distances, (Q, 100) int64
    """

    _what = "codes"

    def __init__(self, nbits: int, backend: str = "auto"):
        super().__init__(backend)
        self.nbits = _positive_int("nbits", nbits)
        self.nbytes = (self.nbits + 7) // 8
        if self.backend == "faiss":
            self._faiss = faiss.IndexBinaryFlat(self.nbytes * 8)

    def __repr__(self) -> str:
        return f"HammingIndex(nbits={self.nbits}, backend={self.backend!r}, ntotal={self._n})"

    def _pack(self, bits: np.ndarray) -> np.ndarray:
        """faiss: bytes from ``np.packbits``; NumPy: 64-bit words for XOR + popcount."""
        return np.packbits(bits, axis=1) if self._faiss is not None else _words(bits)

    def add(self, codes) -> "HammingIndex":
        """Append database codes (N, nbits). Returns the index, so calls chain."""
        self._store(self._pack(_code_bits(codes, "codes", self.nbits)))
        return self

    def search(self, codes, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest database codes for each query code (Q, nbits).

        Returns:
            ``(distances, ids)``, both (Q, min(k, ntotal)): int32 Hamming distances (ascending) and int64 ids;
            equal distances listed by ascending id.
        """
        p = self._pack(_code_bits(codes, "codes", self.nbits))
        k = self._check_search(k)
        if self._faiss is not None:
            d, i = self._faiss.search(p, k)
            o = _order_by_key_then_id(d, i)
            return np.take_along_axis(d, o, 1).astype(np.int32), np.take_along_axis(i, o, 1).astype(np.int64)
        x = self._data()
        dist = np.empty((p.shape[0], k), dtype=np.int32)
        ids = np.empty((p.shape[0], k), dtype=np.int64)
        step = max(1, _CHUNK_ELEMS // x.shape[0])
        for s0 in range(0, p.shape[0], step):
            d = _hamming_block(p[s0 : s0 + step], x, self.nbits)
            idx = _k_smallest(d, k)
            ids[s0 : s0 + step] = idx
            dist[s0 : s0 + step] = np.take_along_axis(d, idx, axis=1)
        return dist, ids


def build_index(x, metric: str = "ip", backend: str = "auto") -> FlatIndex | HammingIndex:
    """An index holding ``x``: a :class:`FlatIndex` for ``metric="ip"``/``"l2"`` ((N, D) floats), or a
    :class:`HammingIndex` for ``metric="hamming"`` ((N, nbits) codes in {-1,+1} or {0,1})."""
    if metric == "hamming":
        a = _np(x, "x")
        if a.ndim != 2:
            raise ValueError(f"x: expected (n, nbits) codes, got shape {a.shape}")
        return HammingIndex(a.shape[1], backend).add(a)
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS + ('hamming',)}, got {metric!r}")
    a = _vectors(x, "x", None)
    return FlatIndex(a.shape[1], metric, backend).add(a)
