import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from xmr_lib.course import viz


def _draw(k, mode):
    fig, ax = plt.subplots()
    ax.set_title(f"{mode} k={k}")
    return fig


def test_explorer_is_static_when_headless(monkeypatch):
    monkeypatch.setenv("XMR_HEADLESS", "1")
    fig = viz.explorer(_draw, {"k": (1, 10), "mode": ["a", "b"]}, values={"k": 3})
    assert fig.axes[0].get_title() == "a k=3"
    with pytest.raises(ValueError, match="values: 'z'"):
        viz.explorer(_draw, {"k": (1, 10), "mode": ["a"]}, values={"z": 1})


def test_explorer_live_draws_once_and_redraws_when_a_control_moves(monkeypatch):
    W = pytest.importorskip("ipywidgets")
    monkeypatch.delenv("XMR_HEADLESS", raising=False)
    calls = []

    def draw(k, mode):
        calls.append((k, mode))
        return _draw(k, mode)

    box = viz.explorer(draw, {"k": (1, 10), "mode": [("first", "a"), ("second", "b")]})
    assert isinstance(box, W.VBox) and calls == [(1, "a")]  # drawn once when shown
    box.children[0].children[0].value = 4
    assert calls[-1] == (4, "a")
    with pytest.raises(ValueError, match="controls"):
        viz.explorer(draw, {"k": "nope"})


def test_metric_curves_use_integer_ticks_for_steps():
    ax = viz.metric_curves({"loss": [1.0, 0.5, 0.3]}, xlabel="epoch")
    assert all(float(t).is_integer() for t in ax.get_xticks())
