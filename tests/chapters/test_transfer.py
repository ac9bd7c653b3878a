"""Tests for xmr_lib.chapters.ch08.transfer: F-score similarities, the similarity-based initialisation, fine-tuning heads."""

import numpy as np
import pytest

from xmr_lib.chapters.ch08 import transfer as T

# ------------------------------------------------------------------------------------------------ F-scores


def test_fscore_matrix_hand_computed():
    # 6 images of 2 target classes, 3 source outputs (argmax predictions)
    y = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([2, 2, 0, 2, 1, 1])
    F = T.fscore_matrix(pred, y, n_predicted=3)
    # target 0 vs source 2: TP=2, predicted 2 three times, 3 images of class 0 → 2·2/(3+3)
    assert F[0, 2] == pytest.approx(4 / 6)
    # target 0 vs source 0: TP=1, predicted once → 2/(1+3)
    assert F[0, 0] == pytest.approx(2 / 4)
    assert F[0, 1] == 0.0
    # target 1 vs source 1: TP=2, predicted twice → 4/(2+3)
    assert F[1, 1] == pytest.approx(4 / 5)
    assert F[1, 2] == pytest.approx(2 / 6)
    assert F.shape == (2, 3)


def test_fscore_matrix_matches_definition_with_loops():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    pred = np.stack([rng.permutation(7)[:2] for _ in range(200)])  # two distinct outputs fire per image
    F = T.fscore_matrix(pred, y, 7, 4)
    for i in range(4):
        for j in range(7):
            fires = (pred == j).any(1)
            tp = np.sum(fires & (y == i))
            fp = np.sum(fires & (y != i))
            fn = np.sum(~fires & (y == i))
            ref = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
            assert F[i, j] == pytest.approx(ref)


def test_inference_similarity_argmax_and_topk():
    scores = np.array([[0.1, 3.0, 0.2], [2.0, 1.0, 0.0], [0.0, 0.5, 0.9], [0.0, 0.2, 0.1]])
    y = np.array([0, 0, 1, 1])
    S = T.inference_similarity(scores, y)
    np.testing.assert_allclose(S, T.fscore_matrix(scores.argmax(1), y, 3, 2))
    S2 = T.inference_similarity(scores, y, top_k=2)
    # top-2 sets: {1,2}, {0,1}, {2,1}, {1,2}; source 1 fires on all 4 → F(0,1) = 2·2/(4+2)
    assert S2[0, 1] == pytest.approx(4 / 6)
    soft = T.inference_similarity(scores, y, soft=True)
    assert soft.shape == (2, 3) and np.all((soft >= 0) & (soft <= 1))


def test_inference_similarity_rejects_bad_input():
    with pytest.raises(ValueError, match="source_scores"):
        T.inference_similarity(np.zeros(5), np.zeros(5, int))
    with pytest.raises(ValueError, match="target_labels"):
        T.inference_similarity(np.zeros((5, 3)), np.zeros(4, int))
    with pytest.raises(ValueError, match="top_k"):
        T.inference_similarity(np.zeros((5, 3)), np.zeros(5, int), top_k=4)


def test_per_class_and_macro_fscore():
    y = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    pc = T.per_class_fscore(pred, y, 3)
    np.testing.assert_allclose(pc, [2 / 4, 4 / 5, 0.0])
    assert T.macro_fscore(pred, y, 3) == pytest.approx((0.5 + 0.8) / 3)
    assert T.macro_fscore(pred, y, 3, classes=[0, 1]) == pytest.approx(0.65)
    # batched: R runs at once
    both = T.macro_fscore(np.stack([pred, y]), y, 3)
    np.testing.assert_allclose(both, [(0.5 + 0.8) / 3, 1.0])
    with pytest.raises(ValueError, match="predictions"):
        T.per_class_fscore(np.array([0, 5, 1, 1, 2]), y, 3)


# ------------------------------------------------------------------------------------------------ initialisation


def test_neighbour_coefficients_hand_computed():
    sim = np.array([[0.1, 0.6, 0.3, 0.0], [0.5, 0.5, 0.5, 0.2]])
    C = T.neighbour_coefficients(sim, 2)
    np.testing.assert_allclose(C[0], [0, 0.6 / 0.9, 0.3 / 0.9, 0])
    # ties broken by source index: the first two of the three 0.5s
    np.testing.assert_allclose(C[1], [0.5, 0.5, 0, 0])
    np.testing.assert_allclose(C.sum(1), 1.0)
    # per-target K
    C2 = T.neighbour_coefficients(sim, np.array([1, 4]))
    np.testing.assert_allclose(C2[0], [0, 1, 0, 0])
    np.testing.assert_allclose(C2[1], np.array([0.5, 0.5, 0.5, 0.2]) / 1.7)


def test_neighbour_coefficients_negative_and_zero_rows():
    sim = np.array([[-0.2, -0.1, -0.5], [0.4, -0.3, 0.0]])
    C = T.neighbour_coefficients(sim, 2)
    # all neighbours non-positive → uniform over the K nearest (sources 1 then 0)
    np.testing.assert_allclose(C[0], [0.5, 0.5, 0])
    # negatives clipped to 0
    np.testing.assert_allclose(C[1], [1.0, 0, 0])
    with pytest.raises(ValueError, match="k"):
        T.neighbour_coefficients(sim, 0)
    with pytest.raises(ValueError, match="k"):
        T.neighbour_coefficients(sim, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="sim"):
        T.neighbour_coefficients(np.array([[np.nan, 1.0]]), 1)


def test_similarity_init_is_the_papers_formula():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(5, 3))
    b = rng.normal(size=5)
    sim = rng.random((2, 5))
    Wn, bn = T.similarity_init(W, sim, 3, b)
    for i in range(2):
        nn_ = np.argsort(-sim[i], kind="stable")[:3]
        coef = sim[i, nn_] / sim[i, nn_].sum()
        np.testing.assert_allclose(Wn[i], coef @ W[nn_], rtol=1e-5)
        np.testing.assert_allclose(bn[i], coef @ b[nn_], rtol=1e-5)
    # K = 1 copies the nearest source row
    W1, _ = T.similarity_init(W, sim, 1)
    np.testing.assert_allclose(W1, W[sim.argmax(1)], rtol=1e-6)
    with pytest.raises(ValueError, match="sim"):
        T.similarity_init(W, rng.random((2, 4)), 1)
    with pytest.raises(ValueError, match="source_bias"):
        T.similarity_init(W, sim, 1, np.zeros(4))


def test_top_neighbours_stable():
    idx, val = T.top_neighbours(np.array([[0.2, 0.9, 0.9, 0.1]]), 3)
    assert idx.tolist() == [[1, 2, 0]]
    np.testing.assert_allclose(val, [[0.9, 0.9, 0.2]])


def test_xavier_init_bounds_and_seed():
    W, b = T.xavier_init(10, 40, seed=3)
    a = np.sqrt(6 / 50)
    assert W.shape == (10, 40) and np.all(np.abs(W) <= a) and np.abs(W).max() > 0.8 * a
    assert np.all(b == 0)
    np.testing.assert_array_equal(W, T.xavier_init(10, 40, seed=3)[0])
    assert not np.array_equal(W, T.xavier_init(10, 40, seed=4)[0])


# ------------------------------------------------------------------------------------------------ word vectors


def test_label_words_and_vectors():
    assert T.label_words("anchor, ground tackle") == ["anchor", "ground", "tackle"]
    assert T.label_words("T-shirt/top") == ["t-shirt", "top"]
    table = {
        "anchor": np.array([1.0, 0.0]),
        "tackle": np.array([0.0, 1.0]),
        "lady": np.array([2.0, 2.0]),
        "t-shirt": np.array([3.0, 0.0]),
        "half": np.array([1.0, 1.0]),
        "track": np.array([3.0, 1.0]),
    }
    V, ok = T.label_vectors(["anchor, ground tackle", "lady's slipper", "zzz", "T-shirt", "half-track"], table.get)
    np.testing.assert_allclose(V[0], [0.5, 0.5])  # mean of the known words ("ground" unknown)
    np.testing.assert_allclose(V[1], [2.0, 2.0])  # possessive falls back to the stem
    np.testing.assert_allclose(V[3], [3.0, 0.0])  # a compound the vectors know is kept whole
    np.testing.assert_allclose(V[4], [2.0, 1.0])  # else split at the hyphen
    assert ok.tolist() == [True, True, False, True, True]
    with pytest.warns(UserWarning, match="zzz"):
        S = T.word_vector_similarity(["zzz", "anchor"], ["tackle", "anchor, tackle"], table.get)
    np.testing.assert_allclose(S, [[0, 0], [0, np.sqrt(0.5)]], atol=1e-7)


# ------------------------------------------------------------------------------------------------ fine-tuning


def _toy_problem(seed=0, n_per=40, N=3, D=8):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(N, D))
    y = np.repeat(np.arange(N), n_per)
    X = means[y] + rng.normal(size=(len(y), D))
    return X.astype(np.float32), y, means.astype(np.float32)


def test_fine_tune_heads_learns_and_good_init_starts_higher():
    X, y, means = _toy_problem()
    Xe, ye, _ = _toy_problem(seed=0)
    good = (means, -0.5 * (means**2).sum(1))  # nearest-mean classifier: already right
    wrong = (np.roll(good[0], 1, axis=0), np.roll(good[1], 1))  # the same rows given to the wrong classes
    h = T.fine_tune_heads(
        {"good": good, "wrong": wrong},
        X,
        y,
        Xe,
        ye,
        iterations=60,
        batch_size=16,
        dropout=0.0,
        eval_every=20,
        seed=0,
        lr=0.2,
    )
    assert h.iterations.tolist() == [0, 20, 40, 60]
    assert h.fscore.shape == (2, 4) and h.per_class.shape == (2, 4, 3)
    assert h.first["good"] > 0.95 and h.first["wrong"] == 0.0
    assert h.best["wrong"] > 0.9  # training repairs the wrong head
    assert h.last["good"] > 0.95
    assert h.weight.shape == (2, 3, 8)


def test_fine_tune_heads_equals_independent_runs():
    X, y, means = _toy_problem(seed=2)
    a = T.xavier_init(3, 8, seed=1)
    b = (means, np.zeros(3, np.float32))
    kw = dict(iterations=15, batch_size=8, dropout=0.5, eval_every=5, seed=7)
    both = T.fine_tune_heads({"a": a, "b": b}, X, y, X, y, **kw)
    alone = T.fine_tune_heads({"b": b}, X, y, X, y, **kw)
    np.testing.assert_allclose(both.weight[1], alone.weight[0], atol=1e-5)
    np.testing.assert_allclose(both.fscore[1], alone.fscore[0])


def test_fine_tune_heads_validation():
    X, y, means = _toy_problem()
    with pytest.raises(ValueError, match="heads"):
        T.fine_tune_heads({}, X, y, X, y)
    with pytest.raises(ValueError, match="train_features"):
        T.fine_tune_heads({"m": (means, None)}, X[:, :5], y, X, y)
    with pytest.raises(ValueError, match="dropout"):
        T.fine_tune_heads({"m": (means, None)}, X, y, X, y, dropout=1.0)


# ------------------------------------------------------------------------------------------------ data helpers


def test_few_shot_indices_nested_and_balanced():
    y = np.repeat(np.arange(4), 10)
    s1, s3, s5 = (T.few_shot_indices(y, k, seed=5) for k in (1, 3, 5))
    assert np.bincount(y[s3]).tolist() == [3, 3, 3, 3]
    assert set(s1) <= set(s3) <= set(s5)
    assert not np.array_equal(s3, T.few_shot_indices(y, 3, seed=6))
    assert len(T.few_shot_indices(y, 50)) == 40
    with pytest.raises(ValueError, match="shots"):
        T.few_shot_indices(y, 0)


def test_imagenet_folder_targets(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_scripts fetch"):
        T.imagenet_folder_targets(tmp_path, ["n00000001"])
    for w in ("n00000001", "n00000002"):
        (tmp_path / "train" / w).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "train" / w / f"{w}_{i}.JPEG").write_bytes(b"")
    files, labels = T.imagenet_folder_targets(tmp_path, ["n00000001", "n00000002"], "train", n_per_class=2)
    assert labels.tolist() == [0, 0, 1, 1] and files[2].name == "n00000002_0.JPEG"


def test_paper_constants():
    assert len(T.PAPER_TARGET_WNIDS) == 90 == len(set(T.PAPER_TARGET_WNIDS))
    assert T.PAPER_TABLE_II[(100, "inference", "first")] == 0.59
    assert T.PAPER_TABLE_II[(1, "random", "best")] == 0.16


def test_table2_has_one_home_that_needs_no_torch():
    """config's view (by shots) and transfer's (by tuple) are the same numbers, read from .table2, plain data that
    imports nothing (neither torch nor pandas)."""
    import ast
    import inspect

    from xmr_lib.chapters.ch08 import config, table2

    assert config.PAPER_TABLE_II is table2.PAPER_TABLE_II and len(T.PAPER_TABLE_II) == 7 * 8
    assert all(
        T.PAPER_TABLE_II[(s, m, w)] == v for s, row in config.PAPER_TABLE_II.items() for (m, w), v in row.items()
    )
    tree = ast.parse(inspect.getsource(table2))
    imported = {
        getattr(n, "module", None) or n.names[0].name
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
    }
    assert imported == {"__future__"}


# ------------------------------------------------------------------------------------------------ typology


class _Syn:
    """A minimal stand-in for an NLTK synset: a name and hypernyms."""

    def __init__(self, name, parents=()):
        self.name_, self.parents = name, list(parents)

    def hypernyms(self):
        return self.parents

    def instance_hypernyms(self):
        return []

    def closure(self, rel):
        out, todo = [], list(rel(self))
        while todo:
            s = todo.pop()
            if s not in out:
                out.append(s)
                todo += rel(s)
        return out

    def __repr__(self):
        return self.name_


def test_target_types_on_a_toy_hierarchy():
    entity = _Syn("entity")
    garment = _Syn("garment", [entity])
    coat = _Syn("coat", [garment])
    trench = _Syn("trench_coat", [coat])
    hook = _Syn("hook", [entity])
    anchor = _Syn("anchor", [hook])
    deep = _Syn("grapnel", [anchor])
    digit = _Syn("digit", [entity])
    sources = [trench, hook]
    got = T.target_types([coat, garment, anchor, deep, digit, hook], sources)
    assert got == ["inclusive", "inclusive", "included", "included", "disjoint", "identical"]
    assert T.related_sources(anchor, sources) == [1]
    assert T.related_sources(coat, sources) == [0]
    assert T.related_sources(digit, sources) == []


# ------------------------------------------------------------------------------------------------ experiments


def _transfer_problem(seed=0, N=4, M=6, D=10, n_per=30):
    """Source classes with prototype weights; each target class looks like one source class (plus noise)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(M, D)).astype(np.float32) * 2
    b = np.zeros(M, np.float32)
    parent = np.array([0, 2, 3, 5])[:N]
    y = np.repeat(np.arange(N), n_per)
    X = (W[parent[y]] + rng.normal(scale=0.5, size=(len(y), D))).astype(np.float32)
    return W, b, X, y, parent


def test_group_fscores_and_k_sweep():
    W, b, X, y, parent = _transfer_problem()
    logits = X @ W.T + b
    S = T.inference_similarity(logits, y, 4)
    assert (S.argmax(1) == parent).all()  # each target's best source is its parent
    groups = ["a", "a", "b", "b"]
    sweep = T.k_sweep(W, b, S, [1, 2, 6], X, y, groups)
    assert list(sweep.columns) == ["all", "a", "b"] and list(sweep.index) == [1, 2, 6]
    assert sweep.loc[1, "all"] > 0.9  # K = 1 recovers the parents
    k = T.best_k_per_group(sweep, groups)
    assert k.shape == (4,) and k[0] == k[1] and k[2] == k[3]
    g = T.group_fscores(np.array([0, 1, 1]), np.array([0, 1, 2]), 3, ["x", "x", "y"])
    # per class: F0 = 2·1/(1+1) = 1, F1 = 2·1/(2+1) = 2/3, F2 = 0
    assert g == pytest.approx({"all": 5 / 9, "x": 5 / 6, "y": 0.0})
    with pytest.raises(ValueError, match="groups"):
        T.group_fscores(np.array([0]), np.array([0]), 2, ["x"])


def test_initial_heads_and_data_reduction():
    W, b, X, y, parent = _transfer_problem(seed=1)
    S_sem = np.eye(6)[parent] * 0.9 + 0.01  # a "semantic" similarity that knows the parents
    heads = T.initial_heads(W, b, {"sem": S_sem}, {"sem": 1}, seed=0)
    assert set(heads) == {"random", "sem"}
    np.testing.assert_allclose(heads["sem"][0], W[parent])
    df, hist = T.data_reduction(
        W,
        b,
        X,
        y,
        X,
        y,
        shots=[10, 1],
        semantic_sims={"sem": S_sem},
        k=1,
        seed=0,
        iterations=20,
        eval_every=10,
        batch_size=16,
        dropout=0.0,
    )
    assert set(df.method) == {"random", "inference", "sem"} and sorted(set(df.shots)) == [1, 10]
    first = df.set_index(["shots", "method"])["first"]
    assert first[10, "sem"] > 0.9 and first[10, "inference"] > 0.9 and first[10, "random"] < 0.8
    assert (df.best >= df["first"] - 1e-12).all()
    assert hist[1].fscore.shape == (3, 3)


def test_target_pool_needs_data_root_for_the_paper_targets():
    t = [T.TargetClass("anchor", "pascal2019_targets", "n02709367", "anchor.n.01")]
    with pytest.raises(FileNotFoundError, match="data_scripts fetch pascal2019_targets"):
        T.target_pool(t, 5)
    with pytest.raises(ValueError, match="per_class"):
        T.target_pool(t, 0)


def test_offline_class_counts_bound_the_pool(monkeypatch):
    ys = np.array([0] * 7 + [1] * 3 + [2] * 5)
    fake = ([np.full((4, 4), i, np.uint8) for i in range(len(ys))], ys, ["0", "1", "2"])
    monkeypatch.setattr(T, "_dataset_images", lambda data, ds: fake)
    t = [T.TargetClass("two", "mnist", "2", "two.n.01"), T.TargetClass("one", "mnist", "1", "one.n.01")]
    counts = T.offline_class_counts(t)
    assert counts.tolist() == [5, 3]
    with pytest.warns(UserWarning, match="has only"):
        pool = T.target_pool(t, 6, seed=0)
    assert np.bincount(pool.labels).tolist() == counts.tolist()  # everything there is, no more
    assert T.target_pool(t, int(counts.min()), seed=0).labels.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="targets"):
        T.offline_class_counts([T.TargetClass("anchor", "pascal2019_targets", "n02709367", "anchor.n.01")])
    with pytest.raises(ValueError, match="not in dataset"):
        T.offline_class_counts([T.TargetClass("nine", "mnist", "9", "nine.n.01")])


def test_offline_candidates_are_well_formed():
    names = [c.name for c in T.OFFLINE_TARGET_CANDIDATES]
    assert len(names) == len(set(names)) == 23
    assert all(c.synset.count(".") == 2 for c in T.OFFLINE_TARGET_CANDIDATES)


def _wordnet_and_classes():
    """The WordNet synsets of the 1000 ImageNet classes, or skip when the offline assets are not installed."""
    try:
        from xmr_lib.encoders import backbones as models

        wnids, _ = T._imagenet_wnids_names(models)
        return T.synsets_from_wnids(wnids)
    except (ImportError, LookupError, RuntimeError, OSError) as e:  # pragma: no cover - env dependent
        pytest.skip(f"offline WordNet / ImageNet class list unavailable: {e}")


def test_paper_targets_split_30_30_30_and_anchor_hook():
    sources = _wordnet_and_classes()
    paper = T.paper_targets()
    types = T.target_types([T.synset(c.synset) for c in paper], sources)
    assert {t: types.count(t) for t in T.TARGET_TYPES} == {"included": 30, "inclusive": 30, "disjoint": 30}
    anchor = next(c for c in paper if c.synset == "anchor.n.01")
    s = T.wordnet_similarity([T.synset(anchor.synset)], sources)[0]
    assert sources[int(s.argmax())].name() == "hook.n.04" or "hook" in sources[int(s.argmax())].name()
    assert s.max() == pytest.approx(0.952, abs=1e-3)


def test_ch08_table2_targets_are_decided_on_the_paper_images_only():
    from claim_checks import assert_gated_on_real_data

    from xmr_lib.chapters.ch08 import config as ch08

    ids = assert_gated_on_real_data(ch08, ["data/real"])
    assert {"08.table2_inference_first_100", "08.table2_random_best_1"} <= ids
    assert not any(m.startswith("real/") for c in ch08.CLAIMS for m in c.metrics)
