"""Exercises at the end of each chapter notebook: checked answers, instructor and learner copies.

In the notebook (the instructor copy, the one in ``notebooks/``) an exercise is a markdown statement, a solution
cell and a check cell::

    ### BEGIN SOLUTION
    def my_gem(x, p):
        return x.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1 / p)
    ### END SOLUTION

    check.ex02_1(my_gem)          # from xmr_lib.course import check

The solution markers are nbgrader's. ``xmr student OUT`` writes the learner copies: every solution block becomes
``# YOUR CODE HERE`` and ``name = None`` for each name the block defines, so the check cell runs and says what is
missing — no exercise is satisfied by doing nothing. A chapter module lists its checks in ``EXERCISES``
(``{"1": check_function, ...}``); ``check.ex02_1`` finds ``EXERCISES["1"]`` of chapter 02. A check function takes
the learner's answer and returns ``(passed, feedback)``; :func:`run_check` prints the feedback and, when
``$XMR_EXERCISE_LOG`` is set, appends the verdict to that JSON-lines file (the tests read it).

Exercises are self-contained (their cells import what they use), so the section from the ``## Exercises``
heading on runs on its own: the tests run it, instructor and learner copies, under ``pytest --nbval-lax``.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

from xmr_lib.course import runs
from xmr_lib.course.runner import discover_notebooks, repo_root

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HEADING = "## Exercises"
_SOLUTION = re.compile(rf"^[ \t]*{re.escape(BEGIN)}[^\n]*\n(.*?)^[ \t]*{re.escape(END)}[^\n]*\n?", re.S | re.M)


def exercise_checks(chapter: str) -> dict[str, Callable[[Any], tuple[bool, str]]]:
    """The ``EXERCISES`` of ``xmr_lib/chapters/ch<chapter>.py`` (``{}`` when it has none)."""

    return dict(getattr(runs.chapter_module(chapter), "EXERCISES", {}))


def run_check(key: str, answer: Any) -> bool:
    """Check ``answer`` against exercise ``key`` (``"02.1"``), print the feedback, log the verdict; return it."""
    chapter, _, number = key.partition(".")
    checks = exercise_checks(chapter)
    if number not in checks:
        raise ValueError(f"exercise {key!r}: chapter {chapter} has exercises {sorted(checks) or 'none'}")
    if answer is None:
        passed, feedback = False, "no answer yet: replace the `None` in the cell above with your solution"
    else:
        try:
            passed, feedback = checks[number](answer)
        except Exception as e:  # noqa: BLE001 - a learner's broken answer is feedback, not a crash
            passed, feedback = False, f"your answer raised {type(e).__name__}: {e}"
    print(("✅ " if passed else "❌ ") + f"Exercise {key}: {feedback}")
    log = os.environ.get("XMR_EXERCISE_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"exercise": key, "passed": bool(passed)}) + "\n")
    return bool(passed)


def defined_names(code: str) -> list[str]:
    """Top-level names that ``code`` assigns, defines or imports, in order."""
    names: list[str] = []
    for node in ast.parse(code).body:
        targets = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            targets = [node.name]
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                targets += [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        for n in targets:
            if n not in names:
                names.append(n)
    return names


def stub_solutions(source: str) -> str:
    """``source`` with every solution block replaced by ``# YOUR CODE HERE`` and ``name = None`` per defined name."""

    def stub(m: re.Match) -> str:
        indent = re.match(r"[ \t]*", m.group(0)).group(0)
        names = defined_names(_dedent(m.group(1)))
        lines = [f"{indent}# YOUR CODE HERE"] + [f"{indent}{n} = None" for n in names]
        return "\n".join(lines) + "\n"

    out = _SOLUTION.sub(stub, source)
    if BEGIN in out or END in out:
        raise ValueError(f"source: unbalanced '{BEGIN}' / '{END}' markers in\n{source[:300]}")
    return out


def _dedent(code: str) -> str:
    import textwrap

    return textwrap.dedent(code)


def learner_copy(nb: Any) -> Any:
    """A copy of notebook ``nb`` (nbformat node) with its solutions stubbed and its outputs cleared."""
    out = copy.deepcopy(nb)
    for c in out.cells:
        if c.cell_type == "code":
            c.source = stub_solutions(c.source)
            c.outputs, c.execution_count = [], None
    return out


def exercise_section(nb: Any) -> Any:
    """A notebook of ``nb``'s cells from the ``## Exercises`` heading on (``None`` when it has no exercises)."""
    start = next(
        (i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.lstrip().startswith(HEADING)), None
    )
    if start is None:
        return None
    end = next(
        (
            i
            for i, c in enumerate(nb.cells[start + 1 :], start + 1)
            if c.cell_type == "markdown"
            and c.source.lstrip().startswith("## ")
            and not c.source.lstrip().startswith(HEADING)
        ),
        len(nb.cells),
    )
    out = copy.deepcopy(nb)
    out.cells = out.cells[start:end]
    return out


def write_student_copies(out_dir: str | Path, notebooks_dir: str | Path | None = None) -> list[Path]:
    """``xmr student OUT``: the learner copy of every notebook (solutions stubbed, outputs cleared) into ``out_dir``."""
    import nbformat

    src = Path(notebooks_dir) if notebooks_dir is not None else repo_root()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for p in discover_notebooks(src if (src / "notebooks").is_dir() else src.parent):
        nb = nbformat.read(str(p), as_version=4)
        path = out_dir / p.name
        nbformat.write(learner_copy(nb), str(path))
        written.append(path)
    return written
