"""The converted datasets are checked when opened (``data.load_converted`` / ``data.load`` / ``data.revisited``): a
malformed ``index.csv``, ``classes.txt``, ``captions.csv``, multi-label column or ``gnd_*.pkl`` raises a ValueError
naming the file, the 1-based line (or pickle entry) and the value; missing images raise ``MissingImagesError`` at
load time, not when an image is first read. Each test writes a tiny dataset in the real converted layout
(``data_scripts/README.md``) into a temp folder."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from fixtures_real_formats import jpg

from xmr_lib.data import registry as data

SINGLE = "path,label,split\na/1.jpg,0,train\na/2.jpg,0,test\nb/3.jpg,1,train\nb/4.jpg,1,test\n"
MULTI = "path,label,split,labels\nim1.jpg,-1,all,0 2\nim2.jpg,-1,all,1\nim3.jpg,-1,all,\n"
CAPS_INDEX = "path,label,split\n1000.jpg,-1,train\n1001.jpg,-1,test\n"
CAPS = 'image,caption\n0,"a dog, running."\n0,a second sentence\n1,"a cat\non two lines"\n'


def _dataset(
    root: Path,
    index: str | bytes = SINGLE,
    name: str = "cub200",
    classes: str | bytes | None = "a\nb\n",
    captions: str | bytes | None = None,
    images=None,
    skip=(),
    coarse: str | None = None,
) -> Path:
    """``root/name`` in the converted layout; ``images`` (default: every path of ``index``) minus ``skip``."""
    ds = root / name
    ds.mkdir(parents=True, exist_ok=True)
    write = lambda p, t: p.write_bytes(t if isinstance(t, bytes) else t.encode("utf-8"))  # noqa: E731
    write(ds / "index.csv", index)
    if classes is not None:
        write(ds / "classes.txt", classes)
    if captions is not None:
        write(ds / "captions.csv", captions)
    if coarse is not None:
        write(ds / "coarse_classes.txt", coarse)
    if images is None:
        text = index.decode("utf-8", "replace") if isinstance(index, bytes) else index
        images = [ln.split(",")[0] for ln in text.splitlines()[1:] if ln and not ln.startswith(("/", ".."))]
    for k, p in enumerate(images):
        if p not in skip:
            jpg(ds / "images" / p, 10 * k)
    return ds


# ---------------------------------------------------------------------------------------------------------------
# valid input: unchanged results


def test_valid_sets_load_as_before(tmp_path):
    _dataset(tmp_path)
    ds = data.load("cub200", "train", root=tmp_path)
    assert ds.labels.tolist() == [0, 1] and ds.class_names == ["a", "b"] and ds.meta["splits"] == ["train", "train"]
    assert ds.meta["paths"][1].endswith("cub200/images/b/3.jpg") and ds.images[0].shape == (9, 12, 3)
    assert len(data.load("cub200", "trainval", root=tmp_path)) == 2
    assert len(data.load("cub200", "all", root=tmp_path)) == 4
    _dataset(tmp_path, MULTI, name="mirflickr25k", classes="sky\nwater\ndog\n")
    ml = data.load("mirflickr25k", "all", root=tmp_path)
    assert ml.multilabels.tolist() == [[True, False, True], [False, True, False], [False, False, False]]
    assert ml.labels.tolist() == [-1, -1, -1] and ml.multilabel_names == ["sky", "water", "dog"]
    _dataset(tmp_path, CAPS_INDEX, name="flickr30k", classes="", captions=CAPS)
    cap = data.load("flickr30k", "all", root=tmp_path)
    assert cap.captions == ["a dog, running.", "a cat\non two lines"]
    assert cap.meta["all_captions"] == [["a dog, running.", "a second sentence"], ["a cat\non two lines"]]
    assert data.load("flickr30k", "test", root=tmp_path).captions == ["a cat\non two lines"]


def test_coarse_and_bbox_columns(tmp_path):
    idx = "path,label,split,coarse,bbox\na/1.jpg,0,train,1,1 2 3 4\nb/2.jpg,1,test,,\n"
    _dataset(tmp_path, idx, name="fgvc_aircraft", coarse="Boeing\nAirbus\n")
    ds = data.load("fgvc_aircraft", "all", root=tmp_path)
    assert ds.coarse_labels.tolist() == [1, -1] and ds.meta["bbox"] == [[1.0, 2.0, 3.0, 4.0], None]
    _dataset(tmp_path, idx.replace(",1,1 2 3 4", ",2,1 2 3 4"), name="fgvc_aircraft", coarse="Boeing\nAirbus\n")
    with pytest.raises(ValueError, match=r"index\.csv: line 2: coarse 2 is out of range"):
        data.load("fgvc_aircraft", "all", root=tmp_path)
    _dataset(tmp_path, idx.replace("1 2 3 4", "1 2 x"), name="fgvc_aircraft", coarse="Boeing\nAirbus\n")
    with pytest.raises(ValueError, match=r"index\.csv: line 2: bbox '1 2 x' is not 4 finite numbers"):
        data.load("fgvc_aircraft", "all", root=tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# images


def test_partial_dataset_fails_at_load_naming_the_first_missing_image(tmp_path):
    _dataset(tmp_path, skip=("b/4.jpg",))
    assert len(data.load("cub200", "train", root=tmp_path)) == 2  # the train split is complete
    with pytest.raises(
        data.MissingImagesError,
        match=r"index\.csv: line 5: image file .*b/4\.jpg not found; "
        r"1 of 2 'test' images of cub200 are missing.*fetch cub200",
    ):
        data.load("cub200", "test", root=tmp_path)
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError
        data.load("cub200", "all", root=tmp_path)


@pytest.mark.parametrize(
    "path,why",
    [
        ("../../etc/hostname", "leaves the images/ folder"),
        ("a/../../x.jpg", "leaves the images/ folder"),
        ("/etc/hostname", "is absolute"),
        ("", "is empty"),
    ],
)
def test_paths_outside_the_images_folder(tmp_path, path, why):
    _dataset(tmp_path, SINGLE.replace("b/3.jpg", path), images=["a/1.jpg", "a/2.jpg", "b/4.jpg"])
    with pytest.raises(ValueError, match=rf"index\.csv: line 4: path '{path}' {why}"):
        data.load("cub200", "all", root=tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# index.csv


@pytest.mark.parametrize("label", ["2", "-2", "99999"])
def test_labels_out_of_range(tmp_path, label):
    _dataset(tmp_path, SINGLE.replace("b/3.jpg,1", f"b/3.jpg,{label}"))
    with pytest.raises(
        ValueError,
        match=rf"index\.csv: line 4: label {label} is out of range \(expected -1\.\.1, "
        r"-1 = no single class, 2 classes in .*classes\.txt\)",
    ):
        data.load("cub200", "train", root=tmp_path)


def test_labels_without_classes_file(tmp_path):
    _dataset(tmp_path, classes=None)
    with pytest.raises(ValueError, match=r"line 2: label 0 is out of range .*classes\.txt is missing"):
        data.load("cub200", "all", root=tmp_path)


def test_non_integer_label(tmp_path):
    _dataset(tmp_path, SINGLE.replace("a/2.jpg,0", "a/2.jpg,zero"))
    with pytest.raises(ValueError, match=r"index\.csv: line 3: label 'zero' is not an integer"):
        data.load("cub200", "train", root=tmp_path)


@pytest.mark.parametrize(
    "text,msg",
    [
        ("", r"index\.csv: the file is empty; expected a header line path,label,split"),
        ("path,label,split\n", r"index\.csv: no rows after the header"),
    ],
)
def test_empty_index(tmp_path, text, msg):
    _dataset(tmp_path, text, images=[])
    with pytest.raises(ValueError, match=msg):
        data.load("cub200", "all", root=tmp_path)


def test_row_without_its_split_and_extra_fields(tmp_path):
    _dataset(tmp_path, SINGLE.replace("b/3.jpg,1,train", "b/3.jpg,1"))
    with pytest.raises(ValueError, match=r"index\.csv: line 4: expected 3 fields \(path,label,split\), got 2"):
        data.load("cub200", "all", root=tmp_path)
    _dataset(tmp_path, SINGLE.replace("b/3.jpg,1,train", "b/3.jpg,1,train,x"))
    with pytest.raises(ValueError, match=r"line 4: expected 3 fields .*got 4.*unquoted"):
        data.load("cub200", "all", root=tmp_path)


@pytest.mark.parametrize("value", ["", "Train", "restval"])
def test_unknown_split_value(tmp_path, value):
    _dataset(tmp_path, SINGLE.replace("a/2.jpg,0,test", f"a/2.jpg,0,{value}"))
    with pytest.raises(ValueError, match=rf"index\.csv: line 3: split '{value}' is not one of"):
        data.load("cub200", "all", root=tmp_path)


def test_missing_column(tmp_path):
    _dataset(tmp_path, SINGLE.replace("path,label,split", "path,lbl,split"))
    with pytest.raises(ValueError, match=r"index\.csv: line 1: no 'label' column in the header 'path,lbl,split'"):
        data.load("cub200", "all", root=tmp_path)


def test_non_utf8_files(tmp_path):
    _dataset(tmp_path, SINGLE.encode() + "c/\xe9.jpg,1,test\n".encode("latin-1"), images=["a/1.jpg"])
    with pytest.raises(ValueError, match=r"index\.csv: line 6: not UTF-8 \(byte b'\\xe9'"):
        data.load("cub200", "all", root=tmp_path)
    _dataset(tmp_path, classes="a\nb\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"classes\.txt: line 2: not UTF-8"):
        data.load("cub200", "all", root=tmp_path)


def test_utf8_bom_is_accepted(tmp_path):
    _dataset(tmp_path, "\ufeff" + SINGLE)
    assert data.load("cub200", "all", root=tmp_path).labels.tolist() == [0, 0, 1, 1]


# ---------------------------------------------------------------------------------------------------------------
# multi-labels and captions


@pytest.mark.parametrize("ids,bad", [("0 -1", "-1"), ("3", "3")])
def test_multilabel_ids_out_of_range(tmp_path, ids, bad):
    _dataset(tmp_path, MULTI.replace("all,1\n", f"all,{ids}\n"), name="mirflickr25k", classes="sky\nwater\ndog\n")
    with pytest.raises(
        ValueError,
        match=rf"index\.csv: line 3: labels '{ids}': id {bad} is out of range "
        r"\(expected ids 0\.\.2",
    ):
        data.load("mirflickr25k", "all", root=tmp_path)


def test_multilabel_non_integer_id(tmp_path):
    _dataset(tmp_path, MULTI.replace("all,0 2", "all,0 sky"), name="mirflickr25k", classes="sky\nwater\ndog\n")
    with pytest.raises(ValueError, match=r"index\.csv: line 2: labels '0 sky': 'sky' is not an integer"):
        data.load("mirflickr25k", "all", root=tmp_path)


def test_captions_pointing_at_missing_images(tmp_path):
    _dataset(tmp_path, CAPS_INDEX, name="flickr30k", classes="", captions=CAPS + "2,no such image\n")
    # line 6: the caption on lines 4-5 spans two lines
    with pytest.raises(
        ValueError,
        match=r"captions\.csv: line 6: image 2 is out of range \(expected 0\.\.1, a row "
        r"of .*index\.csv, which has 2 rows\)",
    ):
        data.load("flickr30k", "all", root=tmp_path)
    _dataset(tmp_path, CAPS_INDEX, name="flickr30k", classes="", captions=CAPS + "-1,negative\n")
    with pytest.raises(ValueError, match=r"captions\.csv: line 6: image -1 is out of range"):
        data.load("flickr30k", "all", root=tmp_path)


def test_captions_malformed(tmp_path):
    _dataset(tmp_path, CAPS_INDEX, name="flickr30k", classes="", captions=CAPS + "one,a caption\n")
    with pytest.raises(ValueError, match=r"captions\.csv: line 6: image 'one' is not an integer"):
        data.load("flickr30k", "all", root=tmp_path)
    _dataset(tmp_path, CAPS_INDEX, name="flickr30k", classes="", captions=CAPS + "1,a dog, unquoted\n")
    with pytest.raises(ValueError, match=r"captions\.csv: line 6: expected 2 fields \(image,caption\), got 3"):
        data.load("flickr30k", "all", root=tmp_path)
    _dataset(tmp_path, CAPS_INDEX, name="flickr30k", classes="", captions="img,caption\n0,x\n")
    with pytest.raises(ValueError, match=r"captions\.csv: line 1: no 'image' column"):
        data.load("flickr30k", "all", root=tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# revisited gnd_*.pkl


def _revisited(root: Path, name: str, cfg=None, raw: bytes | None = None, skip=()):
    """ROOT/name/gnd_name.pkl + jpg/<image>.jpg, as data_scripts converts revisitop's files."""
    ds = root / name
    (ds / "jpg").mkdir(parents=True, exist_ok=True)
    cfg = (
        cfg
        if cfg is not None
        else {
            "imlist": [f"{name}_a_{i}" for i in range(3)],
            "qimlist": [f"{name}_a_q"],
            "gnd": [{"easy": [0], "hard": [1], "junk": [2], "bbx": [1, 2, 8, 7]}],
        }
    )
    (ds / f"gnd_{name}.pkl").write_bytes(raw if raw is not None else pickle.dumps(cfg))
    if isinstance(cfg, dict):
        for n in list(cfg.get("imlist", [])) + list(cfg.get("qimlist", [])):
            if isinstance(n, str) and "/" not in n and n not in skip:
                jpg(ds / "jpg" / f"{n}.jpg")
    return cfg


def test_revisited_valid(tmp_path):
    _revisited(tmp_path, "roxford5k")
    _revisited(tmp_path, "rparis6k")
    b = data.revisited("roxford5k", tmp_path)
    assert len(b.db) == 3 and b.queries[0].shape == (5, 7, 3) and b.gnd[0]["junk"].tolist() == [2]


def test_revisited_corrupt_pickle(tmp_path):
    _revisited(tmp_path, "roxford5k", raw=b"<html>404 Not Found</html>")
    with pytest.raises(ValueError, match=r"gnd_roxford5k\.pkl: not a readable gnd pickle \(UnpicklingError"):
        data.revisited("roxford5k", tmp_path)
    _revisited(tmp_path, "roxford5k", raw=pickle.dumps({"imlist": ["x"] * 100})[:20])  # truncated
    with pytest.raises(ValueError, match=r"gnd_roxford5k\.pkl: not a readable gnd pickle"):
        data.revisited("roxford5k", tmp_path)


def test_revisited_corrupt_training_pickle(tmp_path):
    _revisited(tmp_path, "roxford5k")
    _revisited(tmp_path, "rparis6k", raw=b"\x80\x04garbage")
    with pytest.raises(ValueError, match=r"gnd_rparis6k\.pkl: not a readable gnd pickle"):
        data.revisited("roxford5k", tmp_path)


@pytest.mark.parametrize(
    "change,msg",
    [
        (
            lambda c: c["gnd"][0].update(easy=[0, 3]),
            r"gnd\[0\] \(query 'roxford5k_a_q'\): easy id 3 is out of range "
            r"\(imlist has 3 images",
        ),
        (lambda c: c["gnd"][0].update(junk=[-1]), r"gnd\[0\] .*: junk id -1 is out of range"),
        (lambda c: c["gnd"][0].update(hard=["a"]), r"gnd\[0\] .*: hard = \['a'\], expected a list of integer ids"),
        (lambda c: c["gnd"][0].update(bbx=[8, 2, 1, 7]), r"gnd\[0\] .*: bbx \[8, 2, 1, 7\] is not a box x1 y1 x2 y2"),
        (lambda c: c["gnd"][0].update(bbx=[1, 2]), r"gnd\[0\] .*: bbx \[1, 2\] is not a box"),
        (lambda c: c["gnd"].append({"easy": []}), r"gnd has 2 entries but qimlist has 1 queries"),
        (lambda c: c.pop("qimlist"), r"expected a dict with 'imlist', 'qimlist' and 'gnd', got \['gnd', 'imlist'\]"),
        (
            lambda c: c["imlist"].append("../../etc/hostname"),
            r"imlist\[3\] = '\.\./\.\./etc/hostname' leaves the image",
        ),
        (lambda c: c["gnd"].__setitem__(0, [0, 1]), r"gnd\[0\] .*: expected a dict"),
    ],
)
def test_revisited_malformed_ground_truth(tmp_path, change, msg):
    cfg = _revisited(tmp_path, "roxford5k")
    change(cfg)
    _revisited(tmp_path, "roxford5k", cfg)
    _revisited(tmp_path, "rparis6k")
    with pytest.raises(ValueError, match=r"gnd_roxford5k\.pkl: " + msg):
        data.revisited("roxford5k", tmp_path)


def test_revisited_partial_download(tmp_path):
    _revisited(tmp_path, "roxford5k", skip=("roxford5k_a_1",))
    _revisited(tmp_path, "rparis6k")
    with pytest.raises(
        data.MissingImagesError,
        match=r"gnd_roxford5k\.pkl: imlist\[1\]: image file .*roxford5k_a_1"
        r"\.jpg not found; 1 of 4 images of roxford5k are missing",
    ):
        data.revisited("roxford5k", tmp_path)
    b = data.revisited("rparis6k", tmp_path, train_from="rparis6k")  # the other set is complete
    assert len(b.db) == 3 and np.asarray(b.train_groups).shape == (3,)
