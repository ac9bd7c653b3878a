"""Shared test fixtures. Tests run offline, on CPU, and fast."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """An isolated run folder for runs.record / Checkpoint."""
    d = tmp_path / "run"
    monkeypatch.setenv("XMR_RUN_DIR", str(d))
    monkeypatch.setenv("XMR_NOTEBOOK", "00_test")
    return d
