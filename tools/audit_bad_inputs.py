"""Bad-input audit: hundreds of wrong arguments and files, and what the package does with each.

``python -m tools.audit_bad_inputs [--json OUT]`` prints, per area, how many cases gave

- **clear**: an exception whose message names the argument (or knob, file) that is wrong;
- **bare**: an exception that does not (a library traceback the user must decode);
- **silent**: no exception at all — a wrong result.

Each case is a call with one argument made wrong on purpose, next to a good call that must succeed (a case whose
good call fails is reported as a setup error, never counted). ``tests/test_bad_inputs.py`` runs the audit and
requires 0 bare and 0 silent. Run against an older checkout (``PYTHONPATH=that/checkout``) to compare.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np


@dataclass
class Case:
    area: str
    what: str
    call: Callable[[], Any]
    names: tuple[str, ...]  # a clear message names one of these


def _classify(case: Case) -> tuple[str, str]:
    try:
        case.call()
    except Exception as e:  # noqa: BLE001 - classifying every failure is the point
        msg = f"{type(e).__name__}: {e}"
        low = str(e).lower()
        if isinstance(e, (ValueError, TypeError, FileNotFoundError, KeyError)) and any(
            n.lower() in low for n in case.names
        ):
            return "clear", msg[:160]
        return "bare", msg[:160]
    return "silent", ""


# ---------------------------------------------------------------------------------------------------------------
# case generators


def _arr(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _with_nan(a):
    a = np.array(a, dtype=np.float32)
    a.flat[0] = np.nan
    return a


def _variants(
    good: dict[str, Any],
    bad: dict[str, list[tuple[str, Any]]],
    fn: Callable,
    area: str,
    label: str,
    aliases: dict[str, tuple[str, ...]] | None = None,
) -> list[Case]:
    fn(**good)  # the good call must work, else the audit itself is wrong
    out = []
    for arg, values in bad.items():
        for what, v in values:
            kw = dict(good, **{arg: v})
            names = (arg,) + tuple((aliases or {}).get(arg, ()))
            out.append(Case(area, f"{label}({arg}={what})", (lambda kw=kw: fn(**kw)), names))
    return out


def _array_bad(shape):
    q, n = shape
    return [
        ("1-D", np.zeros(n, np.float32)),
        ("3-D", np.zeros((q, n, 2), np.float32)),
        ("empty", np.zeros((0, n), np.float32)),
        ("NaN", _with_nan(_arr(q, n))),
        ("strings", [["a"] * n] * q),
        ("None", None),
        ("wrong rows", _arr(q + 1, n)),
    ]


def metric_cases() -> list[Case]:
    from xmr_lib.retrieval import metrics as M

    q, n = 4, 12
    scores, rel = _arr(q, n), (np.arange(q * n).reshape(q, n) % 3 == 0).astype(np.float32)
    cases = []
    int_bad = [("0", 0), ("-1", -1), ("2.5", 2.5), ("'3'", "3"), ("True", True)]
    ties_bad = [("'bogus'", "bogus"), ("None", None)]
    for name in ("average_precision", "mean_average_precision"):
        cases += _variants(
            {"scores": scores, "relevance": rel, "k": 5},
            {
                "scores": _array_bad((q, n)),
                "relevance": _array_bad((q, n)),
                "k": int_bad,
                "ties": ties_bad,
                "normalize": ties_bad,
            },
            getattr(M, name),
            "metrics",
            name,
        )
    cases += _variants(
        {"scores": scores, "relevance": rel, "k": 3},
        {
            "scores": _array_bad((q, n)),
            "relevance": _array_bad((q, n)),
            "k": int_bad + [("N+1", n + 1)],
            "ties": ties_bad,
        },
        M.precision_at_k,
        "metrics",
        "precision_at_k",
    )
    cases += _variants(
        {"scores": scores, "relevance": rel, "ks": (1, 5)},
        {
            "scores": _array_bad((q, n)),
            "relevance": _array_bad((q, n)),
            "ks": [("(0,)", (0,)), ("(N+1,)", (n + 1,)), ("()", ()), ("('a',)", ("a",))],
        },
        M.recall_at_k,
        "metrics",
        "recall_at_k",
    )
    codes_q, codes_d = np.sign(_arr(3, 16)), np.sign(_arr(10, 16, seed=1))
    lab_q, lab_d = np.eye(3, 4)[np.arange(3) % 3], np.eye(3, 4)[np.arange(10) % 3]
    code_bad = [
        ("1-D", np.ones(16)),
        ("NaN", _with_nan(codes_q)),
        ("non-binary", codes_q * 0.5 + 0.25),
        ("other bits", np.sign(_arr(3, 8))),
        ("empty", np.zeros((0, 16))),
        ("None", None),
    ]
    cases += _variants(
        {"query_codes": codes_q, "db_codes": codes_d, "query_labels": lab_q, "db_labels": lab_d},
        {
            "query_codes": code_bad,
            "db_codes": [("1-D", np.ones(16)), ("other bits", np.sign(_arr(10, 8))), ("NaN", _with_nan(codes_d))],
            "query_labels": [("3-D", np.ones((3, 4, 2))), ("wrong rows", lab_d), ("NaN", _with_nan(lab_q))],
            "db_labels": [("wrong rows", lab_q), ("other classes", np.eye(10, 5))],
            "top_k": int_bad,
            "ties": ties_bad,
            "empty": ties_bad,
        },
        M.hamming_map,
        "metrics",
        "hamming_map",
    )
    R = np.array([[0.9, np.nan], [0.7, 0.8]])
    for name in ("task_forgetting", "average_incremental_accuracy"):
        cases += _variants(
            {"R": R},
            {
                "R": [
                    ("1-D", np.ones(3)),
                    ("empty", np.zeros((0, 0))),
                    ("strings", [["a"]]),
                    ("None", None),
                    ("3-D", np.ones((2, 2, 2))),
                ]
            },
            getattr(M, name),
            "metrics",
            name,
        )
    ranks = np.argsort(-scores, axis=1)
    pos = [np.array([0, 1]), np.array([2]), np.array([3, 5]), np.array([7])]
    cases += _variants(
        {"ranks": ranks, "positives": pos},
        {
            "ranks": [
                ("repeated id", np.tile(np.arange(6), (q, 2))),
                ("1-D", np.arange(n)),
                ("negative id", ranks - 1),
                ("None", None),
            ],  # float "ranks" are scores, by design
            # an id beyond a truncated ranking is a positive not retrieved, by design: not a case
            "positives": [("too few", pos[:2]), ("negative", [np.array([-1])] * q)],
            "kind": [("'bogus'", "bogus")],
        },
        M.revisited_ap,
        "metrics",
        "revisited_ap",
        aliases={"positives": ("ranks",)},
    )
    return cases


def pooling_cases() -> list[Case]:
    import torch

    from xmr_lib.retrieval import pooling as Pl

    x = torch.rand(2, 8, 5, 6)
    # (NaN maps give NaN descriptors, visibly; negative maps are clamped by GeM's definition: neither is a case)
    t_bad = [
        ("3-D", torch.rand(8, 5, 6)),
        ("empty map", torch.rand(2, 8, 0, 6)),
        ("numpy", np.random.rand(2, 8, 5, 6)),
        ("None", None),
        ("2-D", torch.rand(8, 5)),
    ]
    cases = []
    for name in ("mac_pool", "avg_pool", "spoc_pool"):
        cases += _variants({"x": x}, {"x": t_bad}, getattr(Pl, name), "pooling", name)
    cases += _variants(
        {"x": x, "p": 3.0},
        {
            "x": t_bad,
            "p": [
                ("0", 0.0),
                ("-1", -1.0),
                ("NaN", float("nan")),
                ("tensor 0", torch.tensor(0.0)),
                ("tensor -2", torch.tensor([-2.0])),
            ],
            "eps": [("0", 0.0), ("-1", -1.0)],
        },
        Pl.gem_pool,
        "pooling",
        "gem_pool",
    )
    cases += _variants(
        {"x": x, "levels": 2},
        {"x": t_bad, "levels": [("0", 0), ("-1", -1), ("1.5", 1.5)]},
        Pl.rmac_pool,
        "pooling",
        "rmac_pool",
    )
    cases += _variants(
        {"x": x, "a": 2.0, "b": 2.0},
        {
            "x": t_bad,
            "a": [("0", 0.0), ("-1", -1.0), ("NaN", math.nan)],
            "b": [("0", 0.0), ("-2", -2.0), ("NaN", math.nan)],
        },
        Pl.crow_pool,
        "pooling",
        "crow_pool",
    )
    cases += _variants(
        {"name": "gem", "x": x}, {"name": [("'gemm'", "gemm"), ("None", None)]}, Pl.pool, "pooling", "pool"
    )
    return cases


def retrieval_cases() -> list[Case]:
    import torch

    from xmr_lib.retrieval import expansion as E
    from xmr_lib.retrieval import index as I
    from xmr_lib.retrieval import losses as L
    from xmr_lib.retrieval import whitening as W

    cases = []
    X = _arr(40, 8)
    cases += _variants(
        {"x": X, "dim": 4},
        {
            "x": [
                ("1-D", X[0]),
                ("NaN", _with_nan(X)),
                ("constant", np.ones((40, 8))),
                ("one row", X[:1]),
                ("None", None),
            ],
            "dim": [("0", 0), ("-1", -1), ("> D", 100), ("2.5", 2.5)],
            "eps": [("-1", -1.0), ("NaN", math.nan)],
        },
        W.learn_pca_whitening,
        "retrieval",
        "learn_pca_whitening",
    )
    qi, pi = np.arange(10), np.arange(10) + 10
    cases += _variants(
        {"x": X, "query_idx": qi, "positive_idx": pi, "dim": 4},
        {
            "query_idx": [
                ("out of range", qi + 100),
                ("self pairs", pi),
                ("floats", qi + 0.5),
                ("wrong length", qi[:3]),
            ],
            "positive_idx": [("negative", -pi)],
            "dim": [("0", 0), ("> D", 100)],
        },
        W.learn_supervised_whitening,
        "retrieval",
        "learn_supervised_whitening",
        aliases={"positive_idx": ("query_idx",), "query_idx": ("positive_idx",)},
    )
    Q, D = torch.tensor(_arr(3, 8)), torch.tensor(_arr(20, 8, seed=2))
    cases += _variants(
        {"queries": Q, "database": D, "n": 2},
        {
            "queries": [("1-D", Q[0]), ("other dim", Q[:, :4])],
            "database": [("empty", D[:0]), ("other dim", D[:, :4])],
            "n": [("-1", -1), ("> N", 100)],
            "alpha": [("-1", -1.0), ("NaN", math.nan)],
        },
        E.alpha_query_expansion,
        "retrieval",
        "alpha_query_expansion",
        aliases={"database": ("n",), "queries": ("database",)},
    )

    def flat(dim=8, metric="ip", add=X, q=X[:3], k=5):
        idx = I.FlatIndex(dim, metric=metric)
        idx.add(add)
        return idx.search(q, k)

    cases += _variants(
        {},
        {
            "dim": [("0", 0), ("-3", -3), ("'8'", "8")],
            "metric": [("'cosine?'", "cosine?")],
            "add": [("other dim", _arr(5, 4)), ("NaN", _with_nan(X)), ("1-D", X[0])],
            "q": [("other dim", _arr(2, 4)), ("NaN", _with_nan(X[:3]))],
            "k": [("0", 0), ("-1", -1), ("2.5", 2.5)],
        },
        flat,
        "retrieval",
        "FlatIndex",
        aliases={"add": ("x",), "q": ("q", "queries")},
    )
    a, p, n = (torch.randn(4, 8) for _ in range(3))
    cases += _variants(
        {"anchor": a, "positive": p, "negative": n},
        {
            "anchor": [("other dim", torch.randn(4, 3)), ("1-D", torch.randn(8)), ("other batch", torch.randn(5, 8))],
            "margin": [("NaN", math.nan), ("-1", -1.0)],
            "reduction": [("'avg'", "avg")],
        },
        L.triplet_loss,
        "retrieval",
        "triplet_loss",
        aliases={"anchor": ("positive", "negative")},
    )
    return cases


def knob_cases() -> list[Case]:
    """Every knob of every notebook given a wrong-typed value, and every non-negative numeric knob a negative one."""
    from xmr_lib.course import runs

    cases = []
    for ch in ("00", "02", "03", "04", "05", "06", "07", "08", "09", "10"):
        table = runs.profile_table(ch)
        runs.resolve(ch, "default")
        for name, v in table["default"].items():
            vals = [p[name] for p in table.values()]
            wrong = {bool: "yes", int: "ten", float: "ten", str: 3, list: "abc", dict: 5}.get(type(v))
            if v is None or wrong is None:
                continue
            if isinstance(v, str) and any(isinstance(x, (int, float)) for x in vals):
                continue
            cases.append(
                Case(
                    "parameters",
                    f"{ch}.{name}={wrong!r}",
                    (lambda ch=ch, name=name, wrong=wrong: runs.resolve(ch, "default", **{name: wrong})),
                    (name,),
                )
            )
            nums = [x for x in vals if isinstance(x, (int, float)) and not isinstance(x, bool)]
            if nums and len(nums) == len(vals) and all(x >= 0 for x in nums):
                cases.append(
                    Case(
                        "parameters",
                        f"{ch}.{name}=-5",
                        (lambda ch=ch, name=name: runs.resolve(ch, "default", **{name: -5})),
                        (name,),
                    )
                )
        for name, bad in (("seed", -1), ("seed", 1.5), ("seed", "0"), ("data_root", "/no/such/dir")):
            cases.append(
                Case(
                    "parameters",
                    f"{ch}.{name}={bad!r}",
                    (lambda ch=ch, name=name, bad=bad: runs.resolve(ch, "default", **{name: bad})),
                    (name,),
                )
            )
    return cases


def scorecard_cases() -> list[Case]:
    from xmr_lib.core import claims

    def decide(claim, value):
        row = claims.evaluate_claim(claim, {"profile": "default", "metrics": {m: value for m in claim.metrics}})
        if row["status"] == claims.HOLDS:
            return row  # a bad value that "holds" is a silent wrong result
        raise ValueError(f"value: {row['status']} ({row['why']})")

    try:
        ordering = claims.greater("99.c", "s", a="m", b="m2", min_gap=-1e9, kind=claims.FINDING)
    except (TypeError, AttributeError):  # an older claims module (for a before/after comparison)
        ordering = claims.greater("99.c", "s", a="m", b="m2", margin=-1e9)
    cs = [
        claims.at_least("99.a", "s", metric="m", threshold=0.0),
        claims.at_most("99.b", "s", metric="m", threshold=1e9),
        ordering,
        claims.close_to("99.d", "s", metric="m", target=0.0, tol=1e12, profiles=("default",)),
    ]
    bad = [
        ("NaN", float("nan")),
        ("'nan'", "nan"),
        ("'inf'", "inf"),
        ("+inf", float("inf")),
        ("None", None),
        ("[]", []),
        ("[0.5, None]", [0.5, None]),
        ("'0.5'", "0.5"),
        ("True", True),
        ("{}", {}),
        ("[nan]*5", [float("nan")] * 5),
    ]
    return [Case("scorecard", f"{c.id}({w})", (lambda c=c, v=v: decide(c, v)), ("value",)) for c in cs for w, v in bad]


def loader_cases() -> list[Case]:
    """Converted-dataset folders with one thing wrong each (the real layout: images/, index.csv, classes.txt)."""
    from PIL import Image

    from xmr_lib.data import registry as data

    def folder(index: str | bytes, classes: str = "a\nb\n", images=("x.png", "y.png")) -> Path:
        d = Path(tempfile.mkdtemp()) / "cub200"
        (d / "images").mkdir(parents=True)
        for im in images:
            Image.new("RGB", (4, 4)).save(d / "images" / im)
        (d / "index.csv").write_bytes(index if isinstance(index, bytes) else index.encode())
        (d / "classes.txt").write_text(classes)
        return d

    good = "path,label,split\nx.png,0,train\ny.png,1,test\n"
    bad = {
        "label out of range": good.replace("y.png,1", "y.png,7"),
        "negative label": good.replace("x.png,0", "x.png,-2"),
        "0-byte index.csv": "",
        "row without its split": "path,label,split\nx.png,0\ny.png,1,test\n",
        "path outside the root": good.replace("y.png", "../../etc/hostname"),
        "missing image": good.replace("y.png", "z.png"),
        "missing column": "path,split\nx.png,train\n",
        "non-integer label": good.replace("x.png,0", "x.png,zero"),
        "non-UTF-8": "path,label,split\nx\xe9.png,0,train\n".encode("latin-1"),
        "unknown split": good.replace("test", "tset"),
        "absolute path": good.replace("y.png", "/etc/hostname"),
    }

    def load(idx):
        d = folder(idx)
        return (
            data.load_converted(d.name, d.parent, "all")
            if hasattr(data, "load_converted")
            else data.load(d.name, "all", root=d.parent)
        )

    load(good)
    return [Case("loaders", what, (lambda idx=idx: load(idx)), ("index.csv",)) for what, idx in bad.items()]


AREAS = {
    "metrics": metric_cases,
    "pooling": pooling_cases,
    "retrieval": retrieval_cases,
    "parameters": knob_cases,
    "scorecard": scorecard_cases,
    "loaders": loader_cases,
}


def audit(areas=None) -> list[dict]:
    rows = []
    for area, make in AREAS.items():
        if areas and area not in areas:
            continue
        try:
            cases = make()
        except Exception as e:  # noqa: BLE001 - an older checkout may lack a function
            rows.append({"area": area, "case": "(setup)", "verdict": "setup error", "message": repr(e)[:200]})
            continue
        for c in cases:
            verdict, msg = _classify(c)
            rows.append({"area": c.area, "case": c.what, "verdict": verdict, "message": msg})
    return rows


def summary(rows: list[dict]) -> str:
    areas = sorted({r["area"] for r in rows})
    lines = [f"{'area':12s} {'cases':>6s} {'clear':>6s} {'bare':>6s} {'silent':>7s}"]
    for a in areas + ["total"]:
        rs = [r for r in rows if a in ("total", r["area"]) and r["verdict"] != "setup error"]
        n = {v: sum(r["verdict"] == v for r in rs) for v in ("clear", "bare", "silent")}
        lines.append(f"{a:12s} {len(rs):6d} {n['clear']:6d} {n['bare']:6d} {n['silent']:7d}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write every case and its verdict here")
    ap.add_argument("--show", choices=("bare", "silent", "all"), help="list these cases")
    args = ap.parse_args(argv)
    rows = audit()
    print(summary(rows))
    for r in rows:
        if args.show and (args.show == "all" or r["verdict"] in (args.show, "setup error")):
            print(f"  [{r['verdict']}] {r['area']}: {r['case']} {r['message']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
