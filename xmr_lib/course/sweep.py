"""Parameter sweeps: every combination of a grid, each as its own papermill execution, on Ray or serially.

``xmr sweep 03 --grid seed=0:10 --grid bits=16,32,64 [-p epochs=5] [--profile default] [--address ADDR]``

Each grid point is executed into ``<sweep dir>/<point>/`` (its executed notebooks and ``*.metrics.json``) as one
Ray task (one CPU, or one GPU when ``--gpus-per-task 1``); by default on a local Ray instance, on an existing
cluster with ``--address``. ``--resume SWEEP_DIR`` skips the points that finished. At the end the **sweep
scorecard** (``sweep_scorecard.md`` / ``.json``) decides every claim at every point and summarises it per setting
(the grid without ``seed``): on how many seeds it holds, and mean ± standard deviation and a 95% interval of each
metric the claim reads.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from xmr_lib.core import claims as claims_mod
from xmr_lib.course import runner, runs, scorecard

STATE = "sweep.json"


def parse_grid(items: Iterable[str]) -> dict[str, list[Any]]:
    """``["seed=0:3", "bits=16,32"]`` → ``{"seed": [0, 1, 2], "bits": [16, 32]}``.

    ``a:b`` is the integers ``a … b−1`` (``a:b:step`` too); otherwise comma-separated Python literals (strings may
    be bare words).
    """
    grid: dict[str, list[Any]] = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"--grid: expected NAME=VALUES (e.g. seed=0:5 or bits=16,32), got {it!r}")
        k, v = (s.strip() for s in it.split("=", 1))
        if not k.isidentifier():
            raise ValueError(f"--grid: {k!r} is not a valid parameter name")
        if k in grid:
            raise ValueError(f"--grid: {k!r} is given twice")
        if ":" in v and all(p.strip().lstrip("-").isdigit() for p in v.split(":")):
            parts = [int(p) for p in v.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] == 0):
                raise ValueError(f"--grid {k}: a range is start:stop or start:stop:step, got {v!r}")
            values: list[Any] = list(range(*parts))
        else:
            values = []
            for s in v.split(","):
                s = s.strip()
                try:
                    values.append(ast.literal_eval(s))
                except (ValueError, SyntaxError):
                    values.append(s)
        if not values:
            raise ValueError(f"--grid {k}: no values in {v!r}")
        grid[k] = values
    if not grid:
        raise ValueError("--grid: give at least one NAME=VALUES")
    return grid


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination, in a fixed order (the last name varies fastest)."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def point_name(point: dict[str, Any]) -> str:
    """A folder name for a grid point, e.g. ``seed=0,bits=16``."""
    return ",".join(f"{k}={v}" for k, v in point.items()).replace("/", "_").replace(" ", "")


def run_point(
    notebooks: list[str],
    point_dir: str,
    parameters: dict[str, Any],
    timeout: int | None = None,
    root: str | None = None,
) -> dict[str, dict]:
    """Execute ``notebooks`` (paths) into ``point_dir`` with ``parameters``: the body of one sweep task."""
    status = {}
    for nb in map(Path, notebooks):
        t0 = time.time()
        try:
            runner.execute_notebook(nb, Path(point_dir), parameters, timeout=timeout)
            status[nb.stem] = {"status": "ok", "seconds": round(time.time() - t0, 1)}
        except Exception as e:  # noqa: BLE001 - one failing notebook must not lose the others' results
            status[nb.stem] = {
                "status": "failed",
                "seconds": round(time.time() - t0, 1),
                "error": f"{type(e).__name__}: {e}"[-2000:],
            }
    return status


def start_ray(address: str | None = None, num_cpus: int | None = None, attempts: int = 3) -> None:
    """Connect to the Ray cluster at ``address``, or start a local instance (``num_cpus`` workers' CPUs).

    On a busy machine a local raylet can miss its agents' start-up deadline (about 30 s, not configurable); the
    start is then retried, ``attempts`` times in all, before the error is raised.
    """
    import ray

    os.environ.setdefault("RAY_raylet_start_wait_time_s", "180")
    os.environ.setdefault("RAY_agent_register_timeout_ms", "180000")
    for i in range(attempts):
        if ray.is_initialized():
            return
        try:
            ray.init(
                address=address,
                num_cpus=num_cpus if address is None else None,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("XMR_")}},
            )
            return
        except Exception:  # noqa: BLE001 - Ray raises a bare Exception for a start-up time-out
            ray.shutdown()
            if i == attempts - 1 or address is not None:
                raise


def _ray_executor(address: str | None, cpus: float, gpus: float) -> Callable:
    import ray

    start_ray(address)
    task = ray.remote(num_cpus=cpus, num_gpus=gpus)(run_point)

    def submit(jobs):
        refs = {task.remote(*args): key for key, args in jobs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield refs[ref], ray.get(ref)

    return submit


def _serial_executor(jobs):
    for key, args in jobs:
        yield key, run_point(*args)


def sweep(
    notebooks: list[str],
    grid: dict[str, list[Any]],
    *,
    profile: str | None = None,
    parameters: dict[str, Any] | None = None,
    address: str | None = None,
    executor: str = "ray",
    out_root: str | Path | None = None,
    resume: str | Path | None = None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 0,
    timeout: int | None = None,
    root: Path | None = None,
) -> tuple[Path, dict]:
    """Run every grid point of ``notebooks`` and write the sweep scorecard. Returns ``(sweep_dir, state)``.

    Args:
        notebooks: notebook numbers, e.g. ``["03"]``.
        grid: ``{name: [values]}`` (see :func:`parse_grid`); names are notebook parameters.
        profile: ``smoke`` / ``default`` / ``full`` (default ``default``).
        parameters: fixed parameters for every point (``-p``); must not overlap the grid.
        address: an existing Ray cluster (``ray://…`` or ``auto``); ``None`` starts a local Ray instance.
        executor: ``"ray"`` or ``"serial"`` (no Ray: the same points one after the other, same records).
        out_root: parent of the sweep folder (default ``runs/``); resume: an earlier sweep folder to finish.
    """
    from tqdm.auto import tqdm

    root = Path(root) if root is not None else runner.repo_root()
    parameters = dict(parameters or {})
    if resume:
        if parameters or profile is not None:
            raise ValueError("--resume finishes a sweep with its own grid and parameters; drop -p / --profile")
        sweep_dir = Path(resume)
        try:
            state = json.loads((sweep_dir / STATE).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"--resume: {sweep_dir / STATE} is not a readable sweep state ({e})") from e
        notebooks, grid, profile, parameters = state["notebooks"], state["grid"], state["profile"], state["parameters"]
    profile = profile or "default"
    if profile not in runs.PROFILE_NAMES:
        raise ValueError(f"--profile: unknown profile {profile!r}; valid profiles: {', '.join(runs.PROFILE_NAMES)}")
    if executor not in ("ray", "serial"):
        raise ValueError(f"executor: 'ray' or 'serial', got {executor!r}")
    both = sorted(set(grid) & set(parameters))
    if both:
        raise ValueError(f"{', '.join(both)}: given both in --grid and -p")
    nbs = runner.discover_notebooks(root, notebooks)
    points = grid_points(grid)
    for nb in nbs:  # every point's parameters are valid before anything runs
        for pt in points[:1]:
            runner.validate_parameters(nb, {"profile": profile, **parameters, **pt})
    if not resume:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        sweep_dir = Path(out_root or root / "runs") / f"sweep-{stamp}"
        i = 1
        while sweep_dir.exists():
            sweep_dir = sweep_dir.with_name(f"sweep-{stamp}-{i}")
            i += 1
        sweep_dir.mkdir(parents=True)
        state = {
            "notebooks": [nb.name[:2] for nb in nbs],
            "grid": grid,
            "profile": profile,
            "parameters": parameters,
            "points": {},
        }
    state_path = sweep_dir / STATE

    def save():
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, state_path)

    save()
    jobs = []
    for pt in points:
        name = point_name(pt)
        st = state["points"].get(name, {})
        if (
            st
            and all(v.get("status") == "ok" for v in st.get("notebooks", {}).values())
            and len(st.get("notebooks", {})) == len(nbs)
        ):
            continue
        args = (
            [str(nb) for nb in nbs],
            str((sweep_dir / name).resolve()),
            {"profile": profile, **parameters, **pt},
            timeout,
            str(root),
        )
        jobs.append((name, args))
        state["points"][name] = {"point": pt, "notebooks": {}}
    save()
    run = _ray_executor(address, cpus_per_task, gpus_per_task) if executor == "ray" and jobs else _serial_executor
    bar = tqdm(total=len(points), initial=len(points) - len(jobs), desc=f"sweep ({profile})", unit="point")
    for name, status in run(jobs):
        state["points"][name]["notebooks"] = status
        save()
        bar.update(1)
        bad = [k for k, v in status.items() if v["status"] != "ok"]
        if bad:
            bar.write(f"✗ {name}: {', '.join(bad)} failed")
    bar.close()
    write_sweep_scorecard(sweep_dir)
    return sweep_dir, state


# ---------------------------------------------------------------------------------------------------------------
# the sweep scorecard


def sweep_rows(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per (claim, setting): verdicts at every seed of the setting and the metrics' spread."""
    sweep_dir = Path(sweep_dir)
    state = json.loads((sweep_dir / STATE).read_text())
    chapters = set(state["notebooks"])
    cs = [c for c in scorecard.all_claims() if c.chapter in chapters]
    groups: dict[str, list[tuple[dict, dict]]] = {}
    for name, st in sorted(state["points"].items()):
        pt = st["point"]
        setting = ",".join(f"{k}={v}" for k, v in pt.items() if k != "seed") or "(all)"
        records = scorecard.load_records(sweep_dir / name) if (sweep_dir / name).is_dir() else {}
        groups.setdefault(setting, []).append((pt, records))
    rows = []
    for c in cs:
        for setting, members in groups.items():
            verdicts = [claims_mod.evaluate_claim(c, recs.get(c.chapter)) for _, recs in members]
            decided = [v for v in verdicts if v["status"] != claims_mod.NOT_RUN]
            if not decided:
                continue
            spread = {}
            for m in c.metrics:
                vals = []
                for _, recs in members:
                    v = (recs.get(c.chapter) or {}).get("metrics", {}).get(m)
                    try:
                        vals.append(float(np.mean(claims_mod.as_values(v, m))))
                    except claims_mod.BadValue:
                        pass
                if vals:
                    spread[m] = claims_mod.mean_interval(vals)
            rows.append(
                {
                    "id": c.id,
                    "kind": c.kind,
                    "statement": c.statement,
                    "setting": setting,
                    "holds": sum(v["status"] == claims_mod.HOLDS for v in decided),
                    "decided": len(decided),
                    "points": len(members),
                    "metrics": spread,
                }
            )
    return rows


def write_sweep_scorecard(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Write ``sweep_scorecard.md`` and ``.json`` into ``sweep_dir``."""
    sweep_dir = Path(sweep_dir)
    rows = sweep_rows(sweep_dir)
    state = json.loads((sweep_dir / STATE).read_text())
    md = [
        f"# xmr sweep scorecard — {sweep_dir.name}",
        "",
        f"Notebooks {', '.join(state['notebooks'])}, profile {state['profile']}, grid "
        + ", ".join(f"{k} ∈ {v}" for k, v in state["grid"].items())
        + (f", fixed {state['parameters']}" if state["parameters"] else "")
        + ".",
        "",
        "Each claim is decided at every grid point by the scorecard's rule; a setting is the grid without `seed`. "
        "*Holds* counts the points (seeds) where it held; each metric is summarised over the points as mean ± "
        "standard deviation [95% interval of the mean].",
        "",
        "| claim | kind | setting | holds | metrics |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        mets = "; ".join(
            f"{k}: {m:.4g} ± {sd:.2g} [{lo:.4g}, {hi:.4g}]" if not math.isnan(sd) else f"{k}: {m:.4g}"
            for k, (m, sd, lo, hi) in r["metrics"].items()
        )
        md.append(
            f"| {r['id']} | {r['kind']} | {r['setting']} | {r['holds']} of {r['decided']} | "
            + mets.replace("|", "\\|")
            + " |"
        )
    (sweep_dir / "sweep_scorecard.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (sweep_dir / "sweep_scorecard.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
    return rows
