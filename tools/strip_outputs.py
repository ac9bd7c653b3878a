"""Strip outputs and execution counts from notebooks (the pre-commit hook): ``python -m tools.strip_outputs NB...``.

The committed notebooks are sources; their executed copies live in run folders. Exits 1 when it changed a file, so
that pre-commit shows the change before it is committed."""

from __future__ import annotations

import sys

import nbformat


def strip(path: str) -> bool:
    """Remove outputs / execution counts from one notebook; True when the file changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for c in nb.cells:
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None):
            c.outputs, c.execution_count, changed = [], None, True
    if changed:
        nbformat.write(nb, path)
    return changed


def main(argv: list[str]) -> int:
    changed = [p for p in argv if strip(p)]
    for p in changed:
        print(f"stripped outputs: {p}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
