"""Pretrained weights: ``python -m data_scripts fetch NAME`` (resumable, checked against the published sha256 prefix,
whole or refused) puts the file where ``xmr_lib.core.paths.find_weights`` / ``backbone(name, pretrained=True)`` find
it without a download. A tiny fake weight file is served by a loopback HTTP server (never the internet)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from http.server import BaseHTTPRequestHandler

import pytest
import torch

from data_scripts import cli, registry
from xmr_lib.core import paths
from xmr_lib.encoders import backbones as M


class _Serve(BaseHTTPRequestHandler):
    files: dict = {}
    cut: dict = {}  # name → bytes actually sent before the connection closes (Content-Length says all)
    log: list = []

    def log_message(self, *a):
        pass

    def do_GET(self):  # noqa: N802
        name = self.path.lstrip("/")
        rng = self.headers.get("Range")
        type(self).log.append((name, rng))
        if name not in self.files:
            self.send_error(404)
            return
        body = self.files[name]
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        part = body[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(part)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        n = self.cut.pop(name, None)
        self.wfile.write(part if n is None else part[:n])
        if n is not None:
            self.close_connection = True


@pytest.fixture
def server(loopback_http):
    _Serve.files, _Serve.cut, _Serve.log = {}, {}, []
    return loopback_http(_Serve)


@pytest.fixture(scope="module")
def fake_mobilenet():
    """(bytes of a saved random MobileNet V2 state dict, its sha256, the network) — 14 MB, the smallest paper
    backbone whose whole state dict loads strictly."""
    torch.manual_seed(3)
    ref = M.backbone("mobilenet_v2", pretrained=False, device="cpu")
    buf = io.BytesIO()
    torch.save(ref.net.state_dict(), buf)
    blob = buf.getvalue()
    return blob, hashlib.sha256(blob).hexdigest(), ref


@pytest.fixture
def weights_env(tmp_path, monkeypatch):
    """Empty weight folders everywhere xmr looks; returns the folder ``fetch`` writes to."""
    for var in ("XMR_WEIGHTS_DIR", "XMR_DATA_DIR", "TORCH_HOME"):
        (tmp_path / var).mkdir()
        monkeypatch.setenv(var, str(tmp_path / var))
    return tmp_path / "XMR_WEIGHTS_DIR"


def _serve_fake(server, monkeypatch, blob, digest, body=None) -> registry.WeightsFile:
    """The registry's mobilenet_v2 entry and xmr's file table pointed at the fake file (named with its own prefix)."""
    file = f"mobilenet_v2-{digest[:8]}.pth"
    w = replace(registry.WEIGHTS["mobilenet_v2"], file=file, url=f"{server}/{file}", sha256_prefix=digest[:8])
    monkeypatch.setitem(registry.WEIGHTS, "mobilenet_v2", w)
    spec = paths.WeightsSpec("mobilenet_v2", file, w.url, "the test's fake file")
    monkeypatch.setitem(paths.TORCHVISION_WEIGHTS, "mobilenet_v2", (spec,))
    _Serve.files[file] = blob if body is None else body
    return w


def test_fetch_checks_the_prefix_and_backbone_loads_it(server, monkeypatch, weights_env, fake_mobilenet, capsys):
    blob, digest, ref = fake_mobilenet
    w = _serve_fake(server, monkeypatch, blob, digest)
    with pytest.raises(FileNotFoundError) as e:  # before the fetch: the exact command, no download
        M.backbone("mobilenet_v2", pretrained=True, device="cpu")
    assert "python -m data_scripts fetch mobilenet_v2" in str(e.value) and "never downloads" in str(e.value)
    assert _Serve.log == []
    assert cli.main(["fetch", "mobilenet_v2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"starts with the published {digest[:8]}" in out and digest in out
    assert (weights_env / w.file).read_bytes() == blob and not list(weights_env.glob("*.part"))
    assert paths.find_weights("mobilenet_v2") == weights_env / w.file
    t = M.backbone("mobilenet_v2", pretrained=True, device="cpu")
    for k, v in ref.net.state_dict().items():
        assert torch.equal(t.net.state_dict()[k], v), k
    assert t(torch.zeros(1, 3, 32, 32)).shape == (1, 1280, 1, 1)
    n = len(_Serve.log)
    assert cli.main(["fetch", "mobilenet_v2"]) == 0 and len(_Serve.log) == n  # already here: no request
    assert "already in" in capsys.readouterr().out


def test_a_corrupt_file_is_refused_and_never_placed(server, monkeypatch, weights_env, fake_mobilenet, capsys):
    blob, digest, _ = fake_mobilenet
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0xFF  # same length, one byte flipped
    w = _serve_fake(server, monkeypatch, blob, digest, body=bytes(bad))
    assert cli.fetch_weights("mobilenet_v2", quiet=True) == 1
    out = capsys.readouterr().out
    assert f"a sha256 starting with {digest[:8]}" in out and "NOT used" in out
    assert not (weights_env / w.file).exists() and (weights_env / (w.file + ".corrupt")).is_file()
    with pytest.raises(FileNotFoundError, match="data_scripts fetch mobilenet_v2"):
        M.backbone("mobilenet_v2", pretrained=True, device="cpu")
    # a corrupt copy put in the folder by hand: backbone refuses it by the prefix in its name
    (weights_env / w.file).write_bytes(bytes(bad))
    with pytest.raises(ValueError, match=digest[:8]):
        M.backbone("mobilenet_v2", pretrained=True, device="cpu")
    # ... and fetch moves it aside and downloads a good copy
    _Serve.files[w.file] = blob
    assert cli.fetch_weights("mobilenet_v2", quiet=True) == 0
    assert (weights_env / w.file).read_bytes() == blob and "not usable" in capsys.readouterr().out


def test_a_cut_transfer_is_kept_as_part_and_resumed(server, monkeypatch, weights_env, fake_mobilenet, capsys):
    blob, digest, _ = fake_mobilenet
    w = _serve_fake(server, monkeypatch, blob, digest)
    _Serve.cut[w.file] = 5_000_000
    assert cli.fetch_weights("mobilenet_v2", quiet=True) == 1
    assert "truncated" in capsys.readouterr().out
    part = weights_env / (w.file + ".part")
    assert part.stat().st_size == 5_000_000 and not (weights_env / w.file).exists()
    assert cli.fetch_weights("mobilenet_v2", quiet=True) == 0
    assert _Serve.log[-1] == (w.file, "bytes=5000000-")  # resumed, not restarted
    assert (weights_env / w.file).read_bytes() == blob and not part.exists()


def test_from_dir_checks_the_prefix(monkeypatch, weights_env, fake_mobilenet, tmp_path, capsys):
    blob, digest, _ = fake_mobilenet
    w = _serve_fake("http://127.0.0.1:9", monkeypatch, blob, digest)
    src = tmp_path / "by_hand"
    src.mkdir()
    (src / w.file).write_bytes(blob[:-10])  # truncated
    assert cli.main(["fetch", "mobilenet_v2", "--from-dir", str(src)]) == 1
    assert "does not start with" in capsys.readouterr().out and not (weights_env / w.file).exists()
    (src / w.file).write_bytes(blob)
    assert cli.main(["fetch", "mobilenet_v2", "--from-dir", str(src), "--dir", str(tmp_path / "w")]) == 0
    assert (tmp_path / "w" / w.file).read_bytes() == blob


def test_unpinned_cirtorch_network_is_accepted_on_length_and_said_so(server, monkeypatch, weights_env, capsys):
    w = replace(registry.WEIGHTS["cirtorch_resnet101_gem"], url=f"{server}/net.pth")
    monkeypatch.setitem(registry.WEIGHTS, "cirtorch_resnet101_gem", w)
    _Serve.files["net.pth"] = b"\x80" + b"x" * 999
    assert cli.fetch_weights("cirtorch_resnet101_gem", quiet=True) == 0
    assert "UNPINNED" in capsys.readouterr().out
    assert paths.find_weights("cirtorch_resnet101_gem") == weights_env / w.file


def test_no_network_names_the_manual_route(monkeypatch, weights_env, capsys):
    w = replace(registry.WEIGHTS["alexnet"], url="http://127.0.0.1:9/alexnet-owt-7be5be79.pth")  # nothing listens
    monkeypatch.setitem(registry.WEIGHTS, "alexnet", w)
    assert cli.fetch_weights("alexnet", quiet=True) == 2
    assert "--from-dir" in capsys.readouterr().out


def test_registry_agrees_with_xmr_and_torchvision(monkeypatch, tmp_path):
    import torchvision.models as tvm

    enums = {
        "alexnet": tvm.AlexNet_Weights,
        "vgg16": tvm.VGG16_Weights,
        "googlenet": tvm.GoogLeNet_Weights,
        "resnet18": tvm.ResNet18_Weights,
        "resnet50": tvm.ResNet50_Weights,
        "resnet101": tvm.ResNet101_Weights,
        "resnet152": tvm.ResNet152_Weights,
        "mobilenet_v2": tvm.MobileNet_V2_Weights,
        "inception_v3": tvm.Inception_V3_Weights,
    }
    for name, enum in enums.items():
        w = registry.WEIGHTS[name]
        assert w.url == enum.IMAGENET1K_V1.url and w.file == w.url.rsplit("/", 1)[-1]
        assert w.file.rsplit("-", 1)[1] == f"{w.sha256_prefix}.pth" and len(w.sha256_prefix) == 8
        assert "check_hash" in w.checksum_source and w.source
        assert abs(w.size_mb - enum.IMAGENET1K_V1.meta["_file_size"]) < 0.1
        assert paths.TORCHVISION_WEIGHTS[name][0].filename == w.file  # what fetch writes is what xmr looks for
        assert name in M.BACKBONES
    assert registry.WEIGHTS["cirtorch_resnet101_gem"].sha256_prefix is None  # none published: never invented
    assert (
        paths.RETRIEVAL_WEIGHTS["cirtorch_resnet101_gem"][0].filename == registry.WEIGHTS["cirtorch_resnet101_gem"].file
    )
    monkeypatch.delenv("XMR_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("XMR_DATA_DIR", str(tmp_path))
    assert cli.weights_dir() == paths.weights_dirs()[0] == tmp_path / "weights"
    monkeypatch.setenv("XMR_WEIGHTS_DIR", str(tmp_path / "mine"))
    assert cli.weights_dir() == paths.weights_dirs()[0]
    with pytest.raises(ValueError, match="unknown weights"):
        registry.get_weights("vgg19")
