"""Notebook 05's ``full`` profile end to end on the CPU (``tiny=True``): CUB-200-2011 in its published format
(converted by ``data_scripts``), the paper's trunk (ResNet-50, randomly initialised), every method of the profile's
one-step list, the β grid and the multi-step run — at 32 px and a handful of steps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fixtures_real_formats import cub_fixture

from data_scripts.convert import convert
from xmr_lib.chapters.ch05 import config as ch05
from xmr_lib.chapters.ch05 import lecture
from xmr_lib.course import runs
from xmr_lib.train import incremental as inc

pytest.importorskip("torchvision")


@pytest.fixture()
def cub_root(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XMR_RUN_DIR", str(tmp_path / "run"))
    import torch

    torch.set_num_threads(1)
    cub_fixture(tmp_path / "cub200" / "raw", n_classes=7, per_class=5)
    assert convert("cub200", tmp_path)["missing"] == []
    return tmp_path


def test_tiny_knobs_only_scale_the_run(cub_root):
    p = runs.resolve("05", "full", data_root=str(cub_root), tiny=True)
    real, fell_back, _ = ch05.FALLBACK.apply(p)
    assert (real, fell_back) == (True, False)
    assert p.backbone == "resnet50" and p.dataset == "cub200" and p.lr == 1e-5 and p.lr_trunk == 1e-6
    assert p.methods == ch05.PROFILES["full"]["methods"] and p.image_size == 32 and p.base_iterations == 3
    assert all(
        p[k] == ch05.PROFILES["full"][k] for k in ch05.PROFILES["full"] if k not in ch05.TINY_KNOBS and k != "tiny"
    )
    assert all(ch05.PROFILES[prof]["tiny"] is False for prof in ch05.PROFILES)


def test_full_ch05_tiny_runs_the_gpu_path_on_cub(cub_root):
    P = runs.params("05", profile="full", tiny=True, data_root=str(cub_root), device="cpu")
    assert not P.fell_back
    train, test, names = lecture.benchmark(P, P.seed)
    assert train.images.shape == (21, 3, 32, 32) and len(test) == 14 and len(names) == 7
    classes = np.arange(P.n_old + P.n_new)
    one_step = inc.one_step_protocol(classes, P.n_old)
    transform = lecture.batch_transform(P, 3)
    make_model = lecture.model_factory(P, 3)
    net = make_model(P.n_old)
    assert sum(p.numel() for p in net.trunk.parameters()) > 2e7  # ResNet-50's trunk, not the tiny CNN
    kw = lecture.method_kwargs(P)
    one = lecture.run_one_step(P, [P.seed], (train, test), make_model, one_step, transform, kw)
    first = one[P.seed]
    assert set(P.methods) <= set(first) and {"kd_mmd β=0.1", "kd_mmd β=10"} <= set(first)
    m = lecture.one_step_metrics(P, one, test, one_step[0])
    assert all(math.isfinite(v) for k, v in m.items() for v in (v if isinstance(v, list) else [v]))
    assert first["kd_mmd"].losses and {"kd", "mmd"} <= set(first["kd_mmd"].losses[-1])
    runs.record_many(m)
    multi_step = inc.multi_step_protocol(classes, P.n_old, P.n_steps)
    multi = lecture.run_multi(P, train, test, make_model, multi_step, transform, kw, first, len(one_step[0]))
    ms_ = [x for x in P.multi_methods if x != "joint"]
    assert all(len(multi[x].steps) == P.n_steps + 1 for x in ms_)
    runs.record_many(lecture.multi_metrics(multi, ms_))
    rec = json.loads(runs.metrics_path().read_text())
    assert rec["metrics"]["data/real"] == 1 and rec["params"]["tiny"] is True
    assert "ft/old_R@1_seeds" in rec["metrics"]
