import numpy as np
import pytest
import torch

import xmr_lib


def test_setup_seeds_everything_reproducibly():
    s = xmr_lib.setup(123, device="cpu")
    a = (np.random.rand(3), torch.rand(3))
    xmr_lib.setup(123, device="cpu")
    b = (np.random.rand(3), torch.rand(3))
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert s.seed == 123 and s.device == "cpu" and s.threads >= 1
    assert torch.get_num_threads() == s.threads


def test_device_auto_resolves_to_an_available_device():
    assert xmr_lib.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("bad", ["gpu", 3])
def test_bad_device_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="device"):
        xmr_lib.resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="machine has CUDA")
def test_asking_for_cuda_without_it_fails_clearly():
    with pytest.raises(ValueError, match="no CUDA"):
        xmr_lib.setup(0, device="cuda")


def test_threads_override(monkeypatch):
    monkeypatch.setenv("XMR_THREADS", "1")
    assert xmr_lib.setup(0, device="cpu").threads == 1


def test_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        xmr_lib.setup("zero")


def test_threads_are_pinned_whatever_the_load(monkeypatch):
    """Same seed, same numbers: the thread count never depends on the load average."""
    from xmr_lib.core import setup as _setup

    monkeypatch.delenv("XMR_THREADS", raising=False)
    monkeypatch.setattr(_setup.os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    assert _setup.default_threads() == _setup.PINNED_THREADS
    monkeypatch.setenv("XMR_THREADS", "zero")
    with pytest.raises(ValueError, match="XMR_THREADS"):
        _setup.default_threads()


def test_auto_picks_mps_when_present(monkeypatch):
    from xmr_lib.core import setup as _setup

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert _setup.resolve_device("auto") == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert _setup.resolve_device("auto") == "cpu"
