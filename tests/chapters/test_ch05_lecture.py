"""Notebook 05's code (xmr_lib.chapters.ch05.lecture) and its fallback rule (ch05 config ``FALLBACK``)."""

import dataclasses
import types

import numpy as np
import pytest
import torch

from xmr_lib.chapters.ch05 import config as ch05
from xmr_lib.chapters.ch05 import lecture
from xmr_lib.course import runs
from xmr_lib.encoders import backbones
from xmr_lib.train import incremental as inc


class FakeResult:
    """What the lecture reads of an IncrementalResult: steps (groups, old, new), losses, final()."""

    def __init__(self, old, new, losses=(1.0, 0.5)):
        ev = {"mAP": old, "R@1": old, "R@2": old, "R@4": old}
        ev_new = {"mAP": new, "R@1": new, "R@2": new, "R@4": new}
        self.steps = [{"groups": [ev, ev_new], "old": ev, "new": ev_new}]
        self.losses = [{"total": v} for v in losses]

    def final(self, which="old", metric="mAP"):
        return self.steps[-1][which][metric]


def test_full_profile_falls_back_without_data(tmp_path):
    p = runs.resolve("05", "full", data_root=str(tmp_path), base_iterations=7)
    real, fell_back, banner = ch05.FALLBACK.apply(p)
    assert (real, fell_back) == (False, True) and "FALLING BACK" in banner and "fetch cub200" in banner
    assert p.dataset == "synth_species" and p.backbone == "tiny" and p.n_old == 9
    assert p.base_iterations == 7  # a knob given explicitly is kept
    assert p.inc_iterations == ch05.FALLBACK_KNOBS["inc_iterations"]
    assert set(ch05.FALLBACK_KNOBS) <= set(ch05.PROFILES["full"])


def test_other_profiles_do_not_fall_back(tmp_path):
    p = runs.resolve("05", "default", dataset="cub200", data_root=str(tmp_path))
    with pytest.raises(ValueError, match="data_scripts fetch cub200"):
        ch05.FALLBACK.apply(p)
    assert ch05.FALLBACK.apply(runs.resolve("05", "smoke")) == (False, False, "")


def test_stanford_dogs_takes_the_thesis_split():
    present = dataclasses.replace(ch05.FALLBACK, probe=lambda p: None)
    p = runs.resolve("05", "full", dataset="stanford_dogs")
    assert present.apply(p)[0] and (p.n_old, p.n_new) == (60, 60)
    p = runs.resolve("05", "full", dataset="stanford_dogs", n_old=30, n_new=20)
    assert present.apply(p)[0] and (p.n_old, p.n_new) == (30, 20)


def test_knob_help_covers_every_knob():
    assert set(ch05.KNOB_HELP) == set(ch05.PROFILES["default"])


def test_benchmark_transform_and_model():
    P = runs.resolve("05", "smoke")
    train, test, names = lecture.benchmark(P, 0)
    assert len(names) == P.n_old + P.n_new and train.images.shape[1:] == (3, 32, 32)
    tf = lecture.batch_transform(P, 3)
    x = tf(train.images[:2], train=False)
    want = (train.images[:2].float() / 255 - 0.5) / 0.25
    assert torch.allclose(x, want, atol=1e-5)
    net = lecture.model_factory(P, 3)(P.n_old)
    assert net(x).embedding.shape == (2, P.embed_dim)
    assert lecture.as_image(train.images[0]).shape == (32, 32, 3)
    ims, titles = lecture.sample_images(train, [0, 1], per_class=2)
    assert len(ims) == 4 and titles == ["0", "", "1", ""]


def test_trunk_mean_std_and_fine_grained_loader(tmp_path):
    assert backbones.trunk_mean_std("tiny", 1) == ((0.5,), (0.25,))
    assert backbones.trunk_mean_std("resnet50", 3) == (backbones.IMAGENET_MEAN, backbones.IMAGENET_STD)
    with pytest.raises(ValueError, match="backbone"):
        backbones.trunk_mean_std("vgg", 3)
    with pytest.raises(FileNotFoundError, match="fetch cub200"):
        inc.load_fine_grained("cub200", tmp_path, 32)
    with pytest.raises(ValueError, match="dataset"):
        inc.load_fine_grained("mnist", tmp_path, 32)


def test_chance_map_is_the_fraction_of_same_class_images():
    split = inc.to_labelled(np.zeros((6, 4, 4, 3), np.uint8), np.array([0, 0, 0, 1, 1, 2]))
    # class 0: 2 of the 5 others; class 1: 1 of 5; class 2: 0 of 5 → mean over classes
    assert lecture.chance_map(split, [0, 1, 2]) == pytest.approx((2 / 5 + 1 / 5 + 0) / 3)


def test_metrics_tables_and_tradeoff_from_results():
    P = types.SimpleNamespace(
        methods=["ft", "mmd", "kd_mmd"],
        beta=1.0,
        beta_grid=[0.1, 10.0],
        alpha=1.0,
        l2_weight=0.3,
        ewc_weight=1000.0,
        dataset="synth_species",
        n_old=2,
        n_new=2,
    )
    one = {
        s: {
            "initial": FakeResult(0.9, 0.3),
            "ft": FakeResult(0.5, 0.8),
            "mmd": FakeResult(0.7, 0.7),
            "kd_mmd": FakeResult(0.75, 0.7),
            "kd_mmd β=0.1": FakeResult(0.55, 0.8),
            "kd_mmd β=10": FakeResult(0.85, 0.4),
        }
        for s in (0, 1)
    }
    split = inc.to_labelled(np.zeros((4, 4, 4, 3), np.uint8), np.array([0, 0, 1, 1]))
    m = lecture.one_step_metrics(P, one, split, [0, 1])
    assert m["ft/old_R@1_seeds"] == [0.5, 0.5] and m["initial/loss_last_over_first_seeds"] == [0.5, 0.5]
    assert m["ablation/mmd_gain_old_R@1_seeds"] == pytest.approx([0.2, 0.2])
    assert m["initial/old_mAP_over_chance_seeds"] == pytest.approx([0.9 * 3, 0.9 * 3])
    bdf = lecture.beta_rows(P, one)
    assert sorted(bdf["β"].unique()) == [0.1, 1.0, 10.0]
    assert lecture.beta_metrics(bdf)["beta=10/old_R@1_seeds"] == [0.85, 0.85]
    table = lecture.summary(one, P.methods)
    assert table.loc["ft", "old R@1"] == "50.0 ± 0.0" and table.loc["initial A", "new R@1"] == "–"
    assert lecture.paper_metrics(P, one, {}, []) == {}


def test_forgetting_view_draws_the_method_against_fine_tuning():
    import matplotlib.pyplot as plt

    class Curved(FakeResult):
        def curve(self, group=0, metric="mAP", task=None):
            return np.array([10.0, 20.0]), np.array([0.9, 0.5 + 0.1 * group])

    one = {3: {"initial": FakeResult(0.9, 0.3), "ft": Curved(0.5, 0.8), "kd_mmd": Curved(0.8, 0.7)}}
    draw = lecture.forgetting_view(one, ["ft", "kd_mmd"])
    fig = draw("kd_mmd", 3)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["ft", "kd_mmd", "A before"]
    assert fig.axes[0].lines[0].get_xdata().tolist() == [0.0, 10.0] and fig.axes[0].get_ylim()[0] == 0
    assert len(draw("ft", 3).axes[0].lines) == 2  # ft alone, and A before
    plt.close("all")


def test_bars_start_at_zero():
    one = {s: {"ft": FakeResult(0.5, 0.8), "kd_mmd": FakeResult(0.75, 0.7)} for s in (0, 1)}
    fig = lecture.plot_after_bars(one, ["ft", "kd_mmd"], [0.9, 0.9])
    assert fig.axes[0].get_ylim()[0] == 0


def test_exercise_checks_accept_the_library_and_reject_a_wrong_answer():
    from xmr_lib.train import distill

    assert ch05.EXERCISES["1"](lambda t, s, sig: distill.mmd_loss(t, s, list(sig)))[0]
    assert not ch05.EXERCISES["1"](lambda t, s, sig: distill.mmd_loss(t, s, list(sig), squared=True))[0]
    assert ch05.EXERCISES["2"]({0.02: "same", "1": "smaller"})[0]
    assert not ch05.EXERCISES["2"]({0.02: "smaller", 1.0: "smaller"})[0]
    assert not ch05.EXERCISES["3"](lambda t, s: distill.mmd_loss(t, s))[0]  # blind to a shuffle
    assert not ch05.EXERCISES["3"](lambda t, s: distill.l2_feature_loss(s, t))[0]  # not rotation invariant


def test_tradeoff_points_read_each_regulariser_weight():
    P = {"beta": 1.0, "alpha": 1.0, "l2_weight": 0.3, "ewc_weight": 1000.0}
    first = {
        "initial": FakeResult(0.9, 0.3),
        "ft": FakeResult(0.5, 0.8),
        "joint": FakeResult(0.95, 0.9),
        "kd_mmd": FakeResult(0.75, 0.7),
        "kd_mmd β=10": FakeResult(0.85, 0.4),
    }
    pts = lecture.tradeoff_points(P, first, {"l2 l2_weight=3": FakeResult(0.6, 0.6)})
    assert [tuple(r) for r in pts[["regulariser", "weight"]].itertuples(index=False)] == [
        ("kd_mmd", 1.0),
        ("kd_mmd", 10.0),
        ("l2", 3.0),
    ]


def test_embedding_drift_is_measured_from_the_first_model():
    a = np.zeros((3, 2))
    assert lecture.embedding_drift({"A": a, "B": a + [3.0, 4.0]}) == {"A": 0.0, "B": 5.0}


def test_real_data_is_found_read_and_split(tmp_path, monkeypatch):
    """With CUB-200 / Stanford Dogs converted under data_root the rule keeps the real dataset (data/real) and
    load_fine_grained reads CUB's per-class 60/40 split and Dogs' official split."""
    pytest.importorskip("scipy.io")
    from fixtures_real_formats import cub_fixture, stanford_dogs_raw

    from data_scripts.convert import convert

    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    cub_fixture(tmp_path / "cub200" / "raw", n_classes=3, per_class=5)
    convert("cub200", tmp_path)
    p = runs.resolve("05", "full", data_root=str(tmp_path))
    assert ch05.FALLBACK.apply(p) == (True, False, "") and p.dataset == "cub200" and (p.n_old, p.n_new) == (100, 100)
    train, test, names = inc.load_fine_grained("cub200", tmp_path, 16)
    assert train.images.shape == (9, 3, 16, 16) and test.images.shape == (6, 3, 16, 16) and len(names) == 3
    stanford_dogs_raw(tmp_path / "stanford_dogs" / "raw")
    convert("stanford_dogs", tmp_path)
    train, test, _ = inc.load_fine_grained("stanford_dogs", tmp_path, 8)
    assert train.images.shape == (2, 3, 8, 8) and test.labels.tolist() == [0]


def test_top1_accuracy_by_hand():
    """Two classes (ids 5, 7 in columns 0, 1); identity embedding and classifier: the logits are the images."""
    net = inc.IncrementalNet(torch.nn.Flatten(), 2, embed_dim=2, n_classes=2)
    with torch.no_grad():
        for layer in (net.embed, net.classifier):
            layer.weight.copy_(torch.eye(2))
            layer.bias.zero_()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.2, 1.0]]).reshape(4, 2, 1, 1)
    test = inc.LabelledImages(x, torch.tensor([5, 7, 7, 3]))
    # class 3 is not asked for; of 5, 7, 7 the third image's largest logit is column 0 (class 5): 2 of 3 right
    assert lecture.top1_accuracy(net, test, [5, 7], {5: 0, 7: 1}) == pytest.approx(2 / 3)
    assert lecture.top1_accuracy(net, test, [7], {5: 0, 7: 1}) == pytest.approx(1 / 2)
    net.train()
    lecture.top1_accuracy(net, test, [5], {5: 0, 7: 1})
    assert net.training  # the model's mode is given back
    with pytest.raises(ValueError, match="classifier column"):
        lecture.top1_accuracy(net, test, [3, 5], {5: 0, 7: 1})


def test_alpha_grid_runs_every_beta_but_the_alpha_rows():
    P = types.SimpleNamespace(alpha=1.0, beta=1.0, beta_grid=[0.1, 10.0], alpha_grid=[0.1, 1.0])
    assert lecture.ab_grid(P) == [(0.1, 0.1), (0.1, 1.0), (0.1, 10.0)]
    assert lecture.ab_grid(types.SimpleNamespace(**{**vars(P), "alpha_grid": []})) == []
    one = {
        0: {"kd_mmd": FakeResult(0.7, 0.6), "kd_mmd β=0.1": FakeResult(0.5, 0.8), "kd_mmd β=10": FakeResult(0.9, 0.4)}
    }
    one[0].update({lecture.ab_name(0.1, b): FakeResult(0.1 * b, 0.3) for b in (0.1, 1.0, 10.0)})
    t = lecture.alpha_beta_table(P, one)
    assert t.shape == (6, 2) and t.loc[(1.0, 10.0), "old R@1"] == pytest.approx(90)
    assert t.loc[(0.1, 1.0), "old R@1"] == pytest.approx(10) and t.loc[(0.1, 0.1), "new R@1"] == pytest.approx(30)


def _decides_at(claim, target, tol):
    """``claim`` holds within ``tol`` of ``target`` (both sides) and fails just outside."""
    metric = claim.metrics[0]
    inside = all(claim.decide({metric: [target + d * 0.99 * tol]})[0] for d in (-1, 1))
    outside = not any(claim.decide({metric: [target + d * 1.01 * tol]})[0] for d in (-1, 1))
    return inside and outside


def test_full_profile_claims_read_the_keys_the_lecture_writes():
    """Tables 5.4 / 5.5 / 5.6 / 5.8 targets: each tolerance separates its row from the others of its column."""
    ids = {c.id: c for c in ch05.CLAIMS}
    c = ids["05.cub200_alpha0p1_beta10_old_R1"]
    assert c.metrics == ("cub200/alpha=0.1,beta=10/old_R@1", "data/real")
    assert _decides_at(c, 79.58, (79.58 - 79.41) / 2)
    assert _decides_at(ids["05.cub200_split25_kd_mmd_old_R1"], 76.65, (77.33 - 76.65) / 2)
    assert _decides_at(ids["05.stanford_dogs_split5_kd_mmd_new_R1"], 97.45, (97.45 - 96.73) / 2)
    assert _decides_at(ids["05.cifar100_kd_mmd_top1_100"], 43.3, (43.3 - 41.0) / 2)
    assert _decides_at(ids["05.cifar100_initial_top1_20"], 77.3, 5.0)  # one value in its column: the ±5 cap
    assert ids["05.cifar100_kd_mmd_top1_100"].metrics == ("cifar100/kd_mmd/top1_100", ch05.CIFAR_REAL, "data/real")
    assert ch05.PAPER_NEW_SPLITS == {"cub200": [25], "stanford_dogs": [5]}


def test_dogs_takes_the_thesis_five_class_split_unless_set():
    p = runs.resolve("05", "full", dataset="stanford_dogs")
    ch05.FALLBACK.adjust(p, True)
    assert (p.n_old, p.n_new, p.new_class_splits) == (60, 60, [5])  # Table 5.5 (the profile's 25 is CUB's)
    p = runs.resolve("05", "full", dataset="stanford_dogs", new_class_splits=[10])
    ch05.FALLBACK.adjust(p, True)
    assert p.new_class_splits == [10]  # an explicit value is kept
    p = runs.resolve("05", "full")
    ch05.FALLBACK.adjust(p, True)
    assert p.new_class_splits == [25]
