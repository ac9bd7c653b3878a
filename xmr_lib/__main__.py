"""Command line: ``python -m xmr_lib {run,assets,scorecard,list}`` (also installed as ``xmr``)."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xmr_lib", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="execute the notebooks with papermill and write a scorecard")
    r.add_argument("--profile", default=None, help="smoke | default | full (default: default)")
    r.add_argument("--only", help="comma-separated notebook numbers, e.g. 02,03")
    r.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                   help="override a notebook parameter (repeatable), e.g. -p seed=1")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run folder")
    r.add_argument("--out", metavar="DIR", help="parent folder of run folders (default: runs/)")
    r.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    r.add_argument("--log-output", action="store_true", help="stream notebook output to the terminal")

    sub.add_parser("assets", help="list what is available offline (--install-wordnet: build the WordNet corpus)",
                   add_help=False)

    s = sub.add_parser("scorecard", help="(re)write the scorecard of a run folder")
    s.add_argument("run_dir")

    sub.add_parser("list", help="list the notebooks and their parameters")

    args, rest = ap.parse_known_args(argv)
    if rest and args.cmd != "assets":
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.cmd == "run":
        from .runner import main_run

        return main_run(args)
    if args.cmd == "assets":
        from . import assets

        return assets.main(rest) or 0
    if args.cmd == "scorecard":
        from .claims import write_scorecard

        from .claims import headline

        rows = write_scorecard(args.run_dir)
        print(f"{len(rows)} claims → {args.run_dir}/scorecard.md\n{headline(rows)}")
        return 0
    if args.cmd == "list":
        from .runner import discover_notebooks, parameter_names

        for nb in discover_notebooks():
            print(f"{nb.stem}: {', '.join(parameter_names(nb))}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
