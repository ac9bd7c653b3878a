"""The repository's own contract: packaging files agree, notebooks are clean and parameterised alike."""

import ast
import re
import statistics
import tomllib
from pathlib import Path

import nbformat
import pytest

from xmr_lib.course import runs
from xmr_lib.course.runner import discover_notebooks, parameter_names

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = discover_notebooks(ROOT)


def _req_name(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_pyproject_and_environment_yml_agree():
    import yaml

    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    want = dict(_req_name(s) for s in py["dependencies"] + py["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    got = {}
    for d in env["dependencies"]:
        if isinstance(d, dict):
            got.update(_req_name(s) for s in d["pip"] if not s.startswith("-e"))
        elif not d.startswith(("python", "pip")) or d.startswith("pip "):
            got.update([_req_name(d)])
    assert got == want


def test_pyproject_has_lower_bounds_only():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for s in py["dependencies"]:
        assert "==" not in s and "<" not in s, s


def test_ci_calls_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "bash xmr.sh test" in ci and "bash xmr.sh test" in readme
    assert "bash xmr.sh notebooks" in readme


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parameterised(nb):
    book = nbformat.read(str(nb), as_version=4)
    nbformat.validate(book)
    assert book.metadata["kernelspec"]["name"] == "python3"
    for c in book.cells:
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, f"{nb.name}: stored outputs (clear them)"
    names = parameter_names(nb)
    assert names[:4] == list(runs.COMMON_PARAMETERS), f"{nb.name}: parameters must start with {runs.COMMON_PARAMETERS}"
    first_code = next(c for c in book.cells if c.cell_type == "code")
    assert "parameters" in first_code.metadata.get("tags", []), "the parameters cell must be the first code cell"
    table = runs.profile_table(nb.name[:2])
    assert set(names[4:]) <= set(table["default"]), (
        f"{nb.name}: parameters-cell names {sorted(set(names[4:]) - set(table['default']))} are not knobs of PROFILES"
    )
    src = "\n".join(c.source for c in book.cells if c.cell_type == "code")
    assert f'runs.params("{nb.name[:2]}", globals())' in src
    for c in book.cells:  # every code cell parses
        if c.cell_type == "code" and not c.source.lstrip().startswith(("%", "!")):
            ast.parse(c.source)


def test_one_kernel_name():
    """Every notebook declares the kernel the runner uses and xmr.sh registers no second one."""
    import json

    from xmr_lib.course.runner import discover_notebooks, kernel_name

    for p in discover_notebooks():
        assert json.loads(p.read_text())["metadata"]["kernelspec"]["name"] == kernel_name(), p.name
    assert "--name xmr" not in (ROOT / "xmr.sh").read_text()


def _code_lines(cell) -> int:
    return sum(1 for line in cell.source.split("\n") if line.strip())


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_cells_are_lecture_sized(nb):
    """Short cells calling the library (median ≤ 8 non-blank lines, none over 25), and no function defined in a
    notebook outside its Exercises section (logic lives in xmr_lib, where it is tested)."""
    book = nbformat.read(str(nb), as_version=4)
    sizes, defs, in_exercises = [], [], False
    for i, c in enumerate(book.cells):
        if c.cell_type == "markdown" and c.source.lstrip().startswith("## "):
            in_exercises = c.source.lstrip().lower().startswith("## exercises")
        if c.cell_type != "code":
            continue
        sizes.append(_code_lines(c))
        assert sizes[-1] <= 25, f"{nb.name}: cell {i} has {sizes[-1]} lines (at most 25)"
        if not in_exercises and not c.source.lstrip().startswith(("%", "!")):
            defs += [
                f"{n.name} (cell {i})"
                for n in ast.walk(ast.parse(c.source))
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            ]
    assert statistics.median(sizes) <= 8, f"{nb.name}: median cell {statistics.median(sizes)} lines (at most 8)"
    assert defs == [], f"{nb.name}: functions defined outside the Exercises section: {defs}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_cites_papers_not_files(nb):
    """A reader has the papers, not our seed files or digests: no "seed 003", "lines 290–887", "spec §…"."""
    text = "\n".join(c.source for c in nbformat.read(str(nb), as_version=4).cells)
    bad = re.findall(r"(seed \d{3}\b|\blines? \d+\s*[–-]\s*\d+|\bspec §|detail spec|shared/spec|shared/seeds)", text)
    assert bad == [], f"{nb.name}: cites files the reader does not have: {sorted(set(bad))}"


PAPER_CHAPTERS = ("02", "03", "04", "05", "06", "07", "08", "09", "10")


@pytest.mark.parametrize("chapter", PAPER_CHAPTERS)
def test_full_profile_is_the_papers_experiment_with_a_tiny_ci_path(chapter):
    """Each paper notebook opens its `full` section with the paper-vs-ours settings table, has the `tiny` knob (off in
    every profile) and a CPU test of its full path on real-format fixtures."""
    from xmr_lib import chapters

    cfg = chapters.config(chapter)
    rows = getattr(cfg, "PAPER_SETTINGS", None)
    assert rows, f"{chapter}: PAPER_SETTINGS missing"
    for r in rows:
        assert (
            set(r) <= {"setting", "paper", "ours", "why"} and r.get("setting") and r.get("paper") and r.get("ours")
        ), f"{chapter}: a PAPER_SETTINGS row needs setting, paper and ours: {r}"
    assert len({r["setting"] for r in rows}) == len(rows), f"{chapter}: a setting is listed twice"
    assert all(p.get("tiny") is False for p in cfg.PROFILES.values()), f"{chapter}: tiny must be False in every profile"
    (nb,) = discover_notebooks(ROOT, [chapter])
    text = nb.read_text()
    assert "The paper's experiment (`full` profile)" in text and f'runs.paper_settings(\\"{chapter}\\")' in text
    assert (ROOT / "tests" / "chapters" / f"test_full_ch{chapter}.py").is_file()
