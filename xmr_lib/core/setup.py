"""Seeding, determinism, device and thread selection: the first call of every notebook."""

from __future__ import annotations

import os
import platform
import random
from dataclasses import asdict, dataclass

import numpy as np

# Thread policy. A float reduction split over another number of threads adds in another order, so a fixed seed
# gives different numbers with 1 and 2 threads, and claims whose margin is a fraction of a point could flip with the
# machine's load. A recorded run therefore pins its thread count: PINNED_THREADS (2: on the 2-core CI machine two
# threads ran the notebooks' workloads 1.7-2.7x faster than one, `python -m benchmarks.threads`), whatever the load;
# XMR_THREADS=N overrides, and the count is recorded with the run (Settings.threads).
PINNED_THREADS = 2


@dataclass(frozen=True)
class Settings:
    """What :func:`setup` resolved. ``asdict(settings)`` is what gets recorded with a run."""

    seed: int
    device: str
    threads: int
    deterministic: bool
    torch_version: str
    cuda_available: bool
    numpy_version: str = ""
    platform: str = ""


def resolve_device(device: str = "auto") -> str:
    """Return ``"cuda"`` or ``"cpu"`` (or an explicit ``"cuda:N"``/``"mps"``) for ``device``.

    ``"auto"`` picks CUDA when available, else Apple's MPS when available, else the CPU. Asking for CUDA on a machine without it raises a
    ValueError instead of failing later inside a kernel.
    """
    import torch

    if device is None or device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if not isinstance(device, str):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but torch sees no CUDA device; use device='auto' or 'cpu'"
            )
        return device
    if device in ("cpu", "mps"):
        return device
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}")


def default_threads() -> int:
    """Threads for torch's intra-op pool: ``XMR_THREADS`` if set, else :data:`PINNED_THREADS` — never chosen from
    the machine's load, so that a fixed seed gives the same numbers on a busy and an idle machine."""
    env = os.environ.get("XMR_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"XMR_THREADS: expected a whole number >= 1, got {env!r}") from None
        if n < 1:
            raise ValueError(f"XMR_THREADS: expected a whole number >= 1, got {env!r}")
        return n
    return PINNED_THREADS


def setup(seed: int = 0, device: str = "auto", deterministic: bool = True, threads: int | None = None) -> Settings:
    """Seed python/numpy/torch, set deterministic flags, pick the device and the thread count.

    Args:
        seed: seed for ``random``, ``numpy`` and ``torch`` (all devices).
        device: ``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        deterministic: ask torch for deterministic algorithms (``warn_only`` so that ops without a
            deterministic kernel still run) and turn off cuDNN benchmarking.
        threads: torch intra-op threads; ``None`` uses :func:`default_threads`.

    Returns:
        :class:`Settings` with what was resolved.
    """
    import torch

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int; got {seed!r}")
    seed = int(seed)
    dev = resolve_device(device)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    n = int(threads) if threads is not None else default_threads()
    if n < 1:
        raise ValueError(f"threads must be >= 1; got {threads!r}")
    torch.set_num_threads(n)
    return Settings(
        seed=seed,
        device=dev,
        threads=n,
        deterministic=bool(deterministic),
        torch_version=torch.__version__,
        cuda_available=torch.cuda.is_available(),
        numpy_version=np.__version__,
        platform=f"{platform.system()}-{platform.machine()}",
    )


def settings_dict(s: Settings) -> dict:
    return asdict(s)
