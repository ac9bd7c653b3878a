"""retrieval-SfM-120k: the converter and reader on cirtorch's published format (tests/fixtures_real_formats.py), the
reader's errors on bad files, and the tuple sampler's rules checked by hand."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from fixtures_real_formats import sfm120k_raw

from data_scripts import registry
from data_scripts.convert import convert
from xmr_lib.data import MissingImagesError, sfm120k


@pytest.fixture()
def sfm_root(tmp_path):
    db = sfm120k_raw(tmp_path / sfm120k.NAME / "raw")
    rep = convert(sfm120k.NAME, tmp_path)
    assert rep["missing"] == [] and rep["n"] == 18
    return tmp_path, db


def test_registry_entry_is_honest_about_size_and_checksums():
    spec = registry.get("retrieval_sfm120k")
    files = {f.name: f for f in spec.files}
    assert set(files) == {"retrieval-SfM-120k.pkl", "ims.tar.gz", "retrieval-SfM-120k-whiten.pkl"}
    assert all(f.sha256 is None and f.md5 is None and "no checksum published" in f.source for f in spec.files)
    assert files["ims.tar.gz"].extract and files["ims.tar.gz"].size_mb >= 50000 and "50 GB" in spec.title
    assert files["retrieval-SfM-120k-whiten.pkl"].optional and not files["retrieval-SfM-120k.pkl"].optional


def test_converted_layout_reads_back(sfm_root):
    root, db = sfm_root
    ds = root / sfm120k.NAME
    assert (ds / sfm120k.PICKLE).is_file() and (ds / sfm120k.WHITEN_PICKLE).is_file()
    assert sfm120k.find_sfm120k(root) == (ds / sfm120k.PICKLE, ds / "ims")
    tr = sfm120k.read_sfm120k(root, "train")
    cid = db["train"]["cids"][3]
    assert tr.paths[3] == str(ds / "ims" / cid[-2:] / cid[-4:-2] / cid[-6:-4] / cid)
    assert tr.clusters.tolist() == db["train"]["cluster"] and tr.clusters.dtype == np.int64
    assert tr.qidxs.tolist() == [0, 1, 3, 4, 6, 8, 10] and tr.pidxs.tolist() == [1, 2, 4, 5, 7, 9, 11]
    assert tr.images[0].shape == (18, 24, 3) and len(tr) == 12
    va = sfm120k.read_sfm120k(root, "val")
    assert len(va) == 6 and va.qidxs.tolist() == [0, 2, 4]
    w = sfm120k.read_whiten_pairs(root)
    assert w.paths == va.paths and w.pidxs.tolist() == [1, 3, 5] and (w.clusters == -1).all()


def test_verify_checks_the_cid_layout(sfm_root):
    """``data_scripts verify`` looks for every image of the db file in the cid layout (no index.csv here)."""
    from data_scripts.cli import layout_problems

    root, db = sfm_root
    ds = root / sfm120k.NAME
    assert layout_problems(sfm120k.NAME, ds) == []
    cid = db["val"]["cids"][2]
    (ds / "ims" / cid[-2:] / cid[-4:-2] / cid[-6:-4] / cid).unlink()
    (problem,) = layout_problems(sfm120k.NAME, ds)
    assert problem.startswith("1 of 18 images") and cid in problem


def test_cirtorch_own_data_folder_is_found(tmp_path):
    sfm120k_raw(tmp_path / "train" / "retrieval-SfM-120k", whiten=False)
    assert sfm120k.find_sfm120k(tmp_path)[1] == tmp_path / "train" / "retrieval-SfM-120k" / "ims"
    assert len(sfm120k.read_sfm120k(tmp_path)) == 12 and sfm120k.read_whiten_pairs(tmp_path) is None


def _rewrite(root, edit):
    pkl = root / sfm120k.NAME / sfm120k.PICKLE
    db = pickle.loads(pkl.read_bytes())
    edit(db)
    pkl.write_bytes(pickle.dumps(db))
    return pkl


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda db: db.pop("val"), r"expected a dict with 'train' and 'val'"),
        (lambda db: db["train"].pop("cluster"), r"\['train'\]: expected a dict with 'cids', 'cluster'"),
        (lambda db: db["train"]["qidxs"].__setitem__(2, 12), r"qidxs\[2\] = 12 is out of range \(cids has 12"),
        (lambda db: db["train"]["pidxs"].pop(), r"'qidxs' has 7 entries but 'pidxs' has 6"),
        (lambda db: db["train"]["cluster"].pop(), r"'cluster' has 11 entries but 'cids' has 12"),
        (lambda db: db["train"]["cids"].__setitem__(1, "../../x"), r"cids\[1\] = '\.\./\.\./x', expected an image"),
        (lambda db: db["train"]["pidxs"].__setitem__(0, "a"), r"pidxs\[0\] = 'a', expected an integer"),
    ],
)
def test_bad_pickles_name_file_key_and_index(sfm_root, edit, match):
    root, _ = sfm_root
    pkl = _rewrite(root, edit)
    with pytest.raises(ValueError, match=match) as e:
        sfm120k.read_sfm120k(root, "train")
    assert str(pkl) in str(e.value)


def test_unsafe_or_broken_pickle_and_missing_images(sfm_root, tmp_path):
    root, db = sfm_root
    pkl = root / sfm120k.NAME / sfm120k.PICKLE
    pkl.write_bytes(pickle.dumps({"train": np.random.default_rng(0)}))  # a pickle that asks for a class
    with pytest.raises(ValueError, match="not a readable SfM-120k pickle"):
        sfm120k.read_sfm120k(root)
    pkl.write_bytes(pickle.dumps(db)[:40])
    with pytest.raises(ValueError, match="not a readable SfM-120k pickle"):
        sfm120k.read_sfm120k(root)
    pkl.write_bytes(pickle.dumps(db))
    cid = db["train"]["cids"][5]
    (root / sfm120k.NAME / "ims" / cid[-2:] / cid[-4:-2] / cid[-6:-4] / cid).unlink()
    with pytest.raises(MissingImagesError, match=rf"cids\[5\] \('{cid}'\).*1 of 12 images are missing"):
        sfm120k.read_sfm120k(root)
    assert len(sfm120k.read_sfm120k(root, check_images=False)) == 12
    with pytest.raises(FileNotFoundError, match="data_scripts fetch retrieval_sfm120k"):
        sfm120k.read_sfm120k(tmp_path / "nothing")
    with pytest.raises(ValueError, match="split: expected 'train' or 'val'"):
        sfm120k.read_sfm120k(root, "test")


def test_draw_epoch_takes_published_pairs_and_a_distinct_pool(sfm_root):
    tr = sfm120k.read_sfm120k(sfm_root[0])
    qi, pi, pool = sfm120k.draw_epoch(tr, qsize=5, poolsize=8, rng=np.random.default_rng(0))
    pairs = set(zip(tr.qidxs.tolist(), tr.pidxs.tolist()))
    assert len(qi) == 5 and set(zip(qi.tolist(), pi.tolist())) <= pairs and len(set(qi.tolist())) == 5
    assert len(pool) == 8 and len(set(pool.tolist())) == 8 and pool.max() < len(tr)
    qi, _, pool = sfm120k.draw_epoch(tr, qsize=100, poolsize=100, rng=np.random.default_rng(0))
    assert len(qi) == 7 and sorted(pool.tolist()) == list(range(12))  # capped at the pairs / images there are
    with pytest.raises(ValueError, match="qsize: expected a positive int, got 0"):
        sfm120k.draw_epoch(tr, 0, 5, np.random.default_rng(0))


def test_hardest_negatives_by_hand():
    # 2-d unit vectors at angles; the query at 0 rad. Pool: cluster 7 (the query's own, most similar),
    # cluster 1 twice (0.1 and 0.2 rad), cluster 2 (0.3), cluster 3 (1.0), cluster 4 (3.0 rad: least similar)
    ang = np.array([0.05, 0.2, 0.1, 0.3, 1.0, 3.0])
    pool = np.stack([np.cos(ang), np.sin(ang)], 1)
    pc = np.array([7, 1, 1, 2, 3, 4])
    q = np.array([[1.0, 0.0], [np.cos(3.0), np.sin(3.0)]])
    ids, sims = sfm120k.hardest_negatives(q, pool, [7, 4], pc, nnum=3)
    assert ids[0].tolist() == [2, 3, 4]  # not 0 (own cluster), 2 not 1 (one per cluster, the harder one)
    assert np.allclose(sims[0], np.cos([0.1, 0.3, 1.0]), atol=1e-6)
    assert ids[1].tolist() == [4, 3, 1]  # the other query: its own cluster 4 is skipped
    ids, sims = sfm120k.hardest_negatives(q, pool, [7, 4], pc, nnum=5)  # only 4 other clusters: -1 / -inf
    assert ids[0].tolist() == [2, 3, 4, 5, -1] and sims[0, 4] == -np.inf


def test_hardest_negatives_equals_cirtorch_greedy_walk():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(40, 8)).astype(np.float32)
    p = rng.normal(size=(300, 8)).astype(np.float32)
    qc, pc = rng.integers(0, 30, 40), rng.integers(0, 30, 300)
    ids, _ = sfm120k.hardest_negatives(q, p, qc, pc, nnum=5, chunk=7)
    for i in range(len(q)):  # the reference: walk down the ranked pool, skipping used clusters
        used, want = {int(qc[i])}, []
        for j in np.argsort(-(p @ q[i]), kind="stable"):
            if int(pc[j]) not in used:
                want.append(int(j))
                used.add(int(pc[j]))
            if len(want) == 5:
                break
        assert ids[i].tolist() == want, i
        assert len(set(pc[ids[i]].tolist())) == 5 and qc[i] not in pc[ids[i]]


def test_hardest_negatives_bad_input():
    with pytest.raises(ValueError, match=r"query_desc, pool_desc: expected \(Q, D\) and \(P, D\)"):
        sfm120k.hardest_negatives(np.zeros((2, 3)), np.zeros((4, 2)), [0, 1], [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"pool_clusters: expected \(4,\)"):
        sfm120k.hardest_negatives(np.zeros((2, 3)), np.zeros((4, 3)), [0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="nnum: expected a positive int"):
        sfm120k.hardest_negatives(np.zeros((2, 3)), np.zeros((4, 3)), [0, 1], [0, 1, 2, 3], nnum=0)
