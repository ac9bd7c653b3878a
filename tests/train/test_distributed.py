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
