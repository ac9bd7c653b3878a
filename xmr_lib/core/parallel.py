"""Independent jobs (e.g. the seeds of a comparison) on several CPU cores, with the numbers of a sequential run.

A small network trains fastest on one CPU thread (its convolutions are too small to split, ``benchmarks/threads.py``),
so on a 2-core machine the second core stays idle while the seeds of a comparison train one after the other.
:func:`map_jobs` runs the jobs in worker processes instead (``spawn``: nothing of the notebook's process is
inherited), each with the parent's torch thread count and deterministic flag, so every job computes exactly what it
computes in the parent: a seed's numbers do not depend on the number of workers. The jobs are taken in order by
whichever process is free; the calling process runs the first job itself (its result keeps whatever cannot be
pickled, e.g. plugins holding lambdas).

``XMR_WORKERS=N`` sets the number of processes (1: everything in the calling process, as before).
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Callable, Sequence

__all__ = ["cpu_workers", "map_jobs"]


def cpu_workers(device: str = "cpu", n_jobs: int | None = None) -> int:
    """Processes for :func:`map_jobs`: ``XMR_WORKERS`` if set, else the usable cores divided by torch's threads per
    process (at least 1), capped at ``n_jobs``; 1 unless ``device`` is the CPU (one GPU runs one job at a time)."""
    import torch

    env = os.environ.get("XMR_WORKERS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"XMR_WORKERS: expected a whole number >= 1, got {env!r}") from None
        if n < 1:
            raise ValueError(f"XMR_WORKERS: expected a whole number >= 1, got {env!r}")
    elif str(device) != "cpu":
        return 1
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        n = max(1, cores // max(1, torch.get_num_threads()))
    return max(1, min(n, n_jobs)) if n_jobs is not None else n


def _init_worker(threads: int, deterministic: bool) -> None:
    import torch

    try:  # no progress bars from the workers across the parent's output (the bars are made at call time)
        import tqdm.auto

        class _Quiet(tqdm.auto.tqdm):
            def __init__(self, *args, **kwargs):
                kwargs["disable"] = True
                super().__init__(*args, **kwargs)

        tqdm.auto.tqdm = _Quiet
    except ImportError:
        pass
    torch.set_num_threads(int(threads))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


class _Pool:
    """Worker processes kept between :func:`map_jobs` calls: a notebook calls it once per step, and a fresh ``spawn``
    worker spends seconds importing torch and xmr_lib before its first job. A job's numbers cannot depend on the
    worker's history, for the same reason they cannot in the calling process, which runs jobs one after another."""

    def __init__(self, n: int, threads: int, det: bool):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.key = (n, threads, det)
        self.tasks, self.results = ctx.Queue(), ctx.Queue()
        self.procs = [
            ctx.Process(target=_worker, args=(self.tasks, self.results, threads, det), daemon=True) for _ in range(n)
        ]
        for p in self.procs:
            p.start()

    def close(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=10)


_POOL: _Pool | None = None
_CALLS = 0


def _pool(n: int) -> _Pool:
    import atexit

    import torch

    global _POOL
    key = (n, torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    if _POOL is not None and (_POOL.key != key or not all(p.is_alive() for p in _POOL.procs)):
        _close_pool()
    if _POOL is None:
        _POOL = _Pool(*key)
        atexit.register(_close_pool)
    return _POOL


def _close_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.close()
        _POOL = None


def _worker(tasks, results, threads: int, det: bool) -> None:
    import multiprocessing as mp
    import queue
    import signal

    # Ctrl-C / the kernel's interrupt reaches the whole process group: the caller handles it (and ends this pool)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _init_worker(threads, det)
    parent = mp.parent_process()
    while True:
        try:
            call, i, fn, args, finish = tasks.get(timeout=5.0)
        except queue.Empty:
            if parent is not None and not parent.is_alive():  # the notebook's kernel was killed: end with it
                return
            continue
        try:
            out = fn(*args)
            # plain pickle: the queue's pickler would share tensors through file descriptors of this process
            results.put((call, i, None, pickle.dumps(finish(out) if finish is not None else out)))
        except BaseException:  # sent back and raised by the caller
            import traceback

            results.put((call, i, traceback.format_exc(), None))


def map_jobs(fn: Callable, jobs: Sequence[tuple], workers: int = 1, finish: Callable[[Any], Any] | None = None) -> list:
    """``[fn(*job) for job in jobs]``, the jobs spread over ``workers`` processes (this one included).

    The jobs are taken in their order by whichever process is free (put the longest first); this process takes the
    first job, so its result keeps everything (e.g. plugin objects holding lambdas). The worker processes stay alive
    for the next call with the same ``workers`` and torch thread settings (they end with this process).

    Args:
        fn: a module-level function (pickled by name into the workers), deterministic given its arguments.
        jobs: argument tuples (picklable).
        workers: processes in all, the calling one included (:func:`cpu_workers`); 1 runs every job here.
        finish: applied in a worker to its result before it is sent back (a module-level function), e.g. to drop
            what cannot be pickled; not applied to the jobs run in this process.
    Returns:
        the results in the order of ``jobs``. A job that raised in a worker raises RuntimeError here, with the
        worker's traceback.
    """
    global _CALLS
    jobs = [tuple(j) for j in jobs]
    if int(workers) < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    if int(workers) == 1 or len(jobs) <= 1:
        return [fn(*j) for j in jobs]
    import queue

    pool = _pool(min(int(workers) - 1, len(jobs) - 1))
    _CALLS += 1
    call = _CALLS
    for i in range(1, len(jobs)):
        pool.tasks.put((call, i, fn, jobs[i], finish))
    out: list = [None] * len(jobs)
    done: set[int] = set()
    try:
        out[0] = fn(*jobs[0])
        done.add(0)
        while True:  # this process takes queued jobs too, while there are any
            try:
                c, i, f, args, _ = pool.tasks.get(timeout=0.05)
            except queue.Empty:
                break
            out[i] = f(*args)
            done.add(i)
        while len(done) < len(jobs):
            try:
                c, i, err, res = pool.results.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in pool.procs):
                    missing = sorted(set(range(len(jobs))) - done)
                    raise RuntimeError(
                        f"map_jobs: the worker processes ended without the results of jobs {missing}"
                    ) from None
                continue
            if c != call:  # left over from an earlier call that raised
                continue
            if err is not None:
                raise RuntimeError(f"map_jobs: job {i} failed in a worker process:\n{err}")
            out[i] = pickle.loads(res)
            done.add(i)
    finally:
        if len(done) < len(jobs):  # queued jobs of this call would still run: start afresh next time
            _close_pool()
    return out
