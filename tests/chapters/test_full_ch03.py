"""Notebook 03's ``full`` profile end to end on the CPU (``tiny=True``): MIRFlickr-25K in its published format
(images, tag files and concept annotations, converted by ``data_scripts``), the AlexNet trunk fine-tuned with the
hashing head (randomly initialised), the text branch, every loss of Eq. 3.7 under both loss normalisations, the
paper's lr schedule, DCMH and SSAH — at 64 px, a few steps. The steps are the notebook's, called at library level."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_real_formats import jpg, mirflickr_raw

from data_scripts.convert import convert
from xmr_lib.chapters.ch03 import config as ch03
from xmr_lib.chapters.ch03 import hashing as H
from xmr_lib.chapters.ch03 import lecture as L
from xmr_lib.course import runs

pytest.importorskip("scipy.io")


@pytest.fixture()
def mir_root(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XMR_RUN_DIR", str(tmp_path / "run"))
    torch.set_num_threads(1)
    raw = tmp_path / "mirflickr25k" / "raw"
    mirflickr_raw(raw)  # 6 items, 5 of them labelled; 10 more in the same format (the probe needs 4 queries)
    words = ["dog", "cute", "sky", "blue", "lake"]
    for i in range(7, 17):
        jpg(raw / "mirflickr" / f"im{i}.jpg", 12 * i, size=(16, 10))
        (raw / "mirflickr" / "meta" / "tags" / f"tags{i}.txt").write_text(f"{words[i % 5]}\n{words[i % 3]}\n")
        concept = ("animals", "sky", "water")[i % 3]
        with open(raw / "mirflickr25k_annotations_v080" / f"{concept}.txt", "a") as f:
            f.write(f"{i}\n")
    convert("mirflickr25k", tmp_path, min_tag_count=1, image_size=8)
    return tmp_path


def test_tiny_knobs_only_scale_the_run(mir_root):
    p = runs.resolve("03", "full", data_root=str(mir_root), tiny=True)
    real, fell_back, _ = ch03.FALLBACK.apply(p)
    assert real and not fell_back
    assert all(p[k] == v for k, v in ch03.TINY_KNOBS.items())
    untouched = [k for k in ch03.PROFILES["full"] if k not in ch03.TINY_KNOBS and k != "tiny"]
    assert all(p[k] == ch03.PROFILES["full"][k] for k in untouched)
    assert all(ch03.PROFILES[prof]["tiny"] is False for prof in ch03.PROFILES)
    assert (p.lr_start, p.lr_end) == (1e-4, 1e-8) and p.ablation_reductions == ["dcmh", "mean"]


def test_default_profiles_keep_one_normalisation_and_their_lr():
    for prof in ("smoke", "default"):
        cfg = ch03.PROFILES[prof]
        assert cfg["ablation_reductions"] == ["dcmh"] and (cfg["lr_start"], cfg["lr_end"]) == (1e-3, 1e-5)


def test_full_ch03_tiny_runs_the_gpu_path_on_mirflickr(mir_root):
    P = runs.params("03", profile="full", tiny=True, data_root=str(mir_root), device="cpu")
    assert not P.fell_back and P.dataset == "mirflickr25k"
    with pytest.warns(UserWarning, match="not the 24"):  # a 3-concept fixture, not the paper's 24
        feats = L.load_features(P)
    # the images themselves at 64 px (flattened channel-first, in [0, 1]): the trunk is trained, not read
    assert feats.image.shape == (14, 3 * 64 * 64) and feats.text.shape == (14, 5) and feats.labels.shape == (14, 3)
    assert len(feats.split["query"]) == 4 and len(feats.split["train"]) == 6
    assert feats.image.min() >= 0 and feats.image.max() <= 1

    cfg = L.hashing_config(P)
    assert (cfg.lr_start, cfg.lr_end, cfg.n_bits, cfg.loss_reduction) == (1e-4, 1e-8, 8, "dcmh")
    assert (cfg.image_trunk, cfg.trunk_pretrained, cfg.image_hidden) == ("alexnet", False, ())
    seeds = [P.seed + i for i in range(P.n_seeds)]
    run = L.Trainer(feats, P.dataset, P.device)
    full0 = run("Full", cfg, seeds[0], keep_model=True)
    # the trunk was fine-tuned end to end: every layer of AlexNet moved from the initialisation of the same seed
    before = L.untrained_model(feats, cfg, seeds[0]).image_net.trunk.state_dict()
    after = full0.model.image_net.trunk.state_dict()
    assert set(before) == set(after) and len(after) == 14  # conv1–5 and fc6–7, weights and biases
    assert all(not torch.equal(before[k], after[k]) for k in after)
    assert math.isfinite(full0.map_i2t) and math.isfinite(full0.map_t2i) and 0 < full0.map_i2t <= 1
    hist = pd.DataFrame(full0.history)
    assert len(hist) == 2 and {"image/pairs", "text/pairs", "image/domain"} <= set(hist)
    # the losses the image branch (trunk included) and the text branch minimise decreased (the total holds α L_d,
    # which rises as the adversarial domain predictor learns; at 1e-4 → 1e-8 over 2 epochs the first epoch does the
    # learning, so the text pass's label term, already flat, is left out)
    assert hist["image/label"].iloc[-1] < hist["image/label"].iloc[0]
    assert hist["text/pairs"].iloc[-1] < hist["text/pairs"].iloc[0]
    assert hist["lr"].tolist() == pytest.approx([1e-4, 1e-8])  # the paper's schedule, both ends
    runs.record_many(L.training_metrics(hist), prefix="training/")

    abl = L.train_ablation(run, cfg, seeds)  # batched over the 2 seeds
    assert list(abl) == ["Baseline1", "Baseline2", "Baseline3", "Full"] and all(len(v) == 2 for v in abl.values())
    assert full0.codes["db_image"].shape == (10, 8) and set(np.unique(full0.codes["db_image"])) <= {-1, 1}
    m = L.ablation_metrics(abl, P.dataset)
    assert all(math.isfinite(v) for vs in m.values() for v in vs)
    runs.record_many(m)
    runs.record_many(L.sanity_metrics(abl, L.chance_map(feats)))

    by_red = L.train_ablation_reductions(run, cfg, abl, P.ablation_reductions, seeds)
    assert list(by_red) == ["dcmh", "mean"] and by_red["dcmh"]["Full"] == abl["Full"]  # §6's runs, reused
    assert run.runs[("Full@mean", seeds[1])].config["loss_reduction"] == "mean"
    rm = L.reduction_metrics(by_red, cfg.loss_reduction)
    assert len(rm["ablation_mean/Baseline2/i2t"]) == 2 and not any(k.startswith("ablation_dcmh") for k in rm)
    assert all(math.isfinite(v) for vs in rm.values() for v in vs)
    runs.record_many(rm)
    table = L.reduction_table(by_red, ch03.PAPER_TABLE_33)
    assert table.shape == (4, 10) and table.loc["Baseline1", ("dcmh", "I→T step")] == ""

    dims, dm = L.train_dim_sweep(run, cfg, abl, P.n_sweep, seeds[:1], ch03.PAPER_TABLE_31)
    assert list(dims.index) == [8, 16] and set(dm) == {f"common_dim/{n}/{t}" for n in (8, 16) for t in ("i2t", "t2i")}
    assert (
        dm["common_dim/16/i2t"] == [abl["Full"][0].map_i2t] and run.runs[("common_dim_8", 0)].config["common_dim"] == 8
    )
    runs.record_many(dm)

    maps = L.train_code_lengths(run, cfg, abl, P.bits, seeds[: P.sweep_seeds])
    assert set(maps) == {(t, b) for t in ("i2t", "t2i") for b in (8, 16)}
    runs.record_many({f"map/{P.dataset}/{t}/{b}": v for (t, b), v in maps.items()})
    sweep, sm = L.train_sweeps(run, cfg, abl, seeds[:1], P.alpha_sweep, P.in_batch_alpha_sweep, P.eta_sweep)
    assert {"alpha/1000/i2t", "in_batch_alpha/0/i2t", "eta/1/t2i"} <= set(sm) and len(sweep) == 5
    extra, pm = L.train_printed_formulas(run, cfg, abl, hist, P.extra_ablations, seeds, seeds[:1])
    assert {"printed_eq37/i2t", "literal_entropy/D_real_entropy_bits"} <= set(pm)
    runs.record_many(sm | pm)

    dcmh_runs = L.train_dcmh(run, P, P.bits, seeds[: P.sweep_seeds])  # DCMH with the same fine-tuned trunk
    dm = L.dcmh_metrics(dcmh_runs, P.dataset)
    assert set(dm) == {f"dcmh/mirflickr25k/{t}/{b}" for t in ("i2t", "t2i") for b in (8, 16)}
    assert all(math.isfinite(v) for vs in dm.values() for v in vs)
    assert dcmh_runs[8][0].config["image_trunk"] == "alexnet"
    runs.record_many(dm)

    ssah_runs = L.train_ssah(run, P, P.ssah_bits, seeds[: P.sweep_seeds])  # SSAH with the same fine-tuned trunk
    sm_ = L.ssah_metrics(ssah_runs, P.dataset)
    assert set(sm_) == {f"ssah/mirflickr25k/{t}/8" for t in ("i2t", "t2i")}
    assert all(math.isfinite(v) and 0 < v <= 1 for vs in sm_.values() for v in vs)
    s0 = ssah_runs[8][0]
    assert {k: s0.config[k] for k in ("image_trunk", "trunk_pretrained", "label_hidden")} == {
        "image_trunk": "alexnet",
        "trunk_pretrained": False,
        "label_hidden": 16,
    }
    assert s0.codes["db_image"].shape == (10, 8) and set(np.unique(s0.codes["db_text"])) <= {-1, 1}
    sh = pd.DataFrame(s0.history)
    assert len(sh) == 2 and sh["lr"].tolist() == pytest.approx([1e-4, 1e-8])
    # the image network (trunk included) pulled its semantic features towards LabNet's; the discriminators learned
    assert sh["image/feat_pairs"].iloc[-1] < sh["image/feat_pairs"].iloc[0]
    assert all(sh[f"disc_{m}/loss"].iloc[-1] < sh[f"disc_{m}/loss"].iloc[0] for m in ("image", "text"))
    runs.record_many(sm_)

    rec = json.loads(runs.metrics_path().read_text())
    assert rec["metrics"]["data/real"] == 1 and rec["params"]["tiny"] is True
    assert {
        "ablation/Full/i2t",
        "ablation_mean/Full/t2i",
        "map/mirflickr25k/i2t/16",
        "dcmh/mirflickr25k/t2i/16",
        "ssah/mirflickr25k/t2i/8",
    } <= set(rec["metrics"])


def test_paper_settings_match_the_full_profile():
    table = runs.paper_settings("03")
    assert {"learning rate", "loss normalisation", "image network", "baselines"} <= set(table.index)
    assert "AlexNet" in table.loc["image network", "ours"] and "fine-tuned" in table.loc["image network", "ours"]
    assert ch03.PROFILES["full"]["image_trunk"] == "alexnet" and ch03.PROFILES["default"]["image_trunk"] == "none"
    assert "1e-4 → 1e-8" in table.loc["learning rate", "ours"] and table.loc["learning rate", "why"] == ""
    assert "mean" in table.loc["loss normalisation", "ours"]
    assert ch03.PROFILES["full"]["n_sweep"] == sorted(ch03.PAPER_TABLE_31) and "N sweep" in table.index
    assert all(r["why"] == "" or len(r["why"]) >= 10 for r in ch03.PAPER_SETTINGS)


def test_full_without_alexnet_weights_says_how_to_fetch_them(tmp_path, monkeypatch):
    for var in ("XMR_WEIGHTS_DIR", "TORCH_HOME", "HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path))
    cfg = H.HashingConfig(n_bits=8, common_dim=16, image_hidden=(), text_hidden=16, image_trunk="alexnet")
    with pytest.raises(FileNotFoundError, match="data_scripts fetch alexnet"):
        H.CrossModalHashingModel(3 * 64 * 64, 5, 3, cfg)
    with pytest.raises(ValueError, match="image_trunk"):
        H.HashingConfig(image_trunk="vgg")
