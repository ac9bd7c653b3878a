"""Lifelong retrieval by dual knowledge distillation (thesis ch. 7): losses, benchmark, plugins, a short run."""

import numpy as np
import pytest
import torch

from xmr_lib.chapters.ch07 import lifelong as ll
from xmr_lib.train import incremental as inc

torch.set_num_threads(1)


def test_harmonic_mean_reproduces_the_thesis_tables():
    assert ll.harmonic_mean(56.0, 47.5) == pytest.approx(51.4, abs=0.05)  # Table 7.1, FT on CUB
    assert ll.harmonic_mean(74.4, 86.5) == pytest.approx(80.0, abs=0.05)  # Table 7.1, DKD on Dogs
    assert ll.harmonic_mean(0.0, 0.0) == 0.0
    np.testing.assert_allclose(ll.harmonic_mean([1.0, 0.5], [1.0, 1.0]), [1.0, 2 / 3])


def test_triplet_loss_eq_7_1_hand_value():
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, -0.6]])
    y = torch.tensor([0, 0, 1, 1])
    # anchor 0: D(a,p) = 2, hardest negative (0.8, -0.6) at D = 0.4 → 0.5 + 2 − 0.4 = 2.1; by symmetry all four
    # anchors: a1 → p0 (2), n (0.6,0.8) at D = 0.4: 2.1; a2 → p3 (2), n1 at 0.4: 2.1; a3 → p2 (2), n0 at 0.4: 2.1
    assert ll.lifelong_triplet_loss(e, y, margin=0.5).item() == pytest.approx(2.1, abs=1e-5)
    assert ll.lifelong_triplet_loss(e, torch.zeros(4, dtype=torch.long)).item() == 0.0  # no negatives


def test_gram_kl_zero_for_identical_features_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(8, 5, generator=g), dim=1)
    assert ll.gram_kl(f, f).item() == pytest.approx(0.0, abs=1e-7)
    assert ll.gram_kl(f.flip(0), f).item() > 0


@pytest.fixture(scope="module")
def bench():
    return ll.lifelong_benchmark(("synth_species", "fashion_mnist"), (3, 3), (2, 2), 12, 6, 6, size=16, seed=0)


def test_benchmark_layout(bench):
    assert bench.train.images.shape[1:] == (3, 16, 16) and bench.test.images.dtype == torch.uint8
    assert [g.tolist() for g in bench.seen] == [[0, 1, 2], [5, 6, 7]]
    assert [g.tolist() for g in bench.unseen] == [[3, 4], [8, 9]]
    assert len(bench.eval_groups) == 4
    tr = set(bench.train.labels.tolist())
    assert tr == {0, 1, 2, 5, 6, 7}  # unseen classes never in training
    counts = np.bincount(bench.test.labels.numpy())
    assert counts[[0, 1, 2, 5, 6, 7]].tolist() == [6] * 6 and counts[[3, 4, 8, 9]].tolist() == [6] * 4
    assert int(bench.train.images[bench.train.labels == 5].float().std(1).max()) == 0  # grey → equal channels
    with pytest.raises(ValueError, match="datasets"):
        ll.lifelong_benchmark(("cub",))
    with pytest.raises(ValueError, match="n_seen"):
        ll.lifelong_benchmark(("fashion_mnist",), (9,), (3,))


def test_method_objectives():
    mk = lambda n: inc.make_net(n, "tiny", 16, 4)  # noqa: E731
    names = {m: [p.name for p in ll.lifelong_plugins(m, make_model=mk)] for m in ll.LIFELONG_METHODS if m != "joint"}
    assert names["ft"] == ["L_s"]
    assert names["kd"] == ["L_s", "L_kd1"]
    assert names["kd_replay"] == ["replay", "L_s", "L_kd1"]
    assert names["dkd"] == ["replay", "L_s", "L_kd1", "otf"]
    assert names["dkd_no_ls"] == ["replay", "L_kd1", "otf"]
    assert names["dkd_no_replay"] == ["L_s", "L_kd1", "otf"]
    assert names["otf"] == ["L_s", "otf"]
    with pytest.raises(ValueError, match="make_model"):
        ll.lifelong_plugins("dkd")
    with pytest.raises(ValueError, match="method"):
        ll.lifelong_plugins("lwf")


def test_short_lifelong_run_table_replay_and_otf(bench):
    torch.manual_seed(0)
    mk = lambda n: inc.make_net(n, "tiny", 16, 4)  # noqa: E731
    tf = inc.BatchTransform(mean=(0.5,) * 3, std=(0.25,) * 3, flip=True)
    cfg = inc.TrainConfig(iterations=[6, 4], P=3, K=4, lr=1e-3, device="cpu", seed=0, progress=False, log_every=1)
    kw = dict(replay=dict(n_images=12, n_clusters=3, steps=3, lr=0.05))
    res = ll.compare_lifelong(mk, bench, ["ft", "dkd", "joint"], cfg, tf, plugin_kwargs=kw, joint_iterations=5)
    assert list(res) == ["initial", "ft", "dkd", "joint"]
    tab = ll.lifelong_table(res, bench)
    assert tab.shape == (4, 6) and list(tab.columns.get_level_values(1)) == ["s", "u", "H"] * 2
    sc = ll.lifelong_scores(res["dkd"], 2)
    assert len(sc) == 2 and all(0 <= v["H"] <= 1 for v in sc)
    # DKD: generated images doubled the batch (12 real + 12 generated), the on-the-fly teacher trained and was scored
    replay, otf = res["dkd"].plugins[0], res["dkd"].plugins[-1]
    assert replay.results[1].images.shape == (12, 3, 16, 16)
    log = [l for l in res["dkd"].losses if l["task"] == 1]
    assert log and all(k in log[0] for k in ("L_s", "L_kd1", "L_kd2", "L_te2"))
    assert 1 in otf.evaluations and len(otf.evaluations[1]) == 4
    # two tables of seeds: mean ± std cells
    assert "±" in ll.lifelong_table([res, res], bench).iloc[1, 0]


def test_replay_batch_and_otf_use_only_real_images():
    class _T:  # the bits of a trainer the plugins touch
        pass

    torch.manual_seed(0)
    tr = _T()
    tr.config = inc.TrainConfig(P=2, K=2, device="cpu")
    tr.transform = None
    tr.device = torch.device("cpu")
    tr.train_set = inc.LabelledImages(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.arange(4))
    tr.model = inc.make_net(4, "tiny", 8, 4)
    tr.teachers = [inc.snapshot(tr.model)]
    rep = ll.GeneratedReplay(n_images=8, n_clusters=2, steps=2)
    rep.before_task(tr, 1)
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 0, 1, 1])
    xm, ym = rep.adapt_batch(tr, x, y)
    assert xm.shape == (8, 3, 8, 8) and torch.equal(xm[:4], x)
    assert (ym[4:] >= ll.PSEUDO_LABEL_BASE).all() and len(torch.unique(ym[4:])) == 2
    otf = ll.OnTheFlyTeacher(lambda n: inc.make_net(n, "tiny", 8, 4), lambda_kd2=1.0)
    otf.before_task(tr, 1)
    w0 = [p.detach().clone() for p in otf.net.parameters()]
    student = tr.model(xm)
    ctx = inc.StepContext(xm, ym, 1, 4, 0, student, tr)
    groups = otf.param_groups(tr, 1)  # the teacher's trunk + embedding, for the trainer's Adam
    own = {id(p) for g in groups for p in g["params"]}
    assert own == {id(p) for p in [*otf.net.trunk.parameters(), *otf.net.embed.parameters()]}
    assert not own & {id(p) for p in tr.model.parameters()}
    terms = otf.loss(ctx)
    assert set(terms) == {"L_te2", "L_kd2"} and terms["L_te2"].requires_grad
    terms["L_kd2"].backward(retain_graph=True)  # L_kd2: gradients reach the student only
    assert any(p.grad is not None for p in tr.model.parameters())
    assert all(p.grad is None for p in otf.net.parameters())
    student_grads = [p.grad.clone() for p in tr.model.parameters() if p.grad is not None]
    terms["L_te2"].backward()  # L_te2: gradients reach the teacher only
    assert all(
        torch.equal(a, p.grad) for a, p in zip(student_grads, [p for p in tr.model.parameters() if p.grad is not None])
    )
    torch.optim.Adam(groups).step()
    assert any(not torch.equal(a, b) for a, b in zip(w0, otf.net.parameters())), "the teacher is trained"


def test_benchmark_reads_converted_cub_lazily_and_resizes(tmp_path, monkeypatch):
    """A data_scripts-converted CUB (JPEG files of their own size, read through LazyImages) as a lifelong task:
    every image is resized to the common size; unseen classes take their test images first."""
    pytest.importorskip("scipy.io")
    from fixtures_real_formats import cub_fixture

    from data_scripts.convert import convert
    from xmr_lib.data import registry as data

    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    cub_fixture(tmp_path / "cub200" / "raw", n_classes=4, per_class=5, n_train=3)  # 3 train + 2 test per class
    convert("cub200", tmp_path)
    assert isinstance(data.load("cub200", "train", root=tmp_path).images, data.LazyImages)
    b = ll.lifelong_benchmark(("synth_species", "cub200"), (2, 2), (2, 2), 2, 2, 3, size=16, seed=0, data_root=tmp_path)
    assert b.train.images.shape == (8, 3, 16, 16) and b.test.images.shape[1:] == (3, 16, 16)
    assert b.datasets == ["synth_species", "cub200"] and [g.tolist() for g in b.seen] == [[0, 1], [4, 5]]
    counts = np.bincount(b.test.labels.numpy())
    assert counts[[4, 5]].tolist() == [2, 2] and counts[[6, 7]].tolist() == [3, 3]  # 2 test + 1 train image
    assert b.class_names[4].startswith("cub200 ") and "Albatross" in b.class_names[4]
    assert "stanford_dogs" in ll.DATASETS
    with pytest.raises(FileNotFoundError, match="data_scripts"):
        ll.lifelong_benchmark(("cub200",), (2,), (2,), data_root=tmp_path / "absent")


def test_full_profile_uses_cub_then_dogs_and_falls_back_to_the_embedded_sequence(tmp_path):
    """Notebook 07's full profile: the chapter's CUB → Dogs sequence from data_root; without it the fallback rule catches
    the FileNotFoundError below and runs ``FALLBACK_KNOBS`` (embedded datasets only, one setting per task)."""
    from xmr_lib.chapters.ch07 import config as ch07

    full = ch07.PROFILES["full"]
    assert full["datasets"] == ["cub200", "stanford_dogs"] and full["n_seen"] == [150, 100]
    fb = ch07.FALLBACK_KNOBS
    assert set(fb) <= set(full)
    assert all(d in ll.DATASETS and d not in ("cub200", "stanford_dogs") for d in fb["datasets"])
    assert len(fb["n_seen"]) == len(fb["n_unseen"]) == len(fb["datasets"])
    with pytest.raises(FileNotFoundError, match="fetch cub200"):
        ll.lifelong_benchmark(full["datasets"], (2, 2), (2, 2), 2, 2, 2, size=8, data_root=tmp_path)
    b = ll.lifelong_benchmark(fb["datasets"], (2, 2, 2), (2, 2, 2), 2, 2, 2, size=8, seed=0)
    assert b.datasets == fb["datasets"] and b.train.images.shape == (12, 3, 8, 8)
