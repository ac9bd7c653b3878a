"""The notebooks' ``full`` profiles read what ``python -m data_scripts fetch NAME --root DIR`` writes: for each
dataset a tiny fixture in its real published format is converted (``data_scripts.convert``) and then read by exactly the
loader the notebook's full profile calls. Offline, CPU, small images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_real_formats import (
    coco_official_raw,
    cub_fixture,
    flickr30k_raw,
    mirflickr_raw,
    nuswide_raw,
    pascal_sentence_raw,
    revisited_raw,
    stanford_dogs_raw,
    wikipedia_raw,
)

from data_scripts.convert import convert
from xmr_lib.data import registry as data

pytest.importorskip("scipy.io")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    import torch

    torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------------------------
# 02: data.revisited(ds, data_root) — the other dataset is the training set


def test_nb02_revisited_reads_both_converted_benchmarks(tmp_path):
    ox_db = [f"all_souls_{i:06d}" for i in range(4)] + ["radcliffe_camera_000001"]
    pa_db = [f"paris_eiffel_{i:06d}" for i in range(3)] + ["paris_louvre_000001", "paris_louvre_000002"]
    revisited_raw(
        tmp_path / "roxford5k",
        "roxford5k",
        ox_db,
        ["all_souls_000100"],
        [{"easy": [0, 1], "hard": [2], "junk": [3], "bbx": [2, 3, 12, 13]}],
    )
    revisited_raw(
        tmp_path / "rparis6k",
        "rparis6k",
        pa_db,
        ["paris_eiffel_000100", "paris_louvre_000100"],
        [
            {"easy": [0, 1], "hard": [], "junk": [2], "bbx": [0, 0, 30, 20]},
            {"easy": [3], "hard": [4], "junk": [], "bbx": [5, 5, 25, 15]},
        ],
    )
    for name in ("roxford5k", "rparis6k"):
        assert convert(name, tmp_path)["missing"] == []
    b = data.revisited("roxford5k", tmp_path)  # as notebook 02's load_benchmark
    assert len(b.db) == 5 and len(b.queries) == 1 and b.queries[0].shape == (10, 10, 3)
    assert b.gnd[0]["easy"].tolist() == [0, 1] and b.gnd[0]["junk"].tolist() == [3]
    assert len(b.train) == 5 and b.meta["train_from"] == "rparis6k"
    assert b.train_groups.tolist()[:2] == [0, 0] and b.train_groups[3] == b.train_groups[4] == 1
    assert data.revisited("rparis6k", tmp_path).queries[1].shape == (10, 20, 3)


def test_nb02_needs_the_other_benchmark_and_says_so(tmp_path):
    revisited_raw(tmp_path / "roxford5k", "roxford5k", ["a_000001"], ["a_000002"], [{"easy": [0], "bbx": None}])
    convert("roxford5k", tmp_path)
    with pytest.raises(FileNotFoundError, match="fetch rparis6k"):
        data.revisited("roxford5k", tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# 03: crossmodal.prepare_crossmodal_features(dataset, root=data_root, ...)


def test_nb03_mirflickr_converted_from_the_raw_release(tmp_path):
    from xmr_lib.chapters.ch03 import crossmodal as cm

    mirflickr_raw(tmp_path / "mirflickr25k" / "raw")
    convert("mirflickr25k", tmp_path, min_tag_count=1, image_size=8)
    with pytest.warns(UserWarning, match="not the 24"):  # a 3-concept fixture, not the paper's 24
        feats = cm.prepare_crossmodal_features(
            "mirflickr25k",
            image_encoder="efficientnet_lite0",
            text_encoder="bow",
            root=tmp_path,
            seed=0,
            image_size=32,
            device="cpu",
            split={"n_query": 1, "n_train": 2, "n_retrieval": None},
        )
    assert feats.image.shape == (4, 1280) and feats.text.shape == (4, 5)
    assert feats.labels.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert feats.label_names == ["animals", "sky", "water"] and feats.vocab[2] == "dog"
    assert len(feats.split["query"]) == 1 and len(feats.split["retrieval"]) == 3
    assert set(feats.split["train"]) <= set(feats.split["retrieval"])
    assert feats.images.shape == (4, 8, 8, 3) and np.isfinite(feats.image).all()


def test_nb03_nuswide_with_and_without_images(tmp_path):
    from xmr_lib.chapters.ch03 import crossmodal as cm

    nuswide_raw(tmp_path / "nuswide" / "raw")
    convert("nuswide", tmp_path, n_labels=2, image_size=4)
    with pytest.warns(UserWarning, match="not the 21"):
        feats = cm.prepare_crossmodal_features(
            "nuswide", image_encoder="pixels", root=tmp_path, split={"n_query": 1, "n_train": 2}
        )
    assert feats.labels.tolist() == [[1, 0], [0, 1], [0, 1], [0, 1]] and feats.label_names == ["animal", "sky"]
    assert feats.text.shape == (4, 3) and feats.image.shape[0] == 4
    # labels and tags without the (by-hand) image folder: a clear error, not a crash later
    nuswide_raw(tmp_path / "b" / "nuswide" / "raw")
    import shutil

    shutil.rmtree(tmp_path / "b" / "nuswide" / "raw" / "Flickr")
    convert("nuswide", tmp_path / "b", n_labels=2, image_size=4)
    with pytest.raises(ValueError, match="images.npy"):
        cm.load_crossmodal_pairs("nuswide", root=tmp_path / "b")


# ---------------------------------------------------------------------------------------------------------------
# 04: adversarial.karpathy_caption_benchmark + diversity.image_features(paths=...)


def test_nb04_flickr30k_karpathy_split_and_image_features(tmp_path):
    from xmr_lib.chapters.ch04 import adversarial as adv
    from xmr_lib.encoders.features import image_features

    flickr30k_raw(tmp_path / "flickr30k" / "raw")
    convert("flickr30k", tmp_path)
    parts = {}
    for part, n in (("train", 29000), ("test", 1000)):  # the full profile's n_train_images / n_test_images
        paths, caps, pair = adv.karpathy_caption_benchmark("flickr30k", str(tmp_path), part, max_images=n)
        xi = image_features(
            paths=paths,
            size=32,
            device="cpu",
            progress=False,
            cache_key={"dataset": "flickr30k", "split": part, "n": len(paths)},
        )
        parts[part] = (xi, caps, pair)
    (tri, trc, trp), (tei, tec, tep) = parts["train"], parts["test"]
    assert tri.shape == (2, 1280) and tei.shape == (2, 1280)  # train + restval / test
    assert len(trc) == 10 and trp.tolist() == [0] * 5 + [1] * 5 and tep.max() == 1
    assert tec[5] == "image 4 sentence 0." and np.isfinite(tei).all()


def test_nb04_missing_images_and_coco_subfolders(tmp_path):
    from xmr_lib.chapters.ch04 import adversarial as adv

    flickr30k_raw(tmp_path / "flickr30k" / "raw", with_images=False)
    convert("flickr30k", tmp_path)
    with pytest.raises(FileNotFoundError, match="--from-dir"):
        adv.karpathy_caption_benchmark("flickr30k", str(tmp_path), "test")
    coco_official_raw(tmp_path / "coco" / "raw")
    convert("coco", tmp_path)
    paths, caps, pair = adv.karpathy_caption_benchmark("coco", str(tmp_path), "train")
    assert [p.rsplit("/", 2)[-2] for p in paths] == ["train2017", "train2017"] and len(caps) == 4
    assert adv.karpathy_caption_benchmark("coco", str(tmp_path), "test")[0][0].endswith("val2017/000000000139.jpg")
    with pytest.raises(ValueError, match="no 'val' images"):
        adv.karpathy_caption_benchmark("coco", str(tmp_path), "val")


# ---------------------------------------------------------------------------------------------------------------
# 05 / 06: data.load + incremental.per_class_split / to_labelled (the notebooks' load_benchmark, checked only)


def test_nb05_06_cub200_per_class_split_and_resize(tmp_path):
    from xmr_lib.train import incremental as inc

    cub_fixture(tmp_path / "cub200" / "raw", n_classes=3, per_class=5)
    convert("cub200", tmp_path)
    ds = data.load("cub200", "all", root=tmp_path)
    tr, te = inc.per_class_split(ds.labels, 0.6, seed=0)
    # as notebooks 05/06: ds.images[i] is an array or a LazyImages subset (read and resized by to_labelled)
    parts = [(ds.images[i], ds.labels[i]) for i in (tr, te)]
    assert all(len(x) == len(i) for (x, _), i in zip(parts, (tr, te)))
    train, test = (inc.to_labelled(x, y, size=16) for x, y in parts)
    assert train.images.shape == (9, 3, 16, 16) and test.images.shape == (6, 3, 16, 16)
    assert np.bincount(np.asarray(train.labels)).tolist() == [3, 3, 3] and len(ds.class_names) == 3


def test_nb05_06_stanford_dogs_official_split(tmp_path):
    from xmr_lib.train import incremental as inc

    stanford_dogs_raw(tmp_path / "stanford_dogs" / "raw")
    convert("stanford_dogs", tmp_path)
    parts = [(d.images, d.labels) for d in (data.load("stanford_dogs", sp, root=tmp_path) for sp in ("train", "test"))]
    train, test = (inc.to_labelled(x, y, size=8) for x, y in parts)
    assert train.images.shape == (2, 3, 8, 8) and np.asarray(test.labels).tolist() == [0]


# ---------------------------------------------------------------------------------------------------------------
# 10: common_space.load_feature_pairs(dataset, data_root, text_features=..., n_topics=..., device=..., seed=...)


def _wiki_rows(n_train_per_class=4, n_test_per_class=2):
    rows = {"train": [], "test": []}
    k = 0
    for split, n in (("train", n_train_per_class), ("test", n_test_per_class)):
        for c in (1, 2):
            for _ in range(n):
                k += 1
                rows[split].append((f"t{k}", f"i{k}", c))
    return rows


def test_nb10_wikipedia_features_built_from_the_converted_layout(tmp_path, capsys):
    from xmr_lib.chapters.ch10 import common_space as cs

    wikipedia_raw(tmp_path / "wikipedia" / "raw", rows=_wiki_rows())
    convert("wikipedia", tmp_path)
    sp = cs.load_feature_pairs(
        "wikipedia", tmp_path, text_features="lda", n_topics=3, device="cpu", seed=0, image_size=32
    )
    assert "isomorphic_features.npz" in capsys.readouterr().out
    assert sp.train_image.shape == (8, 1280) and sp.test_image.shape == (4, 1280)
    assert sp.train_text.shape == (8, 3) and np.allclose(sp.train_text.sum(1), 1, atol=1e-4)
    assert sp.train_labels.tolist() == [0] * 4 + [1] * 4 and sp.test_labels.tolist() == [0, 0, 1, 1]
    assert sp.class_names == ["art", "biology"] and sp.n_classes == 2
    assert "painting" in sp.meta["test_docs"][0] and sp.meta["protocol"] == "paper"
    # the documents are class-specific: LDA topics of a class agree more with each other than across classes
    t = sp.train_text
    within = np.mean([t[i] @ t[j] for i in range(8) for j in range(8) if i != j and i // 4 == j // 4])
    across = np.mean([t[i] @ t[j] for i in range(4) for j in range(4, 8)])
    assert within > across
    again = cs.load_feature_pairs(
        "wikipedia", tmp_path, text_features="lda", n_topics=3, device="cpu", seed=0, image_size=32
    )  # from the cache
    assert np.array_equal(again.train_text, sp.train_text) and np.allclose(again.test_image, sp.test_image)
    # a hand-made npz (e.g. the paper's AlexNet fc7 + LDA) takes precedence
    np.savez(
        tmp_path / "wikipedia" / "isomorphic_features.npz",
        train_image=np.ones((3, 5)),
        train_text=np.ones((3, 2)),
        train_labels=np.arange(3),
        test_image=np.ones((2, 5)),
        test_text=np.ones((2, 2)),
        test_labels=np.arange(2),
        class_names=np.array(["a", "b", "c"]),
    )
    assert cs.load_feature_pairs("wikipedia", tmp_path, n_topics=3).train_image.shape == (3, 5)


def test_nb10_pascal_sentence_paper_split_and_errors(tmp_path):
    from xmr_lib.chapters.ch10 import common_space as cs

    pascal_sentence_raw(tmp_path / "pascal_sentence" / "raw", per_class=50)
    convert("pascal_sentence", tmp_path)
    sp = cs.load_feature_pairs("pascal_sentence", tmp_path, text_features="tfidf", device="cpu", image_size=32)
    assert sp.train_image.shape == (60, 1280) and sp.test_image.shape == (40, 1280)  # 30 / 20 per class
    assert np.bincount(sp.train_labels).tolist() == [30, 30] and np.bincount(sp.test_labels).tolist() == [20, 20]
    assert sp.train_text.shape[0] == 60 and sp.train_text.shape[1] == sp.test_text.shape[1]
    conv = cs.converted_feature_pairs(
        "pascal_sentence", tmp_path, text_features="tfidf", device="cpu", image_size=32, protocol="converted"
    )
    assert len(conv.train_labels) == 90 and len(conv.test_labels) == 10  # 40 + 5 / 5 per class
    with pytest.raises(ValueError, match="fetch wikipedia"):
        cs.load_feature_pairs("wikipedia", tmp_path)
    with pytest.raises(ValueError, match="fetch voc2007"):  # VOC 2007 now has a converter: the error names it
        cs.load_feature_pairs("voc2007", tmp_path)
    with pytest.raises(ValueError, match="text_features"):
        cs.load_feature_pairs("pascal_sentence", tmp_path, text_features="bow")


# ---------------------------------------------------------------------------------------------------------------
# 08 / 09: datasets used as released (by hand): `fetch NAME --from-dir` puts the folders where the loaders look


def test_nb08_paper_targets_from_dir(tmp_path):
    from fixtures_real_formats import imagenet_targets_dir

    from data_scripts import cli
    from xmr_lib.chapters.ch08 import transfer

    wnids = ["n01234567", "n07654321"]
    imagenet_targets_dir(tmp_path / "manual", wnids)
    assert (
        cli.main(
            [
                "fetch",
                "pascal2019_targets",
                "--root",
                str(tmp_path / "data"),
                "--from-dir",
                str(tmp_path / "manual"),
                "--quiet",
            ]
        )
        == 0
    )
    files, y = transfer.imagenet_folder_targets(tmp_path / "data" / "pascal2019_targets", wnids, "train")
    assert len(files) == 6 and y.tolist() == [0, 0, 0, 1, 1, 1]
    files, y = transfer.imagenet_folder_targets(tmp_path / "data" / "pascal2019_targets", wnids, "test")
    assert len(files) == 4 and all(Path(f).is_file() for f in files)


def test_nb09_mediaeval_from_dir(tmp_path):
    from fixtures_real_formats import mediaeval_split_dir

    from data_scripts import cli
    from xmr_lib.chapters.ch09 import diversity

    mediaeval_split_dir(tmp_path / "manual" / "devset", {"angkor": [("11", 1, 1), ("12", 0, 0), ("13", 1, 2)]})
    mediaeval_split_dir(tmp_path / "manual" / "testset", {"big_ben": [("21", 1, 1), ("22", 1, 1)]})
    root = tmp_path / "data"
    assert (
        cli.main(
            [
                "fetch",
                "mediaeval2017_div",
                "--root",
                str(root),
                "--from-dir",
                str(tmp_path / "manual"),
                "--optional",
                "--quiet",
            ]
        )
        == 0
    )
    # as notebook 09's full profile
    lists = diversity.concat_lists(
        diversity.load_div2017(root, "devset", max_docs=300), diversity.load_div2017(root, "testset", max_docs=300)
    )
    assert lists.n_queries == 2 and len(lists.texts) == 5 and lists.titles[0] == "angkor"
