"""Tests for xmr_lib.train.batched: R runs trained as one stacked network give each run the numbers it gets alone."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from xmr_lib.train import batched as B


def _mlp():
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def _data(n=120):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x, y


def _max_param_diff(a: nn.Module, b: nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_batched_classifiers_equal_one_by_one(optimizer):
    x, y = _data()
    kw = dict(epochs=3, batch_size=16, lr=1e-2, optimizer=optimizer, device="cpu")
    mb, ib = B.train_classifier_runs(_mlp, x, y, [0, 1, 2], **kw)
    ms, is_ = B.train_classifier_runs(_mlp, x, y, [0, 1, 2], batched=False, **kw)
    assert len(mb) == len(ms) == 3
    for a, b, la, lb in zip(mb, ms, ib["loss"], is_["loss"]):
        assert _max_param_diff(a, b) <= 1e-5
        assert la == pytest.approx(lb, abs=1e-5)
        acc_a = (a(x).argmax(1) == y).float().mean().item()
        acc_b = (b(x).argmax(1) == y).float().mean().item()
        assert acc_a == pytest.approx(acc_b, abs=1e-5)
    # the runs differ from each other (own init, own batch order) and they learn
    assert _max_param_diff(mb[0], mb[1]) > 1e-3
    assert all(h[-1] < h[0] for h in ib["loss"])


def test_linear_matches_f_linear_forward_and_backward():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 7, generator=g, requires_grad=True)
    w = torch.randn(3, 4, 7, generator=g, requires_grad=True)
    b = torch.randn(3, 4, generator=g, requires_grad=True)
    gout = torch.randn(3, 5, 4, generator=g)
    out = B.linear(x, w, b)
    (out * gout).sum().backward()
    assert w.grad.is_contiguous()  # formed in the weight's layout (no transposed copy)
    for r in range(3):
        xr = x[r].detach().clone().requires_grad_()
        wr, br = w[r].detach().clone().requires_grad_(), b[r].detach().clone().requires_grad_()
        o = F.linear(xr, wr, br)
        (o * gout[r]).sum().backward()
        assert torch.allclose(o, out[r], atol=1e-6)  # bit for bit at the chapter's sizes; to rounding in general
        assert torch.allclose(wr.grad, w.grad[r], atol=1e-6) and torch.allclose(br.grad, b.grad[r], atol=1e-6)
        assert torch.allclose(xr.grad, x.grad[r], atol=1e-6)
    B.linear(x, w).sum().backward()  # no bias
    with pytest.raises(ValueError, match="x, weight"):
        B.linear(x[0].detach(), w, b)


def test_clip_grad_norm_per_run_clips_each_run_by_its_own_norm():
    p = torch.zeros(2, 3, requires_grad=True)
    q = torch.zeros(2, 2, requires_grad=True)
    p.grad = torch.tensor([[3.0, 0.0, 0.0], [0.3, 0.0, 0.0]])
    q.grad = torch.tensor([[0.0, 4.0], [0.0, 0.4]])
    norms = B.clip_grad_norm_per_run([p, q], max_norm=1.0)
    assert norms.tolist() == pytest.approx([5.0, 0.5])  # run 0: sqrt(3² + 4²); run 1: a tenth of it
    assert p.grad[0, 0].item() == pytest.approx(0.6, rel=1e-5) and q.grad[0, 1].item() == pytest.approx(0.8, rel=1e-5)
    assert p.grad[1, 0].item() == pytest.approx(0.3) and q.grad[1, 1].item() == pytest.approx(0.4)  # untouched


def test_run_rng_dropout_replays_each_runs_own_masks():
    states = []
    for s in (3, 4):
        torch.manual_seed(s)
        states.append(torch.get_rng_state())
    x = torch.randn(2, 8, 5)
    before = torch.get_rng_state()
    got = B.RunRNG(states).dropout(x, 0.5)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's stream is left alone
    for r, s in enumerate((3, 4)):
        torch.manual_seed(s)
        assert torch.equal(got[r], F.dropout(x[r], 0.5, True))
    assert torch.equal(B.RunRNG(states).dropout(x, 0.5, training=False), x)


def test_stack_unstack_take_rows_and_vmap_forward():
    torch.manual_seed(0)
    mods = [nn.Sequential(nn.Linear(4, 3), nn.Tanh()) for _ in range(2)]
    P = B.stack_params(mods)
    assert P["0.weight"].shape == (2, 3, 4) and P["0.weight"].requires_grad
    x = torch.randn(2, 5, 4)
    want = torch.stack([m(x[r]) for r, m in enumerate(mods)])
    got = B.apply_module(mods[0], P, "", x, B.RunRNG([torch.get_rng_state()] * 2), True)
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(B.vmap_forward(mods[0], P, x), want, atol=1e-6)
    with torch.no_grad():
        P["0.bias"].add_(1.0)
    B.unstack_params(P, mods)
    assert torch.equal(mods[1][0].bias, P["0.bias"][1])
    t = torch.arange(12.0).view(2, 3, 2)
    assert B.take_rows(t, torch.tensor([[2, 0], [1, 1]])).tolist() == [[[4, 5], [0, 1]], [[8, 9], [8, 9]]]
    with pytest.raises(ValueError, match=r"modules\[1\]"):
        B.stack_params([nn.Linear(4, 3), nn.Linear(4, 2)])
    with pytest.raises(ValueError, match="Conv1d has no batched form"):
        B.apply_module(nn.Conv1d(1, 1, 1), {}, "", x, B.RunRNG([torch.get_rng_state()]), True)


def test_train_classifier_runs_refuses_bad_input_by_name():
    x, y = _data(20)
    with pytest.raises(ValueError, match="y: expected shape"):
        B.train_classifier_runs(_mlp, x, y[:5], [0], device="cpu")
    with pytest.raises(ValueError, match="optimizer"):
        B.train_classifier_runs(_mlp, x, y, [0], optimizer="lbfgs", device="cpu")
    with pytest.raises(ValueError, match="seeds"):
        B.train_classifier_runs(_mlp, x, y, [], device="cpu")


def test_batched_training_benchmark_quick_runs_and_agrees():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.batched_training", "--quick", "--runs", "2", "--device", "cpu"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [ln for ln in out.stdout.splitlines() if "runs/s" in ln]
    # mlp, hashing autograd and hashing closed form (each batched vs its own one-by-one: held to 1e-5), and
    # closed-form batched vs autograd one-by-one (reported only: not the same arithmetic)
    assert len(lines) == 4 and all("identical to 1e-5" in ln for ln in lines[:3])
    assert "autograd" in lines[1] and "closed form" in lines[2] and "reported only" in lines[3]
    assert all(float(ln.split("ratio")[1].split("×")[0]) > 0 for ln in lines)
