"""Notebook 07's ``full`` profile end to end on the CPU (``tiny=True``): the CUB-200 → Stanford Dogs sequence in
the datasets' published formats (converted by ``data_scripts``), the paper's trunk (ResNet-50, randomly initialised,
for the student and the on-the-fly teacher), the generation from the teacher's BatchNorm statistics and every method
— at 32 px and a handful of steps; and the paper's settings of the full profile."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fixtures_real_formats import cub_fixture, jpg

from data_scripts.convert import convert
from xmr_lib.chapters.ch07 import config as ch07
from xmr_lib.chapters.ch07 import lecture
from xmr_lib.chapters.ch07 import lifelong as ll
from xmr_lib.course import runs

pytest.importorskip("torchvision")
pytest.importorskip("scipy.io")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XMR_RUN_DIR", str(tmp_path / "run"))
    import torch

    torch.set_num_threads(1)


def dogs_raw(raw, n_classes: int, n_train: int, n_test: int) -> None:
    """Stanford Dogs' published layout (Images/<wnid-name>/*.jpg, train_list.mat / test_list.mat)."""
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


def test_full_profile_takes_the_papers_generation_lr_and_kl_form():
    full, default = ch07.PROFILES["full"], ch07.PROFILES["default"]
    assert full["gen_lr"] == pytest.approx(0.5 / 255, rel=0.05)  # §7.5.2: Adam lr 0.5 on 0–255 pixels
    assert (full["temperature"], full["kd_scale"], full["lambda_kd1"], full["lambda_kd2"]) == (1.0, 1.0, 80.0, 20.0)
    assert full["base_iterations"] == 1500 * (150 // full["classes_per_batch"])  # 1500 author-epochs
    assert (default["gen_lr"], default["kd_scale"], default["temperature"]) == (0.05, 0.1, 4.0)  # unchanged
    settings = {r["setting"] for r in ch07.PAPER_SETTINGS}
    assert {"backbone", "generation", "schedule", "Gram KL form"} <= settings


def test_full_ch07_tiny_runs_the_gpu_path_on_cub_then_dogs(tmp_path):
    cub_fixture(tmp_path / "cub200" / "raw", n_classes=4, per_class=5, n_train=3)
    dogs_raw(tmp_path / "stanford_dogs" / "raw", n_classes=4, n_train=3, n_test=2)
    for d in ("cub200", "stanford_dogs"):
        assert convert(d, tmp_path)["missing"] == []
    P = runs.params("07", profile="full", tiny=True, data_root=str(tmp_path), device="cpu")
    assert not P.fell_back and P.backbone == "resnet50" and P.image_size == 32 and P.gen_lr == 0.002
    bench = lecture.benchmark(P, P.seed)
    assert bench.datasets == ["cub200", "stanford_dogs"] and tuple(bench.train.images.shape[1:]) == (3, 32, 32)
    make_model = lecture.model_factory(P)
    transform = lecture.batch_transform(P)
    assert sum(p.numel() for p in make_model(2).trunk.parameters()) > 2e7  # ResNet-50's trunk
    base = lecture.train_first(P, bench, make_model, transform)
    cache0 = {}
    _, g0 = lecture.generate(P, base.model, bench, transform, cache0)
    assert g0.images.shape[0] == P.gen_images and np.isfinite(np.asarray(g0.images, dtype=float)).all()
    results = lecture.run_all(P, [P.seed], bench, base, cache0, make_model, transform)
    assert set(P.methods + P.ablation_methods) <= set(results[P.seed])
    metrics = lecture.score_metrics(P, results, bench, g0)
    flat = [x for v in metrics.values() for x in (v if isinstance(v, list) else [v]) if isinstance(x, float)]
    assert flat and all(math.isfinite(x) for x in flat)
    runs.record_many(metrics)
    rec = json.loads(runs.metrics_path().read_text())
    assert rec["metrics"]["data/real"] == 1 and rec["params"]["tiny"] is True
    assert ll.harmonic_mean(0.5, 0.5) == pytest.approx(0.5)


def test_feature_kd_forms_of_tables_7_1_to_7_3():
    import torch

    s, t = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    assert float(ll.feature_kd_loss(s, t, "l1")) == pytest.approx((1 + 1) / 2)  # |1| + |−1| over 2 images
    assert float(ll.feature_kd_loss(s, t, "l2")) == pytest.approx((1 + 1) / 2)
    assert float(ll.feature_kd_loss(s, s.clone(), "mmd")) == pytest.approx(0.0, abs=1e-3)
    assert float(ll.feature_kd_loss(s, t, "kl", 1.0)) == pytest.approx(float(ll.gram_kl(s, t, 1.0)))
    with pytest.raises(ValueError, match="form"):
        ll.feature_kd_loss(s, t, "cos")
    mk = lambda n: None  # noqa: E731 (never called while building the plugins)
    for v in ("kd_l1", "kd_replay_l2", "dkd_mmd"):
        base = v.rsplit("_", 1)[0]
        names = [p.name for p in ll.lifelong_plugins(v, make_model=mk)]
        assert names == [p.name for p in ll.lifelong_plugins(base, make_model=mk)]
        kd1 = [p for p in ll.lifelong_plugins(v, make_model=mk) if p.name == "L_kd1"][0]
        assert kd1.params == {"form": v.rsplit("_", 1)[1]}
    assert set(ch07._METHODS) == set(ll.LIFELONG_METHODS)
