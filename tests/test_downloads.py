"""The downloader's failure modes, each reproduced by a loopback HTTP server (never the internet): a cut transfer
without Content-Length, a 416 for a .part longer than the file, a 206 that restarts at byte 0 or at a wrong offset,
an HTML error page with status 200, a stall mid-body, truncated tgz / tar / zip archives; plus --from-dir never
going to the network, `verify` saying "unpinned", the registry citing its sources, and the socket guard."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest

from data_scripts import cli, registry
from data_scripts.download import (
    ChecksumMismatch,
    CorruptArchive,
    DownloadError,
    NetworkUnavailable,
    NotTheFile,
    TransferStalled,
    check_archive,
    download,
    safe_extract,
)

PAYLOAD = np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _H(BaseHTTPRequestHandler):
    files: dict = {}
    mode: dict = {}
    log: list = []
    release = threading.Event()

    def log_message(self, *a):
        pass

    def do_GET(self):  # noqa: N802
        name = self.path.lstrip("/")
        rng = self.headers.get("Range")
        type(self).log.append((name, rng))
        if name not in self.files:
            self.send_error(404)
            return
        body, mode = self.files[name], self.mode.get(name, "ok")
        n = len(body)
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if mode == "html":  # an error page, status 200
            page = b"<!DOCTYPE html><html><body>Please log in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if mode == "html_as_binary":  # the same page, mislabelled as a binary
            page = b"\n  <html><head><title>404</title></head></html>"
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if rng and start >= n and mode != "206_at_zero":
            self.send_response(416)
            if mode != "416_bare":
                self.send_header("Content-Range", f"bytes */{n}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if rng and mode == "206_at_zero":  # says 206, sends (and labels) the file from byte 0
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-{n - 1}/{n}")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.write(body)
            return
        if rng and mode == "206_lying":  # says 206 from the offset, sends from byte 0
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{n - 1}/{n}")
            self.send_header("Content-Length", str(n - start))
            self.end_headers()
            self.wfile.write(body[: n - start])
            return
        if rng and mode == "206_wrong_offset":
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 10-{n - 1}/{n}")
            self.send_header("Content-Length", str(n - 10))
            self.end_headers()
            self.wfile.write(body[10:])
            return
        if rng:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{n - 1}/{n}")
        else:
            self.send_response(200)
        part = body[start:]
        if mode != "no_length_cut":
            self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if mode == "no_length_cut":  # no Content-Length, half the body, hang up
            self.wfile.write(part[: len(part) // 2])
            self.close_connection = True
            return
        if mode == "stall":  # half the body, then silence
            self.wfile.write(part[: len(part) // 2])
            self.wfile.flush()
            type(self).release.wait(10)
            self.close_connection = True
            return
        self.wfile.write(part)


@pytest.fixture
def server(loopback_http):
    _H.files, _H.mode, _H.log = {}, {}, []
    _H.release = threading.Event()
    yield loopback_http(_H)
    _H.release.set()  # let stalled handlers finish before the server (conftest's loopback_http) shuts down


def _archives(tmp_path) -> dict:
    """{name: bytes} of a .tgz, a .tar and a .zip holding the same three files."""
    rng = np.random.default_rng(2)
    members = {f"top/f{i}.bin": rng.integers(0, 256, 30_000, dtype=np.uint8).tobytes() for i in range(3)}
    out = {}
    for name, mode in (("a.tgz", "w:gz"), ("a.tar", "w")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode) as t:
            for n, b in members.items():
                info = tarfile.TarInfo(n)
                info.size = len(b)
                t.addfile(info, io.BytesIO(b))
        out[name] = buf.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for n, b in members.items():
            z.writestr(n, b)
    out["a.zip"] = buf.getvalue()
    return out


def _nothing_taken(d, name):
    assert not (d / name).exists(), f"{name} was accepted as a whole file"


# ---------------------------------------------------------------------------------------------------------------
# the failure modes


def test_no_content_length_cut_is_never_accepted(server, tmp_path):
    _H.files["f.bin"] = PAYLOAD
    _H.mode["f.bin"] = "no_length_cut"
    with pytest.raises(DownloadError, match="no Content-Length"):  # unpinned: refused outright
        download(f"{server}/f.bin", tmp_path / "f.bin", quiet=True)
    _nothing_taken(tmp_path, "f.bin")
    with pytest.raises(ChecksumMismatch):  # pinned: the checksum decides
        download(f"{server}/f.bin", tmp_path / "g.bin", sha256=SHA, quiet=True)
    _nothing_taken(tmp_path, "g.bin")
    with pytest.raises(DownloadError, match=r"100,000 of 200,000"):  # published size: short
        download(f"{server}/f.bin", tmp_path / "h.bin", size=len(PAYLOAD), quiet=True)
    _nothing_taken(tmp_path, "h.bin")
    arc = _archives(tmp_path)["a.tgz"]  # unpinned archive: read to its end
    _H.files["a.tgz"], _H.mode["a.tgz"] = arc, "no_length_cut"
    with pytest.raises(CorruptArchive, match="a.tgz"):
        download(f"{server}/a.tgz", tmp_path / "a.tgz", quiet=True)
    _nothing_taken(tmp_path, "a.tgz")
    assert (tmp_path / "a.tgz.corrupt").is_file()


def test_416_with_a_longer_part_restarts_instead_of_accepting(server, tmp_path):
    _H.files["f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD + b"junk" * 100)  # longer than the file
    res = download(f"{server}/f.bin", tmp_path / "f.bin", quiet=True)  # unpinned: still not "complete"
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD and res["resumed_from"] == 0
    assert _H.log[0] == ("f.bin", f"bytes={len(PAYLOAD) + 400}-") and _H.log[1] == ("f.bin", None)
    # a .part of the right length but wrong bytes: 416 → verified → mismatch, never taken
    (tmp_path / "g.bin.part").write_bytes(bytes(len(PAYLOAD)))
    with pytest.raises(ChecksumMismatch):
        download(f"{server}/f.bin", tmp_path / "g.bin", sha256=SHA, quiet=True)
    _nothing_taken(tmp_path, "g.bin")
    # 416 without Content-Range, unpinned: cannot be checked → restart
    _H.mode["f.bin"] = "416_bare"
    (tmp_path / "h.bin.part").write_bytes(PAYLOAD + b"x")
    download(f"{server}/f.bin", tmp_path / "h.bin", quiet=True)
    assert (tmp_path / "h.bin").read_bytes() == PAYLOAD


def test_206_must_start_at_the_requested_offset(server, tmp_path):
    _H.files["f.bin"] = PAYLOAD
    half = len(PAYLOAD) // 2
    _H.mode["f.bin"] = "206_at_zero"  # labelled honestly as bytes 0-: a fresh start, not appended
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:half])
    res = download(f"{server}/f.bin", tmp_path / "f.bin", quiet=True)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD and res["resumed_from"] == 0
    _H.mode["f.bin"] = "206_wrong_offset"  # any other offset: refused, the .part untouched
    (tmp_path / "g.bin.part").write_bytes(PAYLOAD[:half])
    with pytest.raises(DownloadError, match="wrong offset"):
        download(f"{server}/f.bin", tmp_path / "g.bin", quiet=True)
    _nothing_taken(tmp_path, "g.bin")
    assert (tmp_path / "g.bin.part").read_bytes() == PAYLOAD[:half]
    _H.mode["f.bin"] = "206_lying"  # claims the offset, sends byte 0 on: the checksum catches it
    (tmp_path / "h.bin.part").write_bytes(PAYLOAD[:half])
    with pytest.raises(ChecksumMismatch):
        download(f"{server}/f.bin", tmp_path / "h.bin", sha256=SHA, quiet=True)
    _nothing_taken(tmp_path, "h.bin")


def test_html_error_page_with_status_200_is_refused(server, tmp_path):
    _H.files["f.tgz"] = PAYLOAD
    _H.mode["f.tgz"] = "html"
    with pytest.raises(NotTheFile, match="HTML page"):
        download(f"{server}/f.tgz", tmp_path / "f.tgz", quiet=True)
    _nothing_taken(tmp_path, "f.tgz")
    assert not (tmp_path / "f.tgz.part").exists()
    _H.mode["f.tgz"] = "html_as_binary"
    with pytest.raises(NotTheFile, match="HTML page"):
        download(f"{server}/f.tgz", tmp_path / "f.tgz", quiet=True)
    _nothing_taken(tmp_path, "f.tgz")
    assert not (tmp_path / "f.tgz.part").exists()


def test_a_stall_is_not_no_network_and_resumes(server, tmp_path):
    _H.files["f.bin"] = PAYLOAD
    _H.mode["f.bin"] = "stall"
    with pytest.raises(TransferStalled, match="stalled") as ei:
        download(f"{server}/f.bin", tmp_path / "f.bin", sha256=SHA, timeout=0.5, quiet=True)
    assert not isinstance(ei.value, NetworkUnavailable) and "no network" not in str(ei.value)
    _nothing_taken(tmp_path, "f.bin")
    part = tmp_path / "f.bin.part"
    kept = part.stat().st_size
    assert 0 < kept < len(PAYLOAD) and part.read_bytes() == PAYLOAD[:kept]  # a clean prefix, kept for a resume
    _H.mode["f.bin"] = "ok"
    res = download(f"{server}/f.bin", tmp_path / "f.bin", sha256=SHA, quiet=True)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD and res["resumed_from"] == kept


@pytest.mark.parametrize("name", ["a.tgz", "a.tar", "a.zip"])
def test_truncated_archive_is_refused_moved_aside_and_fetched_again(server, tmp_path, name):
    good = _archives(tmp_path)[name]
    # tgz / zip: cut in the middle; tar: cut exactly after the 2nd member (tarfile alone reads that as a valid,
    # shorter archive — only the missing end-of-archive marker gives it away)
    cut = good[: len(good) // 2] if name != "a.tar" else good[: tarfile.BLOCKSIZE * 120]
    _H.files[name] = cut  # the server itself holds a truncated copy
    with pytest.raises(CorruptArchive, match=rf"^{name}: corrupt or truncated"):
        download(f"{server}/{name}", tmp_path / name, quiet=True)
    _nothing_taken(tmp_path, name)
    assert (tmp_path / f"{name}.corrupt").read_bytes() == cut
    _H.files[name] = good  # a rerun fetches it again
    res = download(f"{server}/{name}", tmp_path / name, quiet=True)
    assert (tmp_path / name).read_bytes() == good and res["archive_ok"] and not res["verified"]
    # extraction is all or nothing
    (tmp_path / "cut" / name).parent.mkdir()
    (tmp_path / "cut" / name).write_bytes(cut)
    out = tmp_path / "out"
    with pytest.raises(CorruptArchive, match=f"{name}.*download it again"):
        safe_extract(tmp_path / "cut" / name, out)
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    (out / "top").mkdir(parents=True)
    (out / "keep.txt").write_text("x")
    with pytest.raises(CorruptArchive):
        safe_extract(tmp_path / "cut" / name, out)
    assert sorted(p.name for p in out.rglob("*")) == ["keep.txt", "top"]
    assert len(safe_extract(tmp_path / name, out)) >= 3 and (out / "top" / "f2.bin").stat().st_size == 30_000
    assert check_archive(tmp_path / name) >= 3


# ---------------------------------------------------------------------------------------------------------------
# the CLI: go on after a failure, list all; corrupt archives moved aside and fetched again; --from-dir offline


def _flowers_on(server, tmp_path, monkeypatch) -> dict:
    """flowers102 served by the loopback server, pinned to the fixture's own bytes."""
    import scipy.io
    from fixtures_real_formats import jpg

    src = tmp_path / "src"
    for i in range(4):
        jpg(src / "jpg" / f"image_{i + 1:05d}.jpg", 30 * i)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(src / "jpg", arcname="jpg")
    scipy.io.savemat(src / "imagelabels.mat", {"labels": np.array([[1, 1, 2, 2]])})
    scipy.io.savemat(
        src / "setid.mat", {"trnid": np.array([[1, 3]]), "valid": np.array([[2]]), "tstid": np.array([[4]])}
    )
    blobs = {
        "102flowers.tgz": buf.getvalue(),
        "imagelabels.mat": (src / "imagelabels.mat").read_bytes(),
        "setid.mat": (src / "setid.mat").read_bytes(),
    }
    spec = registry.DATASETS["flowers102"]
    files = tuple(
        replace(
            f,
            urls=(f"{server}/{f.name}",),
            sha256=hashlib.sha256(blobs[f.name]).hexdigest(),
            md5=hashlib.md5(blobs[f.name]).hexdigest(),
            size=len(blobs[f.name]),
        )
        for f in spec.files
    )
    monkeypatch.setitem(registry.DATASETS, "flowers102", replace(spec, files=files))
    _H.files.update(blobs)
    return blobs


def test_cli_goes_on_after_a_stall_and_lists_every_failure(server, tmp_path, monkeypatch, capsys):
    _flowers_on(server, tmp_path, monkeypatch)
    _H.mode["102flowers.tgz"] = "stall"
    _H.mode["setid.mat"] = "html"
    root = tmp_path / "data"
    rc = cli.main(["fetch", "flowers102", "--root", str(root), "--timeout", "0.5", "--quiet"])
    out = capsys.readouterr().out
    dl = root / "flowers102" / "downloads"
    assert rc == 1 and "2 file(s) of flowers102 failed" in out and "stalled" in out and "HTML page" in out
    assert "No network" not in out and "no network" not in out
    assert (dl / "imagelabels.mat").is_file()  # the file after the stall was fetched
    assert not (dl / "102flowers.tgz").exists() and not (dl / "setid.mat").exists()
    _H.mode.clear()
    _H.release.set()
    assert cli.main(["fetch", "flowers102", "--root", str(root), "--quiet"]) == 0  # rerun: resume + the rest
    assert cli.main(["verify", "flowers102", "--root", str(root)]) == 0


def test_cli_corrupt_unpinned_archive_on_disk_is_moved_aside_and_fetched_again(server, tmp_path, monkeypatch, capsys):
    blobs = _flowers_on(server, tmp_path, monkeypatch)
    spec = registry.DATASETS["flowers102"]
    unpinned = tuple(replace(f, sha256=None, md5=None, size=None) for f in spec.files)
    monkeypatch.setitem(registry.DATASETS, "flowers102", replace(spec, files=unpinned))
    dl = tmp_path / "data" / "flowers102" / "downloads"
    dl.mkdir(parents=True)
    arc = blobs["102flowers.tgz"]
    (dl / "102flowers.tgz").write_bytes(arc[: len(arc) // 2])  # an earlier run's truncated copy
    rc = cli.main(["fetch", "flowers102", "--root", str(tmp_path / "data"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "not usable" in out and "corrupt or truncated" in out
    assert (dl / "102flowers.tgz").read_bytes() == arc and (dl / "102flowers.tgz.corrupt").is_file()
    assert "UNPINNED" in out and not (dl / "SHA256SUMS").exists()  # arrival hashes are not "published" ones
    assert cli.main(["verify", "flowers102", "--root", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "unpinned (no published checksum)" in out and "archive reads to its end" in out
    # a corrupt archive found at unpack time: one clear error, moved aside, nothing unpacked, rerun fetches it
    raw = tmp_path / "data" / "flowers102" / "raw"
    import shutil

    shutil.rmtree(raw)
    (dl / "102flowers.tgz").write_bytes(arc[:-300])
    from data_scripts import cli as cli_mod

    monkeypatch.setattr(cli_mod, "_check_present", lambda f, p: (True, "", None))  # as if the check were skipped
    rc = cli.main(["fetch", "flowers102", "--root", str(tmp_path / "data"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 1 and "102flowers.tgz" in out and "corrupt or truncated" in out and "download it again" in out
    assert not (dl / "102flowers.tgz").exists() and not (raw / "jpg").exists()
    monkeypatch.undo()
    _flowers_on(server, tmp_path, monkeypatch)
    assert cli.main(["fetch", "flowers102", "--root", str(tmp_path / "data"), "--quiet"]) == 0
    assert len(list((tmp_path / "data" / "flowers102" / "images").rglob("*.jpg"))) == 4


def test_from_dir_with_a_missing_file_never_goes_to_the_network(server, tmp_path, monkeypatch, capsys):
    blobs = _flowers_on(server, tmp_path, monkeypatch)
    src = tmp_path / "manual"
    src.mkdir()
    (src / "setid.mat").write_bytes(blobs["setid.mat"])
    rc = cli.main(["fetch", "flowers102", "--root", str(tmp_path / "data"), "--from-dir", str(src), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 2 and _H.log == []  # not one request
    assert "102flowers.tgz" in out and "imagelabels.mat" in out and "--from-dir" in out
    assert "nothing is downloaded with --from-dir" in out


# ---------------------------------------------------------------------------------------------------------------
# registry facts and isolation


def test_registry_cites_a_source_for_every_url_size_and_checksum(capsys):
    n_pinned = 0
    for s in registry.DATASETS.values():
        for f in s.files:
            assert f.source, f"{s.name}/{f.name}: no source"
            if f.sha256 or f.md5 or f.size:
                assert f.checksum_source or f.size is None, f"{s.name}/{f.name}: checksum without its source"
                n_pinned += bool(f.sha256 or f.md5)
            elif f.urls:
                assert "no checksum" in f.source or "unverified" in f.source, f"{s.name}/{f.name}"
    assert n_pinned >= 13  # 13 of the 34 file entries (was 5)
    fl = {f.name: f for f in registry.DATASETS["flowers102"].files}
    assert fl["102flowers.tgz"].md5 == "52808999861908f626f3c1f4e79d11fa"  # = torchvision.datasets.Flowers102
    assert cli.main(["info", "stanford_dogs"]) == 0
    out = capsys.readouterr().out
    assert "source:" in out and "url_checksums/stanford_dogs.txt" in out and "793,579,520 bytes" in out
    assert cli.main(["info", "wikipedia"]) == 0 and "unverified" in capsys.readouterr().out


def test_torchvision_flowers_md5s_match_the_registry():
    tv = pytest.importorskip("torchvision.datasets.flowers102")
    reg = {f.name: f.md5 for f in registry.DATASETS["flowers102"].files}
    assert {fn: md5 for fn, md5 in tv.Flowers102._file_dict.values()} == reg
    fg = pytest.importorskip("torchvision.datasets.fgvc_aircraft")
    assert fg.FGVCAircraft._URL == registry.DATASETS["fgvc_aircraft"].files[0].urls[0]


def test_socket_guard_refuses_the_network_but_not_loopback(server, network_blocked_error):
    NetworkBlockedInTests = network_blocked_error

    s = socket.socket()
    try:
        with pytest.raises(NetworkBlockedInTests, match="must not reach the network"):
            s.connect(("203.0.113.7", 80))  # TEST-NET-3: never a real host
    finally:
        s.close()
    with pytest.raises(NetworkBlockedInTests):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(NetworkBlockedInTests):
        socket.create_connection(("example.org", 80), timeout=1)
    host, port = server.rsplit(":", 1)
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5):
        pass
