"""Argument checks shared by the whole library, one signature: ``check_*(value, name, ...)``.

Each returns the checked (possibly converted) value or raises ``ValueError`` naming the argument, what was expected
and what was given."""
from __future__ import annotations

import math
from typing import Any

import torch


def check_2d(x: Any, name: str, cols: int | None = None) -> torch.Tensor:
    """``x`` is a 2-D tensor ``(n, d)`` (``(n, cols)`` when ``cols`` is given)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 or (cols is not None and x.shape[1] != cols):
        want = f"(n, {cols})" if cols is not None else "(n, d)"
        raise ValueError(f"{name}: expected a 2-D tensor {want}, got shape {tuple(x.shape)}")
    return x


def check_same_shape(a: torch.Tensor, name_a: str, b: torch.Tensor, name_b: str) -> None:
    """``a`` and ``b`` are 2-D tensors of one shape."""
    check_2d(a, name_a)
    check_2d(b, name_b)
    if a.shape != b.shape:
        raise ValueError(f"{name_b}: expected the shape of {name_a} {tuple(a.shape)}, got {tuple(b.shape)}")


def check_int_labels(labels: Any, n: int, name: str = "labels") -> torch.Tensor:
    """``labels`` is an integer tensor of shape ``(n,)``."""
    if not isinstance(labels, torch.Tensor) or labels.shape != (n,) or labels.dtype.is_floating_point:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"{name}: expected an integer tensor of shape ({n},), got {got}")
    return labels


def check_positive(v: Any, name: str) -> float:
    """``v`` is a finite number > 0."""
    if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
        raise ValueError(f"{name}: expected a number > 0, got {v!r}")
    return float(v)
