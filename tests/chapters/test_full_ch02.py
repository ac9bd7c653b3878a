"""Notebook 02's ``full`` profile end to end on the CPU (``tiny=True``): revisited Oxford / Paris in their published
format (revisitop's ``gnd_*.pkl`` + the image archives' folders, converted by ``data_scripts``), the paper's VGG16
(randomly initialised) pooled, whitened and fine-tuned, then the depth sweep (AlexNet, VGG16, GoogLeNet, ResNet-50,
ResNet-101, MAC; each trunk fine-tuned first) and the dimension sweep (ResNet-50 MAC + PCA-w) of Fig. 2.13 — at 64 px, a few tuples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fixtures_real_formats import revisited_raw, sfm120k_raw
from PIL import Image

from data_scripts.convert import convert
from xmr_lib.chapters.ch02 import config as ch02
from xmr_lib.chapters.ch02 import lecture as L
from xmr_lib.core import claims
from xmr_lib.course import runs
from xmr_lib.data import sfm120k
from xmr_lib.retrieval import pooling

pytest.importorskip("torchvision")

_LANDMARKS = {"roxford5k": ("all_souls", "bodleian", "christ_church"), "rparis6k": ("eiffel", "louvre", "pantheon")}


def _benchmark(root, name, rng):
    """3 landmarks × 4 database images, 6 queries (2 per landmark); noise images of varying size."""
    db = [f"{lm}_{i:06d}" for lm in _LANDMARKS[name] for i in range(4)]
    qs = [f"{lm}_{100 + i:06d}" for lm in _LANDMARKS[name] for i in range(2)]
    gnd = [
        {"easy": [4 * (k // 2), 4 * (k // 2) + 1], "hard": [4 * (k // 2) + 2], "junk": [4 * (k // 2) + 3]}
        for k in range(6)
    ]
    for g in gnd:
        g["bbx"] = [1, 1, 20, 14]
    revisited_raw(root / name, name, db, qs, gnd)
    for p in (root / name / "raw").rglob("*.jpg"):  # distinct pictures, not flat colour
        h, w = int(rng.integers(18, 30)), int(rng.integers(24, 40))
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
    assert convert(name, root)["missing"] == []


@pytest.fixture()
def revisited_root(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XMR_RUN_DIR", str(tmp_path / "run"))
    for var in ("XMR_WEIGHTS_DIR", "XMR_DATA_DIR", "TORCH_HOME"):  # no weights anywhere: tiny needs none
        monkeypatch.setenv(var, str(tmp_path / var))
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    for name in _LANDMARKS:
        _benchmark(tmp_path, name, rng)
    return tmp_path


def test_tiny_knobs_only_scale_the_run(revisited_root):
    p = runs.resolve("02", "full", data_root=str(revisited_root), tiny=True)
    real, fell_back, _ = ch02.FALLBACK.apply(p)
    assert real and not fell_back
    assert all(p[k] == v for k, v in ch02.TINY_KNOBS.items())
    untouched = [k for k in ch02.PROFILES["full"] if k not in ch02.TINY_KNOBS and k != "tiny"]
    assert all(p[k] == ch02.PROFILES["full"][k] for k in untouched)
    assert all(prof["tiny"] is False for prof in ch02.PROFILES.values())
    assert p.backbone == "vgg16" and p.depth_backbones == ["alexnet", "vgg16", "googlenet", "resnet50", "resnet101"]


def test_full_without_weights_names_the_fetch_commands(revisited_root, tmp_path):
    p = runs.resolve("02", "full", data_root=str(revisited_root))
    assert ch02.FALLBACK.apply(p)[:2] == (True, False)  # the data are there: no fallback ...
    with pytest.raises(FileNotFoundError, match="python -m data_scripts fetch vgg16"):
        L.extractor(p)  # ... but the paper's trunk needs its weights, and says how to get them
    (tmp_path / "nothing").mkdir()
    q = runs.resolve("02", "full", data_root=str(tmp_path / "nothing"))
    _, fell_back, banner = ch02.FALLBACK.apply(q)
    assert fell_back and "data_scripts fetch resnet101" in banner
    assert q.backbone == "efficientnet_lite0" and q.depth_backbones == [] and q.dims == []  # no weights: left out


def test_full_ch02_tiny_runs_the_gpu_path_on_revisited(revisited_root):
    P = runs.params("02", profile="full", tiny=True, data_root=str(revisited_root), device="cpu")
    seeds = [P.seed]
    bench = L.load_benchmarks(P, seeds)
    assert sorted(bench) == [("roxford5k", 0), ("rparis6k", 0)]
    b = bench[("roxford5k", 0)]
    assert len(b.db) == 12 and len(b.queries) == 6 and len(b.train) == 12

    trunk, ex = L.extractor(P)  # the paper's VGG16, random: no weights needed
    assert trunk.name == "vgg16" and ex.model == "vgg16-random" and ex.lower_blocks == len(trunk.features) - 2
    low = L.lower_maps(ex, bench)
    fns = {name: pooling.get_pooling(name) for name in P.poolings}
    desc = L.describe_parts(ex, low, fns)
    assert desc[("roxford5k", 0, "gem")]["db"].shape == (12, 512)
    ev = L.Evaluator.from_params(bench, P, seeds)
    for name in P.poolings:
        r = ev.scores(desc, name, "PCA-w")
        assert all(0 <= v[0] <= 100 for v in r.values()), name

    before = [t.detach().clone() for t in ex.upper.parameters()]
    ft, hist = L.finetune_heads(ex.upper, bench, low, P, full=True)
    assert sorted(ft) == [("roxford5k", 0, "gem"), ("rparis6k", 0, "gem")]
    h = hist[("roxford5k", 0, "gem")]
    assert len(h.loss) == P.ft_epochs and all(math.isfinite(x) for x in h.loss)
    moved = [not torch.equal(a, c) for a, c in zip(before, ft[("roxford5k", 0, "gem")].features.parameters())]
    assert any(moved) and all(torch.equal(a, c) for a, c in zip(before, ex.upper.parameters()))  # a copy trained

    depth, ddesc = L.depth_sweep(bench, P, P.depth_backbones)
    assert {n: r["dim"] for n, r in depth.items()} == {
        "alexnet": 256,
        "vgg16": 512,
        "googlenet": 1024,
        "resnet50": 2048,
        "resnet101": 2048,
    }
    assert all(len(r["medium_aps"]) == 6 and 0 <= r["medium"] <= 100 for r in depth.values())
    assert P.finetune_depth and all(math.isfinite(r["ft_loss_first"] + r["ft_loss_last"]) for r in depth.values())
    dims = L.dimension_sweep(bench, P, ddesc[P.dim_backbone], P.dims)
    assert sorted(dims) == [2, 4] and all(math.isfinite(r["medium"]) for r in dims.values())
    rec = L.sweep_records(depth, dims) | {"data/real": 1}
    assert rec["full/dim/max/medium_aps"] == dims[4]["medium_aps"]
    runs.record_many(rec)
    fig = L.plot_sweeps(depth, dims, P.dim_backbone)
    assert len(fig.axes) == 2
    # every claim of the sweeps is decided from these records (6 queries: the paired rule has its 5 samples)
    for c in ch02.CLAIMS:
        if c.id.startswith("02.full_d"):
            row = claims.evaluate_claim(c, {"profile": "full", "metrics": rec})
            assert row["status"] in (claims.HOLDS, claims.FAILS) and "cannot decide" not in row.get("why", ""), row


def test_depth_trunk_is_finetuned_by_the_chapters_protocol_before_it_is_measured(revisited_root):
    P = runs.params("02", profile="full", tiny=True, data_root=str(revisited_root), device="cpu")
    assert ch02.PROFILES["full"]["finetune_depth"] is True  # the paper's setting (§2.5.3)
    bench = L.load_benchmarks(P, [P.seed])
    torch.manual_seed(0)
    ref = L.trunk_of("alexnet", P)  # the same random initialisation as the one fine-tuned below
    torch.manual_seed(0)
    trunk, hist = L.finetune_trunk("alexnet", bench, P)
    assert len(hist.loss) == P.ft_epochs and all(math.isfinite(x) for x in hist.loss)
    n_top = sum(1 for m in list(trunk.features)[-P.ft_blocks :] for _ in m.parameters())
    pairs = list(zip(ref.features.parameters(), trunk.features.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in pairs[: len(pairs) - n_top])  # the cached lower part is frozen
    assert any(not torch.equal(a, b) for a, b in pairs[len(pairs) - n_top :])  # the top blocks trained in place
    b = bench[(P.datasets[0], P.seed)]
    d = {
        part: L.trunk_descriptors(trunk, getattr(b, part), P.image_size, {"mac": pooling.get_pooling("mac")})["mac"]
        for part in L.PARTS
    }
    r = L.rmap(d["queries"], d["db"], b.gnd)
    assert d["db"].shape == (12, 256) and math.isfinite(r["medium"]) and 0 <= r["medium"] <= 100


# ---------------------------------------------------------------------------------------------------------------
# retrieval-SfM-120k: the cirtorch recipe's training set (fixture in its published format, converted)


@pytest.fixture()
def sfm_root(revisited_root):
    sfm120k_raw(revisited_root / sfm120k.NAME / "raw", size=(40, 30))
    assert convert(sfm120k.NAME, revisited_root)["missing"] == []
    return revisited_root


def test_without_sfm120k_full_says_it_trains_on_the_other_revisited_set(revisited_root, capsys):
    P = runs.params("02", profile="full", tiny=True, data_root=str(revisited_root), device="cpu")
    assert P.train_set == "auto" and L.training_set(P) is None
    assert "the other revisited set" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="data_scripts fetch retrieval_sfm120k"):
        L.training_set(runs.params("02", profile="full", tiny=True, data_root=str(revisited_root), train_set="sfm120k"))


def test_full_ch02_tiny_finetunes_on_sfm120k_by_the_cirtorch_recipe(sfm_root, capsys):
    P = runs.params("02", profile="full", tiny=True, data_root=str(sfm_root), device="cpu")
    assert ch02.PROFILES["full"]["sfm_image_size"] == 362 and ch02.PROFILES["full"]["sfm_pool"] == 22000
    train = L.training_set(P)
    assert "retrieval-SfM-120k (12 images, 5 clusters, 7 query-positive pairs)" in capsys.readouterr().out
    bench = L.load_benchmarks(P, [P.seed])
    trunk, ex = L.extractor(P)  # random VGG16
    low = L.lower_maps(ex, bench)
    before = [t.detach().clone() for t in ex.upper.parameters()]
    ft, hist = L.finetune_heads(ex.upper, bench, low, P, True, ex, train)
    assert sorted(ft) == [("roxford5k", 0, "gem"), ("rparis6k", 0, "gem")]
    assert ft[("roxford5k", 0, "gem")] is ft[("rparis6k", 0, "gem")]  # one SfM network serves both test sets
    h = hist[("roxford5k", 0, "gem")]
    assert len(h.loss) == P.sfm_epochs == 2 and all(math.isfinite(x) and x > 0 for x in h.loss)
    assert all(math.isfinite(x) for x in h.negative_distance + h.positive_distance)
    assert np.isclose(h.lr[1] / h.lr[0], math.exp(-0.01))  # cirtorch's per-epoch decay
    net = ft[("roxford5k", 0, "gem")]
    assert any(not torch.equal(a, c) for a, c in zip(before, net.features.parameters()))  # trained ...
    assert all(torch.equal(a, c) for a, c in zip(before, ex.upper.parameters()))  # ... a copy
    fns = {name: pooling.get_pooling(name) for name in P.poolings}
    own, _ = L.finetuned_descriptors(ex, ft, low, fns, "gem")
    lw = L.sfm_whitened_scores(ex, ft, own, bench, P)
    assert lw["_pairs"] == "retrieval-SfM-120k-whiten.pkl"
    assert all(0 <= v <= 100 for ds in ("roxford5k", "rparis6k") for v in lw[ds].values())
    rec = {f"full/sfm_gem_lw/{ds}/{k}": v for ds in ("roxford5k", "rparis6k") for k, v in lw[ds].items()}
    runs.record_many(rec | {"full/finetune_on_sfm120k": 1})
    written = runs.recorded()["metrics"]
    assert written["full/finetune_on_sfm120k"] == 1 and all(math.isfinite(written[k]) for k in rec)

    torch.manual_seed(0)
    ref = L.trunk_of("alexnet", P)
    torch.manual_seed(0)
    trunk, th = L.finetune_trunk("alexnet", bench, P, train)  # the depth sweep's fine-tuning on SfM-120k
    assert len(th.loss) == 2 and all(math.isfinite(x) for x in th.loss)
    n_top = sum(1 for m in list(trunk.features)[-P.ft_blocks :] for _ in m.parameters())
    pairs = list(zip(ref.features.parameters(), trunk.features.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in pairs[: len(pairs) - n_top])  # the lower part stays frozen
    assert any(not torch.equal(a, b) for a, b in pairs[len(pairs) - n_top :])


def test_embed_items_decodes_in_workers_with_the_same_descriptors(monkeypatch):
    """The GPU path's DataLoader workers (forced here on the CPU) give the descriptors of the one-process path, in
    the order of ``idx``."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (int(h), int(w), 3), dtype=np.uint8) for h, w in rng.integers(8, 40, (6, 2))]
    images[4] = np.full((13, 34, 3), (204, 102, 51), np.uint8)  # one colour: resizing keeps it
    inputs = L.SfmInputs(images, torch.nn.Identity(), 16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"))
    net = torch.nn.Sequential(torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten())
    idx = np.array([4, 0, 5, 5, 2])
    one = L.embed_items(net, inputs, idx, torch.device("cpu"))
    monkeypatch.setattr(L, "_loader_workers", lambda device: 2)
    two = L.embed_items(net, inputs, idx, torch.device("cpu"))
    assert one.shape == (5, 3) and np.array_equal(one, two)
    assert np.allclose(one[0], [1.2, -0.4, -1.2], atol=1e-5)  # (204, 102, 51) / 255 = (0.8, 0.4, 0.2)
