"""Data-parallel fine-tuning: two CPU ranks (gloo) give the one-process loss curve for the same global batch."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from xmr_lib.train import distributed


def test_single_process_context_is_a_no_op():
    ctx = distributed.context("cpu")
    assert not ctx.enabled and ctx.is_main and ctx.sum(2.5) == 2.5
    assert list(ctx.shard(np.arange(5))) == [0, 1, 2, 3, 4]
    two = distributed.DistContext(rank=1, world=2)
    assert list(two.shard(np.arange(5))) == [1, 3]


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    args = ["--epochs", "3", "--batch-tuples", "5", "--queries", "13"]  # 13 tuples: a short last batch of 3
    subprocess.run(
        [sys.executable, "-m", "xmr_lib.train.finetune_job", "--out", str(tmp_path / "one"), *args],
        check=True,
        env=env,
        timeout=600,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "xmr_lib.train.finetune_job",
            "--out",
            str(tmp_path / "two"),
            *args,
        ],
        check=True,
        env=env,
        timeout=600,
    )
    one = json.loads((tmp_path / "one" / "history.json").read_text())
    two = json.loads((tmp_path / "two" / "history.json").read_text())
    assert one["world"] == 1 and two["world"] == 2
    assert len(one["loss"]) == 3 and one["loss"][-1] < one["loss"][0]  # it learns
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(two["p"], one["p"], rtol=0, atol=1e-5)


def _run_job(module: str, out, args: list[str], ranks: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    launch = [sys.executable, "-m"]
    if ranks > 1:
        launch += ["torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", "-m"]
    subprocess.run([*launch, module, "--out", str(out), *args], check=True, env=env, timeout=600)
    return json.loads((out / "record.json").read_text())


@pytest.mark.slow
def test_two_gloo_ranks_train_an_incremental_method_like_one_process(tmp_path):
    """kd_mmd over 2 tasks (distillation + MMD, BatchNorm in training mode), global P×K batch 3×5 = 15 split 8 / 7:
    the per-step loss terms of 2 ranks are the 1-process ones (each loss term sees the gathered global batch, and
    BatchNorm normalises with the global batch's statistics)."""
    args = ["--method", "kd_mmd", "--tasks", "2", "--classes", "6", "--iterations", "5", "--P", "3", "--K", "5"]
    one = _run_job("xmr_lib.train.incremental_job", tmp_path / "one", args, 1)
    two = _run_job("xmr_lib.train.incremental_job", tmp_path / "two", args, 2)
    assert one["world"] == 1 and two["world"] == 2
    keys = ["ce", "triplet", "kd", "mmd", "total"]
    assert [(r["task"], r["iteration"]) for r in one["losses"]] == [(t, i) for t in (0, 1) for i in range(5)]
    second = [r for r in one["losses"] if r["task"] == 1]
    assert all(r["kd"] > 0 and r["mmd"] > 0 for r in second)  # the teacher terms are on in the second task
    assert second[-1]["total"] < second[0]["total"]  # it learns
    for a, b in zip(one["losses"], two["losses"]):
        assert (a["task"], a["iteration"]) == (b["task"], b["iteration"])
        np.testing.assert_allclose([b.get(k, 0.0) for k in keys], [a.get(k, 0.0) for k in keys], rtol=0, atol=1e-5)
    for sa, sb in zip(one["steps"], two["steps"]):  # the same model at the end of each task
        np.testing.assert_allclose(sb["all"]["mAP"], sa["all"]["mAP"], rtol=0, atol=1e-6)


def test_gather_puts_the_shards_back_in_global_order():
    # rank r holds items r, r + world, …, padded to ⌈n/world⌉ rows; the gathered rows in global order are 0 … n−1
    for n, world in ((7, 2), (9, 3), (4, 4), (5, 1)):
        m = -(-n // world)
        shards = [distributed.DistContext(rank=r, world=world).shard(np.arange(n)) for r in range(world)]
        rows = np.concatenate([np.pad(s, (0, m - len(s)), constant_values=-1) for s in shards])
        assert list(rows[distributed.gathered_rows(n, world)]) == list(range(n))
