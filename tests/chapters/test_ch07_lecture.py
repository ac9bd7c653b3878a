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


def test_run_all_same_numbers_on_one_or_two_processes(monkeypatch):
    """The seeds of ``run_all`` in worker processes give exactly the numbers of a sequential run; the runs sent
    back carry their plugins' records (generated images, on-the-fly teacher) as plain data."""
    import copy
    import pickle

    P = runs.resolve(
        "07", "smoke", methods=["ft", "kd_replay", "dkd"], base_iterations=12, inc_iterations=4, gen_steps=3
    )
    bench, make_model, transform = lecture.benchmark(P, P.seed), lecture.model_factory(P), lecture.batch_transform(P)
    base, cache0 = lecture.train_first(P, bench, make_model, transform), {}
    _, g0 = lecture.generate(P, base.model, bench, transform, cache0)
    seeds, got = [P.seed, P.seed + 1], {}
    for n in (1, 2):
        monkeypatch.setenv("XMR_WORKERS", str(n))
        res = lecture.run_all(P, seeds, bench, copy.deepcopy(base), dict(cache0), make_model, transform)
        assert list(res) == seeds
        got[n] = (res, lecture.score_metrics(P, res, bench, g0))
    assert got[1][1] == got[2][1] and len(got[2][1]["otf_teacher/tlast_H_seeds"]) == 2
    assert [r.losses for r in got[1][0][P.seed + 1].values()] == [r.losses for r in got[2][0][P.seed + 1].values()]
    # what a worker sends back (the parent may have run every job itself: tiny jobs finish before a worker starts)
    T, runs_ = len(bench.datasets), got[2][0][P.seed + 1]
    want = lecture.otf_teacher_scores(runs_["dkd"], T), lecture.plugin_records(runs_["dkd"])["generated"][0][1]
    sent, _ = pickle.loads(pickle.dumps(lecture._without_plugins((runs_, 0.0))))
    assert all(r.plugins == [] for r in sent.values()) and lecture.otf_teacher_scores(sent["dkd"], T) == want[0]
    got_g = lecture.plugin_records(sent["dkd"])["generated"][0][1]
    assert np.array_equal(got_g.curve("bn")[1], want[1].curve("bn")[1]) and torch.equal(got_g.images, want[1].images)
