"""The instance-retrieval benchmarks of xmr_lib.data.registry: generated photo_instances and the revisited on-disk layout."""

import pickle

import numpy as np
import pytest
from claim_checks import assert_gated_on_real_data
from PIL import Image

from xmr_lib.data.registry import LazyImages, RetrievalBenchmark, photo_instances, revisited


def test_photo_instances_is_deterministic_and_consistent():
    a = photo_instances(seed=3, n_instances=6, views=3, n_distractors=4, image_size=48, train_views=2)
    b = photo_instances(seed=3, n_instances=6, views=3, n_distractors=4, image_size=48, train_views=2)
    assert np.array_equal(a.db, b.db) and np.array_equal(a.queries, b.queries)
    assert a.db.shape == (6 * 3 + 4, 48, 48, 3) and a.queries.shape == (6, 48, 48, 3) and a.train.shape[0] == 12
    assert a.db.dtype == np.uint8
    for q, g in enumerate(a.gnd):
        idx = np.concatenate([g["easy"], g["hard"], g["junk"]])
        assert len(idx) == 3 and len(set(idx.tolist())) == 3  # every view labelled exactly once
        assert (a.db_groups[idx] == a.query_groups[q]).all()
        assert (a.db_visible[g["easy"]] >= 0.6).all() and (a.db_visible[g["hard"]] >= 0.3).all()
        assert (a.db_visible[g["junk"]] < 0.3).all()
    assert set(a.train_groups.tolist()).isdisjoint(set(a.query_groups.tolist()))  # disjoint instances
    assert (a.db_groups == -1).sum() == 4
    c = photo_instances(seed=4, n_instances=6, views=3, n_distractors=4, image_size=48, train_views=2)
    assert not np.array_equal(a.queries, c.queries)


def test_revisited_layout(tmp_path):
    for name, prefix in (("roxford5k", "all_souls"), ("rparis6k", "eiffel")):
        d = tmp_path / "datasets" / name / "jpg"
        d.mkdir(parents=True)
        imlist = [f"{prefix}_{i:06d}" for i in range(5)] + ["other_000001"]
        qimlist = [f"{prefix}_000100", f"{prefix}_000101"]
        for n in imlist + qimlist:
            Image.fromarray(np.full((20, 30, 3), 7, np.uint8)).save(d / f"{n}.jpg")
        gnd = [
            {"easy": [0, 1], "hard": [2], "junk": [5], "bbx": [2, 3, 12, 13]},
            {"easy": [3], "hard": [], "junk": [], "bbx": [0, 0, 30, 20]},
        ]
        with open(d.parent / f"gnd_{name}.pkl", "wb") as f:
            pickle.dump({"imlist": imlist, "qimlist": qimlist, "gnd": gnd}, f)
    b = revisited("roxford5k", tmp_path)
    assert len(b.db) == 6 and len(b.queries) == 2
    assert b.queries[0].shape == (10, 10, 3)  # cropped to the bbx
    assert b.db[0].shape == (20, 30, 3)
    assert b.gnd[0]["easy"].tolist() == [0, 1]
    assert b.meta["train_from"] == "rparis6k" and len(b.train) == 6
    assert b.train_groups[:4].tolist() == [0, 0, 0, 0] and b.train_groups[4] < 0 and b.train_groups[5] < 0
    with pytest.raises(FileNotFoundError, match="python -m data_scripts fetch roxford5k"):
        revisited("roxford5k", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="name: expected"):
        revisited("oxford5k", tmp_path)


def test_public_api_and_lazy_images(tmp_path):
    from xmr_lib.data import registry as data

    assert isinstance(
        photo_instances(seed=0, n_instances=2, views=1, n_distractors=1, image_size=32, train_views=1),
        RetrievalBenchmark,
    )
    assert data.photo_instances is photo_instances and data.revisited is revisited
    paths = []
    for k in range(4):
        paths.append(tmp_path / f"{k}.png")
        Image.fromarray(np.full((6, 8, 3), 10 * k, np.uint8)).save(paths[-1])
    li = LazyImages(paths, boxes=[None, [1, 1, 5, 4], None, None])
    assert li[1].shape == (3, 4, 3) and li[0][0, 0, 0] == 0
    sub = li[np.array([3, 1])]
    assert isinstance(sub, LazyImages) and len(sub) == 2 and sub[0][0, 0, 0] == 30 and sub[1].shape == (3, 4, 3)
    assert len(li[np.array([True, False, True, False])]) == 2 and len(li[1:3]) == 2
    assert [im.shape for im in li][0] == (6, 8, 3)
    with pytest.raises(ValueError, match="boxes"):
        LazyImages(paths, boxes=[None])


def test_ch02_full_paper_claims_are_not_decided_on_fallback_data():
    from xmr_lib.chapters.ch02 import config as ch02

    ids = assert_gated_on_real_data(ch02, ["data/real"])
    assert {"02.revisitop_rgem_oxf_m", "02.cirtorch_rgem_par_h"} <= ids
