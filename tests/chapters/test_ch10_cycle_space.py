"""Thesis ch. 8's cycle-consistent common space (xmr_lib.chapters.ch10.cycle_space)."""

import numpy as np
import pytest
import torch

from xmr_lib.chapters.ch10 import common_space as cs
from xmr_lib.chapters.ch10 import cycle_space as cy
from xmr_lib.chapters.ch10 import lecture


def test_cycle_loss_by_hand():
    net = cy.CycleNet(2, 1, hidden=0)
    with torch.no_grad():  # G(x) = x₀ + x₁ (2 → 1), F(y) = (y, 0) (1 → 2)
        net.g.weight.copy_(torch.tensor([[1.0, 1.0]])), net.g.bias.zero_()
        net.f.weight.copy_(torch.tensor([[1.0], [0.0]])), net.f.bias.zero_()
    x, y = torch.tensor([[1.0, 2.0]]), torch.tensor([[4.0]])
    t = {k: v.item() for k, v in cy.cycle_loss(net, x, y, w_cycle=0.5).items()}
    # G(x) = 3: (3 − 4)² / 1 = 1; F(y) = (4, 0): ((4 − 1)² + (0 − 2)²) / 2 = 6.5 → translation 7.5
    # F(G(x)) = (3, 0): ((3 − 1)² + (0 − 2)²) / 2 = 4; G(F(y)) = 4: 0 → loss 7.5 + 0.5 · 4 = 9.5
    assert t["translation"] == pytest.approx(7.5)
    assert t["forward"] == pytest.approx(4.0) and t["backward"] == pytest.approx(0.0)
    assert t["loss"] == pytest.approx(9.5)
    with pytest.raises(ValueError, match="paired"):
        cy.cycle_loss(net, x, torch.zeros(2, 1))


def test_training_lowers_the_loss_and_retrieves_above_chance():
    xi, xt, y = lecture.toy_pairs(0, n=300)
    split = cs.CrossModalSplit(xi[:200], xt[:200], y[:200], xi[200:], xt[200:], y[200:], [str(c) for c in range(10)])
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = cy.run_cycle_space(split, seed=0, hidden=32, iterations=150, batch_size=32)
    finally:
        torch.set_num_threads(n)
    h = r["history"]
    assert np.mean(h["loss"][-10:]) < 0.8 * np.mean(h["loss"][:10])
    assert np.mean(h["forward"][-10:]) < np.mean(h["forward"][:10])
    chance = lecture.chance_map(split)
    assert r["average"] > 2 * chance and 0 <= r["i2t"] <= 1 and 0 <= r["t2i"] <= 1
