"""Every notebook runs end to end in the smoke profile; its smoke-profile claims hold on the recorded metrics."""
import json
import time
from pathlib import Path

import pytest

from xmr_lib import claims
from xmr_lib.runner import discover_notebooks, execute_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = discover_notebooks(ROOT)


@pytest.mark.notebook
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_profile(nb, tmp_path):
    t0 = time.time()
    execute_notebook(nb, tmp_path, {"profile": "smoke"}, timeout=600)
    seconds = time.time() - t0
    rec = json.loads((tmp_path / f"{nb.stem}.metrics.json").read_text())
    assert rec["profile"] == "smoke" and rec["metrics"], f"{nb.name} recorded no metrics"
    chapter = nb.name[:2]
    smoke_claims = [c for c in claims.all_claims() if c.chapter == chapter and "smoke" in c.profiles]
    for c in smoke_claims:
        row = claims.evaluate_claim(c, rec)
        assert row["status"] == claims.HOLDS, f"{c.id}: {row['status']} — {row['why'] or row['ours']}"
    print(f"{nb.stem}: {seconds:.1f} s, {len(rec['metrics'])} metrics, {len(smoke_claims)} smoke claims")
