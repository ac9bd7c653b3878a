"""xmr_lib.chapters.ch09.lecture (the steps notebook 09 calls) and the chapter's fallback rule (config.FALLBACK)."""

import json

import numpy as np
import pandas as pd
import pytest

from xmr_lib.chapters.ch09 import config as ch09
from xmr_lib.chapters.ch09 import diversity, lecture
from xmr_lib.course import runs
from xmr_lib.retrieval import rerank

# ---------------------------------------------------------------------------------------------------------------
# the fallback rule


def test_full_without_data_falls_back_to_shapes():
    p = runs.resolve("09", "full")
    assert p.dataset == "mediaeval2017" and p.data_root is None
    real, fell_back, banner = ch09.FALLBACK.apply(p)
    assert (real, fell_back) == (False, True)
    assert "FALLING BACK" in banner and diversity.FETCH_HINT in banner
    assert p.dataset == "shapes" and p.n_docs == 300 and p.betas == ch09.PROFILES["full"]["betas"]
    q = runs.resolve("09", "full", per_combo=5)  # 24 pairs × 5 images: the lists are clamped to the pool
    ch09.FALLBACK.apply(q)
    assert q.n_docs == 120


def test_default_asking_for_mediaeval_without_data_raises_naming_the_fetch_command(tmp_path):
    p = runs.resolve("09", "default", dataset="mediaeval2017", data_root=str(tmp_path))
    with pytest.raises(ValueError, match="mediaeval2017_div"):
        ch09.FALLBACK.apply(p)
    assert ch09.FALLBACK.apply(runs.resolve("09", "smoke")) == (False, False, "")


def test_params_records_the_markers(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("XMR_NOTEBOOK", "09_test")
    p = runs.params("09", profile="full", device="cpu")
    rec = json.loads((run_dir / "09_test.metrics.json").read_text())
    assert p.fell_back and rec["metrics"] == {"data/fallback": 1} and rec["params"]["dataset"] == "shapes"
    assert "FALLING BACK" in capsys.readouterr().out
    runs.params("09", profile="smoke", device="cpu")
    assert json.loads((run_dir / "09_test.metrics.json").read_text())["metrics"] == {"data/fallback": 0}


def test_knob_help_covers_every_knob():
    assert set(ch09.KNOB_HELP) == set(ch09.PROFILES["default"])


# ---------------------------------------------------------------------------------------------------------------
# metrics and the collection


def test_loop_metrics_match_the_batched_ones():
    rng = np.random.default_rng(1)
    cl = np.where(rng.random((20, 30)) < 0.6, rng.integers(0, 5, (20, 30)), -1)
    rk = np.argsort(rng.random((20, 30)), axis=1)
    for x in (5, 20):
        vec = diversity.diversity_metrics(rk, cl, x)
        np.testing.assert_allclose(
            lecture.p_cr_f1_loop(rk, cl, x), np.stack([vec["P"], vec["CR"], vec["F1"]], 1), atol=1e-12
        )
    # one topic by hand: clusters 0, 0, 1, -, 2 ranked as is, X = 4 → P = 3/4, CR = 2/3
    p, cr, f1 = lecture.p_cr_f1_loop(np.array([[0, 1, 2, 3, 4]]), np.array([[0, 0, 1, -1, 2]]), 4)[0]
    assert (p, cr) == pytest.approx((0.75, 2 / 3)) and f1 == pytest.approx(2 * p * cr / (p + cr))


def test_pool_size_and_n_docs_check():
    assert lecture.shape_pool_size(25) == len(diversity.shape_pool(25, seed=0, progress=False)) == 600
    lecture.check_n_docs(600, 600)
    with pytest.raises(ValueError, match="n_docs=600"):
        lecture.check_n_docs(601, 600)


def test_collections_draw_per_seed_and_share_the_real_lists():
    pool = diversity.shape_pool(6, seed=0, progress=False)
    coll = lecture.Collections(pool, None, "tfidf", n_docs=20, n_topics=4, p_mention=0.5, p_wrong=0.2)
    a, t, qt = coll(0)
    assert a.doc.shape == (4, 20) and t.shape[0] == len(a.texts) and qt.shape[0] == 4
    assert not np.array_equal(coll(1)[0].doc, a.doc)
    shown = np.unique(a.doc[a.mask])
    assert np.abs(np.delete(t, shown, axis=0)).sum() == 0  # documents no list shows are not encoded
    real = lecture.Collections(None, a, "tfidf", n_docs=20, n_topics=4, p_mention=0.5, p_wrong=0.2)
    (l0, t0, _), (l1, t1, _) = real(0), real(1)
    assert l0 is l1 is a and t0 is t1
    s = lecture.similarity_structure(a, t)
    assert list(s.index) == ["relevant, same cluster", "relevant, other cluster", "relevant vs irrelevant"]


# ---------------------------------------------------------------------------------------------------------------
# recorded numbers and tables


def _table():
    rows = []
    for seed in (1, 0):
        for key, run in (("run3", "RUN3"), ("run4", "RUN4")):
            for div, bonus in (("none", 0.0), ("MMR", 0.1)):
                rows.append(
                    {
                        "run": run,
                        "key": key,
                        "diversification": div,
                        "seed": seed,
                        "beta": 0.5 * (div == "MMR"),
                        "P@20": 0.6 - bonus / 2 + 0.01 * seed,
                        "CR@20": 0.4 + bonus,
                        "F1@20": 0.5 + bonus * (key == "run4"),
                        "ERR-IA@20": 0.5,
                        "α-nDCG@20": 0.5,
                    }
                )
    return pd.DataFrame(rows)


def test_recorded_numbers_from_the_tables():
    t = _table()
    m = lecture.table1_metrics(t, ["P@20"])
    assert m["table1/run3/mmr/P@20"] == pytest.approx([0.55, 0.56])  # sorted by seed
    g = lecture.mmr_gain_cost(t, [0, 1])
    assert g["mmr/run3/CR_gain"] == pytest.approx([0.1, 0.1]) and g["mmr/run3/P_cost"] == pytest.approx([0.05, 0.05])
    j = lecture.joint_gain(t)
    assert j["joint/run4_minus_run3_F1@20"] == pytest.approx([0.1, 0.1]) and j[
        "joint/run4_minus_run3_F1@20_mean"
    ] == pytest.approx(0.1)
    sweep = pd.DataFrame(
        [
            {"split": "report", "key": "run3", "seed": 0, "beta": b, "P@20": 0.6 - b / 10, "CR@20": c}
            for b, c in ((0.0, 0.4), (0.5, 0.6), (1.0, 0.5))
        ]
    )
    bm = lecture.beta_metrics(sweep)
    assert bm == {
        "beta/run3/P@20_beta0": [0.6],
        "beta/run3/P@20_beta_max": [0.5],
        "beta/run3/CR@20_beta0": [0.4],
        "beta/run3/CR@20_best": [0.6],
    }


def test_tables_shown():
    t = _table()
    ms = lecture.mean_sd(t, ["P@20"], with_sd=True)
    assert ms.loc[("RUN3", "run3", "none"), "P@20"] == "0.605 ± 0.005"
    assert lecture.mean_sd(t, ["P@20"], with_sd=False).loc[("RUN3", "run3", "none"), "P@20"] == "0.605"
    side = lecture.side_by_side(t, ["P@20"], {"RUN3": {"P@20": 70.0}})
    assert side.loc["RUN3", ("P@20", "paper")] == 70.0 and side.loc["RUN3", ("MMR β*", "ours")] == "0.5"
    assert np.isnan(side.loc["RUN4", ("P@20", "paper")])


def test_text_tile():
    tile = lecture.text_tile("red circle", size=64)
    assert tile.shape == (64, 64, 3) and tile.dtype == np.uint8 and tile.min() < 255 == tile.max()


def test_run3_with_alpha_one_is_the_text_ranking():
    pool = diversity.shape_pool(6, seed=0, progress=False)
    lists, t, qt = lecture.Collections(pool, None, "tfidf", n_docs=20, n_topics=4, p_mention=0.5, p_wrong=0.2)(0)
    rng = np.random.default_rng(0)
    scores = np.where(lists.mask, rng.random(lists.mask.shape), 0.0)
    feats = rng.normal(size=(*lists.mask.shape, 8))
    feats /= np.linalg.norm(feats, axis=2, keepdims=True)
    got = lecture.run3_metrics(lists, scores, feats, 3, 1.0)
    order = rerank.ranking_from_scores(scores, lists.mask)
    test = lists.split == "test"
    assert got["P@20"] == pytest.approx(diversity.diversity_metrics(order, lists.cluster, 20)["P"][test].mean())
    assert set(got) == {"P@20", "CR@20", "P@50"}


def test_topic_rows_labels_are_readable():
    """The explorer's figure: three rows of ``top`` photos, ≈ 1000 px wide at 90 dpi, row labels ≥ 9 pt."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xmr_lib.course import viz

    pool = diversity.shape_pool(6, seed=0, progress=False)
    lists, t, _ = lecture.Collections(pool, None, "tfidf", n_docs=20, n_topics=4, p_mention=0.5, p_wrong=0.2)(0)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(*lists.mask.shape, 8))
    feats /= np.linalg.norm(feats, axis=2, keepdims=True)
    scores = np.where(lists.mask, rng.random(lists.mask.shape), 0.0)
    fig = lecture.topic_rows(lists, scores, feats, grid=viz.ranked_grids, topic=0, K=3, alpha=0.15, beta=0.5)
    labels = [ax.yaxis.label for ax in fig.axes if ax.get_ylabel()]
    assert len(fig.axes) == 3 * 11 and len(labels) == 3
    assert all(lab.get_fontsize() >= 9 for lab in labels) and "P@10 = " in labels[0].get_text()
    assert fig.get_size_inches()[0] * 90 <= 1000
    query = fig.axes[0].texts[0]  # the query written in the first column, not a shrinking bitmap
    assert query.get_text().replace("\n", " ") == lists.titles[0] and query.get_fontsize() >= 9
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------
# a pool per seed, the dev-topic tuning, the paper's settings and the tiny knob


def _fake_visual(pool=None, real_lists=None, pool_key=None):
    """Stand-in for lecture.pool_visual: deterministic features from the pool's attributes, the key recorded."""
    rng = np.random.default_rng(pool_key.get("pool_seed", 99))
    combo = pool.colour * 3 + pool.shape
    v = np.eye(24)[combo] + np.eye(10)[pool.aspect] @ rng.normal(size=(10, 24)) * 0.5
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return {"a": v.astype(np.float32), "b": np.roll(v, 1, axis=0).astype(np.float32), "key": pool_key}


def test_collections_draw_a_pool_per_seed_with_its_own_visual_features():
    drawn = []

    def pools(seed):
        drawn.append(seed)
        return diversity.shape_pool(6, seed=seed, progress=False)

    coll = lecture.Collections(
        None,
        None,
        "tfidf",
        n_docs=20,
        n_topics=4,
        p_mention=0.5,
        p_wrong=0.2,
        pools=pools,
        visual=_fake_visual,
        pool_key={"pool": "easy_vqa_aspects", "per_combo": 6},
    )
    a, _, _ = coll(0)
    v0 = coll.visual(0)
    assert drawn == [0] and a.images is coll.pool_of(0).images  # the pool is drawn once per seed and kept
    assert v0["key"] == {"pool": "easy_vqa_aspects", "per_combo": 6, "pool_seed": 0} and coll.visual(0) is v0
    b, _, _ = coll(1)
    assert drawn == [0, 1] and not np.array_equal(coll.pool_of(1).aspect, diversity.shape_pool(6, seed=0).aspect)
    assert coll.visual(1)["key"]["pool_seed"] == 1 and b.images is coll.pool_of(1).images
    with pytest.raises(ValueError, match="visual"):
        lecture.Collections(None, None, "tfidf", n_docs=20, n_topics=4, p_mention=0.5, p_wrong=0.2).visual(0)


def test_run_seed_tunes_k_alpha_and_feature_on_the_dev_topics():
    pool = diversity.shape_pool(8, seed=0, progress=False)
    lists, t, qt = lecture.Collections(pool, None, "tfidf", n_docs=30, n_topics=6, p_mention=0.5, p_wrong=0.2)(0)
    v = _fake_visual(pool, pool_key={})
    cands = {"a": v["a"], "b": v["b"]}
    kw = dict(betas=[0.0, 0.5], joint_epochs=0, seed=0)
    runs_t, info, table, _, extras = lecture.run_seed(
        lists, cands, t, qt, k=25, alpha=0.15, tune_ks=[2, 5], tune_alphas=[0.0, 0.3], **kw
    )
    s_t = rerank.text_relevance(lists.titles, lists.texts, lists.doc, query_embeddings=qt, doc_embeddings=t)
    want, _ = diversity.tune_prf(lists, s_t, {n: lists.gather(x) for n, x in cands.items()}, [2, 5], [0.0, 0.3])
    assert info["tuned"] == want and extras["tune/K"] == want["K"] and extras["tune/alpha"] == want["alpha"]
    V = lists.gather(cands[want["feature"]])
    expect = rerank.two_step_score(runs_t["text"].scores, want["K"], want["alpha"], features=V)
    assert np.allclose(runs_t["run3"].scores, expect)  # the tuned K, α and feature are the ones RUN3 uses
    assert {"clusters", "clusters_text", "clusters_joint"} <= set(table.diversification)
    # without a grid: K and α as given, the first feature; MMR on another feature on request
    runs_f, info_f, _, _, _ = lecture.run_seed(lists, cands, t, qt, k=3, alpha=0.5, mmr_feature="b", **kw)
    assert (info_f["tuned"]["K"], info_f["tuned"]["alpha"], info_f["tuned"]["feature"]) == (3, 0.5, "a")
    assert np.array_equal(runs_f["run1"].diversity_features, lists.gather(cands["b"]))
    assert runs_f["run2"].diversity_features.shape[2] == t.shape[1]
    with pytest.raises(ValueError, match="mmr_feature"):
        lecture.run_seed(lists, cands, t, qt, k=3, alpha=0.5, mmr_feature="vgg16_rmac", **kw)


def test_paper_settings_tiny_knob_and_run5_labelled_ours():
    assert ch09.PAPER_SETTINGS and all(set(r) == {"setting", "paper", "ours", "why"} for r in ch09.PAPER_SETTINGS)
    assert all("§" in r["paper"] or "Table" in r["paper"] for r in ch09.PAPER_SETTINGS)
    table = runs.paper_settings("09")
    assert "K and α of Eq. (1)" in table.index and "RUN5" in table.index
    assert all(p["tiny"] is False for p in ch09.PROFILES.values())
    p = runs.resolve("09", "full", tiny=True)
    ch09.FALLBACK.apply(p)  # no data: the offline collection, then the tiny sizes
    assert p.dataset == "shapes" and p.visual_features == ["efficientnet_lite0"]
    assert p.image_size == ch09.TINY_KNOBS["image_size"] and p.n_seeds == 1
    assert "ours" in diversity.RUNS["run5"] and diversity.RUNS["run5"] not in ch09.PAPER_TABLE1
    with pytest.raises(ValueError, match="visual feature"):
        lecture.visual_features("inception_resnet", np.zeros((1, 8, 8, 3), np.uint8), size=8)
