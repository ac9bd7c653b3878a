"""BatchNorm-statistics inversion (thesis §7.4.2, Eqs. 7.4-7.5): hand-made values, decreasing losses, real effect."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from xmr_lib.train import inversion as inv

torch.set_num_threads(1)


def _bn_with_stats(x: torch.Tensor) -> nn.BatchNorm2d:
    """A BN layer whose running statistics are exactly the (biased) batch statistics of x."""
    bn = nn.BatchNorm2d(x.shape[1]).eval()
    with torch.no_grad():
        bn.running_mean.copy_(x.mean((0, 2, 3)))
        bn.running_var.copy_(x.var((0, 2, 3), unbiased=False))
    return bn


def test_bn_loss_is_zero_for_matching_batch_and_hand_value_otherwise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 5, 5, generator=g) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1) + 3.0
    model = nn.Sequential(_bn_with_stats(x))
    with inv.BNStatistics(model) as bn:
        model(x)
        loss = inv.bn_matching_loss(bn.means, bn.variances, bn.running_means, bn.running_variances)
        assert loss.item() == pytest.approx(0.0, abs=1e-9)
        model(x + 1.0)  # every channel mean off by 1, variances unchanged: 3 · 1² = 3
        loss = inv.bn_matching_loss(bn.means, bn.variances, bn.running_means, bn.running_variances)
        assert loss.item() == pytest.approx(3.0, rel=1e-5)
        m = x.mean((0, 2, 3), keepdim=True)
        model(2.0 * (x - m) + m)  # means kept, variances ×4: Σ_c (3 σ_c²)²
        v = x.var((0, 2, 3), unbiased=False)
        loss = inv.bn_matching_loss(bn.means, bn.variances, bn.running_means, bn.running_variances)
        assert loss.item() == pytest.approx(float(((3 * v) ** 2).sum()), rel=1e-4)
        plain = inv.bn_matching_loss(bn.means, bn.variances, bn.running_means, bn.running_variances, squared=False)
        assert plain.item() == pytest.approx(float(torch.linalg.vector_norm(3 * v)), rel=1e-4)
    assert not model[0]._forward_hooks, "hooks must be removed on exit"


def test_bn_statistics_errors():
    with pytest.raises(ValueError, match="model"):
        inv.BNStatistics(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="layers"):
        inv.BNStatistics(nn.Sequential(nn.BatchNorm2d(3)), layers=["nope"])
    with pytest.raises(ValueError, match="layer_weights"):
        t = [torch.zeros(3)]
        inv.bn_matching_loss(t, t, t, t, layer_weights=[1.0, 2.0])


def test_clustering_loss_hand_values():
    y = torch.tensor([0, 0, 1, 1])
    far = torch.tensor([[0.0, 0.0], [0.0, 0.2], [5.0, 0.0], [5.0, 0.2]])
    assert inv.clustering_loss(far, y, margin=1.0).item() == 0.0
    collapsed = torch.zeros(4, 2)  # radius 0, nearest other cluster at 0: Δ per cluster
    assert inv.clustering_loss(collapsed, y, margin=1.0).item() == pytest.approx(2.0)
    # cluster 0: mean (0, 0.1), radius 0.1, nearest other 5.0010; cluster 1 the same → max(0, 3 + 0.1 − 5.001) = 0
    assert inv.clustering_loss(far, y, margin=3.0).item() == 0.0
    assert inv.clustering_loss(far, y, margin=6.0).item() == pytest.approx(2 * (6.0 + 0.1 - np.hypot(5, 0.1)), rel=1e-5)
    with pytest.raises(ValueError, match="labels"):
        inv.clustering_loss(far, torch.zeros(4, dtype=torch.long))


def _digits_classifier():
    """A small BN CNN trained for 150 steps of 128 images on scikit-learn's 8×8 digits (≈ 2 s)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        i = torch.randint(0, len(y), (128,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(net((x[i] - 0.3) / 0.4), y[i]).backward()
        opt.step()
    net.eval()
    acc = (net((x - 0.3) / 0.4).argmax(1) == y).float().mean().item()
    assert acc > 0.85, acc
    return net


@pytest.fixture(scope="module")
def digits_net():
    return _digits_classifier()


def test_inversion_lowers_bn_loss_and_keeps_the_model(digits_net):
    before = {k: v.clone() for k, v in digits_net.state_dict().items()}
    r = inv.invert_bn(
        digits_net,
        20,
        (1, 8, 8),
        steps=60,
        lr=0.05,
        lambda_bn=1.0,
        lambda_cluster=0.0,
        normalize=((0.3,), (0.4,)),
        n_clusters=4,
        log_every=10,
        snapshot_every=20,
        progress=False,
    )
    _, bn = r.curve("bn")
    assert bn[-1] < 0.5 * bn[0], bn
    assert r.images.shape == (20, 1, 8, 8) and float(r.images.min()) >= 0 and float(r.images.max()) <= 1
    assert r.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    assert [s for s, _ in r.snapshots] == [0, 20, 40, 60] and r.images_per_second > 0
    assert r.layer_gaps["mean"].shape == (len(r.layer_steps), 2)
    assert len(r.stats["mean"]) == 2 and r.stats["mean"][0].shape == (8,)
    for k, v in digits_net.state_dict().items():  # the teacher is not changed (BN stats included)
        assert torch.equal(v, before[k]), k
    assert not any(m._forward_hooks for m in digits_net.modules())


def test_generated_images_carry_their_target_class(digits_net):
    targets = torch.arange(10).repeat(2)
    r = inv.invert_bn(
        digits_net,
        20,
        (1, 8, 8),
        labels=targets,
        steps=60,
        lr=0.1,
        lambda_bn=0.1,
        lambda_cluster=0.0,
        lambda_ce=1.0,
        lambda_tv=0.01,
        normalize=((0.3,), (0.4,)),
        seed=1,
        progress=False,
    )
    with torch.no_grad():
        pred = digits_net((r.images - 0.3) / 0.4).argmax(1)
        noise = digits_net((torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0)) - 0.3) / 0.4).argmax(1)
    acc, acc_noise = (pred == targets).float().mean().item(), (noise == targets).float().mean().item()
    assert acc >= 0.5, acc  # chance is 0.1
    assert acc > acc_noise + 0.3, (acc, acc_noise)


def test_clustering_term_separates_generated_clusters(digits_net):
    feats = lambda out: out  # logits as the embedding  # noqa: E731
    kw = dict(
        steps=40,
        lr=0.05,
        lambda_bn=0.1,
        n_clusters=4,
        normalize=((0.3,), (0.4,)),
        progress=False,
        features_fn=feats,
        log_every=40,
    )
    r = inv.invert_bn(digits_net, 16, (1, 8, 8), lambda_cluster=1.0, **kw)
    _, cl = r.curve("cluster")
    assert cl[-1] < cl[0], cl


def test_invert_bn_validates_arguments(digits_net):
    with pytest.raises(ValueError, match="image_shape"):
        inv.invert_bn(digits_net, 4, (8, 8), progress=False)
    with pytest.raises(ValueError, match="labels"):
        inv.invert_bn(digits_net, 4, (1, 8, 8), labels=[0, 1], progress=False)
    with pytest.raises(ValueError, match="lambda_bn"):
        inv.invert_bn(digits_net, 4, (1, 8, 8), lambda_bn=-1, progress=False)
    with pytest.raises(ValueError, match="lr"):
        inv.invert_bn(digits_net, 4, (1, 8, 8), lr=0, progress=False)


def test_generation_lowers_its_whole_objective(digits_net):
    """Algorithm 2, lines 12-16: the generation lowers L_g = L_BN + L_cluster (Eqs. 7.4-7.5) from the noise start
    (was the notebook claim 07.generation_lowers_its_loss, a check of our implementation)."""
    r = inv.invert_bn(
        digits_net,
        16,
        (1, 8, 8),
        steps=40,
        lr=0.05,
        lambda_bn=0.1,
        lambda_cluster=0.1,
        n_clusters=4,
        normalize=((0.3,), (0.4,)),
        log_every=10,
        progress=False,
        seed=3,
    )
    _, total = r.curve("total")
    _, bn = r.curve("bn")
    _, cl = r.curve("cluster")
    assert total[-1] < total[0], total
    assert np.allclose(np.asarray(total), np.asarray(bn) + np.asarray(cl), rtol=1e-5, atol=1e-7)


# ---- Inception score and FID (thesis Table 7.5): hand-checkable cases


def test_fid_of_identical_sets_is_zero_and_of_two_gaussians_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 4))
    assert inv.fid(a, a.copy()) == pytest.approx(0.0, abs=1e-6)
    # diagonal Gaussians: ||μ1 − μ2||² + Σ (a + b − 2 √(ab)) = 1 + 4 + (1 + 4 − 4) + (9 + 1 − 6) = 10
    mu1, mu2 = np.array([0.0, 0.0]), np.array([1.0, 2.0])
    s1, s2 = np.diag([1.0, 9.0]), np.diag([4.0, 1.0])
    assert inv.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(10.0)
    # scalars: (m1 − m2)² + (σ1 − σ2)²; from samples, close to the closed form
    x, y = rng.normal(0.0, 1.0, size=(20000, 1)), rng.normal(3.0, 2.0, size=(20000, 1))
    assert inv.fid(x, y) == pytest.approx(9.0 + 1.0, rel=0.03)
    with pytest.raises(ValueError, match="features"):
        inv.fid(a[:1], a)


def test_inception_score_is_one_for_identical_predictions_and_c_for_certain_balanced_ones():
    assert inv.inception_score(np.full((6, 3), 1 / 3))[0] == pytest.approx(1.0)
    certain = np.eye(4)[[0, 1, 2, 3, 0, 1, 2, 3]]
    assert inv.inception_score(certain) == pytest.approx((4.0, 0.0))
    assert inv.inception_score(certain, splits=2) == pytest.approx((4.0, 0.0))
    # two classes, every image 3/4 sure of its own: exp(ln 2 − H(3/4)) = 2 · (3/4)^(3/4) · (1/4)^(1/4)
    half = np.array([[0.75, 0.25], [0.25, 0.75]])
    assert inv.inception_score(half)[0] == pytest.approx(2 * 0.75**0.75 * 0.25**0.25)
    with pytest.raises(ValueError, match="probs"):
        inv.inception_score(np.array([[0.5, 0.6]]))


def test_inception_outputs_pools_features_and_softmaxes_the_head():
    from xmr_lib.encoders.backbones import FeatureTrunk

    torch.manual_seed(0)
    feats = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU())
    trunk = FeatureTrunk(feats, 5, name="toy", head=nn.Linear(5, 7), input_size=16)
    x = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    f, p = inv.inception_outputs(trunk, x, batch_size=2)
    assert f.shape == (3, 5) and p.shape == (3, 7) and np.allclose(p.sum(1), 1.0)
    f2, _ = inv.inception_outputs(trunk, x.float() / 255)
    assert np.allclose(f, f2, atol=1e-5)


def test_inception_outputs_size_overrides_the_trunks_input_size():
    from xmr_lib.encoders.backbones import FeatureTrunk

    seen = []
    feats = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    feats.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    trunk = FeatureTrunk(feats, 4, name="toy", head=nn.Linear(4, 3), input_size=16)
    inv.inception_outputs(trunk, torch.zeros(2, 3, 8, 8), size=11)
    inv.inception_outputs(trunk, torch.zeros(2, 3, 8, 8))
    assert seen == [(11, 11), (16, 16)]
    with pytest.raises(ValueError, match="size"):
        inv.inception_outputs(trunk, torch.zeros(2, 3, 8, 8), size=0)


def test_inception_v3_scores_is_and_fid_end_to_end_at_75_px():
    pytest.importorskip("torchvision")
    from xmr_lib.encoders import backbones

    torch.manual_seed(0)
    trunk = backbones.backbone("inception_v3", pretrained=False, device="cpu")  # random weights: nothing on disk
    assert (trunk.out_channels, trunk.input_size, trunk.mean) == (2048, 299, backbones.IMAGENET_MEAN)
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g)
    b = torch.rand(6, 3, 32, 32, generator=g)
    fa, pa = inv.inception_outputs(trunk, a, batch_size=4, size=75)  # its smallest input
    fb, pb = inv.inception_outputs(trunk, b, size=75)
    assert fa.shape == (6, 2048) and pa.shape == (6, 1000) and np.allclose(pa.sum(1), 1.0)
    m, s = inv.inception_score(pa, splits=2)
    assert 1.0 <= m <= 1000 and np.isfinite(s)
    assert inv.fid(fa, fa.copy()) == pytest.approx(0.0, abs=1e-6) and inv.fid(fa, fb) > 0


def test_fid_with_fewer_images_than_dimensions_is_the_exact_frechet_distance():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 20)), rng.normal(0.5, 2.0, size=(9, 20))  # both covariances singular (rank 5, 8)
    (m1, s1), (m2, s2) = inv.feature_statistics(a), inv.feature_statistics(b)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # Σ1^{1/2}; Tr (Σ1 Σ2)^{1/2} = Tr (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}
    tr = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0, None)).sum()
    exact = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr
    assert inv.fid(a, b) == pytest.approx(exact, rel=1e-6)
    assert inv.fid(a, a.copy()) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="dimension"):
        inv.fid(a, b[:, :5])


def test_inception_v3_weights_file_gives_torchvisions_logits(tmp_path):
    tv = pytest.importorskip("torchvision")
    from xmr_lib.encoders import backbones

    torch.manual_seed(0)
    ref = tv.models.inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=True).eval()
    path = tmp_path / "inception_v3.pth"
    torch.save(ref.state_dict(), path)  # the layout of inception_v3_google-0cc3c7bd.pth (aux head included)
    t = backbones.backbone("inception_v3", weights=path, sha256=backbones.sha256_file(path), device="cpu")
    x = torch.rand(2, 3, 75, 75, generator=torch.Generator().manual_seed(1))
    mean, std = torch.tensor(t.mean).view(1, 3, 1, 1), torch.tensor(t.std).view(1, 3, 1, 1)
    with torch.no_grad():
        xn = (x - mean) / std  # ImageNet-normalised, as the scorer feeds it: transform_input maps it back
        assert torch.allclose(t.logits(t(xn)), ref(xn), rtol=1e-4, atol=1e-3 * ref(xn).abs().max().item())
