import gzip

import numpy as np
import pytest

from xmr_lib.data import registry as data


@pytest.mark.parametrize("name,shape", [("digits", (8, 8)), ("mnist5k", (28, 28)), ("fashion_mnist", (28, 28))])
def test_offline_sets_load(name, shape):
    ds = data.load(name, "test")
    assert ds.images.dtype == np.uint8 and ds.images.shape[1:] == shape
    assert len(ds.labels) == len(ds) and set(np.unique(ds.labels)) == set(range(10))
    x = ds.to_tensor()
    assert x.shape == (len(ds), 1, *shape) and 0 <= float(x.min()) and float(x.max()) <= 1


def test_stratified_subset_is_balanced_and_seeded():
    a = data.load("fashion_mnist", "train", n=50, seed=3)
    b = data.load("fashion_mnist", "train", n=50, seed=3)
    assert np.bincount(a.labels).tolist() == [5] * 10 and np.array_equal(a.images, b.images)
    assert a.coarse_labels is not None and len(a.coarse_labels) == 50


def test_easy_vqa_captions_match_multilabels():
    ds = data.load("easy_vqa", "test", n=48, seed=0)
    for cap, ml in zip(ds.captions, ds.multilabels):
        words = [ds.multilabel_names[i] for i in np.flatnonzero(ml)]
        assert cap == f"a {words[0]} {words[1]}"


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        data.load("cifar")
    with pytest.raises(ValueError, match="split"):
        data.load("digits", "val")
    d = tmp_path / "fashion_mnist"
    d.mkdir()
    (d / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0" * 16 + b"\1" * 100))  # truncated
    (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0" * 8 + b"\1" * 2))
    with pytest.raises(ValueError, match="truncated"):
        data.load("fashion_mnist", "train", root=tmp_path)
