"""Notebook 08's ``full`` profile: the paper-settings table, Table II's targets (each within the smallest gap its row
of Table II separates), and the paper's fine-tuning of ResNet-101's layer4 + fc run with ``tiny=True`` (random
weights, 32 px, a few steps) on the real-format fixture of the authors' train / test folders."""

from __future__ import annotations

import pytest

from xmr_lib.chapters.ch08 import config as ch08
from xmr_lib.course import runs


def test_table2_tolerances_are_the_gaps_the_table_separates():
    assert (
        ch08.PAPER_TABLE_II[100][("inference", "best")] == 0.73 and ch08.PAPER_TABLE_II[1][("random", "best")] == 0.16
    )
    assert ch08.table2_tolerance(100, "random", "best") == pytest.approx(0.01)  # 0.72 vs inference's 0.73
    assert ch08.table2_tolerance(100, "wordnet", "first") == pytest.approx(0.04)  # 0.39 vs word2vec's 0.35
    assert ch08.table2_tolerance(100, "inference", "first") == pytest.approx(0.05)  # 0.59: 0.20 away, capped
    targets = [c for c in ch08.CLAIMS if c.id.startswith("08.table2_")]
    assert len(targets) == 11 and all("tolerance" in c.note for c in targets)


def test_paper_settings_table():
    table = runs.paper_settings("08")
    assert {"source network", "trained layers", "optimiser", "train / test images"} <= set(table.index)
    assert "layer4" in table.loc["trained layers", "paper"] and table.loc["dropout", "why"] == ""


# ---------------------------------------------------------------------------------------------------------------
# the tiny run of the full path: ResNet-101 (random weights), layer4 + fc fine-tuned on the authors' split


def test_tiny_finetune_on_real_format_fixture(tmp_path, monkeypatch):
    import numpy as np
    import torch
    from fixtures_real_formats import imagenet_targets_dir

    from data_scripts import cli
    from xmr_lib.chapters.ch08 import finetune, transfer

    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    wnids = list(transfer.PAPER_TARGET_WNIDS[:3])
    imagenet_targets_dir(tmp_path / "manual", wnids, n_train=6, n_test=2)
    args = ["fetch", "pascal2019_targets", "--root", str(tmp_path / "data"), "--from-dir", str(tmp_path / "manual")]
    assert cli.main(args + ["--quiet"]) == 0
    split = finetune.paper_split(tmp_path / "data" / "pascal2019_targets", wnids)
    (ftr, ytr), (fte, yte) = split["train"], split["test"]
    assert ytr.tolist() == [0] * 6 + [1] * 6 + [2] * 6 and yte.tolist() == [0, 0, 1, 1, 2, 2]  # the authors' split
    assert not set(map(str, ftr)) & set(map(str, fte)) and all("/test/" in str(f) for f in fte)

    size = 32  # the tiny knob's image size
    trunk = finetune.source_resnet(pretrained=False, device="cpu")
    xtr, xte = finetune.load_images(ftr, size, train=True), finetune.load_images(fte, size, train=False)
    assert xtr.shape == (18, 3, 37, 37) and xte.shape == (6, 3, size, size)
    W, b = finetune.source_classifier(trunk)
    assert W.shape == (1000, 2048) and b.shape == (1000,)
    logits = finetune.pooled_features(trunk, xte) @ W.T + b
    assert logits.shape == (6, 1000) and np.isfinite(logits).all()
    sim = transfer.inference_similarity(finetune.pooled_features(trunk, xtr) @ W.T + b, ytr, 3)
    heads = finetune.initial_classifiers(W, b, {"inference": sim}, 1, seed=0)
    source_before = {k: v.clone() for k, v in trunk.net.state_dict().items()}

    kw = dict(iterations=12, batch_size=6, lr=1e-3, dropout=0.0, eval_every=4, image_size=size, device="cpu")
    for name, (w0, b0) in heads.items():
        start = finetune.Layer4Classifier(trunk, w0, b0, dropout=0.0).state_dict()
        r = finetune.fine_tune(trunk, w0, b0, xtr, ytr, xte, yte, seed=0, **kw)
        assert r.iterations.tolist() == [0, 4, 8, 12] and r.losses.shape == (12,)
        assert np.isfinite(r.fscore).all() and 0 <= r.first <= r.best <= 1
        assert r.losses[-3:].mean() < r.losses[:3].mean(), (name, r.losses)
        end = r.model.state_dict()
        changed = {k.split(".")[0] for k in start if not torch.equal(start[k], end[k])}
        assert changed == {"layer4", "fc"}, (name, changed)  # the frozen part, BatchNorm statistics included, kept
        assert not any(p.requires_grad for p in r.model.frozen.parameters())
    assert all(torch.equal(v, trunk.net.state_dict()[k]) for k, v in source_before.items())  # the source untouched
    np.testing.assert_allclose(heads["inference"][0], W[sim.argmax(1)], rtol=1e-6)  # K = 1: the nearest source row


def test_tiny_paper_experiment_records_table2(tmp_path, monkeypatch):
    """The notebook's full section at library level: ``lecture.finetune_settings`` with ``tiny=True`` →
    ``finetune.paper_experiment`` → the ``resnet/`` metrics the Table II claims read."""
    import numpy as np
    import torch
    from fixtures_real_formats import imagenet_targets_dir

    from data_scripts import cli
    from xmr_lib.chapters.ch08 import finetune, lecture, transfer

    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    wnids = list(transfer.PAPER_TARGET_WNIDS[:3])
    imagenet_targets_dir(tmp_path / "manual", wnids, n_train=4, n_test=2)
    args = ["fetch", "pascal2019_targets", "--root", str(tmp_path / "data"), "--from-dir", str(tmp_path / "manual")]
    assert cli.main(args + ["--quiet"]) == 0
    p = {**ch08.PROFILES["full"], "tiny": True, "device": "cpu"}
    kw = lecture.finetune_settings(p, [0, 1, 2])
    assert kw["pretrained"] is False and kw["seeds"] == [0] and kw["image_size"] == 32 and kw["lr"] == 1e-3
    assert lecture.finetune_settings({**p, "tiny": False}, [0, 1, 2])["iterations"] == 3000
    syn = [transfer.synset(c.synset) for c in transfer.paper_targets()[:3]]
    src = lecture.source_synsets()
    types = transfer.target_types(syn, src)
    semantic = {"wordnet": transfer.wordnet_similarity(syn, src)}
    out = finetune.paper_experiment(tmp_path / "data", wnids, types, semantic, progress=False, **kw)
    red = out["reduction"]
    assert (out["n_train"], out["n_test"]) == (4, 2) and len(red) == 2 * 3  # 2 shots × (Xavier + 2 similarities)
    assert set(red.method) == {"random", "inference", "wordnet"} and np.isfinite(red[["first", "best"]]).all().all()
    assert (red.best >= red.first).all() and {len(k) for k in out["best_k"].values()} == {3}
    run = out["runs"][0, 2, "inference"]
    assert run.iterations.tolist() == [0, 1, 2, 3] and np.isfinite(run.losses).all()
    metrics = lecture.reduction_metrics(red, kw["shots"])
    assert metrics["reduction/best/random/shots1_seeds"] == red.query("shots == 1 and method == 'random'").best.tolist()


def test_full_sections_1_to_8_keep_the_authors_split(tmp_path, monkeypatch):
    """Sections 1–8 on the paper's images (full profile): test images from the authors' ``test/`` folder, train /
    validation drawn per seed from ``train/`` — never pooled and re-split — then features and a finite F-score."""
    import numpy as np
    import torch
    from fixtures_real_formats import imagenet_targets_dir

    from data_scripts import cli
    from xmr_lib.chapters.ch08 import lecture, transfer

    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    wnids = list(transfer.PAPER_TARGET_WNIDS[:3])
    imagenet_targets_dir(tmp_path / "manual", wnids, n_train=6, n_test=2)
    args = ["fetch", "pascal2019_targets", "--root", str(tmp_path / "data"), "--from-dir", str(tmp_path / "manual")]
    assert cli.main(args + ["--quiet"]) == 0
    targets, root = transfer.paper_targets()[:3], tmp_path / "data"
    tr_n, va_n, te_n = 2, 1, 2  # train_per_class, val_per_class, test_per_class
    pool = transfer.target_pool(targets, tr_n + va_n + te_n, seed=0, data_root=root, test_per_class=te_n)
    folder = np.array(["/test/" in str(f) for f in pool.files])
    assert pool.test.tolist() == folder.tolist() and pool.test.sum() == 3 * te_n and len(pool) == 3 * 5
    assert np.bincount(pool.labels[pool.test]).tolist() == [2, 2, 2]
    for s in (0, 1):
        tr, va, te = lecture.split(pool.labels, tr_n, va_n, s, pool.test)
        assert te.tolist() == np.flatnonzero(pool.test).tolist()  # exactly the authors' test images
        assert not folder[tr].any() and not folder[va].any() and not set(tr) & set(va)
        assert np.bincount(pool.labels[tr]).tolist() == [2, 2, 2] and np.bincount(pool.labels[va]).tolist() == [1] * 3
    with pytest.raises(ValueError, match="test_per_class"):
        transfer.target_pool(targets, 2, data_root=root, test_per_class=2)
    pooled = transfer.target_pool(targets, 5, seed=0, data_root=root)  # without test_per_class: pooled (as before)
    assert pooled.test is None and len(pooled) == 15

    source = transfer.source_network(device="cpu")
    feats = transfer.source_features(source, pool, image_size=32, device="cpu", cache_key={"t": 1}, progress=False)
    assert feats.shape == (15, 1280) and np.isfinite(feats).all()
    logits = feats @ source.weight.T + source.bias
    sims = lecture.seed_similarities(logits, pool.labels, tr, 3, {})
    types = transfer.target_types([transfer.synset(c.synset) for c in targets], source.synsets)
    f = lecture.first_f(source.weight, source.bias, sims["inference"], 1, feats[te], pool.labels[te], types)
    assert np.isfinite(f) and 0 <= f <= 1
