import json

import pytest

from xmr_lib.core import checkpoint
from xmr_lib.course import runs


def test_resolve_takes_profile_values_and_overrides():
    p = runs.resolve("00", "smoke")
    assert p.profile == "smoke" and p.n_db == 500 and p.seed == 0 and p.device == "auto"
    p = runs.resolve("00", "default", n_db=42, seed=3, pca_dim=None)
    assert p.n_db == 42 and p.seed == 3 and p.pca_dim == 24  # None means "the profile's value"


def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) 'n_dbb'.*valid parameters: profile, seed"):
        runs.resolve("00", "default", n_dbb=3)


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid profiles: smoke, default, full"):
        runs.resolve("00", "fast")


def test_unknown_chapter():
    with pytest.raises(ValueError, match="chapter"):
        runs.resolve("99", "default")
    with pytest.raises(ValueError, match="chapter"):
        runs.normalise_chapter("intro")


def test_params_from_namespace_catches_injected_typos(run_dir):
    ns = {
        "profile": "smoke",
        "seed": 1,
        "device": "cpu",
        "data_root": None,
        "n_db": None,
        "n_queries": None,
        "pca_dim": None,
        "top_k": None,
        "In": [],
        "_": None,
        "np": __import__("numpy"),
    }
    p = runs.params("00", ns)
    assert p.settings["seed"] == 1 and p.n_db == 500 and p.device == "cpu"
    fresh = {k: v for k, v in ns.items() if k != "_xmr_parameter_names"}  # papermill: a new kernel each run
    with pytest.raises(ValueError, match="'n_querys'"):
        runs.params("00", dict(fresh, n_querys=3))


def test_record_writes_json_beside_the_notebook(run_dir):
    runs.params("00", profile="smoke", seed=2, device="cpu")
    import numpy as np

    runs.record("a/mAP", np.float32(0.5))
    runs.record("seeds", [0.1, 0.2])
    runs.record_many({"x": 1, "y": float("nan")}, prefix="t/")
    rec = json.loads((run_dir / "00_test.metrics.json").read_text())
    assert rec["profile"] == "smoke" and rec["seed"] == 2 and rec["chapter"] == "00"
    assert rec["metrics"] == {"a/mAP": 0.5, "seeds": [0.1, 0.2], "t/x": 1, "t/y": "nan"}
    assert runs.recorded()["metrics"]["a/mAP"] == 0.5


def test_record_needs_a_key(run_dir):
    runs.params("00", profile="smoke", device="cpu")
    with pytest.raises(ValueError, match="key"):
        runs.record("", 1)


def test_corrupt_metrics_file_is_reported(run_dir):
    run_dir.mkdir(parents=True)
    (run_dir / "00_test.metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt metrics file"):
        runs.params("00", profile="smoke", device="cpu")


def test_checkpoint_roundtrip_and_corrupt_file(run_dir):
    import torch

    ck = checkpoint.Checkpoint("demo")
    assert ck.load("task1") is None
    ck.save("task1", {"w": torch.ones(2)})
    assert torch.equal(ck.load("task1")["w"], torch.ones(2))
    assert ck.steps() == ["task1"]
    ck.path("task2").write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="unreadable"):
        assert ck.load("task2") is None


def test_params_twice_in_one_live_kernel_namespace(run_dir):
    """Re-running the parameters cell and the next one (a learner editing a knob, or Run All twice) works, and a
    misspelt knob typed into the parameters cell is still refused, with a suggestion."""
    params_cell = 'profile = "smoke"\nseed = 1\nn_db = None'
    ns = {
        "profile": "smoke",
        "seed": 1,
        "device": "cpu",
        "data_root": None,
        "n_db": None,
        "n_queries": None,
        "pca_dim": None,
        "top_k": None,
        "In": ["", params_cell, "P = runs.params('00', globals())"],
        "np": __import__("numpy"),
    }
    p = runs.params("00", ns)
    # what the notebook defined since (one name close to a knob, like 09's `alphas` next to `alpha`), an edited knob
    ns.update(P=p, X=[1, 2], agreement=0.99, F=None, n_dbs=[1, 2], n_db=200)
    ns["In"] += ["n_dbs = [1, 2]", "X = 1", params_cell.replace("None", "200"), "P = runs.params('00', globals())"]
    p2 = runs.params("00", ns)
    assert p2.n_db == 200 and p2.seed == 1
    ns["n_dbb"] = 300  # typed into the parameters cell, then run
    ns["In"] += [params_cell + "\nn_dbb = 300", "P = runs.params('00', globals())"]
    with pytest.raises(ValueError, match="'n_dbb'.*did you mean 'n_db'"):
        runs.params("00", ns)


def test_params_starts_each_record_afresh(run_dir):
    runs.params("00", profile="full", device="cpu")
    runs.record("data/real", 1)
    runs.record("m", 0.5)
    runs.params("00", profile="smoke", device="cpu")
    rec = runs.recorded()
    assert rec["metrics"] == {} and rec["profile"] == "smoke"
    assert rec["settings"]["threads"] >= 1 and rec["settings"]["numpy_version"]


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"n_queries": -5}, r"n_queries: expected an integer ≥ 0"),
        ({"n_queries": "ten"}, "n_queries"),
        ({"pca_dim": 2.5}, "pca_dim"),
        ({"n_db": float("nan")}, "n_db"),
        ({"data_root": "/no/such/folder"}, "data_root"),
        ({"device": 3}, "device"),
    ],
)
def test_resolve_checks_values_before_anything_runs(bad, match):
    with pytest.raises(ValueError, match=match):
        runs.resolve("00", "default", **bad)


def test_any_of_takes_a_value_of_one_of_its_options():
    from xmr_lib.core import knobs

    its = knobs.AnyOf(knobs.Int(1), knobs.ListOf(knobs.Int(1)))  # one count, or one per group
    its.check("step_iterations", 5)
    its.check("step_iterations", [160, 80, 80])
    for bad in ("abc", 0, [10, "a"], [10, 2.5], None, 1.5):
        with pytest.raises(
            ValueError, match=r"step_iterations: .*expected an integer ≥ 1 or a list \(≥ 1 item\) of an integer ≥ 1"
        ):
            its.check("step_iterations", bad)
    sig = knobs.AnyOf(knobs.Choice("auto"), knobs.ListOf(knobs.Float(0, exclusive_lo=True)), none_ok=True)
    for good in ("auto", [0.5, 1.0], None):
        sig.check("mmd_sigmas", good)
    for bad in ("abc", [0.5, -1.0], 2.0):
        with pytest.raises(
            ValueError, match=r"mmd_sigmas: expected one of 'auto' or a list \(≥ 1 item\) of a number > 0 \(or None\)"
        ):
            sig.check("mmd_sigmas", bad)
    with pytest.raises(ValueError, match="options"):
        knobs.AnyOf()
    assert knobs.Knob("int", 1) == knobs.Int(1)  # the older knobs are unchanged


def test_declared_knobs_and_inferred_types():
    from xmr_lib.core import knobs

    k = knobs.ListOf(knobs.Int(8, 1024))
    k.check("bits", [16, 32])
    with pytest.raises(ValueError, match=r"bits\[1\]: expected an integer ≥ 8 and ≤ 1024"):
        k.check("bits", [16, 4])
    with pytest.raises(ValueError, match=r"bits: expected a list \(≥ 1 item\) .*got 0 item\(s\): \[\]"):
        k.check("bits", [])  # an empty list would run nothing and report nothing
    knobs.ListOf(knobs.Float(0), min_len=0).check("eta_sweep", [])  # where empty means "skip this part"
    with pytest.raises(ValueError, match=r"pair: expected a list \(≥ 2 items\)"):
        knobs.ListOf(knobs.Int(), min_len=2).check("pair", (1,))
    with pytest.raises(ValueError, match="one of 'a', 'b'"):
        knobs.Choice("a", "b").check("mode", "c")
    assert knobs.infer([1, 2.5, None]) == knobs.Knob("float", lo=0, none_ok=True)
    assert knobs.infer([-1, 2]).lo is None
    for ch in ("00", "02", "03", "04", "05", "06", "07", "08", "09", "10"):  # every profile passes its own checks
        for prof in runs.PROFILE_NAMES:
            runs.resolve(ch, prof)


def test_paper_settings_table_reads_the_chapter_config(monkeypatch):
    from xmr_lib.chapters.ch00 import config as ch00

    with pytest.raises(ValueError, match="notebook 00: its config declares no PAPER_SETTINGS"):
        runs.paper_settings("00")
    rows = [{"setting": "backbone", "paper": "VGG16 (§2.4)", "ours": "VGG16", "why": ""}, {"setting": "lr"}]
    monkeypatch.setattr(ch00, "PAPER_SETTINGS", rows, raising=False)
    table = runs.paper_settings(0)
    assert list(table.columns) == ["paper", "ours", "why"] and list(table.index) == ["backbone", "lr"]
    assert table.loc["backbone", "paper"] == "VGG16 (§2.4)" and table.loc["lr", "ours"] == ""
