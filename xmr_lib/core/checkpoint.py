"""Atomic, resumable checkpoints: one file per named step under the run folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from xmr_lib.core.paths import run_dir


class Checkpoint:
    """Save and resume long runs, one file per named step, written atomically.

    >>> ck = Checkpoint("05_incremental/finetune_seed0")      # under <run dir>/checkpoints/
    >>> state = ck.load("task1")                             # None if not there yet
    >>> if state is None:
    ...     state = train(...); ck.save("task1", state)

    A partial or corrupt file (e.g. the machine died while writing) is reported and ignored, never half-loaded.
    """

    def __init__(self, name: str, root: str | os.PathLike | None = None):
        base = Path(root) if root is not None else Path(os.environ.get("XMR_CHECKPOINT_DIR", run_dir() / "checkpoints"))
        self.dir = base / name
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, step: str) -> Path:
        return self.dir / f"{step}.pt"

    def save(self, step: str, state: Any) -> Path:
        import torch

        p = self.path(step)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=p.name, suffix=".tmp")
        os.close(fd)
        torch.save(state, tmp)
        os.replace(tmp, p)
        return p

    def load(self, step: str, map_location: str = "cpu") -> Any | None:
        import torch

        p = self.path(step)
        if not p.is_file():
            return None
        try:
            return torch.load(p, map_location=map_location, weights_only=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file is treated the same way
            import warnings

            warnings.warn(f"checkpoint {p} is unreadable ({type(e).__name__}: {e}); ignoring it and recomputing")
            return None

    def steps(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.pt"))
