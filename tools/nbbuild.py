"""Write a notebook from a list of cells — for authors who prefer to draft notebooks in a Python script.

    from tools.nbbuild import md, code, params, write
    write("notebooks/02_x.ipynb", [md("# Title"), params('profile = "default"\nseed = 0'), code("1 + 1")])

Notebooks are stored without outputs, with the one kernelspec every xmr notebook uses.
"""
from __future__ import annotations

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def md(src: str):
    return nbformat.v4.new_markdown_cell(src.strip("\n"))


def code(src: str, tags: list[str] | None = None):
    c = nbformat.v4.new_code_cell(src.strip("\n"))
    if tags:
        c.metadata["tags"] = list(tags)
    return c


def params(src: str):
    """The one cell tagged ``parameters`` (papermill injects overrides after it)."""
    return code(src, tags=["parameters"])


def write(path: str, cells: list) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for i, c in enumerate(nb.cells):  # stable ids keep diffs small
        c["id"] = f"c{i:03d}"
    nbformat.validate(nb)
    nbformat.write(nb, path)
