"""xmr_lib.chapters.ch03.lecture (the steps notebook 03 calls) and the chapter's fallback rule (config.FALLBACK)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest

from xmr_lib.chapters.ch03 import config as ch03
from xmr_lib.chapters.ch03 import crossmodal as cm
from xmr_lib.chapters.ch03 import hashing as H
from xmr_lib.chapters.ch03 import lecture as L
from xmr_lib.course import runs

matplotlib.use("Agg")


# ---------------------------------------------------------------------------------------------------------------
# the fallback rule


def test_full_without_data_falls_back_to_shapes_clamped():
    p = runs.resolve("03", "full")
    assert p.dataset == "mirflickr25k" and p.data_root is None
    real, fell_back, banner = ch03.FALLBACK.apply(p)
    assert (real, fell_back) == (False, True)
    assert "FALLING BACK" in banner and "python -m data_scripts fetch mirflickr25k --root DIR" in banner
    # the default profile's data at the full profile's training settings, sizes clamped to the 5,000 pairs
    assert p.dataset == "shapes" and p.n_query == 1000 and p.n_train == 4000 and p.n_retrieval is None
    assert p.epochs == ch03.PROFILES["full"]["epochs"] and p.bits == [16, 32, 64]
    q = runs.resolve("03", "full", n_retrieval=3000, n_train=10000)
    ch03.FALLBACK.apply(q)
    assert (q.n_query, q.n_retrieval, q.n_train) == (1000, 3000, 3000)


def test_default_without_data_raises_naming_the_fetch_command():
    p = runs.resolve("03", "default", dataset="nuswide")
    with pytest.raises(ValueError, match=r"data_root.*python -m data_scripts fetch nuswide --root DIR"):
        ch03.FALLBACK.apply(p)


def test_shapes_is_not_a_real_dataset_and_the_embedded_size_is_right():
    assert ch03.FALLBACK.apply(runs.resolve("03", "smoke")) == (False, False, "")
    assert len(cm.load_crossmodal_pairs("shapes", caption_drop=0.5)) == ch03.SHAPES_PAIRS


def test_params_records_the_markers(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("XMR_NOTEBOOK", "03_test")
    p = runs.params("03", profile="full", device="cpu")
    rec = json.loads((run_dir / "03_test.metrics.json").read_text())
    assert p.fell_back and rec["metrics"] == {"data/fallback": 1} and rec["params"]["dataset"] == "shapes"
    assert "FALLING BACK" in capsys.readouterr().out
    runs.params("03", profile="smoke", device="cpu")
    assert json.loads((run_dir / "03_test.metrics.json").read_text())["metrics"] == {"data/fallback": 0}


def test_a_prepared_dataset_is_read_not_replaced(tmp_path):
    from fixtures_real_formats import mirflickr_raw

    from data_scripts.convert import convert

    pytest.importorskip("scipy.io")
    mirflickr_raw(tmp_path / "mirflickr25k" / "raw")
    convert("mirflickr25k", tmp_path, min_tag_count=1, image_size=8)
    p = runs.resolve("03", "full", data_root=str(tmp_path), n_query=1, n_train=2, image_encoder="pixels")
    assert ch03.FALLBACK.apply(p) == (True, False, "") and p.dataset == "mirflickr25k"
    with pytest.warns(UserWarning, match="not the 24"):
        feats = L.load_features({**p, "device": "cpu"})
    assert feats.name == "mirflickr25k" and len(feats.split["query"]) == 1
    (tmp_path / "mirflickr25k" / "images.npy").unlink()  # neither images nor shipped features: not there
    q = runs.resolve("03", "full", data_root=str(tmp_path))
    assert ch03.FALLBACK.apply(q)[1] and q.dataset == "shapes"


def test_knob_help_covers_every_knob():
    assert set(ch03.KNOB_HELP) == set(ch03.PROFILES["default"])
    table = runs.knob_table("03")
    assert (table["what"] != "").all() and list(table.columns) == ["smoke", "default", "full", "what"]


# ---------------------------------------------------------------------------------------------------------------
# lecture steps, on hand-made runs


def _run(i2t, t2i, codes=None, history=None, probe=0.6):
    return SimpleNamespace(
        map_i2t=i2t,
        map_t2i=t2i,
        codes=codes or {},
        history=history or [{"D_real/entropy_bits": 0.5, "D_real/accuracy": 0.9}],
        metrics={
            "i2t": {"NDCG@100": i2t + 0.01, "mAP": i2t},
            "t2i": {"NDCG@100": t2i + 0.01, "mAP": t2i},
            "probe": {"soft": probe, "features": probe + 0.1},
        },
    )


def test_bit_balance_helpers():
    db_image = np.array([[1, 1, -1], [1, -1, -1], [1, 1, -1], [1, -1, -1]])
    r = SimpleNamespace(codes={"db_image": db_image, "db_text": db_image})
    assert L.min_balance(r) == 0.0 and L.constant_bits(r) == 2  # bits 0 and 2 never change
    r2 = SimpleNamespace(codes={"db_image": db_image[:, 1:2], "db_text": db_image[:, 1:2]})
    assert L.min_balance(r2) == 0.5 and L.constant_bits(r2) == 0


def test_ablation_and_sanity_metrics():
    abl = {"Baseline3": [_run(0.7, 0.8), _run(0.6, 0.9)], "Full": [_run(0.75, 0.85), _run(0.65, 0.95)]}
    for rs in abl.values():
        for r in rs:
            r.codes = {"db_image": np.array([[1, -1], [-1, 1]]), "db_text": np.array([[1, 1], [-1, -1]])}
    m = L.ablation_metrics(abl, "shapes")
    assert m["ablation/Full/i2t"] == [0.75, 0.65] == m["ablation/shapes/Full/i2t"]
    assert m["ablation/Baseline3/probe_features"] == [0.7, 0.7] and len(m) == 2 * 2 * 6
    s = L.sanity_metrics(abl, chance=0.5)
    assert s["sanity/min_map_over_chance"] == pytest.approx(0.1)
    assert s["sanity/mean_map_over_chance"] == pytest.approx(
        np.mean([0.7, 0.8, 0.6, 0.9, 0.75, 0.85, 0.65, 0.95]) - 0.5
    )
    assert s["sanity/full_min_bit_balance"] == [0.5, 0.5] and s["training/D_real_accuracy"] == [0.9, 0.9]
    table = L.ablation_table(abl, {"Baseline3": (0.81, 0.83), "Full": (0.83, 0.86)})
    assert table.loc["Full", "I→T mAP"] == f"0.700 ± {np.std([0.75, 0.65], ddof=1):.3f}"
    assert L.per_seed_table(abl, [0, 1]).loc["Full t2i", "seed 1"] == 0.95


class _FakeTrainer:
    """Records (name, config, seed) of every run it is asked for; mAP = a function of the config."""

    def __init__(self, codes=None):
        self.calls, self.codes = [], codes

    def __call__(self, name, cfg, seed, keep_model=False):
        self.calls.append((name, cfg, seed))
        return _run(
            cfg.alpha / 1000 + seed / 100,
            0.5,
            codes=self.codes,
            history=[
                {
                    "image/grad_F/pairs": 2.0,
                    "image/grad_F/domain": 1.0,
                    "D_real/accuracy": 0.7,
                    "D_real/entropy_bits": 0.9,
                }
            ],
        )


def test_sweeps_reuse_the_ablation_and_train_the_rest_in_order():
    cfg = H.HashingConfig(n_bits=16, alpha=100.0, epochs=1)
    abl = {"Baseline3": [_run(0.6, 0.6)], "Full": [_run(0.8, 0.8)]}
    abl["Baseline3"][0].history = [{"image/grad_F/pairs": 1.0}]
    abl["Full"][0].history = [{"image/grad_F/pairs": 1.0, "image/grad_F/domain": 0.5, "D_real/accuracy": 0.6}]
    t = _FakeTrainer()
    table, m = L.train_sweeps(t, cfg, abl, [0], alphas=[1000.0, 10.0], in_batch_alphas=[0.0], etas=[1.0])
    assert [c[0] for c in t.calls] == ["alpha_10", "alpha_1000", "inbatch_alpha_0", "eta_1"]
    assert t.calls[2][1].pair_scope == "in_batch" and t.calls[3][1].eta == 1.0
    assert (
        m["alpha/100/i2t"] == [0.8]
        and m["alpha/1000/i2t"] == [1.0]
        and set(m)
        == {
            f"{k}/{d}"
            for k in ("alpha/10", "alpha/100", "alpha/1000", "in_batch_alpha/0", "eta/1")
            for d in ("i2t", "t2i")
        }
    )
    assert table["α"].tolist() == [0.0, 10.0, 100.0, 1000.0, 0.0, 100.0]
    assert table.loc[0, L.GRAD_RATIO] == 0.0 and table.loc[2, L.GRAD_RATIO] == 0.5  # Baseline3 has no domain term
    fig = L.plot_alpha_sweep(table, chance=0.5, batch_size=64, n_train=1000)
    assert len(fig.axes) == 3


def test_code_lengths_reuse_the_ablation_length():
    cfg = H.HashingConfig(n_bits=32, alpha=100.0, epochs=1)
    abl = {"Full": [_run(0.8, 0.9), _run(0.7, 0.9)]}
    t = _FakeTrainer()
    maps = L.train_code_lengths(t, cfg, abl, [16, 32], seeds=[0])
    assert [(c[0], c[1].n_bits) for c in t.calls] == [("Full_16bits", 16)]
    assert maps[("i2t", 32)] == [0.8] and maps[("t2i", 16)] == [0.5]
    table = L.code_length_table(maps, "shapes", ch03.PAPER_TABLE_32)
    assert table.loc[("I→T", "shapes", "ours (this run)"), "32 bits"] == 0.8
    assert table.loc[("T→I", "nuswide", "SSAH (paper)"), "64 bits"] == 0.666


def test_printed_formulas():
    cfg = H.HashingConfig(n_bits=8, alpha=100.0, epochs=1)
    codes = {"db_image": np.array([[1, 1], [1, -1]]), "db_text": np.array([[1, 1], [1, -1]])}
    abl = {"Full": [_run(0.8, 0.9, codes=codes)]}
    with_codes = _FakeTrainer(codes)
    hist = pd.DataFrame([{"D_real/entropy_bits": 0.3}])
    table, m = L.train_printed_formulas(with_codes, cfg, abl, hist, ["printed_eq37", "literal_entropy"], [0], [0])
    assert m["printed_eq37/min_bit_balance"] == [0.0] and m["printed_eq37/seed0_constant_bits"] == 1
    assert m["literal_entropy/D_real_entropy_bits"] == 0.9 and set(m) >= {"printed_eq37/i2t", "literal_entropy/t2i"}
    assert list(table.index)[-1] == "adversarial D (Full)" and table.iloc[-1]["D entropy on F/G (bits)"] == 0.3
    table2, m2 = L.train_printed_formulas(with_codes, cfg, abl, hist, [], [0], [0])
    assert m2 == {} and len(table2) == 2


# ---------------------------------------------------------------------------------------------------------------
# data views and retrieval examples, on a tiny feature set


def _feats(texts=True, images=True):
    labels = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], np.uint8)
    split = {"query": np.array([0, 1]), "retrieval": np.array([2, 3, 4, 5]), "train": np.array([2, 3])}
    return cm.CrossModalFeatures(
        "toy",
        np.zeros((6, 4), np.float32),
        np.zeros((6, 3), np.float32),
        labels,
        ["colour:red", "colour:blue", "size:big"],
        split,
        images=np.zeros((6, 8, 8, 3), np.uint8) if images else None,
        texts=[f"caption {i}" for i in range(6)] if texts else None,
    )


def test_label_views():
    f = _feats()
    assert L.label_text(f, 0) == "red, big" and L.example_titles(f, [1]) == ["caption 1\n[red]"]
    assert L.item_text(f, 2) == "caption 2" and L.item_text(_feats(texts=False), 2) == "labels: colour:blue, size:big"
    assert L.colour_labels(f, np.array([0, 3])) == ["red", "blue"]
    t = L.shared_label_table(f.labels[:2])  # pairs (0,0): 2, (0,1) and (1,0): 1, (1,1): 1
    assert t["shared labels t"].tolist() == [1, 2] and t["fraction of pairs"].tolist() == [0.75, 0.25]
    assert t["w = t / c (Eq. 3.3)"].tolist() == [0.333, 0.667]
    assert L.chance_map(f) == pytest.approx(np.mean(cm.shared_label_counts(f.labels[:2], f.labels[2:]) > 0))


def test_hamming_ranking_and_drawer():
    f = _feats()
    codes = {
        "query_text": np.array([[1, 1], [-1, -1]]),
        "query_image": np.array([[1, -1], [-1, 1]]),
        "db_image": np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]]),
        "db_text": np.array([[1, -1], [1, 1], [-1, -1], [-1, 1]]),
    }
    dist, ids, shares = L.hamming_ranking(codes, f, 0, "T→I", k=2)
    assert ids.tolist()[0] == 0 and dist.tolist()[0] == 0 and shares[0] == 1  # item 2 shares "big" with item 0
    grids = []
    draw = L.RankingDrawer(
        {"Full": [SimpleNamespace(codes=codes)]},
        f,
        2,
        ranked_grid=lambda *a, **k: grids.append(k) or "fig",
        colours={"relevant": "g", "irrelevant": "r"},
        k=2,
    )
    assert draw(np.int64(0), "Full", "T→I") == "fig" and grids[0]["status"][0] == "relevant"
    fig = draw(1, "Full", "I→T")  # the caption list view
    assert "(the image of) “caption 1”" in fig.axes[0].get_title(loc="left")
    table = L.i2t_examples_table(codes, f, [0, 1], k=2)
    assert table.loc[(0, 1), "retrieved caption"] == "caption 2" and table.loc[(0, 1), "relevant"] == "✓"
    assert len(table) == 4


def test_hashing_config_and_untrained_model_follow_the_parameters():
    p = runs.resolve("03", "smoke")
    cfg = L.hashing_config(p)
    assert cfg.n_bits == p.ablation_bits and cfg.image_hidden == (256,) and cfg.alpha == p.alpha
    f = _feats()
    a, b = L.untrained_model(f, cfg, 3), L.untrained_model(f, cfg, 3)
    ha, ta = L.soft_codes(a, f, np.array([0, 1]))
    assert ha.shape == (2, cfg.n_bits) and np.array_equal(ha, L.soft_codes(b, f, np.array([0, 1]))[0])
