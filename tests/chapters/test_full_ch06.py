"""Notebook 06's ``full`` profile end to end on the CPU (``tiny=True``): CUB-200-2011 in its published format
(converted by ``data_scripts``), the paper's trunk (ResNet-50, randomly initialised), f_0, the one-task methods and
the multi-task cases a–d — at 32 px and a handful of steps; and the thesis' 60/40 per-class split of Stanford Dogs."""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest
from fixtures_real_formats import cub_fixture, jpg

from data_scripts.convert import convert
from xmr_lib.chapters.ch06 import config as ch06
from xmr_lib.chapters.ch06 import lecture
from xmr_lib.course import runs
from xmr_lib.train import incremental as inc

pytest.importorskip("torchvision")
pytest.importorskip("scipy.io")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XMR_RUN_DIR", str(tmp_path / "run"))
    import torch

    torch.set_num_threads(1)


def dogs_raw(raw, n_classes: int, n_train: int, n_test: int) -> None:
    """Stanford Dogs' published layout (Images/<wnid-name>/*.jpg, train_list.mat / test_list.mat) with
    ``n_classes`` breeds of ``n_train`` + ``n_test`` images."""
    import scipy.io

    folders = [f"n0208{5620 + c}-Breed_{c}" for c in range(n_classes)]
    for s, n in (("train", n_train), ("test", n_test)):
        items = [(c, f"{folders[c].split('-')[0]}_{s}{j}.jpg") for c in range(n_classes) for j in range(n)]
        files = np.empty((len(items), 1), dtype=object)
        for k, (c, fn) in enumerate(items):
            files[k, 0] = np.array([f"{folders[c]}/{fn}"])
            jpg(raw / "Images" / folders[c] / fn, (37 * k + 11 * c) % 256)
        labels = np.array([[c + 1] for c, _ in items], dtype=np.uint8)
        scipy.io.savemat(raw / f"{s}_list.mat", {"file_list": files, "annotation_list": files, "labels": labels})


def test_stanford_dogs_takes_the_thesis_60_40_split_and_60_plus_60_classes(tmp_path):
    dogs_raw(tmp_path / "stanford_dogs" / "raw", n_classes=3, n_train=4, n_test=1)
    assert convert("stanford_dogs", tmp_path)["missing"] == []
    P = types.SimpleNamespace(dataset="stanford_dogs", data_root=str(tmp_path), image_size=16)
    train, test, names = lecture.benchmark(P, 0)
    assert len(names) == 3 and train.images.shape == (9, 3, 16, 16) and len(test) == 6  # 5 per class: 3 / 2
    assert np.bincount(train.labels.numpy()).tolist() == [3, 3, 3]
    assert np.bincount(test.labels.numpy()).tolist() == [2, 2, 2]
    p = runs.resolve("06", "full", data_root=str(tmp_path), dataset="stanford_dogs")
    assert ch06.FALLBACK.apply(p)[0] and (p.n_old, p.n_new) == ch06.PAPER_SPLIT["stanford_dogs"]


def test_full_ch06_tiny_runs_the_gpu_path_on_cub(tmp_path):
    cub_fixture(tmp_path / "cub200" / "raw", n_classes=7, per_class=5)
    assert convert("cub200", tmp_path)["missing"] == []
    P = runs.params("06", profile="full", tiny=True, data_root=str(tmp_path), device="cpu")
    assert not P.fell_back and P.backbone == "resnet50" and P.image_size == 32 and P.lambda2 == 10.0
    train, test, _ = lecture.benchmark(P, P.seed)
    order = lecture.class_order(P)
    one_task = inc.one_step_protocol(order, P.n_old)
    multi_task = inc.multi_step_protocol(order, P.n_old, P.n_steps)
    transform = lecture.batch_transform(P, 3)
    make_model = lecture.model_factory(P, 3)
    assert sum(p.numel() for p in make_model(P.n_old).trunk.parameters()) > 2e7  # ResNet-50's trunk
    kw = lecture.method_kwargs(P)
    seeds = [P.seed]
    bases, one, multi, _ = lecture.run_all(P, seeds, (train, test), make_model, one_task, multi_task, transform, kw)
    assert set(P.onetask_methods) <= set(one[P.seed])
    init_old = [bases[s].steps[0]["groups"][0]["mAP"] for s in seeds]
    metrics = {**lecture.base_metrics(bases, test, one_task[0]), **lecture.onetask_metrics(P, one, init_old)}
    mm = [m for m in P.multi_methods if m != "joint"]
    assert all(len(multi[P.seed][m].steps) == P.n_steps + 1 for m in mm)
    metrics.update(lecture.multi_metrics(multi, mm, P.seed))
    flat = [x for v in metrics.values() for x in (v if isinstance(v, list) else [v]) if isinstance(x, float)]
    assert flat and all(math.isfinite(x) for x in flat)
    runs.record_many(metrics)
    rec = json.loads(runs.metrics_path().read_text())
    assert rec["metrics"]["data/real"] == 1 and rec["params"]["tiny"] is True
