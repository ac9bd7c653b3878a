"""Argument checks shared by the whole library, one signature: ``check_*(value, name, ...)``.

Each returns the checked (possibly converted) value or raises ``ValueError`` whose message starts with the
argument's name, then says what was expected and what was given (``"k: expected an integer >= 1, got 0"``).
Validations that only make sense for one method (a covariance that overflowed, a ranking with repeated indices)
stay private to their module.

=========================  ==========================================================================================
:func:`check_2d`           a 2-D torch tensor ``(n, d)``, optionally ``(n, cols)``
:func:`check_matrix`       anything array-like (NumPy, torch, lists) read as a 2-D numeric NumPy array
:func:`check_same_shape`   two 2-D tensors of one shape (pairs of features)
:func:`check_int_labels`   an integer class-id tensor ``(n,)``
:func:`check_class_ids`    integer class ids ``(n,)`` as a NumPy array, optionally ``< n_classes``
:func:`check_int`          an integer in ``[low, high]`` (``bool`` refused)
:func:`check_choice`       one of a fixed set of values
:func:`check_positive`     a finite number > 0
:func:`exercise_scalar`    a learner's exercise value as a 0-d tensor, or feedback (returned, not raised)
=========================  ==========================================================================================
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "check_2d",
    "check_matrix",
    "check_same_shape",
    "check_int_labels",
    "check_class_ids",
    "check_int",
    "check_choice",
    "check_positive",
    "exercise_scalar",
]


def _is_tensor(x: Any) -> bool:
    """``x`` is a torch tensor. Looked up in ``sys.modules`` so that this module (and the NumPy-only modules that
    use it: metrics, claims) does not import torch: when torch was never imported, nothing can be a tensor."""
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(x, torch_module.Tensor)


def _what(x: Any) -> str:
    """The shape of an array / tensor, else the type's name (for "got ..." in messages)."""
    return str(tuple(x.shape)) if _is_tensor(x) or isinstance(x, np.ndarray) else type(x).__name__


def check_2d(x: Any, name: str, cols: int | None = None) -> torch.Tensor:
    """``x`` is a 2-D tensor ``(n, d)`` (``(n, cols)`` when ``cols`` is given)."""
    if not _is_tensor(x):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 or (cols is not None and x.shape[1] != cols):
        want = f"(n, {cols})" if cols is not None else "(n, d)"
        raise ValueError(f"{name}: expected a 2-D tensor {want}, got shape {tuple(x.shape)}")
    return x


def check_matrix(
    x: Any, name: str, rows: int | None = None, cols: int | None = None, dtype: Any = None, finite: bool = False
) -> np.ndarray:
    """``x`` read as a 2-D numeric NumPy array ``(rows, cols)`` (each checked when given).

    Args:
        x: a NumPy array, a torch tensor (detached, copied to the CPU) or anything ``np.asarray`` reads.
        dtype: convert to this dtype (no copy when it already has it).
        finite: refuse NaN and ±inf.
    Returns:
        the array, ``(rows, cols)``.
    """
    if _is_tensor(x):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: cannot be read as an array ({type(x).__name__}): {e}") from None
    if a.ndim != 2:
        want = f"({'n' if rows is None else rows}, {'d' if cols is None else cols})"
        raise ValueError(f"{name}: expected a 2-D array {want}, got shape {a.shape}")
    if rows is not None and a.shape[0] != rows:
        raise ValueError(f"{name}: expected {rows} rows, got shape {a.shape}")
    if cols is not None and a.shape[1] != cols:
        raise ValueError(f"{name}: expected {cols} columns, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) and a.dtype != bool:
        raise ValueError(f"{name}: expected numbers, got dtype {a.dtype}")
    if dtype is not None:
        a = a.astype(dtype, copy=False)
    if finite and a.dtype.kind in "fc" and not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def check_same_shape(a: Any, name_a: str, b: Any, name_b: str) -> None:
    """``a`` and ``b`` are 2-D tensors of one shape (the message names both)."""
    check_2d(a, name_a)
    check_2d(b, name_b)
    if a.shape != b.shape:
        raise ValueError(f"{name_a}, {name_b}: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")


def check_int_labels(labels: Any, name: str = "labels", n: int | None = None) -> torch.Tensor:
    """``labels`` is an integer tensor of shape ``(n,)`` (any length when ``n`` is None); returned unchanged."""
    want = "(n,)" if n is None else f"({n},)"
    if not _is_tensor(labels) or labels.ndim != 1 or (n is not None and labels.shape[0] != n):
        raise ValueError(f"{name}: expected an integer tensor of shape {want}, got {_what(labels)}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or str(labels.dtype) == "torch.bool":
        raise ValueError(f"{name}: expected integer class ids, got dtype {labels.dtype}")
    return labels


def check_class_ids(
    labels: Any, name: str = "labels", n: int | None = None, n_classes: int | None = None
) -> np.ndarray:
    """``labels`` read as ``(n,)`` int64 class ids in ``[0, n_classes)``; integral floats (``3.0``) are accepted.

    Args:
        labels: a NumPy array, a torch tensor or a sequence. n: the expected length (one per row of the scores,
            say). n_classes: ids must be below it.
    """
    if _is_tensor(labels):
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of class indices, got shape {y.shape}")
    if n is not None and len(y) != n:
        raise ValueError(f"{name}: expected {n} labels, got {len(y)}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{name}: expected integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"{name}: class indices must be >= 0, got {int(y.min())}")
    if n_classes is not None and y.size and y.max() >= n_classes:
        raise ValueError(f"{name}: class index {int(y.max())} out of range for {n_classes} classes")
    return y


def check_int(value: Any, name: str, low: int = 1, high: int | None = None) -> int:
    """``value`` is an integer (Python or NumPy; ``bool`` refused) in ``[low, high]`` (``high`` None: no bound)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    v = int(value)
    if v < low or (high is not None and v > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name}: expected an integer {rng}, got {v}")
    return v


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")
    return value


def check_positive(v: Any, name: str) -> float:
    """``v`` is a finite number > 0."""
    if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
        raise ValueError(f"{name}: expected a number > 0, got {v!r}")
    return float(v)


def exercise_scalar(x: Any, what: str) -> tuple[torch.Tensor | None, str]:
    """A learner's exercise answer that should be a loss: ``(x as a 0-d tensor, "")`` or ``(None, feedback)``.

    The exercise checks (``chapters/chNN/config.py``) call it on what the learner's function returned; the
    feedback names ``what`` ("your function") and says what to return instead. Unlike the ``check_*`` functions
    it does not raise: a wrong answer is feedback for the notebook, not an error.
    """
    if not _is_tensor(x):
        return None, f"{what} returned {type(x).__name__}; return a torch scalar (a 0-d tensor) so that it can train"
    if x.numel() != 1:
        return None, f"{what} returned shape {tuple(x.shape)}; return one number for the batch (its sum or average)"
    return x.reshape(()), ""
