"""Claims from the papers, decided by the metrics a notebook recorded — never hard-coded.

Each chapter module ``xmr_lib/chapters/chNN.py`` lists its claims in ``CLAIMS``::

    from xmr_lib.claims import greater, close_to

    CLAIMS = [
        greater("02.gem_beats_mac", "GeM beats MAC off the shelf (medium mAP)",
                a="offtheshelf/gem/medium/mAP_seeds", b="offtheshelf/mac/medium/mAP_seeds",
                paper="GeM 64.7 vs MAC 58.1 (ROxf M)", source="Table 2.3", profiles=("default",)),
        close_to("02.full_gem_roxf", "R-GeM reaches the published ROxf-M mAP", metric="full/gem/roxf/M",
                 target=64.7, tol=3.0, paper="64.7", source="revisitop README", profiles=("full",)),
    ]

A metric that holds a list is read as one value per seed: an ordering claim then holds only when it holds for
every seed. :func:`evaluate` turns claims plus recorded metrics into rows with a status:

- ``holds`` / ``does not hold`` — decided by the recorded numbers;
- ``not run`` — the notebook did not run, ran another profile, or did not record a needed metric.
"""
from __future__ import annotations

import html
import json
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

HOLDS, FAILS, NOT_RUN = "holds", "does not hold", "not run"


@dataclass(frozen=True)
class Claim:
    """One claim of a paper.

    Attributes:
        id: unique, prefixed by the notebook number (``"02.gem_beats_mac"``).
        statement: the claim in words.
        paper: the paper's value(s), as text.
        source: where the paper says it (table / figure / equation).
        metrics: the recorded metric keys that decide it.
        decide: ``f(values) -> (holds: bool, ours: str)``, with ``values`` the recorded values of ``metrics``.
        profiles: profiles in which the claim is checked.
    """

    id: str
    statement: str
    paper: str
    source: str
    metrics: tuple[str, ...]
    decide: Callable[[dict[str, Any]], tuple[bool, str]] = field(repr=False)
    profiles: tuple[str, ...] = ("default",)

    @property
    def chapter(self) -> str:
        return self.id.split(".")[0]


def _as_list(v: Any) -> list[float]:
    if isinstance(v, (list, tuple)):
        return [float(x) for x in v]
    return [float(v)]


def _fmt(v: Any) -> str:
    xs = _as_list(v)
    if len(xs) == 1:
        return f"{xs[0]:.4g}"
    return "[" + ", ".join(f"{x:.3g}" for x in xs) + "]"


def _check_id(id: str) -> None:
    head = id.split(".")[0]
    if "." not in id or not head.isdigit():
        raise ValueError(f"id: claim ids look like '02.some_name'; got {id!r}")


def greater(id: str, statement: str, a: str, b: str, *, margin: float = 0.0, paper: str = "", source: str = "",
            profiles: Sequence[str] = ("default",)) -> Claim:
    """Claim ``a > b + margin``; with per-seed lists, for every seed (paired by position)."""
    _check_id(id)

    def decide(v):
        xa, xb = _as_list(v[a]), _as_list(v[b])
        if len(xb) == 1 and len(xa) > 1:
            xb = xb * len(xa)
        if len(xa) == 1 and len(xb) > 1:
            xa = xa * len(xb)
        if len(xa) != len(xb):
            raise ValueError(f"claim {id}: {a} has {len(xa)} seeds but {b} has {len(xb)}")
        ok = all(x > y + margin for x, y in zip(xa, xb))
        return ok, f"{_fmt(v[a])} vs {_fmt(v[b])}"

    return Claim(id, statement, paper, source, (a, b), decide, tuple(profiles))


def at_least(id: str, statement: str, metric: str, threshold: float, *, paper: str = "", source: str = "",
             profiles: Sequence[str] = ("default",)) -> Claim:
    """Claim ``metric >= threshold`` (every seed)."""
    _check_id(id)

    def decide(v):
        xs = _as_list(v[metric])
        return all(x >= threshold for x in xs), f"{_fmt(v[metric])} (≥ {threshold:g})"

    return Claim(id, statement, paper, source, (metric,), decide, tuple(profiles))


def at_most(id: str, statement: str, metric: str, threshold: float, *, paper: str = "", source: str = "",
            profiles: Sequence[str] = ("default",)) -> Claim:
    """Claim ``metric <= threshold`` (every seed)."""
    _check_id(id)

    def decide(v):
        xs = _as_list(v[metric])
        return all(x <= threshold for x in xs), f"{_fmt(v[metric])} (≤ {threshold:g})"

    return Claim(id, statement, paper, source, (metric,), decide, tuple(profiles))


def close_to(id: str, statement: str, metric: str, target: float, tol: float, *, paper: str = "",
             source: str = "", profiles: Sequence[str] = ("full",)) -> Claim:
    """Claim ``|metric - target| <= tol`` (mean over seeds) — for reproducing a paper's number at full scale."""
    _check_id(id)

    def decide(v):
        xs = _as_list(v[metric])
        m = sum(xs) / len(xs)
        return abs(m - target) <= tol, f"{m:.4g} (target {target:g} ± {tol:g})"

    return Claim(id, statement, paper, source, (metric,), decide, tuple(profiles))


def custom(id: str, statement: str, metrics: Sequence[str], decide: Callable[[dict], tuple[bool, str]], *,
           paper: str = "", source: str = "", profiles: Sequence[str] = ("default",)) -> Claim:
    """Any other decision rule: ``decide(values) -> (holds, our value as text)``."""
    _check_id(id)
    return Claim(id, statement, paper, source, tuple(metrics), decide, tuple(profiles))


def requiring(claim: Claim, *metrics: str) -> Claim:
    """``claim`` that also needs ``metrics`` recorded: without them it reads "not run" instead of being decided.

    E.g. a full-profile paper target gated on ``"data/real"``, a marker a notebook records only when it ran on
    the real benchmark, so that a run that fell back to embedded data does not decide it. The decision rule sees
    the extra values too and ignores them.
    """
    if not metrics:
        raise ValueError("metrics: expected at least one metric key")
    return dataclasses.replace(claim, metrics=claim.metrics + tuple(metrics))


def all_claims() -> list[Claim]:
    """Every registered claim, from every ``xmr_lib/chapters/chNN.py`` module, in notebook order."""
    import importlib
    import pkgutil

    from . import chapters

    out: list[Claim] = []
    seen: set[str] = set()
    for m in sorted(pkgutil.iter_modules(chapters.__path__), key=lambda m: m.name):
        if not m.name.startswith("ch"):
            continue
        mod = importlib.import_module(f"xmr_lib.chapters.{m.name}")
        for c in getattr(mod, "CLAIMS", []):
            if c.id in seen:
                raise ValueError(f"duplicate claim id {c.id!r} in xmr_lib/chapters/{m.name}.py")
            seen.add(c.id)
            out.append(c)
    return out


def evaluate_claim(claim: Claim, record: dict | None) -> dict[str, Any]:
    """One scorecard row for ``claim`` given a notebook's metrics record (``None`` if the notebook did not run)."""
    row = {"id": claim.id, "chapter": claim.chapter, "statement": claim.statement, "paper": claim.paper,
           "source": claim.source, "profiles": list(claim.profiles), "ours": "", "status": NOT_RUN, "why": ""}
    if not record:
        row["why"] = "notebook not run"
        return row
    prof = record.get("profile")
    if prof not in claim.profiles:
        row["why"] = f"checked in profile {'/'.join(claim.profiles)}; this run was {prof}"
        return row
    metrics = record.get("metrics", {})
    missing = [m for m in claim.metrics if m not in metrics or metrics[m] is None]
    if missing:
        row["why"] = "metric(s) not recorded: " + ", ".join(missing)
        return row
    values = {m: metrics[m] for m in claim.metrics}
    bad = [m for m in claim.metrics if any(not math.isfinite(x) for x in _as_list(values[m]))]
    if bad:
        row.update(status=FAILS, why="non-finite value for " + ", ".join(bad))
        return row
    ok, ours = claim.decide(values)
    row.update(status=HOLDS if ok else FAILS, ours=ours)
    return row


def evaluate(records: dict[str, dict], claims: Iterable[Claim] | None = None) -> list[dict[str, Any]]:
    """Scorecard rows for ``claims`` (default: all) given ``records`` keyed by notebook number (``"02"``)."""
    claims = list(all_claims() if claims is None else claims)
    return [evaluate_claim(c, records.get(c.chapter)) for c in claims]


def load_records(run_dir: str | Path) -> dict[str, dict]:
    """Read every ``*.metrics.json`` in a run folder, keyed by notebook number."""
    out = {}
    for p in sorted(Path(run_dir).glob("*.metrics.json")):
        rec = json.loads(p.read_text())
        ch = str(rec.get("chapter") or p.name.split("_")[0].split(".")[0])
        out[ch] = rec
    return out


_ICON = {HOLDS: "✅ holds", FAILS: "❌ does not hold", NOT_RUN: "➖ not run"}


def write_scorecard(run_dir: str | Path, claims: Iterable[Claim] | None = None,
                    notebooks: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """Evaluate the claims against a run folder and write ``scorecard.md``, ``scorecard.html``, ``scorecard.json``.

    ``notebooks`` (optional) is the runner's status per notebook, shown in a first table.
    """
    run_dir = Path(run_dir)
    rows = evaluate(load_records(run_dir), claims)
    n = {s: sum(r["status"] == s for r in rows) for s in (HOLDS, FAILS, NOT_RUN)}
    md = [f"# xmr scorecard — {run_dir.name}", "",
          f"{n[HOLDS]} hold · {n[FAILS]} do not hold · {n[NOT_RUN]} not run "
          "(a claim holds only when the recorded metrics say so)", ""]
    if notebooks:
        md += ["| notebook | profile | status | seconds |", "|---|---|---|---|"]
        for nb, st in notebooks.items():
            md.append(f"| {nb} | {st.get('profile', '')} | {st.get('status', '')} | {st.get('seconds', '')} |")
        md.append("")
    md += ["| claim | statement | source | paper | ours | status |", "|---|---|---|---|---|---|"]
    for r in rows:
        status = _ICON[r["status"]] + (f" ({r['why']})" if r["why"] else "")
        cells = [r["id"], r["statement"], r["source"], r["paper"], r["ours"], status]
        md.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    (run_dir / "scorecard.md").write_text("\n".join(md) + "\n")
    colour = {HOLDS: "#e6f4ea", FAILS: "#fce8e6", NOT_RUN: "#f1f3f4"}
    trs = "".join(
        f"<tr style='background:{colour[r['status']]}'>" + "".join(
            f"<td>{html.escape(str(c))}</td>" for c in
            (r["id"], r["statement"], r["source"], r["paper"], r["ours"], r["status"], r["why"])) + "</tr>"
        for r in rows)
    nb_html = ""
    if notebooks:
        nb_html = "<h2>Notebooks</h2><table><tr><th>notebook</th><th>profile</th><th>status</th><th>seconds</th></tr>" + "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v.get('profile', '')))}</td>"
            f"<td>{html.escape(str(v.get('status', '')))}</td><td>{v.get('seconds', '')}</td></tr>"
            for k, v in notebooks.items()) + "</table>"
    (run_dir / "scorecard.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>xmr scorecard</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}</style>"
        f"<h1>xmr scorecard — {html.escape(run_dir.name)}</h1>"
        f"<p>{n[HOLDS]} hold · {n[FAILS]} do not hold · {n[NOT_RUN]} not run</p>{nb_html}"
        "<h2>Claims</h2><table><tr><th>claim</th><th>statement</th><th>source</th><th>paper</th><th>ours</th>"
        f"<th>status</th><th>why</th></tr>{trs}</table>")
    (run_dir / "scorecard.json").write_text(json.dumps(rows, indent=1))
    return rows


def claims_table(chapter: str, record: dict | None = None):
    """A pandas DataFrame of one chapter's claims with their status — for the end of each notebook.

    With ``record=None`` it reads the current notebook's record (``xmr_lib.runs.recorded()``).
    """
    import pandas as pd

    from . import runs

    ch = runs.normalise_chapter(chapter)
    if record is None:
        record = runs.recorded()
    rows = [evaluate_claim(c, record) for c in all_claims() if c.chapter == ch]
    cols = ["id", "statement", "source", "paper", "ours", "status", "why"]
    return pd.DataFrame(rows, columns=cols + [c for c in (rows[0] if rows else {}) if c not in cols])[cols]
