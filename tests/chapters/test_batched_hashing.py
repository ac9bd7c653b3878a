"""Tests for xmr_lib.chapters.ch03.batched_hashing: R seeds of the chapter's hashing model trained as one batched
network give each seed the model, history and codes that the one-by-one training gives (R = 3)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hashing_toy import SMALL_NET, toy_pairs

from xmr_lib.chapters.ch03 import batched_hashing as BH
from xmr_lib.chapters.ch03 import hashing as H


def _toy(n=96):
    return toy_pairs(n)


SMALL = H.HashingConfig(**SMALL_NET, epochs=3)
CONFIGS = {
    "full": SMALL,
    "baseline1": H.ablation_config(SMALL, "Baseline1"),
    "in_batch": replace(SMALL, pair_scope="in_batch"),
    "literal_shared_mean": replace(SMALL, entropy_mode="literal", quant_target="shared", loss_reduction="mean"),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_batched_runs_equal_one_by_one_runs(name):
    x, y, lab = _toy()
    cfg, seeds = CONFIGS[name], [0, 1, 2]
    batched = BH.train_cross_modal_hashing_batched(x, y, lab, cfg, seeds, device="cpu", probe_every=2)
    assert len(batched) == 3
    for s, mb in zip(seeds, batched):
        ms = H.train_cross_modal_hashing(x, y, lab, cfg, seed=s, device="cpu", progress=False, probe_every=2)
        for (n, p), (_, q) in zip(ms.named_parameters(), mb.named_parameters()):
            assert (p - q).abs().max().item() <= 1e-5, n
        for mod, inp in (("image", x), ("text", y)):
            assert np.array_equal(ms.encode(inp, mod), mb.encode(inp, mod))
            assert np.allclose(ms.encode(inp, mod, what="soft"), mb.encode(inp, mod, what="soft"), atol=1e-5)
        assert len(mb.history) == cfg.epochs and list(ms.history[-1]) == list(mb.history[-1])
        for hs, hb in zip(ms.history, mb.history):
            for k, v in hs.items():
                if k not in ("seconds", "pairs_per_s"):
                    assert hb[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
    # three different runs, each of which learnt
    assert not np.array_equal(batched[0].encode(x, "image"), batched[1].encode(x, "image"))
    assert all(m.history[-1]["image/pairs"] < m.history[0]["image/pairs"] for m in batched)


def test_batched_training_refuses_bad_input_by_name():
    x, y, lab = _toy(20)
    with pytest.raises(ValueError, match="seeds"):
        BH.train_cross_modal_hashing_batched(x, y, lab, SMALL, [], device="cpu")
    with pytest.raises(ValueError, match="text_y"):
        BH.train_cross_modal_hashing_batched(x, y[:5], lab, SMALL, [0], device="cpu")


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("with_ml", [True, False])
def test_fused_pair_terms_match_autograd_of_the_separate_terms(sign, with_ml):
    g = torch.Generator().manual_seed(0)
    R, n, m, d = 3, 7, 11, 5
    u = torch.randn(R, n, d, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(R, m, d, generator=g, dtype=torch.float64, requires_grad=True)
    s = (torch.rand(R, n, m, generator=g) > 0.5).double()
    w = torch.rand(R, n, m, generator=g, dtype=torch.float64) if with_ml else None
    pairs, ml = BH._PairTerms.apply(u, v, s, w, sign)
    # the separate terms as the one-by-one loss writes them (Eqs. 3.3–3.5), per run
    theta = 0.5 * torch.bmm(u, v.transpose(1, 2))
    ref_pairs = sign * (F.softplus(theta) - s * theta).flatten(1).sum(1)
    assert torch.equal(pairs, ref_pairs)  # forward: the same numbers
    wts = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)  # each run's own upstream gradient
    loss, ref = (pairs * wts).sum(), (ref_pairs * wts).sum()
    if with_ml:
        ref_ml = (torch.sigmoid(torch.bmm(u, v.transpose(1, 2))) - w).pow(2).flatten(1).sum(1)
        assert torch.equal(ml, ref_ml)
        loss, ref = loss + 3 * ml.sum(), ref + 3 * ref_ml.sum()
    else:
        assert torch.equal(ml, torch.zeros(R, dtype=torch.float64))
    got, want = torch.autograd.grad(loss, (u, v)), torch.autograd.grad(ref, (u, v), retain_graph=True)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    # a side without gradient gets none (the buffer side of a pass)
    (gu,) = torch.autograd.grad(BH._PairTerms.apply(u, v.detach(), s, w, sign)[0].sum(), (u,))
    assert torch.allclose(gu, torch.autograd.grad(ref_pairs.sum(), (u,))[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["full", "literal_shared_mean"])
def test_fast_batched_runs_equal_one_by_one_runs_to_rounding(name):
    x, y, lab = _toy()
    cfg = CONFIGS[name]
    fast = BH.train_cross_modal_hashing_batched(x, y, lab, cfg, [0, 1], device="cpu", probe_every=2, fast=True)
    for s, mb in zip([0, 1], fast):
        ms = H.train_cross_modal_hashing(x, y, lab, cfg, seed=s, device="cpu", progress=False, probe_every=2)
        for (n, p), (_, q) in zip(ms.named_parameters(), mb.named_parameters()):
            assert (p - q).abs().max().item() <= 1e-4, n
        assert mb.history[-1]["image/pairs"] == pytest.approx(ms.history[-1]["image/pairs"], rel=1e-4)
        assert mb.history[-1]["image/pairs"] < mb.history[0]["image/pairs"]


@pytest.mark.parametrize("name", ["full", "in_batch", "literal_shared_mean"])
def test_fast_batched_runs_equal_their_own_one_by_one_runs(name):
    # fast=True is its own arithmetic: the chapter's per-run trainer in it (train_cross_modal_hashing_closed_form),
    # seed by seed, gives each seed the run that the batched trainer gives it (to rounding on these tiny matrices)
    x, y, lab = _toy()
    cfg, seeds = CONFIGS[name], [0, 1, 2]
    together = BH.train_cross_modal_hashing_batched(x, y, lab, cfg, seeds, device="cpu", probe_every=2, fast=True)
    for s, mb in zip(seeds, together):
        ms = BH.train_cross_modal_hashing_closed_form(x, y, lab, cfg, seed=s, device="cpu", probe_every=2)
        for (n, p), (_, q) in zip(ms.named_parameters(), mb.named_parameters()):
            assert (p - q).abs().max().item() <= 1e-6, n
        for mod, inp in (("image", x), ("text", y)):
            assert np.array_equal(ms.encode(inp, mod), mb.encode(inp, mod))
        assert len(mb.history) == cfg.epochs and list(ms.history[-1]) == list(mb.history[-1])
        for hs, hb in zip(ms.history, mb.history):
            for k, v in hs.items():
                if k not in ("seconds", "pairs_per_s"):
                    assert hb[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
    assert not np.array_equal(together[0].encode(x, "image"), together[1].encode(x, "image"))


def test_shared_product_differentiates_exactly_as_two_products():
    g = torch.Generator().manual_seed(1)
    R, n, m, d = 2, 6, 9, 4
    u = torch.randn(R, n, d, generator=g, requires_grad=True)
    v = torch.randn(R, m, d, generator=g, requires_grad=True)
    s = (torch.rand(R, n, m, generator=g) > 0.5).float()
    w = torch.rand(R, n, m, generator=g)
    with torch.no_grad():
        P = torch.bmm(u, v.transpose(1, 2))
    got = BH._pairs(u, v, P, s, 1.0) + BH._ml(u, v, P, w)
    theta = 0.5 * torch.bmm(u, v.transpose(1, 2))
    ref = (F.softplus(theta) - s * theta).flatten(1).sum(1)
    ref = ref + (torch.sigmoid(torch.bmm(u, v.transpose(1, 2))) - w).pow(2).flatten(1).sum(1)
    assert torch.equal(got, ref)
    for a, b in zip(torch.autograd.grad(got.sum(), (u, v)), torch.autograd.grad(ref.sum(), (u, v))):
        assert torch.equal(a, b)  # bit for bit: one forward product, autograd's two backward products


def test_closed_form_trainer_learns_and_refuses_bad_input_by_name():
    x, y, lab = _toy()
    m = BH.train_cross_modal_hashing_closed_form(x, y, lab, SMALL, seed=0, device="cpu", probe_every=0)
    assert m.history[-1]["image/pairs"] < m.history[0]["image/pairs"]
    with pytest.raises(ValueError, match="labels"):
        BH.train_cross_modal_hashing_closed_form(x, y, lab[:5], SMALL, device="cpu")
    with pytest.raises(ValueError, match="image_trunk"):
        BH.train_cross_modal_hashing_closed_form(x, y, lab, replace(SMALL, image_trunk="alexnet"), device="cpu")
