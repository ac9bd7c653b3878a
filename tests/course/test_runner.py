import json

import pytest
from notebook_files import code, params, write

from xmr_lib.course import runner


def test_parse_assignments():
    assert runner.parse_assignments(["n=3", "device=cpu", "ps=[1, 2]", "x=None"]) == {
        "n": 3,
        "device": "cpu",
        "ps": [1, 2],
        "x": None,
    }
    with pytest.raises(ValueError, match="key=value"):
        runner.parse_assignments(["n"])
    with pytest.raises(ValueError, match="not a valid parameter name"):
        runner.parse_assignments(["1n=2"])


def test_discover_and_only():
    nbs = runner.discover_notebooks()
    assert nbs and nbs[0].name.startswith("00_")
    assert [p.name[:2] for p in runner.discover_notebooks(only=["0"])] == ["00"]
    with pytest.raises(ValueError, match="no notebook numbered 77"):
        runner.discover_notebooks(only=["77"])


def _fake_repo(tmp_path):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    write(
        str(nbdir / "01_ok.ipynb"), [params('profile = "default"\nseed = 0\nn = 1'), code("import os, json\nprint(n)")]
    )
    write(
        str(nbdir / "02_fails.ipynb"),
        [
            params('profile = "default"\nseed = 0\nn = 1'),
            code("import os\nassert os.environ.get('XMR_OK') == '1', 'boom'"),
        ],
    )
    return tmp_path


def test_unknown_parameter_fails_before_running(tmp_path):
    root = _fake_repo(tmp_path)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) 'm'.*valid parameters: profile, seed, n"):
        runner.run("smoke", parameters={"m": 2}, root=root, out_root=tmp_path / "runs")


@pytest.mark.slow
def test_run_goes_on_past_a_failure_and_resumes(tmp_path, monkeypatch):
    root = _fake_repo(tmp_path)
    monkeypatch.delenv("XMR_OK", raising=False)
    run_dir, status = runner.run("smoke", parameters={"n": 2}, root=root, out_root=tmp_path / "runs")
    assert status["01_ok"]["status"] == "ok" and status["02_fails"]["status"] == "failed"
    assert "boom" in status["02_fails"]["error"]
    assert (run_dir / "01_ok.ipynb").is_file() and (run_dir / "scorecard.md").is_file()
    state = json.loads((run_dir / "run.json").read_text())
    assert state["parameters"] == {"n": 2}
    # resume: the finished notebook is skipped, the failed one re-runs (and now passes)
    before = (run_dir / "01_ok.ipynb").stat().st_mtime_ns
    monkeypatch.setenv("XMR_OK", "1")
    run_dir2, status2 = runner.run(resume=run_dir, root=root)
    assert run_dir2 == run_dir and status2["02_fails"]["status"] == "ok"
    assert (run_dir / "01_ok.ipynb").stat().st_mtime_ns == before


def test_early_failures_leave_no_run_folder(tmp_path):
    root = _fake_repo(tmp_path)
    for kwargs in ({"parameters": {"m": 2}}, {"parameters": {"device": "cuda:7"}}, {"only": ["77"]}):
        with pytest.raises(ValueError):
            runner.run("smoke", root=root, out_root=tmp_path / "runs", **kwargs)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_resume_refuses_new_parameters(tmp_path):
    root = _fake_repo(tmp_path)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.json").write_text(json.dumps({"profile": "smoke", "parameters": {}, "notebooks": {}}))
    with pytest.raises(ValueError, match="--resume finishes a run"):
        runner.run(resume=tmp_path / "r", parameters={"n": 3}, root=root)
    with pytest.raises(ValueError, match="--resume finishes a run"):
        runner.run("default", resume=tmp_path / "r", root=root)
