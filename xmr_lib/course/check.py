"""``from xmr_lib.course import check`` then ``check.ex02_1(answer)``: the check cell of an exercise.

``check.exNN_K`` checks exercise K of notebook NN with the function the chapter module lists in ``EXERCISES``
(:mod:`xmr_lib.course.exercises`); it prints feedback and returns whether the answer passed.
"""

from __future__ import annotations

import re
from functools import partial

from xmr_lib.course.exercises import run_check

_NAME = re.compile(r"^ex(\d\d)_(\w+)$")


def __getattr__(name: str):
    m = _NAME.match(name)
    if not m:
        raise AttributeError(f"xmr_lib.course.check has no {name!r}; exercise checks are named like ex02_1")
    return partial(run_check, f"{m.group(1)}.{m.group(2)}")
