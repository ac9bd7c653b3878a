"""Every notebook runs end to end in the smoke profile; its smoke-profile claims hold on the recorded metrics."""

import json
import time
from pathlib import Path

import pytest

from xmr_lib.core import claims
from xmr_lib.course import scorecard
from xmr_lib.course.runner import discover_notebooks, execute_notebook

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = discover_notebooks(ROOT)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One folder for the whole smoke run, as `xmr run --profile smoke` would write it (the book is built from it)."""
    return tmp_path_factory.mktemp("smoke_run")


@pytest.mark.notebook
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_profile(nb, smoke_run):
    t0 = time.time()
    execute_notebook(nb, smoke_run, {"profile": "smoke"}, timeout=600)
    seconds = time.time() - t0
    rec = json.loads((smoke_run / f"{nb.stem}.metrics.json").read_text())
    assert rec["profile"] == "smoke" and rec["metrics"], f"{nb.name} recorded no metrics"
    chapter = nb.name[:2]
    smoke_claims = [c for c in scorecard.all_claims() if c.chapter == chapter and "smoke" in c.profiles]
    for c in smoke_claims:
        row = claims.evaluate_claim(c, rec)
        assert row["status"] == claims.HOLDS, f"{c.id}: {row['status']} — {row['why'] or row['ours']}"
    print(f"{nb.stem}: {seconds:.1f} s, {len(rec['metrics'])} metrics, {len(smoke_claims)} smoke claims")


@pytest.mark.notebook
def test_book_builds_from_the_smoke_run(smoke_run):
    """`xmr book`: a page per executed notebook, the scorecard with every claim linked to a cell of its page."""
    import re

    from xmr_lib.course import book

    ran = sorted(p.stem for p in smoke_run.glob("[0-9][0-9]_*.ipynb"))
    if not ran:
        pytest.skip("no notebook ran in this session (deselected)")
    index = book.build(smoke_run)
    text = index.read_text()
    for stem in ran:
        page = index.parent / f"{stem}.html"
        assert page.is_file() and "<img" in page.read_text() or "00_" not in stem
        assert f"href='{stem}.html'" in text
    for href in re.findall(r"href='([^']+#cell-id=[^']+)'", text):
        page, anchor = href.split("#", 1)
        assert f'id="{anchor}"' in (index.parent / page).read_text(), href
