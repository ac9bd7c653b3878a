import json
import math

import pytest

from xmr_lib.core import claims
from xmr_lib.course import scorecard


def rec(profile="default", **metrics):
    return {"profile": profile, "metrics": metrics}


def status(c, record):
    return claims.evaluate_claim(c, record)["status"]


# ----------------------------------------------------------------------------------------------------------------
# the ordering rule


def test_paired_gap_hand_computed():
    # d = [0.02, 0.04, 0.03, 0.05, 0.01]: mean 0.03, sd 0.0158, t(0.975, 4) = 2.776 -> half 0.0196
    a = [0.52, 0.54, 0.53, 0.55, 0.51]
    ok, text = claims.paired_gap(a, [0.5] * 5, required=0.02)
    assert ok and "+0.03" in text and "n=5" in text
    assert "CI +0.0104…+0.0496" in text
    ok, _ = claims.paired_gap(a, [0.5] * 5, required=0.031)  # significant but below the required gap
    assert not ok


def test_paired_gap_needs_the_interval_above_zero():
    # every seed positive is not enough when the spread is large: d = [0.001, 0.2, 0.001, 0.001, 0.001]
    ok, text = claims.paired_gap([0.501, 0.7, 0.501, 0.501, 0.501], [0.5] * 5)
    assert not ok and "CI -" in text


def test_paired_gap_too_few_seeds_is_undecided():
    with pytest.raises(claims.Undecided, match="≥ 5 seeds"):
        claims.paired_gap([0.9, 0.9, 0.9], [0.1, 0.1, 0.1])


def test_greater_paper_gap_quarter_rule():
    c = claims.greater("05.kd_keeps_old", "KD keeps more", a="kd", b="ft", paper_gap=0.08)
    assert c.kind == claims.PAPER
    hold = rec(kd=[0.62, 0.63, 0.62, 0.625, 0.63], ft=[0.6] * 5)  # mean gap 0.025 >= 0.02
    fail = rec(kd=[0.61, 0.615, 0.61, 0.612, 0.61], ft=[0.6] * 5)  # significant, 0.011 < 0.02
    assert status(c, hold) == claims.HOLDS
    assert status(c, fail) == claims.FAILS
    assert status(c, rec(kd=[0.7] * 3, ft=[0.6] * 3)) == claims.NOT_RUN


def test_greater_checks_its_arguments():
    with pytest.raises(ValueError, match="paper_gap"):
        claims.greater("05.x", "s", a="a", b="b", paper_gap=-0.1)
    with pytest.raises(ValueError, match="not both"):
        claims.greater("05.x", "s", a="a", b="b", paper_gap=0.1, sign_only=True)
    with pytest.raises(ValueError, match="kind"):
        claims.greater("05.x", "s", a="a", b="b", kind="opinion", sign_only=True)


def test_close_to_is_for_full_profile_only():
    c = claims.close_to("02.t", "reproduces 64.7", metric="m", target=64.7, tol=2.0)
    assert status(c, rec("full", m=[63.0, 64.0])) == claims.HOLDS
    assert status(c, rec("full", m=60.0)) == claims.FAILS
    row = claims.evaluate_claim(c, rec("default", m=64.7))
    assert row["status"] == claims.NOT_RUN and "profile" in row["why"]


def test_thresholds_need_every_seed():
    c = claims.at_least("03.x", "s", metric="m", threshold=0.5)
    assert status(c, rec(m=[0.6, 0.7])) == claims.HOLDS
    assert status(c, rec(m=[0.6, 0.4])) == claims.FAILS


def test_missing_metric_and_missing_notebook_are_not_run():
    c = claims.at_least("03.x", "s", metric="m", threshold=0.5)
    assert status(c, rec(other=1)) == claims.NOT_RUN
    assert claims.evaluate_claim(c, None)["why"] == "notebook not run"


# ----------------------------------------------------------------------------------------------------------------
# bad values never hold and never crash


@pytest.mark.parametrize(
    "bad",
    [
        float("nan"),
        "nan",
        "inf",
        None,
        [],
        [0.5, None, 0.6],
        [0.5, "x"],
        {"a": 1},
        True,
        [float("inf")] * 5,
        1e308 * 10,
    ],
)
def test_bad_values_do_not_hold(bad):
    cs = [
        claims.at_most("03.x", "s", metric="m", threshold=0.5),
        claims.at_least("03.y", "s", metric="m", threshold=-1e9),
        claims.close_to("03.z", "s", metric="m", target=0.5, tol=10, profiles=("default",)),
        claims.greater("03.w", "s", a="m", b="o", sign_only=True),
        claims.custom("03.v", "s", ["m"], lambda v: (True, "always"), examples=({"m": 1}, {"m": 2})),
    ]
    for c in cs:
        if isinstance(bad, dict) and c.id == "03.v":
            continue  # a custom rule may read a small table (dict) as it is
        row = claims.evaluate_claim(c, rec(m=bad, o=[-1e9] * 5))
        assert row["status"] == claims.FAILS, (c.id, bad, row)
        assert row["why"], (c.id, bad)


def test_corrupt_and_wrongly_shaped_records_name_their_file(tmp_path):
    (tmp_path / "00_getting_started.metrics.json").write_text("{not json")
    (tmp_path / "02_survey.metrics.json").write_text("[1, 2]")
    rows = scorecard.write_scorecard(tmp_path)
    assert rows and all(r["status"] == claims.FAILS for r in rows)
    whys = {r["chapter"]: r["why"] for r in rows}
    assert "00_getting_started.metrics.json" in whys["00"] and "02_survey.metrics.json" in whys["02"]
    assert (tmp_path / "scorecard.md").is_file() and (tmp_path / "scorecard.html").is_file()


def test_non_finite_values_are_recorded_as_text_and_fail(run_dir):
    from xmr_lib.course import runs

    runs.params("00", profile="smoke", device="cpu")
    runs.record("pixels/mAP_over_chance", float("inf"))
    m = runs.recorded()["metrics"]["pixels/mAP_over_chance"]
    assert m == "inf"
    c = claims.at_least("00.x", "s", metric="pixels/mAP_over_chance", threshold=0.1, profiles=("smoke",))
    assert claims.evaluate_claim(c, runs.recorded())["status"] == claims.FAILS


# ----------------------------------------------------------------------------------------------------------------
# the registry: every claim can fail, every claim is well formed


ALL = scorecard.all_claims()


@pytest.mark.parametrize("claim", ALL, ids=[c.id for c in ALL])
def test_every_claim_can_fail_and_can_hold(claim):
    """The contradiction test: a record that contradicts the claim gives 'does not hold', one that satisfies it
    gives 'holds' — so no registered claim holds by construction of its rule."""
    hold, fail = claim.witnesses()
    profile = claim.profiles[0]
    row = claims.evaluate_claim(claim, rec(profile, **hold))
    assert row["status"] == claims.HOLDS, row
    row = claims.evaluate_claim(claim, rec(profile, **fail))
    assert row["status"] == claims.FAILS, row


def test_registry_is_well_formed():
    assert ALL, "no claims registered"
    assert len({c.id for c in ALL}) == len(ALL)
    for c in ALL:
        assert c.kind in claims.KINDS, c.id
        assert c.profiles and set(c.profiles) <= {"smoke", "default", "full"}, c.id
        assert c.statement and c.source, c.id
        if c.kind == claims.PAPER:
            assert c.paper, f"{c.id}: a paper claim states the paper's numbers (paper=...)"
        if c.kind == claims.PAPER and c.ordering:
            assert (c.paper_gap is not None) != c.sign_only, (
                f"{c.id}: a paper ordering states the paper's gap (paper_gap=) or is explicitly sign_only"
            )


def test_real_data_only_is_the_one_gate():
    c = claims.real_data_only(claims.close_to("02.t", "reproduces 64.7", metric="m", target=64.7, tol=2.0))
    assert c.metrics == ("m", "data/real") and c.id == "02.t" and claims.is_real_data_only(c)
    row = claims.evaluate_claim(c, rec("full", m=64.0))
    assert row["status"] == claims.NOT_RUN and "data/real" in row["why"]
    assert status(c, rec("full", m=64.0, **{"data/real": 1})) == claims.HOLDS
    assert status(c, rec("full", m=60.0, **{"data/real": 1})) == claims.FAILS
    for claim in ALL:  # no other marker convention (the old real/… keys, data/real_<name> markers)
        assert not any(
            m.startswith("real/") or (m.startswith("data/real") and m != claims.REAL_DATA) for m in claim.metrics
        ), claim.id


def test_claim_ids_are_checked():
    with pytest.raises(ValueError, match="id"):
        claims.at_least("nonumber", "s", metric="m", threshold=1)


# ----------------------------------------------------------------------------------------------------------------
# the scorecard


def test_scorecard_sections_and_headline(tmp_path):
    (tmp_path / "00_getting_started.metrics.json").write_text(
        json.dumps(
            {
                "chapter": "00",
                "profile": "smoke",
                "metrics": {"pixels/mAP_over_chance": 5.0, "index/top1_agreement": 1.0, "index/agreement_floor": 0.99},
            }
        )
    )
    rows = scorecard.write_scorecard(tmp_path, notebooks={"00_getting_started": {"status": "ok", "profile": "smoke"}})
    assert {r["chapter"] for r in rows} == {"00"}  # only the notebooks that ran are listed
    md = (tmp_path / "scorecard.md").read_text()
    assert md.count("Paper claims:") == 1 and "*Rule.*" in md
    assert "<table>" in (tmp_path / "scorecard.html").read_text()
    assert json.loads((tmp_path / "scorecard.json").read_text())


def test_headline_counts_only_paper_claims():
    rows = [
        {"kind": claims.PAPER, "status": claims.HOLDS},
        {"kind": claims.SANITY, "status": claims.HOLDS},
        {"kind": claims.FINDING, "status": claims.FAILS},
    ]
    h = scorecard.headline(rows)
    assert h.startswith("Paper claims: 1 hold · 0 do not hold · 0 not run")


def test_what_this_shows_is_rendered_from_rows():
    ch00 = [c for c in ALL if c.chapter == "00"]
    record = rec("smoke", **{m: 5.0 for c in ch00 for m in c.metrics})
    text = scorecard.what_this_shows("00", record).data
    assert "What this run shows" in text and ("✅" in text or "❌" in text)
    assert not math.isnan(len(text))


CHAPTERS = {ch: mod for ch, mod in scorecard.chapter_modules().items() if ch != "00"}


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_each_chapter_gates_paper_targets_on_the_one_real_data_marker(chapter):
    """Every full-profile paper target (a number of the paper's tables) is decided only on real data, through
    ``real_data_only``; the notebook records the marker; every chapter lists what it does not claim."""
    from pathlib import Path

    from claim_checks import assert_gated_on_real_data

    mod = CHAPTERS[chapter]
    targets = [c for c in mod.CLAIMS if c.kind == claims.PAPER and c.profiles == ("full",)]
    ungated = [c.id for c in targets if not claims.is_real_data_only(c)]
    assert not ungated, f"full-profile paper claims not gated by real_data_only: {ungated}"
    if targets:
        assert_gated_on_real_data(mod)
        root = Path(__file__).resolve().parents[2]
        sources = list((root / "notebooks").glob(f"{chapter}_*.ipynb"))
        # the marker is recorded by runs.params from the chapter's FALLBACK rule, or by the notebook itself
        assert getattr(mod, "FALLBACK", None) is not None or any(claims.REAL_DATA in p.read_text() for p in sources), (
            f"notebook {chapter} never records {claims.REAL_DATA!r} (declare FALLBACK in its config)"
        )
    assert isinstance(getattr(mod, "NOT_CLAIMED", None), list), f"ch{chapter}.py: NOT_CLAIMED missing"
    for entry in mod.NOT_CLAIMED:
        assert len(entry) == 3 and all(isinstance(x, str) and x for x in entry), entry


def test_the_committed_default_run_decides_every_default_claim():
    """results/default/ holds one complete default run (README links it): every registered default claim is
    decided there (holds or does not hold) — a claim added or renamed without a rerun fails here."""
    from pathlib import Path

    d = Path(__file__).resolve().parents[2] / "results" / "default"
    records = scorecard.load_records(d)
    assert records, f"{d} holds no metrics records: run `python -m benchmarks.default_run`"
    undecided = {
        c.id: claims.evaluate_claim(c, records.get(c.chapter))["why"]
        for c in ALL
        if "default" in c.profiles and claims.evaluate_claim(c, records.get(c.chapter))["status"] == claims.NOT_RUN
    }
    assert not undecided, undecided
    for rec in records.values():
        assert rec["profile"] == "default" and rec["settings"]["threads"] >= 1


def test_separating_tolerance_is_half_the_smallest_gap_to_another_row():
    from xmr_lib.core.claims import separating_tolerance

    dogs_old = [
        61.43,
        61.77,
        62.24,
        62.61,
        72.07,
        76.67,
    ]  # Table 5.3's old-class column (FT, LwF, EWC, ALASSO, L2, ours)
    assert separating_tolerance(62.24, dogs_old) == pytest.approx((62.61 - 62.24) / 2)
    assert separating_tolerance(76.67, dogs_old) == pytest.approx((76.67 - 72.07) / 2)
    assert separating_tolerance(30.0, [30.0, 80.0]) == 5.0  # capped; the value itself is not another row
    assert separating_tolerance(30.0, [30.0]) == 5.0 and separating_tolerance(1.0, [1.5], cap=1.0) == 0.25


def test_per_dataset_targets_fill_the_templates_and_gate_on_real_data():
    from xmr_lib.core.claims import per_dataset_targets, separating_tolerance

    rows = [
        {"ds": "mir", "name": "MIRFlickr", "bits": 16, "target": 0.825, "column": [0.735, 0.782, 0.825]},
        {"ds": "nus", "name": "NUS-WIDE", "bits": 16, "target": 0.648, "column": [0.478, 0.642, 0.648]},
    ]
    got = per_dataset_targets(
        rows,
        id="99.full_{ds}_{bits}",
        statement="{name} mAP at {bits} bits",
        metric="map/{ds}/{bits}",
        tol=lambda r: separating_tolerance(r["target"], r["column"], cap=0.03),
        source="Table 9",
    )
    assert [c.id for c in got] == ["99.full_mir_16", "99.full_nus_16"]
    mir, nus = got
    assert mir.statement == "MIRFlickr mAP at 16 bits" and mir.paper == "0.825" and mir.profiles == ("full",)
    assert set(mir.metrics) == {"map/mir/16", claims.REAL_DATA} and mir.source == "Table 9"
    # NUS-WIDE's tolerance is half its gap to 0.642 (0.003); MIRFlickr's is capped at 0.03 (gap 0.043 → 0.0215)
    assert (
        claims.evaluate_claim(nus, {"profile": "full", "metrics": {"data/real": 1, "map/nus/16": [0.650]}})["status"]
        == claims.HOLDS
    )
    assert (
        claims.evaluate_claim(nus, {"profile": "full", "metrics": {"data/real": 1, "map/nus/16": [0.652]}})["status"]
        == claims.FAILS
    )
    assert (
        claims.evaluate_claim(mir, {"profile": "full", "metrics": {"map/mir/16": [0.825]}})["status"] == claims.NOT_RUN
    )
    pct = per_dataset_targets(
        rows[:1], id="99.x_{ds}", statement="s", metric="m/{ds}", tol=0.02, paper=lambda r: f"{100 * r['target']:.1f}"
    )
    assert pct[0].paper == "82.5"
    with pytest.raises(ValueError, match=r"rows\[0\].*'task'"):
        per_dataset_targets(rows, id="99.{task}", statement="s", metric="m", tol=0.01)
    with pytest.raises(ValueError, match=r"rows\[0\]: no 'target'"):
        per_dataset_targets([{"ds": "mir"}], id="99.{ds}", statement="s", metric="m", tol=0.01)
