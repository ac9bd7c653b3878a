"""Notebook 06's code (xmr_lib.chapters.ch06.lecture) and its fallback rule (ch06 config ``FALLBACK``)."""

import types

import numpy as np
import pytest
import torch

from xmr_lib.chapters.ch06 import config as ch06
from xmr_lib.chapters.ch06 import lecture
from xmr_lib.course import runs
from xmr_lib.train import distill
from xmr_lib.train import incremental as inc


def test_full_profile_falls_back_without_data(tmp_path):
    p = runs.resolve("06", "full", data_root=str(tmp_path))
    real, fell_back, banner = ch06.FALLBACK.apply(p)
    assert (real, fell_back) == (False, True) and "FALLING BACK" in banner and "fetch cub200" in banner
    assert p.dataset == "synth_species" and p.class_order == "latin" and p.step_iterations == [1500, 750, 750]
    assert set(ch06.FALLBACK_KNOBS) <= set(ch06.PROFILES["full"])
    lecture.class_order(p), lecture.step_iterations(p)  # the fallback settings are a valid protocol


def test_other_profiles_do_not_fall_back(tmp_path):
    p = runs.resolve("06", "default", dataset="stanford_dogs", data_root=str(tmp_path))
    with pytest.raises(ValueError, match="data_scripts fetch stanford_dogs"):
        ch06.FALLBACK.apply(p)
    assert ch06.FALLBACK.apply(runs.resolve("06", "smoke")) == (False, False, "")


def test_knob_help_covers_every_knob():
    assert set(ch06.KNOB_HELP) == set(ch06.PROFILES["default"])


def test_eq_6_5_as_printed_is_the_library_loss_at_temperature_one():
    g = torch.Generator().manual_seed(0)
    Ft = torch.nn.functional.normalize(torch.randn(5, 3, generator=g), dim=1)
    Fs = torch.nn.functional.normalize(torch.randn(5, 3, generator=g), dim=1)
    assert lecture.eq_6_5_literal(Ft, Fs).item() == pytest.approx(
        distill.correlation_distillation_loss(Fs, Ft, temperature=1.0).item(), rel=1e-5
    )
    assert lecture.eq_6_5_literal(Ft, Ft).item() == pytest.approx(0.0, abs=1e-7)


def test_protocol_checks():
    P = types.SimpleNamespace(
        class_order="latin", dataset="synth_species", n_old=9, n_new=9, n_steps=3, step_iterations=5
    )
    assert sorted(lecture.class_order(P)) == list(range(18)) and lecture.step_iterations(P) == [5, 5, 5]
    P.step_iterations = [4, 2]
    with pytest.raises(ValueError, match="step_iterations"):
        lecture.step_iterations(P)
    P.n_new = 6
    with pytest.raises(ValueError, match="latin"):
        lecture.class_order(P)
    P.class_order = "random"
    with pytest.raises(ValueError, match="class_order"):
        lecture.class_order(P)
    P.class_order = "natural"
    assert lecture.class_order(P) == list(range(15))


def test_benchmark_and_samples():
    P = runs.resolve("06", "smoke")
    train, test, names = lecture.benchmark(P, 0)
    groups = inc.multi_step_protocol(lecture.class_order(P), P.n_old, P.n_steps)
    ims, titles = lecture.group_samples(train, groups, per_group=2)
    assert len(ims) == 2 * len(groups) and titles[:2] == ["g0: 0", "g0: 1"] and ims[0].shape == (32, 32, 3)
    assert lecture.batch_transform(P, 3)(train.images[:1], train=False).shape == (1, 3, 32, 32)


def test_chance_map_and_formatting():
    split = inc.to_labelled(np.zeros((4, 4, 4, 3), np.uint8), np.array([0, 0, 1, 1]))
    assert lecture.chance_map(split, [0, 1]) == pytest.approx(1 / 3)
    assert lecture.mean_std([0.5]) == "50.0" and lecture.mean_std([0.4, 0.6]) == "50.0 ± 10.0"


def test_memory_metrics_and_table():
    net = inc.make_net(4, "tiny", 8, 4)
    m = lecture.memory_metrics(net, 3)
    assert m["memory/fe_over_all_ratio"] == pytest.approx(1 / 3)  # one stored model against three
    assert m["memory/bytes_per_model"] == sum(p.numel() * p.element_size() for p in net.state_dict().values())
    mem = lecture.memory_table(net, 2)
    assert len(mem) == 10 * 3 and set(mem["method"]) == {"corr", "corr_fe", "corr_all"}


def test_metrics_from_results():
    class R:
        def __init__(self, v):
            g = [{"mAP": v, "R@1": v}, {"mAP": v / 2, "R@1": v / 2}, {"mAP": v / 4, "R@1": v / 4}]
            self.steps = [{"groups": g, "old": g[0], "new": g[1], "all": g[0]}] * 3
            self.losses = [{"total": 2.0}, {"total": 1.0}]

        def forgetting(self):
            return 0.1

    multi = {0: {"corr": R(0.8)}, 1: {"corr": R(0.6)}}
    t2 = lecture.t2_metrics(multi, ["corr"], 2)
    assert t2["t2/corr/old_mAP_seeds"] == [0.8, 0.6] and t2["t2/corr/new_R@1_seeds"] == [0.2, 0.15]
    b = lecture.base_metrics(
        {0: R(0.8)}, inc.to_labelled(np.zeros((4, 4, 4, 3), np.uint8), np.array([0, 0, 1, 1])), [0, 1]
    )
    assert b["initial/loss_last_over_first_seeds"] == [0.5] and b["initial/new_mAP_seeds"] == [0.4]
    P = types.SimpleNamespace(dataset="synth_species")
    assert lecture.paper_metrics(P, {}, {}, multi, ["corr"], 2) == {}
