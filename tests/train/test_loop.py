"""The one training loop: hooks in order, step / epoch modes, early stop, AMP off the GPU, and checkpoints whose
resume is bit-identical to the uninterrupted fit (every RNG state and the global step travel with them)."""

import json
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from xmr_lib.core.checkpoint import Checkpoint
from xmr_lib.train import loop

ROOT = Path(__file__).resolve().parents[2]


class ToyTask(loop.Task):
    """A small MLP with dropout (torch's global RNG) on inputs with NumPy-global and Python-random noise, batches
    in an order drawn from the task's own generator: every kind of random state a fit can consume."""

    def __init__(self, init_seed=0, batch=8, n=40, stream=False):
        torch.manual_seed(init_seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1)
        )
        g = torch.Generator().manual_seed(123)
        self.x, self.y = torch.randn(n, 6, generator=g), torch.randn(n, 1, generator=g)
        self.gen = torch.Generator().manual_seed(7)
        self.batch, self.n, self.stream = batch, n, stream
        self.order, self.pos = None, n  # the stream's position (step mode): part of the state
        self.losses = []

    def on_fit_start(self, trainer):
        self.net.to(trainer.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-2)

    def batches(self, trainer, epoch):
        if not self.stream:
            order = torch.randperm(self.n, generator=self.gen)
            for b in range(0, self.n, self.batch):
                yield order[b : b + self.batch]
            return
        while True:
            if self.pos + self.batch > self.n:
                self.order, self.pos = torch.randperm(self.n, generator=self.gen), 0
            self.pos += self.batch
            yield self.order[self.pos - self.batch : self.pos]

    def training_step(self, trainer, idx):
        noise = torch.from_numpy(np.random.normal(0, 0.1, (len(idx), 6)).astype(np.float32)) * random.random()
        x = (self.x[idx] + noise).to(trainer.device)
        loss = torch.nn.functional.mse_loss(self.net(x), self.y[idx].to(trainer.device))
        return {"loss": loss, "value": float(loss.detach())}

    def optimizers(self, trainer, idx):
        return [self.opt]

    def on_step_end(self, trainer, idx, out):
        self.losses.append(out["value"])
        trainer.metrics["loss"] = out["value"]

    def generators(self):
        return {"batches": self.gen}

    def state_dict(self):
        return {
            "net": self.net.state_dict(),
            "opt": self.opt.state_dict(),
            "losses": list(self.losses),
            "order": self.order,
            "pos": self.pos,
        }

    def load_state_dict(self, st):
        self.net.load_state_dict(st["net"])
        self.opt.load_state_dict(st["opt"])
        self.losses, self.order, self.pos = list(st["losses"]), st["order"], st["pos"]


def _scramble():
    """A new process's random state: nothing left over from the first half of a fit."""
    random.seed(999)
    np.random.seed(999)
    torch.manual_seed(999)


def _same(a: ToyTask, b: ToyTask):
    assert a.losses == b.losses
    for p, q in zip(a.net.state_dict().values(), b.net.state_dict().values()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("stream", [False, True])
def test_resume_is_bit_identical(tmp_path, stream):
    kw = dict(max_steps=10) if stream else dict(max_epochs=4)
    half = dict(max_steps=5) if stream else dict(max_epochs=2)
    _scramble()
    straight = loop.Trainer(device="cpu", progress=False, **kw).fit(ToyTask(stream=stream))
    after_straight = (torch.rand(1).item(), np.random.rand(), random.random())  # where the global streams ended

    ck = Checkpoint("toy", root=tmp_path)
    _scramble()
    loop.Trainer(device="cpu", progress=False, checkpoint=ck, **half).fit(ToyTask(stream=stream))
    _scramble()
    resumed_tr = loop.Trainer(device="cpu", progress=False, checkpoint=ck, **kw)
    resumed = resumed_tr.fit(ToyTask(init_seed=5, stream=stream))  # other weights: all must come from disk
    assert resumed_tr.resumed_from == ("step_5" if stream else "epoch_1")
    steps = 10 if stream else 4 * 5  # 40 items, batches of 8
    assert resumed_tr.global_step == steps and len(resumed.losses) == steps
    _same(straight, resumed)
    assert (torch.rand(1).item(), np.random.rand(), random.random()) == after_straight
    assert ck.steps() == (["step_10", "step_5"] if stream else ["epoch_0", "epoch_1", "epoch_2", "epoch_3"])


_CHILD = """
import json, random, sys
import numpy as np, torch
sys.path.insert(0, {tests!r})
from test_loop import ToyTask
from xmr_lib.core.checkpoint import Checkpoint
from xmr_lib.train import loop
random.seed(1); np.random.seed(1); torch.manual_seed(1)
t = loop.Trainer(max_epochs=4, device="cpu", progress=False, checkpoint=Checkpoint("toy", root={root!r})).fit(ToyTask(3))
json.dump({{"losses": t.losses, "params": [p.tolist() for p in t.net.state_dict().values()]}}, open({out!r}, "w"))
"""


def test_resume_in_a_new_process_is_bit_identical(tmp_path):
    _scramble()
    straight = loop.Trainer(max_epochs=4, device="cpu", progress=False).fit(ToyTask())
    _scramble()
    loop.Trainer(max_epochs=2, device="cpu", progress=False, checkpoint=Checkpoint("toy", root=tmp_path)).fit(ToyTask())
    out = tmp_path / "child.json"
    code = _CHILD.format(tests=str(Path(__file__).parent), root=str(tmp_path), out=str(out))
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    child = json.loads(out.read_text())
    assert child["losses"] == straight.losses
    for p, q in zip(straight.net.state_dict().values(), child["params"]):
        assert torch.equal(p, torch.tensor(q, dtype=p.dtype))


class Recorder(loop.Hook):
    def __init__(self):
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            calls = object.__getattribute__(self, "calls")
            return lambda trainer, *a: calls.append((name, trainer.epoch, trainer.global_step))
        return object.__getattribute__(self, name)


def test_hooks_run_in_order_after_the_task():
    seen = []
    task = loop.Task(
        batches=lambda tr, e: iter([0, 1]),
        training_step=lambda tr, b: None,
        on_step_end=lambda tr, b, out: seen.append(("task", tr.global_step)),
    )
    rec = Recorder()
    loop.Trainer(max_epochs=2, device="cpu", progress=False, hooks=[rec]).fit(task)
    names = [c[0] for c in rec.calls]
    assert names == ["on_fit_start"] + [
        "on_epoch_start",
        "on_step_start",
        "on_step_end",
        "on_step_start",
        "on_step_end",
        "on_epoch_end",
    ] * 2 + ["on_fit_end"]
    assert ("on_step_end", 0, 1) in rec.calls and ("on_epoch_end", 1, 4) in rec.calls
    assert seen == [("task", 1), ("task", 2), ("task", 3), ("task", 4)]


def test_max_steps_caps_epochs_and_step_mode_needs_an_endless_stream():
    t = loop.Trainer(max_epochs=10, max_steps=7, device="cpu", progress=False).fit(ToyTask())
    assert len(t.losses) == 7
    finite = loop.Task(batches=lambda tr, e: iter([0, 1]), training_step=lambda tr, b: None)
    with pytest.raises(ValueError, match="endless"):
        loop.Trainer(max_steps=3, device="cpu", progress=False).fit(finite)
    assert len(loop.Trainer(max_steps=0, device="cpu", progress=False).fit(ToyTask(stream=True)).losses) == 0


def test_early_stopping_stops_and_its_state_resumes(tmp_path):
    values = iter([5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 2.0])

    def on_epoch_end(tr, epoch):
        tr.metrics["loss"] = next(values)

    def make():
        return loop.Task(batches=lambda tr, e: iter([0]), training_step=lambda tr, b: None, on_epoch_end=on_epoch_end)

    es = loop.EarlyStopping("loss", patience=2)
    tr = loop.Trainer(max_epochs=7, device="cpu", progress=False, hooks=[es])
    tr.fit(make())
    assert tr.should_stop and tr.epoch == 3 and es.best == 4.0 and es.bad == 2  # 4.5 and 4.2 do not beat 4.0
    with pytest.raises(ValueError, match="mode"):
        loop.EarlyStopping(mode="up")

    values = iter([5.0, 4.0, 4.5, 4.2])
    ck = Checkpoint("es", root=tmp_path)
    loop.Trainer(max_epochs=3, device="cpu", progress=False, checkpoint=ck, hooks=[loop.EarlyStopping(patience=2)]).fit(
        make()
    )
    es2 = loop.EarlyStopping(patience=2)
    tr2 = loop.Trainer(max_epochs=7, device="cpu", progress=False, checkpoint=ck, hooks=[es2])
    tr2.fit(make())
    assert (es2.best, es2.bad, tr2.epoch, tr2.should_stop) == (4.0, 2, 3, True)  # epoch 3 only: then it stops


def test_device_amp_and_validation():
    tr = loop.Trainer(max_epochs=1, device="auto", amp=True, progress=False)
    assert tr.device.type == ("cuda" if torch.cuda.is_available() else tr.device.type)
    assert tr.amp == (tr.device.type == "cuda")  # AMP only on CUDA
    assert loop.Trainer(max_epochs=1, device="cpu", amp=True).amp is False
    with pytest.raises(ValueError, match="max_epochs, max_steps"):
        loop.Trainer()
    with pytest.raises(ValueError, match="unknown hook"):
        loop.Task(training_stp=lambda tr, b: None)
    no_opt = loop.Task(batches=lambda tr, e: iter([0]), training_step=lambda tr, b: torch.zeros((), requires_grad=True))
    with pytest.raises(ValueError, match="no optimiser"):
        loop.Trainer(max_epochs=1, device="cpu", progress=False).fit(no_opt)


def test_a_foreign_checkpoint_is_ignored(tmp_path):
    ck = Checkpoint("foreign", root=tmp_path)
    ck.save("epoch_0", {"net": {}})  # not written by the loop
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        tr = loop.Trainer(max_epochs=1, device="cpu", progress=False, checkpoint=ck)
        tr.fit(ToyTask())
    assert tr.resumed_from is None and any("not written by" in str(x.message) for x in w)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="AMP runs on CUDA only")
def test_amp_trains_on_cuda(tmp_path):
    straight = loop.Trainer(max_epochs=4, device="cuda", amp=True, progress=False).fit(ToyTask())
    assert all(np.isfinite(straight.losses)) and straight.losses[-1] < straight.losses[0]
    ck = Checkpoint("amp", root=tmp_path)
    _scramble()
    s2 = loop.Trainer(max_epochs=4, device="cuda", amp=True, progress=False).fit(ToyTask())
    _scramble()
    loop.Trainer(max_epochs=2, device="cuda", amp=True, progress=False, checkpoint=ck).fit(ToyTask())
    _scramble()
    tr = loop.Trainer(max_epochs=4, device="cuda", amp=True, progress=False, checkpoint=ck)
    resumed = tr.fit(ToyTask(init_seed=5))
    assert tr.scaler is None and tr.amp_dtype == torch.bfloat16 and tr.resumed_from == "epoch_1"  # bf16: no scaler
    _same(s2, resumed)
    fp16 = loop.Trainer(max_epochs=2, device="cuda", amp="fp16", progress=False)
    assert all(np.isfinite(fp16.fit(ToyTask()).losses)) and fp16.scaler is not None


def test_an_unreadable_last_checkpoint_falls_back_to_the_one_before(tmp_path):
    _scramble()
    straight = loop.Trainer(max_epochs=3, device="cpu", progress=False).fit(ToyTask())
    ck = Checkpoint("broken", root=tmp_path)
    _scramble()
    loop.Trainer(max_epochs=2, device="cpu", progress=False, checkpoint=ck).fit(ToyTask())
    ck.path("epoch_1").write_bytes(b"half a file")  # the machine died while writing it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = loop.Trainer(max_epochs=3, device="cpu", progress=False, checkpoint=ck)
        resumed = tr.fit(ToyTask(init_seed=5))
    assert tr.resumed_from == "epoch_0"
    _same(straight, resumed)


# --------------------------------------------------------------------------------------------- the methods' tasks


def test_the_methods_are_tasks_that_a_trainer_runs_like_their_functions():
    """Each ported method is a module-level Task subclass; its public function only validates, builds the task and
    fits it, so driving the task by hand gives the function's result bit for bit."""
    from xmr_lib.chapters.ch03.hashing import HashingTask
    from xmr_lib.chapters.ch04.adversarial import CommonSpaceTask
    from xmr_lib.chapters.ch08 import transfer as T
    from xmr_lib.chapters.ch10 import common_space as cs
    from xmr_lib.train.finetune import FinetuneTask

    for cls in (HashingTask, FinetuneTask, T.HeadsTask, cs.CommonSpaceTrainTask, CommonSpaceTask):
        assert issubclass(cls, loop.Task) and "training_step" in vars(cls), cls

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    xi = (rng.normal(size=(3, 6))[y] + rng.normal(size=(60, 6))).astype(np.float32)
    xt = (rng.normal(size=(3, 5))[y] + rng.normal(size=(60, 5))).astype(np.float32)

    cfg = cs.CommonSpaceTrainConfig(objective="adversarial", hidden=8, latent=4, iterations=7, batch_size=16)
    model, hist = cs.train_common_space_model(xi, xt, y, cfg, seed=1)
    torch.manual_seed(1)
    mine = cs.IsomorphicNet(6, 5, 3, 8, 4, cfg.mode, cfg.share, cfg.dropout, cfg.latent_dropout, cfg.init_std, 1)
    task = cs.CommonSpaceTrainTask(mine, cfg, xi, xt, y, 3, seed=1, device=torch.device("cpu"))
    loop.Trainer(max_steps=7, device="cpu", progress=False).fit(task)
    assert task.hist == hist and len(hist["adv"]) == 7
    for a, b in zip(model.parameters(), mine.parameters()):
        assert torch.equal(a, b)

    heads = {"a": T.xavier_init(3, 6, seed=0), "b": T.xavier_init(3, 6, seed=1)}
    h = T.fine_tune_heads(heads, xi, y, xi, y, iterations=9, batch_size=16, dropout=0.5, eval_every=4, seed=2)
    task = T.HeadsTask(
        np.stack([heads[k][0] for k in heads]),
        np.stack([heads[k][1] for k in heads]),
        xi,
        y,
        xi,
        y,
        iterations=9,
        batch_size=16,
        lr=1e-3,
        dropout=0.5,
        eval_every=4,
        gen=torch.Generator().manual_seed(2),
        device=torch.device("cpu"),
    )
    loop.Trainer(max_steps=9, device="cpu", progress=False).fit(task)
    g = task.history(list(heads))
    assert g.iterations.tolist() == h.iterations.tolist() == [0, 4, 8, 9]
    assert np.array_equal(g.fscore, h.fscore) and np.array_equal(g.weight, h.weight)


# --------------------------------------------------------------------------------------------- GPU throughput


def test_gpu_throughput_helpers_are_no_ops_on_the_cpu():
    tr = loop.Trainer(max_steps=1, device="cpu", amp="bf16", progress=False)
    assert not tr.amp and not tr.channels_last and tr.world == 1
    with pytest.raises(ValueError, match="amp"):
        loop.Trainer(max_steps=1, device="cpu", amp="fp8")
    x, y = torch.randn(2, 3, 4, 4), torch.tensor([0, 1])
    bx, by = tr.to_device((x, y))
    assert bx is x and by is y and bx.is_contiguous()  # the same tensors, NCHW
    assert tr.to_device({"x": [x]})["x"][0] is x
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.BatchNorm2d(2))
    assert tr.prepare(net) is net and net[0].weight.is_contiguous()  # no DDP, no SyncBatchNorm, NCHW
    assert tr.shard(np.arange(4)).tolist() == [0, 1, 2, 3] and tr.gather(x, 2) is x
    total = None
    for v in (0.1, 0.2, 0.3):  # a Python float, added as a hand-written loop adds floats
        total = tr.accumulate(total, torch.tensor(v))
    assert isinstance(total, float) and total == float(torch.tensor(0.1)) + float(torch.tensor(0.2)) + float(
        torch.tensor(0.3)
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="channels_last / pinned copies only on CUDA")
def test_gpu_throughput_helpers_on_cuda():
    tr = loop.Trainer(max_steps=1, device="cuda", amp=True, progress=False)
    x = tr.to_device(torch.randn(2, 3, 4, 4))
    assert x.is_cuda and x.is_contiguous(memory_format=torch.channels_last)
    net = tr.prepare(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3)))
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    total = None
    for v in (1.0, 2.0):
        total = tr.accumulate(total, torch.tensor(v, device="cuda"))
    assert isinstance(total, torch.Tensor) and total.is_cuda and float(total) == 3.0


@pytest.mark.slow
def test_train_throughput_benchmark_quick_prints_a_finite_ratio():
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_throughput", "--quick", "--device", "cpu"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("ratio Trainer / bare matched:"))
    ratio = float(line.split(":")[1].split()[0])
    assert np.isfinite(ratio) and ratio > 0
    assert "notebook 05: ≈" in out  # the full-profile estimate read the chapter config
