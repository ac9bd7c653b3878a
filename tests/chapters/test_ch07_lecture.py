"""Notebook 07's code (xmr_lib.chapters.ch07.lecture) and its fallback rule (ch07 config ``FALLBACK``)."""

import types

import numpy as np
import pytest
import torch

from xmr_lib.chapters.ch07 import config as ch07
from xmr_lib.chapters.ch07 import lecture
from xmr_lib.course import runs
from xmr_lib.train import incremental as inc


def test_full_profile_falls_back_without_data(tmp_path):
    p = runs.resolve("07", "full", data_root=str(tmp_path), inc_iterations=11)
    real, fell_back, banner = ch07.FALLBACK.apply(p)
    assert (real, fell_back) == (False, True) and "FALLING BACK" in banner
    assert "fetch cub200 --root DIR` and `python -m data_scripts fetch stanford_dogs" in banner
    assert p.datasets == ["synth_species", "fashion_mnist", "digits"] and p.backbone == "tiny"
    assert p.inc_iterations == 11  # a knob given explicitly is kept
    assert set(ch07.FALLBACK_KNOBS) <= set(ch07.PROFILES["full"])


def test_other_profiles_do_not_fall_back(tmp_path):
    p = runs.resolve("07", "default", datasets=["cub200", "fashion_mnist"], data_root=str(tmp_path))
    with pytest.raises(ValueError, match="data_scripts fetch cub200"):
        ch07.FALLBACK.apply(p)
    assert ch07.FALLBACK.apply(runs.resolve("07", "smoke")) == (False, False, "")


def test_knob_help_covers_every_knob():
    assert set(ch07.KNOB_HELP) == set(ch07.PROFILES["default"])


def test_transform_model_and_config():
    P = runs.resolve("07", "smoke")
    tf = lecture.batch_transform(P)
    x = tf(torch.full((2, 3, 32, 32), 255, dtype=torch.uint8), train=False)
    assert torch.allclose(x, torch.full_like(x, 2.0))  # (1 − 0.5) / 0.25
    assert lecture.model_factory(P)(3)(x).embedding.shape == (2, P.embed_dim)
    cfg = lecture.train_config(P, 0, 3)
    assert cfg.iterations == [P.base_iterations, P.inc_iterations, P.inc_iterations]
    kw = lecture.plugin_kwargs(P, 0, {})
    assert kw["lambda_kd1"] == pytest.approx(P.kd_scale * P.lambda_kd1) and kw["replay"]["steps"] == P.gen_steps


def test_chance_r1_and_bn_gaps():
    split = inc.to_labelled(np.zeros((4, 4, 4, 3), np.uint8), np.array([0, 0, 1, 1]))
    assert lecture.chance_r1(split, [0, 1]) == pytest.approx(1 / 3)
    g0 = types.SimpleNamespace(stats={"running_mean": [np.zeros(2)], "running_var": [np.ones(2)]})
    gaps = lecture.bn_gaps({"same": ([np.zeros(2)], [np.ones(2)]), "off": ([np.ones(2)], [np.ones(2)])}, g0)
    assert gaps == {"same": 0.0, "off": 2.0}


def _result(s1, s2):
    groups = [{"R@1": s1, "mAP": s1}, {"R@1": s1, "mAP": s1}, {"R@1": s2, "mAP": s2}, {"R@1": s2, "mAP": s2}]
    return types.SimpleNamespace(steps=[{"groups": groups, "task": 1}], losses=[], plugins=[])


def test_seed_differences_and_tables():
    results = {s: {"initial": _result(0.9, 0.2), "ft": _result(0.5, 0.8), "kd": _result(0.6, 0.7)} for s in (0, 1)}
    P = types.SimpleNamespace(methods=["ft", "kd"])
    d = lecture.seed_differences(P, results, 2)
    assert list(d.index) == ["KD − FT, task 1 seen mAP (small, limited protection)"]
    assert d.iloc[0].tolist() == pytest.approx([0.1, 0.1])
    t = lecture.map_h_table(results, ["initial", "ft"], 2)
    assert t.loc["ft", "task 1 mAP_s"] == "50.0 ± 0.0"
    otf = lecture.otf_table(results, 0, 2)
    assert list(otf.index) == ["ft"] and otf.loc["ft", "H"] == pytest.approx(0.8)
