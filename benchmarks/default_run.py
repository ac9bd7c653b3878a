"""The complete default run: every notebook in the default profile, timed, its records kept in ``results/default/``.

``python -m benchmarks.default_run [--only 05 06] [--out results/default]``

Runs the notebooks with the runner (papermill) into a scratch run folder, then copies each notebook's metrics
record, the run state and the scorecard (``scorecard.md`` / ``.html`` / ``.json``) into ``--out``, together with
``timings.json``; prints each notebook's time beside the time recorded there before (the previous run; ``--before``
names another ``timings.json``, e.g. ``results/default/timings.json`` for a run into a scratch ``--out``), and the
total. It is a measurement, not a timed test: compare times from the same machine. ``--only`` re-runs some notebooks
(``--only 05 06`` or ``--only 05,06``) and keeps the others' records, so the scorecard in ``--out`` always covers
every notebook recorded.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xmr_lib.course import runner, scorecard


def _commit(root: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _only(values: list[str] | None) -> list[str] | None:
    """``--only`` values (``["05", "06"]`` or ``["05,06"]``) → notebook numbers; None: every notebook."""
    if not values:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    if not out:
        raise SystemExit(f"--only: expected notebook numbers such as 05 06, got {' '.join(values)!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.default_run", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--only",
        nargs="+",
        metavar="NN",
        help="notebook numbers, space- or comma-separated: --only 05 06 or --only 05,06 (default: all)",
    )
    ap.add_argument("--out", default="results/default", help="where the records and scorecard are kept")
    ap.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="a parameter for every notebook")
    ap.add_argument(
        "--collect",
        nargs="+",
        metavar="RUN_DIR",
        help="do not run: take the default-profile records and times of these run folders (e.g. the "
        "notebooks run one by one) — each record keeps its own date, commit and settings",
    )
    ap.add_argument(
        "--before",
        metavar="TIMINGS_JSON",
        help="the times printed as 'before' (default: --out's timings.json, else results/default/timings.json)",
    )
    args = ap.parse_args(argv)
    root = runner.repo_root()
    out = (root / args.out) if not Path(args.out).is_absolute() else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings_path = out / "timings.json"
    previous = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    # the 'before' times are read now: timings.json is overwritten with this run's times below
    before_path = Path(args.before) if args.before else timings_path
    if not args.before and not before_path.is_file():
        before_path = root / "results" / "default" / "timings.json"
    prev = json.loads(before_path.read_text()).get("notebooks", {}) if before_path.is_file() else {}
    if args.collect:
        status, total = {}, 0.0
        for d in map(Path, args.collect):
            state = json.loads((d / "run.json").read_text())
            if state.get("profile") != "default":
                raise SystemExit(f"--collect: {d} is a {state.get('profile')} run, not default")
            for nb, st in state["notebooks"].items():
                if st.get("status") == "ok" and (d / f"{nb}.metrics.json").is_file():
                    shutil.copy2(d / f"{nb}.metrics.json", out / f"{nb}.metrics.json")
                    status[nb] = st
                    total += st.get("seconds") or 0
    else:
        with tempfile.TemporaryDirectory(prefix="xmr-default-") as tmp:
            t0 = time.time()
            run_dir, status = runner.run(
                "default",
                only=_only(args.only),
                parameters=runner.parse_assignments(args.param),
                out_root=tmp,
                root=root,
            )
            total = time.time() - t0
            for p in run_dir.glob("*.metrics.json"):
                shutil.copy2(p, out / p.name)
    timings = dict(previous.get("notebooks", {}))
    for nb, st in status.items():
        timings[nb] = {"seconds": st.get("seconds"), "status": st.get("status")}
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "commit": _commit(root),
        "how": ("collected from " + ", ".join(args.collect)) if args.collect else "one run",
        "machine": f"{platform.system()} {platform.machine()}, {__import__('os').cpu_count()} CPUs",
        "python": platform.python_version(),
        "notebooks": timings,
    }
    timings_path.write_text(json.dumps(meta, indent=1))
    rows = scorecard.write_scorecard(out, notebooks={k: {"profile": "default", **v} for k, v in timings.items()})
    print(f"{'notebook':34s} {'seconds':>8s} {'before':>8s}  status")
    for nb, st in sorted(timings.items()):
        if nb not in status:
            continue
        before = prev.get(nb, {}).get("seconds")
        print(f"{nb:34s} {st['seconds'] or 0:8.0f} {before if before is not None else '—':>8}  {st['status']}")
    print(f"total this run: {total:.0f} s ({total / 60:.1f} min) for {len(status)} notebook(s)")
    print(scorecard.headline(rows))
    print(f"records and scorecard: {out}")
    return 0 if all(s.get("status") == "ok" for s in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
