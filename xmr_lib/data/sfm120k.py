"""retrieval-SfM-120k: the training set of the GeM networks (Radenović, Tolias, Chum, "Fine-tuning CNN image
retrieval with no human annotation", TPAMI 2018), as cnnimageretrieval-pytorch ("cirtorch") publishes it, and the
tuple sampling that trains on it.

**Files** (``python -m data_scripts fetch retrieval_sfm120k --root DIR``; also cirtorch's own data folder):

- ``retrieval-SfM-120k.pkl``: a dict ``{"train": db, "val": db}``, each ``db`` a dict with ``cids`` (N image
  names), ``cluster`` (N cluster ids: the 3-D model an image belongs to), ``qidxs`` / ``pidxs`` (M query and
  positive indices into ``cids``, pair by pair: images seen by the same 3-D model).
- ``retrieval-SfM-120k-whiten.pkl`` (optional): one ``db`` with ``cids``, ``qidxs``, ``pidxs`` (the pairs cirtorch
  learns its whitening ``L_w`` on).
- ``ims/<cid[-2:]>/<cid[-4:-2]>/<cid[-6:-4]>/<cid>``: the images, named by their cid (cirtorch's ``cid2filename``).

**Tuples** (cirtorch's ``TuplesDataset.create_epoch_tuples``): each epoch, :func:`draw_epoch` draws ``qsize``
query–positive pairs from the published pairs and a random pool of ``poolsize`` images; the current network embeds
the queries and the pool, and :func:`hardest_negatives` gives each query the ``nnum`` pool images most similar to it
— never from the query's cluster, at most one per cluster — for all queries at once (no loop over queries).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmr_lib.core import safe_pickle
from xmr_lib.data.photo_instances import LazyImages
from xmr_lib.data.registry import MissingImagesError, _missing_files

__all__ = [
    "NAME",
    "PICKLE",
    "WHITEN_PICKLE",
    "FETCH_HINT",
    "SfmSplit",
    "cid_path",
    "find_sfm120k",
    "read_sfm120k",
    "read_whiten_pairs",
    "draw_epoch",
    "hardest_negatives",
]

NAME = "retrieval_sfm120k"  # the data_scripts entry, and the folder under data_root
PICKLE = "retrieval-SfM-120k.pkl"
WHITEN_PICKLE = "retrieval-SfM-120k-whiten.pkl"
FETCH_HINT = f"python -m data_scripts fetch {NAME} --root DIR (the image archive is over 50 GB)"
SPLITS = ("train", "val")


@dataclass
class SfmSplit:
    """One split of retrieval-SfM-120k.

    Attributes:
        split: ``"train"`` or ``"val"``.
        paths: N image files (``ims/<cid[-2:]>/<cid[-4:-2]>/<cid[-6:-4]>/<cid>``).
        clusters: ``(N,)`` int64 cluster (3-D model) id of every image.
        qidxs, pidxs: ``(M,)`` int64 indices into ``paths``: the published query–positive pairs.
        source: the pickle read.
    """

    split: str
    paths: list[str]
    clusters: np.ndarray
    qidxs: np.ndarray
    pidxs: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def images(self) -> LazyImages:
        """The N images, loaded on access (``uint8 (H, W, 3)``)."""
        return LazyImages(self.paths)


def cid_path(cid: str, ims: str | os.PathLike) -> Path:
    """The file of image ``cid`` under the image folder ``ims`` (cirtorch's ``cid2filename``)."""
    return Path(ims) / cid[-2:] / cid[-4:-2] / cid[-6:-4] / cid


def find_sfm120k(root: str | os.PathLike | None) -> tuple[Path, Path] | None:
    """``(retrieval-SfM-120k.pkl, ims folder)`` under ``root`` — the data_scripts layout
    (``root/retrieval_sfm120k/``), cirtorch's (``root/train/retrieval-SfM-120k/``) or one or two folders down —
    or None when there is no pickle with an ``ims/`` folder beside it."""
    if not root:
        return None
    root = Path(root)
    cands = [root / NAME / PICKLE, root / "train" / "retrieval-SfM-120k" / PICKLE, root / PICKLE]
    cands += sorted(root.glob(f"*/{PICKLE}")) + sorted(root.glob(f"*/*/{PICKLE}"))
    for pkl in cands:
        if pkl.is_file() and (pkl.parent / "ims").is_dir():
            return pkl, pkl.parent / "ims"
    return None


def _ints(db: dict, key: str, where: str, n: int | None = None) -> np.ndarray:
    """``db[key]`` as a 1-D int64 array (integral floats accepted); ValueError naming the key and entry."""
    v = db[key]
    a = np.asarray(v)
    if a.ndim != 1:
        raise ValueError(f"{where}: {key!r} is not a flat list (shape {a.shape})")
    if a.size and a.dtype.kind not in "iu":
        ok = a.dtype.kind == "f" and np.isfinite(a).all() and (a == np.round(a)).all()
        if not ok:
            bad = next(i for i, x in enumerate(v) if not isinstance(x, (int, np.integer)))
            raise ValueError(f"{where}: {key}[{bad}] = {v[bad]!r}, expected an integer")
    a = a.astype(np.int64)
    if n is not None:
        bad = np.flatnonzero((a < 0) | (a >= n))
        if len(bad):
            raise ValueError(
                f"{where}: {key}[{bad[0]}] = {a[bad[0]]} is out of range (cids has {n} images, ids 0..{n - 1})"
            )
    return a


def _check_db(db, where: str, need_cluster: bool) -> tuple[list[str], np.ndarray | None, np.ndarray, np.ndarray]:
    keys = ("cids", "cluster", "qidxs", "pidxs") if need_cluster else ("cids", "qidxs", "pidxs")
    if not isinstance(db, dict) or any(k not in db for k in keys):
        got = sorted(map(str, db)) if isinstance(db, dict) else type(db).__name__
        raise ValueError(f"{where}: expected a dict with {', '.join(map(repr, keys))}, got {got}")
    cids = db["cids"]
    if isinstance(cids, np.ndarray):
        cids = cids.tolist()
    if not isinstance(cids, (list, tuple)) or not cids:
        raise ValueError(
            f"{where}: 'cids' is a {type(cids).__name__} of length {len(cids) if hasattr(cids, '__len__') else '?'}, expected a non-empty list of image names"
        )
    for i, c in enumerate(cids):  # ~100k names: a plain loop is a fraction of a second
        if not isinstance(c, str) or len(c) < 6 or "/" in c or "\\" in c or c.startswith("."):
            raise ValueError(
                f"{where}: cids[{i}] = {c!r}, expected an image name of at least 6 characters without a path "
                "(the layout is ims/<cid[-2:]>/<cid[-4:-2]>/<cid[-6:-4]>/<cid>)"
            )
    n = len(cids)
    clusters = None
    if need_cluster:
        clusters = _ints(db, "cluster", where)
        if len(clusters) != n:
            raise ValueError(f"{where}: 'cluster' has {len(clusters)} entries but 'cids' has {n} (one per image)")
    q, p = _ints(db, "qidxs", where, n), _ints(db, "pidxs", where, n)
    if len(q) != len(p):
        raise ValueError(f"{where}: 'qidxs' has {len(q)} entries but 'pidxs' has {len(p)} (one positive per query)")
    if not len(q):
        raise ValueError(f"{where}: no query-positive pairs ('qidxs' is empty)")
    return list(cids), clusters, q, p


def _load(pkl: Path):
    fix = f"re-fetch it: {FETCH_HINT}"
    try:
        return safe_pickle.load(pkl, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, KeyError, TypeError) as e:
        raise ValueError(f"{pkl}: not a readable SfM-120k pickle ({type(e).__name__}: {e}); {fix}") from None
    except (ValueError, UnicodeDecodeError, MemoryError) as e:
        raise ValueError(f"{pkl}: not a readable SfM-120k pickle ({type(e).__name__}: {e}); {fix}") from None


def _check_images(paths: list[str], where, fix: str) -> None:
    missing = _missing_files(paths)
    if missing:
        k = missing[0]
        raise MissingImagesError(
            f"{where(k)}: image file {paths[k]} not found; {len(missing)} of {len(paths)} images are missing "
            f"(a partial download or conversion): {fix}"
        )


def read_sfm120k(root: str | os.PathLike | None, split: str = "train", check_images: bool = True) -> SfmSplit:
    """One split of retrieval-SfM-120k found under ``root`` (:func:`find_sfm120k`), checked when opened.

    The pickle is read without running code (:mod:`xmr_lib.core.safe_pickle`) and checked: a dict with
    ``"train"`` / ``"val"``, each with ``cids`` (names of ≥ 6 characters, no path), ``cluster`` (one integer per
    image), ``qidxs`` / ``pidxs`` (as many, integer ids into ``cids``) — a ``ValueError`` names the file, the key,
    the index and the value. With ``check_images``, every image file must exist (a
    :class:`xmr_lib.data.MissingImagesError` names the first missing one and how many are).

    Returns:
        an :class:`SfmSplit` (paths (N,), clusters (N,), qidxs / pidxs (M,)).
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
    found = find_sfm120k(root)
    if found is None:
        raise FileNotFoundError(f"retrieval-SfM-120k: no {PICKLE} with an ims/ folder under {root}; {FETCH_HINT}")
    pkl, ims = found
    cfg = _load(pkl)
    if not isinstance(cfg, dict) or any(k not in cfg for k in SPLITS):
        got = sorted(map(str, cfg)) if isinstance(cfg, dict) else type(cfg).__name__
        raise ValueError(f"{pkl}: expected a dict with 'train' and 'val', got {got}; re-fetch it: {FETCH_HINT}")
    where = f"{pkl} [{split!r}]"
    cids, clusters, q, p = _check_db(cfg[split], where, need_cluster=True)
    paths = [str(cid_path(c, ims)) for c in cids]
    if check_images:
        _check_images(paths, lambda k: f"{where}: cids[{k}] ({cids[k]!r})", f"re-fetch it: {FETCH_HINT}")
    return SfmSplit(split, paths, clusters, q, p, str(pkl))


def read_whiten_pairs(root: str | os.PathLike | None, check_images: bool = True) -> SfmSplit | None:
    """The optional ``retrieval-SfM-120k-whiten.pkl`` (``cids``, ``qidxs``, ``pidxs``; no clusters: ``clusters``
    is all -1), checked like :func:`read_sfm120k`; None when it is not beside the main pickle."""
    found = find_sfm120k(root)
    if found is None or not (found[0].parent / WHITEN_PICKLE).is_file():
        return None
    pkl, ims = found[0].parent / WHITEN_PICKLE, found[1]
    cids, _, q, p = _check_db(_load(pkl), str(pkl), need_cluster=False)
    paths = [str(cid_path(c, ims)) for c in cids]
    if check_images:
        _check_images(paths, lambda k: f"{pkl}: cids[{k}] ({cids[k]!r})", f"re-fetch it: {FETCH_HINT}")
    return SfmSplit("whiten", paths, np.full(len(cids), -1, np.int64), q, p, str(pkl))


# ---------------------------------------------------------------------------------------------------------------
# tuples


def draw_epoch(
    s: SfmSplit, qsize: int, poolsize: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch's draw: ``min(qsize, M)`` published pairs without replacement and a random negative pool of
    ``min(poolsize, N)`` distinct images.

    Returns:
        ``(qi, pi, pool)``: ``(Q,)`` query and ``(Q,)`` positive indices into ``s.paths``, ``(P,)`` pool indices.
    """
    for name, v in (("qsize", qsize), ("poolsize", poolsize)):
        if int(v) != v or int(v) < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    pick = rng.permutation(len(s.qidxs))[: int(qsize)]
    pool = rng.permutation(len(s.paths))[: int(poolsize)]
    return s.qidxs[pick], s.pidxs[pick], pool.astype(np.int64)


def hardest_negatives(
    query_desc: np.ndarray,
    pool_desc: np.ndarray,
    query_clusters: np.ndarray,
    pool_clusters: np.ndarray,
    nnum: int = 5,
    chunk: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``nnum`` hardest negatives of every query from the pool: the most similar pool images by inner product,
    never of the query's cluster and at most one per cluster — what cirtorch's greedy walk down each query's ranked
    pool gives, computed for ``chunk`` queries at a time.

    The trick: sort the pool by cluster once; per query, the best image of every cluster is a segment maximum
    (``np.maximum.reduceat`` over the sorted similarities, the query's own cluster set to -inf), and the ``nnum``
    best clusters are a top-k of those maxima. Ties go to the lower pool index.

    Args:
        query_desc: ``(Q, D)`` descriptors of the queries (current network, L2-normalised).
        pool_desc: ``(P, D)`` descriptors of the pool.
        query_clusters: ``(Q,)``; pool_clusters: ``(P,)`` integer cluster ids.
        nnum: negatives per query.
    Returns:
        ``(ids, sims)``: ``(Q, nnum)`` int64 pool positions (hardest first) and their float32 similarities; ``-1`` /
        ``-inf`` where the pool holds fewer than ``nnum`` other clusters.
    """
    q, p = np.asarray(query_desc, np.float32), np.asarray(pool_desc, np.float32)
    if q.ndim != 2 or p.ndim != 2 or q.shape[1] != p.shape[1]:
        raise ValueError(
            f"query_desc, pool_desc: expected (Q, D) and (P, D) with the same D, got {q.shape} and {p.shape}"
        )
    qc, pc = np.asarray(query_clusters).reshape(-1), np.asarray(pool_clusters).reshape(-1)
    if len(qc) != len(q):
        raise ValueError(f"query_clusters: expected ({len(q)},) (one per query), got shape {np.shape(query_clusters)}")
    if len(pc) != len(p):
        raise ValueError(
            f"pool_clusters: expected ({len(p)},) (one per pool image), got shape {np.shape(pool_clusters)}"
        )
    if int(nnum) != nnum or int(nnum) < 1:
        raise ValueError(f"nnum: expected a positive int, got {nnum!r}")
    nnum = int(nnum)
    order = np.argsort(pc, kind="stable")  # pool sorted by cluster, pool order kept inside a cluster
    uniq, starts, counts = np.unique(pc[order], return_index=True, return_counts=True)
    G, P = len(uniq), len(p)
    pos = np.searchsorted(uniq, qc)
    own = np.where((pos < G) & (uniq[np.minimum(pos, G - 1)] == qc), pos, -1)  # the query's cluster, or -1
    k = min(nnum, G)
    ids = np.full((len(q), nnum), -1, np.int64)
    sims = np.full((len(q), nnum), -np.inf, np.float32)
    seg = np.repeat(np.arange(G), counts)  # (P,) cluster slot of each sorted pool position
    pt = np.ascontiguousarray(p[order].T)  # (D, P), pool sorted by cluster
    for i in range(0, len(q), chunk):  # chunks of queries bound the (c, P) memory, each chunk vectorised
        s = q[i : i + chunk] @ pt  # (c, P), sorted by cluster
        c = len(s)
        s[seg[None, :] == own[i : i + c, None]] = -np.inf  # the query's own cluster: potential positives
        gmax = np.maximum.reduceat(s, starts, axis=1)  # (c, G) best similarity per cluster
        hit = (s == gmax[:, seg]) & np.isfinite(s)
        first = np.minimum.reduceat(np.where(hit, order[None, :], P), starts, axis=1)  # (c, G) its pool index
        top = np.argsort(-gmax, axis=1, kind="stable")[:, :k]  # the k best clusters
        v = np.take_along_axis(gmax, top, axis=1)
        ok = np.isfinite(v)
        ids[i : i + c, :k] = np.where(ok, np.take_along_axis(first, top, axis=1), -1)
        sims[i : i + c, :k] = v
    return ids, sims
