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


def _worker(fn: Callable, jobs: list, finish: Callable | None, counter, results, threads: int, det: bool) -> None:
    _init_worker(threads, det)
    while True:
        with counter.get_lock():
            i = counter.value
            counter.value += 1
        if i >= len(jobs):
            return
        try:
            out = fn(*jobs[i])
            # plain pickle: the queue's pickler would share tensors through file descriptors of this process
            results.put((i, None, pickle.dumps(finish(out) if finish is not None else out)))
        except BaseException:  # sent back and raised by the caller
            import traceback

            results.put((i, traceback.format_exc(), None))
            return


def map_jobs(fn: Callable, jobs: Sequence[tuple], workers: int = 1, finish: Callable[[Any], Any] | None = None) -> list:
    """``[fn(*job) for job in jobs]``, the jobs spread over ``workers`` processes (this one included).

    The jobs are taken in their order by whichever process is free (put the longest first); this process takes the
    first job, so its result keeps everything (e.g. plugin objects holding lambdas).

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
    jobs = [tuple(j) for j in jobs]
    if int(workers) < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    if int(workers) == 1 or len(jobs) <= 1:
        return [fn(*j) for j in jobs]
    import multiprocessing as mp
    import queue

    import torch

    ctx = mp.get_context("spawn")
    counter, results = ctx.Value("i", 1), ctx.Queue()  # job 0 is this process's
    init = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    procs = [
        ctx.Process(target=_worker, args=(fn, jobs, finish, counter, results, *init), daemon=True)
        for _ in range(min(int(workers) - 1, len(jobs) - 1))
    ]
    for p in procs:
        p.start()
    out: list = [None] * len(jobs)
    done = {0}
    try:
        out[0] = fn(*jobs[0])
        while True:
            with counter.get_lock():
                i = counter.value
                counter.value += 1
            if i >= len(jobs):
                break
            out[i] = fn(*jobs[i])
            done.add(i)
        while len(done) < len(jobs):
            try:
                i, err, res = results.get(timeout=1.0)
            except queue.Empty:
                if all(p.exitcode is not None for p in procs) and results.empty():
                    missing = sorted(set(range(len(jobs))) - done)
                    raise RuntimeError(
                        f"map_jobs: the worker processes ended without the results of jobs {missing}"
                    ) from None
                continue
            if err is not None:
                raise RuntimeError(f"map_jobs: job {i} failed in a worker process:\n{err}")
            out[i] = pickle.loads(res)
            done.add(i)
    finally:
        for p in procs:
            if p.is_alive() and len(done) < len(jobs):
                p.terminate()
            p.join(timeout=10)
    return out
