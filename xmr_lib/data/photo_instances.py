"""Instance-retrieval benchmarks, public through :mod:`xmr_lib.data` (``xmr_lib.data.photo_instances``,
``xmr_lib.data.revisited``, ``xmr_lib.data.RetrievalBenchmark``, ``xmr_lib.data.LazyImages``; import them from
there): :func:`photo_instances` (generated offline) and :func:`revisited` (ROxford5k / RParis6k from disk in the
revisitop / cirtorch layout, fetched by ``python -m data_scripts fetch roxford5k --root DIR``).

``photo_instances`` is an offline instance-retrieval benchmark with revisited-style ground truth, generated deterministically from a seed
out of the real photos that pip packages bundle (scikit-image, scikit-learn, matplotlib):

- an **instance** is a square region of a photo (several per photo; the five texture-like photos — brick, grass,
  gravel, page, text — only supply distractors); train and test instances are disjoint;
- a **database view** of an instance is a new "photograph" of its surroundings: a square crop of the source photo
  whose scale and position vary, rotated by up to ±15°, with brightness / contrast / colour changes and, with
  probability 0.5, a grey occluder; its **visible fraction** (share of the instance box inside the view and not
  occluded) decides its label: ≥ 0.6 *easy* (if the instance also covers ≥ 30 % of the image), ≥ 0.3 *hard*,
  > 0.12 *junk* (too little of the object to judge), else the view is dropped and redrawn;
- a **query** is a milder view cropped to the instance box (the revisited protocol crops queries to their box);
- **distractors** are views of photo regions that overlap no test instance;
- the **train** split has views of the train instances with their instance id as group (for whitening and
  fine-tuning).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from xmr_lib.core import safe_pickle

__all__ = ["RetrievalBenchmark", "source_photos", "photo_instances", "revisited", "LazyImages"]


@dataclass
class RetrievalBenchmark:
    """A revisited-style instance-retrieval benchmark.

    Attributes:
        name: e.g. ``"photo_instances"``.
        db: uint8 ``(N, S, S, 3)`` database images; queries: ``(Q, S, S, 3)``; train: ``(T, S, S, 3)``.
        gnd: per query, ``{"easy", "hard", "junk"}`` int arrays of database indices.
        train_groups: ``(T,)`` instance id of each training image.
        db_groups: ``(N,)`` instance id of each database image (-1 for distractors); query_groups: ``(Q,)``.
        db_visible: ``(N,)`` visible fraction of the instance in each database view (0 for distractors).
    """

    name: str
    db: np.ndarray
    queries: np.ndarray
    gnd: list
    train: np.ndarray
    train_groups: np.ndarray
    db_groups: np.ndarray
    query_groups: np.ndarray
    db_visible: np.ndarray
    meta: dict = field(default_factory=dict)


_SKIMAGE = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "camera",
    "coins",
    "moon",
    "page",
    "text",
    "clock",
    "horse",
    "brick",
    "grass",
    "gravel",
    "cell",
)
_TEXTURES = {_SKIMAGE.index(n) for n in ("brick", "grass", "gravel", "page", "text")}


def source_photos() -> list[np.ndarray]:
    """The bundled photos as uint8 RGB arrays (22: 18 scikit-image, the left stereo motorcycle, sklearn's china and
    flower, matplotlib's grace_hopper)."""
    import matplotlib
    import skimage.data as sd
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = []
    for n in _SKIMAGE:
        a = getattr(sd, n)()
        if a.dtype == bool:
            a = a.astype(np.uint8) * 255
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(a[..., :3].astype(np.uint8)))
    out.append(np.asarray(sd.stereo_motorcycle()[0], dtype=np.uint8))
    out += [np.asarray(im, dtype=np.uint8) for im in load_sample_images().images]
    gh = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    if os.path.isfile(gh):
        out.append(np.asarray(Image.open(gh).convert("RGB")))
    return out


def _boxes_overlap(a, b) -> bool:
    return not (a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[2] <= b[1] or b[1] + b[2] <= a[1])


def _render(photo, box, view, rng, size, occlude=True, jitter=0.35, rotate=15.0):
    """Crop ``view`` = (top, left, side) of ``photo`` (padding outside by reflection), rotate, jitter, occlude; return
    the (size, size, 3) image, the visible fraction of ``box`` = (top, left, side) and the fraction of the image that
    the visible part of the box covers."""
    from PIL import Image, ImageEnhance

    big, pad = photo  # the photo reflect-padded by `pad` pixels on every side
    H, W = big.shape[0] - 2 * pad, big.shape[1] - 2 * pad
    t, l, s = view
    s = min(s, H + 2 * pad, W + 2 * pad)
    t = int(np.clip(t, -pad, H + pad - s))
    l = int(np.clip(l, -pad, W + pad - s))
    crop = Image.fromarray(big[t + pad : t + pad + s, l + pad : l + pad + s])
    ang = rng.uniform(-rotate, rotate)
    if s > 2 * size:  # shrink first: rotating a large crop is slow
        crop = crop.resize((2 * size, 2 * size), Image.BILINEAR)
    crop = crop.rotate(ang, resample=Image.BILINEAR).resize((size, size), Image.BILINEAR)
    crop = ImageEnhance.Brightness(crop).enhance(rng.uniform(1 - jitter, 1 + jitter))
    crop = ImageEnhance.Contrast(crop).enhance(rng.uniform(1 - jitter, 1 + jitter))
    crop = ImageEnhance.Color(crop).enhance(rng.uniform(1 - jitter, 1 + jitter))
    img = np.asarray(crop).copy()
    # visible part of the instance box, in view coordinates (rotation ignored: it keeps the centre area)
    bt, bl, bs = box
    y0, y1 = max(bt, t, 0), min(bt + bs, t + s, H)
    x0, x1 = max(bl, l, 0), min(bl + bs, l + s, W)
    inside = np.zeros((size, size), bool)
    if y1 > y0 and x1 > x0:
        f = size / s
        inside[int((y0 - t) * f) : int(np.ceil((y1 - t) * f)), int((x0 - l) * f) : int(np.ceil((x1 - l) * f))] = True
    if occlude and rng.random() < 0.5:
        oh, ow = (rng.uniform(0.25, 0.6, size=2) * size).astype(int)
        oy, ox = rng.integers(0, size - oh + 1), rng.integers(0, size - ow + 1)
        img[oy : oy + oh, ox : ox + ow] = rng.integers(40, 200, size=3, dtype=np.uint8)
        inside[oy : oy + oh, ox : ox + ow] = False
    visible = inside.sum() / max(1.0, (bs * size / s) ** 2)
    coverage = inside.sum() / float(size * size)
    return img, float(min(1.0, visible)), float(coverage)


def photo_instances(
    seed: int = 0,
    n_instances: int | None = None,
    views: int = 5,
    n_distractors: int | None = None,
    image_size: int = 128,
    easy: float = 0.6,
    hard: float = 0.3,
    junk: float = 0.12,
    min_cover: float = 0.3,
    train_views: int = 8,
) -> RetrievalBenchmark:
    """Generate the benchmark (module docstring). Deterministic given the arguments.

    Args:
        seed: drives every random choice (instances, views, splits).
        n_instances: test instances (= queries); the train split gets as many. Default 60.
        views: database views per test instance; train_views: views per train instance.
        n_distractors: database images of no instance (default ``2 · n_instances``).
        image_size: side of every generated image (px).
        easy, hard, junk: visible-fraction thresholds of the labels; an *easy* view must also show the instance over
            at least ``min_cover`` of the image (a whole instance seen small in a wide view is *hard*).
    """
    n_inst = 60 if n_instances is None else int(n_instances)
    if n_inst < 2:
        raise ValueError(f"n_instances: expected at least 2, got {n_instances!r}")
    n_dis = 2 * n_inst if n_distractors is None else int(n_distractors)
    rng = np.random.default_rng(seed)
    photos = source_photos()
    padded = []
    for ph in photos:
        pad = max(ph.shape[:2]) // 2
        padded.append((np.pad(ph, ((pad, pad), (pad, pad), (0, 0)), mode="reflect"), pad))
    # instances: 2·n_inst square boxes spread over the photos, little overlap within a photo; the photos that are
    # one repeated texture (any two regions look alike) only give distractors
    objects = [i for i in range(len(photos)) if i not in _TEXTURES]
    per_photo = int(np.ceil(2 * n_inst / len(objects)))
    boxes = []
    for pi in objects:
        ph = photos[pi]
        H, W = ph.shape[:2]
        got, tries = [], 0
        while len(got) < per_photo and tries < 200:
            tries += 1
            s = int(min(H, W) * rng.uniform(0.28, 0.45))
            b = (int(rng.integers(0, H - s + 1)), int(rng.integers(0, W - s + 1)), s)
            if all(not _boxes_overlap(b, o) or tries > 150 for o in got):
                got.append(b)
        boxes += [(pi, b) for b in got]
    order = rng.permutation(len(boxes))[: 2 * n_inst]
    test, train = order[:n_inst], order[n_inst:]

    def view_of(k, lo=0.5, hi=2.2):
        pi, (bt, bl, bs) = boxes[k]
        s = int(bs * rng.uniform(lo, hi))
        cy, cx = bt + bs / 2 + rng.normal(0, 0.35) * bs, bl + bs / 2 + rng.normal(0, 0.35) * bs
        return pi, (int(cy - s / 2), int(cx - s / 2), max(8, s))

    queries, q_groups = [], []
    db, db_groups, db_vis = [], [], []
    gnd = []
    for k in test:
        pi, box = boxes[k]
        bt, bl, bs = box
        m = int(bs * rng.uniform(0.0, 0.1))
        q, _, _ = _render(
            padded[pi], box, (bt + m, bl + m, bs - 2 * m), rng, image_size, occlude=False, jitter=0.15, rotate=5
        )
        queries.append(q)
        q_groups.append(int(k))
        g = {"easy": [], "hard": [], "junk": []}
        made = 0
        while made < views:
            pi, v = view_of(k)
            img, vis, cov = _render(padded[pi], box, v, rng, image_size)
            if vis <= junk:
                continue
            label = "easy" if vis >= easy and cov >= min_cover else "hard" if vis >= hard else "junk"
            g[label].append(len(db))
            db.append(img)
            db_groups.append(int(k))
            db_vis.append(vis)
            made += 1
        gnd.append({key: np.asarray(v, dtype=np.int64) for key, v in g.items()})
    test_boxes = [boxes[k] for k in test]
    made = 0
    while made < n_dis:
        pi = int(rng.integers(0, len(photos)))
        H, W = photos[pi].shape[:2]
        s = int(min(H, W) * rng.uniform(0.2, 0.5))
        v = (int(rng.integers(0, H - s + 1)), int(rng.integers(0, W - s + 1)), s)
        if any(p == pi and _boxes_overlap(v, b) for p, b in test_boxes):
            continue
        img, _, _ = _render(padded[pi], v, v, rng, image_size)
        db.append(img)
        db_groups.append(-1)
        db_vis.append(0.0)
        made += 1
    tr, tr_groups = [], []
    for k in train:
        pi, box = boxes[k]
        for _ in range(train_views):
            _, v = view_of(k, 0.6, 1.6)
            img, _, _ = _render(padded[pi], box, v, rng, image_size)
            tr.append(img)
            tr_groups.append(int(k))
    perm = rng.permutation(len(db))  # shuffle the database, remap the ground truth
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    gnd = [{key: np.sort(inv[v]) for key, v in g.items()} for g in gnd]
    return RetrievalBenchmark(
        name="photo_instances",
        db=np.stack(db)[perm],
        queries=np.stack(queries),
        gnd=gnd,
        train=np.stack(tr),
        train_groups=np.asarray(tr_groups),
        db_groups=np.asarray(db_groups)[perm],
        query_groups=np.asarray(q_groups),
        db_visible=np.asarray(db_vis)[perm],
        meta={
            "seed": seed,
            "n_instances": n_inst,
            "views": views,
            "n_distractors": n_dis,
            "image_size": image_size,
            "thresholds": {"easy": easy, "hard": hard, "junk": junk, "min_cover": min_cover},
            "generator": "xmr_lib.data.photo_instances.photo_instances v3",
        },
    )


# ---------------------------------------------------------------------------------------------------------------
# revisited Oxford / Paris from disk


class LazyImages:
    """A read-only sequence of images loaded from files on access (``uint8 (H, W, 3)``), optionally cropped to a box
    ``(x1, y1, x2, y2)`` — revisited queries are cropped to their ``bbx`` before any processing."""

    def __init__(self, paths, boxes=None):
        self.paths = [str(p) for p in paths]
        self.boxes = None if boxes is None else list(boxes)
        if self.boxes is not None and len(self.boxes) != len(self.paths):
            raise ValueError(f"boxes: expected {len(self.paths)} boxes (one per path), got {len(self.boxes)}")

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"LazyImages({len(self)} files)"

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getitem__(self, i):
        """An image ``(H, W, 3)`` for an int; a :class:`LazyImages` for a slice, index array or boolean mask."""
        if isinstance(i, slice):
            i = np.arange(len(self))[i]
        if not isinstance(i, (int, np.integer)):
            idx = np.asarray(i)
            if idx.dtype == bool:
                if len(idx) != len(self):
                    raise ValueError(f"mask: expected {len(self)} entries, got {len(idx)}")
                idx = np.flatnonzero(idx)
            idx = idx.astype(np.int64).ravel()
            return LazyImages(
                [self.paths[j] for j in idx], None if self.boxes is None else [self.boxes[j] for j in idx]
            )
        from PIL import Image

        im = Image.open(self.paths[i]).convert("RGB")
        if self.boxes is not None and self.boxes[i] is not None:
            x1, y1, x2, y2 = (int(round(v)) for v in self.boxes[i])
            im = im.crop((x1, y1, x2, y2))
        return np.asarray(im)


def _find_revisited(name: str, root) -> tuple:
    """(gnd pickle, jpg folder) of ``name`` under ``root`` (revisitop ``datasets/<name>/`` or cirtorch ``test/<name>/``)."""
    from pathlib import Path

    root = Path(root)
    for pkl in [root / name / f"gnd_{name}.pkl", *sorted(root.rglob(f"gnd_{name}.pkl"))]:  # data_scripts layout first
        if not pkl.is_file():
            continue
        jpg = pkl.parent / "jpg"
        if jpg.is_dir():
            return pkl, jpg
    raise FileNotFoundError(
        f"{name}: no gnd_{name}.pkl with a jpg/ folder under {root}; fetch it with "
        f"`python -m data_scripts fetch {name} --root {root}`"
    )


def revisited(name: str, root, train_from: str | None = None) -> RetrievalBenchmark:
    """ROxford5k / RParis6k with the official ground truth (``gnd_<name>.pkl``: ``imlist``, ``qimlist``, ``gnd``
    with ``easy`` / ``hard`` / ``junk`` / ``bbx``). Images are loaded lazily (:class:`LazyImages`); queries are
    cropped to their box and are not in the database (the revisited protocol).

    ``train_from`` (default: the other dataset) gives the ``train`` split — its database images, grouped by landmark
    (a landmark = the positives of its queries, named by the query file prefix, e.g. ``all_souls``); images that
    are no query's positive get their own group — as the classic protocols learn Oxford's whitening on Paris and
    vice versa.
    """
    if name not in ("roxford5k", "rparis6k"):
        raise ValueError(f"name: expected 'roxford5k' or 'rparis6k', got {name!r}")
    pkl, jpg = _find_revisited(name, root)
    cfg = safe_pickle.load(pkl)
    gnd = [{k: np.asarray(g.get(k, []), dtype=np.int64) for k in ("easy", "hard", "junk")} for g in cfg["gnd"]]
    db = LazyImages([jpg / f"{n}.jpg" for n in cfg["imlist"]])
    queries = LazyImages([jpg / f"{n}.jpg" for n in cfg["qimlist"]], [g.get("bbx") for g in cfg["gnd"]])
    other = train_from or {"roxford5k": "rparis6k", "rparis6k": "roxford5k"}[name]
    opkl, ojpg = _find_revisited(other, root)
    ocfg = safe_pickle.load(opkl)
    groups = -1 - np.arange(len(ocfg["imlist"]))  # singletons unless a landmark claims them
    marks = sorted({"_".join(q.split("_")[:-1]) for q in ocfg["qimlist"]})
    for qname, g in zip(ocfg["qimlist"], ocfg["gnd"]):
        lm = marks.index("_".join(qname.split("_")[:-1]))
        pos = np.concatenate(
            [np.asarray(g.get("easy", []), dtype=np.int64), np.asarray(g.get("hard", []), dtype=np.int64)]
        )
        groups[pos] = lm
    train = LazyImages([ojpg / f"{n}.jpg" for n in ocfg["imlist"]])
    return RetrievalBenchmark(
        name=name,
        db=db,
        queries=queries,
        gnd=gnd,
        train=train,
        train_groups=groups,
        db_groups=np.full(len(db), -1),
        query_groups=np.arange(len(queries)),
        db_visible=np.zeros(len(db)),
        meta={"train_from": other, "landmarks": marks},
    )
