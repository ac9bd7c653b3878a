"""Run plumbing for notebooks: profiles and parameters, recorded metrics, checkpoints.

Every notebook starts with one cell tagged ``parameters``::

    profile = "default"     # "smoke" (CI, seconds) | "default" (a learner's CPU, minutes) | "full" (GPU, paper scale)
    seed = 0
    device = "auto"
    data_root = None        # folder with real datasets fetched by `python -m data_scripts`
    n_queries = None        # a knob: None means "the profile's value"

and then resolves them::

    from xmr_lib.course import runs
    P = runs.params("02", globals())
    P.n_queries             # the resolved value (override, else the profile's)

Knobs and their per-profile values live in ``xmr_lib/chapters/chNN.py`` (``PROFILES``). An unknown parameter
(e.g. a typo passed with ``papermill -p``) or an unknown profile fails with a message listing the valid ones.

Metrics go to ``<run dir>/<notebook>.metrics.json`` through :func:`record`; the runner
(``python -m xmr_lib run``) sets the run dir, interactive sessions write to ``runs/interactive/``.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import os
import tempfile
import time
import types
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from xmr_lib import chapters
from xmr_lib.core import knobs
from xmr_lib.core.paths import _git_commit, run_dir
from xmr_lib.core.setup import setup

PROFILE_NAMES = ("smoke", "default", "full")
COMMON_PARAMETERS = ("profile", "seed", "device", "data_root")
# Names IPython puts into a kernel's namespace; never parameters.
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}

_CURRENT: dict[str, Any] = {"chapter": None, "notebook": None, "params": None}


class Params(dict):
    """Resolved parameters of a notebook: a dict with attribute access (``P.seed``, ``P["seed"]``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no parameter {name!r}; parameters are: {sorted(self)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def chapter_module(chapter: str) -> types.ModuleType:
    """The config module of chapter ``chapter`` (``"02"``, ``2`` or ``"ch02"``): ``xmr_lib.chapters.ch02.config``."""
    return chapters.config(normalise_chapter(chapter))


def normalise_chapter(chapter: str | int) -> str:
    """``2`` / ``"2"`` / ``"02"`` / ``"02_survey"`` → ``"02"``."""
    s = str(chapter).split("_")[0]
    if not s.isdigit():
        raise ValueError(f"chapter: expected a notebook number like '02', got {chapter!r}")
    return f"{int(s):02d}"


def profile_table(chapter: str) -> dict[str, dict[str, Any]]:
    """The chapter's ``PROFILES``: ``{"smoke": {...}, "default": {...}, "full": {...}}`` with the same keys each."""
    mod = chapter_module(chapter)
    table = getattr(mod, "PROFILES", None)
    if not isinstance(table, dict) or set(table) != set(PROFILE_NAMES):
        raise ValueError(
            f"xmr_lib/chapters/ch{normalise_chapter(chapter)}.py: PROFILES must have exactly the "
            f"keys {PROFILE_NAMES}, got {None if table is None else sorted(table)}"
        )
    keys = [set(v) for v in table.values()]
    if any(k != keys[0] for k in keys):
        raise ValueError(
            f"chapter {chapter}: every profile must define the same knobs; got "
            + "; ".join(f"{p}: {sorted(v)}" for p, v in table.items())
        )
    return table


def valid_parameters(chapter: str) -> list[str]:
    """All parameter names a notebook of this chapter accepts: the common ones plus its knobs."""
    return list(COMMON_PARAMETERS) + sorted(profile_table(chapter)["default"])


def _user_names(namespace: dict) -> dict[str, Any]:
    out = {}
    for k, v in namespace.items():
        if k.startswith("_") or k in _IPYTHON_NAMES or isinstance(v, types.ModuleType):
            continue
        if callable(v) and not isinstance(v, (int, float, str, bool, list, tuple, dict)):
            continue
        out[k] = v
    return out


def knob_table(chapter: str):
    """Every knob of a chapter with its value in each profile and what it does (``KNOB_HELP`` of the chapter's
    config, else empty): a pandas DataFrame indexed by knob. The ``parameters`` cell shows only the knobs a learner
    changes most; any knob here can be set there or with ``-p name=value``."""
    import pandas as pd  # heavy; only this view needs it

    table = profile_table(chapter)
    helps = getattr(chapter_module(chapter), "KNOB_HELP", {})
    rows = {
        k: {prof: table[prof].get(k) for prof in PROFILE_NAMES} | {"what": helps.get(k, "")} for k in table["default"]
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def paper_settings(chapter: str):
    """The chapter's ``full`` profile beside the paper's setting: ``PAPER_SETTINGS`` of the chapter's config, a list of
    ``{"setting", "paper", "ours", "why"}`` rows (``why`` empty where ours is the paper's), as a pandas DataFrame
    indexed by setting. Each notebook opens its ``full`` section with it."""
    import pandas as pd  # heavy; only this view needs it

    chapter = normalise_chapter(chapter)
    rows = getattr(chapter_module(chapter), "PAPER_SETTINGS", None)
    if not rows:
        raise ValueError(f"notebook {chapter}: its config declares no PAPER_SETTINGS (paper setting → ours → why)")
    table = pd.DataFrame([{k: r.get(k, "") for k in ("setting", "paper", "ours", "why")} for r in rows])
    return table.set_index("setting")


def resolve(chapter: str, profile: str = "default", **given: Any) -> Params:
    """Resolve a chapter's parameters without side effects (no seeding, no run context).

    ``given`` holds the common parameters and knob overrides; a knob whose value is ``None`` takes the profile's
    value. Raises ValueError for an unknown profile or parameter, listing the valid ones.
    """
    chapter = normalise_chapter(chapter)
    if profile not in PROFILE_NAMES:
        raise ValueError(
            f"profile: unknown profile {profile!r} for notebook {chapter}; valid profiles: {', '.join(PROFILE_NAMES)}"
        )
    table = profile_table(chapter)
    valid = set(COMMON_PARAMETERS) | set(table[profile])
    unknown = sorted(set(given) - valid)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for notebook {chapter}; "
            f"valid parameters: {', '.join(valid_parameters(chapter))}"
        )
    p = Params(
        profile=profile, seed=given.get("seed", 0), device=given.get("device", "auto"), data_root=given.get("data_root")
    )
    for k, v in table[profile].items():
        p[k] = given[k] if given.get(k) is not None else v
    if not isinstance(p.seed, int) or isinstance(p.seed, bool) or not 0 <= p.seed < 2**31:
        raise ValueError(f"seed: expected a whole number from 0 to 2**31 - 1, got {p.seed!r}")
    if p.device is not None and not isinstance(p.device, str):
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {p.device!r}")
    if p.data_root is not None:
        if not isinstance(p.data_root, (str, os.PathLike)) or not Path(p.data_root).expanduser().is_dir():
            raise ValueError(
                f"data_root: {p.data_root!r} is not a folder (fetch the real sets with "
                "`python -m data_scripts fetch NAME --root DIR`, then pass that DIR)"
            )
    mod = chapter_module(chapter)
    knobs.check(table, getattr(mod, "KNOBS", None), {k: p[k] for k in table[profile]})
    return p


_FIRST_NAMES = "_xmr_parameter_names"


def _parameters_cell_names(namespace: dict) -> set[str]:
    """Names assigned by the cell run just before this one, when it looks like a ``parameters`` cell (only
    assignments of literal values) — read from IPython's input history ``In``; empty when unknown."""
    hist = namespace.get("In")
    if not isinstance(hist, list) or len(hist) < 2 or not isinstance(hist[-2], str):
        return set()
    try:
        body = ast.parse(hist[-2]).body
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
            return set()
        try:
            ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return set()
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def _candidates(chapter: str, namespace: dict) -> dict[str, Any]:
    """The names of ``namespace`` that are meant as parameters.

    On the first call in a namespace every user-level name is a candidate, so that a misspelt ``papermill -p`` name
    (injected beside the ``parameters`` cell) is refused. The names seen then are remembered in the namespace. On a
    re-run in a live kernel (the ``parameters`` cell edited and run again, or "Run All" twice) the names the
    notebook defined since (``P``, figures, results such as ``alphas``) are not parameters: the candidates are the
    remembered names and the valid parameter names; a new name assigned by the ``parameters`` cell just run (IPython's
    input history) that is close to a valid one — a misspelt knob — is refused with a suggestion.
    """
    names = _user_names(namespace)
    first = namespace.get(_FIRST_NAMES)
    if first is None:
        namespace[_FIRST_NAMES] = frozenset(names)
        return names
    valid = set(valid_parameters(chapter))
    typed = _parameters_cell_names(namespace)
    for k in sorted((set(names) & typed) - set(first) - valid):
        near = difflib.get_close_matches(k, sorted(valid), n=1, cutoff=0.8)
        if near:
            raise ValueError(
                f"unknown parameter {k!r} for notebook {normalise_chapter(chapter)}: did you mean "
                f"{near[0]!r}? valid parameters: {', '.join(valid_parameters(chapter))}"
            )
    return {k: v for k, v in names.items() if k in first or k in valid}


def params(chapter: str, namespace: dict | None = None, **given: Any) -> Params:
    """Resolve a notebook's parameters, call :func:`xmr_lib.setup`, and start its metrics record afresh.

    Args:
        chapter: the notebook number, e.g. ``"02"``.
        namespace: pass ``globals()`` from the cell right after the ``parameters`` cell. On its first use every
            user-level name in it is treated as a parameter (so a misspelt ``papermill -p`` name is caught here);
            calling again in the same live kernel works (see :func:`_candidates`).
        **given: parameters given directly (take precedence over ``namespace``).

    Returns:
        :class:`Params` with ``profile, seed, device, data_root``, every knob of the profile, and ``settings`` (what
        :func:`xmr_lib.setup` resolved: device, threads, versions). The record of an earlier run of the same
        notebook in the same folder is replaced: no metric or ``data/real`` marker survives into this run.
    """
    values = _candidates(chapter, namespace) if namespace is not None else {}
    values.update(given)
    profile = values.pop("profile", "default")
    p = resolve(chapter, profile, **values)
    fallback = getattr(chapter_module(chapter), "FALLBACK", None)
    real, fell_back, banner = fallback.apply(p) if fallback is not None else (False, False, "")
    if banner:
        print(banner)
    p.fell_back = fell_back
    settings = setup(p.seed, p.device)
    p.device = settings.device
    p.settings = asdict(settings)
    _CURRENT.update(chapter=normalise_chapter(chapter), notebook=_notebook_name(chapter), params=p)
    path = metrics_path()
    if path.is_file():
        _load(path)  # a corrupt earlier record is reported, not silently replaced
    rec = dict(
        chapter=normalise_chapter(chapter),
        notebook=_CURRENT["notebook"],
        profile=p.profile,
        seed=p.seed,
        params=_jsonable({k: v for k, v in p.items() if k not in ("settings", "fell_back")}),
        settings=p.settings,
        commit=_git_commit(),
        started=time.strftime("%Y-%m-%dT%H:%M:%S"),
        metrics={},
    )
    if fallback is not None:  # the markers of the chapter's fallback rule (claims.real_data_only reads data/real)
        rec["metrics"]["data/fallback"] = int(fell_back)
        if real:
            rec["metrics"]["data/real"] = 1
    _save(path, rec)
    return p


# ----------------------------------------------------------------------------------------------------------------
# where things go


def _notebook_name(chapter: str) -> str:
    env = os.environ.get("XMR_NOTEBOOK")
    if env:
        return env
    return f"{normalise_chapter(chapter)}"


def metrics_path(notebook: str | None = None) -> Path:
    """``<run dir>/<notebook>.metrics.json`` for the current (or given) notebook."""
    nb = notebook or _CURRENT["notebook"]
    if nb is None:
        raise RuntimeError("no notebook context: call xmr_lib.course.runs.params(...) first")
    return run_dir() / f"{nb}.metrics.json"


# ----------------------------------------------------------------------------------------------------------------
# recording


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        v = float(v)
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 1) == 0:  # torch scalar
        return _jsonable(v.item())
    if hasattr(v, "tolist") and callable(v.tolist):  # torch tensor
        return _jsonable(v.tolist())
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")  # JSON has no NaN / inf; never "holds"
    if isinstance(v, Path):
        return str(v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def _load(path: Path) -> dict:
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: corrupt metrics file ({e}); delete it to start the record afresh") from e
    return {}


def _save(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def record(key: str, value: Any) -> Any:
    """Record one metric (a number, a list of per-seed numbers, a small dict/table) for the current notebook.

    Keys are flat strings, e.g. ``"gem/medium/mAP"`` or ``"finetune/old_mAP_seeds"``. Returns ``value``.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"key: expected a non-empty string, got {key!r}")
    path = metrics_path()
    rec = _load(path)
    rec.setdefault("metrics", {})[key] = _jsonable(value)
    rec["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _save(path, rec)
    return value


def record_many(values: dict[str, Any], prefix: str = "") -> None:
    """Record several metrics at once: ``record(prefix + k, v)`` for each item (one file write)."""
    path = metrics_path()
    rec = _load(path)
    m = rec.setdefault("metrics", {})
    for k, v in values.items():
        m[f"{prefix}{k}"] = _jsonable(v)
    rec["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _save(path, rec)


def recorded(notebook: str | None = None) -> dict:
    """The whole record of the current (or given) notebook: ``{"profile":..., "metrics": {...}, ...}``."""
    return _load(metrics_path(notebook))


# ----------------------------------------------------------------------------------------------------------------
# checkpoints
