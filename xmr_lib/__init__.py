"""xmr_lib — the helper library behind the xmr notebooks on deep image and cross-modal retrieval.

One module per concept: ``pooling``, ``losses``, ``hashing``, ``metrics``, ``index``, ``distill``,
``data``, ``models``, ``viz``, ``runs``, ``claims``. Start every notebook with :func:`setup`
(usually through :func:`xmr_lib.course.runs.params`, which calls it).
"""

from __future__ import annotations

import os as _os

from xmr_lib.core.setup import resolve_device, setup

if _os.environ.get("XMR_HEADLESS", "") not in ("", "0"):
    # A saved (headless) run would keep each tqdm.auto widget's first text, "0%| 0/600", for ever: text bars
    # instead, updated every few seconds, so that a saved notebook shows each bar as it ended.
    import functools as _functools

    import tqdm.auto as _tqdm_auto
    import tqdm.std as _tqdm_std

    _tqdm_auto.tqdm = _functools.partial(_tqdm_std.tqdm, mininterval=5.0, ncols=100)

__all__ = ["setup", "resolve_device", "__version__"]
__version__ = "0.1.0"
