"""Command line: ``python -m xmr_lib {run,sweep,book,student,assets,scorecard,list}`` (also installed as ``xmr``)."""

from __future__ import annotations

import argparse
import sys

from xmr_lib.course import assets
from xmr_lib.course.book import build
from xmr_lib.course.exercises import write_student_copies
from xmr_lib.course.runner import discover_notebooks, main_run, parameter_names, parse_assignments
from xmr_lib.course.scorecard import headline, write_scorecard
from xmr_lib.course.sweep import parse_grid, sweep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xmr_lib", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="execute the notebooks with papermill and write a scorecard")
    r.add_argument("--profile", default=None, help="smoke | default | full (default: default)")
    r.add_argument("--only", help="comma-separated notebook numbers, e.g. 02,03")
    r.add_argument(
        "-p",
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="override a notebook parameter (repeatable), e.g. -p seed=1",
    )
    r.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run folder")
    r.add_argument("--out", metavar="DIR", help="parent folder of run folders (default: runs/)")
    r.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    r.add_argument("--log-output", action="store_true", help="stream notebook output to the terminal")

    w = sub.add_parser("sweep", help="run every combination of a parameter grid (Ray, or --serial)")
    w.add_argument("notebooks", help="comma-separated notebook numbers, e.g. 03 or 02,08")
    w.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=VALUES",
        help="a grid axis (repeatable): seed=0:10 (a range) or bits=16,32,64 (values)",
    )
    w.add_argument("--profile", default=None, help="smoke | default | full (default: default)")
    w.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="a fixed parameter (repeatable)")
    w.add_argument("--address", default=None, help="an existing Ray cluster (e.g. auto or ray://host:10001)")
    w.add_argument("--serial", action="store_true", help="run the points one after the other, without Ray")
    w.add_argument("--gpus-per-task", type=float, default=0, help="GPUs per grid point (full profile: 1)")
    w.add_argument("--cpus-per-task", type=float, default=1, help="CPUs per grid point (default 1)")
    w.add_argument("--resume", metavar="SWEEP_DIR", help="finish an interrupted sweep")
    w.add_argument("--out", metavar="DIR", help="parent folder of the sweep folder (default: runs/)")
    w.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")

    b = sub.add_parser("book", help="a static site from a run folder: the executed notebooks and the scorecard")
    b.add_argument("run_dir")
    b.add_argument("--out", default=None, help="where to write it (default: RUN_DIR/book)")

    st = sub.add_parser("student", help="write the learner copies of the notebooks (exercise solutions stubbed)")
    st.add_argument("out", help="folder for the learner notebooks")

    sub.add_parser(
        "assets", help="list what is available offline (--install-wordnet: build the WordNet corpus)", add_help=False
    )

    s = sub.add_parser("scorecard", help="(re)write the scorecard of a run folder")
    s.add_argument("run_dir")

    sub.add_parser("list", help="list the notebooks and their parameters")

    args, rest = ap.parse_known_args(argv)
    if rest and args.cmd != "assets":
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.cmd == "run":
        return main_run(args)
    if args.cmd == "sweep":
        try:
            grid = parse_grid(args.grid) if not args.resume else {}
            d, state = sweep(
                args.notebooks.split(","),
                grid,
                profile=args.profile,
                parameters=parse_assignments(args.param),
                address=args.address,
                executor="serial" if args.serial else "ray",
                out_root=args.out,
                resume=args.resume,
                cpus_per_task=args.cpus_per_task,
                gpus_per_task=args.gpus_per_task,
                timeout=args.timeout,
            )
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        failed = [
            f"{p}/{nb}"
            for p, st in state["points"].items()
            for nb, v in st["notebooks"].items()
            if v.get("status") != "ok"
        ]
        print(f"sweep folder: {d}\nsweep scorecard: {d / 'sweep_scorecard.md'}")
        if failed:
            print(f"{len(failed)} execution(s) failed: {', '.join(failed[:10])}", file=sys.stderr)
            return 1
        return 0
    if args.cmd == "book":
        try:
            index = build(args.run_dir, args.out)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"book: {index}")
        return 0
    if args.cmd == "student":
        paths = write_student_copies(args.out)
        print(f"{len(paths)} learner notebooks → {args.out}")
        return 0
    if args.cmd == "assets":
        return assets.main(rest) or 0
    if args.cmd == "scorecard":
        rows = write_scorecard(args.run_dir)
        print(f"{len(rows)} claims → {args.run_dir}/scorecard.md\n{headline(rows)}")
        return 0
    if args.cmd == "list":
        for nb in discover_notebooks():
            print(f"{nb.stem}: {', '.join(parameter_names(nb))}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
