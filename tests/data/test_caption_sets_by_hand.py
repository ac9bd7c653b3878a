"""Flickr8K and CUHK-PEDES (given out by request form): ``data_scripts`` takes the archive the user obtained by hand
(``--from-dir``), refuses a partial one, and converts it to the Karpathy layout notebook 04's full profile reads."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fixtures_real_formats import cuhk_pedes_raw, flickr8k_raw

from data_scripts import cli, registry
from data_scripts.convert import ConversionError, convert
from xmr_lib.data.registry import karpathy_caption_benchmark


def _zip_folder(folder: Path, arc: Path) -> Path:
    with zipfile.ZipFile(arc, "w") as z:
        for p in sorted(folder.rglob("*")):
            z.write(p, p.relative_to(folder.parent))
    return arc


def test_registry_entries_are_manual_and_unpinned_as_published():
    for name, archive in (("flickr8k", "Flickr8k_Dataset.zip"), ("cuhk_pedes", "CUHK-PEDES.zip")):
        spec = registry.get(name)
        f = next(f for f in spec.files if f.name == archive)
        assert f.manual and f.extract and not f.urls and f.sha256 is None and f.md5 is None and f.size is None
        assert "--from-dir" in spec.manual_steps and "no size or checksum" in f.source
    # Flickr8K's split comes from Karpathy's pinned caption_datasets.zip
    assert registry.get("flickr8k").files[0].sha256 == registry.get("flickr30k").files[0].sha256


def test_flickr8k_from_the_official_text_files(tmp_path):
    names = flickr8k_raw(tmp_path / "flickr8k" / "raw")
    rep = convert("flickr8k", tmp_path)
    assert rep["splits"] == {"test": 2, "train": 2, "val": 1} and rep["missing"] == []
    d = json.loads((tmp_path / "flickr8k" / "dataset_flickr8k.json").read_text())
    assert [im["split"] for im in d["images"]] == ["train", "train", "val", "test", "test"]
    paths, caps, pair = karpathy_caption_benchmark("flickr8k", str(tmp_path), "test")
    assert [Path(p).name for p in paths] == names[3:] and all(Path(p).is_file() for p in paths)
    assert caps[:2] == ["A dog 3 runs 0 .", "A dog 3 runs 1 ."] and pair.tolist() == [0] * 5 + [1] * 5


def test_flickr8k_prefers_karpathy_split_and_names_bad_token_lines(tmp_path):
    flickr8k_raw(tmp_path / "a" / "flickr8k" / "raw", karpathy=True)
    rep = convert("flickr8k", tmp_path / "a")
    assert rep["splits"] == {"test": 2, "train": 2, "val": 1}
    raw = tmp_path / "b" / "flickr8k" / "raw"
    flickr8k_raw(raw)
    (raw / "Flickr8k.token.txt").write_text("1000268201_693b08cb0e.jpg#0 no tab here\n")
    with pytest.raises(ConversionError, match=r"Flickr8k.token.txt: line 1"):
        convert("flickr8k", tmp_path / "b")


def test_cuhk_pedes_keeps_person_ids(tmp_path):
    items = cuhk_pedes_raw(tmp_path / "cuhk_pedes" / "raw")
    rep = convert("cuhk_pedes", tmp_path)
    assert rep["splits"] == {"test": 4, "train": 3, "val": 1} and rep["missing"] == []
    d = json.loads((tmp_path / "cuhk_pedes" / "dataset_cuhk_pedes.json").read_text())
    assert [im["id"] for im in d["images"]] == [it["id"] for it in items]
    paths, caps, pair = karpathy_caption_benchmark("cuhk_pedes", str(tmp_path), "test")
    assert len(paths) == 4 and all(Path(p).is_file() for p in paths) and len(caps) == 8
    assert pair.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert (tmp_path / "cuhk_pedes" / "index.csv").read_text().splitlines()[1].endswith(",0,train")
    bad = tmp_path / "bad" / "cuhk_pedes" / "raw"
    bad.mkdir(parents=True)
    (bad / "reid_raw.json").write_text(json.dumps([{"split": "train", "id": 1, "captions": []}]))
    with pytest.raises(ConversionError, match="entry 0.*file_path"):
        convert("cuhk_pedes", tmp_path / "bad")


def test_fetch_from_dir_takes_the_archive_and_refuses_a_partial_one(tmp_path, capsys):
    src = tmp_path / "manual"
    cuhk_pedes_raw(tmp_path / "unpacked")
    src.mkdir()
    arc = _zip_folder(tmp_path / "unpacked" / "CUHK-PEDES", src / "CUHK-PEDES.zip")
    root = tmp_path / "data"
    assert cli.main(["fetch", "cuhk_pedes", "--root", str(root), "--from-dir", str(src), "--quiet"]) == 0
    paths, caps, pair = karpathy_caption_benchmark("cuhk_pedes", str(root), "train")
    assert len(paths) == 3 and np.array_equal(pair, [0, 0, 1, 1, 2, 2])
    capsys.readouterr()
    # a partial copy (the download by hand stopped early) is refused, named, and not unpacked
    cut = tmp_path / "manual2"
    cut.mkdir()
    (cut / "CUHK-PEDES.zip").write_bytes(arc.read_bytes()[: arc.stat().st_size // 2])
    root2 = tmp_path / "data2"
    assert cli.main(["fetch", "cuhk_pedes", "--root", str(root2), "--from-dir", str(cut), "--quiet"]) != 0
    out = capsys.readouterr().out
    assert "CUHK-PEDES.zip" in out and "not usable" in out
    assert not (root2 / "cuhk_pedes" / "dataset_cuhk_pedes.json").exists()
