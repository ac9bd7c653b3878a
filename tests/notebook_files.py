"""Write small notebooks for the runner and sweep tests (imported like ``fixtures_real_formats``)."""

from __future__ import annotations

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def code(src: str, tags: list[str] | None = None):
    c = nbformat.v4.new_code_cell(src.strip("\n"))
    if tags:
        c.metadata["tags"] = list(tags)
    return c


def params(src: str):
    """The one cell tagged ``parameters`` (papermill injects overrides after it)."""
    return code(src, tags=["parameters"])


def write(path: str, cells: list) -> None:
    """A notebook of ``cells`` without outputs, with the kernelspec every xmr notebook uses."""
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    nbformat.write(nb, path)
