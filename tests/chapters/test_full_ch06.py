"""Notebook 06's ``full`` profile end to end on the CPU (``tiny=True``): CUB-200-2011 in its published format
(converted by ``data_scripts``), the paper's trunk (ResNet-50, randomly initialised), f_0, the one-task methods and
the multi-task cases a–d — at 32 px and a handful of steps; and the thesis' 60/40 per-class split of Stanford Dogs."""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest

from xmr_lib.chapters.ch06 import config as ch06
from xmr_lib.chapters.ch06 import lecture
from xmr_lib.core import claims
from xmr_lib.course import runs
from xmr_lib.train import incremental as inc

pytest.importorskip("torchvision")
pytest.importorskip("scipy.io")


pytestmark = pytest.mark.usefixtures("full_isolated")


def test_stanford_dogs_takes_the_thesis_60_40_split_and_60_plus_60_classes(tmp_path, real_data):
    real_data(dogs=dict(n_classes=3, n_train=4, n_test=1))
    P = types.SimpleNamespace(dataset="stanford_dogs", data_root=str(tmp_path), image_size=16)
    train, test, names = lecture.benchmark(P, 0)
    assert len(names) == 3 and train.images.shape == (9, 3, 16, 16) and len(test) == 6  # 5 per class: 3 / 2
    assert np.bincount(train.labels.numpy()).tolist() == [3, 3, 3]
    assert np.bincount(test.labels.numpy()).tolist() == [2, 2, 2]
    p = runs.resolve("06", "full", data_root=str(tmp_path), dataset="stanford_dogs")
    assert ch06.FALLBACK.apply(p)[0] and (p.n_old, p.n_new) == ch06.PAPER_SPLIT["stanford_dogs"]


def test_full_ch06_tiny_runs_the_gpu_path_on_cub(tmp_path, real_data):
    real_data(cub=dict(n_classes=7, per_class=5))
    P = runs.params("06", profile="full", tiny=True, data_root=str(tmp_path), device="cpu")
    assert not P.fell_back and P.backbone == "googlenet" and P.image_size == 32 and P.lambda2 == 10.0
    train, test, _ = lecture.benchmark(P, P.seed)
    order = lecture.class_order(P)
    one_task = inc.one_step_protocol(order, P.n_old)
    multi_task = inc.multi_step_protocol(order, P.n_old, P.n_steps)
    transform = lecture.batch_transform(P, 3)
    make_model = lecture.model_factory(P, 3)
    assert sum(p.numel() for p in make_model(P.n_old).trunk.parameters()) == 5_599_904  # GoogLeNet's trunk
    kw = lecture.method_kwargs(P)
    seeds = [P.seed]
    bases, one, multi, _ = lecture.run_all(P, seeds, (train, test), make_model, one_task, multi_task, transform, kw)
    assert set(P.onetask_methods) <= set(one[P.seed])
    init_old = [bases[s].steps[0]["groups"][0]["mAP"] for s in seeds]
    metrics = {**lecture.base_metrics(bases, test, one_task[0]), **lecture.onetask_metrics(P, one, init_old)}
    mm = [m for m in P.multi_methods if m != "joint"]
    assert all(len(multi[P.seed][m].steps) == P.n_steps + 1 for m in mm)
    metrics.update(lecture.multi_metrics(multi, mm, P.seed))
    metrics.update(lecture.paper_metrics(P, bases, one, multi, mm, 2))
    assert all(0 <= v[0] <= 100 for k, v in metrics.items() if k.endswith("avg_incremental_R@1"))
    flat = [x for v in metrics.values() for x in (v if isinstance(v, list) else [v]) if isinstance(x, float)]
    assert flat and all(math.isfinite(x) for x in flat)
    # Fig. 6.10's long sequence (tiny: long_steps groups of the new classes) from the same f_0
    assert P.long_steps == 2 and set(P.long_methods) == {"ft", "l2", "mmd", "corr_fe"}
    long = lecture.run_long(P, bases[P.seed], (train, test), make_model, order, transform, kw)
    assert set(long) == set(P.long_methods) and all(len(r.steps) == P.long_steps + 1 for r in long.values())
    lm = lecture.long_metrics(P, long)
    for m in P.long_methods:
        curve, ratio = lm[f"long/{m}/old_R@1_curve"], lm[f"long/{m}/forgetting_ratio_curve"]
        assert len(curve) == P.long_steps + 1 and ratio[0] == 0.0
        assert ratio[-1] == pytest.approx(1 - curve[-1] / curve[0])
        assert 0.0 <= lm[f"long/{m}/avg_incremental_R@1"] <= 1.0
        assert lm[f"cub200/long/{m}/final_old_R@1"] == [pytest.approx(100 * curve[-1])]
    assert len(lecture.plot_long(long).axes) == 2
    metrics.update(lm)
    runs.record_many(metrics)
    rec = json.loads(runs.metrics_path().read_text())
    assert rec["metrics"]["data/real"] == 1 and rec["params"]["tiny"] is True
    rows = {r["id"]: r for r in (claims.evaluate_claim(c, rec) for c in ch06.CLAIMS)}
    assert rows["06.cub200_long_corr_fe_above_l2"]["status"] in (claims.HOLDS, claims.FAILS)


def test_long_sequence_is_off_outside_full_and_its_metrics_are_hand_checkable():
    assert [ch06.PROFILES[p]["long_steps"] for p in ("smoke", "default", "full")] == [0, 0, 10]
    P = types.SimpleNamespace(long_steps=0, long_methods=["l2"])
    assert lecture.run_long(P, None, None, None, None, None, {}) == {}
    r = inc.IncrementalResult("m", groups=[np.arange(2), np.arange(2, 4)])
    r.steps = [
        {"groups": [{"R@1": 0.8}, {"R@1": 0.1}]},
        {"groups": [{"R@1": 0.6}, {"R@1": 0.9}]},
    ]
    r.seen = [1, 2]
    c = lecture.long_curves({"m": r})["m"]
    assert c["old_R@1"].tolist() == [0.8, 0.6] and c["forgetting_ratio"].tolist() == pytest.approx([0.0, 0.25])
    # average incremental accuracy: step 0 sees group 0 (0.8), step 1 both ((0.6 + 0.9) / 2): (0.8 + 0.75) / 2
    assert lecture.avg_incremental(r) == pytest.approx(0.775)
