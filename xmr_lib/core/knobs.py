"""Types and ranges of a notebook's knobs, checked before anything runs.

A chapter module may declare, beside its ``PROFILES``, the type and range of each knob::

    from xmr_lib.core.knobs import AnyOf, Choice, Float, Int, ListOf

    KNOBS = {"n_query": Int(1), "bits": ListOf(Int(8, 1024)), "lr_start": Float(0, exclusive_lo=True),
             "dataset": Choice("shapes", "mirflickr25k", "nuswide"),
             "iterations": AnyOf(Int(1), ListOf(Int(1))),               # one count, or one per group
             "sigmas": AnyOf(Choice("auto"), ListOf(Float(0, exclusive_lo=True)))}

A knob it does not declare gets a type inferred from its profile values (an int knob takes ints, a list knob a
list, a string knob a string; ``None`` is accepted where a profile uses it; a number that is non-negative in every
profile must stay non-negative), so ``n_queries="ten"``, ``n_queries=-5`` or ``bits=16.5`` fail at once, naming
the knob. :func:`check` raises ``ValueError("knob: …")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Knob:
    """A knob's type (``int``, ``float``, ``bool``, ``str``, ``list``, ``dict``, ``any`` or ``anyof``) and range.

    ``anyof`` (made by :func:`AnyOf`) accepts a value that one of its ``options`` accepts.
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    exclusive_lo: bool = False
    choices: tuple | None = None
    item: "Knob | None" = None
    none_ok: bool = False
    options: "tuple[Knob, ...] | None" = None

    def check(self, name: str, value: Any) -> None:
        """Raise ``ValueError`` naming ``name`` when ``value`` is not of this knob's type or range."""
        if value is None:
            if self.none_ok:
                return
            raise ValueError(f"{name}: None is not a value of this knob (expected {self.describe()})")
        bad = ValueError(f"{name}: expected {self.describe()}, got {value!r}")
        if self.kind == "anyof":
            for option in self.options or ():
                try:
                    option.check(name, value)
                except ValueError:
                    continue
                return
            raise bad
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise bad
            return
        if self.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad
            if self.kind == "int" and not (isinstance(value, int) or float(value).is_integer()):
                raise bad
            if math.isnan(value) or (self.kind == "int" and math.isinf(value)):
                raise bad
            if self.lo is not None and (value < self.lo or (self.exclusive_lo and value == self.lo)):
                raise bad
            if self.hi is not None and value > self.hi:
                raise bad
        elif self.kind == "str":
            if not isinstance(value, str):
                raise bad
        elif self.kind == "list":
            if not isinstance(value, (list, tuple)):
                raise bad
            if self.lo is not None and len(value) < self.lo:
                raise ValueError(f"{name}: expected {self.describe()}, got {len(value)} item(s): {value!r}")
            if self.item is not None:
                for i, x in enumerate(value):
                    self.item.check(f"{name}[{i}]", x)
        elif self.kind == "dict":
            if not isinstance(value, dict):
                raise bad
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{name}: expected one of {', '.join(map(repr, self.choices))}; got {value!r}")

    def describe(self) -> str:
        if self.kind == "anyof":
            s = " or ".join(o.describe() for o in self.options or ())
            return s + (" (or None)" if self.none_ok else "")
        if self.choices is not None:
            return "one of " + ", ".join(map(repr, self.choices))
        s = {
            "int": "an integer",
            "float": "a number",
            "bool": "True or False",
            "str": "a string",
            "list": "a list",
            "dict": "a dict",
            "any": "a value",
        }[self.kind]
        if self.kind == "list" and self.lo:
            s += f" (≥ {self.lo:g} item{'s' if self.lo != 1 else ''})"
        elif self.lo is not None or self.hi is not None:
            lo = "" if self.lo is None else f"{'>' if self.exclusive_lo else '≥'} {self.lo:g}"
            hi = "" if self.hi is None else f"≤ {self.hi:g}"
            s += " " + " and ".join(x for x in (lo, hi) if x)
        if self.item is not None:
            s += f" of {self.item.describe()}"
        if self.none_ok:
            s += " (or None)"
        return s


def Int(lo: float | None = None, hi: float | None = None, *, none_ok: bool = False) -> Knob:
    return Knob("int", lo, hi, none_ok=none_ok)


def Float(
    lo: float | None = None, hi: float | None = None, *, exclusive_lo: bool = False, none_ok: bool = False
) -> Knob:
    return Knob("float", lo, hi, exclusive_lo=exclusive_lo, none_ok=none_ok)


def Choice(*values: Any, none_ok: bool = False) -> Knob:
    return Knob("any", choices=tuple(values), none_ok=none_ok)


def ListOf(item: Knob, *, min_len: int = 1, none_ok: bool = False) -> Knob:
    """A list (or tuple) of ``item`` values with at least ``min_len`` of them (an empty list of bit lengths or
    methods would run nothing and report nothing)."""
    return Knob("list", lo=min_len, item=item, none_ok=none_ok)


def AnyOf(*options: Knob, none_ok: bool = False) -> Knob:
    """A knob that takes a value of any of ``options``: ``AnyOf(Int(1), ListOf(Int(1)))`` (a count, or one per
    group), ``AnyOf(Choice("auto"), Float(0))`` (a number or ``"auto"``)."""
    if not options or not all(isinstance(o, Knob) for o in options):
        raise ValueError(f"options: expected one or more Knob, got {options!r}")
    return Knob("anyof", options=tuple(options), none_ok=none_ok)


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "dict"
    return "any"


def infer(values: list[Any]) -> Knob:
    """A knob's type from its values in the profiles: the common type (int ⊂ float), ``None`` allowed if used."""
    none_ok = any(v is None for v in values)
    kinds = {_kind(v) for v in values if v is not None}
    if not kinds:
        return Knob("any", none_ok=True)
    if kinds <= {"int", "float"}:
        nums = [v for v in values if v is not None]
        lo = 0 if all(v >= 0 for v in nums) else None  # non-negative in every profile: stays non-negative
        return Knob("float" if "float" in kinds else "int", lo=lo, none_ok=none_ok)
    if len(kinds) == 1:
        kind = kinds.pop()
        if kind == "list":
            items = [x for v in values if isinstance(v, (list, tuple)) for x in v]
            item = infer(items) if items and all(_kind(x) in ("int", "float", "str", "bool") for x in items) else None
            if item is not None and item.kind in ("str", "bool"):
                item = None  # lists of names may take other names
            return Knob("list", item=item, none_ok=none_ok)
        return Knob(kind, none_ok=none_ok)
    return Knob("any", none_ok=none_ok)


def check(profiles: dict[str, dict], declared: dict[str, Knob] | None, values: dict[str, Any]) -> None:
    """Check resolved knob ``values`` against ``declared`` knobs, else against the type inferred from ``profiles``."""
    declared = declared or {}
    for name, value in values.items():
        knob = declared.get(name) or infer([p.get(name) for p in profiles.values()])
        knob.check(name, value)
