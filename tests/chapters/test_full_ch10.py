"""Notebook 10's ``full`` path as a GPU user runs it, with ``tiny=True`` (random-weight AlexNet, 72 px images cropped
to 64, 3 iterations of 8 pairs): a real-format Wikipedia fixture converted by ``data_scripts.convert``, AlexNet
fine-tuned in Table 2's three modes, Table 3's baselines on AlexNet fc7, the records the per-dataset targets read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_real_formats import wikipedia_raw

from data_scripts.convert import convert
from xmr_lib.chapters.ch10 import alexnet_inet as ai
from xmr_lib.chapters.ch10 import common_space as cs
from xmr_lib.chapters.ch10 import lecture
from xmr_lib.course import runs

pytest.importorskip("sklearn")


@pytest.fixture(autouse=True)
def _one_thread(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _wiki(tmp_path, n_train=6, n_test=3):
    rows, k = {"train": [], "test": []}, 0
    for split, n in (("train", n_train), ("test", n_test)):
        for c in (1, 2):
            for _ in range(n):
                k += 1
                rows[split].append((f"t{k}", f"i{k}", c))
    wikipedia_raw(tmp_path / "wikipedia" / "raw", rows=rows)
    convert("wikipedia", tmp_path)
    return tmp_path


def test_full_profile_tiny_runs_the_paper_experiment(tmp_path):
    root = _wiki(tmp_path)
    p = runs.resolve("10", "full", tiny=True, data_root=str(root), n_topics=3, device="cpu")
    assert p["i_net"] == "alexnet" and p["dataset"] == "wikipedia"
    res = lecture.paper_experiment(p, [0, 1])
    pairs = res["pairs"]
    assert pairs.train_images.shape == (12, 3, 72, 72) and pairs.train_images.dtype == torch.uint8
    assert pairs.test_text.shape == (6, 3) and pairs.class_names == ["art", "biology"]
    for m in cs.MODES:
        assert len(res["finetune"][m]) == 2
        for r in res["finetune"][m]:
            assert len(r["history"]["loss"]) == 3 and r["finite"]
            assert r["test_repr"][0].shape == (6, 2) and 0 <= r["average"] <= 1
    assert res["fc7"].train_image.shape == (12, 4096) and not lecture.uses_paper_features(res["fc7"])
    m = lecture.paper_experiment_metrics(res)
    assert np.isfinite(m["finetune/O-LE-J/average"]).all() and len(m["finetune/O/i2t"]) == 2
    assert {"random_alexnet_fc7/compare/cca/average", "random_alexnet_fc7/compare/sm/average"} <= set(m)
    # random weights are not the paper's features: the Table 3 targets get no record, Table 2's do
    got = lecture.per_dataset_metrics("wikipedia", m)
    assert "wikipedia/ablation/O-LE-J/average" in got and not any("/compare/" in k for k in got)


def test_alexnet_finetuning_lowers_the_loss(tmp_path):
    """The §3.2 recipe (SGD, 0.01 new / 0.001 pre-trained, random crops and flips) on the fixture, 30 steps."""
    root = _wiki(tmp_path)
    pairs = ai.image_pairs("wikipedia", root, resize=72, n_topics=3)
    cfg = ai.FinetuneConfig(latent=16, iterations=30, batch_size=8, crop=64, init_std=None)
    r = ai.finetune_isomorphic(pairs, cfg, seed=0, device="cpu", pretrained=False)
    h = r["history"]["loss"]
    assert np.mean(h[-5:]) < np.mean(h[:5])


def test_augment_crops_and_flips_by_hand():
    img = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    g = torch.Generator().manual_seed(0)
    out = ai.augment(img, 2, g)
    assert out.shape == (2, 3, 2, 2)
    # every output is one of the 2×2 windows of its image, possibly mirrored left–right, then normalised
    for b in range(2):
        raw = out[b] * torch.tensor(ai.IMAGENET_STD).view(3, 1, 1) + torch.tensor(ai.IMAGENET_MEAN).view(3, 1, 1)
        raw = (raw * 255).round()
        wins = [img[b, :, i : i + 2, j : j + 2].float() for i in range(3) for j in range(3)]
        assert any(torch.equal(raw, w) or torch.equal(raw, w.flip(-1)) for w in wins)
    with pytest.raises(ValueError, match="crop"):
        ai.augment(img, 5, g)


def test_pretrained_alexnet_without_weights_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="data_scripts fetch alexnet"):
        ai.alexnet(pretrained=True)


def test_voc2007_converter_writes_multilabels_split_and_tags(tmp_path):
    import csv

    from fixtures_real_formats import voc2007_raw

    voc2007_raw(tmp_path / "voc2007" / "raw")
    rep = convert("voc2007", tmp_path)
    assert rep["n"] == 4 and rep["splits"] == {"test": 2, "train": 2} and not rep["missing"]
    ds = tmp_path / "voc2007"
    rows = list(csv.DictReader(open(ds / "index.csv", encoding="utf-8")))
    got = {r["path"]: (r["label"], r["split"], r["labels"]) for r in rows}
    # chair = 8, person = 14, car = 6, dog = 11 (VOC's alphabetical class order); repeated objects count once
    assert got == {
        "000005.jpg": ("-1", "train", "8 14"),
        "000007.jpg": ("-1", "train", "6"),
        "000001.jpg": ("-1", "test", "11 14"),
        "000004.jpg": ("-1", "test", "6"),
    }
    assert (ds / "classes.txt").read_text().split()[:3] == ["aeroplane", "bicycle", "bird"]
    assert all((ds / "images" / p).is_file() for p in got)
    caps = list(csv.DictReader(open(ds / "captions.csv", encoding="utf-8")))
    assert [c["caption"] for c in caps] == ["chair person indoor", "car indoor", "dog person indoor", "car indoor"]


def test_voc2007_converter_names_a_bad_class(tmp_path):
    from fixtures_real_formats import voc2007_raw

    from data_scripts.convert import ConversionError

    voc2007_raw(tmp_path / "voc2007" / "raw", {"trainval": {"000002": ["unicorn"]}, "test": {"000003": ["cat"]}})
    with pytest.raises(ConversionError, match="unicorn"):
        convert("voc2007", tmp_path)


def _voc(tmp_path):
    from fixtures_real_formats import voc2007_raw

    objects = {
        "trainval": {"000005": ["chair", "person"], "000007": ["car"], "000009": ["dog"], "000012": ["car", "dog"]},
        "test": {"000001": ["dog", "person"], "000004": ["car", "car"], "000006": ["chair"]},
    }
    voc2007_raw(tmp_path / "voc2007" / "raw", objects)
    convert("voc2007", tmp_path)
    return tmp_path


def test_voc2007_is_read_as_multilabel_pairs(tmp_path):
    from xmr_lib import data

    root = _voc(tmp_path)
    ds = data.load("voc2007", "all", root=root)  # issue 24: the converted layout is readable
    assert ds.multilabels.shape == (7, 20) and ds.multilabels.sum() == 10  # 000004's two cars count once
    assert (ds.labels == -1).all() and ds.meta["splits"].count("test") == 3
    pairs = ai.image_pairs("voc2007", root, resize=72, n_topics=3)
    # trainval → train, test → test; multi-hot rows: 000001 = dog (11) + person (14)
    assert pairs.train_labels.shape == (4, 20) and pairs.test_labels.shape == (3, 20)
    assert np.flatnonzero(pairs.test_labels[0]).tolist() == [11, 14] and pairs.n_classes == 20
    assert pairs.train_images.shape == (4, 3, 72, 72) and pairs.train_text.shape == (4, 3)


def test_full_profile_tiny_runs_the_paper_experiment_on_voc2007(tmp_path):
    root = _voc(tmp_path)
    p = runs.resolve("10", "full", tiny=True, dataset="voc2007", data_root=str(root), n_topics=3, device="cpu")
    assert p["dataset"] == "voc2007" and not p.get("fell_back", False)
    res = lecture.paper_experiment(p, [0])
    for m in cs.MODES:
        (r,) = res["finetune"][m]
        assert len(r["history"]["loss"]) == 3 and r["finite"] and 0 <= r["average"] <= 1
        assert r["test_repr"][0].shape == (3, 20) and np.isnan(r["image_acc"])  # multi-label: no accuracy
    assert set(res["baselines"]) == {"tvcca", "cca"}  # SM needs one label per pair (Table 3 leaves it out on VOC)
    m = lecture.paper_experiment_metrics(res)
    assert np.isfinite(m["finetune/O-LE-J/average"]).all()
    assert np.isfinite(m["random_alexnet_fc7/compare/tvcca/average"]).all()
    got = lecture.per_dataset_metrics("voc2007", m)
    assert "voc2007/ablation/O-LE-J/average" in got and not any("/compare/" in k for k in got)
