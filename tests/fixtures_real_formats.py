"""Tiny fixtures in the real datasets' published formats (written at test time, never downloaded), shared by
``tests/test_data_scripts.py`` (the converters) and ``tests/test_full_data_paths.py`` (the notebooks' full-profile
loaders on the converted layout). Each builder writes what the dataset's archives unpack to, under ``raw``."""

from __future__ import annotations

import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def jpg(path: Path, value: int = 100, size=(12, 9)) -> None:
    """A flat-colour JPEG of ``size`` = (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def tgz(src: Path, arc: Path) -> Path:
    with tarfile.open(arc, "w:gz") as t:
        t.add(src, arcname=src.name)
    return arc


def cub_fixture(base: Path, n_classes: int = 2, per_class: int = 3, n_train: int = 2) -> Path:
    """CUB_200_2011/ with ``n_classes`` × ``per_class`` images (the first ``n_train`` of each class train)."""
    cub = base / "CUB_200_2011"
    names = ["Black_footed_Albatross", "Laysan_Albatross", "Sooty_Albatross", "Groove_billed_Ani"]
    classes = [f"{c + 1:03d}.{names[c] if c < len(names) else f'Bird_{c}'}" for c in range(n_classes)]
    lines = {"images": [], "labels": [], "split": [], "boxes": []}
    k = 0
    for c, cname in enumerate(classes):
        for j in range(per_class):
            k += 1
            rel = f"{cname}/{cname.split('.')[1]}_{j:04d}_{k}.jpg"
            jpg(cub / "images" / rel, (40 * k) % 256)
            lines["images"].append(f"{k} {rel}")
            lines["labels"].append(f"{k} {c + 1}")
            lines["split"].append(f"{k} {1 if j < n_train else 0}")
            lines["boxes"].append(f"{k} 1.0 2.0 5.0 4.0")
    (cub / "images.txt").write_text("\n".join(lines["images"]) + "\n")
    (cub / "image_class_labels.txt").write_text("\n".join(lines["labels"]) + "\n")
    (cub / "train_test_split.txt").write_text("\n".join(lines["split"]) + "\n")
    (cub / "bounding_boxes.txt").write_text("\n".join(lines["boxes"]) + "\n")
    (cub / "classes.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    return cub


def mirflickr_raw(base: Path, n: int = 6) -> None:
    """mirflickr/ (im<i>.jpg, meta/tags/tags<i>.txt) and mirflickr25k_annotations_v080/ with 3 concepts."""
    mf = base / "mirflickr"
    ann = base / "mirflickr25k_annotations_v080"
    ann.mkdir(parents=True)
    concepts = ["animals", "sky", "water"]
    members = {"animals": [1, 2], "sky": [2, 3, 4], "water": [6]}
    for c in concepts:
        (ann / f"{c}.txt").write_text("".join(f"{i}\n" for i in members[c]))
        (ann / f"{c}_r1.txt").write_text("".join(f"{i}\n" for i in members[c][:1]))
    (ann / "README.txt").write_text("annotations\n")
    tags = {1: ["dog", "cute"], 2: ["dog", "sky"], 3: ["sky", "blue"], 4: [], 5: ["sky"], 6: ["lake", "blue"]}
    for i in range(1, n + 1):
        jpg(mf / f"im{i}.jpg", 20 * i, size=(16, 10))
        (mf / "meta" / "tags").mkdir(parents=True, exist_ok=True)
        (mf / "meta" / "tags" / f"tags{i}.txt").write_text("".join(f"{t}\n" for t in tags[i]))


def nuswide_raw(raw: Path) -> None:
    """ConceptsList/, Groundtruth/AllLabels/, NUS_WID_Tags/, ImageList/ and Flickr/<concept>/ (5 images, 4
    concepts; image 3 has only the rare concept)."""
    concepts = ["animal", "sky", "water", "rare"]
    lab = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0]])
    (raw / "ConceptsList").mkdir(parents=True)
    (raw / "ConceptsList" / "Concepts81.txt").write_text("\n".join(concepts) + "\n")
    (raw / "Groundtruth" / "AllLabels").mkdir(parents=True)
    for c, name in enumerate(concepts):
        (raw / "Groundtruth" / "AllLabels" / f"Labels_{name}.txt").write_text("".join(f"{v}\n" for v in lab[:, c]))
    (raw / "NUS_WID_Tags").mkdir()
    tags = np.eye(5, 3, dtype=int)
    (raw / "NUS_WID_Tags" / "AllTags1k.txt").write_text("".join(" ".join(map(str, r)) + " \n" for r in tags))
    (raw / "NUS_WID_Tags" / "TagList1k.txt").write_text("cat\nblue\nsea\n")
    (raw / "ImageList").mkdir()
    paths = [f"C:\\ImageData\\Flickr\\{concepts[int(np.argmax(r))]}\\{k:04d}_{k}.jpg" for k, r in enumerate(lab)]
    (raw / "ImageList" / "Imagelist.txt").write_text("\n".join(paths) + "\n")
    for p in paths:
        jpg(raw / "Flickr" / p.split("\\")[-2] / p.split("\\")[-1])


def flickr30k_raw(raw: Path, splits=("train", "restval", "val", "test", "test"), with_images: bool = True) -> None:
    """flickr30k-images/<n>.jpg and Karpathy's dataset_flickr30k.json, one image per entry of ``splits``."""
    imgs = []
    for k, split in enumerate(splits):
        fn = f"{1000 + k}.jpg"
        if with_images:
            jpg(raw / "flickr30k-images" / fn, (30 * k) % 256)
        imgs.append(
            {
                "filename": fn,
                "split": split,
                "imgid": k,
                "sentences": [{"raw": f"image {k} sentence {j}.", "tokens": ["image"]} for j in range(5)],
            }
        )
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "dataset_flickr30k.json").write_text(json.dumps({"dataset": "flickr30k", "images": imgs}))


def coco_official_raw(raw: Path) -> None:
    """train2017/ (2 images), val2017/ (1 image) and annotations/captions_<split>.json, 2 captions each."""
    ann = raw / "annotations"
    ann.mkdir(parents=True)
    for sub, ids in (("train2017", [9, 25]), ("val2017", [139])):
        for i in ids:
            jpg(raw / sub / f"{i:012d}.jpg")
        j = {
            "images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 12, "height": 9} for i in ids],
            "annotations": [
                {"id": 100 * i + k, "image_id": i, "caption": f" A photo {i} #{k}. "} for i in ids for k in range(2)
            ],
        }
        (ann / f"captions_{sub}.json").write_text(json.dumps(j))


def stanford_dogs_raw(raw: Path, split: dict | None = None) -> None:
    """Images/<wnid-name>/<file>.jpg and lists' train_list.mat / test_list.mat (MATLAB cell arrays)."""
    import scipy.io

    folders = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]
    split = split or {
        "train": [(0, "n02085620_5927.jpg"), (1, "n02085782_2.jpg")],
        "test": [(0, "n02085620_10074.jpg")],
    }
    raw.mkdir(parents=True, exist_ok=True)
    for s, items in split.items():
        files = np.empty((len(items), 1), dtype=object)
        for k, (c, fn) in enumerate(items):
            files[k, 0] = np.array([f"{folders[c]}/{fn}"])
            jpg(raw / "Images" / folders[c] / fn)
        scipy.io.savemat(
            raw / f"{s}_list.mat",
            {
                "file_list": files,
                "annotation_list": files,
                "labels": np.array([[c + 1] for c, _ in items], dtype=np.uint8),
            },
        )


WIKI_WORDS = {
    "art": "painting museum painter canvas gallery sculpture portrait",
    "biology": "species cell protein genus organism evolution gene",
}


def wikipedia_raw(raw: Path, rows: dict | None = None, categories=("art", "biology")) -> Path:
    """wikipedia_dataset/ with categories.list, {train,test}set_txt_img_cat.list, texts/<id>.xml and
    images/<category>/<id>.jpg. ``rows``: split → [(text id, image id, 1-based category)]."""
    base = raw / "wikipedia_dataset"
    (base / "texts").mkdir(parents=True)
    (base / "categories.list").write_text("".join(f"{c}\n" for c in categories))
    rows = rows or {"train": [("t1", "i1", 1), ("t2", "i2", 2)], "test": [("t3", "i3", 2)]}
    for split, rs in rows.items():
        (base / f"{split}set_txt_img_cat.list").write_text("".join(f"{t}\t{i}\t{c}\n" for t, i, c in rs))
        for t, i, c in rs:
            cat = categories[c - 1]
            jpg(base / "images" / cat / f"{i}.jpg", 60 + 120 * (c - 1))
            words = WIKI_WORDS.get(cat, cat)
            (base / "texts" / f"{t}.xml").write_text(
                f"<document><title>T</title><text>Article {t} &amp; more\n text about {words}.</text></document>"
            )
    return base


def pascal_sentence_raw(raw: Path, classes=("aeroplane", "bird"), per_class: int = 10) -> Path:
    """pascal_sentence/dataset/<class>/<id>.jpg and sentence/<class>/<id>.txt (5 sentences each)."""
    base = raw / "pascal_sentence"
    for c, cls in enumerate(classes):
        for k in range(per_class):
            jpg(base / "dataset" / cls / f"2008_{k:06d}.jpg", 50 + 100 * c)
            (base / "sentence" / cls).mkdir(parents=True, exist_ok=True)
            (base / "sentence" / cls / f"2008_{k:06d}.txt").write_text(
                "".join(f"A {cls} number {k}, sentence {j}.\n" for j in range(5))
            )
    return base


def revisited_raw(ds: Path, name: str, imlist, qimlist, gnd) -> None:
    """``ds`` = ROOT/<name>: raw/<archive folder>/<landmark>/<image>.jpg and raw/gnd_<name>.pkl (revisitop)."""
    raw = ds / "raw"
    for n in list(imlist) + list(qimlist):
        jpg(raw / f"{name}_images" / n.rsplit("_", 1)[0] / f"{n}.jpg", 90, size=(30, 20))
    with open(raw / f"gnd_{name}.pkl", "wb") as f:
        pickle.dump({"imlist": list(imlist), "qimlist": list(qimlist), "gnd": gnd}, f)


def imagenet_targets_dir(src: Path, wnids, n_train: int = 3, n_test: int = 2) -> None:
    """train/<wnid>/*.JPEG and test/<wnid>/*.JPEG, the layout of the CBMI'19 targets (put together by hand)."""
    for split, n in (("train", n_train), ("test", n_test)):
        for c, w in enumerate(wnids):
            for k in range(n):
                jpg(src / split / w / f"{w}_{k}.JPEG", 40 + 60 * c)


def mediaeval_split_dir(base: Path, topics: dict) -> None:
    """A MediaEval 2017 Retrieving Diverse Social Images split folder (``base`` = .../devset): the topics XML,
    xml/<title>.xml (photo metadata), img/<title>/<id>.jpg, gt/rGT/<title> rGT.txt and gt/dGT/<title> dGT.txt.
    ``topics``: title → [(photo id, relevant 0/1, cluster)]."""
    (base / "xml").mkdir(parents=True)
    xml = "".join(f"<topic><number>{k + 1}</number><title>{t}</title></topic>" for k, t in enumerate(topics))
    (base / f"{base.name}_topics.xml").write_text(f"<topics>{xml}</topics>")
    for t, photos in topics.items():
        rows = "".join(
            f'<photo id="{pid}" title="{t} photo {pid}" tags="{t} tag{pid}" description="" rank="{r + 1}"/>'
            for r, (pid, _, _) in enumerate(photos)
        )
        (base / "xml" / f"{t}.xml").write_text(f"<photos>{rows}</photos>")
        for pid, _, _ in photos:
            jpg(base / "img" / t / f"{pid}.jpg", 30 + 7 * int(pid) % 200)
        (base / "gt" / "rGT").mkdir(parents=True, exist_ok=True)
        (base / "gt" / "dGT").mkdir(parents=True, exist_ok=True)
        (base / "gt" / "rGT" / f"{t} rGT.txt").write_text("".join(f"{pid},{rel}\n" for pid, rel, _ in photos))
        (base / "gt" / "dGT" / f"{t} dGT.txt").write_text("".join(f"{pid},{cl}\n" for pid, rel, cl in photos if rel))


def stanford_cars_raw(raw: Path, classes=("AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi R8 Coupe 2012")):
    """devkit/cars_meta.mat + devkit/cars_train_annos.mat (MATLAB struct arrays: bbox_x1, bbox_y1, bbox_x2,
    bbox_y2, class, fname), cars_test_annos_withlabels.mat and cars_train/, cars_test/ jpgs (both numbered from
    00001.jpg, as released). Returns {split: [(fname, 1-based class, (x1, y1, x2, y2))]}."""
    import scipy.io

    names = np.empty((1, len(classes)), dtype=object)
    for i, c in enumerate(classes):
        names[0, i] = np.array([c])
    (raw / "devkit").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(raw / "devkit" / "cars_meta.mat", {"class_names": names})
    ann = {
        "train": [("00001.jpg", 1, (2, 3, 20, 11)), ("00002.jpg", 3, (1, 1, 24, 12)), ("00003.jpg", 2, (5, 2, 9, 8))],
        "test": [("00001.jpg", 2, (3, 3, 12, 10)), ("00002.jpg", 3, (1, 2, 23, 11))],
    }
    fields = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")
    for split, rows in ann.items():
        a = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
        for k, (fn, c, box) in enumerate(rows):
            for f, v in zip(fields[:4], box):
                a[0, k][f] = np.array([[v]], dtype=np.uint8)
            a[0, k]["class"] = np.array([[c]], dtype=np.uint8)
            a[0, k]["fname"] = np.array([fn])
            jpg(raw / f"cars_{split}" / fn, 30 + 50 * c + 7 * k, size=(26, 14))
        mat = raw / "devkit" / "cars_train_annos.mat" if split == "train" else raw / "cars_test_annos_withlabels.mat"
        scipy.io.savemat(mat, {"annotations": a})
    return ann


def cifar100_raw(raw: Path, n_train: int = 6, n_test: int = 4) -> dict:
    """cifar-100-python/{train,test,meta}: the python pickle batches (dicts of 'data' (N, 3072) uint8 rows — 1024
    red, 1024 green, 1024 blue values, row-major 32×32 —, 'fine_labels', 'coarse_labels', 'filenames',
    'batch_label'; meta: 'fine_label_names', 'coarse_label_names'). Returns {split: (data, fine, coarse)}."""
    base = raw / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    fine = [f"class_{i}" for i in range(100)]
    fine[:3] = ["apple", "aquarium_fish", "baby"]
    coarse = [f"super_{i}" for i in range(20)]
    coarse[:3] = ["aquatic_mammals", "fish", "flowers"]
    with open(base / "meta", "wb") as f:
        pickle.dump({"fine_label_names": fine, "coarse_label_names": coarse}, f, protocol=2)
    rng = np.random.default_rng(0)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fl = [int(v) for v in rng.integers(0, 100, n)]
        cl = [int(v) for v in rng.integers(0, 20, n)]
        names = [f"{fine[y]}_s_{i:06d}.png" for i, y in enumerate(fl)]
        batch = {"batch_label": f"{split}ing batch 1 of 1", "data": data, "fine_labels": fl, "coarse_labels": cl}
        with open(base / split, "wb") as f:
            pickle.dump({**batch, "filenames": names}, f, protocol=2)
        out[split] = (data, fl, cl)
    return out


def voc2007_raw(raw: Path, objects: dict | None = None, tags: bool = True) -> Path:
    """VOCdevkit/VOC2007/ as the two VOC 2007 tars unpack: JPEGImages/<id>.jpg, Annotations/<id>.xml (one <object>
    with <name> per object), ImageSets/Main/{trainval,test}.txt (plus a decoy ImageSets/Layout/trainval.txt), and
    Hwang & Grauman's tags as voc2007_tags/tags/<id>.txt. ``objects``: split → {image id: [class names]}."""
    base = raw / "VOCdevkit" / "VOC2007"
    objects = objects or {
        "trainval": {"000005": ["chair", "chair", "person"], "000007": ["car"]},
        "test": {"000001": ["dog", "person"], "000004": ["car", "car"]},
    }
    for d in ("Annotations", "ImageSets/Main", "ImageSets/Layout"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (base / "ImageSets" / "Layout" / "trainval.txt").write_text("000005\n")
    for split, imgs in objects.items():
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in imgs))
        for k, (iid, names) in enumerate(imgs.items()):
            jpg(base / "JPEGImages" / f"{iid}.jpg", 40 + 30 * k, size=(20, 15))
            objs = "".join(
                f"\n\t<object>\n\t\t<name>{n}</name>\n\t\t<pose>Left</pose>\n\t\t<difficult>0</difficult>\n"
                f"\t\t<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>\n\t</object>"
                for n in names
            )
            (base / "Annotations" / f"{iid}.xml").write_text(
                f"<annotation>\n\t<folder>VOC2007</folder>\n\t<filename>{iid}.jpg</filename>{objs}\n</annotation>\n"
            )
            if tags:
                t = raw / "voc2007_tags" / "tags" / f"{iid}.txt"
                t.parent.mkdir(parents=True, exist_ok=True)
                t.write_text("".join(f"{n}\n" for n in dict.fromkeys(names)) + "indoor\n")
    return base


def flickr8k_raw(raw: Path, splits=("train", "train", "dev", "test", "test"), karpathy: bool = False) -> list[str]:
    """What Flickr8k_Dataset.zip and Flickr8k_text.zip unpack to: Flicker8k_Dataset/<id>_<hash>.jpg (the folder's
    name misspelt as published), Flickr8k.token.txt (``<file>#<k>\\t<caption>``, 5 per image) and the split lists
    Flickr_8k.{train,dev,test}Images.txt; with ``karpathy`` Karpathy's dataset_flickr8k.json instead of the text
    files. Returns the image file names, one per entry of ``splits``."""
    names = [f"{1000268201 + k}_693b08cb0e.jpg" for k in range(len(splits))]
    for k, fn in enumerate(names):
        jpg(raw / "Flicker8k_Dataset" / fn, (40 * k) % 256)
    if karpathy:
        imgs = [
            {
                "filename": fn,
                "split": {"dev": "val"}.get(s, s),
                "imgid": k,
                "sentences": [{"raw": f"A dog {k} runs {j} .", "tokens": ["a", "dog"]} for j in range(5)],
            }
            for k, (fn, s) in enumerate(zip(names, splits))
        ]
        (raw / "dataset_flickr8k.json").write_text(json.dumps({"dataset": "flickr8k", "images": imgs}))
        return names
    lines = [f"{fn}#{j}\tA dog {k} runs {j} ." for k, fn in enumerate(names) for j in range(5)]
    (raw / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    for part in ("train", "dev", "test"):
        lst = [fn for fn, s in zip(names, splits) if s == part]
        (raw / f"Flickr_8k.{part}Images.txt").write_text("".join(f"{fn}\n" for fn in lst))
    return names


def cuhk_pedes_raw(raw: Path, people=(("train", 2), ("train", 1), ("val", 1), ("test", 2), ("test", 2))) -> list:
    """What CUHK-PEDES.zip unpacks to: CUHK-PEDES/imgs/<camera folder>/<file>.png and reid_raw.json, a list of
    ``{"split", "captions" (2), "file_path" (relative to imgs/), "processed_tokens", "id"}`` per image; ``people``:
    (split, number of images) per person id (1, 2, ...). Returns the entries."""
    base = raw / "CUHK-PEDES"
    items, n = [], 0
    for pid, (split, n_img) in enumerate(people, 1):
        for _ in range(n_img):
            fp = f"{'CUHK01' if n % 2 else 'train_query'}/p{pid}_{n:05d}.png"
            path = base / "imgs" / fp
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((24, 10, 3), (25 * n) % 256, np.uint8)).save(path)
            caps = [f"The man {pid} wears a coat {n}.", f"A person {pid} in shoes {n}."]
            items.append(
                {
                    "split": split,
                    "captions": caps,
                    "file_path": fp,
                    "processed_tokens": [c.split() for c in caps],
                    "id": pid,
                }
            )
            n += 1
    (base / "reid_raw.json").write_text(json.dumps(items))
    return items


def sfm120k_cid(k: int) -> str:
    """A cid shaped like SfM-120k's (a long hex name; the last six characters pick the folders)."""
    return f"{(k * 2654435761) % 16**8:08x}{k:06x}ab{(k * 40503) % 16**6:06x}"


def sfm120k_raw(
    base: Path,
    clusters=(0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4),
    pairs=((0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (8, 9), (10, 11)),
    val_clusters=(5, 5, 6, 6, 7, 7),
    val_pairs=((0, 1), (2, 3), (4, 5)),
    whiten: bool = True,
    size=(24, 18),
    seed: int = 0,
) -> dict:
    """cirtorch's retrieval-SfM-120k as its files unpack: ``retrieval-SfM-120k.pkl`` ({'train', 'val'}: cids,
    cluster, qidxs, pidxs), optionally ``retrieval-SfM-120k-whiten.pkl`` (the val images' cids and pairs), and
    ``ims/<cid[-2:]>/<cid[-4:-2]>/<cid[-6:-4]>/<cid>`` (JPEG files named by their cid, no extension) of random
    noise under ``base``. Returns the pickle's dict."""
    rng = np.random.default_rng(seed)
    db, k = {}, 0
    for split, cl, pr in (("train", clusters, pairs), ("val", val_clusters, val_pairs)):
        cids = [sfm120k_cid(k + i) for i in range(len(cl))]
        k += len(cl)
        db[split] = {
            "cids": cids,
            "cluster": [int(c) for c in cl],
            "qidxs": [int(q) for q, _ in pr],
            "pidxs": [int(p) for _, p in pr],
        }
        for c in cids:
            path = base / "ims" / c[-2:] / c[-4:-2] / c[-6:-4] / c
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, format="JPEG")
    base.mkdir(parents=True, exist_ok=True)
    (base / "retrieval-SfM-120k.pkl").write_bytes(pickle.dumps(db))
    if whiten:
        w = {k: db["val"][k] for k in ("cids", "qidxs", "pidxs")}
        (base / "retrieval-SfM-120k-whiten.pkl").write_bytes(pickle.dumps(w))
    return db
