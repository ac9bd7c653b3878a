"""Assertions on chapter claims shared by the chapter tests (imported like ``fixtures_real_formats``)."""

from __future__ import annotations

from xmr_lib.core import claims


def assert_gated_on_real_data(chapter_module, real_keys=(claims.REAL_DATA,)) -> set[str]:
    """Full-profile paper claims need the real-data marker: 'not run' on a fallback record, decided with it.

    Returns the ids of the gated claims of ``chapter_module`` (those whose metrics include one of ``real_keys``).
    """
    gated = [c for c in chapter_module.CLAIMS if set(real_keys) & set(c.metrics)]
    assert gated, "some full-profile claims must be gated on real data"
    assert all(c.profiles == ("full",) for c in gated)
    metrics = {m: [1.0] * claims.MIN_SEEDS for c in gated for m in c.metrics if m not in real_keys}
    fallback = {"profile": "full", "metrics": {**metrics, "data/fallback": 1}}
    assert all(claims.evaluate_claim(c, fallback)["status"] == claims.NOT_RUN for c in gated)
    real = {"profile": "full", "metrics": {**metrics, "data/fallback": 0, **{k: 1 for k in real_keys}}}
    assert all(claims.evaluate_claim(c, real)["status"] != claims.NOT_RUN for c in gated)
    return {c.id for c in gated}
