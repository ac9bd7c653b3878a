"""Claims from the papers, decided by the metrics a notebook recorded — never typed in.

Each chapter module ``xmr_lib/chapters/chNN.py`` lists its claims in ``CLAIMS`` and the paper statements it does
not claim, with the reason, in ``NOT_CLAIMED``::

    from xmr_lib.core.claims import PAPER, greater, close_to, real_data_only

    CLAIMS = [
        greater("02.gem_beats_mac", "GeM beats MAC off the shelf (medium mAP)",
                a="offtheshelf/gem/medium/mAP_seeds", b="offtheshelf/mac/medium/mAP_seeds",
                paper_gap=0.066, paper="GeM 64.7 vs MAC 58.1 (ROxf M)", source="Table 2.3"),
        real_data_only(close_to("02.full_gem_roxf", "R-GeM reaches the published ROxf-M mAP",
                                metric="full/roxf/gem/M", target=64.7, tol=3.0, paper="64.7", source="Table 2.3")),
    ]
    NOT_CLAIMED = [("Fig. 2.13a: deeper backbones retrieve better", "Fig. 2.13a", "needs the paper backbones")]

Every claim has a **kind**: :data:`PAPER` (a statement the paper makes; the scorecard's headline counts only
these), :data:`SANITY` (our code does what the formula says) or :data:`FINDING` (our own observation).

**The rule for orderings** (:func:`greater`, :func:`paired_gap`), the same everywhere: metrics are per-seed lists;
the claim is decided from the paired per-seed differences ``d = a − b`` over at least :data:`MIN_SEEDS` seeds. It
holds when the 95% t-interval of ``mean(d)`` lies above 0 *and* ``mean(d)`` reaches the required gap: a
:data:`GAP_FRACTION` (a quarter) of the paper's gap for a paper claim, 0 for an explicitly sign-only claim, or the
stated margin of a sanity / finding claim. Fewer seeds: *not run*. Thresholds (:func:`at_least`,
:func:`at_most`) must hold on every seed; paper targets (:func:`close_to`) compare the mean over seeds.

Statuses: ``holds`` / ``does not hold`` — decided by the recorded numbers (a NaN, an infinity, an empty or
non-numeric value decides "does not hold", with the reason); ``not run`` — the notebook did not run, ran another
profile, did not record a needed metric (e.g. the ``data/real`` marker of :func:`real_data_only`), or recorded too
few seeds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from xmr_lib.core.checks import check_choice

HOLDS, FAILS, NOT_RUN = "holds", "does not hold", "not run"
PAPER, SANITY, FINDING = "paper", "sanity", "finding"
KINDS = (PAPER, SANITY, FINDING)
GAP_FRACTION = 0.25
MIN_SEEDS = 5
CONFIDENCE = 0.95
REAL_DATA = "data/real"
RULE = (
    f"An ordering claim is decided from the paired per-seed differences over at least {MIN_SEEDS} seeds: it "
    f"holds when the {CONFIDENCE:.0%} t-interval of the mean difference lies above 0 and the mean difference "
    f"reaches {GAP_FRACTION:g} of the paper's gap (0 for a sign-only claim; the stated margin for a sanity or "
    "finding claim). A threshold holds when every seed meets it; a paper target compares the mean over seeds. "
    "NaN, infinite, empty or non-numeric values never hold."
)


class Undecided(Exception):
    """Raised by a decision rule when the values cannot decide the claim (e.g. too few seeds): *not run*."""


class BadValue(Exception):
    """Raised when a recorded value is not usable (NaN, inf, empty, not a number): *does not hold*."""


@dataclass(frozen=True)
class Claim:
    """One claim.

    Attributes:
        id: unique, prefixed by the notebook number (``"02.gem_beats_mac"``).
        statement: the claim in words.
        paper: the paper's value(s), as text.
        source: where the paper says it (section / table / equation / figure).
        metrics: the recorded metric keys that decide it.
        decide: ``f(values) -> (holds, ours)`` with ``values`` the recorded values of ``metrics``; may raise
            :class:`Undecided` (→ not run) or :class:`BadValue` (→ does not hold).
        profiles: profiles in which the claim is checked.
        kind: :data:`PAPER`, :data:`SANITY` or :data:`FINDING`.
        note: context shown beside the verdict (e.g. why a paper gap may not carry over to our data).
        examples: ``(holding, failing)`` metric values that the rule must accept and reject.
        sign_only / paper_gap: how an ordering's required gap was set (``None`` for other claims).
    """

    id: str
    statement: str
    paper: str
    source: str
    metrics: tuple[str, ...]
    decide: Callable[[dict[str, Any]], tuple[bool, str]] = field(repr=False)
    profiles: tuple[str, ...] = ("default",)
    kind: str = PAPER
    note: str = ""
    examples: tuple[dict, dict] | None = field(default=None, repr=False)
    paper_gap: float | None = None
    sign_only: bool = False
    ordering: bool = False

    @property
    def chapter(self) -> str:
        return self.id.split(".")[0]

    def witnesses(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Metric values that make this claim hold and values that contradict it (for the contradiction test)."""
        if self.examples is None:
            raise ValueError(f"claim {self.id}: no examples (custom claims must pass examples=(holding, failing))")
        hold, fail = (dict(e) for e in self.examples)
        for m in self.metrics:  # gating markers (real_data_only) and any extra key the rule ignores
            hold.setdefault(m, 1.0)
            fail.setdefault(m, 1.0)
        return hold, fail


# ---------------------------------------------------------------------------------------------------------------
# values


def as_values(v: Any, name: str = "value") -> list[float]:
    """A recorded metric as a list of finite floats (one per seed); :class:`BadValue` names what is wrong."""
    xs = v if isinstance(v, (list, tuple)) else [v]
    if not xs:
        raise BadValue(f"{name}: empty list of per-seed values")
    out = []
    for i, x in enumerate(xs):
        if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
            raise BadValue(f"{name}: value {i} is {x!r}, not a number")
        x = float(x)
        if not math.isfinite(x):
            raise BadValue(f"{name}: value {i} is {x} (not finite)")
        out.append(x)
    return out


def _fmt(xs: Sequence[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.4g}"
    return f"{np.mean(xs):.4g} ± {np.std(xs, ddof=1):.2g}"


def mean_interval(xs: Sequence[float]) -> tuple[float, float, float, float]:
    """``(mean, sd, lo, hi)`` of ``xs``: its mean, standard deviation (ddof 1) and the 95% t-interval of the mean
    (``nan`` for the last three with fewer than 2 values) — the interval of the scorecard's rule and of sweeps."""
    from scipy import stats

    x = np.asarray(xs, dtype=float)
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan"), float("nan")
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(x) - 1)) * sd / math.sqrt(len(x))
    return m, sd, m - half, m + half


def paired_gap(
    a: Sequence[float], b: Sequence[float], required: float = 0.0, *, min_seeds: int = MIN_SEEDS
) -> tuple[bool, str]:
    """The one ordering rule: does ``a`` beat ``b`` by at least ``required``, seed by seed?

    Args:
        a, b: per-seed values (length n each, or one of them a single value that is broadcast).
        required: the mean paired difference needed (e.g. a quarter of the paper's gap).
        min_seeds: fewer seeds than this raises :class:`Undecided`.

    Returns:
        ``(holds, text)``: holds when the 95% t-interval of ``mean(a − b)`` lies above 0 and ``mean(a − b) ≥
        required``; the text gives both means, the mean gap ± its standard deviation, the interval and n.
    """
    a, b = list(a), list(b)
    if len(a) == 1 and len(b) > 1:
        a = a * len(b)
    if len(b) == 1 and len(a) > 1:
        b = b * len(a)
    if len(a) != len(b):
        raise BadValue(f"{len(a)} seeds against {len(b)}: cannot pair them")
    n = len(a)
    if n < min_seeds:
        raise Undecided(f"needs ≥ {min_seeds} seeds to decide an ordering; {n} recorded")
    mean, sd, lo, hi = mean_interval(np.asarray(a) - np.asarray(b))
    ok = lo > 0 and mean >= required
    text = (
        f"{np.mean(a):.4g} vs {np.mean(b):.4g}: gap {mean:+.4g} ± {sd:.2g} "
        f"(95% CI {lo:+.3g}…{hi:+.3g}, n={n}; needs ≥ {required:+.3g})"
    )
    return ok, text


def _check_id(id: str) -> None:
    head = id.split(".")[0]
    if "." not in id or not head.isdigit():
        raise ValueError(f"id: claim ids look like '02.some_name'; got {id!r}")


# ---------------------------------------------------------------------------------------------------------------
# constructors


def greater(
    id: str,
    statement: str,
    a: str,
    b: str,
    *,
    kind: str = PAPER,
    paper_gap: float | None = None,
    sign_only: bool = False,
    min_gap: float = 0.0,
    margin: float | None = None,
    paper: str = "",
    source: str = "",
    note: str = "",
    profiles: Sequence[str] = ("default",),
) -> Claim:
    """Ordering claim ``a > b``, decided by :func:`paired_gap` over the per-seed values.

    A :data:`PAPER` claim states ``paper_gap`` (the paper's ``a − b``, in the units we record) and then needs a
    mean gap of at least ``GAP_FRACTION * paper_gap``, or is explicitly ``sign_only``. A :data:`SANITY` or
    :data:`FINDING` claim may state a ``min_gap`` (``margin`` is its old name).
    """
    _check_id(id)
    check_choice(kind, "kind", KINDS)
    if margin is not None:
        min_gap = margin
    if paper_gap is not None and not paper_gap > 0:
        raise ValueError(
            f"paper_gap: the paper's gap a − b must be > 0 (swap a and b for 'less than'); "
            f"got {paper_gap!r} in claim {id}"
        )
    if paper_gap is not None and sign_only:
        raise ValueError(f"claim {id}: give paper_gap or sign_only=True, not both")
    if kind == PAPER:
        required = GAP_FRACTION * paper_gap if paper_gap is not None else (0.0 if sign_only else min_gap)
    else:
        required = min_gap

    def decide(v):
        return paired_gap(as_values(v[a], a), as_values(v[b], b), required)

    step = max(required, 0.01) * 2
    examples = (
        {a: [0.5 + step + 0.001 * i for i in range(MIN_SEEDS)], b: [0.5] * MIN_SEEDS},
        {a: [0.5 + 0.001 * i for i in range(MIN_SEEDS)], b: [0.5 + 0.001 * i for i in range(MIN_SEEDS)]},
    )
    return Claim(
        id,
        statement,
        paper,
        source,
        (a, b),
        decide,
        tuple(profiles),
        kind,
        note,
        examples,
        paper_gap=paper_gap,
        sign_only=sign_only,
        ordering=True,
    )


def at_least(
    id: str,
    statement: str,
    metric: str,
    threshold: float,
    *,
    kind: str = SANITY,
    paper: str = "",
    source: str = "",
    note: str = "",
    profiles: Sequence[str] = ("default",),
) -> Claim:
    """Claim ``metric ≥ threshold`` on every seed."""
    _check_id(id)
    check_choice(kind, "kind", KINDS)

    def decide(v):
        xs = as_values(v[metric], metric)
        return all(x >= threshold for x in xs), f"{_fmt(xs)} (min {min(xs):.4g}; needs ≥ {threshold:g})"

    off = max(abs(threshold) * 0.1, 0.1)
    return Claim(
        id,
        statement,
        paper,
        source,
        (metric,),
        decide,
        tuple(profiles),
        kind,
        note,
        ({metric: [threshold + off] * 3}, {metric: [threshold + off, threshold - off, threshold + off]}),
    )


def at_most(
    id: str,
    statement: str,
    metric: str,
    threshold: float,
    *,
    kind: str = SANITY,
    paper: str = "",
    source: str = "",
    note: str = "",
    profiles: Sequence[str] = ("default",),
) -> Claim:
    """Claim ``metric ≤ threshold`` on every seed."""
    _check_id(id)
    check_choice(kind, "kind", KINDS)

    def decide(v):
        xs = as_values(v[metric], metric)
        return all(x <= threshold for x in xs), f"{_fmt(xs)} (max {max(xs):.4g}; needs ≤ {threshold:g})"

    off = max(abs(threshold) * 0.1, 0.1)
    return Claim(
        id,
        statement,
        paper,
        source,
        (metric,),
        decide,
        tuple(profiles),
        kind,
        note,
        ({metric: [threshold - off] * 3}, {metric: [threshold - off, threshold + off, threshold - off]}),
    )


def close_to(
    id: str,
    statement: str,
    metric: str,
    target: float,
    tol: float,
    *,
    kind: str = PAPER,
    paper: str = "",
    source: str = "",
    note: str = "",
    profiles: Sequence[str] = ("full",),
) -> Claim:
    """Claim ``|mean over seeds of metric − target| ≤ tol`` — reproducing a paper's number."""
    _check_id(id)
    check_choice(kind, "kind", KINDS)
    if not tol >= 0:
        raise ValueError(f"tol: expected ≥ 0, got {tol!r} in claim {id}")

    def decide(v):
        xs = as_values(v[metric], metric)
        m = float(np.mean(xs))
        return abs(m - target) <= tol, f"{_fmt(xs)} (target {target:g} ± {tol:g})"

    return Claim(
        id,
        statement,
        paper,
        source,
        (metric,),
        decide,
        tuple(profiles),
        kind,
        note,
        ({metric: [target]}, {metric: [target + 2 * tol + 1e-3 + abs(target) * 0.1]}),
    )


def separating_tolerance(target: float, column: Sequence[float], cap: float = 5.0) -> float:
    """The widest ``close_to`` tolerance that still tells ``target`` from every other value of its table column:
    half the smallest gap to another value (two rows' intervals do not overlap), at most ``cap``.

    ``column`` holds the column's values (``target`` among them or not; equal values do not count as another row).
    """
    gaps = [abs(float(target) - float(v)) for v in column if float(v) != float(target)]
    return min(float(cap), min(gaps) / 2) if gaps else float(cap)


def custom(
    id: str,
    statement: str,
    metrics: Sequence[str],
    decide: Callable[[dict], tuple[bool, str]],
    *,
    examples: tuple[dict, dict] | None = None,
    kind: str = PAPER,
    paper: str = "",
    source: str = "",
    note: str = "",
    profiles: Sequence[str] = ("default",),
) -> Claim:
    """Any other rule: ``decide(values) -> (holds, our value as text)``.

    ``examples=(holding, failing)`` are metric values the rule must accept and reject; a test checks both, so no
    claim can hold by construction. Orderings over seeds should call :func:`paired_gap` inside ``decide``.
    """
    _check_id(id)
    check_choice(kind, "kind", KINDS)
    if examples is not None and not (
        isinstance(examples, tuple) and len(examples) == 2 and all(isinstance(e, dict) for e in examples)
    ):
        raise ValueError(
            f"examples: expected (holding_values, failing_values), two dicts; got {examples!r} in claim {id}"
        )

    def safe(v):
        return decide({k: _checked(x, k) for k, x in v.items()})

    return Claim(id, statement, paper, source, tuple(metrics), safe, tuple(profiles), kind, note, examples)


def _checked(x: Any, name: str) -> Any:
    """A custom rule's value: lists and numbers validated by :func:`as_values`; a dict (a small table) as is."""
    if isinstance(x, dict):
        return x
    if isinstance(x, (list, tuple)):
        return as_values(x, name)
    return as_values(x, name)[0]


def requiring(claim: Claim, *metrics: str) -> Claim:
    """``claim`` that also needs ``metrics`` recorded: without them it reads *not run* instead of being decided."""
    if not metrics:
        raise ValueError("metrics: expected at least one metric key")
    return dataclasses.replace(claim, metrics=claim.metrics + tuple(metrics))


def real_data_only(claim: Claim) -> Claim:
    """The one real-data gate: ``claim`` is decided only by a run that recorded ``data/real`` (a notebook records
    it when it ran on the real benchmark, not on the embedded fallback)."""
    return requiring(claim, REAL_DATA)


def is_real_data_only(claim: Claim) -> bool:
    return REAL_DATA in claim.metrics


# ---------------------------------------------------------------------------------------------------------------
# registry


# ---------------------------------------------------------------------------------------------------------------
# evaluation


def evaluate_claim(claim: Claim, record: dict | None) -> dict[str, Any]:
    """One scorecard row for ``claim`` given a notebook's metrics record (``None`` if the notebook did not run)."""
    row = {
        "id": claim.id,
        "chapter": claim.chapter,
        "kind": claim.kind,
        "statement": claim.statement,
        "paper": claim.paper,
        "source": claim.source,
        "note": claim.note,
        "profiles": list(claim.profiles),
        "ours": "",
        "status": NOT_RUN,
        "why": "",
    }
    if not record:
        row["why"] = "notebook not run"
        return row
    if not isinstance(record, dict):
        row.update(status=FAILS, why=f"record is a {type(record).__name__}, not a dict")
        return row
    if record.get("error"):
        row.update(status=FAILS, why=str(record["error"]))
        return row
    prof = record.get("profile")
    if prof not in claim.profiles:
        row["why"] = f"checked in profile {'/'.join(claim.profiles)}; this run was {prof}"
        return row
    metrics = record.get("metrics", {})
    if not isinstance(metrics, dict):
        row.update(status=FAILS, why=f"'metrics' is a {type(metrics).__name__}, not a dict")
        return row
    missing = [m for m in claim.metrics if m not in metrics]
    if missing:
        row["why"] = "metric(s) not recorded: " + ", ".join(missing)
        return row
    values = {m: metrics[m] for m in claim.metrics}
    try:
        ok, ours = claim.decide(values)
    except Undecided as e:
        row["why"] = str(e)
        return row
    except BadValue as e:
        row.update(status=FAILS, why=str(e))
        return row
    except (TypeError, ValueError, KeyError, ZeroDivisionError) as e:
        row.update(status=FAILS, why=f"cannot decide from the recorded values: {type(e).__name__}: {e}")
        return row
    row.update(status=HOLDS if ok else FAILS, ours=ours)
    return row


# ---------------------------------------------------------------------------------------------------------------
# reports


# ---------------------------------------------------------------------------------------------------------------
# building claims


def per_dataset_targets(
    rows: Sequence[Mapping[str, Any]],
    *,
    id: str,
    statement: str,
    metric: str,
    tol: float | Callable[[Mapping[str, Any]], float],
    paper: str | Callable[[Mapping[str, Any]], str] = "{target:.3f}",
    source: str = "",
    note: str = "",
    kind: str = PAPER,
    profiles: Sequence[str] = ("full",),
) -> list[Claim]:
    """A paper table's absolute numbers as :func:`close_to` targets, one per row, each gated by
    :func:`real_data_only` (a dataset's numbers are decided only on that dataset's real data).

    Args:
        rows: one mapping per target: ``"target"`` (the paper's number) and the fields the templates name,
            e.g. ``{"ds": "nuswide", "name": "NUS-WIDE", "task": "i2t", "bits": 16, "target": 0.648}``.
        id, statement, metric: ``str.format`` templates filled from each row, e.g. ``"03.full_{ds}_{task}_{bits}"``,
            ``"{name} {task} mAP at {bits} bits"``, ``"map/{ds}/{task}/{bits}"``.
        tol: the tolerance, or ``f(row)`` giving it (e.g. :func:`separating_tolerance` of the row's table column).
        paper: the paper's value as text: a template (default ``"{target:.3f}"``) or ``f(row)``.
        source, note, kind, profiles: as :func:`close_to`.
    Returns:
        the claims, in the order of ``rows``.
    """
    out = []
    for i, row in enumerate(rows):
        if "target" not in row:
            raise ValueError(f"rows[{i}]: no 'target' (the paper's number); got keys {sorted(row)}")
        try:
            cid, text, key = id.format(**row), statement.format(**row), metric.format(**row)
            shown = paper(row) if callable(paper) else paper.format(**row)
        except KeyError as e:
            raise ValueError(f"rows[{i}]: a template names the field {e}, which the row does not have") from None
        t = tol(row) if callable(tol) else tol
        claim = close_to(
            cid, text, key, float(row["target"]), t, kind=kind, paper=shown, source=source, note=note, profiles=profiles
        )
        out.append(real_data_only(claim))
    return out
