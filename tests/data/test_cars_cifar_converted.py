"""Stanford Cars and CIFAR-100: their published formats (fixtures written at test time) → ``data_scripts`` converter →
``xmr_lib.data.load``, and back to the fixture's labels, boxes and pixels."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_real_formats import cifar100_raw, stanford_cars_raw, tgz

from data_scripts import cli, registry
from data_scripts.convert import ConversionError, convert
from xmr_lib.data import registry as data


def test_stanford_cars_round_trip(tmp_path):
    ds = tmp_path / "stanford_cars"
    ann = stanford_cars_raw(ds / "raw")
    rep = convert("stanford_cars", tmp_path)
    assert rep["n"] == 5 and rep["splits"] == {"test": 2, "train": 3} and rep["missing"] == []
    tr = data.load("stanford_cars", "train", root=tmp_path)
    te = data.load("stanford_cars", "test", root=tmp_path)
    assert tr.class_names == ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi R8 Coupe 2012"]
    assert tr.labels.tolist() == [c - 1 for _, c, _ in ann["train"]]
    assert te.labels.tolist() == [c - 1 for _, c, _ in ann["test"]]
    # the same file name in both splits stays two images
    assert tr.meta["paths"][0].endswith("cars_train/00001.jpg") and te.meta["paths"][0].endswith("cars_test/00001.jpg")
    x1, y1, x2, y2 = ann["train"][0][2]
    assert tuple(tr.meta["bbox"][0]) == (x1, y1, x2 - x1 + 1, y2 - y1 + 1)  # 1-based inclusive → x y w h
    im = np.asarray(tr.images[1])
    assert im.shape == (14, 26, 3) and abs(int(im.mean()) - (30 + 50 * 3 + 7)) <= 2


def test_stanford_cars_without_test_labels_says_so(tmp_path):
    ds = tmp_path / "stanford_cars"
    stanford_cars_raw(ds / "raw")
    (ds / "raw" / "cars_test_annos_withlabels.mat").unlink()
    rep = convert("stanford_cars", tmp_path)
    assert rep["splits"] == {"train": 3} and "cars_test_annos_withlabels.mat" in rep["missing"][0]
    (ds / "raw" / "devkit" / "cars_meta.mat").unlink()
    with pytest.raises(ConversionError, match="cars_meta.mat"):
        convert("stanford_cars", tmp_path)


def test_stanford_cars_from_dir_with_the_released_archives(tmp_path, capsys):
    src = tmp_path / "src"
    stanford_cars_raw(src)
    hand = tmp_path / "hand"
    hand.mkdir()
    tgz(src / "devkit", hand / "car_devkit.tgz")
    tgz(src / "cars_train", hand / "cars_train.tgz")
    tgz(src / "cars_test", hand / "cars_test.tgz")
    (hand / "cars_test_annos_withlabels.mat").write_bytes((src / "cars_test_annos_withlabels.mat").read_bytes())
    root = tmp_path / "root"
    assert cli.main(["fetch", "stanford_cars", "--root", str(root), "--from-dir", str(hand)]) == 0
    assert len(data.load("stanford_cars", "all", root=root)) == 5
    assert all(f.manual for f in registry.get("stanford_cars").files)  # the official URL is gone


def test_cifar100_round_trip(tmp_path):
    ds = tmp_path / "cifar100"
    raw = cifar100_raw(ds / "raw")
    rep = convert("cifar100", tmp_path)
    assert rep["n"] == 10 and rep["splits"] == {"test": 4, "train": 6} and rep["missing"] == []
    tr = data.load("cifar100", "train", root=tmp_path)
    te = data.load("cifar100", "test", root=tmp_path)
    d, fine, coarse = raw["train"]
    assert len(tr.class_names) == 100 and tr.class_names[:2] == ["apple", "aquarium_fish"]
    assert tr.labels.tolist() == fine and tr.coarse_labels.tolist() == coarse
    assert te.labels.tolist() == raw["test"][1]
    # pixels: row = 1024 red, 1024 green, 1024 blue values, each a row-major 32×32 plane
    for i in (0, 5):
        want = d[i].reshape(3, 32, 32).transpose(1, 2, 0)
        assert np.array_equal(np.asarray(tr.images[i]), want)
    assert convert("cifar100", tmp_path)["n"] == 10  # a rerun keeps the written PNGs


def test_cifar100_registry_and_malformed_batch(tmp_path):
    f = registry.get("cifar100").files[0]
    assert f.md5 == "eb9058c3a382ffc7106e4002c42a8d85" and "tgz_md5" in f.checksum_source
    import torchvision.datasets as tvd

    assert tvd.CIFAR100.tgz_md5 == f.md5 and tvd.CIFAR100.url == f.urls[0]
    ds = tmp_path / "cifar100"
    cifar100_raw(ds / "raw")
    import pickle

    with open(ds / "raw" / "cifar-100-python" / "test", "wb") as fh:
        pickle.dump({"data": np.zeros((2, 100), np.uint8), "fine_labels": [1, 2], "coarse_labels": [0, 0],
                     "filenames": ["a.png", "b.png"]}, fh, protocol=2)  # fmt: skip
    with pytest.raises(ConversionError, match="3072"):
        convert("cifar100", tmp_path)
