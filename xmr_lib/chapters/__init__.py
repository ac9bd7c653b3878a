"""The chapters: one package per notebook (``chNN/``), each with its method modules and a ``config`` module
holding the notebook's PROFILES, CLAIMS, NOT_CLAIMED, KNOBS, EXERCISES and fallback rule.

No chapter imports another; what two chapters share lives in a lower layer (``core``, ``data``, ``encoders``,
``retrieval``, ``train``). ``CONFIGS`` maps a notebook number to its config module, in notebook order.
"""

from __future__ import annotations

from types import ModuleType

from xmr_lib.chapters.ch00 import config as ch00
from xmr_lib.chapters.ch02 import config as ch02
from xmr_lib.chapters.ch03 import config as ch03
from xmr_lib.chapters.ch04 import config as ch04
from xmr_lib.chapters.ch05 import config as ch05
from xmr_lib.chapters.ch06 import config as ch06
from xmr_lib.chapters.ch07 import config as ch07
from xmr_lib.chapters.ch08 import config as ch08
from xmr_lib.chapters.ch09 import config as ch09
from xmr_lib.chapters.ch10 import config as ch10

CONFIGS: dict[str, ModuleType] = {
    "00": ch00,
    "02": ch02,
    "03": ch03,
    "04": ch04,
    "05": ch05,
    "06": ch06,
    "07": ch07,
    "08": ch08,
    "09": ch09,
    "10": ch10,
}


def config(chapter: str) -> ModuleType:
    """The config module of notebook ``chapter`` (``"03"``); ValueError naming the known chapters otherwise."""
    if chapter not in CONFIGS:
        raise ValueError(f"chapter: no chapter {chapter!r}; known: {', '.join(CONFIGS)}")
    return CONFIGS[chapter]
