import json

import pytest

from xmr_lib import claims


def rec(profile="default", **metrics):
    return {"profile": profile, "metrics": metrics}


def test_greater_needs_every_seed():
    c = claims.greater("05.kd_keeps_old", "KD keeps more", a="kd", b="ft", profiles=("default",))
    assert claims.evaluate_claim(c, rec(kd=[0.6, 0.7, 0.8], ft=[0.5, 0.6, 0.7]))["status"] == claims.HOLDS
    row = claims.evaluate_claim(c, rec(kd=[0.6, 0.5, 0.8], ft=[0.5, 0.6, 0.7]))
    assert row["status"] == claims.FAILS and "0.6" in row["ours"]


def test_margin_and_scalar_broadcast():
    c = claims.greater("02.x", "a beats b by 0.05", a="a", b="b", margin=0.05)
    assert claims.evaluate_claim(c, rec(a=[0.7, 0.8], b=0.6))["status"] == claims.HOLDS
    assert claims.evaluate_claim(c, rec(a=[0.64, 0.8], b=0.6))["status"] == claims.FAILS


def test_close_to_is_for_full_profile_only():
    c = claims.close_to("02.t", "reproduces 64.7", metric="m", target=64.7, tol=2.0)
    assert claims.evaluate_claim(c, rec("full", m=[63.0, 64.0]))["status"] == claims.HOLDS
    assert claims.evaluate_claim(c, rec("full", m=60.0))["status"] == claims.FAILS
    row = claims.evaluate_claim(c, rec("default", m=64.7))
    assert row["status"] == claims.NOT_RUN and "profile" in row["why"]


def test_missing_metric_and_missing_notebook_are_not_run():
    c = claims.at_least("03.x", "s", metric="m", threshold=0.5)
    assert claims.evaluate_claim(c, rec(other=1))["status"] == claims.NOT_RUN
    assert claims.evaluate_claim(c, None)["why"] == "notebook not run"


def test_nan_never_holds():
    c = claims.at_most("03.x", "s", metric="m", threshold=0.5)
    assert claims.evaluate_claim(c, rec(m=float("nan")))["status"] == claims.FAILS


def test_claim_ids_are_checked():
    with pytest.raises(ValueError, match="id"):
        claims.at_least("nonumber", "s", metric="m", threshold=1)


def test_registry_has_unique_ids_prefixed_by_chapter():
    cs = claims.all_claims()
    assert cs, "no claims registered"
    assert len({c.id for c in cs}) == len(cs)
    for c in cs:
        assert c.profiles and set(c.profiles) <= {"smoke", "default", "full"}, c.id


def test_scorecard_files(tmp_path):
    (tmp_path / "00_getting_started.metrics.json").write_text(json.dumps(
        {"chapter": "00", "profile": "smoke", "metrics": {"pixels/mAP_over_chance": 5.0,
                                                          "index/top1_agreement": 1.0,
                                                          "index/agreement_floor": 0.99}}))
    rows = claims.write_scorecard(tmp_path, notebooks={"00_getting_started": {"status": "ok", "profile": "smoke"}})
    by_id = {r["id"]: r for r in rows}
    assert by_id["00.pixels_beat_chance"]["status"] == claims.HOLDS
    md = (tmp_path / "scorecard.md").read_text()
    assert "00.pixels_beat_chance" in md and "holds" in md
    assert "<table>" in (tmp_path / "scorecard.html").read_text()
    assert json.loads((tmp_path / "scorecard.json").read_text())


def test_requiring_leaves_a_claim_not_run_until_its_marker_is_recorded():
    c = claims.requiring(claims.close_to("02.t", "reproduces 64.7", metric="m", target=64.7, tol=2.0,
                                         profiles=("full",)), "data/real")
    assert c.metrics == ("m", "data/real") and c.id == "02.t"
    row = claims.evaluate_claim(c, rec("full", m=64.0))
    assert row["status"] == claims.NOT_RUN and "data/real" in row["why"]
    assert claims.evaluate_claim(c, rec("full", m=64.0, **{"data/real": 1}))["status"] == claims.HOLDS
    assert claims.evaluate_claim(c, rec("full", m=60.0, **{"data/real": 1}))["status"] == claims.FAILS
    with pytest.raises(ValueError, match="metrics"):
        claims.requiring(c)
