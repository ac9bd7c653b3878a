"""Run the notebooks end to end with papermill and write a scorecard.

``python -m xmr_lib run [--profile P] [--only 02,03] [-p key=value ...] [--resume RUN_DIR]``

Each notebook is executed into ``runs/<timestamp>/<notebook>.ipynb`` with its metrics beside it
(``<notebook>.metrics.json``), then ``scorecard.md`` / ``scorecard.html`` are written. A failing notebook is
reported and the run goes on; the exit code is non-zero if any failed. ``--resume`` re-enters a run folder and
skips the notebooks that already finished.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from xmr_lib import chapters
from xmr_lib.core import claims as claims_mod
from xmr_lib.core import paths
from xmr_lib.core.setup import resolve_device
from xmr_lib.course import runs, scorecard

KERNEL_NAME = "python3"  # the environment's own kernel, the one the notebooks declare


def repo_root() -> Path:
    """The checkout this package was imported from (``xmr_lib/..``), or the current folder's checkout."""
    here = Path(__file__).resolve().parents[2]
    if (here / "notebooks").is_dir():
        return here
    r = paths.repo_root()
    if r is None:
        raise RuntimeError("cannot find the xmr checkout (a folder with notebooks/); run from inside it")
    return r


def discover_notebooks(root: Path | None = None, only: list[str] | None = None) -> list[Path]:
    """``notebooks/NN_*.ipynb`` in order; ``only`` filters by number (``["02", "3"]``)."""
    root = root or repo_root()
    nbs = sorted(p for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        want = {runs.normalise_chapter(o) for o in only}
        known = {p.name[:2] for p in nbs}
        missing = sorted(want - known)
        if missing:
            raise ValueError(
                f"--only: no notebook numbered {', '.join(missing)}; available: {', '.join(sorted(known))}"
            )
        nbs = [p for p in nbs if p.name[:2] in want]
    return nbs


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``["n=3", "device=cpu", "ps=[1,2]"]`` → ``{"n": 3, "device": "cpu", "ps": [1, 2]}``."""
    out: dict[str, Any] = {}
    for it in items or []:
        if "=" not in it:
            raise ValueError(f"-p: expected key=value, got {it!r}")
        k, v = it.split("=", 1)
        k = k.strip()
        if not k.isidentifier():
            raise ValueError(f"-p: {k!r} is not a valid parameter name")
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


def parameter_names(notebook: Path) -> list[str]:
    """Names assigned in the notebook's cell tagged ``parameters``."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{notebook.name}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    names = []
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return names


def validate_parameters(notebook: Path, parameters: dict[str, Any]) -> None:
    """Fail before running if a ``-p`` name is not a parameter of ``notebook`` (or the profile is unknown)."""
    # the parameters cell shows the knobs a learner changes most; every knob of the chapter's PROFILES is valid
    knobs = runs.valid_parameters(notebook.name[:2]) if notebook.name[:2] in chapters.CONFIGS else []
    names = list(dict.fromkeys(parameter_names(notebook) + knobs))
    unknown = sorted(set(parameters) - set(names))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for {notebook.name}; "
            f"valid parameters: {', '.join(names)}"
        )
    prof = parameters.get("profile", "default")
    if prof not in runs.PROFILE_NAMES:
        raise ValueError(f"profile: unknown profile {prof!r}; valid profiles: {', '.join(runs.PROFILE_NAMES)}")


def kernel_name() -> str:
    """``python3``: the kernel every notebook declares, run with the interpreter that runs xmr (ipykernel's own
    kernel spec in the environment)."""
    return KERNEL_NAME


def execute_notebook(
    notebook: Path, out_dir: Path, parameters: dict[str, Any], timeout: int | None = None, log_output: bool = False
) -> Path:
    """Execute one notebook with papermill into ``out_dir``; its metrics go to ``out_dir`` too.

    Raises papermill's ``PapermillExecutionError`` when a cell fails (the partly executed notebook is kept).
    """
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    validate_parameters(notebook, parameters)
    out = out_dir / notebook.name
    old = {
        k: os.environ.get(k) for k in ("XMR_RUN_DIR", "XMR_NOTEBOOK", "MPLBACKEND", "PYTHONWARNINGS", "XMR_HEADLESS")
    }
    os.environ["XMR_RUN_DIR"] = str(out_dir.resolve())
    os.environ["XMR_HEADLESS"] = "1"  # explorers show their static figure: nobody moves a widget in a saved run
    os.environ["XMR_NOTEBOOK"] = notebook.stem
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        pm.execute_notebook(
            str(notebook),
            str(out),
            parameters=parameters,
            kernel_name=kernel_name(),
            cwd=str(notebook.parent),
            progress_bar=False,
            log_output=log_output,
            execution_timeout=timeout,
        )
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out


def run(
    profile: str | None = None,
    only: list[str] | None = None,
    parameters: dict[str, Any] | None = None,
    resume: str | Path | None = None,
    out_root: str | Path | None = None,
    timeout: int | None = None,
    log_output: bool = False,
    root: Path | None = None,
) -> tuple[Path, dict[str, dict]]:
    """Run notebooks and write the scorecard. Returns ``(run_dir, status per notebook)``.

    ``root`` is the checkout whose ``notebooks/`` are run (default: this package's checkout).
    """
    from tqdm.auto import tqdm

    root = Path(root) if root is not None else repo_root()
    parameters = dict(parameters or {})
    if "profile" in parameters:
        raise ValueError("give the profile with --profile, not -p profile=...")
    if resume:
        if parameters or profile is not None:
            raise ValueError(
                "--resume finishes a run with the profile and parameters it was started with; "
                "drop -p / --profile (or start a new run)"
            )
        run_dir = Path(resume)
        state_path = run_dir / "run.json"
        if not state_path.is_file():
            raise ValueError(f"--resume: {run_dir} has no run.json; is it a run folder?")
        try:
            state = json.loads(state_path.read_text())
            profile, parameters = state["profile"], state["parameters"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"--resume: {state_path} is not a readable run state ({type(e).__name__}: {e})") from e
        only = only or state.get("only")
    profile = profile or "default"
    if profile not in runs.PROFILE_NAMES:
        raise ValueError(f"--profile: unknown profile {profile!r}; valid profiles: {', '.join(runs.PROFILE_NAMES)}")
    notebooks = discover_notebooks(root, only)
    params = {"profile": profile, **parameters}
    for nb in notebooks:  # fail fast on a misspelt -p before spending minutes on the first notebooks
        validate_parameters(nb, params)
    if "device" in parameters:  # once, here, rather than once per notebook
        resolve_device(parameters["device"])
    if not resume:  # the folder is made only once everything above is valid: no empty run folders
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(out_root or root / "runs") / stamp
        i = 1
        while run_dir.exists():
            run_dir = run_dir.with_name(f"{stamp}-{i}")
            i += 1
        run_dir.mkdir(parents=True)
        state = {"profile": profile, "parameters": parameters, "only": only, "notebooks": {}}
    status: dict[str, dict] = state.setdefault("notebooks", {})
    state_path = run_dir / "run.json"

    def save_state():
        state_path.write_text(json.dumps(state, indent=1))

    save_state()
    bar = tqdm(notebooks, desc=f"notebooks ({profile})", unit="nb")
    for nb in bar:
        st = status.get(nb.stem, {})
        if st.get("status") == "ok":
            bar.write(f"✓ {nb.stem}: already done, skipped (resume)")
            continue
        bar.set_postfix_str(nb.stem)
        status[nb.stem] = {"status": "running", "profile": profile}
        save_state()
        t0 = time.time()
        try:
            execute_notebook(nb, run_dir, params, timeout=timeout, log_output=log_output)
            status[nb.stem] = {"status": "ok", "profile": profile, "seconds": round(time.time() - t0, 1)}
            bar.write(f"✓ {nb.stem}: ok in {time.time() - t0:.0f} s")
        except Exception as e:  # noqa: BLE001 - report and go on to the next notebook
            msg = f"{type(e).__name__}: {e}"
            status[nb.stem] = {
                "status": "failed",
                "profile": profile,
                "seconds": round(time.time() - t0, 1),
                "error": msg[-2000:],
            }
            bar.write(
                f"✗ {nb.stem}: FAILED after {time.time() - t0:.0f} s — {msg.strip().splitlines()[-1][:300]}"
                f"\n   see {run_dir / nb.name}"
            )
            if os.environ.get("XMR_DEBUG"):
                traceback.print_exc()
        save_state()
    scorecard.write_scorecard(run_dir, notebooks=status, chapters=[nb.name[:2] for nb in notebooks])
    return run_dir, status


def main_run(args) -> int:
    try:
        run_dir, status = run(
            profile=args.profile,
            only=args.only.split(",") if args.only else None,
            parameters=parse_assignments(args.param),
            resume=args.resume,
            out_root=args.out,
            timeout=args.timeout,
            log_output=args.log_output,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = [k for k, v in status.items() if v.get("status") != "ok"]
    rows = json.loads((run_dir / "scorecard.json").read_text())
    print(f"\nrun folder: {run_dir}\nscorecard:  {run_dir / 'scorecard.md'}  (and .html)")
    for r in rows:
        if r["status"] != claims_mod.NOT_RUN:
            print(
                f"  {'✅' if r['status'] == claims_mod.HOLDS else '❌'} [{r['kind']}] {r['id']}: {r['ours'] or r['why']}"
            )
    print(scorecard.headline(rows))
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
