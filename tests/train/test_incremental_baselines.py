"""The baselines the full profiles of chapters 5–7 add to xmr_lib.train.incremental: EWC with a per-sample Fisher,
ALASSO, NCE_EWC and the L2 loss of [219] — hand-computed values and short runs whose loss decreases."""

import math
import types

import numpy as np
import pytest
import torch
import torch.nn as nn

from xmr_lib.train import incremental as inc


class Linear(nn.Module):
    """``logits = W x`` and the input itself as the embedding (what the baselines read of a model)."""

    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(2, 2))

    def forward(self, x):
        return inc.Output(x, x @ self.W.T)


def _fake_trainer(model, x, y):
    sampler = types.SimpleNamespace(next_batch=lambda: np.arange(len(y)))
    return types.SimpleNamespace(
        model=model,
        sampler_for=lambda task, seed_offset=0: sampler,
        batch=lambda idx, train=False: (x[idx], y[idx]),
        n_old_for=lambda task: 0,
    )


def test_per_sample_fisher_is_the_mean_of_squared_per_image_gradients():
    # W = 0, both images x = (1, 0) with labels 0 and 1: p = (½, ½), ∂CE/∂W = (p − onehot) xᵀ = ±[[−½, 0], [½, 0]]
    x, y = torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1])
    ewc = inc.PerSampleEWC(weight=2.0, n_samples=2)
    ewc.after_task(_fake_trainer(Linear(), x, y), 0)
    theta, fisher = ewc.anchors[0]
    assert fisher["W"].flatten().tolist() == pytest.approx([0.25, 0.0, 0.25, 0.0])
    # the mini-batch estimate squares the mean gradient, which is 0 here: it misses all of it
    model = Linear()
    g = torch.autograd.grad(nn.functional.cross_entropy(model(x).logits, y), model.W)[0]
    assert float((g**2).sum()) == pytest.approx(0.0)
    # the penalty weight/2 Σ F (θ − θ*)²: W moved by 1 everywhere → 2/2 · (0.25 + 0.25) = 0.5
    moved = Linear()
    with torch.no_grad():
        moved.W.add_(1.0)
    ctx = types.SimpleNamespace(student=inc.Output(torch.zeros(1, 2), None), trainer=types.SimpleNamespace(model=moved))
    assert float(ewc.loss(ctx).detach()) == pytest.approx(0.5)


def test_per_sample_ewc_needs_images():
    with pytest.raises(ValueError, match="n_samples"):
        inc.PerSampleEWC(n_samples=0)


def test_asymmetric_penalty_overestimates_the_unobserved_side():
    theta, anchor = torch.tensor([0.5, 1.5]), torch.tensor([1.0, 1.0])
    up = inc.asymmetric_penalty(theta, anchor, torch.tensor([2.0, 2.0]), a=3.0, eps=0.0)
    assert up.tolist() == pytest.approx([2 * 0.25, 3 * 2 * 0.25])  # came from below: θ < θ* observed
    down = inc.asymmetric_penalty(theta, anchor, torch.tensor([-2.0, -2.0]), a=3.0, eps=0.0)
    assert down.tolist() == pytest.approx([3 * 2 * 0.25, 2 * 0.25])  # came from above: θ ≥ θ* observed


def test_alasso_importance_is_the_path_integral_over_the_squared_move():
    model = Linear()
    tr = types.SimpleNamespace(model=model)
    al = inc.ALASSO(weight=1.0, a=3.0, eps=1e-8)
    al.before_task(tr, 0)
    ctx = types.SimpleNamespace(student=inc.Output(torch.zeros(1, 2), None), trainer=tr)
    assert al.loss(ctx) is None  # no anchor yet
    step = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    model.W.grad = -step  # a gradient-descent step: the update opposes the gradient
    with torch.no_grad():
        model.W.add_(step)
    al.after_step(tr, ctx)
    al.after_task(tr, 0)
    # ω = −g Δθ = Δθ²; Ω = sign(Δθ) ω / Δθ² = ±1 (0 where the parameter did not move)
    assert al.omega["W"].flatten().tolist() == pytest.approx([1.0, 1.0, 0.0, -1.0], abs=1e-6)
    assert al.anchor["W"].tolist() == [[1.0, 2.0], [0.0, -1.0]]
    assert float(al.loss(ctx).detach()) == pytest.approx(0.0)  # at the anchor
    with torch.no_grad():
        model.W.sub_(0.5)
    # Ω = 1 (came from below), θ < θ*: observed → 0.25 each; Ω = 0: ε only; Ω = −1 (came from above), θ < θ*:
    # the unobserved side → a · 0.25
    assert float(al.loss(ctx).detach()) == pytest.approx(0.25 + 0.25 + 0.0 + 0.75, rel=1e-3)


def test_nce_loss_hand_value():
    e = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    # anchor 0: s_ap = 0.6, negatives 0, −1 → −log(e^{6} / (e^{6} + e^{0} + e^{−10})) at τ = 0.1
    want0 = -math.log(math.exp(6) / (math.exp(6) + 1 + math.exp(-10)))
    want1 = -math.log(math.exp(6) / (math.exp(6) + math.exp(8) + math.exp(-6)))  # negatives 0.8, −0.6
    want2 = -math.log(math.exp(0) / (math.exp(0) + math.exp(8) + math.exp(0)))  # s_ap = 0; negatives 0.8, 0
    want3 = -math.log(math.exp(0) / (math.exp(0) + math.exp(-6) + math.exp(-10)))  # s_ap = 0; negatives −0.6, −1
    got = inc.nce_loss(e, y, n_negatives=9, temperature=0.1)
    assert float(got) == pytest.approx((want0 + want1 + want2 + want3) / 4, rel=1e-5)
    one = inc.nce_loss(e, y, n_negatives=1, temperature=0.1)  # the hardest negative only
    want0_1 = -math.log(math.exp(6) / (math.exp(6) + 1))
    assert float(one) < float(got) and float(inc.nce_loss(e[:2], y[:2])) == 0.0  # no negative: 0
    assert want0_1 > 0


def _toy_data(n_classes=4, per_class=12, seed=0):
    rng = np.random.default_rng(seed)
    cols = rng.integers(30, 225, (n_classes, 3))
    x = np.clip(cols[:, None, :, None, None] + rng.normal(0, 20, (n_classes, per_class, 3, 8, 8)), 0, 255)
    return inc.LabelledImages(
        torch.from_numpy(x.reshape(-1, 3, 8, 8).astype(np.uint8)), torch.arange(n_classes).repeat_interleave(per_class)
    )


@pytest.mark.parametrize(
    "method, terms", [("alasso", {"alasso"}), ("nce_ewc", {"nce", "ewc"}), ("l2_kd", {"l2", "kd"})]
)
def test_baselines_train_two_tasks_and_lower_their_loss(method, terms):
    torch.manual_seed(0)
    data = _toy_data()
    model = inc.IncrementalNet(*inc.tiny_bn_cnn(3, 4), embed_dim=8, n_classes=2)
    cfg = inc.TrainConfig(iterations=[30, 30], P=2, K=4, lr=1e-2, device="cpu", progress=False, log_every=1)
    plugins = inc.method_plugins(method, alasso_weight=1.0, nce_ewc_weight=10.0)
    tr = inc.IncrementalTrainer(
        model, data, data, inc.one_step_protocol([0, 1, 2, 3], 2), plugins, cfg, inc.BatchTransform(), name=method
    )
    res = tr.run()
    first = [r for r in res.losses if r.get("task", 0) == 0] or res.losses[:30]
    k = max(1, len(first) // 5)
    assert np.mean([r["total"] for r in first[-k:]]) < np.mean([r["total"] for r in first[:k]])
    later = [r for r in res.losses if terms <= set(r)]
    assert later and all(math.isfinite(r["total"]) for r in later)
    assert len(res.steps) == 2


def test_method_plugins_ewc_is_per_sample_and_the_batch_fisher_stays_selectable():
    assert type(inc.method_plugins("ewc")[-1]) is inc.PerSampleEWC
    assert type(inc.method_plugins("ewc_batch")[-1]) is inc.EWC
    assert set(inc.BASELINES) <= set(inc.METHODS)
    with pytest.raises(ValueError, match="method"):
        inc.baseline_plugins("si", weight=1.0)
