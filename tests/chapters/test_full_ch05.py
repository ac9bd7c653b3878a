"""Notebook 05's ``full`` profile end to end on the CPU (``tiny=True``): CUB-200-2011 and CIFAR-100 in their
published formats (converted by ``data_scripts``), the paper's trunk (ResNet-50, randomly initialised), every method
of the profile's one-step list, the α × β grid, the multi-step run, fewer new classes at once (Tables 5.4 / 5.5) and
the CIFAR-100 classification track (Table 5.6) — at 32 px and a handful of steps."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from fixtures_real_formats import cifar100_raw, cub_fixture

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
    assert p.backbone == "googlenet" and p.dataset == "cub200" and p.lr == 1e-5 and p.lr_trunk == 1e-6
    assert p.methods == ch05.PROFILES["full"]["methods"] and p.image_size == 32 and p.base_iterations == 3
    assert p.alpha_grid == [0.1] and p.cifar100 is True  # the full path's extra runs stay on
    assert p.new_class_splits == [2] and p.cifar_classes == 10 and p.cifar_iterations == [3, 2]
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
    assert sum(p.numel() for p in net.trunk.parameters()) == 5_599_904  # GoogLeNet's trunk, not the tiny CNN
    kw = lecture.method_kwargs(P)
    one = lecture.run_one_step(P, [P.seed], (train, test), make_model, one_step, transform, kw)
    first = one[P.seed]
    assert set(P.methods) <= set(first) and {"kd_mmd β=0.1", "kd_mmd β=10"} <= set(first)
    # Table 5.8's α = 0.1 rows: one run per β, from the same network A, at α = 0.1 in its loss
    ab = {f"kd_mmd α=0.1 β={b:g}" for b in (0.1, 1, 10)}
    assert ab <= set(first)
    kd = [t for t in first["kd_mmd α=0.1 β=10"].plugins if getattr(t, "name", "") == "kd"]
    assert kd and kd[0].weight == 0.1
    abt = lecture.alpha_beta_table(P, one)
    assert abt.shape == (6, 2) and np.isfinite(abt.to_numpy()).all() and (0.1, 10.0) in abt.index
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


def _one_base(P, train, test):
    """Network A of the one-step protocol alone (no method), as run_one_step's first seed makes it."""
    classes = np.arange(P.n_old + P.n_new)
    cfg = lecture.train_config(P, P.seed, [P.base_iterations, P.inc_iterations])
    make = lecture.model_factory(P, 3)
    res = inc.compare_methods(
        make, train, test, inc.one_step_protocol(classes, P.n_old), {}, cfg, lecture.batch_transform(P, 3)
    )
    return {"initial": res["initial"]}, make


def test_full_ch05_tiny_fewer_new_classes_at_once(cub_root, monkeypatch):
    P = runs.params("05", profile="full", tiny=True, data_root=str(cub_root), device="cpu")
    train, test, _ = lecture.benchmark(P, P.seed)
    first, make_model = _one_base(P, train, test)
    kw = lecture.method_kwargs(P)
    splits = lecture.run_splits(P, train, test, make_model, lecture.batch_transform(P, 3), kw, first)
    assert list(splits) == [2]  # TINY_KNOBS: 3 old classes + 2 of the 4 new ones
    ours, joint = splits[2]["kd_mmd"], splits[2]["joint"]
    assert [g.tolist() for g in ours.groups] == [[0, 1, 2], [3, 4]] and len(ours.steps) == 2
    assert ours.model.n_classes == 5 and joint.model.n_classes == 5
    assert splits[2]["initial"] is first["initial"]  # the same network A as the one-step run
    assert ours.steps[0]["groups"][0] == pytest.approx(first["initial"].steps[0]["groups"][0])
    m = lecture.split_metrics(P, splits)
    assert len(m) == 4 and all(0 <= v <= 1 for v in m.values())
    table = lecture.splits_table(P, first, splits)
    assert list(table.index) == ["A(1–3) initial", "+B(4–5) ours", "A(1–5) joint"]
    with pytest.raises(ValueError, match="new_class_splits"):
        lecture.run_splits(_with(P, new_class_splits=[9]), train, test, make_model, None, kw, first)
    # the keys the Table 5.4 claims read, once the run has the thesis' split (here: the tiny one stands in)
    monkeypatch.setattr(lecture, "PAPER_SPLIT", {"cub200": (P.n_old, P.n_new)})
    monkeypatch.setattr(lecture, "PAPER_NEW_SPLITS", {"cub200": [2]})
    first.update({"kd_mmd": ours, "joint": joint})
    P2 = _with(P, methods=["kd_mmd", "joint"], beta_grid=[], alpha_grid=[])
    pm = lecture.paper_metrics(P2, {P.seed: first}, {}, [], splits)
    assert pm["cub200/split2/kd_mmd/old_R@1"] == pytest.approx(100 * m["split2/kd_mmd/old_R@1"])
    claimed = {x for c in ch05.CLAIMS for x in c.metrics}
    assert {k.replace("split2", "split25") for k in pm if "/split2/" in k} <= claimed


def _with(P, **changes):
    Q = runs.Params(P)
    Q.update(changes)
    return Q


def _cifar_fixture(root):
    """CIFAR-100 in its python-pickle format, every one of the first 10 classes present (labels rewritten in turn)."""
    raw = root / "cifar100" / "raw"
    cifar100_raw(raw, n_train=40, n_test=20)
    for split in ("train", "test"):
        f = raw / "cifar-100-python" / split
        batch = pickle.loads(f.read_bytes())
        batch["fine_labels"] = [i % 10 for i in range(len(batch["fine_labels"]))]
        f.write_bytes(pickle.dumps(batch, protocol=2))
    assert convert("cifar100", root)["missing"] == []


def test_full_ch05_tiny_cifar100_track(cub_root):
    _cifar_fixture(cub_root)
    P = runs.params("05", profile="full", tiny=True, data_root=str(cub_root), device="cpu")
    data = lecture.cifar_benchmark(P)
    train, test, tasks = data
    assert train.images.shape == (40, 3, 32, 32) and len(test) == 20
    assert [t.tolist() for t in tasks] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]  # 5 tasks, class-id order
    cifar = lecture.run_cifar(P, lecture.method_kwargs(P), data)
    assert set(cifar) == {"initial", "l2_kd", "ewc", "lwf", "kd_mmd"}
    assert cifar["kd_mmd"].model.n_classes == 10 and len(cifar["kd_mmd"].steps) == 5
    assert sum(p.numel() for p in cifar["kd_mmd"].model.trunk.parameters()) == 5_599_904  # GoogLeNet
    table = lecture.cifar_table(cifar)
    assert list(table.columns) == [2, 4, 6, 8, 10] and table.loc["initial"].notna().sum() == 1
    acc = table.drop("initial").to_numpy()
    assert ((0 <= acc) & (acc <= 100)).all()
    # every method starts from the same base network: the same accuracy after the first task
    assert np.allclose(table[2], table.loc["initial", 2])
    # the recorded accuracies are the classifier's, recomputed here for the final model
    last = cifar["kd_mmd"]
    cols = {c: i for i, c in enumerate(np.concatenate(tasks).tolist())}
    again = lecture.top1_accuracy(last.model, test, np.arange(10), cols, lecture.batch_transform(P, 3))
    assert table.loc["kd_mmd", 10] == pytest.approx(100 * again)
    m = lecture.cifar_metrics(cifar)
    assert m["cifar100/real"] == 1 and "cifar100/initial/top1_2" in m and "cifar100/initial/top1_4" not in m
    assert all(math.isfinite(v) for v in m.values())
    runs.record_many(m)
    rec = json.loads(runs.metrics_path().read_text())
    assert rec["metrics"]["cifar100/kd_mmd/top1_10"] == pytest.approx(table.loc["kd_mmd", 10])


def test_cifar_track_skips_without_the_data(cub_root, capsys):
    P = runs.params("05", profile="full", tiny=True, data_root=str(cub_root), device="cpu")
    assert lecture.cifar_benchmark(P) is None and "fetch cifar100" in capsys.readouterr().out
    assert lecture.run_cifar(P, lecture.method_kwargs(P), None) is None and lecture.cifar_metrics(None) == {}
