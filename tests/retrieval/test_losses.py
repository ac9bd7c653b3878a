"""Contrastive (Eq. 2.16 and cirtorch forms), double-margin (Eq. 2.19) and triplet (Eq. 2.17) losses."""

import math

import pytest
import torch

from xmr_lib.retrieval.losses import contrastive_loss, double_margin_contrastive_loss, squared_distance, triplet_loss

O = torch.zeros(1, 2)
A = torch.tensor([[0.6, 0.8]])  # ||O − A||² = 1
B = torch.tensor([[0.3, 0.4]])  # ||O − B||² = 0.25, distance 0.5


def test_squared_distance_eq_2_14():
    assert torch.allclose(squared_distance(O, A), torch.tensor([1.0]))
    assert torch.allclose(squared_distance(O, B), torch.tensor([0.25]))


def test_contrastive_thesis_form_hand_computed():
    assert torch.allclose(contrastive_loss(O, A, [1], form="thesis"), torch.tensor(0.5))  # ½·D
    assert torch.allclose(contrastive_loss(O, A, [0], margin=0.7, form="thesis"), torch.tensor(0.0))
    # non-matching pair inside the margin: ½·(m − D) = ½·(0.7 − 0.25), margin on the SQUARED distance, no square
    assert torch.allclose(contrastive_loss(O, B, [0], margin=0.7, form="thesis"), torch.tensor(0.225))


def test_contrastive_cirtorch_form_hand_computed():
    # ½·d² for a match; ½·max(0, m − d)² with the plain distance d = 0.5 for a non-match
    assert torch.allclose(contrastive_loss(O, B, [1], form="cirtorch"), torch.tensor(0.125), atol=1e-5)
    assert torch.allclose(contrastive_loss(O, B, [0], margin=0.7, form="cirtorch"), torch.tensor(0.02), atol=1e-5)
    # where the margin sits: d = 0.5 < 0.7 is inside cirtorch's margin, D = 0.25 > 0.2 outside a thesis margin 0.2
    assert contrastive_loss(O, B, [0], margin=0.2, form="thesis") == 0


def test_contrastive_reductions():
    x1 = torch.cat([O, O])
    x2 = torch.cat([A, B])
    per = contrastive_loss(x1, x2, [1, 0], form="thesis", reduction="none")
    assert torch.allclose(per, torch.tensor([0.5, 0.225]))
    assert torch.allclose(contrastive_loss(x1, x2, [1, 0], form="thesis", reduction="sum"), per.sum())
    assert torch.allclose(contrastive_loss(x1, x2, torch.tensor([1, 0]), form="thesis"), per.mean())


def test_double_margin_eq_2_19():
    # match at D = 1 with m1 = 0.4: ½·(1 − 0.4); non-match at D = 0.25 with m2 = 0.7: ½·0.45
    assert torch.allclose(double_margin_contrastive_loss(O, A, [1], 0.4, 0.7), torch.tensor(0.3))
    assert torch.allclose(double_margin_contrastive_loss(O, B, [0], 0.4, 0.7), torch.tensor(0.225))
    assert double_margin_contrastive_loss(O, B, [1], 0.4, 0.7) == 0  # a close match is not pulled further


def test_triplet_eq_2_17():
    far, near = torch.tensor([[0.6, 0.8]]), torch.tensor([[0.3, 0.0]])  # D(a,n) = 1 and 0.09
    assert triplet_loss(O, B, far, margin=0.1) == 0  # 0.1 + 0.25 − 1 < 0
    assert torch.allclose(triplet_loss(O, B, near, margin=0.1), torch.tensor(0.26))
    both = torch.stack([far, near], dim=1)  # (1, 2, 2): two negatives
    assert torch.allclose(triplet_loss(O, B, both, 0.1, reduction="none"), torch.tensor([[0.0, 0.26]]))
    assert torch.allclose(triplet_loss(O, B, both, 0.1, reduction="sum"), torch.tensor(0.26))


def test_gradients_flow_and_loss_decreases_on_a_tiny_problem():
    torch.manual_seed(0)
    centres = torch.randn(4, 6) * 0.5
    x = centres.repeat_interleave(8, 0) + 0.8 * torch.randn(32, 6)
    y = torch.arange(4).repeat_interleave(8)
    net = torch.nn.Linear(6, 4)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    i, j = torch.randint(0, 32, (2, 256))

    def step():
        f = torch.nn.functional.normalize(net(x), dim=1)
        return contrastive_loss(f[i], f[j], (y[i] == y[j]).long(), margin=0.7, form="cirtorch")

    first = step()
    first.backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0
    for _ in range(60):
        opt.zero_grad()
        loss = step()
        loss.backward()
        opt.step()
    assert step().item() < 0.8 * first.item()

    # the same with the triplet loss
    net2 = torch.nn.Linear(6, 4)
    opt2 = torch.optim.SGD(net2.parameters(), lr=0.1)
    a = torch.arange(32)
    p = (a // 8) * 8 + (a + 1) % 8
    n = (a + 8) % 32

    def tstep():
        f = torch.nn.functional.normalize(net2(x), dim=1)
        return triplet_loss(f[a], f[p], f[n], margin=0.5)

    t0 = tstep().item()
    for _ in range(60):
        opt2.zero_grad()
        loss = tstep()
        loss.backward()
        opt2.step()
    assert tstep().item() < 0.8 * t0


def test_validation_errors():
    with pytest.raises(ValueError, match=r"x1, x2: shapes differ: \(1, 2\) vs \(2, 2\)"):
        contrastive_loss(O, torch.zeros(2, 2), [1])
    with pytest.raises(ValueError, match="similar: labels must be 0 or 1"):
        contrastive_loss(O, A, [2])
    with pytest.raises(ValueError, match=r"similar: expected 1 labels"):
        contrastive_loss(O, A, [1, 0])
    with pytest.raises(ValueError, match="form"):
        contrastive_loss(O, A, [1], form="other")
    with pytest.raises(ValueError, match="reduction"):
        contrastive_loss(O, A, [1], reduction="max")
    with pytest.raises(ValueError, match="negative: expected shape"):
        triplet_loss(O, A, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="margin"):
        contrastive_loss(O, A, [1], margin=-1.0)
    assert math.isfinite(float(contrastive_loss(O, O, [1], form="cirtorch")))
