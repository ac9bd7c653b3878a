"""Feature-estimation based correlation distillation (thesis chapter 6): xmr_lib.chapters.ch06.estimation."""

import numpy as np
import pytest
import torch

from xmr_lib.chapters.ch06 import estimation as est
from xmr_lib.train import distill
from xmr_lib.train import incremental as inc


def _np_softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_correlation_loss_hand_computed():
    # Eq. 6.5 on a 2-image batch: teacher features orthogonal, student features at cosine 0.6
    ft = np.array([[1.0, 0.0], [0.0, 1.0]])
    fs = np.array([[1.0, 0.0], [0.6, 0.8]])
    for T in (1.0, 4.0):
        p = _np_softmax(ft @ ft.T / T)  # teacher rows: the target
        q = _np_softmax(fs @ fs.T / T)
        want = T * T / 2 * (p * np.log(p / q)).sum()
        got = distill.correlation_distillation_loss(
            torch.tensor(fs, dtype=torch.float32), torch.tensor(ft, dtype=torch.float32), T
        ).item()
        assert got == pytest.approx(want, rel=1e-5)
    # by hand for T = 1, row 0: p = (e, 1)/(e + 1), q = (e, e^0.6)/(e + e^0.6)
    e = np.e
    p0, q0 = np.array([e, 1]) / (e + 1), np.array([e, e**0.6]) / (e + e**0.6)
    row0 = (p0 * np.log(p0 / q0)).sum()
    full = distill.correlation_distillation_loss(
        torch.tensor(fs, dtype=torch.float32), torch.tensor(ft, dtype=torch.float32), 1.0
    ).item()
    assert full == pytest.approx(row0, rel=1e-5)  # the two rows are mirror images: (row0 + row1) / 2 = row0
    f = torch.randn(5, 3)
    assert distill.correlation_distillation_loss(f, f).item() == pytest.approx(0.0, abs=1e-6)


def _hard_mining_reference(E, y, margin=0.1):
    """The released code's HardMiningLoss as a plain loop (spec §5.1)."""
    S = E @ E.T
    total = 0.0
    for i in range(len(y)):
        pos = [S[i, j] for j in range(len(y)) if j != i and y[j] == y[i]]
        neg = [S[i, j] for j in range(len(y)) if y[j] != y[i]]
        hn = [v for v in neg if v > min(pos) - margin]
        hp = [v for v in pos if v < max(neg) + margin]
        if hn and hp:
            total += np.mean([1 - v for v in hp]) + np.mean(hn)
    return total / len(y)


def test_hard_mining_loss_matches_a_loop_and_escapes_collapse():
    g = torch.Generator().manual_seed(1)
    E = torch.nn.functional.normalize(torch.randn(12, 5, generator=g), dim=1)
    y = torch.arange(3).repeat_interleave(4)
    want = _hard_mining_reference(E.double().numpy(), y.numpy())
    assert est.hard_mining_loss(E, y).item() == pytest.approx(want, rel=1e-5)
    collapsed = torch.nn.functional.normalize(torch.ones(12, 5) + 1e-5 * torch.randn(12, 5, generator=g), dim=1)
    assert est.triplet_distance_loss(collapsed, y, margin=1.0).item() == pytest.approx(1.0, abs=1e-3)
    assert est.hard_mining_loss(collapsed, y).item() == pytest.approx(1.0, abs=1e-3)
    sep = torch.eye(3)[y]  # classes on orthogonal axes: nothing left to learn
    assert est.hard_mining_loss(sep, y).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="kind"):
        est.ranking_term("nope")


def test_accuracy_change_worked_example_and_weights():
    a_drop, a_gain = est.accuracy_change(54.20, 52.44, 29.82, 52.27)  # thesis §6.4.3
    assert a_drop == pytest.approx(-0.0325, abs=1e-4) and a_gain == pytest.approx(0.7528, abs=1e-4)
    assert est.importance_weights(1) == []
    assert est.importance_weights(2) == [1.0]  # Table 6.3 case (c) at t = 2
    assert est.importance_weights(4) == pytest.approx([1 / 3, 0.1 / 2, 0.01])
    with pytest.raises(ValueError, match="acc_old_before"):
        est.accuracy_change(0.0, 0.5, 0.3, 0.6)


def test_estimator_recovers_a_known_linear_drift():
    g = torch.Generator().manual_seed(0)
    F_prev = torch.randn(6, 4, generator=g)
    # degenerate ranges = a known uniform drift: F_{t-2} = (1 + c2) F_{t-1}, F_{t-3} = (1 + c1)(1 + c2) F_{t-1}
    c1, c2 = -0.2, 0.5
    virt = est.estimate_features(F_prev, [(c1, c1), (c2, c2)], k=1.0, generator=g)
    assert len(virt) == 2
    torch.testing.assert_close(virt[0], (1 + c2) * F_prev)
    torch.testing.assert_close(virt[1], (1 + c1) * (1 + c2) * F_prev)
    assert all(torch.equal(v, F_prev) for v in est.estimate_features(F_prev, [(-0.3, 0.7)], k=0.0))
    # a proper range: on average the drift is the range's middle (Eq. 6.7: E[α] = (α_drop + α_gain) / 2)
    draws = torch.stack([est.estimate_features(F_prev, [(-0.1, 0.7)], generator=g)[0] for _ in range(4000)])
    torch.testing.assert_close(draws.mean(0), 1.3 * F_prev, atol=0.03, rtol=0.03)
    # and E[G_virtual] = (1 + ᾱ)² G + Var(α) diag(||F_i||²)
    G = torch.einsum("snd,smd->snm", draws, draws).mean(0)
    torch.testing.assert_close(G, est.expected_virtual_gram(F_prev, -0.1, 0.7), atol=0.1, rtol=0.03)
    with pytest.raises(ValueError, match="actual"):
        est.estimate_features(torch.randn(3), [(0.0, 1.0)])


def test_correlation_loss_decreases_when_optimised():
    g = torch.Generator().manual_seed(0)
    teacher = torch.nn.functional.normalize(torch.randn(16, 8, generator=g), dim=1)
    x = torch.randn(16, 8, generator=g)
    W = torch.nn.Parameter(torch.randn(8, 8, generator=g) * 0.3)
    opt = torch.optim.Adam([W], lr=0.05)
    losses = []
    for _ in range(60):
        s = torch.nn.functional.normalize(x @ W, dim=1)
        loss = distill.correlation_distillation_loss(s, teacher, temperature=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0] and min(losses[-10:]) < min(losses[:10])


def test_short_multi_step_run_gives_results_matrix_and_ranges():
    train, test, _ = inc.synth_species_disjoint(3, 6, 8, 4, size=16, seed=0)
    tasks = inc.class_increments(range(9), 3, 3)  # base + 3 steps of 2 classes
    cfg = inc.TrainConfig(iterations=[4, 3, 3, 3], P=3, K=4, device="cpu", progress=False, log_every=1, seed=0)
    tf = inc.BatchTransform(mean=(0.5,) * 3, std=(0.25,) * 3)
    methods = {m: (lambda m=m: est.method_plugins(m, lambda2=10.0)) for m in ("corr_fe", "corr_all", "corr_aug")}
    torch.manual_seed(0)
    res = inc.compare_methods(lambda n: inc.make_net(n, "tiny", 16, 4), train, test, tasks, methods, cfg, tf)
    for m in methods:
        R = res[m].matrix("mAP")
        assert R.shape == (4, 4)
        assert np.isnan(R[0, 1:]).all() and np.isfinite(R[3]).all()  # unseen groups are NaN
        assert np.isfinite(res[m].forgetting())
        extra = [l for l in res[m].losses if "corr_extra" in l]
        assert extra and {l["task"] for l in extra} == {2, 3}  # extra terms from task 2 on (Eq. 6.11)
    # the estimation plugin recorded one (α_drop, α_gain) per finished transition before task 3
    fe = est.CorrelationDistillation("estimation")

    class _T:  # a stand-in trainer: the recorded steps
        class result:
            steps = res["corr_fe"].steps

    fe.before_task(_T, 3)
    assert len(fe.ranges) == 2 and all(np.isfinite(r).all() for r in fe.ranges)


def test_memory_cost_and_errors():
    net = inc.make_net(4, "tiny", 16, 4)
    one = est.memory_cost(net, "corr_fe", 3)
    allm = est.memory_cost(net, "corr_all", 3)
    assert allm["model_bytes"] == 3 * one["model_bytes"] and one["meta_bytes"] == 2 * 2 * 8
    assert est.memory_cost(net, "ft", 3)["total_bytes"] == 0
    with pytest.raises(ValueError, match="case"):
        est.CorrelationDistillation("nope")
    with pytest.raises(ValueError, match="method"):
        est.method_plugins("nope")


def test_latin_square_groups_have_every_stripe_count():
    order = est.latin_square_order(9)
    groups = inc.class_increments(order, 9, 3)
    stripes = [[inc.DISJOINT_TASKS["B"][c - 9]["stripes"] for c in g] for g in groups[1:]]
    assert all(sorted(s) == [0, 3, 6] for s in stripes)
    assert sorted(order) == list(range(18))


def test_expected_virtual_gram_at_the_thesis_range():
    # E[G_virtual] = (1 + kᾱ)² G + k² Var(α) diag(||F_i||²) at the thesis' range of task t = 1 (§6.4.3), unit-norm
    # features as the network outputs them: the Monte-Carlo mean of 2000 draws is within 5% (relative Frobenius)
    g = torch.Generator().manual_seed(0)
    F = torch.nn.functional.normalize(torch.randn(32, 64, generator=g), dim=1)
    lo, hi = -0.0325, 0.7528
    mc = torch.stack([est.estimate_features(F, [(lo, hi)], 1.0, g)[0] for _ in range(2000)])
    G_mc = torch.einsum("snd,smd->nm", mc, mc) / len(mc)
    G_th = est.expected_virtual_gram(F, lo, hi, 1.0)
    assert float((G_mc - G_th).norm() / G_th.norm()) < 0.05
    scale = (1 + (lo + hi) / 2) ** 2
    off = ~torch.eye(32, dtype=torch.bool)
    torch.testing.assert_close(G_th[off], scale * (F @ F.T)[off])  # off the diagonal: the stored Gram, rescaled
    assert torch.all(torch.diagonal(G_th) > scale)  # the diagonal gets Var(α) on top


def test_ch06_paper_claims_accept_the_papers_own_numbers():
    """Every chapter-6 paper ordering states the paper's two numbers; their difference is its paper_gap, and a record
    made of those numbers (5 seeds) satisfies it. Sign-only claims say why in their note."""
    from xmr_lib.chapters.ch06 import config as ch06
    from xmr_lib.core import claims

    for c in ch06.CLAIMS:
        if c.kind != claims.PAPER or not c.ordering:
            continue
        if c.sign_only:
            assert c.note.startswith("sign only"), c.id
            continue
        assert c.id in ch06.PAPER_VALUES, f"{c.id}: no paper numbers in ch06.PAPER_VALUES"
        a_val, b_val = ch06.PAPER_VALUES[c.id]
        assert a_val - b_val == pytest.approx(c.paper_gap, abs=1e-6), c.id
        a, b = c.metrics[:2]
        metrics = {a: [a_val + 1e-6 * i for i in range(claims.MIN_SEEDS)], b: [b_val] * claims.MIN_SEEDS}
        metrics.update({m: 1 for m in c.metrics[2:]})  # the data/real marker of real-data claims
        row = claims.evaluate_claim(c, {"profile": c.profiles[0], "metrics": metrics})
        assert row["status"] == claims.HOLDS, (
            f"{c.id}: {row['status']} on the paper's numbers — {row['ours'] or row['why']}"
        )
    assert set(ch06.PAPER_VALUES) <= {c.id for c in ch06.CLAIMS}


def test_ch06_knobs_refuse_bad_values_and_name_the_library_choices():
    from xmr_lib.chapters.ch06 import config as ch06
    from xmr_lib.course import runs

    assert ch06._METHODS == tuple(est.METHODS)
    assert set(ch06.KNOBS["ranking"].choices) == set(est.RANKING_LOSSES)
    p = runs.resolve("06", "default", step_iterations=50, mmd_sigmas="auto")
    assert p.step_iterations == 50 and p.mmd_sigmas == "auto"
    for bad, match in [
        ({"step_iterations": "abc"}, "step_iterations: expected an integer ≥ 1 or a list"),
        ({"step_iterations": [160, 0, 80]}, "step_iterations"),
        ({"mmd_sigmas": "abc"}, r"mmd_sigmas: expected one of 'auto' or a list \(≥ 1 item\) of a number > 0"),
        ({"mmd_sigmas": [0.5, -1.0]}, "mmd_sigmas"),
        ({"multi_methods": ["ft", "si"]}, r"multi_methods\[1\]"),  # "si": no such method (ewc is one now)
        ({"acc_metric": "map"}, "acc_metric"),
        ({"decay": 2.0}, "decay"),
    ]:
        with pytest.raises(ValueError, match=match):
            runs.resolve("06", "default", **bad)


def test_ch06_exercise_checks_pass_the_solution_and_explain_a_wrong_answer():
    import torch.nn.functional as F

    from xmr_lib.chapters.ch06 import config as ch06

    def corr(s, t, T):
        lp, lq = F.log_softmax(t @ t.T / T, 1), F.log_softmax(s @ s.T / T, 1)
        return (lp.exp() * (lp - lq)).sum() * T**2 / len(s)

    assert ch06.EXERCISES["1"](corr)[0]
    ok, why = ch06.EXERCISES["1"](lambda s, t, T: corr(t, s, T))
    assert not ok and "KL(student ‖ teacher)" in why
    ok, why = ch06.EXERCISES["1"](lambda s, t, T: corr(s, t, T) / T**2)
    assert not ok and "T²" in why
    assert ch06.EXERCISES["2"]("higher")[0] and not ch06.EXERCISES["2"]("lower")[0]
    assert not ch06.EXERCISES["2"](3)[0]

    def mean_estimate(actual, ranges, k=1.0, forward=False):
        out, f = [], actual
        for lo, hi in ranges if forward else reversed(ranges):
            f = (1 + k * (lo + hi) / 2) * f
            out.append(f)
        return out

    assert ch06.EXERCISES["3"](mean_estimate)[0]
    ok, why = ch06.EXERCISES["3"](lambda a, r, k: mean_estimate(a, r, k, forward=True))
    assert not ok and "ranges[-1]" in why
