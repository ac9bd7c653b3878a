"""core/checks: one signature ``check_*(value, name, ...)``; every error starts with the argument's name."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from xmr_lib.core import checks as C


def test_check_2d():
    x = torch.zeros(3, 4)
    assert C.check_2d(x, "x") is x and C.check_2d(x, "x", 4) is x
    with pytest.raises(ValueError, match=r"^z: expected a torch.Tensor, got ndarray"):
        C.check_2d(np.zeros((3, 4)), "z")
    with pytest.raises(ValueError, match=r"^z: expected a 2-D tensor \(n, 5\), got shape \(3, 4\)"):
        C.check_2d(x, "z", 5)


def test_check_matrix():
    a = C.check_matrix(torch.ones(2, 3, requires_grad=True), "a", rows=2, cols=3, dtype=np.float32)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (2, 3)
    assert C.check_matrix([[1, 2]], "a").dtype.kind == "i"
    for bad, match in [
        (np.zeros(3), r"^m: expected a 2-D array \(n, d\), got shape \(3,\)"),
        (np.zeros((2, 3)), r"^m: expected 4 rows"),
        (np.array([["a", "b"]]), r"^m: expected numbers, got dtype <U1"),
    ]:
        with pytest.raises(ValueError, match=match):
            C.check_matrix(bad, "m", rows=4 if bad.shape == (2, 3) else None)
    with pytest.raises(ValueError, match=r"^m: expected 2 columns"):
        C.check_matrix(np.zeros((2, 3)), "m", cols=2)
    with pytest.raises(ValueError, match=r"^m: contains NaN or inf"):
        C.check_matrix(np.array([[1.0, np.nan]]), "m", finite=True)


def test_check_same_shape_names_both():
    with pytest.raises(ValueError, match=r"^a, b: shapes differ: \(1, 2\) vs \(2, 2\)"):
        C.check_same_shape(torch.zeros(1, 2), "a", torch.zeros(2, 2), "b")


def test_check_int_labels():
    y = torch.tensor([0, 2, 1])
    assert C.check_int_labels(y, "y", 3) is y and C.check_int_labels(y, "y") is y
    with pytest.raises(ValueError, match=r"^y: expected an integer tensor of shape \(4,\), got \(3,\)"):
        C.check_int_labels(y, "y", 4)
    with pytest.raises(ValueError, match=r"^y: expected integer class ids, got dtype torch.float32"):
        C.check_int_labels(y.float(), "y", 3)


def test_check_class_ids():
    assert C.check_class_ids([0, 2.0, 1], "y", n=3, n_classes=3).tolist() == [0, 2, 1]
    for bad, kw, match in [
        ([[0]], {}, "1-D"),
        ([0, 1], {"n": 3}, "expected 3 labels, got 2"),
        ([0.5], {}, "integer class indices"),
        (["a"], {}, "integer class indices"),
        ([-1], {}, ">= 0"),
        ([3], {"n_classes": 3}, "out of range for 3 classes"),
    ]:
        with pytest.raises(ValueError, match="^y: .*" + match):
            C.check_class_ids(bad, "y", **kw)


def test_check_int_and_choice_and_positive():
    assert C.check_int(np.int64(3), "k") == 3 and C.check_int(0, "k", 0, 4) == 0
    for bad, match in [
        (True, "expected an integer, got True"),
        (2.0, "expected an integer, got 2.0"),
        (0, "expected an integer >= 1, got 0"),
    ]:
        with pytest.raises(ValueError, match="^k: " + match):
            C.check_int(bad, "k")
    with pytest.raises(ValueError, match=r"^k: expected an integer in \[0, 4\], got 5"):
        C.check_int(5, "k", 0, 4)
    assert C.check_choice("a", "mode", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"^mode: expected one of \('a', 'b'\), got 'c'"):
        C.check_choice("c", "mode", ["a", "b"])
    assert C.check_positive(2, "lr") == 2.0
    with pytest.raises(ValueError, match="^lr: expected a number > 0"):
        C.check_positive(float("inf"), "lr")


def test_importing_the_checks_does_not_import_torch():
    """NumPy-only modules (retrieval.metrics, core.claims) use these checks and stay torch-free."""
    code = "import sys, xmr_lib.core.checks, xmr_lib.core.claims; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_exercise_scalar_returns_feedback_not_errors():
    v, why = C.exercise_scalar(torch.tensor([[2.5]], requires_grad=True), "your function")
    assert why == "" and v.shape == () and float(v.detach()) == 2.5 and v.requires_grad
    v, why = C.exercise_scalar(1.0, "your function")
    assert v is None and why.startswith("your function returned float;") and "0-d tensor" in why
    v, why = C.exercise_scalar(torch.zeros(3), "f")
    assert v is None and why.startswith("f returned shape (3,);") and "one number" in why
