"""Notebook 04's ``full`` profile end to end on the CPU (``tiny=True``): Flickr30K in its published format
(Karpathy's json + images, converted by ``data_scripts``), the thesis's MobileNet trunk (randomly initialised) and
Bi-LSTM text branch fine-tuned with Algorithm 1, two learning rates and their decay — at 32 px, a few steps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from fixtures_real_formats import flickr30k_raw

from data_scripts.convert import convert
from xmr_lib.chapters.ch04 import adversarial as adv
from xmr_lib.chapters.ch04 import config as ch04
from xmr_lib.chapters.ch04 import endtoend as e2e
from xmr_lib.chapters.ch04 import lecture as L
from xmr_lib.course import runs

pytest.importorskip("torchvision")


@pytest.fixture()
def f30k_root(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XMR_RUN_DIR", str(tmp_path / "run"))
    torch.set_num_threads(1)
    flickr30k_raw(tmp_path / "flickr30k" / "raw", splits=("train",) * 6 + ("restval",) * 2 + ("test",) * 10)
    convert("flickr30k", tmp_path)
    return tmp_path


def test_tiny_knobs_only_scale_the_run(f30k_root):
    p = runs.resolve("04", "full", data_root=str(f30k_root), tiny=True)
    real, fell_back, _ = ch04.FALLBACK.apply(p)
    assert real and not fell_back
    assert all(p[k] == v for k, v in ch04.TINY_KNOBS.items())
    untouched = [k for k in ch04.PROFILES["full"] if k not in ch04.TINY_KNOBS and k != "tiny"]
    assert all(p[k] == ch04.PROFILES["full"][k] for k in untouched)
    assert all(ch04.PROFILES[prof]["tiny"] is False for prof in ch04.PROFILES)
    assert p.image_backbone == "mobilenet_v2" and p.text_encoder == "bilstm" and p.lr_backbone == 2e-5


def test_full_without_data_falls_back_to_the_frozen_default_path(tmp_path):
    p = runs.resolve("04", "full", data_root=str(tmp_path))
    real, fell_back, _ = ch04.FALLBACK.apply(p)
    assert fell_back and p.dataset == "shapes" and not L.end_to_end(p) and L.engine(p) is None


def test_mixed_settings_are_refused():
    with pytest.raises(ValueError, match="text_encoder='bilstm'"):
        L.end_to_end({"image_backbone": "mobilenet_v2", "text_encoder": "minilm"})
    with pytest.raises(ValueError, match="image_backbone"):
        e2e.trunk("mobilenet_v1", pretrained=False)


def test_full_ch04_tiny_runs_the_gpu_path_on_flickr30k(f30k_root):
    P = runs.params("04", profile="full", tiny=True, data_root=str(f30k_root), device="cpu")
    assert not P.fell_back and L.end_to_end(P)
    data = L.load_benchmark(P)
    s = data.split
    assert s.train_image.shape == (8, 3, 32, 32) and s.train_image.dtype == np.uint8  # train + restval
    assert s.test_image.shape == (10, 3, 32, 32) and s.train_text.shape[0] == 40 and s.test_text.shape[0] == 50
    assert s.train_text.dtype == np.int64 and len(data.vocab) >= 3 and data.test_images.shape == (10, 96, 96, 3)
    base = L.common_space_config(P, data)
    assert not base.pretrained and base.lr_backbone == 2e-5 and base.lr_decay == 0.9 and base.vocab_size > 0
    seeds = [P.seed]
    results = adv.run_configs(s, base, P.ablation, seeds, device=P.device, progress=False, engine=L.engine(P))
    model = results["Full"]["models"][0]
    assert isinstance(model.image, e2e.ImageBranch) and isinstance(model.text, e2e.TextBranch)
    assert sum(p.numel() for p in model.image.features.parameters()) > 2e6  # MobileNetV2's trunk
    h = results["Full"]["history"][0]
    assert len(h.epochs) == 2 and {"ce", "di", "kl", "tr", "adv"} <= set(h.epochs[0])
    assert h.epochs[1]["total"] < h.epochs[0]["total"]  # the loss decreased
    assert h.epochs[1]["lr_backbone"] == pytest.approx(2e-5)  # decayed every 2 epochs: after the second
    m = L.ablation_metrics(results, 100.0 / len(s.test_image))
    assert all(math.isfinite(v) for vs in m.values() for v in vs)
    runs.record_many(m)
    zi, zt = adv.embed(model, s.test_image, s.test_text)
    assert zi.shape == (10, 16) and zt.shape == (50, 16) and np.allclose(np.linalg.norm(zi, axis=1), 1, atol=1e-5)
    pi, pt = L.discriminator_outputs(model, s)
    assert pi.shape == (10,) and pt.shape == (50,)
    stab = adv.noise_stability(model, s.test_image, s.test_text, s.test_pair, P.noise_sigmas, seed=0)
    assert [r["sigma"] for r in stab] == [0.0, 0.1] and stab[0] != stab[1]
    assert model.image.noise_sigma == 0.0 and model.text.noise_sigma == 0.0
    cx = adv.complexity(model, s.test_image, s.test_text)
    assert cx["params_M"] > 2 and cx["ms_per_pair"] > 0
    rec = json.loads(runs.metrics_path().read_text())
    assert rec["metrics"]["data/real"] == 1 and rec["params"]["tiny"] is True
    assert "ablation/Full/i2t/R@1" in rec["metrics"]
    assert {"i2t/R@10", "t2i/R@10"} <= set(results["Full"]["metrics"])  # the columns of the Table 4.4 view
    assert len(L.ablation_table(results, ch04.PAPER_TABLE_44)) == 2


def test_paper_settings_match_the_full_profile():
    table = runs.paper_settings("04")
    assert {"image network", "text network", "optimiser and learning rates", "batch size"} <= set(table.index)
    full = ch04.PROFILES["full"]
    assert (full["lr_backbone"], full["lr"], full["batch_size"], full["dim"], full["k_steps"]) == (
        2e-5,
        2e-4,
        64,
        512,
        5,
    )
    assert 2 * full["text_hidden"] == 1024 and full["tau"] == 4.0 and full["margin"] == 0.5  # §4.5.1
    assert "2e-5" in table.loc["optimiser and learning rates", "paper"]
    assert all(r["why"] == "" or len(r["why"]) >= 10 for r in ch04.PAPER_SETTINGS)


def test_identity_relevance_counts_every_image_of_the_person():
    # images 0 and 1 show the same person; caption 0 (of image 0) lies nearest image 1
    zi = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32)
    zt = np.array([[0.1, 1.0], [0.0, 1.0], [-1.0, 0.1]], np.float32)
    pair = np.array([0, 1, 2])
    inst = adv.retrieval_metrics(zi, zt, pair, ks=(1,))
    ident = adv.retrieval_metrics(zi, zt, pair, ks=(1,), image_label=np.array([7, 7, 3]))
    assert inst["t2i/R@1"] == pytest.approx(200 / 3) and ident["t2i/R@1"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="image_label"):
        adv.retrieval_metrics(zi, zt, pair, image_label=np.array([1, 2]))


def test_full_ch04_tiny_on_cuhk_pedes_scores_by_person(tmp_path, monkeypatch):
    from fixtures_real_formats import cuhk_pedes_raw

    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XMR_RUN_DIR", str(tmp_path / "run"))
    torch.set_num_threads(1)
    cuhk_pedes_raw(tmp_path / "cuhk_pedes" / "raw", people=(("train", 3),) * 4 + (("test", 2),) * 3)
    convert("cuhk_pedes", tmp_path)
    P = runs.params("04", profile="full", tiny=True, dataset="cuhk_pedes", data_root=str(tmp_path), device="cpu")
    assert not P.fell_back and L.end_to_end(P)
    data = L.load_benchmark(P)
    s = data.split
    assert s.train_image.shape == (8, 3, 32, 32) and s.test_image.shape == (6, 3, 32, 32)
    assert s.test_image_label.tolist() == [5, 5, 6, 6, 7, 7]
    base = L.common_space_config(P, data)
    results = adv.run_configs(s, base, ["Full"], [P.seed], device="cpu", progress=False, engine=L.engine(P))
    m = results["Full"]["metrics"]
    assert all(math.isfinite(v[0]) for v in m.values())
    zi, zt = adv.embed(results["Full"]["models"][0], s.test_image, s.test_text)  # scored by person, not instance
    by_person = adv.retrieval_metrics(zi, zt, s.test_pair, image_label=s.test_image_label)
    assert m["t2i/R@5"][0] == by_person["t2i/R@5"] == 100.0  # 5 of 6 images always include one of the person's two
    ids = {c.id for c in ch04.CLAIMS}
    assert {"04.full_cuhk_pedes_resnet152_t2i_r1", "04.separate_beats_unified_cuhk_pedes_resnet152_i2t"} <= ids
    assert "04.full_flickr8k_mobilenet_v2_i2t_r1" in ids
    assert "--from-dir" in ch04.FALLBACK.fetch(P)
