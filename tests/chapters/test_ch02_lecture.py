"""xmr_lib.chapters.ch02: the steps notebook 02 calls (lecture) and its config's fallback rule and knob help."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from xmr_lib.chapters.ch02 import config, lecture
from xmr_lib.encoders import extract
from xmr_lib.retrieval import pooling


class Params(dict):
    """Resolved parameters as runs.resolve returns them: a dict readable as attributes."""

    __getattr__ = dict.__getitem__

    def __setattr__(self, k, v):
        self[k] = v


def _params(profile="smoke", **kw):
    p = Params(profile=profile, seed=0, device="cpu", data_root=None, **config.PROFILES[profile])
    p.update(kw)
    return p


def _gnd(easy, hard=(), junk=()):
    return {"easy": np.array(easy, int), "hard": np.array(hard, int), "junk": np.array(junk, int)}


def toy_bench(name="toy"):
    """4 database images, 2 queries: query 0 matches db 0 (easy) and db 1 (hard), db 2 is its junk; query 1
    matches db 3. Images are (2, 2, 3) arrays whose value is their index."""
    img = lambda v: np.full((2, 2, 3), v, np.uint8)
    return SimpleNamespace(
        name=name,
        db=[img(i) for i in range(4)],
        queries=[img(10), img(11)],
        train=[img(20 + i) for i in range(6)],
        train_groups=np.array([0, 0, 1, 1, 2, 2]),
        gnd=[_gnd([0], [1], [2]), _gnd([3])],
    )


def toy_desc(bench_key=("toy", 0), perfect=True):
    """Descriptors of toy_bench: one-hot per object, so that a query's own object ranks first."""
    db = np.eye(4, dtype=np.float32)[[0, 0, 1, 2]]
    q = np.eye(4, dtype=np.float32)[[0, 2]] if perfect else np.eye(4, dtype=np.float32)[[3, 0]]
    rng = np.random.default_rng(0)
    train = rng.normal(size=(6, 4)).astype(np.float32)
    return {bench_key + ("gem",): {"db": db, "queries": q, "train": train}}


# ---------------------------------------------------------------------------------------------------------------
# evaluation helpers


def test_rmap_is_100_for_a_perfect_ranking_and_mean_std_formats():
    r = lecture.rmap(np.eye(4, dtype=np.float32)[[0, 2]], np.eye(4, dtype=np.float32)[[0, 0, 1, 2]], toy_bench().gnd)
    assert r == {"easy": 100.0, "medium": 100.0, "hard": 100.0}
    assert lecture.mean_std([1.0, 3.0]) == "2.0 ± 1.0" and lecture.mean_std([2.25]) == "2.2"


def test_chance_levels_by_hand():
    # query 0: easy 1 of 4, easy ∪ hard 2 of 4, hard 1 of 4; query 1: 1 of 4, 1 of 4, 0 of 4
    c = lecture.chance_levels({("toy", 0): toy_bench()}, "toy", [0])
    assert c == pytest.approx({"easy": 0.25, "medium": 0.375, "hard": 0.125})


def test_query_truth_and_status_of():
    b = toy_bench()
    t = lecture.query_truth(b, 0)
    assert t["status"] == ["relevant", "relevant", "junk"] and t["titles"] == ["easy", "hard", "junk"]
    assert [int(im[0, 0, 0]) for im in t["results"]] == [0, 1, 2] and t["query_title"] == "query 0"
    assert lecture.status_of(b, 0, [2, 3, 1]) == ["junk", "irrelevant", "relevant"]


def test_rmac_region_loop_equals_the_vectorised_rmac():
    x = torch.relu(torch.randn(3, 8, 7, 10, generator=torch.Generator().manual_seed(0)))
    assert lecture.max_diff(pooling.rmac_pool, lecture.rmac_region_loop, list(x)) < 1e-5
    assert lecture.max_diff(lambda m: m.sum((2, 3)), lambda m: m.sum((2, 3)) + 0.5, list(x)) == 0.5


def test_zero_fraction_by_hand():
    maps = [torch.tensor([-1.0, 1.0, -2.0, 3.0]).view(1, 2, 2), torch.tensor([1.0, 1.0, 1.0, -1.0]).view(1, 2, 2)]
    assert lecture.zero_fraction(nn.ReLU(), maps) == pytest.approx((0.5 + 0.25) / 2)


def _evaluator(perfect=True):
    ev = lecture.Evaluator(
        {("toy", 0): toy_bench()}, "toy", [0], whiten_dim=3, whiten_power=0.5, qe_n=1, qe_alpha=3.0, dba_k=1
    )
    return ev, toy_desc(perfect=perfect)


def test_evaluator_scores_whitens_once_and_rejects_unknown_kinds():
    ev, desc = _evaluator()
    assert ev.scores(desc, "gem") == {"easy": [100.0], "medium": [100.0], "hard": [100.0]}
    w = ev.whitener(desc, "ots", 0, "gem")
    assert ev.whitener(desc, "ots", 0, "gem") is w and len(ev.cache) == 1
    q, db = ev.post(desc[("toy", 0, "gem")], w)
    assert q.shape == (2, 3) and db.shape == (4, 3)
    assert ev.whitener(desc, "ots", 0, "gem", "PCA-w on test db") is not w
    with pytest.raises(ValueError, match="kind"):
        ev.whitener(desc, "ots", 0, "gem", "ZCA")


def test_evaluator_post_applies_dba_then_qe():
    ev, desc = _evaluator()
    d = desc[("toy", 0, "gem")]
    q, db = ev.post(d)
    assert q is d["queries"] and db is d["db"]
    q1, db1 = ev.post(d, qe=True, dba=True)
    assert q1.shape == q.shape and db1.shape == db.shape and not np.array_equal(db1, db)
    np.testing.assert_allclose(np.linalg.norm(q1, axis=1), 1.0, atol=1e-6)


def test_qe_per_query_and_big_table_names():
    ev, desc = _evaluator()
    prec, dap = ev.qe_per_query(desc, "gem", 0)
    assert prec.tolist() == [1.0, 1.0] and dap.shape == (2,)
    rows, rec = lecture.big_table(ev, desc, "off-the-shelf", "ots", ["gem"])
    assert len(rows) == 4 and set(rows[0]) == {"network", "pooling", "whitening", "QE", "E", "M", "H"}
    assert "table/off-the-shelf/gem/PCA-w/aqe/medium" in rec and len(rec) == 12


def test_ranked_and_named_pipelines():
    ev, desc = _evaluator()
    desc[("toy", 0, "mac")] = desc[("toy", 0, "gem")]
    g = lecture.ranked(ev, desc, desc, "MAC", 0, [0, 1], 2)
    assert g["row_titles"] == ["q0", "q1"] and [len(r) for r in g["results"]] == [2, 2]
    assert g["status"][0] == ["relevant", "relevant"] and g["status"][1][0] == "relevant"
    assert lecture.pipeline_names(["mac"]) == ["MAC", "GeM + PCA-w + αQE"]
    assert len(lecture.pipeline_names(["gem"])) == 3
    q, db = lecture.named_pipeline(ev, desc, desc, "fine-tuned GeM + PCA-w + αQE", 0)
    assert q.shape == (2, 3) and ("ft-head", "toy", 0, "gem", "PCA-w") in ev.cache


def test_ranked_view_draws_one_query_with_the_grid_it_is_given():
    import matplotlib.pyplot as plt

    ev, desc = _evaluator()
    desc[("toy", 0, "mac")] = desc[("toy", 0, "gem")]
    seen = []

    def grid(**kw):
        seen.append(kw)
        return plt.figure()

    fig = lecture.ranked_view(ev, desc, desc, 0, grid)(query=1, pipeline="MAC", k=3)
    assert seen[0]["row_titles"] == ["q1"] and len(seen[0]["results"][0]) == 3
    assert fig._suptitle.get_text() == "MAC: query 1, top 3"
    plt.close(fig)


def test_finetune_history_plot_has_integer_epoch_ticks():
    import matplotlib.pyplot as plt

    h = SimpleNamespace(loss=[1.0], negative_distance=[0.5], p=[3.2])
    fig = lecture.plot_finetune_history({("toy", 0, "gem"): h}, "toy", [0], ["gem"], 1)
    for ax in fig.axes:
        fig.canvas.draw()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert [line.get_ydata().tolist() for line in fig.axes[2].lines] == [[3.0, 3.2]]
    plt.close(fig)


def test_exercise_checks_accept_the_library_and_reject_a_wrong_answer():
    from xmr_lib.retrieval import expansion

    ok, _ = config.EXERCISES["1"](lambda q, db, n, a: expansion.alpha_query_expansion(q, db, n=n, alpha=a))
    bad, why = config.EXERCISES["1"](lambda q, db, n, a: q)
    assert ok and not bad and "n=" in why
    assert config.EXERCISES["2"]({"small_object": "mac", "whole_map": "avg"})[0]
    assert not config.EXERCISES["2"]({"small_object": "avg", "whole_map": "avg"})[0]
    assert not config.EXERCISES["2"]("mac")[0]
    gem = lambda channels, p=3.0: pooling.GeM(p=p, channels=channels)  # noqa: E731
    assert config.EXERCISES["3"](gem)[0]
    assert not config.EXERCISES["3"](lambda channels, p=3.0: pooling.GeM(p=p))[0]  # one shared p


def test_describe_parts_keys_and_ft_net():
    ex = extract.MapExtractor(
        nn.Identity(), nn.Identity(), model="toy", lower_blocks=0, mean=(0, 0, 0), std=(1, 1, 1), image_size=4
    )
    low = {("toy", 0): {"db": torch.ones(3, 2, 2, 2), "queries": torch.ones(1, 2, 2, 2)}}
    desc = lecture.describe_parts(ex, low, {"mac": pooling.mac_pool, "avg": pooling.avg_pool})
    assert set(desc) == {("toy", 0, "mac"), ("toy", 0, "avg")} and desc[("toy", 0, "mac")]["db"].shape == (3, 2)
    upper = nn.Conv2d(2, 2, 1)
    net = lecture.ft_net(upper, "gem")
    assert net.features is not upper and float(net.pool.p.detach()) == pytest.approx(3.0)


def test_load_benchmark_without_data_root_names_the_fetch_command():
    with pytest.raises(ValueError, match="data_scripts fetch roxford5k"):
        lecture.load_benchmark("roxford5k", 0, _params("full"))


# ---------------------------------------------------------------------------------------------------------------
# config: the fallback rule and the knob help


def test_full_profile_falls_back_to_photo_instances_without_data_root():
    p = _params("full")
    real, fell_back, banner = config.FALLBACK.apply(p)
    assert (real, fell_back) == (False, True) and "FALLING BACK" in banner and "fetch roxford5k" in banner
    assert p.datasets == ["photo_instances"] and p.image_size == 512
    assert p.n_seeds == config.PROFILES["full"]["n_seeds"]  # every other full setting is kept


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_embedded_profiles_do_not_ask_for_real_data(profile):
    p = _params(profile)
    assert config.FALLBACK.apply(p) == (False, False, "") and p == _params(profile)


def test_full_profile_with_the_real_benchmarks_reads_them(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(config.data, "revisited", lambda ds, root: seen.append((ds, root)))
    p = _params("full", data_root=str(tmp_path))
    assert config.FALLBACK.apply(p) == (True, False, "")
    assert seen == [("roxford5k", str(tmp_path)), ("rparis6k", str(tmp_path))]


def test_every_knob_has_help():
    for prof in config.PROFILES.values():
        assert set(prof) == set(config.KNOB_HELP)
    assert all(isinstance(v, str) and v for v in config.KNOB_HELP.values())


def test_extractor_cache_key_matches_the_notebooks_split():
    """The lower part of EfficientNet-Lite0 holds 16 - ft_blocks MBConv blocks: the cache key of the maps is the
    one notebook 02 always used."""
    p = _params("smoke")
    trunk, ex = lecture.extractor(p)
    assert ex.lower_blocks == 16 - p.ft_blocks and isinstance(ex.lower_blocks, int)
    assert ex.image_size == p.image_size and tuple(ex.mean) == tuple(trunk.mean)
    x = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ex.upper.eval()(ex.lower.eval()(x)), trunk.eval()(x))
