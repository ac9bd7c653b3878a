"""The repository's own contract: packaging files agree, notebooks are clean and parameterised alike."""
import ast
import re
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
    assert sorted(names[4:]) == sorted(table["default"]), \
        f"{nb.name}: knobs in the notebook {sorted(names[4:])} != PROFILES in ch{nb.name[:2]}.py {sorted(table['default'])}"
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
