"""The library's architecture, checked: imports only go down the layers and no chapter imports another
(the import-linter contracts in pyproject.toml), and no xmr_lib module imports another inside a function."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "data", "encoders", "retrieval", "train", "chapters", "course")


def test_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    out = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "BROKEN" not in out.stdout and out.stdout.count("KEPT") == 2


def test_every_module_sits_in_a_layer():
    lib = ROOT / "xmr_lib"
    loose = sorted(p.name for p in lib.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert loose == [], f"modules outside the layers: {loose}"
    assert sorted(p.name for p in lib.iterdir() if p.is_dir() and (p / "__init__.py").exists()) == sorted(LAYERS)


def test_no_xmr_lib_import_inside_a_function():
    found = []
    for p in sorted((ROOT / "xmr_lib").rglob("*.py")):
        tree = ast.parse(p.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if id(node) in top or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if getattr(node, "level", 0) or any(n == "xmr_lib" or n.startswith("xmr_lib.") for n in names):
                found.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert found == [], f"xmr_lib imports inside functions (move them to the module top): {found}"
