"""The readers of prepared real sets that are not image-label sets live in xmr_lib.data (one place); the chapter
modules import them back. Their layouts are tested through the chapters (tests/chapters/test_diversity.py,
test_full_data_paths.py, tests/test_data_scripts.py); here: the direct API and the errors naming the fix."""

import json

import numpy as np
import pytest

from xmr_lib import data


def test_karpathy_reader(tmp_path):
    base = tmp_path / "flickr8k"
    (base / "images").mkdir(parents=True)
    images = [
        {"filename": f"{i}.jpg", "split": s, "sentences": [{"raw": f"cap {i} {k}"} for k in range(2)]}
        for i, s in enumerate(["train", "restval", "test"])
    ]
    (base / "dataset_flickr8k.json").write_text(json.dumps({"images": images}))
    for i in range(3):
        (base / "images" / f"{i}.jpg").write_bytes(b"")
    paths, caps, pair = data.karpathy_caption_benchmark("flickr8k", str(tmp_path), "train")
    assert [p.split("/")[-1] for p in paths] == ["0.jpg", "1.jpg"] and caps[2] == "cap 1 0"
    assert pair.tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="split: expected"):
        data.karpathy_caption_benchmark("flickr8k", str(tmp_path), "dev")
    with pytest.raises(ValueError, match="data_scripts fetch coco"):
        data.karpathy_caption_benchmark("coco", str(tmp_path))


def test_tagged_images_reader(tmp_path):
    with pytest.raises(ValueError, match="data_root: the mirflickr25k dataset is not offline"):
        data.read_tagged_images("mirflickr25k", None, 24)
    d = tmp_path / "mirflickr25k"
    d.mkdir()
    with pytest.raises(ValueError, match="no labels.npy / tags_bow.npy"):
        data.read_tagged_images("mirflickr25k", tmp_path, 24)
    labels = np.eye(4, 24, dtype=np.uint8)
    np.save(d / "labels.npy", labels)
    np.save(d / "tags_bow.npy", np.ones((4, 7)))
    with pytest.raises(ValueError, match="neither images.npy nor image_features"):
        data.read_tagged_images("mirflickr25k", tmp_path, 24)
    np.save(d / "image_features_lite0.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="image_features_lite0.npy: 3 rows, labels.npy 4"):
        data.read_tagged_images("mirflickr25k", tmp_path, 24)
    np.save(d / "image_features_lite0.npy", np.zeros((4, 5), np.float32))
    got = data.read_tagged_images("mirflickr25k", tmp_path, 24)
    assert got.labels.shape == (4, 24) and got.bow.dtype == np.float32 and got.images is None
    assert list(got.image_features) == ["lite0"] and got.folder == d
    with pytest.raises(ValueError, match="expected 21 label columns"):
        data.read_tagged_images("mirflickr25k", tmp_path, 21)


def test_div2017_reader_names_the_fetch_command(tmp_path):
    for root in (tmp_path, None):
        with pytest.raises(ValueError, match="data_scripts fetch mediaeval2017_div"):
            data.read_div2017(root, "devset")
