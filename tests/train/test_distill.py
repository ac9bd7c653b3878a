"""xmr_lib.train.distill: the losses of thesis chapter 5 on hand-computed cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from xmr_lib.train import distill


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These nets are tiny: one thread is fastest, and much faster when other processes load the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def unit(*rows):
    return torch.tensor(rows, dtype=torch.float32)


# ------------------------------------------------------------------------------------------------ Eq. 5.1


def test_new_class_cross_entropy_ignores_old_logits():
    logits = torch.tensor([[5.0, 2.0, 3.0]])
    got = distill.new_class_cross_entropy(logits, torch.tensor([2]), n_old=1)
    assert got.item() == pytest.approx(math.log(1 + math.exp(-1)))  # softmax over (2, 3) only
    # n_old = 0 is the plain cross-entropy
    assert distill.new_class_cross_entropy(logits, torch.tensor([0])).item() == pytest.approx(
        F.cross_entropy(logits, torch.tensor([0])).item()
    )


def test_new_class_cross_entropy_rejects_old_labels():
    with pytest.raises(ValueError, match="labels"):
        distill.new_class_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 2]), n_old=1)
    with pytest.raises(ValueError, match="n_old"):
        distill.new_class_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 2]), n_old=3)
    with pytest.raises(ValueError, match="logits"):
        distill.new_class_cross_entropy(torch.zeros(3), torch.tensor([0, 2, 1]))


# ------------------------------------------------------------------------------------------------ Eq. 5.2


def test_semantic_triplet_loss_hand_computed():
    # class 0: a=(1,0), b=(0,1); class 1: c=(.6,.8), d=(.8,-.6). Every anchor's positive has S = 0 and its
    # hardest negative S = 0.8, so each term is max(0, λ + 0.8 − 0).
    r = unit([1, 0], [0, 1], [0.6, 0.8], [0.8, -0.6])
    y = torch.tensor([0, 0, 1, 1])
    assert distill.semantic_triplet_loss(r, y, margin=0.5).item() == pytest.approx(1.3, abs=1e-6)
    assert distill.semantic_triplet_loss(r, y, margin=0.1).item() == pytest.approx(0.9, abs=1e-6)
    a, p, n = distill.hardest_triplets(r, y)
    assert a.tolist() == [0, 1, 2, 3] and p.tolist() == [1, 0, 3, 2] and n.tolist() == [3, 2, 1, 0]


def test_semantic_triplet_loss_matches_similarity_form_on_random_batch():
    g = torch.Generator().manual_seed(0)
    r = F.normalize(torch.randn(24, 8, generator=g), dim=1)
    y = torch.arange(6).repeat_interleave(4)
    s = r @ r.T
    same = y[:, None] == y[None, :]
    eye = torch.eye(24, dtype=torch.bool)
    s_pos = s.masked_fill(~same | eye, 9).min(1).values
    s_neg = s.masked_fill(same, -9).max(1).values
    want = torch.clamp(0.5 + s_neg - s_pos, min=0).mean()
    assert distill.semantic_triplet_loss(r, y).item() == pytest.approx(want.item(), abs=1e-5)


def test_semantic_triplet_loss_zero_when_separated_and_no_valid_anchor():
    r = unit([1, 0], [1, 0], [-1, 0], [-1, 0])
    y = torch.tensor([0, 0, 1, 1])
    assert distill.semantic_triplet_loss(r, y, margin=0.5).item() == 0.0
    x = unit([1, 0], [0, 1]).requires_grad_()
    out = distill.semantic_triplet_loss(x, torch.tensor([0, 1]))  # no positives: 0 but differentiable
    out.backward()
    assert out.item() == 0.0 and x.grad is not None


def test_semantic_triplet_loss_needs_unit_vectors():
    with pytest.raises(ValueError, match="L2-normalised"):
        distill.semantic_triplet_loss(torch.ones(4, 3), torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="labels"):
        distill.semantic_triplet_loss(unit([1, 0], [0, 1]), torch.tensor([0, 1, 1]))


def test_semantic_preserving_loss_is_sum():
    r = unit([1, 0], [0, 1], [0.6, 0.8], [0.8, -0.6])
    logits = torch.tensor([[0.0, 1.0, 2.0]] * 4)
    y = torch.tensor([1, 1, 2, 2])
    got = distill.semantic_preserving_loss(logits, r, y, n_old=1)
    want = distill.new_class_cross_entropy(logits, y, 1) + distill.semantic_triplet_loss(r, y)
    assert got.item() == pytest.approx(want.item())


# ------------------------------------------------------------------------------------------------ Eq. 5.3


def test_distillation_loss_hand_computed():
    teacher = torch.tensor([[1.0, 1.0]])  # p = (.5, .5)
    student = torch.tensor([[0.0, math.log(3.0), 7.0]])  # first two logits: p' = (.25, .75) at T = 1; third ignored
    got = distill.distillation_loss(student, teacher, temperature=1.0)
    assert got.item() == pytest.approx(-(0.5 * math.log(0.25) + 0.5 * math.log(0.75)))
    kl = distill.distillation_loss(student, teacher, temperature=1.0, form="kl")
    assert kl.item() == pytest.approx(got.item() - math.log(2.0))
    # T = 2 halves the logit gap: p' = softmax(0, ln3 / 2)
    p2 = torch.softmax(torch.tensor([0.0, math.log(3.0) / 2]), 0)
    assert distill.distillation_loss(student, teacher).item() == pytest.approx(-(0.5 * p2.log()).sum().item(), abs=1e-6)
    assert distill.distillation_loss(student, teacher, t_squared=True).item() == pytest.approx(
        4 * distill.distillation_loss(student, teacher).item()
    )


def test_distillation_kl_is_zero_when_student_equals_teacher_and_gradient_only_to_student():
    t = torch.randn(5, 4)
    s = torch.cat([t, torch.randn(5, 2)], 1).requires_grad_()
    assert distill.distillation_loss(s, t, form="kl").item() == pytest.approx(0.0, abs=1e-6)
    t2 = torch.randn(5, 4, requires_grad=True)
    distill.distillation_loss(s, t2).backward()
    assert t2.grad is None and s.grad is not None and s.grad[:, 4:].abs().max() == 0


def test_distillation_loss_validation():
    with pytest.raises(ValueError, match="student_logits, teacher_logits"):
        distill.distillation_loss(torch.zeros(2, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="temperature"):
        distill.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0)
    with pytest.raises(ValueError, match="form"):
        distill.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), form="js")


# ------------------------------------------------------------------------------------------------ Eq. 5.4-5.5


def test_gaussian_kernel_hand_computed():
    k = distill.gaussian_kernel(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]]), sigmas=[1.0, 2.0])
    assert k[0, 0].item() == pytest.approx(math.exp(-0.5) + math.exp(-1 / 8))
    assert k[0, 1].item() == pytest.approx(2.0)


def test_mmd_squared_two_points():
    x, y = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    assert distill.mmd_squared(x, y, sigmas=[1.0]).item() == pytest.approx(2 - 2 * math.exp(-0.5))
    # mmd_loss is its square root (the 1/N outside the root of Eq. 5.5 is 1/N² inside)
    assert distill.mmd_loss(x, y, sigmas=[1.0]).item() == pytest.approx(math.sqrt(2 - 2 * math.exp(-0.5)))


def test_mmd_zero_for_same_set_in_any_order_with_finite_gradient():
    g = torch.Generator().manual_seed(1)
    t = torch.randn(16, 5, generator=g)
    s = t[torch.randperm(16, generator=g)].clone().requires_grad_()
    loss = distill.mmd_loss(t, s)
    loss.backward()
    assert loss.item() == pytest.approx(1e-6, abs=2e-6)  # sqrt of the eps floor
    assert torch.isfinite(s.grad).all()


def test_mmd_grows_with_mean_shift():
    g = torch.Generator().manual_seed(2)
    t = torch.randn(32, 4, generator=g) * 0.3
    vals = [distill.mmd_loss(t, t + shift, sigmas="auto").item() for shift in (0.1, 0.3, 0.6)]
    vals_fixed = [distill.mmd_loss(t, t + shift).item() for shift in (0.1, 0.3, 0.6)]
    assert vals[0] < vals[1] < vals[2] and vals_fixed[0] < vals_fixed[1] < vals_fixed[2]


def test_mmd_bandwidth_recipe():
    x, y = torch.tensor([[0.0]]), torch.tensor([[2.0]])
    # pooled squared distances off the diagonal: 4, 4 → base 4; σ² = base · 2^(m − 1) / 2 for m = 0, 1, 2
    assert distill.mmd_bandwidths(x, y, n_kernels=3).tolist() == pytest.approx([1.0, math.sqrt(2), 2.0])
    assert distill.mmd_bandwidths(x, y, n_kernels=1).tolist() == pytest.approx([math.sqrt(2)])


def test_mmd_gradient_flows_only_to_student_and_validation():
    t = torch.randn(8, 3, requires_grad=True)
    s = torch.randn(8, 3, requires_grad=True)
    distill.mmd_loss(t, s).backward()
    assert t.grad is None and s.grad is not None
    with pytest.raises(ValueError, match="teacher, student"):
        distill.mmd_loss(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="sigmas"):
        distill.mmd_loss(torch.zeros(4, 3), torch.zeros(4, 3), sigmas=[0.0])
    with pytest.raises(ValueError, match="sigmas"):
        distill.mmd_loss(torch.zeros(4, 3), torch.zeros(4, 3), sigmas="median")


def test_mmd_loss_decreases_when_student_is_trained():
    torch.manual_seed(0)
    teacher = F.normalize(torch.randn(64, 8), dim=1)
    student = torch.nn.Linear(8, 8)
    opt = torch.optim.Adam(student.parameters(), lr=0.05)
    x = torch.randn(64, 8)
    first = None
    for _ in range(60):
        loss = distill.mmd_loss(teacher, F.normalize(student(x), dim=1))
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_kd_mmd_loss_is_weighted_sum():
    g = torch.Generator().manual_seed(3)
    sl, tl = torch.randn(6, 5, generator=g), torch.randn(6, 3, generator=g)
    se, te = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    got = distill.kd_mmd_loss(sl, tl, se, te, alpha=0.3, beta=2.0)
    want = 0.3 * distill.distillation_loss(sl, tl) + 2.0 * distill.mmd_loss(te, se)
    assert got.item() == pytest.approx(want.item())


# ------------------------------------------------------------------------------------------------ baselines


def test_l2_feature_loss_hand_computed():
    s = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    t = torch.zeros(2, 2)
    assert distill.l2_feature_loss(s, t).item() == pytest.approx(2.5)  # (5 + 0) / 2
    assert distill.l2_feature_loss(s, t, squared=True).item() == pytest.approx(12.5)
    x = torch.zeros(2, 2, requires_grad=True)
    distill.l2_feature_loss(x, torch.zeros(2, 2)).backward()  # zero distance: finite gradient
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="student, teacher"):
        distill.l2_feature_loss(torch.zeros(2, 2), torch.zeros(3, 2))


def test_correlation_distillation_loss():
    g = torch.Generator().manual_seed(4)
    f = torch.randn(6, 4, generator=g)
    assert distill.correlation_distillation_loss(f, f).item() == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(6, 4, generator=g)
    T = 4.0
    p_t = torch.softmax(f @ f.T / T, 1)
    log_p_s = torch.log_softmax(s @ s.T / T, 1)
    want = (p_t * (p_t.log() - log_p_s)).sum() * T * T / 6
    assert distill.correlation_distillation_loss(s, f).item() == pytest.approx(want.item(), rel=1e-5)
    swapped = distill.correlation_distillation_loss(f, s, direction="code")
    assert swapped.item() == pytest.approx(want.item(), rel=1e-5)  # code direction = swapped arguments
