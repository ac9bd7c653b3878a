"""xmr_lib.train.incremental: protocol, sampler, model, evaluation, trainer (teachers, plugins, checkpoints)."""

import math

import numpy as np
import pytest
import torch

from xmr_lib.core.checkpoint import Checkpoint
from xmr_lib.train import incremental as inc
from xmr_lib.train.finetune import freeze_batchnorm


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These nets are tiny: one thread is fastest, and much faster when other processes load the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------------------------ protocol


def test_class_increments_and_protocols():
    g = inc.class_increments(range(10), 4, 3)
    assert [x.tolist() for x in g] == [[0, 1, 2, 3], [4, 5], [6, 7], [8, 9]]
    assert [x.tolist() for x in inc.one_step_protocol([5, 3, 1, 0], 2)] == [[5, 3], [1, 0]]
    assert [len(x) for x in inc.multi_step_protocol(range(200), 100, 4)] == [100, 25, 25, 25, 25]
    with pytest.raises(ValueError, match="n_steps"):
        inc.class_increments(range(10), 4, 4)
    with pytest.raises(ValueError, match="n_first"):
        inc.class_increments(range(10), 10)
    with pytest.raises(ValueError, match="distinct"):
        inc.class_increments([1, 1, 2], 1)


def test_author_epoch_iterations():
    assert inc.author_epoch_iterations(100, 16, 5) == 6  # CUB stage 1: 500 samples, batch 80
    assert inc.author_epoch_iterations(25, 16, 5) == 1
    assert inc.author_epoch_iterations(15, 16, 5) == 0  # Dogs groups of 15: no batch at all (spec §8.13)


# ------------------------------------------------------------------------------------------------ data & sampling


def test_pk_sampler_batches():
    labels = np.repeat([3, 7, 9, 11], [10, 10, 10, 3])  # class 11 has fewer than K images
    s = inc.PKSampler(labels, P=2, K=4, seed=0, index=np.arange(100, 133))
    counts = {}
    for _ in range(40):
        b = s.next_batch()
        assert b.shape == (8,) and b.min() >= 100
        lab = labels[b - 100]
        cls, n = np.unique(lab, return_counts=True)
        assert len(cls) == 2 and (n == 4).all()
        for c in cls:
            counts[c] = counts.get(c, 0) + 1
        for c in cls:  # no repeats inside a class with >= K images
            if c != 11:
                assert len(set(b[lab == c])) == 4
    assert set(counts.values()) == {20}  # classes visited in rounds: equally often
    assert inc.PKSampler(labels, P=16, K=2).P == 4  # P capped at the number of classes
    with pytest.raises(ValueError, match="index"):
        inc.PKSampler(labels, index=np.arange(3))


def test_labelled_images_and_transform():
    x = np.zeros((4, 6, 6, 3), np.uint8)
    x[1] = 255
    d = inc.LabelledImages.from_arrays(x, [0, 1, 2, 1])
    assert d.images.shape == (4, 3, 6, 6) and d.subset([1]).labels.tolist() == [1, 1]
    assert inc.LabelledImages.from_arrays(np.zeros((2, 5, 5), np.uint8), [0, 1]).images.shape == (2, 1, 5, 5)
    with pytest.raises(ValueError, match="labels"):
        inc.LabelledImages(torch.zeros(3, 1, 4, 4), torch.tensor([0, 1]))
    t = inc.BatchTransform(mean=(0.5,), std=(0.25,))
    out = t(d.images)
    assert out[0].unique().tolist() == [-2.0] and out[1].unique().tolist() == [2.0]  # (0 − .5)/.25, (1 − .5)/.25
    # flips: a left-right ramp is mirrored for about half the images, reproducibly for a given generator
    ramp = torch.arange(8, dtype=torch.uint8).repeat(16, 1, 8, 1) * 30
    tf = inc.BatchTransform(mean=(0.0,), std=(1.0,), flip=True)
    a = tf(ramp, train=True, generator=torch.Generator().manual_seed(0))
    b = tf(ramp, train=True, generator=torch.Generator().manual_seed(0))
    flipped = a[:, 0, 0, 0] > a[:, 0, 0, -1]
    assert torch.equal(a, b) and 0 < flipped.sum() < 16
    assert torch.allclose(tf(ramp, train=False), ramp.float() / 255)  # no flip at test time
    crop = inc.BatchTransform(size=6, crop_scale=(0.3, 1.0))
    assert crop(torch.zeros(5, 3, 10, 10, dtype=torch.uint8), train=True).shape == (5, 3, 6, 6)
    centre = inc.BatchTransform(mean=(0.0,), std=(1.0,), size=2)
    img = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    assert centre(img).flatten().tolist() == [5.0, 6.0, 9.0, 10.0]  # CenterCrop(2) of 4×4


# ------------------------------------------------------------------------------------------------ model


def test_incremental_net_and_snapshot():
    torch.manual_seed(0)
    net = inc.IncrementalNet(*inc.tiny_bn_cnn(3, 4), embed_dim=8, n_classes=3)
    out = net(torch.randn(5, 3, 16, 16))
    assert out.embedding.shape == (5, 8) and out.logits.shape == (5, 3)
    assert torch.allclose(out.embedding.norm(dim=1), torch.ones(5))
    w = net.classifier.weight.detach().clone()
    net.add_classes(2)
    assert net.n_classes == 5 and torch.equal(net.classifier.weight[:3], w)
    teacher = inc.snapshot(net)
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        net.embed.weight.add_(1.0)
    assert not torch.equal(teacher.embed.weight, net.embed.weight)  # an independent copy
    net.set_num_classes(2)
    assert net.n_classes == 2 and torch.equal(net.classifier.weight, w[:2])
    with pytest.raises(ValueError, match="pool"):
        inc.IncrementalNet(torch.nn.Identity(), 4, pool="gem")


# ------------------------------------------------------------------------------------------------ evaluation


def _brute_force(emb, labels, ks):
    n = len(labels)
    s = emb @ emb.T
    hits = {k: 0 for k in ks}
    aps = []
    for q in range(n):
        others = [i for i in range(n) if i != q]
        order = sorted(others, key=lambda i: (-s[q, i], i))
        rel = [labels[i] == labels[q] for i in order]
        for k in ks:
            hits[k] += any(rel[:k])
        if any(rel):
            found, precs = 0, []
            for r, ok in enumerate(rel, 1):
                if ok:
                    found += 1
                    precs.append(found / r)
            aps.append(np.mean(precs))
    return {**{f"R@{k}": hits[k] / n for k in ks}, "mAP": float(np.mean(aps))}


def test_retrieval_metrics_hand_computed_and_brute_force():
    # 1-D "embeddings" on a line: ranking by inner product is by value
    emb = torch.tensor([[1.0], [0.9], [-1.0], [-0.8]])
    y = torch.tensor([0, 1, 0, 1])
    m = inc.retrieval_metrics(emb, y, ks=(1, 2))
    # by inner product: q0 ranks 1(✗) 3(✗) 2(✓) → AP 1/3; q1 ranks 0(✗) 3(✓) 2 → AP 1/2, R@2 hit;
    # q2 ranks 3(✗) 1(✗) 0(✓) → AP 1/3; q3 ranks 2(✗) 1(✓) 0 → AP 1/2, R@2 hit; no R@1 hit at all
    assert m["R@1"] == 0.0 and m["R@2"] == pytest.approx(0.5)
    assert m["mAP"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    g = torch.Generator().manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(30, 4, generator=g), dim=1)
    lab = torch.randint(0, 4, (30,), generator=g)
    got = inc.retrieval_metrics(e, lab, ks=(1, 2, 4))
    want = _brute_force(e.numpy(), lab.numpy(), (1, 2, 4))
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-6), k
    with pytest.raises(ValueError, match="embeddings, labels"):
        inc.retrieval_metrics(torch.zeros(3, 2), torch.zeros(4))


def test_result_matrix_and_forgetting():
    r = inc.IncrementalResult("x", [np.array([0]), np.array([1]), np.array([2])])
    vals = [[0.9, 0.1, 0.2], [0.6, 0.8, 0.3], [0.5, 0.7, 0.9]]
    r.steps = [{"groups": [{"mAP": v} for v in row]} for row in vals]
    r.seen = [1, 2, 3]
    R = r.matrix()
    assert np.isnan(R[0, 1]) and np.isnan(R[1, 2]) and R[2, 2] == 0.9
    assert r.forgetting(step=1) == pytest.approx(0.3)  # group 0: 0.9 → 0.6
    assert r.forgetting() == pytest.approx(((0.9 - 0.5) + (0.8 - 0.7)) / 2)
    assert r.forgetting_curve() == pytest.approx([0.3, 0.25])
    assert math.isnan(r.forgetting(step=0))


# ------------------------------------------------------------------------------------------------ training


def _toy_data(n_classes=4, per_class=12, seed=0):
    """Class c = a flat colour with noise: easy to learn in a few steps."""
    rng = np.random.default_rng(seed)
    cols = rng.integers(30, 225, (n_classes, 3))
    x = np.clip(cols[:, None, :, None, None] + rng.normal(0, 20, (n_classes, per_class, 3, 8, 8)), 0, 255)
    return inc.LabelledImages(
        torch.from_numpy(x.reshape(-1, 3, 8, 8).astype(np.uint8)), torch.arange(n_classes).repeat_interleave(per_class)
    )


class Recorder(inc.Plugin):
    name = "rec"

    def __init__(self):
        self.events, self.calls, self.teacher_seen = [], 0, []

    def before_task(self, trainer, task):
        self.events.append(("before", task))

    def adapt_batch(self, trainer, images, labels):
        self.calls += 1
        return images, labels

    def loss(self, ctx):
        self.teacher_seen.append(ctx.teacher is not None)
        if ctx.teacher is not None:
            assert ctx.teacher.logits.shape[1] == ctx.n_old  # the teacher knows the old columns
            assert ctx.teacher_output(0) is ctx.teacher_output(-1)  # one teacher so far, cached
        return None

    def after_task(self, trainer, task):
        self.events.append(("after", task))


def _trainer(plugins, tasks, iterations, checkpoint=None, name="t", cumulative=False, eval_groups=None, n=2):
    torch.manual_seed(0)
    data = _toy_data()
    model = inc.IncrementalNet(*inc.tiny_bn_cnn(3, 4), embed_dim=8, n_classes=n)
    cfg = inc.TrainConfig(
        iterations=iterations, P=2, K=4, lr=1e-2, device="cpu", progress=False, eval_every=2, log_every=1
    )
    return inc.IncrementalTrainer(
        model,
        data,
        data,
        tasks,
        plugins,
        cfg,
        inc.BatchTransform(),
        name=name,
        checkpoint=checkpoint,
        cumulative=cumulative,
        eval_groups=eval_groups,
    )


def test_trainer_runs_tasks_with_teachers_and_hooks():
    rec = Recorder()
    tasks = inc.one_step_protocol([2, 0, 3, 1], 2)
    tr = _trainer(inc.method_plugins("kd_mmd") + [rec], tasks, [30, 4])
    res = tr.run()
    assert rec.events == [("before", 0), ("after", 0), ("before", 1), ("after", 1)]
    assert rec.calls == 34 and rec.teacher_seen == [False] * 30 + [True] * 4
    assert len(tr.teachers) == 2 and tr.model.n_classes == 4
    assert tr.columns == {2: 0, 0: 1, 3: 2, 1: 3}  # task order
    assert res.seen == [1, 2] and res.steps[0]["old"] is None and res.steps[1]["old"] is not None
    R = res.matrix("R@1")
    assert R.shape == (2, 2) and np.isnan(R[0, 1])
    base_losses = [l["total"] for l in res.losses if l["task"] == 0]
    assert np.mean(base_losses[-5:]) < np.mean(base_losses[:5])  # the base task learns
    assert {"ce", "triplet", "kd", "mmd"} <= set(res.losses[-1])  # teacher terms in task 1
    assert "kd" not in res.losses[0]
    assert [c["iteration"] for c in res.curves] == [0, 2, 4]  # eval_every inside task 1
    assert res.steps[0]["groups"][0]["R@1"] > 0.5  # toy task is learnt


def test_trainer_start_from_and_joint():
    tasks = inc.one_step_protocol([0, 1, 2, 3], 2)
    base = _trainer(inc.method_plugins("ft"), tasks[:1], [20], eval_groups=tasks)
    rb = base.run()
    assert len(rb.steps[0]["groups"]) == 2 and rb.seen == [1]  # feature extraction on new
    ft = _trainer(inc.method_plugins("ft"), tasks, [0, 3]).start_from(base.model, rb.steps[0])
    assert len(ft.teachers) == 1
    res = ft.run()
    assert len(res.steps) == 2 and res.steps[0] == rb.steps[0]
    joint = _trainer(inc.method_plugins("joint"), [np.arange(4)], [5], eval_groups=tasks, n=4)
    rj = joint.run()
    assert rj.seen == [2] and rj.steps[0]["old"] is not None and rj.steps[0]["new"] is not None


def test_trainer_checkpoint_resume_and_fingerprint(tmp_path):
    tasks = inc.one_step_protocol([0, 1, 2, 3], 2)
    ck = Checkpoint("run", root=tmp_path)
    first = _trainer(inc.method_plugins("l2"), tasks, [5, 3], checkpoint=ck).run()
    assert ck.steps() == ["task0", "task1"]
    resumed_tr = _trainer(inc.method_plugins("l2"), tasks, [5, 3], checkpoint=ck)
    resumed = resumed_tr.run()
    assert resumed.steps == first.steps and len(resumed_tr.teachers) == 2  # loaded, timings included
    assert torch.equal(resumed_tr.teachers[0].embed.weight, resumed_tr.teachers[0].embed.weight)
    ck_ewc = Checkpoint("ewc", root=tmp_path)
    _trainer(inc.method_plugins("ewc"), tasks, [5, 3], checkpoint=ck_ewc).run()
    back = _trainer(inc.method_plugins("ewc"), tasks, [5, 3], checkpoint=ck_ewc)
    back.run()  # resumed: plugin state restored
    assert len([p for p in back.plugins if isinstance(p, inc.EWC)][0].anchors) == 2
    rec = Recorder()
    other = _trainer(inc.method_plugins("l2") + [rec], tasks, [5, 3], checkpoint=ck)
    with pytest.warns(UserWarning, match="other settings"):  # another objective: retrain
        other.run()
    assert rec.calls == 8


def test_ewc_penalty_and_method_plugins():
    tasks = inc.one_step_protocol([0, 1, 2, 3], 2)
    tr = _trainer(inc.method_plugins("ewc", ewc_weight=10.0), tasks, [5, 2])
    tr.run()
    ewc = [p for p in tr.plugins if isinstance(p, inc.EWC)][0]
    assert len(ewc.anchors) == 2
    theta, fisher = ewc.anchors[-1]
    assert all((f >= 0).all() for f in fisher.values()) and sum(f.sum() for f in fisher.values()) > 0
    ctx = inc.StepContext(None, None, 2, 4, 0, inc.Output(torch.zeros(1, 8), None), tr)
    ewc.anchors = ewc.anchors[-1:]
    assert float(ewc.loss(ctx).detach()) == pytest.approx(0.0)  # at the anchor
    with torch.no_grad():
        tr.model.embed.weight.add_(0.1)
    assert float(ewc.loss(ctx).detach()) > 0
    names = {m: [p.name for p in inc.method_plugins(m)] for m in inc.METHODS}
    assert names["ft"] == ["ce", "triplet"] and names["kd_mmd"] == ["ce", "triplet", "kd", "mmd"]
    assert names["lwf"][-1] == "kd" and names["l2"][-1] == "l2" and names["mmd"][-1] == "mmd"
    with pytest.raises(ValueError, match="method"):
        inc.method_plugins("icarl")


def test_trainer_validation():
    data = _toy_data()
    net = inc.IncrementalNet(*inc.tiny_bn_cnn(3, 4), embed_dim=8, n_classes=2)
    with pytest.raises(ValueError, match="more than one task"):
        inc.IncrementalTrainer(net, data, data, [[0, 1], [1, 2]], inc.method_plugins("ft"))
    with pytest.raises(ValueError, match="no images"):
        inc.IncrementalTrainer(net, data, data, [[0, 1], [7]], inc.method_plugins("ft"))
    with pytest.raises(ValueError, match="plugins"):
        inc.IncrementalTrainer(net, data, data, [[0, 1]], [])
    tr = _trainer([inc.mmd_term()], [[0, 1]], [2])
    with pytest.raises(ValueError, match="no loss term is active"):
        tr.run()


# ------------------------------------------------------------------------------------------------ helpers


def test_per_class_split_and_to_labelled():
    y = np.repeat([0, 1, 2], [10, 5, 2])
    tr, te = inc.per_class_split(y, 0.6, seed=0)
    assert np.bincount(y[tr]).tolist() == [6, 3, 1] and np.bincount(y[te]).tolist() == [4, 2, 1]
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(y)
    assert np.array_equal(inc.per_class_split(y, 0.6, seed=0)[0], tr)  # seeded
    with pytest.raises(ValueError, match="train_fraction"):
        inc.per_class_split(y, 1.0)
    ims = [np.zeros((20, 10, 3), np.uint8), np.full((8, 16, 3), 255, np.uint8)]
    d = inc.to_labelled(ims, [0, 1], size=8)  # shorter side → 8, centre crop
    assert d.images.shape == (2, 3, 8, 8) and int(d.images[1].min()) == 255


def test_synth_species_disjoint_design():
    train, test, names = inc.synth_species_disjoint(3, 2, train_per_class=4, test_per_class=2, size=16, seed=0)
    assert train.images.shape == (20, 3, 16, 16) and test.images.shape == (10, 3, 16, 16)
    assert train.images.dtype == torch.uint8 and len(names) == 5
    assert names[0].startswith("A:") and names[3].startswith("B:")
    again, _, _ = inc.synth_species_disjoint(3, 2, train_per_class=4, test_per_class=2, size=16, seed=0)
    assert torch.equal(train.images, again.images)  # deterministic
    a = inc.DISJOINT_TASKS["A"]
    b = inc.DISJOINT_TASKS["B"]
    assert len({(x["body_hue"], x["head_hue"]) for x in a}) == 9 and {x["stripes"] for x in a} == {0}
    assert len({(x["stripes"], x["aspect"]) for x in b}) == 9 and {x["body_hue"] for x in b} == {0.0}


def test_compare_methods_and_results_table():
    data = _toy_data()
    tasks = inc.one_step_protocol([0, 1, 2, 3], 2)
    cfg = inc.TrainConfig(iterations=[6, 3], P=2, K=4, device="cpu", progress=False)
    make = lambda n: inc.make_net(n, "tiny", embed_dim=8, width=4)  # noqa: E731
    res = inc.compare_methods(
        make, data, data, tasks, ["ft", "kd_mmd", "joint"], cfg, inc.BatchTransform(), joint_iterations=4
    )
    assert list(res) == ["initial", "ft", "kd_mmd", "joint"]
    assert res["ft"].steps[0] == res["initial"].steps[0]  # one shared network A
    assert len(res["joint"].steps) == 1 and res["joint"].model.n_classes == 4
    alone = inc.compare_methods(make, data, data, tasks, ["joint"], cfg, inc.BatchTransform(), joint_iterations=4)
    assert list(alone) == ["joint"] and alone["joint"].losses == res["joint"].losses  # no base: the same joint run
    assert [{**st, "seconds": 0} for st in alone["joint"].steps] == [{**st, "seconds": 0} for st in res["joint"].steps]
    assert all(r.model is not None for r in res.values())
    multi = inc.compare_methods(
        make,
        data,
        data,
        inc.multi_step_protocol([0, 1, 2, 3], 2, 2),
        ["ft"],
        inc.TrainConfig(iterations=[6, 2, 2], P=2, K=4, device="cpu", progress=False),
        inc.BatchTransform(),
        base=res["initial"],
    )
    assert len(multi["ft"].steps[0]["groups"]) == 3  # A re-evaluated on 3 groups
    table = inc.results_table({k: v for k, v in res.items() if k != "initial"}, metrics=("R@1",))
    assert list(table.index) == ["initial model", "feature extraction", "ft", "kd_mmd", "joint"]
    assert table.loc["ft", ("old", "R@1")] == pytest.approx(100 * res["ft"].steps[-1]["old"]["R@1"])
    with pytest.raises(ValueError, match="methods"):
        inc.compare_methods(make, data, data, tasks, ["icarl"], cfg)
    with pytest.raises(ValueError, match="backbone"):
        inc.make_net(2, "vit")


# ------------------------------------------------------------------------------------------------ hooks


class StepCounter(inc.Plugin):
    """Counts after_step calls and checks that they follow the optimiser step."""

    name = "steps"

    def __init__(self):
        self.steps, self.losses, self.embed_changed = [], [], []
        self._w = None

    def loss(self, ctx):
        self._w = ctx.trainer.model.embed.weight.detach().clone()
        return None

    def after_step(self, trainer, ctx):
        self.steps.append((ctx.task, ctx.iteration))
        self.losses.append(float(ctx.loss.detach()))
        assert set(ctx.terms) >= {"ce", "triplet"} or set(ctx.terms) == {"triplet"}
        self.embed_changed.append(not torch.equal(self._w, trainer.model.embed.weight))  # after opt.step()


def test_after_step_is_called_once_per_step():
    sc = StepCounter()
    tasks = inc.one_step_protocol([0, 1, 2, 3], 2)
    res = _trainer(inc.method_plugins("ft") + [sc], tasks, [5, 3]).run()
    assert sc.steps == [(0, i) for i in range(5)] + [(1, i) for i in range(3)]
    assert all(sc.embed_changed)  # the model was already updated
    assert sc.losses == pytest.approx([l["total"] for l in res.losses])  # log_every=1: one log per step
    assert res.plugin(StepCounter) is sc and res.plugin("steps") is sc
    with pytest.raises(ValueError, match="kind"):
        res.plugin("nope")


class OwnParameter(inc.Plugin):
    """A plugin that trains a parameter of its own: ``w → target`` through a loss term of its own."""

    name = "own"

    def __init__(self, target=3.0, lr=None):
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.target, self.lr, self.values = target, lr, []

    def param_groups(self, trainer, task):
        return [{"params": [self.w]} if self.lr is None else {"params": [self.w], "lr": self.lr}]

    def loss(self, ctx):
        return {"own": (self.w - self.target) ** 2}

    def after_step(self, trainer, ctx):
        self.values.append(float(self.w.detach()))


def test_plugin_parameters_are_optimised_with_the_model():
    tasks = inc.one_step_protocol([0, 1, 2, 3], 2)
    own = OwnParameter(lr=0.5)
    tr = _trainer(inc.method_plugins("ft") + [own], tasks, [20, 5])
    tr.run()
    assert abs(float(own.w.detach()) - 3.0) < 1.0 and own.values[0] == pytest.approx(0.5)  # Adam's first step = lr
    # same model updates as without the plugin: its gradient never reaches the model
    ref = _trainer(inc.method_plugins("ft"), tasks, [20, 5])
    ref.run()
    assert torch.equal(ref.model.embed.weight, tr.model.embed.weight)
    dflt = OwnParameter()
    _trainer(inc.method_plugins("ft") + [dflt], tasks[:1], [3]).run()
    assert dflt.values[0] == pytest.approx(1e-2)  # default lr: config.lr

    class Bad(inc.Plugin):
        def param_groups(self, trainer, task):
            return [torch.zeros(1)]

    with pytest.raises(ValueError, match="param_groups"):
        _trainer(inc.method_plugins("ft") + [Bad()], tasks[:1], [2]).run()


def test_cpu_threads_is_set_and_restored():
    n = torch.get_num_threads()
    seen = []

    class Threads(inc.Plugin):
        def after_step(self, trainer, ctx):
            seen.append(torch.get_num_threads())

    tr = _trainer(inc.method_plugins("ft") + [Threads()], [[0, 1]], [2])
    tr.config.cpu_threads = 2 if n == 1 else 1
    fp = tr._fingerprint()
    tr.run()
    assert seen == [tr.config.cpu_threads] * 2 and torch.get_num_threads() == n
    tr.config.cpu_threads = None
    assert tr._fingerprint() == fp  # not part of the checkpoint fingerprint
    with pytest.raises(ValueError, match="cpu_threads"):
        inc.IncrementalTrainer(
            tr.model,
            tr.train_set,
            tr.test_set,
            [[0, 1]],
            inc.method_plugins("ft"),
            inc.TrainConfig(cpu_threads=0, device="cpu"),
        )


class KeepLast(inc.Plugin):
    """Keeps a copy of the model after every task (what notebook 06 needs for its figures)."""

    name = "keep"

    def __init__(self):
        self.models = []

    def after_task(self, trainer, task):
        self.models.append(inc.snapshot(trainer.model))


def test_compare_methods_base_plugins_and_returned_plugins():
    data = _toy_data()
    tasks = inc.one_step_protocol([0, 1, 2, 3], 2)
    cfg = inc.TrainConfig(iterations=[6, 3], P=2, K=4, device="cpu", progress=False, log_every=1)
    make = lambda n: inc.make_net(n, "tiny", embed_dim=8, width=4)  # noqa: E731
    counter = StepCounter()
    res = inc.compare_methods(
        make,
        data,
        data,
        tasks,
        {"ft": lambda: inc.method_plugins("ft") + [KeepLast()], "joint": lambda: inc.method_plugins("joint")},
        cfg,
        inc.BatchTransform(),
        joint_iterations=2,
        base_plugins=lambda: [inc.triplet_term(), counter],
    )
    base = res["initial"]
    assert counter.steps == [(0, i) for i in range(6)] and base.plugin("steps") is counter  # the base's objective
    assert {k for l in base.losses for k in l} == {"task", "iteration", "global_iteration", "triplet", "total"}
    keep = res["ft"].plugin(KeepLast)  # what the plugin kept
    assert len(keep.models) == 2 and keep.models[1].n_classes == 4  # base (start_from) and f_1
    assert torch.equal(keep.models[0].embed.weight, base.model.embed.weight)
    assert [type(p).__name__ for p in res["joint"].plugins] == ["LossTerm", "LossTerm"]
    # default base objective unchanged (chapter 5's L_ce + L_triplet); other evaluation groups
    res2 = inc.compare_methods(
        make,
        data,
        data,
        tasks[:1],
        ["ft"],
        inc.TrainConfig(iterations=[4], P=2, K=4, device="cpu", progress=False),
        inc.BatchTransform(),
        eval_groups=tasks,
    )
    assert [p.name for p in res2["initial"].plugins] == ["ce", "triplet"]
    assert len(res2["initial"].steps[0]["groups"]) == 2 and len(res2["ft"].steps[0]["groups"]) == 2
    with pytest.raises(ValueError, match="base_plugins"):
        inc.compare_methods(make, data, data, tasks, ["ft"], cfg, base_plugins=[])


def test_ch05_full_profile_falls_back_to_synth_species():
    """Notebook 05's full profile runs CUB-200 when present, else ``FALLBACK_KNOBS``: embedded SynthSpecies settings
    that build the disjoint-attribute benchmark (tiny trunk, 32 px)."""
    from xmr_lib.chapters.ch05 import config as ch05
    from xmr_lib.core import claims

    full, fb = ch05.PROFILES["full"], ch05.FALLBACK_KNOBS
    assert full["dataset"] == "cub200"
    assert set(fb) <= set(full) and fb["dataset"] == "synth_species" and fb["backbone"] == "tiny"
    train, test, names = inc.synth_species_disjoint(fb["n_old"], fb["n_new"], 2, 1, fb["image_size"], seed=0)
    assert train.images.shape == (2 * (fb["n_old"] + fb["n_new"]), 3, 32, 32) and len(names) == 18
    full_claims = [c for c in ch05.CLAIMS if c.profiles == ("full",)]
    # one gate (the data/real marker), and each dataset scored against its own tables
    assert full_claims and all(claims.is_real_data_only(c) for c in full_claims)
    for c in full_claims:
        ds = {m.split("/")[0] for m in c.metrics if m != claims.REAL_DATA}
        assert ds in ({"cub200"}, {"stanford_dogs"}, {"cifar100"}), c.id
        tables = {
            "cub200": ("Table 5.2", "Table 5.4", "Table 5.7", "Table 5.8", "Table 5.9"),
            "stanford_dogs": ("Table 5.3", "Table 5.5", "Table 5.10"),
            "cifar100": ("Table 5.6",),
        }
        assert c.source in tables[ds.pop()], c.id
    assert {c.id.split("_")[0] for c in full_claims} == {"05.cub200", "05.stanford", "05.cifar100"}


class _Crash(inc.Plugin):
    """Simulates the machine dying at the start of task ``at`` (not part of the fingerprint: same in every run)."""

    name = "crash"

    def __init__(self, at=None):
        self.at = at

    def before_task(self, trainer, task):
        if task == self.at:
            raise KeyboardInterrupt(f"killed before task {task}")


def _augmented(plugins, checkpoint=None):
    torch.manual_seed(0)
    data = _toy_data()
    model = inc.IncrementalNet(*inc.tiny_bn_cnn(3, 4), embed_dim=8, n_classes=2)
    cfg = inc.TrainConfig(iterations=[4, 3, 3], P=2, K=4, lr=1e-2, device="cpu", progress=False, log_every=1)
    transform = inc.BatchTransform(size=12, flip=True, crop_scale=(0.3, 1.0))
    tasks = inc.multi_step_protocol([0, 1, 2, 3], 2, n_steps=2)
    return inc.IncrementalTrainer(model, data, data, tasks, plugins, cfg, transform, name="aug", checkpoint=checkpoint)


def _without_times(res):
    return [{k: v for k, v in s.items() if k != "seconds"} for s in res.steps], res.losses


def test_resume_after_every_task_with_augmentation_is_bit_identical(tmp_path):
    """Interrupted after each task in turn and resumed from its checkpoint, a run with random crops and flips
    ends with the same metrics, loss curve and weights as the uninterrupted run: every RNG state is checkpointed."""
    ref_tr = _augmented(inc.method_plugins("kd_mmd") + [_Crash()])
    ref = ref_tr.run()
    for at in (1, 2):
        ck = Checkpoint(f"crash{at}", root=tmp_path)
        with pytest.raises(KeyboardInterrupt):
            _augmented(inc.method_plugins("kd_mmd") + [_Crash(at)], checkpoint=ck).run()
        assert ck.steps() == [f"task{t}" for t in range(at)]
        tr = _augmented(inc.method_plugins("kd_mmd") + [_Crash()], checkpoint=ck)
        res = tr.run()
        assert _without_times(res) == _without_times(ref)
        for a, b in zip(tr.model.state_dict().values(), ref_tr.model.state_dict().values()):
            assert torch.equal(a, b)


def test_checkpoint_is_not_reused_for_other_data_of_the_same_size(tmp_path):
    ck = Checkpoint("data", root=tmp_path)
    tr = _augmented(inc.method_plugins("ft"), checkpoint=ck)
    tr.run()
    other = _augmented(inc.method_plugins("ft"), checkpoint=ck)
    other.train_set.images[0] = 255 - other.train_set.images[0]  # same size, other content
    other._data_digest_cache = None
    with pytest.warns(UserWarning, match="other settings"):
        other.run()


# ------------------------------------------------------------------------------------------------ the tiny trunk's pool


@pytest.mark.parametrize("shape", [(4, 3, 8, 8), (2, 5, 7, 9), (3, 2, 2, 2)])
def test_maxpool2x2_matches_maxpool2d_values_and_gradients(shape):
    g = torch.Generator().manual_seed(0)
    x0 = torch.relu(torch.randn(*shape, generator=g))  # zeros tie, as after the trunk's ReLU
    x0[0, 0, 0, 0] = x0[0, 0, 0, 1] = 3.0  # a positive tie: both pools route the gradient to the first maximum
    grad = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2, generator=g)
    results = []
    for pool in (torch.nn.MaxPool2d(2), inc.MaxPool2x2()):
        x = x0.clone().requires_grad_()
        y = pool(x)
        y.backward(grad)
        with torch.no_grad():
            y_nograd = pool(x0)  # the strided-maximum path
        results.append((y.detach(), x.grad, y_nograd))
    (y_ref, g_ref, n_ref), (y_new, g_new, n_new) = results
    assert torch.equal(y_ref, y_new) and torch.equal(g_ref, g_new) and torch.equal(n_ref, n_new)
    assert y_new.is_contiguous() and n_new.shape == n_ref.shape
    assert g_new[0, 0, 0, 0] == grad[0, 0, 0, 0] and g_new[0, 0, 0, 1] == 0


def test_tiny_trunk_uses_maxpool2x2_with_unchanged_state_dict():
    trunk, _ = inc.tiny_bn_cnn(3, 4)
    assert sum(isinstance(m, inc.MaxPool2x2) for m in trunk) == 3
    keys = list(trunk.state_dict())
    assert keys[:3] == ["0.weight", "1.weight", "1.bias"] and "4.weight" in keys  # MaxPool2d's slot 3, as before


def test_embed_leaves_a_frozen_batchnorm_frozen():
    """Evaluating mid-task (eval_every) must not wake the trunk's frozen BatchNorm (freeze_bn=True)."""
    net = inc.make_net(4, backbone="tiny", embed_dim=8, width=4, in_channels=3)
    net.train()
    freeze_batchnorm(net.trunk)
    before = {n: m.training for n, m in net.named_modules()}
    assert not all(before.values()) and any(before.values())
    inc.embed(net, torch.rand(5, 3, 16, 16))
    assert {n: m.training for n, m in net.named_modules()} == before
