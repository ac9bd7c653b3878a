import json

import pytest
from notebook_files import code, params, write

from xmr_lib.course import sweep


def test_parse_grid_and_points():
    g = sweep.parse_grid(["seed=0:3", "bits=16,32", "mode=fast,'slow'"])
    assert g == {"seed": [0, 1, 2], "bits": [16, 32], "mode": ["fast", "slow"]}
    pts = sweep.grid_points({"seed": [0, 1], "bits": [16, 32]})
    assert pts == [{"seed": 0, "bits": 16}, {"seed": 0, "bits": 32}, {"seed": 1, "bits": 16}, {"seed": 1, "bits": 32}]
    assert sweep.point_name(pts[1]) == "seed=0,bits=32"
    assert sweep.parse_grid(["seed=0:10:5"]) == {"seed": [0, 5]}
    for bad, msg in (
        (["seed"], "NAME=VALUES"),
        (["1x=2"], "valid parameter"),
        (["a=1", "a=2"], "twice"),
        (["seed=0:5:0"], "range"),
        ([], "at least one"),
    ):
        with pytest.raises(ValueError, match=msg):
            sweep.parse_grid(bad)


def _fake_repo(tmp_path):
    """One notebook numbered 00 that records chapter 00's metrics as a function of its parameters."""
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    write(
        str(nbdir / "00_fake.ipynb"),
        [
            params(
                'profile = "default"\nseed = 0\ndevice = "cpu"\ndata_root = None\nn_db = None\nn_queries = None\n'
                'pca_dim = None\ntop_k = None'
            ),
            code(
                'from xmr_lib.course import runs\nP = runs.params("00", globals())\n'
                'runs.record("pixels/mAP_over_chance", 2.5 + P.seed + P.n_db / 1000)\n'
                'runs.record("index/top1_agreement", 1.0)'
            ),
        ],
    )
    return tmp_path


def _metrics(d):
    out = {}
    for st in json.loads((d / "sweep.json").read_text())["points"]:
        rec = json.loads((d / st / "00_fake.metrics.json").read_text())
        out[st] = rec["metrics"]
    return out


@pytest.mark.slow
def test_sweep_serial_scorecard_and_resume(tmp_path):
    root = _fake_repo(tmp_path)
    grid = {"seed": [0, 1], "n_db": [100, 600]}
    d, state = sweep.sweep(["00"], grid, profile="smoke", executor="serial", out_root=tmp_path / "runs", root=root)
    assert len(state["points"]) == 4 and all(
        p["notebooks"]["00_fake"]["status"] == "ok" for p in state["points"].values()
    )
    rows = {(r["id"], r["setting"]): r for r in json.loads((d / "sweep_scorecard.json").read_text())}
    # mAP over chance = 2.5 + seed + n_db/1000 >= 3: holds on seed 1 only at n_db=100, on both at n_db=600
    assert rows[("00.pixels_beat_chance", "n_db=100")]["holds"] == 1
    assert rows[("00.pixels_beat_chance", "n_db=600")]["holds"] == 2
    m, sd, lo, hi = rows[("00.pixels_beat_chance", "n_db=600")]["metrics"]["pixels/mAP_over_chance"]
    assert m == pytest.approx(3.6) and lo < m < hi
    assert "holds" in (d / "sweep_scorecard.md").read_text()
    before = (d / "seed=0,n_db=100" / "00_fake.ipynb").stat().st_mtime_ns
    d2, _ = sweep.sweep(["00"], {}, resume=d, executor="serial", root=root)
    assert d2 == d and (d / "seed=0,n_db=100" / "00_fake.ipynb").stat().st_mtime_ns == before


@pytest.mark.slow
def test_sweep_on_a_local_ray_cluster_of_two_workers_equals_serial(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")

    root = _fake_repo(tmp_path)
    grid = {"seed": [0, 1], "n_db": [100, 600]}
    serial, _ = sweep.sweep(["00"], grid, profile="smoke", executor="serial", out_root=tmp_path / "s", root=root)
    sweep.start_ray(num_cpus=2)  # a local cluster: two 1-CPU workers
    try:
        assert ray.cluster_resources()["CPU"] == 2
        d, state = sweep.sweep(["00"], grid, profile="smoke", executor="ray", out_root=tmp_path / "r", root=root)
        assert all(p["notebooks"]["00_fake"]["status"] == "ok" for p in state["points"].values())
    finally:
        ray.shutdown()
    assert _metrics(d) == _metrics(serial)
    assert json.loads((d / "sweep_scorecard.json").read_text()) == json.loads(
        (serial / "sweep_scorecard.json").read_text()
    )


def test_sweep_refuses_bad_requests(tmp_path):
    root = _fake_repo(tmp_path)
    with pytest.raises(ValueError, match="both in --grid and -p"):
        sweep.sweep(["00"], {"n_db": [1]}, parameters={"n_db": 2}, executor="serial", out_root=tmp_path, root=root)
    with pytest.raises(ValueError, match="unknown parameter"):
        sweep.sweep(["00"], {"bitz": [1]}, executor="serial", out_root=tmp_path / "x", root=root)
    assert not (tmp_path / "x").exists()
