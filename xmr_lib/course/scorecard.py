"""The scorecard: every chapter's claims decided from a run's records, written as md / html / json, and the
per-notebook views (``claims_table``, ``coverage``, ``what_this_shows``)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Iterable

from xmr_lib import chapters
from xmr_lib.core.claims import (
    FAILS,
    FINDING,
    HOLDS,
    KINDS,
    NOT_RUN,
    PAPER,
    RULE,
    SANITY,
    Claim,
    evaluate_claim,
    is_real_data_only,
)
from xmr_lib.course import runs


def chapter_modules() -> dict[str, Any]:
    """``{"02": module xmr_lib.chapters.ch02.config, ...}`` in notebook order."""
    return dict(chapters.CONFIGS)


def all_claims() -> list[Claim]:
    """Every registered claim, from every ``xmr_lib/chapters/chNN.py`` module, in notebook order."""
    out: list[Claim] = []
    seen: set[str] = set()
    for ch, mod in chapter_modules().items():
        for c in getattr(mod, "CLAIMS", []):
            if c.id in seen:
                raise ValueError(f"duplicate claim id {c.id!r} in xmr_lib/chapters/ch{ch}.py")
            if c.chapter != ch:
                raise ValueError(f"claim {c.id!r} is registered in xmr_lib/chapters/ch{ch}.py")
            seen.add(c.id)
            out.append(c)
    return out


def evaluate(records: dict[str, dict], claims: Iterable[Claim] | None = None) -> list[dict[str, Any]]:
    """Scorecard rows for ``claims`` (default: all) given ``records`` keyed by notebook number (``"02"``)."""
    claims = list(all_claims() if claims is None else claims)
    return [evaluate_claim(c, records.get(c.chapter)) for c in claims]


def load_records(run_dir: str | Path) -> dict[str, dict]:
    """Read every ``*.metrics.json`` in a run folder, keyed by notebook number.

    A file that cannot be read becomes ``{"error": "<file>: <why>"}`` so that its claims read *does not hold* with
    the file named, and the rest of the scorecard is still written.
    """
    out = {}
    for p in sorted(Path(run_dir).glob("*.metrics.json")):
        ch = p.name.split("_")[0].split(".")[0]
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
            out[ch] = {"error": f"{p.name}: unreadable metrics record ({type(e).__name__}: {e})"}
            continue
        if not isinstance(rec, dict):
            out[ch] = {"error": f"{p.name}: a metrics record is a JSON object, this one is a {type(rec).__name__}"}
            continue
        out[str(rec.get("chapter") or ch)] = rec
    return out


_ICON = {HOLDS: "✅ holds", FAILS: "❌ does not hold", NOT_RUN: "➖ not run"}


STATUS_COLOUR = {HOLDS: "#e6f4ea", FAILS: "#fce8e6", NOT_RUN: "#f1f3f4"}  # row backgrounds (scorecard, book)


_KIND_TITLE = {
    PAPER: "Paper claims",
    SANITY: "Sanity checks (our code does what the formula says)",
    FINDING: "Findings (our own observations)",
}


def _counts(rows: list[dict]) -> dict[str, int]:
    return {s: sum(r["status"] == s for r in rows) for s in (HOLDS, FAILS, NOT_RUN)}


def headline(rows: list[dict]) -> str:
    paper = [r for r in rows if r["kind"] == PAPER]
    n = _counts(paper)
    other = _counts([r for r in rows if r["kind"] != PAPER])
    return (
        f"Paper claims: {n[HOLDS]} hold · {n[FAILS]} do not hold · {n[NOT_RUN]} not run. "
        f"Sanity checks and findings: {other[HOLDS]} hold · {other[FAILS]} do not hold · "
        f"{other[NOT_RUN]} not run."
    )


def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def write_scorecard(
    run_dir: str | Path,
    claims: Iterable[Claim] | None = None,
    notebooks: dict[str, dict] | None = None,
    chapters: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate the claims against a run folder and write ``scorecard.md``, ``scorecard.html``, ``scorecard.json``.

    Args:
        run_dir: the run folder (``*.metrics.json`` inside).
        claims: the claims to decide (default: all registered).
        notebooks: the runner's status per notebook, shown in a first table.
        chapters: only these notebooks' claims (an ``--only`` run); default: every chapter with a record, or all
            claims when the folder has no record at all.
    """
    run_dir = Path(run_dir)
    records = load_records(run_dir)
    claims = list(all_claims() if claims is None else claims)
    if chapters is None and records:
        chapters = records.keys()
    if chapters is not None:
        keep = {str(c)[:2] for c in chapters}
        claims = [c for c in claims if c.chapter in keep]
    rows = evaluate(records, claims)
    meta = _run_meta(records)
    md = [f"# xmr scorecard — {run_dir.name}", "", headline(rows), "", f"*Rule.* {RULE}", ""]
    if meta:
        md += [meta, ""]
    if notebooks:
        md += ["| notebook | profile | status | seconds |", "|---|---|---|---|"]
        for nb, st in notebooks.items():
            md.append(f"| {nb} | {st.get('profile', '')} | {st.get('status', '')} | {st.get('seconds', '')} |")
        md.append("")
    for kind in KINDS:
        part = [r for r in rows if r["kind"] == kind]
        if not part:
            continue
        n = _counts(part)
        md += [
            f"## {_KIND_TITLE[kind]}",
            "",
            f"{n[HOLDS]} hold · {n[FAILS]} do not hold · {n[NOT_RUN]} not run",
            "",
            "| claim | statement | source | paper | ours | status |",
            "|---|---|---|---|---|---|",
        ]
        for r in part:
            status = _ICON[r["status"]] + (f" ({r['why']})" if r["why"] else "")
            cells = [r["id"], r["statement"], r["source"], r["paper"], r["ours"], status]
            md.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
        md.append("")
    (run_dir / "scorecard.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (run_dir / "scorecard.html").write_text(_html(run_dir.name, rows, notebooks, meta), encoding="utf-8")
    (run_dir / "scorecard.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
    return rows


def _run_meta(records: dict[str, dict]) -> str:
    parts = []
    for ch, rec in sorted(records.items()):
        if not isinstance(rec, dict) or "error" in rec:
            continue
        s = rec.get("settings") or {}
        seeds = rec.get("params", {}).get("n_seeds")
        parts.append(
            f"{ch}: {rec.get('profile')} profile, seed {rec.get('seed')}"
            + (f" (+{seeds - 1} more)" if isinstance(seeds, int) and seeds > 1 else "")
            + (f", {s.get('threads')} thread(s)" if s.get("threads") else "")
            + (f", torch {s['torch_version']}" if s.get("torch_version") else "")
            + (f", commit {rec['commit'][:10]}" if rec.get("commit") else "")
        )
    return ("*Runs.* " + "; ".join(parts) + ".") if parts else ""


def _html(name: str, rows: list[dict], notebooks: dict | None, meta: str) -> str:
    colour = STATUS_COLOUR
    e = html.escape
    body = [
        f"<h1>xmr scorecard — {e(name)}</h1>",
        f"<p><b>{e(headline(rows))}</b></p>",
        f"<p><i>Rule.</i> {e(RULE)}</p>",
    ]
    if meta:
        body.append(f"<p>{e(meta)}</p>")
    if notebooks:
        body.append(
            "<h2>Notebooks</h2><table><tr><th>notebook</th><th>profile</th><th>status</th><th>seconds</th>"
            "</tr>"
            + "".join(
                f"<tr><td>{e(k)}</td><td>{e(str(v.get('profile', '')))}</td>"
                f"<td>{e(str(v.get('status', '')))}</td><td>{e(str(v.get('seconds', '')))}</td></tr>"
                for k, v in notebooks.items()
            )
            + "</table>"
        )
    for kind in KINDS:
        part = [r for r in rows if r["kind"] == kind]
        if not part:
            continue
        body.append(
            f"<h2>{e(_KIND_TITLE[kind])}</h2><table><tr><th>claim</th><th>statement</th><th>source</th>"
            "<th>paper</th><th>ours</th><th>status</th><th>why</th></tr>"
            + "".join(
                f"<tr id='{e(r['id'])}' style='background:{colour[r['status']]}'>"
                + "".join(
                    f"<td>{e(str(c))}</td>"
                    for c in (r["id"], r["statement"], r["source"], r["paper"], r["ours"], r["status"], r["why"])
                )
                + "</tr>"
                for r in part
            )
            + "</table>"
        )
    return (
        "<!doctype html><meta charset='utf-8'><title>xmr scorecard</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}</style>" + "".join(body)
    )


def _chapter_rows(chapter: str, record: dict | None) -> list[dict]:

    ch = runs.normalise_chapter(chapter)
    if record is None:
        record = runs.recorded()
    return [evaluate_claim(c, record) for c in all_claims() if c.chapter == ch]


def claims_table(chapter: str, record: dict | None = None):
    """A pandas DataFrame of one chapter's claims with their status, full statements (not cut) — for the end of
    each notebook. With ``record=None`` it reads the current notebook's record (``xmr_lib.course.runs.recorded()``)."""
    import pandas as pd

    cols = ["id", "kind", "statement", "source", "paper", "ours", "status", "why"]
    df = pd.DataFrame(_chapter_rows(chapter, record), columns=cols)
    return df.style.hide(axis="index").set_properties(**{"text-align": "left", "white-space": "normal"})


def coverage(chapter: str):
    """What of the chapter's paper is claimed, and why the rest is not: a Markdown table for the notebook.

    Lists every :data:`PAPER` claim (id, source, profiles) and every ``NOT_CLAIMED`` entry of the chapter module
    (statement, where, why not).
    """
    from IPython.display import Markdown

    ch = runs.normalise_chapter(chapter)
    mod = chapter_modules()[ch]
    lines = ["| paper statement | where | claimed? |", "|---|---|---|"]
    for c in getattr(mod, "CLAIMS", []):
        if c.kind == PAPER:
            gate = ", real data only" if is_real_data_only(c) else ""
            lines.append(
                f"| {_md_cell(c.statement)} | {_md_cell(c.source)} | yes: `{c.id}` ({'/'.join(c.profiles)}{gate}) |"
            )
    for statement, where, why in getattr(mod, "NOT_CLAIMED", []):
        lines.append(f"| {_md_cell(statement)} | {_md_cell(where)} | no: {_md_cell(why)} |")
    return Markdown("\n".join(lines))


def what_this_shows(chapter: str, record: dict | None = None):
    """The notebook's closing summary, rendered from this run's claim rows (nothing typed): which paper
    statements our numbers support, which they do not and why, then the sanity checks and findings."""
    from IPython.display import Markdown

    rows = _chapter_rows(chapter, record)
    out = [f"**What this run shows** — {headline(rows)}", ""]
    for kind, title in ((PAPER, "The paper's statements"), (FINDING, "Our findings"), (SANITY, "Sanity checks")):
        part = [r for r in rows if r["kind"] == kind and r["status"] != NOT_RUN]
        if not part:
            continue
        out += [f"*{title}:*", ""]
        for r in part:
            mark = "✅" if r["status"] == HOLDS else "❌"
            src = f" ({r['source']})" if r["source"] and r["source"] != "—" else ""
            line = f"- {mark} {r['statement']}{src} — ours: {r['ours'] or r['why']}"
            if r["paper"]:
                line += f"; paper: {r['paper']}"
            if r["status"] == FAILS and r["note"]:
                line += f". *Why it may not show here:* {r['note']}"
            out.append(line)
        out.append("")
    skipped = [r for r in rows if r["status"] == NOT_RUN]
    if skipped:
        out.append(
            f"*Not decided in this run ({len(skipped)}):* "
            + "; ".join(f"`{r['id']}` ({r['why']})" for r in skipped[:12])
            + (" …" if len(skipped) > 12 else "")
        )
    return Markdown("\n".join(out))
