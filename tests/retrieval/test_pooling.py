"""Pooling functions on hand-computed feature maps; R-MAC grid and vectorised regions against a per-region loop."""

import math

import pytest
import torch
import torch.nn.functional as F

from xmr_lib.retrieval import pooling as P


def _unit(v):
    v = torch.as_tensor(v, dtype=torch.float32)
    return v / v.norm()


def _maps(*channels):
    """(1, C, H, W) from C nested lists."""
    return torch.tensor([channels], dtype=torch.float32)


# ---------------------------------------------------------------------------------------------------------------
# MAC / average / SPoC / GeM


def test_mac_and_avg_hand_computed():
    x = _maps([[1, 4], [2, 0]], [[3, 3], [3, 3]])
    assert torch.allclose(P.mac_pool(x, normalize=False), torch.tensor([[4.0, 3.0]]))
    assert torch.allclose(P.mac_pool(x), _unit([4, 3])[None], atol=1e-6)
    assert torch.allclose(P.avg_pool(x, normalize=False), torch.tensor([[1.75, 3.0]]))
    assert torch.allclose(P.avg_pool(x), _unit([1.75, 3])[None], atol=1e-6)


def test_spoc_center_prior_values():
    # 3×3: centre (1, 1), sigma = (1/3)·3/2 = 0.5 → weights exp(-d²/0.5)
    a = P.spoc_center_prior(3, 3)
    expect = torch.tensor(
        [
            [math.exp(-4), math.exp(-2), math.exp(-4)],
            [math.exp(-2), 1.0, math.exp(-2)],
            [math.exp(-4), math.exp(-2), math.exp(-4)],
        ]
    )
    assert torch.allclose(a, expect, atol=1e-7)
    # even size: centre between pixels, symmetric, max < 1
    b = P.spoc_center_prior(4, 6)
    assert torch.allclose(b, b.flip(0)) and torch.allclose(b, b.flip(1)) and b.max() < 1


def test_spoc_pool_hand_computed_and_without_prior():
    x = _maps([[0, 0, 0], [0, 2, 0], [0, 0, 0]], [[1, 0, 0], [0, 0, 0], [0, 0, 1]])
    f = P.spoc_pool(x, normalize=False)
    assert torch.allclose(f, torch.tensor([[2.0, 2 * math.exp(-4)]]), atol=1e-7)
    # the prior favours the centred channel; plain sum pooling weighs both equally and equals average pooling
    assert torch.allclose(P.spoc_pool(x, center_prior=False, normalize=False), torch.tensor([[2.0, 2.0]]))
    assert torch.allclose(P.spoc_pool(x, center_prior=False), P.avg_pool(x), atol=1e-7)


def test_gem_special_cases():
    x = _maps([[1.0, 3.0]], [[2.0, 2.0]])  # (1, 2, 1, 2)
    assert torch.allclose(P.gem_pool(x, p=1, normalize=False), torch.tensor([[2.0, 2.0]]))
    assert torch.allclose(P.gem_pool(x, p=2, normalize=False), torch.tensor([[math.sqrt(5.0), 2.0]]), atol=1e-6)
    assert torch.allclose(P.gem_pool(x, p=1), P.avg_pool(x), atol=1e-7)
    assert torch.equal(P.gem_pool(x, p=math.inf), P.mac_pool(x))
    big = P.gem_pool(x, p=200.0, normalize=False)
    assert torch.allclose(big, torch.tensor([[3.0, 2.0]]), atol=0.02)  # p → ∞ approaches MAC
    # per-channel p
    pc = P.gem_pool(x, p=torch.tensor([1.0, 2.0]), normalize=False)
    assert torch.allclose(pc, torch.tensor([[2.0, 2.0]]))
    # negative inputs are clamped at eps (post-ReLU assumption) instead of producing NaN
    neg = P.gem_pool(-torch.ones(1, 2, 2, 2), p=3.0)
    assert torch.isfinite(neg).all()


def test_gem_module_learnable_p_gets_gradient():
    torch.manual_seed(0)
    gem = P.GeM(p=3.0)
    assert isinstance(gem.p, torch.nn.Parameter)
    x = torch.rand(4, 8, 5, 5)
    y = gem(x)
    (y[:, 0]).sum().backward()
    assert gem.p.grad is not None and torch.isfinite(gem.p.grad).all() and gem.p.grad.abs().item() > 0
    fixed = P.GeM(p=3.0, learnable=False)
    assert not any(True for _ in fixed.parameters()) and torch.allclose(fixed(x), y.detach())
    mp = P.GeM(p=2.0, channels=8)
    assert mp.p.shape == (8,) and mp(x).shape == (4, 8)


def test_outputs_are_unit_norm_for_every_pooling():
    torch.manual_seed(0)
    x = torch.relu(torch.randn(3, 16, 7, 9))
    for name in P.pooling_names():
        f = P.pool(name, x)
        assert f.shape == (3, 16), name
        assert torch.allclose(f.norm(dim=1), torch.ones(3), atol=1e-5), name


# ---------------------------------------------------------------------------------------------------------------
# R-MAC


@pytest.mark.parametrize(
    "hw,counts,sizes",
    [
        ((7, 7), [1, 4, 9], [7, 4, 3]),
        ((8, 8), [1, 4, 9], [8, 5, 4]),
        ((7, 10), [2, 6, 12], [7, 4, 3]),
        ((24, 32), [2, 6, 12], [24, 16, 12]),
        ((32, 24), [2, 6, 12], [24, 16, 12]),
        ((48, 64), [2, 6, 12], [48, 32, 24]),
        ((3, 4), [2, 6, 12], [3, 2, 1]),
    ],
)
def test_rmac_region_counts_match_spec_table(hw, counts, sizes):
    r = P.rmac_regions(*hw)
    assert len(r) == sum(counts)
    got = [int((r[:, 2] == s).sum()) for s in sizes]
    assert got == counts
    assert (r[:, 2] == r[:, 3]).all()  # squares
    assert (r[:, 0] + r[:, 2] <= hw[0]).all() and (r[:, 1] + r[:, 3] <= hw[1]).all()


def test_rmac_region_coordinates_24x32():
    r = P.rmac_regions(24, 32)
    tl = [tuple(v) for v in r[:, :2].tolist()]
    assert tl[:2] == [(0, 0), (0, 8)]
    assert tl[2:8] == [(0, 0), (0, 8), (0, 16), (8, 0), (8, 8), (8, 16)]
    assert tl[8:] == [
        (0, 0),
        (0, 6),
        (0, 13),
        (0, 20),
        (6, 0),
        (6, 6),
        (6, 13),
        (6, 20),
        (12, 0),
        (12, 6),
        (12, 13),
        (12, 20),
    ]


def test_rmac_hand_computed_3x3():
    # regions of a 3×3 map: 1 of side 3, 4 of side 2, 9 of side 1
    x = _maps([[1, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 2]])
    # level 1: (1, 2)/√5; level 2: TL (1,0), BR (0,1), two empty; level 3: pixel (0,0) → (1,0), pixel (2,2) → (0,1)
    expect = _unit([1 / math.sqrt(5) + 2, 2 / math.sqrt(5) + 2])
    assert torch.allclose(P.rmac_pool(x)[0], expect, atol=1e-6)
    with_global = _unit([2 / math.sqrt(5) + 2, 4 / math.sqrt(5) + 2])
    assert torch.allclose(P.rmac_pool(x, include_global=True)[0], with_global, atol=1e-6)


def _rmac_loop(x, levels=3):
    v = torch.zeros(x.shape[:2])
    for t, le, h, w in P.rmac_regions(x.shape[2], x.shape[3], levels).tolist():
        r = F.max_pool2d(x[:, :, t : t + h, le : le + w], (h, w)).flatten(1)
        v += r / (r.norm(dim=1, keepdim=True) + 1e-6)
    return v / (v.norm(dim=1, keepdim=True) + 1e-6)


@pytest.mark.parametrize("hw", [(14, 14), (7, 10), (10, 7), (24, 32), (5, 5), (3, 4), (13, 21)])
def test_vectorised_rmac_equals_region_loop(hw):
    torch.manual_seed(1)
    x = torch.randn(4, 6, *hw)  # signed values: max must be exact anyway
    assert torch.allclose(P.rmac_pool(x), _rmac_loop(x), atol=1e-6)


def test_regional_max_arbitrary_regions_and_chunking():
    torch.manual_seed(2)
    x = torch.randn(3, 5, 9, 11)
    regions = [(0, 0, 9, 11), (1, 2, 3, 5), (4, 4, 5, 7), (0, 10, 9, 1), (2, 3, 1, 1)]
    expect = torch.stack([x[:, :, t : t + h, le : le + w].amax(dim=(2, 3)) for t, le, h, w in regions], dim=1)
    for chunk in (1 << 19, 7 * 99):  # one chunk, several chunks
        assert torch.equal(P.regional_max(x, regions, chunk_elements=chunk), expect)


def test_regional_max_gradient_reaches_argmax():
    x = torch.zeros(1, 1, 4, 4, requires_grad=True)
    with torch.no_grad():
        x[0, 0, 3, 3] = 5.0
    P.regional_max(x, [(2, 2, 2, 2)]).sum().backward()
    assert x.grad[0, 0, 3, 3] == 1 and x.grad.sum() == 1


def test_rmac_region_transform_is_applied_per_region():
    torch.manual_seed(3)
    x = torch.rand(2, 4, 6, 6)
    swap = lambda v: v.flip(1)  # a permutation of the channels
    assert torch.allclose(P.rmac_pool(x, region_transform=swap), P.rmac_pool(x).flip(1), atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# CroW


def test_crow_hand_computed():
    x = _maps([[1.0, 0.0]], [[1.0, 1.0]])  # (1, 2, 1, 2)
    s = P.crow_spatial_weight(x)  # S' = (2, 1), ||S'||₂ = √5, b = 2
    expect_s = torch.tensor([[[math.sqrt(2 / math.sqrt(5)), math.sqrt(1 / math.sqrt(5))]]])
    assert torch.allclose(s, expect_s, atol=1e-6)
    c = P.crow_channel_weight(x)  # Q = (0.5, 1) → log(1.5/0.5), log(1.5/1)
    assert torch.allclose(c, torch.tensor([[math.log(3.0), math.log(1.5)]]), atol=1e-6)
    f = P.crow_pool(x, normalize=False)
    s0, s1 = expect_s[0, 0]
    assert torch.allclose(f, torch.tensor([[math.log(3.0) * s0, math.log(1.5) * (s0 + s1)]]), atol=1e-6)


def test_crow_dead_channel_gets_zero_weight():
    x = _maps([[0.0, 0.0]], [[1.0, 2.0]])
    assert P.crow_channel_weight(x)[0, 0] == 0
    assert torch.isfinite(P.crow_pool(x)).all()


# ---------------------------------------------------------------------------------------------------------------
# multi-scale


def test_combine_scales_mean_and_power():
    a, b = _unit([1, 0])[None], _unit([0, 1])[None]
    assert torch.allclose(P.combine_scales([a, b]), _unit([1, 1])[None], atol=1e-6)
    d = torch.stack([torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]])])
    got = P.combine_scales(d, power=2.0, normalize=False)
    assert torch.allclose(got, torch.tensor([[math.sqrt(0.625), math.sqrt(0.125)]]), atol=1e-5)


def test_extract_multiscale_matches_manual_resizing():
    torch.manual_seed(4)
    imgs = torch.rand(5, 3, 16, 16)
    trunk = torch.nn.Identity()
    got = P.extract_multiscale(trunk, imgs, P.mac_pool, scales=(1.0, 0.5), batch_size=2, device="cpu")
    half = F.interpolate(imgs, scale_factor=0.5, mode="bilinear", align_corners=False)
    expect = P.combine_scales([P.mac_pool(imgs), P.mac_pool(half)])
    assert got.shape == (5, 3) and torch.allclose(got, expect, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# registry and validation


def test_registry():
    assert P.pooling_names() == ["mac", "avg", "spoc", "gem", "rmac", "crow"]
    gem = P.get_pooling("gem", p=4.0, learnable=True)
    assert isinstance(gem, P.GeM) and abs(gem.p.item() - 4.0) < 1e-7
    with pytest.raises(ValueError, match="unknown pooling 'nope'"):
        P.get_pooling("nope")


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match=r"x: expected feature maps of shape \(N, C, H, W\), got shape \(2, 3\)"):
        P.mac_pool(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="p:"):
        P.gem_pool(torch.ones(1, 3, 2, 2), p=torch.ones(2))
    with pytest.raises(ValueError, match="p: expected p > 0"):
        P.gem_pool(torch.ones(1, 3, 2, 2), p=0.0)
    with pytest.raises(ValueError, match="levels: a 1×1 map is too small"):
        P.rmac_regions(1, 1, levels=3)
    # rmac_pool keeps the levels that fit: on a 1×3 map only level 1 (two 1×1 squares... plus the extra ones)
    tiny = torch.rand(2, 4, 1, 3)
    assert torch.allclose(P.rmac_pool(tiny), P.rmac_pool(tiny, levels=1))
    with pytest.raises(ValueError, match="regions: every"):
        P.regional_max(torch.ones(1, 1, 3, 3), [(0, 0, 4, 1)])
    with pytest.raises(ValueError, match="descriptors: expected shape"):
        P.combine_scales(torch.ones(2, 3))
    with pytest.raises(ValueError, match="scales"):
        P.extract_multiscale(torch.nn.Identity(), torch.ones(1, 3, 4, 4), P.mac_pool, scales=(0.0,), device="cpu")


# ---------------------------------------------------------------------------------------------------------------
# bad p / a / b raise a ValueError naming the argument (before: tensor p = 0 gave MAC, p < 0 or NaN ran silently,
# CroW b = 0 raised ZeroDivisionError, a <= 0 or b < 0 ran silently)


@pytest.mark.parametrize(
    "p,where",
    [
        (torch.tensor(0.0), "got 0.0"),
        (torch.tensor([-1.0]), "got -1.0"),
        (torch.tensor(float("nan")), "got nan"),
        (torch.tensor([3.0, 3.0, -2.0, 3.0]), r"got -2.0 \(channel 2\)"),
        (torch.tensor([3, 0, 3, 3]), r"got 0.0 \(channel 1\)"),
    ],
)
def test_gem_tensor_p_must_be_positive(p, where):
    x = torch.rand(2, 4, 3, 3)
    with pytest.raises(ValueError, match=rf"p: expected p > 0, {where}"):
        P.gem_pool(x, p)
    g = P.GeM(3.0)
    with torch.no_grad():
        g.p.fill_(-1.0)  # e.g. a learnable p driven negative by a large lr
    with pytest.raises(ValueError, match="p: expected p > 0, got -1.0"):
        g(x)


def test_gem_tensor_p_valid_values_unchanged():
    x = torch.rand(2, 4, 3, 3)
    assert torch.equal(P.gem_pool(x, torch.tensor(3.0)), P.gem_pool(x, torch.tensor([3.0])))
    assert torch.allclose(P.gem_pool(x, torch.tensor(float("inf"))), P.mac_pool(x))  # p = inf is MAC
    assert torch.allclose(P.gem_pool(x, torch.tensor(1.0)), P.avg_pool(x.clamp(min=P.EPS)), atol=1e-6)


@pytest.mark.parametrize(
    "a,b,bad",
    [
        (2.0, 0, "b"),
        (2.0, -1.0, "b"),
        (0, 2.0, "a"),
        (-2.0, 2.0, "a"),
        (float("nan"), 2.0, "a"),
        (2.0, float("nan"), "b"),
        (2.0, "x", "b"),
    ],
)
def test_crow_a_b_must_be_positive(a, b, bad):
    x = torch.rand(2, 4, 3, 3)
    with pytest.raises(ValueError, match=rf"^{bad}: expected a number > 0"):
        P.crow_pool(x, a, b)
    with pytest.raises(ValueError, match=rf"^{bad}: expected a number > 0"):
        P.CroW(a, b)
    with pytest.raises(ValueError, match=rf"^{bad}: expected a number > 0"):
        P.crow_spatial_weight(x, a, b)
