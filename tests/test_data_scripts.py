"""data_scripts: the downloader (against a loopback HTTP server — never the internet), safe extraction, the CLI, and
each converter on a tiny fixture written here in the dataset's real format, read back through xmr_lib.data.registry."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
import socket
import tarfile
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest

from data_scripts import cli, registry
from data_scripts.convert import ConversionError, convert
from data_scripts.download import ChecksumMismatch, DownloadError, NetworkUnavailable, download, safe_extract
from xmr_lib.data import registry as data

scipy_io = pytest.importorskip("scipy.io")


# ---------------------------------------------------------------------------------------------------------------
# a loopback HTTP server with Range support and fault injection


class _Handler(BaseHTTPRequestHandler):
    files: dict = {}
    mode: dict = {}
    log: list = []

    def log_message(self, *a):  # quiet
        pass

    def do_GET(self):  # noqa: N802
        name = self.path.lstrip("/")
        type(self).log.append((name, self.headers.get("Range")))
        if name not in self.files:
            self.send_error(404)
            return
        body = self.files[name]
        mode = self.mode.get(name, "ok")
        if mode == "corrupt":
            body = bytes(b ^ 0xFF for b in body)
        rng = self.headers.get("Range")
        start = 0
        if rng and mode != "ignore_range":
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        part = body[start:]
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if mode == "truncate":  # announce everything, send half, hang up
            self.wfile.write(part[: len(part) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(part)


@pytest.fixture
def server(loopback_http):
    """``url`` of a fresh :class:`_Handler` server (``tests/conftest.py``'s ``loopback_http`` starts and stops it)."""
    _Handler.files, _Handler.mode, _Handler.log = {}, {}, []
    return loopback_http(_Handler)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_full_download_is_verified_and_renamed(server, tmp_path):
    url = server
    _Handler.files["f.bin"] = PAYLOAD
    res = download(f"{url}/f.bin", tmp_path / "f.bin", sha256=PAYLOAD_SHA, quiet=True)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD and res["verified"] and res["ok"]
    assert not (tmp_path / "f.bin.part").exists() and res["resumed_from"] == 0
    # md5 only (as published for CUB / Flowers), and no checksum at all (reported unverified)
    res = download(f"{url}/f.bin", tmp_path / "g.bin", md5=hashlib.md5(PAYLOAD).hexdigest(), quiet=True)
    assert res["verified"]
    res = download(f"{url}/f.bin", tmp_path / "h.bin", quiet=True)
    assert not res["verified"] and res["sha256"] == PAYLOAD_SHA


def test_resume_from_part_file_with_range(server, tmp_path):
    url = server
    _Handler.files["f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:123_456])
    res = download(f"{url}/f.bin", tmp_path / "f.bin", sha256=PAYLOAD_SHA, quiet=True)
    assert res["resumed_from"] == 123_456 and (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert _Handler.log[-1] == ("f.bin", "bytes=123456-")
    # a server that ignores Range answers 200: the file restarts instead of being corrupted
    _Handler.mode["f.bin"] = "ignore_range"
    (tmp_path / "g.bin.part").write_bytes(b"junk" * 10)
    res = download(f"{url}/f.bin", tmp_path / "g.bin", sha256=PAYLOAD_SHA, quiet=True)
    assert res["resumed_from"] == 0 and (tmp_path / "g.bin").read_bytes() == PAYLOAD


def test_truncated_download_is_kept_as_part_and_resumed(server, tmp_path):
    url = server
    _Handler.files["f.bin"] = PAYLOAD
    _Handler.mode["f.bin"] = "truncate"
    with pytest.raises(DownloadError, match="resume"):
        download(f"{url}/f.bin", tmp_path / "f.bin", sha256=PAYLOAD_SHA, quiet=True)
    assert not (tmp_path / "f.bin").exists()  # never renamed into place
    part = tmp_path / "f.bin.part"
    assert part.is_file() and 0 < part.stat().st_size < len(PAYLOAD)
    _Handler.mode["f.bin"] = "ok"
    res = download(f"{url}/f.bin", tmp_path / "f.bin", sha256=PAYLOAD_SHA, quiet=True)
    assert res["resumed_from"] > 0 and (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_corrupt_download_is_detected_and_not_used(server, tmp_path):
    url = server
    _Handler.files["f.bin"] = PAYLOAD
    _Handler.mode["f.bin"] = "corrupt"
    with pytest.raises(ChecksumMismatch, match="NOT used"):
        download(f"{url}/f.bin", tmp_path / "f.bin", sha256=PAYLOAD_SHA, quiet=True)
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()
    assert (tmp_path / "f.bin.corrupt").is_file()
    # a truncated .part whose missing tail never comes (the server has no more) fails the checksum too
    _Handler.mode["f.bin"] = "ok"
    _Handler.files["short.bin"] = PAYLOAD[:1000]
    with pytest.raises(ChecksumMismatch):
        download(f"{url}/short.bin", tmp_path / "short.bin", sha256=PAYLOAD_SHA, quiet=True)
    assert not (tmp_path / "short.bin").exists()


def test_no_network_is_reported(tmp_path):
    with pytest.raises(NetworkUnavailable, match="no network"):
        download(f"http://127.0.0.1:{_closed_port()}/x.tgz", tmp_path / "x.tgz", timeout=5, quiet=True)
    assert not (tmp_path / "x.tgz").exists()


def test_cli_fetch_without_network_explains_the_manual_route(tmp_path, monkeypatch, capsys):
    port = _closed_port()
    spec = registry.DATASETS["flowers102"]
    files = tuple(replace(f, urls=(f"http://127.0.0.1:{port}/{f.name}",)) for f in spec.files)
    monkeypatch.setitem(registry.DATASETS, "flowers102", replace(spec, files=files))
    rc = cli.main(["fetch", "flowers102", "--root", str(tmp_path), "--timeout", "5", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 2
    assert "No network" in out and "--from-dir" in out and "102flowers.tgz" in out and "setid.mat" in out
    assert str(tmp_path / "flowers102" / "downloads") in out


def test_safe_extract_refuses_path_traversal(tmp_path):
    bad_tar = tmp_path / "bad.tar"
    with tarfile.open(bad_tar, "w") as t:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 3
        t.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(ValueError, match="traversal"):
        safe_extract(bad_tar, tmp_path / "out")
    bad_zip = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad_zip, "w") as z:
        z.writestr("/abs/evil.txt", "bad")
    with pytest.raises(ValueError, match="traversal"):
        safe_extract(bad_zip, tmp_path / "out2")
    link_tar = tmp_path / "link.tar"
    with tarfile.open(link_tar, "w") as t:
        info = tarfile.TarInfo("ok/link")
        info.type, info.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        t.addfile(info)
    with pytest.raises(ValueError, match="outside"):
        safe_extract(link_tar, tmp_path / "out3")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "abs").exists()
    (tmp_path / "page.tgz").write_text("<html>not found</html>")
    with pytest.raises(ValueError, match="neither a tar nor a zip"):
        safe_extract(tmp_path / "page.tgz", tmp_path / "out4")


# ---------------------------------------------------------------------------------------------------------------
# fixtures in the datasets' real formats


from fixtures_real_formats import (  # noqa: E402
    coco_official_raw,
    flickr30k_raw,
    nuswide_raw,
    pascal_sentence_raw,
    stanford_dogs_raw,
    wikipedia_raw,
)
from fixtures_real_formats import cub_fixture as _cub_fixture
from fixtures_real_formats import jpg as _jpg
from fixtures_real_formats import mirflickr_raw as _mirflickr_raw
from fixtures_real_formats import tgz as _tgz


def test_cub200_converter_and_loader(tmp_path):
    _cub_fixture(tmp_path / "cub200" / "raw")
    rep = convert("cub200", tmp_path)
    assert rep["n"] == 6 and rep["missing"] == [] and rep["splits"] == {"test": 2, "train": 4}
    ds = data.load("cub200", "train", root=tmp_path)
    assert len(ds) == 4 and ds.labels.tolist() == [0, 0, 1, 1]
    assert ds.class_names == ["Black_footed_Albatross", "Laysan_Albatross"]
    assert ds.images[0].shape == (9, 12, 3) and ds.images[0].dtype == np.uint8
    assert ds.meta["bbox"][0] == [1.0, 2.0, 5.0, 4.0]
    allds = data.load("cub200", "all", root=tmp_path)
    assert len(allds) == 6 and len(allds.subset([0, 5]).images) == 2
    with pytest.raises(ValueError, match="LazyImages|resize"):
        allds.to_tensor()
    assert cli.main(["verify", "cub200", "--root", str(tmp_path)]) == 0
    # converting again (images already moved to images/) gives the same index
    assert convert("cub200", tmp_path)["n"] == 6


def test_cli_fetch_downloads_verifies_unpacks_and_converts(server, tmp_path, monkeypatch):
    """The whole pipeline against the loopback server: CUB's archive with a known sha256."""
    url = server
    arc = _tgz(_cub_fixture(tmp_path / "src"), tmp_path / "CUB_200_2011.tgz")
    _Handler.files["CUB_200_2011.tgz"] = arc.read_bytes()
    sha = hashlib.sha256(arc.read_bytes()).hexdigest()
    spec = registry.DATASETS["cub200"]
    f = replace(spec.files[0], urls=(f"{url}/missing.tgz", f"{url}/CUB_200_2011.tgz"), sha256=sha, md5=None)
    monkeypatch.setitem(registry.DATASETS, "cub200", replace(spec, files=(f,)))
    root = tmp_path / "data"
    assert cli.main(["fetch", "cub200", "--root", str(root), "--quiet"]) == 0  # first URL 404 → mirror
    assert len(data.load("cub200", "test", root=root)) == 2
    assert (root / "cub200" / "downloads" / "SHA256SUMS").read_text().startswith(sha)
    assert cli.main(["verify", "cub200", "--root", str(root)]) == 0
    # a corrupted archive on disk is detected by verify and by a new fetch: moved aside, never used, fetched again
    p = root / "cub200" / "downloads" / "CUB_200_2011.tgz"
    p.write_bytes(p.read_bytes()[:-10])
    assert cli.main(["verify", "cub200", "--root", str(root)]) == 1
    shutil.rmtree(root / "cub200" / "raw")  # a fresh unpack re-checks the archive first
    assert cli.main(["fetch", "cub200", "--root", str(root), "--quiet"]) == 0
    assert p.read_bytes() == arc.read_bytes() and p.with_name(p.name + ".corrupt").exists()


def test_cli_from_dir_checks_published_checksum(tmp_path, capsys):
    """The real registry's md5 for CUB rejects a file that is not the official archive."""
    src = tmp_path / "manual"
    src.mkdir()
    _tgz(_cub_fixture(tmp_path / "src"), src / "CUB_200_2011.tgz")
    rc = cli.main(["fetch", "cub200", "--root", str(tmp_path / "data"), "--from-dir", str(src)])
    assert rc == 1 and "MISMATCH" in capsys.readouterr().out
    assert not (tmp_path / "data" / "cub200" / "downloads" / "CUB_200_2011.tgz").exists()


def test_from_dir_unverified_files_are_reported_and_recorded(tmp_path, capsys):
    """Revisited: the gnd pickle and the image archive by hand (no published checksums) → converted layout."""
    src = tmp_path / "manual"
    imgs = tmp_path / "arch" / "oxbuild"
    imlist = [f"all_souls_{i:06d}" for i in range(4)] + ["radcliffe_camera_000001"]
    qimlist = ["all_souls_000100"]
    for n in imlist + qimlist:
        _jpg(imgs / "sub" / f"{n}.jpg", 90, size=(30, 20))
    src.mkdir()
    _tgz(imgs, src / "oxbuild_images-v1.tgz")
    gnd = [{"easy": [0, 1], "hard": [2], "junk": [3], "bbx": [2, 3, 12, 13]}]
    with open(src / "gnd_roxford5k.pkl", "wb") as f:
        pickle.dump({"imlist": imlist, "qimlist": qimlist, "gnd": gnd}, f)
    root = tmp_path / "data"
    assert cli.main(["fetch", "roxford5k", "--root", str(root), "--from-dir", str(src)]) == 0
    out = capsys.readouterr().out
    assert "UNPINNED" in out and hashlib.sha256((src / "gnd_roxford5k.pkl").read_bytes()).hexdigest() in out
    assert not (root / "roxford5k" / "downloads" / "SHA256SUMS").exists()  # no arrival hash passed as published
    assert (root / "roxford5k" / "gnd_roxford5k.pkl").is_file()
    assert sorted(p.stem for p in (root / "roxford5k" / "jpg").glob("*.jpg")) == sorted(imlist + qimlist)
    b = data.revisited("roxford5k", root, train_from="roxford5k")
    assert len(b.db) == 5 and b.queries[0].shape == (10, 10, 3) and b.gnd[0]["easy"].tolist() == [0, 1]
    assert cli.main(["verify", "roxford5k", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "unpinned (no published checksum)" in out and "unchanged since download" in out
    assert "archive reads to its end" in out


def test_mirflickr_raw_converter(tmp_path):
    _mirflickr_raw(tmp_path / "mirflickr25k" / "raw")
    rep = convert("mirflickr25k", tmp_path, min_tag_count=1, image_size=8)
    # image 4 has no tags, image 5 no label: the DCMH protocol drops both
    assert rep["n"] == 4 and rep["missing"] == []
    d = tmp_path / "mirflickr25k"
    lab, bow = np.load(d / "labels.npy"), np.load(d / "tags_bow.npy")
    meta = json.loads((d / "meta.json").read_text())
    assert meta["label_names"] == ["animals", "sky", "water"] and meta["vocab"] == [
        "blue",
        "cute",
        "dog",
        "lake",
        "sky",
    ]
    assert lab.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert bow[0].tolist() == [0, 1, 1, 0, 0]
    assert np.load(d / "images.npy").shape == (4, 8, 8, 3)
    ds = data.load("mirflickr25k", "all", root=tmp_path)
    assert ds.multilabels.tolist() == lab.astype(bool).tolist() and ds.captions[0] == "dog cute"
    assert ds.images[3].shape == (10, 16, 3)


def test_mirflickr_mat_converter_feeds_crossmodal(tmp_path, monkeypatch):
    from xmr_lib.chapters.ch03 import crossmodal

    rng = np.random.default_rng(0)
    n, t = 7, 11
    lab = (rng.random((n, 24)) < 0.2).astype(np.uint8)
    lab[:, 0] = 1
    tags = (rng.random((n, t)) < 0.3).astype(np.uint8)
    imgs = rng.integers(0, 256, (n, 3, 6, 6), dtype=np.uint8)  # DJSRH-style IAll (N, 3, H, W)
    raw = tmp_path / "mirflickr25k" / "raw"
    raw.mkdir(parents=True)
    scipy_io.savemat(raw / "mirflickr25k-lall.mat", {"LAll": lab})
    scipy_io.savemat(raw / "mirflickr25k-yall.mat", {"YAll": tags})
    scipy_io.savemat(raw / "mirflickr25k-iall.mat", {"IAll": imgs})
    rep = convert("mirflickr25k", tmp_path)
    assert rep["n"] == n and rep["missing"] == []
    monkeypatch.setitem(crossmodal.PREPARED_DATASETS, "mirflickr25k", {"n_labels": 24, "n_words": t, "n": n})
    pairs = crossmodal.load_crossmodal_pairs("mirflickr25k", root=tmp_path)
    assert np.array_equal(pairs.labels, lab) and np.array_equal(pairs.bow > 0, tags > 0)
    assert pairs.images.shape == (n, 6, 6, 3) and np.array_equal(pairs.images[2], imgs[2].transpose(1, 2, 0))
    # MATLAB (H, W, 3, N) order, as DCMH's FLICKR-25K.mat "images"
    d2 = tmp_path / "b" / "mirflickr25k" / "raw"
    d2.mkdir(parents=True)
    scipy_io.savemat(d2 / "FLICKR-25K.mat", {"LAll": lab, "YAll": tags, "images": imgs.transpose(2, 3, 1, 0)})
    convert("mirflickr25k", tmp_path / "b")
    assert np.array_equal(np.load(tmp_path / "b" / "mirflickr25k" / "images.npy"), imgs.transpose(0, 2, 3, 1))


def test_flickr30k_karpathy_converter(tmp_path):
    from xmr_lib.chapters.ch04.adversarial import karpathy_caption_benchmark

    flickr30k_raw(tmp_path / "flickr30k" / "raw")
    rep = convert("flickr30k", tmp_path)
    assert rep["splits"] == {"test": 2, "train": 2, "val": 1} and rep["missing"] == []
    ds = data.load("flickr30k", "test", root=tmp_path)
    assert len(ds) == 2 and ds.captions == ["image 3 sentence 0.", "image 4 sentence 0."]
    assert len(ds.meta["all_captions"][1]) == 5 and ds.images[0].shape == (9, 12, 3)
    paths, caps, pair = karpathy_caption_benchmark("flickr30k", str(tmp_path), "train")
    assert len(paths) == 2 and Path(paths[1]).is_file() and len(caps) == 10 and pair.tolist() == [0] * 5 + [1] * 5


def test_coco_official_captions_converter(tmp_path):
    coco_official_raw(tmp_path / "coco" / "raw")
    rep = convert("coco", tmp_path)
    assert rep["splits"] == {"test": 1, "train": 2} and rep["missing"] == []
    assert (tmp_path / "coco" / "dataset_coco.json").is_file()
    ds = data.load("coco", "train", root=tmp_path)
    assert ds.captions == ["A photo 9 #0.", "A photo 25 #0."] and ds.meta["paths"][0].endswith(
        "train2017/000000000009.jpg"
    )


def test_flowers102_converter(tmp_path):
    raw = tmp_path / "flowers102" / "raw"
    labels = np.array([[1, 1, 2, 2, 3, 3, 1, 2]])
    for i in range(8):
        _jpg(raw / "jpg" / f"image_{i + 1:05d}.jpg", 25 * i)
    scipy_io.savemat(raw / "imagelabels.mat", {"labels": labels})
    scipy_io.savemat(
        raw / "setid.mat", {"trnid": np.array([[1, 3, 5]]), "valid": np.array([[2, 4]]), "tstid": np.array([[6, 7, 8]])}
    )
    rep = convert("flowers102", tmp_path)
    assert rep["splits"] == {"test": 3, "train": 3, "val": 2}
    ds = data.load("flowers102", "test", root=tmp_path)
    assert ds.labels.tolist() == [2, 0, 1] and len(ds.class_names) == 3
    assert len(data.load("flowers102", "trainval", root=tmp_path)) == 5


def test_fgvc_aircraft_converter(tmp_path):
    d = tmp_path / "fgvc_aircraft" / "raw" / "fgvc-aircraft-2013b" / "data"
    d.mkdir(parents=True)
    (d / "variants.txt").write_text("707-320\nF/A-18\nA320\n")
    (d / "manufacturers.txt").write_text("Boeing\nMcDonnell Douglas\nAirbus\n")
    split_rows = {
        "train": [("0034309", "707-320", "Boeing"), ("0056978", "F/A-18", "McDonnell Douglas")],
        "val": [("0062780", "A320", "Airbus")],
        "test": [("1101541", "F/A-18", "McDonnell Douglas")],
    }
    for split, rows in split_rows.items():
        (d / f"images_variant_{split}.txt").write_text("".join(f"{i} {v}\n" for i, v, _ in rows))
        (d / f"images_manufacturer_{split}.txt").write_text("".join(f"{i} {m}\n" for i, _, m in rows))
        for i, _, _ in rows:
            _jpg(d / "images" / f"{i}.jpg")
    rep = convert("fgvc_aircraft", tmp_path)
    assert rep["n"] == 4 and rep["missing"] == []
    ds = data.load("fgvc_aircraft", "train", root=tmp_path)
    assert ds.labels.tolist() == [0, 1] and ds.class_names[1] == "F/A-18"
    assert ds.coarse_labels.tolist() == [0, 1] and ds.coarse_names == ["Boeing", "McDonnell Douglas", "Airbus"]


def test_stanford_dogs_converter(tmp_path):
    stanford_dogs_raw(tmp_path / "stanford_dogs" / "raw")
    rep = convert("stanford_dogs", tmp_path)
    assert rep["splits"] == {"test": 1, "train": 2} and rep["missing"] == []
    ds = data.load("stanford_dogs", "train", root=tmp_path)
    assert ds.labels.tolist() == [0, 1] and ds.class_names == ["Chihuahua", "Japanese_spaniel"]
    assert ds.images[1].shape == (9, 12, 3)


def test_wikipedia_converter(tmp_path):
    wikipedia_raw(tmp_path / "wikipedia" / "raw")
    rep = convert("wikipedia", tmp_path)
    assert rep["splits"] == {"test": 1, "train": 2} and rep["missing"] == []
    ds = data.load("wikipedia", "test", root=tmp_path)
    assert ds.labels.tolist() == [1] and ds.class_names == ["art", "biology"]
    assert ds.captions[0].startswith("Article t3") and ds.images[0].shape == (9, 12, 3)


def test_pascal_sentence_converter(tmp_path):
    pascal_sentence_raw(tmp_path / "pascal_sentence" / "raw")
    rep = convert("pascal_sentence", tmp_path)
    assert rep["splits"] == {"test": 2, "train": 16, "val": 2}
    ds = data.load("pascal_sentence", "all", root=tmp_path)
    assert len(ds) == 20 and len(ds.meta["all_captions"][0]) == 5 and ds.labels[-1] == 1


def test_nuswide_converter(tmp_path):
    nuswide_raw(tmp_path / "nuswide" / "raw")
    rep = convert("nuswide", tmp_path, n_labels=2, image_size=4)
    assert rep["n"] == 4 and rep["missing"] == []  # "rare"-only image 3 dropped
    d = tmp_path / "nuswide"
    assert json.loads((d / "meta.json").read_text())["label_names"] == ["animal", "sky"]
    assert np.load(d / "labels.npy").tolist() == [[1, 0], [0, 1], [0, 1], [0, 1]]
    assert np.load(d / "tags_bow.npy").shape == (4, 3) and np.load(d / "images.npy").shape == (4, 4, 4, 3)
    ds = data.load("nuswide", "all", root=tmp_path)
    assert ds.class_names == ["animal", "sky"] and ds.images[0].shape == (9, 12, 3)


def test_missing_dataset_errors_name_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m data_scripts fetch cub200 --root .*nowhere"):
        data.load("cub200", "train", root=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="python -m data_scripts fetch flickr30k"):
        data.load_converted("flickr30k", None)
    with pytest.raises(ValueError, match="data.revisited"):
        data.load("roxford5k", root=tmp_path)
    with pytest.raises(ConversionError, match="images.txt"):
        (tmp_path / "cub200").mkdir()
        convert("cub200", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        registry.get("imagenet")
    assert cli.main(["verify", "cub200", "--root", str(tmp_path / "nowhere")]) == 1


def test_registry_is_complete_and_never_invents_checksums():
    want = {
        "roxford5k",
        "rparis6k",
        "mirflickr25k",
        "nuswide",
        "flickr30k",
        "coco",
        "cub200",
        "stanford_dogs",
        "fgvc_aircraft",
        "flowers102",
        "wikipedia",
        "pascal_sentence",
    }
    assert want <= set(registry.DATASETS)
    from data_scripts.convert import CONVERTERS

    assert set(registry.DATASETS) == set(CONVERTERS)
    for s in registry.DATASETS.values():
        assert s.licence and s.citation and s.homepage and s.layout and s.files
        for f in s.files:
            assert f.urls or f.manual, f"{s.name}/{f.name}: no URL and not marked manual"
            assert all(u.startswith(("http://", "https://")) for u in f.urls)
            assert f.sha256 is None or len(f.sha256) == 64
            assert f.md5 is None or (len(f.md5) == 32 and f.checksum_source)
    assert cli.main(["list"]) == 0 and cli.main(["info", "roxford5k"]) == 0


def test_cli_from_dir_takes_archives_and_unpacked_folders(tmp_path, capsys, monkeypatch):
    """Flickr30K by hand: the Karpathy zip plus the images folder the user already unpacked."""
    spec = registry.DATASETS["flickr30k"]  # the fixture zip is not the published file: unpin it here
    monkeypatch.setitem(
        registry.DATASETS,
        "flickr30k",
        replace(spec, files=tuple(replace(f, sha256=None, size=None) for f in spec.files)),
    )
    src = tmp_path / "manual"
    for k in range(3):
        _jpg(src / "flickr30k-images" / f"{k}.jpg")
    imgs = [
        {"filename": f"{k}.jpg", "split": s, "sentences": [{"raw": f"cap {k}"}]}
        for k, s in enumerate(["train", "val", "test"])
    ]
    with zipfile.ZipFile(src / "caption_datasets.zip", "w") as z:
        z.writestr("dataset_flickr30k.json", json.dumps({"images": imgs}))
    root = tmp_path / "data"
    assert cli.main(["fetch", "flickr30k", "--root", str(root), "--from-dir", str(src), "--quiet"]) == 0
    assert data.load("flickr30k", "val", root=root).captions == ["cap 1"]
    capsys.readouterr()
    # without the images the fetch stops with exit 2 and names the missing file and the --from-dir route
    root2 = tmp_path / "data2"
    (src / "flickr30k-images").rename(tmp_path / "elsewhere")
    assert cli.main(["fetch", "flickr30k", "--root", str(root2), "--from-dir", str(src), "--quiet"]) == 2
    out = capsys.readouterr().out
    assert "flickr30k-images.tar.gz" in out and "--from-dir" in out
