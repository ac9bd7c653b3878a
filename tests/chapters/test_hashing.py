"""Tests for xmr_lib.chapters.ch03.hashing: hand-computed losses (Eqs. 3.1–3.7), networks, training on a tiny problem."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hashing_toy import SMALL_NET, toy_pairs

from xmr_lib.chapters.ch03 import hashing as H
from xmr_lib.retrieval import modality

# --------------------------------------------------------------------------------------------------------------
# codes and entropy


def test_sign_codes_maps_zero_to_plus_one():
    h = torch.tensor([[0.0, -0.3, 0.2]])
    assert H.sign_codes(h).tolist() == [[1.0, -1.0, 1.0]]
    a = H.sign_codes(np.array([[0.0, -1e-9, 3.0]]))
    assert a.dtype == np.int8 and a.tolist() == [[1, -1, 1]]


def test_binary_entropy_peaks_at_half():
    p = np.array([0.0, 0.5, 1.0, 0.1])
    h = H.binary_entropy(p)
    assert h[1] == pytest.approx(1.0) and h[0] == 0.0 and h[2] == 0.0
    assert h[3] == pytest.approx(-(0.1 * math.log2(0.1) + 0.9 * math.log2(0.9)))
    assert H.binary_entropy(0.5, base=math.e) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="p:"):
        H.binary_entropy([1.5])
    assert math.copysign(1.0, float(H.binary_entropy(0.0))) == 1.0  # +0, not −0


@pytest.mark.parametrize("p", [math.nan, [0.3, math.nan], np.array([[np.nan]]), "half", None])
def test_binary_entropy_refuses_nan_and_non_numbers_by_name(p):
    with pytest.raises(ValueError, match=r"^p: expected probabilities"):
        H.binary_entropy(p)


@pytest.mark.parametrize("base", [1, 0, -2, math.nan, "2"])
def test_binary_entropy_refuses_a_bad_base(base):
    with pytest.raises(ValueError, match=r"^base:"):
        H.binary_entropy(0.3, base=base)


def test_modality_entropy_and_negative_entropy_loss():
    logits = torch.tensor([[0.0, 0.0], [10.0, -10.0]])
    ent = modality.modality_entropy(logits)
    assert ent[0].item() == pytest.approx(math.log(2)) and ent[1].item() < 1e-6
    # Eq. 3.2 = Σ P log P = −Σ entropy
    assert modality.negative_entropy_loss(logits).item() == pytest.approx(-math.log(2), abs=1e-6)
    assert modality.negative_entropy_loss(logits, "mean").item() == pytest.approx(-math.log(2) / 2, abs=1e-6)


# --------------------------------------------------------------------------------------------------------------
# supervision


LA = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 0]])
LB = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 1], [0, 0, 0, 1]])


def test_binary_similarity_hand_case():
    assert H.binary_similarity(LA, LB).tolist() == [[1, 1, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="labels_b"):
        H.binary_similarity(LA, LB[:, :3])


def test_multilevel_similarity_norms():
    # t = [[1, 2, 0], [0, 0, 0]]
    assert torch.allclose(H.multilevel_similarity(LA, LB), torch.tensor([[0.25, 0.5, 0], [0, 0, 0]]))
    assert torch.allclose(H.multilevel_similarity(LA, LB, num_classes=24), torch.tensor([[1, 2, 0], [0, 0, 0]]) / 24)
    # jaccard: |a ∪ b| = 2, 3, 3 for row 0
    assert torch.allclose(H.multilevel_similarity(LA, LB, "jaccard")[0], torch.tensor([0.5, 2 / 3, 0]))
    assert torch.allclose(H.multilevel_similarity(LA, LB, "max_shared")[0], torch.tensor([0.5, 1.0, 0]))
    assert torch.allclose(
        H.multilevel_similarity(LA, LB, "cosine")[0], torch.tensor([1 / math.sqrt(2), 2 / math.sqrt(6), 0])
    )
    with pytest.raises(ValueError, match="norm"):
        H.multilevel_similarity(LA, LB, "nope")


# --------------------------------------------------------------------------------------------------------------
# losses, hand-computed


def test_quantization_loss_hand_case():
    h = torch.tensor([[0.5, -0.2], [0.0, 0.9]])
    # own signs: (0.5-1)² + (-0.2+1)² + (0-1)² + (0.9-1)² = 0.25 + 0.64 + 1 + 0.01
    assert H.quantization_loss(h).item() == pytest.approx(1.9)
    assert H.quantization_loss(h, reduction="mean").item() == pytest.approx(0.95)
    b = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])
    assert H.quantization_loss(h, b).item() == pytest.approx(2.25 + 0.64 + 1 + 0.01)
    with pytest.raises(ValueError, match="b:"):
        H.quantization_loss(h, b[:1])


def test_pairwise_likelihood_hand_case_and_printed_sign():
    u = torch.tensor([[2.0, 0.0]])
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    s = torch.tensor([[1.0, 0.0]])
    # Δ = ½ uᵀv = [1, 0]; NLL = softplus(1) − 1 + softplus(0)
    want = math.log1p(math.e) - 1 + math.log(2)
    assert H.pairwise_likelihood_loss(u, v, s).item() == pytest.approx(want)
    assert H.pairwise_likelihood_loss(u, v, s, reduction="mean").item() == pytest.approx(want / 2)
    assert H.pairwise_likelihood_loss(u, v, s, sign="printed").item() == pytest.approx(-want)
    # large inner products do not overflow (softplus, not log(1 + e^θ))
    big = H.pairwise_likelihood_loss(torch.full((1, 512), 10.0), torch.full((1, 512), 10.0), torch.zeros(1, 1))
    assert torch.isfinite(big) and big.item() == pytest.approx(0.5 * 512 * 100)
    with pytest.raises(ValueError, match="s:"):
        H.pairwise_likelihood_loss(u, v, s.T)


def test_printed_sign_pushes_similar_pairs_apart():
    """Minimising Eq. 3.5 as printed lowers the inner product of a similar pair; the NLL raises it."""
    for sign, direction in (("nll", 1), ("printed", -1)):
        u = torch.tensor([[0.5, 0.5]], requires_grad=True)
        v = torch.tensor([[0.5, 0.5]])
        H.pairwise_likelihood_loss(u, v, torch.ones(1, 1), sign=sign).backward()
        assert direction * (-(u.grad @ v.T)).item() > 0


def test_multilevel_similarity_loss_hand_case():
    u = torch.tensor([[1.0, 0.0]])
    v = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    w = torch.tensor([[0.5, 0.25]])
    want = (torch.sigmoid(torch.tensor(2.0)) - 0.5) ** 2 + (0.5 - 0.25) ** 2  # σ(2Δ) = σ(uᵀv)
    assert H.multilevel_similarity_loss(u, v, w).item() == pytest.approx(want.item())


def test_label_prediction_loss_is_bce_sum():
    logits = torch.tensor([[0.3, -1.0, 2.0], [0.0, 0.5, -0.5]])
    labels = torch.tensor([[1, 0, 1], [0, 0, 1]])
    want = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="sum")
    assert H.label_prediction_loss(logits, labels).item() == pytest.approx(want.item())
    assert H.label_prediction_loss(logits, labels, "mean").item() == pytest.approx(want.item() / 2)
    with pytest.raises(ValueError, match="labels"):
        H.label_prediction_loss(logits, labels[:, :2])


def test_domain_classification_and_balance():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    ce = modality.domain_classification_loss(logits, torch.tensor([0, 1]))
    assert ce.item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1)))
    assert modality.domain_classification_loss(logits, 0).item() == pytest.approx(
        F.cross_entropy(logits, torch.tensor([0, 0])).item()
    )
    h = torch.tensor([[1.0, -0.5], [1.0, 0.5]])
    assert H.balance_loss(h).item() == pytest.approx(4.0)  # column sums (2, 0)


def test_total_loss_weights_eq_3_7():
    t = {k: torch.tensor(1.0) for k in ("domain", "pairs", "label", "multilevel", "quant")}
    assert H.total_loss(t).item() == pytest.approx(100 + 1 + 1 + 0.1 + 1)
    assert H.total_loss(t, alpha=0, eta=0).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="unknown"):
        H.total_loss({"bogus": torch.tensor(1.0)})


# --------------------------------------------------------------------------------------------------------------
# networks


def test_multiscale_fusion_shapes_and_constant_input():
    ms = H.MultiScaleFusion(40, levels=(10, 2, 1))
    y = torch.rand(3, 40)
    out = ms(y)
    assert out.shape == (3, 4 * 40) and torch.equal(out[:, :40], y)
    assert ms.kernels == [40, 10, 5]  # 5·level, capped at T
    const = ms(torch.ones(2, 40))  # averages of a constant are the constant
    assert torch.allclose(const, torch.ones_like(const))
    with pytest.raises(ValueError, match="y:"):
        ms(torch.rand(3, 41))


def test_branches_and_predictors_shapes():
    img = H.ImageHashNet(20, n_bits=8, common_dim=16, hidden=(12,))
    f, h = img(torch.randn(5, 20))
    assert f.shape == (5, 16) and h.shape == (5, 8) and h.abs().max() < 1
    txt = H.TextHashNet(30, n_bits=8, common_dim=16, hidden=24)
    g, ht = txt(torch.rand(5, 30))
    assert g.shape == (5, 16) and ht.shape == (5, 8)
    assert H.LabelPredictor(16, 7)(g).shape == (5, 7)
    assert H.DomainPredictor(8)(ht).shape == (5, 2)
    with pytest.raises(ValueError, match="x:"):
        img(torch.randn(5, 21))


def test_config_validation_and_ablations():
    with pytest.raises(ValueError, match="loss_reduction"):
        H.HashingConfig(loss_reduction="avg")
    with pytest.raises(ValueError, match="alpha"):
        H.HashingConfig(alpha=-1)
    c = H.HashingConfig()
    assert (c.alpha, c.beta, c.gamma, c.eta, c.eps) == (100.0, 1.0, 1.0, 0.1, 1.0)
    b1 = H.ablation_config(c, "Baseline1")
    assert (b1.alpha, b1.gamma, b1.eta, b1.beta, b1.eps) == (0, 0, 0, 1.0, 1.0)
    assert H.ablation_config(c, "Baseline3").eta == 0.1 and H.ablation_config(c, "Baseline3").alpha == 0
    with pytest.raises(ValueError, match="name"):
        H.ablation_config(c, "Baseline9")


@pytest.mark.parametrize(
    "field, bad",
    [
        ("d_steps", -1),
        ("d_steps", 1.5),
        ("batch_size", 2.7),
        ("batch_size", 0),
        ("batch_size", True),
        ("epochs", "8"),
        ("epochs", math.nan),
        ("n_bits", 0),
        ("n_bits", 16.5),
        ("common_dim", -1),
        ("text_hidden", None),
        ("image_hidden", [2.5]),
        ("image_hidden", [0]),
        ("image_hidden", "1024"),
        ("alpha", math.nan),
        ("alpha", math.inf),
        ("beta", -1.0),
        ("gamma", "1"),
        ("eta", math.nan),
        ("eps", None),
        ("balance_weight", True),
        ("dropout", math.nan),
        ("dropout", 1.0),
        ("lr_start", 0.0),
        ("lr_end", math.nan),
        ("d_lr", -1e-3),
        ("weight_decay", math.inf),
        ("grad_clip", -1.0),
        ("text_multiscale", "yes"),
        ("domain_on", "real"),
        ("domain_on", ("real", "codes")),
        ("entropy_mode", None),
        ("pair_scope", ["buffer"]),
    ],
)
def test_config_refuses_every_bad_field_by_name(field, bad):
    with pytest.raises(ValueError, match=rf"^{field}(\[\d+\])?: expected"):
        H.HashingConfig(**{field: bad})


def test_config_keeps_good_values_as_given():
    """Validation does not retype what it accepts (the run checkpoints key on the config's JSON)."""
    c = H.HashingConfig(alpha=0, n_bits=np.int64(16), image_hidden=[np.int32(8)], d_steps=0, grad_clip=0)
    assert c.alpha == 0 and type(c.alpha) is int
    assert type(c.n_bits) is int and c.image_hidden == (8,) and c.d_steps == 0
    assert type(H.HashingConfig(batch_size=16.0).batch_size) is int  # integral, as the knobs accept
    from dataclasses import replace

    assert replace(c, batch_size=32).batch_size == 32


# --------------------------------------------------------------------------------------------------------------
# training on a tiny problem


_toy = toy_pairs
SMALL = {**SMALL_NET, "epochs": 6}


def test_gradients_reach_both_branches_and_heads():
    x, y, lab = _toy(40)
    c = H.HashingConfig(**SMALL)
    m = H.CrossModalHashingModel(x.shape[1], y.shape[1], lab.shape[1], c)
    X, Y, L = map(torch.from_numpy, (x, y, lab))
    f, h = m.image_net(X)
    g, ht = m.text_net(Y)
    S, W = H.binary_similarity(L, L), H.multilevel_similarity(L, L)
    terms = {
        "pairs": H.pairwise_likelihood_loss(f, g, S) + H.pairwise_likelihood_loss(h, ht, S),
        "multilevel": H.multilevel_similarity_loss(f, g, W),
        "quant": H.quantization_loss(h),
        "label": H.label_prediction_loss(m.label_predictor(f), L),
        "domain": modality.negative_entropy_loss(m.domain_real(f))
        + modality.negative_entropy_loss(m.domain_binary(ht)),
    }
    H.total_loss(terms).backward()
    for mod in (m.image_net, m.text_net, m.label_predictor, m.domain_real, m.domain_binary):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters())
    norms = H.term_gradient_norms({"q": H.quantization_loss(h), "p": H.pairwise_likelihood_loss(h, ht, S)}, h)
    assert norms["q"] > 0 and norms["p"] > 0


def test_training_lowers_the_pair_loss_and_beats_chance():
    from xmr_lib.retrieval.metrics import hamming_map

    x, y, lab = _toy(200)
    c = H.HashingConfig(**{**SMALL, "epochs": 15}, alpha=1.0)
    m = H.train_cross_modal_hashing(x, y, lab, c, seed=0, progress=False, device="cpu")
    first, last = m.history[0], m.history[-1]
    assert last["image/pairs"] < first["image/pairs"] and last["text/pairs"] < first["text/pairs"]
    for k in (
        "image/quant",
        "image/label",
        "image/multilevel",
        "image/domain",
        "D_real/entropy_bits",
        "D_binary/accuracy",
        "bit_balance_min",
        "image/grad_F/pairs",
    ):
        assert k in last, k
    bi, bt = m.encode(x, "image"), m.encode(y, "text")
    assert bi.dtype == np.int8 and set(np.unique(bi)) <= {-1, 1}
    chance = float(((lab @ lab.T) > 0).mean())
    assert hamming_map(bi, bt, lab, lab) > chance + 0.15
    assert hamming_map(bt, bi, lab, lab) > chance + 0.15


def test_training_is_deterministic_for_a_seed():
    x, y, lab = _toy(64)
    c = H.HashingConfig(**{**SMALL, "epochs": 2})
    a = H.train_cross_modal_hashing(x, y, lab, c, seed=3, progress=False, device="cpu").encode(x, "image", what="soft")
    b = H.train_cross_modal_hashing(x, y, lab, c, seed=3, progress=False, device="cpu").encode(x, "image", what="soft")
    assert np.allclose(a, b)


def test_literal_entropy_mode_makes_the_predictor_uniform():
    """Eq. 3.2 as printed: θ_d minimises Σ P log P too, so 𝒟 goes to ½ everywhere (entropy → 1 bit)."""
    x, y, lab = _toy(96)
    c = H.HashingConfig(**{**SMALL, "epochs": 4}, entropy_mode="literal", alpha=100.0)
    m = H.train_cross_modal_hashing(x, y, lab, c, seed=0, progress=False, device="cpu")
    assert m.history[-1]["D_real/entropy_bits"] > 0.99


def test_training_input_validation():
    x, y, lab = _toy(20)
    with pytest.raises(ValueError, match="text_y"):
        H.train_cross_modal_hashing(x, y[:10], lab, H.HashingConfig(**SMALL), progress=False)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="image_x"):
        H.train_cross_modal_hashing(bad, y, lab, H.HashingConfig(**SMALL), progress=False)
    with pytest.raises(ValueError, match="codes"):
        H.bit_balance(np.ones(4))
