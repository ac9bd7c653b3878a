"""xmr_lib — the helper library behind the xmr notebooks on deep image and cross-modal retrieval.

One module per concept: ``pooling``, ``losses``, ``hashing``, ``metrics``, ``index``, ``distill``,
``data``, ``models``, ``viz``, ``runs``, ``claims``. Start every notebook with :func:`setup`
(usually through :func:`xmr_lib.runs.params`, which calls it).
"""
from __future__ import annotations

from ._setup import resolve_device, setup

__all__ = ["setup", "resolve_device", "__version__"]
__version__ = "0.1.0"
