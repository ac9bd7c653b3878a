"""Converters from each dataset's published format to xmr's layout (see ``data_scripts/README.md``).

Every converter takes the dataset folder ``<root>/<name>/`` — archives already unpacked under ``raw/`` (or files
placed anywhere below the folder) — finds its files by name, and writes:

- ``images/``: the image files (the published image folder, moved, not copied);
- ``index.csv``: one row per image: ``path`` (relative to ``images/``), ``label`` (class id into ``classes.txt``,
  -1 when the set is multi-label), ``split`` (``train`` / ``val`` / ``test``) and, where the set has them,
  ``labels`` (space-separated ids into ``classes.txt``: multi-label sets), ``coarse`` (id into
  ``coarse_classes.txt``), ``bbox`` (``x y w h``);
- ``captions.csv`` (``image,caption``; ``image`` = row of ``index.csv``) for sets with sentences;
- ``classes.txt`` (one name per line) and ``meta.json`` (counts, source, converter version);
- dataset-specific files the library reads directly: the revisited ``gnd_<name>.pkl`` + ``jpg/``; MIRFlickr /
  NUS-WIDE ``labels.npy``, ``tags_bow.npy``, ``images.npy``; Karpathy ``dataset_<name>.json``.

Each converter returns a report ``{"n": rows, "missing": [what is absent], ...}``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np

from xmr_lib.core import safe_pickle

__all__ = ["CONVERTERS", "convert", "ConversionError", "CONVERTER_VERSION"]

CONVERTER_VERSION = 1
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class ConversionError(RuntimeError):
    """The files a converter needs are missing or malformed."""


# --------------------------------------------------------------------------------------------------------------
# helpers


def _search(ds: Path, pattern: str, required: bool = True, what: str = "") -> Path | None:
    """First file / folder matching ``pattern`` below ``ds`` (``downloads/`` excluded), shallowest first."""
    hits = [p for p in ds.rglob(pattern) if "downloads" not in p.relative_to(ds).parts[:1]]
    hits.sort(key=lambda p: (len(p.parts), str(p)))
    if not hits:
        if required:
            raise ConversionError(
                f"{ds}: no {pattern} found{' (' + what + ')' if what else ''}; unpack the "
                f"dataset's archives under {ds / 'raw'} or run `python -m data_scripts fetch "
                f"{ds.name} --root {ds.parent}`"
            )
        return None
    return hits[0]


def _adopt_images(ds: Path, src: Path | None) -> Path:
    """Move the published image folder ``src`` to ``ds/images`` (once); return ``ds/images``."""
    out = ds / "images"
    if src is None or src.resolve() == out.resolve():
        return out
    if not out.exists():
        os.replace(src, out)
    else:  # merge (e.g. COCO's train2014/ and val2014/)
        for p in src.iterdir():
            t = out / p.name
            if not t.exists():
                os.replace(p, t)
    return out


def _write_index(
    ds: Path,
    rows: list[dict],
    classes: list[str],
    coarse: list[str] | None = None,
    captions: list[tuple[int, str]] | None = None,
    meta: dict | None = None,
) -> dict:
    cols = ["path", "label", "split"] + [c for c in ("labels", "coarse", "bbox") if any(c in r for r in rows)]
    with open(ds / "index.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
    (ds / "classes.txt").write_text("".join(f"{c}\n" for c in classes), encoding="utf-8")
    if coarse is not None:
        (ds / "coarse_classes.txt").write_text("".join(f"{c}\n" for c in coarse), encoding="utf-8")
    if captions is not None:
        with open(ds / "captions.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["image", "caption"])
            w.writerows(captions)
    img = ds / "images"
    missing = [r["path"] for r in rows if not (img / r["path"]).is_file()]
    splits = {s: sum(r["split"] == s for r in rows) for s in sorted({r["split"] for r in rows})}
    info = {
        "name": ds.name,
        "converter_version": CONVERTER_VERSION,
        "n_images": len(rows),
        "splits": splits,
        "n_classes": len(classes),
        "images_missing": len(missing),
        **(meta or {}),
    }
    if captions is not None:
        info["n_captions"] = len(captions)
    (ds / "meta.json").write_text(json.dumps(info, indent=1, ensure_ascii=False), encoding="utf-8")
    report = {"n": len(rows), "splits": splits, "missing": []}
    if missing:
        report["missing"].append(f"{len(missing)} of {len(rows)} image files under {img} (e.g. {missing[0]})")
    return report


def _read_pairs(path: Path) -> list[list[str]]:
    return [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _loadmat(path: Path) -> dict:
    """A MATLAB file as {key: array}: scipy for v5 files, h5py (if installed) for v7.3 / HDF5 files (arrays are
    transposed back to MATLAB's axis order)."""
    import scipy.io

    try:
        return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    except (NotImplementedError, ValueError) as e:
        try:
            import h5py
        except ImportError:
            raise ConversionError(
                f"{path}: a MATLAB v7.3 (HDF5) file; install h5py (`pip install h5py`) to read "
                f"it, or re-save it in MATLAB with save(..., '-v7') ({e})"
            ) from e
        out = {}
        with h5py.File(path, "r") as f:
            for k in f.keys():
                if isinstance(f[k], h5py.Dataset):
                    out[k] = np.asarray(f[k]).T
        return out


def _mat_strings(a) -> list[str]:
    """A MATLAB cell array of strings (as loaded by scipy) as a flat list."""
    return [str(np.asarray(x).ravel()[0]) if np.asarray(x).size else "" for x in np.asarray(a, dtype=object).ravel()]


def _resize_square(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))


def _images_npy(ds: Path, paths: list[Path], size: int) -> str | None:
    """Write ``images.npy`` (N, size, size, 3) uint8 (memory-mapped while writing); None when images are absent."""
    if size <= 0 or not paths or not all(p.is_file() for p in paths[:50]):
        return None
    arr = np.lib.format.open_memmap(
        ds / "images.npy.part", mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3)
    )
    bad = []
    for i, p in enumerate(paths):
        try:
            arr[i] = _resize_square(p, size)
        except (OSError, ValueError, SyntaxError):  # a missing or unreadable file stays black
            bad.append(str(p))
        if (i + 1) % 1000 == 0:
            sys.stderr.write(f"\r  images.npy: {i + 1:,} / {len(paths):,}")
    arr.flush()
    del arr
    os.replace(ds / "images.npy.part", ds / "images.npy")
    if bad:
        (ds / "images_npy_unreadable.txt").write_text("".join(f"{b}\n" for b in bad))
        sys.stderr.write(
            f"\n  images.npy: {len(bad)} unreadable images left black (listed in {ds / 'images_npy_unreadable.txt'})\n"
        )
    return str(ds / "images.npy")


def _write_crossmodal(ds: Path, labels: np.ndarray, bow: np.ndarray, label_names, vocab, extra: dict) -> None:
    np.save(ds / "labels.npy", labels.astype(np.uint8))
    np.save(ds / "tags_bow.npy", (bow > 0).astype(np.uint8))
    meta_path = ds / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta.update({"label_names": list(label_names), "vocab": list(vocab), **extra})
    meta_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")


# --------------------------------------------------------------------------------------------------------------
# revisited Oxford / Paris


def _revisited(ds: Path, **_) -> dict:
    name = ds.name
    pkl = _search(ds, f"gnd_{name}.pkl", what="the revisitop ground truth")
    if pkl.parent != ds:
        shutil.copy2(pkl, ds / pkl.name)
    cfg = safe_pickle.load(ds / pkl.name)
    for k in ("imlist", "qimlist", "gnd"):
        if k not in cfg:
            raise ConversionError(f"{pkl}: not a revisitop ground-truth file (no {k!r} key)")
    jpg = ds / "jpg"
    jpg.mkdir(exist_ok=True)
    raw = ds / "raw"
    moved = 0
    if raw.is_dir():  # the archives hold <landmark>/<file>.jpg: flatten
        for p in raw.rglob("*.jpg"):
            t = jpg / p.name
            if not t.exists():
                os.replace(p, t)
                moved += 1
    for p in ds.joinpath("downloads").glob(f"{name}_*.mat"):  # optional published descriptors
        if not (ds / p.name).exists():
            shutil.copy2(p, ds / p.name)
    need = list(cfg["imlist"]) + list(cfg["qimlist"])
    missing = [n for n in need if not (jpg / f"{n}.jpg").is_file()]
    meta = {
        "name": name,
        "converter_version": CONVERTER_VERSION,
        "n_database": len(cfg["imlist"]),
        "n_queries": len(cfg["qimlist"]),
        "images_missing": len(missing),
        "layout": "revisitop",
    }
    (ds / "meta.json").write_text(json.dumps(meta, indent=1))
    rep = {"n": len(cfg["imlist"]), "queries": len(cfg["qimlist"]), "moved": moved, "missing": []}
    if missing:
        rep["missing"].append(f"{len(missing)} of {len(need)} images under {jpg} (e.g. {missing[0]}.jpg)")
    return rep


# --------------------------------------------------------------------------------------------------------------
# fine-grained classification sets


def _cub200(ds: Path, **_) -> dict:
    images_txt = _search(ds, "images.txt", what="CUB_200_2011/images.txt")
    base = images_txt.parent
    paths = {i: p for i, p in _read_pairs(images_txt)}
    labels = {i: int(c) - 1 for i, c in _read_pairs(base / "image_class_labels.txt")}
    train = {i: t == "1" for i, t in _read_pairs(base / "train_test_split.txt")}
    classes = [c.split(".", 1)[-1] for _, c in sorted(_read_pairs(base / "classes.txt"), key=lambda r: int(r[0]))]
    boxes = (
        {r[0]: " ".join(r[1:]) for r in _read_pairs(base / "bounding_boxes.txt")}
        if (base / "bounding_boxes.txt").is_file()
        else {}
    )
    _adopt_images(ds, base / "images" if (base / "images").is_dir() else None)
    rows = []
    for i in sorted(paths, key=int):
        r = {"path": paths[i], "label": labels[i], "split": "train" if train[i] else "test"}
        if boxes:
            r["bbox"] = boxes.get(i, "")
        rows.append(r)
    return _write_index(ds, rows, classes, meta={"split": "official train_test_split.txt"})


def _stanford_dogs(ds: Path, **_) -> dict:
    rows, folders = [], {}
    for split in ("train", "test"):
        m = _loadmat(_search(ds, f"{split}_list.mat", what="lists.tar"))
        files = _mat_strings(m["file_list"])
        labs = np.asarray(m["labels"]).ravel().astype(int) - 1
        for f, y in zip(files, labs):
            folders.setdefault(int(y), f.split("/")[0])
            rows.append({"path": f, "label": int(y), "split": split})
    classes = [folders[k].split("-", 1)[-1] for k in sorted(folders)]
    img = _search(ds, "Images", required=False)
    _adopt_images(ds, img if img is not None and img.is_dir() else None)
    return _write_index(ds, rows, classes, meta={"wnids": [folders[k].split("-", 1)[0] for k in sorted(folders)]})


def _fgvc_aircraft(ds: Path, **_) -> dict:
    variants = _search(ds, "variants.txt", what="fgvc-aircraft-2013b/data/variants.txt")
    data = variants.parent
    classes = [ln.strip() for ln in variants.read_text().splitlines() if ln.strip()]
    makers = (
        [ln.strip() for ln in (data / "manufacturers.txt").read_text().splitlines() if ln.strip()]
        if (data / "manufacturers.txt").is_file()
        else None
    )
    rows = []
    for split in ("train", "val", "test"):
        f = data / f"images_variant_{split}.txt"
        if not f.is_file():
            raise ConversionError(f"{data}: no {f.name}")
        mk = {}
        if makers is not None and (data / f"images_manufacturer_{split}.txt").is_file():
            for ln in (data / f"images_manufacturer_{split}.txt").read_text().splitlines():
                if ln.strip():
                    i, name = ln.strip().split(" ", 1)
                    mk[i] = makers.index(name)
        for ln in f.read_text().splitlines():
            if not ln.strip():
                continue
            i, name = ln.strip().split(" ", 1)  # variant names contain spaces and slashes
            r = {"path": f"{i}.jpg", "label": classes.index(name), "split": split}
            if mk:
                r["coarse"] = mk[i]
            rows.append(r)
    _adopt_images(ds, data / "images" if (data / "images").is_dir() else None)
    return _write_index(
        ds,
        rows,
        classes,
        coarse=makers if makers and any("coarse" in r for r in rows) else None,
        meta={"coarse": "manufacturer", "note": "images keep the 20-px copyright banner at the bottom"},
    )


def _flowers102(ds: Path, **_) -> dict:
    lab = np.asarray(_loadmat(_search(ds, "imagelabels.mat"))["labels"]).ravel().astype(int) - 1
    sets = _loadmat(_search(ds, "setid.mat"))
    split = np.full(len(lab), "", dtype=object)
    for key, s in (("trnid", "train"), ("valid", "val"), ("tstid", "test")):
        split[np.asarray(sets[key]).ravel().astype(int) - 1] = s
    jpg = _search(ds, "jpg", required=False)
    _adopt_images(ds, jpg if jpg is not None and jpg.is_dir() else None)
    rows = [
        {"path": f"image_{i + 1:05d}.jpg", "label": int(lab[i]), "split": split[i] or "train"} for i in range(len(lab))
    ]
    classes = [f"class_{c + 1:03d}" for c in range(int(lab.max()) + 1)]
    return _write_index(ds, rows, classes, meta={"split": "official setid.mat (trnid / valid / tstid)"})


def _mat_struct_rows(a, fields: tuple[str, ...], path: Path) -> list[dict]:
    """A MATLAB struct array (as loaded by scipy: (1, N) records of 1×1 cells) as a list of {field: value}."""
    a = np.asarray(a).ravel()
    names = a.dtype.names or ()
    miss = [f for f in fields if f not in names]
    if miss:
        raise ConversionError(f"{path}: the 'annotations' struct has no field(s) {miss} (fields: {list(names)})")
    return [{f: np.asarray(r[f]).ravel()[0] for f in fields} for r in a]


def _stanford_cars(ds: Path, **_) -> dict:
    meta = _loadmat(_search(ds, "cars_meta.mat", what="car_devkit.tgz: devkit/cars_meta.mat"))
    classes = _mat_strings(meta["class_names"])
    box = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")
    rows, missing = [], []
    for split, mat, folder in (
        ("train", "cars_train_annos.mat", "cars_train"),
        ("test", "cars_test_annos_withlabels.mat", "cars_test"),
    ):
        path = _search(ds, mat, required=False)
        if path is None:
            missing.append(f"{mat} (the {split} labels)")
            continue
        for k, r in enumerate(_mat_struct_rows(_loadmat(path)["annotations"], (*box, "class", "fname"), path)):
            y = int(r["class"]) - 1
            if not 0 <= y < len(classes):
                raise ConversionError(
                    f"{path}: annotation {k + 1} has class {int(r['class'])}, not in 1..{len(classes)}"
                )
            x1, y1, x2, y2 = (float(r[b]) for b in box)
            rows.append(
                {
                    "path": f"{folder}/{r['fname']}",
                    "label": y,
                    "split": split,
                    "bbox": f"{x1:g} {y1:g} {x2 - x1 + 1:g} {y2 - y1 + 1:g}",
                }
            )
        src = _search(ds, folder, required=False)
        out = ds / "images" / folder
        if src is not None and src.is_dir() and src.resolve() != out.resolve() and not out.exists():
            out.parent.mkdir(exist_ok=True)
            os.replace(src, out)
    if not rows:
        raise ConversionError(f"{ds}: neither cars_train_annos.mat nor cars_test_annos_withlabels.mat found")
    rep = _write_index(ds, rows, classes, meta={"split": "official (devkit train annotations / test with labels)"})
    rep["missing"] += missing
    return rep


def _text(v):
    return v.decode("latin1") if isinstance(v, bytes) else v


def _cifar_pickle(path: Path) -> dict:
    """A CIFAR python batch (a Python 2 pickle) with str keys and strings, whichever way it was pickled."""
    d = safe_pickle.load(path, encoding="latin1")
    if not isinstance(d, dict):
        raise ConversionError(f"{path}: not a CIFAR batch (a {type(d).__name__}, expected a dict)")
    return {_text(k): [_text(x) for x in v] if isinstance(v, list) else v for k, v in d.items()}


def _cifar100(ds: Path, **_) -> dict:
    from PIL import Image

    meta_p = _search(ds, "meta", what="cifar-100-python/meta")
    base = meta_p.parent
    meta = _cifar_pickle(meta_p)
    for k in ("fine_label_names", "coarse_label_names"):
        if k not in meta:
            raise ConversionError(f"{meta_p}: not the CIFAR-100 meta file (no {k!r} key)")
    classes, coarse = list(meta["fine_label_names"]), list(meta["coarse_label_names"])
    rows = []
    for split in ("train", "test"):
        path = base / split
        if not path.is_file():
            raise ConversionError(f"{base}: no {split} batch (cifar-100-python/{split})")
        b = _cifar_pickle(path)
        for k in ("data", "fine_labels", "coarse_labels", "filenames"):
            if k not in b:
                raise ConversionError(f"{path}: not a CIFAR-100 batch (no {k!r} key)")
        x = np.asarray(b["data"], dtype=np.uint8)
        n = len(b["fine_labels"])
        if x.shape != (n, 3072):
            raise ConversionError(f"{path}: data has shape {x.shape}, expected ({n}, 3072) for {n} labels")
        imgs = x.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)
        out = ds / "images" / split
        out.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            name = f"{i:05d}_{Path(str(b['filenames'][i])).stem}.png"
            if not (out / name).is_file():
                Image.fromarray(imgs[i]).save(out / name)
            rows.append(
                {
                    "path": f"{split}/{name}",
                    "label": int(b["fine_labels"][i]),
                    "split": split,
                    "coarse": int(b["coarse_labels"][i]),
                }
            )
    return _write_index(ds, rows, classes, coarse=coarse, meta={"split": "official train / test batches"})


# --------------------------------------------------------------------------------------------------------------
# MIRFlickr-25K and NUS-WIDE (multi-label, tags)


def _orient_images(a: np.ndarray, n: int) -> np.ndarray:
    """(N, H, W, 3) uint8 from a MATLAB-order image block (N,3,H,W), (H,W,3,N) or (N,H,W,3)."""
    a = np.asarray(a)
    if a.ndim != 4:
        raise ConversionError(f"images: expected a 4-D array, got shape {a.shape}")
    if a.shape[0] == n and a.shape[1] == 3:
        a = a.transpose(0, 2, 3, 1)
    elif a.shape[-1] == n and a.shape[2] == 3:
        a = a.transpose(3, 0, 1, 2)
    elif not (a.shape[0] == n and a.shape[-1] == 3):
        raise ConversionError(f"images: cannot find N={n} and 3 channels in shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def _rows_first(a: np.ndarray, n: int, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ConversionError(f"{what}: expected a 2-D matrix, got shape {a.shape}")
    return a if a.shape[0] == n else a.T


def _mirflickr_mat(ds: Path, n_labels: int) -> dict | None:
    """The processed DCMH / DJSRH .mat files: LAll (N,24), YAll (N,1386), IAll / images."""
    mats = [p for p in ds.rglob("*.mat") if "downloads" not in p.relative_to(ds).parts[:1]]
    if not mats:
        return None
    arrays = {}
    for p in mats:
        for k, v in _loadmat(p).items():
            arrays.setdefault(k.lower(), v)
    if "lall" not in arrays or "yall" not in arrays:
        raise ConversionError(f"{ds}: .mat files found ({', '.join(p.name for p in mats)}) but no LAll / YAll")
    lab = np.asarray(arrays["lall"])
    lab = lab if lab.shape[-1] == n_labels else lab.T
    n = lab.shape[0]
    tags = _rows_first(arrays["yall"], n, "YAll")
    img = arrays.get("iall", arrays.get("images"))
    if img is not None:
        np.save(ds / "images.npy", _orient_images(img, n))
    names = _mat_strings(arrays["fall"]) if "fall" in arrays else [f"{i}" for i in range(n)]
    rows = [
        {"path": names[i], "label": -1, "split": "all", "labels": " ".join(map(str, np.flatnonzero(lab[i])))}
        for i in range(n)
    ]
    rep = _write_index(ds, rows, [f"label{i}" for i in range(lab.shape[1])], meta={"source": "processed .mat"})
    _write_crossmodal(
        ds,
        lab,
        tags,
        [f"label{i}" for i in range(lab.shape[1])],
        [f"tag{i}" for i in range(tags.shape[1])],
        {"source": "processed .mat (LAll / YAll / IAll)"},
    )
    rep["missing"] = [] if img is not None else ["images.npy (no IAll / images matrix in the .mat files)"]
    return rep


def _mirflickr25k(ds: Path, image_size: int = 224, min_tag_count: int = 20, **_) -> dict:
    ann_dir = None
    for p in ds.rglob("*_r1.txt"):  # the annotation folder holds <concept>.txt + <concept>_r1.txt
        if "downloads" not in p.relative_to(ds).parts[:1]:
            ann_dir = p.parent
            break
    if ann_dir is None:
        rep = _mirflickr_mat(ds, 24)
        if rep is None:
            raise ConversionError(
                f"{ds}: neither the MIRFlickr annotation files (<concept>.txt, <concept>_r1.txt) "
                "nor processed .mat files (LAll / YAll) were found; unpack mirflickr25k.zip and "
                "mirflickr25k_annotations_v080.zip under raw/"
            )
        return rep
    concepts = sorted(
        p.stem for p in ann_dir.glob("*.txt") if not p.stem.endswith("_r1") and p.stem.lower() != "readme"
    )
    n_all = 25000
    tags_dir = _search(ds, "tags", required=False)
    im1 = _search(ds, "im1.jpg", required=False)
    img_dir = im1.parent if im1 is not None else None
    if tags_dir is None or not tags_dir.is_dir():
        raise ConversionError(f"{ds}: no meta/tags/ folder (tags<i>.txt) from mirflickr25k.zip")
    n_all = max(n_all, len(list(tags_dir.glob("tags*.txt"))))
    lab = np.zeros((n_all, len(concepts)), np.uint8)
    for c, name in enumerate(concepts):
        ids = [int(x) for x in (ann_dir / f"{name}.txt").read_text().split() if x.strip()]
        lab[np.asarray(ids, int) - 1, c] = 1
    docs = []
    for i in range(1, n_all + 1):
        f = tags_dir / f"tags{i}.txt"
        docs.append(
            [t.strip().lower() for t in f.read_text(encoding="utf-8", errors="replace").splitlines() if t.strip()]
            if f.is_file()
            else []
        )
    counts: dict[str, int] = {}
    for d in docs:
        for t in set(d):
            counts[t] = counts.get(t, 0) + 1
    vocab = sorted(t for t, k in counts.items() if k >= min_tag_count)
    pos = {t: j for j, t in enumerate(vocab)}
    bow = np.zeros((n_all, len(vocab)), np.uint8)
    for i, d in enumerate(docs):
        for t in d:
            if t in pos:
                bow[i, pos[t]] = 1
    keep = np.flatnonzero((lab.sum(1) > 0) & (bow.sum(1) > 0))  # the DCMH protocol (20,015 pairs)
    _adopt_images(ds, img_dir)
    rows = [
        {"path": f"im{i + 1}.jpg", "label": -1, "split": "all", "labels": " ".join(map(str, np.flatnonzero(lab[i])))}
        for i in keep
    ]
    rep = _write_index(
        ds,
        rows,
        concepts,
        captions=[(r, " ".join(docs[i])) for r, i in enumerate(keep)],
        meta={
            "protocol": f"DCMH: tags in >= {min_tag_count} images; pairs with a label and a tag",
            "source_ids": (keep + 1).tolist(),
        },
    )
    _write_crossmodal(ds, lab[keep], bow[keep], concepts, vocab, {"min_tag_count": min_tag_count})
    npy = _images_npy(ds, [ds / "images" / r["path"] for r in rows], image_size)
    if npy is None and image_size > 0:
        rep["missing"].append("images.npy (image files absent)")
    rep.update(vocab=len(vocab), labels=len(concepts))
    return rep


def _nuswide(ds: Path, image_size: int = 128, n_labels: int = 21, **_) -> dict:
    lab_dir = None
    for p in ds.rglob("Labels_*.txt"):
        if "downloads" not in p.relative_to(ds).parts[:1] and "AllLabels" in p.parts:
            lab_dir = p.parent
            break
    if lab_dir is None:
        p = _search(ds, "Labels_*.txt", what="Groundtruth/AllLabels/Labels_<concept>.txt")
        lab_dir = p.parent
    clist = _search(ds, "Concepts81.txt", required=False)
    concepts = (
        [ln.strip() for ln in clist.read_text().splitlines() if ln.strip()]
        if clist is not None
        else sorted(p.stem[len("Labels_") :] for p in lab_dir.glob("Labels_*.txt"))
    )
    cols = [np.loadtxt(lab_dir / f"Labels_{c}.txt", dtype=np.uint8, ndmin=1) for c in concepts]
    lab81 = np.stack(cols, 1)
    top = np.sort(np.argsort(-lab81.sum(0), kind="stable")[:n_labels])
    lab = lab81[:, top]
    names = [concepts[i] for i in top]
    tags_file = _search(ds, "AllTags1k.txt", what="NUS_WID_Tags/AllTags1k.txt")
    import pandas as pd

    bow = pd.read_csv(tags_file, sep=r"\s+", header=None, dtype=np.uint8, engine="c").to_numpy()
    tl = _search(ds, "TagList1k.txt", required=False)
    vocab = (
        [ln.strip() for ln in tl.read_text().splitlines() if ln.strip()]
        if tl is not None
        else [f"tag{i}" for i in range(bow.shape[1])]
    )
    il = _search(ds, "Imagelist.txt", required=False) or _search(ds, "ImageList.txt", what="ImageList/Imagelist.txt")
    paths = [
        "/".join(ln.strip().replace("\\", "/").split("/")[-2:]) for ln in il.read_text().splitlines() if ln.strip()
    ]
    if not (len(paths) == len(lab) == len(bow)):
        raise ConversionError(f"{ds}: {len(paths)} images in {il.name}, {len(lab)} label rows, {len(bow)} tag rows")
    keep = np.flatnonzero(lab.sum(1) > 0)
    img_dir = None
    if paths:
        for k in keep[:20]:
            hit = _search(ds, Path(paths[k]).name, required=False)
            if hit is not None:
                img_dir = hit.parent.parent
                break
    _adopt_images(ds, img_dir)
    rows = [
        {"path": paths[i], "label": -1, "split": "all", "labels": " ".join(map(str, np.flatnonzero(lab[i])))}
        for i in keep
    ]
    rep = _write_index(
        ds,
        rows,
        names,
        meta={
            "protocol": f"{n_labels} most frequent of the 81 concepts; images with at least one of them",
            "concepts81": concepts,
        },
    )
    _write_crossmodal(ds, lab[keep], bow[keep], names, vocab, {"n_labels": n_labels})
    if img_dir is not None:
        _images_npy(ds, [ds / "images" / r["path"] for r in rows], image_size)
    else:
        rep["missing"] = ["the image files (NUS-WIDE's Flickr folder); labels and tags were converted"]
    return rep


# --------------------------------------------------------------------------------------------------------------
# caption sets (Karpathy format)


def _karpathy_rows(ds: Path, d: dict) -> dict:
    rows, caps = [], []
    for im in d["images"]:
        sp = {"restval": "train"}.get(im.get("split", "train"), im.get("split", "train"))
        rel = "/".join(x for x in (im.get("filepath", ""), im["filename"]) if x)
        for s in im.get("sentences", []):
            caps.append((len(rows), s.get("raw") or " ".join(s.get("tokens", []))))
        rows.append({"path": rel, "label": -1, "split": sp})
    return _write_index(ds, rows, [], captions=caps, meta={"split": "Karpathy (restval counted as train)"})


def _flickr30k(ds: Path, **_) -> dict:
    js = _search(ds, "dataset_flickr30k.json", what="caption_datasets.zip (Karpathy split)")
    if js.parent != ds:
        shutil.copy2(js, ds / js.name)
    img = _search(ds, "flickr30k-images", required=False)
    _adopt_images(ds, img if img is not None and img.is_dir() else None)
    return _karpathy_rows(ds, json.loads((ds / js.name).read_text()))


def _coco(ds: Path, **_) -> dict:
    js = _search(ds, "dataset_coco.json", required=False)
    if js is not None:
        if js.parent != ds:
            shutil.copy2(js, ds / js.name)
        d = json.loads((ds / js.name).read_text())
    else:  # official captions_<split>.json → Karpathy-style file
        files = sorted(p for p in ds.rglob("captions_*.json") if "downloads" not in p.relative_to(ds).parts[:1])
        if not files:
            raise ConversionError(f"{ds}: neither dataset_coco.json (Karpathy) nor captions_<split>.json found")
        images = []
        for f in files:
            sub = f.stem[len("captions_") :]  # train2017, val2014, ...
            j = json.loads(f.read_text())
            caps: dict[int, list] = {}
            for a in j["annotations"]:
                caps.setdefault(a["image_id"], []).append({"raw": a["caption"].strip()})
            split = "test" if sub.startswith("val") else "train"
            for im in sorted(j["images"], key=lambda x: x["id"]):
                images.append(
                    {
                        "filepath": sub,
                        "filename": im["file_name"],
                        "cocoid": im["id"],
                        "split": split,
                        "sentences": caps.get(im["id"], []),
                    }
                )
        d = {
            "dataset": "coco",
            "images": images,
            "note": "built from the official captions files: train→train, val→test",
        }
        (ds / "dataset_coco.json").write_text(json.dumps(d))
    for sub in sorted({im.get("filepath", "") for im in d["images"]} - {""}):
        src = _search(ds, sub, required=False)
        if src is not None and src.is_dir() and src.parent != ds / "images":
            (ds / "images").mkdir(exist_ok=True)
            if not (ds / "images" / sub).exists():
                os.replace(src, ds / "images" / sub)
    return _karpathy_rows(ds, d)


# --------------------------------------------------------------------------------------------------------------
# Wikipedia and Pascal Sentence (cross-media, single-label)


def _wiki_text(path: Path) -> str:
    s = path.read_text(encoding="utf-8", errors="replace")
    m = re.search(r"<text>(.*?)</text>", s, flags=re.S)
    body = m.group(1) if m else re.sub(r"<[^>]+>", " ", s)
    return " ".join(body.split())


def _wikipedia(ds: Path, **_) -> dict:
    tr = _search(ds, "trainset_txt_img_cat.list", what="wikipedia_dataset.zip")
    base = tr.parent
    cats = (
        [ln.strip() for ln in (base / "categories.list").read_text().splitlines() if ln.strip()]
        if (base / "categories.list").is_file()
        else None
    )
    rows, caps = [], []
    entries = []
    for split, f in (("train", tr), ("test", base / "testset_txt_img_cat.list")):
        for r in _read_pairs(f):
            entries.append((split, r[0], r[1], int(r[2])))
    if cats is None:
        cats = [f"category{c}" for c in range(1, max(e[3] for e in entries) + 1)]
    img = base / "images"
    _adopt_images(ds, img if img.is_dir() else None)
    texts = base / "texts"
    for split, tid, iid, c in entries:
        rows.append({"path": f"{cats[c - 1]}/{iid}.jpg", "label": c - 1, "split": split})
        t = texts / f"{tid}.xml"
        caps.append((len(rows) - 1, _wiki_text(t) if t.is_file() else ""))
    # images sit in images/<category>/<id>.jpg; fall back to a search when a release differs
    missing = [r for r in rows if not (ds / "images" / r["path"]).is_file()]
    if missing and (ds / "images").is_dir():
        where = {p.stem: p.relative_to(ds / "images").as_posix() for p in (ds / "images").rglob("*.jpg")}
        for r in missing:
            r["path"] = where.get(Path(r["path"]).stem, r["path"])
    return _write_index(ds, rows, cats, captions=caps, meta={"split": "official trainset / testset lists"})


def _pascal_sentence(ds: Path, **_) -> dict:
    sent = _search(ds, "sentence", what="the sentence/<class>/*.txt folder")
    base = sent.parent
    img = base / "dataset"
    if not img.is_dir() and not (ds / "images").is_dir():
        raise ConversionError(f"{base}: no dataset/<class>/*.jpg folder next to sentence/")
    _adopt_images(ds, img if img.is_dir() else None)
    classes = sorted(p.name for p in (ds / "images").iterdir() if p.is_dir())
    rows, caps = [], []
    for c, name in enumerate(classes):
        files = sorted(p for p in (ds / "images" / name).iterdir() if p.suffix.lower() in IMAGE_EXTS)
        n = len(files)
        n_tr, n_va = (40, 5) if n == 50 else (round(0.8 * n), round(0.1 * n))
        for k, p in enumerate(files):
            split = "train" if k < n_tr else "val" if k < n_tr + n_va else "test"
            rows.append({"path": f"{name}/{p.name}", "label": c, "split": split})
            t = sent / name / f"{p.stem}.txt"
            for ln in t.read_text(encoding="utf-8", errors="replace").splitlines() if t.is_file() else []:
                if ln.strip():
                    caps.append((len(rows) - 1, ln.strip()))
    return _write_index(
        ds, rows, classes, captions=caps, meta={"split": "per class, sorted by file name: 40 train / 5 val / 5 test"}
    )


VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def _voc2007(ds: Path, **_) -> dict:
    """VOCdevkit/VOC2007 (both tars unpack into it): labels from Annotations/*.xml (every object's class, difficult
    ones included), split from ImageSets/Main/{trainval,test}.txt; captions from an optional tags/<id>.txt folder."""
    main = _search(ds, "Main", what="VOCtrainval_06-Nov-2007.tar")  # ImageSets/Main (Layout/, Segmentation/ differ)
    sets, base = main / "trainval.txt", main.parent.parent  # base: VOCdevkit/VOC2007
    ids = []
    for split, f, tar in (("train", sets, "VOCtrainval"), ("test", main / "test.txt", "VOCtest")):
        if not f.is_file():
            raise ConversionError(f"{f}: missing; unpack {tar}_06-Nov-2007.tar under {ds / 'raw'}")
        ids += [(ln.strip(), split) for ln in f.read_text().splitlines() if ln.strip()]
    _adopt_images(ds, base / "JPEGImages" if (base / "JPEGImages").is_dir() else None)
    tags = _search(ds, "tags", required=False)
    rows, caps = [], []
    for iid, split in ids:
        xml = base / "Annotations" / f"{iid}.xml"
        if not xml.is_file():
            raise ConversionError(f"{xml}: missing (image {iid} of the {split} list)")
        names = re.findall(r"<object>.*?<name>\s*([^<\s]+)\s*</name>", xml.read_text(), flags=re.S)
        bad = sorted(set(names) - set(VOC_CLASSES))
        if bad:
            raise ConversionError(f"{xml}: unknown class {bad[0]!r}; expected one of the 20 VOC classes")
        lab = sorted({VOC_CLASSES.index(n) for n in names})
        rows.append({"path": f"{iid}.jpg", "label": -1, "split": split, "labels": " ".join(map(str, lab))})
        t = tags / f"{iid}.txt" if tags is not None else None
        if t is not None and t.is_file():
            caps.append((len(rows) - 1, " ".join(ln.strip() for ln in t.read_text().splitlines() if ln.strip())))
    return _write_index(
        ds,
        rows,
        list(VOC_CLASSES),
        captions=caps if tags is not None else None,
        meta={"split": "trainval → train, test → test (ImageSets/Main)", "tags": tags is not None},
    )


# --------------------------------------------------------------------------------------------------------------
# folders used as they are


def _as_is(required: tuple[str, ...]):
    def conv(ds: Path, **_) -> dict:
        missing = [r for r in required if not (ds / r).exists()]
        return {"n": 0, "missing": [f"{ds / r}" for r in missing]}

    return conv


def _copy_downloads(ds: Path, **_) -> dict:
    """Files used as released: linked from downloads/ into the dataset folder."""
    got = []
    for p in sorted((ds / "downloads").glob("*")):
        if (
            p.is_file()
            and p.name not in ("SHA256SUMS", "UNPINNED.sha256")
            and not p.name.endswith((".part", ".corrupt"))
        ):
            if not (ds / p.name).exists():
                try:
                    os.link(p, ds / p.name)
                except OSError:
                    shutil.copy2(p, ds / p.name)
            got.append(p.name)
    return {"n": len(got), "missing": [] if got else [f"no file in {ds / 'downloads'}"]}


CONVERTERS = {
    "roxford5k": _revisited,
    "rparis6k": _revisited,
    "cub200": _cub200,
    "stanford_dogs": _stanford_dogs,
    "fgvc_aircraft": _fgvc_aircraft,
    "flowers102": _flowers102,
    "stanford_cars": _stanford_cars,
    "cifar100": _cifar100,
    "mirflickr25k": _mirflickr25k,
    "nuswide": _nuswide,
    "flickr30k": _flickr30k,
    "coco": _coco,
    "wikipedia": _wikipedia,
    "pascal_sentence": _pascal_sentence,
    "voc2007": _voc2007,
    "mediaeval2017_div": _as_is(("devset",)),
    "pascal2019_targets": _as_is(("train", "test")),
    "cirtorch_networks": _copy_downloads,
}


def convert(name: str, root, **options) -> dict:
    """Convert ``<root>/<name>/`` in place (module docstring). ``options``: ``image_size`` (MIRFlickr / NUS-WIDE
    ``images.npy`` side; 0 = none), ``min_tag_count`` (MIRFlickr), ``n_labels`` (NUS-WIDE)."""
    if name not in CONVERTERS:
        raise ValueError(f"name: no converter for {name!r}; known: {', '.join(sorted(CONVERTERS))}")
    ds = Path(root) / name
    if not ds.is_dir():
        raise ConversionError(f"{ds}: no such folder; run `python -m data_scripts fetch {name} --root {root}`")
    return CONVERTERS[name](ds, **{k: v for k, v in options.items() if v is not None})


# --------------------------------------------------------------------------------------------------------------
# caption sets given out by request form: Flickr8K and CUHK-PEDES (notebook 04's full profile)


def _flickr8k_from_text(ds: Path, token: Path) -> dict:
    """Karpathy-format ``dataset_flickr8k.json`` from the official ``Flickr8k.token.txt`` (``<file>#<k>\\t<caption>``)
    and the split lists ``Flickr_8k.{train,dev,test}Images.txt`` (dev → ``val``); images in no list are left out."""
    caps: dict[str, list[dict]] = {}
    for n, line in enumerate(token.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        key, sep, cap = line.partition("\t")
        if not sep or "#" not in key:
            raise ConversionError(f"{token}: line {n}: expected '<image>.jpg#<k><TAB><caption>', got {line[:80]!r}")
        caps.setdefault(key.rsplit("#", 1)[0], []).append({"raw": cap.strip()})
    images = []
    for part, split in (("train", "train"), ("dev", "val"), ("test", "test")):
        lst = _search(ds, f"Flickr_8k.{part}Images.txt", what="Flickr8k_text.zip")
        for n, fn in enumerate((x.strip() for x in lst.read_text().splitlines()), 1):
            if not fn:
                continue
            if fn not in caps:
                raise ConversionError(f"{lst}: line {n}: image {fn!r} has no caption in {token.name}")
            images.append({"filename": fn, "split": split, "sentences": caps[fn]})
    return {"dataset": "flickr8k", "images": images, "note": "built from Flickr8k.token.txt and the split lists"}


def _flickr8k(ds: Path, **_) -> dict:
    js = _search(ds, "dataset_flickr8k.json", required=False)
    if js is not None:
        if js.parent != ds:
            shutil.copy2(js, ds / js.name)
        d = json.loads((ds / js.name).read_text())
    else:
        token = _search(ds, "Flickr8k.token.txt", what="caption_datasets.zip (Karpathy split) or Flickr8k_text.zip")
        d = _flickr8k_from_text(ds, token)
        (ds / "dataset_flickr8k.json").write_text(json.dumps(d))
    img = next(
        (p for p in (_search(ds, n, required=False) for n in ("Flicker8k_Dataset", "Flickr8k_Dataset")) if p), None
    )
    _adopt_images(ds, img if img is not None and img.is_dir() else None)
    return _karpathy_rows(ds, d)


def _cuhk_pedes(ds: Path, **_) -> dict:
    """``reid_raw.json`` (a list of ``{split, id, file_path, captions}``, one per image) → Karpathy format with the
    person ``id`` kept per image; ``imgs/`` becomes ``images/``."""
    raw = _search(ds, "reid_raw.json", what="CUHK-PEDES.zip")
    try:
        items = json.loads(raw.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConversionError(f"{raw}: not valid JSON ({e})") from None
    if not isinstance(items, list):
        raise ConversionError(f"{raw}: expected a list of images, got {type(items).__name__}")
    images, ids = [], {}
    for n, it in enumerate(items):
        miss = [k for k in ("split", "id", "file_path", "captions") if k not in it]
        if miss or it["split"] not in ("train", "val", "test"):
            raise ConversionError(
                f"{raw}: entry {n}: expected keys split (train/val/test), id, file_path, captions; got "
                f"{ {k: it.get(k) for k in ('split', 'id', 'file_path')} }"
            )
        fp = str(it["file_path"]).replace("\\", "/")
        images.append(
            {
                "filepath": fp.rsplit("/", 1)[0] if "/" in fp else "",
                "filename": fp.rsplit("/", 1)[-1],
                "split": it["split"],
                "id": int(it["id"]),
                "sentences": [{"raw": " ".join(str(c).split())} for c in it["captions"]],
            }
        )
        ids.setdefault(int(it["id"]), len(ids))
    d = {"dataset": "cuhk_pedes", "images": images, "note": "from reid_raw.json; 'id' is the person identity"}
    (ds / "dataset_cuhk_pedes.json").write_text(json.dumps(d))
    img = _search(ds, "imgs", required=False)
    _adopt_images(ds, img if img is not None and img.is_dir() else None)
    rows, caps = [], []
    for im in images:
        for s in im["sentences"]:
            caps.append((len(rows), s["raw"]))
        rel = "/".join(x for x in (im["filepath"], im["filename"]) if x)
        rows.append({"path": rel, "label": ids[im["id"]], "split": im["split"]})
    names = [str(k) for k in sorted(ids, key=ids.get)]
    rep = _write_index(ds, rows, names, captions=caps, meta={"split": "the official split of reid_raw.json"})
    if img is None and not (ds / "images").is_dir():
        rep.setdefault("missing", []).append("imgs/ (the images of CUHK-PEDES.zip); the captions were converted")
    return rep


CONVERTERS.update({"flickr8k": _flickr8k, "cuhk_pedes": _cuhk_pedes})


# --------------------------------------------------------------------------------------------------------------
# retrieval-SfM-120k (notebook 02's full profile: fine-tuning by the cirtorch recipe)


def _sfm120k(ds: Path, **_) -> dict:
    """``retrieval-SfM-120k.pkl`` (+ the optional ``-whiten.pkl``) copied into ``ds``; the unpacked image tree
    (``<cid[-2:]>/<cid[-4:-2]>/<cid[-6:-4]>/<cid>``, found under ``raw/`` by the first image's relative path)
    moved to ``ds/ims``. Checked: every image of the train and val splits is there."""
    from xmr_lib.data import sfm120k

    for fname, required in ((sfm120k.PICKLE, True), (sfm120k.WHITEN_PICKLE, False)):
        pkl = _search(ds, fname, required=required, what="cirtorch's db file")
        if pkl is not None and pkl.parent != ds:
            shutil.copy2(pkl, ds / fname)
    cfg = safe_pickle.load(ds / sfm120k.PICKLE, encoding="latin1")
    if not isinstance(cfg, dict) or any(k not in cfg for k in sfm120k.SPLITS):
        raise ConversionError(f"{ds / sfm120k.PICKLE}: not cirtorch's SfM-120k db file (no 'train' / 'val' keys)")
    cids = [c for k in sfm120k.SPLITS for c in cfg[k]["cids"]]
    rel = sfm120k.cid_path(cids[0], ".")
    ims = ds / "ims"
    if not (ims / rel).is_file():
        raw = ds / "raw"
        roots = [raw / "ims", raw, *sorted(raw.glob("*/ims")), *sorted(raw.glob("*"))] if raw.is_dir() else []
        src = next((r for r in roots if r.is_dir() and (r / rel).is_file()), None)
        if src is not None:
            ims.mkdir(exist_ok=True)
            for p in src.iterdir():  # the two-character folders of the cid layout
                if p.is_dir() and len(p.name) == 2 and not (ims / p.name).exists():
                    os.replace(p, ims / p.name)
    ims.mkdir(exist_ok=True)
    missing = [c for c in cids if not (sfm120k.cid_path(c, ims)).is_file()]
    meta = {
        "name": ds.name,
        "converter_version": CONVERTER_VERSION,
        **{f"n_{k}": len(cfg[k]["cids"]) for k in sfm120k.SPLITS},
        **{f"n_{k}_pairs": len(cfg[k]["qidxs"]) for k in sfm120k.SPLITS},
        "images_missing": len(missing),
        "layout": "cirtorch",
    }
    (ds / "meta.json").write_text(json.dumps(meta, indent=1))
    rep = {"n": len(cids), "missing": []}
    if missing:
        rep["missing"].append(
            f"{len(missing)} of {len(cids)} images under {ims} (e.g. {sfm120k.cid_path(missing[0], ims)})"
        )
    return rep


CONVERTERS["retrieval_sfm120k"] = _sfm120k
