"""xmr_lib.chapters.ch04.lecture (the steps notebook 04 calls) and the chapter's fallback rule (config.FALLBACK)."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

from xmr_lib.chapters.ch04 import adversarial as adv
from xmr_lib.chapters.ch04 import config as ch04
from xmr_lib.chapters.ch04 import lecture as L
from xmr_lib.course import runs

matplotlib.use("Agg")


# ---------------------------------------------------------------------------------------------------------------
# the fallback rule


def test_full_without_data_falls_back_to_the_shape_captions():
    p = runs.resolve("04", "full")
    assert (p.dataset, p.text_encoder, p.image_backbone) == ("flickr30k", "bilstm", "mobilenet_v2")
    real, fell_back, banner = ch04.FALLBACK.apply(p)
    assert (real, fell_back) == (False, True)
    assert "FALLING BACK" in banner and "python -m data_scripts fetch flickr30k --root DIR" in banner
    assert (p.dataset, p.text_encoder, p.n_train_images, p.n_test_images) == ("shapes", "bow", 4000, 1000)
    assert p.image_backbone == "frozen_lite0"  # the default profile's frozen-feature path
    assert p.epochs == ch04.PROFILES["full"]["epochs"] and p.ablation == ch04.PROFILES["full"]["ablation"]
    q = runs.resolve("04", "full", n_train_images=500, n_test_images=2000)
    ch04.FALLBACK.apply(q)
    assert (q.n_train_images, q.n_test_images) == (500, 1000)


def test_default_without_data_raises_naming_the_fetch_command(tmp_path):
    p = runs.resolve("04", "default", dataset="coco")
    with pytest.raises(ValueError, match=r"data_root.*python -m data_scripts fetch coco --root DIR"):
        ch04.FALLBACK.apply(p)
    p = runs.resolve("04", "default", dataset="flickr8k", data_root=str(tmp_path))  # a folder without the set
    with pytest.raises(ValueError, match=r"dataset_flickr8k.json.*fetch flickr8k"):
        ch04.FALLBACK.apply(p)
    assert ch04.FALLBACK.apply(runs.resolve("04", "default")) == (False, False, "")


def test_params_records_the_markers(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("XMR_NOTEBOOK", "04_test")
    p = runs.params("04", profile="full", device="cpu")
    rec = json.loads((run_dir / "04_test.metrics.json").read_text())
    assert p.fell_back and rec["metrics"] == {"data/fallback": 1} and rec["params"]["text_encoder"] == "bow"
    assert "FALLING BACK" in capsys.readouterr().out


def test_a_fetched_caption_set_is_read_not_replaced(tmp_path):
    from fixtures_real_formats import flickr30k_raw

    from data_scripts.convert import convert

    flickr30k_raw(tmp_path / "flickr30k" / "raw")
    convert("flickr30k", tmp_path)
    p = runs.resolve("04", "full", data_root=str(tmp_path))
    assert ch04.FALLBACK.apply(p) == (True, False, "") and p.dataset == "flickr30k"
    with pytest.raises(ValueError, match="minilm"):  # a BoW vocabulary would differ per split
        L.load_benchmark({**p, "text_encoder": "bow"})
    flickr30k_raw(tmp_path / "b" / "flickr30k" / "raw", with_images=False)  # the file lists without the images
    convert("flickr30k", tmp_path / "b")
    q = runs.resolve("04", "full", data_root=str(tmp_path / "b"))
    assert ch04.FALLBACK.apply(q)[1] and q.dataset == "shapes"


def test_knob_help_covers_every_knob():
    assert set(ch04.KNOB_HELP) == set(ch04.PROFILES["default"])
    assert (runs.knob_table("04")["what"] != "").all()


# ---------------------------------------------------------------------------------------------------------------
# lecture steps, on hand-made results


class _History:
    def __init__(self, epochs):
        self.epochs = epochs

    def curve(self, key):
        return [e.get(key, float("nan")) for e in self.epochs]


def _results(names=("B1", "Full"), r1=(40.0, 50.0)):
    out = {}
    for name in names:
        m = {c: [r1[0], r1[1]] for c in L.COLS}
        m["final_d_entropy"] = [0.6, 0.7]
        out[name] = {
            "metrics": m,
            "probe": [0.5, 0.6],
            "seconds": [1.0, 2.0],
            "history": [_History([{"d_entropy": 0.6, "d_accuracy": 0.5, "tr": 1.0, "ce": 2.0, "total": 3.0}])],
        }
    return out


def test_mean_std_and_ablation_table():
    assert L.mean_std([1.0, 3.0]) == "2.0 ± 1.0" and L.mean_std([2.25]) == "2.2"
    res = _results()
    table = L.ablation_table(res, ch04.PAPER_TABLE_44)
    assert table.loc[adv.ABLATION_LABELS["Full"], "t2i/R@1"] == "45.0 ± 5.0"
    assert table.loc[adv.ABLATION_LABELS["B1"], "thesis I→T R@1 / R@10 / mAP"] == "40.6 / 80.8 / 23.1"
    assert table.loc[adv.ABLATION_LABELS["Full"], "fresh probe acc."] == "55.0 ± 5.0"


def test_ablation_metrics():
    m = L.ablation_metrics(_results(), chance=10.0)
    assert m["ablation/B1/i2t/R@1"] == [40.0, 50.0] and m["ablation/Full/probe_accuracy"] == [0.5, 0.6]
    assert m["ablation/Full/t2i/R@1_over_chance"] == [4.0, 5.0]
    assert all(isinstance(x, float) for v in m.values() for x in v)


def test_tau_sweep_reuses_the_full_runs(monkeypatch):
    calls = []

    def fake_run_configs(split, base, names, seeds, overrides=None, device="cpu", checkpoint=None, engine=None):
        calls.append((list(names), overrides))
        return {n: _results(["x"], r1=(float(o["tau"]), 1.0))["x"] for n, o in overrides.items()}

    monkeypatch.setattr(adv, "run_configs", fake_run_configs)
    base = adv.CommonSpaceConfig(tau=4.0)
    full = _results(["Full"], r1=(46.0, 34.0))["Full"]
    sweep = L.train_tau_sweep(None, base, full, [6.0, 1.0, 4.0], [0, 1], "cpu")
    assert calls == [(["tau=1", "tau=6"], {"tau=1": {"tau": 1.0}, "tau=6": {"tau": 6.0}})]
    assert list(sweep) == [1.0, 4.0, 6.0] and sweep[4.0] is full
    m = L.tau_metrics(sweep)
    assert m["tau/4/i2t/R@1"] == [46.0, 34.0] and m["tau/1/t2i/mAP"] == [1.0, 1.0] and len(m) == 3 * 6
    table = L.tau_table(sweep, ch04.PAPER_TABLE_45)
    assert table.loc[6.0, "thesis I→T / T→I R@1"] == "45.9 / 33.1" and table.loc[4.0, "I→T R@1"] == "40.0 ± 6.0"
    assert len(L.plot_tau_sweep(sweep).axes) == 1
    calls.clear()
    assert list(L.train_tau_sweep(None, base, full, [], [0], "cpu")) == [4.0] and calls == []


def test_plots_of_the_training_curves():
    res = _results(["B1", "B3", "Full"])
    assert len(L.plot_discriminator_curves(res).axes) == 3
    fig = L.plot_loss_terms(res["Full"]["history"][0])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["L_ce", "L_tr"]


def test_epoch_ticks_are_whole_epochs_from_one():
    res = _results(["B1", "Full"])
    fig = L.plot_discriminator_curves(res)
    fig.canvas.draw()
    assert fig.axes[0].lines[0].get_xdata().tolist() == [1]
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_discriminator_view_draws_the_chosen_run(monkeypatch):
    res = _results(["B1", "Full"])
    for r in res.values():
        r["models"] = ["model seed 0"]
    seen = []

    def outputs(model, split):
        seen.append(model)
        return np.full(4, 0.5), np.full(6, 0.5)

    monkeypatch.setattr(L, "discriminator_outputs", outputs)
    fig = L.discriminator_view(res, None)("Full", 0)
    assert seen == ["model seed 0"] and len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["B1", "Full", "log 2: full confusion"]
    fig = L.discriminator_view(res, None)("B1", 0)
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["B1", "log 2: full confusion"]


def test_exercise_checks_accept_the_library_and_reject_a_wrong_answer():
    ok, _ = ch04.EXERCISES["1"](lambda zi, zt, y: adv.kl_projection_loss(zi, zt, y, "cmpm"))
    bad, why = ch04.EXERCISES["1"](lambda zi, zt, y: adv.kl_projection_loss(zi, zt, y, "softmax"))
    assert ok and not bad and "expected" in why
    assert ch04.EXERCISES["2"]({"softmax": "up", "cmpm": "down"})[0]
    assert not ch04.EXERCISES["2"]({"softmax": "down", "cmpm": "down"})[0]
    assert not ch04.EXERCISES["3"](lambda x, lam: x.clone())[0]
    assert not ch04.EXERCISES["3"](lambda x, lam: x.detach())[0]


def _split():
    # 3 test images, 2 captions each (captions 2k, 2k+1 describe image k)
    pair = np.array([0, 0, 1, 1, 2, 2])
    return adv.CaptionSplit(
        np.zeros((2, 4)),
        np.zeros((4, 3)),
        np.array([0, 0, 1, 1]),
        np.zeros((3, 4)),
        np.zeros((6, 3)),
        pair,
        np.arange(3),
        np.arange(6),
    )


def test_caption_views_and_retrieval_examples():
    split = _split()
    caps = [f"c{j}" for j in range(6)]
    assert L.captions_of(1, split, caps) == ["c2", "c3"] and L.first_captions(split, 3).tolist() == [0, 2, 4]
    assert L.describe(split).startswith("train: 2 images, 4 captions | test: 3 images, 6 captions")
    S = np.eye(3).repeat(2, axis=1)  # each image is most similar to its own captions
    text = L.i2t_examples(S, split, caps, n=2, k=2)
    assert text.splitlines()[:3] == ["image 0:", "   1. ✓ c0", "   2. ✓ c1"]
    images = np.arange(3)[:, None, None, None].repeat(4, 1).repeat(4, 2).repeat(3, 3).astype(np.uint8)
    queries, grid = L.t2i_examples(S, split, images, n=3, k=2)
    assert queries == [1, 3, 5] and grid["status"][0] == ["relevant", "irrelevant"]
    assert grid["queries"][2][0, 0, 0] == 2 and grid["row_titles"] == ["caption 1", "caption 2", "caption 3"]


def test_stability_metrics():
    stab = pd.DataFrame({"sigma": [0.0, 0.05], "i2t/R@1": [30.0, 28.0], "t2i/R@1": [20.0, 19.0]}).set_index("sigma")
    assert L.stability_metrics(stab) == {
        "stability/0/i2t/R@1": 30.0,
        "stability/0/t2i/R@1": 20.0,
        "stability/0.05/i2t/R@1": 28.0,
        "stability/0.05/t2i/R@1": 19.0,
    }


def test_config_follows_the_parameters():
    p = runs.resolve("04", "smoke")
    c = L.common_space_config(p)
    assert (c.dim, c.hidden, c.lr, c.lr_d, c.tau, c.epochs) == (128, 0, 1e-3, 1e-3, 4.0, 2)


def test_train_tables_trains_ablation_and_tau_in_one_call(monkeypatch):
    calls = []

    def fake_run_configs(split, base, names, seeds, overrides=None, device="cpu", checkpoint=None, engine=None):
        calls.append((list(names), dict(overrides)))
        return {n: {"name": n} for n in names}

    monkeypatch.setattr(adv, "run_configs", fake_run_configs)
    base = adv.CommonSpaceConfig(tau=4.0)
    p = {"ablation": ["B1", "Full"], "tau_sweep": [6.0, 1.0, 4.0], "device": "cpu"}
    results, sweep = L.train_tables(None, base, p, [0, 1])
    assert calls == [(["B1", "Full", "tau=1", "tau=6"], {"tau=1": {"tau": 1.0}, "tau=6": {"tau": 6.0}})]
    assert list(results) == ["B1", "Full"] and list(sweep) == [1.0, 4.0, 6.0]
    assert sweep[4.0] is results["Full"] and sweep[6.0] == {"name": "tau=6"}
