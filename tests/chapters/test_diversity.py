"""Tests for xmr_lib.chapters.ch09.diversity: the MediaEval diversity metrics, the offline collection, the Div150 loader."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xmr_lib.chapters.ch09 import diversity as dv
from xmr_lib.data import easy_vqa
from xmr_lib.encoders import features
from xmr_lib.retrieval import rerank

# ---------------------------------------------------------------------------------------------------------------
# metrics


def _ndeval_reference(run, clusters, x, alpha=0.5):
    """A line-by-line transcription of TREC ndeval v4.5 (computeDCG / computeERR / idealResult, greedy ideal,
    collection-dependent normalisation) for one query whose relevant documents each have one subtopic."""
    subtopics = sorted({c for c in clusters if c >= 0})

    def score_list(order):
        gain = {s: 1.0 for s in subtopics}
        scores = []
        for d in order[:x]:
            sc = 0.0
            if d >= 0 and clusters[d] >= 0:
                sc += gain[clusters[d]]
                gain[clusters[d]] *= 1.0 - alpha
            scores.append(sc)
        scores += [0.0] * (x - len(scores))
        return scores

    # greedy ideal over the judged relevant documents
    rel_docs = [i for i, c in enumerate(clusters) if c >= 0]
    gain = {s: 1.0 for s in subtopics}
    ideal, left = [], list(rel_docs)
    while left:
        best = max(left, key=lambda d: gain[clusters[d]])
        ideal.append(best)
        left.remove(best)
        gain[clusters[best]] *= 1.0 - alpha
    s_run, s_ideal = score_list(run), score_list(ideal)
    dcg = sum(s / math.log2(r + 2) for r, s in enumerate(s_run))
    idcg = sum(s / math.log2(r + 2) for r, s in enumerate(s_ideal))
    err = sum(s / (r + 1) for r, s in enumerate(s_run))
    ierr = sum(s / (r + 1) for r, s in enumerate(s_ideal))
    top = [d for d in run[:x] if d >= 0]
    p = sum(clusters[d] >= 0 for d in top) / x
    cr = len({clusters[d] for d in top if clusters[d] >= 0}) / len(subtopics)
    return {
        "P": p,
        "CR": cr,
        "F1": 0.0 if p + cr == 0 else 2 * p * cr / (p + cr),
        "alpha-nDCG": dcg / idcg if idcg else 0.0,
        "ERR-IA": err / ierr if ierr else 0.0,
    }


def test_metrics_hand_computed():
    clusters = np.array([[0, 0, 1, -1, 2]])
    m = dv.diversity_metrics(np.array([[0, 1, 2, 3, 4]]), clusters, x=4)
    assert m["P"][0] == pytest.approx(0.75)
    assert m["CR"][0] == pytest.approx(2 / 3)
    assert m["F1"][0] == pytest.approx(2 * 0.75 * (2 / 3) / (0.75 + 2 / 3))
    # gains 1, 0.5, 1, 0; ideal 1, 1, 1, 0.5
    dcg = 1 + 0.5 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4) + 0.5 / math.log2(5)
    assert m["alpha-nDCG"][0] == pytest.approx(dcg / idcg)
    assert m["ERR-IA"][0] == pytest.approx((1 + 0.5 / 2 + 1 / 3) / (1 + 1 / 2 + 1 / 3 + 0.5 / 4))


def test_metrics_match_ndeval_transcription():
    rng = np.random.default_rng(0)
    Q, N, x = 12, 40, 20
    clusters = np.where(rng.random((Q, N)) < 0.6, rng.integers(0, 7, (Q, N)), -1)
    ranking = np.argsort(rng.random((Q, N)), 1)
    ranking[3, 25:] = -1  # a short run
    m = dv.diversity_metrics(ranking, clusters, x)
    for q in range(Q):
        ref = _ndeval_reference(list(ranking[q]), list(clusters[q]), x)
        for k, v in ref.items():
            assert m[k][q] == pytest.approx(v, abs=1e-12), (q, k)


def test_perfect_diverse_ranking_scores_one_and_means():
    clusters = np.array([[0, 0, 0, 1, 1, 2, -1, -1]])
    ideal = np.array([[0, 3, 5, 1, 4, 2, 6, 7]])
    m = dv.diversity_metrics(ideal, clusters, x=3)
    for k in dv.METRIC_NAMES:
        assert m[k][0] == pytest.approx(1.0)
    means = dv.mean_metrics(np.vstack([ideal, ideal[:, ::-1]]), np.vstack([clusters, clusters]), 3)
    assert set(means) == {f"{k}@3" for k in dv.METRIC_NAMES}
    assert means["P@3"] == pytest.approx((1.0 + 1 / 3) / 2)
    assert dv.mean_metrics(np.vstack([ideal, ideal[:, ::-1]]), np.vstack([clusters, clusters]), 3, queries=[0])[
        "P@3"
    ] == pytest.approx(1.0)


def test_cluster_recall_counts_clusters_beyond_cutoff():
    # 5 clusters, a perfect list can cover only X = 2 of them
    clusters = np.array([[0, 1, 2, 3, 4]])
    m = dv.diversity_metrics(np.array([[0, 1, 2, 3, 4]]), clusters, x=2)
    assert m["CR"][0] == pytest.approx(2 / 5)
    assert m["P"][0] == 1.0


def test_metrics_validation():
    with pytest.raises(ValueError, match="clusters"):
        dv.diversity_metrics(np.array([[0]]), np.array([0]))
    with pytest.raises(ValueError, match="ranking"):
        dv.diversity_metrics(np.array([[0, 5]]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="x"):
        dv.diversity_metrics(np.array([[0, 1]]), np.array([[0, 1]]), x=0)


# ---------------------------------------------------------------------------------------------------------------
# offline collection


def _fake_pool(n_per=30, seed=0):
    rng = np.random.default_rng(seed)
    colour = np.repeat(np.arange(len(easy_vqa.COLOURS)), len(easy_vqa.SHAPES) * n_per)
    shape = np.tile(np.repeat(np.arange(len(easy_vqa.SHAPES)), n_per), len(easy_vqa.COLOURS))
    aspect = rng.integers(0, len(dv.ASPECTS), len(colour))
    images = rng.integers(0, 255, (len(colour), 8, 8, 3), dtype=np.uint8)
    return dv.ShapePool(images, colour, shape, aspect, np.arange(len(colour)))


def test_render_aspect_every_aspect():
    img = np.full((64, 64, 3), 240, np.uint8)
    img[20:40, 24:44] = (255, 0, 0)
    rng = np.random.default_rng(0)
    outs = [dv.render_aspect(img, a, rng) for a in range(len(dv.ASPECTS))]
    for o in outs:
        assert o.shape == (64, 64, 3) and o.dtype == np.uint8
    assert np.array_equal(outs[0], img)  # plain
    assert outs[3].mean() < img.mean() * 0.5  # night is dark
    assert outs[1][32, 32].tolist() == [255, 0, 0] and (outs[1] == (255, 0, 0)).all(-1).mean() > 0.4  # close-up
    with pytest.raises(ValueError, match="aspect"):
        dv.render_aspect(img, len(dv.ASPECTS), rng)
    with pytest.raises(ValueError, match="image"):
        dv.render_aspect(img.astype(np.float32), 0, rng)


def test_make_shape_topics_structure():
    pool = _fake_pool()
    L = dv.make_shape_topics(pool, n_docs=50, relevant_fraction=(0.3, 0.5), seed=1)
    Q = len(easy_vqa.COLOURS) * len(easy_vqa.SHAPES)
    assert L.doc.shape == (Q, 50) and L.mask.all()
    assert len(L.texts) == len(pool) and L.images is pool.images
    for q in range(Q):
        c, s = L.titles[q].split()
        col, shp = easy_vqa.COLOURS.index(c), easy_vqa.SHAPES.index(s)
        ids = L.doc[q]
        assert len(set(ids.tolist())) == 50  # no duplicate documents
        assert np.array_equal(L.relevant[q], (pool.colour[ids] == col) & (pool.shape[ids] == shp))
        assert np.array_equal(L.cluster[q] >= 0, L.relevant[q])
        assert np.array_equal(L.cluster[q][L.relevant[q]], pool.aspect[ids][L.relevant[q]])
        assert 0.3 * 50 - 1 <= L.relevant[q].sum() <= 0.5 * 50 + 1
        assert sorted(L.flickr_rank[q].tolist()) == list(range(1, 51))
    assert set(L.split) == {"dev", "test"} and (L.split == "dev").sum() == Q // 2
    feats = L.gather(np.arange(len(pool), dtype=float)[:, None])
    assert np.array_equal(feats[..., 0], L.doc)
    sub = L.subset(L.split == "dev")
    assert sub.n_queries == Q // 2 and set(sub.split) == {"dev"}
    table = L.summary()
    assert len(table) == Q and (table["documents"] == 50).all()
    # the same seed gives the same collection
    L2 = dv.make_shape_topics(pool, n_docs=50, relevant_fraction=(0.3, 0.5), seed=1)
    assert np.array_equal(L.doc, L2.doc) and L.texts == L2.texts


def test_make_shape_topics_text_noise_knobs():
    pool = _fake_pool()
    quiet = dv.make_shape_topics(pool, n_docs=40, p_mention=1.0, p_wrong=0.0, p_synonym=0.0, seed=0)
    for i in range(0, len(pool), 37):
        words = quiet.texts[i].split()
        assert easy_vqa.COLOURS[pool.colour[i]] in words and easy_vqa.SHAPES[pool.shape[i]] in words
        assert not any(w in words for w in easy_vqa.COLOURS if w != easy_vqa.COLOURS[pool.colour[i]])
    silent = dv.make_shape_topics(pool, n_docs=40, p_mention=0.0, p_wrong=0.0, p_aspect_word=0.0, seed=0)
    assert not any(w in t.split() for t in silent.texts for w in easy_vqa.COLOURS + easy_vqa.SHAPES)
    with pytest.raises(ValueError, match="p_mention"):
        dv.make_shape_topics(pool, p_mention=1.5)
    with pytest.raises(ValueError, match="n_docs"):
        dv.make_shape_topics(pool, n_docs=len(pool) + 1)
    with pytest.raises(ValueError, match="n_topics"):
        dv.make_shape_topics(pool, n_topics=99)


def test_shape_pool_reads_easy_vqa():
    pytest.importorskip("easy_vqa")
    pool = dv.shape_pool(per_combo=3, seed=0, progress=False)
    assert len(pool) == 3 * len(easy_vqa.COLOURS) * len(easy_vqa.SHAPES)
    assert pool.images.shape[1:] == (64, 64, 3)
    counts = np.bincount(pool.colour * 3 + pool.shape, minlength=24)
    assert (counts == 3).all()


# ---------------------------------------------------------------------------------------------------------------
# MediaEval 2017 loader


def _write_div(root, topics=(("1", "dancing on the street"), ("2", "trees reflected in water"))):
    from PIL import Image

    base = root / "devset"
    (base / "xml").mkdir(parents=True)
    (base / "gt" / "rGT").mkdir(parents=True)
    (base / "gt" / "dGT").mkdir(parents=True)
    xml = "<topics>" + "".join(f"<topic><number>{n}</number><title>{t}</title></topic>" for n, t in topics)
    (base / "devset_topics.xml").write_text(xml + "</topics>")
    for n, t in topics:
        (base / "img" / t).mkdir(parents=True)
        photos = []
        for k, pid in enumerate(["11", "12", "13"]):
            Image.new("RGB", (8, 8), (k * 50, 0, 0)).save(base / "img" / t / f"{pid}{n}.jpg")
            photos.append(f'<photo id="{pid}{n}" rank="{3 - k}" title="t{k}" tags="tag{k} {t}" description=""/>')
        (base / "xml" / f"{t}.xml").write_text(f'<photos monument="{t}">' + "".join(photos) + "</photos>")
        (base / "gt" / "rGT" / f"{t} rGT.txt").write_text(f"11{n},1\n12{n},0\n13{n},1\n")
        (base / "gt" / "dGT" / f"{t} dGT.txt").write_text(f"11{n},2\n13{n},1\n")


def test_load_div2017_layout(tmp_path):
    _write_div(tmp_path)
    L = dv.load_div2017(tmp_path, "devset")
    assert L.titles == ["dancing on the street", "trees reflected in water"]
    assert L.doc.shape == (2, 3) and L.mask.all()
    # photos are ordered by the Flickr rank attribute: 13 (rank 1), 12, 11
    assert [L.image_paths[i].split("/")[-1] for i in L.doc[0]] == ["131.jpg", "121.jpg", "111.jpg"]
    assert L.relevant[0].tolist() == [True, False, True]
    assert L.cluster[0].tolist() == [0, -1, 1]
    assert L.flickr_rank[0].tolist() == [1, 2, 3]
    assert "tag0" in L.texts[L.doc[0, 2]]
    run = tmp_path / "run.txt"
    dv.write_trec_run(run, L, np.array([[0, 2, 1], [1, 0, 2]]), run_id="test")
    first = run.read_text().splitlines()[0].split()
    assert first == ["1", "0", "131", "0", "50.000000", "test"]


def test_load_div2017_missing_data_names_the_fetch_command(tmp_path):
    with pytest.raises(ValueError, match="data_scripts fetch"):
        dv.load_div2017(tmp_path, "devset")
    with pytest.raises(ValueError, match="data_scripts fetch"):
        dv.load_div2017(None, "devset")


# ---------------------------------------------------------------------------------------------------------------
# the Table 1 harness and features


def _synthetic_features(pool, seed=0):
    """Visual features = topic centroid + aspect centroid + noise; the aspect dominates, as with real features."""
    rng = np.random.default_rng(seed)
    combo = pool.colour * len(easy_vqa.SHAPES) + pool.shape
    topic_c = rng.normal(size=(24, 32))
    aspect_c = rng.normal(size=(len(dv.ASPECTS), 32))
    v = 1.0 * topic_c[combo] + 1.5 * aspect_c[pool.aspect] + 0.5 * rng.normal(size=(len(pool), 32))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_table1_runs_and_evaluate_runs():
    pool = _fake_pool(n_per=30)
    L = dv.make_shape_topics(pool, n_docs=50, p_mention=0.4, p_wrong=0.3, seed=0)
    V = _synthetic_features(pool)
    T = features.text_features(L.texts, encoder="tfidf")
    QT = features.text_features(L.titles, encoder="tfidf", fit_texts=L.texts)
    runs, info = dv.table1_runs(
        L,
        V,
        T,
        QT,
        k=10,
        alpha=0.15,
        joint_epochs=2,
        triplets_per_epoch=256,
        joint_hidden=32,
        joint_dim=16,
        progress=False,
    )
    assert set(runs) == set(dv.RUNS)
    for run in runs.values():
        assert run.scores.shape == L.doc.shape and np.isfinite(run.scores).all()
    assert runs["run2"].diversity_features.shape[2] == T.shape[1]
    assert runs["run3"].diversity_features.shape[2] == V.shape[1]
    assert len(info["joint_loss"]) == 2 and 0.0 <= info["pseudo_positive_precision"] <= 1.0
    # feedback through the pictures raises precision over the text score on this collection
    test = L.split == "test"
    p = {
        k: dv.mean_metrics(rerank.ranking_from_scores(r.scores), L.cluster, queries=test)["P@20"]
        for k, r in runs.items()
    }
    assert p["run3"] > p["text"]
    betas = [0.0, 0.5, 1.0]
    table, sweep = dv.evaluate_runs(L, runs, betas, cluster_ks=(3, 5))
    assert set(table.diversification) == {"none", "MMR", "clusters"}
    assert len(table) == 2 * len(runs) + 1
    assert len(sweep) == len(runs) * len(betas) * 2
    # the reported β is the best on the dev ("tune") topics, and its report-split numbers are in the sweep
    for key in runs:
        row = table[(table.key == key) & (table.diversification == "MMR")].iloc[0]
        tune = sweep[(sweep.key == key) & (sweep.split == "tune")]
        assert row.beta == tune.sort_values(["F1@20", "beta"], ascending=[False, True]).beta.iloc[0]
        rep = sweep[(sweep.key == key) & (sweep.split == "report") & (sweep.beta == row.beta)].iloc[0]
        assert row["F1@20"] == pytest.approx(rep["F1@20"])
    with pytest.raises(ValueError, match="split"):
        dv.evaluate_runs(L, runs, betas, tune_on="nope")


def test_concat_lists_and_document_image():
    pool = _fake_pool(n_per=10)
    a = dv.make_shape_topics(pool, n_docs=20, n_topics=3, seed=0)
    b = dv.make_shape_topics(pool, n_docs=15, n_topics=2, seed=1)
    c = dv.concat_lists(a, b)
    assert c.doc.shape == (5, 20) and len(c.texts) == 2 * len(pool)
    assert np.array_equal(c.doc[3, :15], b.doc[0] + len(pool)) and (c.doc[3, 15:] == -1).all()
    assert not c.mask[3, 15:].any() and (c.cluster[3, 15:] == -1).all()
    assert c.texts[c.doc[3, 0]] == b.texts[b.doc[0, 0]]
    assert np.array_equal(dv.document_image(c, int(c.doc[3, 0]), size=8), pool.images[b.doc[0, 0]])
    assert dv.document_image(c, 0, size=16).shape == (16, 16, 3)


def test_text_features_tfidf_and_validation():
    texts = ["red circle photo", "blue square", "red red square art", "green triangle"]
    e = features.text_features(texts, encoder="tfidf")
    assert e.shape[0] == 4 and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    q = features.text_features(["red square"], encoder="tfidf", fit_texts=texts)
    assert np.argmax(e @ q[0]) == 2
    with pytest.raises(ValueError, match="encoder"):
        features.text_features(texts, encoder="bert")


def test_image_features_efficientnet(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite_pytorch")
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    f = features.image_features(imgs, size=32, cache_key={"test": 1}, progress=False)
    assert f.shape == (6, 1280) and np.allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    assert len(list(tmp_path.rglob("*.npy"))) == 1
    again = features.image_features(imgs, size=32, cache_key={"test": 1}, progress=False)  # from the cache
    np.testing.assert_allclose(again, f)
    raw = features.image_features(imgs, size=32, center=False, progress=False)
    assert (raw @ raw.T).min() > 0  # uncentred ReLU-pooled features all point the same way
    with pytest.raises(ValueError, match="exactly one"):
        features.image_features()


def test_toy_lists_shapes_clusters_and_bad_input():
    rel, f, cl = dv.toy_lists(n_queries=4, n_docs=10, n_clusters=3, dim=5, seed=1)
    assert rel.shape == (4, 10) and f.shape == (4, 10, 5) and cl.shape == (4, 10)
    assert rel.min() >= 0 and rel.max() <= 1 and np.allclose(np.linalg.norm(f, axis=2), 1)
    assert set(np.unique(cl)) <= {-1, 0, 1, 2}
    again = dv.toy_lists(n_queries=4, n_docs=10, n_clusters=3, dim=5, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((rel, f, cl), again))
    with pytest.raises(ValueError, match="n_docs"):
        dv.toy_lists(n_docs=0)
    with pytest.raises(ValueError, match="p_relevant"):
        dv.toy_lists(p_relevant=1.5)


# ---------------------------------------------------------------------------------------------------------------
# the offline base rank is blind to the ground truth; the runs never read it


def test_flickr_ranks_hand_computed_and_bad_input():
    rng = np.random.default_rng(0)
    # noise 0: latent 0.5·match = 0, 1, 0.5, 1 → order 1, 3, 2, 0 (stable) → ranks 4, 1, 3, 2
    assert dv.flickr_ranks([0, 2, 1, 2], rng, noise=0.0).tolist() == [4, 1, 3, 2]
    r = dv.flickr_ranks(np.zeros(30), np.random.default_rng(1))
    assert sorted(r.tolist()) == list(range(1, 31))
    with pytest.raises(ValueError, match="match"):
        dv.flickr_ranks(np.zeros((2, 3)), rng)
    with pytest.raises(ValueError, match="noise"):
        dv.flickr_ranks([1, 2], rng, noise=-1.0)


def test_flickr_rank_carries_relevance_only_through_the_tags():
    """Within documents whose tags match the query equally, relevant and irrelevant documents get the same ranks
    (the base signal never reads the ground truth); across match counts, relevant ones rank higher (the tags)."""
    for p_mention in (0.5, 0.9):
        L = dv.make_shape_topics(_fake_pool(n_per=60), n_docs=120, p_mention=p_mention, p_wrong=0.1, seed=3)
        words = [set(t.split()) for t in L.texts]
        match = np.array([[len(set(L.titles[q].split()) & words[d]) for d in L.doc[q]] for q in range(L.n_queries)])
        r = L.flickr_rank / L.flickr_rank.shape[1]  # normalised rank, 1 = last
        within = []
        for m in np.unique(match):
            sel = match == m
            rel, irr = r[sel & L.relevant], r[sel & ~L.relevant]
            if len(rel) > 30 and len(irr) > 30:
                within.append(abs(rel.mean() - irr.mean()) / np.sqrt(rel.var() / len(rel) + irr.var() / len(irr)))
        assert len(within) >= 2 and max(within) < 3.5  # no difference beyond chance (z-score) at any match count
    assert r[L.relevant].mean() < r[~L.relevant].mean() - 0.05  # ... yet telling tags make relevant ones rank higher


def test_runs_never_read_the_ground_truth_and_the_winner_follows_it():
    """Shuffling the ground truth inside each list leaves every run's scores unchanged (no run reads it), and
    then the cross-media run loses its lead over the text score: which method wins comes from the features and
    texts, not from the generator."""
    pool = _fake_pool(n_per=30)
    L = dv.make_shape_topics(pool, n_docs=50, p_mention=0.4, p_wrong=0.3, seed=0)
    V = _synthetic_features(pool)
    T = features.text_features(L.texts, encoder="tfidf")
    QT = features.text_features(L.titles, encoder="tfidf", fit_texts=L.texts)
    rng = np.random.default_rng(0)
    perm = np.argsort(rng.random(L.doc.shape), axis=1)
    shuffled = dv.TopicLists(
        L.titles,
        L.doc,
        L.mask,
        np.take_along_axis(L.relevant, perm, 1),
        np.take_along_axis(L.cluster, perm, 1),
        L.flickr_rank,
        L.texts,
        L.images,
        split=L.split,
    )
    runs, _ = dv.table1_runs(L, V, T, QT, k=10, alpha=0.15, joint_epochs=0, progress=False)
    runs_s, _ = dv.table1_runs(shuffled, V, T, QT, k=10, alpha=0.15, joint_epochs=0, progress=False)
    for key in runs:
        assert np.array_equal(runs[key].scores, runs_s[key].scores), key

    def p20(lists, run):
        return dv.mean_metrics(rerank.ranking_from_scores(run.scores), lists.cluster)["P@20"]

    gap = p20(L, runs["run3"]) - p20(L, runs["text"])
    gap_shuffled = p20(shuffled, runs_s["run3"]) - p20(shuffled, runs_s["text"])
    assert gap > 0.1 and abs(gap_shuffled) < gap / 3


# ---------------------------------------------------------------------------------------------------------------
# §4's tuning by P@50 on the dev topics; §1's clustering on visual, textual and joint features


def test_tune_prf_picks_the_best_dev_p50_and_breaks_ties_small():
    pool = _fake_pool(n_per=30)
    L = dv.make_shape_topics(pool, n_docs=60, p_mention=0.4, p_wrong=0.3, seed=1)
    T = features.text_features(L.texts, encoder="tfidf")
    QT = features.text_features(L.titles, encoder="tfidf", fit_texts=L.texts)
    s_t = rerank.text_relevance(L.titles, L.texts, L.doc, query_embeddings=QT, doc_embeddings=T)
    good = L.gather(_synthetic_features(pool))
    noise = np.random.default_rng(5).normal(size=good.shape)
    noise /= np.linalg.norm(noise, axis=2, keepdims=True)
    best, grid = dv.tune_prf(L, s_t, {"noise": noise, "good": good}, [5, 20], [0.0, 0.3])
    assert len(grid) == 8 and set(grid.feature) == {"noise", "good"}
    assert best["score"] == grid["P@50"].max() and best["feature"] == "good"
    row = grid[(grid.feature == best["feature"]) & (grid.K == best["K"]) & (grid.alpha == best["alpha"])]
    assert row["P@50"].iloc[0] == best["score"]
    # the dev topics decide: recompute the winner's P@50 on them by hand
    sc = rerank.two_step_score(s_t, best["K"], best["alpha"], features=good)
    per = dv.diversity_metrics(rerank.ranking_from_scores(sc), L.cluster, 50)["P"]
    assert per[L.split == "dev"].mean() == pytest.approx(best["score"])
    # α = 1 is the text ranking whatever K: all K tie, the smallest wins
    b1, _ = dv.tune_prf(L, s_t, {"good": good}, [30, 3, 10], [1.0])
    assert b1["K"] == 3 and b1["alpha"] == 1.0
    with pytest.raises(ValueError, match="ks"):
        dv.tune_prf(L, s_t, {"good": good}, [0], [0.1])
    with pytest.raises(ValueError, match="alphas"):
        dv.tune_prf(L, s_t, {"good": good}, [5], [1.5])
    with pytest.raises(ValueError, match="features"):
        dv.tune_prf(L, s_t, {}, [5], [0.1])


def test_clustering_on_visual_text_and_joint_features():
    pool = _fake_pool(n_per=30)
    L = dv.make_shape_topics(pool, n_docs=50, p_mention=0.4, p_wrong=0.3, seed=0)
    Vp = _synthetic_features(pool)
    T = features.text_features(L.texts, encoder="tfidf")
    QT = features.text_features(L.titles, encoder="tfidf", fit_texts=L.texts)
    runs, _ = dv.table1_runs(L, Vp, T, QT, k=10, alpha=0.15, joint_epochs=0, progress=False)
    V, Tg = L.gather(Vp), L.gather(T)
    J = dv.joint_features(V, Tg)
    assert J.shape == V.shape[:2] + (V.shape[2] + Tg.shape[2],)
    assert np.allclose(np.linalg.norm(J, axis=2), 1.0, atol=1e-5)
    assert np.allclose(
        np.einsum("qnd,qmd->qnm", J, J),
        0.5 * (np.einsum("qnd,qmd->qnm", V, V) + np.einsum("qnd,qmd->qnm", Tg, Tg)),
        atol=1e-5,
    )
    views = {"clusters": V, "clusters_text": Tg, "clusters_joint": J}
    table, _ = dv.evaluate_runs(L, runs, [0.0, 0.5], cluster_ks=(3, 5), cluster_features=views)
    rows = table[table.key == "run3"].set_index("diversification")
    assert set(views) <= set(rows.index)
    assert len({rows.loc[v, "F1@20"] for v in views}) == 3  # each on its own features
    for name, f in views.items():  # each row is k-means at every k on that view, then the cluster-sharing re-rank
        lab = np.stack([rerank.batched_kmeans(f, k, seed=i) for i, k in enumerate((3, 5))], 1)
        order = rerank.cluster_share_rerank(runs["run3"].scores, lab, depth=50)
        want = dv.mean_metrics(order, L.cluster, queries=L.split == "test")["CR@20"]
        assert rows.loc[name, "CR@20"] == pytest.approx(want)
    with pytest.raises(ValueError, match="leading shape"):
        dv.joint_features(V, Tg[:1])
