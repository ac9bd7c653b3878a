"""xmr_lib.chapters.ch10.lecture (the steps notebook 10 calls) and the chapter's fallback rule (config.FALLBACK)."""

import json

import numpy as np
import pytest

from xmr_lib.chapters.ch10 import common_space as cs
from xmr_lib.chapters.ch10 import config as ch10
from xmr_lib.chapters.ch10 import lecture
from xmr_lib.course import runs

# ---------------------------------------------------------------------------------------------------------------
# the fallback rule


def test_full_without_data_falls_back_to_fashion_wiki():
    p = runs.resolve("10", "full")
    assert p.dataset == "wikipedia" and p.data_root is None
    real, fell_back, banner = ch10.FALLBACK.apply(p)
    assert (real, fell_back) == (False, True)
    assert "FALLING BACK" in banner and "python -m data_scripts fetch wikipedia --root DIR" in banner
    assert p.dataset == "fashion_wiki" and (p.n_train, p.n_test) == (2173, 693)  # within the offline splits
    assert p.iterations == ch10.PROFILES["full"]["iterations"]
    q = runs.resolve("10", "full", dataset="voc2007", n_train=10**6, n_test=10**6)
    ch10.FALLBACK.apply(q)
    assert (q.n_train, q.n_test) == cs.clamp_fashion_wiki_sizes(10**6, 10**6) and q.n_train < 10**6


def test_default_asking_for_a_paper_dataset_without_data_raises(tmp_path):
    p = runs.resolve("10", "default", dataset="pascal_sentence", data_root=str(tmp_path))
    with pytest.raises(ValueError, match="fetch pascal_sentence"):
        ch10.FALLBACK.apply(p)
    assert ch10.FALLBACK.apply(runs.resolve("10", "smoke")) == (False, False, "")
    with pytest.raises(ValueError, match="dataset"):
        runs.resolve("10", "default", dataset="flickr30k")


def test_params_records_the_markers(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("XMR_NOTEBOOK", "10_test")
    p = runs.params("10", profile="full", device="cpu")
    rec = json.loads((run_dir / "10_test.metrics.json").read_text())
    assert p.fell_back and rec["metrics"] == {"data/fallback": 1} and rec["params"]["dataset"] == "fashion_wiki"
    assert "FALLING BACK" in capsys.readouterr().out
    runs.params("10", profile="smoke", device="cpu")
    assert json.loads((run_dir / "10_test.metrics.json").read_text())["metrics"] == {"data/fallback": 0}


def test_probe_reads_nothing_and_tells_missing_from_broken(tmp_path):
    with pytest.raises(ValueError) as e:
        lecture.probe_feature_pairs("wikipedia", None)
    assert lecture.is_missing(e.value)
    with pytest.raises(ValueError) as e:
        lecture.probe_feature_pairs("voc2007", tmp_path)
    assert lecture.is_missing(e.value)
    with pytest.raises(ValueError) as e:
        lecture.probe_feature_pairs("flickr", tmp_path)
    assert not lecture.is_missing(e.value)  # a bad name is not a missing dataset
    (tmp_path / "voc2007").mkdir()
    (tmp_path / "voc2007" / cs.FEATURES_FILE).write_bytes(b"not read by the probe")
    lecture.probe_feature_pairs("voc2007", tmp_path)  # present: no error, nothing loaded
    assert lecture.is_missing(FileNotFoundError("x"))


def test_knob_help_covers_every_knob():
    assert set(ch10.KNOB_HELP) == set(ch10.PROFILES["default"])


# ---------------------------------------------------------------------------------------------------------------
# data


def test_seed_splits_offline_draw_per_seed_and_real_once(tmp_path):
    p = dict(runs.resolve("10", "smoke", n_train=40, n_test=30, text_features="tfidf"))
    splits = lecture.seed_splits(p, [0, 1])
    assert splits[0].train_image.shape[0] == 40 and splits[1].test_labels.shape == (30,)
    assert not np.array_equal(splits[0].train_text, splits[1].train_text)
    s = splits[0]
    np.savez(
        tmp_path / "f.npz",
        train_image=s.train_image,
        train_text=s.train_text,
        train_labels=s.train_labels,
        test_image=s.test_image,
        test_text=s.test_text,
        test_labels=s.test_labels,
        class_names=s.class_names,
    )
    (tmp_path / "voc2007").mkdir()
    (tmp_path / "f.npz").rename(tmp_path / "voc2007" / cs.FEATURES_FILE)
    real = lecture.seed_splits(dict(p, dataset="voc2007", data_root=str(tmp_path)), [0, 1, 2])
    assert real[0] is real[2] and real[0].train_image.shape == s.train_image.shape


def test_chance_map():
    split = cs.CrossModalSplit(
        np.zeros((4, 2), np.float32),
        np.zeros((4, 2), np.float32),
        np.array([0, 1, 0, 1]),
        np.zeros((4, 2), np.float32),
        np.zeros((4, 2), np.float32),
        np.array([0, 0, 0, 1]),
        ["a", "b"],
    )
    assert lecture.chance_map(split) == pytest.approx((0.75**2 + 0.25**2) / 2 / 0.5)
    multi = cs.CrossModalSplit(
        split.train_image,
        split.train_text,
        np.eye(2)[[0, 1, 0, 1]],
        split.test_image,
        split.test_text,
        np.eye(2)[[0, 0, 0, 1]],
        ["a", "b"],
    )
    assert np.isnan(lecture.chance_map(multi))


# ---------------------------------------------------------------------------------------------------------------
# recorded numbers and tables


def _result(avg, **kw):
    r = {k: avg for k in lecture.ABLATION_KEYS} | {"seconds": 1.0}
    return r | kw


def test_ablation_numbers_and_tables():
    res = {
        "O": [_result(0.4), _result(0.5)],
        "O-LE": [_result(0.45), _result(0.5)],
        "O-LE-J": [_result(0.6), _result(0.55)],
    }
    m = lecture.ablation_metrics(res, [0.2, 0.25])
    assert m["ablation/O-LE-J/average"] == [0.6, 0.55] and m["chance/average"] == [0.2, 0.25]
    assert m["ablation/O-LE-J/average_over_chance"] == pytest.approx([3.0, 2.2])
    assert m["ablation/joint_minus_original"] == pytest.approx([0.2, 0.05])
    assert len([k for k in m if k.startswith("ablation/O/")]) == len(lecture.ABLATION_KEYS)
    d = lecture.ablation_differences(res, [0, 1])
    assert list(d.index) == ["seed 0", "seed 1"] and d["O/LE/J − O/LE"].tolist() == pytest.approx([0.15, 0.05])
    assert lecture.mean_sd_percent(res, ["average"]).loc["O", "average"] == "45.0 ± 5.0"
    t2 = lecture.table2_beside_paper(res, "fashion_wiki")
    assert t2.loc["O-LE-J", "fashion_wiki (ours)"] == pytest.approx(57.5) and t2.shape == (3, 4)


def test_sweep_and_comparison():
    sweep = {64: [_result(0.3)], 128: [_result(0.5)]}
    assert lecture.sweep_metrics(sweep)["sweep/l128/t2i"] == [0.5]
    table, best = lecture.sweep_table(sweep)
    assert best == 128 and table.loc[64, "average"] == pytest.approx(30.0)
    comp = {
        "cca": [_result(0.2)],
        "semantic": [_result(0.5)],
        "triplet": [_result(0.45)],
        "adversarial": [_result(0.55)],
    }
    m = lecture.compare_metrics(comp)
    assert m["compare/worst_supervised/average"] == [0.45] and m["compare/cca/i2t"] == [0.2]
    t3 = lecture.compare_table(comp)
    assert list(t3.index) == list(lecture.OBJECTIVES.values()) and t3.loc["CCA", "average"] == "20.0 ± 0.0"
    got = lecture.per_dataset_metrics(
        "wikipedia", {"ablation/O-LE-J/i2t": 1, "ablation/O/i2t": 2, "compare/cca/t2i": 3}
    )
    # every Table 2 variant (the per-dataset orderings); CCA's target needs the paper's AlexNet features
    assert got == {"wikipedia/ablation/O-LE-J/i2t": 1, "wikipedia/ablation/O/i2t": 2}
    m = {"ablation/O-LE-J/i2t": 1, "compare/cca/t2i": 3, "compare/sm/i2t": 4, "compare/semantic/i2t": 5}
    assert lecture.per_dataset_metrics("wikipedia", m, paper_features=True) == {
        "wikipedia/ablation/O-LE-J/i2t": 1,
        "wikipedia/compare/cca/t2i": 3,
        "wikipedia/compare/sm/i2t": 4,
    }
    m = {"ablation/O-LE-J/i2t": 1, "finetune/O-LE-J/i2t": 6, "compare/cca/t2i": 3, "paper_features/compare/cca/t2i": 7}
    assert lecture.per_dataset_metrics("voc2007", m) == {"voc2007/ablation/O-LE-J/i2t": 6, "voc2007/compare/cca/t2i": 7}


# ---------------------------------------------------------------------------------------------------------------
# the explorer, the t-SNE legend and the exercises


def test_ranked_by_objective_rows_and_frames():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 1, 1, 2, 2])
    good = np.eye(3)[labels] + 0.01 * rng.random((6, 3))
    reprs = {"good": (good, good.copy()), "random": (rng.random((6, 3)), rng.random((6, 3)))}
    texts = [f"document {i}" for i in range(6)]
    fig = lecture.ranked_by_objective(
        reprs, labels, ["a", "b", "c"], query=0, direction="i2t", texts=texts, top=2, names={"good": "Good"}
    )
    axes = np.array(fig.axes).reshape(2, 3)
    assert axes[0, 0].get_ylabel().startswith("Good\nAP = 1.00")
    assert axes[0, 1].spines["top"].get_edgecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb("#1e8e3e"))
    assert axes[0, 1].texts and axes[0, 1].texts[0].get_text().startswith("document")  # a text result
    assert all(t.get_fontsize() >= 9 for ax in fig.axes for t in ax.texts)
    plt.close(fig)
    fig = lecture.ranked_by_objective(reprs, labels, ["a", "b", "c"], query=5, direction="t2i", top=1)
    assert fig.axes[1].texts[0].get_text() in {"a", "b", "c"}  # no images given: the item shows its class
    plt.close(fig)
    with pytest.raises(ValueError, match="direction"):
        lecture.ranked_by_objective(reprs, labels, ["a", "b", "c"], query=0, direction="x")


def test_class_modality_legend_names_classes_and_markers():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    lecture.class_modality_legend(ax, ["a", "b", "c"])
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["a", "b", "c", "image", "text"]
    plt.close(fig)


def test_toy_pairs_and_exercise_checks():
    xi, xt, y = lecture.toy_pairs(0)
    assert xi.shape == (600, 20) and xt.shape == (600, 30) and set(np.unique(y)) == set(range(10))
    ok, why = ch10.EXERCISES["2"](("lower", "lower"))
    assert ok, why
    assert not ch10.EXERCISES["2"](("higher", "lower"))[0]
    assert not ch10.EXERCISES["1"](lambda W, a, b, y: 0.0)[0]
    map_of = lambda zq, zd, lq, ld: cs.cross_modal_map(zq, zd, lq, ld)["i2t"]  # noqa: E731
    ok, why = ch10.EXERCISES["3"](map_of)
    assert ok, why


# ---------------------------------------------------------------------------------------------------------------
# independent runs in worker processes


def test_steps_give_the_same_numbers_in_one_process_and_in_workers(monkeypatch):
    """lecture.run_jobs: the runs of a step in worker processes (one torch thread each) or all here (XMR_WORKERS=1)
    compute the same numbers, returned in the order of the jobs."""
    xi, xt, y = lecture.toy_pairs(0, n=120)
    split = cs.CrossModalSplit(xi[:80], xt[:80], y[:80], xi[80:], xt[80:], y[80:], [str(c) for c in range(10)])
    splits = {0: split, 1: split}
    base = cs.CommonSpaceTrainConfig(hidden=16, latent=8, iterations=15, batch_size=16)
    got = {}
    for workers in ("2", "1"):
        monkeypatch.setenv("XMR_WORKERS", workers)
        ab = lecture.ablation(splits, base, device="cpu")
        sweep = lecture.latent_sweep(splits, base, [4, 8], ab["O-LE-J"], device="cpu")
        got[workers] = [[r["average"] for r in rs] for rs in (*ab.values(), *sweep.values())]
        assert sweep[8] == ab["O-LE-J"] and [r["history"] for r in ab["O"]][0]["loss"]
    assert got["2"] == got["1"]
    # seeds differ (initialisation and batches), the split is shared
    assert got["1"][0][0] != got["1"][0][1] or got["1"][2][0] != got["1"][2][1]


def test_comparison_on_a_multilabel_set_leaves_out_the_ranking_objective(monkeypatch):
    monkeypatch.setenv("XMR_WORKERS", "1")
    xi, xt, y = lecture.toy_pairs(1, n_classes=4, n=90)
    multi = np.eye(4, dtype=np.int64)[y]
    multi[::3, (y[::3] + 1) % 4] = 1  # a second label on every third pair
    split = cs.CrossModalSplit(xi[:60], xt[:60], multi[:60], xi[60:], xt[60:], multi[60:], list("abcd"))
    base = cs.CommonSpaceTrainConfig(hidden=16, latent=8, iterations=10, batch_size=16)
    assert list(lecture.objectives_for(multi)) == ["cca", "semantic", "adversarial"]
    assert list(lecture.objectives_for(y)) == list(lecture.OBJECTIVES)
    sem = [cs.run_isomorphic(split, base, seed=0)]
    comp = lecture.compare_objectives({0: split}, base, sem, cca_components=3, triplet_batch_size=8)
    assert list(comp) == ["cca", "semantic", "adversarial"] and comp["semantic"] == sem
    m = lecture.compare_metrics(comp)
    assert m["compare/worst_supervised/average"] == [min(sem[0]["average"], comp["adversarial"][0]["average"])]
    assert list(lecture.compare_table(comp).index) == ["CCA", "semantic matching (Eq. 2)", "semantic + adversarial"]
