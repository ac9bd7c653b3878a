"""A static book from a run folder: every executed notebook as a page, and the scorecard linked to them.

``xmr book RUN_DIR [--out DIR]`` (default ``RUN_DIR/book``) writes ``index.html`` — the notebooks of the run and
the scorecard, each claim linked to the cell of its notebook that recorded the metric deciding it — and one
``NN_name.html`` per executed notebook (nbconvert's lab template, figures embedded). Build it from a complete
default run to publish the book; CI builds it from the smoke run so that the build keeps working.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from xmr_lib.core import claims as claims_mod
from xmr_lib.course import scorecard


def _cell_for(nb: Any, metrics: tuple[str, ...]) -> str | None:
    """The id of the first code cell whose source names one of ``metrics`` (the key, or its leading parts)."""
    wanted = []
    for m in metrics:
        if m == claims_mod.REAL_DATA:
            continue
        parts = m.split("/")
        wanted += ["/".join(parts[:i]) + ("/" if i < len(parts) else "") for i in range(len(parts), 0, -1)]
    for w in wanted:
        for c in nb.cells:
            if c.cell_type == "code" and (f'"{w}' in c.source or f"'{w}" in c.source):
                return c.get("id")
    for c in nb.cells:  # the claims table of the notebook
        if c.cell_type == "code" and "claims_table" in c.source:
            return c.get("id")
    return None


def build(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the book of ``run_dir`` into ``out`` and return the path of its ``index.html``."""
    import nbformat
    from nbconvert import HTMLExporter

    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "book"
    nbs = sorted(run_dir.glob("[0-9][0-9]_*.ipynb"))
    if not nbs:
        raise ValueError(f"run_dir: {run_dir} holds no executed notebook (NN_name.ipynb); run `xmr run` first")
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    pages: dict[str, tuple[str, Any]] = {}
    for p in nbs:
        nb = nbformat.read(str(p), as_version=4)
        nbformat.validator.normalize(nb)
        body, _ = exporter.from_notebook_node(nb)
        (out / f"{p.stem}.html").write_text(body, encoding="utf-8")
        pages[p.name[:2]] = (p.stem, nb)
    state = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    rows = scorecard.write_scorecard(run_dir, notebooks=state.get("notebooks"), chapters=list(pages))
    by_id = {c.id: c for c in scorecard.all_claims()}
    e = html.escape
    parts = [
        f"<h1>xmr — {e(run_dir.name)}</h1>",
        f"<p><b>{e(scorecard.headline(rows))}</b></p>",
        f"<p><i>Rule.</i> {e(claims_mod.RULE)}</p>",
        "<h2>Notebooks</h2><ul>",
    ]
    for stem, nb in pages.values():
        title = next(
            (
                c.source.splitlines()[0].lstrip("# ")
                for c in nb.cells
                if c.cell_type == "markdown" and c.source.startswith("#")
            ),
            stem,
        )
        st = state.get("notebooks", {}).get(stem, {})
        parts.append(
            f"<li><a href='{e(stem)}.html'>{e(title)}</a> — {e(str(st.get('profile', '')))} "
            f"{e(str(st.get('status', '')))} {e(str(st.get('seconds', '')))} s</li>"
        )
    parts.append("</ul>")
    colour = scorecard.STATUS_COLOUR
    for kind in claims_mod.KINDS:
        part = [r for r in rows if r["kind"] == kind]
        if not part:
            continue
        parts.append(
            f"<h2>{e(kind.title())} claims</h2><table><tr><th>claim</th><th>statement</th><th>source</th>"
            "<th>paper</th><th>ours</th><th>status</th></tr>"
        )
        for r in part:
            stem, nb = pages[r["chapter"]]
            cell = _cell_for(nb, by_id[r["id"]].metrics) if r["id"] in by_id else None
            href = f"{stem}.html" + (f"#cell-id={cell}" if cell else "")
            status = r["status"] + (f" ({r['why']})" if r["why"] else "")
            parts.append(
                f"<tr style='background:{colour[r['status']]}'><td><a href='{e(href)}'>{e(r['id'])}</a></td>"
                + "".join(f"<td>{e(str(x))}</td>" for x in (r["statement"], r["source"], r["paper"], r["ours"], status))
                + "</tr>"
            )
        parts.append("</table>")
    index = out / "index.html"
    index.write_text(
        "<!doctype html><meta charset='utf-8'><title>xmr book</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:90em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}</style>" + "".join(parts),
        encoding="utf-8",
    )
    return index
