"""xmr_lib.core.parallel: jobs spread over processes give the numbers of a sequential run, in the jobs' order."""

import time

import pytest
import torch

from xmr_lib.core import parallel


def _train(seed: int, steps: int, wait: float = 0.0) -> tuple[int, torch.Tensor]:
    """A few seeded SGD steps of a small net (float reductions: the numbers depend on the thread count), after
    ``wait`` seconds (the worker starts meanwhile and takes the next jobs)."""
    time.sleep(wait)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 36, 4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(steps):
        x = torch.randn(16, 3, 8, 8)
        loss = net(x).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return seed, torch.cat([p.detach().flatten() for p in net.parameters()])


def _tag(out):
    return (out[0], out[1], "worker")


def test_map_jobs_in_processes_equals_the_sequential_run():
    jobs = [(s, 5, 6.0 if s == 0 else 0.0) for s in range(4)]
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seq = parallel.map_jobs(_train, jobs, workers=1)
        par = parallel.map_jobs(_train, jobs, workers=2, finish=_tag)
    finally:
        torch.set_num_threads(n)
    assert [s for s, *_ in par] == [0, 1, 2, 3]  # the jobs' order
    assert len(par[0]) == 2 and [p[2] for p in par[1:]] == ["worker"] * 3  # job 0 here, the others in the worker
    for (s1, w1), (s2, w2, *_) in zip(seq, par):
        assert s1 == s2 and torch.equal(w1, w2)  # bit for bit


def test_cpu_workers(monkeypatch):
    monkeypatch.delenv("XMR_WORKERS", raising=False)
    assert parallel.cpu_workers("cuda", 5) == 1
    assert 1 <= parallel.cpu_workers("cpu", 5) <= 5
    assert parallel.cpu_workers("cpu", 1) == 1
    monkeypatch.setenv("XMR_WORKERS", "3")
    assert parallel.cpu_workers("cpu", 5) == 3 and parallel.cpu_workers("cpu", 2) == 2
    monkeypatch.setenv("XMR_WORKERS", "0")
    with pytest.raises(ValueError, match="XMR_WORKERS"):
        parallel.cpu_workers("cpu", 5)
    with pytest.raises(ValueError, match="workers"):
        parallel.map_jobs(_train, [(0, 1)], workers=0)


def _fail(i: int) -> int:
    time.sleep(6.0 if i == 0 else 0.0)
    if i == 2:
        raise ValueError("job two is bad")
    return i


def test_map_jobs_raises_a_workers_error():
    with pytest.raises(RuntimeError, match="job 2 failed in a worker process(.|\n)*job two is bad"):
        parallel.map_jobs(_fail, [(0,), (1,), (2,)], workers=2)


def _pid(i: int) -> int:
    import os

    time.sleep(3.0 if i == 0 else 0.0)
    return os.getpid()


def test_map_jobs_keeps_its_workers_between_calls_and_drops_them_after_a_failure():
    parallel.map_jobs(_pid, [(0,), (1,)], workers=2)
    pool = parallel._POOL
    pids = [p.pid for p in pool.procs]
    parallel.map_jobs(_pid, [(0,), (1,)], workers=2)
    assert parallel._POOL is pool and [p.pid for p in pool.procs] == pids  # the same workers, no new start-up
    assert all(p.is_alive() for p in pool.procs)
    with pytest.raises(RuntimeError, match="job 2 failed"):
        parallel.map_jobs(_fail, [(0,), (1,), (2,)], workers=2)
    assert parallel._POOL is None  # its queued jobs would still run: the next call starts afresh
