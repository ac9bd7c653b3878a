"""The bad-input audit (tools/audit_bad_inputs.py): every wrong argument, knob, metric value and dataset file it
tries gives an error naming what is wrong — no bare library traceback, no silent wrong result."""

import pytest

from tools import audit_bad_inputs as audit


@pytest.mark.parametrize("area", sorted(audit.AREAS))
def test_no_silent_wrong_result_and_no_bare_traceback(area):
    rows = audit.audit([area])
    assert rows and not [r for r in rows if r["verdict"] == "setup error"], rows[:1]
    bad = [f"{r['case']}: {r['verdict']} {r['message']}" for r in rows if r["verdict"] != "clear"]
    assert not bad, "\n".join(bad)


def test_the_audit_can_tell_the_three_verdicts_apart():
    ok = audit.Case("t", "clear", lambda: (_ for _ in ()).throw(ValueError("k: bad")), ("k",))
    bare = audit.Case("t", "bare", lambda: 1 / 0, ("k",))
    silent = audit.Case("t", "silent", lambda: None, ("k",))
    assert [audit._classify(c)[0] for c in (ok, bare, silent)] == ["clear", "bare", "silent"]
