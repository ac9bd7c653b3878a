"""xmr_lib — the helper library behind the xmr notebooks on deep image and cross-modal retrieval.

Seven layers, each importing only from those below it: ``core`` (setup, cache, checks, claims' rules) < ``data``
< ``encoders`` < ``retrieval`` (pooling, whitening, metrics, index, losses) < ``train`` (the one training loop)
< ``chapters`` (one folder per notebook) < ``course`` (runs, runner, scorecard, viz, sweep, cli). Start every
notebook with :func:`xmr_lib.course.runs.params`, which calls :func:`setup`.
"""

from __future__ import annotations

import os as _os

from xmr_lib.core.setup import resolve_device, setup

if _os.environ.get("XMR_HEADLESS", "") not in ("", "0"):
    # A saved (headless) run would keep each tqdm.auto widget's first text, "0%| 0/600", for ever: text bars
    # instead, updated every few seconds, so that a saved notebook shows each bar as it ended.
    import tqdm.auto as _tqdm_auto
    import tqdm.std as _tqdm_std

    class _HeadlessTqdm(_tqdm_std.tqdm):
        """Text bars redrawn every 5 s. A subclass, not a partial: libraries subclass tqdm.auto.tqdm
        (huggingface_hub does when MiniLM loads)."""

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("mininterval", 5.0)
            kwargs.setdefault("ncols", 100)
            super().__init__(*args, **kwargs)

    _tqdm_auto.tqdm = _HeadlessTqdm

__all__ = ["setup", "resolve_device", "__version__"]
__version__ = "0.1.0"
