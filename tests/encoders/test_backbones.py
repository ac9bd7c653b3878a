"""xmr_lib.encoders.backbones: the offline EfficientNet-Lite0, preprocessing, feature trunks, weight files, small nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from xmr_lib.encoders import backbones as M


@pytest.fixture(scope="module")
def lite0():
    return M.efficientnet_lite0(pretrained=True)


@pytest.fixture(scope="module")
def photos():
    skd = pytest.importorskip("skimage.data")
    return {"chelsea": skd.chelsea(), "coffee": skd.coffee()}


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """Empty weight folders everywhere xmr looks."""
    for var in ("XMR_WEIGHTS_DIR", "XMR_DATA_DIR", "TORCH_HOME"):
        (tmp_path / var).mkdir()
        monkeypatch.setenv(var, str(tmp_path / var))
    return tmp_path / "XMR_WEIGHTS_DIR"


def test_imagenet_classes_order_and_unpacking():
    cls = M.imagenet_classes()
    assert len(cls) == 1000 and [c.index for c in cls] == list(range(1000))
    assert len({c.wnid for c in cls}) == 1000
    i, wnid, name = cls[285]
    assert (i, wnid, name) == (285, "n02124075", "Egyptian cat")
    assert cls[0].label == "tench, Tinca tinca" and cls[0].name == "tench"
    assert cls[967].name == "espresso" and cls[968].name == "cup"
    assert all(c.wnid[0] == "n" and len(c.wnid) == 9 for c in cls)


def test_lite0_classifies_real_photos(lite0, photos):
    x = M.preprocess([photos["chelsea"], photos["coffee"]])
    assert x.shape == (2, 3, 224, 224) and x.dtype == torch.float32
    with torch.no_grad():
        p = lite0(x).softmax(1)
    top1 = p.argmax(1).tolist()
    # measured: chelsea -> 285 Egyptian cat (0.39), then tiger cat, tabby; coffee -> 967 espresso (0.94)
    assert top1[0] in {281, 282, 283, 284, 285}  # a domestic-cat class
    assert set(p[0].topk(3).indices.tolist()) <= {281, 282, 283, 284, 285}
    assert top1[1] in {967, 968}  # espresso / cup
    assert p[1, 967] > 0.5


def test_trunk_shapes_head_and_classifier_weights(lite0, photos):
    trunk = M.backbone("efficientnet_lite0", device="cpu")
    assert isinstance(trunk, M.FeatureTrunk) and trunk.out_channels == 1280 and trunk.device.type == "cpu"
    x = trunk.preprocess([photos["chelsea"], photos["coffee"]])
    with torch.no_grad():
        maps = trunk(x)
        logits = lite0(x)
    assert maps.shape == (2, 1280, 7, 7)
    assert torch.allclose(trunk.logits(maps), logits, atol=1e-4)  # head(GAP(maps)) is the network's forward
    w, b = M.classifier_weights(lite0)
    assert w.shape == (1000, 1280) and b.shape == (1000,) and w.dtype == np.float32
    assert np.allclose(w, lite0._fc.weight.detach().numpy()) and np.allclose(b, lite0._fc.bias.detach().numpy())
    w2, _ = M.classifier_weights(trunk)
    assert np.array_equal(w, w2)
    # logits by hand from the weights: GAP(maps) @ W.T + b
    by_hand = maps.mean((2, 3)).numpy() @ w.T + b
    assert np.allclose(by_hand, logits.numpy(), atol=1e-3)


def test_random_lite0_differs_from_pretrained(lite0):
    r = M.efficientnet_lite0(pretrained=False)
    assert not torch.equal(r._fc.weight, lite0._fc.weight)


def test_preprocess_normalisation_by_hand():
    white = np.full((50, 60, 3), 255, np.uint8)
    black = np.zeros((50, 60), np.uint8)  # grey
    x = M.preprocess([white, black])
    assert torch.allclose(x[0], torch.full((3, 224, 224), (1 - 0.498) / 0.502))
    assert torch.allclose(x[1], torch.full((3, 224, 224), -0.498 / 0.502))
    y = M.preprocess(white, mean=M.IMAGENET_MEAN, std=M.IMAGENET_STD)
    assert y.shape == (1, 3, 224, 224)
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([(1 - m) / s for m, s in zip(M.IMAGENET_MEAN, M.IMAGENET_STD)]))


def test_preprocess_accepts_small_grey_batches_pil_and_floats():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)  # Fashion-MNIST-like
    x = M.preprocess(batch)
    assert x.shape == (5, 3, 224, 224)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])  # grey -> RGB
    assert torch.allclose(M.preprocess(batch[:, :, :, None]), x)  # (B, H, W, 1)
    assert torch.allclose(M.preprocess(batch.astype(np.float32) / 255.0), x)  # floats in [0, 1]
    assert torch.allclose(M.preprocess([Image.fromarray(b) for b in batch]), x)
    one = M.imagenet_transform()(batch[0])
    assert one.shape == (3, 224, 224) and torch.allclose(one, x[0])


def test_preprocess_resize_then_centre_crop_geometry():
    # 100 x 200 (H x W): left half black, right half white. Shorter side -> 224 gives 224 x 448; the centre crop
    # keeps columns 112..335, so the black/white edge falls in the middle of the crop.
    im = np.zeros((100, 200, 3), np.uint8)
    im[:, 100:] = 255
    x = M.preprocess(im)[0, 0]
    lo, hi = -0.498 / 0.502, (1 - 0.498) / 0.502
    assert torch.allclose(x[:, :100], torch.tensor(lo), atol=1e-6)
    assert torch.allclose(x[:, 124:], torch.tensor(hi), atol=1e-6)
    z = M.preprocess(im, size=32, resize=64)[0, 0]  # 64 x 128 then centre 32 x 32: still split in half
    assert torch.allclose(z[:, :14], torch.tensor(lo), atol=1e-6) and torch.allclose(
        z[:, 18:], torch.tensor(hi), atol=1e-6
    )


def test_preprocess_bad_input():
    with pytest.raises(ValueError, match="images"):
        M.preprocess(np.zeros((2, 3, 4, 5, 6), np.uint8))
    with pytest.raises(ValueError, match="range"):
        M.preprocess(np.full((8, 8), -1.0))
    with pytest.raises(ValueError, match="resize"):
        M.preprocess(np.zeros((8, 8), np.uint8), size=224, resize=100)
    with pytest.raises(ValueError, match="one image"):
        M.imagenet_transform()(np.zeros((2, 8, 8), np.uint8))


# ------------------------------------------------------------------- the one preprocessing path: its variants


def test_decode_image_files_pil_and_arrays(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    rgb = M.decode_image(tmp_path / "g.png")
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8 and (rgb == grey[..., None]).all()
    assert np.array_equal(M.decode_image(str(tmp_path / "g.png")), rgb)
    assert np.array_equal(M.decode_image(Image.fromarray(grey)), rgb)
    assert np.array_equal(M.decode_image(grey), rgb) and np.array_equal(M.decode_image(grey[..., None]), rgb)
    rgba = np.dstack([rgb, np.zeros((6, 8), np.uint8)])
    assert np.array_equal(M.decode_image(rgba), rgb)  # alpha dropped, not composited
    assert np.array_equal(M.decode_image(rgb / 255.0), rgb)  # floats in [0, 1]
    with pytest.raises(ValueError, match="image"):
        M.decode_image(np.zeros((4, 4, 2), np.uint8))


def test_resize_image_crop_rounding_torchvision_vs_floor():
    # 8 x 11 image whose pixel value is 10 x its column; the shorter side is already 8, so only the crop differs:
    # torchvision starts at round(3 / 2) = 2, "floor" at 3 // 2 = 1
    a = np.repeat((np.arange(11, dtype=np.uint8) * 10)[None, :, None], 8, axis=0).repeat(3, axis=2)
    tv = M.resize_image(a, 8)
    fl = M.resize_image(a, 8, rounding="floor")
    assert tv.shape == fl.shape == (8, 8, 3)
    assert tv[0, :, 0].tolist() == [20, 30, 40, 50, 60, 70, 80, 90]
    assert fl[0, :, 0].tolist() == [10, 20, 30, 40, 50, 60, 70, 80]
    # the longer side: 10 x 17 to a shorter side of 8 is int(13.6) = 13 wide (torchvision) or round(13.6) = 14
    rng = np.random.default_rng(0)
    b = rng.integers(0, 256, (10, 17, 3), dtype=np.uint8)
    assert not np.array_equal(M.resize_image(b, 8), M.resize_image(b, 8, rounding="floor"))


def test_resize_image_square_and_squash():
    a = np.repeat((np.arange(12, dtype=np.uint8) * 10)[None, :, None], 8, axis=0).repeat(3, axis=2)
    assert np.array_equal(M.resize_image(a, 8, fit="square", rounding="floor"), a[:, 2:10])  # centre square, as is
    grey = np.full((8, 16), 77, np.uint8)
    for interpolation in M.INTERPOLATIONS:
        s = M.resize_image(grey, 8, fit="squash", interpolation=interpolation)
        assert s.shape == (8, 8, 3) and (s == 77).all()
    with pytest.raises(ValueError, match="fit"):
        M.resize_image(grey, 8, fit="stretch")
    with pytest.raises(ValueError, match="interpolation"):
        M.resize_image(grey, 8, interpolation="nearest")


def test_resize_tensor_and_normalise():
    x = torch.full((2, 3, 20, 30), 0.25)
    y = M.resize_tensor(x, 10)
    assert y.shape == (2, 3, 10, 10) and torch.allclose(y, torch.tensor(0.25))
    assert M.resize_tensor(y, 10) is y  # already there: untouched
    with pytest.raises(ValueError, match="float"):
        M.resize_tensor(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), 8)
    u = np.full((1, 4, 4, 3), 255, np.uint8)
    n = M.normalise(u, M.IMAGENET_MEAN, M.IMAGENET_STD)
    assert n.shape == (1, 3, 4, 4) and torch.equal(
        n, M.normalise(torch.ones(1, 3, 4, 4), M.IMAGENET_MEAN, M.IMAGENET_STD)
    )
    assert n[0, 0, 0, 0].item() == pytest.approx((1 - 0.485) / 0.229)


def test_preprocess_torch_backend_squashes_float_pixels():
    import torch.nn.functional as F

    grey = np.full((28, 28), 255, np.uint8)
    colour = np.zeros((64, 64, 3), np.uint8)
    x = M.preprocess([grey, colour], 32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), fit="squash", backend="torch")
    assert tuple(x.shape) == (2, 3, 32, 32)
    assert float(x[0].min()) == pytest.approx(1.0) and float(x[1].max()) == pytest.approx(-1.0)
    # by hand: [0, 1] floats, torch's antialiased bilinear filter, no rounding to uint8 in between
    a = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    t = F.interpolate(
        torch.from_numpy(a).permute(2, 0, 1).float().div(255.0)[None],
        size=(24, 24),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    m, s = torch.tensor(M.LITE0_MEAN).view(1, 3, 1, 1), torch.tensor(M.LITE0_STD).view(1, 3, 1, 1)
    assert torch.equal(M.preprocess(a, 24, fit="squash", backend="torch"), (t - m) / s)
    with pytest.raises(ValueError, match="images"):
        M.preprocess([np.zeros((4, 4, 2), np.uint8)], 32, fit="squash", backend="torch")
    with pytest.raises(ValueError, match="backend"):
        M.preprocess(a, 24, backend="torch")  # the torch backend only squashes


def test_preprocess_reads_files(tmp_path):
    a = np.random.default_rng(1).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    assert torch.equal(M.preprocess([tmp_path / "a.png"], 16), M.preprocess(a, 16))
    assert torch.equal(
        M.preprocess(str(tmp_path / "a.png"), 16, resize=18, rounding="floor"),
        M.preprocess(a, 16, resize=18, rounding="floor"),
    )


def test_extract_feature_maps_batches_reduce_and_mode(photos):
    trunk = M.backbone("efficientnet_lite0", device="cpu")
    ims = [photos["chelsea"], photos["coffee"][::2, ::2]]
    a = M.extract_feature_maps(trunk, ims, batch_size=1, device="cpu", progress=False)
    assert a.shape == (2, 1280, 7, 7)
    trunk.train()
    g = M.extract_feature_maps(trunk, ims, batch_size=2, device="cpu", reduce=lambda m: m.amax((2, 3)), progress=False)
    assert trunk.training  # mode restored (and eval mode used inside)
    assert g.shape == (2, 1280) and torch.allclose(g, a.amax((2, 3)), atol=1e-4)
    pre = trunk.preprocess(ims)  # an already preprocessed float batch
    c = M.extract_feature_maps(trunk.features, pre, batch_size=2, device="cpu", progress=False)
    assert torch.allclose(c, a, atol=1e-4)


def test_torchvision_trunks_random_shapes():
    torch.manual_seed(0)
    r = M.backbone("resnet18", pretrained=False, device="cpu")
    v = M.backbone("vgg16", pretrained=False, device="cpu")
    x = torch.zeros(1, 3, 64, 64)  # stride 32 for ResNet, 16 for VGG16[:-1]
    with torch.no_grad():
        assert r(x).shape == (1, 512, 2, 2) and r.out_channels == 512
        assert v(x).shape == (1, 512, 4, 4) and v.out_channels == 512
    assert r.mean == M.IMAGENET_MEAN
    with pytest.raises(ValueError, match="name"):
        M.backbone("resnet7")


@pytest.mark.parametrize(
    "name,channels,side,head",
    [("alexnet", 256, 3, False), ("googlenet", 1024, 2, True), ("mobilenet_v2", 1280, 2, True)],
)
def test_paper_backbones_random_shapes_and_head(name, channels, side, head):
    torch.manual_seed(0)
    t = M.backbone(name, pretrained=False, device="cpu")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        maps = t(x)
        assert maps.shape == (2, channels, side, side) and t.out_channels == channels
        if head:  # head(GAP(maps)) is the network's own forward
            assert torch.allclose(t.logits(maps), t.net(x), atol=1e-5)
    assert (t.head is not None) == head and isinstance(t.features, torch.nn.Sequential)


def test_googlenet_weights_file_keeps_torchvisions_input_transform(tmp_path):
    """torchvision builds GoogLeNet for its ImageNet weights with transform_input=True and aux heads that are
    dropped after loading: a file saved that way loads strictly, and the trunk sees the transformed input."""
    import torchvision

    torch.manual_seed(2)
    ref = torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=True, init_weights=True).eval()
    path = tmp_path / "googlenet.pth"
    torch.save(ref.state_dict(), path)
    t = M.backbone("googlenet", weights=path, sha256=M.sha256_file(path), device="cpu")
    assert t.net.aux1 is None and t.net.transform_input
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(t.logits(t(x)), ref(x), atol=1e-5)
        first = t.features[:2](x)  # the input transform is part of the trunk: conv1 sees the transformed pixels
        assert torch.allclose(first, ref.conv1(ref._transform_input(x)), atol=1e-6)
        assert not torch.allclose(first, ref.conv1(x), atol=1e-3)


def test_missing_pretrained_weights_says_what_to_put_where(no_weights):
    with pytest.raises(FileNotFoundError) as e:
        M.backbone("resnet18", pretrained=True, device="cpu")
    msg = str(e.value)
    assert "resnet18-f37072fd.pth" in msg and str(no_weights) in msg
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg and "never downloads" in msg
    assert "python -m data_scripts fetch resnet18" in msg
    with pytest.raises(FileNotFoundError, match="neither a file nor a folder"):
        M.backbone("resnet18", weights=no_weights / "nope.pth", device="cpu")


def test_weights_file_checked_by_sha256(no_weights, tmp_path, capsys):
    torch.manual_seed(1)
    ref = M.backbone("resnet18", pretrained=False, device="cpu")
    path = tmp_path / "my_resnet18.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in ref.net.state_dict().items()}}, path)
    digest = M.sha256_file(path)
    t = M.backbone("resnet18", weights=path, sha256=digest, device="cpu")
    assert digest in capsys.readouterr().out  # the sha256 is always printed
    assert torch.equal(t.net.conv1.weight, ref.net.conv1.weight)
    with pytest.raises(ValueError, match="sha256"):
        M.backbone("resnet18", weights=path, sha256="0" * 64, device="cpu")
    # a file with the standard name but other content: its name's sha256 prefix does not match
    (no_weights / "resnet18-f37072fd.pth").write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="f37072fd"):
        M.backbone("resnet18", pretrained=True, device="cpu")


def test_small_convnet_shapes_bn_and_learning():
    torch.manual_seed(0)
    net = M.SmallConvNet(in_ch=1, emb_dim=16, width=8, n_classes=2)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 6
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in M.SmallConvNet(1, 16, 8, with_bn=False).modules())
    assert net.feature_maps(torch.zeros(2, 1, 28, 28)).shape == (2, 32, 3, 3)
    assert net.feature_maps(torch.zeros(2, 1, 64, 64)).shape == (2, 32, 8, 8)
    assert net.embed(torch.zeros(2, 1, 28, 28)).shape == (2, 16) and net(torch.zeros(2, 1, 28, 28)).shape == (2, 2)
    assert M.SmallConvNet(3, 10, 4)(torch.zeros(1, 3, 64, 64)).shape == (1, 10)
    with pytest.raises(ValueError, match="x"):
        net(torch.zeros(2, 3, 28, 28))
    # dark vs bright images with noise: a few Adam steps separate them
    g = torch.Generator().manual_seed(0)
    y = torch.arange(16) % 2
    x = y.view(-1, 1, 1, 1).float() * 0.6 + 0.2 + 0.1 * torch.randn(16, 1, 28, 28, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert (net(x).argmax(1) == y).all()  # train mode: batch statistics
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:  # running stats := this batch's stats, then eval
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one pass gives batch stats
    with torch.no_grad():
        net(x)
    net.eval()
    assert (net(x).argmax(1) == y).all()


def test_mlp_is_linear_layers_by_hand():
    torch.manual_seed(0)
    lin = M.MLP([3, 2])
    x = torch.randn(4, 3)
    layer = lin.net[0]
    assert torch.allclose(lin(x), x @ layer.weight.T + layer.bias)
    deep = M.MLP([3, 8, 8, 2], batch_norm=True, dropout=0.2, activation="gelu")
    assert deep(x).shape == (4, 2)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in deep.modules()) == 2
    with pytest.raises(ValueError, match="dims"):
        M.MLP([3])
    with pytest.raises(ValueError, match="activation"):
        M.MLP([3, 2], activation="swishy")
    with pytest.raises(ValueError, match="x"):
        lin(torch.zeros(4, 5))
