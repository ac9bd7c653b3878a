"""xmr_lib.chapters.ch08.lecture (the steps notebook 08 calls) and the chapter's fallback rule (config.FALLBACK)."""

import json
import types

import numpy as np
import pandas as pd
import pytest

from xmr_lib.chapters.ch08 import config as ch08
from xmr_lib.chapters.ch08 import lecture, transfer
from xmr_lib.course import runs

# ---------------------------------------------------------------------------------------------------------------
# the fallback rule


def test_full_without_data_falls_back_to_offline_clamped():
    p = runs.resolve("08", "full")
    assert p.target_set == "paper90" and p.data_root is None
    real, fell_back, banner = ch08.FALLBACK.apply(p)
    assert (real, fell_back) == (False, True)
    assert "FALLING BACK" in banner and "python -m data_scripts fetch pascal2019_targets --root DIR" in banner
    # the smallest offline class holds 500 images: val and test kept, training images and shots capped
    assert p.target_set == "offline" and (p.val_per_class, p.test_per_class) == (100, 100)
    assert p.train_per_class == 300 and p.shots == [300, 100, 50, 25, 10, 5, 2, 1]
    assert p.iterations == ch08.PROFILES["full"]["iterations"]  # the full profile's training settings


def test_default_asking_for_paper90_without_data_raises_naming_the_fetch_command():
    p = runs.resolve("08", "default", target_set="paper90")
    with pytest.raises(ValueError, match=r"fetch pascal2019_targets --root DIR"):
        ch08.FALLBACK.apply(p)
    assert ch08.FALLBACK.apply(runs.resolve("08", "smoke")) == (False, False, "")


def test_params_records_the_markers(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("XMR_NOTEBOOK", "08_test")
    p = runs.params("08", profile="full", device="cpu")
    rec = json.loads((run_dir / "08_test.metrics.json").read_text())
    assert p.fell_back and rec["metrics"] == {"data/fallback": 1} and rec["params"]["target_set"] == "offline"
    assert "FALLING BACK" in capsys.readouterr().out
    runs.params("08", profile="smoke", device="cpu")
    assert json.loads((run_dir / "08_test.metrics.json").read_text())["metrics"] == {"data/fallback": 0}


def test_knob_help_covers_every_knob_and_bad_target_set_is_refused():
    assert set(ch08.KNOB_HELP) == set(ch08.PROFILES["default"])
    with pytest.raises(ValueError, match="target_set"):
        runs.resolve("08", "default", target_set="imagenet")


# ---------------------------------------------------------------------------------------------------------------
# targets and sizes


def test_clamped_sizes():
    assert lecture.clamped_sizes(500, 100, 20, 50, [100, 10, 1]) == {}
    assert lecture.clamped_sizes(500, 500, 100, 100, [500, 100, 5]) == {"train_per_class": 300, "shots": [300, 100, 5]}
    assert lecture.clamped_sizes(10, 9, 3, 3, [9, 8, 1]) == {"train_per_class": 4, "shots": [4, 1]}
    with pytest.raises(ValueError, match="val_per_class"):
        lecture.clamped_sizes(10, 5, 5, 5, [5])


def test_offline_targets_drop_the_imagenet_classes():
    targets, table, dropped = lecture.offline_targets(lecture.source_synsets())
    assert dropped == ["T-shirt/top", "sandal"] and len(targets) == len(transfer.OFFLINE_TARGET_CANDIDATES) - 2
    assert list(table.columns) == ["class", "dataset", "WordNet synset", "type"] and len(table) == 23
    with pytest.raises(ValueError, match="train_per_class=300"):
        lecture.check_offline_sizes(targets, 500, 100, 100)
    lecture.check_offline_sizes(targets, 300, 100, 100)


# ---------------------------------------------------------------------------------------------------------------
# splits, first F, the choice of K


def _toy(n_classes=3, per_class=12, dim=8, m=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    W = rng.normal(size=(m, dim)).astype(np.float32)
    b = rng.normal(size=m).astype(np.float32)
    feats = (W[labels % m] + 0.3 * rng.normal(size=(len(labels), dim))).astype(np.float32)
    return labels, W, b, feats, rng


def test_split_is_a_partition_with_the_asked_counts():
    labels = np.repeat(np.arange(4), 10)
    tr, va, te = lecture.split(labels, 5, 2, seed=3)
    assert len(set(tr) | set(va) | set(te)) == 40 and not (set(tr) & set(va) or set(tr) & set(te) or set(va) & set(te))
    assert np.bincount(labels[tr]).tolist() == [5] * 4 and np.bincount(labels[va]).tolist() == [2] * 4
    again = lecture.split(labels, 5, 2, seed=3)  # a seed gives the same split every time
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))


def test_first_f_is_the_macro_f_of_the_initialised_head():
    labels, W, b, feats, rng = _toy()
    S = rng.random((3, 5))
    types = ["disjoint", "inclusive", "disjoint"]
    w, bb = transfer.similarity_init(W, S, 2, b)
    want = transfer.macro_fscore((feats @ w.T + bb).argmax(1), labels, 3)
    assert lecture.first_f(W, b, S, 2, feats, labels, types) == pytest.approx(want)


def test_choose_k_records_gains_of_the_validation_choice():
    labels, W, b, feats, rng = _toy()
    types = ["disjoint", "inclusive", "disjoint"]
    semantic = {"wordnet": rng.random((3, 5)), "wordvec": rng.random((3, 5))}
    splits = {s: lecture.split(labels, 6, 3, s) for s in (0, 1)}
    logits = feats @ W.T + b
    sims = {s: lecture.seed_similarities(logits, labels, splits[s][0], 3, semantic) for s in splits}
    assert list(sims[0]) == ["inference", "wordnet", "wordvec"]
    sweeps, best_k, test_first, m = lecture.choose_k(W, b, sims, splits, feats, labels, types, [1, 2, 4])
    assert set(sweeps[0, "wordnet"].index) == {1, 2, 4} and best_k[1, "inference"].shape == (3,)
    for name in ("inference", "wordnet", "wordvec"):
        k1, kb = m[f"ksweep/{name}/test_k1_seeds"], m[f"ksweep/{name}/test_bestk_seeds"]
        assert m[f"ksweep/{name}/test_gain_seeds"] == pytest.approx([y - x for x, y in zip(k1, kb)])
        _, _, te = splits[0]
        assert k1[0] == pytest.approx(lecture.first_f(W, b, sims[0][name], 1, feats[te], labels[te], types))
    assert len(m["ksweep/semantic_max/test_gain_seeds"]) == 2
    assert lecture.first_f_table(test_first).shape == (3, 2)
    assert list(lecture.best_k_table(best_k, 0, types).index) == ["inclusive", "disjoint"]


# ---------------------------------------------------------------------------------------------------------------
# curves and Table II


def test_curve_metrics_from_histories():
    def hist(rows):
        return types.SimpleNamespace(
            fscore=np.array(rows), names=["random", "inference"], iterations=np.array([0, 5, 10])
        )

    settings = lecture.curve_settings(1)
    curves = {
        (settings[0], 0): hist([[0.0, 0.5, 1.0], [0.4, 0.6, 0.8]]),
        (settings[1], 0): hist([[0.0, 0.2, 0.4], [0.5, 0.5, 0.5]]),
    }
    m, table = lecture.curve_metrics(curves)
    assert m["curves/k1/auc/random_seeds"] == pytest.approx([0.5])
    assert m["curves/tuned/auc/inference_seeds"] == pytest.approx([0.5])
    assert m["curves/k1/first_over_best/min_seeds"] == pytest.approx([0.5])  # 0.4 / 0.8, random left out
    assert list(table.index) == ["iteration 0", "area under curve", "iteration 10"]


def test_reduction_metrics_and_tables():
    rows = [
        {"seed": s, "shots": sh, "method": m, "first": 0.1 * s + 0.01 * sh, "best": 0.5 + 0.1 * i + 0.01 * sh}
        for s in (1, 0)
        for sh in (10, 1)
        for i, m in enumerate(lecture.METHODS)
    ]
    red = pd.DataFrame(rows)
    m = lecture.reduction_metrics(red, [10, 1])
    assert m["reduction/first/wordnet/shots10_seeds"] == pytest.approx([0.1, 0.2])  # sorted by seed
    assert m["reduction/best/random/max_shots_seeds"] == m["reduction/best/random/shots10_seeds"]
    assert m["reduction/first/inference/min_shots_seeds"] == m["reduction/first/inference/shots1_seeds"]
    assert m["reduction/best_spread_max_shots_seeds"] == pytest.approx([0.3, 0.3])
    ours, paper = lecture.reduction_tables(red)
    assert list(ours.index) == [10, 1] and ours.columns[0] == "random first" and paper.shape == (7, 8)
    assert lecture.best_gain_over_random(red).loc[10, "wordvec"] == pytest.approx(0.3)


# ---------------------------------------------------------------------------------------------------------------
# the explorer and the exercises


def test_neighbour_panels_show_the_k_weights_of_each_similarity():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    W, sim, x, y = lecture.toy_targets(seed=0)
    sims = {"a": sim, "b": sim[::-1].copy()}
    fig = lecture.neighbour_panels(
        W,
        np.zeros(len(W)),
        sims,
        x,
        y,
        [f"t{i}" for i in range(len(sim))],
        [f"s{j}" for j in range(len(W))],
        target=1,
        K=3,
    )
    assert len(fig.axes) == 2
    bars = [p.get_width() for p in fig.axes[0].patches]
    assert bars == pytest.approx(sorted(sim[1], reverse=True)[:3] / np.sort(sim[1])[-3:].sum())
    assert all(t.get_fontsize() >= 9 for t in fig.axes[0].get_yticklabels())
    assert fig.axes[0].get_yticklabels()[0].get_text().startswith(f"s{int(np.argmax(sim[1]))} (")
    plt.close(fig)


def test_toy_targets_and_exercise_checks():
    W, sim, x, y = lecture.toy_targets(seed=0)
    assert (
        W.shape == (40, 32) and sim.shape == (12, 40) and x.shape == (360, 32) and np.bincount(y).tolist() == [30] * 12
    )
    top1 = sim.argmax(1)
    assert (top1[0::2] == top1[1::2]).all()  # pairs of targets share their main source
    assert ch08.EXERCISES["2"](("higher", "lower"))[0] and not ch08.EXERCISES["2"](("higher", "higher"))[0]
    assert ch08.EXERCISES["1"](lambda W, s, k: transfer.similarity_init(W, s, k)[0])[0]
    ok, why = ch08.EXERCISES["1"](lambda W, s, k: W[np.argsort(-s, 1)[:, :k]].mean(1))
    assert not ok and "equal weights" in why
    assert ch08.EXERCISES["3"](lambda s, l, n, k: transfer.inference_similarity(s, l, n, top_k=k))[0]
    ok, why = ch08.EXERCISES["3"](lambda s, l, n, k: transfer.inference_similarity(s, l, n))
    assert not ok and "top-1" in why
