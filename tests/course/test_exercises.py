"""Exercises: instructor copies pass every check, learner copies (solutions stubbed) fail every check — run under
``pytest --nbval-lax`` as a learner's notebook would be."""

import json
import os
import subprocess
import sys

import nbformat
import pytest

from xmr_lib.course import exercises
from xmr_lib.course.runner import discover_notebooks, kernel_name


def test_stub_solutions_keeps_the_names_and_drops_the_answer():
    src = "import numpy as np\n### BEGIN SOLUTION\ndef f(x):\n    return x\nk, v = 1, 2\n### END SOLUTION\ncheck(f)\n"
    out = exercises.stub_solutions(src)
    assert out == "import numpy as np\n# YOUR CODE HERE\nf = None\nk = None\nv = None\ncheck(f)\n"
    with pytest.raises(ValueError, match="unbalanced"):
        exercises.stub_solutions("### BEGIN SOLUTION\nx = 1\n")


def test_a_missing_or_broken_answer_is_feedback_not_a_crash(capsys):
    assert exercises.run_check("00.1", None) is False
    assert exercises.run_check("00.1", lambda s, r, k: 1 / 0) is False
    assert "ZeroDivisionError" in capsys.readouterr().out
    with pytest.raises(ValueError, match="has exercises"):
        exercises.run_check("00.9", 1)


def _with_exercises():
    out = []
    for p in discover_notebooks():
        nb = nbformat.read(str(p), as_version=4)
        if exercises.exercise_section(nb) is not None:
            out.append(p)
    return out


@pytest.mark.notebook
@pytest.mark.parametrize("nb_path", _with_exercises(), ids=lambda p: p.stem)
def test_instructor_copy_passes_and_learner_copy_fails_every_check(nb_path, tmp_path):
    chapter = nb_path.name[:2]
    n = len(exercises.exercise_checks(chapter))
    assert n >= 2, f"notebook {chapter}: two or three exercises per chapter"
    nb = nbformat.read(str(nb_path), as_version=4)
    section = exercises.exercise_section(nb)
    for role, copy in (("instructor", section), ("learner", exercises.learner_copy(section))):
        path = tmp_path / f"{role}_{nb_path.name}"
        nbformat.write(copy, str(path))
        log = tmp_path / f"{role}.jsonl"
        env = dict(os.environ, XMR_EXERCISE_LOG=str(log), MPLBACKEND="Agg")
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--nbval-lax",
                f"--nbval-kernel-name={kernel_name()}",
                str(path),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert res.returncode == 0, res.stdout[-3000:]
        verdicts = [json.loads(line) for line in log.read_text().splitlines()]
        assert len(verdicts) == n, verdicts
        want = role == "instructor"
        assert all(v["passed"] is want for v in verdicts), (role, verdicts)
