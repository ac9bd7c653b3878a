"""Notebook 09's ``full`` path with ``tiny=True`` on the MediaEval 2017 real-format fixture: the data converted by
``python -m data_scripts fetch mediaeval2017_div --from-dir``, read by the loader the notebook calls, every candidate
visual trunk (randomly initialised: no weights), the §4 dev-topic tuning of K, α and the visual feature by P@50,
every run of Table 1, MMR with R-MAC similarity, and the §1 clustering on visual, textual and joint features."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from fixtures_real_formats import mediaeval_split_dir

from data_scripts import cli
from xmr_lib.chapters.ch09 import config as ch09
from xmr_lib.chapters.ch09 import diversity, lecture
from xmr_lib.course import runs


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    import torch

    torch.set_num_threads(1)


def _topic(first_id: int, n: int = 20, seed: int = 0):
    """n photos: (id, relevant 0/1, cluster); a third irrelevant, the rest in clusters 1-3."""
    rng = np.random.default_rng(seed)
    rel = rng.random(n) > 0.33
    rel[:2] = True
    return [(str(first_id + i), int(r), int(1 + i % 3) if r else 0) for i, r in enumerate(rel)]


def _mediaeval_root(tmp_path):
    mediaeval_split_dir(
        tmp_path / "manual" / "devset", {"angkor": _topic(100, seed=0), "acropolis": _topic(200, seed=1)}
    )
    mediaeval_split_dir(
        tmp_path / "manual" / "testset", {"big_ben": _topic(300, seed=2), "colosseum": _topic(400, seed=3)}
    )
    root = tmp_path / "data"
    args = ["fetch", "mediaeval2017_div", "--root", str(root), "--from-dir", str(tmp_path / "manual")]
    assert cli.main(args + ["--optional", "--quiet"]) == 0
    return root


def test_full_tiny_runs_the_papers_protocol_on_the_real_format(tmp_path):
    root = _mediaeval_root(tmp_path)
    P = runs.resolve("09", "full", data_root=str(root), tiny=True)
    real, fell_back, _ = ch09.FALLBACK.apply(P)
    assert (real, fell_back) == (True, False)
    assert P.image_size == ch09.TINY_KNOBS["image_size"] and P.n_seeds == 1
    assert P.visual_features == ch09.PROFILES["full"]["visual_features"] and P.mmr_feature == "vgg16_rmac"

    # as the notebook: the lists, the text features, every candidate trunk (random weights: tiny)
    real_lists = lecture.mediaeval_lists(P.data_root, P.n_docs)
    assert real_lists.n_queries == 4 and set(real_lists.split) == {"dev", "test"}
    visual = functools.partial(
        lecture.pool_visual, P.visual_features, size=P.image_size, device="cpu", pretrained=not P.tiny
    )
    coll = lecture.Collections(
        None,
        real_lists,
        "tfidf",
        n_docs=P.n_docs,
        n_topics=P.n_topics,
        p_mention=P.p_mention,
        p_wrong=P.p_wrong,
        visual=visual,
        pool_key={"pool": "mediaeval2017", "root": str(root)},
    )
    L, T, QT = coll(0)
    V = coll.visual(0)
    assert coll.visual(1) is V  # the real photos are the same for every seed
    dims = {"efficientnet_lite0": 1280, "alexnet_fc7": 4096, "resnet50": 2048, "vgg16_rmac": 512}
    assert {n: v.shape for n, v in V.items()} == {n: (80, d) for n, d in dims.items()}
    for v in V.values():
        assert np.isfinite(v).all() and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)

    run_s, info, table, sweep, extras = lecture.run_seed(
        L,
        V,
        T,
        QT,
        k=P.K,
        alpha=P.alpha,
        betas=P.betas,
        joint_epochs=P.joint_epochs,
        seed=0,
        tune_ks=P.tune_Ks,
        tune_alphas=P.tune_alphas,
        mmr_feature=P.mmr_feature,
    )
    tuned = info["tuned"]
    assert tuned["K"] in P.tune_Ks and tuned["alpha"] in P.tune_alphas and tuned["feature"] in V
    assert 0.0 <= tuned["score"] <= 1.0
    assert extras["tune/K"] == tuned["K"] and extras["tune/alpha"] == tuned["alpha"]
    # MMR's similarity is R-MAC for every run but the text-only ones (§4)
    rmac = L.gather(V["vgg16_rmac"])
    assert np.array_equal(run_s["run3"].diversity_features, rmac)
    assert run_s["run2"].diversity_features.shape[2] == T.shape[1]
    assert len(info["joint_loss"]) == P.joint_epochs and np.isfinite(info["joint_loss"]).all()
    assert set(table.diversification) == {"none", "MMR", "clusters", "clusters_text", "clusters_joint"}
    assert run_s["run5"].name.startswith("RUN5*") and "ours" in run_s["run5"].name
    metric_cols = [f"{m}@20" for m in diversity.METRIC_NAMES]
    rec = lecture.table1_metrics(table.assign(seed=0), metric_cols)
    assert "table1/run3/mmr/F1@20" in rec and "table1/run3/clusters_joint/CR@20" in rec
    assert all(np.isfinite(v).all() and 0.0 <= min(v) <= max(v) <= 1.0 for v in rec.values())
    assert len(sweep) == len(run_s) * len(P.betas) * 2
